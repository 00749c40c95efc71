#include "brickd/locks.h"

#include <gtest/gtest.h>

namespace mortar::brickd {
namespace {

const Gfid kFile = Gfid::random();

RangeLock lk(uint64_t conn, uint64_t owner, LockMode mode, uint64_t start, uint64_t end) {
  return RangeLock{LockOwner{conn, owner}, mode, start, end, static_cast<uint32_t>(owner)};
}

// Records how each request completed: 1 = granted, -errno = refused, 0 = still waiting.
struct Outcome {
  int value = 0;
  LockTable::Done done() {
    return [this](Result<void> r) { value = r ? 1 : -r.error().value; };
  }
};

int try_lock(LockTable& t, const RangeLock& r, bool blocking = false) {
  Outcome o;
  t.lock_range(LockKind::kPosix, "", kFile, r, blocking, o.done());
  return o.value;
}

TEST(RangeEnd, LengthZeroMeansToEnd) {
  EXPECT_EQ(*range_end(10, 0), UINT64_MAX);
  EXPECT_EQ(*range_end(10, 5), 14u);
  EXPECT_EQ(*range_end(UINT64_MAX, 1), UINT64_MAX);
  EXPECT_FALSE(range_end(UINT64_MAX, 2));
}

TEST(Locks, ConflictTable) {
  struct Case {
    LockMode held, wanted;
    uint64_t hs, he, ws, we;
    bool same_owner;
    int expect;
  } cases[] = {
      {LockMode::kRead, LockMode::kRead, 0, 99, 50, 150, false, 1},
      {LockMode::kRead, LockMode::kWrite, 0, 99, 50, 150, false, -EAGAIN},
      {LockMode::kWrite, LockMode::kRead, 0, 99, 50, 150, false, -EAGAIN},
      {LockMode::kWrite, LockMode::kWrite, 0, 99, 100, 150, false, 1},  // adjacent, no overlap
      {LockMode::kWrite, LockMode::kWrite, 0, 99, 99, 150, false, -EAGAIN},
      {LockMode::kWrite, LockMode::kWrite, 0, 99, 0, 99, true, 1},  // own lock never conflicts
      {LockMode::kWrite, LockMode::kWrite, 0, UINT64_MAX, 1ull << 62, UINT64_MAX, false, -EAGAIN},
  };
  for (const auto& c : cases) {
    LockTable t;
    ASSERT_EQ(try_lock(t, lk(1, 1, c.held, c.hs, c.he)), 1);
    auto want = c.same_owner ? lk(1, 1, c.wanted, c.ws, c.we) : lk(2, 7, c.wanted, c.ws, c.we);
    EXPECT_EQ(try_lock(t, want), c.expect) << int(c.held) << "/" << int(c.wanted) << " [" << c.ws
                                           << "," << c.we << "]";
  }
}

TEST(Locks, SameOwnerOnAnotherConnectionIsAnotherOwner) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 5, LockMode::kWrite, 0, 10)), 1);
  EXPECT_EQ(try_lock(t, lk(2, 5, LockMode::kWrite, 0, 10)), -EAGAIN);
}

TEST(Locks, UnlockSplitsARange) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 0, 99)), 1);
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kUnlock, 40, 59)), 1);
  EXPECT_EQ(try_lock(t, lk(2, 2, LockMode::kWrite, 40, 59)), 1);  // the hole is free
  EXPECT_EQ(try_lock(t, lk(3, 3, LockMode::kWrite, 39, 39)), -EAGAIN);
  EXPECT_EQ(try_lock(t, lk(3, 3, LockMode::kWrite, 60, 60)), -EAGAIN);
  auto held = t.test_range(LockKind::kPosix, "", kFile, lk(3, 3, LockMode::kRead, 0, 10));
  ASSERT_TRUE(held);
  EXPECT_EQ(held->start, 0u);
  EXPECT_EQ(held->end, 39u);
}

TEST(Locks, ConversionAndMergeOfOwnRanges) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 0, 9)), 1);
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 10, 19)), 1);
  EXPECT_EQ(t.granted_count(), 1u);  // merged into [0, 19]
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kRead, 5, 14)), 1);
  EXPECT_EQ(t.granted_count(), 3u);  // W[0,4] R[5,14] W[15,19]
  EXPECT_EQ(try_lock(t, lk(2, 2, LockMode::kRead, 5, 14)), 1);
  EXPECT_EQ(try_lock(t, lk(2, 2, LockMode::kRead, 4, 4)), -EAGAIN);
}

