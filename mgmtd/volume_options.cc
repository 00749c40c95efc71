#include "mgmtd/volume_options.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace mortar::mgmtd {

namespace {

using xl::OptionKind;

constexpr int64_t kSecond = 1000;  // durations are kept in milliseconds

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Milliseconds as decimal seconds without trailing zeros: 3000 -> "3", 500 -> "0.5".
std::string seconds_text(int64_t ms) {
  std::string out = std::to_string(ms / kSecond);
  int64_t frac = ms % kSecond;
  if (frac == 0) return out;
  std::string digits = std::to_string(frac);
  digits.insert(0, 3 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

// Bytes in the largest unit that divides them exactly: 268435456 -> "256MB".
std::string size_text(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "KB", "MB", "GB", "TB"};
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + kUnits[unit];
}

// auth.allow / auth.reject: the brick matches the client's numeric address with fnmatch(3)
// (brickd/service.h), so a host name would silently never match; refuse it here instead.
Checked<std::string> normalise_address_list(std::string_view value) {
  std::string out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string_view::npos) end = value.size();
    std::string item = lower(trim(value.substr(pos, end - pos)));
    pos = end + 1;
    if (item.empty()) {
      return xl::invalid(value.empty() || trim(value).empty()
                             ? "needs at least one address"
                             : "'" + std::string(value) + "' has an empty entry");
    }
    for (char c : item) {
      bool ok = std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f') ||
                std::string_view(".:*?[]!-").find(c) != std::string_view::npos;
      if (!ok) {
        return xl::invalid("'" + item +
                           "' is not an address pattern: give IP addresses, with * ? [ ] as "
                           "wildcards (host names are not matched)");
      }
    }
    out += (out.empty() ? "" : ",") + item;
  }
  return out;
}

// A fluent way to write one registry entry per statement.
struct Entry {
  VolumeOption o;

  Entry(std::string key, OptionKind kind, std::string default_value, std::string description) {
    o.spec.name = std::move(key);
    o.spec.kind = kind;
    o.spec.default_value = std::move(default_value);
    o.spec.description = std::move(description);
  }
  Entry&& range(int64_t min, int64_t max) && {
    o.spec.min = min;
    o.spec.max = max;
    return std::move(*this);
  }
  Entry&& seconds(int64_t min, int64_t max) && {
    return std::move(*this).range(min * kSecond, max * kSecond);
  }
  Entry&& choices(std::vector<std::string> values) && {
    o.spec.values = std::move(values);
    return std::move(*this);
  }
  Entry&& syntax(Checked<std::string> (*normalise)(std::string_view)) && {
    o.normalise = normalise;
    return std::move(*this);
  }
  VolumeOption graph(std::string xlator, std::string option) && {
    return place(OptionTarget::kClientGraph, std::move(xlator), std::move(option));
  }
  VolumeOption brick(std::string flag) && { return place(OptionTarget::kBrick, "", flag); }
  VolumeOption mount(std::string keys) && { return place(OptionTarget::kMount, "", keys); }
  VolumeOption heal_daemon() && { return place(OptionTarget::kHealDaemon, "", ""); }
  VolumeOption compat() && { return place(OptionTarget::kCompat, "", ""); }

 private:
  VolumeOption place(OptionTarget target, std::string xlator, std::string setting) {
    o.target = target;
    o.xlator = std::move(xlator);
    o.setting = std::move(setting);
    return std::move(o);
  }
};

constexpr const char* kClient = "protocol/client";
constexpr const char* kReplicate = "cluster/replicate";
constexpr OptionKind kBool = OptionKind::kBool;
constexpr OptionKind kInt = OptionKind::kInt;
constexpr OptionKind kDuration = OptionKind::kDuration;
constexpr OptionKind kEnum = OptionKind::kEnum;
constexpr OptionKind kSize = OptionKind::kSize;
constexpr OptionKind kString = OptionKind::kString;

