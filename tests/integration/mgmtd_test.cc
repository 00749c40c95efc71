// mortar-mgmtd and the mortar CLI end to end: real mortar-mgmtd processes on 127.0.0.x, the
// brick daemons they start, and the `mortar` command as an operator types it (docs/cli.md).
//
// Every test owns a block of addresses (kHosts...), so ctest may run them side by side, and
// next to a quickstart cluster on 127.0.0.2-5. Bricks live under the test's directory, which is
// on the root file system, so volume create needs `force` there; the tests of the replica 2
// rules put their bricks on a tmpfs instead, to see exactly what is refused without it.
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "common/protocol.h"
#include "common/rpc/client.h"
#include "proto/brick.pb.h"
#include "proto/mgmt.pb.h"
#include "tests/support/brick.h"
#include "tests/support/cluster.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The first address (127.0.0.N) of each test's servers, ten apart.
constexpr int kHostsFlow = 10;
constexpr int kHostsRestart = 20;
constexpr int kHostsOneDown = 30;
constexpr int kHostsTwoDown = 40;
constexpr int kHostsBadInput = 50;  // and the other cluster at kHostsBadInput + 5
constexpr int kHostsAuth = 60;
constexpr int kHostsReplica2 = 70;
constexpr int kHostsSameServer = 80;
constexpr int kHostsSnapshot = 90;

std::string host(int n) { return "127.0.0." + std::to_string(n); }

// ---- reading the CLI's answers ----

std::string show(const CliResult& r) {
  return "exit status " + std::to_string(r.status) + "\n--- stdout\n" + r.stdout_text +
         "--- stderr\n" + r.stderr_text;
}

