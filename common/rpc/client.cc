#include "common/rpc/client.h"

#include <google/protobuf/message_lite.h>

#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <functional>
#include <unordered_map>

#include "common/log.h"
#include "common/rpc/asio.h"
#include "common/rpc/stream.h"

namespace mortar::rpc {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

// Completes one call: resumes its caller on the caller's own executor.
using ReplyHandler = std::move_only_function<void(Result<Reply>)>;

struct RpcClient::Impl : std::enable_shared_from_this<Impl> {
  enum class State { kIdle, kConnecting, kHandshaking, kUp, kStopped };

  struct Pending {
    ReplyHandler handler;
    Clock::time_point deadline;
  };

  Impl(asio::any_io_executor ex, Options o)
      : strand(asio::make_strand(ex)),
        options(std::move(o)),
        tick_timer(strand),
        closed_signal(strand),
        backoff_timer(strand) {
    if (options.name.empty()) options.name = options.host + ":" + std::to_string(options.port);
  }

  asio::any_io_executor strand;
  Options options;
  ConnectHook hook;
  StateListener state_listener;
  EventListener event_listener;

  // Everything below is touched only on `strand`, except `up`.
  State state = State::kIdle;
  std::shared_ptr<FrameStream> stream;
  uint64_t next_xid = 1;
  std::unordered_map<uint64_t, Pending> pending;
  asio::steady_timer tick_timer;
  asio::steady_timer closed_signal;  // cancelled when the current connection's reader ends
  asio::steady_timer backoff_timer;
  Clock::time_point last_rx{};
  Clock::time_point last_ping{};
  std::atomic<bool> up{false};

  Duration ping_interval() const { return std::max(options.ping_timeout / 3, Duration(10)); }

  static void complete(ReplyHandler handler, Result<Reply> result) { handler(std::move(result)); }

  void fail_all(Errno err) {
    auto failed = std::move(pending);
    pending.clear();
    for (auto& [xid, p] : failed) complete(std::move(p.handler), fail(err));
  }

  void start_call(OutFrame frame, CallOptions co, ReplyHandler handler) {
    bool allowed = state == State::kUp || (co.setup && state == State::kHandshaking);
    if (!allowed || !stream || !stream->is_open()) {
      complete(std::move(handler), fail(ENOTCONN));
      return;
    }
    uint64_t xid = next_xid++;
    set_xid(frame, xid);
    auto deadline =
        co.deadline == Clock::time_point{} ? Clock::now() + options.call_timeout : co.deadline;
    pending.emplace(xid, Pending{std::move(handler), deadline});
    stream->send(std::move(frame));
  }

  // A host starting with '/' is a Unix-domain socket path.
  asio::awaitable<Result<stream_socket>> connect_once() {
    asio::steady_timer timer(strand, options.connect_timeout);
    if (options.host.starts_with("/")) {
      stream_socket socket(strand);
      stream_protocol::endpoint ep(asio::local::stream_protocol::endpoint(options.host));
      auto result =
          co_await (socket.async_connect(ep, use_nothrow) || timer.async_wait(use_nothrow));
      if (result.index() == 1) co_return fail(ETIMEDOUT);
      auto [ec] = std::get<0>(result);
      if (ec) co_return fail(to_errno(ec));
      co_return std::move(socket);
    }
    tcp::resolver resolver(strand);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(options.host, std::to_string(options.port), use_nothrow);
    if (rec) co_return fail(EHOSTUNREACH);
    tcp::socket socket(strand);
    tcp::endpoint ep;
    boost::system::error_code ec = asio::error::host_not_found;
    for (const auto& entry : endpoints) {
      ep = entry.endpoint();
      boost::system::error_code ignored;
      socket.close(ignored);
      socket.open(ep.protocol(), ec);
      if (ec) continue;
      if (!options.source_address.empty()) {
        auto source = asio::ip::make_address(options.source_address, ec);
        if (!ec && source.is_v4() == ep.address().is_v4())
          socket.bind(tcp::endpoint(source, 0), ec);
        if (ec) continue;
      }
      auto result =
          co_await (socket.async_connect(ep, use_nothrow) || timer.async_wait(use_nothrow));
      if (result.index() == 1) co_return fail(ETIMEDOUT);
      std::tie(ec) = std::get<0>(result);
      if (!ec) break;
    }
    if (ec) co_return fail(to_errno(ec));
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    socket.set_option(asio::socket_base::keep_alive(true), ignored);
    int family = ep.protocol().family();
    co_return stream_socket(strand, stream_protocol(family, IPPROTO_TCP), socket.release());
  }