// Keep docs/volume-options.md in step with this list.
std::vector<VolumeOption> build_registry() {
  std::vector<VolumeOption> r;

  // --- bricks ---
  r.push_back(Entry("auth.allow", kString, "*",
                    "Client addresses the bricks admit: comma-separated IP addresses or globs "
                    "(192.168.50.*); * admits every address. The servers of the volume's bricks "
                    "are always admitted: their heal daemons are the volume's own clients")
                  .syntax(normalise_address_list)
                  .brick("--auth-allow"));
  r.push_back(Entry("auth.reject", kString, "",
                    "Client addresses the bricks refuse, even when auth.allow admits them: "
                    "comma-separated IP addresses or globs")
                  .syntax(normalise_address_list)
                  .brick("--auth-reject"));
  r.push_back(Entry("performance.io-thread-count", kInt, "8",
                    "Threads per brick daemon running disk operations")
                  .range(1, 64)
                  .brick("--io-threads"));
  r.push_back(
      Entry("server.event-threads", kInt, "1", "Threads per brick daemon running the network")
          .range(1, 64)
          .brick("--net-threads"));

  // --- protocol/client ---
  r.push_back(Entry("network.ping-timeout", kDuration, "3",
                    "Seconds a brick may stay silent before clients declare it down and carry "
                    "on with its replicas (mortar's default; GlusterFS waits 42)")
                  .seconds(1, 1013)
                  .graph(kClient, "ping-timeout"));
  r.push_back(Entry("network.frame-timeout", kDuration, "1800",
                    "Seconds after which a call a brick has not answered fails with ETIMEDOUT")
                  .seconds(1, 86400)
                  .graph(kClient, "call-timeout"));

  // --- cluster/replicate ---
  r.push_back(Entry("cluster.quorum-type", kEnum, "none",
                    "When a replica set takes writes: none = while any brick is up; auto = "
                    "more than half of its bricks up, or exactly half including the first; "
                    "fixed = at least cluster.quorum-count up. Default: auto for sets of 3 "
                    "bricks (arbiter included), none for replica 2")
                  .choices({"none", "auto", "fixed"})
                  .graph(kReplicate, "quorum-type"));
  r.push_back(Entry("cluster.quorum-count", kInt, "",
                    "With cluster.quorum-type fixed: how many bricks of a replica set must be up "
                    "for writes. Default: every brick of the set")
                  .range(1, 3)
                  .graph(kReplicate, "quorum-count"));
  r.push_back(Entry("cluster.favorite-child-policy", kEnum, "none",
                    "Resolve split-brain automatically in favour of the copy that is bigger "
                    "(size), newer (mtime, ctime) or held by most bricks (majority); none "
                    "leaves it to `volume heal VOL split-brain ...`")
                  .choices({"none", "size", "mtime", "ctime", "majority"})
                  .graph(kReplicate, "favorite-child-policy"));
  r.push_back(Entry("cluster.eager-lock", kBool, "on",
                    "Keep a file's or directory's lock across a burst of operations instead of "
                    "locking each one")
                  .graph(kReplicate, "eager-lock"));
  r.push_back(Entry("cluster.post-op-delay-secs", kDuration, "1",
                    "Seconds the end of a transaction (clearing its pending marks) waits for "
                    "more changes to the same file or directory, so a burst pays for it once")
                  .seconds(0, 60)
                  .graph(kReplicate, "post-op-delay-secs"));
  r.push_back(Entry("cluster.data-self-heal-algorithm", kEnum, "diff",
                    "How heal copies file data: diff compares checksums of blocks and copies "
                    "only those that differ; full copies the whole file")
                  .choices({"diff", "full"})
                  .graph(kReplicate, "data-self-heal-algorithm"));

  // --- heal daemon ---
  r.push_back(Entry("cluster.self-heal-daemon", kBool, "on",
                    "Run the self-heal daemon for this volume; off leaves pending heals waiting "
                    "until it is turned back on")
                  .heal_daemon());
  r.push_back(Entry("cluster.heal-timeout", kDuration, "600",
                    "Seconds after which the heal daemon looks again at entries it could not "
                    "heal (split-brain); pending entries heal as soon as a brick reconnects, and "
                    "the heal indexes are read every 5 seconds")
                  .seconds(5, 86400)
                  .heal_daemon());
  r.push_back(Entry("cluster.shd-max-threads", kInt, "4",
                    "Entries the heal daemon heals in parallel per replica set (GlusterFS: 1 per "
                    "brick)")
                  .range(1, 64)
                  .heal_daemon());

  // --- the client's kernel caches (mount options) ---
  r.push_back(Entry("performance.stat-prefetch", kBool, "on",
                    "Let the kernel cache attributes and names for "
                    "performance.md-cache-timeout seconds; off makes every stat ask the bricks")
                  .mount("attribute-timeout,entry-timeout"));
  r.push_back(Entry("performance.md-cache-timeout", kDuration, "1",
                    "Seconds the kernel may trust cached attributes and names; longer saves "
                    "round trips but shows other clients' changes later")
                  .seconds(0, 600)
                  .mount("attribute-timeout,entry-timeout"));
  r.push_back(Entry("performance.nl-cache", kBool, "off",
                    "Let the kernel cache 'no such file' answers for "
                    "performance.nl-cache-timeout seconds; a file another client creates stays "
                    "invisible that long")
                  .mount("negative-timeout"));
  r.push_back(Entry("performance.nl-cache-timeout", kDuration, "60",
                    "Seconds the kernel may trust a 'no such file' answer while "
                    "performance.nl-cache is on")
                  .seconds(0, 3600)
                  .mount("negative-timeout"));
  r.push_back(Entry("performance.write-behind", kBool, "off",
                    "Let the kernel cache and merge writes (FUSE writeback cache); errors may "
                    "then surface at a later write, fsync or close. Applies on the next mount")
                  .mount("kernel-writeback-cache"));

  // --- accepted for compatibility ---
  r.push_back(Entry("performance.client-io-threads", kBool, "off",
                    "No effect in mortar (accepted for compatibility): the client runs "
                    "operations on its own threads")
                  .compat());
  r.push_back(Entry("nfs.disable", kBool, "on",
                    "No effect in mortar (accepted for compatibility): mortar has no NFS server")
                  .compat());
  r.push_back(Entry("transport.address-family", kEnum, "inet",
                    "No effect in mortar (accepted for compatibility): connections use the "
                    "address family of each brick's address")
                  .choices({"inet", "inet6"})
                  .compat());
  r.push_back(Entry("client.event-threads", kInt, "1",
                    "No effect in mortar (accepted for compatibility): mortar-fuse --threads "
                    "sets a client's threads")
                  .range(1, 64)
                  .compat());
  r.push_back(Entry("performance.quick-read", kBool, "on",
                    "No effect in mortar (accepted for compatibility): there is no quick-read "
                    "translator")
                  .compat());
  r.push_back(Entry("performance.open-behind", kBool, "on",
                    "No effect in mortar (accepted for compatibility): there is no open-behind "
                    "translator")
                  .compat());
  r.push_back(Entry("performance.read-ahead", kBool, "off",
                    "No effect in mortar yet (accepted for compatibility): the kernel's page "
                    "cache reads ahead")
                  .compat());
  r.push_back(Entry("performance.readdir-ahead", kBool, "off",
                    "No effect in mortar yet (accepted for compatibility)")
                  .compat());
  r.push_back(Entry("performance.parallel-readdir", kBool, "off",
                    "No effect in mortar (accepted for compatibility): directories are always "
                    "read from every replica set in parallel")
                  .compat());
  r.push_back(Entry("performance.io-cache", kBool, "off",
                    "No effect in mortar (accepted for compatibility): file data is cached by "
                    "the kernel's page cache")
                  .compat());
  r.push_back(Entry("performance.cache-size", kSize, "32MB",
                    "No effect in mortar (accepted for compatibility): there is no io-cache "
                    "translator")
                  .compat());
  r.push_back(Entry("performance.cache-invalidation", kBool, "off",
                    "No effect in mortar yet (accepted for compatibility)")
                  .compat());
  r.push_back(Entry("features.cache-invalidation", kBool, "off",
                    "No effect in mortar yet (accepted for compatibility)")
                  .compat());
  r.push_back(Entry("network.inode-lru-limit", kInt, "16384",
                    "No effect in mortar (accepted for compatibility): bricks keep no inode "
                    "table")
                  .range(0, 1048576)
                  .compat());
  r.push_back(Entry("cluster.lookup-optimize", kBool, "on",
                    "No effect in mortar (accepted for compatibility): a lookup always asks "
                    "only the replica set that owns the name")
                  .compat());
  r.push_back(Entry("cluster.granular-entry-heal", kBool, "on",
                    "No effect in mortar (accepted for compatibility): entry heal compares a "
                    "directory's names on every replica")
                  .compat());

  std::sort(r.begin(), r.end(),
            [](const VolumeOption& a, const VolumeOption& b) { return a.key() < b.key(); });
  return r;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

uint32_t set_size(const pb::VolumeSpec& volume) {
  return volume.replica_count() == 0 ? 1 : volume.replica_count();
}

Checked<std::string> normalise(const VolumeOption& option, std::string_view raw) {
  const xl::OptionSpec& spec = option.spec;
  std::string value(trim(raw));
  auto fail = [&](const std::string& why) -> Checked<std::string> {
    return xl::invalid("option " + spec.name + ": " + why);
  };
  auto out_of_range = [&](const std::string& min, const std::string& max, const std::string& unit) {
    return fail("'" + value + "' is out of range: " + min + " to " + max + unit);
  };
  switch (spec.kind) {
    case OptionKind::kString: {
      if (!option.normalise) return value;
      auto v = option.normalise(value);
      if (!v) return fail(v.error());
      return *v;
    }
    case OptionKind::kInt: {
      auto v = xl::parse_int(value);
      if (!v) return fail(v.error());
      if (*v < spec.min || *v > spec.max) {
        return out_of_range(std::to_string(spec.min), std::to_string(spec.max), "");
      }
      return std::to_string(*v);
    }
    case OptionKind::kBool: {
      auto v = xl::parse_bool(value);
      if (!v) return fail(v.error());
      return std::string(*v ? "on" : "off");
    }
    case OptionKind::kDuration: {
      auto v = xl::parse_duration(value);
      if (!v) return fail(v.error());
      if (v->count() < spec.min || v->count() > spec.max) {
        return out_of_range(seconds_text(spec.min), seconds_text(spec.max), " seconds");
      }
      return seconds_text(v->count());
    }
    case OptionKind::kSize: {
      auto v = xl::parse_size(value);
      if (!v) return fail(v.error());
      if (*v > static_cast<uint64_t>(INT64_MAX) || static_cast<int64_t>(*v) < spec.min ||
          static_cast<int64_t>(*v) > spec.max) {
        return out_of_range(size_text(std::max<int64_t>(spec.min, 0)),
                            size_text(static_cast<uint64_t>(spec.max)), "");
      }
      return size_text(*v);
    }
    case OptionKind::kEnum: {
      std::string v = lower(value);
      if (std::find(spec.values.begin(), spec.values.end(), v) != spec.values.end()) return v;
      std::string allowed;
      for (const auto& choice : spec.values) allowed += (allowed.empty() ? "" : ", ") + choice;
      return fail("'" + value + "' is not one of " + allowed);
    }
  }
  return fail("unsupported kind");
}

Checked<const VolumeOption*> known(std::string_view key) {
  if (const VolumeOption* o = find_volume_option(key)) return o;
  std::string message = "option '" + std::string(key) + "' does not exist";
  if (std::string near = closest_volume_option(key); !near.empty()) {
    message += "; did you mean " + near + "?";
  }
  return xl::invalid(message);
}

}  // namespace

