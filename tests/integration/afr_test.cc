// cluster/replicate over real mortar-brickd processes, driven in-process so tests can call
// heal directly, read its counters, and look at each brick's directory on disk.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "tests/support/brick.h"
#include "tests/support/replica_tree.h"
#include "translators/afr/afr.h"
#include "translators/protocol-client/protocol_client.h"
#include "translators/graph.h"
#include "translators/volfile.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using xl::afr::HealOutcome;
using xl::afr::Replicate;

constexpr const char* kAddress = "127.0.0.20";

std::map<std::string, Node> tree(const std::string& root, bool data = true) {
  return brick_tree(root, data);
}

class ReplicateTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Graph first (its translators use the I/O threads), then the bricks.
    graph_.reset();
    bricks_.clear();
  }

  // `n` bricks, the last an arbiter when `arbiter`; a replicate graph over them.
  void start(int n, std::map<std::string, std::string> options = {}, bool arbiter = false) {
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> extra;
      if (arbiter && i == n - 1) extra.push_back("--arbiter");
      bricks_.push_back(std::make_unique<BrickDaemon>(kAddress, brick_dir(i),
                                                      dir_ / ("brick" + std::to_string(i) + ".log"),
                                                      extra, "info"));
      ASSERT_TRUE(bricks_.back()->start());
    }
    if (arbiter) options["arbiter-count"] = "1";
    options_ = options;
    graph_ = make_graph();
    ASSERT_TRUE(graph_);
    afr_ = dynamic_cast<Replicate*>(graph_->top());
    ASSERT_TRUE(afr_);
    ASSERT_TRUE(eventually([&] { return all_up(); }));
  }

  std::unique_ptr<xl::Graph> make_graph() {
    std::vector<const BrickDaemon*> bricks;
    for (const auto& b : bricks_) bricks.push_back(b.get());
    return start_graph(replicate_volfile(bricks, options_), io_.executor(),
                       "afr-test-" + std::to_string(++clients_));
  }

  bool all_up() const {
    for (size_t i = 0; i < bricks_.size(); ++i) {
      if (!afr_->child_up(i)) return false;
    }
    return true;
  }

  std::string brick_dir(int i) const { return dir_ / ("b" + std::to_string(i)); }

  template <class T>
  T run(boost::asio::awaitable<T> a) {
    return io_.run(std::move(a));
  }

  Result<xl::Created> create(const Gfid& parent, const std::string& name, uint32_t mode = 0644) {
    pb::CreateReq req;
    req.set_parent(raw(parent));
    req.set_name(name);
    req.set_gfid(raw(Gfid::random()));
    req.set_mode(mode);
    req.set_flags(O_RDWR);
    return run(afr_->create(xl::OpContext{}, req));
  }
  Result<pb::Iatt> mkdir(const Gfid& parent, const std::string& name) {
    pb::MkdirReq req;
    req.set_parent(raw(parent));
    req.set_name(name);
    req.set_gfid(raw(Gfid::random()));
    req.set_mode(0755);
    return run(afr_->mkdir(xl::OpContext{}, req));
  }
  Result<pb::WriteRsp> write(const xl::FdPtr& fd, uint64_t offset, const std::string& data) {
    return run(afr_->write(xl::OpContext{}, fd, offset, Buffer::copy_of(data)));
  }
  Result<std::string> read(const xl::FdPtr& fd, uint64_t offset, uint32_t size) {
    auto r = run(afr_->read(xl::OpContext{}, fd, offset, size));
    if (!r) return fail(r.error());
    return std::string(r->view());
  }
  void close(const xl::FdPtr& fd) { run(afr_->release(fd)); }
  Result<xl::FdPtr> open(const Gfid& gfid, uint32_t flags = O_RDWR) {
    return run(afr_->open(xl::OpContext{}, gfid, flags));
  }
  // Writes a whole small file.
  void put(const Gfid& parent, const std::string& name, const std::string& data) {
    auto c = create(parent, name);
    ASSERT_TRUE(c) << name << ": " << c.error().message();
    auto w = write(c->fd, 0, data);
    ASSERT_TRUE(w) << name << ": " << w.error().message();
    close(c->fd);
  }

  uint64_t pending() { return run(afr_->pending_count()); }

  // Calls each brick's protocol client has sent so far.
  std::vector<uint64_t> calls() const {
    std::vector<uint64_t> c;
    for (size_t i = 0; i < bricks_.size(); ++i) {
      auto* p = dynamic_cast<xl::ProtocolClient*>(graph_->find("vol-client-" + std::to_string(i)));
      c.push_back(p ? p->calls_sent() : 0);
    }
    return c;
  }

  // What the heal daemon does: heal every inode in the indexes until they are empty.
  bool heal_all(std::chrono::seconds timeout = 30s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> last;
    while (std::chrono::steady_clock::now() < until) {
      auto entries = run(afr_->pending_heals(10000));
      if (entries.empty()) return true;
      last.clear();
      for (const auto& e : entries) {
        auto g = Gfid::from_bytes(e.gfid());
        if (!g) continue;
        HealOutcome o = run(afr_->heal(*g));
        last.push_back(g->str() + " " + e.path() + ": outcome " + std::to_string(int(o)));
      }
      std::this_thread::sleep_for(50ms);
    }
    for (const auto& l : last) ADD_FAILURE() << "still pending: " << l;
    return false;
  }

  void restart(int i) {
    ASSERT_TRUE(bricks_[i]->start());
    ASSERT_TRUE(eventually([&] { return afr_->child_up(i); }));
  }

  void expect_replicas_identical(bool arbiter = false) {
    auto first = tree(brick_dir(0));
    for (size_t i = 1; i < bricks_.size(); ++i) {
      bool data = !(arbiter && i + 1 == bricks_.size());
      auto other = tree(brick_dir(static_cast<int>(i)), data);
      if (!data) {
        auto stripped = tree(brick_dir(0), false);
        EXPECT_EQ(stripped, other) << "brick 0 vs arbiter";
        continue;
      }
      ASSERT_EQ(first.size(), other.size()) << "brick 0 vs brick " << i;
      for (const auto& [path, node] : first) {
        auto it = other.find(path);
        ASSERT_NE(it, other.end()) << path << " missing on brick " << i;
        EXPECT_EQ(node, it->second) << path << " differs on brick " << i;
      }
    }
  }

  TempDir dir_{"mortar-afr"};
  IoThread io_{1};
  std::vector<std::unique_ptr<BrickDaemon>> bricks_;
  std::map<std::string, std::string> options_;
  std::unique_ptr<xl::Graph> graph_;
  Replicate* afr_ = nullptr;
  int clients_ = 0;
};

