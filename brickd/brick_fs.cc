#include "brickd/brick_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include <xxhash.h>

#include "common/log.h"
#include "common/protocol.h"

namespace mortar::brickd {

namespace {

constexpr size_t kMaxHandleSize = 128;  // MAX_HANDLE_SZ
constexpr std::string_view kIndexFormat = "2";

// "/proc/self/fd/N": reaches the inode behind an fd for calls that have no fd form (chmod
// and xattrs on O_PATH descriptors). Resolving it never walks the brick's names.
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }
// "/proc/self/fd/N/name": the entry `name` of directory fd N, for the l*xattr calls, which
// have no *at form. `name` has passed check_name, so it is one component.
std::string proc_path(int dirfd, std::string_view name) {
  std::string p = proc_path(dirfd);
  p.push_back('/');
  p.append(name);
  return p;
}

struct HandleBuf {
  alignas(struct file_handle) char bytes[sizeof(struct file_handle) + kMaxHandleSize];
  struct file_handle* get() {
    return reinterpret_cast<struct file_handle*>(bytes);
  }
};

Result<struct stat> stat_fd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail_errno();
  return st;
}

Result<std::string> get_xattr_path(const std::string& path, const char* name, bool follow) {
  std::string value(256, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = follow ? ::getxattr(path.c_str(), name, value.data(), value.size())
                       : ::lgetxattr(path.c_str(), name, value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) return fail_errno();
    n = follow ? ::getxattr(path.c_str(), name, nullptr, 0)
               : ::lgetxattr(path.c_str(), name, nullptr, 0);
    if (n < 0) return fail_errno();
    value.resize(static_cast<size_t>(n) + 1);
  }
  return fail(ERANGE);
}

Result<std::string> get_xattr_fd(int fd, const char* name) {
  std::string value(256, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = ::fgetxattr(fd, name, value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) return fail_errno();
    n = ::fgetxattr(fd, name, nullptr, 0);
    if (n < 0) return fail_errno();
    value.resize(static_cast<size_t>(n) + 1);
  }
  return fail(ERANGE);
}

std::vector<std::string> split_xattr_list(std::string_view raw) {
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t end = raw.find('\0', pos);
    if (end == std::string_view::npos) end = raw.size();
    auto name = raw.substr(pos, end - pos);
    if (!name.empty() && !is_reserved_xattr(name)) names.emplace_back(name);
    pos = end + 1;
  }
  return names;
}

// open(2) flags a client may pass to the brick's own open: creation is a separate call,
// O_DIRECT would demand aligned buffers, and the descriptor must never become a terminal.
uint32_t sanitize_open_flags(uint32_t flags) {
  flags &= ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NONBLOCK | O_PATH |
                                  O_DIRECTORY | O_TMPFILE);
  return flags | O_CLOEXEC | O_NOFOLLOW;
}

void fill_stamp(const timespec& ts, int64_t* sec, uint32_t* nsec) {
  *sec = ts.tv_sec;
  *nsec = static_cast<uint32_t>(ts.tv_nsec);
}

}  // namespace

Result<void> check_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return fail(EINVAL);
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return fail(EINVAL);
  }
  if (name.size() > NAME_MAX) return fail(ENAMETOOLONG);
  return ok();
}

bool is_reserved_name(const Gfid& parent, std::string_view name) {
  return parent.is_root() && name == kBrickMetaDir;
}

bool is_reserved_xattr(std::string_view name) { return name.starts_with(kReservedXattrPrefix); }

void fill_iatt(const struct stat& st, const Gfid& gfid, pb::Iatt* out) {
  out->set_gfid(std::string(gfid.bytes()));
  out->set_mode(st.st_mode);
  out->set_nlink(static_cast<uint32_t>(st.st_nlink));
  out->set_uid(st.st_uid);
  out->set_gid(st.st_gid);
  out->set_rdev(st.st_rdev);
  out->set_size(static_cast<uint64_t>(st.st_size));
  out->set_blocks(static_cast<uint64_t>(st.st_blocks));
  out->set_blksize(static_cast<uint32_t>(st.st_blksize));
  int64_t sec;
  uint32_t nsec;
  fill_stamp(st.st_atim, &sec, &nsec);
  out->set_atime_sec(sec);
  out->set_atime_nsec(nsec);
  fill_stamp(st.st_mtim, &sec, &nsec);
  out->set_mtime_sec(sec);
  out->set_mtime_nsec(nsec);
  fill_stamp(st.st_ctim, &sec, &nsec);
  out->set_ctime_sec(sec);
  out->set_ctime_nsec(nsec);
}

// An inode opened by GFID with O_PATH, plus, for a symlink, the directory entry that names it
// (symlinks have no fd through which their xattrs and times can be reached).
class BrickFs::InodeRef {
 public:
  UniqueFd fd;
  struct stat st {};
  UniqueFd parent;
  std::string name;

  bool is_symlink() const { return S_ISLNK(st.st_mode); }
  // The path for xattr/chmod/utimens calls, and whether those calls must follow it.
  std::string path() const {
    return is_symlink() ? proc_path(parent.get(), name) : proc_path(fd.get());
  }
  bool follow() const { return !is_symlink(); }
  bool reachable() const { return !is_symlink() || parent.valid(); }
};

