// Mounting volumes served by a real mortar-mgmtd (`mount -t mortar HOST:/VOL DIR`), backup
// volfile servers, and live graph switches when the volume's options change.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/support/cluster.h"
#include "tests/support/mount.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Servers of this file's clusters are 127.0.0.131 and up: other clusters (a quickstart on
// 127.0.0.2-5, other tests run by ctest -j) must not share their addresses or ports.
constexpr int kFirstHost = 131;
const std::string kServer1 = "127.0.0.131";
const std::string kServer2 = "127.0.0.132";

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class MgmtMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    mnt_ = dir_ / "mnt";
    fs::create_directories(mnt_);
  }
  void TearDown() override {
    lazy_unmount(mnt_);
    if (pid_ > 0 && !eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) {
      ::kill(pid_, SIGKILL);
      ADD_FAILURE() << "the mount daemon outlived its unmount";
    }
    if (fs::exists(fuse_log())) {
      EXPECT_EQ(error_lines(fuse_log()), std::vector<std::string>{}) << read_all(fuse_log());
    }
    cluster_.reset();  // mgmtd and its bricks, after the mount is gone
  }

  // Starts `n` servers on 127.0.0.131 ... and creates and starts "vol" with one brick on
  // `brick_server`.
  void start_cluster_with_volume(int n, int brick_server = 0) {
    cluster_ = std::make_unique<TestCluster>(n, dir_ / "cluster", kFirstHost);
    ASSERT_TRUE(cluster_->start());
    std::string brick = cluster_->server(brick_server).address() + ":" + (dir_ / "b");
    CliResult r = create_volume("vol", brick);
    ASSERT_EQ(r.status, 0) << r.out;
    r = cluster_->cli({"volume", "start", "vol"});
    ASSERT_EQ(r.status, 0) << r.out;
  }

  // volume create NAME BRICK force. A server that has just started may not have founded its
  // one-server cluster yet: it says so, and is asked again.
  CliResult create_volume(const std::string& name, const std::string& brick) {
    CliResult r;
    eventually(
        [&] {
          r = cluster_->cli({"volume", "create", name, brick, "force"});
          return r.status == 0 || !contains(r.out, "is not in 'Peer in Cluster' state");
        },
        10s);
    return r;
  }

  // mount -t mortar [-o OPTIONS] SPEC DIR; returns mount(8)'s exit status, its output in
  // `output`, and the daemon's PID in pid_ (from the pid file).
  int mount(const std::string& spec, const std::string& options, std::string& output) {
    std::string out_file = dir_ / "mount.out";
    fs::remove(out_file);
    std::vector<std::string> argv = {"/bin/mount", "-t", "mortar"};
    if (!options.empty()) {
      argv.push_back("-o");
      argv.push_back(options);
    }
    argv.push_back(spec);
    argv.push_back(mnt_);
    Process p = Process::spawn(argv, out_file);
    int rc = p.wait(60s);
    output = read_all(out_file);
    if (fs::exists(pid_file())) std::ifstream(pid_file()) >> pid_;
    return rc;
  }
  std::string pid_file() const { return dir_ / "fuse.pid"; }
  std::string fuse_log() const { return dir_ / "fuse.log"; }
  std::string base_options() const { return "pid-file=" + pid_file() + ",log-file=" + fuse_log(); }
  int umount() {
    Process p = Process::spawn({"/bin/umount", mnt_});
    return p.wait();
  }

  TempDir dir_{"mortar-mgmt-mount"};
  std::unique_ptr<TestCluster> cluster_;
  std::string mnt_;
  pid_t pid_ = -1;
};

TEST_F(MgmtMountTest, MountsAVolumeByHostAndName) {
  ASSERT_NO_FATAL_FAILURE(start_cluster_with_volume(1));
  std::string out;
  ASSERT_EQ(mount(kServer1 + ":/vol", base_options(), out), 0) << out << read_all(fuse_log());
  EXPECT_TRUE(is_mortar_mount(mnt_));
  ASSERT_GT(pid_, 0);

  std::ofstream(mnt_ + "/hello") << "world";
  EXPECT_EQ(read_all(mnt_ + "/hello"), "world");
  EXPECT_EQ(read_all(dir_ / "b/hello"), "world");
  fs::create_directories(mnt_ + "/d/e");
  EXPECT_TRUE(fs::is_directory(dir_ / "b/d/e"));
  std::string log = read_all(fuse_log());
  EXPECT_TRUE(contains(log, "fetched graph version")) << log;

  ASSERT_EQ(umount(), 0);
  EXPECT_FALSE(is_mortar_mount(mnt_));
  EXPECT_TRUE(eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) << "mortar-fuse still runs";
  EXPECT_TRUE(contains(read_all(fuse_log()), "mortar-fuse stopped"));
}

