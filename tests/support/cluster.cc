#include "tests/support/cluster.h"

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "tests/support/brick.h"

namespace mortar::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

MgmtdServer::MgmtdServer(std::string address, std::string root)
    : address_(std::move(address)), root_(std::move(root)) {
  fs::create_directories(root_);
}

MgmtdServer::~MgmtdServer() {
  process_.kill();
  kill_bricks();
}

bool MgmtdServer::start() {
  process_ = Process::spawn({bin("mortar-mgmtd"), "--listen", address_, "--state-dir",
                             root_ + "/state", "--run-dir", root_ + "/run", "--log-dir",
                             root_ + "/log", "--log-level", "debug", "--foreground"},
                            root_ + "/mgmtd.out");
  return eventually([&] {
           if (!process_.running()) return true;
           return cli({"pool", "list"}).status == 0;
         }) &&
         process_.running();
}

int MgmtdServer::stop() { return process_.stop(); }

void MgmtdServer::kill9() { process_.kill(); }

CliResult MgmtdServer::cli(const std::vector<std::string>& args) const {
  static std::atomic<int> counter = 0;
  std::string base = root_ + "/cli-" + std::to_string(++counter);
  std::vector<std::string> argv = {bin("mortar"), "--socket=" + socket(), "--mode=script"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p = Process::spawn(argv, base + ".out", base + ".err");
  CliResult r;
  r.status = p.wait(std::chrono::seconds(120));
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.stdout_text = slurp(base + ".out");
  r.stderr_text = slurp(base + ".err");
  r.out = r.stdout_text + r.stderr_text;
  return r;
}

std::vector<int> MgmtdServer::brick_pids() const {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ + "/run/bricks", ec)) {
    if (e.path().extension() != ".pid") continue;
    std::ifstream in(e.path());
    int pid = 0;
    if (in >> pid && pid > 0 && ::kill(pid, 0) == 0) pids.push_back(pid);
  }
  return pids;
}

int MgmtdServer::shd_pid() const {
  std::ifstream in(root_ + "/run/shd.pid");
  int pid = 0;
  return in >> pid && pid > 0 && ::kill(pid, 0) == 0 ? pid : 0;
}

void MgmtdServer::kill_bricks() const {
  for (int pid : brick_pids()) ::kill(pid, SIGKILL);
  if (int pid = shd_pid()) ::kill(pid, SIGKILL);
}

TestCluster::TestCluster(int n, const std::string& root, int first_host) {
  for (int i = 0; i < n; ++i) {
    std::string address = "127.0.0." + std::to_string(first_host + i);
    servers_.push_back(std::make_unique<MgmtdServer>(address, root + "/s" + std::to_string(i)));
  }
}

TestCluster::~TestCluster() = default;

bool TestCluster::start(bool probe) {
  for (auto& s : servers_) {
    if (!s->start()) return false;
  }
  if (!probe) return true;
  for (size_t i = 1; i < servers_.size(); ++i) {
    if (servers_[0]->cli({"peer", "probe", servers_[i]->address()}).status != 0) return false;
  }
  return true;
}

}  // namespace mortar::test