const std::vector<VolumeOption>& volume_options() {
  static const std::vector<VolumeOption> registry = build_registry();
  return registry;
}

const VolumeOption* find_volume_option(std::string_view key) {
  const auto& all = volume_options();
  auto it = std::lower_bound(all.begin(), all.end(), key,
                             [](const VolumeOption& o, std::string_view k) { return o.key() < k; });
  return it != all.end() && it->key() == key ? &*it : nullptr;
}

std::string closest_volume_option(std::string_view key) {
  std::string wanted = lower(trim(key));
  if (wanted.empty()) return "";
  // "ping-timeout" for "network.ping-timeout": GlusterFS completes such keys, mortar asks.
  for (const auto& o : volume_options()) {
    std::string_view k = o.key();
    if (k == wanted) return o.key();  // only the case differed
    if (k.size() > wanted.size() && k.ends_with(wanted) && k[k.size() - wanted.size() - 1] == '.') {
      return o.key();
    }
  }
  // Further than a third of the key away is a different word, not a typo.
  size_t limit = std::max<size_t>(2, wanted.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const auto& o : volume_options()) {
    size_t d = edit_distance(wanted, o.key());
    if (d < best_distance) {
      best_distance = d;
      best = o.key();
    }
  }
  return best;
}

Checked<std::string> validate_volume_option(std::string_view key, std::string_view value) {
  auto option = known(key);
  if (!option) return xl::invalid(option.error());
  return normalise(**option, value);
}

