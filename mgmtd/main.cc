// mortar-mgmtd: the management daemon of one server.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <thread>

#include "common/daemon.h"
#include "common/log.h"
#include "common/net.h"
#include "mgmtd/daemon.h"

using namespace mortar;

int main(int argc, char** argv) {
  CLI::App app{"mortar-mgmtd: the management daemon of a mortar server"};
  mgmtd::Mgmtd::Options o;
  std::string listen = "0.0.0.0:24007";
  int raft_port = 0;
  bool foreground = false;
  std::string log_level = "info";
  std::string pid_file;
  app.add_option("--listen", listen,
                 "ADDR[:PORT] to serve on (default 0.0.0.0:24007); bricks listen on ADDR too");
  app.add_option("--raft-port", raft_port, "Port of the Raft endpoint (default: the port + 1)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--state-dir", o.state_dir,
                 "Cluster state and Raft log (default /var/lib/mortar)");
  app.add_option("--run-dir", o.run_dir,
                 "The CLI's Unix socket and brick pid files (default /run/mortar)");
  app.add_option("--log-dir", o.log_dir, "mgmtd and brick logs (default /var/log/mortar)");
  app.add_option("--brickd", o.brickd, "mortar-brickd to run (default: next to this program)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--pid-file", pid_file, "Write the daemon's PID here");
  app.add_flag("--foreground", foreground, "Stay in the foreground (default: detach)");
  CLI11_PARSE(app, argc, argv);

  if (listen.find(':') == std::string::npos) listen += ":24007";
  auto hp = parse_host_port(listen, false);
  if (!hp) {
    std::fprintf(stderr, "mortar-mgmtd: --listen '%s' is not ADDR[:PORT]\n", listen.c_str());
    return 2;
  }
  o.address = hp->host;
  o.port = hp->port;
  o.raft_port = static_cast<uint16_t>(raft_port ? raft_port : hp->port + 1);

  Daemon daemon;
  if (!foreground) {
    if (auto r = daemon.detach(); !r) {
      std::fprintf(stderr, "mortar-mgmtd: cannot detach: %s\n", r.error().message().c_str());
      return 1;
    }
  }
  log::init("mgmtd", o.log_dir + "/mgmtd.log", log_level);
  ::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io;
  mgmtd::Mgmtd mgmtd(io, o);
  if (auto r = mgmtd.start(); !r) {
    daemon.report_failure("mortar-mgmtd could not start: " + r.error().message() + " (see " +
                          o.log_dir + "/mgmtd.log)");
    return 1;
  }
  if (!pid_file.empty()) (void)write_pid_file(pid_file);
  daemon.report_ready();

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    MLOG_INFO("signal {}: stopping (bricks keep running)", sig);
    mgmtd.stop();
    io.stop();
  });
  std::thread second([&io] { io.run(); });
  io.run();
  second.join();
  if (!pid_file.empty()) ::unlink(pid_file.c_str());
  MLOG_INFO("mortar-mgmtd stopped");
  return 0;
}
