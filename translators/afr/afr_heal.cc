// Self-heal of cluster/replicate: bringing the replicas of one inode back to the same state.
//
// One healer per inode at a time: a non-blocking lock in the "<name>:self-heal" domain on every
// reachable replica; whoever does not get it leaves the inode to the one that did. Each kind is
// then healed under that kind's transaction lock (taken with the heal owner, so clients with
// the lock held eagerly are asked to give it back), from changelogs read under that lock:
// what decide() says is applied, then exactly the marks that were read are subtracted, so a
// change that failed meanwhile keeps its own marks.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <set>

#include "common/log.h"
#include "translators/afr/afr.h"
#include "translators/fanout.h"

namespace mortar::xl::afr {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string raw(const Gfid& g) { return std::string(g.bytes()); }

int kind_index(Kind k) { return static_cast<int>(k); }

bool all_zero(const Buffer& b) {
  const char* p = b.data();
  size_t n = b.size();
  // Word at a time: heal reads every differing block.
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    if (w) return false;
  }
  for (; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

OpContext heal_context() {
  OpContext ctx;
  ctx.deadline = std::chrono::steady_clock::now() + 120s;
  return ctx;
}

// Marks that say "`sink` lacks what `source` has", of the given kinds, added on the source
// before heal creates an inode on the sink: the inode's own heal then knows its direction.
pb::ChangelogReq blame_mark(const Gfid& g, size_t n, int sink, const std::vector<Kind>& kinds) {
  pb::ChangelogReq m;
  m.set_gfid(raw(g));
  auto* d = m.mutable_delta();
  for (size_t i = 0; i < n * 3; ++i) d->add_pending(0);
  for (int k = 0; k < 3; ++k) d->add_dirty(0);
  for (Kind k : kinds) d->set_pending(sink * 3 + kind_index(k), 1);
  return m;
}

const char* kind_name(Kind k) {
  return k == Kind::kData ? "data" : k == Kind::kMetadata ? "metadata" : "entry";
}

}  // namespace

// ---- what the replicas say ----

asio::awaitable<std::vector<ReplicaView>> Replicate::gather(Gfid gfid, std::vector<pb::Iatt>& attrs) {
  size_t n = children().size();
  std::vector<int> up = up_children();
  std::vector<Task<pb::LookupRsp>> ops;
  for (int c : up) {
    pb::LookupReq req;
    req.set_gfid(raw(gfid));
    req.set_want_changelog(true);
    ops.push_back(children()[c]->lookup_raw(heal_context(), req));
  }
  std::vector<Result<pb::LookupRsp>> got = co_await all(std::move(ops));
  std::vector<ReplicaView> views(n);
  attrs.assign(n, pb::Iatt());
  for (size_t i = 0; i < n; ++i) views[i].arbiter = is_arbiter(i);
  for (size_t i = 0; i < up.size(); ++i) {
    ReplicaView& v = views[up[i]];
    if (!got[i]) {
      // ENOENT (or ESTALE) is an answer: the replica lacks the inode. Anything else: unknown.
      int e = got[i].error().value;
      v.present = e == ENOENT || e == ESTALE;
      continue;
    }
    const pb::Iatt& a = got[i]->attr();
    v.present = v.exists = true;
    v.changelog = got[i]->changelog();
    v.type = a.mode() & S_IFMT;
    v.size = a.size();
    v.mtime_sec = a.mtime_sec();
    v.mtime_nsec = a.mtime_nsec();
    v.ctime_sec = a.ctime_sec();
    v.ctime_nsec = a.ctime_nsec();
    v.mode = a.mode() & 07777;
    v.uid = a.uid();
    v.gid = a.gid();
    attrs[up[i]] = a;
  }
  co_return views;
}

asio::awaitable<HealPlan::Verdict> Replicate::examine(Gfid gfid) {
  std::vector<pb::Iatt> attrs;
  std::vector<ReplicaView> views = co_await gather(gfid, attrs);
  uint32_t type = 0;
  for (const auto& v : views) {
    if (v.exists) type = v.type;
  }
  auto rank = [](HealPlan::Verdict v) {
    switch (v) {
      case HealPlan::Verdict::kInSync: return 0;
      case HealPlan::Verdict::kHeal: return 1;
      case HealPlan::Verdict::kNoSource: return 2;
      case HealPlan::Verdict::kSplitBrain: return 3;
    }
    return 0;
  };
  HealPlan::Verdict worst = HealPlan::Verdict::kInSync;
  for (Kind k : {Kind::kData, Kind::kMetadata, Kind::kEntry}) {
    if (k == Kind::kData && type != S_IFREG) continue;
    if (k == Kind::kEntry && type != S_IFDIR) continue;
    HealPlan plan = decide(views, k, config_.favorite_child);
    if (rank(plan.verdict) > rank(worst)) worst = plan.verdict;
  }
  co_return worst;
}

// ---- one inode ----

asio::awaitable<HealOutcome> Replicate::heal(Gfid gfid, HealRequest request) {
  // Entry heal creates inodes on sinks that must then be healed themselves; a full heal visits
  // every inode below. Breadth-first with an explicit queue: directory trees can be deep.
  std::deque<Gfid> todo{gfid};
  HealOutcome first = HealOutcome::kInSync;
  bool is_first = true;
  size_t visited = 0;
  while (!todo.empty() && !stopped_) {
    Gfid next = todo.front();
    todo.pop_front();
    HealRequest r = request;
    if (!is_first) {
      r.choice.reset();  // an explicit resolution is for the inode the administrator named
    }
    std::vector<Gfid> more;
    HealOutcome o = co_await heal_one(next, r, more);
    if (is_first) first = o;
    is_first = false;
    for (auto& g : more) todo.push_back(g);
    if (++visited % 4096 == 0) MLOG_INFO("{}: heal of {}: {} inodes visited", name(), gfid.str(), visited);
  }
  co_return first;
}

asio::awaitable<HealOutcome> Replicate::heal_one(Gfid gfid, HealRequest request,
                                                 std::vector<Gfid>& next) {
  std::vector<int> up = up_children();
  if (up.size() < 2) co_return HealOutcome::kNotPossible;
  // One healer per inode in this process: the lock below is the same owner for every heal of
  // this translator, so it does not keep two of them apart.
  for (int waited = 0;; ++waited) {
    {
      std::lock_guard lock(mu_);
      if (healing_.insert(gfid).second) break;
    }
    if (request.skip_busy || waited >= 3000) co_return HealOutcome::kBusy;
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, std::chrono::milliseconds(10));
    auto waiting = timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto [ec] = co_await std::move(waiting);
    (void)ec;
  }
  struct Done {
    Replicate* self;
    Gfid gfid;
    ~Done() {
      std::lock_guard lock(self->mu_);
      self->healing_.erase(gfid);
    }
  } done{this, gfid};
  // One healer per inode across all clients and heal daemons.
  std::string domain_name = name() + ":self-heal";
  std::vector<Task<void>> tries;
  for (int c : up) {
    pb::InodelkReq req;
    req.set_domain(domain_name);
    req.set_gfid(raw(gfid));
    req.set_type(pb::WRITE_LOCK);
    req.set_blocking(false);
    req.set_owner(heal_owner());
    tries.push_back(children()[c]->inodelk(heal_context(), req));
  }
  std::vector<Result<void>> got = co_await all(std::move(tries));
  std::vector<int> locked;
  bool busy = false;
  for (size_t i = 0; i < up.size(); ++i) {
    if (got[i]) {
      locked.push_back(up[i]);
    } else if (got[i].error().value == EAGAIN) {
      busy = true;
    }
  }
  HealOutcome outcome = HealOutcome::kBusy;
  if (!busy && locked.size() >= 2) {
    outcome = co_await heal_locked(gfid, request, next);
  } else if (!busy) {
    outcome = HealOutcome::kNotPossible;
  }
  std::vector<Task<void>> unlocks;
  for (int c : locked) {
    pb::InodelkReq req;
    req.set_domain(domain_name);
    req.set_gfid(raw(gfid));
    req.set_type(pb::UNLOCK);
    req.set_owner(heal_owner());
    unlocks.push_back(children()[c]->inodelk(heal_context(), req));
  }
  std::vector<Result<void>> unlocked = co_await all(std::move(unlocks));
  (void)unlocked;
  switch (outcome) {
    case HealOutcome::kHealed: ++stats_.healed; break;
    case HealOutcome::kSplitBrain: ++stats_.split_brain; break;
    default: break;
  }
  co_return outcome;
}