BrickFs::BrickFs(UniqueFd root, int mount_id, std::unique_ptr<MetaStore> meta, Gfid brick_id)
    : root_(std::move(root)), mount_id_(mount_id), meta_(std::move(meta)), brick_id_(brick_id) {}

BrickFs::~BrickFs() = default;

Result<std::unique_ptr<BrickFs>> BrickFs::open(const Options& options) {
  UniqueFd root(::open(options.brick_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    int err = errno;
    MLOG_ERROR("cannot open brick directory {}: {}", options.brick_dir, std::strerror(err));
    return fail(err);
  }

  auto volume = get_xattr_fd(root.get(), kVolumeXattr);
  if (volume && *volume != options.volume) {
    MLOG_ERROR("brick {} belongs to volume '{}', not '{}'", options.brick_dir, *volume,
               options.volume);
    return fail(EEXIST);
  }
  if (!volume) {
    if (volume.error().value != ENODATA) {
      MLOG_ERROR("cannot read xattrs of {}: {}", options.brick_dir, volume.error().message());
      return fail(volume.error());
    }
    if (::fsetxattr(root.get(), kVolumeXattr, options.volume.data(), options.volume.size(),
                    XATTR_CREATE) != 0) {
      int err = errno;
      MLOG_ERROR(
          "cannot mark {} as a brick of '{}': {} (mortar-brickd needs root for trusted.* "
          "xattrs)",
          options.brick_dir, options.volume, std::strerror(err));
      return fail(err);
    }
  }

  auto root_gfid = get_xattr_fd(root.get(), kGfidXattr);
  if (root_gfid) {
    auto g = Gfid::from_bytes(*root_gfid);
    if (!g || !g->is_root()) {
      MLOG_ERROR("{} carries the GFID of a non-root inode: is it a directory inside a brick?",
                 options.brick_dir);
      return fail(EINVAL);
    }
  } else if (::fsetxattr(root.get(), kGfidXattr, Gfid::root().bytes().data(), Gfid::kSize, 0) !=
             0) {
    return fail_errno();
  }

  Gfid brick_id;
  auto id_raw = get_xattr_fd(root.get(), kBrickIdXattr);
  if (id_raw && Gfid::from_bytes(*id_raw)) {
    brick_id = *Gfid::from_bytes(*id_raw);
  } else {
    brick_id = Gfid::random();
    if (::fsetxattr(root.get(), kBrickIdXattr, brick_id.bytes().data(), Gfid::kSize, 0) != 0) {
      return fail_errno();
    }
  }

  if (::mkdirat(root.get(), std::string(kBrickMetaDir).c_str(), 0700) != 0 && errno != EEXIST) {
    int err = errno;
    MLOG_ERROR("cannot create {}/{}: {}", options.brick_dir, kBrickMetaDir, std::strerror(err));
    return fail(err);
  }

  HandleBuf hb;
  hb.get()->handle_bytes = kMaxHandleSize;
  int mount_id = 0;
  if (::name_to_handle_at(root.get(), "", hb.get(), &mount_id, AT_EMPTY_PATH) != 0) {
    int err = errno;
    MLOG_ERROR(
        "brick {}: its file system has no file handles ({}); mortar needs ext4, XFS, "
        "btrfs or another exportable file system",
        options.brick_dir, std::strerror(err));
    return fail(err);
  }

  auto meta = MetaStore::open(options.brick_dir + "/" + std::string(kBrickMetaDir) + "/meta");
  if (!meta) return fail(meta.error());

  std::unique_ptr<BrickFs> fs(new BrickFs(std::move(root), mount_id, std::move(*meta), brick_id));
  auto format = fs->meta_->get_meta("format");
  if (!format) return fail(format.error());
  // Format 2 added the bucket index: an older index is rebuilt to get it.
  if (!*format || **format != kIndexFormat || options.rebuild_index) {
    MLOG_INFO("building the GFID index of {} from its files", options.brick_dir);
    auto n = fs->rebuild_index();
    if (!n) return fail(n.error());
    MLOG_INFO("indexed {} inodes", *n);
    if (auto r = fs->meta_->put_meta("format", kIndexFormat); !r) return fail(r.error());
  }
  return fs;
}

Result<UniqueFd> BrickFs::open_handle(const Gfid& gfid, int flags) {
  if (gfid.is_root()) {
    UniqueFd fd(::openat(root_.get(), ".", flags | O_CLOEXEC));
    if (!fd.valid()) return fail_errno();
    return fd;
  }
  auto rec = meta_->get_inode(gfid);
  if (!rec) return fail(rec.error());
  if (!*rec) return fail(ESTALE);
  const InodeRecord& r = **rec;
  if (r.handle.size() > kMaxHandleSize) return fail(EIO);
  HandleBuf hb;
  hb.get()->handle_bytes = static_cast<unsigned>(r.handle.size());
  hb.get()->handle_type = r.handle_type;
  std::memcpy(hb.get()->f_handle, r.handle.data(), r.handle.size());
  UniqueFd fd(::open_by_handle_at(root_.get(), hb.get(), flags | O_CLOEXEC));
  if (!fd.valid()) return fail_errno();
  return fd;
}

Result<BrickFs::InodeRef> BrickFs::inode(const Gfid& gfid) {
  InodeRef ref;
  auto fd = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!fd) return fail(fd.error());
  ref.fd = std::move(*fd);
  auto st = stat_fd(ref.fd.get());
  if (!st) return fail(st.error());
  ref.st = *st;
  if (ref.is_symlink()) {
    auto links = meta_->links(gfid);
    if (!links) return fail(links.error());
    for (auto& l : *links) {
      auto dir = dir_fd(l.parent);
      if (!dir) continue;
      struct stat est;
      if (::fstatat(dir->get(), l.name.c_str(), &est, AT_SYMLINK_NOFOLLOW) == 0 &&
          est.st_ino == ref.st.st_ino && est.st_dev == ref.st.st_dev) {
        ref.parent = std::move(*dir);
        ref.name = l.name;
        break;
      }
    }
  }
  return ref;
}