  asio::awaitable<void> read_loop(std::shared_ptr<FrameStream> s) {
    auto self = shared_from_this();
    Errno why;
    while (s->is_open()) {
      auto frame = co_await s->read_frame();
      if (!frame) {
        why = frame.error();
        if (why.value == EPROTO || why.value == EMSGSIZE) {
          MLOG_WARN("{}: malformed frame from server ({}), closing", options.name, why.name());
        }
        break;
      }
      if (s != stream) break;  // a stale connection's leftovers
      last_rx = Clock::now();
      const Header& h = frame->header;
      switch (h.kind) {
        case Kind::kReply: {
          auto it = pending.find(h.xid);
          if (it == pending.end()) break;  // timed out already
          ReplyHandler handler = std::move(it->second.handler);
          pending.erase(it);
          if (h.status != 0) {
            complete(std::move(handler), fail(h.status));
          } else {
            complete(std::move(handler), Reply{std::move(frame->message), std::move(frame->data)});
          }
          break;
        }
        case Kind::kPong:
          break;
        case Kind::kPing:
          s->send(make_frame(Kind::kPong, h.xid, 0, 0, nullptr));
          break;
        case Kind::kEvent:
          if (event_listener) event_listener(h.proc, std::move(frame->message));
          break;
        case Kind::kCall:
          MLOG_WARN("{}: server sent a call frame, closing", options.name);
          s->close();
          break;
      }
    }
    s->close();
    if (s == stream) {
      // Answers can no longer arrive: fail the calls now, not at their deadlines.
      fail_all(Errno(ENOTCONN));
      closed_signal.cancel();
    }
  }

  void set_up(bool now_up) {
    if (up.exchange(now_up) == now_up) return;
    if (state_listener) state_listener(now_up);
  }

  asio::awaitable<void> sleep(Duration d) {
    backoff_timer.expires_after(d);
    co_await backoff_timer.async_wait(use_nothrow);
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    Duration backoff = options.reconnect_min;
    bool logged_down = false;
    while (state != State::kStopped) {
      state = State::kConnecting;
      auto socket = co_await connect_once();
      if (state == State::kStopped) break;
      if (!socket) {
        if (!logged_down) {
          MLOG_INFO("{}: cannot connect: {}", options.name, socket.error().message());
          logged_down = true;
        }
        if (!options.reconnect) break;
        co_await sleep(backoff);
        backoff = std::min(backoff * 2, options.reconnect_max);
        continue;
      }
      stream = std::make_shared<FrameStream>(std::move(*socket), options.limits);
      last_rx = Clock::now();
      last_ping = last_rx;
      state = State::kHandshaking;
      asio::co_spawn(strand, read_loop(stream), asio::detached);
      if (hook) {
        auto hooked = co_await hook();
        if (!hooked && stream) {
          MLOG_WARN("{}: connection set-up failed: {}", options.name, hooked.error().message());
          stream->close();
        }
      }
      if (state == State::kStopped) break;
      if (stream->is_open()) {
        state = State::kUp;
        backoff = options.reconnect_min;
        logged_down = false;
        MLOG_INFO("{}: connected", options.name);
        set_up(true);
        closed_signal.expires_at(Clock::time_point::max());
        co_await closed_signal.async_wait(use_nothrow);
        if (state == State::kStopped) break;
        MLOG_INFO("{}: disconnected", options.name);
      }
      state = State::kIdle;
      fail_all(Errno(ENOTCONN));
      set_up(false);
      if (!options.reconnect) break;
      co_await sleep(backoff);
      backoff = std::min(backoff * 2, options.reconnect_max);
    }
    fail_all(Errno(ENOTCONN));
    set_up(false);
  }

