// The brick's side of replication, on a real mortar-brickd at 127.0.0.2: changelogs, the heal
// index, pre-op marks, changelogs in LOOKUP, block checksums, lock-contention events and the
// arbiter mode. cluster/replicate (translators/afr) relies on each of these.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/protocol.h"
#include "tests/support/brick.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kAddress = "127.0.0.2";
const Gfid kRoot = Gfid::root();
// The tests take the view of one brick of a replica-2 volume: two pending slots.
constexpr int kSlots = 2;

pb::Changelog changelog(std::vector<int64_t> pending, std::vector<int64_t> dirty) {
  pb::Changelog c;
  for (int64_t v : pending) c.add_pending(v);
  for (int64_t v : dirty) c.add_dirty(v);
  return c;
}

// What replication's pre-op puts on a brick when replica `slot` misses a change of `kind`:
// the pending counter of that slot and the brick's own dirty counter.
pb::Changelog missed(int slot, int kind, int64_t n = 1) {
  pb::Changelog c;
  for (int i = 0; i < kSlots * kChangelogKinds; ++i) c.add_pending(0);
  for (int i = 0; i < kChangelogKinds; ++i) c.add_dirty(0);
  c.set_pending(slot * kChangelogKinds + kind, n);
  c.set_dirty(kind, n);
  return c;
}

pb::ChangelogReq mark(const std::string& gfid_bytes, const pb::Changelog& delta) {
  pb::ChangelogReq m;
  m.set_gfid(gfid_bytes);
  *m.mutable_delta() = delta;
  return m;
}
pb::ChangelogReq mark(const Gfid& g, const pb::Changelog& delta) { return mark(raw(g), delta); }

std::vector<int64_t> padded(const google::protobuf::RepeatedField<int64_t>& f, size_t n) {
  std::vector<int64_t> v(f.begin(), f.end());
  if (v.size() < n) v.resize(n, 0);
  return v;
}

bool all_zero(const pb::Changelog& c) {
  for (int64_t v : c.pending()) {
    if (v != 0) return false;
  }
  for (int64_t v : c.dirty()) {
    if (v != 0) return false;
  }
  return true;
}

// Counters compare equal when they differ only by trailing zeros: a brick keeps no counters
// for an inode it has no marks on.
::testing::AssertionResult same_counters(const pb::Changelog& got, const pb::Changelog& want) {
  size_t np = std::max(got.pending_size(), want.pending_size());
  size_t nd = std::max(got.dirty_size(), want.dirty_size());
  if (padded(got.pending(), np) == padded(want.pending(), np) &&
      padded(got.dirty(), nd) == padded(want.dirty(), nd)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "got {" << got.ShortDebugString() << "}, want {" << want.ShortDebugString() << "}";
}

void accumulate(pb::Changelog& into, const pb::Changelog& delta) {
  while (into.pending_size() < delta.pending_size()) into.add_pending(0);
  while (into.dirty_size() < delta.dirty_size()) into.add_dirty(0);
  for (int i = 0; i < delta.pending_size(); ++i) {
    into.set_pending(i, into.pending(i) + delta.pending(i));
  }
  for (int i = 0; i < delta.dirty_size(); ++i) into.set_dirty(i, into.dirty(i) + delta.dirty(i));
}

template <class T>
Result<void> status(const Result<T>& r) {
  if (!r) return fail(r.error());
  return ok();
}

std::string error_text(const Errno& e) { return e.name() + " " + e.message(); }

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A brick client that keeps the events the brick sends it.
class ListeningClient {
 public:
  ListeningClient(IoThread& io, BrickClient::Options options)
      : io_(io), events_(std::make_shared<Events>()), client_(io.executor(), std::move(options)) {
    // The listener may run after this object is gone: it holds the log, not the client.
    client_.set_event_listener([events = events_](uint32_t proc, std::string message) {
      std::lock_guard lock(events->mu);
      pb::LockContention ev;
      if (proc == pb::LOCK_CONTENTION && ev.ParseFromString(message)) {
        events->contention.push_back(std::move(ev));
      } else {
        ++events->other;
      }
    });
    client_.start();
    up_ = io_.run(client_.wait_up(std::chrono::milliseconds(10000)));
  }
  ~ListeningClient() { client_.stop(); }

  bool up() const { return up_; }
  // Closes the connection, as a client that goes away does.
  void disconnect() { client_.stop(); }

  template <class Rsp>
  Result<Rsp> call(pb::Proc proc, const google::protobuf::MessageLite& req) {
    return io_.run(client_.call<Rsp>(proc, req));
  }
  // Sends a call and returns without waiting for its answer.
  std::future<Result<pb::Empty>> start_call(pb::Proc proc,
                                            const google::protobuf::MessageLite& req) {
    return boost::asio::co_spawn(io_.io(), client_.call<pb::Empty>(proc, req),
                                 boost::asio::use_future);
  }

  std::vector<pb::LockContention> contention() const {
    std::lock_guard lock(events_->mu);
    return events_->contention;
  }
  size_t other_events() const {
    std::lock_guard lock(events_->mu);
    return events_->other;
  }

 private:
  struct Events {
    mutable std::mutex mu;
    std::vector<pb::LockContention> contention;
    size_t other = 0;
  };
  IoThread& io_;
  std::shared_ptr<Events> events_;
  BrickClient client_;
  bool up_ = false;
};

class BrickReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    brick_dir_ = dir_ / "brick";
    daemon_ =
        std::make_unique<BrickDaemon>(kAddress, brick_dir_, dir_ / "brickd.log", extra_args());
    ASSERT_TRUE(daemon_->start()) << "mortar-brickd did not start";
  }
  void TearDown() override {
    if (!daemon_) return;
    // A clean exit: no crash, no sanitizer report, no leak.
    EXPECT_EQ(daemon_->stop(), 0) << "see " << daemon_->log_path() << ".out";
    auto errors = error_lines(daemon_->log_path());
    EXPECT_TRUE(errors.empty()) << "ERROR lines in the brick log:\n" << errors.front();
  }
  virtual std::vector<std::string> extra_args() { return {}; }

  std::unique_ptr<SyncBrick> connect() {
    auto c = std::make_unique<SyncBrick>(io_, daemon_->client_options());
    EXPECT_TRUE(c->client().is_up());
    return c;
  }
  std::unique_ptr<ListeningClient> listening_client() {
    auto c = std::make_unique<ListeningClient>(io_, daemon_->client_options());
    EXPECT_TRUE(c->up());
    return c;
  }

  static Result<pb::Changelog> add(SyncBrick& b, const Gfid& g, const pb::Changelog& delta) {
    auto r = b.call<pb::ChangelogRsp>(pb::CHANGELOG, mark(g, delta));
    if (!r) return fail(r.error());
    return r->value();
  }
  static Result<pb::Changelog> changelog_of(SyncBrick& b, const Gfid& g) {
    return add(b, g, pb::Changelog());
  }
  static Result<pb::HealIndexRsp> heal_index(SyncBrick& b, uint32_t max = 100,
                                             bool with_paths = false) {
    pb::HealIndexReq req;
    req.set_max(max);
    req.set_with_paths(with_paths);
    return b.call<pb::HealIndexRsp>(pb::HEAL_INDEX, req);
  }
  // The heal index's entries by raw GFID.
  static std::map<std::string, pb::HealEntry> by_gfid(const pb::HealIndexRsp& rsp) {
    std::map<std::string, pb::HealEntry> out;
    for (const auto& e : rsp.entries()) {
      EXPECT_TRUE(out.emplace(e.gfid(), e).second) << "listed twice: " << e.path();
    }
    return out;
  }

  TempDir dir_;
  std::string brick_dir_;
  IoThread io_;
  std::unique_ptr<BrickDaemon> daemon_;
};

