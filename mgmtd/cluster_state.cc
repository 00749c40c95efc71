#include "mgmtd/cluster_state.h"

#include <algorithm>
#include <map>
#include <set>

#include "translators/dht/bucket_map.h"

namespace mortar::mgmtd {

namespace {

std::string apply_init(pb::ClusterState& state, const pb::InitCluster& c) {
  if (!state.cluster_id().empty()) return "the cluster is initialised already";
  state.set_cluster_id(c.cluster_id());
  *state.add_peers() = c.founder();
  return "";
}

std::string apply_add_peer(pb::ClusterState& state, const pb::AddPeer& c) {
  if (find_peer(state, c.peer().uuid()))
    return "peer " + c.peer().uuid() + " is in the cluster already";
  *state.add_peers() = c.peer();
  return "";
}

std::string apply_remove_peer(pb::ClusterState& state, const pb::RemovePeer& c) {
  auto* peers = state.mutable_peers();
  auto it = std::find_if(peers->begin(), peers->end(),
                         [&](const pb::PeerInfo& p) { return p.uuid() == c.uuid(); });
  if (it == peers->end()) return "no such peer";
  for (const auto& v : state.volumes()) {
    for (const auto& b : v.bricks()) {
      if (b.peer_uuid() == c.uuid()) {
        return "Brick(s) with the peer " + it->hostnames(0) + " exist in cluster (volume " +
               v.name() + ")";
      }
    }
  }
  peers->erase(it);
  return "";
}

// Bricks about to join a volume: on servers of the cluster, and none the same directory as,
// or nested with, another of them or any brick of any volume.
std::string check_new_bricks(const pb::ClusterState& state, const std::vector<pb::BrickSpec>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    const auto& b = v[i];
    if (!find_peer(state, b.peer_uuid()))
      return "Host " + b.host() + " is not in 'Peer in Cluster' state";
    for (size_t j = 0; j < i; ++j) {
      const auto& o = v[j];
      if (o.peer_uuid() != b.peer_uuid()) continue;
      if (o.path() == b.path()) return "Brick: " + b.host() + ":" + b.path() + " is used twice";
      if (paths_nest(o.path(), b.path())) {
        return "Brick: " + b.host() + ":" + b.path() + " nests with brick " + o.host() + ":" +
               o.path();
      }
    }
    for (const auto& other : state.volumes()) {
      for (const auto& o : other.bricks()) {
        if (o.peer_uuid() != b.peer_uuid()) continue;
        if (o.path() == b.path() || paths_nest(o.path(), b.path())) {
          return "Brick: " + b.host() + ":" + b.path() + " is already part of volume " +
                 other.name() + " (" + o.host() + ":" + o.path() + ")";
        }
      }
    }
  }
  return "";
}

std::string apply_create(pb::ClusterState& state, const pb::CreateVolume& c) {
  const pb::VolumeSpec& v = c.volume();
  if (auto e = check_volume_name(v.name()); !e.empty()) return e;
  if (find_volume(state, v.name())) return "Volume " + v.name() + " already exists";
  if (v.bricks().empty()) return "a volume needs at least one brick";
  uint32_t replica = std::max<uint32_t>(1, v.replica_count());
  if (v.bricks_size() % replica != 0) {
    return "Incorrect number of bricks supplied " + std::to_string(v.bricks_size()) +
           " with count " + std::to_string(replica);
  }
  if (v.arbiter_count() > 1 || (v.arbiter_count() == 1 && replica != 3)) {
    return "arbiter 1 needs replica 3 (or replica 2 arbiter 1)";
  }
  std::vector<pb::BrickSpec> bricks(v.bricks().begin(), v.bricks().end());
  if (auto e = check_new_bricks(state, bricks); !e.empty()) return e;
  pb::VolumeSpec* added = state.add_volumes();
  *added = v;
  added->set_status(pb::VOLUME_CREATED);
  added->set_version(1);
  for (auto& b : *added->mutable_bricks()) b.set_port(0);
  uint32_t sets = static_cast<uint32_t>(v.bricks_size()) / replica;
  added->set_bucket_map(sets > 1 ? xl::dht::encode(xl::dht::even_map(sets)) : "");
  return "";
}

// The map in force for a volume of `sets` sets: the stored one, or the even split that a
// graph without a map uses.
xl::Checked<xl::dht::BucketMap> current_map(const pb::VolumeSpec& v, uint32_t sets) {
  if (v.bucket_map().empty()) return xl::dht::even_map(sets);
  return xl::dht::decode(v.bucket_map());
}

std::string apply_add_bricks(pb::ClusterState& state, const pb::AddBricks& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  uint32_t replica = std::max<uint32_t>(1, v->replica_count());
  if (c.bricks().empty()) return "no bricks given";
  if (c.bricks_size() % replica != 0) {
    return "Incorrect number of bricks supplied " + std::to_string(c.bricks_size()) +
           " with count " + std::to_string(replica);
  }
  if (v->removing_from() != 0) {
    return "a remove-brick of volume " + c.name() + " is in progress: commit it first";
  }
  std::vector<pb::BrickSpec> bricks(c.bricks().begin(), c.bricks().end());
  if (auto e = check_new_bricks(state, bricks); !e.empty()) return e;
  bool started = v->status() == pb::VOLUME_STARTED;
  if (started && c.ports_size() != c.bricks_size()) return "internal: one port per brick expected";
  uint32_t old_sets = static_cast<uint32_t>(v->bricks_size()) / replica;
  uint32_t new_sets = old_sets + static_cast<uint32_t>(c.bricks_size()) / replica;
  auto map = current_map(*v, old_sets);
  if (!map) return "volume " + c.name() + ": " + map.error();
  auto next = xl::dht::rebalanced(*map, new_sets);
  if (!next) {
    return "volume " + c.name() + ": " + next.error() +
           " (the previous change of bricks has not been rebalanced yet)";
  }
  for (int i = 0; i < c.bricks_size(); ++i) {
    pb::BrickSpec* b = v->add_bricks();
    *b = c.bricks(i);
    b->set_port(started ? c.ports(i) : 0);
    if (started && b->port() == 0) return "internal: brick " + b->host() + " has no port";
  }
  v->set_bucket_map(xl::dht::encode(*next));
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_settle(pb::ClusterState& state, const pb::SettleBuckets& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  auto map = xl::dht::decode(v->bucket_map());
  if (!map) return "volume " + c.name() + ": " + map.error();
  if (map->version != c.map_version()) {
    return "volume " + c.name() + ": the bucket map is at version " +
           std::to_string(map->version) + ", not " + std::to_string(c.map_version());
  }
  if (map->moving.empty()) return "volume " + c.name() + ": no bucket is moving";
  // Drained sets stay in the map (and the graph) until remove-brick commit takes them out.
  v->set_bucket_map(xl::dht::encode(xl::dht::settled(*map)));
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_remove_bricks(pb::ClusterState& state, const pb::RemoveBricks& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  uint32_t per_set = std::max<uint32_t>(1, v->replica_count());
  uint32_t sets = static_cast<uint32_t>(v->bricks_size()) / per_set;
  if (c.sets() == 0 || c.sets() >= sets) return "remove-brick must leave at least one replica set";
  uint32_t keep = sets - c.sets();
  for (int i = 0; i < c.removed_size(); ++i) {
    const auto& b = v->bricks(static_cast<int>(keep * per_set) + i);
    if (b.peer_uuid() != c.removed(i).peer_uuid() || b.path() != c.removed(i).path()) {
      return "the bricks of volume " + c.name() + " changed meanwhile";
    }
  }
  auto map = current_map(*v, sets);
  if (!map) return "volume " + c.name() + ": " + map.error();
  if (c.phase() == pb::RemoveBricks::START) {
    if (v->removing_from() != 0) return "a remove-brick of volume " + c.name() + " is in progress";
    auto next = xl::dht::rebalanced(*map, keep);
    if (!next) {
      return "volume " + c.name() + ": " + next.error() +
             " (the previous change of bricks has not been rebalanced yet)";
    }
    v->set_bucket_map(xl::dht::encode(*next));
    v->set_removing_from(keep);
    v->set_version(v->version() + 1);
    return "";
  }
  auto counts = map->counts();
  bool drained = map->moving.empty();
  for (uint32_t s = keep; s < counts.size(); ++s) drained &= counts[s] == 0;
  if (c.phase() == pb::RemoveBricks::COMMIT && (!drained || v->removing_from() != keep)) {
    return "remove-brick of volume " + c.name() +
           " has not finished moving the data off the bricks: check 'volume remove-brick " +
           c.name() + " ... status', or use 'force' to remove them and abandon what they hold";
  }
  xl::dht::BucketMap next = *map;
  if (!drained) {
    // force: what the leaving sets still hold is abandoned, their buckets go to the others.
    if (!next.moving.empty()) next = xl::dht::settled(next);
    auto shrunk = xl::dht::rebalanced(next, keep);
    if (!shrunk) return "volume " + c.name() + ": " + shrunk.error();
    next = xl::dht::settled(*shrunk);
  }
  next = xl::dht::trimmed(next);
  if (next.sets != keep) return "internal: the bucket map keeps " + std::to_string(next.sets) + " sets";
  auto* bricks = v->mutable_bricks();
  bricks->DeleteSubrange(static_cast<int>(keep * per_set),
                         bricks->size() - static_cast<int>(keep * per_set));
  v->set_bucket_map(keep > 1 ? xl::dht::encode(next) : "");
  v->set_removing_from(0);
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_replace_brick(pb::ClusterState& state, const pb::ReplaceBrick& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  if (c.index() >= static_cast<uint32_t>(v->bricks_size())) return "internal: no such brick";
  pb::BrickSpec* b = v->mutable_bricks(static_cast<int>(c.index()));
  if (b->peer_uuid() != c.old().peer_uuid() || b->path() != c.old().path()) {
    return "brick " + c.old().host() + ":" + c.old().path() + " is no longer part of volume " +
           c.name();
  }
  std::vector<pb::BrickSpec> bricks{c.brick()};
  if (auto e = check_new_bricks(state, bricks); !e.empty()) return e;
  bool arbiter = b->arbiter();
  *b = c.brick();
  b->set_arbiter(arbiter);
  b->set_port(v->status() == pb::VOLUME_STARTED ? c.port() : 0);
  if (v->status() == pb::VOLUME_STARTED && b->port() == 0) return "internal: the new brick has no port";
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_delete(pb::ClusterState& state, const pb::DeleteVolume& c) {
  auto* volumes = state.mutable_volumes();
  auto it = std::find_if(volumes->begin(), volumes->end(),
                         [&](const pb::VolumeSpec& v) { return v.name() == c.name(); });
  if (it == volumes->end()) return "Volume " + c.name() + " does not exist";
  if (it->status() == pb::VOLUME_STARTED) {
    return "Volume " + c.name() + " has been started.Volume needs to be stopped before deletion.";
  }
  volumes->erase(it);
  return "";
}

std::string apply_start(pb::ClusterState& state, const pb::StartVolume& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  if (v->status() == pb::VOLUME_STARTED && !c.force())
    return "Volume " + c.name() + " already started";
  if (c.ports_size() != v->bricks_size()) return "internal: one port per brick expected";
  for (int i = 0; i < v->bricks_size(); ++i) {
    if (c.ports(i) != 0) v->mutable_bricks(i)->set_port(c.ports(i));
    if (v->bricks(i).port() == 0)
      return "internal: brick " + std::to_string(i + 1) + " has no port";
  }
  v->set_status(pb::VOLUME_STARTED);
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_stop(pb::ClusterState& state, const pb::StopVolume& c) {
  pb::VolumeSpec* v = find_volume(state, c.name());
  if (!v) return "Volume " + c.name() + " does not exist";
  if (v->status() != pb::VOLUME_STARTED)
    return "Volume " + c.name() + " is not in the started state";
  v->set_status(pb::VOLUME_STOPPED);
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_set(pb::ClusterState& state, const pb::SetOptions& c) {
  pb::VolumeSpec* v = find_volume(state, c.volume());
  if (!v) return "Volume " + c.volume() + " does not exist";
  if (c.options().empty()) return "no options given";
  for (const auto& [key, value] : c.options()) (*v->mutable_options())[key] = value;
  v->set_version(v->version() + 1);
  return "";
}

std::string apply_reset(pb::ClusterState& state, const pb::ResetOptions& c) {
  pb::VolumeSpec* v = find_volume(state, c.volume());
  if (!v) return "Volume " + c.volume() + " does not exist";
  if (c.keys().empty()) {
    v->clear_options();
  } else {
    for (const auto& key : c.keys()) v->mutable_options()->erase(key);
  }
  v->set_version(v->version() + 1);
  return "";
}

}  // namespace

std::string apply_command(pb::ClusterState& state, const pb::Command& cmd) {
  pb::ClusterState next = state;
  std::string error;
  switch (cmd.op_case()) {
    case pb::Command::kInitCluster:
      error = apply_init(next, cmd.init_cluster());
      break;
    case pb::Command::kAddPeer:
      error = apply_add_peer(next, cmd.add_peer());
      break;
    case pb::Command::kRemovePeer:
      error = apply_remove_peer(next, cmd.remove_peer());
      break;
    case pb::Command::kCreateVolume:
      error = apply_create(next, cmd.create_volume());
      break;
    case pb::Command::kDeleteVolume:
      error = apply_delete(next, cmd.delete_volume());
      break;
    case pb::Command::kStartVolume:
      error = apply_start(next, cmd.start_volume());
      break;
    case pb::Command::kStopVolume:
      error = apply_stop(next, cmd.stop_volume());
      break;
    case pb::Command::kSetOptions:
      error = apply_set(next, cmd.set_options());
      break;
    case pb::Command::kResetOptions:
      error = apply_reset(next, cmd.reset_options());
      break;
    case pb::Command::kAddBricks:
      error = apply_add_bricks(next, cmd.add_bricks());
      break;
    case pb::Command::kReplaceBrick:
      error = apply_replace_brick(next, cmd.replace_brick());
      break;
    case pb::Command::kSettleBuckets:
      error = apply_settle(next, cmd.settle_buckets());
      break;
    case pb::Command::kRemoveBricks:
      error = apply_remove_bricks(next, cmd.remove_bricks());
      break;
    case pb::Command::OP_NOT_SET:
      error = "empty command";
      break;
  }
  if (!error.empty()) return error;
  next.set_epoch(state.epoch() + 1);
  state = std::move(next);
  return "";
}

std::string check_volume_name(std::string_view name) {
  if (name.empty()) return "volume name is empty";
  if (name.size() > 64) return "Volume name exceeds 64 characters";
  if (name == "all") return "\"all\" cannot be the name of a volume";
  if (name.front() == '-') return "Volume name cannot start with '-'";
  for (char c : name) {
    bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
    if (!good) {
      return "Volume name " + std::string(name) +
             " has invalid characters: use letters, digits, '-' and '_'";
    }
  }
  return "";
}

std::string parse_brick(std::string_view text, std::string& host, std::string& path) {
  size_t colon = text.find(":/");
  if (colon == std::string_view::npos || colon == 0) {
    return "wrong brick type: " + std::string(text) + ", use <HOSTNAME>:<export-dir-abs-path>";
  }
  host = std::string(text.substr(0, colon));
  path = std::string(text.substr(colon + 1));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/") return "Brick " + std::string(text) + ": the root directory cannot be a brick";
  if (path.find("/../") != std::string::npos || path.ends_with("/..") ||
      path.find("/./") != std::string::npos || path.ends_with("/.") ||
      path.find("//") != std::string::npos) {
    return "Brick " + std::string(text) + ": use a plain absolute path";
  }
  return "";
}

const pb::PeerInfo* find_peer(const pb::ClusterState& state, std::string_view uuid) {
  for (const auto& p : state.peers()) {
    if (p.uuid() == uuid) return &p;
  }
  return nullptr;
}

const pb::PeerInfo* find_peer_by_name(const pb::ClusterState& state, std::string_view host) {
  for (const auto& p : state.peers()) {
    for (const auto& n : p.hostnames()) {
      if (n == host) return &p;
    }
  }
  return nullptr;
}

const pb::VolumeSpec* find_volume(const pb::ClusterState& state, std::string_view name) {
  for (const auto& v : state.volumes()) {
    if (v.name() == name) return &v;
  }
  return nullptr;
}

pb::VolumeSpec* find_volume(pb::ClusterState& state, std::string_view name) {
  for (auto& v : *state.mutable_volumes()) {
    if (v.name() == name) return &v;
  }
  return nullptr;
}

bool paths_nest(std::string_view a, std::string_view b) {
  if (a == b) return true;
  auto inside = [](std::string_view outer, std::string_view inner) {
    return inner.size() > outer.size() && inner.starts_with(outer) && inner[outer.size()] == '/';
  };
  return inside(a, b) || inside(b, a);
}

std::vector<uint32_t> assign_ports(const pb::ClusterState& state, const pb::VolumeSpec& volume,
                                   uint32_t base) {
  std::map<std::string, std::set<uint32_t>> used;  // per server
  for (const auto& v : state.volumes()) {
    if (v.name() == volume.name()) continue;
    for (const auto& b : v.bricks()) {
      if (b.port() != 0) used[b.peer_uuid()].insert(b.port());
    }
  }
  for (const auto& b : volume.bricks()) {
    if (b.port() != 0) used[b.peer_uuid()].insert(b.port());
  }
  std::vector<uint32_t> ports;
  for (const auto& b : volume.bricks()) {
    if (b.port() != 0) {
      ports.push_back(b.port());
      continue;
    }
    auto& taken = used[b.peer_uuid()];
    uint32_t p = base;
    while (taken.count(p)) ++p;
    taken.insert(p);
    ports.push_back(p);
  }
  return ports;
}

}  // namespace mortar::mgmtd
