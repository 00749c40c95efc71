#include "shd/volume_healer.h"

#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

#include "common/log.h"
#include "translators/afr/afr.h"
#include "translators/dht/dht.h"
#include "translators/fanout.h"

namespace mortar::shd {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using xl::afr::HealOutcome;
using Verdict = xl::afr::HealPlan::Verdict;

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  auto waiting = t.async_wait(asio::as_tuple(asio::use_awaitable));
  auto [ec] = co_await std::move(waiting);
  (void)ec;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool only_dirty(const pb::Changelog& c) {
  for (auto v : c.pending()) {
    if (v) return false;
  }
  return true;
}

std::string entry_path(const pb::HealEntry& e) {
  if (!e.path().empty()) return e.path();
  auto g = Gfid::from_bytes(e.gfid());
  return "<gfid:" + (g ? g->str() : std::string("?")) + ">";
}

}  // namespace

VolumeHealer::VolumeHealer(std::string volume, std::unique_ptr<xl::Graph> graph,
                           HealerConfig config, asio::any_io_executor executor)
    : volume_(std::move(volume)),
      graph_(std::move(graph)),
      config_(std::move(config)),
      executor_(std::move(executor)) {
  // Every replica set of the volume, with its bricks' names as the CLI prints them.
  std::map<std::string, const pb::TranslatorSpec*> by_name;
  for (const auto& t : graph_->spec().translators()) by_name[t.name()] = &t;
  for (const auto& t : graph_->spec().translators()) {
    if (t.type() != "cluster/replicate") continue;
    auto* afr = dynamic_cast<xl::afr::Replicate*>(graph_->find(t.name()));
    if (!afr) continue;
    Set s;
    s.afr = afr;
    for (const auto& child : t.subvolumes()) {
      auto it = by_name.find(child);
      std::string brick = child;
      if (it != by_name.end()) {
        const auto& o = it->second->options();
        auto host = o.find("remote-host");
        auto path = o.find("remote-subvolume");
        if (host != o.end() && path != o.end()) brick = host->second + ":" + path->second;
      }
      s.bricks.push_back(brick);
    }
    s.was_up.assign(s.bricks.size(), false);
    sets_.push_back(std::move(s));
  }
}

VolumeHealer::~VolumeHealer() = default;

void VolumeHealer::start() {
  ++running_;
  asio::co_spawn(executor_, watch(), [this](std::exception_ptr e) {
    --running_;
    if (e) MLOG_ERROR("{}: heal watcher stopped by an exception", volume_);
  });
}

asio::awaitable<void> VolumeHealer::stop() {
  stopping_ = true;
  for (int i = 0; i < 3000 && running_ > 0; ++i) co_await sleep_for(10ms);
  graph_->stop();
}

bool VolumeHealer::idle() const {
  for (const auto& s : sets_) {
    if (s.crawling || s.crawl_wanted || s.full_wanted) return false;
  }
  return true;
}

pb::ShdHealRsp VolumeHealer::trigger(bool full) {
  pb::ShdHealRsp rsp;
  if (sets_.empty()) {
    rsp.set_error("Volume " + volume_ + " is not of type replicate");
    return rsp;
  }
  for (auto& s : sets_) {
    s.crawl_wanted = true;
    s.full_wanted |= full;
    // An administrator asking again wants split-brain looked at again too.
    s.split_brain.clear();
  }
  return rsp;
}

void VolumeHealer::sample_rate() {
  uint64_t healed = 0;
  for (const auto& s : sets_) healed += s.afr->stats().healed;
  auto now = Clock::now();
  healed_samples_.emplace_back(now, healed);
  while (healed_samples_.size() > 2 && now - healed_samples_.front().first > 60s) {
    healed_samples_.pop_front();
  }
}

