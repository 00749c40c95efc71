#include "mgmtd/volgen.h"

namespace mortar::mgmtd {

namespace {

constexpr const char* kClientType = "protocol/client";
constexpr const char* kReplicateType = "cluster/replicate";
constexpr const char* kDistributeType = "cluster/distribute";

uint32_t set_size(const pb::VolumeSpec& volume) {
  return volume.replica_count() == 0 ? 1 : volume.replica_count();
}

// The options the operator set that go to every translator of `type`, normalised.
Checked<void> add_set_options(const pb::VolumeSpec& volume, const std::string& type,
                              pb::TranslatorSpec& t) {
  for (const VolumeOption& o : volume_options()) {
    if (o.target != OptionTarget::kClientGraph || o.xlator != type) continue;
    if (!volume.options().contains(o.key())) continue;
    auto value = effective_option(volume, o.key());
    if (!value) return xl::invalid(value.error());
    (*t.mutable_options())[o.setting] = *value;
  }
  return {};
}

Checked<void> check_shape(const pb::VolumeSpec& volume) {
  const std::string& name = volume.name();
  if (name.empty()) return xl::invalid("the volume has no name");
  if (volume.bricks().empty()) return xl::invalid("volume " + name + " has no bricks");
  uint32_t per_set = set_size(volume);
  if (volume.bricks_size() % per_set != 0) {
    return xl::invalid("volume " + name + ": " + std::to_string(volume.bricks_size()) +
                       " bricks do not make whole replica sets of " + std::to_string(per_set));
  }
  if (volume.arbiter_count() > 1 || (volume.arbiter_count() == 1 && per_set != 3)) {
    return xl::invalid("volume " + name +
                       ": an arbiter needs replica sets of 3 bricks (2 data bricks and the "
                       "arbiter)");
  }
  for (const auto& b : volume.bricks()) {
    if (b.host().empty() || b.path().empty()) {
      return xl::invalid("volume " + name + " has a brick without a host or path");
    }
    // Ports are given when the volume starts; a client graph without them cannot connect.
    if (b.port() == 0) {
      return xl::invalid("volume " + name + " is not started: brick " + b.host() + ":" + b.path() +
                         " has no port");
    }
  }
  return {};
}

}  // namespace

Checked<std::map<std::string, std::string>> client_mount_options(const pb::VolumeSpec& volume) {
  std::map<std::string, std::string> v;
  for (const char* key :
       {"performance.stat-prefetch", "performance.md-cache-timeout", "performance.nl-cache",
        "performance.nl-cache-timeout", "performance.write-behind"}) {
    auto value = effective_option(volume, key);
    if (!value) return xl::invalid(value.error());
    v[key] = *value;
  }
  std::string attr =
      v["performance.stat-prefetch"] == "on" ? v["performance.md-cache-timeout"] : "0";
  std::map<std::string, std::string> out;
  out[std::string(kMountAttributeTimeout)] = attr;
  out[std::string(kMountEntryTimeout)] = attr;
  out[std::string(kMountNegativeTimeout)] =
      v["performance.nl-cache"] == "on" ? v["performance.nl-cache-timeout"] : "0";
  out[std::string(kMountKernelWritebackCache)] = v["performance.write-behind"];
  return out;
}

Checked<pb::GetspecRsp> generate_client_graph(const pb::VolumeSpec& volume) {
  if (auto r = check_shape(volume); !r) return xl::invalid(r.error());
  const std::string& vol = volume.name();
  pb::GetspecRsp rsp;
  rsp.set_version(volume.version());
  pb::VolumeGraph& graph = *rsp.mutable_graph();

  std::vector<std::string> clients;
  for (int i = 0; i < volume.bricks_size(); ++i) {
    const pb::BrickSpec& brick = volume.bricks(i);
    pb::TranslatorSpec& t = *graph.add_translators();
    t.set_name(vol + "-client-" + std::to_string(i));
    t.set_type(kClientType);
    t.mutable_options()->insert({{"remote-host", brick.host()},
                                 {"remote-port", std::to_string(brick.port())},
                                 {"remote-subvolume", brick.path()},
                                 {"remote-volume", vol}});
    if (auto r = add_set_options(volume, kClientType, t); !r) return xl::invalid(r.error());
    clients.push_back(t.name());
  }

  // The tops of the replica sets: the sets themselves, or the bare clients for replica 1.
  std::vector<std::string> sets;
  uint32_t per_set = set_size(volume);
  if (per_set == 1) {
    sets = clients;
  } else {
    auto quorum_type = effective_option(volume, "cluster.quorum-type");
    if (!quorum_type) return xl::invalid(quorum_type.error());
    auto quorum_count = effective_option(volume, "cluster.quorum-count");
    if (!quorum_count) return xl::invalid(quorum_count.error());
    for (size_t k = 0; k * per_set < clients.size(); ++k) {
      pb::TranslatorSpec& t = *graph.add_translators();
      t.set_name(vol + "-replicate-" + std::to_string(k));
      t.set_type(kReplicateType);
      for (uint32_t j = 0; j < per_set; ++j) t.add_subvolumes(clients[k * per_set + j]);
      if (auto r = add_set_options(volume, kReplicateType, t); !r) {
        return xl::invalid(r.error());
      }
      // Stated even when defaulted: the default depends on the set size, and the graph should
      // say what the client does without the reader (or the translator) working it out.
      auto& opts = *t.mutable_options();
      opts["quorum-type"] = *quorum_type;
      if (*quorum_type == "fixed") opts["quorum-count"] = *quorum_count;
      if (volume.arbiter_count() == 1) opts["arbiter-count"] = "1";
      sets.push_back(t.name());
    }
  }

  if (sets.size() > 1) {
    pb::TranslatorSpec& t = *graph.add_translators();
    t.set_name(vol + "-dht");
    t.set_type(kDistributeType);
    for (const auto& s : sets) t.add_subvolumes(s);
    // Every client must place names by the same map version; without one it splits evenly.
    if (!volume.bucket_map().empty()) (*t.mutable_options())["bucket-map"] = volume.bucket_map();
  }

  auto mount = client_mount_options(volume);
  if (!mount) return xl::invalid(mount.error());
  rsp.mutable_mount_options()->insert(mount->begin(), mount->end());
  return rsp;
}

std::string volume_type_name(const pb::VolumeSpec& volume) {
  uint32_t per_set = set_size(volume);
  if (per_set == 1) return "Distribute";
  return static_cast<uint32_t>(volume.bricks_size()) > per_set ? "Distributed-Replicate"
                                                               : "Replicate";
}

}  // namespace mortar::mgmtd
