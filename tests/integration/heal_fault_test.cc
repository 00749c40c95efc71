// Faults under load on a replica 2 volume served by real mortar-mgmtd servers and mounted twice:
// a brick killed (SIGKILL) or hung (SIGSTOP) in the middle of a workload, and a client killed
// in the middle of its transactions. The applications must see no error and no long stall, and
// once the self-heal daemons have drained the index both bricks must hold the same tree, which
// is the one the applications wrote.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/cluster.h"
#include "tests/support/mount.h"
#include "tests/support/replica_tree.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// This file's servers are 127.0.0.100 and 127.0.0.101 (its block is .100-.109): other
// clusters (a quickstart on 127.0.0.2-5, other tests run by ctest -j) must not share them.
constexpr int kFirstHost = 100;
const std::string kServer0 = "127.0.0.100";
const std::string kServer1 = "127.0.0.101";
constexpr auto kPingTimeout = 2s;
constexpr auto kHealDeadline = 30s;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A short description of a node, content included as size and hash.
std::string describe(const Node& n) {
  std::ostringstream o;
  o << n;
  if (n.type == 'f')
    o << " content " << n.content.size() << "B #" << std::hex << std::hash<std::string>{}(n.content)
      << std::dec;
  if (n.type == 'l') o << " -> " << n.content;
  for (const auto& [k, v] : n.xattrs) o << " " << k << "=" << v;
  return o.str();
}

// Paths where two trees differ, with what each side holds there; empty when they are equal.
std::string tree_diff(const std::map<std::string, Node>& a, const std::map<std::string, Node>& b,
                      const std::string& a_name, const std::string& b_name) {
  std::ostringstream o;
  int shown = 0;
  auto note = [&](const std::string& path, const Node* x, const Node* y) {
    if (++shown > 30) return;
    o << "  " << path << "\n    " << a_name << ": " << (x ? describe(*x) : "(absent)") << "\n    "
      << b_name << ": " << (y ? describe(*y) : "(absent)") << "\n";
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

// The entries of `tree` whose path `owned` accepts.
std::map<std::string, Node> subtree(const std::map<std::string, Node>& tree,
                                    const std::function<bool(const std::string&)>& owned) {
  std::map<std::string, Node> out;
  for (const auto& [path, node] : tree) {
    if (owned(path)) out[path] = node;
  }
  return out;
}

// What an application believes one of its files holds, as brick_tree() would show it.
Node file_node(std::string content, uint32_t mode) {
  Node n;
  n.type = 'f';
  n.mode = mode;
  n.uid = ::geteuid();
  n.gid = ::getegid();
  n.size = content.size();
  n.content = std::move(content);
  return n;
}

Node dir_node(uint32_t mode) {
  Node n;
  n.type = 'd';
  n.mode = mode;
  n.uid = ::geteuid();
  n.gid = ::getegid();
  return n;
}

Node symlink_node(std::string target) {
  Node n;
  n.type = 'l';
  n.uid = ::geteuid();
  n.gid = ::getegid();
  n.content = std::move(target);
  return n;
}

// Runs `f` when the scope ends, however it ends (a failed ASSERT returns early): threads a test
// started are stopped and joined before their state goes.
template <class F>
struct Finally {
  F f;
  ~Finally() { f(); }
};

// True if a FUSE file system is mounted on `path` (a canonical path). Unlike is_mortar_mount()
// it never stats `path`, which fails with ENOTCONN once the mount's daemon is dead.
bool fuse_mounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == path && line.find(" - fuse.") != std::string::npos) return true;
  }
  return false;
}

// Lazy unmount of `path`, whether its daemon lives or not; true if something was mounted.
bool detach(const std::string& path) {
  if (!fuse_mounted(path)) return false;
  Process p = Process::spawn({"/bin/fusermount3", "-u", "-z", path});
  if (p.wait() != 0) ::umount2(path.c_str(), MNT_DETACH);
  return !fuse_mounted(path);
}

mode_t current_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool pwrite_all(int fd, const std::string& data, off_t offset) {
  ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
  if (n == static_cast<ssize_t>(data.size())) return true;
  if (n >= 0) errno = EIO;  // a short write is a lost write
  return false;
}

// One application on one mount: creates, appends, overwrites, partial writes, truncates,
// renames (within and across directories), deletes, chmod, user.* xattrs and symlinks, in
// its own directory tree and in a directory shared with the other application, plus its own
// block of a file both write. It keeps the model of what it wrote and every error it saw.
class Workload {
 public:
  static constexpr off_t kCommonBlock = 8192;

