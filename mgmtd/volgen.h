// Client graphs: what mortar-mgmtd answers GETSPEC with, built from a volume's spec and options.
// Names and shape follow GlusterFS's volgen, so `volume info VOL --graph` reads like the volfile
// its users know:
//
//   <vol>-client-<i>     protocol/client, one per brick, in brick order
//   <vol>-replicate-<k>  cluster/replicate over bricks k*R .. k*R+R-1   (replica count R > 1)
//   <vol>-dht            cluster/distribute over the sets            (more than one set),
//                        with option bucket-map: the volume's versioned bucket map
//
// Translators come children first; the last is the top (a lone set or brick is its own top).
// Options the cluster/replicate translator must declare, as volgen writes them:
//   quorum-type       always: the value in force (its default depends on the set size)
//   quorum-count      when set, or when quorum-type is fixed (default: the set size)
//   arbiter-count     "1" on arbiter volumes: the last brick of each set is the arbiter
//   favorite-child-policy, eager-lock, post-op-delay-secs, data-self-heal-algorithm: when set
// Pure logic: no I/O; safe to call from any thread.
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>

#include "mgmtd/volume_options.h"
#include "proto/graph.pb.h"
#include "proto/mgmt.pb.h"

namespace mortar::mgmtd {

// The keys of GetspecRsp.mount_options: always all four. Each is also a mortar-fuse mount
// option of the same spelling and value syntax (docs/mount.md), so a client can apply them as
// `-o KEY=VALUE`. Timeouts are decimal seconds ("1", "0.5"); the cache flag is on/off.
inline constexpr std::string_view kMountAttributeTimeout = "attribute-timeout";
inline constexpr std::string_view kMountEntryTimeout = "entry-timeout";
inline constexpr std::string_view kMountNegativeTimeout = "negative-timeout";
inline constexpr std::string_view kMountKernelWritebackCache = "kernel-writeback-cache";
inline constexpr std::array<std::string_view, 4> kMountOptionKeys = {
    kMountAttributeTimeout, kMountEntryTimeout, kMountNegativeTimeout, kMountKernelWritebackCache};

// The graph a FUSE client (and the heal daemon) mounts, with the volume's version and its
// mount options. Fails, saying why, when a brick has no port yet ("volume ... is not started"),
// when the bricks do not make whole replica sets, or when a stored option no longer validates.
// Stored options with keys this version does not know are ignored, so a newer peer's keys
// cannot make a volume unmountable.
Checked<pb::GetspecRsp> generate_client_graph(const pb::VolumeSpec& volume);

// The mount options alone (see kMountOptionKeys), from the performance.* volume options.
Checked<std::map<std::string, std::string>> client_mount_options(const pb::VolumeSpec& volume);

// "Distribute", "Replicate" (one replica set) or "Distributed-Replicate", as `volume info`
// shows it.
std::string volume_type_name(const pb::VolumeSpec& volume);

}  // namespace mortar::mgmtd
