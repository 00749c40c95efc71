#include "fuse-client/bridge.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/xattr.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <cstring>

#include "common/log.h"

namespace mortar::fuse {

namespace asio = boost::asio;

// What fi->fh points to: the open file and the graph it was opened on (which it keeps using
// after a graph switch), and for directories the part of the last listing the kernel's buffer
// had no room for.
struct FuseBridge::OpenHandle {
  GraphPtr graph;
  xl::FdPtr fd;
  std::mutex mu;
  bool cache_valid = false;   // GUARDED_BY(mu)
  uint64_t cache_offset = 0;  // the offset the next readdir will ask for
  bool cache_plus = false;
  bool cache_eof = false;
  std::vector<pb::Dirent> cache;
};

namespace {

FuseBridge* bridge_of(fuse_req_t req) { return static_cast<FuseBridge*>(fuse_req_userdata(req)); }

// A failed operation; an error without an errno would read as success, so it becomes EIO.
void reply_err(fuse_req_t req, Errno err) { fuse_reply_err(req, err.value == 0 ? EIO : err.value); }
// The answer of an operation that returns nothing but its status.
template <class T>
void reply_status(fuse_req_t req, const Result<T>& r) {
  fuse_reply_err(req, r ? 0 : (r.error().value == 0 ? EIO : r.error().value));
}

std::string raw(const Gfid& g) { return std::string(g.bytes()); }

template <class Handle>
Handle* handle_of(fuse_file_info* fi) {
  return fi ? reinterpret_cast<Handle*>(fi->fh) : nullptr;
}

pb::LockType lock_type(short l_type) {
  switch (l_type) {
    case F_RDLCK:
      return pb::READ_LOCK;
    case F_WRLCK:
      return pb::WRITE_LOCK;
    default:
      return pb::UNLOCK;
  }
}

}  // namespace

FuseBridge::FuseBridge(GraphPtr graph, asio::any_io_executor executor, MountOptions options)
    : graph_(std::move(graph)),
      executor_(std::move(executor)),
      options_(std::move(options)),
      entry_timeout_(options_.entry_timeout),
      attr_timeout_(options_.attr_timeout),
      negative_timeout_(options_.negative_timeout) {}

FuseBridge::~FuseBridge() = default;

GraphPtr FuseBridge::graph() const {
  std::lock_guard lock(graph_mu_);
  return graph_;
}

GraphPtr FuseBridge::switch_graph(GraphPtr next) {
  std::lock_guard lock(graph_mu_);
  std::swap(graph_, next);
  return next;
}

void FuseBridge::set_cache_timeouts(CacheTimeouts t) {
  entry_timeout_.store(t.entry);
  attr_timeout_.store(t.attr);
  negative_timeout_.store(t.negative);
}

FuseBridge::CacheTimeouts FuseBridge::cache_timeouts() const {
  return {entry_timeout_.load(), attr_timeout_.load(), negative_timeout_.load()};
}

FuseBridge::Awaitable FuseBridge::release_fd(GraphPtr graph, xl::FdPtr fd) {
  co_await graph->top()->release(std::move(fd));
}

FuseBridge::Awaitable FuseBridge::unlock_fd(GraphPtr graph, xl::FdPtr fd, pb::LkReq unlock) {
  Result<pb::LkRsp> r =
      co_await graph->top()->lk(xl::OpContext{}, std::move(fd), std::move(unlock));
  (void)r;
}

void FuseBridge::spawn(Awaitable work) {
  ++in_flight_;
  asio::co_spawn(executor_, std::move(work), [this](std::exception_ptr e) {
    --in_flight_;
    if (e) MLOG_ERROR("a FUSE request ended with an exception");
  });
}

xl::OpContext FuseBridge::context(fuse_req_t req) const {
  const fuse_ctx* c = fuse_req_ctx(req);
  xl::OpContext ctx;
  ctx.uid = c->uid;
  ctx.gid = c->gid;
  ctx.pid = static_cast<uint32_t>(c->pid);
  return ctx;
}

std::optional<Gfid> FuseBridge::gfid_of(fuse_ino_t ino) const { return inodes_.gfid(ino); }

struct stat FuseBridge::to_stat(const pb::Iatt& a) const {
  struct stat st {};
  st.st_ino = inode_number(Gfid::from_bytes(a.gfid()).value_or(Gfid()));
  st.st_mode = a.mode();
  st.st_nlink = a.nlink();
  st.st_uid = a.uid();
  st.st_gid = a.gid();
  st.st_rdev = a.rdev();
  st.st_size = static_cast<off_t>(a.size());
  st.st_blocks = static_cast<blkcnt_t>(a.blocks());
  st.st_blksize = static_cast<blksize_t>(a.blksize());
  st.st_atim = {a.atime_sec(), a.atime_nsec()};
  st.st_mtim = {a.mtime_sec(), a.mtime_nsec()};
  st.st_ctim = {a.ctime_sec(), a.ctime_nsec()};
  return st;
}

void FuseBridge::reply_entry(fuse_req_t req, const pb::Iatt& attr) {
  auto gfid = Gfid::from_bytes(attr.gfid());
  if (!gfid || gfid->is_null()) {
    reply_err(req, Errno(EIO));
    return;
  }
  fuse_entry_param e{};
  e.ino = inodes_.ref(*gfid);
  e.attr = to_stat(attr);
  e.attr_timeout = attr_timeout_.load();
  e.entry_timeout = entry_timeout_.load();
  // An interrupted request takes no reference in the kernel: give ours back.
  if (fuse_reply_entry(req, &e) != 0) inodes_.forget(e.ino, 1);
}

void FuseBridge::reply_attr(fuse_req_t req, const pb::Iatt& attr) {
  struct stat st = to_stat(attr);
  fuse_reply_attr(req, &st, attr_timeout_.load());
}

// ---- Operations ----

FuseBridge::Awaitable FuseBridge::lookup(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                         std::string name) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  Result<pb::Iatt> r = co_await graph->top()->lookup(context(req), *pg, std::move(name));
  if (!r) {
    if (r.error().value == ENOENT && negative_timeout_.load() > 0) {
      fuse_entry_param e{};
      e.entry_timeout = negative_timeout_.load();
      fuse_reply_entry(req, &e);
      co_return;
    }
    co_return reply_err(req, r.error());
  }
  reply_entry(req, *r);
}

