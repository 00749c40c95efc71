// mortar-shd against real brick daemons: it heals by itself when a replica returns, and
// answers heal info and split-brain resolution on its control socket.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/rpc/client.h"
#include "proto/shd.pb.h"
#include "tests/support/brick.h"
#include "tests/support/replica_tree.h"
#include "translators/afr/afr.h"
#include "translators/graph.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using xl::afr::Replicate;

constexpr const char* kAddress = "127.0.0.22";

class ShdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      bricks_.push_back(std::make_unique<BrickDaemon>(
          kAddress, brick_dir(i), dir_ / ("brick" + std::to_string(i) + ".log"),
          std::vector<std::string>{}, "info"));
      ASSERT_TRUE(bricks_.back()->start());
    }
    std::vector<const BrickDaemon*> bricks{bricks_[0].get(), bricks_[1].get()};
    volfile_ = replicate_volfile(bricks);
    std::ofstream(dir_ / "vol.vol") << volfile_;
    client_ = start_graph(volfile_, io_.executor(), "shd-test-client");
    ASSERT_TRUE(client_);
    afr_ = dynamic_cast<Replicate*>(client_->top());
    ASSERT_TRUE(eventually([&] { return afr_->child_up(0) && afr_->child_up(1); }));
  }

  void TearDown() override {
    if (shd_.running()) {
      shd_.signal(SIGTERM);
      eventually([&] { return !shd_.running(); }, 10s);
    }
    control_.reset();
    client_.reset();
    bricks_.clear();
  }

  void start_shd() {
    shd_ = Process::spawn({bin("mortar-shd"), "--foreground", "--volfile", "vol=" + (dir_ / "vol.vol"),
                           "--control-socket", socket(), "--log-file", dir_ / "shd.log",
                           "--poll-ms", "100", "--index-check-ms", "500", "--dirty-grace-ms",
                           "1000", "--node-id", "test"});
    ASSERT_TRUE(eventually([&] { return fs::exists(socket()) || !shd_.running(); }));
    ASSERT_TRUE(shd_.running());
    rpc::RpcClient::Options o;
    o.host = socket();
    o.name = "shd";
    control_ = std::make_unique<rpc::RpcClient>(io_.executor(), o);
    control_->start();
    ASSERT_TRUE(io_.run(control_->wait_up(5s)));
  }

  template <class Rsp>
  Rsp call(pb::ShdProc proc, const google::protobuf::MessageLite& req) {
    auto reply = io_.run(control_->call(proc, req));
    Rsp rsp;
    EXPECT_TRUE(reply) << reply.error().message();
    if (reply) EXPECT_TRUE(rsp.ParseFromString(reply->message));
    return rsp;
  }
  pb::ShdInfoRsp info(pb::ShdInfoReq::Mode mode) {
    pb::ShdInfoReq req;
    req.set_volume("vol");
    req.set_mode(mode);
    return call<pb::ShdInfoRsp>(pb::SHD_INFO, req);
  }

  std::string socket() const { return dir_ / "shd.sock"; }
  std::string brick_dir(int i) const { return dir_ / ("b" + std::to_string(i)); }
  uint64_t pending() { return io_.run(afr_->pending_count()); }

  void put(const Gfid& parent, const std::string& name, const std::string& data) {
    pb::CreateReq req;
    req.set_parent(raw(parent));
    req.set_name(name);
    req.set_gfid(raw(Gfid::random()));
    req.set_mode(0644);
    req.set_flags(O_RDWR);
    auto c = io_.run(afr_->create(xl::OpContext{}, req));
    ASSERT_TRUE(c) << name << ": " << c.error().message();
    auto w = io_.run(afr_->write(xl::OpContext{}, c->fd, 0, Buffer::copy_of(data)));
    ASSERT_TRUE(w) << name << ": " << w.error().message();
    io_.run(afr_->release(c->fd));
  }
  Gfid lookup(const std::string& name) {
    auto a = io_.run(afr_->lookup(xl::OpContext{}, Gfid::root(), name));
    EXPECT_TRUE(a) << name;
    return a ? gfid_of(*a) : Gfid();
  }
  void overwrite(const Gfid& g, const std::string& data) {
    auto fd = io_.run(afr_->open(xl::OpContext{}, g, O_RDWR));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(io_.run(afr_->write(xl::OpContext{}, *fd, 0, Buffer::copy_of(data))));
    io_.run(afr_->release(*fd));
  }
  void down(int i) {
    bricks_[i]->kill9();
    ASSERT_TRUE(eventually([&] { return !afr_->child_up(i); }));
  }
  void up(int i) {
    ASSERT_TRUE(bricks_[i]->start());
    ASSERT_TRUE(eventually([&] { return afr_->child_up(i); }));
  }

  TempDir dir_{"mortar-shd"};
  IoThread io_{1};
  std::vector<std::unique_ptr<BrickDaemon>> bricks_;
  std::string volfile_;
  std::unique_ptr<xl::Graph> client_;
  Replicate* afr_ = nullptr;
  Process shd_;
  std::unique_ptr<rpc::RpcClient> control_;
};

