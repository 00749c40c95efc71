#include "mgmtd/daemon.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <filesystem>

#include "common/gfid.h"
#include "common/log.h"
#include "common/protocol.h"
#include "mgmtd/cluster_state.h"
#include "mgmtd/volgen.h"
#include "mgmtd/volume_options.h"
#include "translators/volfile.h"

namespace mortar::mgmtd {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

pb::CliRsp error_rsp(std::string error) {
  pb::CliRsp rsp;
  rsp.set_error(std::move(error));
  return rsp;
}

// Every IPv4/IPv6 address `host` resolves to (blocking).
std::vector<std::string> resolve(const std::string& host) {
  std::vector<std::string> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof buf);
    } else if (ai->ai_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf,
                  sizeof buf);
    }
    if (buf[0]) out.emplace_back(buf);
  }
  ::freeaddrinfo(res);
  return out;
}

bool mutating(const pb::CliReq& req) {
  switch (req.op_case()) {
    case pb::CliReq::kPeerStatus:
    case pb::CliReq::kPoolList:
    case pb::CliReq::kVolumeInfo:
    case pb::CliReq::kVolumeStatus:
    case pb::CliReq::kVolumeGet:
    case pb::CliReq::kVolumeSetHelp:
    case pb::CliReq::kVolumeGraph:
      return false;
    default:
      return true;
  }
}

}  // namespace

Mgmtd::Mgmtd(asio::io_context& io, Options options) : io_(io), options_(std::move(options)) {}

Mgmtd::~Mgmtd() { stop(); }

// ---- start / stop ----

Result<void> Mgmtd::start() {
  std::error_code ec;
  for (const auto& d : {options_.state_dir, options_.run_dir, options_.log_dir}) {
    fs::create_directories(d, ec);
    if (ec) {
      MLOG_ERROR("cannot create {}: {}", d, ec.message());
      return fail(ec.value());
    }
  }
  ::chmod(options_.run_dir.c_str(), 0700);
  auto store = StateStore::open(options_.state_dir + "/state");
  if (!store) return fail(store.error());
  store_ = std::move(*store);
  uuid_ = store_->uuid();
  if (auto saved = store_->load()) state_ = *saved;

  advertise_ = options_.address;
  if (advertise_ == "0.0.0.0" || advertise_ == "::") {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    advertise_ = name;
  }
  if (options_.brickd.empty()) {
    options_.brickd = (fs::read_symlink("/proc/self/exe").parent_path() / "mortar-brickd").string();
  }
  workers_ = std::make_unique<asio::thread_pool>(4);
  bricks_ = std::make_unique<BrickSupervisor>(BrickSupervisor::Options{
      options_.brickd, options_.run_dir, options_.log_dir, options_.address});

  server_ = std::make_unique<rpc::RpcServer>(io_, *this, rpc::RpcServer::Options{});
  auto port = server_->listen(options_.address, options_.port);
  if (!port) {
    MLOG_ERROR("cannot listen on {}:{}: {}", options_.address, options_.port,
               port.error().message());
    return fail(port.error());
  }
  std::string socket = options_.run_dir + "/mgmtd.sock";
  if (auto r = server_->listen_unix(socket, 0600); !r) {
    MLOG_ERROR("cannot listen on {}: {}", socket, r.error().message());
    return r;
  }

  RaftNode::Options ro;
  ro.dir = options_.state_dir + "/raft";
  ro.id = raft_id_of(uuid_);
  ro.address = advertise_ + ":" + std::to_string(options_.raft_port);
  raft_ = std::make_unique<RaftNode>(ro, static_cast<RaftNode::StateMachine&>(*this));
  // A server that was never part of a cluster founds its own one-server cluster.
  if (auto r = raft_->start(true); !r) return r;
  MLOG_INFO("mortar-mgmtd {} serving on {}:{} (Raft {}), state in {}", uuid_, options_.address,
            options_.port, ro.address, options_.state_dir);
  asio::co_spawn(io_, maintain(), asio::detached);
  return ok();
}

void Mgmtd::stop() {
  if (stopping_) return;
  stopping_ = true;
  if (server_) server_->stop_accepting();
  if (raft_) raft_->stop();
  std::map<std::string, std::shared_ptr<rpc::RpcClient>> peers;
  {
    std::lock_guard lock(mu_);
    peers.swap(peers_);
  }
  for (auto& [uuid, c] : peers) c->stop();
  if (workers_) workers_->join();
}

// ---- the state machine (Raft thread) ----

std::string Mgmtd::apply(std::string_view command) {
  pb::Command cmd;
  if (!cmd.ParseFromArray(command.data(), static_cast<int>(command.size()))) {
    MLOG_ERROR("undecodable command in the Raft log ({} bytes)", command.size());
    return "undecodable command";
  }
  pb::ClusterState copy;
  std::string error;
  {
    std::lock_guard lock(mu_);
    error = apply_command(state_, cmd);
    if (!error.empty()) {
      MLOG_DEBUG("command refused: {}", error);
      return error;
    }
    copy = state_;
  }
  MLOG_DEBUG("applied command {} (epoch {})", static_cast<int>(cmd.op_case()), copy.epoch());
  (void)store_->save(copy);
  asio::post(io_, [this, cmd, copy] { on_applied(cmd, copy); });
  return "";
}

std::string Mgmtd::snapshot() {
  std::lock_guard lock(mu_);
  return state_.SerializeAsString();
}

void Mgmtd::restore(std::string_view data) {
  pb::ClusterState restored;
  if (!restored.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    MLOG_ERROR("cannot decode a Raft snapshot of the cluster state");
    return;
  }
  {
    std::lock_guard lock(mu_);
    state_ = restored;
  }
  (void)store_->save(restored);
  asio::post(io_, [this] { reconcile_bricks(); });
}

