#include "fuse-client/inode_table.h"

#include <gtest/gtest.h>

namespace mortar::fuse {
namespace {

TEST(InodeTable, LookupCountsAndForget) {
  InodeTable t;
  EXPECT_EQ(t.gfid(kRootNode), Gfid::root());
  Gfid a = Gfid::random();
  NodeId n = t.ref(a);
  EXPECT_NE(n, kRootNode);
  EXPECT_EQ(t.ref(a), n);  // the same GFID keeps its node while referenced
  EXPECT_EQ(t.gfid(n), a);
  t.forget(n, 1);
  EXPECT_EQ(t.gfid(n), a);  // one reference left
  t.forget(n, 1);
  EXPECT_FALSE(t.gfid(n));
  // A new reference gets a new node id: ids are never reused.
  NodeId again = t.ref(a);
  EXPECT_NE(again, n);
  t.forget(kRootNode, 100);
  EXPECT_EQ(t.gfid(kRootNode), Gfid::root());
  EXPECT_EQ(t.size(), 2u);
}

TEST(InodeNumber, StableAndNeverZeroOrRoot) {
  EXPECT_EQ(inode_number(Gfid::root()), 1u);
  for (int i = 0; i < 1000; ++i) {
    Gfid g = Gfid::random();
    uint64_t ino = inode_number(g);
    EXPECT_GT(ino, 1u);
    EXPECT_EQ(ino, inode_number(g));
  }
}

}  // namespace
}  // namespace mortar::fuse