  Workload(int id, std::string mnt) : id_(id), mnt_(std::move(mnt)), rng_(1000 + id) {
    own_ = "/w" + std::to_string(id_);
    shared_prefix_ = "/shared/m" + std::to_string(id_) + "-";
  }

  // Creates this workload's directories (the shared ones are the test's).
  bool prepare() {
    for (const std::string& d : {own_, own_ + "/d"}) {
      if (!check(::mkdir((mnt_ + d).c_str(), 0755) == 0, "mkdir", d)) return false;
      model_[d] = dir_node(0755 & ~current_umask());
    }
    return true;
  }

  void run(const std::atomic<bool>& stop) {
    while (!stop) {
      {
        std::lock_guard lock(mu_);
        mark_ = Clock::now();
      }
      step();
      ++ops_;
    }
  }

  uint64_t ops() const { return ops_; }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  // The longest single call so far, and which; the call that followed the last one to return
  // (to say where a stalled workload is).
  Clock::duration longest() {
    std::lock_guard lock(mu_);
    return longest_;
  }
  std::string progress() {
    std::lock_guard lock(mu_);
    return "longest call " + std::to_string(seconds(longest_)) + " s: " + longest_what_ +
           "; last call to return: " + last_ + " (" +
           std::to_string(seconds(Clock::now() - mark_)) + " s ago)";
  }
  // Paths this workload owns: its tree, and its names in /shared.
  bool owns(const std::string& path) const {
    return path == own_ || path.starts_with(own_ + "/") || path.starts_with(shared_prefix_);
  }
  const std::map<std::string, Node>& model() const { return model_; }
  // The bytes it last wrote to its block of /shared/common.
  const std::string& common_block() const { return common_block_; }
  // The value it last gave its xattr on /shared/common ("" if never).
  const std::string& common_xattr() const { return common_xattr_; }
  std::string common_xattr_name() const { return "user.m" + std::to_string(id_); }

 private:
  // Records the outcome of one call (`ok`, else errno) and how long it took.
  bool check(bool ok, const char* op, const std::string& path) {
    int err = errno;
    auto now = Clock::now();
    std::lock_guard lock(mu_);
    last_ = std::string(op) + " " + path;
    if (now - mark_ > longest_) {
      longest_ = now - mark_;
      longest_what_ = last_;
    }
    mark_ = now;
    if (!ok) {
      if (errors_.size() < 50) {
        errors_.push_back(std::string(op) + " " + mnt_ + path + ": " + std::strerror(err) + " (" +
                          std::to_string(err) + ") after " + std::to_string(ops_) + " ops");
      }
    }
    return ok;
  }

  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  int percent() { return static_cast<int>(pick(100)); }

  std::string data(size_t max) { return pattern(1 + pick(max), static_cast<int>(rng_())); }
  std::string content() { return percent() < 10 ? data(300 * 1024) : data(16 * 1024); }

  std::vector<std::string> entries(char type) const {
    std::vector<std::string> out;
    for (const auto& [path, node] : model_) {
      if (node.type == type) out.push_back(path);
    }
    return out;
  }

  std::string new_name(bool file) {
    static const char* const kDirs[] = {"", "/d"};
    ++serial_;
    if (file && percent() < 30) return shared_prefix_ + std::to_string(serial_);
    return own_ + kDirs[pick(2)] + "/" + (file ? "f" : "l") + std::to_string(serial_);
  }

