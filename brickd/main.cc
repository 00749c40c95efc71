// mortar-brickd: serves one brick directory over the brick protocol.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "brickd/brick_fs.h"
#include "brickd/service.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rpc/server.h"

using namespace mortar;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  CLI::App app{"mortar-brickd: serves one brick directory of a mortar volume"};
  std::string listen;
  std::string brick_dir;
  std::string volume;
  std::string brick_name;
  std::string log_file;
  std::string log_level = "info";
  std::string pid_file;
  bool foreground = false;
  bool rebuild_index = false;
  size_t io_threads = 8;
  size_t net_threads = 1;
  std::vector<std::string> auth_allow;
  std::vector<std::string> auth_reject;
  uint32_t idle_timeout_s = 30;

  app.add_option("--listen", listen, "Address and port to serve on, ADDR:PORT ([v6]:PORT)")
      ->required();
  app.add_option("--brick-dir", brick_dir, "The brick directory; must exist")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--volume", volume, "Name of the volume this brick belongs to")->required();
  app.add_option("--brick-name", brick_name,
                 "Name clients ask for in their handshake (default: the brick directory)");
  app.add_option("--log-file", log_file, "Log to this file (default: stderr)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--pid-file", pid_file, "Write the daemon's PID here");
  app.add_flag("--foreground", foreground, "Stay in the foreground (default: detach)");
  app.add_option("--io-threads", io_threads, "Threads running disk operations")
      ->check(CLI::Range(1, 512));
  app.add_option("--net-threads", net_threads, "Threads running the network")
      ->check(CLI::Range(1, 64));
  app.add_option("--auth-allow", auth_allow,
                 "Client address globs admitted, comma-separated (default: all)");
  app.add_option("--auth-reject", auth_reject, "Client address globs refused, comma-separated");
  app.add_option("--idle-timeout", idle_timeout_s,
                 "Seconds of silence before a client that never said its ping interval is "
                 "dropped (and its locks released)")
      ->check(CLI::Range(1, 3600));
  app.add_flag("--rebuild-index", rebuild_index,
               "Rebuild the GFID index from the brick's files before serving");
  bool arbiter = false;
  app.add_flag("--arbiter", arbiter,
               "Arbiter brick: keep names, metadata and replication changelogs, no file data");
  std::string options_file;
  app.add_option("--options-file", options_file,
                 "File of settings the management daemon may change at run time "
                 "(auth-allow=..., auth-reject=...); read at start and on SIGHUP");
  std::vector<std::string> inject_delay;
  app.add_option("--inject-delay", inject_delay,
                 "Testing only: PROC:MS makes every PROC call (e.g. FSYNC) take MS longer on its "
                 "disk thread");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::pair<uint32_t, uint32_t>> delays;
  for (const auto& d : inject_delay) {
    auto colon = d.find(':');
    mortar::pb::Proc proc;
    uint32_t ms = 0;
    auto ms_text = colon == std::string::npos ? std::string() : d.substr(colon + 1);
    auto [end, ec] = std::from_chars(ms_text.data(), ms_text.data() + ms_text.size(), ms);
    if (colon == std::string::npos || !mortar::pb::Proc_Parse(d.substr(0, colon), &proc) ||
        ec != std::errc() || end != ms_text.data() + ms_text.size()) {
      std::fprintf(stderr, "mortar-brickd: --inject-delay '%s' is not PROC:MS\n", d.c_str());
      return 2;
    }
    delays.emplace_back(static_cast<uint32_t>(proc), ms);
  }

  auto endpoint = parse_host_port(listen);
  if (!endpoint) {
    std::fprintf(stderr, "mortar-brickd: --listen '%s' is not ADDR:PORT\n", listen.c_str());
    return 2;
  }
  if (brick_name.empty()) brick_name = brick_dir;

  // Modes arrive already masked by the client's umask; the brick must not mask them again.
  ::umask(0);
  Daemon daemon;
  if (!foreground) {
    if (auto r = daemon.detach(); !r) {
      std::fprintf(stderr, "mortar-brickd: cannot detach: %s\n", r.error().message().c_str());
      return 1;
    }
  }
  log::init("brickd", log_file, log_level);
  MLOG_INFO("mortar-brickd starting: volume {} brick {} dir {} on {}", volume, brick_name,
            brick_dir, listen);

  auto fs = brickd::BrickFs::open({brick_dir, volume, rebuild_index});
  if (!fs) {
    daemon.report_failure("cannot open brick " + brick_dir + ": " + fs.error().message());
    return 1;
  }

  boost::asio::io_context io;
  brickd::BrickService service(**fs,
                               {volume, brick_name, auth_allow, auth_reject, io_threads, delays, arbiter});
  auto load_options = [&]() {
    if (options_file.empty()) return;
    std::ifstream in(options_file);
    if (!in) {
      MLOG_WARN("cannot read options file {}", options_file);
      return;
    }
    std::vector<std::string> allow = auth_allow, reject = auth_reject, trusted;
    std::string line;
    while (std::getline(in, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(0, eq), value = line.substr(eq + 1);
      if (key == "auth-allow") allow = {value};
      if (key == "auth-reject") reject = {value};
      if (key == "auth-trusted") {
        for (size_t start = 0; start < value.size();) {
          size_t comma = value.find(',', start);
          if (comma == std::string::npos) comma = value.size();
          if (comma > start) trusted.push_back(value.substr(start, comma - start));
          start = comma + 1;
        }
      }
    }
    service.set_auth(allow, reject, trusted);
    MLOG_INFO("options: auth-allow '{}' auth-reject '{}' trusted servers {}",
              allow.empty() ? "" : allow[0], reject.empty() ? "" : reject[0], trusted.size());
  };
  load_options();
  rpc::RpcServer::Options server_options;
  server_options.idle_timeout = std::chrono::seconds(idle_timeout_s);
  rpc::RpcServer server(io, service, server_options);
  auto port = server.listen(endpoint->host, endpoint->port);
  if (!port) {
    daemon.report_failure("cannot listen on " + listen + ": " + port.error().message());
    return 1;
  }
  if (!pid_file.empty()) {
    if (auto r = write_pid_file(pid_file); !r) {
      daemon.report_failure("cannot write pid file " + pid_file + ": " + r.error().message());
      return 1;
    }
  }
  MLOG_INFO("serving on {}:{}", endpoint->host, *port);
  daemon.report_ready();

  boost::asio::signal_set reload(io, SIGHUP);
  std::function<void()> on_reload;
  on_reload = [&] {
    reload.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      load_options();
      on_reload();
    });
  };
  on_reload();

  std::mutex mu;
  std::condition_variable cv;
  bool stop_requested = false;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    MLOG_INFO("signal {}: stopping", sig);
    std::lock_guard lock(mu);
    stop_requested = true;
    cv.notify_all();
  });
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<std::thread> threads;
  for (size_t i = 0; i < net_threads; ++i) threads.emplace_back([&io] { io.run(); });

  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return stop_requested; });
  }
  // Graceful stop: no new connections, let running calls answer, then close.
  server.stop_accepting();
  size_t left = service.drain(10s);
  if (left > 0) MLOG_WARN("{} calls still running at exit", left);
  boost::asio::post(io, [&server] { server.stop(); });
  // Connections close once their last answers are written.
  for (int i = 0; i < 200 && server.connection_count() > 0; ++i) std::this_thread::sleep_for(10ms);
  io.stop();
  for (auto& t : threads) t.join();
  if (auto r = (*fs)->meta().sync(); !r) MLOG_WARN("final sync of the index failed");
  if (!pid_file.empty()) ::unlink(pid_file.c_str());
  MLOG_INFO("mortar-brickd stopped");
  return 0;
}