// Exit status 0.
::testing::AssertionResult Succeeded(const CliResult& r) {
  if (r.status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << show(r);
}

// What docs/cli.md promises for a failure: exit status 1, nothing on stdout, and one line on
// stderr, which says `why`.
::testing::AssertionResult Refused(const CliResult& r, const std::string& why) {
  size_t newline = r.stderr_text.find('\n');
  bool one_line = newline != std::string::npos && newline + 1 == r.stderr_text.size();
  if (r.status == 1 && r.stdout_text.empty() && one_line &&
      r.stderr_text.find(why) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected a one-line refusal saying \"" << why << "\"\n"
                                       << show(r);
}

// A --json answer as the CliRsp it came from (the JSON holds one field of it).
pb::CliRsp parse_json(const CliResult& r) {
  pb::CliRsp rsp;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(r.stdout_text, &rsp, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << show(r);
  return rsp;
}

std::optional<pb::VolumeSpec> volume_spec(const MgmtdServer& s, const std::string& volume) {
  CliResult r = s.cli({"volume", "info", volume, "--json"});
  if (r.status != 0) return std::nullopt;
  pb::CliRsp rsp = parse_json(r);
  if (rsp.volumes_size() != 1) return std::nullopt;
  return rsp.volumes(0);
}

std::vector<pb::BrickStatus> brick_status(const MgmtdServer& s, const std::string& volume) {
  CliResult r = s.cli({"volume", "status", volume, "--json"});
  EXPECT_TRUE(Succeeded(r));
  pb::CliRsp rsp = parse_json(r);
  if (rsp.status_size() != 1) return {};
  return {rsp.status(0).bricks().begin(), rsp.status(0).bricks().end()};
}

// The value `volume get` shows for `key`.
std::string option_value(const MgmtdServer& s, const std::string& volume, const std::string& key) {
  CliResult r = s.cli({"volume", "get", volume, key, "--json"});
  if (r.status != 0) return "<" + r.stderr_text + ">";
  pb::CliRsp rsp = parse_json(r);
  return rsp.options_size() == 1 ? rsp.options(0).value() : "<no answer>";
}

// This server's UUID: the `localhost` row of its pool list.
std::string uuid_of(const MgmtdServer& s) {
  pb::CliRsp rsp = parse_json(s.cli({"pool", "list", "--json"}));
  for (const auto& p : rsp.peers()) {
    if (p.local()) return p.uuid();
  }
  return "";
}

// Hostnames a server's pool list shows, with their state ("127.0.0.11 Connected", ...).
std::set<std::string> pool(const MgmtdServer& s) {
  pb::CliRsp rsp = parse_json(s.cli({"pool", "list", "--json"}));
  std::set<std::string> out;
  for (const auto& p : rsp.peers()) {
    out.insert((p.local() ? std::string("localhost") : p.hostname()) + " " +
               (p.connected() ? "Connected" : "Disconnected"));
  }
  return out;
}

// Everything a server says about the cluster's state: its pool (UUIDs and names), every
// volume's `volume info` and every option's value. Two servers that agree, or one server
// before and after a refused command, print the same text.
std::string view_of(const MgmtdServer& s) {
  std::string out;
  pb::CliRsp peers = parse_json(s.cli({"pool", "list", "--json"}));
  std::set<std::string> members;
  for (const auto& p : peers.peers()) members.insert(p.uuid() + " " + p.hostname());
  for (const auto& m : members) out += "peer " + m + "\n";
  CliResult info = s.cli({"volume", "info", "all"});
  out += info.out;
  pb::CliRsp volumes = parse_json(s.cli({"volume", "info", "all", "--json"}));
  for (const auto& v : volumes.volumes()) {
    out += s.cli({"volume", "get", v.name(), "all"}).out;
  }
  // Versions and ports too, which the text leaves out.
  return out + volumes.ShortDebugString() + "\n";
}

// Two views (of view_of) agree; otherwise the first line where they differ.
::testing::AssertionResult SameView(const std::string& actual, const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  std::istringstream a(actual), e(expected);
  std::string la, le;
  for (int line = 1;; ++line) {
    bool more_a = static_cast<bool>(std::getline(a, la));
    bool more_e = static_cast<bool>(std::getline(e, le));
    if (!more_a && !more_e) break;
    if (la != le || more_a != more_e) {
      return ::testing::AssertionFailure()
             << "line " << line << ": \"" << la << "\", expected \"" << le << "\"";
    }
  }
  return ::testing::AssertionFailure() << "differs";
}

// ---- talking to a brick ----

// The brick's answer to a handshake from this process, which connects from 127.0.0.1.
Result<pb::HandshakeRsp> handshake(IoThread& io, const std::string& address, uint32_t port,
                                   const std::string& volume, const std::string& brick) {
  rpc::RpcClient::Options o;
  o.host = address;
  o.port = static_cast<uint16_t>(port);
  o.reconnect = false;
  o.call_timeout = 5s;
  rpc::RpcClient client(io.executor(), o);
  client.start();
  if (!io.run(client.wait_up(5s))) return fail(ENOTCONN);
  pb::HandshakeReq req;
  req.set_protocol_version(kBrickProtocolVersion);
  req.set_volume(volume);
  req.set_brick_name(brick);
  req.set_client_id(Gfid::random().str());
  req.set_process_name("mgmtd_test");
  req.set_ping_interval_ms(1000);
  Result<rpc::Reply> reply = io.run(client.call(pb::HANDSHAKE, req));
  client.stop();
  if (!reply) return fail(reply.error());
  pb::HandshakeRsp rsp;
  if (!rsp.ParseFromString(reply->message)) return fail(EPROTO);
  return rsp;
}

BrickClient::Options brick_client_options(const pb::BrickStatus& b, const std::string& volume) {
  BrickClient::Options o;
  o.rpc.host = b.host();
  o.rpc.port = static_cast<uint16_t>(b.port());
  o.rpc.ping_timeout = 2s;
  o.rpc.reconnect_min = 50ms;
  o.rpc.reconnect_max = 200ms;
  o.volume = volume;
  o.brick_name = b.path();  // mortar-mgmtd names a brick by its path
  o.process_name = "mgmtd_test";
  return o;
}

// ---- the CLI at a terminal ----

struct TerminalRun {
  int status = -1;  // -1: still running at the deadline (killed)
  std::string out;  // everything it wrote to the terminal
};

// Runs `mortar ARGS` with a pseudo-terminal as its stdin, stdout and stderr, as when a person
// types the command. When it asks a question (y/n), `answer` is typed, if given; a command still
// running after `timeout` is killed.
TerminalRun cli_on_terminal(const MgmtdServer& s, const std::vector<std::string>& args,
                            std::optional<std::string> answer,
                            std::chrono::milliseconds timeout = 30s) {
  std::vector<std::string> argv = {bin("mortar"), "--socket=" + s.socket()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> argp;
  for (auto& a : argv) argp.push_back(a.data());
  argp.push_back(nullptr);
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return {};
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close_range(3, ~0U, 0);
    ::execv(argp[0], argp.data());
    ::_exit(127);
  }
  TerminalRun run;
  bool answered = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the command has exited and closed the terminal
    run.out.append(buf, static_cast<size_t>(n));
    if (answer && !answered && run.out.find("(y/n)") != std::string::npos) {
      std::string line = *answer + "\n";
      (void)!::write(master, line.data(), line.size());
      answered = true;
    }
  }
  // The terminal closes a little before the process is gone.
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (done == pid) {
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ::close(master);
  return run;
}

// A tmpfs for bricks: a file system of its own, so mortar-mgmtd does not ask for `force` as
// it does for bricks on the root file system. Unmounted (lazily) on destruction.
class Tmpfs {
 public:
  explicit Tmpfs(std::string path) : path_(std::move(path)) {
    fs::create_directories(path_);
    mounted_ = ::mount("mgmtd_test", path_.c_str(), "tmpfs", 0, "size=64m") == 0;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// ---- the fixture ----

class MgmtdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (bricks keep trusted.* xattrs)";
  }

  void TearDown() override {
    // Every server still up stops cleanly, and no daemon logged an ERROR.
    for (auto& c : clusters_) {
      for (int i = 0; i < c->size(); ++i) {
        MgmtdServer& s = c->server(i);
        if (s.running()) {
          EXPECT_EQ(s.stop(), 0) << "see " << s.log();
        }
        for (const auto& line : error_lines(s.log())) ADD_FAILURE() << s.log() << ": " << line;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(s.brick_log_dir(), ec)) {
          if (e.path().extension() != ".log") continue;
          for (const auto& line : error_lines(e.path())) {
            ADD_FAILURE() << e.path().string() << ": " << line;
          }
        }
      }
    }
  }

  // `n` servers on 127.0.0.`first_host`..., started and (with `probe`) probed from the first.
  TestCluster& start_cluster(int n, int first_host, bool probe = true) {
    clusters_.push_back(std::make_unique<TestCluster>(
        n, dir_ / ("servers-" + std::to_string(first_host)), first_host));
    started_ = clusters_.back()->start(probe);
    return *clusters_.back();
  }

  // HOST:PATH of a brick of server `s`, under the test's directory (or under `base`).
  std::string brick(const MgmtdServer& s, const std::string& name, std::string base = "") {
    if (base.empty()) base = dir_ / "bricks";
    return s.address() + ":" + base + "/" + s.address() + "/" + name;
  }

  // Waits until every server of `c` that runs says the same as `reference` about the state.
  ::testing::AssertionResult converged(TestCluster& c, const std::string& reference,
                                       std::chrono::milliseconds timeout = 15s) {
    bool same = eventually(
        [&] {
          for (int i = 0; i < c.size(); ++i) {
            if (c.server(i).running() && view_of(c.server(i)) != reference) return false;
          }
          return true;
        },
        timeout);
    if (same) return ::testing::AssertionSuccess();
    for (int i = 0; i < c.size(); ++i) {
      if (!c.server(i).running()) continue;
      auto r = SameView(view_of(c.server(i)), reference);
      if (!r) return ::testing::AssertionFailure() << c.server(i).address() << ": " << r.message();
    }
    return ::testing::AssertionFailure() << "the servers disagreed until the end";
  }

  TempDir dir_{"mgmtd-test"};
  // Destroyed first: the daemons die before their bricks' file systems go.
  std::vector<std::unique_ptr<Tmpfs>> tmpfs_;
  std::vector<std::unique_ptr<TestCluster>> clusters_;
  bool started_ = false;
};

// ---- the whole CLI flow ----

TEST_F(MgmtdTest, PeerAndVolumeCommandsPrintGlusterShapes) {
  TestCluster& c = start_cluster(3, kHostsFlow, /*probe=*/false);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s1 = c.server(1);
  MgmtdServer& s2 = c.server(2);

  // peer probe, twice for the same server.
  CliResult r = s0.cli({"peer", "probe", s1.address()});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "peer probe: success\n");
  r = s0.cli({"peer", "probe", s1.address()});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text,
            "peer probe: success. Host " + s1.address() + " port 24007 already in peer list\n");
  ASSERT_TRUE(Succeeded(s0.cli({"peer", "probe", s2.address()})));

  // peer status: the other servers, in the order they joined.
  std::string u0 = uuid_of(s0), u1 = uuid_of(s1), u2 = uuid_of(s2);
  ASSERT_FALSE(u0.empty() || u1.empty() || u2.empty());
  auto peer_block = [](const MgmtdServer& s, const std::string& uuid) {
    return "\nHostname: " + s.address() + "\nUuid: " + uuid +
           "\nState: Peer in Cluster (Connected)\n";
  };
  r = s0.cli({"peer", "status"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "Number of Peers: 2\n" + peer_block(s1, u1) + peer_block(s2, u2));
  // Every server knows the others, connected.
  EXPECT_TRUE(eventually([&] {
    return s1.cli({"peer", "status"}).stdout_text ==
           "Number of Peers: 2\n" + peer_block(s0, u0) + peer_block(s2, u2);
  }));

  // pool list: the others, then this server as localhost; tabs, and a blank before the newline.
  r = s2.cli({"pool", "list"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "UUID\t\t\t\t\tHostname  \tState\n" + u0 + "\t" + s0.address() +
                               "\tConnected \n" + u1 + "\t" + s1.address() + "\tConnected \n" + u2 +
                               "\tlocalhost \tConnected \n");

  // No volumes yet.
  r = s1.cli({"volume", "info"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "");
  EXPECT_EQ(r.stderr_text, "No volumes present\n");

  // volume create: three bricks, one per server, replica 3; asked of a server that is not
  // the leader, so the change is forwarded.
  std::vector<std::string> bricks = {brick(s0, "b"), brick(s1, "b"), brick(s2, "b")};
  std::vector<std::string> create = {"volume", "create", "webData", "replica", "3"};
  create.insert(create.end(), bricks.begin(), bricks.end());
  create.push_back("force");
  r = s1.cli(create);
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text,
            "volume create: webData: success: please start the volume to access data\n");

  auto spec = volume_spec(s0, "webData");
  ASSERT_TRUE(spec);
  auto info_text = [&](const std::string& status, const std::string& options) {
    std::string text = " \nVolume Name: webData\nType: Replicate\nVolume ID: " + spec->id() +
                       "\nStatus: " + status +
                       "\nSnapshot Count: 0\nNumber of Bricks: 1 x 3 = 3\nTransport-type: tcp\n"
                       "Bricks:\n";
    for (size_t i = 0; i < bricks.size(); ++i) {
      text += "Brick" + std::to_string(i + 1) + ": " + bricks[i] + "\n";
    }
    return text + options;
  };
  for (int i = 0; i < 3; ++i) {
    r = c.server(i).cli({"volume", "info", "webData"});
    ASSERT_TRUE(Succeeded(r));
    EXPECT_EQ(r.stdout_text, info_text("Created", "")) << "server " << i;
  }
  // A volume that is not started has no status.
  EXPECT_TRUE(Refused(s0.cli({"volume", "status", "webData"}), "Volume webData is not started"));

  // volume start: answered once every brick serves.
  r = s2.cli({"volume", "start", "webData"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "volume start: webData: success\n");
  std::vector<pb::BrickStatus> st = brick_status(s0, "webData");
  ASSERT_EQ(st.size(), 3u);
  for (const auto& b : st) {
    EXPECT_TRUE(b.online()) << b.host() << ":" << b.path();
    EXPECT_GT(b.pid(), 0);
    EXPECT_TRUE(port_open(b.host(), static_cast<uint16_t>(b.port()))) << b.host();
  }
  // The status table, with gluster's widths; a long brick name wraps every 43 characters.
  std::string table =
      "Status of volume: webData\n"
      "Mortar process                              TCP Port  RDMA Port  Online  Pid\n" +
      std::string(78, '-') + "\n";
  for (const auto& b : st) {
    std::string name = "Brick " + b.host() + ":" + b.path();
    while (name.size() > 43) {
      table += name.substr(0, 43) + "\n";
      name = name.substr(43);
    }
    std::string pid = std::to_string(b.pid());
    table += name + std::string(44 - name.size(), ' ') + std::to_string(b.port()) +
             std::string(10 - std::to_string(b.port()).size(), ' ') + "0          Y       " + pid +
             std::string(pid.size() < 5 ? 5 - pid.size() : 0, ' ') + "\n";
  }
  // A replicated volume: every server with a brick runs a self-heal daemon; the one asked
  // lists its own first, as localhost.
  ASSERT_TRUE(eventually([&] { return s0.shd_pid() && s1.shd_pid() && s2.shd_pid(); }, 10s));
  for (auto [server, name] : {std::pair{&s1, std::string("localhost")},
                              std::pair{&s0, s0.address()}, std::pair{&s2, s2.address()}}) {
    std::string row = "Self-heal Daemon on " + name;
    std::string pid = std::to_string(server->shd_pid());
    table += row + std::string(44 - row.size(), ' ') + "N/A       N/A        Y       " + pid +
             std::string(pid.size() < 5 ? 5 - pid.size() : 0, ' ') + "\n";
  }
  table += " \nTask Status of Volume webData\n" + std::string(78, '-') +
           "\nThere are no active volume tasks\n \n";
  r = s1.cli({"volume", "status", "webData"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, table);

  // volume set / get / reset.
  r = s0.cli(
      {"volume", "set", "webData", "network.ping-timeout", "10s", "performance.nl-cache", "yes"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "volume set: success\n");
  r = s2.cli({"volume", "get", "webData", "network.ping-timeout"});
  ASSERT_TRUE(Succeeded(r));
  char line[128];
  std::snprintf(line, sizeof line, "%-40s %-39s\n", "network.ping-timeout", "10");
  EXPECT_EQ(r.stdout_text,
            "Option                                   Value                      "
            "            \n------                                   -----      "
            "                            \n" +
                std::string(line));
  EXPECT_EQ(option_value(s1, "webData", "performance.nl-cache"), "on");
  EXPECT_EQ(option_value(s1, "webData", "cluster.quorum-type"), "auto");  // replica 3 default
  for (int i = 0; i < 3; ++i) {
    r = c.server(i).cli({"volume", "info", "webData"});
    EXPECT_EQ(r.stdout_text, info_text("Started",
                                       "Options Reconfigured:\nnetwork.ping-timeout: 10\n"
                                       "performance.nl-cache: on\n"))
        << "server " << i;
  }
  r = s1.cli({"volume", "reset", "webData", "network.ping-timeout"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "volume reset: success: reset volume successful\n");
  EXPECT_EQ(option_value(s0, "webData", "network.ping-timeout"), "3");
  EXPECT_EQ(option_value(s0, "webData", "performance.nl-cache"), "on");
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "reset", "webData"})));
  EXPECT_EQ(option_value(s2, "webData", "performance.nl-cache"), "off");
  EXPECT_EQ(s2.cli({"volume", "info", "webData"}).stdout_text, info_text("Started", ""));

  // volume stop: the bricks go away.
  r = s0.cli({"volume", "stop", "webData"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "volume stop: webData: success\n");
  EXPECT_TRUE(eventually([&] {
    for (const auto& b : st) {
      if (::kill(b.pid(), 0) == 0) return false;
    }
    return true;
  }));
  EXPECT_EQ(s1.cli({"volume", "info", "webData"}).stdout_text, info_text("Stopped", ""));

  // volume delete.
  r = s2.cli({"volume", "delete", "webData"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "volume delete: webData: success\n");
  for (int i = 0; i < 3; ++i) {
    r = c.server(i).cli({"volume", "info"});
    EXPECT_EQ(r.stderr_text, "No volumes present\n") << "server " << i;
    EXPECT_TRUE(
        Refused(c.server(i).cli({"volume", "info", "webData"}), "Volume webData does not exist"));
  }

  // peer detach: the server leaves, and is a cluster of its own again that can be probed anew.
  r = s0.cli({"peer", "detach", s2.address()});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text, "peer detach: success\n");
  EXPECT_EQ(s0.cli({"peer", "status"}).stdout_text, "Number of Peers: 1\n" + peer_block(s1, u1));
  EXPECT_TRUE(eventually([&] {
    return s1.cli({"peer", "status"}).stdout_text == "Number of Peers: 1\n" + peer_block(s0, u0);
  }));
  EXPECT_TRUE(eventually([&] { return pool(s2) == std::set<std::string>{"localhost Connected"}; }));
  EXPECT_TRUE(Succeeded(s0.cli({"peer", "probe", s2.address()})));
  EXPECT_TRUE(eventually([&] {
    return pool(s2) == std::set<std::string>{s0.address() + " Connected",
                                             s1.address() + " Connected", "localhost Connected"};
  }));
}

// ---- restarts ----

TEST_F(MgmtdTest, StateSurvivesRestartAndBricksServeWhileMgmtdIsDown) {
  TestCluster& c = start_cluster(3, kHostsRestart);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "create", "vol", brick(s0, "v"), brick(c.server(1), "v"),
                                brick(c.server(2), "v"), "force"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "start", "vol"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "performance.md-cache-timeout", "2"})));
  std::string before = view_of(s0);
  ASSERT_TRUE(converged(c, before));
  std::vector<pb::BrickStatus> bricks = brick_status(s0, "vol");
  ASSERT_EQ(bricks.size(), 3u);

  // Every mortar-mgmtd goes: one killed outright, the others stopped.
  c.server(1).kill9();
  EXPECT_EQ(s0.stop(), 0);
  EXPECT_EQ(c.server(2).stop(), 0);

  // The bricks go on serving: the control plane is not in the data path.
  IoThread io;
  for (const auto& b : bricks) {
    EXPECT_EQ(::kill(b.pid(), 0), 0) << b.host();
    EXPECT_TRUE(port_open(b.host(), static_cast<uint16_t>(b.port()))) << b.host();
  }
  {
    SyncBrick client(io, brick_client_options(bricks[0], "vol"));
    ASSERT_TRUE(client.client().is_up());
    auto created = client.create(Gfid::root(), "written-while-mgmtd-is-down");
    ASSERT_TRUE(created) << created.error().message();
    ASSERT_TRUE(client.release(created->fd()));
  }

  // They come back with the same state, and find the same brick daemons running.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.server(i).start()) << "server " << i;
  ASSERT_TRUE(converged(c, before));
  EXPECT_TRUE(eventually([&] {
    std::vector<pb::BrickStatus> now = brick_status(c.server(1), "vol");
    if (now.size() != bricks.size()) return false;
    for (size_t i = 0; i < now.size(); ++i) {
      if (!now[i].online() || now[i].pid() != bricks[i].pid()) return false;
    }
    return true;
  }));
  {
    SyncBrick client(io, brick_client_options(bricks[0], "vol"));
    EXPECT_TRUE(client.lookup(Gfid::root(), "written-while-mgmtd-is-down"));
  }

  // And the cluster takes changes again.
  ASSERT_TRUE(Succeeded(c.server(2).cli({"volume", "set", "vol", "cluster.eager-lock", "off"})));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] {
      return option_value(c.server(i), "vol", "cluster.eager-lock") == "off";
    })) << "server "
        << i;
  }
}

