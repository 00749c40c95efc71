// `mortar volume heal` end to end: real mortar-mgmtd servers, the brick and self-heal daemons
// they run, a FUSE mount (`mount -t mortar`), and faults the test injects (SIGKILL of a brick
// daemon, a wiped brick directory). What each heal command promises is checked on the bricks'
// disks, and through the mount. Quorum and arbiter volumes are here too: they decide what heal
// finds to do.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "tests/support/cluster.h"
#include "tests/support/mount.h"
#include "tests/support/process.h"
#include "tests/support/replica_tree.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Servers of this file's clusters are 127.0.0.110 ... 119: other clusters (a quickstart on
// 127.0.0.2-5, other tests run by ctest -j) must not share their addresses or ports.
constexpr int kFirstHost = 110;
constexpr uint64_t kMiB = 1024 * 1024;

std::string host(int i) { return "127.0.0." + std::to_string(kFirstHost + i); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string show(const CliResult& r) {
  return "exit status " + std::to_string(r.status) + "\n--- stdout\n" + r.stdout_text +
         "--- stderr\n" + r.stderr_text;
}

// Running and not a zombie: the daemons are reaped by init, which may do it late.
bool alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

// Polls `pred` every `interval` until it holds or `timeout` passes; for predicates that run
// the CLI (a process each time).
bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 250ms) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

// The values printed after `label` on each line that has one ("Number of entries: 3"); a
// brick that is not connected prints "-", read as -1.
std::vector<int64_t> values_of(const std::string& text, const std::string& label) {
  std::vector<int64_t> out;
  std::regex re("(^|\\n)" + label + "(\\d+|-)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    std::string v = (*it)[2];
    out.push_back(v == "-" ? -1 : std::stoll(v));
  }
  return out;
}

// The one value after `label`; -1 if it is missing.
int64_t value_of(const std::string& text, const std::string& label) {
  auto v = values_of(text, label);
  return v.size() == 1 ? v[0] : -1;
}

// Writes `data` to `path` (O_TRUNC unless `offset` is given); 0 or the errno of the step that
// failed.
int write_file(const std::string& path, const std::string& data, int64_t offset = -1) {
  int flags = O_WRONLY | O_CREAT | (offset < 0 ? O_TRUNC : 0);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  ssize_t n = ::pwrite(fd, data.data(), data.size(), offset < 0 ? 0 : offset);
  int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? errno : EIO);
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

// Reads `path` whole; false with errno in `err` if open or read failed.
bool read_file(const std::string& path, std::string& out, int& err) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    err = errno;
    return false;
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      err = errno;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  err = 0;
  return true;
}

// Compares two (large) files chunk by chunk; empty when they are identical, else where they
// first differ.
std::string compare_files(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return "cannot open " + (fa ? b : a);
  std::vector<char> ba(kMiB), bb(kMiB);
  uint64_t offset = 0;
  while (true) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    auto na = fa.gcount(), nb = fb.gcount();
    if (na != nb || std::memcmp(ba.data(), bb.data(), static_cast<size_t>(na)) != 0) {
      size_t i = 0;
      while (i < static_cast<size_t>(std::min(na, nb)) && ba[i] == bb[i]) ++i;
      return "they differ at byte " + std::to_string(offset + i);
    }
    if (na == 0) return "";
    offset += static_cast<uint64_t>(na);
  }
}

// Heal counters from `volume heal VOL statistics`.
struct HealCounters {
  int64_t healed = -1, bytes = -1, blocks_healed = -1, blocks_skipped = -1;
};
std::ostream& operator<<(std::ostream& o, const HealCounters& c) {
  return o << "entries " << c.healed << ", bytes " << c.bytes << ", blocks healed "
           << c.blocks_healed << ", blocks skipped " << c.blocks_skipped;
}

class HealCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    mnt_ = dir_ / "mnt";
    fs::create_directories(mnt_);
  }

  void TearDown() override {
    if (pid_ > 0 && !alive(pid_))
      ADD_FAILURE() << "the mount daemon died\n" << read_all(fuse_log());
    unmount();
    if (fs::exists(fuse_log())) {
      EXPECT_EQ(error_lines(fuse_log()), std::vector<std::string>{}) << read_all(fuse_log());
    }
    if (cluster_) {
      // The self-heal daemons' logs too: bricks going away and split-brains refused are
      // warnings at most.
      for (int i = 0; i < cluster_->size(); ++i) {
        std::string log = cluster_->server(i).root() + "/log/shd.log";
        if (fs::exists(log)) {
          EXPECT_EQ(error_lines(log), std::vector<std::string>{}) << log;
        }
      }
    }
    cluster_.reset();  // mgmtd, its bricks and heal daemons, after the mount is gone
  }

  // Starts `servers` servers and creates "vol" with one brick per server: `layout` is what
  // comes between the name and the bricks ({"replica", "2"}). `options` are set before the
  // volume starts.
  void start_volume(int servers, std::vector<std::string> layout,
                    std::vector<std::pair<std::string, std::string>> options = {}) {
    cluster_ = std::make_unique<TestCluster>(servers, dir_ / "cluster", kFirstHost);
    if (!cluster_->start()) {
      std::string why;
      for (int i = 0; i < servers; ++i) {
        why += cluster_->server(i).address() + ": " +
               read_all(cluster_->server(i).root() + "/mgmtd.out");
      }
      FAIL() << "the servers did not start\n" << why;
    }
    std::vector<std::string> create = {"volume", "create", "vol"};
    create.insert(create.end(), layout.begin(), layout.end());
    for (int i = 0; i < servers; ++i) create.push_back(brick(i));
    create.push_back("force");  // the bricks are on the root file system
    // A server that has just started may not have founded its cluster yet: it says so.
    CliResult r;
    poll_until(
        [&] {
          r = cli(create);
          return r.status == 0 || !contains(r.out, "is not in 'Peer in Cluster' state");
        },
        10s);
    ASSERT_EQ(r.status, 0) << show(r);
    for (const auto& [key, value] : options) {
      r = cli({"volume", "set", "vol", key, value});
      ASSERT_EQ(r.status, 0) << show(r);
    }
    r = cli({"volume", "start", "vol"});
    ASSERT_EQ(r.status, 0) << show(r);
  }

  CliResult cli(const std::vector<std::string>& args) const { return cluster_->cli(args); }

  std::string brick_dir(int i) const { return dir_ / ("b" + std::to_string(i)); }
  std::string brick(int i) const { return host(i) + ":" + brick_dir(i); }

  // The brick daemon of brick `i` (on server `i`), from the pid file its server keeps.
  int brick_pid(int i) const {
    std::string path = brick_dir(i);
    std::replace(path.begin(), path.end(), '/', '-');
    std::ifstream in(cluster_->server(i).root() + "/run/bricks/vol" + path + ".pid");
    int pid = 0;
    return in >> pid && alive(pid) ? pid : 0;
  }

  // SIGKILL to brick `i`'s daemon, and waits until the mount saw the connection go.
  void kill_brick(int i) {
    int pid = brick_pid(i);
    ASSERT_GT(pid, 0) << "brick " << brick(i) << " does not run";
    size_t gone = count(read_all(fuse_log()), brick(i) + ": disconnected");
    ASSERT_EQ(::kill(pid, SIGKILL), 0) << std::strerror(errno);
    ASSERT_TRUE(eventually([&] { return !alive(pid); }, 10s)) << "brick " << i << " survived";
    if (pid_ > 0) {
      ASSERT_TRUE(eventually(
          [&] { return count(read_all(fuse_log()), brick(i) + ": disconnected") > gone; }, 10s))
          << read_all(fuse_log());
    }
  }

  // `volume start vol force`: restarts the dead bricks; waits until `bricks` run and, with a
  // mount, until the mount is connected to them again.
  void start_force(std::vector<int> bricks) {
    std::string log = read_all(fuse_log());
    std::vector<size_t> connected;
    for (int i : bricks) connected.push_back(count(log, brick(i) + ": connected"));
    CliResult r = cli({"volume", "start", "vol", "force"});
    ASSERT_EQ(r.status, 0) << show(r);
    for (size_t k = 0; k < bricks.size(); ++k) {
      int i = bricks[k];
      ASSERT_TRUE(eventually([&] { return brick_pid(i) > 0; }, 10s)) << brick(i) << " is not back";
      if (pid_ > 0) {
        ASSERT_TRUE(eventually(
            [&] { return count(read_all(fuse_log()), brick(i) + ": connected") > connected[k]; },
            15s))
            << "the mount did not reconnect to " << brick(i) << "\n"
            << read_all(fuse_log());
      }
    }
  }

  // `heal-count` says 0 for each of the volume's `bricks` (all of them connected).
  bool heal_count_zero(int bricks, std::string* last = nullptr) {
    CliResult r = cli({"volume", "heal", "vol", "statistics", "heal-count"});
    if (last) *last = show(r);
    auto v = values_of(r.stdout_text, "Number of entries: ");
    return r.status == 0 && static_cast<int>(v.size()) == bricks &&
           std::all_of(v.begin(), v.end(), [](int64_t n) { return n == 0; });
  }
  void wait_heal_drained(int bricks, std::chrono::milliseconds timeout) {
    std::string last;
    ASSERT_TRUE(poll_until([&] { return heal_count_zero(bricks, &last); }, timeout))
        << "heal did not drain\n"
        << last << cli({"volume", "heal", "vol", "info"}).out;
  }

  HealCounters statistics() {
    CliResult r = cli({"volume", "heal", "vol", "statistics"});
    EXPECT_EQ(r.status, 0) << show(r);
    HealCounters c;
    c.healed = value_of(r.stdout_text, "No\\. of entries healed: ");
    c.bytes = value_of(r.stdout_text, "Bytes healed: ");
    c.blocks_healed = value_of(r.stdout_text, "Blocks healed: ");
    c.blocks_skipped = value_of(r.stdout_text, "Blocks skipped \\(already identical\\): ");
    EXPECT_GE(c.healed, 0) << show(r);
    EXPECT_GE(c.blocks_skipped, 0) << show(r);
    return c;
  }

  // The self-heal daemons' PIDs, server by server (their counters live as long as they do).
  std::vector<int> shd_pids() {
    std::vector<int> out;
    for (int i = 0; i < cluster_->size(); ++i) out.push_back(cluster_->server(i).shd_pid());
    return out;
  }

  // mount -t mortar 127.0.0.110:/vol on mnt_; the daemon's PID in pid_.
  void mount() {
    std::string out_file = dir_ / "mount.out";
    fs::remove(out_file);
    fs::remove(pid_file());
    Process p = Process::spawn(
        {"/bin/mount", "-t", "mortar", "-o", "pid-file=" + pid_file() + ",log-file=" + fuse_log(),
         host(0) + ":/vol", mnt_},
        out_file);
    int rc = p.wait(60s);
    ASSERT_EQ(rc, 0) << read_all(out_file) << read_all(fuse_log());
    ASSERT_TRUE(is_mortar_mount(mnt_));
    std::ifstream(pid_file()) >> pid_;
    ASSERT_GT(pid_, 0);
  }
  // Lazy unmount, then waits for the daemon to go (killing it if it does not).
  void unmount() {
    lazy_unmount(mnt_);
    if (pid_ > 0 && !eventually([&] { return !alive(pid_); }, 10s)) {
      ::kill(pid_, SIGKILL);
      ADD_FAILURE() << "the mount daemon outlived its unmount";
    }
    pid_ = -1;
  }
  std::string m(const std::string& name) const { return mnt_ + "/" + name; }
  std::string pid_file() const { return dir_ / "fuse.pid"; }
  std::string fuse_log() const { return dir_ / "fuse.log"; }

  TempDir dir_{"mortar-heal-cli"};
  std::unique_ptr<TestCluster> cluster_;
  std::string mnt_;
  pid_t pid_ = -1;
};

