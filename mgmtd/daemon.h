// mortar-mgmtd: one per server. Keeps the cluster state (peers, volumes, options) in a Raft
// group with the other servers, answers the CLI, serves client graphs (and tells subscribed
// clients when they change), and runs this server's brick daemons. Bricks are detached
// processes: they keep serving while mortar-mgmtd is down.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <type_traits>

#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "mgmtd/bricks.h"
#include "mgmtd/raft_node.h"
#include "mgmtd/shd_supervisor.h"
#include "mgmtd/store.h"
#include "proto/mgmt.pb.h"

namespace mortar::mgmtd {

class Mgmtd : public rpc::ServiceHandler, private RaftNode::StateMachine {
 public:
  struct Options {
    std::string address = "0.0.0.0";  // the address this server serves on (and its bricks)
    uint16_t port = 24007;
    uint16_t raft_port = 24008;
    std::string state_dir = "/var/lib/mortar";
    std::string run_dir = "/run/mortar";
    std::string log_dir = "/var/log/mortar";
    std::string brickd;  // mortar-brickd; default: next to this program
    std::string shd;     // mortar-shd; default: next to this program
    std::chrono::milliseconds peer_timeout{2000};
  };

  Mgmtd(boost::asio::io_context& io, Options options);
  ~Mgmtd() override;

  // Opens the state, starts Raft and the listeners. Errors are logged and returned.
  Result<void> start();
  // Stops listening and Raft. Brick daemons keep running.
  void stop();

  void on_call(const rpc::ConnectionPtr& conn, rpc::Frame frame) override;
  void on_close(const rpc::ConnectionPtr& conn) override;

 private:
  using Awaitable = boost::asio::awaitable<void>;
  template <class T>
  using Task = boost::asio::awaitable<T>;

  // RaftNode::StateMachine (Raft thread).
  std::string apply(uint64_t index, std::string_view command) override;
  std::string snapshot() override;
  void restore(std::string_view snapshot) override;

  pb::ClusterState state() const;
  pb::PeerInfo self_info() const;
  // The address outgoing connections come from: this server's own, when it has one.
  std::string source_address() const;
  bool is_self(const pb::PeerInfo& peer) const { return peer.uuid() == uuid_; }

  // Proposes a command through the leader; "" or why it was not applied.
  Task<std::string> propose(pb::Command command);
  Task<std::string> raft_propose(std::string command);
  Task<std::string> raft_change(bool add, uint64_t id, std::string address);
  // Waits for the local state to reach at least `epoch`.
  Task<bool> wait_epoch(uint64_t epoch, std::chrono::milliseconds timeout);
  // One call to another mortar-mgmtd, over a connection of its own (`host` need not be a
  // member) or a member's standing connection.
  template <class Rsp, class Req>
  Task<Result<Rsp>> call_host(std::string host, uint16_t port, pb::MgmtProc proc, Req request);
  template <class Rsp, class Req>
  Task<Result<Rsp>> call_client(std::shared_ptr<rpc::RpcClient> client, uint32_t proc,
                                Req request);
  // Runs blocking `work` on a worker thread and resumes with its result. Not a coroutine
  // itself, so a lambda argument becomes a plain parameter (see docs/engineering.md).
  template <class F>
  Task<std::invoke_result_t<F&>> run_blocking(F work) {
    using T = std::invoke_result_t<F&>;
    return run_blocking_impl<T>(std::make_shared<std::function<T()>>(std::move(work)));
  }
  template <class T>
  Task<T> run_blocking_impl(std::shared_ptr<std::function<T()>> work);

