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
#include "proto/shd.pb.h"
#include "translators/dht/bucket_map.h"
#include "translators/volfile.h"

namespace mortar::mgmtd {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// GlusterFS's refusal (without force) of a replica set with two bricks on one server: `bricks`
// in sets of `replica`. "" when every set spans distinct servers.
std::string sets_on_one_server(const pb::VolumeSpec& volume, uint32_t replica) {
  if (replica < 2) return "";
  for (int set = 0; set + static_cast<int>(replica) <= volume.bricks_size();
       set += static_cast<int>(replica)) {
    std::set<std::string> servers;
    for (uint32_t j = 0; j < replica; ++j) {
      if (!servers.insert(volume.bricks(set + static_cast<int>(j)).peer_uuid()).second) {
        return "Multiple bricks of a replicate volume are present on the same server. This setup "
               "is not optimal. Bricks should be on different nodes to have best fault tolerant "
               "configuration. Use 'force' at the end of the command if you want to override "
               "this behavior.";
      }
    }
  }
  return "";
}

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

// Adds one heal daemon's counters to another's: the volume's figures are their sums.
void add_heal_stats(pb::ShdStats& sum, const pb::ShdStats& more) {
  sum.set_healed(sum.healed() + more.healed());
  sum.set_bytes_healed(sum.bytes_healed() + more.bytes_healed());
  sum.set_blocks_healed(sum.blocks_healed() + more.blocks_healed());
  sum.set_blocks_skipped(sum.blocks_skipped() + more.blocks_skipped());
  sum.set_split_brain(std::max(sum.split_brain(), more.split_brain()));
  sum.set_failed(sum.failed() + more.failed());
  sum.set_crawls(sum.crawls() + more.crawls());
  sum.set_full_crawls(sum.full_crawls() + more.full_crawls());
  sum.set_rate(sum.rate() + more.rate());
  // Every daemon reads the same heal indexes.
  sum.set_pending(std::max(sum.pending(), more.pending()));
  if (sum.pending() == 0) {
    sum.set_eta_seconds(0);
  } else {
    sum.set_eta_seconds(sum.rate() > 0 ? sum.pending() / sum.rate() : -1);
  }
  if (more.last_crawl_start() &&
      (!sum.last_crawl_start() || more.last_crawl_start() < sum.last_crawl_start())) {
    sum.set_last_crawl_start(more.last_crawl_start());
  }
  sum.set_last_crawl_end(std::max(sum.last_crawl_end(), more.last_crawl_end()));
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
    case pb::CliReq::kVolumeHeal:  // asks the self-heal daemons; changes no cluster state
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
  if (options_.shd.empty()) {
    options_.shd = (fs::read_symlink("/proc/self/exe").parent_path() / "mortar-shd").string();
  }
  started_at_ = std::chrono::steady_clock::now();
  workers_ = std::make_unique<asio::thread_pool>(4);
  bricks_ = std::make_unique<BrickSupervisor>(BrickSupervisor::Options{
      options_.brickd, options_.run_dir, options_.log_dir, options_.address});
  shd_ = std::make_unique<ShdSupervisor>(
      ShdSupervisor::Options{options_.shd, options_.run_dir, options_.log_dir,
                             advertise_ + ":" + std::to_string(options_.port), uuid_});

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

std::string Mgmtd::apply(uint64_t index, std::string_view command) {
  pb::Command cmd;
  if (!cmd.ParseFromArray(command.data(), static_cast<int>(command.size()))) {
    MLOG_ERROR("undecodable command in the Raft log ({} bytes)", command.size());
    return "undecodable command";
  }
  pb::ClusterState copy;
  std::string error;
  {
    std::lock_guard lock(mu_);
    // The saved state holds every entry up to its applied_index, and Raft replays its log
    // from the last snapshot on every start: applying an entry again would apply it on top
    // of its own effects and of later ones (bumping epochs and versions, undoing changes).
    if (index <= state_.applied_index()) {
      MLOG_DEBUG("entry {} is in the saved state already", index);
      return "";
    }
    error = apply_command(state_, cmd);
    state_.set_applied_index(index);
    copy = state_;
  }
  (void)store_->save(copy);
  if (!error.empty()) {
    MLOG_DEBUG("entry {}: command refused: {}", index, error);
    return error;
  }
  MLOG_DEBUG("entry {}: applied command {} (epoch {})", index, static_cast<int>(cmd.op_case()),
             copy.epoch());
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
    // At start Raft restores its last snapshot, which may be older than the saved state;
    // the entries after it are then replayed, and apply() skips those the state holds.
    if (restored.applied_index() < state_.applied_index()) {
      MLOG_INFO("keeping the saved cluster state (entry {}), newer than the snapshot (entry {})",
                state_.applied_index(), restored.applied_index());
      return;
    }
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
    case pb::Command::kRemoveBricks:
      if (const auto* v = find_volume(state, cmd.remove_bricks().name())) {
        if (cmd.remove_bricks().phase() != pb::RemoveBricks::START) {
          pb::VolumeSpec retired = *v;  // the bricks that left, to stop those of this server
          *retired.mutable_bricks() = cmd.remove_bricks().removed();
          asio::post(*workers_, [this, retired] { bricks_->stop(retired, uuid_); });
        }
        notify_graph_changed(v->name(), v->version());
        reconcile_shd();
      }
      break;
    case pb::Command::kSettleBuckets:
      if (const auto* v = find_volume(state, cmd.settle_buckets().name())) {
        notify_graph_changed(v->name(), v->version());
        reconcile_shd();
      }
      break;
    case pb::Command::kAddBricks:
      reconcile_bricks();
      if (const auto* v = find_volume(state, cmd.add_bricks().name())) {
        // The running bricks learn the new servers, whose heal daemons they must admit.
        pb::VolumeSpec volume = *v;
        asio::post(*workers_, [this, volume] { bricks_->reconfigure(volume, uuid_); });
        notify_graph_changed(v->name(), v->version());
      }
      break;
    case pb::Command::kReplaceBrick: {
      const auto& r = cmd.replace_brick();
      const auto* v = find_volume(state, r.name());
      if (!v) break;
      pb::VolumeSpec volume = *v;
      bool local_set = false;
      uint32_t per_set = std::max<uint32_t>(1, volume.replica_count());
      uint32_t first = r.index() / per_set * per_set;
      for (uint32_t i = first; i < first + per_set; ++i) {
        local_set |= volume.bricks(static_cast<int>(i)).peer_uuid() == uuid_;
      }
      pb::VolumeSpec retired = volume;  // the old brick alone, to stop it if it is ours
      retired.clear_bricks();
      *retired.add_bricks() = r.old();
      pb::ClusterState s = state;
      asio::post(*workers_, [this, retired, volume, s, local_set] {
        bricks_->stop(retired, uuid_);
        bricks_->reconfigure(volume, uuid_);  // a new server may host the new brick
        if (volume.status() == pb::VOLUME_STARTED) bricks_->start(volume, uuid_);
        shd_->reconcile(s, uuid_);
        // The new brick starts empty: the servers of its set heal it in full.
        if (local_set && volume.status() == pb::VOLUME_STARTED) {
          asio::co_spawn(io_, heal_replaced(volume.name()), asio::detached);
        }
      });
      notify_graph_changed(volume.name(), volume.version());
      break;
    }
    case pb::Command::kSetOptions:
    case pb::Command::kResetOptions: {
      const std::string& name =
          cmd.has_set_options() ? cmd.set_options().volume() : cmd.reset_options().volume();
      if (const auto* v = find_volume(state, name)) {
        pb::VolumeSpec volume = *v;
        asio::post(*workers_, [this, volume] { bricks_->reconfigure(volume, uuid_); });
        notify_graph_changed(volume.name(), volume.version());
        reconcile_shd();  // its graph of the volume is out of date
      }
      break;
    }
    case pb::Command::kRemovePeer:
      if (cmd.remove_peer().uuid() == uuid_) {
        // This server was detached: once the leader has taken it out of the Raft group, it
        // becomes a cluster of its own again.
        // The leader usually says so first (PEER_LEAVE), and the server may be probed into
        // a cluster again by then: only a server still out of the cluster that removed it
        // leaves.
        auto timer = std::make_shared<asio::steady_timer>(io_, 2s);
        std::string cluster = state.cluster_id();
        timer->async_wait([this, timer, cluster](const boost::system::error_code&) {
          asio::post(*workers_, [this, cluster] { (void)become_standalone(cluster); });
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
      {
        std::lock_guard lock(mu_);
        reconciled_epoch_ = std::max(reconciled_epoch_, s.epoch());
      }
      shd_->reconcile(s, uuid_);
    });
  });
}

void Mgmtd::reconcile_shd() {
  pb::ClusterState s = state();
  asio::post(*workers_, [this, s] { shd_->reconcile(s, uuid_); });
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

Result<void> Mgmtd::become_standalone(const std::string& removed_from) {
  std::lock_guard reset(reset_mu_);
  {
    std::lock_guard lock(mu_);
    if (!removed_from.empty() &&
        (joining_ || state_.cluster_id() != removed_from || find_peer(state_, uuid_))) {
      return ok();
    }
  }
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
                                                uint32_t proc, Req request) {
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

asio::awaitable<bool> Mgmtd::majority_reachable() {
  asio::steady_timer timer(io_);
  while (true) {
    size_t voters = std::max(1, state().peers_size());
    if (reachable_voters() * 2 > voters) co_return true;
    if (std::chrono::steady_clock::now() >= started_at_ + 5s) co_return false;
    timer.expires_after(50ms);
    co_await timer.async_wait(use_nothrow);
  }
}

asio::awaitable<size_t> Mgmtd::answering_voters(std::chrono::milliseconds timeout) {
  pb::ClusterState s = state();
  std::vector<std::shared_ptr<rpc::RpcClient>> clients;
  size_t answering = 0;
  for (const auto& p : s.peers()) {
    if (p.uuid() == uuid_) {
      ++answering;
    } else if (auto c = peer_client(p.uuid()); c && c->is_up()) {
      clients.push_back(std::move(c));
    }
  }
  // One deadline for all: the pings run one after the other, and the whole wait stays bounded.
  rpc::CallOptions options;
  options.deadline = std::chrono::steady_clock::now() + timeout;
  pb::Empty0 ping;
  for (auto& c : clients) {
    auto pending = c->call(pb::PEER_PING, ping, Buffer(), options);
    Result<rpc::Reply> pong = co_await std::move(pending);
    if (pong) ++answering;
  }
  co_return answering;
}

asio::awaitable<std::string> Mgmtd::propose(pb::Command command) {
  // A change needs a majority; refusing up front keeps a minority from queueing a change
  // that might commit later, after the operator was told it failed.
  bool majority = co_await majority_reachable();
  pb::ClusterState s = state();
  size_t voters = std::max(1, s.peers_size());
  size_t reachable = reachable_voters();
  if (!majority) {
    co_return "a change needs a majority of the " + std::to_string(voters) + " servers, and only " +
        std::to_string(reachable) + " are reachable from this one; nothing was changed";
  }
  if (raft_->is_leader()) {
    // A server that froze or lost power (no FIN) looks connected until its ping times out;
    // a change proposed meanwhile would wait in the log and could commit once the server is
    // back, after the operator was told it failed. So ask them all now.
    size_t answering = co_await answering_voters(1s);
    if (answering * 2 <= voters) {
      co_return "a change needs a majority of the " + std::to_string(voters) +
          " servers, and only " + std::to_string(answering) +
          " answer this one; nothing was changed";
    }
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
  pb::CliRsp rsp = co_await cli(std::move(req), trusted, conn->is_local());
  conn->reply(xid, rsp);
}

asio::awaitable<pb::CliRsp> Mgmtd::forward_to_leader(pb::CliReq req, bool local) {
  // Without a leader an election is under way (servers just started, or the leader died).
  // While a majority is reachable one is elected within a few election timeouts: wait for it
  // rather than refuse a change the cluster can take a moment later.
  asio::steady_timer timer(io_);
  auto deadline = std::chrono::steady_clock::now() + 3s;
  pb::ClusterState s = state();
  while (true) {
    if (raft_->is_leader()) co_return co_await cli(std::move(req), true, local);
    s = state();
    uint64_t leader = raft_->leader_id();
    const pb::PeerInfo* lp = nullptr;
    for (const auto& p : s.peers()) {
      if (p.raft_id() == leader && p.uuid() != uuid_) lp = &p;
    }
    // A leader this server has lost its connection to has most likely died, and Raft has not
    // noticed yet: wait for its successor rather than fail on it.
    auto standing = lp ? peer_client(lp->uuid()) : nullptr;
    if (lp && (!standing || standing->is_up() || std::chrono::steady_clock::now() >= deadline)) {
      pb::PeerInfo target = *lp;
      Result<pb::CliRsp> rsp = co_await call_host<pb::CliRsp>(
          target.hostnames(0), static_cast<uint16_t>(target.mgmt_port()), pb::CLI, req);
      if (!rsp) {
        co_return error_rsp("cannot reach the cluster's leader " + target.hostnames(0) + ": " +
                            rsp.error().message());
      }
      co_return *rsp;
    }
    bool majority = co_await majority_reachable();
    if (majority && std::chrono::steady_clock::now() >= deadline) {
      co_return error_rsp(
          "the cluster is electing a leader; nothing was changed: try again in a moment");
    }
    if (!majority) break;
    timer.expires_after(50ms);
    co_await timer.async_wait(use_nothrow);
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

asio::awaitable<pb::CliRsp> Mgmtd::cli(pb::CliReq req, bool trusted, bool local) {
  if (mutating(req)) {
    if (!trusted) {
      co_return error_rsp(
          "changes are accepted only from this server's CLI socket or from "
          "servers of the cluster");
    }
    if (!raft_->is_leader()) {
      std::optional<pb::CliRsp> here = co_await peer_command_here(req);
      if (here) co_return *here;
      co_return co_await forward_to_leader(std::move(req), local);
    }
  } else if (!raft_->is_leader()) {
    co_await catch_up_with_leader();
  }
  pb::ClusterState s = state();
  switch (req.op_case()) {
    case pb::CliReq::kPeerProbe:
      co_return co_await peer_probe(req.peer_probe().host());
    case pb::CliReq::kPeerDetach:
      co_return co_await peer_detach(req.peer_detach().host(), req.peer_detach().force(), local);
    case pb::CliReq::kPeerStatus:
      co_return peer_status(false);
    case pb::CliReq::kPoolList:
      co_return peer_status(true);
    case pb::CliReq::kVolumeCreate:
      co_return co_await volume_create(req.volume_create());
    case pb::CliReq::kVolumeStart:
      co_return co_await volume_start(req.volume_start());
    case pb::CliReq::kVolumeAddBrick:
      co_return co_await volume_add_brick(req.volume_add_brick());
    case pb::CliReq::kVolumeReplaceBrick:
      co_return co_await volume_replace_brick(req.volume_replace_brick());
    case pb::CliReq::kVolumeRebalance:
      co_return co_await volume_rebalance(req.volume_rebalance());
    case pb::CliReq::kVolumeRemoveBrick:
      co_return co_await volume_remove_brick(req.volume_remove_brick());
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
    case pb::CliReq::kVolumeHeal:
      co_return co_await volume_heal(req.volume_heal(), false);
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

uint16_t Mgmtd::split_probe_target(std::string& host) const {
  uint16_t port = options_.port;
  if (auto colon = host.rfind(':'); colon != std::string::npos &&
                                    host.find(']') == std::string::npos &&
                                    host.find(':') == colon) {
    port = static_cast<uint16_t>(std::atoi(host.c_str() + colon + 1));
    host = host.substr(0, colon);
  }
  return port;
}

asio::awaitable<std::optional<pb::CliRsp>> Mgmtd::peer_command_here(pb::CliReq req) {
  pb::ClusterState s = state();
  if (req.has_peer_probe()) {
    std::string host = req.peer_probe().host();
    uint16_t port = split_probe_target(host);
    pb::PeerQueryReq q;
    q.set_from_uuid(uuid_);
    q.set_cluster_id(s.cluster_id());
    Result<pb::PeerQueryRsp> info =
        co_await call_host<pb::PeerQueryRsp>(host, port, pb::PEER_QUERY, q);
    if (!info) co_return std::nullopt;  // the leader tries too, and says why it cannot
    if (info->self().uuid() == uuid_) co_return error_rsp("Probe on localhost not needed");
    if (find_peer(s, info->self().uuid())) {
      pb::CliRsp rsp;
      rsp.set_message("Host " + host + " port " + std::to_string(port) + " already in peer list");
      co_return rsp;
    }
  } else if (req.has_peer_detach()) {
    std::string host = req.peer_detach().host();
    const pb::PeerInfo* p = find_peer_by_name(s, host);
    if (!p) {
      auto blocking = run_blocking([host] { return resolve(host); });
      std::vector<std::string> addresses = co_await std::move(blocking);
      for (const auto& addr : addresses) {
        if ((p = find_peer_by_name(s, addr))) break;
      }
    }
    if (p && p->uuid() == uuid_) co_return error_rsp(host + " is localhost");
  }
  co_return std::nullopt;
}

asio::awaitable<pb::CliRsp> Mgmtd::peer_probe(std::string host) {
  uint16_t port = split_probe_target(host);
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

asio::awaitable<pb::CliRsp> Mgmtd::peer_detach(std::string host, bool force, bool local) {
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
  if (p->uuid() == uuid_ && local) co_return error_rsp(host + " is localhost");
  for (const auto& v : s.volumes()) {
    for (const auto& b : v.bricks()) {
      if (b.peer_uuid() == p->uuid()) {
        co_return error_rsp("Brick(s) with the peer " + host + " exist in cluster");
      }
    }
  }
  if (p->uuid() == uuid_) {
    // Asked through another server (which answered "localhost" for itself): this server
    // leads the cluster, and a leader does not vote itself out.
    co_return error_rsp(host +
                        " leads the cluster and cannot be detached while it does; stop its "
                        "mortar-mgmtd, then run 'peer detach " +
                        host + " force' on another server");
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
  // Tell it to become a cluster of its own, over a connection of its own: the standing one
  // was closed when the removal was applied here. Out of the Raft group, it may never learn
  // that its removal committed, so without this it would wait as a member forever.
  Result<pb::ProposeRsp> left = co_await call_host<pb::ProposeRsp>(
      peer.hostnames(0), static_cast<uint16_t>(peer.mgmt_port()), pb::PEER_LEAVE, pb::Empty0());
  if (!left) MLOG_WARN("telling {} that it left the cluster: {}", host, left.error().message());
  co_return pb::CliRsp();
}

// ---- volumes ----

std::string Mgmtd::check_bricks_locally(const pb::CheckBricksReq& req) {
  struct stat root;
  ::stat("/", &root);
  // Every check before any directory is made: a refused create leaves nothing behind.
  for (const auto& path : req.paths()) {
    std::error_code ec;
    if (fs::exists(path, ec) && !fs::is_directory(path, ec)) {
      return "Brick " + advertise_ + ":" + path + " is not a directory";
    }
    // The file system the brick will be on: that of its nearest existing ancestor.
    fs::path existing = path;
    while (!fs::exists(existing, ec) && existing.has_parent_path() &&
           existing.parent_path() != existing) {
      existing = existing.parent_path();
    }
    struct stat st;
    if (::stat(existing.c_str(), &st) != 0)
      return "Brick " + advertise_ + ":" + path + ": " + std::strerror(errno);
    if (!S_ISDIR(st.st_mode)) {
      return "Brick " + advertise_ + ":" + path + ": " + existing.string() + " is not a directory";
    }
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
  for (const auto& path : req.paths()) {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec)
      return "Failed to create brick directory for brick " + advertise_ + ":" + path +
             ". Reason : " + ec.message();
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
    BrickOrError b = co_await brick_of(s, req.bricks(i));
    if (!b.error.empty()) co_return error_rsp(b.error);
    b.brick.set_arbiter(arbiter == 1 && (i % replica) == replica - 1);
    *v.add_bricks() = std::move(b.brick);
  }
  if (!req.force()) {
    if (auto e = sets_on_one_server(v, replica); !e.empty()) co_return error_rsp(e);
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

asio::awaitable<Mgmtd::BrickOrError> Mgmtd::brick_of(pb::ClusterState s, std::string text) {
  BrickOrError out;
  std::string host, path;
  if (auto e = parse_brick(text, host, path); !e.empty()) {
    out.error = e;
    co_return out;
  }
  const pb::PeerInfo* p = find_peer_by_name(s, host);
  if (!p) {
    auto blocking = run_blocking([host] { return resolve(host); });
    auto addresses = co_await std::move(blocking);
    for (const auto& a : addresses) {
      if ((p = find_peer_by_name(s, a))) break;
    }
  }
  if (!p) {
    out.error = "Host " + host + " is not in 'Peer in Cluster' state";
    co_return out;
  }
  out.brick.set_host(host);
  out.brick.set_path(path);
  out.brick.set_peer_uuid(p->uuid());
  co_return out;
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_add_brick(pb::VolumeAddBrick req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  uint32_t replica = std::max<uint32_t>(1, v->replica_count());
  if (req.replica_count() != 0 && std::max<uint32_t>(1, req.replica_count()) != replica) {
    // Growing every set by a replica is GlusterFS's other add-brick; mortar adds whole sets.
    co_return error_rsp("Changing the replica count of volume " + req.name() + " (" +
                        std::to_string(replica) + ") is not supported; add whole replica sets of " +
                        std::to_string(replica) + " bricks");
  }
  if (v->arbiter_count() > 0) {
    co_return error_rsp("adding bricks to an arbiter volume is not supported yet");
  }
  if (req.bricks().empty()) co_return error_rsp("no bricks given");
  if (req.bricks_size() % replica != 0) {
    co_return error_rsp("Incorrect number of bricks supplied " + std::to_string(req.bricks_size()) +
                        " with count " + std::to_string(replica));
  }
  pb::VolumeSpec added;  // the new bricks alone, for the checks
  added.set_name(req.name());
  for (const auto& text : req.bricks()) {
    BrickOrError b = co_await brick_of(s, text);
    if (!b.error.empty()) co_return error_rsp(b.error);
    *added.add_bricks() = std::move(b.brick);
  }
  if (!req.force()) {
    if (auto e = sets_on_one_server(added, replica); !e.empty()) co_return error_rsp(e);
  }
  pb::Command cmd;
  auto* add = cmd.mutable_add_bricks();
  add->set_name(req.name());
  *add->mutable_bricks() = added.bricks();
  if (v->status() == pb::VOLUME_STARTED) {
    // Ports for the new bricks, chosen as a start would choose them for the grown volume.
    pb::VolumeSpec grown = *v;
    for (const auto& b : added.bricks()) *grown.add_bricks() = b;
    std::vector<uint32_t> ports = assign_ports(s, grown);
    for (size_t i = static_cast<size_t>(v->bricks_size()); i < ports.size(); ++i) {
      add->add_ports(ports[i]);
    }
  }
  pb::ClusterState trial = s;
  if (auto e = apply_command(trial, cmd); !e.empty()) co_return error_rsp(e);
  if (auto e = co_await check_bricks_everywhere(added, req.force()); !e.empty()) {
    co_return error_rsp(e);
  }
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  co_return pb::CliRsp();
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_replace_brick(pb::VolumeReplaceBrick req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  BrickOrError old = co_await brick_of(s, req.old_brick());
  if (!old.error.empty()) co_return error_rsp(old.error);
  int index = -1;
  for (int i = 0; i < v->bricks_size(); ++i) {
    if (v->bricks(i).peer_uuid() == old.brick.peer_uuid() &&
        v->bricks(i).path() == old.brick.path()) {
      index = i;
    }
  }
  if (index < 0) {
    co_return error_rsp("brick: " + req.old_brick() + " does not exist in volume: " + req.name());
  }
  if (std::max<uint32_t>(1, v->replica_count()) < 2) {
    // Nothing could heal the new brick: its data would be lost.
    co_return error_rsp("replace-brick is for replicated volumes: volume " + req.name() +
                        " keeps one copy of its data, which the new brick would not have");
  }
  BrickOrError fresh = co_await brick_of(s, req.new_brick());
  if (!fresh.error.empty()) co_return error_rsp(fresh.error);
  pb::Command cmd;
  auto* r = cmd.mutable_replace_brick();
  r->set_name(req.name());
  r->set_index(static_cast<uint32_t>(index));
  *r->mutable_old() = v->bricks(index);
  *r->mutable_brick() = fresh.brick;
  if (v->status() == pb::VOLUME_STARTED) {
    pb::VolumeSpec changed = *v;
    *changed.mutable_bricks(index) = fresh.brick;
    changed.mutable_bricks(index)->set_port(0);
    r->set_port(assign_ports(s, changed)[static_cast<size_t>(index)]);
  }
  pb::ClusterState trial = s;
  if (auto e = apply_command(trial, cmd); !e.empty()) co_return error_rsp(e);
  pb::VolumeSpec check;
  check.set_name(req.name());
  *check.add_bricks() = fresh.brick;
  // "commit force" is the only form, and its force stands for the brick checks too.
  if (auto e = co_await check_bricks_everywhere(check, true); !e.empty()) co_return error_rsp(e);
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  pb::CliRsp rsp;
  rsp.set_message("replace-brick commit force operation successful");
  co_return rsp;
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_rebalance(pb::VolumeRebalance req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  uint32_t per_set = std::max<uint32_t>(1, v->replica_count());
  if (static_cast<uint32_t>(v->bricks_size()) <= per_set) {
    co_return error_rsp("Volume " + req.name() +
                        " is not a distribute volume or contains only 1 brick.\nNot performing "
                        "rebalance");
  }
  if (v->status() != pb::VOLUME_STARTED) {
    co_return error_rsp("Volume " + req.name() + " needs to be started to perform rebalance");
  }
  if (per_set < 2) {
    // The mover keeps client writes out with replication's locks; plain bricks have none.
    co_return error_rsp("rebalance of distribute-only volumes is not supported yet");
  }
  if (req.action() == pb::VolumeRebalance::FIX_LAYOUT_START) {
    pb::CliRsp rsp;
    rsp.set_message("fix-layout has nothing to do: every client already places names by the "
                    "volume's bucket map (published by add-brick); 'rebalance " + req.name() +
                    " start' moves the existing files");
    co_return rsp;
  }
  pb::VolumeHeal h;
  h.set_name(req.name());
  h.set_op(req.action() == pb::VolumeRebalance::START  ? pb::VolumeHeal::REBALANCE_START
           : req.action() == pb::VolumeRebalance::STOP ? pb::VolumeHeal::REBALANCE_STOP
                                                       : pb::VolumeHeal::REBALANCE_STATUS);
  pb::CliRsp rsp = co_await volume_heal(h, false);
  if (!rsp.error().empty()) co_return rsp;
  if (req.action() == pb::VolumeRebalance::START) {
    rsp.set_message("Rebalance on " + req.name() +
                    " has been started successfully. Use rebalance status command to check "
                    "status of the rebalance process.\nID: " + Gfid::random().str());
    asio::co_spawn(io_, settle_when_done(req.name()), asio::detached);
  } else if (req.action() == pb::VolumeRebalance::STATUS) {
    co_await settle_if_done(req.name(), rsp);
    // Settling changes the graph, and the heal daemons restart with it, forgetting their
    // counters: after that, the record of the finished run answers.
    bool none = std::all_of(rsp.rebalance().begin(), rsp.rebalance().end(),
                            [](const pb::RebalanceStatus& st) {
                              return st.state() == pb::RebalanceStatus::NOT_STARTED;
                            });
    std::lock_guard lock(mu_);
    auto it = last_rebalance_.find(req.name());
    if (none && it != last_rebalance_.end()) *rsp.mutable_rebalance() = it->second.rebalance();
  }
  co_return rsp;
}

asio::awaitable<pb::CliRsp> Mgmtd::volume_remove_brick(pb::VolumeRemoveBrick req) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  uint32_t per_set = std::max<uint32_t>(1, v->replica_count());
  if (req.replica_count() != 0 && req.replica_count() != per_set) {
    co_return error_rsp("Changing the replica count of volume " + req.name() +
                        " is not supported; remove whole replica sets of " +
                        std::to_string(per_set) + " bricks");
  }
  std::set<std::pair<std::string, std::string>> named;
  for (const auto& text : req.bricks()) {
    BrickOrError b = co_await brick_of(s, text);
    if (!b.error.empty()) co_return error_rsp(b.error);
    named.emplace(b.brick.peer_uuid(), b.brick.path());
  }
  if (named.empty() || named.size() % per_set != 0) {
    co_return error_rsp("Remove brick incorrect brick count of " +
                        std::to_string(req.bricks_size()) + " for replica " +
                        std::to_string(per_set));
  }
  uint32_t sets = static_cast<uint32_t>(v->bricks_size()) / per_set;
  uint32_t leaving = static_cast<uint32_t>(named.size()) / per_set;
  if (leaving >= sets) co_return error_rsp("remove-brick must leave at least one replica set");
  // The bucket map drains sets from the end: the bricks must be the last sets' bricks.
  pb::RemoveBricks cmd_body;
  cmd_body.set_name(req.name());
  cmd_body.set_sets(leaving);
  std::string last;
  for (int i = static_cast<int>((sets - leaving) * per_set); i < v->bricks_size(); ++i) {
    const auto& b = v->bricks(i);
    *cmd_body.add_removed() = b;
    last += (last.empty() ? "" : " ") + b.host() + ":" + b.path();
    if (!named.count({b.peer_uuid(), b.path()})) {
      co_return error_rsp("only the last replica sets of a volume can be removed (the bucket map "
                          "drains sets from the end); here: " + std::to_string(leaving) +
                          " set(s) = " + last + " ...");
    }
  }
  bool stop_status = req.action() == pb::VolumeRemoveBrick::STATUS ||
                     req.action() == pb::VolumeRemoveBrick::STOP;
  if (stop_status) {
    if (v->removing_from() == 0) {
      co_return error_rsp("remove-brick not started for volume " + req.name());
    }
    pb::VolumeRebalance r;
    r.set_name(req.name());
    r.set_action(req.action() == pb::VolumeRemoveBrick::STOP ? pb::VolumeRebalance::STOP
                                                              : pb::VolumeRebalance::STATUS);
    pb::CliRsp rsp = co_await volume_rebalance(r);
    co_return rsp;
  }
  cmd_body.set_phase(req.action() == pb::VolumeRemoveBrick::START    ? pb::RemoveBricks::START
                     : req.action() == pb::VolumeRemoveBrick::COMMIT ? pb::RemoveBricks::COMMIT
                                                                     : pb::RemoveBricks::FORCE);
  if (cmd_body.phase() == pb::RemoveBricks::START && v->status() != pb::VOLUME_STARTED) {
    co_return error_rsp("Volume " + req.name() + " needs to be started before remove-brick "
                        "(it moves the data off the bricks); use force to remove them now");
  }
  if (cmd_body.phase() == pb::RemoveBricks::START && per_set < 2) {
    co_return error_rsp("remove-brick start of distribute-only volumes is not supported yet "
                        "(rebalance needs replica sets); use force to remove the bricks and "
                        "abandon what they hold");
  }
  pb::Command cmd;
  *cmd.mutable_remove_bricks() = cmd_body;
  std::string error = co_await propose(cmd);
  if (!error.empty()) co_return error_rsp(error);
  pb::CliRsp rsp;
  if (cmd_body.phase() == pb::RemoveBricks::START) {
    pb::VolumeRebalance r;
    r.set_name(req.name());
    r.set_action(pb::VolumeRebalance::START);
    pb::CliRsp started = co_await volume_rebalance(r);
    if (!started.error().empty()) {
      co_return error_rsp("the bucket map moves the bricks' buckets away, but moving their data "
                          "did not start: " + started.error() + "; start it with 'volume "
                          "rebalance " + req.name() + " start'");
    }
    rsp.set_message("ID: " + Gfid::random().str());
  } else {
    rsp.set_message(
        "Check the removed bricks to ensure all files are migrated.\nIf files with data are "
        "found on the brick path, copy them via a mortar mount point before re-purposing the "
        "removed brick. ");
  }
  co_return rsp;
}

asio::awaitable<void> Mgmtd::settle_when_done(std::string volume) {
  asio::steady_timer timer(io_);
  pb::VolumeHeal h;
  h.set_name(volume);
  h.set_op(pb::VolumeHeal::REBALANCE_STATUS);
  for (;;) {
    timer.expires_after(500ms);
    co_await timer.async_wait(use_nothrow);
    if (stopping_) co_return;
    pb::CliRsp rsp = co_await volume_heal(h, false);
    if (!rsp.error().empty()) co_return;
    bool running = std::any_of(rsp.rebalance().begin(), rsp.rebalance().end(),
                               [](const pb::RebalanceStatus& st) {
                                 return st.state() == pb::RebalanceStatus::IN_PROGRESS;
                               });
    if (running) continue;
    co_await settle_if_done(volume, rsp);
    co_return;
  }
}

asio::awaitable<void> Mgmtd::settle_if_done(std::string volume, pb::CliRsp statuses) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, volume);
  if (!v || v->bucket_map().empty()) co_return;
  auto map = xl::dht::decode(v->bucket_map());
  if (!map || map->moving.empty()) co_return;
  // Every server with bricks must have finished this map's buckets without a failure.
  std::set<std::string> servers;
  for (const auto& b : v->bricks()) servers.insert(b.peer_uuid());
  if (static_cast<size_t>(statuses.rebalance_size()) < servers.size()) co_return;
  for (const auto& st : statuses.rebalance()) {
    if (st.state() != pb::RebalanceStatus::COMPLETED || st.failed() > 0 ||
        st.map_version() != map->version) {
      co_return;
    }
    // A set being drained must end up empty: what was left in place (hard-linked and special
    // files, reached through link entries) would go with it.
    if (v->removing_from() != 0 && st.skipped() > 0) co_return;
  }
  pb::Command cmd;
  cmd.mutable_settle_buckets()->set_name(volume);
  cmd.mutable_settle_buckets()->set_map_version(map->version);
  std::string error = co_await propose(cmd);
  if (error.empty()) {
    MLOG_INFO("volume {}: rebalance of bucket map version {} done; its buckets are settled",
              volume, map->version);
    std::lock_guard lock(mu_);
    last_rebalance_[volume] = std::move(statuses);
  } else {
    MLOG_WARN("volume {}: cannot settle the moved buckets: {}", volume, error);
  }
}

asio::awaitable<void> Mgmtd::heal_replaced(std::string volume) {
  pb::VolumeHeal req;
  req.set_name(volume);
  req.set_op(pb::VolumeHeal::FULL);
  asio::steady_timer timer(io_);
  // The heal daemon restarts with the new graph first; give it a few tries.
  for (int attempt = 0; attempt < 10; ++attempt) {
    pb::CliRsp rsp = co_await local_heal(req);
    if (rsp.error().empty()) {
      MLOG_INFO("volume {}: full heal started onto the replacing brick", volume);
      co_return;
    }
    MLOG_INFO("volume {}: full heal after replace-brick not started yet: {}", volume, rsp.error());
    timer.expires_after(1s);
    co_await timer.async_wait(use_nothrow);
  }
  MLOG_WARN("volume {}: could not start the full heal onto the replacing brick; run "
            "'volume heal {} full'",
            volume, volume);
}

asio::awaitable<bool> Mgmtd::wait_bricks_reconciled(uint64_t epoch,
                                                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!co_await wait_epoch(epoch, timeout)) co_return false;
  asio::steady_timer timer(io_);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mu_);
      if (reconciled_epoch_ >= epoch) co_return true;
    }
    timer.expires_after(20ms);
    co_await timer.async_wait(use_nothrow);
  }
  co_return false;
}

pb::BrickStatusRsp Mgmtd::local_status(const pb::VolumeSpec& volume, bool detail) {
  pb::BrickStatusRsp rsp;
  for (auto& b : bricks_->status(volume, uuid_, detail)) *rsp.add_bricks() = std::move(b);
  pb::ClusterState s = state();
  auto healed = ShdSupervisor::volumes_to_heal(s, uuid_);
  bool heals = std::any_of(healed.begin(), healed.end(),
                           [&](const pb::VolumeSpec* v) { return v->name() == volume.name(); });
  if (heals) {
    pb::BrickStatus* d = rsp.mutable_heal_daemon();
    d->set_host(advertise_);
    int pid = shd_->serves(volume.name()) ? shd_->pid() : 0;
    d->set_online(pid > 0);
    d->set_pid(pid);
  }
  return rsp;
}

asio::awaitable<pb::VolumeStatusEntry> Mgmtd::volume_status_entry(pb::VolumeSpec volume,
                                                                  bool detail,
                                                                  uint64_t acted_epoch) {
  std::map<std::string, pb::BrickStatus> by_brick;  // "uuid path" -> status
  std::vector<std::string> servers;                 // in brick order
  for (const auto& b : volume.bricks()) {
    if (std::find(servers.begin(), servers.end(), b.peer_uuid()) == servers.end()) {
      servers.push_back(b.peer_uuid());
    }
  }
  pb::VolumeStatusEntry entry;
  entry.set_name(volume.name());
  std::vector<pb::BrickStatus> daemons;
  for (const auto& uuid : servers) {
    pb::BrickStatusRsp local;
    if (uuid == uuid_) {
      if (acted_epoch > 0) (void)co_await wait_bricks_reconciled(acted_epoch, 5s);
      auto blocking4 = run_blocking([this, volume, detail] { return local_status(volume, detail); });
      local = co_await std::move(blocking4);
      if (local.has_heal_daemon()) local.mutable_heal_daemon()->set_local(true);
    } else if (auto client = peer_client(uuid); client && client->is_up()) {
      pb::BrickStatusReq req;
      req.set_volume(volume.name());
      req.set_detail(detail);
      req.set_acted_epoch(acted_epoch);
      Result<pb::BrickStatusRsp> rsp =
          co_await call_client<pb::BrickStatusRsp>(client, pb::PEER_BRICK_STATUS, req);
      if (rsp) local = std::move(*rsp);
    }
    for (const auto& st : local.bricks()) by_brick[uuid + " " + st.path()] = st;
    if (local.has_heal_daemon()) daemons.push_back(local.heal_daemon());
  }
  for (const auto& b : volume.bricks()) {
    auto it = by_brick.find(b.peer_uuid() + " " + b.path());
    if (it != by_brick.end()) {
      *entry.add_bricks() = it->second;
    } else {
      pb::BrickStatus* st = entry.add_bricks();  // its server is unreachable
      st->set_host(b.host());
      st->set_path(b.path());
    }
  }
  // GlusterFS lists the local daemon first, as "localhost".
  std::stable_partition(daemons.begin(), daemons.end(),
                        [](const pb::BrickStatus& d) { return d.local(); });
  for (auto& d : daemons) *entry.add_heal_daemons() = std::move(d);
  co_return entry;
}

// ---- self-heal ----

asio::awaitable<pb::CliRsp> Mgmtd::volume_heal(pb::VolumeHeal req, bool forwarded) {
  pb::ClusterState s = state();
  const pb::VolumeSpec* v = find_volume(s, req.name());
  if (!v) co_return error_rsp("Volume " + req.name() + " does not exist");
  if (v->replica_count() < 2) {
    co_return error_rsp("Volume " + req.name() + " is not of type replicate");
  }
  if (v->status() != pb::VOLUME_STARTED) {
    co_return error_rsp("Volume " + req.name() + " is not started.");
  }
  auto enabled = effective_option(*v, "cluster.self-heal-daemon");
  if (enabled && *enabled == "off") {
    co_return error_rsp("Self-heal-daemon is disabled. Heal will not be triggered on volume " +
                        req.name());
  }
  if (req.op() == pb::VolumeHeal::SPLIT_BRAIN) {
    const std::string& c = req.choice();
    if (c != "bigger-file" && c != "latest-mtime" && c != "source-brick") {
      co_return error_rsp("split-brain resolution is one of bigger-file FILE, latest-mtime FILE, "
                          "source-brick HOST:BRICK [FILE]; not '" + c + "'");
    }
    if (c != "source-brick" && req.file().empty()) {
      co_return error_rsp(c + " needs a FILE");
    }
    if (c == "source-brick") {
      bool known = std::any_of(v->bricks().begin(), v->bricks().end(), [&](const pb::BrickSpec& b) {
        return b.host() + ":" + b.path() == req.source_brick();
      });
      if (!known) {
        co_return error_rsp(req.source_brick() + " is not a brick of volume " + req.name());
      }
    }
  }
  if (forwarded) co_return co_await local_heal(std::move(req));

  std::vector<std::string> servers;  // with bricks of the volume, this one first
  for (const auto& b : v->bricks()) {
    if (std::find(servers.begin(), servers.end(), b.peer_uuid()) == servers.end()) {
      servers.push_back(b.peer_uuid());
    }
  }
  auto self = std::find(servers.begin(), servers.end(), uuid_);
  if (self != servers.end()) std::rotate(servers.begin(), self, self + 1);

  // Every daemon takes a share of the entries: an index heal starts on every server, and
  // statistics (rates, counters) add up over them. Everything else needs one daemon's
  // answer: the first that gives one.
  bool everywhere = req.op() == pb::VolumeHeal::INDEX || req.op() == pb::VolumeHeal::STATISTICS ||
                    req.op() == pb::VolumeHeal::INFO_SUMMARY ||
                    req.op() == pb::VolumeHeal::REBALANCE_START ||
                    req.op() == pb::VolumeHeal::REBALANCE_STOP ||
                    req.op() == pb::VolumeHeal::REBALANCE_STATUS;
  std::optional<pb::CliRsp> first_success;
  std::string errors;
  for (const auto& uuid : servers) {
    pb::CliRsp rsp;
    if (uuid == uuid_) {
      rsp = co_await local_heal(req);
    } else {
      rsp = co_await peer_heal(uuid, req);
    }
    if (rsp.error().empty()) {
      if (!first_success) {
        first_success = rsp;
      } else {
        add_heal_stats(*first_success->mutable_heal()->mutable_stats(), rsp.heal().stats());
        for (const auto& st : rsp.rebalance()) *first_success->add_rebalance() = st;
      }
      if (!everywhere) break;
    } else if (errors.empty()) {
      errors = rsp.error();
    }
  }
  bool rebalance = req.op() == pb::VolumeHeal::REBALANCE_START ||
                   req.op() == pb::VolumeHeal::REBALANCE_STOP ||
                   req.op() == pb::VolumeHeal::REBALANCE_STATUS;
  // Every server does a share of rebalance: one that cannot is a failure of the whole.
  if (rebalance && !errors.empty()) co_return error_rsp(errors);
  if (first_success) co_return *first_success;
  co_return error_rsp(errors.empty() ? "no server with bricks of " + req.name() + " answers"
                                     : errors);
}

asio::awaitable<pb::CliRsp> Mgmtd::peer_heal(std::string uuid, pb::VolumeHeal req) {
  pb::ClusterState s = state();
  const pb::PeerInfo* peer = nullptr;
  for (const auto& p : s.peers()) {
    if (p.uuid() == uuid) peer = &p;
  }
  if (!peer || peer->hostnames().empty()) co_return error_rsp("unknown server " + uuid);
  std::string host = peer->hostnames(0);
  Result<pb::CliRsp> rsp = co_await call_host<pb::CliRsp>(
      host, static_cast<uint16_t>(peer->mgmt_port()), pb::PEER_HEAL, req);
  if (!rsp) co_return error_rsp("cannot reach " + host + ": " + rsp.error().message());
  co_return *rsp;
}

asio::awaitable<pb::CliRsp> Mgmtd::local_heal(pb::VolumeHeal req) {
  // Just after `volume start` (or a `volume set`) the daemon may be (re)starting.
  asio::steady_timer timer(io_);
  for (int i = 0; i < 100 && !shd_->serves(req.name()); ++i) {
    timer.expires_after(100ms);
    co_await timer.async_wait(use_nothrow);
  }
  if (!shd_->serves(req.name())) {
    co_return error_rsp("Self-heal daemon is not running on " + advertise_ + "; see " +
                        options_.log_dir + "/shd.log");
  }
  rpc::RpcClient::Options o;
  o.host = shd_->control_socket();
  o.reconnect = false;
  o.connect_timeout = 2s;
  // heal info resolves a path for every pending entry: give a long backlog time.
  o.call_timeout = 300s;
  o.ping_timeout = 30s;
  o.name = "shd";
  auto client = std::make_shared<rpc::RpcClient>(io_.get_executor(), o);
  client->start();
  bool up = co_await client->wait_up(2s);
  bool rebalance = req.op() == pb::VolumeHeal::REBALANCE_START ||
                   req.op() == pb::VolumeHeal::REBALANCE_STOP ||
                   req.op() == pb::VolumeHeal::REBALANCE_STATUS;
  // Rebalance follows changes of the bricks, which restart the daemon with the new graph:
  // give it the time to come back.
  for (int i = 0; !up && rebalance && i < 20; ++i) {
    client->stop();
    asio::steady_timer wait(io_, 500ms);
    co_await wait.async_wait(use_nothrow);
    client = std::make_shared<rpc::RpcClient>(io_.get_executor(), o);
    client->start();
    up = co_await client->wait_up(2s);
  }
  if (!up) {
    client->stop();
    co_return error_rsp("cannot reach the self-heal daemon on " + advertise_);
  }
  pb::CliRsp out;
  std::string failure;
  switch (req.op()) {
    case pb::VolumeHeal::INDEX:
    case pb::VolumeHeal::FULL: {
      pb::ShdHealReq h;
      h.set_volume(req.name());
      h.set_full(req.op() == pb::VolumeHeal::FULL);
      Result<pb::ShdHealRsp> rsp = co_await call_client<pb::ShdHealRsp>(client, pb::SHD_HEAL, h);
      failure = rsp ? rsp->error() : rsp.error().message();
      break;
    }
    case pb::VolumeHeal::REBALANCE_START:
    case pb::VolumeHeal::REBALANCE_STOP:
    case pb::VolumeHeal::REBALANCE_STATUS: {
      pb::ShdRebalanceReq h;
      h.set_volume(req.name());
      h.set_action(req.op() == pb::VolumeHeal::REBALANCE_START  ? pb::ShdRebalanceReq::START
                   : req.op() == pb::VolumeHeal::REBALANCE_STOP ? pb::ShdRebalanceReq::STOP
                                                                : pb::ShdRebalanceReq::STATUS);
      // This server moves the buckets of the sets whose first brick it holds.
      pb::ClusterState now = state();
      if (const pb::VolumeSpec* v = find_volume(now, req.name())) {
        uint32_t per_set = std::max<uint32_t>(1, v->replica_count());
        for (int i = 0; i < v->bricks_size(); i += static_cast<int>(per_set)) {
          if (v->bricks(i).peer_uuid() == uuid_) h.add_sets(static_cast<uint32_t>(i) / per_set);
        }
        if (auto map = xl::dht::decode(v->bucket_map())) h.set_map_version(map->version);
      }
      Result<pb::ShdRebalanceRsp> rsp =
          co_await call_client<pb::ShdRebalanceRsp>(client, pb::SHD_REBALANCE, h);
      // Just after add-brick the daemon may still run the old graph: it is being restarted
      // with the new one.
      for (int i = 0; i < 30 && (!rsp || rsp->stale_graph()); ++i) {
        client->stop();
        asio::steady_timer wait(io_, 500ms);
        co_await wait.async_wait(use_nothrow);
        client = std::make_shared<rpc::RpcClient>(io_.get_executor(), o);
        client->start();
        bool again = co_await client->wait_up(2s);
        if (!again) continue;
        rsp = co_await call_client<pb::ShdRebalanceRsp>(client, pb::SHD_REBALANCE, h);
      }
      failure = rsp ? rsp->error() : rsp.error().message();
      if (rsp) {
        pb::RebalanceStatus* st = out.add_rebalance();
        *st = rsp->status();
        st->set_node(advertise_);
      }
      break;
    }
    case pb::VolumeHeal::SPLIT_BRAIN: {
      pb::ShdResolveReq h;
      h.set_volume(req.name());
      h.set_choice(req.choice());
      h.set_file(req.file());
      h.set_source_brick(req.source_brick());
      Result<pb::ShdResolveRsp> rsp =
          co_await call_client<pb::ShdResolveRsp>(client, pb::SHD_RESOLVE, h);
      failure = rsp ? rsp->error() : rsp.error().message();
      if (rsp) *out.mutable_heal_lines() = rsp->lines();
      break;
    }
    default: {
      pb::ShdInfoReq h;
      h.set_volume(req.name());
      pb::ShdProc proc = pb::SHD_INFO;
      switch (req.op()) {
        case pb::VolumeHeal::INFO_SUMMARY:
          h.set_mode(pb::ShdInfoReq::SUMMARY);
          break;
        case pb::VolumeHeal::INFO_SPLIT_BRAIN:
          h.set_mode(pb::ShdInfoReq::SPLIT_BRAIN);
          break;
        case pb::VolumeHeal::HEAL_COUNT:
          h.set_mode(pb::ShdInfoReq::HEAL_COUNT);
          break;
        case pb::VolumeHeal::STATISTICS:
          h.set_mode(pb::ShdInfoReq::SUMMARY);
          proc = pb::SHD_STATS;
          break;
        default:
          h.set_mode(pb::ShdInfoReq::ALL);
          break;
      }
      Result<pb::ShdInfoRsp> rsp = co_await call_client<pb::ShdInfoRsp>(client, proc, h);
      failure = rsp ? rsp->error() : rsp.error().message();
      if (rsp) *out.mutable_heal() = std::move(*rsp);
      break;
    }
  }
  client->stop();
  if (!failure.empty()) co_return error_rsp("self-heal daemon on " + advertise_ + ": " + failure);
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
  pb::ClusterState after = state();
  pb::VolumeSpec started = *find_volume(after, req.name());
  asio::steady_timer timer(io_);
  std::vector<pb::BrickStatus> st;
  for (int i = 0; i < 100; ++i) {
    // Every server must have acted on the start (a later brick death is then not undone).
    pb::VolumeStatusEntry entry = co_await volume_status_entry(started, false, i == 0 ? after.epoch() : 0);
    st.assign(entry.bricks().begin(), entry.bricks().end());
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
    pb::VolumeStatusEntry entry = co_await volume_status_entry(v, req.detail());
    *rsp.add_status() = std::move(entry);
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
  auto proc = static_cast<pb::MgmtProc>(frame.header.proc);
  if (!member && (proc == pb::PEER_PROPOSE || proc == pb::PEER_CHECK_BRICKS ||
                  proc == pb::PEER_HEAL)) {
    // A server just probed learns who its peers are from the log a moment after the probe
    // answered: give it that moment before taking a member for a stranger.
    asio::steady_timer timer(io_);
    for (int i = 0; i < 40 && !member; ++i) {
      timer.expires_after(50ms);
      co_await timer.async_wait(use_nothrow);
      member = member_address(conn->peer_address());
    }
  }
  switch (proc) {
    case pb::PEER_PING:
      conn->reply(xid, pb::Empty0());
      co_return;
    case pb::PEER_HEAL: {
      pb::VolumeHeal req;
      if (!req.ParseFromString(frame.message)) co_return bad();
      if (!member) co_return conn->reply(xid, error_rsp("not a server of this cluster"));
      pb::CliRsp rsp = co_await volume_heal(std::move(req), true);
      conn->reply(xid, rsp);
      co_return;
    }
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
      auto blocking5 = run_blocking([this, req, requester = conn->peer_address()] {
        std::lock_guard reset(reset_mu_);
        {
          std::lock_guard lock(mu_);
          if (state_.peers_size() > 1 || !state_.volumes().empty()) {
            return std::string("this server is part of another cluster or has volumes");
          }
          MLOG_INFO("joining cluster {} (probed by {})", req.cluster_id(), req.leader_uuid());
          state_ = pb::ClusterState();
          joining_ = true;
          join_requester_ = requester;
        }
        (void)store_->save(pb::ClusterState());
        auto r = raft_->reset(false);
        return r ? std::string() : "cannot reset Raft state: " + r.error().message();
      });
      pb::ProposeRsp rsp;
      rsp.set_error(co_await std::move(blocking5));
      conn->reply(xid, rsp);
      co_return;
    }
    case pb::PEER_LEAVE: {
      bool requester;
      {
        // A probe that failed after this server got ready to join takes it back; this server
        // knows no member yet, only who asked.
        std::lock_guard lock(mu_);
        requester = joining_ && conn->peer_address() == join_requester_;
      }
      if (!member && !requester) co_return conn->reply_error(xid, Errno(EACCES));
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
      if (req.acted_epoch() > 0) (void)co_await wait_bricks_reconciled(req.acted_epoch(), 5s);
      pb::ClusterState s = state();
      if (const auto* v = find_volume(s, req.volume())) {
        pb::VolumeSpec volume = *v;
        bool detail = req.detail();
        auto blocking8 =
            run_blocking([this, volume, detail] { return local_status(volume, detail); });
        rsp = co_await std::move(blocking8);
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
