#include <gtest/gtest.h>

#include "brickd/brick_fs.h"

namespace mortar::brickd {
namespace {

TEST(CheckName, RefusesWhatCouldLeaveTheDirectory) {
  struct Case {
    std::string name;
    int err;
  } cases[] = {
      {"", EINVAL},
      {".", EINVAL},
      {"..", EINVAL},
      {"a/b", EINVAL},
      {"/etc", EINVAL},
      {"../x", EINVAL},
      {std::string("a\0b", 3), EINVAL},
      {std::string(256, 'n'), ENAMETOOLONG},
  };
  for (const auto& c : cases) {
    auto r = check_name(c.name);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().value, c.err) << c.name;
  }
}

TEST(CheckName, AcceptsOrdinaryNames) {
  for (const std::string& name : std::vector<std::string>{"index.html", "...", ".hidden", "a b",
                                                          "ünïcode", std::string(255, 'n'),
                                                          ".mortar"}) {
    EXPECT_TRUE(check_name(name)) << name;
  }
}

TEST(ReservedNames, OnlyMortarDirInTheRoot) {
  EXPECT_TRUE(is_reserved_name(Gfid::root(), ".mortar"));
  EXPECT_FALSE(is_reserved_name(Gfid::random(), ".mortar"));
  EXPECT_FALSE(is_reserved_name(Gfid::root(), ".mortar2"));
  EXPECT_TRUE(is_reserved_xattr("trusted.mortar.gfid"));
  EXPECT_TRUE(is_reserved_xattr("trusted.mortar.anything"));
  EXPECT_FALSE(is_reserved_xattr("trusted.mortarx"));
  EXPECT_FALSE(is_reserved_xattr("user.mortar.gfid"));
}

}  // namespace
}  // namespace mortar::brickd