  void create() {
    std::string path = new_name(true);
    std::string body = content();
    int fd = ::open((mnt_ + path).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (!check(fd >= 0, "create", path)) return;
    bool ok = check(write_all(fd, body), "write", path);
    ok = check(::close(fd) == 0, "close", path) && ok;
    if (ok) model_[path] = file_node(std::move(body), 0644 & ~current_umask());
  }

  // open(flags), `change` on the descriptor, close; applies `apply` to the model on success.
  template <class Change, class Apply>
  void modify(const std::string& path, int flags, const char* op, Change change, Apply apply) {
    int fd = ::open((mnt_ + path).c_str(), flags);
    if (!check(fd >= 0, "open", path)) return;
    bool ok = check(change(fd), op, path);
    ok = check(::close(fd) == 0, "close", path) && ok;
    if (ok) apply(model_[path]);
  }

  void step() {
    std::vector<std::string> files = entries('f');
    int p = percent();
    if (files.size() < 8 || p < 14) return create();
    const std::string& f = files[pick(files.size())];
    Node& node = model_[f];
    if (p < 30) {
      std::string more = data(8 * 1024);
      return modify(
          f, O_WRONLY | O_APPEND, "append", [&](int fd) { return write_all(fd, more); },
          [&](Node& n) {
            n.content += more;
            n.size = n.content.size();
          });
    }
    if (p < 38) {
      std::string body = content();
      return modify(
          f, O_WRONLY | O_TRUNC, "overwrite", [&](int fd) { return write_all(fd, body); },
          [&](Node& n) {
            n.content = body;
            n.size = n.content.size();
          });
    }
    if (p < 48) {
      off_t at = static_cast<off_t>(pick(node.content.size() + 1));
      std::string part = data(20 * 1024);
      return modify(
          f, O_WRONLY, "pwrite", [&](int fd) { return pwrite_all(fd, part, at); },
          [&](Node& n) {
            size_t end = static_cast<size_t>(at) + part.size();
            if (n.content.size() < end) n.content.resize(end);
            n.content.replace(static_cast<size_t>(at), part.size(), part);
            n.size = n.content.size();
          });
    }
    if (p < 52) {
      off_t to = static_cast<off_t>(pick(node.content.size() + 1));
      if (check(::truncate((mnt_ + f).c_str(), to) == 0, "truncate", f)) {
        node.content.resize(static_cast<size_t>(to));
        node.size = node.content.size();
      }
      return;
    }
    if (p < 60) {
      std::string to = new_name(true);
      if (check(::rename((mnt_ + f).c_str(), (mnt_ + to).c_str()) == 0, "rename", f + " " + to)) {
        model_[to] = std::move(node);
        model_.erase(f);
      }
      return;
    }
    if (p < 72) {
      if (check(::unlink((mnt_ + f).c_str()) == 0, "unlink", f)) model_.erase(f);
      return;
    }
    if (p < 78) {
      static const uint32_t kModes[] = {0600, 0640, 0644, 0664, 0755};
      uint32_t mode = kModes[pick(5)];
      if (check(::chmod((mnt_ + f).c_str(), mode) == 0, "chmod", f)) node.mode = mode;
      return;
    }
    if (p < 86) {
      std::string name = "user.a" + std::to_string(pick(3));
      if (node.xattrs.contains(name) && percent() < 25) {
        if (check(::removexattr((mnt_ + f).c_str(), name.c_str()) == 0, "removexattr", f)) {
          node.xattrs.erase(name);
        }
        return;
      }
      std::string value = "v" + std::to_string(serial_++) + "-" + std::to_string(id_);
      if (check(::setxattr((mnt_ + f).c_str(), name.c_str(), value.data(), value.size(), 0) == 0,
                "setxattr", f)) {
        node.xattrs[name] = value;
      }
      return;
    }
    if (p < 90) {
      std::vector<std::string> links = entries('l');
      if (links.size() > 4) {
        const std::string& l = links[pick(links.size())];
        if (check(::unlink((mnt_ + l).c_str()) == 0, "unlink", l)) model_.erase(l);
        return;
      }
      std::string path = new_name(false);
      std::string target = "f" + std::to_string(pick(100));
      if (check(::symlink(target.c_str(), (mnt_ + path).c_str()) == 0, "symlink", path)) {
        model_[path] = symlink_node(target);
      }
      return;
    }
    // The block of /shared/common that is this workload's, and its xattr there.
    const std::string common = "/shared/common";
    if (p < 96) {
      std::string block = pattern(kCommonBlock, static_cast<int>(rng_()));
      int fd = ::open((mnt_ + common).c_str(), O_WRONLY);
      if (!check(fd >= 0, "open", common)) return;
      bool ok = check(pwrite_all(fd, block, id_ * kCommonBlock), "pwrite", common);
      ok = check(::close(fd) == 0, "close", common) && ok;
      if (ok) common_block_ = std::move(block);
      return;
    }
    std::string value = "c" + std::to_string(serial_++);
    if (check(::setxattr((mnt_ + common).c_str(), common_xattr_name().c_str(), value.data(),
                         value.size(), 0) == 0,
              "setxattr", common)) {
      common_xattr_ = value;
    }
  }

  const int id_;
  const std::string mnt_;
  std::string own_, shared_prefix_;
  std::mt19937 rng_;
  uint64_t serial_ = 0;
  std::map<std::string, Node> model_;  // what this workload's paths hold
  std::string common_block_, common_xattr_;
  std::atomic<uint64_t> ops_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;
  Clock::time_point mark_ = Clock::now();  // when the current call started, about
  Clock::duration longest_{};
  std::string longest_what_, last_;
};

class HealFaultTest : public ::testing::Test {
 protected:
  struct Mount {
    std::string dir, pid_file, log;
    pid_t pid = -1;
    bool killed = false;  // killed on purpose: its log is not checked
  };

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_NO_FATAL_FAILURE(start_volume());
  }

