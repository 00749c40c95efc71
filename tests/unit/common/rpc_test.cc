// The RPC layer end to end over loopback, in one process: many calls in flight, deadlines,
// errors, events, a server that goes away and comes back, and a server that hangs.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <mutex>
#include <thread>

#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "proto/brick.pb.h"
#include "tests/support/process.h"

namespace mortar::rpc {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr uint32_t kEcho = 1;
constexpr uint32_t kNeverAnswer = 2;
constexpr uint32_t kEventThenAnswer = 3;
constexpr uint32_t kFailNoent = 4;

class TestService : public ServiceHandler {
 public:
  void on_call(const ConnectionPtr& conn, Frame frame) override {
    ++calls;
    pb::ReadlinkRsp rsp;
    switch (frame.header.proc) {
      case kEcho: {
        pb::ReadlinkReq req;
        req.ParseFromString(frame.message);
        rsp.set_target(std::string(req.gfid()));
        // Answer from another thread, as the brick's thread pool does.
        std::thread([conn, xid = frame.header.xid, rsp, data = frame.data] {
          conn->reply(xid, rsp, data);
        }).detach();
        break;
      }
      case kNeverAnswer:
        break;
      case kEventThenAnswer:
        rsp.set_target("event");
        conn->send_event(42, rsp);
        conn->reply(frame.header.xid, pb::Empty());
        break;
      case kFailNoent:
        conn->reply_error(frame.header.xid, Errno(ENOENT));
        break;
    }
  }
  void on_close(const ConnectionPtr&) override { ++closes; }
  std::atomic<int> calls{0};
  std::atomic<int> closes{0};
};

struct ServerFixture {
  explicit ServerFixture(uint16_t port = 0) : server(io, service, RpcServer::Options{}) {
    auto p = server.listen("127.0.0.1", port);
    EXPECT_TRUE(p.has_value());
    bound = *p;
    thread = std::thread([this] { io.run(); });
  }
  ~ServerFixture() {
    asio::post(io, [this] { server.stop(); });
    std::this_thread::sleep_for(20ms);
    io.stop();
    thread.join();
  }
  asio::io_context io;
  TestService service;
  RpcServer server;
  uint16_t bound = 0;
  std::thread thread;
};

RpcClient::Options client_options(uint16_t port) {
  RpcClient::Options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.ping_timeout = 500ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 100ms;
  return o;
}

asio::awaitable<Result<std::string>> echo(RpcClient& c, std::string text, std::string data) {
  pb::ReadlinkReq req;
  req.set_gfid(text);
  auto r = co_await c.call(kEcho, req, Buffer::copy_of(data));
  if (!r) co_return fail(r.error());
  pb::ReadlinkRsp rsp;
  if (!rsp.ParseFromString(r->message)) co_return fail(EPROTO);
  co_return rsp.target() + "|" + std::string(r->data.view());
}

TEST(Rpc, ManyCallsInFlightOnOneConnection) {
  ServerFixture server;
  test::IoThread io;
  RpcClient client(io.executor(), client_options(server.bound));
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));

  constexpr int kCalls = 500;
  std::atomic<int> good{0};
  std::vector<std::future<void>> done;
  for (int i = 0; i < kCalls; ++i) {
    done.push_back(asio::co_spawn(
        io.io(),
        [&, i]() -> asio::awaitable<void> {
          auto r = co_await echo(client, "m" + std::to_string(i), std::string(i * 37, 'x'));
          if (r && *r == "m" + std::to_string(i) + "|" + std::string(i * 37, 'x')) ++good;
        },
        asio::use_future));
  }
  for (auto& f : done) f.get();
  EXPECT_EQ(good.load(), kCalls);
  client.stop();
}

TEST(Rpc, ErrorsTravelAsErrno) {
  ServerFixture server;
  test::IoThread io;
  RpcClient client(io.executor(), client_options(server.bound));
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));
  auto r = io.run(client.call(kFailNoent, pb::Empty()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOENT);
  client.stop();
}

TEST(Rpc, CallPastItsDeadlineFailsWithEtimedout) {
  ServerFixture server;
  test::IoThread io;
  RpcClient client(io.executor(), client_options(server.bound));
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));
  CallOptions co;
  co.deadline = std::chrono::steady_clock::now() + 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = io.run(client.call(kNeverAnswer, pb::Empty(), {}, co));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // The connection itself stays up: pings keep flowing.
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(client.is_up());
  client.stop();
}