pb::ShdStats VolumeHealer::stats() const {
  pb::ShdStats st;
  for (const auto& s : sets_) {
    const auto& h = s.afr->stats();
    st.set_healed(st.healed() + h.healed);
    st.set_bytes_healed(st.bytes_healed() + h.bytes_healed);
    st.set_blocks_healed(st.blocks_healed() + h.blocks_healed);
    st.set_blocks_skipped(st.blocks_skipped() + h.blocks_skipped);
    st.set_split_brain(st.split_brain() + s.split_brain.size());
  }
  st.set_failed(failed_);
  st.set_crawls(crawls_);
  st.set_full_crawls(full_crawls_);
  st.set_last_crawl_start(last_crawl_start_);
  st.set_last_crawl_end(last_crawl_end_);
  double rate = 0;
  if (healed_samples_.size() >= 2) {
    auto& [t0, h0] = healed_samples_.front();
    auto& [t1, h1] = healed_samples_.back();
    double secs = std::chrono::duration<double>(t1 - t0).count();
    if (secs > 0) rate = static_cast<double>(h1 - h0) / secs;
  }
  st.set_rate(rate);
  st.set_pending(pending_);
  st.set_eta_seconds(pending_ == 0 ? 0 : rate > 0 ? static_cast<double>(pending_) / rate : -1);
  return st;
}

// ---- watching and crawling ----

asio::awaitable<void> VolumeHealer::watch() {
  auto last_index_check = Clock::now() - config_.index_check;
  while (!stopping_) {
    for (size_t i = 0; i < sets_.size(); ++i) {
      Set& s = sets_[i];
      for (size_t c = 0; c < s.was_up.size(); ++c) {
        bool up = s.afr->child_up(c);
        // A replica back from an absence: what it missed is in its partners' indexes.
        if (up && !s.was_up[c]) {
          MLOG_INFO("{}: {} is up; healing what it missed", volume_, s.bricks[c]);
          s.crawl_wanted = true;
        }
        s.was_up[c] = up;
      }
    }
    if (Clock::now() - last_index_check >= config_.index_check) {
      last_index_check = Clock::now();
      // Marks can appear without a replica going away (a brick's disk refused a write, a
      // client died mid-transaction): a cheap count per brick finds them.
      uint64_t pending = 0;
      for (auto& s : sets_) {
        uint64_t n = co_await s.afr->pending_count();
        pending += n;
        if (n > s.split_brain.size() + s.dirty_seen.size()) s.crawl_wanted = true;
        if (!s.dirty_seen.empty()) s.crawl_wanted = true;  // their grace may have run out
      }
      pending_ = pending;
    }
    sample_rate();
    for (size_t i = 0; i < sets_.size(); ++i) {
      Set& s = sets_[i];
      if (s.crawling || !(s.crawl_wanted || s.full_wanted)) continue;
      // Heal needs two replicas to compare.
      size_t up = 0;
      for (size_t c = 0; c < s.was_up.size(); ++c) up += s.was_up[c] ? 1 : 0;
      if (up < 2) continue;
      bool full = s.full_wanted;
      s.crawl_wanted = s.full_wanted = false;
      s.crawling = true;
      ++running_;
      asio::co_spawn(executor_, crawl(i, full), [this, i](std::exception_ptr e) {
        sets_[i].crawling = false;
        --running_;
        if (e) MLOG_ERROR("{}: heal crawl stopped by an exception", volume_);
      });
    }
    co_await sleep_for(config_.poll);
  }
}

asio::awaitable<void> VolumeHealer::crawl(size_t set, bool full) {
  Set& s = sets_[set];
  last_crawl_start_ = unix_now();
  if (full) {
    ++full_crawls_;
    MLOG_INFO("{}: full heal of {} started", volume_, s.afr->name());
    xl::afr::HealRequest req;
    req.full = true;
    HealOutcome o = co_await s.afr->heal(Gfid::root(), req);
    MLOG_INFO("{}: full heal of {} done ({})", volume_, s.afr->name(), static_cast<int>(o));
  }
  ++crawls_;
  // Passes until one heals nothing: healing a directory can make its new children healable.
  for (int pass = 0; pass < 100 && !stopping_; ++pass) {
    bool progress = co_await index_pass(set);
    if (!progress) break;
  }
  last_crawl_end_ = unix_now();
}

