// mortar-bench-passthrough: the smallest correct multithreaded low-level FUSE file system,
// mirroring SOURCE_DIR at MOUNTPOINT. It is the ceiling any FUSE file system reaches on a
// machine, so bench/fuse-vs-passthrough measures mortar-fuse against it. It asks the kernel
// for exactly what mortar-fuse asks by default (allow_other, default_permissions, 1 s entry
// and attribute timeouts, no writeback cache, 1 MiB writes, readdirplus, same loop threads),
// so the difference between the two is mortar's own cost, not the FUSE transport's.
//
//   mortar-bench-passthrough SOURCE_DIR MOUNTPOINT [-f] [-o opts]
//
// Not a product: no xattrs, locks, hard links or fallocate (they fail with ENOSYS; POSIX locks
// stay local to the kernel). Having no getxattr has one effect on the figures: after the first
// ENOSYS the kernel stops asking for security.capability before every write, a FUSE request
// that mortar-fuse answers itself (without the `capability` mount option) but still receives.
#define FUSE_USE_VERSION 314

#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr double kEntryTimeout = 1.0;
constexpr double kAttrTimeout = 1.0;

// One file the kernel knows by node id. The O_PATH descriptor names the file without opening
// it for I/O and pins its inode, so (dev, ino) cannot be reused while the entry lives.
struct Inode {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t nlookup = 0;  // guarded by InodeTable::mu_
};

// Node ids are Inode addresses, except the root's, which the kernel fixes at FUSE_ROOT_ID.
// Thread-safe; an Inode stays valid until the kernel forgets it, and the kernel sends no
// request naming a node id after its last forget.
class InodeTable {
 public:
  explicit InodeTable(int root_fd, const struct stat& st) {
    root_ = std::make_unique<Inode>(Inode{root_fd, st.st_dev, st.st_ino, 0});
  }

  Inode* get(fuse_ino_t id) {
    return id == FUSE_ROOT_ID ? root_.get() : reinterpret_cast<Inode*>(id);
  }
  fuse_ino_t id_of(const Inode* inode) const {
    return inode == root_.get() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(inode);
  }

  // Counts one lookup of the file `fd` (an O_PATH descriptor) names. Takes ownership of fd:
  // keeps it for a new entry, closes it when the file is already known.
  Inode* acquire(int fd, const struct stat& st) {
    int spare = -1;
    Inode* inode;
    {
      std::lock_guard lock(mu_);
      if (st.st_dev == root_->dev && st.st_ino == root_->ino) {
        inode = root_.get();
        spare = fd;
      } else {
        auto [it, inserted] = by_file_.try_emplace({st.st_dev, st.st_ino});
        if (inserted) {
          it->second = std::make_unique<Inode>(Inode{fd, st.st_dev, st.st_ino, 0});
        } else {
          spare = fd;
        }
        inode = it->second.get();
      }
      ++inode->nlookup;
    }
    if (spare >= 0) ::close(spare);
    return inode;
  }

  void forget(fuse_ino_t id, uint64_t n) {
    Inode* inode = get(id);
    std::unique_ptr<Inode> gone;
    {
      std::lock_guard lock(mu_);
      inode->nlookup -= std::min(n, inode->nlookup);
      if (inode->nlookup > 0 || inode == root_.get()) return;
      auto it = by_file_.find({inode->dev, inode->ino});
      gone = std::move(it->second);
      by_file_.erase(it);
    }
    ::close(gone->fd);
  }

 private:
  std::mutex mu_;
  std::unique_ptr<Inode> root_;  // never forgotten: the mount itself holds it
  std::map<std::pair<dev_t, ino_t>, std::unique_ptr<Inode>> by_file_;  // guarded by mu_
};

// An open directory: the stream, and the entry read but not yet sent when the kernel's buffer
// filled up, so the next readdir starts with it.
struct DirHandle {
  std::mutex mu;
  DIR* dp = nullptr;
  off_t offset = 0;
  dirent* pending = nullptr;  // guarded by mu
};

InodeTable* table = nullptr;  // set once in main, before the session starts

Inode* inode_of(fuse_ino_t id) { return table->get(id); }