TEST_F(ReplicateTest, WritesReachEveryReplicaAndLeaveNoMarks) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "site");
  ASSERT_TRUE(d);
  put(gfid_of(*d), "index.html", "<h1>hello</h1>");
  put(root, "big.bin", pattern(3 << 20, 7));
  pb::SetattrReq chmod;
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(0600);
  auto big = run(afr_->lookup(xl::OpContext{}, root, "big.bin"));
  ASSERT_TRUE(big);
  ASSERT_TRUE(run(afr_->setattr(xl::OpContext{}, gfid_of(*big), nullptr, chmod)));
  ASSERT_TRUE(run(afr_->setxattr(xl::OpContext{}, gfid_of(*big), nullptr, "user.owner", "web", 0)));
  expect_replicas_identical();
  auto t = tree(brick_dir(1));
  EXPECT_EQ(t["/site/index.html"].content, "<h1>hello</h1>");
  EXPECT_EQ(t["/big.bin"].mode, 0600u);
  EXPECT_EQ(t["/big.bin"].xattrs["user.owner"], "web");
  // The delayed post-op takes the dirty marks back within about a second.
  EXPECT_TRUE(eventually([&] { return pending() == 0; }, 5s));
}

TEST_F(ReplicateTest, ASmallFileCostsFourCallsPerReplica) {
  // A long post-op delay: only the close can have given the file's lock and marks back below.
  start(2, {{"post-op-delay-secs", "30"}});
  Gfid root = Gfid::root();
  put(root, "warm", "x");  // connections and the root's eager entry lock settled
  std::vector<uint64_t> before = calls();
  auto c = create(root, "page.html");
  ASSERT_TRUE(c);
  Gfid g = gfid_of(c->attr);
  ASSERT_TRUE(write(c->fd, 0, "<p>one small file</p>"));
  close(c->fd);
  // The close starts the release at once, in the background: let it go out.
  auto sent = [&](uint64_t n) {
    std::vector<uint64_t> now = calls();
    for (size_t i = 0; i < now.size(); ++i) {
      if (now[i] - before[i] < n) return false;
    }
    return true;
  };
  EXPECT_TRUE(eventually([&] { return sent(4); }, 5s));
  std::this_thread::sleep_for(200ms);  // room for a call too many
  std::vector<uint64_t> after = calls();
  // CREATE (with the entry pre-op and, granted by the brick, the data lock), WRITE, RELEASE,
  // and INODELK UNLOCK carrying the data post-op: no separate lock or changelog call.
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i] - before[i], 4u) << "brick " << i;
  }
  auto marked = [&] {
    for (const auto& e : run(afr_->pending_heals(10000))) {
      if (e.gfid() == raw(g)) return true;
    }
    return false;
  };
  // (eventually: the unlock was sent, and may still be on its way)
  EXPECT_TRUE(eventually([&] { return !marked(); }, 5s)) << "the close left the dirty marks";

  // Nor its lock: another client writes (a held lock would be given up on contention, after
  // the post-op, so this also shows the data is right after that hand-over).
  auto other = make_graph();
  ASSERT_TRUE(other);
  auto* afr2 = dynamic_cast<Replicate*>(other->top());
  ASSERT_TRUE(eventually([&] { return afr2->child_up(0) && afr2->child_up(1); }));
  auto fd = run(afr2->open(xl::OpContext{}, g, O_RDWR));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(run(afr2->write(xl::OpContext{}, *fd, 0, Buffer::copy_of("<p>two</p>"))));
  run(afr2->release(*fd));
  EXPECT_TRUE(eventually([&] { return !marked(); }, 5s));
  other.reset();
  expect_replicas_identical();
  EXPECT_EQ(tree(brick_dir(1))["/page.html"].content, "<p>two</p>ll file</p>");
}