Result<UniqueFd> BrickFs::dir_fd(const Gfid& gfid) {
  auto fd = open_handle(gfid, O_PATH | O_DIRECTORY);
  if (!fd) return fail(fd.error());
  return fd;
}

Result<Gfid> BrickFs::entry_gfid(int dirfd, std::string_view name, bool assign) {
  std::string path = proc_path(dirfd, name);
  auto raw = get_xattr_path(path, kGfidXattr, false);
  if (raw) {
    auto g = Gfid::from_bytes(*raw);
    if (g && !g->is_null()) return *g;
    MLOG_WARN("entry {} carries a malformed GFID xattr", name);
    return fail(EIO);
  }
  if (raw.error().value != ENODATA) return fail(raw.error());
  if (!assign) return Gfid();
  // A file put on the brick behind mortar's back: give it an identity.
  Gfid g = Gfid::random();
  if (::lsetxattr(path.c_str(), kGfidXattr, g.bytes().data(), Gfid::kSize, XATTR_CREATE) == 0) {
    return g;
  }
  if (errno != EEXIST) return fail_errno();
  return entry_gfid(dirfd, name, false);  // somebody else assigned one first
}

Result<void> BrickFs::index_entry(int dirfd, std::string_view name, const Gfid& gfid,
                                  const Gfid& parent, const struct stat& st) {
  auto rec = meta_->get_inode(gfid);
  if (!rec) return fail(rec.error());
  MetaStore::Batch batch;
  if (!*rec || (*rec)->ino != st.st_ino) {
    if (*rec) {
      // Same GFID on another inode: only legitimate if the indexed one is gone.
      auto old = open_handle(gfid, O_PATH);
      if (old) {
        auto ost = stat_fd(old->get());
        if (ost && ost->st_nlink > 0) {
          MLOG_WARN(
              "GFID {} is carried by two inodes ({} and {}, named '{}'); refusing the "
              "second",
              gfid.str(), (*rec)->ino, st.st_ino, name);
          return fail(EIO);
        }
      }
    }
    HandleBuf hb;
    hb.get()->handle_bytes = kMaxHandleSize;
    int mount_id = 0;
    if (::name_to_handle_at(dirfd, std::string(name).c_str(), hb.get(), &mount_id, 0) != 0) {
      return fail_errno();
    }
    if (mount_id != mount_id_) return fail(EXDEV);
    InodeRecord r{
        static_cast<uint64_t>(st.st_ino), hb.get()->handle_type,
        std::string(reinterpret_cast<const char*>(hb.get()->f_handle), hb.get()->handle_bytes)};
    batch.put_inode(gfid, r);
    batch.add_link(gfid, parent, name, st.st_mode & S_IFMT);
  } else {
    auto linked = meta_->has_link(gfid, parent, name);
    if (!linked) return fail(linked.error());
    if (!*linked) batch.add_link(gfid, parent, name, st.st_mode & S_IFMT);
  }
  if (batch.count() == 0) return ok();
  return meta_->commit(batch);
}

Result<pb::Iatt> BrickFs::stat_entry(int dirfd, const Gfid& parent, std::string_view name) {
  struct stat st;
  std::string n(name);
  if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_errno();
  auto g = entry_gfid(dirfd, name, true);
  if (!g) return fail(g.error());
  if (auto r = index_entry(dirfd, name, *g, parent, st); !r) return fail(r.error());
  pb::Iatt attr;
  fill_iatt(st, *g, &attr);
  return attr;
}

Result<pb::Iatt> BrickFs::lookup(const Gfid& parent, std::string_view name) {
  if (auto r = check_name(name); !r) return fail(r.error());
  if (is_reserved_name(parent, name)) return fail(ENOENT);
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  return stat_entry(dir->get(), parent, name);
}

Result<pb::Iatt> BrickFs::lookup_gfid(const Gfid& gfid) { return getattr(gfid); }

Result<pb::Iatt> BrickFs::getattr(const Gfid& gfid) {
  auto fd = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!fd) return fail(fd.error());
  return fgetattr(fd->get(), gfid);
}

Result<pb::Iatt> BrickFs::fgetattr(int fd, const Gfid& gfid) {
  auto st = stat_fd(fd);
  if (!st) return fail(st.error());
  pb::Iatt attr;
  fill_iatt(*st, gfid, &attr);
  return attr;
}

