// cluster/distribute over real mortar-brickd processes, driven in-process so tests can count
// each brick's requests and look at each brick's directory on disk. Most cases spread over
// plain bricks (a distribute-only volume: one brick per set); the last ones run over two
// replica sets of two bricks, the shape of a 2 x 2 volume.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/brick.h"
#include "tests/support/replica_tree.h"
#include "translators/dht/dht.h"
#include "translators/graph.h"
#include "translators/protocol-client/protocol_client.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using xl::dht::Distribute;

constexpr const char* kAddress = "127.0.0.26";

class DistributeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    graph_.reset();
    bricks_.clear();
  }

  // `sets` replica sets of `replicas` bricks each (replicas 1: plain bricks).
  void start(int sets, int replicas = 1) {
    sets_ = sets;
    replicas_ = replicas;
    for (int i = 0; i < sets * replicas; ++i) {
      bricks_.push_back(std::make_unique<BrickDaemon>(
          kAddress, brick_dir(i), dir_ / ("brick" + std::to_string(i) + ".log"),
          std::vector<std::string>{}, "info"));
      ASSERT_TRUE(bricks_.back()->start());
    }
    ASSERT_NO_FATAL_FAILURE(use_graph(sets));
  }

  // A new graph over the first `sets` sets (the volume as it was, or grown), with `map` as
  // its bucket-map option (none: even).
  void use_graph(int sets, const std::string& map = "") {
    graph_.reset();
    graph_ = start_graph(volfile(sets, map), io_.executor(), "dht-test-" + std::to_string(++graphs_));
    ASSERT_TRUE(graph_);
    dht_ = dynamic_cast<Distribute*>(graph_->top());
    ASSERT_TRUE(dht_);
    ASSERT_TRUE(eventually([&] {
      for (int s = 0; s < sets; ++s) {
        if (!dht_->set_up(s)) return false;
      }
      return true;
    }));
  }

  std::string volfile(int sets, const std::string& map) const {
    std::ostringstream v;
    // Only the bricks of the sets in the graph: a graph has one top, so no loose clients.
    for (size_t i = 0; i < static_cast<size_t>(sets * replicas_); ++i) {
      v << "volume vol-client-" << i << "\n  type protocol/client\n"
        << "  option remote-host " << bricks_[i]->address() << "\n"
        << "  option remote-port " << bricks_[i]->port() << "\n"
        << "  option remote-subvolume b0\n  option remote-volume vol\n"
        << "  option ping-timeout 2\nend-volume\n";
    }
    std::vector<std::string> subvolumes;
    if (replicas_ == 1) {
      for (int i = 0; i < sets; ++i) subvolumes.push_back("vol-client-" + std::to_string(i));
    } else {
      for (int s = 0; s < sets; ++s) {
        std::string name = "vol-replicate-" + std::to_string(s);
        v << "volume " << name << "\n  type cluster/replicate\n  subvolumes";
        for (int r = 0; r < replicas_; ++r) v << " vol-client-" << s * replicas_ + r;
        v << "\nend-volume\n";
        subvolumes.push_back(name);
      }
    }
    v << "volume vol-dht\n  type cluster/distribute\n";
    if (!map.empty()) v << "  option bucket-map " << map << "\n";
    v << "  subvolumes";
    for (const auto& s : subvolumes) v << " " << s;
    v << "\nend-volume\n";
    return v.str();
  }

  std::string brick_dir(int i) const { return dir_ / ("b" + std::to_string(i)); }
  // The brick directory of set `s` (its first replica).
  std::string set_dir(int s) const { return brick_dir(s * replicas_); }

  xl::dht::Distribute& dht() { return *dht_; }
  // Calls each brick's protocol client has sent so far.
  std::vector<uint64_t> calls() const {
    std::vector<uint64_t> c;
    for (size_t i = 0; i < bricks_.size(); ++i) {
      auto* p = dynamic_cast<xl::ProtocolClient*>(graph_->find("vol-client-" + std::to_string(i)));
      c.push_back(p ? p->calls_sent() : 0);
    }
    return c;
  }

  template <class T>
  T run(boost::asio::awaitable<T> a) {
    return io_.run(std::move(a));
  }
  xl::OpContext ctx() const { return xl::OpContext{}; }

  Result<pb::Iatt> lookup(const Gfid& parent, const std::string& name) {
    return run(dht_->lookup(ctx(), parent, name));
  }
  Result<xl::Created> create(const Gfid& parent, const std::string& name) {
    pb::CreateReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    req.set_gfid(std::string(Gfid::random().bytes()));
    req.set_mode(0644);
    req.set_flags(O_RDWR);
    return run(dht_->create(ctx(), req));
  }
  Result<pb::Iatt> mkdir(const Gfid& parent, const std::string& name) {
    pb::MkdirReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    req.set_gfid(std::string(Gfid::random().bytes()));
    req.set_mode(0755);
    return run(dht_->mkdir(ctx(), req));
  }
  Result<void> rmdir(const Gfid& parent, const std::string& name) {
    pb::RmdirReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    return run(dht_->rmdir(ctx(), req));
  }
  Result<void> unlink(const Gfid& parent, const std::string& name) {
    pb::UnlinkReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    return run(dht_->unlink(ctx(), req));
  }
  Result<void> rename(const Gfid& from_dir, const std::string& from, const Gfid& to_dir,
                      const std::string& to) {
    pb::RenameReq req;
    req.set_old_parent(std::string(from_dir.bytes()));
    req.set_old_name(from);
    req.set_new_parent(std::string(to_dir.bytes()));
    req.set_new_name(to);
    return run(dht_->rename(ctx(), req));
  }
  Result<pb::Iatt> link(const Gfid& gfid, const Gfid& dir, const std::string& name) {
    pb::LinkReq req;
    req.set_gfid(std::string(gfid.bytes()));
    req.set_new_parent(std::string(dir.bytes()));
    req.set_new_name(name);
    return run(dht_->link(ctx(), req));
  }
  // Writes a whole small file.
  void put(const Gfid& parent, const std::string& name, const std::string& data) {
    auto c = create(parent, name);
    ASSERT_TRUE(c) << name << ": " << c.error().message();
    auto w = run(dht_->write(ctx(), c->fd, 0, Buffer::copy_of(data)));
    ASSERT_TRUE(w) << name << ": " << w.error().message();
    run(dht_->release(c->fd));
  }
  // The whole content of `name`, through the translator.
  Result<std::string> get(const Gfid& parent, const std::string& name) {
    auto a = lookup(parent, name);
    if (!a) return fail(a.error());
    auto fd = run(dht_->open(ctx(), gfid_of(*a), O_RDONLY));
    if (!fd) return fail(fd.error());
    std::string out;
    for (;;) {
      auto r = run(dht_->read(ctx(), *fd, out.size(), 1 << 20));
      if (!r) {
        run(dht_->release(*fd));
        return fail(r.error());
      }
      if (r->size() == 0) break;
      out += r->view();
    }
    run(dht_->release(*fd));
    return out;
  }
  // Every name of a directory, listed in chunks of `chunk` bytes (without "." and "..").
  Result<std::vector<std::string>> list(const Gfid& dir, uint32_t chunk = 4096, bool plus = false) {
    auto fd = run(dht_->opendir(ctx(), dir));
    if (!fd) return fail(fd.error());
    std::vector<std::string> names;
    uint64_t offset = 0;
    for (;;) {
      auto r = run(dht_->readdir(ctx(), *fd, offset, chunk, plus));
      if (!r) {
        run(dht_->release(*fd));
        return fail(r.error());
      }
      for (const auto& e : r->entries()) {
        if (e.name() != "." && e.name() != "..") names.push_back(e.name());
        offset = e.offset();
      }
      if (r->eof() || r->entries_size() == 0) break;
    }
    run(dht_->release(*fd));
    return names;
  }
  // Entries of a directory on a brick's disk, without the brick's own.
  std::set<std::string> on_disk(int brick, const std::string& rel = "") const {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(brick_dir(brick)) / rel, ec)) {
      std::string n = e.path().filename();
      if (n != ".mortar") out.insert(n);
    }
    return out;
  }
  // The linkto xattr of a path on a brick, or "" when it has none.
  std::string linkto(int brick, const std::string& rel) const {
    char buf[256];
    std::string p = (fs::path(brick_dir(brick)) / rel).string();
    ssize_t n = ::lgetxattr(p.c_str(), xl::dht::kLinkXattr, buf, sizeof buf);
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
  }
  std::string set_name(int s) const {
    return replicas_ == 1 ? "vol-client-" + std::to_string(s) : "vol-replicate-" + std::to_string(s);
  }
  // A name in `dir` (by prefix and counter) that the map places on set `s`.
  std::string name_on(const Gfid& dir, int s, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string n = prefix + std::to_string(i);
      if (static_cast<int>(dht_->owner_of(dir, n)) == s) return n;
    }
  }

  TempDir dir_{"mortar-dht"};
  IoThread io_{1};
  std::vector<std::unique_ptr<BrickDaemon>> bricks_;
  std::unique_ptr<xl::Graph> graph_;
  Distribute* dht_ = nullptr;
  int sets_ = 0, replicas_ = 1, graphs_ = 0;
};

