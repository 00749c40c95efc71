// cluster/replicate: one replica set of 2 or 3 bricks (the last one optionally an arbiter).
//
// Writes go to every reachable replica in parallel and are acknowledged once all of them
// applied them; a replica that failed or is away is blamed (pending marks on the survivors)
// before the application gets its answer. Reads come from one replica nobody blames. Heal
// copies what a blamed replica missed, block by block. The reasoning: docs/design/replication.md.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "translators/afr/heal_decision.h"
#include "translators/graph.h"
#include "translators/xlator.h"

namespace mortar::xl::afr {

struct Config {
  enum class Quorum { kNone, kAuto, kFixed };
  Quorum quorum = Quorum::kNone;
  int quorum_count = 0;  // kFixed: replicas that must be up for writes
  bool arbiter = false;  // the last child keeps no data
  Policy favorite_child = Policy::kNone;
  bool eager_lock = true;
  std::chrono::milliseconds post_op_delay{1000};
  bool diff_heal = true;  // block-wise data heal (else copy whole files)
  uint32_t heal_block_size = 128 * 1024;
};

// What a heal did, for heal statistics and tests.
struct HealStats {
  std::atomic<uint64_t> healed{0};          // inodes healed
  std::atomic<uint64_t> bytes_healed{0};    // data copied to sinks
  std::atomic<uint64_t> blocks_healed{0};
  std::atomic<uint64_t> blocks_skipped{0};  // blocks that already matched
  std::atomic<uint64_t> split_brain{0};     // heals refused: split-brain
};

struct HealRequest {
  // Resolve a split-brain with this choice (CLI); kNone: only what decide() allows.
  std::optional<Choice> choice;
  int source_brick = -1;
  bool full = false;  // heal even without marks (full crawl, replaced brick)
  // Another heal of the inode under way in this process: answer kBusy at once (a crawl moves
  // on) rather than wait for it to end (an operator's request).
  bool skip_busy = false;
  // Why a kind could not be healed, in words for the CLI ("No bigger file: ..."); optional.
  std::shared_ptr<std::vector<std::string>> notes;
};

enum class HealOutcome { kHealed, kInSync, kSplitBrain, kNotPossible, kBusy };

class Replicate : public Translator {
 public:
  static std::vector<OptionSpec> option_schema();
  static Checked<Config> configure(const Options& options);

  Replicate(std::string name, Config config, const GraphContext& context);
  ~Replicate() override;

  void start() override;
  void stop() override;
  bool is_up() const override;
  void notify(Event event, Translator* from, const EventInfo& info) override;

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
  Task<pb::LookupRsp> lookup_raw(OpContext ctx, pb::LookupReq req) override;
  // The union of every up replica's entries of the bucket, whole in one answer (a bucket holds
  // about 1/65536 of the volume's names), so a name one replica lacks is not missed.
  Task<pb::BucketListRsp> list_bucket(OpContext ctx, pb::BucketListReq req) override;

  // For rebalance moving a file to another set: takes the file's data lock on the up replicas,
  // so client writes wait (a client holding it eagerly is asked to give it back), and gives it
  // back. Not for use inside this translator's own transactions.
  Task<void> lock_data(Gfid gfid);
  boost::asio::awaitable<void> unlock_data(Gfid gfid);

  // Heals one inode (all kinds it needs), taking the locks heal needs, then the inodes its
  // entry heal created on sinks (and, for a full heal, everything below it). The outcome is the
  // named inode's.
  boost::asio::awaitable<HealOutcome> heal(Gfid gfid, HealRequest request = {});
  // GFIDs in the heal indexes of the children, with paths, deduplicated.
  boost::asio::awaitable<std::vector<pb::HealEntry>> pending_heals(size_t max);
  // Each child's heal index (up to `max` entries with paths; 0: totals only), in child order;
  // an error where the child is down.
  boost::asio::awaitable<std::vector<Result<pb::HealIndexRsp>>> heal_index_by_child(size_t max);
  // Total of the children's heal index sizes (each pending inode counted once per brick).
  boost::asio::awaitable<uint64_t> pending_count();
  // What heal would find for `gfid` now, without locks or changes: the worst verdict over the
  // kinds the inode has (kSplitBrain before kNoSource before kHeal before kInSync).
  boost::asio::awaitable<HealPlan::Verdict> examine(Gfid gfid);
  const HealStats& stats() const { return stats_; }
  size_t child_count() const { return children().size(); }
  bool child_up(size_t i) const { return up_[i].load(); }
  bool is_arbiter(size_t i) const { return config_.arbiter && i + 1 == children().size(); }

 private:
  struct Inode;
  struct Session;
  struct ChildFds;
  enum LockKind { kDataLock = 0, kMetadataLock = 1, kEntryLock = 2 };

  std::shared_ptr<Inode> inode(const Gfid& gfid);
  std::vector<int> up_children() const;
  bool quorum_met(const std::vector<int>& up) const;
  std::string domain(LockKind kind) const;