asio::awaitable<HealOutcome> Replicate::heal_locked(Gfid gfid, HealRequest request,
                                                    std::vector<Gfid>& next) {
  size_t n = children().size();
  std::vector<pb::Iatt> attrs;
  std::vector<ReplicaView> views = co_await gather(gfid, attrs);
  uint32_t type = 0;
  bool marks = false, missing = false;
  for (const auto& v : views) {
    if (v.exists) {
      type = v.type;
      marks |= needs_heal(v.changelog);
    } else if (v.present) {
      missing = true;
    }
  }
  if (type == 0) co_return HealOutcome::kNotPossible;  // nobody reachable has it
  if (!marks && !request.full && !request.choice) co_return HealOutcome::kInSync;
  (void)missing;

  std::vector<Kind> kinds;
  if (type == S_IFDIR) kinds.push_back(Kind::kEntry);
  kinds.push_back(Kind::kMetadata);
  if (type == S_IFREG) kinds.push_back(Kind::kData);

  bool healed = false, split = false, impossible = false;
  for (size_t ki = 0; ki < kinds.size(); ++ki) {
    Kind kind = kinds[ki];
    // A directory with more names to change than one lock hold may take: the lock goes, so
    // applications waiting for it get their turn, and the heal takes it again.
    bool again = false;
    LockKind lock_kind = kind == Kind::kData ? kDataLock
                         : kind == Kind::kMetadata ? kMetadataLock
                                                   : kEntryLock;
    std::vector<int> locked;
    Result<void> l = co_await lock_children(gfid, lock_kind, up_children(), locked, heal_owner());
    if (!l || locked.size() < 2) {
      co_await unlock_children(gfid, lock_kind, locked, heal_owner());
      impossible = true;
      continue;
    }
    // Under the lock, what the replicas say is what heal acts on; nobody changes it meanwhile.
    views = co_await gather(gfid, attrs);
    for (size_t c = 0; c < n; ++c) {
      if (std::find(locked.begin(), locked.end(), static_cast<int>(c)) == locked.end()) {
        views[c].present = false;  // not locked: must not be touched
      }
    }
    HealPlan plan = decide(views, kind, config_.favorite_child);
    // An administrator's choice settles split-brain; kinds that are not split heal as usual.
    if (request.choice && plan.verdict == HealPlan::Verdict::kSplitBrain) {
      Checked<HealPlan> chosen =
          resolve_split_brain(views, kind, *request.choice, request.source_brick);
      if (!chosen) {
        MLOG_WARN("{}: cannot resolve {} of {}: {}", name(), kind_name(kind), gfid.str(),
                  chosen.error());
        if (request.notes) request.notes->push_back(chosen.error());
        co_await unlock_children(gfid, lock_kind, locked, heal_owner());
        split = true;
        continue;
      }
      plan = *chosen;
    }
    // A full heal of a directory merges names even when no marks ask for it: the brick may
    // have been replaced by an empty one.
    if (kind == Kind::kEntry && request.full && plan.verdict == HealPlan::Verdict::kInSync) {
      for (size_t c = 0; c < n; ++c) {
        if (views[c].exists) plan.sources.push_back(static_cast<int>(c));
        else if (views[c].present) plan.sinks.push_back(static_cast<int>(c));
      }
      plan.verdict = HealPlan::Verdict::kHeal;
      plan.reason = "full heal";
    }
    if (plan.verdict == HealPlan::Verdict::kSplitBrain) {
      MLOG_WARN("{}: {} split-brain on {}: {}", name(), kind_name(kind), gfid.str(), plan.reason);
      if (request.notes) request.notes->push_back(std::string(kind_name(kind)) + " split-brain: " + plan.reason);
      split = true;
    } else if (plan.verdict == HealPlan::Verdict::kNoSource) {
      if (request.notes) request.notes->push_back(plan.reason);
      impossible = true;
    } else if (plan.verdict == HealPlan::Verdict::kHeal) {
      // A sink without the inode gets it from its parent's entry heal; until then its marks stay.
      std::vector<int> sinks;
      for (int s : plan.sinks) {
        if (views[s].exists) sinks.push_back(s);
        else impossible = true;
      }
      plan.sinks = sinks;
      Result<void> r = ok();
      if (kind == Kind::kData) {
        std::vector<int> data_sinks;
        for (int s : sinks) {
          if (!is_arbiter(s)) data_sinks.push_back(s);
        }
        int source = plan.sources.front();
        if (!data_sinks.empty()) {
          r = co_await heal_data(gfid, source, data_sinks, views[source].size);
        }
        // The copy stamped the sinks' times; the source's are the file's.
        if (r && !sinks.empty()) {
          pb::SetattrReq times;
          times.set_valid(pb::SET_ATIME | pb::SET_MTIME);
          times.set_atime_sec(attrs[source].atime_sec());
          times.set_atime_nsec(attrs[source].atime_nsec());
          times.set_mtime_sec(attrs[source].mtime_sec());
          times.set_mtime_nsec(attrs[source].mtime_nsec());
          std::vector<Task<AttrPair>> ops;
          for (int s : data_sinks) ops.push_back(children()[s]->setattr(heal_context(), gfid, nullptr, times));
          std::vector<Result<AttrPair>> done = co_await all(std::move(ops));
          (void)done;
        }
      } else if (kind == Kind::kMetadata) {
        if (!sinks.empty()) {
          r = co_await heal_metadata(gfid, plan.sources.front(), sinks, attrs[plan.sources.front()]);
        }
      } else {
        // Sources that differ among themselves (a merge) heal each other: every copy is a sink
        // of the names the others have. Otherwise the sinks lose names no source has.
        bool merge = plan.sinks.empty() || plan.sources.size() > 1 ||
                     std::none_of(views.begin(), views.end(), [](const ReplicaView&) { return false; });
        bool prune = !sinks.empty() && plan.sources.size() < n &&
                     !(request.full && plan.reason == "full heal");
        // "Every replica is blamed; merging names" and "replicas differ": no pruning.
        if (plan.reason.find("merging") != std::string::npos) prune = false;
        (void)merge;
        std::vector<int> targets = sinks;
        if (!prune) {
          for (int s : plan.sources) targets.push_back(s);
          std::sort(targets.begin(), targets.end());
        }
        Result<EntryHeal> entries =
            co_await heal_entries(gfid, plan.sources, targets, prune, kEntryHealBudget);
        if (entries) {
          for (auto& g : entries->created) next.push_back(g);
          again = entries->more;
        } else {
          r = fail(entries.error());
        }
      }
      if (!r) {
        MLOG_WARN("{}: {} heal of {} failed: {}", name(), kind_name(kind), gfid.str(),
                  r.error().message());
        impossible = true;
      } else if (again) {
        // Not done: the marks stay until the last round.
      } else {
        std::vector<pb::Changelog> deltas = clearing_deltas(views, kind, plan);
        std::vector<Task<pb::Changelog>> clears;
        for (size_t c = 0; c < deltas.size(); ++c) {
          if (!needs_heal(deltas[c]) || !views[c].exists) continue;
          pb::ChangelogReq req;
          req.set_gfid(raw(gfid));
          *req.mutable_delta() = deltas[c];
          clears.push_back(children()[c]->changelog(heal_context(), req));
        }
        std::vector<Result<pb::Changelog>> cleared = co_await all(std::move(clears));
        for (auto& c : cleared) {
          if (!c) impossible = true;
        }
        healed = true;
        MLOG_INFO("{}: healed {} of {} ({})", name(), kind_name(kind), gfid.str(), plan.reason);
      }
    }
    co_await unlock_children(gfid, lock_kind, locked, heal_owner());
    if (again) --ki;
  }
  // Reads may use the healed replicas again.
  co_await refresh(inode(gfid), gfid);
  if (request.full && type == S_IFDIR) {
    // Visit everything below: a replaced brick lacks it all, without marks saying so.
    int source = -1;
    for (size_t c = 0; c < n; ++c) {
      if (views[c].exists && !is_arbiter(c)) {
        source = static_cast<int>(c);
        break;
      }
    }
    if (source >= 0) {
      Result<std::map<std::string, pb::Dirent>> listing = co_await list_dir(source, gfid);
      if (listing) {
        std::set<Gfid> queued(next.begin(), next.end());
        for (auto& [entry_name, d] : *listing) {
          Gfid g = Gfid::from_bytes(d.attr().gfid()).value_or(Gfid());
          if (!g.is_null() && queued.insert(g).second) next.push_back(g);
        }
      }
    }
  }
  if (split) co_return HealOutcome::kSplitBrain;
  if (impossible) co_return HealOutcome::kNotPossible;
  co_return healed ? HealOutcome::kHealed : HealOutcome::kInSync;
}

