#include "translators/xlator.h"

namespace mortar::xl {

bool Translator::is_up() const {
  for (const auto* c : children_) {
    if (c->is_up()) return true;
  }
  return false;
}

void Translator::notify(Event event, Translator* from, const EventInfo& info) {
  if (parent_) parent_->notify(event, this, info);
}

// Defaults: an operation this translator does not implement.

Task<pb::Iatt> Translator::lookup(OpContext ctx, Gfid parent, std::string name) {
  co_return fail(ENOSYS);
}

Task<pb::Iatt> Translator::lookup_gfid(OpContext ctx, Gfid gfid) { co_return fail(ENOSYS); }

Task<pb::Iatt> Translator::getattr(OpContext ctx, Gfid gfid, FdPtr fd) { co_return fail(ENOSYS); }

Task<AttrPair> Translator::setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) {
  co_return fail(ENOSYS);
}

Task<AttrPair> Translator::truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) {
  co_return fail(ENOSYS);
}

Task<Created> Translator::create(OpContext ctx, pb::CreateReq req) { co_return fail(ENOSYS); }

Task<pb::Iatt> Translator::mknod(OpContext ctx, pb::MknodReq req) { co_return fail(ENOSYS); }

Task<pb::Iatt> Translator::mkdir(OpContext ctx, pb::MkdirReq req) { co_return fail(ENOSYS); }

Task<pb::Iatt> Translator::symlink(OpContext ctx, pb::SymlinkReq req) { co_return fail(ENOSYS); }

Task<pb::Iatt> Translator::link(OpContext ctx, pb::LinkReq req) { co_return fail(ENOSYS); }

Task<void> Translator::unlink(OpContext ctx, pb::UnlinkReq req) { co_return fail(ENOSYS); }

Task<void> Translator::rmdir(OpContext ctx, pb::RmdirReq req) { co_return fail(ENOSYS); }

Task<void> Translator::rename(OpContext ctx, pb::RenameReq req) { co_return fail(ENOSYS); }

Task<std::string> Translator::readlink(OpContext ctx, Gfid gfid) { co_return fail(ENOSYS); }

Task<FdPtr> Translator::open(OpContext ctx, Gfid gfid, uint32_t flags) { co_return fail(ENOSYS); }

Task<Buffer> Translator::read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) {
  co_return fail(ENOSYS);
}

Task<pb::WriteRsp> Translator::write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) {
  co_return fail(ENOSYS);
}

Task<void> Translator::flush(OpContext ctx, FdPtr fd) { co_return fail(ENOSYS); }

Task<void> Translator::fsync(OpContext ctx, FdPtr fd, bool datasync) { co_return fail(ENOSYS); }

boost::asio::awaitable<void> Translator::release(FdPtr fd) { co_return; }

Task<FdPtr> Translator::opendir(OpContext ctx, Gfid gfid) { co_return fail(ENOSYS); }

Task<pb::ReaddirRsp> Translator::readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                                         bool plus) {
  co_return fail(ENOSYS);
}

Task<pb::StatfsRsp> Translator::statfs(OpContext ctx, Gfid gfid) { co_return fail(ENOSYS); }

Task<std::string> Translator::getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  co_return fail(ENOSYS);
}

Task<void> Translator::setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                                std::string value, int flags) {
  co_return fail(ENOSYS);
}

Task<std::vector<std::string>> Translator::listxattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  co_return fail(ENOSYS);
}

Task<void> Translator::removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  co_return fail(ENOSYS);
}

Task<pb::Iatt> Translator::fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                     uint64_t length) {
  co_return fail(ENOSYS);
}

Task<pb::LkRsp> Translator::lk(OpContext ctx, FdPtr fd, pb::LkReq req) { co_return fail(ENOSYS); }

Task<void> Translator::inodelk(OpContext ctx, pb::InodelkReq req) { co_return fail(ENOSYS); }

Task<void> Translator::entrylk(OpContext ctx, pb::EntrylkReq req) { co_return fail(ENOSYS); }

Task<pb::Changelog> Translator::changelog(OpContext ctx, pb::ChangelogReq req) {
  co_return fail(ENOSYS);
}

Task<pb::LookupRsp> Translator::lookup_raw(OpContext ctx, pb::LookupReq req) {
  co_return fail(ENOSYS);
}

Task<pb::ChecksumRsp> Translator::checksum(OpContext ctx, pb::ChecksumReq req) {
  co_return fail(ENOSYS);
}

Task<pb::HealIndexRsp> Translator::heal_index(OpContext ctx, pb::HealIndexReq req) {
  co_return fail(ENOSYS);
}

Task<pb::BucketListRsp> Translator::list_bucket(OpContext ctx, pb::BucketListReq req) {
  co_return fail(ENOSYS);
}

Task<pb::BucketListRsp> PassThrough::list_bucket(OpContext ctx, pb::BucketListReq req) {
  return child()->list_bucket(std::move(ctx), std::move(req));
}

Task<pb::LookupRsp> PassThrough::lookup_raw(OpContext ctx, pb::LookupReq req) {
  return child()->lookup_raw(std::move(ctx), std::move(req));
}

Task<pb::ChecksumRsp> PassThrough::checksum(OpContext ctx, pb::ChecksumReq req) {
  return child()->checksum(std::move(ctx), std::move(req));
}

