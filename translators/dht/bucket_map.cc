#include "translators/dht/bucket_map.h"

#include <xxhash.h>

#include <cstring>

#include <algorithm>
#include <charconv>
#include <numeric>

namespace mortar::xl::dht {

uint32_t bucket_of(const Gfid& parent, std::string_view name) {
  // One contiguous key, on the stack for any name a directory can hold.
  char stack[Gfid::kSize + 256];
  std::string heap;
  char* key = stack;
  size_t len = Gfid::kSize + name.size();
  if (len > sizeof stack) {
    heap.resize(len);
    key = heap.data();
  }
  std::memcpy(key, parent.bytes().data(), Gfid::kSize);
  std::memcpy(key + Gfid::kSize, name.data(), name.size());
  return static_cast<uint32_t>(XXH3_64bits(key, len) % kBuckets);
}

std::vector<uint32_t> BucketMap::counts() const {
  std::vector<uint32_t> c(sets, 0);
  for (uint16_t s : owner) {
    if (s < c.size()) ++c[s];
  }
  return c;
}

BucketMap even_map(uint32_t sets) {
  BucketMap m;
  m.sets = sets;
  m.owner.resize(kBuckets);
  for (uint32_t b = 0; b < kBuckets; ++b) {
    m.owner[b] = static_cast<uint16_t>(uint64_t{b} * sets / kBuckets);
  }
  return m;
}

xl::Checked<BucketMap> rebalanced(const BucketMap& map, uint32_t new_sets) {
  if (!map.moving.empty()) {
    return xl::invalid("bucket map version " + std::to_string(map.version) + " still has " +
                       std::to_string(map.moving.size()) +
                       " buckets moving: settle them before the next change");
  }
  if (new_sets == 0 || new_sets > kMaxSets) {
    return xl::invalid("a bucket map needs between 1 and " + std::to_string(kMaxSets) +
                       " sets, not " + std::to_string(new_sets));
  }
  uint32_t total = std::max(map.sets, new_sets);
  std::vector<uint32_t> have = map.counts();
  have.resize(total, 0);

  // Shares: q each, one more for r of them. The extra ones go to the sets that hold the most
  // already, so they give away less.
  uint32_t q = kBuckets / new_sets, r = kBuckets % new_sets;
  std::vector<uint32_t> order(new_sets);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return have[a] > have[b]; });
  std::vector<uint32_t> share(total, 0);
  for (uint32_t i = 0; i < new_sets; ++i) share[order[i]] = q + (i < r ? 1 : 0);

  // Each set over its share gives away its highest-numbered buckets; the pool keeps donors in
  // set order and each donor's buckets ascending, so receivers get few, long runs.
  std::vector<uint32_t> excess(total, 0);
  for (uint32_t s = 0; s < total; ++s) excess[s] = have[s] > share[s] ? have[s] - share[s] : 0;
  std::vector<std::vector<uint32_t>> given(total);
  for (uint32_t b = kBuckets; b-- > 0;) {
    uint32_t s = map.owner[b];
    if (excess[s] > 0) {
      --excess[s];
      given[s].push_back(b);
    }
  }
  std::vector<uint32_t> pool;
  for (auto& g : given) pool.insert(pool.end(), g.rbegin(), g.rend());

  BucketMap out = map;
  out.version = map.version + 1;
  out.sets = total;
  size_t next = 0;
  for (uint32_t s = 0; s < total; ++s) {
    for (uint32_t n = have[s]; n < share[s]; ++n) {
      uint32_t b = pool[next++];
      out.moving[b] = map.owner[b];
      out.owner[b] = static_cast<uint16_t>(s);
    }
  }
  return out;
}

BucketMap settled(const BucketMap& map, uint32_t first, uint32_t last) {
  BucketMap out = map;
  out.version = map.version + 1;
  out.moving.erase(out.moving.lower_bound(first), out.moving.upper_bound(last));
  return out;
}

BucketMap trimmed(const BucketMap& map) {
  std::vector<uint32_t> owned = map.counts();
  std::vector<bool> previous(map.sets, false);
  for (const auto& [b, s] : map.moving) previous[s] = true;
  uint32_t sets = map.sets;
  while (sets > 1 && owned[sets - 1] == 0 && !previous[sets - 1]) --sets;
  if (sets == map.sets) return map;
  BucketMap out = map;
  out.sets = sets;
  out.version = map.version + 1;
  return out;
}