// --- CHANGELOG -------------------------------------------------------------------------------

TEST_F(BrickReplicationTest, ChangelogReadsAndAddsDeltas) {
  auto b = connect();
  auto f = b->create(kRoot, "f");
  ASSERT_TRUE(f) << error_text(f.error());
  Gfid g = gfid_of(f->attr());

  // A new inode reads all-zero, with or without explicit zero deltas, and is not indexed.
  auto fresh = changelog_of(*b, g);
  ASSERT_TRUE(fresh) << error_text(fresh.error());
  EXPECT_TRUE(all_zero(*fresh));
  auto zeros = add(*b, g, changelog({0, 0, 0, 0, 0, 0}, {0, 0, 0}));
  ASSERT_TRUE(zeros);
  EXPECT_TRUE(all_zero(*zeros));
  EXPECT_EQ(heal_index(*b)->total(), 0u);

  // Each delta adds to its own counter, [slot * 3 + kind] for pending, [kind] for dirty, and
  // the answer is the value after the addition.
  auto v = add(*b, g, changelog({0, 0, 0, 1, 0, 0}, {1, 0, 0}));
  ASSERT_TRUE(v);
  EXPECT_TRUE(same_counters(*v, changelog({0, 0, 0, 1, 0, 0}, {1, 0, 0})));
  v = add(*b, g, changelog({0, 0, 0, 2, 3, 0}, {0, 1, 0}));
  ASSERT_TRUE(v);
  EXPECT_TRUE(same_counters(*v, changelog({0, 0, 0, 3, 3, 0}, {1, 1, 0})));
  // A shorter delta leaves the counters past its end alone.
  v = add(*b, g, changelog({0, 0, 4}, {}));
  ASSERT_TRUE(v);
  EXPECT_TRUE(same_counters(*v, changelog({0, 0, 4, 3, 3, 0}, {1, 1, 0})));
  // A third slot (a replica added to the set) extends the counters.
  v = add(*b, g, changelog({0, 0, 0, 0, 0, 0, 0, 5, 0}, {0, 0, 1}));
  ASSERT_TRUE(v);
  EXPECT_TRUE(same_counters(*v, changelog({0, 0, 4, 3, 3, 0, 0, 5, 0}, {1, 1, 1})));
  ASSERT_GE(v->pending_size(), 9);

  // An all-zero delta is a read: it answers the value and changes nothing.
  for (int i = 0; i < 2; ++i) {
    auto read = changelog_of(*b, g);
    ASSERT_TRUE(read);
    EXPECT_TRUE(same_counters(*read, changelog({0, 0, 4, 3, 3, 0, 0, 5, 0}, {1, 1, 1})));
  }

  // Negative deltas (the post-op) take the counters back down.
  v = add(*b, g, changelog({0, 0, -4, -3, -3, 0, 0, -5, 0}, {-1, -1, -1}));
  ASSERT_TRUE(v);
  EXPECT_TRUE(all_zero(*v)) << v->ShortDebugString();
  auto after = changelog_of(*b, g);
  ASSERT_TRUE(after);
  EXPECT_TRUE(all_zero(*after)) << after->ShortDebugString();
  EXPECT_EQ(heal_index(*b)->total(), 0u);
}

TEST_F(BrickReplicationTest, ConcurrentIncrementsFromManyClientsSum) {
  constexpr int kClients = 4;
  constexpr int kRounds = 60;
  auto b = connect();
  auto f = b->create(kRoot, "contended");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());
  std::vector<std::unique_ptr<SyncBrick>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(connect());

  // Client c counts into slot c % kSlots, cycling through the kinds, and into dirty.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kRounds; ++i) {
        if (!add(*clients[c], g, missed(c % kSlots, i % kChangelogKinds))) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);

  pb::Changelog want;
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kRounds; ++i) accumulate(want, missed(c % kSlots, i % kChangelogKinds));
  }
  ASSERT_EQ(want.pending(0), kClients / kSlots * kRounds / kChangelogKinds);  // the test's sum
  auto got = changelog_of(*b, g);
  ASSERT_TRUE(got);
  EXPECT_TRUE(same_counters(*got, want));
}

TEST_F(BrickReplicationTest, ChangelogOnlyForInodesTheBrickHas) {
  auto b = connect();
  // An unknown GFID is ESTALE, as everywhere in the brick protocol (docs/protocol.md), and
  // leaves nothing behind.
  Gfid unknown = Gfid::random();
  auto r = add(*b, unknown, missed(1, kChangelogData));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ESTALE) << error_text(r.error());
  ASSERT_FALSE(changelog_of(*b, unknown));
  EXPECT_EQ(heal_index(*b)->total(), 0u);
  // A malformed GFID.
  pb::ChangelogReq bad = mark(std::string("abc"), missed(1, kChangelogData));
  EXPECT_EQ(b->call<pb::ChangelogRsp>(pb::CHANGELOG, bad).error().value, EINVAL);
  EXPECT_EQ(add(*b, Gfid(), missed(1, kChangelogData)).error().value, EINVAL);

  // The root always has one.
  auto root = add(*b, kRoot, missed(0, kChangelogEntry, 2));
  ASSERT_TRUE(root) << error_text(root.error());
  EXPECT_TRUE(same_counters(*root, missed(0, kChangelogEntry, 2)));
  auto index = heal_index(*b, 10, true);
  ASSERT_TRUE(index);
  ASSERT_EQ(index->entries_size(), 1);
  EXPECT_EQ(index->entries(0).gfid(), raw(kRoot));
  EXPECT_EQ(index->entries(0).path(), "/");
  ASSERT_TRUE(add(*b, kRoot, missed(0, kChangelogEntry, -2)));
  EXPECT_TRUE(all_zero(*changelog_of(*b, kRoot)));
  EXPECT_EQ(heal_index(*b)->total(), 0u);
}

// --- Heal index ------------------------------------------------------------------------------

