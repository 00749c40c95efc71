#include "brickd/meta_store.h"

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace mortar::brickd {
namespace {

pb::Changelog delta(std::vector<int64_t> pending, std::vector<int64_t> dirty = {}) {
  pb::Changelog c;
  for (auto v : pending) c.add_pending(v);
  for (auto v : dirty) c.add_dirty(v);
  return c;
}

TEST(MetaStore, InodesAndLinksSurviveReopen) {
  test::TempDir dir;
  Gfid g = Gfid::random(), parent = Gfid::random();
  {
    auto store = MetaStore::open(dir / "meta");
    ASSERT_TRUE(store);
    MetaStore::Batch b;
    b.put_inode(g, InodeRecord{42, 1, std::string("\x01\x02\x00\x03", 4)});
    b.add_link(g, parent, "a.txt");
    b.add_link(g, Gfid::root(), "hard");
    ASSERT_TRUE((*store)->commit(b));
  }
  auto store = MetaStore::open(dir / "meta");
  ASSERT_TRUE(store);
  auto rec = (*store)->get_inode(g);
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->ino, 42u);
  EXPECT_EQ((*rec)->handle_type, 1);
  EXPECT_EQ((*rec)->handle, std::string("\x01\x02\x00\x03", 4));
  auto links = (*store)->links(g);
  ASSERT_TRUE(links);
  ASSERT_EQ(links->size(), 2u);
  EXPECT_TRUE(*(*store)->has_link(g, parent, "a.txt"));
  EXPECT_FALSE(*(*store)->has_link(g, parent, "b.txt"));
  EXPECT_FALSE(*(*store)->get_inode(Gfid::random()));
}

TEST(MetaStore, ChangelogAddsAndDrivesTheHealIndex) {
  test::TempDir dir;
  auto store = *MetaStore::open(dir / "meta");
  Gfid g = Gfid::random();
  auto v = store->apply_changelog(g, delta({0, 0, 0, 1, 0, 0}, {1, 0, 0}));
  ASSERT_TRUE(v);
  ASSERT_EQ(v->pending_size(), 6);
  EXPECT_EQ(v->pending(3), 1);
  EXPECT_EQ(v->dirty(0), 1);
  EXPECT_EQ(store->heal_index(10)->size(), 1u);

  v = store->apply_changelog(g, delta({0, 0, 0, 2}, {-1}));
  EXPECT_EQ(v->pending(3), 3);
  EXPECT_EQ(v->dirty(0), 0);
  // An all-zero delta reads without writing.
  auto read = store->apply_changelog(g, pb::Changelog());
  EXPECT_EQ(read->pending(3), 3);

  v = store->apply_changelog(g, delta({0, 0, 0, -3}));
  EXPECT_EQ(v->pending(3), 0);
  EXPECT_TRUE(store->heal_index(10)->empty());
}

TEST(MetaStore, RemoveInodeDropsEverythingAboutIt) {
  test::TempDir dir;
  auto store = *MetaStore::open(dir / "meta");
  Gfid g = Gfid::random(), parent = Gfid::random();
  MetaStore::Batch b;
  b.put_inode(g, InodeRecord{1, 1, "h"});
  b.add_link(g, parent, "x");
  ASSERT_TRUE(store->commit(b));
  ASSERT_TRUE(store->apply_changelog(g, delta({1})));
  MetaStore::Batch rm;
  rm.remove_inode(g, *store->links(g));
  ASSERT_TRUE(store->commit(rm));
  EXPECT_FALSE(*store->get_inode(g));
  EXPECT_TRUE(store->links(g)->empty());
  EXPECT_TRUE(store->heal_index(10)->empty());
}

TEST(MetaStore, ClearInodesKeepsMetaKeys) {
  test::TempDir dir;
  auto store = *MetaStore::open(dir / "meta");
  Gfid g = Gfid::random();
  MetaStore::Batch b;
  b.put_inode(g, InodeRecord{1, 1, "h"});
  b.add_link(g, Gfid::root(), "x");
  ASSERT_TRUE(store->commit(b));
  ASSERT_TRUE(store->put_meta("format", "1"));
  ASSERT_TRUE(store->clear_inodes());
  EXPECT_FALSE(*store->get_inode(g));
  EXPECT_TRUE(store->links(g)->empty());
  EXPECT_EQ(**store->get_meta("format"), "1");
}

}  // namespace
}  // namespace mortar::brickd
