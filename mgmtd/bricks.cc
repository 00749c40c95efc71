#include "mgmtd/bricks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/log.h"
#include "mgmtd/spawn.h"
#include "mgmtd/volume_options.h"

namespace mortar::mgmtd {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

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

// The numeric addresses `host` resolves to (itself when it is one); none when it does not.
std::vector<std::string> numeric_addresses(const std::string& host) {
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::vector<std::string> out;
  if (::getaddrinfo(bare.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* where = ai->ai_family == AF_INET
                            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
                            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    if (::inet_ntop(ai->ai_family, where, text, sizeof text)) out.emplace_back(text);
  }
  ::freeaddrinfo(res);
  return out;
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

void BrickSupervisor::write_options(const pb::VolumeSpec& volume, const std::string& path) const {
  auto allow = effective_option(volume, "auth.allow");
  auto reject = effective_option(volume, "auth.reject");
  // The servers of the volume's bricks run its heal daemons: trusted by address, so that
  // auth.allow can name the web heads alone without stopping heal (GlusterFS trusts its own
  // daemons likewise). Names resolve here; the brick compares numeric addresses.
  std::set<std::string> trusted;
  if (!options_.address.empty()) trusted.insert(options_.address);
  for (const auto& b : volume.bricks()) {
    for (const auto& a : numeric_addresses(b.host())) trusted.insert(a);
  }
  std::string trusted_list;
  for (const auto& a : trusted) trusted_list += (trusted_list.empty() ? "" : ",") + a;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "auth-allow=" << (allow ? *allow : "*") << "\n";
    out << "auth-reject=" << (reject ? *reject : "") << "\n";
    out << "auth-trusted=" << trusted_list << "\n";
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
    // The starter exits once the daemon serves (or says why it cannot).
    std::string why = spawn_daemon(argv, base + ".start");
    if (!why.empty()) {
      MLOG_WARN("brick {}:{} did not start: {}", brick.host(), brick.path(), why);
      errors += "brick " + brick.host() + ":" + brick.path() + " did not start (" + why + "); ";
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
    stop_process(pid, "brick " + brick.host() + ":" + brick.path());
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
