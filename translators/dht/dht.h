// cluster/distribute: spreads a volume's names over N children (replica sets, or plain bricks)
// by the volume-wide bucket map (bucket_map.h). A name lives on the set that owns its bucket;
// directories live on every set. A file renamed or hard-linked to a name owned by another set
// keeps its data where it is, and the owner gets a *link entry* pointing at the data's set.
// The reasoning (link entries, readdir offsets, rmdir, moving buckets):
// docs/design/distribution.md.
//
// Thread-safe: fops may run concurrently on any thread.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "translators/dht/bucket_map.h"
#include "translators/graph.h"
#include "translators/xlator.h"

namespace mortar::xl::dht {

// Extended attributes distribute keeps on bricks for itself. Outside the brick's reserved
// "trusted.mortar." prefix on purpose: replication must see (and heal) them like any other
// xattr. Distribute hides them from the translators above it.
inline constexpr std::string_view kXattrPrefix = "trusted.mortar-dht.";
// On a link entry: the name of the child (replica set) that holds the data.
inline constexpr const char* kLinkXattr = "trusted.mortar-dht.linkto";
// On the owner's copy of a directory being removed: when the removal started (seconds since
// the epoch), so lookups do not bring back the copies it already removed.
inline constexpr const char* kRmdirXattr = "trusted.mortar-dht.rmdir";
// A link entry is an empty regular file with exactly this mode ("---------T").
inline constexpr uint32_t kLinkMode = S_IFREG | S_ISVTX;
// Names of link entries while they are put in place (created, then renamed over a name).
inline constexpr std::string_view kTempPrefix = ".mortar-dht-";

struct Config {
  std::optional<BucketMap> map;  // none: even over the children
};

// True for attributes that may be a link entry (mode kLinkMode, size 0); the linkto xattr
// decides.
bool maybe_link(const pb::Iatt& attr);
// True for the attributes of a file rebalance has moved to another set: its old copy keeps its
// data for readers still holding it open, with the link mode as the mark (its size may be
// anything).
bool moved_away(const pb::Iatt& attr);

// What rebalance did with the names of one or more buckets.
struct MoveStats {
  uint64_t scanned = 0;  // names found in the buckets on their old owner
  uint64_t moved = 0;    // files, symlinks and link entries now on the new owner
  uint64_t failed = 0;   // left in place after an error (the bucket must not settle)
  uint64_t skipped = 0;  // left in place on purpose: hard links, special files
  uint64_t bytes = 0;    // file data copied
  MoveStats& operator+=(const MoveStats& o) {
    scanned += o.scanned;
    moved += o.moved;
    failed += o.failed;
    skipped += o.skipped;
    bytes += o.bytes;
    return *this;
  }
};

class Distribute : public Translator {
 public:
  static std::vector<OptionSpec> option_schema();
  static Checked<Config> configure(const Options& options);

  Distribute(std::string name, Config config, const GraphContext& context);
  ~Distribute() override;

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
  Task<void> inodelk(OpContext ctx, pb::InodelkReq req) override;
  Task<void> entrylk(OpContext ctx, pb::EntrylkReq req) override;

  // Rebalance: moves the names of `bucket` from its previous owner to its owner (nothing when
  // the bucket is not moving). Directories stay (they live on every set; see
  // repair_directories). A file is copied under its data lock, same GFID, then its old copy
  // gets the moved-away mark and its name goes, so a writer holding it open follows it. Only
  // over replica sets (their locks keep client writes out during the copy).
  boost::asio::awaitable<MoveStats> move_bucket(uint32_t bucket);
  // remove-brick: moves whatever set `set` (being drained: it owns no bucket) still holds in
  // `bucket` to the bucket's owner. These are the data of names whose link entry is on another
  // set (renames and hard links across sets), which no moving bucket lists on `set`.
  boost::asio::awaitable<MoveStats> drain_bucket(uint32_t bucket, uint32_t set);
  // Walks the whole tree and looks every directory up, which creates it on sets that lack it
  // (new sets after add-brick). Answers how many directories it visited.
  boost::asio::awaitable<Result<uint64_t>> repair_directories();

  // The map in force (after start()).
  const BucketMap& map() const { return map_; }
  // The set that owns the name now (its new owner while its bucket moves).
  uint32_t owner_of(const Gfid& parent, std::string_view name) const;
  bool set_up(size_t i) const { return i < kMaxSets && up_[i].load(); }

 private:
  struct FileCtx;
  struct DirCtx;
  // What a name resolves to.
  struct Entry {
    pb::Iatt attr;                 // the file's data inode, or the directory (owner's copy)
    int set = -1;                  // the set holding the file; -1 for a directory
    int owner = -1;                // the set that answered for the name
    std::optional<pb::Iatt> link;  // the link entry on `owner`, when the data lives elsewhere
    bool dir() const { return set < 0; }
  };
  static constexpr int kDir = -1;

  Translator* child(int i) const { return children()[static_cast<size_t>(i)]; }
  int child_index(const Translator* t) const;
  int child_named(std::string_view name) const;
  std::vector<int> up_sets() const;
  bool all_up() const;
  int first_up() const;

  // Where an inode lives: a set index, or kDir. Asks every set when nothing is cached.
  boost::asio::awaitable<Result<int>> locate(OpContext ctx, Gfid gfid);
  void remember(const Gfid& gfid, int where);
  void forget(const Gfid& gfid);

