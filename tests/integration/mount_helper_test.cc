// `mount -t mortar` through the installed mount.mortar helper, as an operator or fstab uses it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/mount.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class MountHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    brick_ = std::make_unique<BrickDaemon>("127.0.0.2", dir_ / "brick", dir_ / "brickd.log");
    ASSERT_TRUE(brick_->start());
    volfile_ = dir_ / "vol.vol";
    std::ofstream(volfile_) << single_brick_volfile(*brick_);
    mnt_ = dir_ / "mnt";
    fs::create_directories(mnt_);
  }
  void TearDown() override {
    lazy_unmount(mnt_);
    if (pid_ > 0 && !eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) {
      ::kill(pid_, SIGKILL);
      ADD_FAILURE() << "the mount daemon outlived its unmount";
    }
    if (brick_) {
      EXPECT_EQ(brick_->stop(), 0);
    }
  }
  // mount -t mortar ... ; returns mount(8)'s exit status, its output in `output`.
  int mount(const std::string& spec, const std::string& options, std::string& output) {
    std::string out_file = dir_ / "mount.out";
    fs::remove(out_file);
    Process p = Process::spawn({"/bin/mount", "-t", "mortar", "-o", options, spec, mnt_}, out_file);
    int rc = p.wait(30s);
    output = read_all(out_file);
    if (fs::exists(pid_file())) {
      std::ifstream(pid_file()) >> pid_;
    }
    return rc;
  }
  std::string pid_file() const { return dir_ / "fuse.pid"; }
  std::string base_options() const {
    return "volfile=" + volfile_ + ",pid-file=" + pid_file() + ",log-file=" + (dir_ / "fuse.log");
  }

  TempDir dir_;
  std::unique_ptr<BrickDaemon> brick_;
  std::string volfile_;
  std::string mnt_;
  pid_t pid_ = -1;
};

TEST_F(MountHelperTest, MountAndUmountLeaveNothingBehind) {
  std::string out;
  ASSERT_EQ(mount("none", base_options(), out), 0) << out;
  EXPECT_TRUE(is_mortar_mount(mnt_));
  ASSERT_GT(pid_, 0);
  std::ofstream(mnt_ + "/hello") << "world";
  EXPECT_EQ(read_all(dir_ / "brick/hello"), "world");
  Process umount = Process::spawn({"/bin/umount", mnt_});
  ASSERT_EQ(umount.wait(), 0);
  EXPECT_FALSE(is_mortar_mount(mnt_));
  EXPECT_TRUE(eventually([&] { return ::kill(pid_, 0) != 0; }, 10s)) << "mortar-fuse still runs";
}

TEST_F(MountHelperTest, FstabOptionsAreAcceptedAndUnknownOnesOnlyWarn) {
  std::string out;
  ASSERT_EQ(mount("none",
                  base_options() +
                      ",defaults,_netdev,nofail,noatime,x-systemd.requires=mortar-mgmtd.service,"
                      "attribute-timeout=2,entry-timeout=2,bogus-option=1",
                  out),
            0)
      << out;
  EXPECT_TRUE(is_mortar_mount(mnt_));
  EXPECT_NE(out.find("warning: unknown mount option 'bogus-option=1' ignored"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("_netdev"), std::string::npos) << out;
  EXPECT_EQ(out.find("x-systemd"), std::string::npos) << out;
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line, ours;
  while (std::getline(mounts, line)) {
    if (line.find(" " + fs::weakly_canonical(mnt_).string() + " ") != std::string::npos)
      ours = line;
  }
  EXPECT_NE(ours.find("noatime"), std::string::npos) << ours;
  Process umount = Process::spawn({"/bin/umount", mnt_});
  EXPECT_EQ(umount.wait(), 0);
}

TEST_F(MountHelperTest, AMountThatCannotStartSaysWhyAndLeavesNoMount) {
  std::string out;
  std::ofstream(dir_ / "bad.vol") << "volume x\n  type no/such-type\nend-volume\n";
  EXPECT_NE(mount("none", "volfile=" + (dir_ / "bad.vol"), out), 0);
  EXPECT_NE(out.find("line 1"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown type 'no/such-type'"), std::string::npos) << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));

  EXPECT_NE(mount("none", "volfile=" + (dir_ / "missing.vol"), out), 0);
  EXPECT_NE(out.find("cannot read volfile"), std::string::npos) << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));

  EXPECT_NE(mount("none", "volfile=" + volfile_ + ",max_write=12", out), 0);
  EXPECT_NE(out.find("max_write"), std::string::npos) << out;
  EXPECT_FALSE(is_mortar_mount(mnt_));
}

// A real project on the mount: a source tree unpacked and compared file by file, then a
// program built and run from it.
TEST_F(MountHelperTest, ARealProjectBuildsOnTheMount) {
  std::string out;
  ASSERT_EQ(mount("none", base_options(), out), 0) << out;
  std::string src = "/usr/include/boost/asio";
  auto sh = [&](const std::string& cmd) {
    Process p = Process::spawn({"/bin/sh", "-c", cmd}, dir_ / "sh.out");
    return p.wait(300s);
  };
  ASSERT_EQ(sh("tar -C /usr/include -cf - boost/asio | tar -C " + mnt_ + " -xf -"), 0)
      << read_all(dir_ / "sh.out");
  ASSERT_EQ(sh("cd /usr/include && find boost/asio -type f | sort | xargs sha256sum > " +
               (dir_ / "want.sums")),
            0);
  ASSERT_EQ(sh("cd " + mnt_ + " && find boost/asio -type f | sort | xargs sha256sum > " +
               (dir_ / "got.sums")),
            0);
  std::string want = read_all(dir_ / "want.sums");
  EXPECT_GT(std::count(want.begin(), want.end(), '\n'), 500);
  EXPECT_EQ(read_all(dir_ / "got.sums"), want);

  fs::create_directories(mnt_ + "/proj");
  std::ofstream(mnt_ + "/proj/main.c")
      << "#include <stdio.h>\n#include \"greet.h\"\n"
         "int main(void) { printf(\"%s\\n\", GREETING); return 0; }\n";
  std::ofstream(mnt_ + "/proj/greet.h") << "#define GREETING \"built on mortar\"\n";
  std::ofstream(mnt_ + "/proj/Makefile") << "hello: main.c greet.h\n\tcc -O2 -o hello main.c\n";
  ASSERT_EQ(sh("make -C " + mnt_ + "/proj && " + mnt_ + "/proj/hello > " + (dir_ / "run.out")), 0)
      << read_all(dir_ / "sh.out");
  EXPECT_EQ(read_all(dir_ / "run.out"), "built on mortar\n");
  Process umount = Process::spawn({"/bin/umount", mnt_});
  EXPECT_EQ(umount.wait(), 0);
}

}  // namespace
}  // namespace mortar::test