asio::awaitable<bool> VolumeHealer::index_pass(size_t set) {
  Set& s = sets_[set];
  std::vector<pb::HealEntry> entries = co_await s.afr->pending_heals(100000);
  auto now = Clock::now();
  auto todo = std::make_shared<std::vector<Gfid>>();
  std::set<Gfid> listed;
  for (const auto& e : entries) {
    auto g = Gfid::from_bytes(e.gfid());
    if (!g) continue;
    listed.insert(*g);
    auto sb = s.split_brain.find(*g);
    if (sb != s.split_brain.end() && now - sb->second < config_.split_brain_retry) continue;
    if (only_dirty(e.changelog())) {
      // Probably a live client's transaction: leave it alone for a while.
      auto [it, fresh] = s.dirty_seen.try_emplace(*g, now);
      if (now - it->second < config_.dirty_grace) continue;
    } else {
      s.dirty_seen.erase(*g);
    }
    if (s.healing.count(*g)) continue;
    todo->push_back(*g);
  }
  // Forget what is no longer pending.
  std::erase_if(s.dirty_seen, [&](const auto& kv) { return !listed.count(kv.first); });
  std::erase_if(s.split_brain, [&](const auto& kv) { return !listed.count(kv.first); });
  if (todo->empty()) co_return false;
  // Each server starts at its own point, so two daemons rarely queue on the same inode.
  if (!config_.node_id.empty() && todo->size() > 1) {
    size_t shift = std::hash<std::string>{}(config_.node_id) % todo->size();
    std::rotate(todo->begin(), todo->begin() + static_cast<std::ptrdiff_t>(shift), todo->end());
  }
  auto next = std::make_shared<size_t>(0);
  std::vector<asio::awaitable<int>> workers;
  for (size_t w = 0; w < std::max<size_t>(1, config_.parallel); ++w) {
    workers.push_back(heal_worker(set, todo, next));
  }
  std::vector<int> healed = co_await xl::all(std::move(workers));
  co_return std::any_of(healed.begin(), healed.end(), [](int n) { return n > 0; });
}

asio::awaitable<int> VolumeHealer::heal_worker(size_t set, std::shared_ptr<std::vector<Gfid>> todo,
                                               std::shared_ptr<size_t> next) {
  Set& s = sets_[set];
  int healed = 0;
  while (!stopping_ && *next < todo->size()) {
    Gfid g = (*todo)[(*next)++];
    s.healing.insert(g);
    xl::afr::HealRequest crawl;
    crawl.skip_busy = true;  // another worker has it
    HealOutcome o = co_await s.afr->heal(g, crawl);
    s.healing.erase(g);
    switch (o) {
      case HealOutcome::kHealed:
        ++healed;
        s.split_brain.erase(g);
        break;
      case HealOutcome::kSplitBrain:
        s.split_brain[g] = Clock::now();
        break;
      case HealOutcome::kNotPossible:
        ++failed_;
        break;
      case HealOutcome::kInSync:
      case HealOutcome::kBusy:
        break;
    }
  }
  co_return healed;
}

// ---- reports ----

asio::awaitable<pb::ShdInfoRsp> VolumeHealer::info(pb::ShdInfoReq::Mode mode, size_t max_entries) {
  pb::ShdInfoRsp rsp;
  if (sets_.empty()) {
    rsp.set_error("Volume " + volume_ + " is not of type replicate");
    co_return rsp;
  }
  bool listing = mode == pb::ShdInfoReq::ALL || mode == pb::ShdInfoReq::SPLIT_BRAIN;
  size_t max = listing ? (max_entries ? max_entries : 100000) : 0;
  uint64_t pending = 0;
  for (auto& s : sets_) {
    std::vector<Result<pb::HealIndexRsp>> by_child = co_await s.afr->heal_index_by_child(max);
    for (size_t c = 0; c < by_child.size(); ++c) {
      pb::ShdBrickInfo* b = rsp.add_bricks();
      b->set_brick(s.bricks[c]);
      if (!by_child[c]) {
        b->set_connected(false);
        b->set_status(std::strerror(by_child[c].error().value));
        continue;
      }
      b->set_connected(true);
      b->set_status("Connected");
      b->set_total(by_child[c]->total());
      pending += by_child[c]->total();
      uint64_t split = 0, healing = 0;
      if (listing) {
        for (const auto& e : by_child[c]->entries()) {
          auto g = Gfid::from_bytes(e.gfid()).value_or(Gfid());
          pb::ShdEntry::State state = pb::ShdEntry::PENDING;
          if (s.split_brain.count(g)) {
            state = pb::ShdEntry::SPLIT_BRAIN;
            ++split;
          } else if (s.healing.count(g)) {
            state = pb::ShdEntry::HEALING;
            ++healing;
          }
          if (mode == pb::ShdInfoReq::SPLIT_BRAIN && state != pb::ShdEntry::SPLIT_BRAIN) continue;
          pb::ShdEntry* out = b->add_entries();
          out->set_path(entry_path(e));
          out->set_gfid(g.str());
          out->set_state(state);
        }
      } else {
        // From counters: what this daemon knows of split-brain and heals in progress.
        split = std::min<uint64_t>(s.split_brain.size(), b->total());
        healing = std::min<uint64_t>(s.healing.size(), b->total() - split);
      }
      b->set_split_brain(split);
      b->set_healing(healing);
      b->set_pending(b->total() - std::min<uint64_t>(b->total(), split + healing));
    }
  }
  pending_ = pending;
  *rsp.mutable_stats() = stats();
  co_return rsp;
}

