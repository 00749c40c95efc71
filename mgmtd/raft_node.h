// One server's member of the cluster's Raft group, on Debian's libraft (C, libuv). libraft is
// single-threaded: it runs on its own thread with its own libuv loop, and everything else
// talks to it through a task queue. Callbacks (apply, and the completions) run on that thread.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"

namespace mortar::mgmtd {

class RaftNode {
 public:
  struct Options {
    std::string dir;      // libraft's log and snapshots
    uint64_t id = 0;      // this server's Raft id (from its UUID)
    std::string address;  // "host:port" this server's Raft endpoint listens on
    unsigned election_timeout_ms = 1000;
    unsigned heartbeat_timeout_ms = 100;
    unsigned snapshot_threshold = 256;
  };

  // The replicated state machine. Called on the Raft thread.
  class StateMachine {
   public:
    virtual ~StateMachine() = default;
    // Applies the committed command at log `index`; returns "" or why it was refused
    // (deterministically). After a restart Raft hands over again every entry since its last
    // snapshot, some of which a state kept elsewhere may already hold.
    virtual std::string apply(uint64_t index, std::string_view command) = 0;
    virtual std::string snapshot() = 0;
    virtual void restore(std::string_view snapshot) = 0;
  };

  // Completion of a proposal or a membership change: "" or the error. Runs on the Raft thread.
  using Done = std::function<void(std::string error)>;

  RaftNode(Options options, StateMachine& fsm);
  ~RaftNode();

  // Starts the Raft thread. With `bootstrap`, a node with no log becomes a one-server cluster
  // of itself; without, it waits to be added to a cluster by its leader.
  Result<void> start(bool bootstrap);
  // Closes Raft and joins its thread. Safe to call twice.
  void stop();
  // stop(), erase all Raft state, start() again: to join another cluster (bootstrap false) or
  // to become a standalone server again (bootstrap true).
  Result<void> reset(bool bootstrap);

  // Proposes a command; `done` gets the state machine's answer, or a Raft error (for example
  // "not the leader" or "leadership lost").
  void propose(std::string command, Done done);
  // Adds a server as a voter: added as a spare, caught up, then promoted.
  void add_voter(uint64_t id, std::string address, Done done);
  void remove(uint64_t id, Done done);

  bool is_leader() const { return leader_.load(); }
  uint64_t leader_id() const { return leader_id_.load(); }
  uint64_t id() const { return options_.id; }
  bool running() const { return running_.load(); }

 private:
  struct Impl;
  void post(std::function<void()> task);

  Options options_;
  StateMachine& fsm_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> leader_{false};
  std::atomic<uint64_t> leader_id_{0};
};

// A stable Raft id for a server UUID (never 0).
uint64_t raft_id_of(std::string_view uuid);

}  // namespace mortar::mgmtd
