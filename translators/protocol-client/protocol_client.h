// protocol/client: the leaf of every client graph, one connection to one brick. Files and
// directories the client holds open are re-opened on the brick after every reconnect, so an
// application with an open file carries on once the brick is back; while it is away,
// operations fail at once with ENOTCONN.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/brick_client.h"
#include "translators/graph.h"
#include "translators/xlator.h"

namespace mortar::xl {

class ProtocolClient : public Translator {
 public:
  struct Config {
    BrickClient::Options brick;
  };
  static std::vector<OptionSpec> option_schema();
  static Checked<Config> configure(const Options& options, const GraphContext& context);

  ProtocolClient(std::string name, Config config, const GraphContext& context);
  ~ProtocolClient() override;

  void start() override;
  void stop() override;
  bool is_up() const override { return up_.load(); }
  // Calls this translator made to its brick, for tests and statistics.
  uint64_t calls_sent() const { return calls_sent_.load(); }

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

 private:
  // The brick's descriptor for one open file, valid for one connection generation.
  struct RemoteFd {
    std::atomic<uint64_t> fd{0};
    std::atomic<uint64_t> generation{0};
  };
  struct State;

  template <class Rsp>
  Task<Rsp> call(const OpContext& ctx, pb::Proc proc, const google::protobuf::MessageLite& req);
  // The brick descriptor of `fd` on the current connection, or EBADF.
  Result<uint64_t> remote(const FdPtr& fd) const;
  FdPtr remember(const Gfid& gfid, uint32_t flags, bool is_dir, uint64_t remote_fd);
  boost::asio::awaitable<Result<void>> reopen_all();
  BrickClient::CallOptions call_options(const OpContext& ctx) const;

  std::shared_ptr<State> state_;
  // Inodes this client ever took POSIX locks on: FLUSH exists to drop those locks, so for
  // every other file close() needs no round trip.
  std::mutex locked_mu_;
  std::unordered_set<Gfid> locked_;  // GUARDED_BY(locked_mu_)
  std::unique_ptr<BrickClient> client_;
  std::atomic<bool> up_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> calls_sent_{0};
};

}  // namespace mortar::xl
