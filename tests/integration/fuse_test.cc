// Real FUSE mounts of a real mortar-brickd on 127.0.0.2, exercised through the kernel with
// ordinary system calls, as applications would.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "tests/support/mount.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kAddress = "127.0.0.2";

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::ostringstream hex;
  for (unsigned i = 0; i < len; ++i) hex << std::hex << (md[i] >> 4) << (md[i] & 0xf);
  return hex.str();
}

// Writes `size` bytes of a pattern to `path` with write(2) in `chunk`-sized pieces.
void write_pattern(const std::string& path, size_t size, size_t chunk = 1 << 20, int seed = 1) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  std::mt19937 rng(seed);
  std::vector<char> buf(chunk);
  size_t done = 0;
  while (done < size) {
    size_t n = std::min(chunk, size - done);
    for (size_t i = 0; i < n; i += 4) {
      uint32_t v = rng();
      std::memcpy(buf.data() + i, &v, std::min<size_t>(4, n - i));
    }
    ASSERT_EQ(::write(fd, buf.data(), n), static_cast<ssize_t>(n));
    done += n;
  }
  ASSERT_EQ(::close(fd), 0);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class FuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    // Other users must reach the mount point for the permission tests.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
    brick_dir_ = brick_root() + "/brick";
    brick_ = std::make_unique<BrickDaemon>(kAddress, brick_dir_, dir_ / "brickd.log");
    ASSERT_TRUE(brick_->start());
    volfile_ = dir_ / "vol.vol";
    std::ofstream(volfile_) << single_brick_volfile(*brick_, ping_timeout());
    mount_ = std::make_unique<FuseMount>(volfile_, dir_ / "mnt", dir_ / "fuse.log", mount_args());
    ASSERT_TRUE(mount_->mount()) << read_all(dir_ / "fuse.log.out");
    mnt_ = mount_->path();
  }
  void TearDown() override {
    if (!mount_) return;
    EXPECT_EQ(mount_->unmount(), 0)
        << "mortar-fuse did not exit cleanly; see " << mount_->log_path() << ".out";
    for (const auto& log : {mount_->log_path(), brick_->log_path()}) {
      auto errors = error_lines(log);
      EXPECT_TRUE(errors.empty()) << "ERROR lines in " << log << ":\n" << errors.front();
    }
    EXPECT_EQ(brick_->stop(), 0);
  }
  virtual std::string ping_timeout() { return "3"; }
  virtual std::string brick_root() { return dir_.path(); }
  virtual std::vector<std::string> mount_args() { return {}; }
  std::string at(const std::string& name) const { return mnt_ + "/" + name; }

  TempDir dir_;
  std::string brick_dir_;
  std::string volfile_;
  std::string mnt_;
  std::unique_ptr<BrickDaemon> brick_;
  std::unique_ptr<FuseMount> mount_;
};

TEST_F(FuseTest, FilesOfEverySizeRoundTrip) {
  for (size_t size :
       {size_t(0), size_t(1), size_t(4096), size_t((1 << 20) + 1), size_t(256) << 20}) {
    std::string name = "f" + std::to_string(size);
    write_pattern(at(name), size, 1 << 20, static_cast<int>(size % 1000) + 1);
    write_pattern(dir_ / ("ref" + std::to_string(size)), size, 1 << 20,
                  static_cast<int>(size % 1000) + 1);
    struct stat st;
    ASSERT_EQ(::stat(at(name).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), size);
    std::string want = sha256_file(dir_ / ("ref" + std::to_string(size)));
    EXPECT_EQ(sha256_file(at(name)), want) << name << " through the mount";
    EXPECT_EQ(sha256_file(brick_dir_ + "/" + name), want) << name << " on the brick";
  }
}