FuseBridge::Awaitable FuseBridge::getattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                          xl::FdPtr fd) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<pb::Iatt> r = co_await graph->top()->getattr(context(req), *g, std::move(fd));
  if (!r) co_return reply_err(req, r.error());
  reply_attr(req, *r);
}

FuseBridge::Awaitable FuseBridge::setattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                          struct stat attr, int to_set, xl::FdPtr fd) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  xl::OpContext ctx = context(req);
  std::optional<pb::Iatt> post;
  // A size change is a data operation for replication; the rest is metadata.
  if (to_set & FUSE_SET_ATTR_SIZE) {
    Result<xl::AttrPair> r =
        co_await graph->top()->truncate(ctx, *g, fd, static_cast<uint64_t>(attr.st_size));
    if (!r) co_return reply_err(req, r.error());
    post = std::move(r->post);
  }
  pb::SetattrReq s;
  uint32_t valid = 0;
  if (to_set & FUSE_SET_ATTR_MODE) {
    valid |= pb::SET_MODE;
    s.set_mode(attr.st_mode);
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    valid |= pb::SET_UID;
    s.set_uid(attr.st_uid);
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    valid |= pb::SET_GID;
    s.set_gid(attr.st_gid);
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    valid |= pb::SET_ATIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    valid |= pb::SET_ATIME;
    s.set_atime_sec(attr.st_atim.tv_sec);
    s.set_atime_nsec(static_cast<uint32_t>(attr.st_atim.tv_nsec));
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    valid |= pb::SET_MTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    valid |= pb::SET_MTIME;
    s.set_mtime_sec(attr.st_mtim.tv_sec);
    s.set_mtime_nsec(static_cast<uint32_t>(attr.st_mtim.tv_nsec));
  }
  if (valid != 0) {
    s.set_valid(valid);
    Result<xl::AttrPair> r = co_await graph->top()->setattr(ctx, *g, fd, std::move(s));
    if (!r) co_return reply_err(req, r.error());
    post = std::move(r->post);
  }
  if (!post) {
    Result<pb::Iatt> r = co_await graph->top()->getattr(ctx, *g, fd);
    if (!r) co_return reply_err(req, r.error());
    post = std::move(*r);
  }
  reply_attr(req, *post);
}

FuseBridge::Awaitable FuseBridge::readlink(fuse_req_t req, GraphPtr graph, fuse_ino_t ino) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<std::string> r = co_await graph->top()->readlink(context(req), *g);
  if (!r) co_return reply_err(req, r.error());
  fuse_reply_readlink(req, r->c_str());
}

FuseBridge::Awaitable FuseBridge::mknod(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                        std::string name, mode_t mode, dev_t rdev) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  xl::OpContext ctx = context(req);
  pb::MknodReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  m.set_gfid(raw(Gfid::random()));
  m.set_mode(mode);
  m.set_rdev(rdev);
  m.set_uid(ctx.uid);
  m.set_gid(ctx.gid);
  Result<pb::Iatt> r = co_await graph->top()->mknod(ctx, std::move(m));
  if (!r) co_return reply_err(req, r.error());
  reply_entry(req, *r);
}

