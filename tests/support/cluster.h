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
  std::string out;  // stdout and stderr together
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
  bool running() { return process_.running(); }

  // Runs `mortar --socket=<this server's socket> ARGS... --mode=script`.
  CliResult cli(const std::vector<std::string>& args) const;

  const std::string& address() const { return address_; }
  std::string socket() const { return root_ + "/run/mgmtd.sock"; }
  std::string log() const { return root_ + "/log/mgmtd.log"; }
  std::string brick_log_dir() const { return root_ + "/log/bricks"; }
  // PIDs of the brick daemons this server started (from their pid files).
  std::vector<int> brick_pids() const;
  // Kills this server's brick daemons (SIGKILL).
  void kill_bricks() const;

 private:
  std::string address_;
  std::string root_;
  Process process_;
};

// A cluster of `n` servers on 127.0.0.2 ... 127.0.0.(n+1), started and probed from the first.
class TestCluster {
 public:
  explicit TestCluster(int n, const std::string& root);
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