Checked<std::string> validate_volume_option(const pb::VolumeSpec& volume, std::string_view key,
                                            std::string_view value) {
  auto v = validate_volume_option(key, value);
  if (!v) return v;
  if (key == "cluster.quorum-count") {
    uint32_t bricks = set_size(volume);
    if (xl::parse_int(*v).value_or(0) > bricks) {
      return xl::invalid("option cluster.quorum-count: " + *v + " is more than the " +
                         std::to_string(bricks) + " brick" + (bricks == 1 ? "" : "s") +
                         " of each replica set of volume " + volume.name());
    }
  }
  return v;
}

std::string option_default(const VolumeOption& option, const pb::VolumeSpec& volume) {
  // GlusterFS's AFR turns quorum on by itself for sets of more than two bricks; replica 2 stays
  // without quorum, which keeps either brick writable alone (and risks split-brain).
  if (option.key() == "cluster.quorum-type") return set_size(volume) >= 3 ? "auto" : "none";
  if (option.key() == "cluster.quorum-count") return std::to_string(set_size(volume));
  return option.spec.default_value;
}

Checked<std::string> effective_option(const pb::VolumeSpec& volume, std::string_view key) {
  auto option = known(key);
  if (!option) return xl::invalid(option.error());
  auto it = volume.options().find(std::string(key));
  if (it == volume.options().end()) return option_default(**option, volume);
  auto v = validate_volume_option(volume, key, it->second);
  if (!v) return xl::invalid("volume " + volume.name() + ": " + v.error());
  return v;
}