// A server away for longer than the Raft log keeps (mgmtd takes a snapshot every 256 entries
// and keeps 64 behind it) catches up from a snapshot; restarting on top of a snapshot keeps
// the state.
TEST_F(MgmtdTest, ServerAwayForLongCatchesUpFromASnapshot) {
  TestCluster& c = start_cluster(3, kHostsSnapshot);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s2 = c.server(2);
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "create", "vol", brick(s0, "v"), "force"})));
  ASSERT_EQ(s2.stop(), 0);
  for (int i = 0; i < 330; ++i) {
    ASSERT_TRUE(Succeeded(
        s0.cli({"volume", "set", "vol", "performance.md-cache-timeout", std::to_string(i % 600)})))
        << "change " << i;
  }
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "cluster.eager-lock", "off"})));
  const std::string reference = view_of(s0);
  ASSERT_TRUE(s2.start());
  EXPECT_TRUE(converged(c, reference, 20s));
  // Every server restarts on top of its snapshot and saved state, and still agrees.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(c.server(i).stop(), 0) << "server " << i;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.server(i).start()) << "server " << i;
  EXPECT_TRUE(converged(c, reference, 20s));
  EXPECT_TRUE(Succeeded(c.server(1).cli({"volume", "set", "vol", "cluster.eager-lock", "on"})));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] {
      return option_value(c.server(i), "vol", "cluster.eager-lock") == "on";
    })) << "server "
        << i;
  }
}

