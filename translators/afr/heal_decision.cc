#include "translators/afr/heal_decision.h"

#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <tuple>

namespace mortar::xl::afr {
namespace {

using Verdict = HealPlan::Verdict;
constexpr int kKinds = 3;

int64_t counter(const google::protobuf::RepeatedField<int64_t>& field, size_t index) {
  return index < static_cast<size_t>(field.size()) ? field.Get(static_cast<int>(index)) : 0;
}

// A replica without the inode has no changelog for it, whatever the view carries.
int64_t pending(const ReplicaView& r, size_t slot, Kind kind) {
  return r.exists ? counter(r.changelog.pending(), slot * kKinds + static_cast<size_t>(kind)) : 0;
}
int64_t dirty(const ReplicaView& r, Kind kind) {
  return r.exists ? counter(r.changelog.dirty(), static_cast<size_t>(kind)) : 0;
}

// Who accuses whom of missing changes of one kind, among the replicas that answered.
struct Accusations {
  std::vector<bool> blamed;     // by another present replica
  bool among_present = false;   // some present replica blames another present one
  bool dirty = false;           // some present replica has a transaction of the kind open
  bool self = false;            // some present replica accuses itself (ignored as blame)
  bool against_absent = false;  // some present replica accuses a slot that did not answer
};

Accusations accusations(const std::vector<ReplicaView>& replicas, Kind kind) {
  const size_t n = replicas.size();
  Accusations a;
  a.blamed.assign(n, false);
  for (size_t x = 0; x < n; ++x) {
    const ReplicaView& r = replicas[x];
    if (!r.present || !r.exists) continue;
    if (dirty(r, kind) != 0) a.dirty = true;
    // The changelog may name more slots than the set has now; those are absent too.
    const size_t named = (static_cast<size_t>(r.changelog.pending_size()) + kKinds - 1) / kKinds;
    const size_t slots = std::max(n, named);
    for (size_t y = 0; y < slots; ++y) {
      if (pending(r, y, kind) == 0) continue;
      if (y == x) {
        a.self = true;
      } else if (y < n && replicas[y].present) {
        a.blamed[y] = true;
        a.among_present = true;
      } else {
        a.against_absent = true;
      }
    }
  }
  return a;
}

// A replica that may hold the good copy of the kind: an arbiter holds no data.
bool candidate(const ReplicaView& r, Kind kind) {
  return r.present && r.exists && !(kind == Kind::kData && r.arbiter);
}

std::vector<int> candidates(const std::vector<ReplicaView>& replicas, Kind kind) {
  std::vector<int> out;
  for (size_t i = 0; i < replicas.size(); ++i)
    if (candidate(replicas[i], kind)) out.push_back(static_cast<int>(i));
  return out;
}

bool all_present(const std::vector<ReplicaView>& replicas) {
  return std::ranges::all_of(replicas, &ReplicaView::present);
}

std::tuple<int64_t, uint32_t> mtime(const ReplicaView& r) { return {r.mtime_sec, r.mtime_nsec}; }
std::tuple<int64_t, uint32_t> ctime(const ReplicaView& r) { return {r.ctime_sec, r.ctime_nsec}; }

// Whether two replicas look like the same copy of the kind. An unknown content_id matches
// anything. `with_mtime`: each brick stamps mtime with its own clock, so replicas that applied
// the same writes differ in it by a little; only where a differing mtime must lead to a heal
// anyway (an interrupted transaction, where healing identical copies costs a checksum pass)
// is it compared.
bool alike(const ReplicaView& a, const ReplicaView& b, Kind kind, bool with_mtime) {
  if (!a.content_id.empty() && !b.content_id.empty() && a.content_id != b.content_id) return false;
  switch (kind) {
    case Kind::kData:
      return a.type == b.type && a.size == b.size && (!with_mtime || mtime(a) == mtime(b));
    case Kind::kMetadata:
      return a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid;
    case Kind::kEntry:
      return true;
  }
  return false;
}

// Pairwise, because "unknown matches anything" is not transitive.
bool all_alike(const std::vector<ReplicaView>& replicas, const std::vector<int>& slots, Kind kind,
               bool with_mtime) {
  for (size_t i = 0; i < slots.size(); ++i)
    for (size_t j = i + 1; j < slots.size(); ++j)
      if (!alike(replicas[slots[i]], replicas[slots[j]], kind, with_mtime)) return false;
  return true;
}

// The deterministic winner among copies that differ with nothing at stake that anyone
// acknowledged: the one that saw the most (largest, then newest) wins; ties go to the lowest
// slot. Entry heal merges names, so every copy contributes.
std::vector<int> pick(const std::vector<ReplicaView>& replicas, const std::vector<int>& slots,
                      Kind kind) {
  if (kind == Kind::kEntry || slots.empty()) return slots;
  auto key = [&](int i) {
    const ReplicaView& r = replicas[i];
    return kind == Kind::kData ? std::make_tuple(r.size, r.mtime_sec, r.mtime_nsec)
                               : std::make_tuple(uint64_t{0}, r.ctime_sec, r.ctime_nsec);
  };
  int best = slots.front();
  for (int i : slots)
    if (key(i) > key(best)) best = i;
  return {best};
}

// The one slot with the greatest key, or nothing on a tie.
template <class Key>
std::vector<int> unique_max(const std::vector<ReplicaView>& replicas, const std::vector<int>& slots,
                            Key key) {
  if (slots.empty()) return {};
  int best = slots.front();
  int ties = 0;
  for (int i : slots) {
    if (key(replicas[i]) > key(replicas[best])) {
      best = i;
      ties = 0;
    } else if (i != best && key(replicas[i]) == key(replicas[best])) {
      ++ties;
    }
  }
  if (ties > 0) return {};
  return {best};
}

// Two votes for the same copy: the same content when every copy's digest is known, else the
// same attributes of the kind with no known digest telling them apart.
bool same_for_majority(const ReplicaView& a, const ReplicaView& b, Kind kind, bool by_content) {
  if (by_content) return a.content_id == b.content_id;
  if (!a.content_id.empty() && !b.content_id.empty() && a.content_id != b.content_id) return false;
  switch (kind) {
    case Kind::kData:
      return a.size == b.size && mtime(a) == mtime(b);
    case Kind::kMetadata:
      return a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid;
    case Kind::kEntry:
      return true;
  }
  return false;
}

// The favorite child(ren) under `policy`, or nothing when the policy cannot choose.
std::vector<int> by_policy(const std::vector<ReplicaView>& replicas, const std::vector<int>& slots,
                           Kind kind, Policy policy) {
  auto size = [](const ReplicaView& r) { return r.size; };
  switch (policy) {
    case Policy::kNone:
      return {};
    case Policy::kSize:
      // Only data has a size worth comparing; the other kinds fall back to mtime.
      if (kind == Kind::kData) return unique_max(replicas, slots, size);
      return unique_max(replicas, slots, mtime);
    case Policy::kMtime:
      return unique_max(replicas, slots, mtime);
    case Policy::kCtime:
      return unique_max(replicas, slots, ctime);
    case Policy::kMajority: {
      const bool by_content =
          std::ranges::all_of(slots, [&](int i) { return !replicas[i].content_id.empty(); });
      // A partly known digest makes "same" non-transitive; a group must agree pairwise.
      for (int i : slots) {
        std::vector<int> agree;
        for (int j : slots) {
          const bool with_all = std::ranges::all_of(agree, [&](int k) {
            return same_for_majority(replicas[k], replicas[j], kind, by_content);
          });
          if (with_all && same_for_majority(replicas[i], replicas[j], kind, by_content))
            agree.push_back(j);
        }
        if (agree.size() * 2 > slots.size()) return agree;
      }
      return {};
    }
  }
  return {};
}

std::string_view policy_name(Policy policy) {
  switch (policy) {
    case Policy::kNone:
      return "none";
    case Policy::kSize:
      return "size";
    case Policy::kMtime:
      return "mtime";
    case Policy::kCtime:
      return "ctime";
    case Policy::kMajority:
      return "majority";
  }
  return "?";
}

// "replica 1" / "replicas 0, 2"
std::string slots_text(const std::vector<int>& slots) {
  std::string out = slots.size() == 1 ? "replica " : "replicas ";
  for (size_t i = 0; i < slots.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(slots[i]);
  }
  return out;
}

// Every present replica that is not a source needs the heal, except an unblamed arbiter in
// data heal: it holds no data to fix and no mark to lose.
std::vector<int> sinks_for(const std::vector<ReplicaView>& replicas, Kind kind,
                           const std::vector<int>& sources, const std::vector<bool>& blamed) {
  std::vector<int> out;
  for (size_t y = 0; y < replicas.size(); ++y) {
    const ReplicaView& r = replicas[y];
    if (!r.present || std::ranges::find(sources, static_cast<int>(y)) != sources.end()) continue;
    if (kind == Kind::kData && r.arbiter && !blamed[y]) continue;
    out.push_back(static_cast<int>(y));
  }
  return out;
}

HealPlan heal(const std::vector<ReplicaView>& replicas, Kind kind, std::vector<int> sources,
              const std::vector<bool>& blamed, std::string reason, bool by_policy = false) {
  HealPlan plan;
  plan.verdict = Verdict::kHeal;
  plan.sinks = sinks_for(replicas, kind, sources, blamed);
  plan.sources = std::move(sources);
  plan.resolved_by_policy = by_policy;
  plan.reason = std::move(reason);
  return plan;
}

HealPlan verdict(Verdict v, std::string reason) {
  HealPlan plan;
  plan.verdict = v;
  plan.reason = std::move(reason);
  return plan;
}

// No candidate is a source: let the policy choose, or report `unresolved`. The policy only
// runs with every replica's answer: one that did not answer may hold the copy it would pick.
HealPlan split_brain(const std::vector<ReplicaView>& replicas, Kind kind, Policy policy,
                     const std::vector<int>& cands, const std::vector<bool>& blamed,
                     std::string reason, Verdict unresolved) {
  if (policy != Policy::kNone && !cands.empty()) {
    const std::string name(policy_name(policy));
    if (!all_present(replicas)) {
      reason += " (favorite-child-policy " + name + " needs every replica to answer)";
    } else if (std::vector<int> winners = by_policy(replicas, cands, kind, policy);
               !winners.empty()) {
      return heal(replicas, kind, std::move(winners), blamed,
                  reason + "; resolved by favorite-child-policy " + name, true);
    } else {
      reason += " (favorite-child-policy " + name + " cannot choose)";
    }
  }
  return verdict(unresolved, std::move(reason));
}

}  // namespace

Checked<Policy> parse_policy(std::string_view text) {
  for (Policy p : {Policy::kNone, Policy::kSize, Policy::kMtime, Policy::kCtime, Policy::kMajority})
    if (text == policy_name(p)) return p;
  return invalid("unknown favorite-child-policy '" + std::string(text) +
                 "' (none, size, mtime, ctime, majority)");
}

HealPlan decide(const std::vector<ReplicaView>& replicas, Kind kind, Policy policy) {
  const auto present = std::ranges::count_if(replicas, &ReplicaView::present);
  if (present == 0) return verdict(Verdict::kNoSource, "no replica is reachable");
  const Accusations acc = accusations(replicas, kind);
  if (present == 1) {
    // Its sinks (or its sources) are away: nothing to compare, nothing to heal to.
    if (acc.dirty || acc.self || acc.against_absent)
      return verdict(Verdict::kNoSource, "only one replica is reachable");
    return verdict(Verdict::kInSync, "only one replica is reachable; it carries no marks");
  }

  const std::vector<int> cands = candidates(replicas, kind);
  std::vector<int> sources;
  for (int i : cands)
    if (!acc.blamed[i]) sources.push_back(i);

  if (acc.among_present) {
    std::vector<int> accused;
    for (size_t i = 0; i < replicas.size(); ++i)
      if (acc.blamed[i]) accused.push_back(static_cast<int>(i));
    const std::string blamed_text =
        slots_text(accused) + (accused.size() == 1 ? " is blamed" : " are blamed");
    if (!sources.empty()) {
      // Unblamed copies that differ saw an interrupted transaction while the blamed replica
      // was away; heal from one of them only.
      if (!all_alike(replicas, sources, kind, false)) {
        sources = pick(replicas, sources, kind);
        std::string reason =
            blamed_text + "; the unblamed copies differ, healing from " + slots_text(sources);
        return heal(replicas, kind, std::move(sources), acc.blamed, std::move(reason));
      }
      return heal(replicas, kind, std::move(sources), acc.blamed, blamed_text);
    }
    // A directory never splits: the union of names loses nothing a client created.
    if (kind == Kind::kEntry && !cands.empty())
      return heal(replicas, kind, cands, acc.blamed, "every replica is blamed; merging names");

    for (size_t i = 0; i < replicas.size(); ++i) {
      const ReplicaView& r = replicas[i];
      if (kind == Kind::kData && r.present && r.exists && r.arbiter && !acc.blamed[i])
        return split_brain(replicas, kind, policy, cands, acc.blamed,
                           "only the arbiter is unblamed", Verdict::kNoSource);
    }
    if (cands.empty()) return verdict(Verdict::kNoSource, "no reachable replica holds the inode");
    const bool mutual = cands.size() == 2 && pending(replicas[cands[0]], cands[1], kind) != 0 &&
                        pending(replicas[cands[1]], cands[0], kind) != 0;
    return split_brain(replicas, kind, policy, cands, acc.blamed,
                       mutual ? "each replica blames the other" : "every replica is blamed",
                       Verdict::kSplitBrain);
  }

  if (cands.empty()) return verdict(Verdict::kNoSource, "no reachable replica holds the inode");
  if (acc.dirty) {
    // No acknowledged write is at stake: any copy is acceptable, but all must end up the same.
    if (all_alike(replicas, cands, kind, true))
      return heal(replicas, kind, cands, acc.blamed, "interrupted transaction; replicas agree");
    return heal(replicas, kind, pick(replicas, cands, kind), acc.blamed,
                "interrupted transaction; replicas differ");
  }
  if (!all_alike(replicas, cands, kind, false)) {
    if (kind == Kind::kEntry)
      return heal(replicas, kind, cands, acc.blamed,
                  "replicas differ and none is blamed; merging names");
    return split_brain(replicas, kind, policy, cands, acc.blamed,
                       "replicas differ and none is blamed", Verdict::kSplitBrain);
  }
  if (!sinks_for(replicas, kind, cands, acc.blamed).empty())
    return heal(replicas, kind, cands, acc.blamed, "the inode is missing on some replicas");
  if (acc.self) return heal(replicas, kind, cands, acc.blamed, "a replica accuses itself");
  if (acc.against_absent)
    return verdict(Verdict::kNoSource, "the blamed replicas are not reachable");
  return verdict(Verdict::kInSync, "in sync");
}

Checked<HealPlan> resolve_split_brain(const std::vector<ReplicaView>& replicas, Kind kind,
                                      Choice choice, int source_brick) {
  // Like GlusterFS: choosing a copy to discard the others needs every copy's answer.
  if (replicas.size() < 2 || !all_present(replicas))
    return invalid(
        "Failed to obtain replies from all bricks of the replica (are they up?). Cannot resolve "
        "split-brain.");
  const bool directory =
      kind == Kind::kEntry ||
      std::ranges::any_of(replicas, [](const ReplicaView& r) { return S_ISDIR(r.type); });
  const Accusations acc = accusations(replicas, kind);
  const std::vector<int> cands = candidates(replicas, kind);
  std::vector<int> winners;
  std::string how;
  switch (choice) {
    case Choice::kBiggerFile:
      if (directory) return invalid("'bigger-file' not a valid option for directories.");
      if (kind == Kind::kMetadata)
        return invalid("Use source-brick option to heal metadata split-brain");
      winners = unique_max(replicas, cands, [](const ReplicaView& r) { return r.size; });
      if (winners.empty()) return invalid("No bigger file: the files have the same size");
      how = "bigger-file";
      break;
    case Choice::kLatestMtime:
      // A chmod or chown moves ctime, not mtime: mtime says nothing about metadata.
      if (kind == Kind::kMetadata)
        return invalid("Use source-brick option to heal metadata split-brain");
      winners = unique_max(replicas, cands, mtime);
      if (winners.empty() && kind != Kind::kEntry)
        return invalid("No difference in mtime: the files have the same mtime");
      how = "latest-mtime";
      break;
    case Choice::kSourceBrick: {
      if (source_brick < 0 || static_cast<size_t>(source_brick) >= replicas.size())
        return invalid("Invalid brick: replica " + std::to_string(source_brick) +
                       " is not in the replica set");
      const ReplicaView& r = replicas[source_brick];
      if (!r.exists)
        return invalid("the file does not exist on replica " + std::to_string(source_brick));
      if (kind == Kind::kData && r.arbiter)
        return invalid("replica " + std::to_string(source_brick) +
                       " is an arbiter and holds no data");
      winners = {source_brick};
      how = "source-brick " + std::to_string(source_brick);
      break;
    }
  }
  if (kind == Kind::kEntry) {
    // As GlusterFS does for a directory: making every replica look like one would delete the
    // names only the others hold. The choice applies to a name's gfid mismatch instead, in the
    // parent's entry heal.
    if (cands.empty()) return invalid("no reachable replica holds the directory");
    return heal(replicas, kind, cands, acc.blamed, how + " on a directory; merging names", true);
  }
  return heal(replicas, kind, std::move(winners), acc.blamed, "split-brain resolved by " + how,
              true);
}

std::vector<pb::Changelog> clearing_deltas(const std::vector<ReplicaView>& replicas, Kind kind,
                                           const HealPlan& plan) {
  const size_t n = replicas.size();
  std::vector<pb::Changelog> deltas(n);
  if (plan.verdict != Verdict::kHeal) return deltas;
  std::vector<bool> settled(n, false);
  for (int s : plan.sources) settled.at(s) = true;
  for (int s : plan.sinks) settled.at(s) = true;
  const auto k = static_cast<size_t>(kind);
  for (size_t x = 0; x < n; ++x) {
    const ReplicaView& r = replicas[x];
    if (!r.present || !r.exists) continue;
    std::vector<int64_t> p(n * kKinds, 0);
    bool any = false;
    for (size_t s = 0; s < n; ++s) {
      // A self-accusation blames nobody; clear it with the rest or the inode never leaves
      // the heal index.
      if (!settled[s] && s != x) continue;
      p[s * kKinds + k] = -pending(r, s, kind);
      any = any || p[s * kKinds + k] != 0;
    }
    const int64_t d = -dirty(r, kind);
    if (!any && d == 0) continue;
    deltas[x].mutable_pending()->Add(p.begin(), p.end());
    for (size_t i = 0; i < kKinds; ++i) deltas[x].add_dirty(i == k ? d : 0);
  }
  return deltas;
}

std::vector<bool> readable(const std::vector<ReplicaView>& replicas, Kind kind) {
  const Accusations acc = accusations(replicas, kind);
  std::vector<bool> out(replicas.size(), false);
  for (size_t i = 0; i < replicas.size(); ++i)
    out[i] = candidate(replicas[i], kind) && !acc.blamed[i];
  return out;
}

bool needs_heal(const pb::Changelog& changelog) {
  auto nonzero = [](int64_t v) { return v != 0; };
  return std::ranges::any_of(changelog.pending(), nonzero) ||
         std::ranges::any_of(changelog.dirty(), nonzero);
}

}  // namespace mortar::xl::afr