// ---- data ----

asio::awaitable<Result<void>> Replicate::heal_data(Gfid gfid, int source, std::vector<int> sinks,
                                                   uint64_t size) {
  Result<FdPtr> src = co_await children()[source]->open(heal_context(), gfid, O_RDONLY);
  if (!src) co_return fail(src.error());
  std::vector<FdPtr> dst;
  Result<void> outcome = ok();
  for (int s : sinks) {
    Result<FdPtr> f = co_await children()[s]->open(heal_context(), gfid, O_RDWR);
    if (!f) {
      outcome = fail(f.error());
      break;
    }
    dst.push_back(*f);
  }
  if (outcome) {
    // Sinks take the source's size first: a longer sink loses its tail, a shorter one grows
    // a hole that the block comparison fills where the source has data.
    std::vector<Task<AttrPair>> truncs;
    for (size_t i = 0; i < sinks.size(); ++i) {
      truncs.push_back(children()[sinks[i]]->truncate(heal_context(), gfid, dst[i], size));
    }
    std::vector<Result<AttrPair>> t = co_await all(std::move(truncs));
    for (auto& r : t) {
      if (!r) outcome = fail(r.error());
    }
  }
  const uint64_t block = config_.heal_block_size;
  const uint64_t span = block * 512;  // blocks per checksum request
  for (uint64_t start = 0; outcome && start < size; start += span) {
    uint64_t len = std::min(span, size - start);
    size_t blocks = (len + block - 1) / block;
    // Which blocks each sink needs.
    std::vector<std::vector<bool>> need(sinks.size(), std::vector<bool>(blocks, true));
    if (config_.diff_heal) {
      std::vector<Task<pb::ChecksumRsp>> sums;
      std::vector<int> who{source};
      for (int s : sinks) who.push_back(s);
      for (int c : who) {
        pb::ChecksumReq req;
        req.set_gfid(raw(gfid));
        req.set_offset(start);
        req.set_length(len);
        req.set_block_size(static_cast<uint32_t>(block));
        sums.push_back(children()[c]->checksum(heal_context(), req));
      }
      std::vector<Result<pb::ChecksumRsp>> got = co_await all(std::move(sums));
      for (auto& g : got) {
        if (!g) outcome = fail(g.error());
      }
      if (!outcome) break;
      const auto& theirs = got[0]->sums();
      for (size_t i = 0; i < sinks.size(); ++i) {
        const auto& mine = got[i + 1]->sums();
        for (size_t b = 0; b < blocks; ++b) {
          need[i][b] = b >= static_cast<size_t>(theirs.size()) ||
                       b >= static_cast<size_t>(mine.size()) || theirs[b] != mine[b];
        }
      }
    }
    // Copy the needed blocks, a few at a time so the round trips overlap.
    constexpr size_t kInFlight = 8;
    std::vector<size_t> wanted;
    for (size_t b = 0; b < blocks; ++b) {
      bool any = false;
      for (size_t i = 0; i < sinks.size(); ++i) any |= need[i][b];
      if (any) {
        wanted.push_back(b);
      } else {
        stats_.blocks_skipped += 1;
      }
    }
    for (size_t w = 0; outcome && w < wanted.size(); w += kInFlight) {
      std::vector<Task<Buffer>> reads;
      size_t batch = std::min(kInFlight, wanted.size() - w);
      for (size_t j = 0; j < batch; ++j) {
        uint64_t off = start + wanted[w + j] * block;
        uint32_t want = static_cast<uint32_t>(std::min(block, size - off));
        reads.push_back(children()[source]->read(heal_context(), *src, off, want));
      }
      std::vector<Result<Buffer>> data = co_await all(std::move(reads));
      std::vector<Task<pb::WriteRsp>> writes;
      std::vector<Task<pb::Iatt>> holes;
      struct Hole {
        size_t sink;
        uint64_t off;
        Buffer zeros;
      };
      std::vector<Hole> hole_at;  // parallel to `holes`
      for (size_t j = 0; j < batch; ++j) {
        if (!data[j]) {
          outcome = fail(data[j].error());
          break;
        }
        uint64_t off = start + wanted[w + j] * block;
        bool zero = all_zero(*data[j]);
        for (size_t i = 0; i < sinks.size(); ++i) {
          if (!need[i][wanted[w + j]]) continue;
          if (zero) {
            // Keep the sink as sparse as the source probably is.
            holes.push_back(children()[sinks[i]]->fallocate(
                heal_context(), dst[i], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                data[j]->size()));
            hole_at.push_back(Hole{i, off, *data[j]});
          } else {
            writes.push_back(children()[sinks[i]]->write(heal_context(), dst[i], off, *data[j]));
            stats_.bytes_healed += data[j]->size();
          }
        }
        stats_.blocks_healed += 1;
      }
      std::vector<Result<pb::WriteRsp>> wrote = co_await all(std::move(writes));
      std::vector<Result<pb::Iatt>> punched = co_await all(std::move(holes));
      for (auto& r : wrote) {
        if (!r) outcome = fail(r.error());
      }
      // A file system without hole punching gets the zeros written instead.
      std::vector<Task<pb::WriteRsp>> zero_writes;
      for (size_t k = 0; k < punched.size(); ++k) {
        if (punched[k]) continue;
        if (punched[k].error().value != EOPNOTSUPP) {
          outcome = fail(punched[k].error());
          continue;
        }
        const Hole& h = hole_at[k];
        zero_writes.push_back(children()[sinks[h.sink]]->write(heal_context(), dst[h.sink], h.off, h.zeros));
        stats_.bytes_healed += h.zeros.size();
      }
      std::vector<Result<pb::WriteRsp>> zeroed = co_await all(std::move(zero_writes));
      for (auto& r : zeroed) {
        if (!r) outcome = fail(r.error());
      }
    }
  }
  if (outcome) {
    std::vector<Task<void>> syncs;
    for (size_t i = 0; i < dst.size(); ++i) syncs.push_back(children()[sinks[i]]->fsync(heal_context(), dst[i], true));
    std::vector<Result<void>> synced = co_await all(std::move(syncs));
    for (auto& r : synced) {
      if (!r) outcome = fail(r.error());
    }
  }
  co_await children()[source]->release(*src);
  for (size_t i = 0; i < dst.size(); ++i) co_await children()[sinks[i]]->release(dst[i]);
  co_return outcome;
}