// ---- servers down ----

TEST_F(MgmtdTest, WithOneOfThreeDownChangesGoOnAndTheServerCatchesUp) {
  TestCluster& c = start_cluster(3, kHostsOneDown);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s1 = c.server(1);
  MgmtdServer& s2 = c.server(2);
  ASSERT_TRUE(Succeeded(s0.cli(
      {"volume", "create", "vol", brick(s0, "v"), brick(s1, "v"), brick(s2, "v"), "force"})));

  // A follower stops: changes go on, asked of the leader or of the other follower.
  ASSERT_EQ(s2.stop(), 0);
  EXPECT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "network.ping-timeout", "7"})));
  EXPECT_TRUE(Succeeded(s1.cli({"volume", "set", "vol", "performance.nl-cache", "on"})));
  EXPECT_EQ(option_value(s1, "vol", "network.ping-timeout"), "7");
  // It returns and catches up.
  ASSERT_TRUE(s2.start());
  std::string reference = view_of(s0);
  EXPECT_NE(reference.find("network.ping-timeout: 7"), std::string::npos);
  EXPECT_TRUE(converged(c, reference));

  // The first server, the cluster's founder and most likely its leader, dies: the other two
  // elect a leader among themselves and take changes. Until they have one, a change fails
  // with a clear error and changes nothing, so trying again is safe.
  s0.kill9();
  CliResult r;
  EXPECT_TRUE(eventually(
      [&] {
        r = s1.cli({"volume", "set", "vol", "cluster.eager-lock", "off"});
        if (r.status != 0) {
          EXPECT_TRUE(Refused(r, "failed: "));
        }
        return r.status == 0;
      },
      20s))
      << show(r);
  EXPECT_EQ(option_value(s2, "vol", "cluster.eager-lock"), "off");
  // The founder returns and catches up.
  ASSERT_TRUE(s0.start());
  reference = view_of(s1);
  EXPECT_NE(reference.find("cluster.eager-lock: off"), std::string::npos);
  EXPECT_TRUE(converged(c, reference));
  // It takes part as before: its brick starts with the volume.
  EXPECT_TRUE(Succeeded(s0.cli({"volume", "start", "vol"})));
  EXPECT_TRUE(eventually([&] {
    auto st = brick_status(s0, "vol");
    return st.size() == 3 &&
           std::all_of(st.begin(), st.end(), [](const pb::BrickStatus& b) { return b.online(); });
  }));
}

