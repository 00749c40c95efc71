// BrickFs on a real directory, without the network. Needs root (trusted.* xattrs and file
// handles), as the brick daemon does.
#include "brickd/brick_fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/protocol.h"
#include "tests/support/process.h"

namespace mortar::brickd {
namespace {

namespace fs = std::filesystem;

class BrickFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    brick_ = dir_ / "brick";
    fs::create_directories(brick_);
    reopen();
  }
  void reopen(bool rebuild = false) {
    fs_.reset();
    auto opened = BrickFs::open({brick_, "vol", rebuild});
    ASSERT_TRUE(opened) << opened.error().message();
    fs_ = std::move(*opened);
  }
  pb::Iatt mkfile(const Gfid& parent, const std::string& name, Gfid gfid = Gfid::random()) {
    pb::CreateReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    req.set_gfid(std::string(gfid.bytes()));
    req.set_mode(0644);
    req.set_flags(O_RDWR);
    req.set_uid(1000);
    req.set_gid(1000);
    auto created = fs_->create(req);
    EXPECT_TRUE(created) << created.error().message();
    return created ? created->attr : pb::Iatt();
  }
  Gfid mkdir(const Gfid& parent, const std::string& name) {
    Gfid g = Gfid::random();
    pb::MkdirReq req;
    req.set_parent(std::string(parent.bytes()));
    req.set_name(name);
    req.set_gfid(std::string(g.bytes()));
    req.set_mode(0755);
    EXPECT_TRUE(fs_->mkdir(req));
    return g;
  }

  test::TempDir dir_;
  std::string brick_;
  std::unique_ptr<BrickFs> fs_;
};

TEST_F(BrickFsTest, ClaimsTheBrickForOneVolume) {
  char value[64];
  ssize_t n = ::getxattr(brick_.c_str(), kVolumeXattr, value, sizeof value);
  ASSERT_EQ(n, 3);
  EXPECT_EQ(std::string(value, 3), "vol");
  fs_.reset();
  auto other = BrickFs::open({brick_, "other", false});
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().value, EEXIST);
}

TEST_F(BrickFsTest, RefusesAMissingDirectory) {
  auto r = BrickFs::open({dir_ / "nope", "vol", false});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOENT);
}