// ---- metadata ----

asio::awaitable<Result<void>> Replicate::heal_metadata(Gfid gfid, int source,
                                                       std::vector<int> sinks, pb::Iatt attr) {
  bool symlink = (attr.mode() & S_IFMT) == S_IFLNK;
  pb::SetattrReq req;
  uint32_t valid = pb::SET_UID | pb::SET_GID;
  if (!symlink) valid |= pb::SET_MODE | pb::SET_ATIME | pb::SET_MTIME;
  req.set_valid(valid);
  req.set_mode(attr.mode() & 07777);
  req.set_uid(attr.uid());
  req.set_gid(attr.gid());
  req.set_atime_sec(attr.atime_sec());
  req.set_atime_nsec(attr.atime_nsec());
  req.set_mtime_sec(attr.mtime_sec());
  req.set_mtime_nsec(attr.mtime_nsec());
  for (int s : sinks) {
    Result<AttrPair> r = co_await children()[s]->setattr(heal_context(), gfid, nullptr, req);
    if (!r) co_return fail(r.error());
  }
  if (symlink) co_return ok();
  // Extended attributes: the source's set, exactly.
  Result<std::vector<std::string>> names = co_await children()[source]->listxattr(heal_context(), gfid, nullptr);
  if (!names) co_return fail(names.error());
  std::map<std::string, std::string> wanted;
  for (const auto& x : *names) {
    Result<std::string> v = co_await children()[source]->getxattr(heal_context(), gfid, nullptr, x);
    if (v) wanted[x] = *v;
    else if (v.error().value != ENODATA) co_return fail(v.error());
  }
  for (int s : sinks) {
    Result<std::vector<std::string>> have = co_await children()[s]->listxattr(heal_context(), gfid, nullptr);
    if (!have) co_return fail(have.error());
    for (const auto& x : *have) {
      if (wanted.count(x)) continue;
      Result<void> r = co_await children()[s]->removexattr(heal_context(), gfid, nullptr, x);
      if (!r && r.error().value != ENODATA) co_return fail(r.error());
    }
    for (const auto& [x, v] : wanted) {
      Result<std::string> cur = co_await children()[s]->getxattr(heal_context(), gfid, nullptr, x);
      if (cur && *cur == v) continue;
      Result<void> r = co_await children()[s]->setxattr(heal_context(), gfid, nullptr, x, v, 0);
      if (!r) co_return fail(r.error());
    }
  }
  co_return ok();
}