TEST_F(MgmtdTest, WithTwoOfThreeDownChangesFailAndNothingChanges) {
  TestCluster& c = start_cluster(3, kHostsTwoDown);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s1 = c.server(1);
  MgmtdServer& s2 = c.server(2);
  ASSERT_TRUE(
      Succeeded(s0.cli({"volume", "create", "vol", brick(s0, "v"), brick(s1, "v"), "force"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "create", "idle", brick(s0, "i"), "force"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "start", "vol"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "network.ping-timeout", "5"})));
  const std::string before = view_of(s0);
  ASSERT_TRUE(converged(c, before));

  // Two servers freeze (a hang, a power cut: their connections stay open, silent). A change
  // asked of the founder, the leader, right away is refused, and stays refused once they
  // thaw: it never entered the log.
  s1.signal(SIGSTOP);
  s2.signal(SIGSTOP);
  EXPECT_TRUE(Refused(s0.cli({"volume", "set", "vol", "network.ping-timeout", "8"}), "majority"));
  s1.signal(SIGCONT);
  s2.signal(SIGCONT);
  EXPECT_TRUE(eventually([&] {
    return pool(s0) == std::set<std::string>{s1.address() + " Connected",
                                             s2.address() + " Connected", "localhost Connected"};
  }));
  std::this_thread::sleep_for(2s);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(SameView(view_of(c.server(i)), before)) << "server " << i;

  // Two servers stop.
  ASSERT_EQ(s1.stop(), 0);
  ASSERT_EQ(s2.stop(), 0);
  // Every change is refused at once, on the one server left, with a reason.
  const std::vector<std::vector<std::string>> changes = {
      {"volume", "set", "vol", "network.ping-timeout", "9"},
      {"volume", "reset", "vol"},
      {"volume", "stop", "vol"},
      {"volume", "start", "idle"},
      {"volume", "delete", "idle"},
      {"volume", "create", "more", brick(s0, "m"), "force"},
      {"peer", "detach", s2.address(), "force"},
  };
  for (const auto& args : changes) {
    auto start = std::chrono::steady_clock::now();
    CliResult r = s0.cli(args);
    EXPECT_TRUE(Refused(r, "majority")) << args[0] << " " << args[1];
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << args[0] << " " << args[1];
  }
  // Reads still answer, from what this server knows.
  EXPECT_TRUE(SameView(view_of(s0), before));

  // The others return: nothing changed anywhere, then or later (a change half-made while the
  // majority was away would commit once it is back).
  ASSERT_TRUE(s1.start());
  ASSERT_TRUE(s2.start());
  EXPECT_TRUE(eventually([&] {
    return pool(s0) == std::set<std::string>{s1.address() + " Connected",
                                             s2.address() + " Connected", "localhost Connected"};
  }));
  std::this_thread::sleep_for(3s);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(SameView(view_of(c.server(i)), before)) << "server " << i;
  // And the cluster works.
  EXPECT_TRUE(eventually(
      [&] {
        return s2.cli({"volume", "set", "vol", "network.ping-timeout", "9"}).status == 0;
      },
      15s));
  EXPECT_EQ(option_value(s0, "vol", "network.ping-timeout"), "9");
}