pb::ClusterState Mgmtd::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::string Mgmtd::source_address() const {
  boost::system::error_code ec;
  auto a = asio::ip::make_address(options_.address, ec);
  return ec || a.is_unspecified() ? std::string() : options_.address;
}

pb::PeerInfo Mgmtd::self_info() const {
  pb::PeerInfo p;
  p.set_uuid(uuid_);
  p.add_hostnames(advertise_);
  p.set_raft_id(raft_id_of(uuid_));
  p.set_raft_address(advertise_ + ":" + std::to_string(options_.raft_port));
  p.set_mgmt_port(options_.port);
  return p;
}

// ---- reactions to applied commands (I/O thread) ----

void Mgmtd::on_applied(const pb::Command& cmd, const pb::ClusterState& state) {
  if (!stopping_) sync_peer_clients(state);
  switch (cmd.op_case()) {
    case pb::Command::kStartVolume:
    case pb::Command::kStopVolume:
      reconcile_bricks();
      if (auto* v = find_volume(state, cmd.has_start_volume() ? cmd.start_volume().name()
                                                              : cmd.stop_volume().name())) {
        notify_graph_changed(v->name(), v->version());
      }
      break;
    case pb::Command::kSetOptions:
    case pb::Command::kResetOptions: {
      const std::string& name =
          cmd.has_set_options() ? cmd.set_options().volume() : cmd.reset_options().volume();
      if (const auto* v = find_volume(state, name)) {
        pb::VolumeSpec volume = *v;
        asio::post(*workers_, [this, volume] { bricks_->reconfigure(volume, uuid_); });
        notify_graph_changed(volume.name(), volume.version());
      }
      break;
    }
    case pb::Command::kRemovePeer:
      if (cmd.remove_peer().uuid() == uuid_) {
        // This server was detached: once the leader has taken it out of the Raft group, it
        // becomes a cluster of its own again.
        auto timer = std::make_shared<asio::steady_timer>(io_, 2s);
        timer->async_wait([this, timer](const boost::system::error_code&) {
          bool still_member;
          {
            std::lock_guard lock(mu_);
            still_member = find_peer(state_, uuid_) != nullptr;
          }
          if (!still_member) (void)become_standalone();
        });
      }
      break;
    default:
      break;
  }
}

void Mgmtd::sync_peer_clients(const pb::ClusterState& s) {
  std::vector<std::shared_ptr<rpc::RpcClient>> stale;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> wanted;
    for (const auto& p : s.peers()) {
      if (p.uuid() == uuid_) continue;
      wanted.insert(p.uuid());
      if (!peers_.count(p.uuid())) {
        rpc::RpcClient::Options o;
        o.host = p.hostnames(0);
        o.port = static_cast<uint16_t>(p.mgmt_port());
        o.ping_timeout = options_.peer_timeout;
        o.connect_timeout = options_.peer_timeout;
        o.reconnect_max = 1000ms;
        o.source_address = source_address();
        o.name = "peer " + p.hostnames(0);
        auto c = std::make_shared<rpc::RpcClient>(io_.get_executor(), o);
        c->start();
        peers_[p.uuid()] = c;
      }
    }
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (!wanted.count(it->first)) {
        stale.push_back(it->second);
        it = peers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : stale) c->stop();
}

void Mgmtd::reconcile_bricks() {
  {
    std::lock_guard lock(mu_);
    if (reconcile_pending_) return;
    reconcile_pending_ = true;
  }
  // Debounced: a replayed log applies many commands at once; act on where they end up.
  auto timer = std::make_shared<asio::steady_timer>(io_, 300ms);
  timer->async_wait([this, timer](const boost::system::error_code&) {
    pb::ClusterState s;
    {
      std::lock_guard lock(mu_);
      reconcile_pending_ = false;
      s = state_;
    }
    asio::post(*workers_, [this, s] {
      for (const auto& v : s.volumes()) {
        if (v.status() == pb::VOLUME_STARTED) {
          bricks_->start(v, uuid_);
        } else {
          bricks_->stop(v, uuid_);
        }
      }
    });
  });
}

void Mgmtd::notify_graph_changed(const std::string& volume, uint64_t version) {
  pb::GraphChanged ev;
  ev.set_volume(volume);
  ev.set_version(version);
  std::vector<rpc::ConnectionPtr> targets;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, sub] : subscribers_) {
      if (!sub.second.count(volume)) continue;
      if (auto c = sub.first.lock()) targets.push_back(std::move(c));
    }
  }
  for (auto& c : targets) c->send_event(pb::GRAPH_CHANGED, ev);
}

Result<void> Mgmtd::become_standalone() {
  MLOG_INFO("leaving the cluster: this server is a cluster of its own again");
  {
    std::lock_guard lock(mu_);
    state_ = pb::ClusterState();
    joining_ = false;
  }
  (void)store_->save(pb::ClusterState());
  return raft_->reset(true);
}

// ---- helpers ----

template <class T>
asio::awaitable<T> Mgmtd::run_blocking_impl(std::shared_ptr<std::function<T()>> work) {
  auto initiate = [this, work](auto handler) mutable {
    auto ex = asio::get_associated_executor(handler, io_.get_executor());
    asio::post(*workers_, [work, handler = std::move(handler), ex]() mutable {
      T result = (*work)();
      asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
        std::move(handler)(std::move(result));
      });
    });
  };
  T result = co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      std::move(initiate), asio::use_awaitable);
  co_return result;
}

