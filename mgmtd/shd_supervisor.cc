#include "mgmtd/shd_supervisor.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "mgmtd/spawn.h"
#include "mgmtd/volgen.h"
#include "mgmtd/volume_options.h"
#include "translators/options.h"
#include "translators/volfile.h"

namespace mortar::mgmtd {

namespace fs = std::filesystem;

namespace {

int64_t int_option(const pb::VolumeSpec& v, std::string_view key, int64_t fallback) {
  auto text = effective_option(v, key);
  if (!text) return fallback;
  auto n = xl::parse_int(*text);
  return n ? *n : fallback;
}

int64_t duration_ms_option(const pb::VolumeSpec& v, std::string_view key, int64_t fallback) {
  auto text = effective_option(v, key);
  if (!text) return fallback;
  auto d = xl::parse_duration(*text);
  return d ? d->count() : fallback;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

ShdSupervisor::ShdSupervisor(Options options) : options_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(options_.run_dir, ec);
  fs::create_directories(options_.log_dir, ec);
}

std::vector<const pb::VolumeSpec*> ShdSupervisor::volumes_to_heal(const pb::ClusterState& state,
                                                                  const std::string& self_uuid) {
  std::vector<const pb::VolumeSpec*> out;
  for (const auto& v : state.volumes()) {
    if (v.status() != pb::VOLUME_STARTED || v.replica_count() < 2) continue;
    auto enabled = effective_option(v, "cluster.self-heal-daemon");
    if (enabled && *enabled == "off") continue;
    bool local = std::any_of(v.bricks().begin(), v.bricks().end(),
                             [&](const pb::BrickSpec& b) { return b.peer_uuid() == self_uuid; });
    if (local) out.push_back(&v);
  }
  return out;
}

std::string ShdSupervisor::reconcile(const pb::ClusterState& state, const std::string& self_uuid) {
  std::lock_guard lock(mu_);
  auto volumes = volumes_to_heal(state, self_uuid);
  // The daemon holds each volume's graph as it was when it started: any change of the set of
  // volumes or of one of their graphs means a new daemon. Not every new version of a volume
  // changes its graph (`volume start force` makes one): a daemon that keeps running keeps
  // healing, and keeps its counters.
  std::string key;
  for (const auto* v : volumes) {
    auto graph = generate_client_graph(*v);
    std::string text = graph ? xl::render_volfile(graph->graph()) : std::to_string(v->version());
    // The daemon's own settings are not in the graph.
    for (const char* k : {"cluster.shd-max-threads", "cluster.heal-timeout"}) {
      auto value = effective_option(*v, k);
      text += std::string(k) + "=" + (value ? *value : "") + "\n";
    }
    key += v->name() + " " + std::to_string(std::hash<std::string>{}(text)) + "\n";
  }
  int running = running_pid(pid_file());
  if (volumes.empty()) {
    if (running) stop_locked();
    return "";
  }
  if (running && read_all(key_file()) == key) return "";
  if (running) stop_locked();

  int64_t parallel = 1, retry_ms = INT64_MAX;
  std::vector<std::string> argv = {options_.shd};
  for (const auto* v : volumes) {
    argv.insert(argv.end(), {"--volume", v->name()});
    parallel = std::max(parallel, int_option(*v, "cluster.shd-max-threads", 4));
    retry_ms = std::min(retry_ms, duration_ms_option(*v, "cluster.heal-timeout", 600000));
  }
  argv.insert(argv.end(), {"--volfile-server", options_.volfile_server, "--control-socket",
                           control_socket(), "--node-id", options_.node_id, "--parallel",
                           std::to_string(std::clamp<int64_t>(parallel, 1, 64)),
                           "--retry-ms", std::to_string(std::max<int64_t>(retry_ms, 1000)),
                           "--pid-file", pid_file(), "--log-file",
                           options_.log_dir + "/shd.log"});
  std::string why = spawn_daemon(argv, options_.run_dir + "/shd.start");
  if (!why.empty()) {
    MLOG_WARN("the self-heal daemon did not start: {}", why);
    return "the self-heal daemon did not start (" + why + ")";
  }
  std::ofstream(key_file()) << key;
  MLOG_INFO("started the self-heal daemon for {} volume(s)", volumes.size());
  return "";
}

void ShdSupervisor::stop() {
  std::lock_guard lock(mu_);
  stop_locked();
}

void ShdSupervisor::stop_locked() {
  int pid = running_pid(pid_file());
  if (pid) {
    stop_process(pid, "the self-heal daemon");
    MLOG_INFO("stopped the self-heal daemon");
  }
  std::error_code ec;
  fs::remove(key_file(), ec);
}

int ShdSupervisor::pid() const { return running_pid(pid_file()); }

bool ShdSupervisor::serves(const std::string& volume) const {
  // Not under mu_: reconcile() holds it while the new daemon starts, and the daemon fetches
  // its graph from this server's I/O threads, which call this. A read racing a restart sees
  // no daemon, and the caller waits for one.
  if (!running_pid(pid_file())) return false;
  std::istringstream in(read_all(key_file()));
  std::string name, version;
  while (in >> name >> version) {
    if (name == volume) return true;
  }
  return false;
}

}  // namespace mortar::mgmtd
