// The cluster state machine: how a committed command changes the ClusterState every server
// holds. Pure and deterministic — every server applies the same commands in the same order and
// must reach the same state — so everything here depends only on the state and the command.
// Checks that need a server's local facts (is that brick directory usable?) happen before a
// command is proposed (mgmtd/service.cc); the checks here are the ones that can be decided
// from the state alone, and they run again at apply time in case two commands raced.
#pragma once

#include <string>
#include <string_view>

#include "proto/mgmt.pb.h"

namespace mortar::mgmtd {

// Applies `cmd` to `state`. Returns "" and bumps the epoch on success; on failure returns the
// reason for the operator and leaves `state` unchanged.
std::string apply_command(pb::ClusterState& state, const pb::Command& cmd);

// GlusterFS's volume name rules: letters, digits, '-' and '_', at most 64 characters, not
// starting with '-', not "all". Returns "" or the reason.
std::string check_volume_name(std::string_view name);

// Splits "host:/path" (the path absolute, no "..", no trailing '/'). Returns "" or the reason.
std::string parse_brick(std::string_view text, std::string& host, std::string& path);

const pb::PeerInfo* find_peer(const pb::ClusterState& state, std::string_view uuid);
// The peer known by `host` (any of its names); nullptr if none.
const pb::PeerInfo* find_peer_by_name(const pb::ClusterState& state, std::string_view host);
const pb::VolumeSpec* find_volume(const pb::ClusterState& state, std::string_view name);
pb::VolumeSpec* find_volume(pb::ClusterState& state, std::string_view name);

// True when `a` and `b` are the same directory or one contains the other.
bool paths_nest(std::string_view a, std::string_view b);

// The brick ports a StartVolume should carry: each brick keeps its port, bricks without one
// get the lowest port from `base` not used by another brick of the same server.
std::vector<uint32_t> assign_ports(const pb::ClusterState& state, const pb::VolumeSpec& volume,
                                   uint32_t base = 49152);

}  // namespace mortar::mgmtd