TEST_F(BrickReplicationTest, HealIndexHoldsExactlyTheMarkedInodes) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "dir");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto f = b->create(dir, "file");
  ASSERT_TRUE(f);
  Gfid file = gfid_of(f->attr());
  auto clean = b->create(kRoot, "clean");
  ASSERT_TRUE(clean);

  auto empty = heal_index(*b);
  ASSERT_TRUE(empty) << error_text(empty.error());
  EXPECT_EQ(empty->total(), 0u);
  EXPECT_EQ(empty->entries_size(), 0);

  ASSERT_TRUE(add(*b, file, missed(1, kChangelogData)));
  auto one = heal_index(*b);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->total(), 1u);
  ASSERT_EQ(one->entries_size(), 1);
  EXPECT_EQ(one->entries(0).gfid(), raw(file));
  EXPECT_TRUE(same_counters(one->entries(0).changelog(), missed(1, kChangelogData)));
  EXPECT_EQ(one->entries(0).path(), "") << "paths only when asked for";

  // Any non-zero counter counts: here only dirty.
  ASSERT_TRUE(add(*b, dir, changelog({}, {0, 0, 1})));
  auto two = heal_index(*b, 100, true);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->total(), 2u);
  auto entries = by_gfid(*two);
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_TRUE(entries.contains(raw(file)));
  ASSERT_TRUE(entries.contains(raw(dir)));
  EXPECT_EQ(entries[raw(file)].path(), "/dir/file");
  EXPECT_EQ(entries[raw(dir)].path(), "/dir");
  EXPECT_TRUE(same_counters(entries[raw(dir)].changelog(), changelog({}, {0, 0, 1})));
  EXPECT_FALSE(entries.contains(clean->attr().gfid()));

  // max bounds the entries, never the total.
  auto capped = heal_index(*b, 1);
  ASSERT_TRUE(capped);
  EXPECT_EQ(capped->total(), 2u);
  EXPECT_EQ(capped->entries_size(), 1);
  auto count_only = heal_index(*b, 0);
  ASSERT_TRUE(count_only);
  EXPECT_EQ(count_only->total(), 2u);
  EXPECT_EQ(count_only->entries_size(), 0);

  // Back to all-zero: out of the index, even while other counters of the inode moved.
  ASSERT_TRUE(add(*b, file, missed(0, kChangelogMetadata)));
  ASSERT_TRUE(add(*b, file, missed(1, kChangelogData, -1)));
  EXPECT_EQ(heal_index(*b)->total(), 2u);
  ASSERT_TRUE(add(*b, file, missed(0, kChangelogMetadata, -1)));
  auto back = heal_index(*b);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->total(), 1u);
  ASSERT_EQ(back->entries_size(), 1);
  EXPECT_EQ(back->entries(0).gfid(), raw(dir));
  ASSERT_TRUE(add(*b, dir, changelog({}, {0, 0, -1})));
  auto none = heal_index(*b);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->total(), 0u);
  EXPECT_EQ(none->entries_size(), 0);
}

TEST_F(BrickReplicationTest, HealIndexAndChangelogSurviveKill9) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "a");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto f = b->create(dir, "b");
  ASSERT_TRUE(f);
  Gfid file = gfid_of(f->attr());
  auto c = b->create(kRoot, "c");
  ASSERT_TRUE(c);
  Gfid healed = gfid_of(c->attr());
  ASSERT_TRUE(add(*b, file, missed(1, kChangelogData, 3)));
  ASSERT_TRUE(add(*b, dir, missed(0, kChangelogEntry)));
  // Marked and cleared before the crash: must not come back.
  ASSERT_TRUE(add(*b, healed, missed(1, kChangelogMetadata)));
  ASSERT_TRUE(add(*b, healed, missed(1, kChangelogMetadata, -1)));
  ASSERT_EQ(heal_index(*b)->total(), 2u);

  b.reset();
  daemon_->kill9();
  ASSERT_TRUE(daemon_->start());
  b = connect();

  auto index = heal_index(*b, 100, true);
  ASSERT_TRUE(index) << error_text(index.error());
  EXPECT_EQ(index->total(), 2u);
  auto entries = by_gfid(*index);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[raw(file)].path(), "/a/b");
  EXPECT_TRUE(same_counters(entries[raw(file)].changelog(), missed(1, kChangelogData, 3)));
  EXPECT_EQ(entries[raw(dir)].path(), "/a");
  EXPECT_TRUE(same_counters(entries[raw(dir)].changelog(), missed(0, kChangelogEntry)));
  EXPECT_FALSE(entries.contains(raw(healed)));
  EXPECT_TRUE(all_zero(*changelog_of(*b, healed)));

  // Counting goes on from the recovered values.
  auto more = add(*b, file, missed(1, kChangelogData));
  ASSERT_TRUE(more);
  EXPECT_TRUE(same_counters(*more, missed(1, kChangelogData, 4)));
  ASSERT_TRUE(add(*b, dir, missed(0, kChangelogEntry, -1)));
  EXPECT_EQ(heal_index(*b)->total(), 1u);
}

TEST_F(BrickReplicationTest, MarksDoNotOutliveTheirFile) {
  auto b = connect();

  // Unlink of the last name.
  auto f = b->create(kRoot, "f");
  ASSERT_TRUE(f);
  Gfid gone = gfid_of(f->attr());
  ASSERT_TRUE(add(*b, gone, missed(1, kChangelogData)));
  ASSERT_EQ(heal_index(*b)->total(), 1u);
  ASSERT_TRUE(b->unlink(kRoot, "f"));
  auto after_unlink = heal_index(*b);
  ASSERT_TRUE(after_unlink);
  EXPECT_EQ(after_unlink->total(), 0u);
  EXPECT_EQ(after_unlink->entries_size(), 0);
  EXPECT_EQ(changelog_of(*b, gone).error().value, ESTALE);
  // A new file of the same name starts clean.
  auto again = b->create(kRoot, "f");
  ASSERT_TRUE(again);
  EXPECT_TRUE(all_zero(*changelog_of(*b, gfid_of(again->attr()))));

  // Unlink of one of two names keeps the marks; the path follows the remaining name.
  auto h = b->create(kRoot, "h");
  ASSERT_TRUE(h);
  Gfid linked = gfid_of(h->attr());
  pb::LinkReq link;
  link.set_gfid(raw(linked));
  link.set_new_parent(raw(kRoot));
  link.set_new_name("h2");
  ASSERT_TRUE(b->call<pb::EntryRsp>(pb::LINK, link));
  ASSERT_TRUE(add(*b, linked, missed(1, kChangelogMetadata)));
  ASSERT_TRUE(b->unlink(kRoot, "h"));
  auto kept = heal_index(*b, 10, true);
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->total(), 1u);
  ASSERT_EQ(kept->entries_size(), 1);
  EXPECT_EQ(kept->entries(0).gfid(), raw(linked));
  EXPECT_EQ(kept->entries(0).path(), "/h2");
  EXPECT_TRUE(same_counters(*changelog_of(*b, linked), missed(1, kChangelogMetadata)));
  ASSERT_TRUE(b->unlink(kRoot, "h2"));
  EXPECT_EQ(heal_index(*b)->total(), 0u);

  // A rename over a marked file ends that file.
  auto victim = b->create(kRoot, "victim");
  ASSERT_TRUE(victim);
  ASSERT_TRUE(add(*b, gfid_of(victim->attr()), missed(0, kChangelogData)));
  ASSERT_TRUE(b->create(kRoot, "newer"));
  pb::RenameReq rn;
  rn.set_old_parent(raw(kRoot));
  rn.set_old_name("newer");
  rn.set_new_parent(raw(kRoot));
  rn.set_new_name("victim");
  ASSERT_TRUE(b->call<pb::Empty>(pb::RENAME, rn));
  EXPECT_EQ(heal_index(*b)->total(), 0u);

  // rmdir of a marked directory.
  auto d = b->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  ASSERT_TRUE(add(*b, gfid_of(*d), missed(1, kChangelogEntry)));
  ASSERT_TRUE(b->rmdir(kRoot, "d"));
  EXPECT_EQ(heal_index(*b)->total(), 0u);
  EXPECT_EQ(heal_index(*b)->entries_size(), 0);
}

