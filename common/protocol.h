// Constants of the brick protocol and the brick's on-disk contract that both ends rely on.
#pragma once

#include <cstdint>
#include <string_view>

namespace mortar {

inline constexpr uint32_t kBrickProtocolVersion = 2;

// Extended attributes the brick keeps on its own files. Clients may not read or change
// anything under this prefix.
inline constexpr std::string_view kReservedXattrPrefix = "trusted.mortar.";
inline constexpr const char* kGfidXattr = "trusted.mortar.gfid";
inline constexpr const char* kVolumeXattr = "trusted.mortar.volume";
inline constexpr const char* kBrickIdXattr = "trusted.mortar.brick-id";

// The brick's private directory at its root; invisible and unreachable for clients.
inline constexpr std::string_view kBrickMetaDir = ".mortar";

// Replication changelog kinds, the index within each replica slot of Changelog.pending.
inline constexpr int kChangelogData = 0;
inline constexpr int kChangelogMetadata = 1;
inline constexpr int kChangelogEntry = 2;
inline constexpr int kChangelogKinds = 3;

}  // namespace mortar
