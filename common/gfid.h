// A GFID names an inode across the whole volume: every replica and every distribute set holds
// the same GFID for the same file, so requests address inodes by GFID, never by path.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mortar {

class Gfid {
 public:
  static constexpr size_t kSize = 16;

  constexpr Gfid() = default;  // the null GFID: "no inode"
  static Gfid root();          // 00000000-0000-0000-0000-000000000001
  static Gfid random();        // version-4 UUID from the kernel's CSPRNG
  // From exactly 16 raw bytes (wire, xattr, index key); nullopt on any other length.
  static std::optional<Gfid> from_bytes(std::string_view raw);
  // From the canonical 36-character text form; nullopt if malformed.
  static std::optional<Gfid> parse(std::string_view text);

  bool is_null() const { return bytes_ == std::array<uint8_t, kSize>{}; }
  bool is_root() const { return *this == root(); }
  std::string_view bytes() const {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  std::string str() const;  // canonical text form
  uint64_t hash() const {
    uint64_t h;
    std::memcpy(&h, bytes_.data() + 8, sizeof h);
    return h;
  }

  friend auto operator<=>(const Gfid&, const Gfid&) = default;

 private:
  std::array<uint8_t, kSize> bytes_{};
};

}  // namespace mortar

template <>
struct std::hash<mortar::Gfid> {
  size_t operator()(const mortar::Gfid& g) const noexcept { return g.hash(); }
};