// --- pre_op ----------------------------------------------------------------------------------

// One modifying request as replication sends it, with the inodes its pre-op marks.
struct PreOpCase {
  std::string name;
  std::vector<Gfid> marked;
  int kind;
  std::function<Result<void>(const std::vector<pb::ChangelogReq>&)> send;
  std::function<bool()> done;  // the operation took effect
};

template <class Req>
void add_marks(Req& req, const std::vector<pb::ChangelogReq>& marks) {
  for (const auto& m : marks) *req.add_pre_op() = m;
}

class PreOpTest : public BrickReplicationTest {
 protected:
  // Builds the layout the cases work on: /d/f (10 bytes, mode 0644, open), /d/victim, /d/from.
  void SetUp() override {
    BrickReplicationTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    b_ = connect();
    auto d = b_->mkdir(kRoot, "d");
    ASSERT_TRUE(d);
    dir_gfid_ = gfid_of(*d);
    auto f = b_->create(dir_gfid_, "f", 0644);
    ASSERT_TRUE(f);
    file_ = gfid_of(f->attr());
    fd_ = f->fd();
    ASSERT_TRUE(b_->write(fd_, 0, "0123456789"));
    ASSERT_TRUE(b_->create(dir_gfid_, "victim"));
    ASSERT_TRUE(b_->create(dir_gfid_, "from"));
  }

  uint64_t size() {
    auto a = b_->getattr(file_);
    return a ? a->size() : UINT64_MAX;
  }

  std::vector<PreOpCase> cases() {
    SyncBrick& b = *b_;
    Gfid d = dir_gfid_, f = file_;
    uint64_t fd = fd_;
    std::vector<PreOpCase> out;
    out.push_back({"WRITE",
                   {f},
                   kChangelogData,
                   [this, fd](const auto& marks) {
                     pb::WriteReq req;
                     req.set_fd(fd);
                     req.set_offset(10);
                     add_marks(req, marks);
                     return status(io_.run(b_->client().write(req, Buffer::copy_of("abc"))));
                   },
                   [this] { return size() == 13; }});
    out.push_back({"CREATE",
                   {d},
                   kChangelogEntry,
                   [&b, d](const auto& marks) {
                     pb::CreateReq req;
                     req.set_parent(raw(d));
                     req.set_name("new");
                     req.set_gfid(raw(Gfid::random()));
                     req.set_mode(0644);
                     req.set_flags(O_RDWR);
                     add_marks(req, marks);
                     return status(b.call<pb::CreateRsp>(pb::CREATE, req));
                   },
                   [&b, d] { return b.lookup(d, "new").has_value(); }});
    out.push_back({"SETATTR",
                   {f},
                   kChangelogMetadata,
                   [&b, f](const auto& marks) {
                     pb::SetattrReq req;
                     req.set_gfid(raw(f));
                     req.set_valid(pb::SET_MODE);
                     req.set_mode(0600);
                     add_marks(req, marks);
                     return status(b.call<pb::SetattrRsp>(pb::SETATTR, req));
                   },
                   [&b, f] {
                     auto a = b.getattr(f);
                     return a && (a->mode() & 07777) == 0600;
                   }});
    out.push_back({"UNLINK",
                   {d},
                   kChangelogEntry,
                   [&b, d](const auto& marks) {
                     pb::UnlinkReq req;
                     req.set_parent(raw(d));
                     req.set_name("victim");
                     add_marks(req, marks);
                     return status(b.call<pb::Empty>(pb::UNLINK, req));
                   },
                   [&b, d] {
                     auto l = b.lookup(d, "victim");
                     return !l && l.error().value == ENOENT;
                   }});
    // Across directories both parents are marked, in one request.
    out.push_back({"RENAME",
                   {d, kRoot},
                   kChangelogEntry,
                   [&b, d](const auto& marks) {
                     pb::RenameReq req;
                     req.set_old_parent(raw(d));
                     req.set_old_name("from");
                     req.set_new_parent(raw(kRoot));
                     req.set_new_name("to");
                     add_marks(req, marks);
                     return status(b.call<pb::Empty>(pb::RENAME, req));
                   },
                   [&b, d] { return b.lookup(kRoot, "to") && !b.lookup(d, "from"); }});
    out.push_back({"MKDIR",
                   {d},
                   kChangelogEntry,
                   [&b, d](const auto& marks) {
                     pb::MkdirReq req;
                     req.set_parent(raw(d));
                     req.set_name("sub");
                     req.set_gfid(raw(Gfid::random()));
                     req.set_mode(0755);
                     add_marks(req, marks);
                     return status(b.call<pb::EntryRsp>(pb::MKDIR, req));
                   },
                   [&b, d] { return b.lookup(d, "sub").has_value(); }});
    out.push_back({"TRUNCATE",
                   {f},
                   kChangelogData,
                   [&b, f](const auto& marks) {
                     pb::TruncateReq req;
                     req.set_gfid(raw(f));
                     req.set_size(2);
                     add_marks(req, marks);
                     return status(b.call<pb::TruncateRsp>(pb::TRUNCATE, req));
                   },
                   [this] { return size() == 2; }});
    out.push_back({"SETXATTR",
                   {f},
                   kChangelogMetadata,
                   [&b, f](const auto& marks) {
                     pb::SetxattrReq req;
                     req.set_gfid(raw(f));
                     req.set_name("user.replicated");
                     req.set_value("yes");
                     add_marks(req, marks);
                     return status(b.call<pb::Empty>(pb::SETXATTR, req));
                   },
                   [&b, f] {
                     pb::GetxattrReq req;
                     req.set_gfid(raw(f));
                     req.set_name("user.replicated");
                     auto v = b.call<pb::GetxattrRsp>(pb::GETXATTR, req);
                     return v && v->value() == "yes";
                   }});
    out.push_back({"FALLOCATE",
                   {f},
                   kChangelogData,
                   [&b, fd](const auto& marks) {
                     pb::FallocateReq req;
                     req.set_fd(fd);
                     req.set_offset(0);
                     req.set_length(4096);
                     add_marks(req, marks);
                     return status(b.call<pb::FallocateRsp>(pb::FALLOCATE, req));
                   },
                   [this] { return size() == 4096; }});
    return out;
  }

  std::unique_ptr<SyncBrick> b_;
  Gfid dir_gfid_, file_;
  uint64_t fd_ = 0;
};