TEST_F(BrickFsTest, CreatedFilesArePlainFilesWithTheirGfid) {
  Gfid g = Gfid::random();
  auto attr = mkfile(Gfid::root(), "index.html", g);
  EXPECT_EQ(attr.gfid(), g.bytes());
  EXPECT_EQ(attr.uid(), 1000u);
  EXPECT_EQ(attr.mode() & 07777, 0644u);
  struct stat st;
  ASSERT_EQ(::stat((brick_ + "/index.html").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  char raw[16];
  ASSERT_EQ(::getxattr((brick_ + "/index.html").c_str(), kGfidXattr, raw, 16), 16);
  EXPECT_EQ(std::string(raw, 16), g.bytes());
  auto looked = fs_->lookup(Gfid::root(), "index.html");
  ASSERT_TRUE(looked);
  EXPECT_EQ(looked->gfid(), g.bytes());
}

TEST_F(BrickFsTest, GfidsSurviveALostIndex) {
  Gfid sub = mkdir(Gfid::root(), "sub");
  auto attr = mkfile(sub, "f");
  Gfid g = *Gfid::from_bytes(attr.gfid());
  fs_.reset();
  fs::remove_all(brick_ + "/.mortar/meta");
  reopen();
  // Addressable by GFID straight away: the index was rebuilt from the files.
  auto got = fs_->getattr(g);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->gfid(), g.bytes());
  EXPECT_TRUE(fs_->getattr(sub));
  auto looked = fs_->lookup(sub, "f");
  ASSERT_TRUE(looked);
  EXPECT_EQ(looked->gfid(), g.bytes());
}

TEST_F(BrickFsTest, FilesPutOnTheBrickBehindItsBackGetAGfid) {
  std::ofstream(brick_ + "/foreign") << "hello";
  auto a = fs_->lookup(Gfid::root(), "foreign");
  ASSERT_TRUE(a);
  auto b = fs_->lookup(Gfid::root(), "foreign");
  ASSERT_TRUE(b);
  EXPECT_EQ(a->gfid(), b->gfid());
  EXPECT_FALSE(Gfid::from_bytes(a->gfid())->is_null());
}

TEST_F(BrickFsTest, ACopiedGfidIsNotTakenForTheOriginal) {
  auto attr = mkfile(Gfid::root(), "original");
  // An operator copies the file with its xattrs: two inodes now carry one GFID.
  std::ofstream(brick_ + "/copy") << "x";
  ASSERT_EQ(::setxattr((brick_ + "/copy").c_str(), kGfidXattr, attr.gfid().data(), 16, 0), 0);
  auto copy = fs_->lookup(Gfid::root(), "copy");
  ASSERT_FALSE(copy);
  EXPECT_EQ(copy.error().value, EIO);
  auto original = fs_->lookup(Gfid::root(), "original");
  ASSERT_TRUE(original);
}

TEST_F(BrickFsTest, ReservedNamesAndXattrs) {
  EXPECT_EQ(fs_->lookup(Gfid::root(), ".mortar").error().value, ENOENT);
  pb::MkdirReq req;
  req.set_parent(std::string(Gfid::root().bytes()));
  req.set_name(".mortar");
  req.set_gfid(std::string(Gfid::random().bytes()));
  EXPECT_EQ(fs_->mkdir(req).error().value, EPERM);
  // Below the root, ".mortar" is an ordinary name.
  Gfid sub = mkdir(Gfid::root(), "sub");
  mkfile(sub, ".mortar");
  auto attr = mkfile(Gfid::root(), "f");
  Gfid g = *Gfid::from_bytes(attr.gfid());
  EXPECT_EQ(fs_->getxattr(g, -1, kGfidXattr).error().value, ENODATA);
  EXPECT_EQ(fs_->setxattr(g, -1, "trusted.mortar.x", "1", 0).error().value, EPERM);
  EXPECT_EQ(fs_->removexattr(g, -1, kGfidXattr).error().value, EPERM);
  ASSERT_TRUE(fs_->setxattr(g, -1, "user.color", "blue", 0));
  auto names = fs_->listxattr(g, -1);
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{"user.color"});
  // The root listing never shows the brick's own directory.
  auto fd = fs_->opendir(Gfid::root());
  ASSERT_TRUE(fd);
  auto list = fs_->readdir(fd->get(), Gfid::root(), 0, 65536, true);
  ASSERT_TRUE(list);
  for (const auto& e : list->entries()) EXPECT_NE(e.name(), ".mortar");
}

TEST_F(BrickFsTest, CreateInheritsSetgidGroup) {
  Gfid shared = mkdir(Gfid::root(), "shared");
  ASSERT_EQ(::chown((brick_ + "/shared").c_str(), 0, 2000), 0);
  ASSERT_EQ(::chmod((brick_ + "/shared").c_str(), 02775), 0);
  auto attr = mkfile(shared, "f");
  EXPECT_EQ(attr.gid(), 2000u);
  EXPECT_EQ(attr.uid(), 1000u);
}

TEST_F(BrickFsTest, SetuidBitSurvivesOwnershipHandover) {
  pb::CreateReq req;
  req.set_parent(std::string(Gfid::root().bytes()));
  req.set_name("tool");
  req.set_gfid(std::string(Gfid::random().bytes()));
  req.set_mode(04755);
  req.set_flags(O_WRONLY);
  req.set_uid(1000);
  req.set_gid(1000);
  auto created = fs_->create(req);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->attr.mode() & 07777, 04755u);
}

}  // namespace
}  // namespace mortar::brickd