// Files land on the set the bucket map names, once, and the sets share them about evenly.
TEST_F(DistributeTest, FilesLandOnTheirOwnerAndSpreadEvenly) {
  start(4);
  Gfid root = Gfid::root();
  constexpr int kFiles = 2000;
  std::vector<int> expected(4, 0);
  for (int i = 0; i < kFiles; ++i) {
    std::string n = "f" + std::to_string(i);
    put(root, n, n);
    ++expected[dht().owner_of(root, n)];
  }
  size_t total = 0;
  for (int s = 0; s < 4; ++s) {
    auto names = on_disk(s);
    total += names.size();
    EXPECT_EQ(names.size(), static_cast<size_t>(expected[s])) << "set " << s;
    for (const auto& n : names) EXPECT_EQ(static_cast<int>(dht().owner_of(root, n)), s) << n;
    // 500 each when even; 15% is ~5 standard deviations of chance.
    EXPECT_NEAR(names.size(), kFiles / 4.0, kFiles / 4.0 * 0.15) << "set " << s;
  }
  EXPECT_EQ(total, static_cast<size_t>(kFiles));
  for (int i = 0; i < kFiles; i += 97) {
    std::string n = "f" + std::to_string(i);
    auto got = get(root, n);
    ASSERT_TRUE(got) << n << ": " << got.error().message();
    EXPECT_EQ(*got, n);
  }
}

