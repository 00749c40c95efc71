// RPC server for the brick protocol framing: accepts connections, answers pings, drops
// silent peers, and hands every CALL to a ServiceHandler. Replies may be sent from any
// thread, so the handler can run the work on a thread pool and answer when it is done.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/rpc/asio.h"
#include "common/rpc/frame.h"
#include "common/rpc/stream.h"

namespace google::protobuf {
class MessageLite;
}

namespace mortar::rpc {

class ServerConnection;
class RpcServer;
using ConnectionPtr = std::shared_ptr<ServerConnection>;

class ServiceHandler {
 public:
  virtual ~ServiceHandler() = default;
  // A CALL frame arrived. Runs on the connection's strand and must not block; answer with
  // conn->reply()/reply_error() from any thread, now or later.
  virtual void on_call(const ConnectionPtr& conn, Frame frame) = 0;
  // The connection ended (peer closed, protocol error, silence, or server stop). Called
  // exactly once per connection, on its strand.
  virtual void on_close(const ConnectionPtr& conn) {}
};

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  // `socket` must be bound to a strand: it becomes this connection's executor.
  ServerConnection(RpcServer& server, uint64_t id, stream_socket socket);

  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }  // "address:port", for logs
  // The peer's IP address; empty for a Unix-domain connection (a local process).
  const std::string& peer_address() const { return peer_address_; }
  bool is_local() const { return peer_address_.empty(); }

  // Thread-safe. Success answer with the procedure's message and optional data tail.
  void reply(uint64_t xid, const google::protobuf::MessageLite& msg, Buffer data = {});
  // Thread-safe. Failure answer: the errno travels in the header, no message.
  void reply_error(uint64_t xid, Errno err);
  // Thread-safe. An unsolicited event to the client.
  void send_event(uint32_t proc, const google::protobuf::MessageLite& msg);
  // Thread-safe. Ends the connection; `reason` goes to the log.
  void close(std::string reason);
  // Thread-safe. Drop the peer after this long without a frame from it.
  void set_idle_timeout(std::chrono::milliseconds timeout) { idle_timeout_ms_ = timeout.count(); }

  // State the service keeps per connection (handshake result, open files, ...). Set and read
  // on the connection's strand (in on_call / on_close); hand copies to other threads.
  void set_context(std::shared_ptr<void> ctx) { context_ = std::move(ctx); }
  template <class T>
  std::shared_ptr<T> context() const {
    return std::static_pointer_cast<T>(context_);
  }

 private:
  friend class RpcServer;
  void start();
  asio::awaitable<void> read_loop();
  asio::awaitable<void> idle_loop();
  void send(OutFrame frame);
  void finish();

  RpcServer& server_;
  uint64_t id_;
  std::string peer_;
  std::string peer_address_;
  asio::any_io_executor strand_;
  std::shared_ptr<FrameStream> stream_;
  asio::steady_timer idle_timer_;
  std::atomic<int64_t> idle_timeout_ms_;
  std::chrono::steady_clock::time_point last_rx_;
  bool finished_ = false;
  std::shared_ptr<void> context_;
};

class RpcServer {
 public:
  struct Options {
    Limits limits;
    std::chrono::milliseconds idle_timeout{30000};
    // A peer that stops reading its answers stops being read from past this much queued.
    size_t max_queued_bytes = 64u << 20;
  };

  RpcServer(asio::io_context& io, ServiceHandler& handler, Options options);
  ~RpcServer();

  // Binds and starts accepting. Port 0 picks a free port; the bound port is returned.
  Result<uint16_t> listen(const std::string& address, uint16_t port);
  // Also accepts on a Unix-domain socket at `path` (replaced if it exists) with file mode
  // `mode`. May be combined with listen().
  Result<void> listen_unix(const std::string& path, unsigned mode);
  // Stops accepting new connections; existing ones go on.
  void stop_accepting();
  // Stops accepting and closes every connection, after the answers already queued on it are
  // written. Call on the io_context's thread, or after it has stopped running.
  void stop();
  size_t connection_count() const;

 private:
  friend class ServerConnection;
  using Acceptor = asio::basic_socket_acceptor<stream_protocol>;
  asio::awaitable<void> accept_loop(Acceptor& acceptor);
  Result<void> start_acceptor(Acceptor& acceptor, const stream_protocol::endpoint& ep);
  void forget(uint64_t id);

  asio::io_context& io_;
  ServiceHandler& handler_;
  Options options_;
  Acceptor acceptor_;
  Acceptor unix_acceptor_;
  std::atomic<uint64_t> next_id_{1};
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::weak_ptr<ServerConnection>> connections_;  // GUARDED_BY(mu_)
};

}  // namespace mortar::rpc