// A disk replaced: its brick comes back empty, nothing in any heal index says what it lacks,
// and `volume heal VOL full` rebuilds it from its partner.
TEST_F(HealCliTest, FullHealRebuildsAReplacedDisk) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());

  const std::vector<std::string> dirs = {"docs",    "docs/old",     "src",
                                         "src/lib", "src/lib/deep", "empty"};
  for (const auto& d : dirs) ASSERT_TRUE(fs::create_directory(m(d))) << d;
  ASSERT_EQ(::chmod(m("docs/old").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(m("empty").c_str(), 0750), 0);
  const mode_t modes[] = {0644, 0600, 0755, 0640, 0444};
  for (int i = 0; i < 50; ++i) {
    std::string name = dirs[i % 5] + "/file" + std::to_string(i);
    if (i % 7 == 0) name = "top" + std::to_string(i);
    // Empty files, small ones, and a few over several 128 KiB heal blocks.
    size_t size = i % 10 == 0 ? 0 : i % 10 == 9 ? 300000 + i : 1000 * i + 17;
    ASSERT_EQ(write_file(m(name), pattern(size, i)), 0) << name;
    ASSERT_EQ(::chmod(m(name).c_str(), modes[i % 5]), 0) << name;
  }
  ASSERT_EQ(::symlink("docs/file0", m("link").c_str()), 0) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 30s));
  auto before = brick_tree(brick_dir(0));
  ASSERT_EQ(before.size(), 57u);
  ASSERT_EQ(before, brick_tree(brick_dir(1)));

  // The disk of brick 1 dies: its daemon is killed and its directory emptied, .mortar too.
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  for (const auto& e : fs::directory_iterator(brick_dir(1))) fs::remove_all(e.path());
  ASSERT_TRUE(fs::is_empty(brick_dir(1)));
  ASSERT_NO_FATAL_FAILURE(start_force({1}));

  // No heal index names what it lacks: an index heal leaves it empty.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(brick_tree(brick_dir(1)).size(), 0u) << "healed without being asked to";

  CliResult r = cli({"volume", "heal", "vol", "full"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_EQ(r.stdout_text,
            "Launching heal operation to perform full self heal on volume vol has been "
            "successful \nUse heal info commands to check status.\n");
  auto tree = [&](int i) {
    try {
      return brick_tree(brick_dir(i));
    } catch (const fs::filesystem_error&) {  // an entry created while it was read
      return std::map<std::string, Node>{};
    }
  };
  auto start = Clock::now();
  bool rebuilt = poll_until([&] { return tree(1) == before; }, 30s);
  auto after = tree(1);
  for (const auto& [path, node] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      ADD_FAILURE() << path << " is missing on the rebuilt brick";
    } else {
      EXPECT_EQ(it->second, node) << path;
      EXPECT_TRUE(it->second.content == node.content) << path << ": content differs";
    }
  }
  for (const auto& [path, node] : after) {
    if (!before.count(path)) ADD_FAILURE() << path << " appeared on the rebuilt brick only";
  }
  ASSERT_TRUE(rebuilt) << "brick 1 not rebuilt within 30 s";
  std::cout << "full heal rebuilt the brick in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
            << " ms\n";
  EXPECT_EQ(brick_tree(brick_dir(0)), before);
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 20s));
  EXPECT_GE(statistics().healed, 57);

  // The mount reads what it wrote, whichever replica serves it.
  std::string content;
  int err = 0;
  ASSERT_TRUE(read_file(m("src/lib/deep/file39"), content, err)) << std::strerror(err);
  EXPECT_TRUE(content == pattern(300039, 39)) << content.size() << " bytes read";
}

// A 1 GiB file whose replica missed a 4 KiB write: heal compares block checksums and copies
// only the block that changed. (Slow: writes 1 GiB through FUSE, twice on disk.)
TEST_F(HealCliTest, LargeFileHealsOnlyTheChangedBlocks) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());

  constexpr uint64_t kSize = 1024 * kMiB;
  auto start = Clock::now();
  {
    std::string chunk = pattern(kMiB, 7);
    int fd = ::open(m("big").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    for (uint64_t i = 0; i < kSize / kMiB; ++i) {
      // Every 128 KiB block different from the others.
      for (uint64_t b = 0; b < kMiB; b += 128 * 1024) {
        std::string stamp = std::to_string(i) + "." + std::to_string(b) + ";";
        std::memcpy(chunk.data() + b, stamp.data(), stamp.size());
      }
      size_t done = 0;
      while (done < chunk.size()) {
        ssize_t n = ::write(fd, chunk.data() + done, chunk.size() - done);
        ASSERT_GT(n, 0) << "at MiB " << i << ": " << std::strerror(errno);
        done += static_cast<size_t>(n);
      }
    }
    ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
  }
  std::cout << "wrote 1 GiB in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
            << " ms\n";
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 120s));
  ASSERT_EQ(fs::file_size(brick_dir(1) + "/big"), kSize);
  HealCounters before = statistics();
  auto daemons = shd_pids();

  // Brick 1 misses a 4 KiB write in the middle of the file.
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  const uint64_t offset = kSize / 2 + 5 * 4096;
  ASSERT_EQ(write_file(m("big"), std::string(4096, 'Z'), static_cast<int64_t>(offset)), 0);
  std::string last;
  EXPECT_TRUE(poll_until(
      [&] {
        CliResult r = cli({"volume", "heal", "vol", "statistics", "heal-count"});
        last = show(r);
        auto v = values_of(r.stdout_text, "Number of entries: ");
        return v.size() == 2 && v[0] >= 1 && v[1] == -1;
      },
      10s))
      << "brick 0 does not count the file as needing heal\n"
      << last;

  // The file is not touched through the mount again: the heal daemon heals it, not the client.
  auto back = Clock::now();
  ASSERT_NO_FATAL_FAILURE(start_force({1}));
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 120s));
  std::cout << "healed in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - back).count()
            << " ms\n";
  HealCounters after = statistics();
  // Counters live as long as their daemons: compare with the earlier figures only if the
  // same daemons kept counting.
  HealCounters delta = after;
  if (shd_pids() == daemons) {
    delta.healed -= before.healed;
    delta.bytes -= before.bytes;
    delta.blocks_healed -= before.blocks_healed;
    delta.blocks_skipped -= before.blocks_skipped;
  }
  std::cout << "heal statistics before: " << before << "\nheal statistics after: " << after << "\n";
  EXPECT_GE(delta.healed, 1);
  EXPECT_GE(delta.blocks_healed, 1);
  EXPECT_LE(delta.blocks_healed, 4);
  EXPECT_GE(delta.blocks_skipped, 1000);
  EXPECT_GT(delta.bytes, 0);
  EXPECT_LE(delta.bytes, static_cast<int64_t>(kMiB));

  ASSERT_EQ(fs::file_size(brick_dir(1) + "/big"), kSize);
  EXPECT_EQ(compare_files(brick_dir(0) + "/big", brick_dir(1) + "/big"), "");
  std::ifstream in(brick_dir(1) + "/big", std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string healed(4096, '\0');
  in.read(healed.data(), 4096);
  EXPECT_EQ(healed, std::string(4096, 'Z'));
}

