#include "mgmtd/bricks.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/log.h"
#include "mgmtd/volume_options.h"

extern char** environ;

namespace mortar::mgmtd {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool alive(int pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// The mount holding `path`: file system type and device, from /proc/self/mounts.
std::pair<std::string, std::string> mount_of(const std::string& path) {
  std::ifstream in("/proc/self/mounts");
  std::string dev, point, type, rest, best_point, best_type, best_dev;
  while (in >> dev >> point >> type) {
    std::getline(in, rest);
    bool contains = point == "/" || path == point || path.starts_with(point + "/");
    if (contains && point.size() >= best_point.size()) {
      best_point = point;
      best_type = type;
      best_dev = dev;
    }
  }
  return {best_type, best_dev};
}

}  // namespace

BrickSupervisor::BrickSupervisor(Options options) : options_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(options_.run_dir + "/bricks", ec);
  fs::create_directories(options_.log_dir + "/bricks", ec);
}

std::string BrickSupervisor::base_name(const pb::VolumeSpec& volume,
                                       const pb::BrickSpec& brick) const {
  std::string p = brick.path();
  for (char& c : p) {
    if (c == '/') c = '-';
  }
  return volume.name() + p;  // "webData-exports-b", as GlusterFS names brick files
}

int BrickSupervisor::running_pid(const std::string& pid_file) const {
  std::ifstream in(pid_file);
  int pid = 0;
  if (!(in >> pid)) return 0;
  return alive(pid) ? pid : 0;
}

void BrickSupervisor::write_options(const pb::VolumeSpec& volume, const std::string& path) const {
  auto allow = effective_option(volume, "auth.allow");
  auto reject = effective_option(volume, "auth.reject");
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "auth-allow=" << (allow ? *allow : "*") << "\n";
    out << "auth-reject=" << (reject ? *reject : "") << "\n";
  }
  ::rename(tmp.c_str(), path.c_str());
}

std::string BrickSupervisor::start(const pb::VolumeSpec& volume, const std::string& self_uuid) {
  std::lock_guard lock(mu_);
  std::string errors;
  for (const auto& brick : volume.bricks()) {
    if (brick.peer_uuid() != self_uuid) continue;
    std::string base = options_.run_dir + "/bricks/" + base_name(volume, brick);
    if (running_pid(base + ".pid") > 0) continue;
    std::error_code ec;
    fs::create_directories(brick.path(), ec);
    write_options(volume, base + ".opts");
    std::string log = options_.log_dir + "/bricks/" + base_name(volume, brick) + ".log";
    std::vector<std::string> argv = {options_.brickd,
                                     "--listen",
                                     options_.address + ":" + std::to_string(brick.port()),
                                     "--brick-dir",
                                     brick.path(),
                                     "--volume",
                                     volume.name(),
                                     "--brick-name",
                                     brick.path(),
                                     "--pid-file",
                                     base + ".pid",
                                     "--log-file",
                                     log,
                                     "--options-file",
                                     base + ".opts"};
    if (brick.arbiter()) argv.push_back("--arbiter");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    // The starter exits once the daemon serves (or says why it cannot); its output is the why.
    std::string out = base + ".start";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    // The brick outlives this daemon: it must not inherit our descriptors. A copy of the
    // management port's listening socket would keep accepting (and never answering) after
    // mortar-mgmtd stops, so peers see a dead server as connected and a restarted mgmtd
    // cannot bind its port.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, options_.brickd.c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      errors += "cannot run " + options_.brickd + ": " + std::strerror(rc) + "; ";
      continue;
    }
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
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::ifstream why(out);
      std::string line, text;
      while (std::getline(why, line)) text += (text.empty() ? "" : " ") + line;
      MLOG_WARN("brick {}:{} did not start: {}", brick.host(), brick.path(), text);
      errors += "brick " + brick.host() + ":" + brick.path() + " did not start (" + text + "); ";
    } else {
      MLOG_INFO("started brick {}:{} on port {}", brick.host(), brick.path(), brick.port());
    }
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  return errors;
}

void BrickSupervisor::stop(const pb::VolumeSpec& volume, const std::string& self_uuid) {
  std::lock_guard lock(mu_);
  for (const auto& brick : volume.bricks()) {
    if (brick.peer_uuid() != self_uuid) continue;
    std::string pid_file = options_.run_dir + "/bricks/" + base_name(volume, brick) + ".pid";
    int pid = running_pid(pid_file);
    if (pid == 0) continue;
    ::kill(pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (alive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    if (alive(pid)) {
      MLOG_WARN("brick {}:{} ignored SIGTERM; killing it", brick.host(), brick.path());
      ::kill(pid, SIGKILL);
    }
    MLOG_INFO("stopped brick {}:{}", brick.host(), brick.path());
  }
}

void BrickSupervisor::reconfigure(const pb::VolumeSpec& volume, const std::string& self_uuid) {
  std::lock_guard lock(mu_);
  for (const auto& brick : volume.bricks()) {
    if (brick.peer_uuid() != self_uuid) continue;
    std::string base = options_.run_dir + "/bricks/" + base_name(volume, brick);
    write_options(volume, base + ".opts");
    if (int pid = running_pid(base + ".pid"); pid > 0) ::kill(pid, SIGHUP);
  }
}

std::vector<pb::BrickStatus> BrickSupervisor::status(const pb::VolumeSpec& volume,
                                                     const std::string& self_uuid,
                                                     bool detail) const {
  std::vector<pb::BrickStatus> out;
  for (const auto& brick : volume.bricks()) {
    if (brick.peer_uuid() != self_uuid) continue;
    pb::BrickStatus s;
    s.set_host(brick.host());
    s.set_path(brick.path());
    int pid = running_pid(options_.run_dir + "/bricks/" + base_name(volume, brick) + ".pid");
    s.set_online(pid > 0);
    s.set_pid(pid);
    s.set_port(pid > 0 ? brick.port() : 0);
    if (detail) {
      struct statvfs sv;
      if (::statvfs(brick.path().c_str(), &sv) == 0) {
        s.set_disk_total(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize);
        s.set_disk_free(static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize);
        s.set_inodes_total(sv.f_files);
        s.set_inodes_free(sv.f_ffree);
      }
      auto [type, device] = mount_of(brick.path());
      s.set_fs_type(type);
      s.set_device(device);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace mortar::mgmtd