  boost::asio::awaitable<Result<Entry>> resolve(OpContext ctx, Gfid parent, std::string name);
  // The owner is unreachable: directories and data of linked names can still be found
  // elsewhere; anything else answers ENOTCONN.
  boost::asio::awaitable<Result<Entry>> resolve_without_owner(OpContext ctx, Gfid parent,
                                                              std::string name, int owner);
  boost::asio::awaitable<Result<Entry>> follow_link(OpContext ctx, Gfid parent, std::string name,
                                                    int set, pb::Iatt link);
  // Brings a directory found on its owner to every set that lacks it (same GFID), unless a
  // removal is under way.
  boost::asio::awaitable<void> verify_dir(OpContext ctx, Gfid parent, std::string name, Entry e);
  boost::asio::awaitable<void> copy_xattrs(Gfid gfid, int from, std::vector<int> to);
  // Merged attributes of a directory over every set that is up.
  boost::asio::awaitable<Result<pb::Iatt>> dir_attr(OpContext ctx, Gfid gfid);

  boost::asio::awaitable<Result<pb::Iatt>> make_link(OpContext ctx, int set, Gfid parent,
                                                     std::string name, int target);
  // Replaces the entry `name` on `set` by a link entry to `target` in one rename.
  boost::asio::awaitable<Result<void>> replace_with_link(OpContext ctx, int set, Gfid parent,
                                                         std::string name, int target);
  // Removes a link entry on `set` whose data is gone; true when it did.
  boost::asio::awaitable<bool> clear_stale_link(OpContext ctx, int set, Gfid parent,
                                                std::string name);
  // Every set's copy of directory `dir` holds nothing but link entries (which `links` gets,
  // per set) and is readable: ok; ENOTEMPTY otherwise.
  boost::asio::awaitable<Result<void>> check_empty(
      OpContext ctx, Gfid dir, std::vector<std::vector<pb::Dirent>>& links);
  boost::asio::awaitable<Result<void>> rename_dir(OpContext ctx, pb::RenameReq req, Entry src);
  // Puts back the copies of a directory a failed removal took from `sets`.
  boost::asio::awaitable<void> restore_dir(OpContext ctx, Gfid parent, std::string name,
                                           pb::Iatt attr, int owner, std::vector<int> sets);
  // The links found on one set by check_empty, or ENOTEMPTY.
  boost::asio::awaitable<Result<std::vector<pb::Dirent>>> only_links_on(OpContext ctx, int set,
                                                                        Gfid dir);
  // While the name's bucket moves, the previous owner may still hold it: EEXIST then (ENOTCONN
  // when that set is down), so a new name never shadows an old one.
  boost::asio::awaitable<Result<void>> absent_from_previous_owner(OpContext ctx, Gfid parent,
                                                                  std::string name);
  // A new non-directory name on its owner (mknod, symlink): EEXIST from a stale link entry is
  // cleared once.
  template <class MakeCall>
  boost::asio::awaitable<Result<pb::Iatt>> new_entry(OpContext ctx, Gfid parent,
                                                     std::string name, MakeCall make_call);

  Result<std::shared_ptr<FileCtx>> file_ctx(const FdPtr& fd) const;
  // The file of `fd` was found moved away from set `from`: reopen it where it is now.
  boost::asio::awaitable<Result<void>> follow_move(OpContext ctx, FdPtr fd,
                                                   std::shared_ptr<FileCtx> fc, int from);
  enum class Moved { kMoved, kGone, kFailed, kSkipped, kDirectory };
  // One name of a moving bucket, from set `from` to set `to`; `bytes` gets the data copied.
  // Every name of `bucket` on set `from` (move_bucket, drain_bucket) to set `to`.
  boost::asio::awaitable<MoveStats> move_entries(uint32_t bucket, int from, int to);
  boost::asio::awaitable<Moved> move_name(Gfid parent, std::string name, int from, int to,
                                          uint64_t* bytes);
  boost::asio::awaitable<Result<uint64_t>> copy_data(Gfid gfid, int from, int to, FdPtr to_fd,
                                                     uint64_t size);
  FdPtr wrap(const Gfid& gfid, uint32_t flags, int set, FdPtr child_fd);
  // One round of readdir on every set still listing, filtered and appended to the log.
  boost::asio::awaitable<void> fetch(OpContext ctx, Gfid dir, std::shared_ptr<DirCtx> dc,
                                     uint32_t size);
  bool keep(const DirCtx& dc, const Gfid& dir, int set, const pb::Dirent& e) const;

  Config config_;
  BucketMap map_;
  bool misconfigured_ = false;
  boost::asio::any_io_executor executor_;
  std::unique_ptr<std::atomic<bool>[]> up_;
  std::chrono::steady_clock::time_point started_{};
  std::atomic<bool> all_seen_up_{false};  // every set has been up at once since start()
  std::map<std::string, int, std::less<>> index_by_name_;  // set in start()

  mutable std::mutex mu_;
  std::unordered_map<Gfid, int> where_;  // GUARDED_BY(mu_): inode -> set, or kDir
  std::unordered_set<Gfid> verified_;    // GUARDED_BY(mu_): directories complete on every set
};

void register_distribute(Registry& registry);

}  // namespace mortar::xl::dht