Result<Gfid> BrickFs::check_new_entry(const Gfid& parent, std::string_view name,
                                      const std::string& gfid_bytes) {
  if (auto r = check_name(name); !r) return fail(r.error());
  if (is_reserved_name(parent, name)) return fail(EPERM);
  auto g = Gfid::from_bytes(gfid_bytes);
  if (!g || g->is_null() || g->is_root()) return fail(EINVAL);
  auto existing = open_handle(*g, O_PATH);
  if (existing) {
    auto st = stat_fd(existing->get());
    if (st && st->st_nlink > 0) return fail(EEXIST);  // the GFID names a live inode already
  }
  return *g;
}

Result<pb::Iatt> BrickFs::finish_new_entry(int dirfd, const Gfid& parent, std::string_view name,
                                           const std::string& gfid_bytes, uint32_t uid,
                                           uint32_t gid, uint32_t mode, bool is_dir) {
  std::string n(name);
  auto rollback = [&](Errno err) -> Result<pb::Iatt> {
    ::unlinkat(dirfd, n.c_str(), is_dir ? AT_REMOVEDIR : 0);
    return fail(err);
  };
  std::string path = proc_path(dirfd, name);
  if (::lsetxattr(path.c_str(), kGfidXattr, gfid_bytes.data(), gfid_bytes.size(), XATTR_CREATE) !=
      0) {
    return rollback(Errno::last());
  }
  // New entries take the parent's group when it is set-group-ID, as the kernel would do for
  // the caller; the brick creates as root and hands the inode over.
  struct stat pst;
  if (::fstat(dirfd, &pst) != 0) return rollback(Errno::last());
  uint32_t owner_gid = (pst.st_mode & S_ISGID) ? pst.st_gid : gid;
  if (::fchownat(dirfd, n.c_str(), uid, owner_gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return rollback(Errno::last());
  }
  struct stat st;
  if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return rollback(Errno::last());
  // chown clears set-ID bits; put back what the caller asked for.
  uint32_t wanted_setid = mode & (S_ISUID | S_ISGID);
  if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != wanted_setid &&
      wanted_setid != 0) {
    UniqueFd fd(::openat(dirfd, n.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return rollback(Errno::last());
    mode_t m = (st.st_mode & 07777) | wanted_setid;
    if (::chmod(proc_path(fd.get()).c_str(), m) != 0) return rollback(Errno::last());
    if (::fstat(fd.get(), &st) != 0) return rollback(Errno::last());
  }
  Gfid g = *Gfid::from_bytes(gfid_bytes);
  if (auto r = index_entry(dirfd, name, g, parent, st); !r) return rollback(r.error());
  pb::Iatt attr;
  fill_iatt(st, g, &attr);
  return attr;
}

Result<BrickFs::Created> BrickFs::create(const pb::CreateReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto g = check_new_entry(parent, req.name(), req.gfid());
  if (!g) return fail(g.error());
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  uint32_t flags = sanitize_open_flags(req.flags()) & ~static_cast<uint32_t>(O_TRUNC);
  UniqueFd fd(
      ::openat(dir->get(), req.name().c_str(), flags | O_CREAT | O_EXCL, req.mode() & 07777));
  if (!fd.valid()) {
    if (errno != EEXIST || (req.flags() & O_EXCL)) return fail_errno();
    // Created by someone else since the caller looked: open what is there, as open(2) would.
    auto attr = stat_entry(dir->get(), parent, req.name());
    if (!attr) return fail(attr.error());
    if (S_ISDIR(attr->mode())) return fail(EISDIR);
    if (!S_ISREG(attr->mode())) return fail(ELOOP);
    UniqueFd existing(::openat(dir->get(), req.name().c_str(), sanitize_open_flags(req.flags())));
    if (!existing.valid()) return fail_errno();
    return Created{std::move(*attr), std::move(existing)};
  }
  auto attr = finish_new_entry(dir->get(), parent, req.name(), req.gfid(), req.uid(), req.gid(),
                               req.mode(), false);
  if (!attr) return fail(attr.error());
  return Created{std::move(*attr), std::move(fd)};
}

Result<pb::Iatt> BrickFs::mknod(const pb::MknodReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto g = check_new_entry(parent, req.name(), req.gfid());
  if (!g) return fail(g.error());
  mode_t type = req.mode() & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    return fail(EINVAL);
  }
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  if (::mknodat(dir->get(), req.name().c_str(), req.mode(), req.rdev()) != 0) return fail_errno();
  return finish_new_entry(dir->get(), parent, req.name(), req.gfid(), req.uid(), req.gid(),
                          req.mode(), false);
}

Result<pb::Iatt> BrickFs::mkdir(const pb::MkdirReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto g = check_new_entry(parent, req.name(), req.gfid());
  if (!g) return fail(g.error());
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  if (::mkdirat(dir->get(), req.name().c_str(), req.mode() & 07777) != 0) return fail_errno();
  return finish_new_entry(dir->get(), parent, req.name(), req.gfid(), req.uid(), req.gid(),
                          req.mode(), true);
}

Result<pb::Iatt> BrickFs::symlink(const pb::SymlinkReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto g = check_new_entry(parent, req.name(), req.gfid());
  if (!g) return fail(g.error());
  if (req.target().empty() || req.target().size() >= PATH_MAX ||
      req.target().find('\0') != std::string::npos) {
    return fail(req.target().empty() ? ENOENT : ENAMETOOLONG);
  }
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  if (::symlinkat(req.target().c_str(), dir->get(), req.name().c_str()) != 0) return fail_errno();
  return finish_new_entry(dir->get(), parent, req.name(), req.gfid(), req.uid(), req.gid(),
                          S_IFLNK | 0777, false);
}

Result<pb::Iatt> BrickFs::link(const pb::LinkReq& req) {
  Gfid gfid = Gfid::from_bytes(req.gfid()).value_or(Gfid());
  Gfid parent = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  if (auto r = check_name(req.new_name()); !r) return fail(r.error());
  if (is_reserved_name(parent, req.new_name())) return fail(EPERM);
  auto src = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!src) return fail(src.error());
  auto st = stat_fd(src->get());
  if (!st) return fail(st.error());
  if (S_ISDIR(st->st_mode)) return fail(EPERM);
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  if (::linkat(src->get(), "", dir->get(), req.new_name().c_str(), AT_EMPTY_PATH) != 0) {
    return fail_errno();
  }
  MetaStore::Batch batch;
  batch.add_link(gfid, parent, req.new_name(), st->st_mode & S_IFMT);
  if (auto r = meta_->commit(batch); !r) return fail(r.error());
  st = stat_fd(src->get());
  if (!st) return fail(st.error());
  pb::Iatt attr;
  fill_iatt(*st, gfid, &attr);
  return attr;
}