  void TearDown() override {
    if (stopped_brick_ > 0) ::kill(stopped_brick_, SIGCONT);
    for (Mount& m : mounts_) {
      detach(m.dir);
      if (m.pid > 0 && !eventually([&] { return ::kill(m.pid, 0) != 0; }, 10s)) {
        ::kill(m.pid, SIGKILL);
        ADD_FAILURE() << "the mount daemon of " << m.dir << " outlived its unmount";
      }
      if (!m.killed && fs::exists(m.log)) {
        EXPECT_EQ(error_lines(m.log), std::vector<std::string>{}) << m.log;
      }
    }
    // The faults are the test's: no daemon may log an error over them.
    for (int i = 0; cluster_ && i < cluster_->size(); ++i) {
      std::vector<std::string> logs = {cluster_->server(i).root() + "/log/shd.log"};
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(cluster_->server(i).brick_log_dir(), ec)) {
        logs.push_back(e.path());
      }
      for (const auto& log : logs) {
        for (const auto& line : error_lines(log)) ADD_FAILURE() << log << ": " << line;
      }
    }
    cluster_.reset();  // mgmtd, its bricks and its heal daemon, after the mounts are gone
  }

  std::string brick(int i) const { return dir_ / ("b" + std::to_string(i)); }

  // Two servers, and "vol": replica 2, one brick on each, ping-timeout 2 s, started, with a
  // self-heal daemon on each server.
  void start_volume() {
    cluster_ = std::make_unique<TestCluster>(2, dir_ / "cluster", kFirstHost);
    ASSERT_TRUE(cluster_->start());
    // Bricks on the root file system need `force`. A server that has just started may not have
    // founded its cluster yet: it says so, and is asked again.
    CliResult r;
    eventually(
        [&] {
          r = cluster_->cli({"volume", "create", "vol", "replica", "2", kServer0 + ":" + brick(0),
                             kServer1 + ":" + brick(1), "force"});
          return r.status == 0 || !contains(r.out, "is not in 'Peer in Cluster' state");
        },
        10s);
    ASSERT_EQ(r.status, 0) << r.out;
    r = cluster_->cli({"volume", "set", "vol", "network.ping-timeout", "2"});
    ASSERT_EQ(r.status, 0) << r.out;
    r = cluster_->cli({"volume", "start", "vol"});
    ASSERT_EQ(r.status, 0) << r.out;
    for (int i = 0; i < 2; ++i) {
      MgmtdServer& s = cluster_->server(i);
      ASSERT_TRUE(eventually([&] { return s.brick_pids().size() == 1 && s.shd_pid() > 0; }, 15s))
          << "server " << i << ": bricks " << s.brick_pids().size() << ", shd " << s.shd_pid()
          << "\n"
          << read_all(s.log());
    }
  }

  // `mount -t mortar -o OPTIONS 127.0.0.100:/vol DIR`, by calling the helper the way mount(8)
  // does, but this build's helper: /sbin/mount.mortar is one link for every build tree on the
  // machine (a sanitizer build's tests point it at theirs). The mount's index in mounts_.
  size_t mount() {
    size_t i = mounts_.size();
    Mount m;
    m.dir = fs::canonical(dir_.path()).string() + "/mnt" + std::to_string(i);
    m.pid_file = dir_ / ("fuse" + std::to_string(i) + ".pid");
    m.log = dir_ / ("fuse" + std::to_string(i) + ".log");
    fs::create_directories(m.dir);
    mounts_.push_back(m);
    std::string out_file = dir_ / ("mount" + std::to_string(i) + ".out");
    Process p = Process::spawn({bin("mount.mortar"), kServer0 + ":/vol", m.dir, "-o",
                                "rw,pid-file=" + m.pid_file + ",log-file=" + m.log},
                               out_file);
    int rc = p.wait(60s);
    if (fs::exists(m.pid_file)) std::ifstream(m.pid_file) >> mounts_[i].pid;
    EXPECT_EQ(rc, 0) << read_all(out_file) << read_all(m.log);
    EXPECT_TRUE(is_mortar_mount(m.dir));
    EXPECT_GT(mounts_[i].pid, 0);
    return i;
  }
  const std::string& mnt(size_t i) const { return mounts_[i].dir; }

  // The PID of server 1's brick daemon, from its pid file.
  pid_t brick1_pid() {
    std::vector<int> pids = cluster_->server(1).brick_pids();
    EXPECT_EQ(pids.size(), 1u);
    return pids.empty() ? -1 : pids[0];
  }

  // "Number of entries" of each brick in `volume heal vol statistics heal-count` ("-" for a
  // brick that is not connected); empty if the command failed.
  std::vector<std::string> heal_counts(std::string* out = nullptr) {
    CliResult r = cluster_->cli({"volume", "heal", "vol", "statistics", "heal-count"});
    if (out) *out = r.out;
    std::vector<std::string> counts;
    if (r.status != 0) return counts;
    std::regex line("Number of entries: (\\S+)");
    for (std::sregex_iterator it(r.stdout_text.begin(), r.stdout_text.end(), line), end; it != end;
         ++it) {
      counts.push_back((*it)[1]);
    }
    return counts;
  }

  // Waits until both bricks are connected and have nothing left to heal.
  void expect_heal_drains() {
    std::string out;
    auto start = Clock::now();
    bool drained = eventually(
        [&] {
          return heal_counts(&out) == std::vector<std::string>{"0", "0"};
        },
        kHealDeadline);
    EXPECT_TRUE(drained) << "heal-count after " << seconds(Clock::now() - start) << " s:\n"
                         << out << cluster_->cli({"volume", "heal", "vol", "info"}).out
                         << cluster_->cli({"volume", "heal", "vol", "statistics"}).out;
    std::cout << "heal drained in " << seconds(Clock::now() - start) << " s\n";
  }

  // A number from `volume heal vol statistics` ("No. of entries healed", "Bytes healed", ...).
  uint64_t heal_statistic(const std::string& label) {
    CliResult r = cluster_->cli({"volume", "heal", "vol", "statistics"});
    EXPECT_EQ(r.status, 0) << r.out;
    std::smatch m;
    if (!std::regex_search(r.stdout_text, m, std::regex(label + ": (\\d+)"))) {
      ADD_FAILURE() << "no '" << label << "' in\n" << r.out;
      return 0;
    }
    return std::stoull(m[1]);
  }

  // Both bricks hold the same tree (type, size, mode, owner, content, symlink target and
  // user.* xattrs of every path, .mortar aside); returns brick 0's.
  std::map<std::string, Node> expect_bricks_match() {
    std::map<std::string, Node> t0 = brick_tree(brick(0));
    std::map<std::string, Node> t1 = brick_tree(brick(1));
    EXPECT_EQ(tree_diff(t0, t1, "brick 0", "brick 1"), "");
    EXPECT_GT(t0.size(), 1u);
    return t0;
  }

  TempDir dir_{"mortar-heal-fault"};
  std::unique_ptr<TestCluster> cluster_;
  std::vector<Mount> mounts_;
  pid_t stopped_brick_ = -1;  // a brick under SIGSTOP, resumed whatever happens
};

