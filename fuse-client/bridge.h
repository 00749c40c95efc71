// The FUSE bridge: turns the kernel's low-level FUSE requests into calls on the top of a
// translator graph. Every request runs as a coroutine on the graph's executor, so FUSE worker
// threads never wait on the network; one place per operation turns the result into a reply.
//
// Graphs switch live (docs/mount.md): new operations go to the current graph, while a file or
// directory keeps the graph it was opened with. Each open file and each running request holds
// a reference to its graph, so an old graph goes away once its last file is closed and its
// last request has answered.
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
#include "translators/graph.h"
#include "translators/xlator.h"

namespace mortar::fuse {

// A started graph, shared by the bridge, the files opened on it and the requests running on
// it (see GraphKeeper in graph_switcher.h for how the last owner frees it).
using GraphPtr = std::shared_ptr<xl::Graph>;

class FuseBridge {
 public:
  FuseBridge(GraphPtr graph, boost::asio::any_io_executor executor, MountOptions options);
  ~FuseBridge();

  // The operation table to hand to fuse_session_new, with this bridge as userdata.
  static const fuse_lowlevel_ops& operations();
  InodeTable& inodes() { return inodes_; }
  // Options fixed at mount time; the cache timeouts in force are cache_timeouts().
  const MountOptions& options() const { return options_; }
  // Requests started and not yet answered.
  size_t in_flight() const { return in_flight_.load(); }

  // The graph new operations go to; null once released for shutdown.
  GraphPtr graph() const;
  // New operations go to `next` from now on; returns the graph they went to before. Files
  // already open and requests already running stay on theirs. Thread-safe.
  GraphPtr switch_graph(GraphPtr next);

  struct CacheTimeouts {
    double entry = 1.0;
    double attr = 1.0;
    double negative = 0.0;
  };
  // Timeouts given to the kernel in replies from now on (the volume's options changed).
  void set_cache_timeouts(CacheTimeouts timeouts);
  CacheTimeouts cache_timeouts() const;

  // Entry points of the C callbacks (see bridge.cc).
  struct Callbacks;

 private:
  struct OpenHandle;
  using Awaitable = boost::asio::awaitable<void>;
  static Awaitable release_fd(GraphPtr graph, xl::FdPtr fd);
  static Awaitable unlock_fd(GraphPtr graph, xl::FdPtr fd, pb::LkReq unlock);

  void spawn(Awaitable work);
  xl::OpContext context(fuse_req_t req) const;
  std::optional<Gfid> gfid_of(fuse_ino_t ino) const;
  void reply_entry(fuse_req_t req, const pb::Iatt& attr);
  void reply_attr(fuse_req_t req, const pb::Iatt& attr);
  struct stat to_stat(const pb::Iatt& attr) const;

  // Each operation runs on `graph`, which it holds until it has answered: the current graph
  // for name and inode operations, the open file's own graph for operations on a handle.
  Awaitable lookup(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name);
  Awaitable getattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, xl::FdPtr fd);
  Awaitable setattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, struct stat attr, int to_set,
                    xl::FdPtr fd);
  Awaitable readlink(fuse_req_t req, GraphPtr graph, fuse_ino_t ino);
  Awaitable mknod(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name, mode_t mode,
                  dev_t rdev);
  Awaitable mkdir(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name, mode_t mode);
  Awaitable symlink(fuse_req_t req, GraphPtr graph, std::string target, fuse_ino_t parent,
                    std::string name);
  Awaitable link(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, fuse_ino_t parent,
                 std::string name);
  Awaitable unlink(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name);
  Awaitable rmdir(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name);
  Awaitable rename(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name,
                   fuse_ino_t new_parent, std::string new_name, unsigned flags);
  Awaitable open(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, fuse_file_info fi);
  Awaitable create(fuse_req_t req, GraphPtr graph, fuse_ino_t parent, std::string name, mode_t mode,
                   fuse_file_info fi);
  Awaitable read(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, size_t size, off_t offset);
  Awaitable write(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, Buffer data, off_t offset);
  Awaitable flush(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, uint64_t lock_owner);
  Awaitable fsync(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, bool datasync);
  Awaitable opendir(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, fuse_file_info fi);
  Awaitable readdir(fuse_req_t req, GraphPtr graph, OpenHandle* handle, size_t size, off_t offset,
                    bool plus);
  Awaitable statfs(fuse_req_t req, GraphPtr graph, fuse_ino_t ino);
  Awaitable setxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, std::string name,
                     std::string value, int flags);
  Awaitable getxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, std::string name, size_t size);
  Awaitable listxattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, size_t size);
  Awaitable removexattr(fuse_req_t req, GraphPtr graph, fuse_ino_t ino, std::string name);
  Awaitable fallocate(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, int mode, off_t offset,
                      off_t length);
  Awaitable getlk(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, uint64_t owner, struct flock lock);
  Awaitable setlk(fuse_req_t req, GraphPtr graph, xl::FdPtr fd, pb::LkReq lk);

  // A blocking lock request the kernel may interrupt: an interrupt withdraws it on the brick.
  void on_interrupt(fuse_req_t req);

  struct LockWait {
    GraphPtr graph;
    xl::FdPtr fd;
    pb::LkReq lk;
  };

  mutable std::mutex graph_mu_;
  GraphPtr graph_;  // GUARDED_BY(graph_mu_)
  boost::asio::any_io_executor executor_;
  MountOptions options_;
  // Read on every reply, changed by a graph switch: atomics, not a lock.
  std::atomic<double> entry_timeout_;
  std::atomic<double> attr_timeout_;
  std::atomic<double> negative_timeout_;
  InodeTable inodes_;
  std::atomic<size_t> in_flight_{0};
  std::mutex waits_mu_;
  std::unordered_map<fuse_req_t, LockWait> lock_waits_;  // GUARDED_BY(waits_mu_)
};

}  // namespace mortar::fuse
