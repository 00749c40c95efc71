// A client of one brick: an RpcClient that performs the brick handshake on every connection,
// then typed calls of the brick protocol. Used by protocol/client, the heal daemon, tests and
// benchmarks.
//
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "common/buffer.h"
#include "common/result.h"
#include "common/rpc/client.h"
#include "proto/brick.pb.h"

namespace mortar {

class BrickClient {
 public:
  struct Options {
    rpc::RpcClient::Options rpc;
    std::string volume;
    std::string brick_name;
    std::string client_id;  // default: a new random UUID
    std::string process_name = "mortar";
  };
  using CallOptions = rpc::RpcClient::CallOptions;

  BrickClient(boost::asio::any_io_executor executor, Options options);

  // Runs after the handshake of every connection, before it counts as up (e.g. re-opening
  // files). Its calls must set CallOptions::setup. Set before start().
  void set_reconnect_hook(rpc::RpcClient::ConnectHook hook);
  void set_state_listener(rpc::RpcClient::StateListener listener);
  void set_event_listener(rpc::RpcClient::EventListener listener);
  void start();
  void stop();
  bool is_up() const { return rpc_.is_up(); }
  boost::asio::awaitable<bool> wait_up(rpc::RpcClient::Duration timeout) {
    return rpc_.wait_up(timeout);
  }
  const std::string& client_id() const { return options_.client_id; }
  const Options& options() const { return options_; }
  // What the brick said in the last successful handshake.
  pb::HandshakeRsp server_info() const;

  // One call with a parsed answer. Rsp is the procedure's answer message. `req` is
  // serialised before call() returns.
  template <class Rsp>
  boost::asio::awaitable<Result<Rsp>> call(pb::Proc proc, const google::protobuf::MessageLite& req,
                                           CallOptions options = {}) {
    return parse_reply<Rsp>(rpc_.call(proc, req, Buffer(), options));
  }
  boost::asio::awaitable<Result<std::pair<pb::ReadRsp, Buffer>>> read(const pb::ReadReq& req,
                                                                      CallOptions options = {});
  boost::asio::awaitable<Result<pb::WriteRsp>> write(const pb::WriteReq& req, Buffer data,
                                                     CallOptions options = {});

 private:
  template <class Rsp>
  static boost::asio::awaitable<Result<Rsp>> parse_reply(
      boost::asio::awaitable<Result<rpc::Reply>> pending) {
    Result<rpc::Reply> reply = co_await std::move(pending);
    if (!reply) co_return fail(reply.error());
    Rsp rsp;
    if (!rsp.ParseFromString(reply->message)) co_return fail(EPROTO);
    co_return rsp;
  }
  static boost::asio::awaitable<Result<std::pair<pb::ReadRsp, Buffer>>> parse_read(
      boost::asio::awaitable<Result<rpc::Reply>> pending, uint32_t size);
  boost::asio::awaitable<Result<void>> handshake();

  Options options_;
  rpc::RpcClient rpc_;
  rpc::RpcClient::ConnectHook reconnect_hook_;
  mutable std::mutex mu_;
  pb::HandshakeRsp server_info_;  // GUARDED_BY(mu_)
};

}  // namespace mortar