void BrickFs::forget_entry(const Gfid& gfid, const Gfid& parent, std::string_view name,
                           bool last_link) {
  if (gfid.is_null()) return;
  MetaStore::Batch batch;
  if (last_link) {
    auto links = meta_->links(gfid);
    batch.remove_inode(gfid, links ? *links : std::vector<Link>{});
  }
  batch.remove_link(gfid, parent, name);
  // The entry is gone from the brick already; a stale index record only costs a re-index.
  (void)meta_->commit(batch);
}

Result<void> BrickFs::unlink(const pb::UnlinkReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  if (auto r = check_name(req.name()); !r) return fail(r.error());
  if (is_reserved_name(parent, req.name())) return fail(ENOENT);
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  struct stat st;
  if (::fstatat(dir->get(), req.name().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return fail_errno();
  }
  if (S_ISDIR(st.st_mode)) return fail(EISDIR);
  auto g = entry_gfid(dir->get(), req.name(), false);
  if (!g) return fail(g.error());
  if (!req.gfid().empty() && Gfid::from_bytes(req.gfid()) != *g) return fail(ESTALE);
  if (::unlinkat(dir->get(), req.name().c_str(), 0) != 0) return fail_errno();
  forget_entry(*g, parent, req.name(), st.st_nlink <= 1);
  return ok();
}

Result<void> BrickFs::rmdir(const pb::RmdirReq& req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  if (auto r = check_name(req.name()); !r) return fail(r.error());
  if (is_reserved_name(parent, req.name())) return fail(ENOENT);
  auto dir = dir_fd(parent);
  if (!dir) return fail(dir.error());
  struct stat st;
  if (::fstatat(dir->get(), req.name().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return fail_errno();
  }
  if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR);
  auto g = entry_gfid(dir->get(), req.name(), false);
  if (!g) return fail(g.error());
  if (!req.gfid().empty() && Gfid::from_bytes(req.gfid()) != *g) return fail(ESTALE);
  if (::unlinkat(dir->get(), req.name().c_str(), AT_REMOVEDIR) != 0) return fail_errno();
  forget_entry(*g, parent, req.name(), true);
  return ok();
}

Result<void> BrickFs::rename(const pb::RenameReq& req) {
  Gfid old_parent = Gfid::from_bytes(req.old_parent()).value_or(Gfid());
  Gfid new_parent = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  if (auto r = check_name(req.old_name()); !r) return fail(r.error());
  if (auto r = check_name(req.new_name()); !r) return fail(r.error());
  if (is_reserved_name(old_parent, req.old_name())) return fail(ENOENT);
  if (is_reserved_name(new_parent, req.new_name())) return fail(EPERM);
  if (req.flags() & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return fail(EINVAL);
  }
  auto old_dir = dir_fd(old_parent);
  if (!old_dir) return fail(old_dir.error());
  auto new_dir = dir_fd(new_parent);
  if (!new_dir) return fail(new_dir.error());

  struct stat sst, tst;
  if (::fstatat(old_dir->get(), req.old_name().c_str(), &sst, AT_SYMLINK_NOFOLLOW) != 0) {
    return fail_errno();
  }
  auto sg = entry_gfid(old_dir->get(), req.old_name(), true);
  if (!sg) return fail(sg.error());
  bool target_exists =
      ::fstatat(new_dir->get(), req.new_name().c_str(), &tst, AT_SYMLINK_NOFOLLOW) == 0;
  Gfid tg;
  if (target_exists) {
    auto t = entry_gfid(new_dir->get(), req.new_name(), true);
    if (!t) return fail(t.error());
    tg = *t;
  }
  if (::renameat2(old_dir->get(), req.old_name().c_str(), new_dir->get(), req.new_name().c_str(),
                  req.flags()) != 0) {
    return fail_errno();
  }
  // Two names of one inode: rename(2) does nothing.
  if (target_exists && sst.st_ino == tst.st_ino && sst.st_dev == tst.st_dev) return ok();

  // Removals first: the bucket index is keyed by name, and the additions reuse the names.
  MetaStore::Batch batch;
  bool exchange = (req.flags() & RENAME_EXCHANGE) != 0;
  if (target_exists && !tg.is_null()) {
    batch.remove_link(tg, new_parent, req.new_name());
    if (!exchange && (S_ISDIR(tst.st_mode) || tst.st_nlink <= 1)) {
      auto links = meta_->links(tg);
      batch.remove_inode(tg, links ? *links : std::vector<Link>{});
    }
  }
  batch.remove_link(*sg, old_parent, req.old_name());
  batch.add_link(*sg, new_parent, req.new_name(), sst.st_mode & S_IFMT);
  if (exchange && target_exists && !tg.is_null()) {
    batch.add_link(tg, old_parent, req.old_name(), tst.st_mode & S_IFMT);
  }
  (void)meta_->commit(batch);
  return ok();
}

Result<std::string> BrickFs::readlink(const Gfid& gfid) {
  auto fd = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!fd) return fail(fd.error());
  std::string target(PATH_MAX, '\0');
  ssize_t n = ::readlinkat(fd->get(), "", target.data(), target.size());
  if (n < 0) return fail_errno();
  target.resize(static_cast<size_t>(n));
  return target;
}