// ---- entries ----

asio::awaitable<Result<std::map<std::string, pb::Dirent>>> Replicate::list_dir(int child, Gfid dir) {
  Result<FdPtr> fd = co_await children()[child]->opendir(heal_context(), dir);
  if (!fd) co_return fail(fd.error());
  std::map<std::string, pb::Dirent> out;
  uint64_t offset = 0;
  Result<void> outcome = ok();
  for (;;) {
    Result<pb::ReaddirRsp> r = co_await children()[child]->readdir(heal_context(), *fd, offset, 64 * 1024, true);
    if (!r) {
      outcome = fail(r.error());
      break;
    }
    for (auto& e : *r->mutable_entries()) {
      offset = e.offset();
      if (e.name() == "." || e.name() == "..") continue;
      std::string entry_name = e.name();
      out.emplace(std::move(entry_name), std::move(e));
    }
    if (r->eof() || r->entries_size() == 0) break;
  }
  co_await children()[child]->release(*fd);
  if (!outcome) co_return fail(outcome.error());
  co_return out;
}

asio::awaitable<Result<void>> Replicate::remove_tree(int child, Gfid parent, std::string entry,
                                                     pb::Iatt attr) {
  Gfid g = Gfid::from_bytes(attr.gfid()).value_or(Gfid());
  if ((attr.mode() & S_IFMT) == S_IFDIR) {
    Result<std::map<std::string, pb::Dirent>> inside = co_await list_dir(child, g);
    if (!inside) co_return fail(inside.error());
    for (auto& [sub, d] : *inside) {
      Result<void> r = co_await remove_tree(child, g, sub, d.attr());
      if (!r) co_return r;
    }
    pb::RmdirReq req;
    req.set_parent(raw(parent));
    req.set_name(entry);
    req.set_gfid(attr.gfid());
    Result<void> r = co_await children()[child]->rmdir(heal_context(), req);
    if (!r && r.error().value != ENOENT) co_return r;
    co_return ok();
  }
  pb::UnlinkReq req;
  req.set_parent(raw(parent));
  req.set_name(entry);
  req.set_gfid(attr.gfid());
  Result<void> r = co_await children()[child]->unlink(heal_context(), req);
  if (!r && r.error().value != ENOENT) co_return r;
  co_return ok();
}