// An O_PATH descriptor cannot be read, written, chmod-ed or truncated; its /proc link can.
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// New files must belong to the caller, not to the daemon (root, under allow_other). The file
// system uid and gid are per thread on Linux, so a request switches only its own thread.
// Supplementary groups are not switched: the kernel already checked permissions
// (default_permissions), this only decides the owner of what gets created.
class AsCaller {
 public:
  explicit AsCaller(fuse_req_t req) : switched_(::geteuid() == 0) {
    if (!switched_) return;
    const fuse_ctx* ctx = fuse_req_ctx(req);
    ::setfsgid(ctx->gid);
    ::setfsuid(ctx->uid);
  }
  ~AsCaller() {
    if (!switched_) return;
    // uid first: a non-root fsuid drops the capabilities that the fsgid switch needs.
    ::setfsuid(0);
    ::setfsgid(0);
  }
  AsCaller(const AsCaller&) = delete;
  AsCaller& operator=(const AsCaller&) = delete;

 private:
  bool switched_;
};

// ---- Logic: returns 0 or an errno; the callbacks below turn it into exactly one reply. ----

int do_stat(int fd, struct stat* st) {
  return ::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

// Looks `name` up in `parent`, counting one kernel reference on success.
int do_lookup(fuse_ino_t parent, const char* name, fuse_entry_param* e) {
  *e = {};
  int fd = ::openat(inode_of(parent)->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  if (int err = do_stat(fd, &e->attr); err != 0) {
    ::close(fd);
    return err;
  }
  e->ino = table->id_of(table->acquire(fd, e->attr));
  e->attr_timeout = kAttrTimeout;
  e->entry_timeout = kEntryTimeout;
  return 0;
}

int do_setattr(fuse_ino_t ino, const struct stat& attr, int valid, fuse_file_info* fi) {
  Inode* inode = inode_of(ino);
  const std::string path = proc_path(inode->fd);
  if (valid & FUSE_SET_ATTR_MODE) {
    int r =
        fi ? ::fchmod(static_cast<int>(fi->fh), attr.st_mode) : ::chmod(path.c_str(), attr.st_mode);
    if (r != 0) return errno;
  }
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr.st_uid : static_cast<uid_t>(-1);
    gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr.st_gid : static_cast<gid_t>(-1);
    if (::fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return errno;
    }
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    int r = fi ? ::ftruncate(static_cast<int>(fi->fh), attr.st_size)
               : ::truncate(path.c_str(), attr.st_size);
    if (r != 0) return errno;
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (valid & FUSE_SET_ATTR_ATIME_NOW) {
      tv[0].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_ATIME) {
      tv[0] = attr.st_atim;
    }
    if (valid & FUSE_SET_ATTR_MTIME_NOW) {
      tv[1].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_MTIME) {
      tv[1] = attr.st_mtim;
    }
    int r =
        fi ? ::futimens(static_cast<int>(fi->fh), tv) : ::utimensat(AT_FDCWD, path.c_str(), tv, 0);
    if (r != 0) return errno;
  }
  return 0;
}

// Creates a non-regular file (or a regular one through mknod) with `make`, then looks it up.
template <class Make>
void make_node(fuse_req_t req, fuse_ino_t parent, const char* name, Make make) {
  int err;
  {
    AsCaller as(req);
    err = make(inode_of(parent)->fd) == 0 ? 0 : errno;
  }
  fuse_entry_param e;
  if (err == 0) err = do_lookup(parent, name, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_entry(req, &e);
  }
}

// ---- Callbacks ----

void pt_init(void*, fuse_conn_info* conn) {
  // The same requests as mortar-fuse's init, minus the locks this file system does not serve.
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_PARALLEL_DIROPS);
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_write = 1u << 20;
  conn->max_readahead = std::max(conn->max_readahead, 1u << 20);
  conn->time_gran = 1;
}

void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  if (int err = do_lookup(parent, name, &e); err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_entry(req, &e);
  }
}

void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  table->forget(ino, nlookup);
  fuse_reply_none(req);
}

void pt_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) table->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void pt_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st;
  if (int err = do_stat(inode_of(ino)->fd, &st); err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_attr(req, &st, kAttrTimeout);
  }
}

void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi) {
  struct stat st;
  int err = do_setattr(ino, *attr, valid, fi);
  if (err == 0) err = do_stat(inode_of(ino)->fd, &st);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_attr(req, &st, kAttrTimeout);
  }
}

void pt_readlink(fuse_req_t req, fuse_ino_t ino) {
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(inode_of(ino)->fd, "", buf, sizeof buf);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else if (n == static_cast<ssize_t>(sizeof buf)) {
    fuse_reply_err(req, ENAMETOOLONG);
  } else {
    buf[n] = '\0';
    fuse_reply_readlink(req, buf);
  }
}

