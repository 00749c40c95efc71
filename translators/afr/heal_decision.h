// Self-heal decisions of cluster/replicate: from what each replica of an inode says (its
// changelog and attributes), which replicas are sources and sinks for one kind of heal, whether
// the inode is in split-brain, and which changelog deltas a finished heal applies. Pure
// functions: no I/O, so the heal daemon, lookup and `volume heal … info` share one answer.
//
// Rules (slot = index in the `replicas` vector = the replica's index in the changelog):
//  1. Only present replicas that hold the inode accuse. Replica y is *blamed* when another such
//     replica x has pending[y][kind] != 0 (non-zero, as the brick's heal index counts it).
//     A replica's accusation of itself is ignored.
//  2. Candidates = present replicas holding the inode (for kData, never an arbiter: it holds no
//     data). Sources = unblamed candidates. If only an arbiter is unblamed, data has no source
//     (kNoSource, "only the arbiter is unblamed").
//  3. Blame and a source: kHeal. Sinks = every present replica that is not a source, except an
//     unblamed arbiter in data heal (a blamed one is a sink: its data "heal" clears its marks).
//     If the unblamed sources themselves differ (an interrupted transaction while a replica was
//     away), the pick of rule 5 narrows them and the others become sinks.
//  4. Every candidate blamed: split-brain ("each replica blames the other" / "every replica is
//     blamed"), unless the favorite-child policy resolves it: kSize → the bigger file (data;
//     other kinds use mtime), kMtime / kCtime → the latest, kMajority → the copy more than half
//     of the candidates agree on (content_id when all have one, else (size, mtime) for data and
//     (type, mode, uid, gid) for metadata). Ties leave it unresolved. A policy only runs when
//     every replica answered: an absent one may hold the copy the policy would have chosen.
//     Entry (directory) heal never splits: it merges names from every candidate (a
//     conservative merge, as GlusterFS does; a gfid mismatch of one name is the parent's
//     entry heal's business, decided per name).
//  5. No blame among present replicas:
//     - some dirty mark (a client died mid-transaction): if the candidates look identical
//       (data: size, mtime, content_id; metadata: type, mode, uid, gid, content_id; entry:
//       content_id), all are sources and only the marks need clearing; otherwise one wins
//       (data: largest size, then latest mtime, then lowest slot; metadata: latest ctime, then
//       lowest slot; entry: all merge) and the others are sinks.
//     - no dirty mark: if the candidates differ in what must agree (times excluded: each brick
//       stamps mtime and ctime with its own clock), split-brain "replicas differ and none is
//       blamed" unless the policy resolves it (entry: merge). Identical: kInSync, or kHeal
//       with no sinks when only a self-accusation is left to clear, or kNoSource when the only
//       marks accuse replicas that are not present (their sinks are away).
//  6. A present replica without the inode (ENOENT) is never a source and is a sink whenever a
//     source exists. Whether to create it or to remove it elsewhere is the parent's entry heal's
//     decision, which runs first.
//  7. Fewer than two present replicas: heal cannot run. kInSync if that replica carries no mark
//     of the kind, else kNoSource ("only one replica is reachable").
//  8. Sources and sinks are filled only for kHeal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/brick.pb.h"
#include "translators/options.h"

namespace mortar::xl::afr {

enum class Kind { kData = 0, kMetadata = 1, kEntry = 2 };

// cluster.favorite-child-policy: how split-brain resolves itself without an administrator.
enum class Policy { kNone, kSize, kMtime, kCtime, kMajority };
// "none", "size", "mtime", "ctime", "majority".
Checked<Policy> parse_policy(std::string_view text);

struct ReplicaView {
  bool present = false;  // the replica answered (its brick is up and reachable)
  bool exists = false;   // the inode exists on it (false: ENOENT there)
  bool arbiter = false;  // holds no data: never a data source, but its accusations count
  pb::Changelog changelog;
  // What the replica says of the inode, for comparison and the policies.
  uint32_t type = 0;  // S_IFMT bits
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  int64_t ctime_sec = 0;
  uint32_t ctime_nsec = 0;
  uint32_t mode = 0;  // permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  // A digest of the content of the kind (data checksum, sorted xattrs, sorted names);
  // "" = unknown, which compares equal to anything.
  std::string content_id;
};

struct HealPlan {
  enum class Verdict { kInSync, kHeal, kSplitBrain, kNoSource };
  Verdict verdict = Verdict::kInSync;
  std::vector<int> sources;  // slots, ascending; for kEntry, names from all sources are merged
  std::vector<int> sinks;    // slots, ascending; never overlaps sources
  bool resolved_by_policy = false;  // split-brain resolved by favorite-child policy or the CLI
  std::string reason;               // one line for logs and heal info
};

// Sources and sinks for healing `kind` of one inode (rules above).
HealPlan decide(const std::vector<ReplicaView>& replicas, Kind kind, Policy policy = Policy::kNone);

// The CLI's explicit resolutions (`volume heal VOL split-brain bigger-file|latest-mtime|
// source-brick`). They apply whether or not decide() found split-brain, and, like GlusterFS,
// only when every replica answered.
enum class Choice { kBiggerFile, kLatestMtime, kSourceBrick };
Checked<HealPlan> resolve_split_brain(const std::vector<ReplicaView>& replicas, Kind kind,
                                      Choice choice, int source_brick = -1);

// The deltas (one per replica, to add with a ChangelogReq) that clear what a completed heal of
// `kind` by `plan` settled: on every present replica, minus its pending[s][kind] for every
// source and sink s and for itself, and minus its dirty[kind]. Marks against replicas that
// were not present stay (they were not healed), as do other kinds. A plan that is not kHeal
// clears nothing. Heal holds the inode's locks, so the values read are still current. An
// all-zero delta (needs_heal() false) needs no call.
std::vector<pb::Changelog> clearing_deltas(const std::vector<ReplicaView>& replicas, Kind kind,
                                           const HealPlan& plan);

// Which replicas may serve reads of `kind` now, from changelogs alone: present, holding the
// inode, not blamed by another present replica, and for kData not an arbiter.
std::vector<bool> readable(const std::vector<ReplicaView>& replicas, Kind kind);

// Whether a brick's changelog asks for any heal (any non-zero pending or dirty counter).
bool needs_heal(const pb::Changelog& changelog);

}  // namespace mortar::xl::afr