asio::awaitable<Result<void>> Replicate::recreate(Gfid parent, std::string entry, pb::Iatt attr,
                                                  int source, int sink) {
  size_t n = children().size();
  Gfid g = Gfid::from_bytes(attr.gfid()).value_or(Gfid());
  uint32_t type = attr.mode() & S_IFMT;
  // The inode may already be on the sink under another name (a hard link, or a rename whose
  // old name is still there): a new name for it, not a new inode.
  pb::LookupReq probe;
  probe.set_gfid(attr.gfid());
  Result<pb::LookupRsp> there = co_await children()[sink]->lookup_raw(heal_context(), probe);
  if (there && type != S_IFDIR) {
    pb::LinkReq req;
    req.set_gfid(attr.gfid());
    req.set_new_parent(raw(parent));
    req.set_new_name(entry);
    Result<pb::Iatt> r = co_await children()[sink]->link(heal_context(), req);
    if (!r) co_return fail(r.error());
    co_return ok();
  }
  if (there) {
    // A directory renamed while the sink was away; its old name goes when that directory is
    // healed, and the next heal creates this one.
    co_return fail(EEXIST);
  }
  // Before the sink gets an empty inode, the source says the sink lacks its content: if heal
  // stops here, the next one knows which copy is right.
  std::vector<Kind> kinds{Kind::kMetadata};
  if (type == S_IFREG) kinds.push_back(Kind::kData);
  if (type == S_IFDIR) kinds.push_back(Kind::kEntry);
  pb::ChangelogReq mark = blame_mark(g, n, sink, kinds);
  Result<pb::Changelog> marked = co_await children()[source]->changelog(heal_context(), mark);
  if (!marked) co_return fail(marked.error());
  uint32_t perm = attr.mode() & 07777;
  switch (type) {
    case S_IFREG: {
      pb::CreateReq req;
      req.set_parent(raw(parent));
      req.set_name(entry);
      req.set_gfid(attr.gfid());
      req.set_mode(perm);
      req.set_flags(O_WRONLY | O_EXCL);
      req.set_uid(attr.uid());
      req.set_gid(attr.gid());
      Result<Created> r = co_await children()[sink]->create(heal_context(), req);
      if (!r) co_return fail(r.error());
      co_await children()[sink]->release(r->fd);
      co_return ok();
    }
    case S_IFDIR: {
      pb::MkdirReq req;
      req.set_parent(raw(parent));
      req.set_name(entry);
      req.set_gfid(attr.gfid());
      req.set_mode(perm);
      req.set_uid(attr.uid());
      req.set_gid(attr.gid());
      Result<pb::Iatt> r = co_await children()[sink]->mkdir(heal_context(), req);
      if (!r) co_return fail(r.error());
      co_return ok();
    }
    case S_IFLNK: {
      Result<std::string> target = co_await children()[source]->readlink(heal_context(), g);
      if (!target) co_return fail(target.error());
      pb::SymlinkReq req;
      req.set_parent(raw(parent));
      req.set_name(entry);
      req.set_gfid(attr.gfid());
      req.set_target(*target);
      req.set_uid(attr.uid());
      req.set_gid(attr.gid());
      Result<pb::Iatt> r = co_await children()[sink]->symlink(heal_context(), req);
      if (!r) co_return fail(r.error());
      co_return ok();
    }
    default: {
      pb::MknodReq req;
      req.set_parent(raw(parent));
      req.set_name(entry);
      req.set_gfid(attr.gfid());
      req.set_mode(attr.mode());
      req.set_rdev(attr.rdev());
      req.set_uid(attr.uid());
      req.set_gid(attr.gid());
      Result<pb::Iatt> r = co_await children()[sink]->mknod(heal_context(), req);
      if (!r) co_return fail(r.error());
      co_return ok();
    }
  }
}