// A lookup of a name that does not exist asks only the set owning the name, once.
TEST_F(DistributeTest, NegativeLookupIsOneRoundTripToOneSet) {
  start(4);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "uploads");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  for (int i = 0; i < 20; ++i) {
    std::string n = "missing-" + std::to_string(i) + ".png";
    auto before = calls();
    auto r = lookup(dir, n);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ENOENT) << n;
    auto after = calls();
    int owner = static_cast<int>(dht().owner_of(dir, n));
    for (int b = 0; b < 4; ++b) {
      EXPECT_EQ(after[b] - before[b], b == owner ? 1u : 0u)
          << n << ": brick " << b << " (owner " << owner << ")";
    }
  }
}

// mkdir reaches every set; rmdir refuses while any set holds an entry in it and removes every
// copy once it is empty.
TEST_F(DistributeTest, DirectoriesLiveOnEverySetAndRmdirSeesEverySet) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "site");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  for (int s = 0; s < 2; ++s) EXPECT_TRUE(fs::is_directory(set_dir(s) + "/site")) << s;
  EXPECT_EQ(mkdir(root, "site").error().value, EEXIST);

  // A file on set 1 only makes the directory non-empty, wherever the directory's own name is.
  std::string on1 = name_on(dir, 1, "page");
  put(dir, on1, "x");
  auto r = rmdir(root, "site");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOTEMPTY);
  for (int s = 0; s < 2; ++s) EXPECT_TRUE(fs::is_directory(set_dir(s) + "/site")) << s;
  auto content = get(dir, on1);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "x");

  ASSERT_TRUE(unlink(dir, on1));
  ASSERT_TRUE(rmdir(root, "site"));
  for (int s = 0; s < 2; ++s) EXPECT_FALSE(fs::exists(set_dir(s) + "/site")) << s;
  EXPECT_EQ(lookup(root, "site").error().value, ENOENT);

  // Directory attributes and xattrs apply to every copy.
  auto e = mkdir(root, "cfg");
  ASSERT_TRUE(e);
  pb::SetattrReq chmod;
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(0700);
  ASSERT_TRUE(run(dht().setattr(ctx(), gfid_of(*e), nullptr, chmod)));
  ASSERT_TRUE(run(dht().setxattr(ctx(), gfid_of(*e), nullptr, "user.team", "web", 0)));
  for (int s = 0; s < 2; ++s) {
    struct stat st {};
    ASSERT_EQ(::stat((set_dir(s) + "/cfg").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << s;
    char v[16];
    ssize_t n = ::getxattr((set_dir(s) + "/cfg").c_str(), "user.team", v, sizeof v);
    EXPECT_EQ(std::string(v, n > 0 ? n : 0), "web") << s;
  }
}

// A directory made while a set was down is created there by the next lookup, with the same
// GFID, mode and xattrs.
TEST_F(DistributeTest, DirectoryMissingOnASetIsRepairedOnLookup) {
  start(2);
  Gfid root = Gfid::root();
  // A name whose owner is set 0, so the mkdir succeeds while set 1 is down.
  std::string name = name_on(root, 0, "dir");
  bricks_[1]->kill9();
  ASSERT_TRUE(eventually([&] { return !dht().set_up(1); }));
  auto d = mkdir(root, name);
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_TRUE(run(dht().setxattr(ctx(), gfid_of(*d), nullptr, "user.k", "v", 0)));
  EXPECT_FALSE(fs::exists(set_dir(1) + "/" + name));

  ASSERT_TRUE(bricks_[1]->start());
  ASSERT_TRUE(eventually([&] { return dht().set_up(1); }));
  auto again = lookup(root, name);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(gfid_of(*again), gfid_of(*d));
  ASSERT_TRUE(fs::is_directory(set_dir(1) + "/" + name));
  char v[16];
  ssize_t n = ::getxattr((set_dir(1) + "/" + name).c_str(), "user.k", v, sizeof v);
  EXPECT_EQ(std::string(v, n > 0 ? n : 0), "v");
  // Files under it can now go to either set.
  Gfid dir = gfid_of(*d);
  for (int s = 0; s < 2; ++s) {
    std::string f = name_on(dir, s, "f");
    put(dir, f, f);
    EXPECT_TRUE(fs::exists(set_dir(s) + "/" + name + "/" + f)) << s;
  }
}

// The listing test: 50,000 names over two sets list completely, each once.
TEST_F(DistributeTest, FiftyThousandEntriesListOnceEach) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "big");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  constexpr int kFiles = 50000;
  std::set<std::string> made;
  for (int i = 0; i < kFiles; ++i) {
    std::string n = "entry-" + std::to_string(i);
    pb::MknodReq req;
    req.set_parent(std::string(dir.bytes()));
    req.set_name(n);
    req.set_gfid(std::string(Gfid::random().bytes()));
    req.set_mode(S_IFREG | 0644);
    auto r = run(dht().mknod(ctx(), req));
    ASSERT_TRUE(r) << n << ": " << r.error().message();
    made.insert(n);
  }
  EXPECT_GT(on_disk(0, "big").size(), 0u);
  EXPECT_GT(on_disk(1, "big").size(), 0u);
  for (bool plus : {false, true}) {
    auto names = list(dir, 32 * 1024, plus);
    ASSERT_TRUE(names) << names.error().message();
    std::set<std::string> seen(names->begin(), names->end());
    EXPECT_EQ(seen.size(), names->size()) << "duplicates (plus " << plus << ")";
    EXPECT_EQ(seen, made) << "plus " << plus;
  }
}