TEST_F(MgmtMountTest, AVolumeThatCannotBeServedSaysWhyAndLeavesNoMount) {
  cluster_ = std::make_unique<TestCluster>(1, dir_ / "cluster", kFirstHost);
  ASSERT_TRUE(cluster_->start());
  std::string out;
  EXPECT_NE(mount(kServer1 + ":/webData", base_options(), out), 0);
  EXPECT_TRUE(contains(
      out, "mount.mortar: cannot mount " + kServer1 + ":/webData: volume webData does not exist\n"))
      << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));

  CliResult r = create_volume("webData", kServer1 + ":" + (dir_ / "b"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(mount(kServer1 + ":/webData", base_options(), out), 0);
  EXPECT_TRUE(contains(
      out, "mount.mortar: cannot mount " + kServer1 + ":/webData: volume webData is not started\n"))
      << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));

  // Nobody listens on these: one round over both (volfile-max-fetch-attempts=1) is quick.
  auto start = Clock::now();
  EXPECT_NE(
      mount("127.0.0.138:/webData",
            base_options() + ",backup-volfile-servers=127.0.0.139,volfile-max-fetch-attempts=1",
            out),
      0);
  EXPECT_LT(Clock::now() - start, 15s);
  EXPECT_TRUE(contains(out,
                       "mount.mortar: cannot mount 127.0.0.138:/webData: no management daemon "
                       "answered on 127.0.0.138, 127.0.0.139\n"))
      << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));
  // Nothing was mounted, so nothing ran: no daemon, no pid file.
  EXPECT_FALSE(fs::exists(pid_file()));
}