TEST(Locks, BlockingWaitersAreGrantedInOrderOnUnlock) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 0, 99)), 1);
  Outcome a, b, c;
  t.lock_range(LockKind::kPosix, "", kFile, lk(2, 2, LockMode::kRead, 0, 9), true, a.done());
  t.lock_range(LockKind::kPosix, "", kFile, lk(3, 3, LockMode::kRead, 5, 15), true, b.done());
  t.lock_range(LockKind::kPosix, "", kFile, lk(4, 4, LockMode::kWrite, 0, 0), true, c.done());
  EXPECT_EQ(a.value, 0);
  EXPECT_EQ(t.waiter_count(), 3u);
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kUnlock, 0, UINT64_MAX)), 1);
  EXPECT_EQ(a.value, 1);
  EXPECT_EQ(b.value, 1);
  EXPECT_EQ(c.value, 0);  // still blocked by reader a
  ASSERT_EQ(try_lock(t, lk(2, 2, LockMode::kUnlock, 0, UINT64_MAX)), 1);
  EXPECT_EQ(c.value, 1);
}

TEST(Locks, ClosedConnectionReleasesLocksAndWaiters) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 0, UINT64_MAX)), 1);
  Outcome mine, theirs;
  t.lock_range(LockKind::kInode, "dom", kFile, lk(1, 1, LockMode::kWrite, 0, 0), false,
               mine.done());
  t.lock_range(LockKind::kPosix, "", kFile, lk(2, 2, LockMode::kWrite, 0, 0), true,
               theirs.done());
  Outcome dropped;
  t.lock_range(LockKind::kPosix, "", kFile, lk(1, 9, LockMode::kRead, 0, 0), true,
               dropped.done());
  t.release_connection(1);
  EXPECT_EQ(theirs.value, 1);
  EXPECT_EQ(dropped.value, -ENOTCONN);
  EXPECT_EQ(t.granted_count(), 1u);  // only connection 2's lock remains
}

TEST(Locks, UnlockWithdrawsTheOwnersWait) {
  LockTable t;
  ASSERT_EQ(try_lock(t, lk(1, 1, LockMode::kWrite, 0, 10)), 1);
  Outcome waiting;
  t.lock_range(LockKind::kPosix, "", kFile, lk(2, 2, LockMode::kWrite, 0, 10), true,
               waiting.done());
  ASSERT_EQ(try_lock(t, lk(2, 2, LockMode::kUnlock, 0, 10)), 1);
  EXPECT_EQ(waiting.value, -EINTR);
  EXPECT_EQ(t.waiter_count(), 0u);
}

TEST(Locks, SpacesAreIndependent) {
  LockTable t;
  Outcome a, b, c;
  t.lock_range(LockKind::kInode, "data", kFile, lk(1, 1, LockMode::kWrite, 0, 0), false, a.done());
  t.lock_range(LockKind::kInode, "metadata", kFile, lk(2, 2, LockMode::kWrite, 0, 0), false,
               b.done());
  t.lock_range(LockKind::kFlock, "", kFile, lk(3, 3, LockMode::kWrite, 0, 0), false, c.done());
  EXPECT_EQ(a.value, 1);
  EXPECT_EQ(b.value, 1);
  EXPECT_EQ(c.value, 1);
}

TEST(EntryLocks, NameAndWholeDirectory) {
  LockTable t;
  Gfid dir = Gfid::random();
  auto entry = [&](uint64_t conn, const std::string& name, LockMode mode, bool blocking,
                   Outcome& o) {
    t.lock_entry("d", dir, name, mode, LockOwner{conn, conn}, blocking, o.done());
  };
  Outcome a, b, c, d, e;
  entry(1, "index.html", LockMode::kWrite, false, a);
  entry(2, "style.css", LockMode::kWrite, false, b);
  entry(3, "index.html", LockMode::kWrite, false, c);
  entry(4, "", LockMode::kRead, true, d);  // whole directory waits for both names
  EXPECT_EQ(a.value, 1);
  EXPECT_EQ(b.value, 1);
  EXPECT_EQ(c.value, -EAGAIN);
  EXPECT_EQ(d.value, 0);
  entry(1, "index.html", LockMode::kUnlock, false, e);
  EXPECT_EQ(d.value, 0);
  Outcome f;
  entry(2, "style.css", LockMode::kUnlock, false, f);
  EXPECT_EQ(d.value, 1);
  Outcome g;
  entry(5, "other", LockMode::kRead, false, g);  // readers share with the directory reader
  EXPECT_EQ(g.value, 1);
}

}  // namespace
}  // namespace mortar::brickd