// Entries added and removed while a directory is listed: every entry that stays the whole
// time is listed exactly once, nothing is listed twice, and the last offset handed out
// answers the same when asked again.
TEST_F(DistributeTest, ListingUnderChurnLosesAndRepeatsNothing) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "churn");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  std::set<std::string> stable;
  for (int i = 0; i < 2000; ++i) {
    std::string n = "stable-" + std::to_string(i);
    put(dir, n, "");
    stable.insert(n);
  }
  for (int i = 0; i < 500; ++i) put(dir, "doomed-" + std::to_string(i), "");

  auto fd = run(dht().opendir(ctx(), dir));
  ASSERT_TRUE(fd);
  std::vector<std::string> seen;
  uint64_t offset = 0;
  int round = 0, repeated = 0;
  std::vector<std::string> last;  // what the last call answered
  uint64_t last_offset = 0;
  for (;;) {
    auto r = run(dht().readdir(ctx(), *fd, offset, 2048, false));
    ASSERT_TRUE(r) << r.error().message();
    last_offset = offset;
    last.clear();
    for (const auto& e : r->entries()) {
      if (e.name() != "." && e.name() != "..") {
        seen.push_back(e.name());
        last.push_back(e.name());
      }
      offset = e.offset();
    }
    if (r->eof() || r->entries_size() == 0) break;
    // Between chunks, other clients create and remove names.
    for (int k = 0; k < 10; ++k) {
      put(dir, "new-" + std::to_string(round) + "-" + std::to_string(k), "");
      int gone = round * 10 + k;
      if (gone < 500) {
        ASSERT_TRUE(unlink(dir, "doomed-" + std::to_string(gone)));
      }
    }
    // The kernel asks for the same offset again when its buffer was too small: the answer
    // must not change, whatever happened in the directory meanwhile.
    if (round % 3 == 1 && last_offset != 0) {
      auto again = run(dht().readdir(ctx(), *fd, last_offset, 2048, false));
      ASSERT_TRUE(again) << again.error().message();
      std::vector<std::string> got;
      for (const auto& e : again->entries()) {
        if (e.name() != "." && e.name() != "..") got.push_back(e.name());
      }
      EXPECT_EQ(got, last) << "offset " << last_offset << " asked twice";
      ++repeated;
    }
    ++round;
  }
  ASSERT_GT(round, 5) << "the listing should have taken several rounds";
  EXPECT_GT(repeated, 0);
  std::map<std::string, int> count;
  for (const auto& n : seen) ++count[n];
  for (const auto& [n, c] : count) EXPECT_EQ(c, 1) << n << " listed " << c << " times";
  for (const auto& n : stable) EXPECT_EQ(count.count(n), 1u) << n << " lost";
  run(dht().release(*fd));
}