asio::awaitable<Result<std::pair<size_t, Gfid>>> VolumeHealer::find_file(std::string file) {
  if (file.rfind("gfid:", 0) == 0 || file.rfind("<gfid:", 0) == 0) {
    std::string text = file.substr(file.find(':') + 1);
    if (!text.empty() && text.back() == '>') text.pop_back();
    auto g = Gfid::parse(text);
    if (!g) co_return fail(EINVAL);
    for (size_t i = 0; i < sets_.size(); ++i) {
      pb::LookupReq req;
      req.set_gfid(std::string(g->bytes()));
      Result<pb::LookupRsp> r = co_await sets_[i].afr->lookup_raw(xl::OpContext{}, req);
      if (r) co_return std::pair{i, *g};
    }
    co_return fail(ENOENT);
  }
  if (file.empty() || file[0] != '/') co_return fail(EINVAL);
  // Walk the path in each set: directories exist in every set, a file in one.
  for (size_t i = 0; i < sets_.size(); ++i) {
    Gfid at = Gfid::root();
    bool found = true;
    size_t pos = 1;
    while (pos <= file.size()) {
      size_t slash = file.find('/', pos);
      std::string part = file.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
      pos = slash == std::string::npos ? file.size() + 1 : slash + 1;
      if (part.empty()) continue;
      Result<pb::Iatt> a = co_await sets_[i].afr->lookup(xl::OpContext{}, at, part);
      if (!a) {
        found = false;
        break;
      }
      at = Gfid::from_bytes(a->gfid()).value_or(Gfid());
    }
    if (found && !at.is_root()) co_return std::pair{i, at};
  }
  co_return fail(ENOENT);
}

