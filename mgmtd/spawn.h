// Starting and stopping the detached daemons mortar-mgmtd looks after (bricks, the heal
// daemon). Blocking.
#pragma once

#include <string>
#include <vector>

namespace mortar::mgmtd {

// Runs `argv` and waits (up to 30 s) for the starter to exit: a daemon that detaches exits
// once it serves, or fails saying why. Returns "" or why it did not start (its output, kept
// in `output_file`).
std::string spawn_daemon(const std::vector<std::string>& argv, const std::string& output_file);
// The PID in `pid_file` if that process is alive; 0 otherwise.
int running_pid(const std::string& pid_file);
bool process_alive(int pid);
// SIGTERM, then SIGKILL if it is still there after `grace_seconds`.
void stop_process(int pid, const std::string& what, int grace_seconds = 10);

}  // namespace mortar::mgmtd