TEST_F(MgmtMountTest, VolumeSetSwitchesTheMountedGraphLive) {
  ASSERT_NO_FATAL_FAILURE(start_cluster_with_volume(1));
  std::string out;
  ASSERT_EQ(mount(kServer1 + ":/vol", base_options(), out), 0) << out << read_all(fuse_log());
  std::smatch m;
  std::string log = read_all(fuse_log());
  ASSERT_TRUE(std::regex_search(log, m, std::regex("final graph version (\\d+) of vol"))) << log;
  const uint64_t first = std::stoull(m[1]);

  // A file kept open across the switch, and a loop reading another one.
  std::ofstream(mnt_ + "/loop") << "steady";
  int kept = ::open((mnt_ + "/kept").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(kept, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(kept, "before", 6, 0), 6);
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::thread reader([&] {
    while (!stop) {
      char buf[16] = {};
      int fd = ::open((mnt_ + "/loop").c_str(), O_RDONLY);
      ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf) : -1;
      int err = errno;
      if (fd >= 0) ::close(fd);
      struct stat st;
      bool stat_ok = ::stat((mnt_ + "/loop").c_str(), &st) == 0;
      if (n != 6 || std::string(buf, 6) != "steady" || !stat_ok) {
        if (failures++ == 0)
          first_failure = "read " + std::to_string(n) + ": " + std::strerror(err);
      }
      ++reads;
    }
  });

  CliResult r = cluster_->cli({"volume", "set", "vol", "network.ping-timeout", "7"});
  EXPECT_EQ(r.status, 0) << r.out;
  std::regex switched("switched to graph version (\\d+) of vol");
  bool seen = eventually(
      [&] {
        log = read_all(fuse_log());
        return std::regex_search(log, m, switched);
      },
      15s);
  int reads_at_switch = reads;
  // Keep reading for a while on the new graph too.
  eventually([&] { return reads > reads_at_switch + 50; }, 5s);
  stop = true;
  reader.join();
  ASSERT_TRUE(seen) << log;
  const uint64_t second = std::stoull(m[1]);
  EXPECT_GT(second, first);
  EXPECT_TRUE(contains(log, "option ping-timeout 7")) << log;
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_GT(reads, reads_at_switch);

  // The open file still works, on the graph it was opened with; that graph is still there.
  ASSERT_EQ(::pwrite(kept, "after", 5, 6), 5);
  char buf[16] = {};
  ASSERT_EQ(::pread(kept, buf, sizeof buf, 0), 11);
  EXPECT_EQ(std::string(buf, 11), "beforeafter");
  ASSERT_EQ(::fsync(kept), 0);
  std::string freed_first = "freed graph version " + std::to_string(first) + " of vol";
  EXPECT_FALSE(contains(read_all(fuse_log()), freed_first));
  // New opens go to the new graph and see what the old one wrote.
  EXPECT_EQ(read_all(mnt_ + "/kept"), "beforeafter");
  EXPECT_EQ(read_all(dir_ / "b/kept"), "beforeafter");

  // Closing the last file of the old graph frees it.
  ASSERT_EQ(::close(kept), 0);
  EXPECT_TRUE(eventually([&] { return contains(read_all(fuse_log()), freed_first); }, 10s))
      << read_all(fuse_log());
  // The new graph serves on.
  std::ofstream(mnt_ + "/later") << "on the new graph";
  EXPECT_EQ(read_all(dir_ / "b/later"), "on the new graph");

  // A client-side option only: the graph stays, the kernel gets the new timeouts.
  r = cluster_->cli({"volume", "set", "vol", "performance.md-cache-timeout", "5"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(eventually(
      [&] {
        return contains(read_all(fuse_log()),
                        "cache timeouts of vol now: entry 5 s, attribute 5 s");
      },
      15s))
      << read_all(fuse_log());
  EXPECT_TRUE(contains(read_all(fuse_log()),
                       "has the same translators as version " + std::to_string(second)))
      << read_all(fuse_log());

  ASSERT_EQ(umount(), 0);
  EXPECT_TRUE(eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) << "mortar-fuse still runs";
  log = read_all(fuse_log());
  EXPECT_TRUE(contains(log, "freed graph version " + std::to_string(second) + " of vol")) << log;
}

TEST_F(MgmtMountTest, MountsFromABackupServerWhenTheFirstIsDown) {
  // The brick is on the first server: bricks keep serving while their server's mgmtd is stopped.
  ASSERT_NO_FATAL_FAILURE(start_cluster_with_volume(2, 0));
  EXPECT_EQ(cluster_->server(0).stop(), 0);
  std::string out;
  auto start = Clock::now();
  ASSERT_EQ(mount(kServer1 + ":/vol", base_options() + ",backup-volfile-servers=" + kServer2, out),
            0)
      << out << read_all(fuse_log());
  EXPECT_LT(Clock::now() - start, 15s);
  EXPECT_TRUE(is_mortar_mount(mnt_));
  std::string log = read_all(fuse_log());
  EXPECT_TRUE(
      std::regex_search(log, std::regex("fetched graph version \\d+ of vol from " + kServer2)))
      << log;

  std::ofstream(mnt_ + "/hello") << "from the backup";
  EXPECT_EQ(read_all(mnt_ + "/hello"), "from the backup");
  EXPECT_EQ(read_all(dir_ / "b/hello"), "from the backup");

  ASSERT_EQ(umount(), 0);
  EXPECT_FALSE(is_mortar_mount(mnt_));
  EXPECT_TRUE(eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) << "mortar-fuse still runs";
}

// An /etc/fstab line, as operators write it for GlusterFS: `mount DIR` finds it (here in a
// file of the test's own, through mount --fstab) and mounts the volume from mortar-mgmtd.
TEST_F(MgmtMountTest, MountsFromAnFstabLine) {
  ASSERT_NO_FATAL_FAILURE(start_cluster_with_volume(1));
  std::string fstab = dir_ / "fstab";
  std::ofstream(fstab) << "# web root\n"
                       << kServer1 << ":/vol " << mnt_ << " mortar defaults,_netdev,nofail,"
                       << base_options() << " 0 0\n";
  std::string out_file = dir_ / "mount.out";
  Process p = Process::spawn({"/bin/mount", "--fstab", fstab, mnt_}, out_file);
  ASSERT_EQ(p.wait(60s), 0) << read_all(out_file) << read_all(fuse_log());
  if (fs::exists(pid_file())) std::ifstream(pid_file()) >> pid_;
  EXPECT_TRUE(is_mortar_mount(mnt_));
  std::ofstream(mnt_ + "/index.html") << "<h1>up</h1>";
  EXPECT_EQ(read_all(dir_ / "b/index.html"), "<h1>up</h1>");
  EXPECT_EQ(read_all(out_file).find("_netdev"), std::string::npos) << read_all(out_file);
  ASSERT_EQ(umount(), 0);
  EXPECT_FALSE(is_mortar_mount(mnt_));
}

}  // namespace
}  // namespace mortar::test