asio::awaitable<pb::ShdResolveRsp> VolumeHealer::resolve(pb::ShdResolveReq req) {
  pb::ShdResolveRsp rsp;
  xl::afr::HealRequest heal;
  if (req.choice() == "bigger-file") {
    heal.choice = xl::afr::Choice::kBiggerFile;
  } else if (req.choice() == "latest-mtime") {
    heal.choice = xl::afr::Choice::kLatestMtime;
  } else if (req.choice() == "source-brick") {
    heal.choice = xl::afr::Choice::kSourceBrick;
  } else {
    rsp.set_error("unknown split-brain resolution '" + req.choice() +
                  "' (bigger-file, latest-mtime or source-brick)");
    co_return rsp;
  }
  // The set and replica slot of the source brick.
  int source_set = -1;
  if (heal.choice == xl::afr::Choice::kSourceBrick) {
    for (size_t i = 0; i < sets_.size() && source_set < 0; ++i) {
      for (size_t c = 0; c < sets_[i].bricks.size(); ++c) {
        if (sets_[i].bricks[c] == req.source_brick()) {
          source_set = static_cast<int>(i);
          heal.source_brick = static_cast<int>(c);
          break;
        }
      }
    }
    if (source_set < 0) {
      rsp.set_error(req.source_brick() + " is not a brick of volume " + volume_);
      co_return rsp;
    }
  } else if (req.file().empty()) {
    rsp.set_error("a FILE is needed for " + req.choice());
    co_return rsp;
  }

  // One file, or every split-brain file the source brick holds.
  std::vector<std::pair<std::string, Gfid>> files;
  size_t set = 0;
  if (!req.file().empty()) {
    Result<std::pair<size_t, Gfid>> found = co_await find_file(req.file());
    if (!found) {
      rsp.add_lines("Healing " + req.file() + " failed: " +
                    (found.error().value == EINVAL ? "not a path or gfid:UUID"
                                                   : "No such file or directory") + ".");
      co_return rsp;
    }
    set = found->first;
    if (source_set >= 0 && static_cast<size_t>(source_set) != set) {
      rsp.add_lines("Healing " + req.file() + " failed: " + req.source_brick() +
                    " does not hold it.");
      co_return rsp;
    }
    files.emplace_back(req.file(), found->second);
  } else {
    set = static_cast<size_t>(source_set);
    std::vector<pb::HealEntry> entries = co_await sets_[set].afr->pending_heals(100000);
    for (const auto& e : entries) {
      auto g = Gfid::from_bytes(e.gfid());
      if (!g) continue;
      Verdict v = co_await sets_[set].afr->examine(*g);
      if (v == Verdict::kSplitBrain) files.emplace_back(entry_path(e), *g);
    }
    if (files.empty()) rsp.add_lines("No split-brain files to heal from " + req.source_brick() + ".");
  }
  Set& s = sets_[set];
  for (const auto& [path, gfid] : files) {
    Verdict v = co_await s.afr->examine(gfid);
    if (v != Verdict::kSplitBrain) {
      rsp.add_lines("Healing " + path + " failed: File not in split-brain.");
      continue;
    }
    xl::afr::HealRequest one = heal;
    one.notes = std::make_shared<std::vector<std::string>>();
    HealOutcome o = co_await s.afr->heal(gfid, one);
    if (o == HealOutcome::kHealed) {
      s.split_brain.erase(gfid);
      rsp.add_lines("Healed " + path + ".");
      MLOG_INFO("{}: split-brain of {} resolved by {}", volume_, path, req.choice());
    } else {
      std::string why = one.notes->empty() ? "the replicas could not be compared"
                                           : one.notes->back();
      if (o == HealOutcome::kBusy) why = "another heal of it is running; try again";
      rsp.add_lines("Healing " + path + " failed: " + why + ".");
    }
  }
  co_return rsp;
}

// ---- rebalance ----

pb::ShdRebalanceRsp VolumeHealer::rebalance(pb::ShdRebalanceReq req) {
  pb::ShdRebalanceRsp rsp;
  Rebalance& r = reb_;
  if (!r.dht) r.dht = dynamic_cast<xl::dht::Distribute*>(graph_->top());
  if (!r.dht || r.dht->map().version < req.map_version()) {
    rsp.set_stale_graph(true);
    rsp.set_error("the heal daemon's graph of " + volume_ + " is older than bucket map version " +
                  std::to_string(req.map_version()));
    return rsp;
  }
  if (req.action() == pb::ShdRebalanceReq::STOP) {
    if (r.state == pb::RebalanceStatus::IN_PROGRESS) r.stop_wanted = true;
  } else if (req.action() == pb::ShdRebalanceReq::START &&
             r.state != pb::RebalanceStatus::IN_PROGRESS && !stopping_) {
    std::vector<uint32_t> sets(req.sets().begin(), req.sets().end());
    const xl::dht::BucketMap& map = r.dht->map();
    bool resume = r.map_version == map.version && r.sets == sets &&
                  r.state == pb::RebalanceStatus::STOPPED;
    if (!resume) {
      // From the start: a new map, or a run that ended (a second run re-checks every bucket,
      // cheaply: moved names are no longer on the old owner).
      r.map_version = map.version;
      r.sets = sets;
      r.buckets.clear();
      for (const auto& [bucket, from] : map.moving) {
        if (std::find(sets.begin(), sets.end(), from) != sets.end()) {
          r.buckets.push_back({bucket, Rebalance::kMoving});
        }
      }
      std::vector<uint32_t> owned = map.counts();
      for (uint32_t set : sets) {
        if (set >= owned.size() || owned[set] != 0) continue;
        for (uint32_t b = 0; b < xl::dht::kBuckets; ++b) r.buckets.push_back({b, set});
      }
      r.next = r.done = 0;
      r.scanned = r.moved = r.failed = r.skipped = r.bytes = 0;
      r.seconds_before = 0;
    }
    r.error.clear();
    r.stop_wanted = false;
    r.state = pb::RebalanceStatus::IN_PROGRESS;
    r.started = std::chrono::steady_clock::now();
    MLOG_INFO("{}: rebalance {} over {} buckets of map version {} (cursor {})", volume_,
              resume ? "resumes" : "starts", r.buckets.size(), r.map_version, r.next);
    ++running_;
    asio::co_spawn(executor_, rebalance_run(), [this](std::exception_ptr e) {
      --running_;
      if (e) {
        MLOG_ERROR("{}: rebalance stopped by an exception", volume_);
        reb_.state = pb::RebalanceStatus::FAILED;
      }
    });
  }
  *rsp.mutable_status() = rebalance_status();
  return rsp;
}

