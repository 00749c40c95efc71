// The user story of DESIGN.md, end to end, as an operator and two web heads live it: four
// storage servers probed into a cluster, a 2 x 2 Distributed-Replicate volume "webData" with
// auth.allow, mounted from an fstab line on two mount points; a write on one is read on the
// other; a whole server dies (its mgmtd, brick and self-heal daemon killed -9) while the web
// heads keep reading and writing; it returns, heal drains to zero, and each replica set's bricks
// hold identical data, which is the data the web heads wrote, spread over both sets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
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
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
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

// The acceptance block is 127.0.0.140-143: other clusters (a quickstart on 127.0.0.2-5, the
// integration tests run by ctest -j) must not share these addresses or their ports.
constexpr int kFirstHost = 140;
constexpr int kServers = 4;
const std::string kVolume = "webData";
constexpr auto kHealDeadline = 60s;
constexpr size_t kMiB = 1024 * 1024;

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

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string show(const CliResult& r) {
  return "exit status " + std::to_string(r.status) + "\n--- stdout\n" + r.stdout_text +
         "--- stderr\n" + r.stderr_text;
}

// Running and not a zombie: detached daemons are reaped by init, which may do it late.
bool alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

// Polls `pred` every 250 ms until it holds or `timeout` passes; for predicates that run the
// CLI (a process each time).
bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(250ms);
  }
}

// "Number of entries: N" of each brick in `volume heal VOL info`, in brick order; a brick that
// is not connected prints "-", read as -1.
std::vector<int64_t> pending_entries(const std::string& text) {
  std::vector<int64_t> out;
  std::regex re("(^|\\n)Number of entries: (\\d+|-)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    std::string v = (*it)[2];
    out.push_back(v == "-" ? -1 : std::stoll(v));
  }
  return out;
}

// Writes `data` to `path` (created or truncated unless `offset` is given); 0 or the errno of the
// step that failed.
int write_file(const std::string& path, const std::string& data, int64_t offset = -1) {
  int flags = O_WRONLY | O_CREAT | (offset < 0 ? O_TRUNC : 0);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  int err = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                         (offset < 0 ? 0 : offset) + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

int append_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? errno : EIO);
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

// Reads `path` whole; an errno (and no content) if open or read failed.
struct ReadResult {
  int err = 0;
  std::string data;
};
ReadResult read_file(const std::string& path) {
  ReadResult r;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return {errno, ""};
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.err = errno;
      r.data.clear();
      break;
    }
    if (n == 0) break;
    r.data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return r;
}

// Why `path` does not read back as `want` ("" when it does).
std::string mismatch(const std::string& path, const std::string& want) {
  ReadResult r = read_file(path);
  if (r.err != 0) return path + ": " + std::strerror(r.err);
  if (r.data != want) {
    size_t i = 0;
    while (i < std::min(r.data.size(), want.size()) && r.data[i] == want[i]) ++i;
    return path + ": read " + std::to_string(r.data.size()) + " bytes, want " +
           std::to_string(want.size()) + ", first difference at byte " + std::to_string(i);
  }
  return "";
}

// A link entry of cluster/distribute: an empty file of mode ---------T on the set that owns a
// name whose data another set holds (translators/dht/dht.h).
bool is_link_entry(const Node& n) { return n.type == 'f' && n.mode == S_ISVTX && n.size == 0; }

// Paths where two brick trees differ, with what each side holds there; empty when they are
// equal.
std::string tree_diff(const std::map<std::string, Node>& a, const std::map<std::string, Node>& b,
                      const std::string& a_name, const std::string& b_name) {
  std::ostringstream o;
  int shown = 0;
  auto note = [&](const std::string& path, const Node* x, const Node* y) {
    if (++shown > 30) return;
    auto describe = [](const Node* n) {
      if (!n) return std::string("(absent)");
      std::ostringstream d;
      d << *n << " content #" << std::hex << std::hash<std::string>{}(n->content);
      return d.str();
    };
    o << "  " << path << "\n    " << a_name << ": " << describe(x) << "\n    " << b_name << ": "
      << describe(y) << "\n";
  };
  for (const auto& [path, node] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      note(path, &node, nullptr);
    } else if (!(it->second == node)) {
      note(path, &node, &it->second);
    }
  }
  for (const auto& [path, node] : b) {
    if (!a.contains(path)) note(path, nullptr, &node);
  }
  if (shown > 30) o << "  ... and " << shown - 30 << " more\n";
  return shown == 0 ? "" : std::to_string(shown) + " paths differ:\n" + o.str();
}

