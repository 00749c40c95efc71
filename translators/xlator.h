// The translator interface: every file operation as a coroutine on GFID handles. A client
// stacks translators into a graph (protocol/client at the leaves, replicate and distribute
// above them, performance translators on top); the FUSE bridge calls the top one.
//
// Contracts:
// - Fops may be called concurrently from any thread; each translator guards its own state.
// - Parameters are taken by value (coroutines start lazily; see docs/engineering.md).
// - Errors are errnos, passed up unchanged; no exception crosses a translator boundary.
// - Events (a child coming up or going down) travel upward through notify().
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "common/gfid.h"
#include "common/result.h"
#include "proto/brick.pb.h"

namespace mortar::xl {

template <class T>
using Task = boost::asio::awaitable<Result<T>>;

// Who asks, and until when.
struct OpContext {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  uint64_t lock_owner = 0;                           // POSIX lock owner of the caller (flush, lk)
  uint64_t unique = 0;                               // request id, for logs
  std::chrono::steady_clock::time_point deadline{};  // none: the transport's default
  // Replication's pre-op marks for this call, applied by the brick before the operation.
  std::vector<pb::ChangelogReq> pre_op;
};

class Translator;

// One open file or directory as the graph sees it. Each translator keeps its own state for the
// open file in a slot keyed by itself (the brick descriptor for protocol/client, the replicas
// that opened it for replicate). Thread-safe.
class Fd {
 public:
  Fd(Gfid gfid, uint32_t flags, bool is_dir) : gfid_(gfid), flags_(flags), is_dir_(is_dir) {}

  const Gfid& gfid() const { return gfid_; }
  uint32_t flags() const { return flags_; }
  bool is_dir() const { return is_dir_; }

  template <class T>
  std::shared_ptr<T> context(const Translator* xl) const {
    std::lock_guard lock(mu_);
    for (const auto& [owner, ctx] : contexts_) {
      if (owner == xl) return std::static_pointer_cast<T>(ctx);
    }
    return nullptr;
  }
  void set_context(const Translator* xl, std::shared_ptr<void> ctx) {
    std::lock_guard lock(mu_);
    for (auto& [owner, c] : contexts_) {
      if (owner == xl) {
        c = std::move(ctx);
        return;
      }
    }
    contexts_.emplace_back(xl, std::move(ctx));
  }

 private:
  const Gfid gfid_;
  const uint32_t flags_;
  const bool is_dir_;
  mutable std::mutex mu_;
  std::vector<std::pair<const Translator*, std::shared_ptr<void>>> contexts_;  // GUARDED_BY(mu_)
};
using FdPtr = std::shared_ptr<Fd>;

struct AttrPair {
  pb::Iatt pre;
  pb::Iatt post;
};

struct Created {
  pb::Iatt attr;
  FdPtr fd;
  bool locked = false;  // protocol/client: the request's data_lock was granted
};

enum class Event {
  kChildUp,         // a child can serve (again)
  kChildDown,       // a child lost its brick(s)
  kLockContention,  // a brick: another client waits for a lock we hold (EventInfo)
};

struct EventInfo {
  std::string domain;  // kLockContention: the lock's domain and inode or directory
  Gfid gfid;
  bool entry = false;
};

class Translator {
 public:
  Translator(std::string name, std::string type) : name_(std::move(name)), type_(std::move(type)) {}
  virtual ~Translator() = default;
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }
  const std::vector<Translator*>& children() const { return children_; }
  Translator* parent() const { return parent_; }
  void add_child(Translator* child) {
    children_.push_back(child);
    child->parent_ = this;
  }

  // Lifecycle, driven by the graph: start() children first, stop() parents first.
  virtual void start() {}
  virtual void stop() {}
  // True when this translator can serve requests now.
  virtual bool is_up() const;
  // An event from a child (`from`). The default passes it on to the parent.
  virtual void notify(Event event, Translator* from, const EventInfo& info = {});