TEST_F(PreOpTest, MarksAreAppliedWithTheOperation) {
  std::map<std::string, pb::Changelog> want;  // by raw GFID
  for (auto& c : cases()) {
    SCOPED_TRACE(c.name);
    std::vector<pb::ChangelogReq> marks;
    for (const Gfid& g : c.marked) {
      marks.push_back(mark(g, missed(1, c.kind)));
      accumulate(want[raw(g)], missed(1, c.kind));
    }
    ASSERT_FALSE(c.done());
    auto r = c.send(marks);
    ASSERT_TRUE(r) << error_text(r.error());
    EXPECT_TRUE(c.done());
    for (const Gfid& g : c.marked) {
      auto got = changelog_of(*b_, g);
      ASSERT_TRUE(got);
      EXPECT_TRUE(same_counters(*got, want[raw(g)])) << g.str();
    }
  }
  EXPECT_EQ(heal_index(*b_)->total(), want.size());
}

TEST_F(PreOpTest, ABadPreOpFailsTheRequestAndChangesNothing) {
  for (auto& c : cases()) {
    Gfid target = c.marked.front();
    struct Variant {
      std::string what;
      std::vector<pb::ChangelogReq> marks;
      int err;
    } variants[] = {
        {"short gfid", {mark(std::string("abc"), missed(1, c.kind))}, EINVAL},
        {"null gfid", {mark(Gfid(), missed(1, c.kind))}, EINVAL},
        // Marks are all or nothing: the valid one before the bad one is not applied either.
        {"valid then bad",
         {mark(target, missed(1, c.kind)), mark(std::string(17, 'x'), missed(1, c.kind))},
         EINVAL},
        // A mark on an inode the brick lacks would sit in the heal index for ever.
        {"unknown gfid", {mark(Gfid::random(), missed(1, c.kind))}, ESTALE},
    };
    for (const auto& v : variants) {
      SCOPED_TRACE(c.name + " with " + v.what);
      auto r = c.send(v.marks);
      ASSERT_FALSE(r) << "the operation ran";
      EXPECT_EQ(r.error().value, v.err) << error_text(r.error());
      EXPECT_FALSE(c.done());
      for (const Gfid& g : c.marked) EXPECT_TRUE(all_zero(*changelog_of(*b_, g)));
      auto index = heal_index(*b_);
      ASSERT_TRUE(index);
      EXPECT_EQ(index->total(), 0u);
      EXPECT_EQ(index->entries_size(), 0);
    }
    // Without marks the same request goes through: the failures above were the marks'.
    auto r = c.send({});
    ASSERT_TRUE(r) << c.name << ": " << error_text(r.error());
    EXPECT_TRUE(c.done()) << c.name;
  }
}

// --- LOOKUP with the changelog ---------------------------------------------------------------

TEST_F(BrickReplicationTest, LookupAnswersTheChangelogWhenAsked) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto f = b->create(dir, "f");
  ASSERT_TRUE(f);
  Gfid file = gfid_of(f->attr());
  pb::Changelog marks = changelog({0, 0, 0, 2, 1, 0}, {1, 1, 0});
  ASSERT_TRUE(add(*b, file, marks));
  ASSERT_TRUE(add(*b, dir, missed(1, kChangelogEntry)));

  pb::LookupReq by_name;
  by_name.set_parent(raw(dir));
  by_name.set_name("f");
  by_name.set_want_changelog(true);
  auto named = b->call<pb::LookupRsp>(pb::LOOKUP, by_name);
  ASSERT_TRUE(named) << error_text(named.error());
  EXPECT_EQ(gfid_of(named->attr()), file);
  ASSERT_TRUE(named->has_changelog());
  EXPECT_TRUE(same_counters(named->changelog(), marks));

  pb::LookupReq by_gfid;
  by_gfid.set_gfid(raw(file));
  by_gfid.set_want_changelog(true);
  auto nameless = b->call<pb::LookupRsp>(pb::LOOKUP, by_gfid);
  ASSERT_TRUE(nameless) << error_text(nameless.error());
  EXPECT_EQ(gfid_of(nameless->attr()), file);
  ASSERT_TRUE(nameless->has_changelog());
  EXPECT_TRUE(same_counters(nameless->changelog(), marks));

  // Directories too.
  by_name.set_parent(raw(kRoot));
  by_name.set_name("d");
  auto of_dir = b->call<pb::LookupRsp>(pb::LOOKUP, by_name);
  ASSERT_TRUE(of_dir);
  EXPECT_TRUE(same_counters(of_dir->changelog(), missed(1, kChangelogEntry)));

  // Not asked, not sent.
  by_gfid.set_want_changelog(false);
  auto plain = b->call<pb::LookupRsp>(pb::LOOKUP, by_gfid);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_changelog());

  // An unmarked inode answers all-zero.
  auto clean = b->create(kRoot, "clean");
  ASSERT_TRUE(clean);
  by_gfid.set_gfid(clean->attr().gfid());
  by_gfid.set_want_changelog(true);
  auto zero = b->call<pb::LookupRsp>(pb::LOOKUP, by_gfid);
  ASSERT_TRUE(zero);
  EXPECT_TRUE(all_zero(zero->changelog()));
}

// --- CHECKSUM --------------------------------------------------------------------------------

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen());
  return s;
}

std::vector<uint64_t> block_sums(std::string_view data, uint64_t offset, uint64_t length,
                                 size_t block) {
  std::vector<uint64_t> out;
  uint64_t end = std::min<uint64_t>(data.size(), offset + length);
  for (uint64_t at = offset; at < end; at += block) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(block, end - at));
    out.push_back(XXH3_64bits(data.data() + at, n));
  }
  return out;
}

