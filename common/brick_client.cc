#include "common/brick_client.h"

#include "common/gfid.h"
#include "common/log.h"
#include "common/protocol.h"

namespace mortar {

namespace asio = boost::asio;

BrickClient::BrickClient(asio::any_io_executor executor, Options options)
    : options_(std::move(options)), rpc_(std::move(executor), options_.rpc) {
  if (options_.client_id.empty()) options_.client_id = Gfid::random().str();
  rpc_.set_connect_hook([this]() { return handshake(); });
}

void BrickClient::set_reconnect_hook(rpc::RpcClient::ConnectHook hook) {
  reconnect_hook_ = std::move(hook);
}
void BrickClient::set_state_listener(rpc::RpcClient::StateListener l) {
  rpc_.set_state_listener(std::move(l));
}
void BrickClient::set_event_listener(rpc::RpcClient::EventListener l) {
  rpc_.set_event_listener(std::move(l));
}
void BrickClient::start() { rpc_.start(); }
void BrickClient::stop() { rpc_.stop(); }

pb::HandshakeRsp BrickClient::server_info() const {
  std::lock_guard lock(mu_);
  return server_info_;
}

asio::awaitable<Result<void>> BrickClient::handshake() {
  pb::HandshakeReq req;
  req.set_protocol_version(kBrickProtocolVersion);
  req.set_volume(options_.volume);
  req.set_brick_name(options_.brick_name);
  req.set_client_id(options_.client_id);
  req.set_process_name(options_.process_name);
  req.set_ping_interval_ms(
      static_cast<uint32_t>(std::max<int64_t>(options_.rpc.ping_timeout.count() / 3, 10)));
  CallOptions co;
  co.setup = true;
  co.deadline = rpc::RpcClient::Clock::now() + options_.rpc.ping_timeout;
  Result<pb::HandshakeRsp> rsp = co_await call<pb::HandshakeRsp>(pb::HANDSHAKE, req, co);
  if (!rsp) {
    if (rsp.error().value == EACCES) {
      MLOG_WARN("{}: the brick refused this client (auth.allow/auth.reject)", rpc_.options().name);
    } else if (rsp.error().value == ENOENT) {
      MLOG_WARN("{}: the server does not serve brick '{}' of volume '{}'", rpc_.options().name,
                options_.brick_name, options_.volume);
    }
    co_return fail(rsp.error());
  }
  {
    std::lock_guard lock(mu_);
    server_info_ = std::move(*rsp);
  }
  if (!reconnect_hook_) co_return ok();
  Result<void> reopened = co_await reconnect_hook_();
  co_return reopened;
}

asio::awaitable<Result<std::pair<pb::ReadRsp, Buffer>>> BrickClient::read(const pb::ReadReq& req,
                                                                         CallOptions options) {
  return parse_read(rpc_.call(pb::READ, req, Buffer(), options), req.size());
}

asio::awaitable<Result<std::pair<pb::ReadRsp, Buffer>>> BrickClient::parse_read(
    asio::awaitable<Result<rpc::Reply>> pending, uint32_t size) {
  Result<rpc::Reply> reply = co_await std::move(pending);
  if (!reply) co_return fail(reply.error());
  pb::ReadRsp rsp;
  if (!rsp.ParseFromString(reply->message)) co_return fail(EPROTO);
  if (reply->data.size() > size) co_return fail(EPROTO);
  co_return std::pair{std::move(rsp), std::move(reply->data)};
}

asio::awaitable<Result<pb::WriteRsp>> BrickClient::write(const pb::WriteReq& req, Buffer data,
                                                        CallOptions options) {
  return parse_reply<pb::WriteRsp>(rpc_.call(pb::WRITE, req, std::move(data), options));
}

}  // namespace mortar
