#include "common/gfid.h"

#include <gtest/gtest.h>

#include <set>

namespace mortar {
namespace {

TEST(Gfid, RootIsOne) {
  EXPECT_EQ(Gfid::root().str(), "00000000-0000-0000-0000-000000000001");
  EXPECT_TRUE(Gfid::root().is_root());
  EXPECT_TRUE(Gfid().is_null());
  EXPECT_FALSE(Gfid::root().is_null());
}

TEST(Gfid, TextRoundTrips) {
  for (int i = 0; i < 100; ++i) {
    Gfid g = Gfid::random();
    auto back = Gfid::parse(g.str());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, g);
    EXPECT_EQ(Gfid::from_bytes(g.bytes()), g);
  }
}

TEST(Gfid, RandomIsVersion4AndUnique) {
  std::set<Gfid> seen;
  for (int i = 0; i < 1000; ++i) {
    Gfid g = Gfid::random();
    EXPECT_EQ(g.str()[14], '4');
    EXPECT_TRUE(seen.insert(g).second);
  }
}

TEST(Gfid, RejectsMalformedText) {
  for (const char* bad : {"", "00000000-0000-0000-0000-00000000000", "00000000-0000-0000-0000-0000000000012",
                          "00000000x0000-0000-0000-000000000001", "g0000000-0000-0000-0000-000000000001",
                          "000000000000000000000000000000000001"}) {
    EXPECT_FALSE(Gfid::parse(bad)) << bad;
  }
  EXPECT_TRUE(Gfid::parse("ABCDEF00-0000-0000-0000-000000000001"));
}

TEST(Gfid, FromBytesNeedsSixteen) {
  EXPECT_FALSE(Gfid::from_bytes(std::string(15, 'a')));
  EXPECT_FALSE(Gfid::from_bytes(std::string(17, 'a')));
  EXPECT_TRUE(Gfid::from_bytes(std::string(16, 'a')));
}

}  // namespace
}  // namespace mortar