TEST_F(ShdTest, HealsByItselfWhenAReplicaReturnsAndReportsPaths) {
  start_shd();
  down(1);
  for (int i = 0; i < 40; ++i) put(Gfid::root(), "page" + std::to_string(i) + ".html", pattern(3000, i));
  ASSERT_TRUE(eventually([&] { return pending() >= 40; }, 5s));

  // While the replica is away: its partner lists what it missed, by path.
  pb::ShdInfoRsp away = info(pb::ShdInfoReq::ALL);
  ASSERT_EQ(away.bricks_size(), 2);
  EXPECT_EQ(away.bricks(0).brick(), std::string(kAddress) + ":b0");
  EXPECT_TRUE(away.bricks(0).connected());
  EXPECT_GE(away.bricks(0).total(), 40u);
  bool named = false;
  for (const auto& e : away.bricks(0).entries()) named |= e.path() == "/page7.html";
  EXPECT_TRUE(named);
  EXPECT_FALSE(away.bricks(1).connected());
  EXPECT_EQ(away.bricks(1).status(), "Transport endpoint is not connected");

  // Back: nobody asks, the daemon heals.
  auto back = std::chrono::steady_clock::now();
  up(1);
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 20s)) << pending() << " still pending";
  auto took = std::chrono::steady_clock::now() - back;
  EXPECT_LT(took, 10s);
  auto t0 = brick_tree(brick_dir(0)), t1 = brick_tree(brick_dir(1));
  EXPECT_EQ(t0, t1);
  EXPECT_EQ(t1["/page7.html"].content, pattern(3000, 7));

  pb::ShdInfoReq req;
  req.set_volume("vol");
  auto st = call<pb::ShdInfoRsp>(pb::SHD_STATS, req).stats();
  EXPECT_GE(st.healed(), 40u);
  EXPECT_GE(st.bytes_healed(), 40u * 3000);
  pb::ShdInfoRsp summary = info(pb::ShdInfoReq::SUMMARY);
  ASSERT_EQ(summary.bricks_size(), 2);
  EXPECT_EQ(summary.bricks(0).total(), 0u);
  EXPECT_EQ(summary.bricks(1).total(), 0u);
}

TEST_F(ShdTest, SplitBrainIsListedNotHealedAndResolvedOnRequest) {
  put(Gfid::root(), "page.html", "v1");
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  Gfid g = lookup("page.html");
  down(1);
  overwrite(g, "the left side, longer");
  down(0);
  up(1);
  overwrite(g, "right");
  up(0);

  start_shd();
  // The daemon tries, refuses, and lists it.
  ASSERT_TRUE(eventually(
      [&] {
        auto sb = info(pb::ShdInfoReq::SPLIT_BRAIN);
        return sb.bricks_size() == 2 && sb.bricks(0).entries_size() == 1;
      },
      10s));
  auto sb = info(pb::ShdInfoReq::SPLIT_BRAIN);
  EXPECT_EQ(sb.bricks(0).entries(0).path(), "/page.html");
  EXPECT_EQ(sb.bricks(0).entries(0).state(), pb::ShdEntry::SPLIT_BRAIN);
  EXPECT_EQ(sb.bricks(0).split_brain(), 1u);
  EXPECT_NE(brick_tree(brick_dir(0))["/page.html"].content,
            brick_tree(brick_dir(1))["/page.html"].content);

  pb::ShdResolveReq wrong;
  wrong.set_volume("vol");
  wrong.set_choice("bigger-file");
  wrong.set_file("/no-such-file");
  auto missing = call<pb::ShdResolveRsp>(pb::SHD_RESOLVE, wrong);
  ASSERT_EQ(missing.lines_size(), 1);
  EXPECT_EQ(missing.lines(0), "Healing /no-such-file failed: No such file or directory.");

  pb::ShdResolveReq req;
  req.set_volume("vol");
  req.set_choice("source-brick");
  req.set_source_brick(std::string(kAddress) + ":b0");
  req.set_file("/page.html");
  auto done = call<pb::ShdResolveRsp>(pb::SHD_RESOLVE, req);
  EXPECT_EQ(done.error(), "");
  ASSERT_EQ(done.lines_size(), 1);
  EXPECT_EQ(done.lines(0), "Healed /page.html.");
  EXPECT_EQ(brick_tree(brick_dir(1))["/page.html"].content, "the left side, longer");
  EXPECT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  // Resolving again: nothing to do.
  auto again = call<pb::ShdResolveRsp>(pb::SHD_RESOLVE, req);
  ASSERT_EQ(again.lines_size(), 1);
  EXPECT_EQ(again.lines(0), "Healing /page.html failed: File not in split-brain.");
}

TEST_F(ShdTest, FullHealRebuildsAReplacedDisk) {
  for (int i = 0; i < 10; ++i) put(Gfid::root(), "f" + std::to_string(i), pattern(100 + i, i));
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 5s));
  bricks_[1]->kill9();
  fs::remove_all(brick_dir(1));
  fs::create_directories(brick_dir(1));
  ASSERT_TRUE(bricks_[1]->start());
  ASSERT_TRUE(eventually([&] { return afr_->child_up(1); }));
  start_shd();
  pb::ShdHealReq req;
  req.set_volume("vol");
  req.set_full(true);
  EXPECT_EQ(call<pb::ShdHealRsp>(pb::SHD_HEAL, req).error(), "");
  ASSERT_TRUE(eventually([&] { return brick_tree(brick_dir(1)).size() == 10; }, 20s));
  ASSERT_TRUE(eventually([&] { return pending() == 0; }, 20s));
  EXPECT_EQ(brick_tree(brick_dir(0)), brick_tree(brick_dir(1)));
}

}  // namespace
}  // namespace mortar::test