// Three files in data split-brain (each brick took writes while the other was down), listed by
// `heal info split-brain` and resolved one by one with each CLI policy.
TEST_F(HealCliTest, SplitBrainIsListedAndEachPolicyResolvesIt) {
  // No heal daemon while the split-brain is made: it would heal each side in between.
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}, {{"cluster.self-heal-daemon", "off"}}));
  CliResult r = cli({"volume", "get", "vol", "cluster.quorum-type"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(std::regex_search(r.stdout_text, std::regex("cluster\\.quorum-type\\s+none")))
      << r.stdout_text;
  r = cli({"volume", "heal", "vol", "info"});
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stderr_text, "Self-heal-daemon is disabled")) << show(r);
  ASSERT_NO_FATAL_FAILURE(mount());

  // f1: A bigger, B newer (bigger-file takes A). f2: the same (latest-mtime takes B).
  // f3: B bigger and newer (source-brick brick 0 takes A against both).
  const std::vector<std::string> files = {"f1", "f2", "f3"};
  const std::map<std::string, std::string> side_a = {{"f1", "side A of f1, the bigger copy\n"},
                                                     {"f2", "side A of f2, bigger but older\n"},
                                                     {"f3", "A3\n"}};
  const std::map<std::string, std::string> side_b = {
      {"f1", "B1\n"}, {"f2", "B2, newer\n"}, {"f3", "side B of f3, bigger and newer\n"}};
  for (const auto& f : files) ASSERT_EQ(write_file(m(f), "v0 of " + f + "\n"), 0) << f;

  // Side A: only brick 0 up.
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  for (const auto& f : files) ASSERT_EQ(write_file(m(f), side_a.at(f)), 0) << f;
  // Brick 1 back, and nothing looks at the files (a lookup would heal them) before brick 0 goes.
  ASSERT_NO_FATAL_FAILURE(start_force({1}));
  ASSERT_NO_FATAL_FAILURE(kill_brick(0));
  std::this_thread::sleep_for(1100ms);  // the copies' mtimes differ by more than a second
  // Side B: only brick 1 up.
  for (const auto& f : files) ASSERT_EQ(write_file(m(f), side_b.at(f)), 0) << f;
  ASSERT_NO_FATAL_FAILURE(start_force({0}));
  for (const auto& f : files) {
    ASSERT_EQ(read_all(brick_dir(0) + "/" + f), side_a.at(f)) << f;
    ASSERT_EQ(read_all(brick_dir(1) + "/" + f), side_b.at(f)) << f;
  }

  // Each copy blames the other: no copy can be read (once the mount looks again).
  for (const auto& f : files) {
    std::string content;
    int err = 0;
    EXPECT_TRUE(eventually([&] { return !read_file(m(f), content, err) && err == EIO; }, 10s))
        << f << ": read " << (err ? std::strerror(err) : "'" + content + "'");
  }

  r = cli({"volume", "set", "vol", "cluster.self-heal-daemon", "on"});
  ASSERT_EQ(r.status, 0) << show(r);
  std::string listed;
  bool all_listed = poll_until(
      [&] {
        r = cli({"volume", "heal", "vol", "info", "split-brain"});
        listed = show(r);
        auto n = values_of(r.stdout_text, "Number of entries in split-brain: ");
        return r.status == 0 && contains(r.stdout_text, "\n/f1\n") &&
               contains(r.stdout_text, "\n/f2\n") && contains(r.stdout_text, "\n/f3\n") &&
               n.size() == 2 && n[0] == 3 && n[1] == 3;
      },
      20s, 500ms);
  ASSERT_TRUE(all_listed) << listed;
  EXPECT_TRUE(contains(r.stdout_text, "Brick " + brick(0) + "\n")) << listed;
  EXPECT_TRUE(contains(r.stdout_text, "Brick " + brick(1) + "\n")) << listed;
  // The heal daemon did not pick a side by itself.
  for (const auto& f : files) {
    EXPECT_EQ(read_all(brick_dir(0) + "/" + f), side_a.at(f)) << f;
    EXPECT_EQ(read_all(brick_dir(1) + "/" + f), side_b.at(f)) << f;
  }

  auto resolved_to = [&](const std::string& f, const std::string& want) {
    EXPECT_EQ(read_all(brick_dir(0) + "/" + f), want) << f << " on brick 0";
    EXPECT_EQ(read_all(brick_dir(1) + "/" + f), want) << f << " on brick 1";
    std::string content;
    int err = 0;
    EXPECT_TRUE(eventually([&] { return read_file(m(f), content, err) && content == want; }, 10s))
        << f
        << " through the mount: " << (err ? std::string(std::strerror(err)) : "'" + content + "'");
  };

  r = cli({"volume", "heal", "vol", "split-brain", "bigger-file", "/f1"});
  EXPECT_EQ(r.status, 0) << show(r);
  EXPECT_EQ(r.stdout_text, "Healed /f1.\n") << show(r);
  resolved_to("f1", side_a.at("f1"));

  r = cli({"volume", "heal", "vol", "split-brain", "latest-mtime", "/f2"});
  EXPECT_EQ(r.status, 0) << show(r);
  EXPECT_EQ(r.stdout_text, "Healed /f2.\n") << show(r);
  resolved_to("f2", side_b.at("f2"));

  r = cli({"volume", "heal", "vol", "split-brain", "source-brick", brick(0), "/f3"});
  EXPECT_EQ(r.status, 0) << show(r);
  EXPECT_EQ(r.stdout_text, "Healed /f3.\n") << show(r);
  resolved_to("f3", side_a.at("f3"));

  // Nothing left in split-brain; asking again for a healed file fails, and says why.
  EXPECT_TRUE(poll_until(
      [&] {
        r = cli({"volume", "heal", "vol", "info", "split-brain"});
        auto n = values_of(r.stdout_text, "Number of entries in split-brain: ");
        return n.size() == 2 && n[0] == 0 && n[1] == 0;
      },
      20s, 500ms))
      << show(r);
  r = cli({"volume", "heal", "vol", "split-brain", "bigger-file", "/f1"});
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("Healing /f1 failed: .+\\."))) << show(r);
  r = cli({"volume", "heal", "vol", "split-brain", "latest-mtime", "/no-such-file"});
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.out, "Healing /no-such-file failed: ")) << show(r);
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 20s));
}