// Renames of files within a set, across sets (a link entry on the new owner), over existing
// names, and of directories; hard links across sets. Data stays readable under every name.
TEST_F(DistributeTest, RenameMatrixAndHardLinks) {
  start(2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "www");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);

  // Same set: a plain rename on that set, no link entry anywhere.
  std::string a0 = name_on(dir, 0, "a"), b0 = name_on(dir, 0, "b");
  put(dir, a0, "same-set");
  ASSERT_TRUE(rename(dir, a0, dir, b0));
  EXPECT_EQ(lookup(dir, a0).error().value, ENOENT);
  EXPECT_EQ(get(dir, b0).value_or("?"), "same-set");
  EXPECT_EQ(on_disk(0, "www"), std::set<std::string>{b0});
  EXPECT_TRUE(on_disk(1, "www").empty());

  // Across sets: the data stays on set 0; set 1 gets a link entry naming set 0.
  std::string c1 = name_on(dir, 1, "c");
  ASSERT_TRUE(rename(dir, b0, dir, c1));
  EXPECT_EQ(get(dir, c1).value_or("?"), "same-set");
  EXPECT_EQ(lookup(dir, b0).error().value, ENOENT);
  EXPECT_EQ(linkto(1, "www/" + c1), set_name(0));
  struct stat st {};
  ASSERT_EQ(::stat((set_dir(1) + "/www/" + c1).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  // A listing shows the name once, with the data's attributes under readdirplus.
  auto names = list(dir, 4096, true);
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{c1});
  auto attr = lookup(dir, c1);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->size(), 8u);

  // Over an existing name on another set: the old target is gone, the data reads back.
  std::string t0 = name_on(dir, 0, "target"), s1 = name_on(dir, 1, "src");
  put(dir, t0, "old target");
  put(dir, s1, "new content");
  ASSERT_TRUE(rename(dir, s1, dir, t0));
  EXPECT_EQ(get(dir, t0).value_or("?"), "new content");
  EXPECT_EQ(lookup(dir, s1).error().value, ENOENT);

  // Over an existing name on the same set.
  std::string u1 = name_on(dir, 1, "u"), v1 = name_on(dir, 1, "v");
  put(dir, u1, "u");
  put(dir, v1, "v");
  ASSERT_TRUE(rename(dir, u1, dir, v1));
  EXPECT_EQ(get(dir, v1).value_or("?"), "u");

  // Unlinking a linked name removes the link entry and the data.
  ASSERT_TRUE(unlink(dir, c1));
  EXPECT_EQ(lookup(dir, c1).error().value, ENOENT);
  EXPECT_FALSE(fs::exists(set_dir(1) + "/www/" + c1));
  EXPECT_FALSE(fs::exists(set_dir(0) + "/www/" + c1));

  // Directories: renamed on every set, contents follow.
  auto sub = mkdir(dir, "old-dir");
  ASSERT_TRUE(sub);
  Gfid subdir = gfid_of(*sub);
  for (int s = 0; s < 2; ++s) put(subdir, name_on(subdir, s, "p"), "in-dir");
  ASSERT_TRUE(rename(dir, "old-dir", root, "new-dir"));
  for (int s = 0; s < 2; ++s) {
    EXPECT_TRUE(fs::is_directory(set_dir(s) + "/new-dir")) << s;
    EXPECT_FALSE(fs::exists(set_dir(s) + "/www/old-dir")) << s;
  }
  auto moved = lookup(root, "new-dir");
  ASSERT_TRUE(moved);
  EXPECT_EQ(gfid_of(*moved), subdir);
  auto inside = list(subdir);
  ASSERT_TRUE(inside);
  EXPECT_EQ(inside->size(), 2u);
  for (const auto& n : *inside) EXPECT_EQ(get(subdir, n).value_or("?"), "in-dir") << n;

  // Hard link to a name owned by the other set: both names read the same data, and the file
  // survives the removal of either.
  std::string h0 = name_on(dir, 0, "h"), h1 = name_on(dir, 1, "hl");
  put(dir, h0, "linked");
  auto h = lookup(dir, h0);
  ASSERT_TRUE(h);
  auto l = link(gfid_of(*h), dir, h1);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->nlink(), 2u);
  EXPECT_EQ(get(dir, h1).value_or("?"), "linked");
  EXPECT_EQ(linkto(1, "www/" + h1), set_name(0));
  ASSERT_TRUE(unlink(dir, h0));
  EXPECT_EQ(get(dir, h1).value_or("?"), "linked");
  ASSERT_TRUE(unlink(dir, h1));
  EXPECT_EQ(lookup(dir, h1).error().value, ENOENT);
  EXPECT_FALSE(fs::exists(set_dir(1) + "/www/" + h1));
}