  asio::awaitable<void> tick_loop() {
    auto self = shared_from_this();
    auto tick = std::clamp(options.ping_timeout / 10, Duration(10), Duration(250));
    while (state != State::kStopped) {
      tick_timer.expires_after(tick);
      co_await tick_timer.async_wait(use_nothrow);
      auto now = Clock::now();
      if (stream && stream->is_open() && (state == State::kUp || state == State::kHandshaking)) {
        if (now - last_rx > options.ping_timeout) {
          MLOG_WARN("{}: no answer for {} ms, disconnecting", options.name,
                    std::chrono::duration_cast<Duration>(now - last_rx).count());
          stream->close();
          closed_signal.cancel();
        } else if (now - last_ping >= ping_interval()) {
          last_ping = now;
          stream->send(make_frame(Kind::kPing, 0, 0, 0, nullptr));
        }
      }
      for (auto it = pending.begin(); it != pending.end();) {
        if (it->second.deadline <= now) {
          complete(std::move(it->second.handler), fail(ETIMEDOUT));
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  void stop() {
    if (state == State::kStopped) return;
    state = State::kStopped;
    if (stream) stream->close();
    closed_signal.cancel();
    backoff_timer.cancel();
    tick_timer.cancel();
    fail_all(Errno(ENOTCONN));
    set_up(false);
  }
};

RpcClient::RpcClient(asio::any_io_executor executor, Options options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

RpcClient::~RpcClient() { stop(); }

void RpcClient::set_connect_hook(ConnectHook hook) { impl_->hook = std::move(hook); }
void RpcClient::set_state_listener(StateListener l) { impl_->state_listener = std::move(l); }
void RpcClient::set_event_listener(EventListener l) { impl_->event_listener = std::move(l); }
const RpcClient::Options& RpcClient::options() const { return impl_->options; }
bool RpcClient::is_up() const { return impl_->up.load(); }

void RpcClient::start() {
  auto impl = impl_;
  asio::dispatch(impl->strand, [impl] {
    if (impl->state != Impl::State::kIdle) return;
    asio::co_spawn(impl->strand, impl->run(), asio::detached);
    asio::co_spawn(impl->strand, impl->tick_loop(), asio::detached);
  });
}

void RpcClient::stop() {
  auto impl = impl_;
  asio::dispatch(impl->strand, [impl] { impl->stop(); });
}

asio::awaitable<Result<Reply>> RpcClient::call(uint32_t proc,
                                               const google::protobuf::MessageLite& request,
                                               Buffer data, CallOptions options) {
  // Not a coroutine: the request is serialised now, while the caller's reference is valid,
  // even if the returned awaitable only starts later.
  OutFrame frame = make_frame(Kind::kCall, 0, proc, 0, &request, std::move(data));
  return send_frame(impl_, std::move(frame), options);
}

asio::awaitable<Result<Reply>> RpcClient::send_frame(std::shared_ptr<Impl> impl, OutFrame frame,
                                                     CallOptions options) {
  if (frame.data.size() > impl->options.limits.max_data ||
      frame.head.size() - kHeaderSize > impl->options.limits.max_message) {
    co_return fail(EMSGSIZE);
  }
  // Named locals, not temporaries inside the co_await: g++ 12 destroys some temporaries of a
  // co_await expression twice.
  auto initiate = [impl, frame = std::move(frame), options](auto handler) mutable {
    auto ex = asio::get_associated_executor(handler, impl->strand);
    ReplyHandler done = [ex, h = std::move(handler)](Result<Reply> r) mutable {
      asio::post(ex,
                 [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
    };
    asio::dispatch(impl->strand,
                   [impl, frame = std::move(frame), options, done = std::move(done)]() mutable {
                     impl->start_call(std::move(frame), options, std::move(done));
                   });
  };
  Result<Reply> result =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<Reply>)>(
          std::move(initiate), asio::use_awaitable);
  co_return result;
}

asio::awaitable<bool> RpcClient::wait_up(Duration timeout) {
  auto deadline = Clock::now() + timeout;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!is_up() && Clock::now() < deadline) {
    timer.expires_after(10ms);
    co_await timer.async_wait(use_nothrow);
  }
  co_return is_up();
}

}  // namespace mortar::rpc
