// This server's self-heal daemon: one mortar-shd for every started replicated volume with a
// brick here, restarted when that set of volumes or any of their graphs changes, and stopped
// when none is left. Like the bricks it is a detached process with a pid file, so it keeps
// healing while mortar-mgmtd restarts, and a restarted mortar-mgmtd finds it again.
//
// Blocking (it waits for the daemon to start and stop): call from a worker thread. Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "proto/mgmt.pb.h"

namespace mortar::mgmtd {

class ShdSupervisor {
 public:
  struct Options {
    std::string shd;             // path of mortar-shd
    std::string run_dir;         // pid file, control socket
    std::string log_dir;         // its log
    std::string volfile_server;  // "HOST:PORT" of this server's mortar-mgmtd
    std::string node_id;         // this server's UUID
  };
  explicit ShdSupervisor(Options options);

  // The volumes of `state` this server's daemon heals.
  static std::vector<const pb::VolumeSpec*> volumes_to_heal(const pb::ClusterState& state,
                                                            const std::string& self_uuid);
  // Makes the running daemon match `state`. Returns "" or what failed.
  std::string reconcile(const pb::ClusterState& state, const std::string& self_uuid);
  // Stops the daemon (SIGTERM, then SIGKILL after 10 s).
  void stop();
  // PID of the running daemon; 0 when none runs.
  int pid() const;
  // Whether the running daemon heals `volume`.
  bool serves(const std::string& volume) const;
  std::string control_socket() const { return options_.run_dir + "/shd.sock"; }

 private:
  void stop_locked();
  std::string pid_file() const { return options_.run_dir + "/shd.pid"; }
  // "name graph-hash" lines of the volumes the running daemon was started for.
  std::string key_file() const { return options_.run_dir + "/shd.volumes"; }

  Options options_;
  mutable std::mutex mu_;
};

}  // namespace mortar::mgmtd
