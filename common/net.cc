#include "common/net.h"

#include <charconv>

namespace mortar {

std::optional<HostPort> parse_host_port(std::string_view text, bool allow_zero_port) {
  HostPort hp;
  std::string_view port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty()) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return std::nullopt;
  if (value == 0 && !allow_zero_port) return std::nullopt;
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

}  // namespace mortar