// Replica 3 with the default quorum (auto): with one brick of three left, the volume refuses
// every change with EROFS and still serves reads.
TEST_F(HealCliTest, QuorumAutoOnReplicaThreeRefusesWritesNotReads) {
  ASSERT_NO_FATAL_FAILURE(start_volume(3, {"replica", "3"}));
  CliResult r = cli({"volume", "get", "vol", "cluster.quorum-type"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(std::regex_search(r.stdout_text, std::regex("cluster\\.quorum-type\\s+auto")))
      << r.stdout_text;
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_EQ(write_file(m("kept"), "written with every brick up\n"), 0);
  ASSERT_TRUE(fs::create_directory(m("dir")));
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(3, 20s));

  // One down: two of three is a majority, changes go on.
  ASSERT_NO_FATAL_FAILURE(kill_brick(2));
  EXPECT_EQ(write_file(m("with-two"), "two of three\n"), 0);

  // Two down: no quorum.
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  errno = 0;
  int fd = ::open(m("new").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  int err = errno;
  EXPECT_LT(fd, 0) << "create succeeded without quorum";
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(err, EROFS) << std::strerror(err);
  EXPECT_EQ(write_file(m("kept"), "overwritten", 0), EROFS);
  for (const char* dir : {"newdir", "dir/sub"}) {
    int rc = ::mkdir(m(dir).c_str(), 0755);
    err = errno;
    EXPECT_NE(rc, 0) << "mkdir " << dir << " succeeded without quorum";
    EXPECT_EQ(err, EROFS) << dir << ": " << std::strerror(err);
  }
  EXPECT_FALSE(fs::exists(brick_dir(0) + "/new"));
  EXPECT_FALSE(fs::exists(brick_dir(0) + "/newdir"));
  EXPECT_EQ(read_all(brick_dir(0) + "/kept"), "written with every brick up\n");

  // Reads go on.
  std::string content;
  ASSERT_TRUE(read_file(m("kept"), content, err)) << std::strerror(err);
  EXPECT_EQ(content, "written with every brick up\n");
  ASSERT_TRUE(read_file(m("with-two"), content, err)) << std::strerror(err);
  EXPECT_EQ(content, "two of three\n");
  struct stat st;
  EXPECT_EQ(::stat(m("dir").c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(fs::exists(m("kept")));

  // Bricks back: changes again, and heal brings the two bricks up to date.
  ASSERT_NO_FATAL_FAILURE(start_force({1, 2}));
  EXPECT_EQ(write_file(m("new"), "quorum again\n"), 0);
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(3, 30s));
  auto t0 = brick_tree(brick_dir(0));
  EXPECT_EQ(t0, brick_tree(brick_dir(1)));
  EXPECT_EQ(t0, brick_tree(brick_dir(2)));
  EXPECT_EQ(t0["/new"].content, "quorum again\n");
}

// Replica 3 arbiter 1: the third brick holds names and metadata, never data; heal after a data
// brick's outage makes the data bricks equal and leaves the arbiter empty of data.
TEST_F(HealCliTest, ArbiterKeepsNoDataAndHealsRight) {
  ASSERT_NO_FATAL_FAILURE(start_volume(3, {"replica", "3", "arbiter", "1"}));
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_TRUE(fs::create_directory(m("d")));
  for (int i = 0; i < 10; ++i) {
    std::string name = (i % 2 ? "d/f" : "f") + std::to_string(i);
    ASSERT_EQ(write_file(m(name), pattern(i * 50000 + 1, i)), 0) << name;
  }
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(3, 20s));

  auto arbiter_holds_no_data = [&] {
    size_t files = 0;
    for (const auto& [path, node] : brick_tree(brick_dir(2), false)) {
      if (node.type != 'f') continue;
      ++files;
      struct stat st;
      ASSERT_EQ(::stat((brick_dir(2) + path).c_str(), &st), 0) << path;
      EXPECT_EQ(st.st_size, 0) << path << " holds data on the arbiter";
      EXPECT_EQ(st.st_blocks, 0) << path << " holds data on the arbiter";
    }
    EXPECT_GE(files, 10u);
    // Names, types, modes and owners as on the data bricks.
    EXPECT_EQ(brick_tree(brick_dir(2), false), brick_tree(brick_dir(0), false));
  };
  ASSERT_NO_FATAL_FAILURE(arbiter_holds_no_data());
  EXPECT_EQ(brick_tree(brick_dir(0)), brick_tree(brick_dir(1)));
  // Sizes through the mount are the data's, not the arbiter's.
  EXPECT_EQ(fs::file_size(m("d/f9")), 9u * 50000 + 1);

  // Data brick 1 misses overwrites, new files and a new directory.
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  for (int i = 0; i < 10; i += 3) {
    std::string name = (i % 2 ? "d/f" : "f") + std::to_string(i);
    ASSERT_EQ(write_file(m(name), pattern(70000 + i, 100 + i)), 0) << name;
  }
  ASSERT_TRUE(fs::create_directory(m("d/new")));
  ASSERT_EQ(write_file(m("d/new/g"), pattern(200000, 200)), 0);
  ASSERT_EQ(write_file(m("g"), pattern(5, 201)), 0);
  ASSERT_EQ(write_file(m("f2"), "partly", 1000), 0);

  ASSERT_NO_FATAL_FAILURE(start_force({1}));
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(3, 30s));
  auto t0 = brick_tree(brick_dir(0));
  EXPECT_EQ(t0, brick_tree(brick_dir(1)));
  EXPECT_TRUE(t0["/d/new/g"].content == pattern(200000, 200));
  EXPECT_TRUE(t0["/d/f3"].content == pattern(70003, 103));
  EXPECT_TRUE(t0["/f2"].content.substr(1000, 6) == "partly");
  ASSERT_NO_FATAL_FAILURE(arbiter_holds_no_data());
  std::string content;
  int err = 0;
  ASSERT_TRUE(read_file(m("d/new/g"), content, err)) << std::strerror(err);
  EXPECT_TRUE(content == pattern(200000, 200)) << content.size() << " bytes read";
}

// `volume replace-brick VOL OLD NEW commit force`: the old brick's daemon goes, the new brick
// joins its set empty, and the servers heal it in full without being asked.
TEST_F(HealCliTest, ReplaceBrickCommitForceHealsTheNewBrick) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_TRUE(fs::create_directory(m("uploads")));
  for (int i = 0; i < 60; ++i) {
    std::string name = (i % 2 ? "uploads/img" : "page") + std::to_string(i);
    ASSERT_EQ(write_file(m(name), pattern(i % 6 == 5 ? 200000 + i : 500 + i, i)), 0) << name;
  }
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 30s));
  int old_pid = brick_pid(1);
  ASSERT_GT(old_pid, 0);

  std::string fresh_dir = dir_ / "b1-new";
  std::string fresh = host(1) + ":" + fresh_dir;
  CliResult r = cli({"volume", "replace-brick", "vol", brick(1), fresh, "commit", "force"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "volume replace-brick: success")) << show(r);
  r = cli({"volume", "info", "vol"});
  EXPECT_TRUE(contains(r.stdout_text, "Brick2: " + fresh)) << show(r);
  EXPECT_FALSE(contains(r.stdout_text, brick(1) + "\n")) << show(r);
  EXPECT_TRUE(eventually([&] { return !alive(old_pid); }, 15s)) << "the old brick still runs";

  auto source = brick_tree(brick_dir(0));
  ASSERT_EQ(source.size(), 61u);  // "uploads" and the 60 files
  std::map<std::string, Node> healed;
  EXPECT_TRUE(poll_until(
      [&] {
        healed = brick_tree(fresh_dir);
        return healed == source;
      },
      60s))
      << healed.size() << " of " << source.size() << " entries on the new brick\n"
      << cli({"volume", "heal", "vol", "info"}).out;
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 30s));

  // Writes reach the new brick from now on.
  ASSERT_EQ(write_file(m("after"), "after the replacement"), 0);
  EXPECT_TRUE(eventually([&] { return read_all(fresh_dir + "/after") == "after the replacement"; },
                         10s));
  // Refusals: a brick that is not the volume's, and a volume without replicas to heal from.
  r = cli({"volume", "replace-brick", "vol", brick(1), host(1) + ":" + (dir_ / "b1-other"),
           "commit", "force"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.out, "does not exist in volume")) << show(r);
}

