// The FUSE bridge: turns the kernel's low-level FUSE requests into calls on the top of a
// translator graph. Every request runs as a coroutine on the graph's executor, so FUSE worker
// threads never wait on the network; one place per operation turns the result into a reply.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse3/fuse_lowlevel.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "fuse-client/inode_table.h"
#include "fuse-client/mount_options.h"
#include "translators/xlator.h"

namespace mortar::fuse {

class FuseBridge {
 public:
  FuseBridge(xl::Translator* top, boost::asio::any_io_executor executor, MountOptions options);
  ~FuseBridge();

  // The operation table to hand to fuse_session_new, with this bridge as userdata.
  static const fuse_lowlevel_ops& operations();
  InodeTable& inodes() { return inodes_; }
  const MountOptions& options() const { return options_; }
  // Requests started and not yet answered.
  size_t in_flight() const { return in_flight_.load(); }

  // Entry points of the C callbacks (see bridge.cc).
  struct Callbacks;

 private:
  struct OpenHandle;
  using Awaitable = boost::asio::awaitable<void>;

  void spawn(Awaitable work);
  xl::OpContext context(fuse_req_t req) const;
  std::optional<Gfid> gfid_of(fuse_ino_t ino) const;
  void reply_entry(fuse_req_t req, const pb::Iatt& attr);
  void reply_attr(fuse_req_t req, const pb::Iatt& attr);
  struct stat to_stat(const pb::Iatt& attr) const;

  Awaitable lookup(fuse_req_t req, fuse_ino_t parent, std::string name);
  Awaitable getattr(fuse_req_t req, fuse_ino_t ino, xl::FdPtr fd);
  Awaitable setattr(fuse_req_t req, fuse_ino_t ino, struct stat attr, int to_set, xl::FdPtr fd);
  Awaitable readlink(fuse_req_t req, fuse_ino_t ino);
  Awaitable mknod(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode, dev_t rdev);
  Awaitable mkdir(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode);
  Awaitable symlink(fuse_req_t req, std::string target, fuse_ino_t parent, std::string name);
  Awaitable link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, std::string name);
  Awaitable unlink(fuse_req_t req, fuse_ino_t parent, std::string name);
  Awaitable rmdir(fuse_req_t req, fuse_ino_t parent, std::string name);
  Awaitable rename(fuse_req_t req, fuse_ino_t parent, std::string name, fuse_ino_t new_parent,
                   std::string new_name, unsigned flags);
  Awaitable open(fuse_req_t req, fuse_ino_t ino, fuse_file_info fi);
  Awaitable create(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode,
                   fuse_file_info fi);
  Awaitable read(fuse_req_t req, xl::FdPtr fd, size_t size, off_t offset);
  Awaitable write(fuse_req_t req, xl::FdPtr fd, Buffer data, off_t offset);
  Awaitable flush(fuse_req_t req, xl::FdPtr fd, uint64_t lock_owner);
  Awaitable fsync(fuse_req_t req, xl::FdPtr fd, bool datasync);
  Awaitable opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info fi);
  Awaitable readdir(fuse_req_t req, OpenHandle* handle, size_t size, off_t offset, bool plus);
  Awaitable statfs(fuse_req_t req, fuse_ino_t ino);
  Awaitable setxattr(fuse_req_t req, fuse_ino_t ino, std::string name, std::string value,
                     int flags);
  Awaitable getxattr(fuse_req_t req, fuse_ino_t ino, std::string name, size_t size);
  Awaitable listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  Awaitable removexattr(fuse_req_t req, fuse_ino_t ino, std::string name);
  Awaitable fallocate(fuse_req_t req, xl::FdPtr fd, int mode, off_t offset, off_t length);
  Awaitable getlk(fuse_req_t req, xl::FdPtr fd, uint64_t owner, struct flock lock);
  Awaitable setlk(fuse_req_t req, xl::FdPtr fd, pb::LkReq lk);

  // A blocking lock request the kernel may interrupt: an interrupt withdraws it on the brick.
  void on_interrupt(fuse_req_t req);

  xl::Translator* top_;
  boost::asio::any_io_executor executor_;
  MountOptions options_;
  InodeTable inodes_;
  std::atomic<size_t> in_flight_{0};
  std::mutex waits_mu_;
  std::unordered_map<fuse_req_t, std::pair<xl::FdPtr, pb::LkReq>> lock_waits_;  // GUARDED_BY
};

}  // namespace mortar::fuse