namespace {

void append_range(std::string& out, uint32_t first, uint32_t last) {
  out += std::to_string(first);
  if (last != first) out += "-" + std::to_string(last);
}

// A decimal number with nothing else around it.
std::optional<uint64_t> number(std::string_view text) {
  uint64_t v = 0;
  if (text.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(sep, pos);
    out.push_back(text.substr(pos, end == std::string_view::npos ? end : end - pos));
    if (end == std::string_view::npos) return out;
    pos = end + 1;
  }
}

// "a-b" or "a" as an inclusive bucket range.
xl::Checked<std::pair<uint32_t, uint32_t>> bucket_range(std::string_view text,
                                                        std::string_view run) {
  size_t dash = text.find('-');
  auto first = number(text.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : number(text.substr(dash + 1));
  if (!first || !last) {
    return xl::invalid("run '" + std::string(run) + "': '" + std::string(text) +
                       "' is not a bucket or a range of buckets");
  }
  if (*last >= kBuckets || *first > *last) {
    return xl::invalid("run '" + std::string(run) + "': buckets go from 0 to " +
                       std::to_string(kBuckets - 1) + ", first to last");
  }
  return std::pair{static_cast<uint32_t>(*first), static_cast<uint32_t>(*last)};
}

xl::Checked<uint32_t> set_number(std::string_view text, std::string_view run, uint32_t sets) {
  auto s = number(text);
  if (!s) {
    return xl::invalid("run '" + std::string(run) + "': '" + std::string(text) +
                       "' is not a set number");
  }
  if (*s >= sets) {
    return xl::invalid("run '" + std::string(run) + "': set " + std::to_string(*s) +
                       " does not exist (the map has " + std::to_string(sets) + " sets)");
  }
  return static_cast<uint32_t>(*s);
}

}  // namespace

std::string encode(const BucketMap& map) {
  std::string out = "version=" + std::to_string(map.version) + ";sets=" +
                    std::to_string(map.sets) + ";map=";
  for (uint32_t b = 0; b < map.owner.size();) {
    uint32_t e = b;
    while (e + 1 < map.owner.size() && map.owner[e + 1] == map.owner[b]) ++e;
    if (b > 0) out += ",";
    append_range(out, b, e);
    out += ":" + std::to_string(map.owner[b]);
    b = e + 1;
  }
  if (!map.moving.empty()) {
    out += ";moving=";
    bool first_run = true;
    for (auto it = map.moving.begin(); it != map.moving.end();) {
      uint32_t b = it->first, e = b;
      uint16_t from = it->second, to = map.owner[b];
      auto next = std::next(it);
      while (next != map.moving.end() && next->first == e + 1 && next->second == from &&
             map.owner[next->first] == to) {
        e = next->first;
        ++next;
      }
      if (!first_run) out += ",";
      first_run = false;
      append_range(out, b, e);
      out += ":" + std::to_string(from) + ">" + std::to_string(to);
      it = next;
    }
  }
  return out;
}

xl::Checked<BucketMap> decode(std::string_view text) {
  auto bad = [](const std::string& why) { return xl::invalid("bucket map: " + why); };
  std::map<std::string, std::string_view> fields;
  for (std::string_view field : split(text, ';')) {
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) {
      return bad("'" + std::string(field) + "' is not key=value");
    }
    std::string key(field.substr(0, eq));
    if (key != "version" && key != "sets" && key != "map" && key != "moving") {
      return bad("unknown field '" + key + "' (expected version, sets, map, moving)");
    }
    if (!fields.emplace(key, field.substr(eq + 1)).second) {
      return bad("field '" + key + "' is given twice");
    }
  }
  for (const char* required : {"version", "sets", "map"}) {
    if (!fields.count(required)) return bad(std::string("field '") + required + "' is missing");
  }
  BucketMap m;
  auto version = number(fields["version"]);
  if (!version || *version == 0) return bad("version must be a positive number");
  m.version = *version;
  auto sets = number(fields["sets"]);
  if (!sets || *sets == 0 || *sets > kMaxSets) {
    return bad("sets must be a number from 1 to " + std::to_string(kMaxSets));
  }
  m.sets = static_cast<uint32_t>(*sets);
  m.owner.resize(kBuckets);

  uint32_t expected = 0;
  for (std::string_view run : split(fields["map"], ',')) {
    size_t colon = run.find(':');
    if (colon == std::string_view::npos) {
      return bad("run '" + std::string(run) + "' is not buckets:set");
    }
    auto range = bucket_range(run.substr(0, colon), run);
    if (!range) return bad(range.error());
    auto set = set_number(run.substr(colon + 1), run, m.sets);
    if (!set) return bad(set.error());
    if (range->first != expected) {
      return bad("run '" + std::string(run) + "': expected a run starting at bucket " +
                 std::to_string(expected) + " (runs go in order, without gaps or overlaps)");
    }
    for (uint32_t b = range->first; b <= range->second; ++b) m.owner[b] = static_cast<uint16_t>(*set);
    expected = range->second + 1;
  }
  if (expected != kBuckets) {
    return bad("the runs end at bucket " + std::to_string(expected - 1) + "; they must cover 0-" +
               std::to_string(kBuckets - 1));
  }

  if (fields.count("moving") && !fields["moving"].empty()) {
    for (std::string_view run : split(fields["moving"], ',')) {
      size_t colon = run.find(':');
      size_t arrow = run.find('>');
      if (colon == std::string_view::npos || arrow == std::string_view::npos || arrow < colon) {
        return bad("moving run '" + std::string(run) + "' is not buckets:old>new");
      }
      auto range = bucket_range(run.substr(0, colon), run);
      if (!range) return bad(range.error());
      auto from = set_number(run.substr(colon + 1, arrow - colon - 1), run, m.sets);
      if (!from) return bad(from.error());
      auto to = set_number(run.substr(arrow + 1), run, m.sets);
      if (!to) return bad(to.error());
      if (*from == *to) {
        return bad("moving run '" + std::string(run) + "' moves buckets to the set they are on");
      }
      for (uint32_t b = range->first; b <= range->second; ++b) {
        if (m.owner[b] != *to) {
          return bad("moving run '" + std::string(run) + "': bucket " + std::to_string(b) +
                     " belongs to set " + std::to_string(m.owner[b]) + " in the map, not " +
                     std::to_string(*to));
        }
        if (!m.moving.emplace(b, static_cast<uint16_t>(*from)).second) {
          return bad("moving run '" + std::string(run) + "': bucket " + std::to_string(b) +
                     " is listed twice");
        }
      }
    }
  }
  return m;
}

}  // namespace mortar::xl::dht