TEST_F(ReplicateTest, ReadsSpreadByFileAndSurviveALostReplica) {
  start(2);
  Gfid root = Gfid::root();
  for (int i = 0; i < 8; ++i) put(root, "f" + std::to_string(i), "content " + std::to_string(i));
  bricks_[0]->kill9();
  for (int i = 0; i < 8; ++i) {
    auto a = run(afr_->lookup(xl::OpContext{}, root, "f" + std::to_string(i)));
    ASSERT_TRUE(a) << a.error().message();
    auto fd = open(gfid_of(*a), O_RDONLY);
    ASSERT_TRUE(fd) << fd.error().message();
    auto r = read(*fd, 0, 100);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, "content " + std::to_string(i));
    close(*fd);
  }
}

TEST_F(ReplicateTest, AReaderOpensOneReplicaAndFailsOverToTheOther) {
  start(2);
  Gfid root = Gfid::root();
  put(root, "page.html", "served from one replica");
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  auto found = run(afr_->lookup(xl::OpContext{}, root, "page.html"));
  ASSERT_TRUE(found);
  std::vector<uint64_t> before = calls();
  auto fd = open(gfid_of(*found), O_RDONLY);
  ASSERT_TRUE(fd) << fd.error().message();
  std::vector<uint64_t> after = calls();
  int opened = -1;
  for (int i = 0; i < 2; ++i) {
    if (after[i] != before[i]) {
      EXPECT_EQ(opened, -1) << "a read-only open went to both replicas";
      opened = i;
    }
  }
  ASSERT_NE(opened, -1);
  auto r = read(*fd, 0, 100);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "served from one replica");
  EXPECT_EQ(calls()[1 - opened], before[1 - opened]) << "the read did not go to the open replica";

  // The replica it reads from goes away: the same open file reads on from the other.
  bricks_[opened]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(opened); }));
  r = read(*fd, 7, 100);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "from one replica");
  close(*fd);
}