// statfs answers the sum over the sets.
TEST_F(DistributeTest, StatfsSumsTheSets) {
  start(2);
  auto total = run(dht().statfs(ctx(), Gfid::root()));
  ASSERT_TRUE(total);
  uint64_t blocks = 0;
  for (int s = 0; s < 2; ++s) {
    auto one = run(graph_->find(set_name(s))->statfs(ctx(), Gfid::root()));
    ASSERT_TRUE(one);
    blocks += one->blocks() * one->frsize();
  }
  // Both bricks sit on one file system here, so the sum is twice one brick's size (free space
  // may move a little between the calls; the size does not).
  EXPECT_EQ(total->blocks() * total->frsize(), blocks);
}

// Two replica sets of two bricks. A whole set down: only its names answer ENOTCONN; the other
// set's names, directories and listings keep working, and new names it owns can be created.
TEST_F(DistributeTest, ASetEntirelyDownFailsOnlyItsOwnNames) {
  start(2, 2);
  Gfid root = Gfid::root();
  auto d = mkdir(root, "app");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  std::vector<std::string> on[2];
  for (int i = 0; i < 40; ++i) {
    std::string n = "state-" + std::to_string(i);
    put(dir, n, n);
    on[dht().owner_of(dir, n)].push_back(n);
  }
  ASSERT_FALSE(on[0].empty());
  ASSERT_FALSE(on[1].empty());
  // Both bricks of a set hold its files.
  for (const auto& n : on[1]) {
    EXPECT_TRUE(fs::exists(brick_dir(2) + "/app/" + n)) << n;
    EXPECT_TRUE(fs::exists(brick_dir(3) + "/app/" + n)) << n;
  }

  bricks_[2]->kill9();
  bricks_[3]->kill9();
  ASSERT_TRUE(eventually([&] { return !dht().set_up(1); }, 10s));
  ASSERT_TRUE(dht().is_up());
  for (const auto& n : on[0]) EXPECT_EQ(get(dir, n).value_or("?"), n) << n;
  for (const auto& n : on[1]) {
    auto r = lookup(dir, n);
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().value, ENOTCONN) << n;
  }
  // New names owned by the live set work; those of the dead set do not.
  std::string fresh0 = name_on(dir, 0, "fresh");
  put(dir, fresh0, "while down");
  EXPECT_EQ(get(dir, fresh0).value_or("?"), "while down");
  auto c = create(dir, name_on(dir, 1, "fresh"));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().value, ENOTCONN);
  // The directory itself is still there, and lists what the live set holds.
  auto a = lookup(root, "app");
  ASSERT_TRUE(a) << a.error().message();
  auto names = list(dir);
  ASSERT_TRUE(names) << names.error().message();
  std::set<std::string> listed(names->begin(), names->end());
  for (const auto& n : on[0]) EXPECT_TRUE(listed.count(n)) << n;
  EXPECT_TRUE(listed.count(fresh0));

  // Back up: everything answers again.
  ASSERT_TRUE(bricks_[2]->start());
  ASSERT_TRUE(bricks_[3]->start());
  ASSERT_TRUE(eventually([&] { return dht().set_up(1); }, 10s));
  for (const auto& n : on[1]) EXPECT_EQ(get(dir, n).value_or("?"), n) << n;
}

