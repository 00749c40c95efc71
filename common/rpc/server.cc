#include "common/rpc/server.h"

#include <google/protobuf/message_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"

namespace mortar::rpc {

using namespace std::chrono_literals;

ServerConnection::ServerConnection(RpcServer& server, uint64_t id, stream_socket socket)
    : server_(server),
      id_(id),
      strand_(socket.get_executor()),
      idle_timer_(strand_),
      idle_timeout_ms_(server.options_.idle_timeout.count()) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (!ec && ep.protocol().family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(ep.data());
    asio::ip::address_v4 a(ntohl(sin->sin_addr.s_addr));
    peer_address_ = a.to_string();
    peer_ = peer_address_ + ":" + std::to_string(ntohs(sin->sin_port));
  } else if (!ec && ep.protocol().family() == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ep.data());
    asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
    peer_address_ = asio::ip::address_v6(bytes).to_string();
    peer_ = "[" + peer_address_ + "]:" + std::to_string(ntohs(sin6->sin6_port));
  } else {
    peer_ = "local";
  }
  // Only meaningful (and only accepted) on TCP connections.
  socket.set_option(tcp::no_delay(true), ec);
  socket.set_option(asio::socket_base::keep_alive(true), ec);
  stream_ = std::make_shared<FrameStream>(std::move(socket), server.options_.limits);
  last_rx_ = std::chrono::steady_clock::now();
}

void ServerConnection::start() {
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self]() { return self->read_loop(); }, asio::detached);
  asio::co_spawn(
      strand_, [self]() { return self->idle_loop(); }, asio::detached);
}

asio::awaitable<void> ServerConnection::read_loop() {
  auto self = shared_from_this();
  std::string why;
  asio::steady_timer pause(strand_);
  while (stream_->is_open()) {
    // Back-pressure: a peer that does not read its answers is not read from either.
    while (stream_->is_open() && stream_->queued_bytes() > server_.options_.max_queued_bytes) {
      pause.expires_after(1ms);
      co_await pause.async_wait(use_nothrow);
    }
    auto frame = co_await stream_->read_frame();
    if (!frame) {
      int e = frame.error().value;
      if (e == EPROTO || e == EMSGSIZE) {
        why = "malformed frame (" + frame.error().name() + ")";
        MLOG_WARN("connection {} from {}: {}, closing", id_, peer_, why);
      } else {
        why = frame.error().message();
      }
      break;
    }
    last_rx_ = std::chrono::steady_clock::now();
    switch (frame->header.kind) {
      case Kind::kPing:
        send(make_frame(Kind::kPong, frame->header.xid, 0, 0, nullptr));
        break;
      case Kind::kCall:
        server_.handler_.on_call(self, std::move(*frame));
        break;
      default:
        why = "unexpected frame kind " + std::to_string(static_cast<int>(frame->header.kind));
        MLOG_WARN("connection {} from {}: {}, closing", id_, peer_, why);
        stream_->close();
        break;
    }
  }
  MLOG_DEBUG("connection {} from {} ended: {}", id_, peer_, why);
  finish();
}

asio::awaitable<void> ServerConnection::idle_loop() {
  auto self = shared_from_this();
  while (stream_->is_open()) {
    auto timeout = std::chrono::milliseconds(idle_timeout_ms_.load());
    // Re-read every second at most, so a timeout shortened by the handshake applies soon.
    idle_timer_.expires_after(
        std::clamp(timeout / 4, std::chrono::milliseconds(25), std::chrono::milliseconds(1000)));
    co_await idle_timer_.async_wait(use_nothrow);
    if (!stream_->is_open()) break;
    if (std::chrono::steady_clock::now() - last_rx_ > timeout) {
      MLOG_WARN("connection {} from {}: silent for {} ms, closing", id_, peer_, timeout.count());
      stream_->close();
    }
  }
}

void ServerConnection::finish() {
  if (finished_) return;
  finished_ = true;
  stream_->close();
  idle_timer_.cancel();
  server_.handler_.on_close(shared_from_this());
  server_.forget(id_);
}