TEST_F(ReplicateTest, ChangesWhileAReplicaIsDownAreBlamedAndHealed) {
  start(2);
  Gfid root = Gfid::root();
  auto site = mkdir(root, "site");
  ASSERT_TRUE(site);
  Gfid s = gfid_of(*site);
  put(s, "keep.txt", "old");
  put(s, "gone.txt", "bye");
  put(root, "renamed-from", "moving");
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));

  bricks_[1]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(1); }));
  // Every kind of change, each acknowledged with one replica away.
  put(s, "new.txt", "fresh");
  auto sub = mkdir(s, "uploads");
  ASSERT_TRUE(sub);
  put(gfid_of(*sub), "photo.jpg", pattern(300000, 3));
  auto keep = run(afr_->lookup(xl::OpContext{}, s, "keep.txt"));
  ASSERT_TRUE(keep);
  auto fd = open(gfid_of(*keep));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 3, " and appended"));
  close(*fd);
  pb::SetattrReq chmod;
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(0640);
  ASSERT_TRUE(run(afr_->setattr(xl::OpContext{}, gfid_of(*keep), nullptr, chmod)));
  ASSERT_TRUE(run(afr_->setxattr(xl::OpContext{}, gfid_of(*keep), nullptr, "user.tag", "v2", 0)));
  pb::UnlinkReq unlink;
  unlink.set_parent(raw(s));
  unlink.set_name("gone.txt");
  ASSERT_TRUE(run(afr_->unlink(xl::OpContext{}, unlink)));
  pb::RenameReq rename;
  rename.set_old_parent(raw(root));
  rename.set_old_name("renamed-from");
  rename.set_new_parent(raw(s));
  rename.set_new_name("renamed-to");
  ASSERT_TRUE(run(afr_->rename(xl::OpContext{}, rename)));
  pb::SymlinkReq link;
  link.set_parent(raw(root));
  link.set_name("current");
  link.set_target("site/new.txt");
  link.set_gfid(raw(Gfid::random()));
  ASSERT_TRUE(run(afr_->symlink(xl::OpContext{}, link)));

  // The survivor says what the absent replica missed.
  EXPECT_GT(pending(), 0u);
  auto t0 = tree(brick_dir(0)), t1 = tree(brick_dir(1));
  EXPECT_NE(t0, t1);

  restart(1);
  ASSERT_TRUE(heal_all());
  expect_replicas_identical();
  EXPECT_EQ(pending(), 0u);
  EXPECT_GT(afr_->stats().healed.load(), 0u);
  auto t = tree(brick_dir(1));
  EXPECT_EQ(t["/site/keep.txt"].content, "old and appended");
  EXPECT_EQ(t["/site/keep.txt"].mode, 0640u);
  EXPECT_EQ(t["/site/keep.txt"].xattrs["user.tag"], "v2");
  EXPECT_EQ(t.count("/site/gone.txt"), 0u);
  EXPECT_EQ(t.count("/renamed-from"), 0u);
  EXPECT_EQ(t["/site/renamed-to"].content, "moving");
  EXPECT_EQ(t["/current"].content, "site/new.txt");
  EXPECT_EQ(t["/site/uploads/photo.jpg"].content, pattern(300000, 3));
}

TEST_F(ReplicateTest, DataHealMovesOnlyTheBlocksThatDiffer) {
  start(2);
  Gfid root = Gfid::root();
  const size_t size = 32 << 20;
  auto c = create(root, "disk.img");
  ASSERT_TRUE(c);
  std::string chunk = pattern(1 << 20, 11);
  for (size_t off = 0; off < size; off += chunk.size()) ASSERT_TRUE(write(c->fd, off, chunk));
  close(c->fd);
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));

  bricks_[1]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(1); }));
  auto fd = open(gfid_of(c->attr));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 5 * 1000 * 1000, std::string(4096, 'Z')));
  close(*fd);
  restart(1);
  uint64_t bytes_before = afr_->stats().bytes_healed;
  ASSERT_TRUE(heal_all());
  expect_replicas_identical();
  uint64_t moved = afr_->stats().bytes_healed - bytes_before;
  // 4 KiB changed within one (or at most two) 128 KiB blocks: nothing else travels.
  EXPECT_GT(moved, 0u);
  EXPECT_LE(moved, 2u * 128 * 1024);
  EXPECT_GE(afr_->stats().blocks_skipped.load(), size / (128 * 1024) - 2);
}

