// Address strings as operators write them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mortar {

struct HostPort {
  std::string host;  // name or address, without IPv6 brackets
  uint16_t port = 0;
};

// "host:port", "1.2.3.4:port" or "[v6addr]:port". nullopt when malformed or the port is not
// 1..65535 (0 is accepted only when allow_zero_port, for "pick a free port").
std::optional<HostPort> parse_host_port(std::string_view text, bool allow_zero_port = true);

}  // namespace mortar