asio::awaitable<std::string> Mgmtd::raft_propose(std::string command) {
  auto initiate = [this, command = std::move(command)](auto handler) mutable {
    auto ex = asio::get_associated_executor(handler, io_.get_executor());
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    raft_->propose(std::move(command), [shared, ex](std::string error) {
      asio::post(ex, [shared, error = std::move(error)]() mutable {
        std::move (*shared)(std::move(error));
      });
    });
  };
  std::string error =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::string)>(
          std::move(initiate), asio::use_awaitable);
  co_return error;
}

asio::awaitable<std::string> Mgmtd::raft_change(bool add, uint64_t id, std::string address) {
  auto initiate = [this, add, id, address = std::move(address)](auto handler) mutable {
    auto ex = asio::get_associated_executor(handler, io_.get_executor());
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    auto done = [shared, ex](std::string error) {
      asio::post(ex, [shared, error = std::move(error)]() mutable {
        std::move (*shared)(std::move(error));
      });
    };
    if (add) {
      raft_->add_voter(id, address, std::move(done));
    } else {
      raft_->remove(id, std::move(done));
    }
  };
  std::string error =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::string)>(
          std::move(initiate), asio::use_awaitable);
  co_return error;
}

asio::awaitable<bool> Mgmtd::wait_epoch(uint64_t epoch, std::chrono::milliseconds timeout) {
  asio::steady_timer timer(io_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mu_);
      if (state_.epoch() >= epoch) co_return true;
    }
    timer.expires_after(20ms);
    co_await timer.async_wait(use_nothrow);
  }
  co_return false;
}

template <class Rsp, class Req>
asio::awaitable<Result<Rsp>> Mgmtd::call_client(std::shared_ptr<rpc::RpcClient> client,
                                                pb::MgmtProc proc, Req request) {
  Result<rpc::Reply> reply = co_await client->call(proc, request);
  if (!reply) co_return fail(reply.error());
  Rsp rsp;
  if (!rsp.ParseFromString(reply->message)) co_return fail(EPROTO);
  co_return rsp;
}

template <class Rsp, class Req>
asio::awaitable<Result<Rsp>> Mgmtd::call_host(std::string host, uint16_t port, pb::MgmtProc proc,
                                              Req request) {
  rpc::RpcClient::Options o;
  o.host = host;
  o.port = port;
  o.reconnect = false;
  o.source_address = source_address();
  o.connect_timeout = options_.peer_timeout;
  o.call_timeout = 120s;
  o.ping_timeout = 10s;
  auto client = std::make_shared<rpc::RpcClient>(io_.get_executor(), o);
  client->start();
  bool up = co_await client->wait_up(options_.peer_timeout);
  if (!up) {
    client->stop();
    co_return fail(ENOTCONN);
  }
  Result<Rsp> rsp = co_await call_client<Rsp>(client, proc, std::move(request));
  client->stop();
  co_return rsp;
}

// ---- connections ----

void Mgmtd::on_call(const rpc::ConnectionPtr& conn, rpc::Frame frame) {
  uint32_t proc = frame.header.proc;
  if (!pb::MgmtProc_IsValid(static_cast<int>(proc)) || proc == pb::MGMT_NONE) {
    conn->close("unknown management procedure " + std::to_string(proc));
    return;
  }
  if (!frame.data.empty()) {
    conn->close("data tail on a management call");
    return;
  }
  if (proc == pb::CLI) {
    pb::CliReq req;
    if (!req.ParseFromString(frame.message)) {
      conn->close("undecodable CLI request");
      return;
    }
    asio::co_spawn(io_, handle_cli(conn, frame.header.xid, std::move(req)), asio::detached);
    return;
  }
  asio::co_spawn(io_, handle_peer(conn, std::move(frame)), asio::detached);
}

void Mgmtd::on_close(const rpc::ConnectionPtr& conn) {
  std::lock_guard lock(mu_);
  subscribers_.erase(conn->id());
}

bool Mgmtd::member_address(const std::string& address) const {
  std::lock_guard lock(mu_);
  if (address.empty()) return false;
  // Names as recorded (addresses in most clusters), then what names resolved to.
  for (const auto& p : state_.peers()) {
    for (const auto& n : p.hostnames()) {
      if (n == address) return true;
    }
  }
  return member_addresses_.count(address) > 0;
}

std::shared_ptr<rpc::RpcClient> Mgmtd::peer_client(const std::string& uuid) const {
  std::lock_guard lock(mu_);
  auto it = peers_.find(uuid);
  return it == peers_.end() ? nullptr : it->second;
}

size_t Mgmtd::reachable_voters() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& p : state_.peers()) {
    if (p.uuid() == uuid_) {
      ++n;
      continue;
    }
    auto it = peers_.find(p.uuid());
    if (it != peers_.end() && it->second->is_up()) ++n;
  }
  return n;
}

// ---- proposing ----

asio::awaitable<std::string> Mgmtd::propose(pb::Command command) {
  pb::ClusterState s = state();
  size_t voters = std::max(1, s.peers_size());
  size_t reachable = reachable_voters();
  // A change needs a majority; refusing up front keeps a minority from queueing a change
  // that might commit later, after the operator was told it failed.
  if (reachable * 2 <= voters) {
    co_return "a change needs a majority of the " + std::to_string(voters) + " servers, and only " +
        std::to_string(reachable) + " are reachable from this one; nothing was changed";
  }
  if (raft_->is_leader()) {
    uint64_t before = s.epoch();
    std::string error = co_await raft_propose(command.SerializeAsString());
    if (error == "not the leader" || error == "leadership lost") {
      co_return "the cluster lost its leader while applying the change (" + error +
          "); it may or may not have been applied: check with 'volume info'";
    }
    if (error.empty()) co_await wait_epoch(before + 1, 5s);
    co_return error;
  }
  uint64_t leader = raft_->leader_id();
  const pb::PeerInfo* lp = nullptr;
  for (const auto& p : s.peers()) {
    if (p.raft_id() == leader) lp = &p;
  }
  if (!lp || leader == 0) {
    co_return "the cluster has no leader (a majority of servers must be up); nothing was changed";
  }
  pb::ProposeReq req;
  *req.mutable_command() = command;
  Result<pb::ProposeRsp> rsp =
      co_await call_host<pb::ProposeRsp>(lp->hostnames(0), lp->mgmt_port(), pb::PEER_PROPOSE, req);
  if (!rsp) co_return "cannot reach the leader " + lp->hostnames(0) + ": " + rsp.error().message();
  co_return rsp->error();
}