TEST_F(BrickReplicationTest, ChecksumSumsEachBlock) {
  auto b = connect();
  auto f = b->create(kRoot, "data");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());
  constexpr size_t kBlock = 4096;
  std::string data = random_bytes(3 * kBlock + 1000, 1);  // a short last block
  ASSERT_TRUE(b->write(f->fd(), 0, data));

  auto checksum = [&](uint64_t offset, uint64_t length,
                      uint32_t block_size) -> Result<pb::ChecksumRsp> {
    pb::ChecksumReq req;
    req.set_gfid(raw(g));
    req.set_offset(offset);
    req.set_length(length);
    req.set_block_size(block_size);
    return b->call<pb::ChecksumRsp>(pb::CHECKSUM, req);
  };
  auto sums = [](const pb::ChecksumRsp& r) {
    return std::vector<uint64_t>(r.sums().begin(), r.sums().end());
  };

  // The whole file, asked with a length far past its end: four sums, the last of 1000 bytes.
  auto whole = checksum(0, 1 << 20, kBlock);
  ASSERT_TRUE(whole) << error_text(whole.error());
  EXPECT_EQ(whole->size(), data.size());
  ASSERT_EQ(whole->sums_size(), 4);
  EXPECT_EQ(sums(*whole), block_sums(data, 0, data.size(), kBlock));
  EXPECT_EQ(whole->sums(3), XXH3_64bits(data.data() + 3 * kBlock, 1000));

  // A window in the middle, and one that ends inside a block.
  auto middle = checksum(kBlock, 2 * kBlock, kBlock);
  ASSERT_TRUE(middle);
  EXPECT_EQ(sums(*middle), block_sums(data, kBlock, 2 * kBlock, kBlock));
  EXPECT_EQ(middle->sums_size(), 2);
  auto partial = checksum(0, kBlock + 10, kBlock);
  ASSERT_TRUE(partial);
  ASSERT_EQ(partial->sums_size(), 2);
  EXPECT_EQ(partial->sums(1), XXH3_64bits(data.data() + kBlock, 10));

  // Past the end of file: no blocks, but the size.
  auto beyond = checksum(data.size(), 1 << 20, kBlock);
  ASSERT_TRUE(beyond);
  EXPECT_EQ(beyond->sums_size(), 0);
  EXPECT_EQ(beyond->size(), data.size());
  auto far = checksum(1ull << 40, kBlock, kBlock);
  ASSERT_TRUE(far);
  EXPECT_EQ(far->sums_size(), 0);

  // One changed byte changes only its block's sum: what heal relies on to copy one block.
  ASSERT_TRUE(b->write(f->fd(), 2 * kBlock + 7, "X"));
  data[2 * kBlock + 7] = 'X';
  auto changed = checksum(0, data.size(), kBlock);
  ASSERT_TRUE(changed);
  ASSERT_EQ(changed->sums_size(), 4);
  EXPECT_EQ(sums(*changed), block_sums(data, 0, data.size(), kBlock));
  EXPECT_EQ(changed->sums(0), whole->sums(0));
  EXPECT_EQ(changed->sums(1), whole->sums(1));
  EXPECT_NE(changed->sums(2), whole->sums(2));
  EXPECT_EQ(changed->sums(3), whole->sums(3));

  // The largest block size is 16 MiB.
  auto biggest = checksum(0, UINT64_MAX, 16u << 20);
  ASSERT_TRUE(biggest) << error_text(biggest.error());
  ASSERT_EQ(biggest->sums_size(), 1);
  EXPECT_EQ(biggest->sums(0), XXH3_64bits(data.data(), data.size()));
  EXPECT_EQ(checksum(0, kBlock, (16u << 20) + 1).error().value, EINVAL);
  EXPECT_EQ(checksum(0, kBlock, 0).error().value, EINVAL);

  // An empty file has no blocks.
  auto empty = b->create(kRoot, "empty");
  ASSERT_TRUE(empty);
  pb::ChecksumReq req;
  req.set_gfid(empty->attr().gfid());
  req.set_length(kBlock);
  req.set_block_size(kBlock);
  auto none = b->call<pb::ChecksumRsp>(pb::CHECKSUM, req);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->sums_size(), 0);
  EXPECT_EQ(none->size(), 0u);

  // Only regular files have data to sum.
  auto d = b->mkdir(kRoot, "dir");
  ASSERT_TRUE(d);
  req.set_gfid(d->gfid());
  EXPECT_EQ(b->call<pb::ChecksumRsp>(pb::CHECKSUM, req).error().value, EISDIR);
  req.set_gfid(raw(Gfid::random()));
  EXPECT_EQ(b->call<pb::ChecksumRsp>(pb::CHECKSUM, req).error().value, ESTALE);
}

// --- LOCK_CONTENTION -------------------------------------------------------------------------

TEST_F(BrickReplicationTest, InodelkContentionIsToldToTheHolder) {
  auto setup = connect();
  auto f = setup->create(kRoot, "f");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());
  auto a = listening_client();
  auto b = listening_client();

  pb::InodelkReq lk;
  lk.set_domain("vol-replicate-0:data");
  lk.set_gfid(raw(g));
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(1);
  ASSERT_TRUE(a->call<pb::Empty>(pb::INODELK, lk));
  // A non-blocking request fails at once; nobody waits, so nobody is told.
  EXPECT_EQ(b->call<pb::Empty>(pb::INODELK, lk).error().value, EAGAIN);
  // Another domain is another lock space.
  pb::InodelkReq other = lk;
  other.set_domain("vol-replicate-0:metadata");
  ASSERT_TRUE(b->call<pb::Empty>(pb::INODELK, other));

  pb::InodelkReq wait = lk;
  wait.set_blocking(true);
  auto pending = b->start_call(pb::INODELK, wait);
  ASSERT_TRUE(eventually([&] { return !a->contention().empty(); }, 5s))
      << "the holder was not told";
  std::this_thread::sleep_for(100ms);  // room for an unwanted second event
  auto events = a->contention();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].domain(), "vol-replicate-0:data");
  EXPECT_EQ(events[0].gfid(), raw(g));
  EXPECT_FALSE(events[0].entry());
  EXPECT_EQ(a->other_events(), 0u);
  EXPECT_TRUE(b->contention().empty()) << "the waiter holds nothing anyone wants";
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout) << "granted while A holds it";

  pb::InodelkReq unlock = lk;
  unlock.set_type(pb::UNLOCK);
  ASSERT_TRUE(a->call<pb::Empty>(pb::INODELK, unlock));
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  auto granted = pending.get();
  EXPECT_TRUE(granted) << error_text(granted.error());
  EXPECT_EQ(a->call<pb::Empty>(pb::INODELK, lk).error().value, EAGAIN) << "B holds it now";
}

TEST_F(BrickReplicationTest, EntrylkContentionIsToldToTheHolder) {
  auto setup = connect();
  auto d = setup->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto a = listening_client();
  auto b = listening_client();

  pb::EntrylkReq lk;
  lk.set_domain("vol-replicate-0");
  lk.set_parent(raw(dir));
  lk.set_name("f");
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(1);
  ASSERT_TRUE(a->call<pb::Empty>(pb::ENTRYLK, lk));
  EXPECT_EQ(b->call<pb::Empty>(pb::ENTRYLK, lk).error().value, EAGAIN);
  pb::EntrylkReq other_name = lk;
  other_name.set_name("g");
  ASSERT_TRUE(b->call<pb::Empty>(pb::ENTRYLK, other_name));

  pb::EntrylkReq wait = lk;
  wait.set_blocking(true);
  auto pending = b->start_call(pb::ENTRYLK, wait);
  ASSERT_TRUE(eventually([&] { return !a->contention().empty(); }, 5s))
      << "the holder was not told";
  std::this_thread::sleep_for(100ms);
  auto events = a->contention();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].domain(), "vol-replicate-0");
  EXPECT_EQ(events[0].gfid(), raw(dir));
  EXPECT_TRUE(events[0].entry());
  EXPECT_TRUE(b->contention().empty());
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout) << "granted while A holds it";

  pb::EntrylkReq unlock = lk;
  unlock.set_type(pb::UNLOCK);
  ASSERT_TRUE(a->call<pb::Empty>(pb::ENTRYLK, unlock));
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  auto granted = pending.get();
  EXPECT_TRUE(granted) << error_text(granted.error());
  EXPECT_EQ(a->call<pb::Empty>(pb::ENTRYLK, lk).error().value, EAGAIN) << "B holds it now";
}

// --- Locks that carry replication's work ---------------------------------------------------

