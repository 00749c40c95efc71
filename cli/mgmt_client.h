// A blocking client for the one call the CLI makes: a CliReq to mortar-mgmtd over its Unix
// socket or TCP, in the framing of docs/protocol.md. The shared RpcClient is asynchronous and
// TCP-only; a command-line tool needs neither Asio nor reconnection, only a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <string>

#include "cli/command.h"
#include "common/unique_fd.h"
#include "proto/mgmt.pb.h"

namespace mortar::cli {

struct Endpoint {
  std::string unix_path;  // used when host is empty
  std::string host;
  uint16_t port = kMgmtPort;

  std::string describe() const;  // "/run/mortar/mgmtd.sock" or "host:24007"
};

// The endpoint the options name: --remote-host, else --socket, else $MORTAR_SOCKET (passed
// in, so this stays pure), else the default socket.
Endpoint endpoint_for(const GlobalOptions& options, const char* env_socket);

struct CallError {
  enum class Kind {
    kConnect,  // nothing listening, refused, unreachable, or no answer to the connect
    kTimeout,  // connected, but no answer before the deadline
    kLost,     // the connection broke or spoke something else than the protocol
    kServer,   // mgmtd answered with an errno instead of a CliRsp
  };
  Kind kind = Kind::kConnect;
  int err = 0;          // errno
  std::string message;  // one line, for the operator
};

class MgmtConnection {
 public:
  using Duration = std::chrono::milliseconds;

  static std::expected<MgmtConnection, CallError> connect(const Endpoint& endpoint,
                                                          Duration timeout);

  // Sends one CLI call and waits for its answer. While waiting it pings the server every
  // `ping_interval`, because mgmtd, like every mortar server, drops a silent connection,
  // and some commands (starting bricks) take longer than its idle timeout.
  std::expected<pb::CliRsp, CallError> call(const pb::CliReq& request, Duration timeout,
                                            Duration ping_interval = Duration(2000));

 private:
  explicit MgmtConnection(UniqueFd fd) : fd_(std::move(fd)) {}

  UniqueFd fd_;
  uint64_t next_xid_ = 1;
};

}  // namespace mortar::cli
