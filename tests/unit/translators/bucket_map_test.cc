#include "translators/dht/bucket_map.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mortar::xl::dht {
namespace {

// Files per set when `names` land by `map`; each within `tolerance` (a fraction) of even.
void expect_even(const BucketMap& map, const std::vector<std::pair<Gfid, std::string>>& names,
                 double tolerance, const std::string& what) {
  std::vector<uint32_t> per_set(map.sets, 0);
  for (const auto& [parent, name] : names) ++per_set[map.owner_of(bucket_of(parent, name))];
  double even = static_cast<double>(names.size()) / map.sets;
  for (uint32_t s = 0; s < map.sets; ++s) {
    EXPECT_NEAR(per_set[s], even, even * tolerance)
        << what << ": set " << s << " of " << map.sets << " holds " << per_set[s];
  }
}

// The placement test: 10,000 names in one directory, and one name in each of 10,000
// directories, spread within a few percent of even over 2 and over 4 sets.
TEST(BucketMapTest, NamesSpreadEvenlyInOneDirectoryAndAcrossDirectories) {
  Gfid dir = Gfid::random();
  std::vector<std::pair<Gfid, std::string>> one_dir, many_dirs;
  for (int i = 0; i < 10000; ++i) {
    one_dir.emplace_back(dir, "upload-" + std::to_string(i) + ".jpg");
    many_dirs.emplace_back(Gfid::random(), "index.html");
  }
  for (uint32_t sets : {2u, 4u}) {
    BucketMap map = even_map(sets);
    // Binomial spread at 10,000 names: one standard deviation is ~1% of the share at 2 sets
    // and ~1.7% at 4; 6% is well past chance and still "a few percent".
    expect_even(map, one_dir, 0.06, "one directory");
    expect_even(map, many_dirs, 0.06, "one name per directory");
  }
}

TEST(BucketMapTest, BucketDependsOnParentAndName) {
  Gfid a = Gfid::random(), b = Gfid::random();
  int same = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "f" + std::to_string(i);
    if (bucket_of(a, n) == bucket_of(b, n)) ++same;
    EXPECT_LT(bucket_of(a, n), kBuckets);
    EXPECT_EQ(bucket_of(a, n), bucket_of(a, n));
  }
  // By chance, ~1000/65536 collide.
  EXPECT_LT(same, 5);
  // Names longer than the on-stack key still hash (and differ from their prefix).
  std::string long_name(255, 'x');
  EXPECT_NE(bucket_of(a, long_name), bucket_of(a, long_name.substr(0, 254)));
}

TEST(BucketMapTest, EvenMapIsContiguousAndBalanced) {
  for (uint32_t sets : {1u, 2u, 3u, 4u, 7u}) {
    BucketMap m = even_map(sets);
    EXPECT_EQ(m.version, 1u);
    EXPECT_TRUE(m.moving.empty());
    auto c = m.counts();
    ASSERT_EQ(c.size(), sets);
    for (uint32_t s = 0; s < sets; ++s) {
      EXPECT_LE(c[s], kBuckets / sets + 1);
      EXPECT_GE(c[s], kBuckets / sets);
    }
    for (uint32_t b = 1; b < kBuckets; ++b) EXPECT_LE(m.owner[b - 1], m.owner[b]);
  }
}

// Growing moves only the new sets' share, every moved bucket is marked with its old owner, and
// the result is as even as the bucket count allows.
TEST(BucketMapTest, GrowingMovesOnlyTheNewSetsShare) {
  BucketMap two = even_map(2);
  auto four = rebalanced(two, 4);
  ASSERT_TRUE(four) << four.error();
  EXPECT_EQ(four->version, 2u);
  EXPECT_EQ(four->sets, 4u);
  for (uint32_t c : four->counts()) EXPECT_EQ(c, kBuckets / 4);
  size_t moved = 0;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    if (four->owner[b] == two.owner[b]) {
      EXPECT_FALSE(four->previous_owner(b)) << b;
      continue;
    }
    ++moved;
    EXPECT_GE(four->owner[b], 2u) << "bucket " << b << " moved between old sets";
    ASSERT_TRUE(four->previous_owner(b)) << b;
    EXPECT_EQ(*four->previous_owner(b), two.owner[b]);
  }
  EXPECT_EQ(moved, kBuckets / 2);
  EXPECT_EQ(four->moving.size(), moved);

  // No second change while buckets still move; settled, the map moves on.
  EXPECT_FALSE(rebalanced(*four, 5));
  BucketMap done = settled(*four);
  EXPECT_TRUE(done.moving.empty());
  EXPECT_EQ(done.version, 3u);
  EXPECT_EQ(done.owner, four->owner);
  auto five = rebalanced(done, 5);
  ASSERT_TRUE(five) << five.error();
  for (uint32_t c : five->counts()) EXPECT_LE(c, kBuckets / 5 + 1);
  EXPECT_LE(five->moving.size(), kBuckets / 5 + 1);
}

// Shrinking empties the last sets; they stay in the map until their buckets settle.
TEST(BucketMapTest, ShrinkingDrainsTheLastSetsThenTrims) {
  BucketMap three = even_map(3);
  auto two = rebalanced(three, 2);
  ASSERT_TRUE(two) << two.error();
  auto c = two->counts();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[2], 0u);
  EXPECT_EQ(c[0] + c[1], kBuckets);
  for (const auto& [b, from] : two->moving) {
    EXPECT_NE(two->owner[b], from);
  }
  // Set 2 still is the previous owner of moving buckets: not trimmed yet.
  EXPECT_EQ(trimmed(*two).sets, 3u);
  BucketMap done = trimmed(settled(*two));
  EXPECT_EQ(done.sets, 2u);
  EXPECT_EQ(done.counts().size(), 2u);
}

TEST(BucketMapTest, PartialSettleKeepsTheRestMoving) {
  auto four = rebalanced(even_map(2), 4);
  ASSERT_TRUE(four);
  uint32_t first = four->moving.begin()->first;
  BucketMap part = settled(*four, 0, first);
  EXPECT_EQ(part.moving.size(), four->moving.size() - 1);
  EXPECT_FALSE(part.previous_owner(first));
}

TEST(BucketMapTest, EncodingRoundTripsAndRejectsNonsense) {
  auto four = rebalanced(even_map(3), 4);
  ASSERT_TRUE(four);
  for (const BucketMap& m : {even_map(1), even_map(2), *four, settled(*four)}) {
    std::string text = encode(m);
    auto back = decode(text);
    ASSERT_TRUE(back) << back.error() << "\n" << text;
    EXPECT_EQ(*back, m) << text;
  }
  EXPECT_FALSE(decode(""));
  EXPECT_FALSE(decode("version=1;sets=2;map=0-100:0"));             // does not cover every bucket
  EXPECT_FALSE(decode("version=1;sets=2;map=0-65535:2"));           // owner beyond sets
  EXPECT_FALSE(decode("version=1;sets=2;map=0-70000:0"));           // bucket out of range
  EXPECT_FALSE(decode("version=2;sets=2;map=0-65535:0;moving=5:0>0"));  // moving to itself
  EXPECT_FALSE(decode("version=x;sets=2;map=0-65535:0"));
}

}  // namespace
}  // namespace mortar::xl::dht