TEST(Rpc, EventsReachTheListener) {
  ServerFixture server;
  test::IoThread io;
  RpcClient client(io.executor(), client_options(server.bound));
  std::mutex mu;
  std::vector<std::pair<uint32_t, std::string>> events;
  client.set_event_listener([&](uint32_t proc, std::string msg) {
    std::lock_guard lock(mu);
    events.emplace_back(proc, std::move(msg));
  });
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));
  ASSERT_TRUE(io.run(client.call(kEventThenAnswer, pb::Empty())));
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, 42u);
  pb::ReadlinkRsp rsp;
  ASSERT_TRUE(rsp.ParseFromString(events[0].second));
  EXPECT_EQ(rsp.target(), "event");
  client.stop();
}

TEST(Rpc, NoServerMeansEnotconnAtOnce) {
  uint16_t port = test::free_port("127.0.0.1");
  test::IoThread io;
  RpcClient client(io.executor(), client_options(port));
  client.start();
  auto start = std::chrono::steady_clock::now();
  auto r = io.run(client.call(kEcho, pb::Empty()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOTCONN);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  client.stop();
}

TEST(Rpc, ReconnectsWhenTheServerReturns) {
  uint16_t port = test::free_port("127.0.0.1");
  test::IoThread io;
  RpcClient client(io.executor(), client_options(port));
  std::atomic<int> ups{0}, downs{0};
  client.set_state_listener([&](bool up) { up ? ++ups : ++downs; });
  client.start();
  {
    ServerFixture server(port);
    ASSERT_TRUE(io.run(client.wait_up(5s)));
    ASSERT_TRUE(io.run(echo(client, "a", "")));
  }
  EXPECT_TRUE(test::eventually([&] { return !client.is_up(); }, 3s));
  auto r = io.run(echo(client, "b", ""));
  EXPECT_EQ(r.error().value, ENOTCONN);
  {
    ServerFixture server(port);
    ASSERT_TRUE(io.run(client.wait_up(5s)));
    auto again = io.run(echo(client, "c", "d"));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, "c|d");
  }
  EXPECT_GE(ups.load(), 2);
  EXPECT_GE(downs.load(), 1);
  client.stop();
}

TEST(Rpc, PendingCallsFailWhenTheConnectionDrops) {
  uint16_t port = test::free_port("127.0.0.1");
  test::IoThread io;
  RpcClient client(io.executor(), client_options(port));
  client.start();
  std::future<Result<Reply>> pending;
  {
    ServerFixture server(port);
    ASSERT_TRUE(io.run(client.wait_up(5s)));
    pending = asio::co_spawn(io.io(), client.call(kNeverAnswer, pb::Empty()), asio::use_future);
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(pending.wait_for(3s), std::future_status::ready);
  auto r = pending.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOTCONN);
  client.stop();
}

TEST(Rpc, SilentServerIsDeclaredDeadWithinThePingTimeout) {
  // A listener that accepts and then never reads or writes: a hung brick.
  asio::io_context sio;
  asio::ip::tcp::acceptor acceptor(sio, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket held(sio);
  std::thread accept_thread([&] { acceptor.accept(held); });

  test::IoThread io;
  auto options = client_options(acceptor.local_endpoint().port());
  RpcClient client(io.executor(), options);
  // Without a handshake the connection is up as soon as TCP connects.
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));
  auto start = std::chrono::steady_clock::now();
  auto r = io.run(client.call(kEcho, pb::Empty()));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, ENOTCONN);
  EXPECT_LT(waited, options.ping_timeout + 1s);
  client.stop();
  accept_thread.join();
}

TEST(Rpc, OversizeRequestIsRefusedLocally) {
  ServerFixture server;
  test::IoThread io;
  auto options = client_options(server.bound);
  options.limits.max_data = 1024;
  RpcClient client(io.executor(), options);
  client.start();
  ASSERT_TRUE(io.run(client.wait_up(5s)));
  auto r = io.run(client.call(kEcho, pb::Empty(), Buffer::allocate(2048)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, EMSGSIZE);
  EXPECT_EQ(server.service.calls.load(), 0);
  client.stop();
}

}  // namespace
}  // namespace mortar::rpc