void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  make_node(req, parent, name, [&](int dir) { return ::mknodat(dir, name, mode, rdev); });
}

void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  make_node(req, parent, name, [&](int dir) { return ::mkdirat(dir, name, mode); });
}

void pt_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  make_node(req, parent, name, [&](int dir) { return ::symlinkat(link, dir, name); });
}

void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, ::unlinkat(inode_of(parent)->fd, name, 0) == 0 ? 0 : errno);
}

void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, ::unlinkat(inode_of(parent)->fd, name, AT_REMOVEDIR) == 0 ? 0 : errno);
}

void pt_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  int r = ::renameat2(inode_of(parent)->fd, name, inode_of(newparent)->fd, newname, flags);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void pt_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  int fd;
  {
    AsCaller as(req);
    fd =
        ::openat(inode_of(parent)->fd, name, (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOFOLLOW, mode);
  }
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_entry_param e;
  if (int err = do_lookup(parent, name, &e); err != 0) {
    ::close(fd);
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = static_cast<uint64_t>(fd);
  fi->keep_cache = 0;  // as mortar-fuse: the page cache is dropped on every open
  if (fuse_reply_create(req, &e, fi) != 0) {
    // The kernel never saw the file handle or the new reference: undo both.
    ::close(fd);
    table->forget(e.ino, 1);
  }
}

void pt_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd = ::open(proc_path(inode_of(ino)->fd).c_str(), (fi->flags | O_CLOEXEC) & ~O_NOFOLLOW);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fi->fh = static_cast<uint64_t>(fd);
  fi->keep_cache = 0;
  if (fuse_reply_open(req, fi) != 0) ::close(fd);
}

void pt_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  // One buffer per loop thread: a 1 MiB read must not cost an allocation.
  thread_local std::vector<char> buf;
  if (buf.size() < size) buf.resize(size);
  ssize_t n = ::pread(static_cast<int>(fi->fh), buf.data(), size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
}

void pt_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off,
              fuse_file_info* fi) {
  ssize_t n = ::pwrite(static_cast<int>(fi->fh), data, size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void pt_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // close(2) of a duplicate reports what closing reports (quota, NFS write-back) without
  // giving up the handle, which other descriptors of the same open file still share.
  int dup = ::dup(static_cast<int>(fi->fh));
  fuse_reply_err(req, dup < 0 ? errno : (::close(dup) == 0 ? 0 : errno));
}

void pt_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ::close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void pt_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = static_cast<int>(fi->fh);
  fuse_reply_err(req, (datasync ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno);
}

void pt_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd = ::openat(inode_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  auto d = std::make_unique<DirHandle>();
  d->dp = ::fdopendir(fd);
  if (d->dp == nullptr) {
    int err = errno;
    ::close(fd);
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = reinterpret_cast<uint64_t>(d.get());
  if (fuse_reply_open(req, fi) == 0) {
    d.release();  // now owned by the kernel's open directory, freed in releasedir
  } else {
    ::closedir(d->dp);
  }
}

bool is_dot_or_dotdot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                bool plus) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t used = 0;
  int err = 0;
  {
    std::lock_guard lock(d->mu);
    if (off != d->offset) {
      ::seekdir(d->dp, off);
      d->pending = nullptr;
      d->offset = off;
    }
    while (true) {
      if (d->pending == nullptr) {
        errno = 0;
        d->pending = ::readdir(d->dp);
        if (d->pending == nullptr) {
          err = errno;
          break;
        }
      }
      const dirent* entry = d->pending;
      off_t next = entry->d_off;
      size_t entsize;
      if (plus) {
        fuse_entry_param e{};
        if (is_dot_or_dotdot(entry->d_name)) {
          // Node id 0: the kernel takes no reference on "." and "..", so we count none.
          e.attr.st_ino = entry->d_ino;
          e.attr.st_mode = static_cast<mode_t>(entry->d_type) << 12;
        } else if (int lerr = do_lookup(ino, entry->d_name, &e); lerr != 0) {
          if (lerr == ENOENT) {  // unlinked since readdir saw it: skip, as readdir would
            d->pending = nullptr;
            d->offset = next;
            continue;
          }
          err = lerr;
          break;
        }
        entsize =
            fuse_add_direntry_plus(req, buf.data() + used, size - used, entry->d_name, &e, next);
        if (entsize > size - used) {
          if (e.ino != 0) table->forget(e.ino, 1);  // not sent: the kernel holds no reference
          break;
        }
      } else {
        struct stat st {};
        st.st_ino = entry->d_ino;
        st.st_mode = static_cast<mode_t>(entry->d_type) << 12;
        entsize = fuse_add_direntry(req, buf.data() + used, size - used, entry->d_name, &st, next);
        if (entsize > size - used) break;
      }
      used += entsize;
      d->pending = nullptr;
      d->offset = next;
    }
  }
  // An error after some entries is reported by the next call, which starts where this ended.
  if (err != 0 && used == 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_buf(req, buf.data(), used);
  }
}