// ---- CLI ----

asio::awaitable<void> Mgmtd::handle_cli(rpc::ConnectionPtr conn, uint64_t xid, pb::CliReq req) {
  // The CLI socket is root-only; over TCP, changes come only from the cluster's servers.
  bool trusted = conn->is_local() || member_address(conn->peer_address());
  pb::CliRsp rsp = co_await cli(std::move(req), trusted);
  conn->reply(xid, rsp);
}

asio::awaitable<pb::CliRsp> Mgmtd::forward_to_leader(pb::CliReq req) {
  pb::ClusterState s = state();
  uint64_t leader = raft_->leader_id();
  for (const auto& p : s.peers()) {
    if (p.raft_id() != leader || p.uuid() == uuid_) continue;
    Result<pb::CliRsp> rsp =
        co_await call_host<pb::CliRsp>(p.hostnames(0), p.mgmt_port(), pb::CLI, req);
    if (!rsp) {
      co_return error_rsp("cannot reach the cluster's leader " + p.hostnames(0) + ": " +
                          rsp.error().message());
    }
    co_return *rsp;
  }
  size_t voters = std::max(1, s.peers_size());
  co_return error_rsp("the cluster has no leader: a change needs a majority of the " +
                      std::to_string(voters) + " servers, and only " +
                      std::to_string(reachable_voters()) + " are reachable; nothing was changed");
}

asio::awaitable<void> Mgmtd::catch_up_with_leader() {
  pb::ClusterState s = state();
  uint64_t leader = raft_->leader_id();
  for (const auto& p : s.peers()) {
    if (p.raft_id() != leader || p.uuid() == uuid_) continue;
    pb::PeerQueryReq q;
    q.set_from_uuid(uuid_);
    Result<pb::PeerQueryRsp> info =
        co_await call_host<pb::PeerQueryRsp>(p.hostnames(0), p.mgmt_port(), pb::PEER_QUERY, q);
    // Answer from what this server knows if the leader cannot be asked: reads stay available.
    if (info) co_await wait_epoch(info->epoch(), 2s);
    co_return;
  }
}

asio::awaitable<pb::CliRsp> Mgmtd::cli(pb::CliReq req, bool trusted) {
  if (mutating(req)) {
    if (!trusted) {
      co_return error_rsp(
          "changes are accepted only from this server's CLI socket or from "
          "servers of the cluster");
    }
    if (!raft_->is_leader()) co_return co_await forward_to_leader(std::move(req));
  } else if (!raft_->is_leader()) {
    co_await catch_up_with_leader();
  }
  pb::ClusterState s = state();
  switch (req.op_case()) {
    case pb::CliReq::kPeerProbe:
      co_return co_await peer_probe(req.peer_probe().host());
    case pb::CliReq::kPeerDetach:
      co_return co_await peer_detach(req.peer_detach().host(), req.peer_detach().force());
    case pb::CliReq::kPeerStatus:
      co_return peer_status(false);
    case pb::CliReq::kPoolList:
      co_return peer_status(true);
    case pb::CliReq::kVolumeCreate:
      co_return co_await volume_create(req.volume_create());
    case pb::CliReq::kVolumeStart:
      co_return co_await volume_start(req.volume_start());
    case pb::CliReq::kVolumeStop:
      co_return co_await volume_stop(req.volume_stop());
    case pb::CliReq::kVolumeDelete:
      co_return co_await volume_delete(req.volume_delete());
    case pb::CliReq::kVolumeInfo: {
      pb::CliRsp rsp;
      const std::string& name = req.volume_info().name();
      if (name.empty() || name == "all") {
        for (const auto& v : s.volumes()) *rsp.add_volumes() = v;
      } else if (const auto* v = find_volume(s, name)) {
        *rsp.add_volumes() = *v;
      } else {
        rsp.set_error("Volume " + name + " does not exist");
      }
      co_return rsp;
    }
    case pb::CliReq::kVolumeStatus:
      co_return co_await volume_status(req.volume_status());
    case pb::CliReq::kVolumeSet:
      co_return co_await volume_set(req.volume_set());
    case pb::CliReq::kVolumeGet: {
      const auto* v = find_volume(s, req.volume_get().name());
      if (!v) co_return error_rsp("Volume " + req.volume_get().name() + " does not exist");
      auto values = volume_get(*v, req.volume_get().key());
      if (!values) co_return error_rsp(values.error());
      pb::CliRsp rsp;
      for (auto& o : *values) *rsp.add_options() = std::move(o);
      co_return rsp;
    }
    case pb::CliReq::kVolumeReset:
      co_return co_await volume_reset(req.volume_reset());
    case pb::CliReq::kVolumeSetHelp: {
      pb::CliRsp rsp;
      for (auto& o : volume_set_help()) *rsp.add_options() = std::move(o);
      co_return rsp;
    }
    case pb::CliReq::kVolumeGraph: {
      const auto* v = find_volume(s, req.volume_graph().name());
      if (!v) co_return error_rsp("Volume " + req.volume_graph().name() + " does not exist");
      auto graph = generate_client_graph(*v);
      if (!graph) co_return error_rsp(graph.error());
      pb::CliRsp rsp;
      rsp.set_text(xl::render_volfile(graph->graph()));
      co_return rsp;
    }
    case pb::CliReq::OP_NOT_SET:
      break;
  }
  co_return error_rsp("empty request");
}

