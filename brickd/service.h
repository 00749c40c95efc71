// The brick protocol served over RPC: checks each connection's handshake and auth rules, keeps
// its open files, runs file operations on a thread pool so a slow disk call never stalls the
// network threads, and ties locks to the connection that took them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "brickd/brick_fs.h"
#include "brickd/locks.h"
#include "common/rpc/server.h"

namespace boost::asio {
class thread_pool;
}

namespace mortar::brickd {

// auth.allow / auth.reject: comma-separated address globs ("192.168.50.*", "127.0.0.1").
// An address is admitted when it matches an allow pattern and no reject pattern; an empty
// allow list admits every address.
bool address_admitted(const std::string& address, const std::vector<std::string>& allow,
                      const std::vector<std::string>& reject);

class BrickService : public rpc::ServiceHandler {
 public:
  struct Options {
    std::string volume;
    std::string brick_name;
    std::vector<std::string> auth_allow;
    std::vector<std::string> auth_reject;
    size_t io_threads = 8;
    // Fault injection for tests: each call of procedure `first` sleeps `second` ms on its
    // disk thread, as if the disk were slow.
    std::vector<std::pair<uint32_t, uint32_t>> inject_delay_ms;
    // An arbiter brick keeps names, metadata and changelogs but no file data: writes,
    // truncates and allocations succeed without touching the file.
    bool arbiter = false;
    // Exact addresses of the volume's servers: their heal daemons and management daemons are
    // the volume's own clients, admitted whatever auth.allow / auth.reject say (an operator
    // who allows only the web heads must not stop heal).
    std::vector<std::string> auth_trusted;
  };

  BrickService(BrickFs& fs, Options options);
  ~BrickService() override;

  void on_call(const rpc::ConnectionPtr& conn, rpc::Frame frame) override;
  void on_close(const rpc::ConnectionPtr& conn) override;

  // Graceful stop: new calls are refused with ENOTCONN and the calls in flight are waited for,
  // at most `max_wait`. Returns the number still running when it gave up.
  size_t drain(std::chrono::milliseconds max_wait);

  uint64_t call_count(uint32_t proc) const;
  // Replaces auth.allow / auth.reject for connections that handshake from now on.
  void set_auth(std::vector<std::string> allow, std::vector<std::string> reject,
                std::vector<std::string> trusted);
  LockTable& locks() { return locks_; }

 private:
  struct Session;
  struct OpenFile;

  template <class Req, class Fn>
  void offload(const rpc::ConnectionPtr& conn, rpc::Frame& frame, Fn fn);
  // Applies a request's replication pre-op marks (before the operation itself).
  Result<void> apply_pre_op(
      const google::protobuf::RepeatedPtrField<pb::ChangelogReq>& marks);
  // Whether the connection is still open (on_close has not run for it).
  bool connected(uint64_t connection);
  // Applies an unlock's post-op marks, as many as can be.
  Result<void> apply_post_op(
      const google::protobuf::RepeatedPtrField<pb::ChangelogReq>& marks);
  void on_contention(uint64_t connection, LockKind kind, const std::string& domain,
                     const Gfid& gfid);
  template <class Req>
  bool parse_inline(const rpc::ConnectionPtr& conn, const rpc::Frame& frame, Req& req);
  void handshake(const rpc::ConnectionPtr& conn, const rpc::Frame& frame);
  void handle_lk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame);
  void handle_inodelk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame);
  void handle_entrylk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame);

  BrickFs& fs_;
  Options options_;
  std::mutex auth_mu_;  // guards options_.auth_allow / auth_reject / auth_trusted
  LockTable locks_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::atomic<bool> draining_{false};
  std::atomic<size_t> in_flight_{0};
  std::array<std::atomic<uint64_t>, 64> calls_{};
  std::mutex conns_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<rpc::ServerConnection>> conns_;  // GUARDED_BY
};

}  // namespace mortar::brickd