  // Eager locks and the delayed post-op.
  struct Held {
    std::vector<int> children;           // hold the lock: the operation goes to these
    std::vector<OpContext> contexts;     // per child: the caller's context plus pre-op marks
  };
  boost::asio::awaitable<Result<Held>> acquire(std::shared_ptr<Inode> ino, Gfid gfid,
                                               LockKind kind, OpContext ctx);
  // A transaction of `kind` on `gfid` finished: record failures (before the caller answers),
  // then give the lock back (at once, or after the post-op delay).
  boost::asio::awaitable<void> finish(std::shared_ptr<Inode> ino, Gfid gfid, LockKind kind,
                                      std::vector<int> succeeded, std::vector<int> failed);
  boost::asio::awaitable<void> release_lock(std::shared_ptr<Inode> ino, Gfid gfid, LockKind kind);
  void schedule_release(std::shared_ptr<Inode> ino, Gfid gfid, LockKind kind);
  // `owner` is owner_ for transactions and heal_owner() for heal, so a client's own heal
  // excludes (and makes give up) that client's eager locks.
  boost::asio::awaitable<Result<void>> lock_children(Gfid gfid, LockKind kind,
                                                     std::vector<int> children,
                                                     std::vector<int>& locked, uint64_t owner);
  // `posts`, by position in `children`: marks each brick applies before it unlocks.
  boost::asio::awaitable<void> unlock_children(
      Gfid gfid, LockKind kind, std::vector<int> children, uint64_t owner,
      std::vector<std::optional<pb::ChangelogReq>> posts = {});
  // A create asked the bricks for the new file's data lock: hold it as an eager lock if every
  // replica that created the file granted it, else give back what was granted.
  void adopt_create_locks(const Gfid& gfid, const std::vector<Result<Created>>& by_child);
  uint64_t heal_owner() const { return owner_ ^ 2; }
  uint64_t mover_owner() const { return owner_ ^ 4; }
  // Blames `failed` on `succeeded` for `kind` of `gfid` (pending marks), before acknowledging.
  boost::asio::awaitable<void> blame(Gfid gfid, Kind kind, std::vector<int> succeeded,
                                     std::vector<int> failed);

  // Reads.
  // False when the set has an arbiter and no good data copy is up (see write()).
  bool data_writable(const std::shared_ptr<Inode>& ino, const Gfid& gfid) const;
  int read_child(const std::shared_ptr<Inode>& ino, const Gfid& gfid, Kind kind,
                 int skip = -1) const;
  boost::asio::awaitable<void> refresh(std::shared_ptr<Inode> ino, Gfid gfid);
  Result<std::shared_ptr<ChildFds>> fds_of(const FdPtr& fd) const;
  boost::asio::awaitable<Result<FdPtr>> child_fd(FdPtr fd, int child);

  // Entry operations share one shape.
  template <class Rsp, class MakeCall>
  boost::asio::awaitable<Result<std::vector<Result<Rsp>>>> entry_txn(OpContext ctx, Gfid parent,
                                                                     MakeCall make_call);
  void remember_new_inode(const pb::Iatt& attr, const std::vector<int>& succeeded);
  void queue_heal(const Gfid& gfid);
  boost::asio::awaitable<void> heal_worker();

  // Heal internals.
  // One inode, under the self-heal lock; inodes to heal next (created by entry heal, or
  // below a directory in a full heal) are added to `next`.
  boost::asio::awaitable<HealOutcome> heal_one(Gfid gfid, HealRequest request,
                                               std::vector<Gfid>& next);
  boost::asio::awaitable<HealOutcome> heal_locked(Gfid gfid, HealRequest request,
                                                  std::vector<Gfid>& next);
  boost::asio::awaitable<Result<void>> heal_data(Gfid gfid, int source, std::vector<int> sinks,
                                                 uint64_t size);
  boost::asio::awaitable<Result<void>> heal_metadata(Gfid gfid, int source,
                                                     std::vector<int> sinks, pb::Iatt attr);
  // Names the sinks lack are created (with the same GFIDs), names they have wrongly go; the
  // inodes created are returned, to be healed next. At most `budget` names change per call,
  // since the directory's entry lock is held meanwhile and applications creating in it wait:
  // `more` says the directory needs another call.
  struct EntryHeal {
    std::vector<Gfid> created;
    bool more = false;
  };
  static constexpr size_t kEntryHealBudget = 32;
  boost::asio::awaitable<Result<EntryHeal>> heal_entries(Gfid dir, std::vector<int> sources,
                                                         std::vector<int> sinks, bool prune,
                                                         size_t budget);
  boost::asio::awaitable<Result<void>> recreate(Gfid parent, std::string name, pb::Iatt attr,
                                                int source, int sink);
  boost::asio::awaitable<Result<std::map<std::string, pb::Dirent>>> list_dir(int child, Gfid dir);
  boost::asio::awaitable<Result<void>> remove_tree(int child, Gfid parent, std::string name,
                                                   pb::Iatt attr);
  boost::asio::awaitable<std::vector<ReplicaView>> gather(Gfid gfid, std::vector<pb::Iatt>& attrs);

  // Background work (delayed post-ops, client heals) runs after the call that caused it; it
  // holds this, and the destructor waits for it (see ~Replicate).
  struct Lifetime {
    std::atomic<bool> alive{true};
    std::atomic<int> running{0};
  };
  void spawn_background(boost::asio::awaitable<void> work);

  Config config_;
  boost::asio::any_io_executor executor_;
  std::shared_ptr<Lifetime> lifetime_ = std::make_shared<Lifetime>();
  uint64_t owner_;  // lock owner of this client's replication locks
  std::unique_ptr<std::atomic<bool>[]> up_;
  HealStats stats_;
  std::atomic<bool> stopped_{false};
  std::chrono::steady_clock::time_point started_{};
  std::atomic<bool> all_seen_up_{false};  // every child has been up at once since start()

  mutable std::mutex mu_;
  std::unordered_map<Gfid, std::shared_ptr<Inode>> inodes_;  // GUARDED_BY(mu_)
  std::vector<Gfid> heal_queue_;                              // GUARDED_BY(mu_)
  bool heal_worker_running_ = false;                          // GUARDED_BY(mu_)
  std::unordered_set<Gfid> healing_;  // GUARDED_BY(mu_): inodes being healed in this process
};

}  // namespace mortar::xl::afr