asio::awaitable<Result<Replicate::EntryHeal>> Replicate::heal_entries(Gfid dir,
                                                                       std::vector<int> sources,
                                                                       std::vector<int> sinks,
                                                                       bool prune, size_t budget) {
  size_t n = children().size();
  std::vector<std::optional<std::map<std::string, pb::Dirent>>> listing(n);
  std::set<int> involved(sources.begin(), sources.end());
  involved.insert(sinks.begin(), sinks.end());
  for (int c : involved) {
    Result<std::map<std::string, pb::Dirent>> l = co_await list_dir(c, dir);
    if (!l) co_return fail(l.error());
    listing[c] = std::move(*l);
  }
  EntryHeal result;
  std::vector<Gfid>& created = result.created;
  size_t changes = 0;
  Result<void> outcome = ok();
  // The names every source agrees on, or for a merge, the union; one source per name.
  std::map<std::string, std::pair<int, pb::Iatt>> want;
  std::set<std::string> conflicting;
  for (int s : sources) {
    for (auto& [entry, d] : *listing[s]) {
      auto [it, fresh] = want.try_emplace(entry, s, d.attr());
      if (!fresh && (it->second.second.gfid() != d.attr().gfid() ||
                     (it->second.second.mode() & S_IFMT) != (d.attr().mode() & S_IFMT))) {
        conflicting.insert(entry);
      }
      // The arbiter holds no data: prefer a data replica as the source of a file.
      if (!fresh && is_arbiter(it->second.first) && !is_arbiter(s)) it->second = {s, d.attr()};
    }
  }
  for (const auto& entry : conflicting) {
    MLOG_WARN("{}: '{}' in {} names different files on the sources (entry split-brain)", name(),
              entry, dir.str());
    want.erase(entry);
    ++stats_.split_brain;
    outcome = fail(EIO);
  }
  for (int sink : sinks) {
    if (result.more) break;
    auto& have = *listing[sink];
    if (prune) {
      for (auto& [entry, d] : have) {
        if (changes >= budget) {
          result.more = true;
          break;
        }
        auto w = want.find(entry);
        if (w != want.end() && w->second.second.gfid() == d.attr().gfid() &&
            (w->second.second.mode() & S_IFMT) == (d.attr().mode() & S_IFMT)) {
          continue;
        }
        if (conflicting.count(entry)) continue;
        // Gone from the sources (deleted, renamed, or replaced by another file of that name).
        ++changes;
        Result<void> r = co_await remove_tree(sink, dir, entry, d.attr());
        if (!r) {
          MLOG_WARN("{}: cannot remove stale '{}' in {} on child {}: {}", name(), entry,
                    dir.str(), sink, r.error().message());
          outcome = fail(r.error());
        }
      }
    }
    // This round's creations run in parallel: one round trip's wait for all of them.
    std::vector<std::string> names;
    std::vector<Gfid> gfids;
    std::vector<Task<void>> creations;
    for (auto& [entry, src] : want) {
      if (result.more) break;
      auto h = have.find(entry);
      if (h != have.end()) {
        if (h->second.attr().gfid() == src.second.gfid()) continue;
        if (!prune) {
          // A merge never removes: the same name for two files is for an administrator.
          MLOG_WARN("{}: '{}' in {} names different files (entry split-brain)", name(), entry,
                    dir.str());
          ++stats_.split_brain;
          outcome = fail(EIO);
          continue;
        }
      }
      if (src.first == sink) continue;
      Gfid g = Gfid::from_bytes(src.second.gfid()).value_or(Gfid());
      // Two names of one inode (hard links) are made one after the other: the second links
      // to what the first created.
      bool linked_twice = std::find(gfids.begin(), gfids.end(), g) != gfids.end();
      if (changes >= budget || linked_twice) {
        result.more = true;
        break;
      }
      ++changes;
      names.push_back(entry);
      gfids.push_back(g);
      creations.push_back(recreate(dir, entry, src.second, src.first, sink));
    }
    std::vector<Result<void>> made = co_await all(std::move(creations));
    for (size_t k = 0; k < made.size(); ++k) {
      if (!made[k]) {
        MLOG_WARN("{}: cannot create '{}' in {} on child {}: {}", name(), names[k], dir.str(),
                  sink, made[k].error().message());
        outcome = fail(made[k].error());
        continue;
      }
      if (std::find(created.begin(), created.end(), gfids[k]) == created.end()) {
        created.push_back(gfids[k]);
      }
    }
  }
  if (!outcome) co_return fail(outcome.error());
  co_return result;
}

