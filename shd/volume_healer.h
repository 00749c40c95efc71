// The self-heal daemon's work for one volume: a client graph of the volume, and for each of its
// replica sets a watcher that heals as soon as a replica comes back, several inodes at a time.
//
// Every server's daemon heals every set's pending entries (not only its own bricks'), starting
// at a different point of the list; the self-heal lock on each inode keeps two daemons from
// healing the same one, and a daemon that finds it taken moves on. So heal does not starve when
// the pending entries all sit on one server's bricks.
//
// Single-threaded: every method runs on the executor's one thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/gfid.h"
#include "proto/shd.pb.h"
#include "translators/graph.h"

namespace mortar::xl::afr {
class Replicate;
}
namespace mortar::xl::dht {
class Distribute;
}

namespace mortar::shd {

struct HealerConfig {
  size_t parallel = 4;                                  // inodes healed at once per set
  std::chrono::milliseconds poll{200};                  // how often replica states are read
  std::chrono::milliseconds index_check{5000};          // how often index sizes are read
  // Entries with only dirty marks younger than this are transactions still in progress.
  std::chrono::milliseconds dirty_grace{10000};
  std::chrono::milliseconds split_brain_retry{60000};   // look again at split-brain entries
  std::string node_id;                                  // spreads the start point across servers
};

class VolumeHealer {
 public:
  VolumeHealer(std::string volume, std::unique_ptr<xl::Graph> graph, HealerConfig config,
               boost::asio::any_io_executor executor);
  ~VolumeHealer();

  const std::string& volume() const { return volume_; }
  size_t set_count() const { return sets_.size(); }

  // Starts watching the replica sets. Call once.
  void start();
  // Stops starting work and waits (asynchronously) for what is running.
  boost::asio::awaitable<void> stop();

  // Heal now: the indexes, or (`full`) every inode from the root down.
  pb::ShdHealRsp trigger(bool full);
  boost::asio::awaitable<pb::ShdInfoRsp> info(pb::ShdInfoReq::Mode mode, size_t max_entries);
  boost::asio::awaitable<pb::ShdResolveRsp> resolve(pb::ShdResolveReq req);
  pb::ShdStats stats() const;
  // This server's share of rebalance: the moving buckets whose old owner is one of `sets`.
  // Start (or resume from the bucket cursor after a stop, while the map is the same), stop
  // after the buckets in hand, or report.
  pb::ShdRebalanceRsp rebalance(pb::ShdRebalanceReq req);
  // Crawls running or wanted; for tests and shutdown.
  bool idle() const;

 private:
  struct Set {
    xl::afr::Replicate* afr = nullptr;
    std::vector<std::string> bricks;  // "host:/path" per child
    std::vector<bool> was_up;
    bool crawl_wanted = true;  // at start: whatever is pending
    bool full_wanted = false;
    bool crawling = false;
    std::map<Gfid, std::chrono::steady_clock::time_point> split_brain;  // when last found split
    std::map<Gfid, std::chrono::steady_clock::time_point> dirty_seen;   // dirty-only, first seen
    std::set<Gfid> healing;
  };

  boost::asio::awaitable<void> watch();
  boost::asio::awaitable<void> crawl(size_t set, bool full);
  // One pass over the set's indexes; true when it healed something (another pass may help).
  boost::asio::awaitable<bool> index_pass(size_t set);
  // Heals entries of `todo` from `*next` on, shared with the other workers; answers how many
  // it healed.
  boost::asio::awaitable<int> heal_worker(size_t set, std::shared_ptr<std::vector<Gfid>> todo,
                                          std::shared_ptr<size_t> next);
  // The set and GFID a CLI "FILE" names ("/dir/file" or "gfid:UUID").
  boost::asio::awaitable<Result<std::pair<size_t, Gfid>>> find_file(std::string file);
  void sample_rate();
  boost::asio::awaitable<void> rebalance_run();
  boost::asio::awaitable<void> rebalance_worker();
  pb::RebalanceStatus rebalance_status() const;

  std::string volume_;
  std::unique_ptr<xl::Graph> graph_;
  HealerConfig config_;
  boost::asio::any_io_executor executor_;
  std::vector<Set> sets_;
  bool stopping_ = false;
  int running_ = 0;  // coroutines started by this object, for stop()

  // Counters kept here (the translators' own count only their heals).
  uint64_t failed_ = 0, crawls_ = 0, full_crawls_ = 0;
  int64_t last_crawl_start_ = 0, last_crawl_end_ = 0;
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> healed_samples_;
  uint64_t pending_ = 0;

  struct Rebalance {
    xl::dht::Distribute* dht = nullptr;  // the graph's top; null when the volume has one set
    pb::RebalanceStatus::State state = pb::RebalanceStatus::NOT_STARTED;
    uint64_t map_version = 0;
    std::vector<uint32_t> sets;
    // This server's work: moving buckets (set = kMoving), then every bucket of each set it
    // leads that is being drained (owns no bucket: remove-brick).
    struct Task {
      uint32_t bucket;
      uint32_t set;
    };
    static constexpr uint32_t kMoving = UINT32_MAX;
    std::vector<Task> buckets;
    size_t next = 0;                // the cursor: every bucket before it is handed out
    size_t done = 0;
    int workers = 0;
    bool stop_wanted = false;
    uint64_t scanned = 0, moved = 0, failed = 0, skipped = 0, bytes = 0;
    std::chrono::steady_clock::time_point started{};
    double seconds_before = 0;  // run time of earlier runs of this map version
    std::string error;
  } reb_;
};

}  // namespace mortar::shd
