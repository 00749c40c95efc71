// mortar-shd: the self-heal daemon. One per server with bricks, started and restarted by
// mortar-mgmtd; it holds a client graph of each replicated volume it is given, heals what the
// bricks' heal indexes list as soon as a replica returns, and answers heal commands (mgmtd
// forwards `mortar volume heal ...`) on a Unix socket.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "common/daemon.h"
#include "common/log.h"
#include "common/rpc/server.h"
#include "fuse-client/volume_fetch.h"
#include "shd/volume_healer.h"
#include "translators/volfile.h"

using namespace mortar;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Answers the control socket. Runs on the single I/O thread, like the healers.
class ControlService : public rpc::ServiceHandler {
 public:
  ControlService(asio::io_context& io, std::map<std::string, std::unique_ptr<shd::VolumeHealer>>& volumes)
      : io_(io), volumes_(volumes) {}

  void on_call(const rpc::ConnectionPtr& conn, rpc::Frame frame) override {
    auto work = handle(conn, std::move(frame));
    asio::co_spawn(io_, std::move(work), asio::detached);
  }

 private:
  asio::awaitable<void> handle(rpc::ConnectionPtr conn, rpc::Frame frame) {
    uint64_t xid = frame.header.xid;
    // Only local processes (mgmtd, the administrator's tools) reach this socket.
    if (!conn->is_local()) {
      conn->reply_error(xid, Errno(EACCES));
      co_return;
    }
    switch (frame.header.proc) {
      case pb::SHD_HEAL: {
        pb::ShdHealReq req;
        if (!req.ParseFromString(frame.message)) co_return conn->reply_error(xid, Errno(EPROTO));
        pb::ShdHealRsp rsp;
        auto* v = find(req.volume(), rsp);
        if (v) rsp = v->trigger(req.full());
        conn->reply(xid, rsp);
        co_return;
      }
      case pb::SHD_INFO:
      case pb::SHD_STATS: {
        pb::ShdInfoReq req;
        if (!req.ParseFromString(frame.message)) co_return conn->reply_error(xid, Errno(EPROTO));
        pb::ShdInfoRsp rsp;
        auto* v = find(req.volume(), rsp);
        if (v && frame.header.proc == pb::SHD_STATS) {
          *rsp.mutable_stats() = v->stats();
        } else if (v) {
          rsp = co_await v->info(req.mode(), req.max_entries());
        }
        conn->reply(xid, rsp);
        co_return;
      }
      case pb::SHD_RESOLVE: {
        pb::ShdResolveReq req;
        if (!req.ParseFromString(frame.message)) co_return conn->reply_error(xid, Errno(EPROTO));
        pb::ShdResolveRsp rsp;
        auto* v = find(req.volume(), rsp);
        if (v) rsp = co_await v->resolve(req);
        conn->reply(xid, rsp);
        co_return;
      }
      case pb::SHD_REBALANCE: {
        pb::ShdRebalanceReq req;
        if (!req.ParseFromString(frame.message)) co_return conn->reply_error(xid, Errno(EPROTO));
        pb::ShdRebalanceRsp rsp;
        auto* v = find(req.volume(), rsp);
        if (v) rsp = v->rebalance(req);
        conn->reply(xid, rsp);
        co_return;
      }
      default:
        conn->reply_error(xid, Errno(ENOSYS));
    }
  }

  template <class Rsp>
  shd::VolumeHealer* find(const std::string& volume, Rsp& rsp) {
    auto it = volumes_.find(volume);
    if (it == volumes_.end()) {
      rsp.set_error("Self-heal daemon is not serving volume " + volume);
      return nullptr;
    }
    return it->second.get();
  }

