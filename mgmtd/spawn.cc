#include "mgmtd/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/log.h"

extern char** environ;

namespace mortar::mgmtd {

using namespace std::chrono_literals;

bool process_alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  // A daemon that died waits as a zombie until init reaps it, which some inits (this project's
  // CI VMs') do late: a zombie is dead, and its brick must be restarted.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

int running_pid(const std::string& pid_file) {
  std::ifstream in(pid_file);
  int pid = 0;
  if (!(in >> pid)) return 0;
  return process_alive(pid) ? pid : 0;
}

std::string spawn_daemon(const std::vector<std::string>& argv, const std::string& output_file) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // The daemon outlives mortar-mgmtd: it must not inherit our descriptors. A copy of the
  // management port's listening socket would keep accepting (and never answering) after
  // mortar-mgmtd stops, so peers see a dead server as connected and a restarted mgmtd
  // cannot bind its port.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, copy[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return "cannot run " + copy[0] + ": " + std::strerror(rc);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::ifstream why(output_file);
  std::string line, text;
  while (std::getline(why, line)) text += (text.empty() ? "" : " ") + line;
  return text.empty() ? "it exited without saying why" : text;
}

void stop_process(int pid, const std::string& what, int grace_seconds) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
  while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (process_alive(pid)) {
    MLOG_WARN("{} ignored SIGTERM; killing it", what);
    ::kill(pid, SIGKILL);
  }
}

}  // namespace mortar::mgmtd
