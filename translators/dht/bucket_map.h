// The volume-wide bucket map of cluster/distribute: every name (parent GFID, basename) falls in
// one of 65,536 buckets, and the map says which replica set owns each bucket. The map is
// versioned; a bucket being moved by rebalance remembers its previous owner, and lookups ask
// both until the move is settled. Pure values and functions, no I/O.
// The reasoning: docs/design/distribution.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/gfid.h"
#include "translators/options.h"

namespace mortar::xl::dht {

inline constexpr uint32_t kBuckets = 65536;
// Sets are numbered 0..kMaxSets-1 (the order of cluster/distribute's subvolumes).
inline constexpr uint32_t kMaxSets = 4096;

// xxh3_64(parent GFID bytes ‖ basename) mod 65536. Part of the on-disk contract: bricks index
// their entries by it (brickd/meta_store.h computes the same function).
uint32_t bucket_of(const Gfid& parent, std::string_view name);

struct BucketMap {
  uint64_t version = 1;
  uint32_t sets = 0;
  // owner[b]: the set that owns bucket b (its new owner while it moves). kBuckets entries.
  std::vector<uint16_t> owner;
  // Buckets being moved, with the set they are moving away from. Never equal to owner[b].
  std::map<uint32_t, uint16_t> moving;

  uint32_t owner_of(uint32_t bucket) const { return owner[bucket]; }
  std::optional<uint32_t> previous_owner(uint32_t bucket) const {
    auto it = moving.find(bucket);
    if (it == moving.end()) return std::nullopt;
    return it->second;
  }
  // Buckets each set owns.
  std::vector<uint32_t> counts() const;
  bool operator==(const BucketMap&) const = default;
};

// Version 1 over `sets` sets: contiguous ranges whose sizes differ by at most one.
BucketMap even_map(uint32_t sets);

// The next version for `new_sets` sets, as even as possible (bucket counts differ by at most
// one) while moving the fewest buckets: a set keeps what it has up to its new share and gives
// away only the excess, its highest-numbered buckets first. Growing adds sets at the end;
// shrinking empties the sets numbered new_sets and up, which stay in the map (as previous
// owners of their buckets) until trimmed(). Every reassigned bucket is marked moving. Refused
// while buckets of the current version are still moving.
xl::Checked<BucketMap> rebalanced(const BucketMap& map, uint32_t new_sets);

// The next version with every bucket in [first, last] settled (no longer moving).
BucketMap settled(const BucketMap& map, uint32_t first = 0, uint32_t last = kBuckets - 1);

// The next version without trailing sets that own nothing and are no bucket's previous owner
// (after a drain is settled). Unchanged (same version) when there is nothing to trim.
BucketMap trimmed(const BucketMap& map);

// Compact text for a volfile option, e.g.
//   version=2;sets=3;map=0-21844:0,21845-43689:1,43690-65535:2;moving=43690-65535:1>2
// `map` lists runs of consecutive buckets with their owner ("a-b:s", or "a:s" for one
// bucket), in order, covering every bucket; `moving` (optional) lists runs of moving buckets
// as "a-b:old>new", where new must match `map`.
std::string encode(const BucketMap& map);
xl::Checked<BucketMap> decode(std::string_view text);

}  // namespace mortar::xl::dht