TEST_F(BrickReplicationTest, CreateTakesTheDataLockOnlyOnTheInodeItMakes) {
  auto a = listening_client();
  auto b = listening_client();
  Gfid g = Gfid::random();
  pb::CreateReq req;
  req.set_parent(raw(kRoot));
  req.set_name("f");
  req.set_gfid(raw(g));
  req.set_mode(0644);
  req.set_flags(O_RDWR | O_CREAT);
  pb::InodelkReq* want = req.mutable_data_lock();
  want->set_domain("vol-replicate-0:data");
  want->set_type(pb::WRITE_LOCK);
  want->set_owner(1);
  auto made = a->call<pb::CreateRsp>(pb::CREATE, req);
  ASSERT_TRUE(made) << error_text(made.error());
  EXPECT_EQ(made->attr().gfid(), raw(g));
  EXPECT_TRUE(made->locked());

  // Held by A's connection and owner, on the new inode, in that domain only.
  pb::InodelkReq lk;
  lk.set_domain("vol-replicate-0:data");
  lk.set_gfid(raw(g));
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(1);
  EXPECT_EQ(b->call<pb::Empty>(pb::INODELK, lk).error().value, EAGAIN);
  pb::InodelkReq other = lk;
  other.set_domain("vol-replicate-0:metadata");
  EXPECT_TRUE(b->call<pb::Empty>(pb::INODELK, other));
  pb::InodelkReq unlock = lk;
  unlock.set_type(pb::UNLOCK);
  ASSERT_TRUE(a->call<pb::Empty>(pb::INODELK, unlock));
  ASSERT_TRUE(b->call<pb::Empty>(pb::INODELK, lk)) << "A's unlock did not free it";

  // An existing file is opened, not made: no lock (B holds it now, and a create never waits).
  pb::CreateReq again = req;
  again.set_gfid(raw(Gfid::random()));
  auto opened = a->call<pb::CreateRsp>(pb::CREATE, again);
  ASSERT_TRUE(opened) << error_text(opened.error());
  EXPECT_EQ(opened->attr().gfid(), raw(g));
  EXPECT_FALSE(opened->locked());

  // Without data_lock, a create locks nothing.
  pb::CreateReq plain = req;
  plain.set_name("g");
  plain.set_gfid(raw(Gfid::random()));
  plain.clear_data_lock();
  auto unlocked = a->call<pb::CreateRsp>(pb::CREATE, plain);
  ASSERT_TRUE(unlocked);
  EXPECT_FALSE(unlocked->locked()) << "locked without being asked";
  pb::InodelkReq free_lk = lk;
  free_lk.set_gfid(plain.gfid());
  EXPECT_TRUE(b->call<pb::Empty>(pb::INODELK, free_lk)) << "a create without data_lock locked";
}

class SlowCreateTest : public BrickReplicationTest {
  std::vector<std::string> extra_args() override { return {"--inject-delay", "CREATE:1000"}; }
};

// A create still on the brick's disk thread when its client hangs up (as a client does that
// gave up on a hung brick): the lock it asked for must not outlive the connection.
TEST_F(SlowCreateTest, ACreatesLockIsNotGrantedToAClosedConnection) {
  auto setup = connect();
  auto a = listening_client();
  auto b = listening_client();
  Gfid g = Gfid::random();
  pb::CreateReq req;
  req.set_parent(raw(kRoot));
  req.set_name("f");
  req.set_gfid(raw(g));
  req.set_mode(0644);
  req.set_flags(O_RDWR | O_CREAT);
  pb::InodelkReq* want = req.mutable_data_lock();
  want->set_domain("vol-replicate-0:data");
  want->set_type(pb::WRITE_LOCK);
  want->set_owner(1);
  auto pending = a->start_call(pb::CREATE, req);
  std::this_thread::sleep_for(200ms);
  a->disconnect();
  // The create itself still happens.
  ASSERT_TRUE(eventually([&] { return bool(setup->lookup(kRoot, "f")); }, 5s));
  pb::InodelkReq lk;
  lk.set_domain("vol-replicate-0:data");
  lk.set_gfid(raw(g));
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(2);
  EXPECT_TRUE(eventually([&] { return bool(b->call<pb::Empty>(pb::INODELK, lk)); }, 3s))
      << "the closed connection holds the lock";
  pending.wait();
}

TEST_F(BrickReplicationTest, UnlockAppliesItsPostOpBeforeTheLockGoes) {
  auto setup = connect();
  auto f = setup->create(kRoot, "f");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());
  auto d = setup->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto a = listening_client();
  auto b = listening_client();

  // The inode lock: pre-op mark, then an unlock that takes it back.
  pb::InodelkReq lk;
  lk.set_domain("vol-replicate-0:data");
  lk.set_gfid(raw(g));
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(1);
  ASSERT_TRUE(a->call<pb::Empty>(pb::INODELK, lk));
  ASSERT_TRUE(a->call<pb::ChangelogRsp>(pb::CHANGELOG, mark(g, missed(1, kChangelogData))));
  ASSERT_EQ(heal_index(*setup)->total(), 1u);
  pb::InodelkReq wait = lk;
  wait.set_blocking(true);
  auto pending = b->start_call(pb::INODELK, wait);
  ASSERT_TRUE(eventually([&] { return !a->contention().empty(); }, 5s));
  pb::InodelkReq unlock = lk;
  unlock.set_type(pb::UNLOCK);
  *unlock.add_post_op() = mark(g, missed(1, kChangelogData, -1));
  // A mark for an inode the brick no longer has is skipped, not an error.
  *unlock.add_post_op() = mark(Gfid::random(), missed(1, kChangelogData, -1));
  auto r = a->call<pb::Empty>(pb::INODELK, unlock);
  ASSERT_TRUE(r) << error_text(r.error());
  EXPECT_TRUE(all_zero(*changelog_of(*setup, g)));
  EXPECT_EQ(heal_index(*setup)->total(), 0u);
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready) << "the lock was kept";
  EXPECT_TRUE(pending.get());

  // The entry lock, with a bad mark beside a good one: the good one is applied, the caller is
  // told, and the lock goes all the same.
  pb::EntrylkReq elk;
  elk.set_domain("vol-replicate-0");
  elk.set_parent(raw(dir));
  elk.set_name("x");
  elk.set_type(pb::WRITE_LOCK);
  elk.set_owner(1);
  ASSERT_TRUE(a->call<pb::Empty>(pb::ENTRYLK, elk));
  ASSERT_TRUE(a->call<pb::ChangelogRsp>(pb::CHANGELOG, mark(dir, missed(1, kChangelogEntry))));
  pb::EntrylkReq eunlock = elk;
  eunlock.set_type(pb::UNLOCK);
  *eunlock.add_post_op() = mark(std::string("abc"), missed(1, kChangelogEntry, -1));
  *eunlock.add_post_op() = mark(dir, missed(1, kChangelogEntry, -1));
  auto er = a->call<pb::Empty>(pb::ENTRYLK, eunlock);
  ASSERT_FALSE(er);
  EXPECT_EQ(er.error().value, EINVAL);
  EXPECT_TRUE(all_zero(*changelog_of(*setup, dir)));
  EXPECT_EQ(heal_index(*setup)->total(), 0u);
  EXPECT_TRUE(b->call<pb::Empty>(pb::ENTRYLK, elk)) << "the entry lock was kept";
}