FuseBridge::Awaitable FuseBridge::mkdir(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                        std::string name, mode_t mode) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  xl::OpContext ctx = context(req);
  pb::MkdirReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  m.set_gfid(raw(Gfid::random()));
  m.set_mode(mode);
  m.set_uid(ctx.uid);
  m.set_gid(ctx.gid);
  Result<pb::Iatt> r = co_await graph->top()->mkdir(ctx, std::move(m));
  if (!r) co_return reply_err(req, r.error());
  reply_entry(req, *r);
}

FuseBridge::Awaitable FuseBridge::symlink(fuse_req_t req, GraphPtr graph, std::string target,
                                          fuse_ino_t parent, std::string name) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  xl::OpContext ctx = context(req);
  pb::SymlinkReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  m.set_gfid(raw(Gfid::random()));
  m.set_target(std::move(target));
  m.set_uid(ctx.uid);
  m.set_gid(ctx.gid);
  Result<pb::Iatt> r = co_await graph->top()->symlink(ctx, std::move(m));
  if (!r) co_return reply_err(req, r.error());
  reply_entry(req, *r);
}

FuseBridge::Awaitable FuseBridge::link(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                       fuse_ino_t parent, std::string name) {
  auto g = gfid_of(ino);
  auto pg = gfid_of(parent);
  if (!g || !pg) co_return reply_err(req, Errno(ESTALE));
  pb::LinkReq m;
  m.set_gfid(raw(*g));
  m.set_new_parent(raw(*pg));
  m.set_new_name(std::move(name));
  Result<pb::Iatt> r = co_await graph->top()->link(context(req), std::move(m));
  if (!r) co_return reply_err(req, r.error());
  reply_entry(req, *r);
}

FuseBridge::Awaitable FuseBridge::unlink(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                         std::string name) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  pb::UnlinkReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  Result<void> r = co_await graph->top()->unlink(context(req), std::move(m));
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::rmdir(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                        std::string name) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  pb::RmdirReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  Result<void> r = co_await graph->top()->rmdir(context(req), std::move(m));
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::rename(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                         std::string name, fuse_ino_t new_parent,
                                         std::string new_name, unsigned flags) {
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    co_return reply_err(req, Errno(EINVAL));  // RENAME_WHITEOUT is for overlay file systems
  }
  auto pg = gfid_of(parent);
  auto npg = gfid_of(new_parent);
  if (!pg || !npg) co_return reply_err(req, Errno(ESTALE));
  pb::RenameReq m;
  m.set_old_parent(raw(*pg));
  m.set_old_name(std::move(name));
  m.set_new_parent(raw(*npg));
  m.set_new_name(std::move(new_name));
  m.set_flags(flags);
  Result<void> r = co_await graph->top()->rename(context(req), std::move(m));
  reply_status(req, r);
}

namespace {

// With the writeback cache the kernel writes back pages at their own offsets and may read
// pages of a write-only file: the brick must not append, and must be able to read.
uint32_t open_flags(int flags, bool writeback) {
  if (writeback) {
    flags &= ~O_APPEND;
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  }
  return static_cast<uint32_t>(flags);
}

}  // namespace

FuseBridge::Awaitable FuseBridge::open(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                       fuse_file_info fi) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<xl::FdPtr> r =
      co_await graph->top()->open(context(req), *g, open_flags(fi.flags, options_.writeback_cache));
  if (!r) co_return reply_err(req, r.error());
  auto* handle = new OpenHandle{graph, *r};
  fi.fh = reinterpret_cast<uint64_t>(handle);
  fi.direct_io = options_.direct_io;
  fi.keep_cache = 0;
  if (fuse_reply_open(req, &fi) != 0) {
    xl::FdPtr fd = std::move(handle->fd);
    delete handle;
    co_await graph->top()->release(std::move(fd));
  }
}