// ---- the heal indexes ----

asio::awaitable<std::vector<pb::HealEntry>> Replicate::pending_heals(size_t max) {
  std::vector<int> up = up_children();
  std::vector<Task<pb::HealIndexRsp>> ops;
  for (int c : up) {
    pb::HealIndexReq req;
    req.set_max(static_cast<uint32_t>(std::min<size_t>(max, UINT32_MAX)));
    req.set_with_paths(true);
    ops.push_back(children()[c]->heal_index(heal_context(), req));
  }
  std::vector<Result<pb::HealIndexRsp>> got = co_await all(std::move(ops));
  std::vector<pb::HealEntry> out;
  std::set<std::string> seen;
  for (auto& r : got) {
    if (!r) continue;
    for (auto& e : *r->mutable_entries()) {
      if (out.size() >= max) break;
      if (!seen.insert(e.gfid()).second) continue;
      out.push_back(std::move(e));
    }
  }
  co_return out;
}

asio::awaitable<std::vector<Result<pb::HealIndexRsp>>> Replicate::heal_index_by_child(size_t max) {
  std::vector<Task<pb::HealIndexRsp>> ops;
  for (size_t c = 0; c < children().size(); ++c) {
    pb::HealIndexReq req;
    req.set_max(static_cast<uint32_t>(std::min<size_t>(max, UINT32_MAX)));
    req.set_with_paths(max > 0);
    if (up_[c]) {
      ops.push_back(children()[c]->heal_index(heal_context(), req));
    } else {
      ops.push_back([]() -> Task<pb::HealIndexRsp> { co_return fail(ENOTCONN); }());
    }
  }
  std::vector<Result<pb::HealIndexRsp>> got = co_await all(std::move(ops));
  co_return got;
}

asio::awaitable<uint64_t> Replicate::pending_count() {
  std::vector<Task<pb::HealIndexRsp>> ops;
  for (int c : up_children()) {
    pb::HealIndexReq req;
    req.set_max(0);
    ops.push_back(children()[c]->heal_index(heal_context(), req));
  }
  std::vector<Result<pb::HealIndexRsp>> got = co_await all(std::move(ops));
  uint64_t total = 0;
  for (auto& r : got) {
    if (r) total += r->total();
  }
  co_return total;
}

}  // namespace mortar::xl::afr