TEST_F(FuseTest, SparseFilesReadHolesAsZeros) {
  int fd = ::open(at("sparse").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "head", 4, 0), 4);
  ASSERT_EQ(::pwrite(fd, "tail", 4, 100 << 20), 4);
  ASSERT_EQ(::close(fd), 0);
  struct stat st;
  ASSERT_EQ(::stat(at("sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (100 << 20) + 4);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the hole took disk space";
  std::string all = read_all(at("sparse"));
  ASSERT_EQ(all.size(), static_cast<size_t>((100 << 20) + 4));
  EXPECT_EQ(all.substr(0, 4), "head");
  EXPECT_EQ(all.substr(100 << 20), "tail");
  EXPECT_EQ(all.find_first_not_of('\0', 4), static_cast<size_t>(100 << 20));
  // Truncating up makes a hole too.
  ASSERT_EQ(::truncate(at("sparse").c_str(), 200 << 20), 0);
  ASSERT_EQ(::stat(at("sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 200 << 20);
}

TEST_F(FuseTest, AppendFromTwoProcesses) {
  constexpr int kLines = 300;
  std::vector<pid_t> children;
  for (char tag : {'a', 'b'}) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(at("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      std::string line(63, tag);
      line += '\n';
      for (int i = 0; i < kLines; ++i) {
        if (::write(fd, line.data(), line.size()) != 64) ::_exit(1);
      }
      ::_exit(::close(fd) == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::string all = read_all(at("log"));
  ASSERT_EQ(all.size(), 2u * kLines * 64);
  int a = 0, b = 0;
  std::string line_a(64, 'a'), line_b(64, 'b');
  line_a.back() = '\n';
  line_b.back() = '\n';
  for (size_t pos = 0; pos < all.size(); pos += 64) {
    std::string line = all.substr(pos, 64);
    if (line == line_a) {
      ++a;
    } else if (line == line_b) {
      ++b;
    } else {
      ADD_FAILURE() << "torn line at " << pos;
      break;
    }
  }
  EXPECT_EQ(a, kLines);
  EXPECT_EQ(b, kLines);
}

TEST_F(FuseTest, MmapReadAndWrite) {
  write_pattern(at("m"), 1 << 20);
  int fd = ::open(at("m").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  char* c = static_cast<char*>(p);
  std::string via_read = read_all(at("m"));
  EXPECT_EQ(std::memcmp(c, via_read.data(), 1 << 20), 0) << "mmap read differs from read()";
  std::memcpy(c + 4096, "written through a mapping", 25);
  ASSERT_EQ(::msync(p, 1 << 20, MS_SYNC), 0);
  ASSERT_EQ(::munmap(p, 1 << 20), 0);
  ASSERT_EQ(::close(fd), 0);
  std::string on_brick = read_all(brick_dir_ + "/m");
  EXPECT_EQ(on_brick.substr(4096, 25), "written through a mapping");
  EXPECT_EQ(read_all(at("m")).substr(4096, 25), "written through a mapping");
}

// On tmpfs: this machine's ext4 takes most of a millisecond per create, which is not what
// this test is about.
class LargeDirectoryTest : public FuseTest {
  std::string brick_root() override { return shm_.path(); }
  TempDir shm_{"mortar-test", "/dev/shm"};
};

TEST_F(LargeDirectoryTest, TwentyThousandEntriesListCompletely) {
  ASSERT_EQ(::mkdir(at("big").c_str(), 0755), 0);
  constexpr int kEntries = 20000;
  constexpr int kWriters = 4;
  std::set<std::string> want;
  for (int i = 0; i < kEntries; ++i) want.insert("entry-" + std::to_string(i));
  std::string dir = at("big");
  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = w; i < kEntries; i += kWriters) {
        std::string path = dir + "/entry-" + std::to_string(i);
        int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd < 0) ::_exit(1);
        ::close(fd);
      }
      ::_exit(0);
    }
    writers.push_back(pid);
  }
  for (pid_t pid : writers) {
    int status;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // Twice: readdirplus with a cold cache, then whatever the kernel chooses.
  for (int round = 0; round < 2; ++round) {
    std::set<std::string> seen;
    size_t count = 0;
    DIR* d = ::opendir(at("big").c_str());
    ASSERT_NE(d, nullptr);
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      ++count;
      seen.insert(name);
    }
    ::closedir(d);
    EXPECT_EQ(count, static_cast<size_t>(kEntries)) << "round " << round;
    EXPECT_EQ(seen, want) << "round " << round;
  }
}

TEST_F(FuseTest, HardlinksSymlinksAndRenameOver) {
  std::ofstream(at("orig")) << "content";
  ASSERT_EQ(::link(at("orig").c_str(), at("hard").c_str()), 0);
  struct stat a, b;
  ASSERT_EQ(::stat(at("orig").c_str(), &a), 0);
  ASSERT_EQ(::stat(at("hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  ASSERT_EQ(::symlink("orig", at("soft").c_str()), 0);
  char target[64] = {};
  ASSERT_EQ(::readlink(at("soft").c_str(), target, sizeof target), 4);
  EXPECT_STREQ(target, "orig");
  EXPECT_EQ(read_all(at("soft")), "content");
  struct stat l;
  ASSERT_EQ(::lstat(at("soft").c_str(), &l), 0);
  EXPECT_TRUE(S_ISLNK(l.st_mode));

  std::ofstream(at("new")) << "replacement";
  ASSERT_EQ(::rename(at("new").c_str(), at("orig").c_str()), 0);
  EXPECT_EQ(read_all(at("orig")), "replacement");
  EXPECT_EQ(read_all(at("hard")), "content");
  ASSERT_EQ(::stat(at("hard").c_str(), &b), 0);
  EXPECT_EQ(b.st_nlink, 1u);
  EXPECT_FALSE(fs::exists(at("new")));
  // The brick agrees.
  EXPECT_EQ(read_all(brick_dir_ + "/orig"), "replacement");
  EXPECT_FALSE(fs::exists(brick_dir_ + "/new"));
}

TEST_F(FuseTest, ExtendedAttributes) {
  std::ofstream(at("x")) << "x";
  ASSERT_EQ(::setxattr(at("x").c_str(), "user.mime", "text/html", 9, 0), 0);
  char value[64] = {};
  EXPECT_EQ(::getxattr(at("x").c_str(), "user.mime", nullptr, 0), 9);
  EXPECT_EQ(::getxattr(at("x").c_str(), "user.mime", value, sizeof value), 9);
  EXPECT_STREQ(value, "text/html");
  EXPECT_EQ(::getxattr(at("x").c_str(), "user.mime", value, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  char list[256];
  ssize_t n = ::listxattr(at("x").c_str(), list, sizeof list);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(list, static_cast<size_t>(n)), std::string("user.mime\0", 10));
  EXPECT_EQ(::setxattr(at("x").c_str(), "user.mime", "a", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::removexattr(at("x").c_str(), "user.mime"), 0);
  EXPECT_EQ(::getxattr(at("x").c_str(), "user.mime", value, sizeof value), -1);
  EXPECT_EQ(errno, ENODATA);
  // The brick's own attributes are invisible and untouchable through the mount.
  EXPECT_EQ(::getxattr(at("x").c_str(), "trusted.mortar.gfid", value, sizeof value), -1);
  EXPECT_EQ(::setxattr(at("x").c_str(), "trusted.mortar.gfid", "x", 1, 0), -1);
}

// Runs `body` in a child process; returns its exit code.
int in_child(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// An access ACL in the kernel's xattr form: the owner rw, user `uid` r, nobody else.
std::string read_only_acl(uint32_t uid) {
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  constexpr uint32_t kUndefined = 0xffffffffu;
  std::vector<Entry> entries = {{0x01, 6, kUndefined},  // ACL_USER_OBJ
                                {0x02, 4, uid},         // ACL_USER
                                {0x04, 0, kUndefined},  // ACL_GROUP_OBJ
                                {0x10, 4, kUndefined},  // ACL_MASK
                                {0x20, 0, kUndefined}}; // ACL_OTHER
  uint32_t version = 2;
  std::string out(reinterpret_cast<const char*>(&version), sizeof version);
  for (const Entry& e : entries) out.append(reinterpret_cast<const char*>(&e), sizeof e);
  return out;
}

// A file capability as setcap(8) writes it: revision 2, effective, cap_net_bind_service.
std::string net_bind_capability() {
  uint32_t words[5] = {0x02000000u | 1u /* VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE */,
                       1u << 10, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(words), sizeof words);
}

// What `ls -l` and the kernel ask about on their own, for every file.
TEST_F(FuseTest, AclsAndSecurityLabelsStayOffTheBricksByDefault) {
  std::ofstream(at("tool")) << "#!/bin/sh\n";
  std::string cap = net_bind_capability();
  char value[64];
  // As a GlusterFS mount without acl, selinux and capability: no labels, no file
  // capabilities, and ACLs not supported.
  for (const char* name : {"security.capability", "security.selinux"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(::getxattr(at("tool").c_str(), name, value, sizeof value), -1);
    EXPECT_EQ(errno, ENODATA);
  }
  EXPECT_EQ(::setxattr(at("tool").c_str(), "security.capability", cap.data(), cap.size(), 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(::setxattr(at("tool").c_str(), "security.mortar-test", "v", 1, 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(::getxattr((brick_dir_ + "/tool").c_str(), "security.capability", value,
                       sizeof value),
            -1);
  std::string acl = read_only_acl(65534);
  EXPECT_EQ(::getxattr(at("tool").c_str(), "system.posix_acl_access", value, sizeof value), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(::setxattr(at("tool").c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0),
            -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  // The user's own names still go through.
  EXPECT_EQ(::setxattr(at("tool").c_str(), "user.k", "v", 1, 0), 0) << std::strerror(errno);
}

class CapabilityTest : public FuseTest {
  std::vector<std::string> mount_args() override { return {"-o", "capability"}; }
};

TEST_F(CapabilityTest, TheCapabilityOptionPassesThemThrough) {
  std::ofstream(at("tool")) << "#!/bin/sh\n";
  std::string cap = net_bind_capability();
  ASSERT_EQ(::setxattr(at("tool").c_str(), "security.capability", cap.data(), cap.size(), 0), 0)
      << std::strerror(errno);
  char value[64];
  ssize_t n = ::getxattr((brick_dir_ + "/tool").c_str(), "security.capability", value,
                         sizeof value);
  ASSERT_EQ(n, static_cast<ssize_t>(cap.size()));
  EXPECT_EQ(std::string(value, static_cast<size_t>(n)), cap);
  n = ::getxattr(at("tool").c_str(), "security.capability", value, sizeof value);
  ASSERT_EQ(n, static_cast<ssize_t>(cap.size()));
  EXPECT_EQ(std::string(value, static_cast<size_t>(n)), cap);
  // Removing it reaches the brick as well.
  ASSERT_EQ(::removexattr(at("tool").c_str(), "security.capability"), 0);
  EXPECT_EQ(::getxattr((brick_dir_ + "/tool").c_str(), "security.capability", value,
                       sizeof value),
            -1);
  // Only that name: other labels are for `selinux`.
  EXPECT_EQ(::getxattr(at("tool").c_str(), "security.selinux", value, sizeof value), -1);
  EXPECT_EQ(errno, ENODATA);
}

class SelinuxTest : public FuseTest {
  std::vector<std::string> mount_args() override { return {"-o", "selinux"}; }
};

TEST_F(SelinuxTest, TheSelinuxOptionPassesSecurityLabelsThrough) {
  std::ofstream(at("f")) << "x";
  ASSERT_EQ(::setxattr(at("f").c_str(), "security.mortar-test", "label", 5, 0), 0)
      << std::strerror(errno);
  char value[64];
  EXPECT_EQ(::getxattr((brick_dir_ + "/f").c_str(), "security.mortar-test", value, sizeof value),
            5);
  EXPECT_EQ(::getxattr(at("f").c_str(), "security.mortar-test", value, sizeof value), 5);
}

class AclTest : public FuseTest {
  std::vector<std::string> mount_args() override { return {"-o", "acl"}; }
};

// Whether user `uid` can open `path` for reading.
bool readable_by(uid_t uid, const std::string& path) {
  return in_child([&] {
           if (::setgid(65534) != 0 || ::setuid(uid) != 0) return 2;
           int fd = ::open(path.c_str(), O_RDONLY);
           if (fd < 0) return errno == EACCES ? 1 : 3;
           ::close(fd);
           return 0;
         }) == 0;
}

TEST_F(AclTest, TheAclOptionStoresAndEnforcesThem) {
  // The brick's own file system must keep ACLs for this to mean anything.
  std::string probe = dir_ / "acl-probe";
  std::ofstream(probe) << "x";
  std::string acl = read_only_acl(65534);
  if (::setxattr(probe.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) != 0) {
    GTEST_SKIP() << "the test directory's file system has no POSIX ACLs";
  }
  std::ofstream(at("secret")) << "for nobody's eyes";
  ASSERT_EQ(::chmod(at("secret").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(mnt_.c_str(), 0755), 0);
  EXPECT_FALSE(readable_by(65534, at("secret")));
  ASSERT_EQ(::setxattr(at("secret").c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0),
            0)
      << std::strerror(errno);
  EXPECT_TRUE(readable_by(65534, at("secret"))) << "the ACL is not enforced";
  EXPECT_FALSE(readable_by(65533, at("secret"))) << "the ACL lets in the wrong user";
  // Stored on the brick, which keeps the mode's group bits as the ACL's mask (r--).
  char value[128];
  EXPECT_GT(::getxattr((brick_dir_ + "/secret").c_str(), "system.posix_acl_access", value,
                       sizeof value),
            0);
  struct stat st{};
  ASSERT_EQ(::stat(at("secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  // A directory's default ACL is inherited by what is made in it (masked by the create's
  // group bits, as POSIX has it).
  ASSERT_EQ(::mkdir(at("shared").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(at("shared").c_str(), 0755), 0);
  ASSERT_EQ(::setxattr(at("shared").c_str(), "system.posix_acl_default", acl.data(), acl.size(),
                       0),
            0)
      << std::strerror(errno);
  int fd = ::open(at("shared/report").c_str(), O_CREAT | O_WRONLY, 0640);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_TRUE(readable_by(65534, at("shared/report"))) << "the default ACL was not inherited";
  EXPECT_FALSE(readable_by(65533, at("shared/report")));
}

TEST_F(FuseTest, FcntlAndFlockConflictAcrossProcesses) {
  std::ofstream(at("lock")) << std::string(100, 'x');
  int fd = ::open(at("lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 10;
  fl.l_len = 20;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);

  std::string path = at("lock");
  int child = in_child([&] {
    int cfd = ::open(path.c_str(), O_RDWR);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    want.l_start = 15;
    want.l_len = 1;
    if (::fcntl(cfd, F_SETLK, &want) == 0) return 1;  // must conflict
    if (errno != EAGAIN && errno != EACCES) return 2;
    if (::fcntl(cfd, F_GETLK, &want) != 0) return 3;
    if (want.l_type != F_WRLCK || want.l_start != 10 || want.l_len != 20) return 4;
    want.l_type = F_WRLCK;
    want.l_start = 50;
    want.l_len = 10;
    if (::fcntl(cfd, F_SETLK, &want) != 0) return 5;     // another range is free
    if (::flock(cfd, LOCK_EX | LOCK_NB) != 0) return 6;  // flock is its own space
    return 0;
  });
  EXPECT_EQ(child, 0);

  ASSERT_EQ(::flock(fd, LOCK_SH | LOCK_NB), 0);
  child = in_child([&] {
    int cfd = ::open(path.c_str(), O_RDWR);
    if (::flock(cfd, LOCK_EX | LOCK_NB) == 0) return 1;
    if (errno != EWOULDBLOCK) return 2;
    if (::flock(cfd, LOCK_SH | LOCK_NB) != 0) return 3;  // readers share
    return 0;
  });
  EXPECT_EQ(child, 0);

  // A blocked F_SETLKW is granted when the holder unlocks.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t waiter = ::fork();
  if (waiter == 0) {
    int cfd = ::open(path.c_str(), O_RDWR);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    want.l_start = 0;
    want.l_len = 0;
    char c = 'w';
    (void)!::write(ready[1], &c, 1);
    ::_exit(::fcntl(cfd, F_SETLKW, &want) == 0 ? 0 : 1);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  std::this_thread::sleep_for(300ms);
  int status = 0;
  EXPECT_EQ(::waitpid(waiter, &status, WNOHANG), 0) << "the waiter was not blocked";
  fl.l_type = F_UNLCK;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);
  ASSERT_EQ(::flock(fd, LOCK_UN), 0);
  ASSERT_TRUE(eventually([&] { return ::waitpid(waiter, &status, WNOHANG) == waiter; }, 5s));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(fd);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(FuseTest, InterruptedLockWaitIsWithdrawn) {
  std::ofstream(at("lock")) << "x";
  int fd = ::open(at("lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);
  std::string path = at("lock");
  pid_t waiter = ::fork();
  if (waiter == 0) {
    int cfd = ::open(path.c_str(), O_RDWR);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    ::fcntl(cfd, F_SETLKW, &want);
    ::_exit(0);
  }
  std::this_thread::sleep_for(300ms);
  ::kill(waiter, SIGKILL);
  int status;
  ASSERT_TRUE(eventually([&] { return ::waitpid(waiter, &status, WNOHANG) == waiter; }, 5s))
      << "a lock waiter could not be killed";
  // Its withdrawn wait is not granted later: another process can take the lock after us.
  fl.l_type = F_UNLCK;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);
  int child = in_child([&] {
    int cfd = ::open(path.c_str(), O_RDWR);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    return ::fcntl(cfd, F_SETLK, &want) == 0 ? 0 : 1;
  });
  EXPECT_EQ(child, 0);
  ::close(fd);
}

// One line per step: what was done and what came of it, for comparing two file systems.
std::vector<std::string> run_script(const std::string& root) {
  std::vector<std::string> out;
  auto p = [&](const std::string& name) { return root + "/" + name; };
  auto rc = [&](const std::string& what, int r) {
    out.push_back(what + " -> " +
                  (r == 0 ? std::string("ok") : std::string(strerrorname_np(errno))));
  };
  const time_t started = ::time(nullptr);
  auto st = [&](const std::string& name) {
    struct stat s;
    if (::lstat(p(name).c_str(), &s) != 0) {
      out.push_back("stat " + name + " -> " + strerrorname_np(errno));
      return;
    }
    std::ostringstream line;
    line << "stat " << name << " mode=" << std::oct << s.st_mode << std::dec
         << " nlink=" << s.st_nlink << " uid=" << s.st_uid << " gid=" << s.st_gid
         << " size=" << (S_ISDIR(s.st_mode) ? 0 : s.st_size) << " mtime=";
    // The two runs happen one after the other: a time set by the script compares exactly,
    // "now" only as "during this run".
    if (s.st_mtim.tv_sec >= started - 1 && s.st_mtim.tv_sec <= ::time(nullptr) + 1) {
      line << "during the run";
    } else {
      line << s.st_mtim.tv_sec;
    }
    out.push_back(line.str());
  };
  auto write_file = [&](const std::string& name, const std::string& data, int flags) {
    int fd = ::open(p(name).c_str(), flags, 0640);
    if (fd < 0) {
      out.push_back("open " + name + " -> " + strerrorname_np(errno));
      return;
    }
    ssize_t n = ::write(fd, data.data(), data.size());
    out.push_back("write " + name + " -> " + std::to_string(n));
    ::close(fd);
  };
  ::umask(022);
  rc("mkdir d", ::mkdir(p("d").c_str(), 0750));
  rc("mkdir d again", ::mkdir(p("d").c_str(), 0750));
  st("d");
  write_file("d/f", "hello world", O_CREAT | O_WRONLY | O_EXCL);
  write_file("d/f", "x", O_CREAT | O_WRONLY | O_EXCL);
  write_file("nothere/f", "x", O_CREAT | O_WRONLY);
  st("d/f");
  rc("chmod d/f 0604", ::chmod(p("d/f").c_str(), 0604));
  rc("chown d/f 1234:5678", ::chown(p("d/f").c_str(), 1234, 5678));
  rc("truncate d/f 5", ::truncate(p("d/f").c_str(), 5));
  struct timespec times[2] = {{1000000, 0}, {2000000, 0}};
  rc("utimens d/f", ::utimensat(AT_FDCWD, p("d/f").c_str(), times, 0));
  st("d/f");
  rc("link d/f d/g", ::link(p("d/f").c_str(), p("d/g").c_str()));
  st("d/f");
  rc("link d e", ::link(p("d").c_str(), p("e").c_str()));
  rc("symlink ../x d/s", ::symlink("../x", p("d/s").c_str()));
  st("d/s");
  rc("unlink d", ::unlink(p("d").c_str()));
  rc("rmdir d", ::rmdir(p("d").c_str()));
  rc("rmdir d/f", ::rmdir(p("d/f").c_str()));
  rc("rename d d/sub", ::rename(p("d").c_str(), p("d/sub").c_str()));
  rc("mkdir d2", ::mkdir(p("d2").c_str(), 0755));
  write_file("d2/x", "x", O_CREAT | O_WRONLY);
  rc("rename d d2 (not empty)", ::rename(p("d").c_str(), p("d2").c_str()));
  rc("rename d/f d/g (same inode)", ::rename(p("d/f").c_str(), p("d/g").c_str()));
  st("d/f");
  rc("rename d/g d/h", ::rename(p("d/g").c_str(), p("d/h").c_str()));
  rc("renameat2 noreplace d/f d/h",
     ::renameat2(AT_FDCWD, p("d/f").c_str(), AT_FDCWD, p("d/h").c_str(), RENAME_NOREPLACE));
  rc("renameat2 exchange d/f d/s",
     ::renameat2(AT_FDCWD, p("d/f").c_str(), AT_FDCWD, p("d/s").c_str(), RENAME_EXCHANGE));
  st("d/f");
  st("d/s");
  rc("setxattr d/h user.k", ::setxattr(p("d/h").c_str(), "user.k", "v", 1, 0));
  char v[8];
  ssize_t n = ::getxattr(p("d/h").c_str(), "user.k", v, sizeof v);
  out.push_back("getxattr d/h user.k -> " + std::to_string(n));
  n = ::getxattr(p("d/h").c_str(), "user.none", v, sizeof v);
  out.push_back("getxattr d/h user.none -> " + std::string(strerrorname_np(errno)));
  rc("mknod d/fifo", ::mkfifo(p("d/fifo").c_str(), 0600));
  st("d/fifo");
  rc("open missing", ::open(p("missing").c_str(), O_RDONLY) >= 0 ? 0 : -1);
  rc("opendir file", ::open(p("d/h").c_str(), O_RDONLY | O_DIRECTORY) >= 0 ? 0 : -1);
  rc("mkdir over file", ::mkdir(p("d/h").c_str(), 0755));
  rc("rename file over dir", ::rename(p("d/h").c_str(), p("d2").c_str()));
  rc("rename dir over file", ::rename(p("d2").c_str(), p("d/h").c_str()));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(p("d"))) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  std::string listing = "ls d ->";
  for (const auto& name : names) listing += " " + name;
  out.push_back(listing);
  rc("unlink d/h", ::unlink(p("d/h").c_str()));
  rc("unlink d/h again", ::unlink(p("d/h").c_str()));
  return out;
}

TEST_F(FuseTest, SameScriptSameResultsAsALocalDirectory) {
  TempDir local;
  auto expected = run_script(local.path());
  auto got = run_script(mnt_);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "step " << i;
}

TEST_F(FuseTest, StatfsAndChmodChownThroughTheKernel) {
  struct statvfs sv;
  ASSERT_EQ(::statvfs(mnt_.c_str(), &sv), 0);
  struct statvfs brick_sv;
  ASSERT_EQ(::statvfs(brick_dir_.c_str(), &brick_sv), 0);
  EXPECT_EQ(sv.f_blocks, brick_sv.f_blocks);
  EXPECT_EQ(sv.f_namemax, 255u);
  // As another user, the kernel enforces permissions from the attributes mortar returns.
  std::ofstream(at("private")) << "secret";
  ASSERT_EQ(::chmod(at("private").c_str(), 0600), 0);
  std::string path = at("private");
  int child = in_child([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 9;
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd >= 0) return 1;
    return errno == EACCES ? 0 : 2;
  });
  EXPECT_EQ(child, 0);
}

TEST_F(FuseTest, FileCreatedByAnotherUserIsTheirs) {
  ASSERT_EQ(::chmod(mnt_.c_str(), 0777), 0);
  std::string path = at("theirs");
  int child = in_child([&] {
    if (::setgid(33) != 0 || ::setuid(33) != 0) return 9;
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    return fd >= 0 ? 0 : 1;
  });
  ASSERT_EQ(child, 0);
  struct stat st;
  ASSERT_EQ(::stat((brick_dir_ + "/theirs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 33u);
  EXPECT_EQ(st.st_gid, 33u);
}

class ReconnectTest : public FuseTest {
  std::string ping_timeout() override { return "1"; }
};

TEST_F(ReconnectTest, WriterCarriesOnAfterTheBrickRestarts) {
  int fd = ::open(at("journal").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "before;", 7, 0), 7);
  ASSERT_EQ(::fsync(fd), 0);

  brick_->kill9();
  // While the brick is away, calls fail quickly instead of hanging.
  auto start = std::chrono::steady_clock::now();
  ssize_t during = ::pwrite(fd, "lost;", 5, 7);
  int err = errno;
  if (during < 0) {
    EXPECT_EQ(err, ENOTCONN);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);

  ASSERT_TRUE(brick_->start());
  // The same descriptor works again once the client has reconnected and re-opened it.
  ASSERT_TRUE(eventually([&] { return ::pwrite(fd, "after;", 6, 7) == 6; }, 15s))
      << std::strerror(errno);
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_all(brick_dir_ + "/journal"), "before;after;");
  EXPECT_EQ(read_all(at("journal")), "before;after;");
}

TEST_F(FuseTest, UnmountWithFilesOpen) {
  int fd = ::open(at("open").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  DIR* d = ::opendir(mnt_.c_str());
  ASSERT_NE(d, nullptr);
  // A lazy unmount takes the mount out of the tree at once...
  ASSERT_TRUE(lazy_unmount(mnt_));
  EXPECT_FALSE(is_mortar_mount(mnt_));
  // ...while the files already open keep working...
  EXPECT_EQ(::pwrite(fd, "y", 1, 1), 1);
  char buf[2];
  EXPECT_EQ(::pread(fd, buf, 2, 0), 2);
  EXPECT_EQ(std::string(buf, 2), "xy");
  // ...and the daemon leaves once the last one is closed.
  ::close(fd);
  ::closedir(d);
  EXPECT_TRUE(eventually([&] { return !mount_->process().running(); }, 10s));
  EXPECT_EQ(read_all(brick_dir_ + "/open"), "xy");
}

class WritebackTest : public FuseTest {
  std::vector<std::string> mount_args() override {
    return {"-o", "writeback_cache,max_write=1MB,entry_timeout=5,attr_timeout=5"};
  }
};

TEST_F(WritebackTest, WritebackCacheKeepsDataAndAppends) {
  write_pattern(at("wb"), 8 << 20, 4096);
  write_pattern(dir_ / "ref", 8 << 20, 4096);
  EXPECT_EQ(sha256_file(at("wb")), sha256_file(dir_ / "ref"));
  {
    std::ofstream out(at("ap"), std::ios::app);
    out << "one\n";
  }
  {
    std::ofstream out(at("ap"), std::ios::app);
    out << "two\n";
  }
  EXPECT_EQ(read_all(at("ap")), "one\ntwo\n");
  EXPECT_EQ(read_all(brick_dir_ + "/ap"), "one\ntwo\n");
  // A write-only open still works although the kernel may read pages behind it.
  int fd = ::open(at("wo").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "abc", 3, 10), 3);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_all(at("wo")), std::string(10, '\0') + "abc");
}

}  // namespace
}  // namespace mortar::test