FuseBridge::Awaitable FuseBridge::create(fuse_req_t req, GraphPtr graph, fuse_ino_t parent,
                                         std::string name, mode_t mode, fuse_file_info fi) {
  auto pg = gfid_of(parent);
  if (!pg) co_return reply_err(req, Errno(ESTALE));
  xl::OpContext ctx = context(req);
  pb::CreateReq m;
  m.set_parent(raw(*pg));
  m.set_name(std::move(name));
  m.set_gfid(raw(Gfid::random()));
  m.set_mode(mode);
  m.set_flags(open_flags(fi.flags, options_.writeback_cache));
  m.set_uid(ctx.uid);
  m.set_gid(ctx.gid);
  Result<xl::Created> r = co_await graph->top()->create(ctx, std::move(m));
  if (!r) co_return reply_err(req, r.error());
  auto gfid = Gfid::from_bytes(r->attr.gfid()).value_or(Gfid());
  fuse_entry_param e{};
  e.ino = inodes_.ref(gfid);
  e.attr = to_stat(r->attr);
  e.attr_timeout = attr_timeout_.load();
  e.entry_timeout = entry_timeout_.load();
  auto* handle = new OpenHandle{graph, r->fd};
  fi.fh = reinterpret_cast<uint64_t>(handle);
  fi.direct_io = options_.direct_io;
  fi.keep_cache = 0;
  if (fuse_reply_create(req, &e, &fi) != 0) {
    inodes_.forget(e.ino, 1);
    xl::FdPtr fd = std::move(handle->fd);
    delete handle;
    co_await graph->top()->release(std::move(fd));
  }
}

FuseBridge::Awaitable FuseBridge::read(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, size_t size,
                                       off_t offset) {
  Result<Buffer> r = co_await graph->top()->read(
      context(req), std::move(fd), static_cast<uint64_t>(offset), static_cast<uint32_t>(size));
  if (!r) co_return reply_err(req, r.error());
  fuse_reply_buf(req, r->data(), r->size());
}

FuseBridge::Awaitable FuseBridge::write(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, Buffer data,
                                        off_t offset) {
  Buffer again = data;  // shares the bytes
  Gfid gfid = fd->gfid();
  uint32_t flags = fd->flags() & ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Result<pb::WriteRsp> r = co_await graph->top()->write(
      context(req), std::move(fd), static_cast<uint64_t>(offset), std::move(data));
  GraphPtr now = this->graph();
  if (!r && r.error().value == ESTALE && now && now != graph) {
    // A file opened before a graph switch that rebalance has since moved to a set its old
    // graph does not know (the volume grew): write through the current graph. Each such write
    // opens it there again; files opened after the switch follow moves by themselves.
    Result<xl::FdPtr> reopened = co_await now->top()->open(context(req), gfid, flags);
    if (reopened) {
      r = co_await now->top()->write(context(req), *reopened, static_cast<uint64_t>(offset),
                                     std::move(again));
      co_await now->top()->release(*reopened);
    }
  }
  if (!r) co_return reply_err(req, r.error());
  fuse_reply_write(req, r->written());
}