TEST_F(ReplicateTest, SplitBrainAnswersEioUntilResolved) {
  start(2);
  Gfid root = Gfid::root();
  put(root, "page.html", "v1");
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  auto a = run(afr_->lookup(xl::OpContext{}, root, "page.html"));
  ASSERT_TRUE(a);
  Gfid g = gfid_of(*a);

  // Each replica gets a write the other missed.
  bricks_[1]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(1); }));
  auto fd = open(g);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 0, "version from the left, longer"));
  close(*fd);
  ASSERT_TRUE(eventually([&] { return pending() > 0; }));
  bricks_[0]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(0); }));
  restart(1);
  fd = open(g);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 0, "right"));
  close(*fd);
  restart(0);

  EXPECT_EQ(run(afr_->examine(g)), xl::afr::HealPlan::Verdict::kSplitBrain);
  EXPECT_EQ(run(afr_->heal(g)), HealOutcome::kSplitBrain);
  // Never resolved silently: reads fail.
  a = run(afr_->lookup(xl::OpContext{}, root, "page.html"));
  fd = open(g, O_RDONLY);
  ASSERT_TRUE(fd);
  auto r = read(*fd, 0, 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, EIO);
  close(*fd);

  xl::afr::HealRequest bigger;
  bigger.choice = xl::afr::Choice::kBiggerFile;
  EXPECT_EQ(run(afr_->heal(g, bigger)), HealOutcome::kHealed);
  EXPECT_EQ(run(afr_->examine(g)), xl::afr::HealPlan::Verdict::kInSync);
  expect_replicas_identical();
  EXPECT_EQ(tree(brick_dir(1))["/page.html"].content, "version from the left, longer");
  fd = open(g, O_RDONLY);
  ASSERT_TRUE(fd);
  r = read(*fd, 0, 100);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "version from the left, longer");
  close(*fd);
}

TEST_F(ReplicateTest, QuorumAutoOnReplicaThreeRefusesWritesButServesReads) {
  start(3, {{"quorum-type", "auto"}});
  Gfid root = Gfid::root();
  put(root, "config.php", "<?php // v1");
  bricks_[1]->kill9();
  bricks_[2]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(1) && !afr_->child_up(2); }));
  auto a = run(afr_->lookup(xl::OpContext{}, root, "config.php"));
  ASSERT_TRUE(a) << a.error().message();
  auto fd = open(gfid_of(*a));
  ASSERT_TRUE(fd);
  auto w = write(*fd, 0, "changed");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().value, EROFS);
  auto r = read(*fd, 0, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "<?php // v1");
  close(*fd);
  auto c = create(root, "new.txt");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().value, EROFS);
}

TEST_F(ReplicateTest, ArbiterHoldsNoDataAndDataBrickHealsRight) {
  start(3, {}, /*arbiter=*/true);
  Gfid root = Gfid::root();
  put(root, "upload.bin", pattern(200000, 5));
  auto arb = tree(brick_dir(2));
  ASSERT_EQ(arb.count("/upload.bin"), 1u);
  EXPECT_EQ(fs::file_size(brick_dir(2) + "/upload.bin"), 0u);
  EXPECT_EQ(fs::file_size(brick_dir(0) + "/upload.bin"), 200000u);

  bricks_[0]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(0); }));
  auto a = run(afr_->lookup(xl::OpContext{}, root, "upload.bin"));
  ASSERT_TRUE(a);
  auto fd = open(gfid_of(*a));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 1000, "patched"));
  close(*fd);
  put(root, "later.bin", pattern(5000, 6));
  restart(0);
  ASSERT_TRUE(heal_all());
  expect_replicas_identical(/*arbiter=*/true);
  std::string want = pattern(200000, 5);
  want.replace(1000, 7, "patched");
  EXPECT_EQ(tree(brick_dir(0))["/upload.bin"].content, want);
  EXPECT_EQ(fs::file_size(brick_dir(2) + "/later.bin"), 0u);
}