// ---- bad input ----

TEST_F(MgmtdTest, BadInputIsRefusedClearlyAndChangesNothing) {
  TestCluster& c = start_cluster(3, kHostsBadInput);
  ASSERT_TRUE(started_);
  TestCluster& other = start_cluster(2, kHostsBadInput + 5);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s1 = c.server(1);
  const std::string vol_brick = brick(s0, "vol");
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "create", "vol", vol_brick, brick(s1, "vol"), "force"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "start", "vol"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "create", "cold", brick(s1, "cold"), "force"})));

  std::vector<std::string> views;
  auto all_views = [&] {
    std::vector<std::string> out;
    for (auto* cl : {&c, &other}) {
      for (int i = 0; i < cl->size(); ++i) out.push_back(view_of(cl->server(i)));
    }
    return out;
  };
  views = all_views();

  const std::string nobody = host(kHostsBadInput + 9);  // no server there
  const std::string stranger = other.server(0).address();
  struct Case {
    std::vector<std::string> args;
    std::string why;
  };
  const std::vector<Case> cases = {
      // unknown volume
      {{"volume", "start", "nope"}, "volume start: nope: failed: Volume nope does not exist"},
      {{"volume", "stop", "nope"}, "volume stop: nope: failed: Volume nope does not exist"},
      {{"volume", "delete", "nope"}, "volume delete: nope: failed: Volume nope does not exist"},
      {{"volume", "info", "nope"}, "Volume nope does not exist"},
      {{"volume", "status", "nope"}, "Volume nope does not exist"},
      {{"volume", "set", "nope", "nfs.disable", "on"}, "Volume nope does not exist"},
      {{"volume", "get", "nope", "all"}, "Volume nope does not exist"},
      {{"volume", "reset", "nope"}, "Volume nope does not exist"},
      // unknown peer
      {{"peer", "detach", nobody}, "peer detach: failed: " + nobody + " is not part of cluster"},
      {{"peer", "probe", nobody}, "peer probe: failed: Probe returned with"},
      {{"volume", "create", "x", nobody + ":/x", "force"},
       "Host " + nobody + " is not in 'Peer in Cluster' state"},
      // bad replica counts
      {{"volume", "create", "x", "replica", "1", brick(s0, "x"), brick(s1, "x"), "force"},
       "replica count should be greater than 1"},
      {{"volume", "create", "x", "replica", "two", brick(s0, "x"), brick(s1, "x"), "force"},
       "replica count should be greater than 1"},
      {{"volume", "create", "x", "replica", "2", brick(s0, "x"), brick(s1, "x"), brick(s0, "y"),
        "force"},
       "number of bricks is not a multiple of replica count"},
      // brick reuse, nesting
      {{"volume", "create", "x", vol_brick, "force"}, "is already part of volume vol"},
      {{"volume", "create", "x", vol_brick + "/inside", "force"}, "is already part of volume vol"},
      {{"volume", "create", "x", brick(s0, ""), "force"}, "is already part of volume vol"},
      {{"volume", "create", "x", brick(s0, "x"), brick(s0, "x"), "force"},
       "Found duplicate exports"},
      {{"volume", "create", "x", brick(s0, "x"), brick(s0, "x/y"), "force"}, "nests with brick"},
      // the root file system, without force
      {{"volume", "create", "x", brick(s0, "x")}, "is being created in the root partition"},
      // bad names
      {{"volume", "create", "vol", brick(s0, "x"), "force"}, "Volume vol already exists"},
      {{"volume", "create", "a.b", brick(s0, "x"), "force"}, "Volume name should not contain"},
      {{"volume", "create", "x", "relative/path", "force"}, "Wrong brick type"},
      // bad options
      {{"volume", "set", "vol", "performance.nope", "on"},
       "volume set: failed: option 'performance.nope' does not exist"},
      {{"volume", "set", "vol", "ping-timeout", "5"}, "did you mean network.ping-timeout?"},
      {{"volume", "set", "vol", "network.ping-timeout", "soon"}, "option network.ping-timeout"},
      {{"volume", "set", "vol", "network.ping-timeout", "0"}, "out of range"},
      {{"volume", "set", "vol", "cluster.quorum-type", "most"}, "is not one of"},
      {{"volume", "set", "vol", "auth.allow", "web.example.com"}, "option auth.allow"},
      // the whole command is refused when one of its options is bad
      {{"volume", "set", "vol", "nfs.disable", "off", "network.ping-timeout", "0"}, "out of range"},
      {{"volume", "get", "vol", "performance.nope"}, "option 'performance.nope' does not exist"},
      {{"volume", "reset", "vol", "performance.nope"}, "option performance.nope does not exist"},
      // wrong state
      {{"volume", "start", "vol"}, "volume start: vol: failed: Volume vol already started"},
      {{"volume", "stop", "cold"}, "Volume cold is not in the started state"},
      {{"volume", "delete", "vol"}, "Volume vol has been started"},
      // a server of another cluster
      {{"peer", "probe", stranger},
       "peer probe: failed: " + stranger +
           " is either already part of another cluster or having volumes configured"},
  };
  for (const auto& k : cases) {
    std::string cmd;
    for (const auto& a : k.args) cmd += a + " ";
    // Asked of the leader and of a follower (which forwards changes to the leader).
    EXPECT_TRUE(Refused(s0.cli(k.args), k.why)) << "on " << s0.address() << ": " << cmd;
    EXPECT_TRUE(Refused(s1.cli(k.args), k.why)) << "on " << s1.address() << ": " << cmd;
  }
  // A server that holds bricks stays.
  EXPECT_TRUE(Refused(s0.cli({"peer", "detach", s1.address()}),
                      "peer detach: failed: Brick(s) with the peer " + s1.address() + " exist"));
  EXPECT_TRUE(Refused(s1.cli({"peer", "detach", s0.address()}),
                      "peer detach: failed: Brick(s) with the peer " + s0.address() + " exist"));
  // Probing this server, by the address it serves on, wherever the leader is.
  for (int i = 0; i < c.size(); ++i) {
    MgmtdServer& s = c.server(i);
    EXPECT_TRUE(Refused(s.cli({"peer", "probe", s.address()}),
                        "peer probe: failed: Probe on localhost not needed"))
        << s.address();
    EXPECT_TRUE(Refused(s.cli({"peer", "detach", s.address()}),
                        "peer detach: failed: " + s.address() + " is localhost"))
        << s.address();
  }
  // Probing a member from another member is no error (gluster: already in peer list).
  CliResult r = s1.cli({"peer", "probe", s0.address()});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_EQ(r.stdout_text,
            "peer probe: success. Host " + s0.address() + " port 24007 already in peer list\n");
  EXPECT_FALSE(fs::exists(dir_ / ("bricks/" + s0.address() + "/x")))
      << "a refused volume create left a brick directory behind";
  std::vector<std::string> after = all_views();
  ASSERT_EQ(after.size(), views.size());
  for (size_t i = 0; i < views.size(); ++i)
    EXPECT_TRUE(SameView(after[i], views[i])) << "server " << i;
}

