// The CLI's blocking client against a scripted server speaking the frame protocol.
#include "cli/mgmt_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "common/rpc/frame.h"

namespace mortar::cli {
namespace {

using namespace std::chrono_literals;

// One listening socket and the one connection a test accepts on it; blocking I/O on a thread.
class FakeMgmtd {
 public:
  static FakeMgmtd unix_socket(const std::string& path) {
    FakeMgmtd f;
    f.listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    EXPECT_EQ(::bind(f.listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(f.listen_.get(), 4), 0);
    return f;
  }
  static FakeMgmtd tcp() {
    FakeMgmtd f;
    f.listen_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(f.listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(f.listen_.get(), 4), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(f.listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    f.port_ = ntohs(addr.sin_port);
    return f;
  }

  uint16_t port() const { return port_; }
  void accept() { conn_.reset(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC)); }

  // The next frame, or nullopt when the client closed.
  std::optional<rpc::Frame> read() {
    std::array<char, rpc::kHeaderSize> head;
    if (!read_exact(head.data(), head.size())) return std::nullopt;
    auto h = rpc::decode_header(head, rpc::Limits{});
    if (!h) return std::nullopt;
    rpc::Frame f;
    f.header = *h;
    f.message.resize(h->message_len);
    if (!read_exact(f.message.data(), f.message.size())) return std::nullopt;
    return f;
  }
  void write(const rpc::OutFrame& f) {
    ASSERT_EQ(::send(conn_.get(), f.head.data(), f.head.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(f.head.size()));
  }
  void close() { conn_.reset(); }

 private:
  bool read_exact(char* p, size_t n) {
    while (n > 0) {
      ssize_t got = ::recv(conn_.get(), p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  UniqueFd listen_;
  UniqueFd conn_;
  uint16_t port_ = 0;
};

class CliMgmtClient : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mortar-cli-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/mgmtd.sock";
  }
  void TearDown() override {
    if (server_.joinable()) server_.join();
    std::filesystem::remove_all(dir_);
  }

  // Runs `script` on a server thread against the one connection the client makes. The fake
  // lives in the fixture, so it outlives the thread (joined in TearDown).
  void serve(FakeMgmtd fake, std::function<void(FakeMgmtd&)> script) {
    fake_.emplace(std::move(fake));
    server_ = std::thread([this, script = std::move(script)] {
      fake_->accept();
      script(*fake_);
    });
  }

  Endpoint unix_endpoint() const {
    Endpoint e;
    e.unix_path = path_;
    return e;
  }

  static pb::CliReq info_request(const std::string& name) {
    pb::CliReq req;
    req.mutable_volume_info()->set_name(name);
    return req;
  }

  std::string dir_;
  std::string path_;
  std::optional<FakeMgmtd> fake_;
  std::thread server_;
};

TEST_F(CliMgmtClient, CallsOverTheUnixSocketAndSkipsFramesNotForIt) {
  serve(FakeMgmtd::unix_socket(path_), [](FakeMgmtd& f) {
    auto call = f.read();
    ASSERT_TRUE(call);
    EXPECT_EQ(call->header.kind, rpc::Kind::kCall);
    EXPECT_EQ(call->header.proc, static_cast<uint32_t>(pb::CLI));
    pb::CliReq req;
    ASSERT_TRUE(req.ParseFromString(call->message));
    EXPECT_EQ(req.volume_info().name(), "webData");
    pb::CliRsp other;
    other.set_error("not yours");
    f.write(rpc::make_frame(rpc::Kind::kEvent, 0, 1, 0, &other));
    f.write(rpc::make_frame(rpc::Kind::kReply, call->header.xid + 100, 0, 0, &other));
    pb::CliRsp rsp;
    rsp.add_volumes()->set_name("webData");
    f.write(rpc::make_frame(rpc::Kind::kReply, call->header.xid, 0, 0, &rsp));
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn) << conn.error().message;
  auto rsp = conn->call(info_request("webData"), 5s);
  ASSERT_TRUE(rsp) << rsp.error().message;
  EXPECT_EQ(rsp->error(), "");
  ASSERT_EQ(rsp->volumes_size(), 1);
  EXPECT_EQ(rsp->volumes(0).name(), "webData");
}

TEST_F(CliMgmtClient, CallsOverTcp) {
  FakeMgmtd fake = FakeMgmtd::tcp();
  const uint16_t port = fake.port();
  serve(std::move(fake), [](FakeMgmtd& f) {
    auto call = f.read();
    ASSERT_TRUE(call);
    pb::CliRsp rsp;
    rsp.set_message("hello");
    f.write(rpc::make_frame(rpc::Kind::kReply, call->header.xid, 0, 0, &rsp));
  });
  Endpoint e;
  e.host = "127.0.0.1";
  e.port = port;
  auto conn = MgmtConnection::connect(e, 1s);
  ASSERT_TRUE(conn) << conn.error().message;
  auto rsp = conn->call(info_request(""), 5s);
  ASSERT_TRUE(rsp) << rsp.error().message;
  EXPECT_EQ(rsp->message(), "hello");
}

TEST_F(CliMgmtClient, AnErrnoFromTheServerIsAServerError) {
  serve(FakeMgmtd::unix_socket(path_), [](FakeMgmtd& f) {
    auto call = f.read();
    ASSERT_TRUE(call);
    f.write(rpc::make_frame(rpc::Kind::kReply, call->header.xid, 0, EPERM, nullptr));
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn);
  auto rsp = conn->call(info_request(""), 5s);
  ASSERT_FALSE(rsp);
  EXPECT_EQ(rsp.error().kind, CallError::Kind::kServer);
  EXPECT_EQ(rsp.error().err, EPERM);
  EXPECT_EQ(rsp.error().message, "Operation not permitted");
}

TEST_F(CliMgmtClient, PingsWhileWaitingAndTimesOut) {
  int pings = 0;
  serve(FakeMgmtd::unix_socket(path_), [&pings](FakeMgmtd& f) {
    ASSERT_TRUE(f.read());
    // Count pings until the client gives up and closes.
    while (auto frame = f.read()) {
      if (frame->header.kind == rpc::Kind::kPing) ++pings;
    }
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn);
  auto start = std::chrono::steady_clock::now();
  auto rsp = conn->call(info_request(""), 400ms, 50ms);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(rsp);
  EXPECT_EQ(rsp.error().kind, CallError::Kind::kTimeout);
  EXPECT_EQ(rsp.error().err, ETIMEDOUT);
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 3s);
  conn = std::unexpected(CallError{});  // closes the connection: the server thread ends
  server_.join();
  EXPECT_GE(pings, 3);
}

TEST_F(CliMgmtClient, AnswersTheServersPing) {
  serve(FakeMgmtd::unix_socket(path_), [](FakeMgmtd& f) {
    auto call = f.read();
    ASSERT_TRUE(call);
    f.write(rpc::make_frame(rpc::Kind::kPing, 77, 0, 0, nullptr));
    auto pong = f.read();
    ASSERT_TRUE(pong);
    EXPECT_EQ(pong->header.kind, rpc::Kind::kPong);
    EXPECT_EQ(pong->header.xid, 77u);
    pb::CliRsp rsp;
    f.write(rpc::make_frame(rpc::Kind::kReply, call->header.xid, 0, 0, &rsp));
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn);
  auto rsp = conn->call(info_request(""), 5s);
  EXPECT_TRUE(rsp) << rsp.error().message;
}

TEST_F(CliMgmtClient, AClosedConnectionIsLost) {
  serve(FakeMgmtd::unix_socket(path_), [](FakeMgmtd& f) {
    ASSERT_TRUE(f.read());
    f.close();
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn);
  auto rsp = conn->call(info_request(""), 5s);
  ASSERT_FALSE(rsp);
  EXPECT_EQ(rsp.error().kind, CallError::Kind::kLost);
  EXPECT_EQ(rsp.error().message, "connection to mortar-mgmtd lost: Connection reset by peer");
}

TEST_F(CliMgmtClient, GarbageIsLost) {
  serve(FakeMgmtd::unix_socket(path_), [](FakeMgmtd& f) {
    ASSERT_TRUE(f.read());
    rpc::OutFrame junk;
    junk.head = std::string(rpc::kHeaderSize, 'x');
    f.write(junk);
  });
  auto conn = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_TRUE(conn);
  auto rsp = conn->call(info_request(""), 5s);
  ASSERT_FALSE(rsp);
  EXPECT_EQ(rsp.error().kind, CallError::Kind::kLost);
  EXPECT_EQ(rsp.error().err, EPROTO);
}

TEST_F(CliMgmtClient, ConnectFailures) {
  auto missing = MgmtConnection::connect(unix_endpoint(), 1s);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, CallError::Kind::kConnect);
  EXPECT_EQ(missing.error().err, ENOENT);
  EXPECT_EQ(missing.error().message, "cannot connect to " + path_ + ": No such file or directory");

  uint16_t closed_port = FakeMgmtd::tcp().port();  // bound, then closed again
  Endpoint e;
  e.host = "127.0.0.1";
  e.port = closed_port;
  auto refused = MgmtConnection::connect(e, 1s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, CallError::Kind::kConnect);
  EXPECT_EQ(refused.error().err, ECONNREFUSED);

  e.host = "no-such-host.invalid";
  auto unresolved = MgmtConnection::connect(e, 1s);
  ASSERT_FALSE(unresolved);
  EXPECT_EQ(unresolved.error().kind, CallError::Kind::kConnect);
  EXPECT_EQ(unresolved.error().message.rfind("cannot resolve no-such-host.invalid: ", 0), 0u);
}

TEST(CliEndpoint, RemoteHostThenSocketThenEnvironmentThenDefault) {
  GlobalOptions o;
  EXPECT_EQ(endpoint_for(o, nullptr).describe(), "/run/mortar/mgmtd.sock");
  EXPECT_EQ(endpoint_for(o, "").describe(), "/run/mortar/mgmtd.sock");
  EXPECT_EQ(endpoint_for(o, "/tmp/env.sock").describe(), "/tmp/env.sock");
  o.socket = "/tmp/opt.sock";
  EXPECT_EQ(endpoint_for(o, "/tmp/env.sock").describe(), "/tmp/opt.sock");
  o.remote_host = "h1";
  Endpoint e = endpoint_for(o, "/tmp/env.sock");
  EXPECT_EQ(e.host, "h1");
  EXPECT_EQ(e.port, 24007);
  EXPECT_EQ(e.describe(), "h1:24007");
  o.remote_host = "::1";
  o.remote_port = 24010;
  EXPECT_EQ(endpoint_for(o, nullptr).describe(), "[::1]:24010");
}

}  // namespace
}  // namespace mortar::cli
