// Live graphs of a mount served by mortar-mgmtd: a management connection that subscribes to the
// volume's graph, and the switch of the FUSE bridge to each new version without a remount
// (docs/mount.md, "Live graph changes").
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fuse-client/bridge.h"
#include "fuse-client/mount_options.h"
#include "fuse-client/volume_fetch.h"
#include "translators/graph.h"

namespace mortar::rpc {
class RpcClient;
}

namespace mortar::fuse {

// Makes the shared graphs the bridge, its open files and its requests hold. When the last
// owner lets go, the graph is stopped and freed on the executor, never inside the request or
// release that dropped it, and "freed graph LABEL" is logged. GlusterFS never frees an old
// graph (its issue #1929); this keeps a switch from costing memory for the life of the mount.
class GraphKeeper {
 public:
  explicit GraphKeeper(boost::asio::any_io_executor executor);
  // `label` names the graph in the log: "version 3 of webData".
  GraphPtr adopt(std::unique_ptr<xl::Graph> graph, std::string label);
  // Until this is called, and again after set_executor_running(false), a graph is freed on the
  // thread that lets go of it: nothing would run a handler (before the I/O threads start, on
  // an early exit, after they stop).
  void set_executor_running(bool running);
  // Graphs adopted and not yet freed.
  size_t live() const;
  // Blocks until every adopted graph is freed or `timeout` passes; true if all were. Call it
  // off the executor's threads (at shutdown, while they still run).
  bool wait_all_freed(std::chrono::milliseconds timeout) const;

 private:
  struct Shared {
    mutable std::mutex mu;
    std::condition_variable freed;
    size_t live = 0;  // GUARDED_BY(mu)
    std::atomic<bool> executor_running{false};
    void freed_one(const std::string& label);
  };
  boost::asio::any_io_executor executor_;
  std::shared_ptr<Shared> shared_;
};

class GraphSwitcher : public std::enable_shared_from_this<GraphSwitcher> {
 public:
  struct Config {
    std::vector<VolfileServer> servers;  // in the order to try them; the first answered
    std::string volume;
    uint64_t version = 0;                     // of the graph the bridge serves now
    MountOptions user_options;                // as the user gave them (`given` says which win)
    bool mounted_writeback_cache = false;     // what the kernel was told at mount time
    xl::GraphContext context;                 // for the graphs it builds
    std::chrono::milliseconds wait_up{5000};  // for a new graph's top
    std::chrono::milliseconds connect_timeout{3000};  // per management server
    std::chrono::milliseconds ping_timeout{5000};     // of the management connection
    std::chrono::milliseconds retry{5000};            // after a fetch that did not lead to a switch
  };

  // `bridge` and `keeper` outlive the switcher's run (stop() waits for it).
  GraphSwitcher(FuseBridge& bridge, GraphKeeper& keeper, boost::asio::any_io_executor executor,
                Config config);
  ~GraphSwitcher();

  void start();
  // Closes the management connection and waits (up to `timeout`) until the switcher has
  // finished. Not on the executor's threads.
  void stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  boost::asio::awaitable<void> run();
  // Fetches the graph on `client` and switches to it if its version is new.
  boost::asio::awaitable<void> refresh(std::shared_ptr<rpc::RpcClient> client);
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  void apply_mount_options(const pb::GetspecRsp& spec);
  // From the connection's strand: wake the loop (an event, or the connection went down).
  void wake(bool fetch);

  struct State;
  FuseBridge& bridge_;
  GraphKeeper& keeper_;
  Config config_;
  std::shared_ptr<State> state_;  // touched on the switcher's strand only
  std::promise<void> done_;
  std::future<void> finished_;
};

}  // namespace mortar::fuse
