// The brick daemons of this server: started when their volume starts (or `start force`),
// stopped when it stops, and looked after in between. Bricks are detached processes with pid
// files, so they keep serving while mortar-mgmtd is stopped or restarting, and a restarted
// mortar-mgmtd finds them again.
//
// Blocking (it waits for daemons to start and stop): call from a worker thread. Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "proto/mgmt.pb.h"

namespace mortar::mgmtd {

class BrickSupervisor {
 public:
  struct Options {
    std::string brickd;   // path of mortar-brickd
    std::string run_dir;  // pid and options files
    std::string log_dir;  // brick logs
    std::string address;  // the address this server's bricks listen on
  };
  explicit BrickSupervisor(Options options);

  // Starts this server's bricks of `volume` that are not running. Returns "" or what failed.
  std::string start(const pb::VolumeSpec& volume, const std::string& self_uuid);
  // Stops this server's bricks of `volume` (SIGTERM, then SIGKILL after 10 s).
  void stop(const pb::VolumeSpec& volume, const std::string& self_uuid);
  // Rewrites the bricks' options files and tells running bricks to read them (SIGHUP).
  void reconfigure(const pb::VolumeSpec& volume, const std::string& self_uuid);
  // Status of this server's bricks of `volume`.
  std::vector<pb::BrickStatus> status(const pb::VolumeSpec& volume, const std::string& self_uuid,
                                      bool detail) const;

 private:
  std::string base_name(const pb::VolumeSpec& volume, const pb::BrickSpec& brick) const;
  void write_options(const pb::VolumeSpec& volume, const std::string& path) const;

  Options options_;
  std::mutex mu_;  // one start/stop at a time
};

}  // namespace mortar::mgmtd