Result<UniqueFd> BrickFs::open(const Gfid& gfid, uint32_t flags) {
  auto probe = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!probe) return fail(probe.error());
  auto st = stat_fd(probe->get());
  if (!st) return fail(st.error());
  if (S_ISDIR(st->st_mode)) return fail(EISDIR);
  if (S_ISLNK(st->st_mode)) return fail(ELOOP);
  // Devices, FIFOs and sockets are opened by the client's kernel, never on the server.
  if (!S_ISREG(st->st_mode)) return fail(EPERM);
  return open_handle(gfid, static_cast<int>(sanitize_open_flags(flags)));
}

Result<UniqueFd> BrickFs::opendir(const Gfid& gfid) {
  auto fd = open_handle(gfid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  // A symlink is not a directory, whatever it points to.
  if (!fd && fd.error().value == ELOOP) return fail(ENOTDIR);
  return fd;
}

Result<pb::StatfsRsp> BrickFs::statfs() {
  struct statvfs sv;
  if (::fstatvfs(root_.get(), &sv) != 0) return fail_errno();
  pb::StatfsRsp rsp;
  rsp.set_bsize(sv.f_bsize);
  rsp.set_frsize(sv.f_frsize);
  rsp.set_blocks(sv.f_blocks);
  rsp.set_bfree(sv.f_bfree);
  rsp.set_bavail(sv.f_bavail);
  rsp.set_files(sv.f_files);
  rsp.set_ffree(sv.f_ffree);
  rsp.set_favail(sv.f_favail);
  rsp.set_namemax(sv.f_namemax);
  return rsp;
}

namespace {

// Applies the ownership, mode and time parts of a setattr. `path`/`follow` reach the inode for
// the calls without an fd form; `fd` is an O_PATH or real descriptor of it.
Result<void> apply_setattr(int fd, const std::string& path, bool follow, bool is_symlink,
                           const pb::SetattrReq& req) {
  uint32_t valid = req.valid();
  if (valid & (pb::SET_UID | pb::SET_GID)) {
    uid_t uid = (valid & pb::SET_UID) ? req.uid() : static_cast<uid_t>(-1);
    gid_t gid = (valid & pb::SET_GID) ? req.gid() : static_cast<gid_t>(-1);
    if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0) return fail_errno();
  }
  if (valid & pb::SET_MODE) {
    if (is_symlink) return fail(EOPNOTSUPP);
    if (::chmod(path.c_str(), req.mode() & 07777) != 0) return fail_errno();
  }
  if (valid & (pb::SET_ATIME | pb::SET_MTIME | pb::SET_ATIME_NOW | pb::SET_MTIME_NOW)) {
    struct timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if (valid & pb::SET_ATIME_NOW) {
      ts[0].tv_nsec = UTIME_NOW;
    } else if (valid & pb::SET_ATIME) {
      ts[0].tv_sec = req.atime_sec();
      ts[0].tv_nsec = req.atime_nsec();
    }
    if (valid & pb::SET_MTIME_NOW) {
      ts[1].tv_nsec = UTIME_NOW;
    } else if (valid & pb::SET_MTIME) {
      ts[1].tv_sec = req.mtime_sec();
      ts[1].tv_nsec = req.mtime_nsec();
    }
    if (::utimensat(AT_FDCWD, path.c_str(), ts, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0) {
      return fail_errno();
    }
  }
  return ok();
}

}  // namespace

Result<std::pair<pb::Iatt, pb::Iatt>> BrickFs::setattr(const Gfid& gfid,
                                                       const pb::SetattrReq& req) {
  auto ref = inode(gfid);
  if (!ref) return fail(ref.error());
  if (!ref->reachable()) return fail(EOPNOTSUPP);
  pb::Iatt pre;
  fill_iatt(ref->st, gfid, &pre);
  if (auto r = apply_setattr(ref->fd.get(), ref->path(), ref->follow(), ref->is_symlink(), req);
      !r) {
    return fail(r.error());
  }
  auto post = fgetattr(ref->fd.get(), gfid);
  if (!post) return fail(post.error());
  return std::pair{std::move(pre), std::move(*post)};
}

Result<std::pair<pb::Iatt, pb::Iatt>> BrickFs::fsetattr(int fd, const Gfid& gfid,
                                                        const pb::SetattrReq& req) {
  auto pre = fgetattr(fd, gfid);
  if (!pre) return fail(pre.error());
  if (auto r = apply_setattr(fd, proc_path(fd), true, false, req); !r) return fail(r.error());
  auto post = fgetattr(fd, gfid);
  if (!post) return fail(post.error());
  return std::pair{std::move(*pre), std::move(*post)};
}

Result<std::pair<pb::Iatt, pb::Iatt>> BrickFs::truncate(const Gfid& gfid, uint64_t size) {
  auto probe = open_handle(gfid, O_PATH | O_NOFOLLOW);
  if (!probe) return fail(probe.error());
  auto st = stat_fd(probe->get());
  if (!st) return fail(st.error());
  if (S_ISDIR(st->st_mode)) return fail(EISDIR);
  if (!S_ISREG(st->st_mode)) return fail(EINVAL);
  auto fd = open_handle(gfid, O_WRONLY | O_NOFOLLOW);
  if (!fd) return fail(fd.error());
  return ftruncate(fd->get(), gfid, size);
}

Result<std::pair<pb::Iatt, pb::Iatt>> BrickFs::ftruncate(int fd, const Gfid& gfid, uint64_t size) {
  auto pre = fgetattr(fd, gfid);
  if (!pre) return fail(pre.error());
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return fail_errno();
  auto post = fgetattr(fd, gfid);
  if (!post) return fail(post.error());
  return std::pair{std::move(*pre), std::move(*post)};
}

Result<Buffer> BrickFs::read(int fd, uint64_t offset, uint32_t size) {
  Buffer buf = Buffer::allocate(size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, buf.mutable_data() + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno();
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  buf.truncate(got);
  return buf;
}

Result<size_t> BrickFs::write(int fd, uint64_t offset, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done > 0) break;
      return fail_errno();
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<void> BrickFs::fsync(int fd, bool datasync) {
  if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) return fail_errno();
  // The index holds replication marks for this file: as durable as the data.
  return meta_->sync();
}

Result<void> BrickFs::fallocate(int fd, uint32_t mode, uint64_t offset, uint64_t length) {
  if (::fallocate(fd, static_cast<int>(mode), static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return fail_errno();
  }
  return ok();
}

Result<pb::ReaddirRsp> BrickFs::readdir(int fd, const Gfid& dir, uint64_t offset, uint32_t size,
                                        bool plus) {
  pb::ReaddirRsp rsp;
  if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return fail_errno();
  alignas(struct dirent64) char buf[32 * 1024];
  size_t budget = 0;
  while (true) {
    ssize_t n = ::getdents64(fd, buf, sizeof buf);
    if (n < 0) return fail_errno();
    if (n == 0) {
      rsp.set_eof(true);
      return rsp;
    }
    for (ssize_t pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      if (is_reserved_name(dir, name)) continue;
      size_t cost = 32 + name.size() + (plus ? 128 : 0);
      if (budget + cost > size && rsp.entries_size() > 0) return rsp;
      budget += cost;
      pb::Dirent* e = rsp.add_entries();
      e->set_name(std::string(name));
      e->set_offset(static_cast<uint64_t>(d->d_off));
      e->set_type(d->d_type);
      e->set_ino(d->d_ino);
      if (plus && name != "." && name != "..") {
        auto attr = stat_entry(fd, dir, name);
        if (attr) {
          *e->mutable_attr() = std::move(*attr);
        } else if (attr.error().value == ENOENT) {
          rsp.mutable_entries()->RemoveLast();  // removed while we listed
        }
      }
    }
  }
}

Result<std::string> BrickFs::getxattr(const Gfid& gfid, int fd, const std::string& name) {
  if (name.empty()) return fail(EINVAL);
  if (is_reserved_xattr(name)) return fail(ENODATA);
  if (fd >= 0) return get_xattr_fd(fd, name.c_str());
  auto ref = inode(gfid);
  if (!ref) return fail(ref.error());
  if (!ref->reachable()) return fail(ENOTSUP);
  return get_xattr_path(ref->path(), name.c_str(), ref->follow());
}

Result<void> BrickFs::setxattr(const Gfid& gfid, int fd, const std::string& name,
                               std::string_view value, int flags) {
  if (name.empty()) return fail(EINVAL);
  if (is_reserved_xattr(name)) return fail(EPERM);
  int rc;
  if (fd >= 0) {
    rc = ::fsetxattr(fd, name.c_str(), value.data(), value.size(), flags);
  } else {
    auto ref = inode(gfid);
    if (!ref) return fail(ref.error());
    if (!ref->reachable()) return fail(ENOTSUP);
    std::string path = ref->path();
    rc = ref->follow() ? ::setxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags)
                       : ::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags);
  }
  if (rc != 0) return fail_errno();
  return ok();
}