// `volume add-brick` on a mounted replica 2 volume: it becomes 2 x 2 online, with a new bucket
// map version in its graph. Files written before stay readable (their buckets are moving, so
// lookups ask the old and the new set), listings show each name once, and new files spread
// over both sets, each held by both bricks of its set.
TEST_F(HealCliTest, AddBrickGrowsAMountedVolumeOnline) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_TRUE(fs::create_directory(m("site")));
  constexpr int kOld = 200;
  for (int i = 0; i < kOld; ++i) {
    ASSERT_EQ(write_file(m("site/old" + std::to_string(i)), pattern(300 + i, i)), 0) << i;
  }
  std::string c0 = dir_ / "c0", c1 = dir_ / "c1";
  CliResult r = cli({"volume", "add-brick", "vol", host(0) + ":" + c0, host(1) + ":" + c1,
                     "force"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "volume add-brick: success")) << show(r);
  r = cli({"volume", "info", "vol"});
  EXPECT_TRUE(contains(r.stdout_text, "Type: Distributed-Replicate")) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "Number of Bricks: 2 x 2 = 4")) << show(r);
  r = cli({"volume", "info", "vol", "--graph"});
  EXPECT_TRUE(contains(r.stdout_text, "option bucket-map version=2;sets=2;")) << show(r);

  // The mount switches to the new graph: new names start landing on the new set.
  int made = 0;
  auto on_new_set = [&] {
    std::error_code ec;
    if (!fs::exists(c0 + "/site", ec)) return size_t{0};
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(c0 + "/site", ec)) n += e.is_regular_file();
    return n;
  };
  ASSERT_TRUE(eventually(
      [&] {
        std::string name = "site/new" + std::to_string(made);
        if (write_file(m(name), pattern(100 + made, 1000 + made)) == 0) ++made;
        return on_new_set() > 0;
      },
      30s))
      << "no new file reached the added bricks\n"
      << read_all(fuse_log());
  for (int i = 0; i < 100; ++i, ++made) {
    std::string name = "site/new" + std::to_string(made);
    ASSERT_EQ(write_file(m(name), pattern(100 + made, 1000 + made)), 0) << name;
  }

  // Every file reads back, old and new; the listing has each name once.
  for (int i = 0; i < kOld; ++i) {
    std::string content;
    int err = 0;
    ASSERT_TRUE(read_file(m("site/old" + std::to_string(i)), content, err)) << std::strerror(err);
    EXPECT_TRUE(content == pattern(300 + i, i)) << "old" << i;
  }
  for (int i = 0; i < made; ++i) {
    std::string content;
    int err = 0;
    ASSERT_TRUE(read_file(m("site/new" + std::to_string(i)), content, err)) << std::strerror(err);
    EXPECT_TRUE(content == pattern(100 + i, 1000 + i)) << "new" << i;
  }
  std::multiset<std::string> listed;
  for (const auto& e : fs::directory_iterator(m("site"))) listed.insert(e.path().filename());
  EXPECT_EQ(listed.size(), static_cast<size_t>(kOld + made));
  for (const auto& n : listed) EXPECT_EQ(listed.count(n), 1u) << n;

  // Both sets hold a share of the new files, and the new set's bricks are replicas.
  size_t on_new = on_new_set();
  EXPECT_GT(on_new, static_cast<size_t>(made) / 5) << "of " << made;
  EXPECT_LT(on_new, static_cast<size_t>(made)) << "of " << made;
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(4, 30s));
  EXPECT_EQ(brick_tree(c0), brick_tree(c1));

  // The next change waits for this one's buckets to settle.
  r = cli({"volume", "add-brick", "vol", host(0) + ":" + (dir_ / "d0"),
           host(1) + ":" + (dir_ / "d1"), "force"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.out, "buckets moving")) << show(r);
}