TEST_F(HealFaultTest, KillNineDuringAWorkloadFromTwoMountsLosesNothing) {
  size_t a = mount(), b = mount();
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(::mkdir((mnt(a) + "/shared").c_str(), 0755), 0) << std::strerror(errno);
  {
    std::ofstream common(mnt(a) + "/shared/common", std::ios::binary);
    common << std::string(2 * Workload::kCommonBlock, 'z');
  }
  Workload w0(0, mnt(a)), w1(1, mnt(b));
  ASSERT_TRUE(w0.prepare()) << w0.errors()[0];
  ASSERT_TRUE(w1.prepare()) << w1.errors()[0];

  std::atomic<bool> stop{false};
  auto started = Clock::now();
  std::thread t0([&] { w0.run(stop); });
  std::thread t1([&] { w1.run(stop); });
  Finally join{[&] {
    stop = true;
    if (t0.joinable()) t0.join();
    if (t1.joinable()) t1.join();
  }};
  eventually([&] { return w0.ops() >= 150 && w1.ops() >= 150; }, 3s);
  std::this_thread::sleep_until(started + 1500ms);
  pid_t victim = brick1_pid();
  ASSERT_GT(victim, 0);
  uint64_t before0 = w0.ops(), before1 = w1.ops();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  std::this_thread::sleep_for(2500ms);
  std::string running = "mount 0: " + w0.progress() + "\nmount 1: " + w1.progress();
  stop = true;
  t0.join();
  t1.join();
  std::cout << "at the stop: " << running << "\n";
  std::cout << "ops: mount 0 " << before0 << " + " << w0.ops() - before0 << " after the kill"
            << ", mount 1 " << before1 << " + " << w1.ops() - before1 << "\n"
            << "mount 0: " << w0.progress() << "\nmount 1: " << w1.progress() << "\n";
  EXPECT_EQ(w0.errors(), std::vector<std::string>{});
  EXPECT_EQ(w1.errors(), std::vector<std::string>{});
  // The workload went on while the brick was away.
  EXPECT_GT(w0.ops(), before0 + 20);
  EXPECT_GT(w1.ops(), before1 + 20);
  // No call waited long: not for the dead brick, nor for a lock the other mount holds.
  EXPECT_LE(w0.longest(), kPingTimeout + 3s) << w0.progress();
  EXPECT_LE(w1.longest(), kPingTimeout + 3s) << w1.progress();

  EXPECT_TRUE(eventually([&] { return ::kill(victim, 0) != 0; }, 5s));
  // Nothing brought the brick back behind the test's back, and brick 0 knows what it missed.
  EXPECT_EQ(cluster_->server(1).brick_pids(), std::vector<int>{});
  std::string out;
  std::vector<std::string> pending = heal_counts(&out);
  ASSERT_EQ(pending.size(), 2u) << out;
  EXPECT_EQ(pending[1], "-") << out;
  EXPECT_GT(std::stoull(pending[0]), 0u) << out;

  CliResult r = cluster_->cli({"volume", "start", "vol", "force"});
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_TRUE(eventually([&] { return cluster_->server(1).brick_pids().size() == 1; }, 15s));
  expect_heal_drains();
  std::map<std::string, Node> tree = expect_bricks_match();
  std::cout << pending[0] << " entries pending on brick 0 before the restart; healed by the "
            << "daemons since their (re)start: " << heal_statistic("No. of entries healed")
            << " entries, " << heal_statistic("Bytes healed") << " bytes\n";

  // The bricks hold what the applications believe they wrote, path for path.
  for (Workload* w : {&w0, &w1}) {
    auto owned = subtree(tree, [&](const std::string& p) { return w->owns(p); });
    EXPECT_EQ(tree_diff(w->model(), owned, "workload", "brick 0"), "");
  }
  ASSERT_TRUE(tree.contains("/shared/common"));
  const Node& common = tree["/shared/common"];
  EXPECT_EQ(common.size, 2u * Workload::kCommonBlock);
  int i = 0;
  for (Workload* w : {&w0, &w1}) {
    std::string block = common.content.substr(i++ * Workload::kCommonBlock, Workload::kCommonBlock);
    if (!w->common_block().empty()) {
      EXPECT_TRUE(block == w->common_block()) << "block " << i - 1;
    }
    if (!w->common_xattr().empty()) {
      EXPECT_EQ(common.xattrs.at(w->common_xattr_name()), w->common_xattr());
    }
  }
  // And each mount reads what the other one wrote.
  int read_back = 0;
  for (auto [w, other] : {std::pair{&w0, b}, std::pair{&w1, a}}) {
    for (const auto& [path, node] : w->model()) {
      if (node.type != 'f' || read_back++ % 5 != 0) continue;
      EXPECT_TRUE(read_all(mnt(other) + path) == node.content) << path << " through " << mnt(other);
    }
  }
  EXPECT_GT(read_back, 10);
}