void ServerConnection::send(OutFrame frame) {
  // Already on the strand when called from read_loop; post keeps other threads safe.
  asio::dispatch(strand_, [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->stream_->send(std::move(f));
  });
}

void ServerConnection::reply(uint64_t xid, const google::protobuf::MessageLite& msg, Buffer data) {
  send(make_frame(Kind::kReply, xid, 0, 0, &msg, std::move(data)));
}

void ServerConnection::reply_error(uint64_t xid, Errno err) {
  send(make_frame(Kind::kReply, xid, 0, err.value == 0 ? EIO : err.value, nullptr));
}

void ServerConnection::send_event(uint32_t proc, const google::protobuf::MessageLite& msg) {
  send(make_frame(Kind::kEvent, 0, proc, 0, &msg));
}

void ServerConnection::close(std::string reason) {
  asio::dispatch(strand_, [self = shared_from_this(), reason = std::move(reason)]() {
    if (!self->stream_->is_open()) return;
    MLOG_WARN("connection {} from {}: {}, closing", self->id_, self->peer_, reason);
    self->stream_->close();
    self->idle_timer_.cancel();
  });
}

RpcServer::RpcServer(asio::io_context& io, ServiceHandler& handler, Options options)
    : io_(io), handler_(handler), options_(options), acceptor_(io), unix_acceptor_(io) {}

RpcServer::~RpcServer() { stop(); }

Result<void> RpcServer::start_acceptor(Acceptor& acceptor, const stream_protocol::endpoint& ep) {
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (ec) return fail(to_errno(ec));
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor.bind(ep, ec);
  if (ec) return fail(to_errno(ec));
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(to_errno(ec));
  asio::co_spawn(io_, accept_loop(acceptor), asio::detached);
  return ok();
}

Result<uint16_t> RpcServer::listen(const std::string& address, uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return fail(EINVAL);
  if (auto r = start_acceptor(acceptor_, stream_protocol::endpoint(tcp::endpoint(addr, port)));
      !r) {
    return fail(r.error());
  }
  auto bound = acceptor_.local_endpoint(ec);
  if (ec) return fail(to_errno(ec));
  auto* sa = reinterpret_cast<const sockaddr*>(bound.data());
  if (sa->sa_family == AF_INET6) {
    return static_cast<uint16_t>(ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port));
  }
  return static_cast<uint16_t>(ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port));
}

Result<void> RpcServer::listen_unix(const std::string& path, unsigned mode) {
  ::unlink(path.c_str());
  if (auto r = start_acceptor(
          unix_acceptor_, stream_protocol::endpoint(asio::local::stream_protocol::endpoint(path)));
      !r) {
    return r;
  }
  if (::chmod(path.c_str(), mode) != 0) return fail_errno();
  return ok();
}

asio::awaitable<void> RpcServer::accept_loop(Acceptor& acceptor) {
  while (acceptor.is_open()) {
    // Each socket lives on its own strand: the connection's state needs no locks.
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io_), use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      MLOG_WARN("accept failed: {}", ec.message());
      // Out of descriptors or similar: do not spin.
      asio::steady_timer t(io_, 100ms);
      co_await t.async_wait(use_nothrow);
      continue;
    }
    uint64_t id = next_id_++;
    auto conn = std::make_shared<ServerConnection>(*this, id, std::move(socket));
    {
      std::lock_guard lock(mu_);
      connections_[id] = conn;
    }
    MLOG_DEBUG("connection {} from {}", id, conn->peer());
    conn->start();
  }
}

void RpcServer::stop_accepting() {
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    unix_acceptor_.close(ec);
  });
}

void RpcServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  unix_acceptor_.close(ec);
  std::vector<std::shared_ptr<ServerConnection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, weak] : connections_) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
  }
  for (auto& c : conns) {
    asio::dispatch(c->strand_, [c]() {
      c->stream_->close_after_flush();
      c->idle_timer_.cancel();
    });
  }
}

size_t RpcServer::connection_count() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

void RpcServer::forget(uint64_t id) {
  std::lock_guard lock(mu_);
  connections_.erase(id);
}

}  // namespace mortar::rpc