Task<pb::HealIndexRsp> PassThrough::heal_index(OpContext ctx, pb::HealIndexReq req) {
  return child()->heal_index(std::move(ctx), std::move(req));
}

bool PassThrough::is_up() const { return child()->is_up(); }

// Forwarding returns the child's awaitable itself: no extra coroutine frame per hop.

Task<pb::Iatt> PassThrough::lookup(OpContext ctx, Gfid parent, std::string name) {
  return child()->lookup(std::move(ctx), parent, std::move(name));
}

Task<pb::Iatt> PassThrough::lookup_gfid(OpContext ctx, Gfid gfid) {
  return child()->lookup_gfid(std::move(ctx), gfid);
}

Task<pb::Iatt> PassThrough::getattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  return child()->getattr(std::move(ctx), gfid, std::move(fd));
}

Task<AttrPair> PassThrough::setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) {
  return child()->setattr(std::move(ctx), gfid, std::move(fd), std::move(req));
}

Task<AttrPair> PassThrough::truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) {
  return child()->truncate(std::move(ctx), gfid, std::move(fd), size);
}

Task<Created> PassThrough::create(OpContext ctx, pb::CreateReq req) {
  return child()->create(std::move(ctx), std::move(req));
}

Task<pb::Iatt> PassThrough::mknod(OpContext ctx, pb::MknodReq req) {
  return child()->mknod(std::move(ctx), std::move(req));
}

Task<pb::Iatt> PassThrough::mkdir(OpContext ctx, pb::MkdirReq req) {
  return child()->mkdir(std::move(ctx), std::move(req));
}

Task<pb::Iatt> PassThrough::symlink(OpContext ctx, pb::SymlinkReq req) {
  return child()->symlink(std::move(ctx), std::move(req));
}

Task<pb::Iatt> PassThrough::link(OpContext ctx, pb::LinkReq req) {
  return child()->link(std::move(ctx), std::move(req));
}

Task<void> PassThrough::unlink(OpContext ctx, pb::UnlinkReq req) {
  return child()->unlink(std::move(ctx), std::move(req));
}

Task<void> PassThrough::rmdir(OpContext ctx, pb::RmdirReq req) {
  return child()->rmdir(std::move(ctx), std::move(req));
}

Task<void> PassThrough::rename(OpContext ctx, pb::RenameReq req) {
  return child()->rename(std::move(ctx), std::move(req));
}

Task<std::string> PassThrough::readlink(OpContext ctx, Gfid gfid) {
  return child()->readlink(std::move(ctx), gfid);
}

Task<FdPtr> PassThrough::open(OpContext ctx, Gfid gfid, uint32_t flags) {
  return child()->open(std::move(ctx), gfid, flags);
}

Task<Buffer> PassThrough::read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) {
  return child()->read(std::move(ctx), std::move(fd), offset, size);
}

Task<pb::WriteRsp> PassThrough::write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) {
  return child()->write(std::move(ctx), std::move(fd), offset, std::move(data));
}

Task<void> PassThrough::flush(OpContext ctx, FdPtr fd) {
  return child()->flush(std::move(ctx), std::move(fd));
}

Task<void> PassThrough::fsync(OpContext ctx, FdPtr fd, bool datasync) {
  return child()->fsync(std::move(ctx), std::move(fd), datasync);
}

boost::asio::awaitable<void> PassThrough::release(FdPtr fd) {
  return child()->release(std::move(fd));
}

Task<FdPtr> PassThrough::opendir(OpContext ctx, Gfid gfid) { return child()->opendir(std::move(ctx), gfid); }

Task<pb::ReaddirRsp> PassThrough::readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                                          bool plus) {
  return child()->readdir(std::move(ctx), std::move(fd), offset, size, plus);
}

Task<pb::StatfsRsp> PassThrough::statfs(OpContext ctx, Gfid gfid) {
  return child()->statfs(std::move(ctx), gfid);
}

Task<std::string> PassThrough::getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  return child()->getxattr(std::move(ctx), gfid, std::move(fd), std::move(name));
}

Task<void> PassThrough::setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                                 std::string value, int flags) {
  return child()->setxattr(std::move(ctx), gfid, std::move(fd), std::move(name), std::move(value), flags);
}

Task<std::vector<std::string>> PassThrough::listxattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  return child()->listxattr(std::move(ctx), gfid, std::move(fd));
}

Task<void> PassThrough::removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  return child()->removexattr(std::move(ctx), gfid, std::move(fd), std::move(name));
}

Task<pb::Iatt> PassThrough::fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                      uint64_t length) {
  return child()->fallocate(std::move(ctx), std::move(fd), mode, offset, length);
}

Task<pb::LkRsp> PassThrough::lk(OpContext ctx, FdPtr fd, pb::LkReq req) {
  return child()->lk(std::move(ctx), std::move(fd), std::move(req));
}

Task<void> PassThrough::inodelk(OpContext ctx, pb::InodelkReq req) {
  return child()->inodelk(std::move(ctx), std::move(req));
}

Task<void> PassThrough::entrylk(OpContext ctx, pb::EntrylkReq req) {
  return child()->entrylk(std::move(ctx), std::move(req));
}

Task<pb::Changelog> PassThrough::changelog(OpContext ctx, pb::ChangelogReq req) {
  return child()->changelog(std::move(ctx), std::move(req));
}

}  // namespace mortar::xl