TEST_F(HealFaultTest, HungBrickStallsAtMostThePingTimeout) {
  size_t a = mount();
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(::mkdir((mnt(a) + "/hang").c_str(), 0755), 0) << std::strerror(errno);

  std::atomic<bool> stop{false};
  std::atomic<int> created{0};
  std::mutex mu;
  std::vector<std::string> errors;
  struct Call {
    Clock::time_point start;
    Clock::duration took;
    std::string what;
  };
  std::vector<Call> calls;
  std::thread writer;
  Finally join{[&] {
    stop = true;
    if (writer.joinable()) writer.join();
  }};
  writer = std::thread([&] {
    for (int k = 0; !stop; ++k) {
      std::string path = mnt(a) + "/hang/f" + std::to_string(k);
      std::string body = pattern(1024, k);
      auto t0 = Clock::now();
      int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      int err = errno;
      auto t1 = Clock::now();
      bool wrote = fd >= 0 && write_all(fd, body);
      if (fd >= 0 && !wrote) err = errno;
      auto t2 = Clock::now();
      bool closed = fd >= 0 && ::close(fd) == 0;
      if (fd >= 0 && wrote && !closed) err = errno;
      auto t3 = Clock::now();
      std::lock_guard lock(mu);
      std::string f = " of f" + std::to_string(k);
      calls.push_back({t0, t1 - t0, "create" + f});
      calls.push_back({t1, t2 - t1, "write" + f});
      calls.push_back({t2, t3 - t2, "close" + f});
      if (fd < 0 || !wrote || !closed) {
        errors.push_back("f" + std::to_string(k) + ": " + std::strerror(err));
        return;
      }
      created = k + 1;
    }
  });

  eventually([&] { return created >= 100; }, 3s);
  pid_t victim = brick1_pid();
  ASSERT_GT(victim, 0);
  auto stopped_at = Clock::now();
  ASSERT_EQ(::kill(victim, SIGSTOP), 0);
  stopped_brick_ = victim;
  std::this_thread::sleep_for(6s);
  auto resumed_at = Clock::now();
  ::kill(victim, SIGCONT);
  stopped_brick_ = -1;
  // Long enough that "more than 20 files after the return" means "not stalled" even under
  // ASan on a loaded 2-core machine (2 s gave 20 exactly there).
  std::this_thread::sleep_for(4s);
  stop = true;
  writer.join();

  // The longest call that started before the SIGCONT (the hang), and after it (the brick is
  // back and being healed), each with when it started relative to the SIGSTOP.
  Call hung{}, back{};
  size_t during = 0, after = 0;
  for (const Call& c : calls) {
    Call& longest = c.start < resumed_at ? hung : back;
    if (c.took > longest.took) longest = c;
    auto end = c.start + c.took;
    if (c.what.starts_with("close") && end > stopped_at + kPingTimeout + 1s && end < resumed_at) {
      ++during;
    }
    if (c.what.starts_with("close") && c.start > resumed_at) ++after;
  }
  auto describe_call = [&](const Call& c) {
    return c.what + " took " + std::to_string(seconds(c.took)) + " s from " +
           std::to_string(seconds(c.start - stopped_at)) + " s after the SIGSTOP (SIGCONT at " +
           std::to_string(seconds(resumed_at - stopped_at)) + " s)";
  };
  std::cout << created << " files; longest call while hung: " << describe_call(hung)
            << "; after: " << describe_call(back) << "; " << during
            << " files closed while the brick hung, " << after << " after\n";
  EXPECT_EQ(errors, std::vector<std::string>{});
  EXPECT_LE(hung.took, kPingTimeout + 1s) << describe_call(hung);
  // Nor may the brick's return stall the writer (its directory is being healed meanwhile).
  EXPECT_LE(back.took, kPingTimeout + 1s) << describe_call(back);
  // Once the hung brick is given up, the writer goes on at speed.
  EXPECT_GT(during, 50u);
  EXPECT_GT(after, 20u);

  expect_heal_drains();
  std::map<std::string, Node> tree = expect_bricks_match();
  EXPECT_GT(heal_statistic("No. of entries healed"), 0u);
  std::map<std::string, Node> expected = {{"/hang", dir_node(0755 & ~current_umask())}};
  for (int k = 0; k < created; ++k) {
    expected["/hang/f" + std::to_string(k)] = file_node(pattern(1024, k), 0644 & ~current_umask());
  }
  auto hang = subtree(tree, [](const std::string& p) { return p.starts_with("/hang"); });
  EXPECT_EQ(tree_diff(expected, hang, "writer", "brick 0"), "");
}