  Awaitable handle_cli(rpc::ConnectionPtr conn, uint64_t xid, pb::CliReq req);
  // `local`: asked on this server's CLI socket (not forwarded by another server).
  Task<pb::CliRsp> cli(pb::CliReq req, bool trusted, bool local);
  Task<pb::CliRsp> forward_to_leader(pb::CliReq req, bool local);
  // Before a read on a follower: wait until it has applied what the leader has, so a command
  // just answered by one server is seen by the next.
  Awaitable catch_up_with_leader();
  // Peer commands name servers as the server the operator talks to sees them: on a follower,
  // probing or detaching itself, or probing a member, is answered here rather than by the
  // leader about itself. nullopt: for the leader to decide.
  Task<std::optional<pb::CliRsp>> peer_command_here(pb::CliReq req);
  // Takes a ":PORT" off `host`; the port, or the management port when none is given.
  uint16_t split_probe_target(std::string& host) const;
  Task<pb::CliRsp> peer_probe(std::string host);
  Task<pb::CliRsp> peer_detach(std::string host, bool force, bool local);
  pb::CliRsp peer_status(bool include_self);
  Task<pb::CliRsp> volume_create(pb::VolumeCreate req);
  Task<pb::CliRsp> volume_start(pb::VolumeName req);
  Task<pb::CliRsp> volume_add_brick(pb::VolumeAddBrick req);
  Task<pb::CliRsp> volume_replace_brick(pb::VolumeReplaceBrick req);
  // "HOST:/PATH" as a brick of a server of `state`; "" in `error` when it is one.
  struct BrickOrError {
    pb::BrickSpec brick;
    std::string error;
  };
  Task<BrickOrError> brick_of(pb::ClusterState state, std::string text);
  Task<pb::CliRsp> volume_rebalance(pb::VolumeRebalance req);
  Task<pb::CliRsp> volume_remove_brick(pb::VolumeRemoveBrick req);
  // After `rebalance start`: waits until no server is moving buckets, then settles them if all
  // finished without a failure.
  Awaitable settle_when_done(std::string volume);
  // Proposes SettleBuckets when `statuses` (one per server) say every server completed the
  // current map's buckets.
  Awaitable settle_if_done(std::string volume, pb::CliRsp statuses);
  // After a replace-brick: a full heal from this server's heal daemon onto the new brick.
  Awaitable heal_replaced(std::string volume);
  Task<pb::CliRsp> volume_stop(pb::VolumeName req);
  Task<pb::CliRsp> volume_delete(pb::VolumeName req);
  Task<pb::CliRsp> volume_status(pb::VolumeName req);
  Task<pb::CliRsp> volume_set(pb::VolumeSet req);
  Task<pb::CliRsp> volume_reset(pb::VolumeReset req);
  // Bricks and self-heal daemons of `volume`, asked of every server that has bricks of it.
  // With `acted_epoch`, each server answers once its bricks were started or stopped for that
  // epoch of the state (or a later one).
  Task<pb::VolumeStatusEntry> volume_status_entry(pb::VolumeSpec volume, bool detail,
                                                  uint64_t acted_epoch = 0);
  // Waits until this server applied `epoch` and started or stopped its bricks to match.
  Task<bool> wait_bricks_reconciled(uint64_t epoch, std::chrono::milliseconds timeout);
  pb::BrickStatusRsp local_status(const pb::VolumeSpec& volume, bool detail);  // blocking
  // `volume heal ...`. `forwarded`: another server asked, for this server's daemon.
  Task<pb::CliRsp> volume_heal(pb::VolumeHeal req, bool forwarded);
  // One call to this server's self-heal daemon.
  Task<pb::CliRsp> local_heal(pb::VolumeHeal req);
  Task<pb::CliRsp> peer_heal(std::string uuid, pb::VolumeHeal req);
  Task<std::string> check_bricks_everywhere(pb::VolumeSpec volume, bool force);
  std::string check_bricks_locally(const pb::CheckBricksReq& req);

  Awaitable handle_peer(rpc::ConnectionPtr conn, rpc::Frame frame);
  Awaitable maintain();  // peers' connections, cluster founding, reconciling bricks
  void on_applied(const pb::Command& cmd, const pb::ClusterState& state);
  void reconcile_bricks();
  void reconcile_shd();
  // Standing connections to every other server of `state`: liveness for `peer status`, and
  // the majority check before a change.
  void sync_peer_clients(const pb::ClusterState& state);
  void notify_graph_changed(const std::string& volume, uint64_t version);
  // Resets Raft and the state to a cluster of this server alone. With `removed_from`, only if
  // this server is still out of that cluster (and not joining another one). Blocking.
  Result<void> become_standalone(const std::string& removed_from = "");
  bool member_address(const std::string& address) const;
  std::shared_ptr<rpc::RpcClient> peer_client(const std::string& uuid) const;
  size_t reachable_voters() const;
  // Whether a majority of the voters is reachable from here. Just after a start the standing
  // connections to the others are still being made: it waits for them for a few seconds.
  Task<bool> majority_reachable();
  // The voters that answer a ping within `timeout`, this server included.
  Task<size_t> answering_voters(std::chrono::milliseconds timeout);

  boost::asio::io_context& io_;
  Options options_;
  std::string advertise_;  // the name other servers and clients reach this server by
  std::unique_ptr<StateStore> store_;
  std::string uuid_;
  std::unique_ptr<RaftNode> raft_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<BrickSupervisor> bricks_;
  std::unique_ptr<ShdSupervisor> shd_;
  std::unique_ptr<boost::asio::thread_pool> workers_;

  std::mutex reset_mu_;  // one Raft reset (join, leave) at a time; taken before mu_
  mutable std::mutex mu_;
  pb::ClusterState state_;      // GUARDED_BY(mu_)
  bool joining_ = false;        // GUARDED_BY(mu_): reset to be added to another cluster
  std::string join_requester_;  // GUARDED_BY(mu_): the address of the server that asked
  std::map<std::string, std::shared_ptr<rpc::RpcClient>> peers_;  // GUARDED_BY(mu_), by uuid
  std::set<std::string> member_addresses_;                        // GUARDED_BY(mu_)
  // GETSPEC subscribers: connection id -> (connection, volumes)
  std::map<uint64_t, std::pair<std::weak_ptr<rpc::ServerConnection>, std::set<std::string>>>
      subscribers_;                 // GUARDED_BY(mu_)
  bool reconcile_pending_ = false;  // GUARDED_BY(mu_)
  // The epoch of the last state whose bricks reconcile_bricks started or stopped. A brick
  // killed after `volume start force` answered must stay dead: the answer waits for this.
  uint64_t reconciled_epoch_ = 0;  // GUARDED_BY(mu_)
  bool stopping_ = false;
  // The last rebalance that settled, per volume (this server led it): its heal daemons
  // restarted with the settled graph and no longer know it.
  std::map<std::string, pb::CliRsp> last_rebalance_;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point started_at_;
};

}  // namespace mortar::mgmtd