void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, false);
}

void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, true);
}

void pt_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  ::closedir(d->dp);
  delete d;
  fuse_reply_err(req, 0);
}

void pt_statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv;
  if (::fstatvfs(inode_of(ino)->fd, &sv) != 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_statfs(req, &sv);
  }
}

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops o{};
  o.init = pt_init;
  o.lookup = pt_lookup;
  o.forget = pt_forget;
  o.forget_multi = pt_forget_multi;
  o.getattr = pt_getattr;
  o.setattr = pt_setattr;
  o.readlink = pt_readlink;
  o.mknod = pt_mknod;
  o.mkdir = pt_mkdir;
  o.symlink = pt_symlink;
  o.unlink = pt_unlink;
  o.rmdir = pt_rmdir;
  o.rename = pt_rename;
  o.create = pt_create;
  o.open = pt_open;
  o.read = pt_read;
  o.write = pt_write;  // not write_buf: that would turn on splice reads, which mortar-fuse lacks
  o.flush = pt_flush;
  o.release = pt_release;
  o.fsync = pt_fsync;
  o.opendir = pt_opendir;
  o.readdir = pt_readdir;
  o.readdirplus = pt_readdirplus;
  o.releasedir = pt_releasedir;
  o.statfs = pt_statfs;
  return o;
}

int usage(const char* program) {
  std::fprintf(stderr, "usage: %s SOURCE_DIR MOUNTPOINT [-f] [-d] [-o opts]\n", program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argv[1][0] == '-') return usage(argv[0]);
  const std::string source = argv[1];

  // Everything after SOURCE_DIR is libfuse's own command line.
  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, argv[0]);
  for (int i = 2; i < argc; ++i) fuse_opt_add_arg(&args, argv[i]);
  fuse_cmdline_opts opts{};
  if (fuse_parse_cmdline(&args, &opts) != 0 || opts.mountpoint == nullptr) {
    fuse_opt_free_args(&args);
    return usage(argv[0]);
  }
  std::string fsname;
  for (char c : source) {
    if (c == ',' || c == '\\') fsname.push_back('\\');
    fsname.push_back(c);
  }
  std::string kernel_opts =
      "-oallow_other,default_permissions,subtype=mortar-bench-passthrough,fsname=" + fsname;
  fuse_opt_add_arg(&args, kernel_opts.c_str());

  int root_fd = ::open(source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat root_st;
  if (root_fd < 0 || do_stat(root_fd, &root_st) != 0) {
    std::fprintf(stderr, "%s: cannot open %s: %s\n", argv[0], source.c_str(), strerror(errno));
    return 1;
  }
  // Modes arrive already masked by the caller's umask; ours must not mask them again.
  ::umask(0);
  InodeTable inodes(root_fd, root_st);
  table = &inodes;

  static const fuse_lowlevel_ops ops = make_operations();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, nullptr);
  fuse_opt_free_args(&args);
  if (se == nullptr) return 1;
  int rc = 1;
  if (fuse_session_mount(se, opts.mountpoint) == 0) {
    if (fuse_daemonize(opts.foreground) == 0 && fuse_set_signal_handlers(se) == 0) {
      fuse_loop_config* loop = fuse_loop_cfg_create();
      // mortar-fuse's loop: the same number of threads serve both mounts.
      fuse_loop_cfg_set_max_threads(loop, 16);
      fuse_loop_cfg_set_idle_threads(loop, 4);
      // 0 on unmount, the signal's number on SIGTERM/SIGINT: both are a clean stop.
      rc = fuse_session_loop_mt(se, loop) < 0 ? 1 : 0;
      fuse_loop_cfg_destroy(loop);
      fuse_remove_signal_handlers(se);
    }
    fuse_session_unmount(se);
  } else {
    std::fprintf(stderr, "%s: cannot mount on %s\n", argv[0], opts.mountpoint);
  }
  fuse_session_destroy(se);
  std::free(opts.mountpoint);
  return rc;
}