FuseBridge::Awaitable FuseBridge::flush(fuse_req_t req, GraphPtr graph, xl::FdPtr fd,
                                        uint64_t lock_owner) {
  xl::OpContext ctx = context(req);
  ctx.lock_owner = lock_owner;
  Result<void> r = co_await graph->top()->flush(ctx, std::move(fd));
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::fsync(fuse_req_t req, GraphPtr graph, xl::FdPtr fd,
                                        bool datasync) {
  Result<void> r = co_await graph->top()->fsync(context(req), std::move(fd), datasync);
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::opendir(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                          fuse_file_info fi) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<xl::FdPtr> r = co_await graph->top()->opendir(context(req), *g);
  if (!r) co_return reply_err(req, r.error());
  auto* handle = new OpenHandle{graph, *r};
  fi.fh = reinterpret_cast<uint64_t>(handle);
  if (fuse_reply_open(req, &fi) != 0) {
    xl::FdPtr fd = std::move(handle->fd);
    delete handle;
    co_await graph->top()->release(std::move(fd));
  }
}

FuseBridge::Awaitable FuseBridge::readdir(fuse_req_t req, GraphPtr graph, OpenHandle* h,
                                          size_t size, off_t offset, bool plus) {
  uint64_t off = static_cast<uint64_t>(offset);
  std::vector<pb::Dirent> batch;
  bool eof = false;
  {
    std::lock_guard lock(h->mu);
    if (h->cache_valid && h->cache_offset == off && h->cache_plus == plus) {
      batch = std::move(h->cache);
      eof = h->cache_eof;
    }
    h->cache_valid = false;
  }
  if (batch.empty() && !eof) {
    // Ask for more than one kernel buffer holds; the rest waits in the handle.
    uint32_t want = static_cast<uint32_t>(std::max<size_t>(size * 4, 64 * 1024));
    Result<pb::ReaddirRsp> r = co_await graph->top()->readdir(context(req), h->fd, off, want, plus);
    if (!r) co_return reply_err(req, r.error());
    batch.assign(std::make_move_iterator(r->mutable_entries()->begin()),
                 std::make_move_iterator(r->mutable_entries()->end()));
    eof = r->eof();
  }
  std::vector<char> buf(size);
  size_t used = 0;
  size_t consumed = 0;
  uint64_t last_offset = off;
  for (const auto& e : batch) {
    size_t room = size - used;
    size_t need;
    if (plus) {
      fuse_entry_param ep{};
      bool dot = e.name() == "." || e.name() == "..";
      if (!dot && e.has_attr()) {
        ep.ino = inodes_.ref(Gfid::from_bytes(e.attr().gfid()).value_or(Gfid()));
        ep.attr = to_stat(e.attr());
        ep.attr_timeout = attr_timeout_.load();
        ep.entry_timeout = entry_timeout_.load();
      } else {
        ep.attr.st_ino = e.ino() ? e.ino() : 1;
        ep.attr.st_mode = e.type() << 12;
      }
      need = fuse_add_direntry_plus(req, buf.data() + used, room, e.name().c_str(), &ep,
                                    static_cast<off_t>(e.offset()));
      if (need > room) {
        if (ep.ino) inodes_.forget(ep.ino, 1);  // not sent: the kernel holds no reference
        break;
      }
    } else {
      struct stat st {};
      st.st_ino = e.has_attr() ? inode_number(Gfid::from_bytes(e.attr().gfid()).value_or(Gfid()))
                               : (e.ino() ? e.ino() : 1);
      st.st_mode = e.type() << 12;
      need = fuse_add_direntry(req, buf.data() + used, room, e.name().c_str(), &st,
                               static_cast<off_t>(e.offset()));
      if (need > room) break;
    }
    used += need;
    ++consumed;
    last_offset = e.offset();
  }
  if (consumed < batch.size() || eof) {
    std::lock_guard lock(h->mu);
    h->cache.assign(std::make_move_iterator(batch.begin() + static_cast<long>(consumed)),
                    std::make_move_iterator(batch.end()));
    h->cache_offset = last_offset;
    h->cache_plus = plus;
    h->cache_eof = eof;
    h->cache_valid = true;
  }
  fuse_reply_buf(req, buf.data(), used);
}

FuseBridge::Awaitable FuseBridge::statfs(fuse_req_t req, GraphPtr graph, fuse_ino_t ino) {
  auto g = gfid_of(ino);
  Result<pb::StatfsRsp> r = co_await graph->top()->statfs(context(req), g.value_or(Gfid::root()));
  if (!r) co_return reply_err(req, r.error());
  struct statvfs sv {};
  sv.f_bsize = r->bsize();
  sv.f_frsize = r->frsize();
  sv.f_blocks = r->blocks();
  sv.f_bfree = r->bfree();
  sv.f_bavail = r->bavail();
  sv.f_files = r->files();
  sv.f_ffree = r->ffree();
  sv.f_favail = r->favail();
  sv.f_namemax = r->namemax();
  fuse_reply_statfs(req, &sv);
}

FuseBridge::Awaitable FuseBridge::setxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                           std::string name, std::string value, int flags) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<void> r = co_await graph->top()->setxattr(context(req), *g, nullptr, std::move(name),
                                                   std::move(value), flags);
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::getxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                           std::string name, size_t size) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<std::string> r =
      co_await graph->top()->getxattr(context(req), *g, nullptr, std::move(name));
  if (!r) co_return reply_err(req, r.error());
  if (size == 0) co_return (void) fuse_reply_xattr(req, r->size());
  if (r->size() > size) co_return reply_err(req, Errno(ERANGE));
  fuse_reply_buf(req, r->data(), r->size());
}

FuseBridge::Awaitable FuseBridge::listxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                            size_t size) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<std::vector<std::string>> r = co_await graph->top()->listxattr(context(req), *g, nullptr);
  if (!r) co_return reply_err(req, r.error());
  std::string list;
  for (const auto& n : *r) {
    list += n;
    list.push_back('\0');
  }
  if (size == 0) co_return (void) fuse_reply_xattr(req, list.size());
  if (list.size() > size) co_return reply_err(req, Errno(ERANGE));
  fuse_reply_buf(req, list.data(), list.size());
}