// auth.allow naming only the web heads must not stop heal: the bricks admit their volume's
// servers, whose heal daemons connect from the servers' addresses. The test's mount is the
// web head: it connects from 127.0.0.1, the kernel's source address for loopback.
TEST_F(HealCliTest, HealRunsWhenAuthAllowNamesOnlyTheWebHeads) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}, {{"auth.allow", "127.0.0.1"}}));
  ASSERT_NO_FATAL_FAILURE(mount());
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(write_file(m("before" + std::to_string(i)), pattern(1000 + i, i)), 0);
  }
  ASSERT_NO_FATAL_FAILURE(kill_brick(1));
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(write_file(m("during" + std::to_string(i)), pattern(2000 + i, 50 + i)), 0);
  }
  ASSERT_NO_FATAL_FAILURE(start_force({1}));
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 30s));
  EXPECT_EQ(brick_tree(brick_dir(0)), brick_tree(brick_dir(1)));
  EXPECT_EQ(brick_tree(brick_dir(1)).size(), 40u);
  // The list in force is still the operator's alone.
  std::string log = read_all(cluster_->server(0).brick_log_dir() + "/vol" +
                             [&] {
                               std::string p = brick_dir(0);
                               std::replace(p.begin(), p.end(), '/', '-');
                               return p;
                             }() +
                             ".log");
  EXPECT_TRUE(contains(log, "auth-allow '127.0.0.1'")) << log;
}

