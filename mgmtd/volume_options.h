// The volume options behind `mortar volume set/get/reset` and `volume set help`: GlusterFS's key
// names, each checked like a translator option and tied to the one place it takes effect.
// The table with every key is docs/volume-options.md. Pure logic: no I/O, no locks; the registry
// is built once and never changes, so it is safe to read from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/mgmt.pb.h"
#include "translators/options.h"

namespace mortar::mgmtd {

using xl::Checked;

// Where a volume option takes effect.
enum class OptionTarget {
  kClientGraph,  // an option of every translator of one type in the client graph (volgen.h)
  kBrick,        // a mortar-brickd flag, applied when the brick daemon (re)starts
  kMount,        // client settings carried in GetspecRsp.mount_options (volgen.h)
  kHealDaemon,   // a setting of the self-heal daemon mortar-shd, run by mortar-mgmtd
  kCompat,       // accepted so GlusterFS scripts keep working; no effect in mortar
};

struct VolumeOption {
  // name: the key; kind, default, range and enum values as for translator options (durations
  // in milliseconds); description: one line for `volume set help`.
  xl::OptionSpec spec;
  OptionTarget target = OptionTarget::kCompat;
  std::string xlator;   // kClientGraph: the translator type, e.g. "protocol/client"
  std::string setting;  // kClientGraph: that translator's option; kBrick: the mortar-brickd
                        // flag; kMount: the mount option keys it feeds, comma-separated
  // Checks and normalises a kString value that has a syntax of its own (address lists).
  Checked<std::string> (*normalise)(std::string_view value) = nullptr;

  const std::string& key() const { return spec.name; }
};

// Every option, in the order `volume set help` lists them (sorted by key).
const std::vector<VolumeOption>& volume_options();
// nullptr when the key is unknown. Keys are matched exactly, as GlusterFS spells them.
const VolumeOption* find_volume_option(std::string_view key);
// The known key nearest to an unknown one (a typo, or a key without its "network." prefix),
// or "" when none is close enough to be a plausible intent.
std::string closest_volume_option(std::string_view key);

// Checks `value` for `key` and returns it normalised: booleans as on/off, durations as decimal
// seconds ("3", "0.5"), sizes in the largest exact unit ("256MB"), enums in lower case,
// address lists without blanks. Errors are one line for a person and name the key; an unknown
// key's error suggests the closest known one.
Checked<std::string> validate_volume_option(std::string_view key, std::string_view value);
// The same, plus the checks that need the volume's shape (a quorum count above the replica
// count). What `volume set` runs before proposing a change.
Checked<std::string> validate_volume_option(const pb::VolumeSpec& volume, std::string_view key,
                                            std::string_view value);

// The default of `option` on `volume`: the spec's default, except where it depends on the
// shape (cluster.quorum-type is auto for sets of 3 bricks, cluster.quorum-count is the replica
// count).
std::string option_default(const VolumeOption& option, const pb::VolumeSpec& volume);
// The value in force on `volume`: what `volume set` stored, normalised, else the default.
// Fails for an unknown key, or a stored value that no longer validates (naming the volume).
Checked<std::string> effective_option(const pb::VolumeSpec& volume, std::string_view key);

// `volume get VOL KEY` (KEY "all": every option): key, value in force, default, description.
Checked<std::vector<pb::OptionValue>> volume_get(const pb::VolumeSpec& volume,
                                                 std::string_view key);
// `volume set help`: every option with its default and description (value left empty).
std::vector<pb::OptionValue> volume_set_help();

// Where an option takes effect, in words: "client graph: protocol/client ping-timeout",
// "brick daemon: --auth-allow", "mount: negative-timeout", "heal daemon", "none (compatibility)".
std::string describe_target(const VolumeOption& option);

}  // namespace mortar::mgmtd