Result<std::vector<std::string>> BrickFs::listxattr(const Gfid& gfid, int fd) {
  std::string raw(1024, '\0');
  std::string path;
  bool follow = true;
  std::optional<InodeRef> ref;  // keeps the descriptor behind `path` open
  if (fd < 0) {
    auto r = inode(gfid);
    if (!r) return fail(r.error());
    ref = std::move(*r);
    if (!ref->reachable()) return std::vector<std::string>{};
    path = ref->path();
    follow = ref->follow();
  }
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = fd >= 0  ? ::flistxattr(fd, raw.data(), raw.size())
                : follow ? ::listxattr(path.c_str(), raw.data(), raw.size())
                         : ::llistxattr(path.c_str(), raw.data(), raw.size());
    if (n >= 0) {
      raw.resize(static_cast<size_t>(n));
      return split_xattr_list(raw);
    }
    if (errno != ERANGE) return fail_errno();
    n = fd >= 0  ? ::flistxattr(fd, nullptr, 0)
        : follow ? ::listxattr(path.c_str(), nullptr, 0)
                 : ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) return fail_errno();
    raw.resize(static_cast<size_t>(n) + 1);
  }
  return fail(ERANGE);
}

Result<void> BrickFs::removexattr(const Gfid& gfid, int fd, const std::string& name) {
  if (name.empty()) return fail(EINVAL);
  if (is_reserved_xattr(name)) return fail(EPERM);
  int rc;
  if (fd >= 0) {
    rc = ::fremovexattr(fd, name.c_str());
  } else {
    auto ref = inode(gfid);
    if (!ref) return fail(ref.error());
    if (!ref->reachable()) return fail(ENOTSUP);
    std::string path = ref->path();
    rc = ref->follow() ? ::removexattr(path.c_str(), name.c_str())
                       : ::lremovexattr(path.c_str(), name.c_str());
  }
  if (rc != 0) return fail_errno();
  return ok();
}