// ---- auth.allow ----

TEST_F(MgmtdTest, AuthAllowRefusesClientsUntilReset) {
  TestCluster& c = start_cluster(2, kHostsAuth);
  ASSERT_TRUE(started_);
  MgmtdServer& s0 = c.server(0);
  ASSERT_TRUE(Succeeded(
      s0.cli({"volume", "create", "vol", brick(s0, "v"), brick(c.server(1), "v"), "force"})));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "start", "vol"})));
  std::vector<pb::BrickStatus> bricks = brick_status(s0, "vol");
  ASSERT_EQ(bricks.size(), 2u);
  IoThread io;
  auto answer = [&](const pb::BrickStatus& b) {
    Result<pb::HandshakeRsp> r = handshake(io, b.host(), b.port(), "vol", b.path());
    return r ? 0 : r.error().value;
  };
  auto every_brick_answers = [&](int expected) {
    return eventually([&] {
      return std::all_of(bricks.begin(), bricks.end(),
                         [&](const pb::BrickStatus& b) { return answer(b) == expected; });
    });
  };
  ASSERT_TRUE(every_brick_answers(0));

  // Clients come from 127.0.0.1, which the new list does not admit.
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "auth.allow", "192.168.50.*,10.1.*"})));
  EXPECT_TRUE(every_brick_answers(EACCES));
  {
    SyncBrick refused(io, brick_client_options(bricks[1], "vol"), /*wait=*/false);
    EXPECT_FALSE(refused.wait_up(1s));
  }
  // Resetting the option lets them in again, without restarting the bricks.
  ASSERT_TRUE(Succeeded(c.server(1).cli({"volume", "reset", "vol", "auth.allow"})));
  EXPECT_TRUE(every_brick_answers(0));
  {
    SyncBrick admitted(io, brick_client_options(bricks[1], "vol"));
    EXPECT_TRUE(admitted.client().is_up());
  }
  // auth.reject wins over auth.allow.
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "set", "vol", "auth.reject", "127.0.0.1"})));
  EXPECT_TRUE(every_brick_answers(EACCES));
  ASSERT_TRUE(Succeeded(s0.cli({"volume", "reset", "vol"})));
  EXPECT_TRUE(every_brick_answers(0));
  std::vector<pb::BrickStatus> now = brick_status(s0, "vol");
  ASSERT_EQ(now.size(), bricks.size());
  for (size_t i = 0; i < now.size(); ++i) EXPECT_EQ(now[i].pid(), bricks[i].pid());
}

