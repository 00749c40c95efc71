#include "common/gfid.h"

#include <sys/random.h>

#include <stdexcept>

namespace mortar {

Gfid Gfid::root() {
  Gfid g;
  g.bytes_[kSize - 1] = 1;
  return g;
}

Gfid Gfid::random() {
  Gfid g;
  size_t got = 0;
  while (got < kSize) {
    ssize_t n = getrandom(g.bytes_.data() + got, kSize - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  g.bytes_[6] = (g.bytes_[6] & 0x0f) | 0x40;  // version 4
  g.bytes_[8] = (g.bytes_[8] & 0x3f) | 0x80;  // RFC 4122 variant
  return g;
}

std::optional<Gfid> Gfid::from_bytes(std::string_view raw) {
  if (raw.size() != kSize) return std::nullopt;
  Gfid g;
  std::memcpy(g.bytes_.data(), raw.data(), kSize);
  return g;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool is_dash_position(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }
}  // namespace

std::optional<Gfid> Gfid::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Gfid g;
  size_t out = 0;
  for (size_t i = 0; i < text.size();) {
    if (is_dash_position(i)) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    g.bytes_[out++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return g;
}

std::string Gfid::str() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t i = 0; i < kSize; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[bytes_[i] >> 4]);
    s.push_back(kHex[bytes_[i] & 0xf]);
  }
  return s;
}

}  // namespace mortar