// A volume grown from one set to two: the buckets given to the new set are moving. Names made
// before stay reachable and listed once (directories too, though the new set lacks them until
// a lookup repairs it), a new name never shadows an old one on the previous owner, and new
// files go to the new owner.
TEST_F(DistributeTest, GrownVolumeKeepsOldNamesVisibleAndUnshadowed) {
  start(2);
  ASSERT_NO_FATAL_FAILURE(use_graph(1));
  Gfid root = Gfid::root();
  std::set<std::string> made;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(mkdir(root, "d" + std::to_string(i)));
    put(root, "f" + std::to_string(i), "file " + std::to_string(i));
    made.insert("d" + std::to_string(i));
    made.insert("f" + std::to_string(i));
  }
  auto grown = xl::dht::rebalanced(xl::dht::even_map(1), 2);
  ASSERT_TRUE(grown) << grown.error();
  ASSERT_NO_FATAL_FAILURE(use_graph(2, xl::dht::encode(*grown)));
  ASSERT_EQ(dht().map().version, 2u);

  // Listed once each, before any lookup has repaired a directory onto the new set.
  auto names = list(root, 4096, true);
  ASSERT_TRUE(names) << names.error().message();
  std::multiset<std::string> listed(names->begin(), names->end());
  EXPECT_EQ(std::set<std::string>(names->begin(), names->end()), made);
  EXPECT_EQ(listed.size(), made.size());

  // Names of moving buckets: found on the old owner, and not to be made again on the new one.
  int moved_files = 0, moved_dirs = 0;
  for (int i = 0; i < 40; ++i) {
    std::string f = "f" + std::to_string(i), d = "d" + std::to_string(i);
    if (dht().owner_of(root, f) == 1) {
      ++moved_files;
      auto r = mkdir(root, f);
      ASSERT_FALSE(r) << f << " shadowed by a directory";
      EXPECT_EQ(r.error().value, EEXIST) << f;
    }
    if (dht().owner_of(root, d) == 1) {
      ++moved_dirs;
      auto r = mkdir(root, d);
      ASSERT_FALSE(r) << d << " made twice";
      EXPECT_EQ(r.error().value, EEXIST) << d;
    }
    EXPECT_EQ(get(root, f).value_or("?"), "file " + std::to_string(i)) << f;
    auto a = lookup(root, d);
    ASSERT_TRUE(a) << d << ": " << a.error().message();
  }
  EXPECT_GT(moved_files, 0);
  EXPECT_GT(moved_dirs, 0);
  // The lookups brought every directory to the new set, with its GFID.
  for (int i = 0; i < 40; ++i) {
    EXPECT_TRUE(fs::is_directory(set_dir(1) + "/d" + std::to_string(i))) << i;
  }
  // New names go to their owner, the new set included.
  std::string fresh = name_on(root, 1, "new");
  put(root, fresh, "new");
  EXPECT_TRUE(fs::exists(set_dir(1) + "/" + fresh));
  EXPECT_FALSE(fs::exists(set_dir(0) + "/" + fresh));
}

