#include "cli/mgmt_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "common/rpc/frame.h"

namespace mortar::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::unexpected<CallError> error(CallError::Kind kind, int err, std::string message) {
  return std::unexpected<CallError>(CallError{kind, err, std::move(message)});
}

int remaining_ms(Clock::time_point until) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
  return left > 0 ? static_cast<int>(std::min<int64_t>(left, INT32_MAX)) : 0;
}

bool set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// Waits for `events` on `fd` until `until`. 0 on readiness, else ETIMEDOUT or an errno.
int wait_for(int fd, short events, Clock::time_point until) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(until));
    if (n > 0) return 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

std::expected<UniqueFd, int> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return std::unexpected(ENAMETOOLONG);
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return std::unexpected(errno);
  // A local connect either succeeds or fails at once; only the I/O after it needs deadlines.
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return std::unexpected(errno);
  if (!set_nonblocking(fd.get())) return std::unexpected(errno);
  return fd;
}

std::expected<UniqueFd, int> connect_tcp_one(const addrinfo& ai, Clock::time_point until) {
  UniqueFd fd(
      ::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai.ai_protocol));
  if (!fd.valid()) return std::unexpected(errno);
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return std::unexpected(errno);
    if (int err = wait_for(fd.get(), POLLOUT, until); err != 0) return std::unexpected(err);
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
      return std::unexpected(errno);
    }
    if (so_error != 0) return std::unexpected(so_error);
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Writes all of `bytes`, or returns the errno that stopped it.
int write_all(int fd, std::string_view bytes, Clock::time_point until) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (int err = wait_for(fd, POLLOUT, until); err != 0) return err;
    } else if (n < 0 && errno != EINTR) {
      return errno;
    }
  }
  return 0;
}

}  // namespace

std::string Endpoint::describe() const {
  if (host.empty()) return unix_path;
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint endpoint_for(const GlobalOptions& options, const char* env_socket) {
  Endpoint e;
  if (!options.remote_host.empty()) {
    e.host = options.remote_host;
    e.port = options.remote_port;
  } else if (!options.socket.empty()) {
    e.unix_path = options.socket;
  } else if (env_socket != nullptr && *env_socket != '\0') {
    e.unix_path = env_socket;
  } else {
    e.unix_path = std::string(kDefaultSocket);
  }
  return e;
}

std::expected<MgmtConnection, CallError> MgmtConnection::connect(const Endpoint& endpoint,
                                                                 Duration timeout) {
  auto failed = [&](int err) {
    return error(CallError::Kind::kConnect, err,
                 "cannot connect to " + endpoint.describe() + ": " + std::strerror(err));
  };
  if (endpoint.host.empty()) {
    auto fd = connect_unix(endpoint.unix_path);
    if (!fd) return failed(fd.error());
    return MgmtConnection(std::move(*fd));
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  std::string port = std::to_string(endpoint.port);
  if (int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &list); rc != 0) {
    return error(CallError::Kind::kConnect, EHOSTUNREACH,
                 "cannot resolve " + endpoint.host + ": " + ::gai_strerror(rc));
  }
  const Clock::time_point until = Clock::now() + timeout;
  int last = ECONNREFUSED;
  std::optional<UniqueFd> connected;
  for (addrinfo* ai = list; ai != nullptr && !connected; ai = ai->ai_next) {
    auto fd = connect_tcp_one(*ai, until);
    if (fd) {
      connected = std::move(*fd);
    } else {
      last = fd.error();
    }
  }
  ::freeaddrinfo(list);
  if (!connected) return failed(last);
  return MgmtConnection(std::move(*connected));
}

std::expected<pb::CliRsp, CallError> MgmtConnection::call(const pb::CliReq& request,
                                                          Duration timeout,
                                                          Duration ping_interval) {
  const Clock::time_point until = Clock::now() + timeout;
  const int fd = fd_.get();
  auto lost = [](int err) {
    return error(CallError::Kind::kLost, err,
                 std::string("connection to mortar-mgmtd lost: ") + std::strerror(err));
  };
  auto timed_out = [&] {
    return error(
        CallError::Kind::kTimeout, ETIMEDOUT,
        "no answer from mortar-mgmtd within " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
            " s");
  };

  const uint64_t xid = next_xid_++;
  rpc::OutFrame frame = rpc::make_frame(rpc::Kind::kCall, xid, pb::CLI, 0, &request);
  if (int err = write_all(fd, frame.head, until); err != 0) {
    return err == ETIMEDOUT ? timed_out() : lost(err);
  }

  // Reads exactly `size` bytes into `out`, pinging the server while it waits.
  Clock::time_point next_ping = Clock::now() + ping_interval;
  auto read_exact = [&](std::string& out, size_t size) -> int {
    out.resize(size);
    size_t got = 0;
    while (got < size) {
      ssize_t n = ::recv(fd, out.data() + got, size - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      if (n == 0) return ECONNRESET;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
      const Clock::time_point wake = std::min(until, next_ping);
      int err = wait_for(fd, POLLIN, wake);
      if (err == ETIMEDOUT && Clock::now() >= until) return ETIMEDOUT;
      if (err != 0 && err != ETIMEDOUT) return err;
      if (Clock::now() >= next_ping) {
        rpc::OutFrame ping = rpc::make_frame(rpc::Kind::kPing, next_xid_++, 0, 0, nullptr);
        if (int werr = write_all(fd, ping.head, until); werr != 0) return werr;
        next_ping = Clock::now() + ping_interval;
      }
    }
    return 0;
  };

  const rpc::Limits limits;
  std::string header;
  std::string body;
  for (;;) {
    if (int err = read_exact(header, rpc::kHeaderSize); err != 0) {
      return err == ETIMEDOUT ? timed_out() : lost(err);
    }
    auto h = rpc::decode_header(
        std::span<const char, rpc::kHeaderSize>(header.data(), rpc::kHeaderSize), limits);
    if (!h) return lost(h.error().value);
    if (int err = read_exact(body, size_t{h->message_len} + h->data_len); err != 0) {
      return err == ETIMEDOUT ? timed_out() : lost(err);
    }
    if (h->kind == rpc::Kind::kPing) {
      rpc::OutFrame pong = rpc::make_frame(rpc::Kind::kPong, h->xid, 0, 0, nullptr);
      if (int err = write_all(fd, pong.head, until); err != 0) return lost(err);
      continue;
    }
    // Pongs, events, and answers to anything else are not ours to handle.
    if (h->kind != rpc::Kind::kReply || h->xid != xid) continue;
    if (h->status != 0) {
      return error(CallError::Kind::kServer, h->status, std::strerror(h->status));
    }
    pb::CliRsp rsp;
    if (!rsp.ParseFromArray(body.data(), static_cast<int>(h->message_len))) return lost(EPROTO);
    return rsp;
  }
}

}  // namespace mortar::cli
