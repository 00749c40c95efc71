// Real mortar-mgmtd servers on 127.0.0.x for integration tests, and the mortar CLI against
// them. Each server keeps its state, sockets and logs under the test's directory; everything it
// started (its brick daemons included) is killed when the object goes, pass or fail.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace mortar::test {

struct CliResult {
  int status = -1;
  std::string out;  // stdout, then stderr
  std::string stdout_text;
  std::string stderr_text;
};

class MgmtdServer {
 public:
  // Server `address` (e.g. "127.0.0.2") with its directories under `root`.
  MgmtdServer(std::string address, std::string root);
  ~MgmtdServer();

  // Starts mortar-mgmtd in the foreground and waits until its CLI socket answers.
  bool start();
  // SIGTERM; returns the exit status. Its bricks keep running, as in production.
  int stop();
  void kill9();
  void signal(int sig) { process_.signal(sig); }
  bool running() { return process_.running(); }

  // Runs `mortar --socket=<this server's socket> ARGS... --mode=script`.
  CliResult cli(const std::vector<std::string>& args) const;

  const std::string& address() const { return address_; }
  const std::string& root() const { return root_; }
  std::string socket() const { return root_ + "/run/mgmtd.sock"; }
  std::string log() const { return root_ + "/log/mgmtd.log"; }
  std::string brick_log_dir() const { return root_ + "/log/bricks"; }
  // PIDs of the brick daemons this server started (from their pid files).
  std::vector<int> brick_pids() const;
  // PID of this server's self-heal daemon; 0 when none runs.
  int shd_pid() const;
  // Kills this server's brick daemons and its self-heal daemon (SIGKILL).
  void kill_bricks() const;

 private:
  std::string address_;
  std::string root_;
  Process process_;
};

// A cluster of `n` servers on 127.0.0.F ... 127.0.0.(F+n-1), F = `first_host` (2 unless given),
// started and probed from the first. Tests that may run at the same time as others (ctest -j),
// or next to a quickstart cluster (127.0.0.2-5), give each cluster its own addresses.
class TestCluster {
 public:
  explicit TestCluster(int n, const std::string& root, int first_host = 2);
  ~TestCluster();
  // Starts every server and probes the others from the first. False if anything failed.
  bool start(bool probe = true);
  MgmtdServer& server(int i) { return *servers_[i]; }
  int size() const { return static_cast<int>(servers_.size()); }
  CliResult cli(const std::vector<std::string>& args) const { return servers_[0]->cli(args); }

 private:
  std::vector<std::unique_ptr<MgmtdServer>> servers_;
};

}  // namespace mortar::test