// Data brick 1 misses a write while brick 0 is the only good data copy; then brick 0 goes
// and brick 1 returns before any heal. Quorum (2 of 3) is met, but the only up data copy is
// stale: a write there would put the two data bricks in split-brain, so it is refused, and
// reads are too (the arbiter holds no data). Once brick 0 is back, all is healed and writable.
TEST_F(ReplicateTest, ArbiterRefusesDataWritesWithoutAGoodDataCopy) {
  start(3, {}, /*arbiter=*/true);
  Gfid root = Gfid::root();
  put(root, "page.html", "v1");
  auto a = run(afr_->lookup(xl::OpContext{}, root, "page.html"));
  ASSERT_TRUE(a);
  Gfid g = gfid_of(*a);
  bricks_[1]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(1); }));
  auto fd = open(g);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write(*fd, 0, "v2"));
  close(*fd);
  bricks_[0]->kill9();
  ASSERT_TRUE(eventually([&] { return !afr_->child_up(0); }));
  restart(1);
  a = run(afr_->lookup(xl::OpContext{}, root, "page.html"));
  ASSERT_TRUE(a);
  fd = open(g);
  ASSERT_TRUE(fd);
  auto w = write(*fd, 0, "v3");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().value, ENOTCONN);
  EXPECT_FALSE(read(*fd, 0, 2));
  close(*fd);
  restart(0);
  ASSERT_TRUE(heal_all());
  fd = open(g);
  ASSERT_TRUE(fd);
  EXPECT_EQ(read(*fd, 0, 2).value_or(""), "v2");
  ASSERT_TRUE(write(*fd, 0, "v4"));
  close(*fd);
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  expect_replicas_identical(/*arbiter=*/true);
}

TEST_F(ReplicateTest, AClientDyingMidTransactionLeavesNoStuckLockOrLostMark) {
  start(2, {{"post-op-delay-secs", "30"}});
  Gfid root = Gfid::root();
  auto c = create(root, "session.dat");
  ASSERT_TRUE(c);
  ASSERT_TRUE(write(c->fd, 0, "state"));
  // The eager lock and the dirty marks are held for the long post-op delay: the client goes
  // away holding them (its connections close, as when the process dies).
  Gfid g = gfid_of(c->attr);
  EXPECT_GT(pending(), 0u);
  graph_.reset();
  afr_ = nullptr;
  graph_ = make_graph();
  ASSERT_TRUE(graph_);
  afr_ = dynamic_cast<Replicate*>(graph_->top());
  ASSERT_TRUE(eventually([&] { return all_up(); }));
  // The dirty marks of the dead client are still there: an interrupted transaction is visible.
  EXPECT_GT(pending(), 0u);
  // Its lock is not: another client writes at once.
  auto fd = open(g);
  ASSERT_TRUE(fd);
  auto w = write(*fd, 5, " more");
  ASSERT_TRUE(w) << w.error().message();
  close(*fd);
  ASSERT_TRUE(heal_all());
  EXPECT_EQ(pending(), 0u);
  expect_replicas_identical();
  EXPECT_EQ(tree(brick_dir(0))["/session.dat"].content, "state more");
}

TEST_F(ReplicateTest, FullHealRebuildsAWipedBrick) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "wp-content");
  ASSERT_TRUE(d);
  for (int i = 0; i < 20; ++i) put(gfid_of(*d), "post" + std::to_string(i), pattern(1000 + i, i));
  put(root, "robots.txt", "User-agent: *");
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  graph_.reset();
  bricks_[1]->kill9();
  // A new, empty disk in place of brick 1 (its index and identity go with it).
  fs::remove_all(brick_dir(1));
  fs::create_directories(brick_dir(1));
  ASSERT_TRUE(bricks_[1]->start());
  graph_ = make_graph();
  afr_ = dynamic_cast<Replicate*>(graph_->top());
  ASSERT_TRUE(eventually([&] { return all_up(); }));
  xl::afr::HealRequest full;
  full.full = true;
  EXPECT_EQ(run(afr_->heal(root, full)), HealOutcome::kHealed);
  ASSERT_TRUE(heal_all());
  expect_replicas_identical();
  EXPECT_EQ(tree(brick_dir(1)).size(), 22u);
}

}  // namespace
}  // namespace mortar::test
