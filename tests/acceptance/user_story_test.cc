// The user story of DESIGN.md, end to end, as an operator and two web heads live it: four
// storage servers probed into a cluster, a 2 x 2 Distributed-Replicate volume "webData" with
// auth.allow, mounted from an fstab line on two mount points; a write on one is read on the
// other; a whole server dies (its mgmtd, brick and self-heal daemon killed -9) while the web
// heads keep reading and writing; it returns, heal drains to zero, and each replica set's bricks
// hold identical data, which is the data the web heads wrote, spread over both sets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/acceptance/acceptance_support.h"
#include "tests/support/cluster.h"
#include "tests/support/mount.h"
#include "tests/support/process.h"
#include "tests/support/replica_tree.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The acceptance block is 127.0.0.140-143: other clusters (a quickstart on 127.0.0.2-5, the
// integration tests run by ctest -j) must not share these addresses or their ports.
constexpr int kFirstHost = 140;
constexpr auto kHealDeadline = 60s;

class UserStoryTest : public AcceptanceTest {
 protected:
  UserStoryTest() : AcceptanceTest(kFirstHost) {}
};

TEST_F(UserStoryTest, WebDataSurvivesAStorageServerDyingAndHealsBack) {
  const auto test_start = Clock::now();

  // 1. Four storage servers, each with a brick file system; probed from the first.
  ASSERT_NO_FATAL_FAILURE(start_servers());
  ASSERT_TRUE(cluster_->start(/*probe=*/false));
  MgmtdServer& s0 = cluster_->server(0);
  for (int i = 1; i < kServers; ++i) {
    CliResult r = s0.cli({"peer", "probe", host(i)});
    ASSERT_EQ(r.status, 0) << show(r);
  }
  CliResult r;
  EXPECT_TRUE(poll_until(
      [&] {
        r = s0.cli({"peer", "status"});
        return r.status == 0 && count(r.stdout_text, "State: Peer in Cluster (Connected)") == 3;
      },
      15s))
      << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "Number of Peers: 3")) << show(r);
  for (int i = 1; i < kServers; ++i) {
    EXPECT_TRUE(contains(r.stdout_text, "Hostname: " + host(i))) << show(r);
  }

  // 2. The volume, exactly as the story types it.
  r = s0.cli({"volume", "create", kVolume, "replica", "2", "transport", "tcp", brick_spec(0),
              brick_spec(1), brick_spec(2), brick_spec(3)});
  ASSERT_EQ(r.status, 0) << show(r);
  r = s0.cli({"volume", "set", kVolume, "auth.allow", "127.0.0.*"});
  ASSERT_EQ(r.status, 0) << show(r);
  r = s0.cli({"volume", "start", kVolume});
  ASSERT_EQ(r.status, 0) << show(r);
  r = s0.cli({"volume", "info", "all"});
  ASSERT_EQ(r.status, 0) << show(r);
  for (const std::string& line :
       {"Volume Name: " + kVolume, std::string("Type: Distributed-Replicate"),
        std::string("Status: Started"), std::string("Number of Bricks: 2 x 2 = 4"),
        std::string("Transport-type: tcp"), std::string("auth.allow: 127.0.0.*")}) {
    EXPECT_TRUE(contains(r.stdout_text, line + "\n")) << "no '" << line << "' in\n" << show(r);
  }
  for (int i = 0; i < kServers; ++i) {
    std::string line = "Brick" + std::to_string(i + 1) + ": " + brick_spec(i) + "\n";
    EXPECT_TRUE(contains(r.stdout_text, line)) << "no '" << line << "' in\n" << show(r);
  }
  // Every server runs its brick, admitting what auth.allow says, and a self-heal daemon.
  for (int i = 0; i < kServers; ++i) {
    MgmtdServer& s = cluster_->server(i);
    ASSERT_TRUE(eventually([&] { return s.brick_pids().size() == 1 && s.shd_pid() > 0; }, 15s))
        << s.address() << ": bricks " << s.brick_pids().size() << ", shd " << s.shd_pid() << "\n"
        << read_all(s.log());
    std::string logs;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(s.brick_log_dir(), ec)) logs += read_all(e.path());
    EXPECT_TRUE(contains(logs, "auth-allow '127.0.0.*'")) << s.address() << "'s brick log:\n"
                                                          << logs;
  }

  // 3. Two web heads mount it from their fstab line.
  for (int i = 0; i < 2; ++i) add_web_head(i);
  for (WebHead& w : heads_) ASSERT_NO_FATAL_FAILURE(mount_from_fstab(w));
  const std::string a = heads_[0].dir, b = heads_[1].dir;

  // What the web heads wrote: path -> bytes; and their directories.
  std::map<std::string, std::string> files;
  std::set<std::string> dirs;
  auto mkdir = [&](const std::string& path) {
    EXPECT_EQ(::mkdir((a + path).c_str(), 0755), 0) << path << ": " << std::strerror(errno);
    dirs.insert(path);
  };
  auto put = [&](const std::string& mnt, const std::string& path, std::string data) {
    int err = write_file(mnt + path, data);
    EXPECT_EQ(err, 0) << mnt + path << ": " << std::strerror(err);
    if (err == 0) files[path] = std::move(data);
  };

  // A write on one web head is visible on the other at once.
  put(a, "/index.html", "<h1>webData</h1>\n");
  EXPECT_EQ(mismatch(b + "/index.html", files["/index.html"]), "");

  for (const char* d : {"/site", "/site/static", "/site/pages", "/site/media"}) mkdir(d);
  int seed = 0;
  for (int k = 0; k < 150; ++k) {
    put(a, "/site/static/s" + std::to_string(k) + ".css", pattern(seed % 16384, seed));
    ++seed;
  }
  for (int k = 0; k < 100; ++k) {
    put(a, "/site/pages/p" + std::to_string(k) + ".html", pattern(1 + seed % 8192, seed));
    ++seed;
  }
  put(a, "/site/media/intro.mp4", pattern(2 * kMiB, seed++));
  put(a, "/site/media/talk.mp4", pattern(4 * kMiB, seed++));
  ASSERT_FALSE(HasFailure());
  for (const auto& [path, data] : files) EXPECT_EQ(mismatch(b + path, data), "") << "through " << b;
  ASSERT_FALSE(HasFailure());

  // nginx on web head B serves the static files and a video all along: before, while and after
  // the server is away. They never change, so every read must return exactly these bytes.
  std::vector<std::string> served;
  for (const auto& [path, data] : files) {
    if (path.starts_with("/site/static/") || path == "/site/media/intro.mp4")
      served.push_back(path);
  }
  const std::map<std::string, std::string> served_bytes = files;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::mutex errors_mu;
  std::vector<std::string> read_errors;
  std::thread nginx([&] {
    for (size_t k = 0; !stop; ++k) {
      const std::string& path = served[k % served.size()];
      std::string why = mismatch(b + path, served_bytes.at(path));
      if (!why.empty()) {
        std::lock_guard lock(errors_mu);
        if (read_errors.size() < 20) read_errors.push_back(why);
      }
      ++reads;
    }
  });
  Finally join{[&] {
    stop = true;
    if (nginx.joinable()) nginx.join();
  }};
  eventually([&] { return reads >= 200; }, 5s);

  // 4. A storage server dies: its mgmtd (the web heads' volfile server), its brick and its
  // self-heal daemon, all at once.
  std::vector<int> victims = s0.brick_pids();
  victims.push_back(s0.shd_pid());
  ASSERT_EQ(victims.size(), 2u);
  ASSERT_GT(victims[1], 0);
  s0.kill9();
  s0.kill_bricks();
  for (int pid : victims) {
    ASSERT_TRUE(eventually([&] { return !alive(pid); }, 10s)) << "pid " << pid << " survived";
  }
  const auto died = Clock::now();
  const uint64_t reads_at_death = reads;

  // Reads and writes go on: new uploads, pages appended to, part of a video rewritten, pages
  // deployed the way deploy tools do it (a new file renamed over the old), pages removed.
  mkdir("/site/uploads");
  for (int k = 0; k < 100; ++k) {
    put(a, "/site/uploads/u" + std::to_string(k) + ".jpg", pattern(seed % 20000, seed));
    ++seed;
  }
  for (int k = 0; k < 50; ++k) {
    std::string path = "/site/pages/p" + std::to_string(k) + ".html";
    std::string more = pattern(100 + seed % 3000, seed);
    ++seed;
    int err = append_file(a + path, more);
    EXPECT_EQ(err, 0) << path << ": " << std::strerror(err);
    if (err == 0) files[path] += more;
  }
  {
    std::string part = pattern(kMiB, seed++);
    const std::string path = "/site/media/talk.mp4";
    int err = write_file(a + path, part, static_cast<int64_t>(kMiB));
    EXPECT_EQ(err, 0) << path << ": " << std::strerror(err);
    if (err == 0) files[path].replace(kMiB, kMiB, part);
  }
  for (int k = 50; k < 70; ++k) {
    std::string path = "/site/pages/p" + std::to_string(k) + ".html";
    std::string tmp = "/site/pages/.p" + std::to_string(k) + ".html.new";
    std::string body = pattern(1 + seed % 8192, seed);
    ++seed;
    int err = write_file(a + tmp, body);
    if (err == 0 && ::rename((a + tmp).c_str(), (a + path).c_str()) != 0) err = errno;
    EXPECT_EQ(err, 0) << tmp << " -> " << path << ": " << std::strerror(err);
    if (err == 0) files[path] = std::move(body);
  }
  for (int k = 90; k < 100; ++k) {
    std::string path = "/site/pages/p" + std::to_string(k) + ".html";
    EXPECT_EQ(::unlink((a + path).c_str()), 0) << path << ": " << std::strerror(errno);
    files.erase(path);
  }
  // Web head B sees it all, within the one second its kernel may trust cached attributes. A few
  // misses tell the story; waiting out every file would outlast the test's timeout.
  int misses = 0;
  for (const auto& [path, data] : files) {
    std::string why;
    if (eventually([&] { return (why = mismatch(b + path, data)).empty(); }, 3s)) continue;
    ADD_FAILURE() << why << " (through " << b << ", while " << host(0) << " is down)";
    if (++misses == 5) break;
  }
  for (int k = 90; k < 100 && misses < 5; ++k) {
    std::string path = b + "/site/pages/p" + std::to_string(k) + ".html";
    if (eventually([&] { return ::access(path.c_str(), F_OK) != 0 && errno == ENOENT; }, 3s)) {
      continue;
    }
    ADD_FAILURE() << path << " is still there";
    ++misses;
  }
  // The web heads lost their volfile server and moved on to the backup one.
  for (const WebHead& w : heads_) {
    EXPECT_TRUE(eventually(
        [&] { return contains(read_all(w.log), "management connection to " + host(1)); }, 15s))
        << read_all(w.log);
  }
  // The survivors know what the dead brick missed.
  r = heal_info(1);
  EXPECT_EQ(r.status, 0) << show(r);
  std::vector<int64_t> pending = pending_entries(r.stdout_text);
  ASSERT_EQ(pending.size(), 4u) << show(r);
  EXPECT_EQ(pending[0], -1) << show(r);
  EXPECT_GT(pending[1], 0) << show(r);
  EXPECT_GT(reads - reads_at_death, 100u)
      << "web head B barely read while " << host(0) << " was down";

  // It returns, and heal drains to zero.
  const auto down_for = Clock::now() - died;
  ASSERT_TRUE(s0.start()) << read_all(s0.root() + "/mgmtd.out");
  const auto returned = Clock::now();
  ASSERT_TRUE(eventually([&] { return s0.brick_pids().size() == 1 && s0.shd_pid() > 0; }, 15s))
      << read_all(s0.log());
  std::string last;
  bool drained = heal_drained(0, kHealDeadline, last);
  const auto healed_in = Clock::now() - returned;
  ASSERT_TRUE(drained) << "heal did not drain in " << kHealDeadline.count() << " s:\n"
                       << last
                       << cluster_->server(1).cli({"volume", "heal", kVolume, "statistics"}).out;
  stop = true;
  nginx.join();
  {
    std::lock_guard lock(errors_mu);
    EXPECT_EQ(read_errors, std::vector<std::string>{}) << "web head B's reads";
  }

  // Every replica set's bricks hold identical data, and together the sets hold exactly what the
  // web heads wrote: each file's data on one set, both sets holding some.
  std::vector<std::map<std::string, Node>> trees;
  for (int i = 0; i < kServers; ++i) trees.push_back(brick_tree(brick(i)));
  EXPECT_EQ(tree_diff(trees[0], trees[1], "brick 0", "brick 1"), "");
  EXPECT_EQ(tree_diff(trees[2], trees[3], "brick 2", "brick 3"), "");
  Placement placed = expect_sets_hold(trees, 2, files, dirs);
  const std::vector<size_t>& per_set = placed.files_per_set;
  const size_t links = placed.link_entries;
  EXPECT_GT(per_set[0], 0u) << "set 0 holds no file";
  EXPECT_GT(per_set[1], 0u) << "set 1 holds no file";

  // And both web heads read every file as it was written.
  for (const std::string& mnt : {a, b}) {
    for (const auto& [path, data] : files) EXPECT_EQ(mismatch(mnt + path, data), "");
  }

  std::cout << files.size() << " files (" << per_set[0] << " on set 0, " << per_set[1]
            << " on set 1, " << links << " link entries); " << reads << " reads by web head B, "
            << reads - reads_at_death << " of them from the death on; " << host(0) << " down "
            << seconds(down_for) << " s with " << pending[1] << " entries pending; heal drained "
            << seconds(healed_in) << " s after it returned; whole story "
            << seconds(Clock::now() - test_start) << " s\n";
}

}  // namespace
}  // namespace mortar::test
