#include "tests/acceptance/acceptance_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/mount.h"

namespace mortar::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

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

bool alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(250ms);
  }
}

std::vector<int64_t> pending_entries(const std::string& text) {
  std::vector<int64_t> out;
  std::regex re("(^|\\n)Number of entries: (\\d+|-)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    std::string v = (*it)[2];
    out.push_back(v == "-" ? -1 : std::stoll(v));
  }
  return out;
}

int write_file(const std::string& path, const std::string& data, int64_t offset) {
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

std::string difference(const std::string& got, const std::string& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < std::min(got.size(), want.size()) && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         ", first difference at byte " + std::to_string(i);
}

std::string mismatch(const std::string& path, const std::string& want) {
  ReadResult r = read_file(path);
  if (r.err != 0) return path + ": " + std::strerror(r.err);
  std::string why = difference(r.data, want);
  return why.empty() ? "" : path + ": " + why;
}

bool is_link_entry(const Node& n) { return n.type == 'f' && n.mode == S_ISVTX && n.size == 0; }

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

Placement expect_sets_hold(const std::vector<std::map<std::string, Node>>& all_trees,
                           int replica_count, const std::map<std::string, std::string>& files,
                           const std::set<std::string>& dirs) {
  const int sets = static_cast<int>(all_trees.size()) / replica_count;
  Placement p;
  p.files_per_set.assign(sets, 0);
  std::map<std::string, int> holder;  // path -> the set holding its data
  for (int set = 0; set < sets; ++set) {
    for (const auto& [path, node] : all_trees[set * replica_count]) {
      if (node.type == 'd') {
        EXPECT_TRUE(dirs.contains(path)) << "directory " << path << " on set " << set;
        continue;
      }
      if (node.type != 'f') {
        ADD_FAILURE() << path << " on set " << set << " is " << node;
        continue;
      }
      if (is_link_entry(node)) {
        ++p.link_entries;
        continue;
      }
      ++p.files_per_set[set];
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
  for (int set = 0; set < sets; ++set) {
    for (const auto& [path, node] : all_trees[set * replica_count]) {
      if (!is_link_entry(node)) continue;
      EXPECT_TRUE(holder.contains(path) && holder[path] != set)
          << "link entry " << path << " on set " << set << " points at no data";
    }
  }
  for (const std::string& d : dirs) {
    for (size_t i = 0; i < all_trees.size(); ++i) {
      auto it = all_trees[i].find(d);
      EXPECT_TRUE(it != all_trees[i].end() && it->second.type == 'd') << d << " on brick " << i;
    }
  }
  return p;
}

Disk::Disk(std::string path) : path_(std::move(path)) {
  fs::create_directories(path_);
  mounted_ = ::mount("mortar-acceptance", path_.c_str(), "tmpfs", 0, "size=128m") == 0;
}

Disk::~Disk() {
  if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
}

void detach_mount(const std::string& path) {
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

void AcceptanceTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts, tmpfs, trusted.* xattrs)";
  root_ = fs::canonical(dir_.path()).string();
}

void AcceptanceTest::TearDown() {
  for (WebHead& w : heads_) {
    detach_mount(w.dir);
    if (w.pid > 0 && !eventually([&] { return !alive(w.pid); }, 10s)) {
      ::kill(w.pid, SIGKILL);
      ADD_FAILURE() << "the mount daemon of " << w.dir << " outlived its unmount";
    }
    for (const auto& line : error_lines(w.log)) ADD_FAILURE() << w.log << ": " << line;
  }
  // A server's death is the test's doing: no daemon may log an error over it.
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

void AcceptanceTest::start_servers() {
  for (int i = 0; i < kServers; ++i) {
    disks_.push_back(std::make_unique<Disk>(root_ + "/disk" + std::to_string(i)));
    ASSERT_TRUE(disks_.back()->mounted()) << disks_.back()->path() << ": " << std::strerror(errno);
  }
  cluster_ = std::make_unique<TestCluster>(kServers, root_ + "/servers", first_host_);
}

void AcceptanceTest::start_web_data() {
  ASSERT_NO_FATAL_FAILURE(start_servers());
  ASSERT_TRUE(cluster_->start(/*probe=*/true));
  MgmtdServer& s0 = cluster_->server(0);
  CliResult r;
  ASSERT_TRUE(poll_until(
      [&] {
        r = s0.cli({"peer", "status"});
        return r.status == 0 && count(r.stdout_text, "State: Peer in Cluster (Connected)") ==
                                    static_cast<size_t>(kServers - 1);
      },
      15s))
      << show(r);
  r = s0.cli({"volume", "create", kVolume, "replica", "2", "transport", "tcp", brick_spec(0),
              brick_spec(1), brick_spec(2), brick_spec(3)});
  ASSERT_EQ(r.status, 0) << show(r);
  r = s0.cli({"volume", "set", kVolume, "auth.allow", "127.0.0.*"});
  ASSERT_EQ(r.status, 0) << show(r);
  r = s0.cli({"volume", "start", kVolume});
  ASSERT_EQ(r.status, 0) << show(r);
  for (int i = 0; i < kServers; ++i) {
    MgmtdServer& s = cluster_->server(i);
    ASSERT_TRUE(eventually([&] { return s.brick_pids().size() == 1 && s.shd_pid() > 0; }, 15s))
        << s.address() << ": bricks " << s.brick_pids().size() << ", shd " << s.shd_pid() << "\n"
        << read_all(s.log());
  }
}

void AcceptanceTest::add_web_head(int i) {
  WebHead w;
  w.dir = root_ + "/web" + std::to_string(i);
  w.pid_file = root_ + "/fuse" + std::to_string(i) + ".pid";
  w.log = root_ + "/fuse" + std::to_string(i) + ".log";
  fs::create_directories(w.dir);
  std::ofstream(fstab(), std::ios::app)
      << host(0) << ":/" << kVolume << " " << w.dir << " mortar defaults,_netdev,"
      << "backup-volfile-servers=" << host(1) << ",pid-file=" << w.pid_file << ",log-file=" << w.log
      << " 0 0\n";
  heads_.push_back(w);
}

void AcceptanceTest::mount_from_fstab(WebHead& w) {
  std::string out_file = w.dir + ".mount.out";
  Process p = Process::spawn({"/bin/mount", "--fstab", fstab(), w.dir}, out_file);
  int rc = p.wait(60s);
  if (fs::exists(w.pid_file)) std::ifstream(w.pid_file) >> w.pid;
  ASSERT_EQ(rc, 0) << read_all(out_file) << read_all(w.log);
  ASSERT_TRUE(is_mortar_mount(w.dir));
  ASSERT_GT(w.pid, 0);
}

CliResult AcceptanceTest::heal_info(int via) {
  return cluster_->server(via).cli({"volume", "heal", kVolume, "info"});
}

bool AcceptanceTest::heal_drained(int via, std::chrono::milliseconds deadline, std::string& last) {
  return poll_until(
      [&] {
        CliResult info = heal_info(via);
        last = show(info);
        std::vector<int64_t> n = pending_entries(info.stdout_text);
        return info.status == 0 && n == std::vector<int64_t>(kServers, 0);
      },
      deadline);
}

}  // namespace mortar::test