FuseBridge::Awaitable FuseBridge::removexattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino,
                                              std::string name) {
  auto g = gfid_of(ino);
  if (!g) co_return reply_err(req, Errno(ESTALE));
  Result<void> r = co_await graph->top()->removexattr(context(req), *g, nullptr, std::move(name));
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::fallocate(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, int mode,
                                            off_t offset, off_t length) {
  Result<pb::Iatt> r = co_await graph->top()->fallocate(
      context(req), std::move(fd), static_cast<uint32_t>(mode), static_cast<uint64_t>(offset),
      static_cast<uint64_t>(length));
  reply_status(req, r);
}

FuseBridge::Awaitable FuseBridge::getlk(fuse_req_t req, GraphPtr graph, xl::FdPtr fd,
                                        uint64_t owner, struct flock lock) {
  pb::LkReq lk;
  lk.set_cmd(pb::LkReq::GETLK);
  lk.set_type(lock_type(lock.l_type));
  lk.set_start(static_cast<uint64_t>(lock.l_start));
  lk.set_length(static_cast<uint64_t>(lock.l_len));
  lk.set_pid(static_cast<uint32_t>(lock.l_pid));
  lk.set_lock_owner(owner);
  Result<pb::LkRsp> r = co_await graph->top()->lk(context(req), std::move(fd), std::move(lk));
  if (!r) co_return reply_err(req, r.error());
  struct flock out {};
  out.l_whence = SEEK_SET;
  if (r->type() == pb::UNLOCK) {
    out.l_type = F_UNLCK;
  } else {
    out.l_type = r->type() == pb::READ_LOCK ? F_RDLCK : F_WRLCK;
    out.l_start = static_cast<off_t>(r->start());
    out.l_len = static_cast<off_t>(r->length());
    out.l_pid = static_cast<pid_t>(r->pid());
  }
  fuse_reply_lock(req, &out);
}

FuseBridge::Awaitable FuseBridge::setlk(fuse_req_t req, GraphPtr graph, xl::FdPtr fd,
                                        pb::LkReq lk) {
  bool blocking = lk.cmd() == pb::LkReq::SETLKW;
  if (blocking) {
    {
      std::lock_guard lock(waits_mu_);
      lock_waits_[req] = LockWait{graph, fd, lk};
    }
    fuse_req_interrupt_func(
        req, [](fuse_req_t r, void* data) { static_cast<FuseBridge*>(data)->on_interrupt(r); },
        this);
  }
  xl::OpContext ctx = context(req);
  ctx.deadline = std::chrono::steady_clock::time_point::max();  // a lock may wait for ever
  Result<pb::LkRsp> r = co_await graph->top()->lk(ctx, std::move(fd), std::move(lk));
  if (blocking) {
    std::lock_guard lock(waits_mu_);
    lock_waits_.erase(req);
  }
  reply_status(req, r);
}

void FuseBridge::on_interrupt(fuse_req_t req) {
  LockWait wait;
  {
    std::lock_guard lock(waits_mu_);
    auto it = lock_waits_.find(req);
    if (it == lock_waits_.end()) return;
    wait = it->second;
  }
  // Unlocking the range withdraws our own wait on the brick, which then answers EINTR.
  wait.lk.set_cmd(pb::LkReq::SETLK);
  wait.lk.set_type(pb::UNLOCK);
  spawn(unlock_fd(std::move(wait.graph), std::move(wait.fd), std::move(wait.lk)));
}

// ---- C callbacks: copy what the coroutine needs, start it, return. ----

struct FuseBridge::Callbacks {
  static OpenHandle& handle(fuse_file_info* fi) { return *handle_of<OpenHandle>(fi); }

  static void init(void* userdata, fuse_conn_info* conn) {
    auto* self = static_cast<FuseBridge*>(userdata);
    auto want = [conn](unsigned cap) {
      if (conn->capable & cap) conn->want |= cap;
    };
    want(FUSE_CAP_ASYNC_READ);
    want(FUSE_CAP_POSIX_LOCKS);
    want(FUSE_CAP_FLOCK_LOCKS);
    want(FUSE_CAP_ATOMIC_O_TRUNC);
    want(FUSE_CAP_READDIRPLUS);
    want(FUSE_CAP_READDIRPLUS_AUTO);
    want(FUSE_CAP_PARALLEL_DIROPS);
    // With ACLs passed through, the kernel enforces them (with default_permissions, which
    // every mortar mount has) and caches them, as it does the mode bits.
    if (self->options_.acl) want(FUSE_CAP_POSIX_ACL);
    if (self->options_.writeback_cache) {
      want(FUSE_CAP_WRITEBACK_CACHE);
    } else {
      conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    }
    // Requests are read with plain read(2) on the I/O threads (session_loop.cc).
    conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    conn->max_write = self->options_.max_write;
    conn->max_readahead = std::max(conn->max_readahead, 1u << 20);
    conn->time_gran = 1;
  }

  static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("LOOKUP {} {}", parent, name);
    b->spawn(b->lookup(req, b->graph(), parent, name));
  }
  static void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    bridge_of(req)->inodes_.forget(ino, nlookup);
    fuse_reply_none(req);
  }
  static void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    auto* b = bridge_of(req);
    for (size_t i = 0; i < count; ++i) b->inodes_.forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
  }
  static void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    auto* h = handle_of<OpenHandle>(fi);
    if (b->options_.debug) MLOG_DEBUG("GETATTR {}", ino);
    b->spawn(b->getattr(req, h ? h->graph : b->graph(), ino, h ? h->fd : nullptr));
  }
  static void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info* fi) {
    auto* b = bridge_of(req);
    auto* h = handle_of<OpenHandle>(fi);
    if (b->options_.debug) MLOG_DEBUG("SETATTR {} valid={:#x}", ino, to_set);
    b->spawn(b->setattr(req, h ? h->graph : b->graph(), ino, *attr, to_set, h ? h->fd : nullptr));
  }
  static void readlink(fuse_req_t req, fuse_ino_t ino) {
    auto* b = bridge_of(req);
    b->spawn(b->readlink(req, b->graph(), ino));
  }
  static void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("MKNOD {} {} {:o}", parent, name, mode);
    b->spawn(b->mknod(req, b->graph(), parent, name, mode, rdev));
  }
  static void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("MKDIR {} {} {:o}", parent, name, mode);
    b->spawn(b->mkdir(req, b->graph(), parent, name, mode | S_IFDIR));
  }
  static void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("UNLINK {} {}", parent, name);
    b->spawn(b->unlink(req, b->graph(), parent, name));
  }
  static void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("RMDIR {} {}", parent, name);
    b->spawn(b->rmdir(req, b->graph(), parent, name));
  }
  static void symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("SYMLINK {} {} -> {}", parent, name, target);
    b->spawn(b->symlink(req, b->graph(), target, parent, name));
  }
  static void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
                     const char* new_name, unsigned flags) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("RENAME {} {} -> {} {}", parent, name, new_parent, new_name);
    b->spawn(b->rename(req, b->graph(), parent, name, new_parent, new_name, flags));
  }
  static void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("LINK {} -> {} {}", ino, new_parent, new_name);
    b->spawn(b->link(req, b->graph(), ino, new_parent, new_name));
  }
  static void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("OPEN {} flags={:#o}", ino, fi->flags);
    b->spawn(b->open(req, b->graph(), ino, *fi));
  }
  static void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug)
      MLOG_DEBUG("CREATE {} {} {:o} flags={:#o}", parent, name, mode, fi->flags);
    b->spawn(b->create(req, b->graph(), parent, name, mode, *fi));
  }
  static void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("READ {} {}@{}", ino, size, off);
    b->spawn(b->read(req, handle(fi).graph, handle(fi).fd, size, off));
  }
  static void write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("WRITE {} {}@{}", ino, size, off);
    // The kernel's buffer is reused once we return: the data travels on in our own.
    b->spawn(b->write(req, handle(fi).graph, handle(fi).fd, Buffer::copy_of({buf, size}), off));
  }
  static void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("FLUSH {}", ino);
    b->spawn(b->flush(req, handle(fi).graph, handle(fi).fd, fi->lock_owner));
  }
  static void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("RELEASE {}", ino);
    auto* h = handle_of<OpenHandle>(fi);
    GraphPtr graph = std::move(h->graph);
    xl::FdPtr fd = std::move(h->fd);
    delete h;
    b->spawn(release_fd(std::move(graph), std::move(fd)));
    fuse_reply_err(req, 0);
  }
  static void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    b->spawn(b->fsync(req, handle(fi).graph, handle(fi).fd, datasync != 0));
  }
  static void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("OPENDIR {}", ino);
    b->spawn(b->opendir(req, b->graph(), ino, *fi));
  }
  static void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("READDIR {} @{}", ino, off);
    b->spawn(b->readdir(req, handle(fi).graph, &handle(fi), size, off, false));
  }
  static void readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          fuse_file_info* fi) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("READDIRPLUS {} @{}", ino, off);
    b->spawn(b->readdir(req, handle(fi).graph, &handle(fi), size, off, true));
  }
  static void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    release(req, ino, fi);
  }
  static void fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    fsync(req, ino, datasync, fi);
  }
  static void statfs(fuse_req_t req, fuse_ino_t ino) {
    auto* b = bridge_of(req);
    b->spawn(b->statfs(req, b->graph(), ino));
  }
  // Extended attributes this mount keeps away from the bricks (MountOptions::acl, selinux,
  // capability), answered here without a coroutine or a round trip: `ls -l` asks for two of
  // them on every file, and the kernel for security.capability before every write.
  enum class Withheld { kNo, kAcl, kSecurity };
  static Withheld withheld(const FuseBridge* b, const char* name) {
    const MountOptions& o = b->options_;
    if (!o.acl && (std::strcmp(name, "system.posix_acl_access") == 0 ||
                   std::strcmp(name, "system.posix_acl_default") == 0)) {
      return Withheld::kAcl;
    }
    if (!o.selinux && std::strncmp(name, "security.", 9) == 0 &&
        !(o.capability && std::strcmp(name, "security.capability") == 0)) {
      return Withheld::kSecurity;
    }
    return Withheld::kNo;
  }
  static void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                       size_t size, int flags) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("SETXATTR {} {}", ino, name);
    if (withheld(b, name) != Withheld::kNo) return (void)fuse_reply_err(req, EOPNOTSUPP);
    b->spawn(b->setxattr(req, b->graph(), ino, name, std::string(value, size), flags));
  }
  static void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("GETXATTR {} {}", ino, name);
    switch (withheld(b, name)) {
      case Withheld::kAcl: return (void)fuse_reply_err(req, EOPNOTSUPP);
      case Withheld::kSecurity: return (void)fuse_reply_err(req, ENODATA);
      case Withheld::kNo: break;
    }
    b->spawn(b->getxattr(req, b->graph(), ino, name, size));
  }
  static void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    auto* b = bridge_of(req);
    b->spawn(b->listxattr(req, b->graph(), ino, size));
  }
  static void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    auto* b = bridge_of(req);
    switch (withheld(b, name)) {
      case Withheld::kAcl: return (void)fuse_reply_err(req, EOPNOTSUPP);
      case Withheld::kSecurity: return (void)fuse_reply_err(req, ENODATA);
      case Withheld::kNo: break;
    }
    b->spawn(b->removexattr(req, b->graph(), ino, name));
  }
  static void getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
    auto* b = bridge_of(req);
    b->spawn(b->getlk(req, handle(fi).graph, handle(fi).fd, fi->lock_owner, *lock));
  }
  static void setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock,
                    int sleep) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("SETLK {} type={} wait={}", ino, lock->l_type, sleep);
    pb::LkReq lk;
    lk.set_cmd(sleep ? pb::LkReq::SETLKW : pb::LkReq::SETLK);
    lk.set_type(lock_type(lock->l_type));
    lk.set_start(static_cast<uint64_t>(lock->l_start));
    lk.set_length(static_cast<uint64_t>(lock->l_len));
    lk.set_pid(static_cast<uint32_t>(lock->l_pid));
    lk.set_lock_owner(fi->lock_owner);
    b->spawn(b->setlk(req, handle(fi).graph, handle(fi).fd, std::move(lk)));
  }
  static void flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
    auto* b = bridge_of(req);
    if (b->options_.debug) MLOG_DEBUG("FLOCK {} op={}", ino, op);
    pb::LkReq lk;
    lk.set_flock(true);
    lk.set_cmd((op & LOCK_NB) || (op & LOCK_UN) ? pb::LkReq::SETLK : pb::LkReq::SETLKW);
    lk.set_type((op & LOCK_UN) ? pb::UNLOCK : (op & LOCK_EX) ? pb::WRITE_LOCK : pb::READ_LOCK);
    lk.set_lock_owner(fi->lock_owner);
    b->spawn(b->setlk(req, handle(fi).graph, handle(fi).fd, std::move(lk)));
  }
  static void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info* fi) {
    auto* b = bridge_of(req);
    b->spawn(b->fallocate(req, handle(fi).graph, handle(fi).fd, mode, offset, length));
  }
};

