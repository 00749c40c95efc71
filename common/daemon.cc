#include "common/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace mortar {

Result<void> Daemon::detach(std::function<void()> on_failure) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno();
  if (pid > 0) {
    ::close(fds[1]);
    std::string message;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
    if (message == "ok") ::_exit(0);
    if (message.empty()) message = "daemon exited during start-up";
    if (on_failure) on_failure();
    std::fprintf(stderr, "%s\n", message.c_str());
    ::_exit(1);
  }
  ::close(fds[0]);
  pipe_fd_ = fds[1];
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::close(null);
  }
  return ok();
}

void Daemon::report_ready() {
  if (pipe_fd_ < 0) return;
  (void)!::write(pipe_fd_, "ok", 2);
  ::close(pipe_fd_);
  pipe_fd_ = -1;
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDERR_FILENO);
    ::close(null);
  }
}

void Daemon::report_failure(const std::string& reason) {
  MLOG_ERROR("{}", reason);
  if (pipe_fd_ < 0) {
    std::fprintf(stderr, "%s\n", reason.c_str());
    return;
  }
  (void)!::write(pipe_fd_, reason.data(), reason.size());
  ::close(pipe_fd_);
  pipe_fd_ = -1;
}

Result<void> write_pid_file(const std::string& path) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return fail_errno();
  std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
  if (std::fclose(f) != 0) return fail_errno();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail_errno();
  return ok();
}

}  // namespace mortar
