// RPC client for the brick protocol framing: one TCP connection carrying many calls in flight,
// a deadline per call, keepalive pings, and reconnection with backoff. Calls while the peer is
// away fail at once with ENOTCONN instead of waiting: the layers above decide what to do.
//
// Thread-safe: every public member may be called from any thread or coroutine.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/buffer.h"
#include "common/result.h"
#include "common/rpc/frame.h"

namespace google::protobuf {
class MessageLite;
}

namespace mortar::rpc {

struct Reply {
  std::string message;  // the procedure's answer, serialised
  Buffer data;          // data tail, if any
};

struct CallOptions {
  std::chrono::steady_clock::time_point deadline{};  // default: now + the client's call_timeout
  // Allowed before the connection is up: only for calls made by the connect hook.
  bool setup = false;
};

class RpcClient {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::milliseconds;

  struct Options {
    std::string host;
    uint16_t port = 0;
    // The peer is declared dead after this long without any frame from it; pings go out at a
    // third of it, so an idle healthy peer always answers in time.
    Duration ping_timeout{3000};
    Duration connect_timeout{3000};
    Duration call_timeout{60000};  // deadline of a call that names none
    Duration reconnect_min{100};
    Duration reconnect_max{2000};
    bool reconnect = true;
    Limits limits;
    std::string name;  // for log lines; defaults to host:port
    // Local address to connect from (TCP), so the peer sees which server this is even when
    // several servers share a machine on 127.0.0.x; empty: the kernel's choice.
    std::string source_address;
  };

  using CallOptions = rpc::CallOptions;

  // Runs on every new connection before it counts as up (handshake, re-opening files). Its
  // calls must set CallOptions::setup. A failure closes the connection and retries later.
  using ConnectHook = std::function<boost::asio::awaitable<Result<void>>()>;
  // Told when the connection comes up (after the hook) and when it goes down. Listeners run
  // on the client's strand and may run after stop(): capture weak references.
  using StateListener = std::function<void(bool up)>;
  using EventListener = std::function<void(uint32_t proc, std::string message)>;

  RpcClient(boost::asio::any_io_executor executor, Options options);
  ~RpcClient();  // stops
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Listeners and hook are set before start().
  void set_connect_hook(ConnectHook hook);
  void set_state_listener(StateListener listener);
  void set_event_listener(EventListener listener);

  void start();
  // Closes the connection, fails pending calls with ENOTCONN, and stops reconnecting.
  void stop();

  // ENOTCONN when not connected, ETIMEDOUT past the deadline, EMSGSIZE over the limits, EPROTO
  // for a malformed answer; otherwise the errno the peer answered, or its reply. `request` is
  // serialised before call() returns, so it need not outlive the returned awaitable.
  boost::asio::awaitable<Result<Reply>> call(uint32_t proc,
                                             const google::protobuf::MessageLite& request,
                                             Buffer data = {}, CallOptions options = {});

  bool is_up() const;
  // Waits until the connection is up or `timeout` passes; returns is_up().
  boost::asio::awaitable<bool> wait_up(Duration timeout);
  const Options& options() const;

 private:
  struct Impl;
  static boost::asio::awaitable<Result<Reply>> send_frame(std::shared_ptr<Impl> impl,
                                                          OutFrame frame, CallOptions options);
  std::shared_ptr<Impl> impl_;
};

}  // namespace mortar::rpc