  asio::io_context& io_;
  std::map<std::string, std::unique_ptr<shd::VolumeHealer>>& volumes_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mortar-shd: heals the replicas of mortar volumes"};
  std::vector<std::string> volfiles;
  std::vector<std::string> volumes;
  std::string server = "127.0.0.1";
  std::string control = "/run/mortar/shd.sock";
  std::string node_id;
  std::string log_file, log_level = "info", pid_file;
  size_t parallel = 4;
  int poll_ms = 200, index_check_ms = 5000, dirty_grace_ms = 10000, retry_ms = 600000;
  bool foreground = false;
  app.add_option("--volfile", volfiles, "VOLUME=FILE: heal the volume this volfile describes");
  app.add_option("--volume", volumes, "Heal this volume, its graph fetched from --volfile-server");
  app.add_option("--volfile-server", server, "Management daemon to fetch graphs from");
  app.add_option("--control-socket", control, "Unix socket for heal commands");
  app.add_option("--node-id", node_id, "This server's identity, to spread heals across servers");
  app.add_option("--parallel", parallel, "Inodes healed at once per replica set")
      ->check(CLI::Range(1, 64));
  app.add_option("--poll-ms", poll_ms, "How often replica states are read")->check(CLI::Range(10, 60000));
  app.add_option("--index-check-ms", index_check_ms, "How often heal index sizes are read")
      ->check(CLI::Range(100, 3600000));
  app.add_option("--dirty-grace-ms", dirty_grace_ms,
                 "Age after which marks of an unfinished transaction are healed")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--retry-ms", retry_ms,
                 "Age after which entries that could not be healed (split-brain) are tried again")
      ->check(CLI::Range(1000, 86400000));
  app.add_option("--log-file", log_file, "Log to this file (default: stderr)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.add_option("--pid-file", pid_file, "Write the daemon's PID here");
  app.add_flag("--foreground", foreground, "Do not detach");
  CLI11_PARSE(app, argc, argv);
  if (volfiles.empty() && volumes.empty()) {
    std::fprintf(stderr, "mortar-shd: name at least one --volume or --volfile\n");
    return 2;
  }
  if (node_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    node_id = std::string(host) + ":" + control;
  }

  // Graphs first, while errors can still go to the terminal.
  std::map<std::string, pb::VolumeGraph> graphs;
  for (const auto& v : volfiles) {
    auto eq = v.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "mortar-shd: --volfile wants VOLUME=FILE, not '%s'\n", v.c_str());
      return 2;
    }
    auto parsed = xl::load_volfile(read_file(v.substr(eq + 1)), xl::Registry::builtin());
    if (!parsed) {
      std::fprintf(stderr, "mortar-shd: %s: %s\n", v.substr(eq + 1).c_str(), parsed.error().c_str());
      return 2;
    }
    graphs[v.substr(0, eq)] = parsed->graph;
  }
  if (!volumes.empty()) {
    auto s = fuse::parse_volfile_server(server);
    if (!s) {
      std::fprintf(stderr, "mortar-shd: --volfile-server: %s\n", s.error().c_str());
      return 2;
    }
    for (const auto& v : volumes) {
      std::vector<std::string> tried;
      auto got = fuse::fetch_volume({*s}, v, fuse::FetchPolicy{}, tried);
      if (!got) {
        std::fprintf(stderr, "mortar-shd: %s\n", got.error().c_str());
        return 1;
      }
      graphs[v] = got->spec.graph();
    }
  }

  Daemon daemon;
  if (!foreground) {
    if (auto r = daemon.detach(); !r) {
      std::fprintf(stderr, "mortar-shd: cannot detach: %s\n", r.error().message().c_str());
      return 1;
    }
  }
  log::init("shd", log_file, log_level);
  ::signal(SIGPIPE, SIG_IGN);

  asio::io_context io(1);
  std::map<std::string, std::unique_ptr<shd::VolumeHealer>> healers;
  shd::HealerConfig config;
  config.parallel = parallel;
  config.poll = std::chrono::milliseconds(poll_ms);
  config.index_check = std::chrono::milliseconds(index_check_ms);
  config.dirty_grace = std::chrono::milliseconds(dirty_grace_ms);
  config.split_brain_retry = std::chrono::milliseconds(retry_ms);
  config.node_id = node_id;
  for (auto& [name, spec] : graphs) {
    xl::GraphContext ctx{io.get_executor(), "shd", "shd-" + node_id};
    auto graph = xl::Graph::build(spec, xl::Registry::builtin(), ctx);
    if (!graph) {
      daemon.report_failure("volume " + name + ": " + graph.error());
      return 1;
    }
    (*graph)->start();
    auto healer = std::make_unique<shd::VolumeHealer>(name, std::move(*graph), config,
                                                      io.get_executor());
    MLOG_INFO("healing volume {}: {} replica set(s)", name, healer->set_count());
    healers[name] = std::move(healer);
  }

  ControlService service(io, healers);
  rpc::RpcServer rpc_server(io, service, {});
  if (auto r = rpc_server.listen_unix(control, 0600); !r) {
    daemon.report_failure("cannot listen on " + control + ": " + r.error().message());
    return 1;
  }
  if (!pid_file.empty()) {
    if (auto r = write_pid_file(pid_file); !r) {
      daemon.report_failure("cannot write pid file " + pid_file + ": " + r.error().message());
      return 1;
    }
  }
  for (auto& [name, h] : healers) h->start();
  MLOG_INFO("mortar-shd ready on {}", control);
  daemon.report_ready();

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    MLOG_INFO("signal {}: stopping", sig);
    rpc_server.stop();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (auto& [name, h] : healers) co_await h->stop();
          io.stop();
        },
        asio::detached);
  });
  io.run();
  // The graphs go after the loop: their translators wait for nothing on it any more.
  healers.clear();
  ::unlink(control.c_str());
  MLOG_INFO("mortar-shd stopped");
  return 0;
}