Result<std::pair<std::vector<uint64_t>, uint64_t>> BrickFs::checksum(const Gfid& gfid,
                                                                     uint64_t offset,
                                                                     uint64_t length,
                                                                     uint32_t block_size) {
  if (block_size == 0 || block_size > (16u << 20)) return fail(EINVAL);
  auto fd = open_handle(gfid, O_RDONLY | O_NOFOLLOW);
  if (!fd) return fail(fd.error() == Errno(ELOOP) ? Errno(EINVAL) : fd.error());
  auto st = stat_fd(fd->get());
  if (!st) return fail(st.error());
  if (S_ISDIR(st->st_mode)) return fail(EISDIR);
  if (!S_ISREG(st->st_mode)) return fail(EINVAL);
  uint64_t size = static_cast<uint64_t>(st->st_size);
  uint64_t end = std::min(size, offset + std::min(length, UINT64_MAX - offset));
  std::vector<uint64_t> sums;
  std::vector<char> buf(block_size);
  for (uint64_t at = offset; at < end; at += block_size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(block_size, end - at));
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd->get(), buf.data() + got, want - got, static_cast<off_t>(at + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail_errno();
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    sums.push_back(XXH3_64bits(buf.data(), got));
  }
  return std::pair{std::move(sums), size};
}

std::string BrickFs::path_of(const Gfid& gfid) {
  std::vector<std::string> parts;
  Gfid cur = gfid;
  for (int depth = 0; depth < 512 && !cur.is_root(); ++depth) {
    auto links = meta_->links(cur);
    if (!links || links->empty()) return "";
    parts.push_back(links->front().name);
    cur = links->front().parent;
  }
  if (!cur.is_root()) return "";
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += "/" + *it;
  return path.empty() ? "/" : path;
}

Result<size_t> BrickFs::rebuild_index() {
  if (auto r = meta_->clear_inodes(); !r) return fail(r.error());
  struct Dir {
    UniqueFd fd;
    Gfid gfid;
  };
  std::vector<Dir> stack;
  UniqueFd root(::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return fail_errno();
  stack.push_back(Dir{std::move(root), Gfid::root()});
  size_t count = 0;
  while (!stack.empty()) {
    Dir dir = std::move(stack.back());
    stack.pop_back();
    UniqueFd list(::openat(dir.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!list.valid()) return fail_errno();
    DIR* d = ::fdopendir(list.release());
    if (!d) return fail_errno();
    while (struct dirent64* e = ::readdir64(d)) {
      std::string_view name(e->d_name);
      if (name == "." || name == ".." || is_reserved_name(dir.gfid, name)) continue;
      struct stat st;
      if (::fstatat(dir.fd.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      auto g = entry_gfid(dir.fd.get(), name, true);
      if (!g) {
        MLOG_WARN("index rebuild: skipping '{}': {}", name, g.error().message());
        continue;
      }
      if (auto r = index_entry(dir.fd.get(), name, *g, dir.gfid, st); !r) {
        MLOG_WARN("index rebuild: skipping '{}': {}", name, r.error().message());
        continue;
      }
      ++count;
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(
            ::openat(dir.fd.get(), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub.valid()) stack.push_back(Dir{std::move(sub), *g});
      }
    }
    ::closedir(d);
  }
  return count;
}

}  // namespace mortar::brickd