// A file system of its own for each server's brick, as storage servers have: mortar-mgmtd then
// takes the story's `volume create` without `force` (it refuses bricks on the root file system).
class Disk {
 public:
  explicit Disk(std::string path) : path_(std::move(path)) {
    fs::create_directories(path_);
    mounted_ = ::mount("mortar-acceptance", path_.c_str(), "tmpfs", 0, "size=128m") == 0;
  }
  ~Disk() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Runs `f` when the scope ends, however it ends: a failed ASSERT returns early, and the threads
// a test started must be stopped and joined before their state goes.
template <class F>
struct Finally {
  F f;
  ~Finally() { f(); }
};

class UserStoryTest : public ::testing::Test {
 protected:
  struct WebHead {
    std::string dir, pid_file, log;
    pid_t pid = -1;
  };

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts, tmpfs, trusted.* xattrs)";
    root_ = fs::canonical(dir_.path()).string();
  }

  void TearDown() override {
    for (WebHead& w : heads_) {
      detach(w.dir);
      if (w.pid > 0 && !eventually([&] { return !alive(w.pid); }, 10s)) {
        ::kill(w.pid, SIGKILL);
        ADD_FAILURE() << "the mount daemon of " << w.dir << " outlived its unmount";
      }
      for (const auto& line : error_lines(w.log)) ADD_FAILURE() << w.log << ": " << line;
    }
    // The server's death is the test's doing: no daemon may log an error over it.
    for (int i = 0; cluster_ && i < cluster_->size(); ++i) {
      MgmtdServer& s = cluster_->server(i);
      std::vector<std::string> logs = {s.log(), s.root() + "/log/shd.log"};
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(s.brick_log_dir(), ec)) {
        if (e.path().extension() == ".log") logs.push_back(e.path());
      }
      for (const auto& log : logs) {
        for (const auto& line : error_lines(log)) ADD_FAILURE() << log << ": " << line;
      }
    }
    cluster_.reset();  // mgmtd, its bricks and heal daemons, after the mounts are gone
    disks_.clear();
  }

  // Lazy unmount of `path` whether its daemon lives or not. Reads /proc/self/mountinfo rather
  // than stat()ing the path, which fails once a mount's daemon is dead.
  static void detach(const std::string& path) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    bool mounted = false;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string id, parent, dev, root, point;
      fields >> id >> parent >> dev >> root >> point;
      if (point == path && contains(line, " - fuse.")) mounted = true;
    }
    if (!mounted) return;
    Process p = Process::spawn({"/bin/fusermount3", "-u", "-z", path});
    if (p.wait() != 0) ::umount2(path.c_str(), MNT_DETACH);
  }

  std::string brick(int i) const { return root_ + "/disk" + std::to_string(i) + "/exports/b"; }
  std::string brick_spec(int i) const { return host(i) + ":" + brick(i); }
  std::string fstab() const { return root_ + "/fstab"; }

  // The story's web head: its /etc/fstab line (here a file of the test's own), `mount DIR`.
  // The daemon's pid and log are the test's, so it can clean up and read what happened.
  void add_fstab_line(const WebHead& w) {
    std::ofstream(fstab(), std::ios::app)
        << host(0) << ":/" << kVolume << " " << w.dir << " mortar defaults,_netdev,"
        << "backup-volfile-servers=" << host(1) << ",pid-file=" << w.pid_file
        << ",log-file=" << w.log << " 0 0\n";
  }
  void mount_from_fstab(WebHead& w) {
    std::string out_file = w.dir + ".mount.out";
    Process p = Process::spawn({"/bin/mount", "--fstab", fstab(), w.dir}, out_file);
    int rc = p.wait(60s);
    if (fs::exists(w.pid_file)) std::ifstream(w.pid_file) >> w.pid;
    ASSERT_EQ(rc, 0) << read_all(out_file) << read_all(w.log);
    ASSERT_TRUE(is_mortar_mount(w.dir));
    ASSERT_GT(w.pid, 0);
  }

  // `volume heal webData info` through server `via`.
  CliResult heal_info(int via) {
    return cluster_->server(via).cli({"volume", "heal", kVolume, "info"});
  }

  TempDir dir_{"mortar-acceptance"};
  std::string root_;
  std::vector<std::unique_ptr<Disk>> disks_;
  std::unique_ptr<TestCluster> cluster_;
  std::vector<WebHead> heads_;
};