TEST_F(BrickReplicationTest, ADisconnectedHolderReleasesItsLocks) {
  auto setup = connect();
  auto d = setup->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  auto a = listening_client();
  auto b = listening_client();

  pb::InodelkReq ilk;
  ilk.set_domain("vol-replicate-0");
  ilk.set_gfid(raw(dir));
  ilk.set_type(pb::WRITE_LOCK);
  ilk.set_owner(7);
  pb::EntrylkReq elk;
  elk.set_domain("vol-replicate-0");
  elk.set_parent(raw(dir));
  elk.set_name("");  // the whole directory
  elk.set_type(pb::WRITE_LOCK);
  elk.set_owner(7);
  ASSERT_TRUE(a->call<pb::Empty>(pb::INODELK, ilk));
  ASSERT_TRUE(a->call<pb::Empty>(pb::ENTRYLK, elk));

  ilk.set_blocking(true);
  elk.set_blocking(true);
  elk.set_name("x");  // a name inside the locked directory
  auto inode = b->start_call(pb::INODELK, ilk);
  auto entry = b->start_call(pb::ENTRYLK, elk);
  ASSERT_TRUE(eventually([&] { return a->contention().size() >= 2; }, 5s));
  EXPECT_EQ(inode.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(entry.wait_for(0s), std::future_status::timeout);

  // A hangs up without unlocking: the brick releases what it held.
  a->disconnect();
  ASSERT_EQ(inode.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(entry.wait_for(5s), std::future_status::ready);
  auto gi = inode.get(), ge = entry.get();
  EXPECT_TRUE(gi) << error_text(gi.error());
  EXPECT_TRUE(ge) << error_text(ge.error());
}

// --- Arbiter ---------------------------------------------------------------------------------

class ArbiterBrickTest : public BrickReplicationTest {
  std::vector<std::string> extra_args() override { return {"--arbiter"}; }
};

TEST_F(ArbiterBrickTest, KeepsNamesMetadataAndChangelogsButNoData) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "d");
  ASSERT_TRUE(d);
  auto f = b->create(gfid_of(*d), "f", 0644);
  ASSERT_TRUE(f) << error_text(f.error());
  Gfid g = gfid_of(f->attr());
  std::string path = brick_dir_ + "/d/f";
  ASSERT_TRUE(fs::is_regular_file(path));
  auto disk = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st;
  };

  // Writes answer as if done, with the pre-op marks applied, and leave the file empty.
  std::string data = random_bytes(10000, 2);
  pb::WriteReq w;
  w.set_fd(f->fd());
  w.set_offset(0);
  *w.add_pre_op() = mark(g, missed(1, kChangelogData));
  auto written = io_.run(b->client().write(w, Buffer::copy_of(data)));
  ASSERT_TRUE(written) << error_text(written.error());
  EXPECT_EQ(written->written(), data.size());
  EXPECT_EQ(disk().st_size, 0);
  EXPECT_EQ(file_bytes(path), "");
  EXPECT_TRUE(same_counters(*changelog_of(*b, g), missed(1, kChangelogData)));
  auto at_offset = b->write(f->fd(), 1 << 20, "tail");
  ASSERT_TRUE(at_offset);
  EXPECT_EQ(at_offset->written(), 4u);
  EXPECT_EQ(disk().st_size, 0);

  // Truncate, by GFID and by fd, and fallocate succeed without touching the file.
  pb::TruncateReq t;
  t.set_gfid(raw(g));
  t.set_size(5000);
  auto by_gfid = b->call<pb::TruncateRsp>(pb::TRUNCATE, t);
  ASSERT_TRUE(by_gfid) << error_text(by_gfid.error());
  t.clear_gfid();
  t.set_fd(f->fd());
  t.set_size(7000);
  auto by_fd = b->call<pb::TruncateRsp>(pb::TRUNCATE, t);
  ASSERT_TRUE(by_fd) << error_text(by_fd.error());
  EXPECT_EQ(disk().st_size, 0);
  pb::FallocateReq fa;
  fa.set_fd(f->fd());
  fa.set_offset(0);
  fa.set_length(1 << 20);
  auto allocated = b->call<pb::FallocateRsp>(pb::FALLOCATE, fa);
  ASSERT_TRUE(allocated) << error_text(allocated.error());
  EXPECT_EQ(disk().st_size, 0);
  EXPECT_EQ(disk().st_blocks, 0);
  // Directories still have no size to change.
  pb::TruncateReq td;
  td.set_gfid(d->gfid());
  EXPECT_EQ(b->call<pb::TruncateRsp>(pb::TRUNCATE, td).error().value, EISDIR);

  // Metadata is kept as on any brick.
  pb::SetattrReq sa;
  sa.set_gfid(raw(g));
  sa.set_valid(pb::SET_MODE | pb::SET_UID | pb::SET_MTIME);
  sa.set_mode(0600);
  sa.set_uid(33);
  sa.set_mtime_sec(1000000000);
  *sa.add_pre_op() = mark(g, missed(1, kChangelogMetadata));
  auto set = b->call<pb::SetattrRsp>(pb::SETATTR, sa);
  ASSERT_TRUE(set) << error_text(set.error());
  EXPECT_EQ(disk().st_mode & 07777, 0600u);
  EXPECT_EQ(disk().st_uid, 33u);
  EXPECT_EQ(disk().st_mtim.tv_sec, 1000000000);
  pb::SetxattrReq sx;
  sx.set_gfid(raw(g));
  sx.set_name("user.mime");
  sx.set_value("text/plain");
  ASSERT_TRUE(b->call<pb::Empty>(pb::SETXATTR, sx));
  char value[64] = {};
  ssize_t n = ::getxattr(path.c_str(), "user.mime", value, sizeof value);
  ASSERT_EQ(n, 10);
  EXPECT_EQ(std::string(value, static_cast<size_t>(n)), "text/plain");

  // The changelog and heal index work as on any brick.
  pb::Changelog want = missed(1, kChangelogData);
  accumulate(want, missed(1, kChangelogMetadata));
  EXPECT_TRUE(same_counters(*changelog_of(*b, g), want));
  auto more = add(*b, g, missed(0, kChangelogData, 2));
  ASSERT_TRUE(more);
  accumulate(want, missed(0, kChangelogData, 2));
  EXPECT_TRUE(same_counters(*more, want));
  auto index = heal_index(*b, 10, true);
  ASSERT_TRUE(index);
  ASSERT_EQ(index->entries_size(), 1);
  EXPECT_EQ(index->entries(0).path(), "/d/f");

  // And names: the file goes away as on any brick.
  EXPECT_TRUE(b->lookup(gfid_of(*d), "f"));
  EXPECT_TRUE(b->unlink(gfid_of(*d), "f"));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(heal_index(*b)->total(), 0u);
}

}  // namespace
}  // namespace mortar::test