TEST_F(HealFaultTest, AClientDyingMidTransactionLeavesNoStuckLockOrLostMark) {
  size_t a = mount(), b = mount();
  ASSERT_FALSE(HasFailure());
  const std::string hot = "/busy/hot";
  ASSERT_EQ(::mkdir((mnt(a) + "/busy").c_str(), 0755), 0) << std::strerror(errno);

  // Mount A: one file written over and over through one descriptor, and new files beside it.
  std::atomic<uint64_t> writes{0};
  std::atomic<bool> stop{false};
  std::string first_error;
  std::thread writer;
  Finally join{[&] {
    stop = true;
    if (writer.joinable()) writer.join();
  }};
  writer = std::thread([&] {
    int fd = ::open((mnt(a) + hot).c_str(), O_CREAT | O_RDWR, 0644);
    if (fd < 0) {
      first_error = std::string("open: ") + std::strerror(errno);
      return;
    }
    for (uint64_t k = 0; !stop; ++k) {
      std::string block = pattern(4096, static_cast<int>(k));
      if (!pwrite_all(fd, block, static_cast<off_t>(k % 64) * 4096)) {
        first_error = std::string("pwrite: ") + std::strerror(errno);
        break;
      }
      ++writes;
      if (k % 8 == 0) {
        std::string path = mnt(a) + "/busy/a" + std::to_string(k);
        int f = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
        if (f < 0 || !write_all(f, pattern(2048, static_cast<int>(k)))) {
          first_error = "create a" + std::to_string(k) + ": " + std::strerror(errno);
          if (f >= 0) ::close(f);
          break;
        }
        ::close(f);
      }
    }
    ::close(fd);
  });
  eventually([&] { return writes >= 300; }, 5s);
  uint64_t writes_at_kill = writes;
  ASSERT_GT(writes_at_kill, 0u) << first_error;
  ASSERT_EQ(::kill(mounts_[a].pid, SIGKILL), 0);
  auto killed_at = Clock::now();
  mounts_[a].killed = true;
  // The writer's next call fails (the FUSE connection is gone): that is the point.
  stop = true;
  writer.join();
  std::cout << writes_at_kill << " writes from mount A before its kill; then: " << first_error
            << "\n";
  EXPECT_TRUE(detach(mnt(a)));

  // Mount B takes over the same file, and the same directory, at once.
  std::atomic<bool> finished{false};
  std::string b_error;
  const std::string from_b = "written by mount B after A died";
  std::thread taker([&] {
    int fd = ::open((mnt(b) + hot).c_str(), O_RDWR);
    if (fd < 0) {
      b_error = std::string("open: ") + std::strerror(errno);
    } else if (!pwrite_all(fd, from_b, 0)) {
      b_error = std::string("pwrite: ") + std::strerror(errno);
    } else if (::close(fd) != 0) {
      b_error = std::string("close: ") + std::strerror(errno);
    } else {
      int f = ::open((mnt(b) + "/busy/fromB").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (f < 0 || !write_all(f, from_b) || ::close(f) != 0) {
        b_error = std::string("create fromB: ") + std::strerror(errno);
      }
    }
    finished = true;
  });
  const auto allowed = kPingTimeout + 3s;
  bool in_time = eventually([&] { return finished.load(); }, allowed);
  auto took = Clock::now() - killed_at;
  if (!in_time) {
    // Stuck behind a lock nobody will release: free the thread by killing mount B.
    ADD_FAILURE() << "mount B's write is still waiting " << seconds(took)
                  << " s after mount A died (a lock of the dead client is stuck)";
    detach(mnt(b));
    ::kill(mounts_[b].pid, SIGKILL);
    mounts_[b].killed = true;
  }
  taker.join();
  if (!in_time) return;
  std::cout << "mount B wrote and created " << seconds(took) << " s after mount A's kill\n";
  EXPECT_EQ(b_error, "");

  expect_heal_drains();
  std::map<std::string, Node> tree = expect_bricks_match();
  ASSERT_TRUE(tree.contains(hot));
  EXPECT_EQ(tree[hot].content.substr(0, from_b.size()), from_b);
  EXPECT_EQ(tree[hot].size, 64u * 4096);
  EXPECT_TRUE(read_all(mnt(b) + hot) == tree[hot].content);
  ASSERT_TRUE(tree.contains("/busy/fromB"));
  EXPECT_EQ(tree["/busy/fromB"].content, from_b);
  // Every file A managed to create holds what A wrote to it, or is still empty if A died
  // between its create and its write.
  for (const auto& [path, node] : tree) {
    if (!path.starts_with("/busy/a")) continue;
    int k = std::stoi(path.substr(7));
    EXPECT_TRUE(node.content.empty() || node.content == pattern(2048, k)) << path;
  }
}

}  // namespace
}  // namespace mortar::test