pb::CliRsp Mgmtd::peer_status(bool include_self) {
  pb::ClusterState s = state();
  pb::CliRsp rsp;
  for (const auto& p : s.peers()) {
    bool self = p.uuid() == uuid_;
    if (self && !include_self) continue;
    pb::PeerStatus* st = rsp.add_peers();
    st->set_uuid(p.uuid());
    st->set_hostname(p.hostnames_size() ? p.hostnames(0) : "");
    for (int i = 1; i < p.hostnames_size(); ++i) st->add_other_names(p.hostnames(i));
    st->set_local(self);
    auto c = self ? nullptr : peer_client(p.uuid());
    st->set_connected(self || (c && c->is_up()));
  }
  if (include_self && s.peers().empty()) {
    pb::PeerStatus* st = rsp.add_peers();  // a server that has not founded its cluster yet
    st->set_uuid(uuid_);
    st->set_hostname(advertise_);
    st->set_local(true);
    st->set_connected(true);
  }
  return rsp;
}

asio::awaitable<pb::CliRsp> Mgmtd::peer_probe(std::string host) {
  uint16_t port = options_.port;
  if (auto colon = host.rfind(':'); colon != std::string::npos &&
                                    host.find(']') == std::string::npos &&
                                    host.find(':') == colon) {
    port = static_cast<uint16_t>(std::atoi(host.c_str() + colon + 1));
    host = host.substr(0, colon);
  }
  pb::ClusterState s = state();
  pb::PeerQueryReq q;
  q.set_from_uuid(uuid_);
  q.set_cluster_id(s.cluster_id());
  Result<pb::PeerQueryRsp> info =
      co_await call_host<pb::PeerQueryRsp>(host, port, pb::PEER_QUERY, q);
  if (!info) {
    co_return error_rsp("Probe returned with " + info.error().message() +
                        " (is mortar-mgmtd "
                        "running on " +
                        host + "?)");
  }
  if (info->self().uuid() == uuid_) co_return error_rsp("Probe on localhost not needed");
  if (find_peer(s, info->self().uuid())) {
    pb::CliRsp rsp;
    rsp.set_message("Host " + host + " port " + std::to_string(port) + " already in peer list");
    co_return rsp;
  }
  if (!info->free()) {
    co_return error_rsp(host +
                        " is either already part of another cluster or having volumes "
                        "configured");
  }
  pb::PrepareJoinReq join;
  join.set_cluster_id(s.cluster_id());
  join.set_leader_uuid(uuid_);
  Result<pb::ProposeRsp> prepared =
      co_await call_host<pb::ProposeRsp>(host, port, pb::PEER_PREPARE_JOIN, join);
  if (!prepared || !prepared->error().empty()) {
    co_return error_rsp("Probe of " + host +
                        " failed: " + (prepared ? prepared->error() : prepared.error().message()));
  }
  pb::PeerInfo peer = info->self();
  // Keep the name the operator used first: that is what `peer status` shows.
  std::vector<std::string> names = {host};
  for (const auto& n : peer.hostnames()) {
    if (n != host) names.push_back(n);
  }
  peer.clear_hostnames();
  for (auto& n : names) peer.add_hostnames(n);
  std::string error = co_await raft_change(true, peer.raft_id(), peer.raft_address());
  if (!error.empty()) {
    (void)co_await call_host<pb::ProposeRsp>(host, port, pb::PEER_LEAVE, pb::Empty0());
    co_return error_rsp("Probe of " + host + " failed: " + error);
  }
  pb::Command cmd;
  *cmd.mutable_add_peer()->mutable_peer() = peer;
  error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<pb::CliRsp> Mgmtd::peer_detach(std::string host, bool force) {
  pb::ClusterState s = state();
  const pb::PeerInfo* p = find_peer_by_name(s, host);
  if (!p) {
    auto blocking1 = run_blocking([host] { return resolve(host); });
    std::vector<std::string> addresses = co_await std::move(blocking1);
    for (const auto& addr : addresses) {
      if ((p = find_peer_by_name(s, addr))) break;
    }
  }
  if (!p) co_return error_rsp(host + " is not part of cluster");
  if (p->uuid() == uuid_) co_return error_rsp(host + " is localhost");
  for (const auto& v : s.volumes()) {
    for (const auto& b : v.bricks()) {
      if (b.peer_uuid() == p->uuid()) {
        co_return error_rsp("Brick(s) with the peer " + host + " exist in cluster");
      }
    }
  }
  pb::PeerInfo peer = *p;
  auto client = peer_client(peer.uuid());
  if (!force && (!client || !client->is_up())) {
    co_return error_rsp(host + " is not connected; 'peer detach " + host +
                        " force' detaches it anyway");
  }
  pb::Command cmd;
  cmd.mutable_remove_peer()->set_uuid(peer.uuid());
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  error = co_await raft_change(false, peer.raft_id(), "");
  if (!error.empty()) MLOG_WARN("removing {} from the Raft group: {}", host, error);
  if (client && client->is_up()) {
    (void)co_await call_client<pb::ProposeRsp>(client, pb::PEER_LEAVE, pb::Empty0());
  }
  co_return pb::CliRsp();
}

// ---- volumes ----

std::string Mgmtd::check_bricks_locally(const pb::CheckBricksReq& req) {
  struct stat root;
  ::stat("/", &root);
  for (const auto& path : req.paths()) {
    std::error_code ec;
    if (fs::exists(path, ec) && !fs::is_directory(path, ec)) {
      return "Brick " + advertise_ + ":" + path + " is not a directory";
    }
    fs::create_directories(path, ec);
    if (ec)
      return "Failed to create brick directory for brick " + advertise_ + ":" + path +
             ". Reason : " + ec.message();
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
      return "Brick " + advertise_ + ":" + path + ": " + std::strerror(errno);
    if (st.st_dev == root.st_dev && !req.force()) {
      return "The brick " + advertise_ + ":" + path +
             " is being created in the root partition. It is recommended that you don't use the "
             "system's root partition for storage backend. Or use 'force' at the end of the "
             "command if you want to override this behavior.";
    }
    char volume[256];
    ssize_t n = ::getxattr(path.c_str(), kVolumeXattr, volume, sizeof volume);
    if (n > 0 && std::string(volume, static_cast<size_t>(n)) != req.volume() && !req.force()) {
      return advertise_ + ":" + path + " is already part of a volume (" +
             std::string(volume, static_cast<size_t>(n)) + ")";
    }
  }
  return "";
}

asio::awaitable<std::string> Mgmtd::check_bricks_everywhere(pb::VolumeSpec volume, bool force) {
  pb::ClusterState s = state();
  std::map<std::string, pb::CheckBricksReq> per_peer;
  for (const auto& b : volume.bricks()) {
    auto& req = per_peer[b.peer_uuid()];
    req.set_volume(volume.name());
    req.set_force(force);
    req.add_paths(b.path());
  }
  for (auto& [uuid, req] : per_peer) {
    std::string error;
    if (uuid == uuid_) {
      auto blocking2 = run_blocking([this, req] { return check_bricks_locally(req); });
      error = co_await std::move(blocking2);
    } else {
      auto client = peer_client(uuid);
      const auto* p = find_peer(s, uuid);
      bool up = client && (client->is_up() || co_await client->wait_up(options_.peer_timeout));
      if (!up) co_return "Host " + (p ? p->hostnames(0) : uuid) + " is not connected";
      Result<pb::CheckBricksRsp> rsp =
          co_await call_client<pb::CheckBricksRsp>(client, pb::PEER_CHECK_BRICKS, req);
      if (!rsp)
        co_return "checking bricks on " + (p ? p->hostnames(0) : uuid) + ": " +
            rsp.error().message();
      error = rsp->error();
    }
    if (!error.empty()) co_return error;
  }
  co_return "";
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_create(pb::VolumeCreate req) {
  pb::ClusterState s = state();
  if (auto e = check_volume_name(req.name()); !e.empty()) co_return error_rsp(e);
  if (find_volume(s, req.name())) co_return error_rsp("Volume " + req.name() + " already exists");
  uint32_t replica = std::max<uint32_t>(1, req.replica_count());
  uint32_t arbiter = req.arbiter_count();
  if (arbiter == 1 && replica == 2) replica = 3;  // "replica 2 arbiter 1" means 2 data + 1 arbiter
  if (!req.transport().empty() && req.transport() != "tcp") {
    co_return error_rsp("transport " + req.transport() + " is not supported; use tcp");
  }
  if (req.bricks().empty()) co_return error_rsp("no bricks given");
  if (req.bricks_size() % replica != 0) {
    co_return error_rsp("Incorrect number of bricks supplied " + std::to_string(req.bricks_size()) +
                        " with count " + std::to_string(replica));
  }
  pb::VolumeSpec v;
  v.set_name(req.name());
  v.set_id(Gfid::random().str());
  v.set_replica_count(replica);
  v.set_arbiter_count(arbiter);
  v.set_transport("tcp");
  for (int i = 0; i < req.bricks_size(); ++i) {
    std::string host, path;
    if (auto e = parse_brick(req.bricks(i), host, path); !e.empty()) co_return error_rsp(e);
    const pb::PeerInfo* p = find_peer_by_name(s, host);
    if (!p) {
      auto blocking3 = run_blocking([host] { return resolve(host); });
      auto addresses = co_await std::move(blocking3);
      for (const auto& a : addresses) {
        if ((p = find_peer_by_name(s, a))) break;
      }
    }
    if (!p) co_return error_rsp("Host " + host + " is not in 'Peer in Cluster' state");
    pb::BrickSpec* b = v.add_bricks();
    b->set_host(host);
    b->set_path(path);
    b->set_peer_uuid(p->uuid());
    b->set_arbiter(arbiter == 1 && (i % replica) == replica - 1);
  }
  if (replica > 1 && !req.force()) {
    for (int set = 0; set < v.bricks_size(); set += static_cast<int>(replica)) {
      std::set<std::string> servers;
      for (uint32_t j = 0; j < replica; ++j) {
        if (!servers.insert(v.bricks(set + static_cast<int>(j)).peer_uuid()).second) {
          co_return error_rsp(
              "Multiple bricks of a replicate volume are present on the same server. This setup "
              "is not optimal. Bricks should be on different nodes to have best fault tolerant "
              "configuration. Use 'force' at the end of the command if you want to override "
              "this behavior.");
        }
      }
    }
  }
  // What the state alone decides (reuse, nesting), before touching any server.
  pb::Command cmd;
  *cmd.mutable_create_volume()->mutable_volume() = v;
  pb::ClusterState trial = s;
  if (auto e = apply_command(trial, cmd); !e.empty()) co_return error_rsp(e);
  if (auto e = co_await check_bricks_everywhere(v, req.force()); !e.empty()) co_return error_rsp(e);
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<std::vector<pb::BrickStatus>> Mgmtd::brick_status(pb::VolumeSpec volume,
                                                                  bool detail) {
  pb::ClusterState s = state();
  std::map<std::string, pb::BrickStatus> by_brick;  // "uuid path" -> status
  std::set<std::string> servers;
  for (const auto& b : volume.bricks()) servers.insert(b.peer_uuid());
  for (const auto& uuid : servers) {
    std::vector<pb::BrickStatus> local;
    if (uuid == uuid_) {
      auto blocking4 =
          run_blocking([this, volume, detail] { return bricks_->status(volume, uuid_, detail); });
      local = co_await std::move(blocking4);
    } else if (auto client = peer_client(uuid); client && client->is_up()) {
      pb::BrickStatusReq req;
      req.set_volume(volume.name());
      req.set_detail(detail);
      Result<pb::BrickStatusRsp> rsp =
          co_await call_client<pb::BrickStatusRsp>(client, pb::PEER_BRICK_STATUS, req);
      if (rsp) local.assign(rsp->bricks().begin(), rsp->bricks().end());
    }
    for (auto& st : local) by_brick[uuid + " " + st.path()] = st;
  }
  std::vector<pb::BrickStatus> out;
  for (const auto& b : volume.bricks()) {
    auto it = by_brick.find(b.peer_uuid() + " " + b.path());
    if (it != by_brick.end()) {
      out.push_back(it->second);
    } else {
      pb::BrickStatus st;  // its server is unreachable
      st.set_host(b.host());
      st.set_path(b.path());
      out.push_back(std::move(st));
    }
  }
  co_return out;
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_start(pb::VolumeName req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  if (v->status() == pb::VOLUME_STARTED && !req.force()) {
    co_return error_rsp("Volume " + req.name() + " already started");
  }
  pb::Command cmd;
  auto* start = cmd.mutable_start_volume();
  start->set_name(req.name());
  start->set_force(req.force());
  for (uint32_t p : assign_ports(s, *v)) start->add_ports(p);
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  // Like GlusterFS, answer once the bricks serve (or say which did not).
  pb::VolumeSpec started = *find_volume(state(), req.name());
  asio::steady_timer timer(io_);
  std::vector<pb::BrickStatus> st;
  for (int i = 0; i < 100; ++i) {
    st = co_await brick_status(started, false);
    if (std::all_of(st.begin(), st.end(), [](const pb::BrickStatus& b) { return b.online(); })) {
      co_return pb::CliRsp();
    }
    timer.expires_after(100ms);
    co_await timer.async_wait(use_nothrow);
  }
  std::string down;
  for (const auto& b : st) {
    if (!b.online()) down += (down.empty() ? "" : ", ") + b.host() + ":" + b.path();
  }
  co_return error_rsp("Commit failed: brick(s) " + down +
                      " did not start; see the brick logs. 'volume start " + req.name() +
                      " force' retries them");
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_stop(pb::VolumeName req) {
  pb::Command cmd;
  cmd.mutable_stop_volume()->set_name(req.name());
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_delete(pb::VolumeName req) {
  pb::Command cmd;
  cmd.mutable_delete_volume()->set_name(req.name());
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_status(pb::VolumeName req) {
  pb::ClusterState s = state();
  pb::CliRsp rsp;
  std::vector<pb::VolumeSpec> volumes;
  if (req.name().empty() || req.name() == "all") {
    for (const auto& v : s.volumes()) volumes.push_back(v);
  } else if (const auto* v = find_volume(s, req.name())) {
    volumes.push_back(*v);
  } else {
    co_return error_rsp("Volume " + req.name() + " does not exist");
  }
  for (const auto& v : volumes) {
    if (v.status() != pb::VOLUME_STARTED) {
      if (!req.name().empty() && req.name() != "all") {
        co_return error_rsp("Volume " + v.name() + " is not started");
      }
      continue;
    }
    pb::VolumeStatusEntry* e = rsp.add_status();
    e->set_name(v.name());
    std::vector<pb::BrickStatus> bricks = co_await brick_status(v, req.detail());
    for (auto& b : bricks) *e->add_bricks() = std::move(b);
  }
  co_return rsp;
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_set(pb::VolumeSet req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  pb::Command cmd;
  auto* set = cmd.mutable_set_options();
  set->set_volume(req.name());
  for (const auto& [key, value] : req.options()) {
    auto normalised = validate_volume_option(*v, key, value);
    if (!normalised) co_return error_rsp(normalised.error());
    (*set->mutable_options())[key] = *normalised;
  }
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_reset(pb::VolumeReset req) {
  pb::ClusterState s = state();
  if (!find_volume(s, req.name())) co_return error_rsp("Volume " + req.name() + " does not exist");
  pb::Command cmd;
  auto* reset = cmd.mutable_reset_options();
  reset->set_volume(req.name());
  if (!req.key().empty() && req.key() != "all") {
    if (!find_volume_option(req.key())) {
      std::string hint = closest_volume_option(req.key());
      co_return error_rsp("option " + req.key() + " does not exist" +
                          (hint.empty() ? "" : "; did you mean " + hint + "?"));
    }
    reset->add_keys(req.key());
  }
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

// ---- calls from other servers and clients ----

asio::awaitable<void> Mgmtd::handle_peer(rpc::ConnectionPtr conn, rpc::Frame frame) {
  uint64_t xid = frame.header.xid;
  auto bad = [&] { conn->close("undecodable management request"); };
  bool member = conn->is_local() || member_address(conn->peer_address());
  switch (static_cast<pb::MgmtProc>(frame.header.proc)) {
    case pb::PEER_PING:
      conn->reply(xid, pb::Empty0());
      co_return;
    case pb::PEER_QUERY: {
      pb::ClusterState s = state();
      pb::PeerQueryRsp rsp;
      *rsp.mutable_self() = self_info();
      rsp.set_cluster_id(s.cluster_id());
      rsp.set_epoch(s.epoch());
      bool joining;
      {
        std::lock_guard lock(mu_);
        joining = joining_;
      }
      rsp.set_free(!joining && s.peers_size() <= 1 && s.volumes().empty());
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::PEER_PREPARE_JOIN: {
      pb::PrepareJoinReq req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      pb::ProposeRsp rsp;
      pb::ClusterState s = state();
      if (s.peers_size() > 1 || !s.volumes().empty()) {
        rsp.set_error("this server is part of another cluster or has volumes");
      } else {
        MLOG_INFO("joining cluster {} (probed by {})", req.cluster_id(), req.leader_uuid());
        {
          std::lock_guard lock(mu_);
          state_ = pb::ClusterState();
          joining_ = true;
        }
        (void)store_->save(pb::ClusterState());
        auto blocking5 = run_blocking([this] { return raft_->reset(false); });
        auto r = co_await std::move(blocking5);
        if (!r) rsp.set_error("cannot reset Raft state: " + r.error().message());
      }
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::PEER_LEAVE: {
      if (!member) co_return conn->reply_error(xid, Errno(EACCES));
      conn->reply(xid, pb::ProposeRsp());
      auto blocking6 = run_blocking([this] { return become_standalone(); });
      (void)co_await std::move(blocking6);
      co_return;
    }
    case pb::PEER_PROPOSE: {
      if (!member) co_return conn->reply_error(xid, Errno(EACCES));
      pb::ProposeReq req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      pb::ProposeRsp rsp;
      rsp.set_error(co_await propose(req.command()));
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::PEER_CHECK_BRICKS: {
      if (!member) co_return conn->reply_error(xid, Errno(EACCES));
      pb::CheckBricksReq req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      pb::CheckBricksRsp rsp;
      auto blocking7 = run_blocking([this, req] { return check_bricks_locally(req); });
      std::string error = co_await std::move(blocking7);
      rsp.set_error(error);
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::PEER_BRICK_STATUS: {
      pb::BrickStatusReq req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      pb::BrickStatusRsp rsp;
      pb::ClusterState s = state();
      if (const auto* v = find_volume(s, req.volume())) {
        pb::VolumeSpec volume = *v;
        bool detail = req.detail();
        auto blocking8 =
            run_blocking([this, volume, detail] { return bricks_->status(volume, uuid_, detail); });
        std::vector<pb::BrickStatus> local = co_await std::move(blocking8);
        for (auto& b : local) *rsp.add_bricks() = std::move(b);
      }
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::GETSPEC: {
      pb::GetspecReq req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      pb::ClusterState s = state();
      const auto* v = find_volume(s, req.volume());
      if (!v) co_return conn->reply_error(xid, Errno(ENOENT));
      if (v->status() != pb::VOLUME_STARTED) co_return conn->reply_error(xid, Errno(EAGAIN));
      auto graph = generate_client_graph(*v);
      if (!graph) {
        MLOG_WARN("no client graph for {}: {}", v->name(), graph.error());
        co_return conn->reply_error(xid, Errno(EINVAL));
      }
      if (req.subscribe()) {
        std::lock_guard lock(mu_);
        auto& sub = subscribers_[conn->id()];
        sub.first = conn;
        sub.second.insert(req.volume());
      }
      conn->reply(xid, *graph);
      co_return;
    }
    default:
      conn->close("unexpected management procedure " + std::to_string(frame.header.proc));
      co_return;
  }
}

// ---- upkeep ----

asio::awaitable<void> Mgmtd::maintain() {
  asio::steady_timer timer(io_);
  bool first_reconcile_done = false;
  auto started = std::chrono::steady_clock::now();
  std::map<std::string, std::vector<std::string>> resolved;  // hostname -> addresses
  while (!stopping_) {
    timer.expires_after(200ms);
    co_await timer.async_wait(use_nothrow);
    if (stopping_) break;
    pb::ClusterState s = state();
    bool joining;
    {
      std::lock_guard lock(mu_);
      joining = joining_;
      if (joining && find_peer(state_, uuid_)) joining_ = joining = false;
    }
    // A fresh one-server cluster records itself as its founder.
    if (s.cluster_id().empty() && !joining && raft_->is_leader()) {
      pb::Command init;
      init.mutable_init_cluster()->set_cluster_id(Gfid::random().str());
      *init.mutable_init_cluster()->mutable_founder() = self_info();
      std::string error = co_await raft_propose(init.SerializeAsString());
      if (!error.empty()) MLOG_WARN("founding the cluster: {}", error);
      continue;
    }
    // Standing connections to every other server: liveness for `peer status`, and the
    // majority check before a change.
    std::set<std::string> addresses;
    sync_peer_clients(s);
    for (const auto& p : s.peers()) {
      for (const auto& name : p.hostnames()) {
        addresses.insert(name);
        if (!resolved.count(name)) {
          auto blocking9 = run_blocking([name] { return resolve(name); });
          resolved[name] = co_await std::move(blocking9);
        }
        for (const auto& a : resolved[name]) addresses.insert(a);
      }
    }
    {
      std::lock_guard lock(mu_);
      member_addresses_ = std::move(addresses);
    }
    // Once the log has been replayed after a start, make the bricks match the state.
    if (!first_reconcile_done && std::chrono::steady_clock::now() - started > 1s) {
      first_reconcile_done = true;
      reconcile_bricks();
    }
  }
}

}  // namespace mortar::mgmtd