  // File operations. The defaults answer ENOSYS; PassThrough forwards to the first child.
  virtual Task<pb::Iatt> lookup(OpContext ctx, Gfid parent, std::string name);
  virtual Task<pb::Iatt> lookup_gfid(OpContext ctx, Gfid gfid);
  virtual Task<pb::Iatt> getattr(OpContext ctx, Gfid gfid, FdPtr fd);
  virtual Task<AttrPair> setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req);
  virtual Task<AttrPair> truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size);
  virtual Task<Created> create(OpContext ctx, pb::CreateReq req);
  virtual Task<pb::Iatt> mknod(OpContext ctx, pb::MknodReq req);
  virtual Task<pb::Iatt> mkdir(OpContext ctx, pb::MkdirReq req);
  virtual Task<pb::Iatt> symlink(OpContext ctx, pb::SymlinkReq req);
  virtual Task<pb::Iatt> link(OpContext ctx, pb::LinkReq req);
  virtual Task<void> unlink(OpContext ctx, pb::UnlinkReq req);
  virtual Task<void> rmdir(OpContext ctx, pb::RmdirReq req);
  virtual Task<void> rename(OpContext ctx, pb::RenameReq req);
  virtual Task<std::string> readlink(OpContext ctx, Gfid gfid);
  virtual Task<FdPtr> open(OpContext ctx, Gfid gfid, uint32_t flags);
  virtual Task<Buffer> read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size);
  virtual Task<pb::WriteRsp> write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data);
  virtual Task<void> flush(OpContext ctx, FdPtr fd);
  virtual Task<void> fsync(OpContext ctx, FdPtr fd, bool datasync);
  // The application closed the file for good. Never fails.
  virtual boost::asio::awaitable<void> release(FdPtr fd);
  virtual Task<FdPtr> opendir(OpContext ctx, Gfid gfid);
  virtual Task<pb::ReaddirRsp> readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                                       bool plus);
  virtual Task<pb::StatfsRsp> statfs(OpContext ctx, Gfid gfid);
  virtual Task<std::string> getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name);
  virtual Task<void> setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                              std::string value, int flags);
  virtual Task<std::vector<std::string>> listxattr(OpContext ctx, Gfid gfid, FdPtr fd);
  virtual Task<void> removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name);
  virtual Task<pb::Iatt> fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                   uint64_t length);
  virtual Task<pb::LkRsp> lk(OpContext ctx, FdPtr fd, pb::LkReq req);
  virtual Task<void> inodelk(OpContext ctx, pb::InodelkReq req);
  virtual Task<void> entrylk(OpContext ctx, pb::EntrylkReq req);
  virtual Task<pb::Changelog> changelog(OpContext ctx, pb::ChangelogReq req);
  // The brick-level lookup with everything it can answer (changelog included), for
  // replication and heal.
  virtual Task<pb::LookupRsp> lookup_raw(OpContext ctx, pb::LookupReq req);
  virtual Task<pb::ChecksumRsp> checksum(OpContext ctx, pb::ChecksumReq req);
  virtual Task<pb::HealIndexRsp> heal_index(OpContext ctx, pb::HealIndexReq req);
  // One page of a brick's bucket index (the entries of one distribute bucket), for rebalance.
  virtual Task<pb::BucketListRsp> list_bucket(OpContext ctx, pb::BucketListReq req);

 private:
  std::string name_;
  std::string type_;
  std::vector<Translator*> children_;
  Translator* parent_ = nullptr;
};

// Forwards every operation to the single child: a translator derives from this and
// overrides only what it changes.
class PassThrough : public Translator {
 public:
  using Translator::Translator;
  bool is_up() const override;

  Task<pb::Iatt> lookup(OpContext ctx, Gfid parent, std::string name) override;
  Task<pb::Iatt> lookup_gfid(OpContext ctx, Gfid gfid) override;
  Task<pb::Iatt> getattr(OpContext ctx, Gfid gfid, FdPtr fd) override;
  Task<AttrPair> setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) override;
  Task<AttrPair> truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) override;
  Task<Created> create(OpContext ctx, pb::CreateReq req) override;
  Task<pb::Iatt> mknod(OpContext ctx, pb::MknodReq req) override;
  Task<pb::Iatt> mkdir(OpContext ctx, pb::MkdirReq req) override;
  Task<pb::Iatt> symlink(OpContext ctx, pb::SymlinkReq req) override;
  Task<pb::Iatt> link(OpContext ctx, pb::LinkReq req) override;
  Task<void> unlink(OpContext ctx, pb::UnlinkReq req) override;
  Task<void> rmdir(OpContext ctx, pb::RmdirReq req) override;
  Task<void> rename(OpContext ctx, pb::RenameReq req) override;
  Task<std::string> readlink(OpContext ctx, Gfid gfid) override;
  Task<FdPtr> open(OpContext ctx, Gfid gfid, uint32_t flags) override;
  Task<Buffer> read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) override;
  Task<pb::WriteRsp> write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) override;
  Task<void> flush(OpContext ctx, FdPtr fd) override;
  Task<void> fsync(OpContext ctx, FdPtr fd, bool datasync) override;
  boost::asio::awaitable<void> release(FdPtr fd) override;
  Task<FdPtr> opendir(OpContext ctx, Gfid gfid) override;
  Task<pb::ReaddirRsp> readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                               bool plus) override;
  Task<pb::StatfsRsp> statfs(OpContext ctx, Gfid gfid) override;
  Task<std::string> getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) override;
  Task<void> setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name, std::string value,
                      int flags) override;
  Task<std::vector<std::string>> listxattr(OpContext ctx, Gfid gfid, FdPtr fd) override;
  Task<void> removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) override;
  Task<pb::Iatt> fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                           uint64_t length) override;
  Task<pb::LkRsp> lk(OpContext ctx, FdPtr fd, pb::LkReq req) override;
  Task<void> inodelk(OpContext ctx, pb::InodelkReq req) override;
  Task<void> entrylk(OpContext ctx, pb::EntrylkReq req) override;
  Task<pb::Changelog> changelog(OpContext ctx, pb::ChangelogReq req) override;
  Task<pb::LookupRsp> lookup_raw(OpContext ctx, pb::LookupReq req) override;
  Task<pb::ChecksumRsp> checksum(OpContext ctx, pb::ChecksumReq req) override;
  Task<pb::HealIndexRsp> heal_index(OpContext ctx, pb::HealIndexReq req) override;
  Task<pb::BucketListRsp> list_bucket(OpContext ctx, pb::BucketListReq req) override;

 protected:
  Translator* child() const { return children().front(); }
};

}  // namespace mortar::xl