// add-brick, then `volume rebalance VOL start` while a client keeps appending to an open file
// and reading others: every old file whose bucket moved lands on the new set, nothing is lost
// or changed, the writer's bytes are all there, and once every server is done the buckets
// settle (the graph's map has none moving) and status says completed.
TEST_F(HealCliTest, RebalanceMovesExistingFilesWhileAWriterWrites) {
  ASSERT_NO_FATAL_FAILURE(start_volume(2, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_TRUE(fs::create_directories(m("site/deep")));
  constexpr int kOld = 300;
  auto old_name = [](int i) { return (i % 3 ? "site/old" : "site/deep/old") + std::to_string(i); };
  for (int i = 0; i < kOld; ++i) {
    ASSERT_EQ(write_file(m(old_name(i)), pattern(200 + 13 * i, i)), 0) << i;
  }
  ASSERT_EQ(write_file(m("site/big"), pattern(4 << 20, 4)), 0);
  std::string c0 = dir_ / "c0", c1 = dir_ / "c1";
  CliResult r = cli({"volume", "add-brick", "vol", host(0) + ":" + c0, host(1) + ":" + c1,
                     "force"});
  ASSERT_EQ(r.status, 0) << show(r);
  r = cli({"volume", "rebalance", "vol", "fix-layout", "start"});
  EXPECT_EQ(r.status, 0) << show(r);

  // A writer appending through one descriptor, opened before the move (it follows the file).
  std::atomic<bool> stop{false};
  std::string written, writer_error;
  std::thread writer([&] {
    int fd = ::open(m("site/log").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    if (fd < 0) {
      writer_error = std::strerror(errno);
      return;
    }
    for (int k = 0; !stop; ++k) {
      std::string line = "line " + std::to_string(k) + "\n";
      if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        writer_error = std::strerror(errno);
        break;
      }
      written += line;
      std::this_thread::sleep_for(2ms);
    }
    ::close(fd);
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop, writer};
  std::this_thread::sleep_for(300ms);

  r = cli({"volume", "rebalance", "vol", "start"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "volume rebalance: vol: success: Rebalance on vol has been "
                                      "started successfully"))
      << show(r);
  // Stopped part way, then started again: it goes on from its bucket cursor.
  std::this_thread::sleep_for(1500ms);
  r = cli({"volume", "rebalance", "vol", "stop"});
  ASSERT_EQ(r.status, 0) << show(r);
  std::string stopped;
  EXPECT_TRUE(poll_until(
      [&] {
        stopped = show(cli({"volume", "rebalance", "vol", "status"}));
        return contains(stopped, " stopped ") || contains(stopped, "completed");
      },
      30s))
      << stopped;
  r = cli({"volume", "rebalance", "vol", "start"});
  ASSERT_EQ(r.status, 0) << show(r);
  std::string status;
  EXPECT_TRUE(poll_until(
      [&] {
        CliResult g = cli({"volume", "info", "vol", "--graph"});
        status = show(cli({"volume", "rebalance", "vol", "status"}));
        return g.status == 0 && contains(g.stdout_text, "option bucket-map version=3;") &&
               !contains(g.stdout_text, "moving=");
      },
      90s))
      << "the moved buckets did not settle\n"
      << status;
  stop = true;
  writer.join();
  EXPECT_EQ(writer_error, "");
  EXPECT_TRUE(contains(status, "completed")) << status;
  EXPECT_TRUE(contains(status, "volume rebalance: vol: success")) << status;

  // Nothing lost or changed; the new set holds its share of the old files.
  for (int i = 0; i < kOld; ++i) {
    std::string content;
    int err = 0;
    ASSERT_TRUE(read_file(m(old_name(i)), content, err)) << old_name(i) << ": " << std::strerror(err);
    EXPECT_TRUE(content == pattern(200 + 13 * i, i)) << old_name(i);
  }
  std::string content;
  int err = 0;
  ASSERT_TRUE(read_file(m("site/big"), content, err)) << std::strerror(err);
  EXPECT_TRUE(content == pattern(4 << 20, 4));
  ASSERT_TRUE(read_file(m("site/log"), content, err)) << std::strerror(err);
  EXPECT_EQ(content.size(), written.size());
  EXPECT_TRUE(content == written) << "the appending writer lost bytes";
  size_t on_new = 0, on_old = 0;
  for (const auto& [path, node] : brick_tree(c0)) on_new += node.type == 'f';
  for (const auto& [path, node] : brick_tree(brick_dir(0))) on_old += node.type == 'f';
  EXPECT_GT(on_new, static_cast<size_t>(kOld) / 3) << "old set holds " << on_old;
  EXPECT_GT(on_old, static_cast<size_t>(kOld) / 3) << "new set holds " << on_new;
  EXPECT_EQ(on_new + on_old, static_cast<size_t>(kOld + 2)) << "a file on both sets, or none";
  // Every old file on the new set was moved there once ("site/log" may have been made there).
  std::regex row("127\\.0\\.0\\.110 +(\\d+) ");
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(status, mm, row)) << status;
  uint64_t moved_files = std::stoull(mm[1]);
  EXPECT_LE(moved_files, on_new) << status;
  EXPECT_GE(moved_files + 1, on_new) << status;
  EXPECT_EQ(brick_tree(c0), brick_tree(c1));
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(4, 30s));
  EXPECT_EQ(brick_tree(brick_dir(0)), brick_tree(brick_dir(1)));

  // Settled, the volume can grow again.
  r = cli({"volume", "add-brick", "vol", host(0) + ":" + (dir_ / "d0"),
           host(1) + ":" + (dir_ / "d1"), "force"});
  EXPECT_EQ(r.status, 0) << show(r);
}

// `volume remove-brick VOL BRICKS start | status | commit` on a mounted 2 x 2 volume: commit is
// refused until the leaving set is drained; start moves its files to the set that stays while
// the mount keeps working; once settled, commit makes the volume 1 x 2 with every file intact
// and the leaving bricks' daemons stopped.
TEST_F(HealCliTest, RemoveBrickDrainsTheLastSetBeforeCommit) {
  ASSERT_NO_FATAL_FAILURE(start_volume(4, {"replica", "2"}));
  ASSERT_NO_FATAL_FAILURE(mount());
  std::string c0 = brick_dir(2), c1 = brick_dir(3);
  std::string leaving0 = brick(2), leaving1 = brick(3);
  ASSERT_TRUE(fs::create_directories(m("app/state")));
  constexpr int kFiles = 200;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_EQ(write_file(m("app/state/s" + std::to_string(i)), pattern(500 + i, i)), 0) << i;
  }
  // Renamed files keep their data where it was, and the new names' owners get link entries:
  // data on the leaving set under names the other set owns must move too.
  std::map<std::string, std::string> renamed;
  for (int i = 0; i < 40; ++i) {
    std::string to = "app/renamed" + std::to_string(i);
    ASSERT_EQ(::rename(m("app/state/s" + std::to_string(i)).c_str(), m(to).c_str()), 0)
        << std::strerror(errno);
    renamed[to] = pattern(500 + i, i);
  }
  size_t on_leaving = 0;
  for (const auto& [path, node] : brick_tree(c0)) on_leaving += node.type == 'f';
  ASSERT_GT(on_leaving, 20u) << "the leaving set should hold a share of the files";

  CliResult r = cli({"volume", "remove-brick", "vol", leaving0, leaving1, "commit"});
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.out, "has not finished moving the data off the bricks")) << show(r);
  r = cli({"volume", "remove-brick", "vol", brick(0), brick(1), "start"});
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.out, "only the last replica sets")) << show(r);

  r = cli({"volume", "remove-brick", "vol", leaving0, leaving1, "start"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "volume remove-brick start: success")) << show(r);
  // The mount keeps serving while the set drains.
  for (int i = 40; i < kFiles; i += 20) {
    std::string content;
    int err = 0;
    EXPECT_TRUE(read_file(m("app/state/s" + std::to_string(i)), content, err)) << std::strerror(err);
  }
  std::string status;
  EXPECT_TRUE(poll_until(
      [&] {
        CliResult g = cli({"volume", "info", "vol", "--graph"});
        status = show(cli({"volume", "remove-brick", "vol", leaving0, leaving1, "status"}));
        return g.status == 0 && contains(g.stdout_text, "option bucket-map ") &&
               !contains(g.stdout_text, "moving=");
      },
      90s))
      << status;
  EXPECT_TRUE(contains(status, "completed")) << status;
  on_leaving = 0;
  for (const auto& [path, node] : brick_tree(c0)) on_leaving += node.type == 'f';
  EXPECT_EQ(on_leaving, 0u) << "files left on the drained set";

  r = cli({"volume", "remove-brick", "vol", leaving0, leaving1, "commit"});
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(contains(r.stdout_text, "volume remove-brick commit: success")) << show(r);
  r = cli({"volume", "info", "vol"});
  EXPECT_TRUE(contains(r.stdout_text, "Number of Bricks: 1 x 2 = 2")) << show(r);
  EXPECT_FALSE(contains(r.stdout_text, leaving0 + "\n")) << show(r);
  EXPECT_TRUE(eventually([&] { return brick_pid(2) == 0 && brick_pid(3) == 0; }, 15s))
      << "the removed bricks' daemons still run";

  for (int i = 40; i < kFiles; ++i) {
    std::string content;
    int err = 0;
    std::string name = "app/state/s" + std::to_string(i);
    ASSERT_TRUE(eventually([&] { return read_file(m(name), content, err); }, 10s))
        << name << ": " << std::strerror(err);
    EXPECT_TRUE(content == pattern(500 + i, i)) << name;
  }
  for (const auto& [name, data] : renamed) {
    std::string content;
    int err = 0;
    ASSERT_TRUE(read_file(m(name), content, err)) << name << ": " << std::strerror(err);
    EXPECT_TRUE(content == data) << name;
  }
  ASSERT_NO_FATAL_FAILURE(wait_heal_drained(2, 30s));
  EXPECT_EQ(brick_tree(brick_dir(0)), brick_tree(brick_dir(1)));
}

}  // namespace
}  // namespace mortar::test