// ---- replica 2 ----

TEST_F(MgmtdTest, Replica2QuestionIsAskedAtATerminalAndNeverInScriptMode) {
  TestCluster& c = start_cluster(2, kHostsReplica2);
  ASSERT_TRUE(started_);
  tmpfs_.push_back(std::make_unique<Tmpfs>(dir_ / "fs"));
  ASSERT_TRUE(tmpfs_.back()->mounted());
  const std::string base = tmpfs_.back()->path();
  MgmtdServer& s0 = c.server(0);
  auto create = [&](const std::string& name) {
    return std::vector<std::string>{"volume",
                                    "create",
                                    name,
                                    "replica",
                                    "2",
                                    brick(s0, name, base),
                                    brick(c.server(1), name, base)};
  };

  // At a terminal, in script mode: no question, and the volume is created.
  std::vector<std::string> args = create("scripted");
  args.insert(args.begin(), "--mode=script");
  TerminalRun run = cli_on_terminal(s0, args, std::nullopt);
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_EQ(run.out.find("(y/n)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("volume create: scripted: success"), std::string::npos) << run.out;
  EXPECT_TRUE(volume_spec(s0, "scripted"));

  // With stdin not a terminal (a cron job, a pipe): no question either.
  std::string cmd = bin("mortar") + " --socket=" + s0.socket();
  for (const auto& a : create("piped")) cmd += " " + a;
  Process piped =
      Process::spawn({"/bin/sh", "-c", "exec " + cmd + " </dev/null"}, dir_ / "piped.out");
  EXPECT_EQ(piped.wait(30s), 0);
  EXPECT_TRUE(volume_spec(s0, "piped"));

  // At a terminal without script mode, gluster's question; "n" creates nothing.
  run = cli_on_terminal(s0, create("declined"), "n");
  EXPECT_EQ(run.status, 1) << run.out;
  EXPECT_NE(run.out.find("Replica 2 volumes are prone to split-brain"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("volume create: declined: failed: aborted by user"), std::string::npos)
      << run.out;
  EXPECT_FALSE(volume_spec(s0, "declined"));
  // "y" goes on.
  run = cli_on_terminal(s0, create("confirmed"), "y");
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_NE(run.out.find("(y/n)"), std::string::npos) << run.out;
  auto spec = volume_spec(c.server(1), "confirmed");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->replica_count(), 2u);
  EXPECT_EQ(option_value(s0, "confirmed", "cluster.quorum-type"), "none");  // replica 2 default
}

TEST_F(MgmtdTest, Replica2WithBothBricksOnOneServerNeedsForce) {
  TestCluster& c = start_cluster(2, kHostsSameServer);
  ASSERT_TRUE(started_);
  tmpfs_.push_back(std::make_unique<Tmpfs>(dir_ / "fs"));
  ASSERT_TRUE(tmpfs_.back()->mounted());
  const std::string base = tmpfs_.back()->path();
  MgmtdServer& s0 = c.server(0);
  MgmtdServer& s1 = c.server(1);
  const std::string why =
      "volume create: same: failed: Multiple bricks of a replicate volume are present on the "
      "same server.";
  const std::string before = view_of(s0);

  EXPECT_TRUE(Refused(s0.cli({"volume", "create", "same", "replica", "2", brick(s0, "a", base),
                              brick(s0, "b", base)}),
                      why));
  // The second replica set is the one on a single server.
  EXPECT_TRUE(Refused(s1.cli({"volume", "create", "same", "replica", "2", brick(s0, "a", base),
                              brick(s1, "a", base), brick(s1, "b", base), brick(s1, "c", base)}),
                      why));
  EXPECT_TRUE(SameView(view_of(s0), before));
  EXPECT_TRUE(SameView(view_of(s1), before));

  // Across servers it needs no force here (the bricks are not on the root file system).
  EXPECT_TRUE(
      Succeeded(s0.cli({"volume", "create", "spread", "replica", "2", brick(s0, "c", base),
                        brick(s1, "c", base), brick(s0, "d", base), brick(s1, "d", base)})));
  // force overrides the rule.
  EXPECT_TRUE(Succeeded(s0.cli({"volume", "create", "same", "replica", "2", brick(s0, "a", base),
                                brick(s0, "b", base), "force"})));
  auto spec = volume_spec(s1, "same");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->bricks_size(), 2);
  CliResult r = s1.cli({"volume", "info", "spread"});
  EXPECT_NE(r.stdout_text.find("Type: Distributed-Replicate\n"), std::string::npos) << show(r);
  EXPECT_NE(r.stdout_text.find("Number of Bricks: 2 x 2 = 4\n"), std::string::npos) << show(r);
}

}  // namespace
}  // namespace mortar::test