const fuse_lowlevel_ops& FuseBridge::operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = Callbacks::init;
    o.lookup = Callbacks::lookup;
    o.forget = Callbacks::forget;
    o.forget_multi = Callbacks::forget_multi;
    o.getattr = Callbacks::getattr;
    o.setattr = Callbacks::setattr;
    o.readlink = Callbacks::readlink;
    o.mknod = Callbacks::mknod;
    o.mkdir = Callbacks::mkdir;
    o.unlink = Callbacks::unlink;
    o.rmdir = Callbacks::rmdir;
    o.symlink = Callbacks::symlink;
    o.rename = Callbacks::rename;
    o.link = Callbacks::link;
    o.open = Callbacks::open;
    o.create = Callbacks::create;
    o.read = Callbacks::read;
    o.write = Callbacks::write;
    o.flush = Callbacks::flush;
    o.release = Callbacks::release;
    o.fsync = Callbacks::fsync;
    o.opendir = Callbacks::opendir;
    o.readdir = Callbacks::readdir;
    o.readdirplus = Callbacks::readdirplus;
    o.releasedir = Callbacks::releasedir;
    o.fsyncdir = Callbacks::fsyncdir;
    o.statfs = Callbacks::statfs;
    o.setxattr = Callbacks::setxattr;
    o.getxattr = Callbacks::getxattr;
    o.listxattr = Callbacks::listxattr;
    o.removexattr = Callbacks::removexattr;
    o.getlk = Callbacks::getlk;
    o.setlk = Callbacks::setlk;
    o.flock = Callbacks::flock;
    o.fallocate = Callbacks::fallocate;
    return o;
  }();
  return ops;
}

}  // namespace mortar::fuse
