#include "common/net.h"

#include <gtest/gtest.h>

namespace mortar {
namespace {

TEST(ParseHostPort, Accepts) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  } cases[] = {
      {"127.0.0.2:49152", "127.0.0.2", 49152},
      {"s1:24007", "s1", 24007},
      {"[::1]:80", "::1", 80},
      {"host.example:0", "host.example", 0},
      {"a:65535", "a", 65535},
  };
  for (const auto& c : cases) {
    auto hp = parse_host_port(c.text);
    ASSERT_TRUE(hp) << c.text;
    EXPECT_EQ(hp->host, c.host);
    EXPECT_EQ(hp->port, c.port);
  }
}

TEST(ParseHostPort, Rejects) {
  for (const char* bad : {"", "host", ":80", "host:", "host:65536", "host:-1", "host:80x", "::1:80",
                          "[::1]80", "[::1]:", "a:b:c"}) {
    EXPECT_FALSE(parse_host_port(bad)) << bad;
  }
  EXPECT_FALSE(parse_host_port("host:0", false));
}

}  // namespace
}  // namespace mortar
