// Detaching a daemon so that its starter still learns whether start-up worked: the parent
// waits on a pipe and exits 0 only once the child reports ready, or 1 with the child's reason.
#pragma once

#include <functional>
#include <string>

#include "common/result.h"

namespace mortar {

class Daemon {
 public:
  // Forks; the parent waits for report_ready/report_failure and exits with the outcome, after
  // running `on_failure` if the child failed or died first. In the child: new session,
  // stdin/stdout to /dev/null (stderr too once ready).
  Result<void> detach(std::function<void()> on_failure = {});
  // Start-up finished: the waiting parent exits 0. No effect in the foreground.
  void report_ready();
  // Start-up failed: the reason goes to stderr (through the parent when detached).
  void report_failure(const std::string& reason);

 private:
  int pipe_fd_ = -1;
};

// Writes "PID\n" to `path`, replacing what was there.
Result<void> write_pid_file(const std::string& path);

}  // namespace mortar
