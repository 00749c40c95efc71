#include "fuse-client/graph_switcher.h"

#include <google/protobuf/util/message_differencer.h>

#include <map>
#include <optional>
#include <thread>

#include "common/log.h"
#include "common/rpc/asio.h"
#include "common/rpc/client.h"
#include "translators/volfile.h"

namespace mortar::fuse {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

// ---- GraphKeeper ----

GraphKeeper::GraphKeeper(asio::any_io_executor executor)
    : executor_(std::move(executor)), shared_(std::make_shared<Shared>()) {}

GraphPtr GraphKeeper::adopt(std::unique_ptr<xl::Graph> graph, std::string label) {
  {
    std::lock_guard lock(shared_->mu);
    ++shared_->live;
  }
  auto shared = shared_;
  return GraphPtr(graph.release(), [shared, label](xl::Graph* raw) {
    std::unique_ptr<xl::Graph> owned(raw);
    if (!shared->executor_running) {
      owned.reset();  // stops it
      shared->freed_one(label);
      return;
    }
    // The last owner may be a request finishing inside the graph's own call chain, or a
    // release callback; and freeing waits for the translators' background work (replication's
    // delayed post-ops and unlocks), which runs on the I/O threads: free it on a thread of its
    // own, never on theirs (a mount stopped answering for seconds after a graph switch).
    std::thread([shared, label, owned = std::move(owned)]() mutable {
      owned->stop();
      owned.reset();
      shared->freed_one(label);
    }).detach();
  });
}

void GraphKeeper::Shared::freed_one(const std::string& label) {
  MLOG_INFO("freed graph {}", label);
  std::lock_guard lock(mu);
  --live;
  freed.notify_all();
}

void GraphKeeper::set_executor_running(bool running) { shared_->executor_running = running; }

size_t GraphKeeper::live() const {
  std::lock_guard lock(shared_->mu);
  return shared_->live;
}

bool GraphKeeper::wait_all_freed(milliseconds timeout) const {
  std::unique_lock lock(shared_->mu);
  return shared_->freed.wait_for(lock, timeout, [&] { return shared_->live == 0; });
}

// ---- GraphSwitcher ----

// Everything here is touched on `strand` only, except `done` (set once, at the end).
struct GraphSwitcher::State {
  explicit State(asio::any_io_executor executor)
      : strand(asio::make_strand(executor)), wake_timer(strand) {}

  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer wake_timer;  // cancelled to wake the loop
  bool stopping = false;
  bool fetch_pending = false;
  std::optional<Clock::time_point> retry_at;
  milliseconds retry_delay{0};  // grows while fetches keep failing
  void retry_later(milliseconds first) {
    retry_delay = retry_delay == 0ms ? first : std::min(retry_delay * 2, milliseconds(60s));
    retry_at = Clock::now() + retry_delay;
  }
  std::shared_ptr<rpc::RpcClient> client;
  VolfileServer server;  // the one `client` talks to
  uint64_t version = 0;
  std::optional<bool> writeback_logged;
  std::promise<void> done;
};

GraphSwitcher::GraphSwitcher(FuseBridge& bridge, GraphKeeper& keeper,
                             asio::any_io_executor executor, Config config)
    : bridge_(bridge),
      keeper_(keeper),
      config_(std::move(config)),
      state_(std::make_shared<State>(std::move(executor))) {
  state_->version = config_.version;
  finished_ = state_->done.get_future();
}

GraphSwitcher::~GraphSwitcher() = default;

void GraphSwitcher::start() {
  auto state = state_;
  asio::co_spawn(state->strand, run(), [state](std::exception_ptr e) {
    if (e) MLOG_ERROR("the graph switcher ended with an exception");
    state->done.set_value();
  });
}

void GraphSwitcher::stop(milliseconds timeout) {
  if (!finished_.valid()) return;
  auto state = state_;
  asio::post(state->strand, [state] {
    state->stopping = true;
    if (state->client) state->client->stop();
    state->wake_timer.cancel();
  });
  if (finished_.wait_for(timeout) != std::future_status::ready) {
    MLOG_WARN("the graph switcher did not stop within {} ms", timeout.count());
  }
}

void GraphSwitcher::wake(bool fetch) {
  auto state = state_;
  asio::post(state->strand, [state, fetch] {
    if (fetch) state->fetch_pending = true;
    state->wake_timer.cancel();
  });
}

asio::awaitable<void> GraphSwitcher::sleep(milliseconds d) {
  state_->wake_timer.expires_after(d);
  co_await state_->wake_timer.async_wait(use_nothrow);
}

asio::awaitable<void> GraphSwitcher::run() {
  auto self = shared_from_this();
  State& st = *state_;
  const size_t n = config_.servers.size();
  size_t next = 0;
  size_t unanswered = 0;  // servers in a row that did not answer
  milliseconds backoff = 1s;
  while (!st.stopping && n > 0) {
    st.server = config_.servers[next];
    rpc::RpcClient::Options o;
    o.host = st.server.host;
    o.port = st.server.port;
    o.name = "mortar-mgmtd " + st.server.str();
    o.connect_timeout = config_.connect_timeout;
    o.ping_timeout = config_.ping_timeout;
    // This loop decides where to reconnect: the next server in the list, not the same one.
    o.reconnect = false;
    auto client = std::make_shared<rpc::RpcClient>(st.strand, o);
    std::weak_ptr<GraphSwitcher> weak = self;
    client->set_event_listener([weak, volume = config_.volume](uint32_t proc, std::string msg) {
      if (proc != pb::GRAPH_CHANGED) return;
      pb::GraphChanged ev;
      if (!ev.ParseFromString(msg) || ev.volume() != volume) return;
      MLOG_DEBUG("mortar-mgmtd: the graph of {} changed (version {})", volume, ev.version());
      if (auto s = weak.lock()) s->wake(true);
    });
    client->set_state_listener([weak](bool up) {
      if (up) return;
      if (auto s = weak.lock()) s->wake(false);
    });
    st.client = client;
    client->start();
    // Not RpcClient::wait_up: stop() must not wait for its timeout.
    auto until = Clock::now() + config_.connect_timeout + 500ms;
    asio::steady_timer poll(st.strand);
    while (!st.stopping && !client->is_up() && Clock::now() < until) {
      poll.expires_after(20ms);
      co_await poll.async_wait(use_nothrow);
    }
    bool up = client->is_up();
    if (up && !st.stopping) {
      MLOG_INFO("management connection to {} for volume {}", st.server.str(), config_.volume);
      unanswered = 0;
      backoff = 1s;
      // After every (re)connect: an event may have been missed while away, and the GETSPEC
      // is also what subscribes this connection to the next ones.
      st.fetch_pending = true;
      while (!st.stopping && client->is_up()) {
        if (st.fetch_pending || (st.retry_at && Clock::now() >= *st.retry_at)) {
          st.fetch_pending = false;
          st.retry_at.reset();
          auto work = refresh(client);
          co_await std::move(work);
          continue;
        }
        auto wait = st.retry_at
                        ? std::chrono::duration_cast<milliseconds>(*st.retry_at - Clock::now())
                        : milliseconds(std::chrono::hours(1));
        co_await sleep(std::max(wait, 1ms));
      }
      if (!st.stopping) {
        MLOG_WARN("lost the management connection to {}{}", st.server.str(),
                  n > 1 ? "; trying the next volfile server" : "; reconnecting");
      }
    }
    client->stop();
    st.client.reset();
    if (st.stopping) break;
    next = (next + 1) % n;
    if (up) {
      co_await sleep(100ms);  // a server that accepts and drops at once must not spin us
      continue;
    }
    if (++unanswered % n == 0) {
      if (unanswered == n) {
        MLOG_WARN(
            "no management daemon answers on {}; the mount goes on with graph version {} "
            "and keeps trying",
            describe_servers(config_.servers), st.version);
      }
      co_await sleep(backoff);
      backoff = std::min(backoff * 2, milliseconds(30s));
    }
  }
}

asio::awaitable<void> GraphSwitcher::refresh(std::shared_ptr<rpc::RpcClient> client) {
  State& st = *state_;
  auto fetch = getspec(client, config_.volume, true, 10s);
  Result<pb::GetspecRsp> r = co_await std::move(fetch);
  if (st.stopping) co_return;
  if (!r) {
    if (r.error().value == ENOTCONN) co_return;  // the loop moves to the next server
    // A stopped or deleted volume: its mounts keep serving what they have, as GlusterFS's do,
    // and look again later (an unanswered GETSPEC does not subscribe). Said once per streak.
    bool first = st.retry_delay == 0ms;
    st.retry_later(config_.retry);
    if (first) {
      MLOG_WARN("cannot fetch the graph of {} from {}: {}; still serving version {}",
                config_.volume, st.server.str(),
                describe_getspec_error(r.error(), config_.volume, st.server), st.version);
    }
    co_return;
  }
  apply_mount_options(*r);
  if (r->version() == st.version) {
    st.retry_delay = 0ms;
    MLOG_DEBUG("graph of {} is still version {}", config_.volume, st.version);
    co_return;
  }
  std::string label = "version " + std::to_string(r->version()) + " of " + config_.volume;
  if (GraphPtr current = bridge_.graph();
      current && google::protobuf::util::MessageDifferencer::Equals(current->spec(), r->graph())) {
    // Only client-side settings changed (a cache timeout): they are applied above, and new
    // connections to the same bricks would buy nothing.
    MLOG_INFO("graph {} has the same translators as version {}: keeping them", label, st.version);
    st.version = r->version();
    st.retry_delay = 0ms;
    co_return;
  }
  auto built = xl::Graph::build(r->graph(), xl::Registry::builtin(), config_.context);
  if (!built) {
    // The same graph would fail again: wait for the next change or reconnect.
    MLOG_WARN("graph {} is not usable here: {}; still serving version {}", label, built.error(),
              st.version);
    co_return;
  }
  GraphPtr next = keeper_.adopt(std::move(*built), label);
  next->start();
  auto until = Clock::now() + config_.wait_up;
  asio::steady_timer poll(st.strand);
  while (!st.stopping && !next->top()->is_up() && Clock::now() < until) {
    poll.expires_after(10ms);
    co_await poll.async_wait(use_nothrow);
  }
  if (st.stopping) co_return;
  GraphPtr current = bridge_.graph();
  if (!next->top()->is_up()) {
    if (current && current->top()->is_up()) {
      st.retry_later(config_.retry);
      MLOG_WARN(
          "graph {} did not come up within {} ms; still serving version {}, trying "
          "again in {} ms",
          label, config_.wait_up.count(), st.version, st.retry_delay.count());
      co_return;
    }
    MLOG_WARN("graph {} is not up yet, nor is version {}: switching anyway", label, st.version);
  }
  MLOG_INFO("graph {}:\n{}", label, xl::render_volfile(next->spec()));
  GraphPtr old = bridge_.switch_graph(std::move(next));
  uint64_t old_version = st.version;
  st.version = r->version();
  st.retry_delay = 0ms;
  MLOG_INFO("switched to graph version {} of {}", st.version, config_.volume);
  // Freed at once unless files are open on it or requests still run on it; then when the
  // last of those is done.
  MLOG_DEBUG("graph version {} of {} has {} other owner(s) left", old_version, config_.volume,
             old.use_count() - 1);
  old.reset();
}

void GraphSwitcher::apply_mount_options(const pb::GetspecRsp& spec) {
  State& st = *state_;
  MountOptions merged = config_.user_options;
  std::map<std::string, std::string> options(spec.mount_options().begin(),
                                             spec.mount_options().end());
  if (auto r = apply_volume_mount_options(options, merged); !r) {
    MLOG_WARN("{}; keeping the cache timeouts in force", r.error());
    return;
  }
  FuseBridge::CacheTimeouts now = bridge_.cache_timeouts();
  FuseBridge::CacheTimeouts want{merged.entry_timeout, merged.attr_timeout,
                                 merged.negative_timeout};
  if (now.entry != want.entry || now.attr != want.attr || now.negative != want.negative) {
    bridge_.set_cache_timeouts(want);
    MLOG_INFO("cache timeouts of {} now: entry {} s, attribute {} s, negative {} s", config_.volume,
              want.entry, want.attr, want.negative);
  }
  bool wb = merged.writeback_cache;
  if (wb != config_.mounted_writeback_cache && st.writeback_logged != wb) {
    MLOG_INFO(
        "kernel-writeback-cache {} takes effect at the next mount of {} (this mount keeps "
        "it {})",
        wb ? "on" : "off", config_.volume, config_.mounted_writeback_cache ? "on" : "off");
  }
  st.writeback_logged = wb;
}

}  // namespace mortar::fuse