Checked<std::vector<pb::OptionValue>> volume_get(const pb::VolumeSpec& volume,
                                                 std::string_view key) {
  std::vector<const VolumeOption*> wanted;
  if (key == "all") {
    for (const auto& o : volume_options()) wanted.push_back(&o);
  } else {
    auto option = known(key);
    if (!option) return xl::invalid(option.error());
    wanted.push_back(*option);
  }
  std::vector<pb::OptionValue> out;
  for (const VolumeOption* o : wanted) {
    pb::OptionValue& v = out.emplace_back();
    v.set_key(o->key());
    // A stored value that no longer validates is shown as stored, not hidden.
    auto value = effective_option(volume, o->key());
    auto stored = volume.options().find(o->key());
    v.set_value(value ? *value : stored->second);
    v.set_default_value(option_default(*o, volume));
    v.set_description(o->spec.description);
  }
  return out;
}

std::vector<pb::OptionValue> volume_set_help() {
  std::vector<pb::OptionValue> out;
  for (const auto& o : volume_options()) {
    pb::OptionValue& v = out.emplace_back();
    v.set_key(o.key());
    v.set_default_value(o.spec.default_value);
    v.set_description(o.spec.description);
  }
  return out;
}

std::string describe_target(const VolumeOption& option) {
  switch (option.target) {
    case OptionTarget::kClientGraph:
      return "client graph: " + option.xlator + " " + option.setting;
    case OptionTarget::kBrick:
      return "brick daemon: " + option.setting;
    case OptionTarget::kMount:
      return "mount: " + option.setting;
    case OptionTarget::kHealDaemon:
      return "heal daemon";
    case OptionTarget::kCompat:
      return "none (compatibility)";
  }
  return "";
}

}  // namespace mortar::mgmtd