TEST_F(UserStoryTest, WebDataSurvivesAStorageServerDyingAndHealsBack) {
  const auto test_start = Clock::now();

  // 1. Four storage servers, each with a brick file system; probed from the first.
  for (int i = 0; i < kServers; ++i) {
    disks_.push_back(std::make_unique<Disk>(root_ + "/disk" + std::to_string(i)));
    ASSERT_TRUE(disks_.back()->mounted()) << disks_.back()->path() << ": " << std::strerror(errno);
  }
  cluster_ = std::make_unique<TestCluster>(kServers, root_ + "/servers", kFirstHost);
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
  for (int i = 0; i < 2; ++i) {
    WebHead w;
    w.dir = root_ + "/web" + std::to_string(i);
    w.pid_file = root_ + "/fuse" + std::to_string(i) + ".pid";
    w.log = root_ + "/fuse" + std::to_string(i) + ".log";
    fs::create_directories(w.dir);
    add_fstab_line(w);
    heads_.push_back(w);
  }
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
  bool drained = poll_until(
      [&] {
        CliResult info = heal_info(0);
        last = show(info);
        std::vector<int64_t> n = pending_entries(info.stdout_text);
        return info.status == 0 && n == std::vector<int64_t>(kServers, 0);
      },
      kHealDeadline);
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
  std::vector<size_t> per_set(2, 0);
  size_t links = 0;
  std::map<std::string, int> holder;  // path -> the set holding its data
  for (int set = 0; set < 2; ++set) {
    for (const auto& [path, node] : trees[2 * set]) {
      if (node.type == 'd') {
        EXPECT_TRUE(dirs.contains(path)) << "directory " << path << " on set " << set;
        continue;
      }
      ASSERT_EQ(node.type, 'f') << path << " on set " << set;
      if (is_link_entry(node)) {
        ++links;
        continue;
      }
      ++per_set[set];
      auto it = files.find(path);
      if (it == files.end()) {
        ADD_FAILURE() << path << " (" << node.size << " bytes) on set " << set
                      << " was removed or never written";
        continue;
      }
      EXPECT_TRUE(node.content == it->second)
          << path << " on set " << set << ": " << node.size << " bytes, want " << it->second.size();
      EXPECT_FALSE(holder.contains(path)) << path << " has data on both sets";
      holder[path] = set;
    }
  }
  for (const auto& [path, data] : files) EXPECT_TRUE(holder.contains(path)) << path << " is lost";
  for (int set = 0; set < 2; ++set) {
    for (const auto& [path, node] : trees[2 * set]) {
      if (!is_link_entry(node)) continue;
      EXPECT_TRUE(holder.contains(path) && holder[path] != set)
          << "link entry " << path << " on set " << set << " points at no data";
    }
  }
  for (const std::string& d : dirs) {
    for (int i = 0; i < kServers; ++i) {
      EXPECT_TRUE(trees[i].contains(d) && trees[i][d].type == 'd') << d << " on brick " << i;
    }
  }
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