asio::awaitable<void> VolumeHealer::rebalance_run() {
  Rebalance& r = reb_;
  // Directories first: the moved names' parents must exist on their new sets.
  Result<uint64_t> dirs = co_await r.dht->repair_directories();
  if (!dirs) {
    r.error = "walking the directories: " + dirs.error().message();
    MLOG_WARN("{}: rebalance: {}", volume_, r.error);
    r.failed += 1;
  } else {
    constexpr int kWorkers = 16;  // buckets in flight: listing one costs a round trip or two
    for (int i = 0; i < kWorkers; ++i) {
      ++r.workers;
      asio::co_spawn(executor_, rebalance_worker(), [this](std::exception_ptr) { --reb_.workers; });
    }
    while (r.workers > 0) co_await sleep_for(10ms);
  }
  r.seconds_before += std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started)
                          .count();
  if (!dirs || r.failed > 0) {
    r.state = pb::RebalanceStatus::FAILED;
  } else if (r.next < r.buckets.size()) {
    r.state = pb::RebalanceStatus::STOPPED;
  } else {
    r.state = pb::RebalanceStatus::COMPLETED;
  }
  MLOG_INFO("{}: rebalance {}: {} of {} buckets, {} moved, {} failed, {} skipped, {} bytes",
            volume_, pb::RebalanceStatus::State_Name(r.state), r.done, r.buckets.size(), r.moved,
            r.failed, r.skipped, r.bytes);
}

asio::awaitable<void> VolumeHealer::rebalance_worker() {
  Rebalance& r = reb_;
  while (!r.stop_wanted && !stopping_ && r.next < r.buckets.size()) {
    Rebalance::Task task = r.buckets[r.next++];
    xl::dht::MoveStats st;
    if (task.set == Rebalance::kMoving) {
      st = co_await r.dht->move_bucket(task.bucket);
    } else {
      st = co_await r.dht->drain_bucket(task.bucket, task.set);
    }
    r.scanned += st.scanned;
    r.moved += st.moved;
    r.failed += st.failed;
    r.skipped += st.skipped;
    r.bytes += st.bytes;
    ++r.done;
  }
}

pb::RebalanceStatus VolumeHealer::rebalance_status() const {
  const Rebalance& r = reb_;
  pb::RebalanceStatus st;
  st.set_state(r.state);
  st.set_moved(r.moved);
  st.set_bytes(r.bytes);
  st.set_scanned(r.scanned);
  st.set_failed(r.failed);
  st.set_skipped(r.skipped);
  double seconds = r.seconds_before;
  if (r.state == pb::RebalanceStatus::IN_PROGRESS) {
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
    if (r.done > 0) {
      st.set_eta_seconds(seconds / static_cast<double>(r.done) *
                         static_cast<double>(r.buckets.size() - r.done));
    }
  }
  st.set_run_seconds(seconds);
  st.set_buckets_total(static_cast<uint32_t>(r.buckets.size()));
  st.set_buckets_done(static_cast<uint32_t>(r.done));
  st.set_map_version(r.map_version);
  st.set_error(r.error);
  return st;
}

}  // namespace mortar::shd