// Rebalance's mover after a 1 -> 2 set growth, over replica sets: every file, symlink and link
// entry of a moving bucket goes to its new owner with its bytes, GFID and attributes; hard
// links stay; a writer holding a file open while it moves loses no byte (its next write finds
// the old copy marked and follows the file); a second pass moves nothing again.
TEST_F(DistributeTest, MoverMovesMovingBucketsAndOpenWritersFollow) {
  start(2, 2);
  ASSERT_NO_FATAL_FAILURE(use_graph(1));
  Gfid root = Gfid::root();
  auto sub = mkdir(root, "sub");
  ASSERT_TRUE(sub);
  Gfid subdir = gfid_of(*sub);
  std::map<std::pair<Gfid, std::string>, std::string> content;
  for (int i = 0; i < 60; ++i) {
    std::string n = "page" + std::to_string(i);
    content[{root, n}] = pattern(100 + 37 * i, i);
    put(root, n, content[{root, n}]);
  }
  for (int i = 0; i < 40; ++i) {
    std::string n = "img" + std::to_string(i);
    content[{subdir, n}] = pattern(1000 + i, 100 + i);
    put(subdir, n, content[{subdir, n}]);
  }
  content[{root, "big"}] = pattern(3 << 20, 7);
  put(root, "big", content[{root, "big"}]);
  pb::SymlinkReq sl;
  sl.set_parent(std::string(root.bytes()));
  sl.set_name("current");
  sl.set_gfid(std::string(Gfid::random().bytes()));
  sl.set_target("sub/img1");
  ASSERT_TRUE(run(dht().symlink(ctx(), sl)));
  auto page0 = lookup(root, "page0");
  ASSERT_TRUE(page0);
  ASSERT_TRUE(link(gfid_of(*page0), subdir, "page0-again"));

  ASSERT_NO_FATAL_FAILURE(use_graph(2, xl::dht::encode(*xl::dht::rebalanced(xl::dht::even_map(1), 2))));
  // A file made before the growth whose bucket now moves, held open by a writer.
  std::string old_hot;
  for (const auto& [key, data] : content) {
    if (key.first == root && dht().owner_of(root, key.second) == 1 && key.second != "page0") {
      old_hot = key.second;
      break;
    }
  }
  ASSERT_FALSE(old_hot.empty());
  auto oh = lookup(root, old_hot);
  ASSERT_TRUE(oh);
  auto writer_fd = run(dht().open(ctx(), gfid_of(*oh), O_RDWR));
  ASSERT_TRUE(writer_fd);
  std::string& expected_hot = content[{root, old_hot}];
  ASSERT_TRUE(run(dht().write(ctx(), *writer_fd, expected_hot.size(), Buffer::copy_of("before;"))));
  expected_hot += "before;";

  ASSERT_TRUE(run(dht().repair_directories()));
  EXPECT_TRUE(fs::is_directory(brick_dir(2) + "/sub"));
  EXPECT_TRUE(fs::is_directory(brick_dir(3) + "/sub"));

  // The buckets holding the test's names (moving every bucket would only add empty listings).
  std::set<uint32_t> buckets;
  size_t expect_moved = 0, expect_skipped = 0, expect_bytes = 0;
  for (const auto& [key, data] : content) {
    uint32_t b = xl::dht::bucket_of(key.first, key.second);
    if (!dht().map().previous_owner(b)) continue;
    buckets.insert(b);
    if (key.second == "page0") {
      ++expect_skipped;  // hard-linked
    } else {
      ++expect_moved;
      expect_bytes += data.size();
    }
  }
  for (auto [parent, n] : std::vector<std::pair<Gfid, std::string>>{{root, "current"},
                                                                    {subdir, "page0-again"}}) {
    uint32_t b = xl::dht::bucket_of(parent, n);
    if (!dht().map().previous_owner(b)) continue;
    buckets.insert(b);
    if (n == "current") {
      ++expect_moved;
    } else {
      ++expect_skipped;
    }
  }
  ASSERT_GT(expect_moved, 20u);

  // Move them while another client writes to an open file that is among them.
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::string appended_bytes;
  std::thread writer([&] {
    while (!stop) {
      std::string piece = "w" + std::to_string(appended.load()) + ";";
      auto w = run(dht().write(ctx(), *writer_fd, expected_hot.size() + appended_bytes.size(),
                               Buffer::copy_of(piece)));
      if (!w) {
        ADD_FAILURE() << "write while moving: " << w.error().message();
        break;
      }
      appended_bytes += piece;
      ++appended;
    }
  });
  xl::dht::MoveStats total;
  for (uint32_t b : buckets) total += run(dht().move_bucket(b));
  stop = true;
  writer.join();
  expected_hot += appended_bytes;
  ASSERT_TRUE(run(dht().write(ctx(), *writer_fd, expected_hot.size(), Buffer::copy_of("after"))));
  expected_hot += "after";
  run(dht().release(*writer_fd));
  EXPECT_GT(appended.load(), 0);
  EXPECT_EQ(total.failed, 0u);
  EXPECT_EQ(total.moved, expect_moved);
  EXPECT_EQ(total.skipped, expect_skipped);
  EXPECT_EQ(total.scanned, expect_moved + expect_skipped);
  EXPECT_GE(total.bytes, expect_bytes);

  // Every name reads back whole; moved files live on both bricks of the new set only.
  for (const auto& [key, data] : content) {
    auto got = get(key.first, key.second);
    ASSERT_TRUE(got) << key.second << ": " << got.error().message();
    EXPECT_TRUE(*got == data) << key.second << ": " << got->size() << " bytes, expected "
                              << data.size();
  }
  std::string rel_hot = "/" + old_hot;
  for (int b : {2, 3}) EXPECT_TRUE(fs::exists(brick_dir(b) + rel_hot)) << b;
  for (int b : {0, 1}) EXPECT_FALSE(fs::exists(brick_dir(b) + rel_hot)) << b;
  auto link_target = run(dht().readlink(ctx(), gfid_of(*lookup(root, "current"))));
  ASSERT_TRUE(link_target);
  EXPECT_EQ(*link_target, "sub/img1");
  auto listed = list(root);
  ASSERT_TRUE(listed);
  std::multiset<std::string> names(listed->begin(), listed->end());
  for (const auto& n : names) EXPECT_EQ(names.count(n), 1u) << n;

  // A second pass finds only what stays.
  xl::dht::MoveStats again;
  for (uint32_t b : buckets) again += run(dht().move_bucket(b));
  EXPECT_EQ(again.moved, 0u);
  EXPECT_EQ(again.failed, 0u);
  EXPECT_EQ(again.scanned, expect_skipped);

  // Settled, only the new owners are asked: the hard-linked file, left in place, is reached
  // through the link entry its moved names got; everything else is where it belongs.
  ASSERT_NO_FATAL_FAILURE(use_graph(2, xl::dht::encode(xl::dht::settled(dht().map()))));
  ASSERT_TRUE(dht().map().moving.empty());
  for (const auto& [key, data] : content) {
    auto got = get(key.first, key.second);
    ASSERT_TRUE(got) << key.second << " after settling: " << got.error().message();
    EXPECT_TRUE(*got == data) << key.second;
  }
  std::string page0_data = content[{root, "page0"}];
  EXPECT_EQ(get(subdir, "page0-again").value_or("?"), page0_data);
}

}  // namespace
}  // namespace mortar::test
