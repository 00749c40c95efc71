#include "cli/command.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <sstream>

namespace mortar::cli {
namespace {

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

pb::CliReq request(const std::string& text) {
  pb::CliReq req;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &req)) << text;
  return req;
}

constexpr std::string_view kReplica2 =
    "Replica 2 volumes are prone to split-brain. Use Arbiter or Replica 3 to avoid this. "
    "See: docs/replication.md.\nDo you still want to continue?\n";
constexpr std::string_view kStop =
    "Stopping volume will make its data inaccessible. Do you want to continue?";
constexpr std::string_view kDelete =
    "Deleting volume will erase all information about the volume. Do you want to continue?";

struct Accepted {
  std::string line;
  Command command;
  std::string request;  // text format of the expected CliReq
  std::string volume = "";
  std::string_view question = "";
};

class CommandAccepts : public testing::TestWithParam<Accepted> {};

TEST_P(CommandAccepts, BuildsTheRequest) {
  const Accepted& c = GetParam();
  auto parsed = parse_command(split(c.line));
  ASSERT_TRUE(parsed) << c.line << ": " << parsed.error();
  EXPECT_EQ(parsed->command, c.command) << c.line;
  pb::CliReq expected = request(c.request);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed->request, expected))
      << c.line << "\n got: " << parsed->request.ShortDebugString()
      << "\n want: " << expected.ShortDebugString();
  EXPECT_EQ(parsed->volume, c.volume) << c.line;
  EXPECT_EQ(parsed->question, c.question) << c.line;
  EXPECT_TRUE(parsed->warnings.empty()) << c.line;
}

const char* kCreate3 =
    "volume_create { name: 'v' replica_count: 3 transport: 'tcp' bricks: 'h1:/b' bricks: 'h2:/b' "
    "bricks: 'h3:/b' }";

INSTANTIATE_TEST_SUITE_P(
    Commands, CommandAccepts,
    testing::Values(
        // peers
        Accepted{"peer probe host2", Command::kPeerProbe, "peer_probe { host: 'host2' }"},
        Accepted{"peer probe 10.0.0.2", Command::kPeerProbe, "peer_probe { host: '10.0.0.2' }"},
        Accepted{"peer probe fe80::1", Command::kPeerProbe, "peer_probe { host: 'fe80::1' }"},
        Accepted{"peer detach host2", Command::kPeerDetach, "peer_detach { host: 'host2' }", "",
                 "All clients mounted through the peer which is getting detached need to be "
                 "remounted using one of the other active peers in the trusted storage pool to "
                 "ensure client gets notification on any changes done on the mortar "
                 "configuration and if the same has been done do you want to proceed?"},
        Accepted{"peer status", Command::kPeerStatus, "peer_status {}"},
        Accepted{"pool list", Command::kPoolList, "pool_list {}"},
        // volume create
        Accepted{"volume create v h1:/b h2:/b", Command::kVolumeCreate,
                 "volume_create { name: 'v' transport: 'tcp' bricks: 'h1:/b' bricks: 'h2:/b' }",
                 "v"},
        Accepted{"volume create v replica 3 h1:/b h2:/b h3:/b", Command::kVolumeCreate, kCreate3,
                 "v"},
        Accepted{"volume create v rep 3 trans tcp h1:/b h2:/b h3:/b", Command::kVolumeCreate,
                 kCreate3, "v"},
        Accepted{"volume create v transport TCP replica 3 h1:/b h2:/b h3:/b",
                 Command::kVolumeCreate, kCreate3, "v"},
        Accepted{"volume create v replica 2 arbiter 1 h1:/b h2:/b h3:/b", Command::kVolumeCreate,
                 "volume_create { name: 'v' replica_count: 3 arbiter_count: 1 transport: 'tcp' "
                 "bricks: 'h1:/b' bricks: 'h2:/b' bricks: 'h3:/b' }",
                 "v"},
        Accepted{"volume create v replica 3 arbiter 1 h1:/b h2:/b h3:/b force",
                 Command::kVolumeCreate,
                 "volume_create { name: 'v' replica_count: 3 arbiter_count: 1 transport: 'tcp' "
                 "bricks: 'h1:/b' bricks: 'h2:/b' bricks: 'h3:/b' force: true }",
                 "v"},
        Accepted{"volume create web_Data-1 replica 2 h1:/b h2:/b h3:/b h4:/b",
                 Command::kVolumeCreate,
                 "volume_create { name: 'web_Data-1' replica_count: 2 transport: 'tcp' "
                 "bricks: 'h1:/b' bricks: 'h2:/b' bricks: 'h3:/b' bricks: 'h4:/b' }",
                 "web_Data-1", kReplica2},
        Accepted{"volume create v replica 2 h1:/b h2:/b force", Command::kVolumeCreate,
                 "volume_create { name: 'v' replica_count: 2 transport: 'tcp' bricks: 'h1:/b' "
                 "bricks: 'h2:/b' force: true }",
                 "v"},
        Accepted{"volume create v h1://data//b/ [::1]:/b 127.0.0.1:/", Command::kVolumeCreate,
                 "volume_create { name: 'v' transport: 'tcp' bricks: 'h1:/data/b' "
                 "bricks: '[::1]:/b' bricks: '127.0.0.1:/' }",
                 "v"},
        // lifecycle
        Accepted{"volume start v", Command::kVolumeStart, "volume_start { name: 'v' }", "v"},
        Accepted{"volume start v force", Command::kVolumeStart,
                 "volume_start { name: 'v' force: true }", "v"},
        Accepted{"volume stop v", Command::kVolumeStop, "volume_stop { name: 'v' }", "v", kStop},
        Accepted{"volume stop v force", Command::kVolumeStop,
                 "volume_stop { name: 'v' force: true }", "v", kStop},
        Accepted{"volume delete v", Command::kVolumeDelete, "volume_delete { name: 'v' }", "v",
                 kDelete},
        // info, graph, status
        Accepted{"volume info", Command::kVolumeInfo, "volume_info {}"},
        Accepted{"volume info all", Command::kVolumeInfo, "volume_info {}"},
        Accepted{"volume info v", Command::kVolumeInfo, "volume_info { name: 'v' }", "v"},
        Accepted{"volume info v --graph", Command::kVolumeGraph, "volume_graph { name: 'v' }", "v"},
        Accepted{"volume info --graph v", Command::kVolumeGraph, "volume_graph { name: 'v' }", "v"},
        Accepted{"volume status", Command::kVolumeStatus, "volume_status {}"},
        Accepted{"volume status all", Command::kVolumeStatus, "volume_status {}"},
        Accepted{"volume status detail", Command::kVolumeStatus, "volume_status { detail: true }"},
        Accepted{"volume status all detail", Command::kVolumeStatus,
                 "volume_status { detail: true }"},
        Accepted{"volume status v", Command::kVolumeStatus, "volume_status { name: 'v' }", "v"},
        Accepted{"volume status v detail", Command::kVolumeStatus,
                 "volume_status { name: 'v' detail: true }", "v"},
        // set, get, reset
        Accepted{"volume set v cluster.quorum-type auto", Command::kVolumeSet,
                 "volume_set { name: 'v' options { key: 'cluster.quorum-type' value: 'auto' } }",
                 "v"},
        Accepted{"volume set v a 1 b 2", Command::kVolumeSet,
                 "volume_set { name: 'v' options { key: 'a' value: '1' } "
                 "options { key: 'b' value: '2' } }",
                 "v"},
        Accepted{"volume set help", Command::kVolumeSetHelp, "volume_set_help {}"},
        Accepted{"volume get v cluster.quorum-type", Command::kVolumeGet,
                 "volume_get { name: 'v' key: 'cluster.quorum-type' }", "v"},
        Accepted{"volume get v all", Command::kVolumeGet, "volume_get { name: 'v' key: 'all' }",
                 "v"},
        Accepted{"volume reset v", Command::kVolumeReset, "volume_reset { name: 'v' key: 'all' }",
                 "v"},
        Accepted{"volume reset v all", Command::kVolumeReset,
                 "volume_reset { name: 'v' key: 'all' }", "v"},
        Accepted{"volume reset v force", Command::kVolumeReset,
                 "volume_reset { name: 'v' key: 'all' force: true }", "v"},
        Accepted{"volume reset v a.b", Command::kVolumeReset,
                 "volume_reset { name: 'v' key: 'a.b' }", "v"},
        Accepted{"volume reset v a.b force", Command::kVolumeReset,
                 "volume_reset { name: 'v' key: 'a.b' force: true }", "v"},
        // add-brick, replace-brick
        Accepted{"volume add-brick v h3:/b h4:/b", Command::kVolumeAddBrick,
                 "volume_add_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' }", "v"},
        Accepted{"volume add-brick v replica 2 h3:/b h4:/b/ force", Command::kVolumeAddBrick,
                 "volume_add_brick { name: 'v' replica_count: 2 bricks: 'h3:/b' bricks: 'h4:/b' "
                 "force: true }",
                 "v"},
        Accepted{"volume replace-brick v h1:/b h5:/b commit force", Command::kVolumeReplaceBrick,
                 "volume_replace_brick { name: 'v' old_brick: 'h1:/b' new_brick: 'h5:/b' }", "v"},
        // rebalance, remove-brick
        Accepted{"volume rebalance v start", Command::kVolumeRebalance,
                 "volume_rebalance { name: 'v' action: START }", "v"},
        Accepted{"volume rebalance v start force", Command::kVolumeRebalance,
                 "volume_rebalance { name: 'v' action: START force: true }", "v"},
        Accepted{"volume rebalance v stop", Command::kVolumeRebalance,
                 "volume_rebalance { name: 'v' action: STOP }", "v"},
        Accepted{"volume rebalance v status", Command::kVolumeRebalance,
                 "volume_rebalance { name: 'v' action: STATUS }", "v"},
        Accepted{"volume rebalance v fix-layout start", Command::kVolumeRebalance,
                 "volume_rebalance { name: 'v' action: FIX_LAYOUT_START }", "v"},
        Accepted{"volume remove-brick v h3:/b h4:/b start", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' action: START }",
                 "v"},
        Accepted{"volume remove-brick v replica 2 h3:/b h4:/b status", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' replica_count: 2 bricks: 'h3:/b' "
                 "bricks: 'h4:/b' action: STATUS }",
                 "v"},
        Accepted{"volume remove-brick v h3:/b h4:/b stop", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' action: STOP }",
                 "v"},
        Accepted{"volume remove-brick v h3:/b h4:/b commit", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' action: COMMIT }",
                 "v", "Removing brick(s) can result in data loss. Do you want to Continue?"},
        Accepted{"volume remove-brick v h3:/b h4:/b commit force", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' action: FORCE }",
                 "v", "Removing brick(s) can result in data loss. Do you want to Continue?"},
        Accepted{"volume remove-brick v h3:/b h4:/b force", Command::kVolumeRemoveBrick,
                 "volume_remove_brick { name: 'v' bricks: 'h3:/b' bricks: 'h4:/b' action: FORCE }",
                 "v", "Removing brick(s) can result in data loss. Do you want to Continue?"},
        // answered locally
        Accepted{"help", Command::kHelp, ""}, Accepted{"help all", Command::kHelp, ""},
        Accepted{"peer help", Command::kPeerHelp, ""},
        Accepted{"volume help", Command::kVolumeHelp, ""}));

TEST(Command, HelpCommandsNeedNoServer) {
  for (const char* line : {"help", "help all", "peer help", "volume help"}) {
    auto parsed = parse_command(split(line));
    ASSERT_TRUE(parsed) << line;
    EXPECT_TRUE(parsed->is_local()) << line;
  }
  EXPECT_TRUE(parse_command(split("help all"))->help_all);
  EXPECT_FALSE(parse_command(split("help"))->help_all);
  EXPECT_FALSE(parse_command(split("volume info"))->is_local());
}

TEST(Command, SetValuesAreTrimmedExceptUserKeys) {
  auto parsed =
      parse_command({"volume", "set", "v", "auth.allow", " 10.0.0.* ", "user.note", " as is "});
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& options = parsed->request.volume_set().options();
  EXPECT_EQ(options.at("auth.allow"), "10.0.0.*");
  EXPECT_EQ(options.at("user.note"), " as is ");
}

TEST(Command, OddBrickHostsOnlyWarn) {
  auto parsed = parse_command(split("volume create v bad!host:/b"));
  ASSERT_TRUE(parsed) << parsed.error();
  ASSERT_EQ(parsed->warnings.size(), 1u);
  EXPECT_EQ(parsed->warnings[0], "internet address 'bad!host' does not conform to standards");
}

struct Refused {
  std::string line;
  std::string error;
};

class CommandRefuses : public testing::TestWithParam<Refused> {};

TEST_P(CommandRefuses, WithGlustersMessage) {
  const Refused& c = GetParam();
  auto parsed = parse_command(split(c.line));
  ASSERT_FALSE(parsed) << c.line << " was accepted: " << parsed->request.ShortDebugString();
  EXPECT_EQ(parsed.error(), c.error) << c.line;
  EXPECT_EQ(parsed.error().find('\n'), std::string::npos) << "one line: " << c.line;
}

const std::string kCreateUsage =
    "Usage: volume create <NEW-VOLNAME> [replica <COUNT> [arbiter <COUNT>]] [transport <tcp>] "
    "<NEW-BRICK> ... [force]";
const std::string kArbiter =
    "For arbiter configuration, replica count must be 2 and arbiter count must be 1. The 3rd "
    "brick of the replica will be the arbiter";
const std::string kProbeUsage = "Usage: peer probe { <HOSTNAME> | <IP-address> }";
const std::string kDetachUsage = "Usage: peer detach { <HOSTNAME> | <IP-address> } [force]";
const std::string kSetUsage = "Usage: volume set <VOLNAME> <KEY> <VALUE> [<KEY> <VALUE>]...";
const std::string kResetUsage = "Usage: volume reset <VOLNAME> [option] [force]";
const std::string kStatusUsage = "Usage: volume status [all | <VOLNAME>] [detail]";
const std::string kGetUsage = "Usage: volume get <VOLNAME> <key|all>";

INSTANTIATE_TEST_SUITE_P(
    Commands, CommandRefuses,
    testing::Values(
        Refused{"", "Usage: mortar [options] <command> [<args>]. See 'mortar help'."},
        Refused{"frob", "unrecognized word: frob (position 0). See 'mortar help'."},
        Refused{"help me", "Usage: help [all]"}, Refused{"help all more", "Usage: help [all]"},
        // peers
        Refused{"peer", "unrecognized command. See 'mortar peer help'."},
        Refused{"peer frob", "unrecognized word: frob (position 1). See 'mortar peer help'."},
        Refused{"peer help me", "Usage: peer help"}, Refused{"peer probe", kProbeUsage},
        Refused{"peer probe h2 h3", kProbeUsage},
        Refused{"peer probe h2!", "h2! is an invalid address. " + kProbeUsage},
        Refused{"peer probe -h2", "-h2 is an invalid address. " + kProbeUsage},
        Refused{"peer detach", kDetachUsage}, Refused{"peer detach h2 now", kDetachUsage},
        Refused{"peer detach h2 force now", kDetachUsage},
        Refused{"peer status all", "Usage: peer status"}, Refused{"pool", "Usage: pool list"},
        Refused{"pool list all", "Usage: pool list"},
        Refused{"pool frob", "unrecognized word: frob (position 1). See 'mortar peer help'."},
        // volume
        Refused{"volume", "unrecognized command. See 'mortar volume help'."},
        Refused{"volume frob", "unrecognized word: frob (position 1). See 'mortar volume help'."},
        Refused{"volume help me", "Usage: volume help"},
        // volume create
        Refused{"volume create", kCreateUsage}, Refused{"volume create v", kCreateUsage},
        Refused{"volume create v replica", kCreateUsage},
        Refused{"volume create v replica 3", kCreateUsage},
        Refused{"volume create v transport", kCreateUsage},
        Refused{"volume create v replica 1 h1:/b", "replica count should be greater than 1"},
        Refused{"volume create v replica two h1:/b h2:/b",
                "replica count should be greater than 1"},
        Refused{"volume create v replica 2 replica 2 h1:/b h2:/b", "replica option given twice"},
        Refused{"volume create v replica 4 arbiter 1 h1:/b h2:/b h3:/b h4:/b", kArbiter},
        Refused{"volume create v replica 2 arbiter 2 h1:/b h2:/b h3:/b", kArbiter},
        Refused{"volume create v replica 2 arbiter h1:/b h2:/b h3:/b", kArbiter},
        Refused{"volume create v arbiter 1 h1:/b",
                "arbiter option must be preceded by replica "
                "option."},
        Refused{"volume create v thin-arbiter 1 h1:/b",
                "thin-arbiter option must be preceded by replica option."},
        Refused{"volume create v replica 2 thin-arbiter 1 h1:/b h2:/b h3:/b",
                "thin-arbiter volumes are not supported"},
        Refused{"volume create v disperse 3 h1:/b h2:/b h3:/b",
                "disperse volumes are not supported"},
        Refused{"volume create v redundancy 1 h1:/b", "disperse volumes are not supported"},
        Refused{"volume create v transport rdma h1:/b", "transport rdma is not supported: use tcp"},
        Refused{"volume create v transport tcp,rdma h1:/b",
                "transport tcp,rdma is not supported: use tcp"},
        Refused{"volume create v transport tcp transport tcp h1:/b",
                "'transport' option given more than one time"},
        Refused{"volume create v h1:b",
                "Wrong brick type: h1:b, use <HOSTNAME>:<export-dir-abs-path>"},
        Refused{"volume create v h1", "Wrong brick type: h1, use <HOSTNAME>:<export-dir-abs-path>"},
        Refused{"volume create v :/b",
                "Wrong brick type: :/b, use <HOSTNAME>:<export-dir-abs-path>"},
        Refused{"volume create v h1:/b h2:",
                "Wrong brick type: h2:, use <HOSTNAME>:<export-dir-abs-path>"},
        Refused{"volume create v h1:/b h1:/b", "Found duplicate exports h1:/b"},
        Refused{"volume create v h1:/b/ h1://b", "Found duplicate exports h1:/b"},
        Refused{"volume create v replica 3 h1:/b h2:/b h3:/b h4:/b",
                "number of bricks is not a multiple of replica count"},
        Refused{"volume create v replica 2 arbiter 1 h1:/b h2:/b",
                "number of bricks is not a multiple of replica count"},
        Refused{"volume create v replica 3 force", "No bricks specified"},
        Refused{"volume create v force", "No bricks specified"},
        Refused{"volume create all h1:/b", "\"all\" cannot be the name of a volume."},
        Refused{"volume create help h1:/b", "\"help\" cannot be the name of a volume."},
        Refused{"volume create web.data h1:/b",
                "Volume name should not contain \".\" character. Volume names can only contain "
                "alphanumeric, '-' and '_' characters."},
        Refused{"volume create a/b h1:/b",
                "Volume name should not contain \"/\" character. Volume names can only contain "
                "alphanumeric, '-' and '_' characters."},
        Refused{"volume create -v h1:/b", "Volume name should not start with \"-\"."},
        Refused{"volume create " + std::string(257, 'x') + " h1:/b",
                "Volume name exceeds 256 characters."},
        // lifecycle
        Refused{"volume start", "Usage: volume start <VOLNAME> [force]"},
        Refused{"volume start v now", "Usage: volume start <VOLNAME> [force]"},
        Refused{"volume start v force now", "Usage: volume start <VOLNAME> [force]"},
        Refused{"volume stop", "Usage: volume stop <VOLNAME> [force]"},
        Refused{"volume stop v now", "Usage: volume stop <VOLNAME> [force]"},
        Refused{"volume delete", "Usage: volume delete <VOLNAME>"},
        Refused{"volume delete v force", "Usage: volume delete <VOLNAME>"},
        // info, graph, status
        Refused{"volume info a b", "Usage: volume info [all|<VOLNAME>]"},
        Refused{"volume info " + std::string(257, 'x'), "Invalid volume name"},
        Refused{"volume info --graph", "Usage: volume info <VOLNAME> --graph"},
        Refused{"volume info all --graph", "Usage: volume info <VOLNAME> --graph"},
        Refused{"volume info a b --graph", "Usage: volume info <VOLNAME> --graph"},
        Refused{"volume status v --graph", "unrecognized option --graph"},
        Refused{"volume status v clients", kStatusUsage},
        Refused{"volume status v h1:/b detail", kStatusUsage},
        Refused{"volume status all mem", kStatusUsage},
        // set, get, reset
        Refused{"volume set", kSetUsage}, Refused{"volume set v", kSetUsage},
        Refused{"volume set v k", kSetUsage}, Refused{"volume set v k 1 k2", kSetUsage},
        Refused{"volume set help more", kSetUsage}, Refused{"volume get", kGetUsage},
        Refused{"volume get v", kGetUsage}, Refused{"volume get v k more", kGetUsage},
        Refused{"volume reset", kResetUsage}, Refused{"volume reset v k more", kResetUsage},
        Refused{"volume reset v force force", kResetUsage},
        Refused{"volume reset v k force more", kResetUsage},
        // add-brick, replace-brick
        Refused{"volume add-brick v",
                "Usage: volume add-brick <VOLNAME> [replica <COUNT>] <NEW-BRICK> ... [force]"},
        Refused{"volume add-brick v force", "No bricks specified"},
        Refused{"volume add-brick v replica 2 force", "No bricks specified"},
        Refused{"volume add-brick v h3:b", "Wrong brick type: h3:b, use <HOSTNAME>:<export-dir-abs-path>"},
        Refused{"volume add-brick v h3:/b h3:/b", "Found duplicate exports h3:/b"},
        Refused{"volume rebalance v", "Usage: volume rebalance <VOLNAME> {{fix-layout start} | "
                                      "{start [force]|stop|status}}"},
        Refused{"volume rebalance v fix-layout", "Usage: volume rebalance <VOLNAME> {{fix-layout "
                                                 "start} | {start [force]|stop|status}}"},
        Refused{"volume rebalance v stop now", "Usage: volume rebalance <VOLNAME> {{fix-layout "
                                               "start} | {start [force]|stop|status}}"},
        Refused{"volume remove-brick v h3:/b h4:/b drain",
                "Usage: volume remove-brick <VOLNAME> [replica <COUNT>] <BRICK> ... "
                "<start|stop|status|commit|force>"},
        Refused{"volume remove-brick v replica 2 start", "No bricks specified"},
        Refused{"volume replace-brick v h1:/b h5:/b start",
                "replace-brick is only supported as 'commit force': volume replace-brick "
                "<VOLNAME> <SOURCE-BRICK> <NEW-BRICK> {commit force}"},
        Refused{"volume replace-brick v h1:/b h5:/b commit",
                "replace-brick is only supported as 'commit force': volume replace-brick "
                "<VOLNAME> <SOURCE-BRICK> <NEW-BRICK> {commit force}"},
        Refused{"volume replace-brick v h1:/b commit force",
                "replace-brick is only supported as 'commit force': volume replace-brick "
                "<VOLNAME> <SOURCE-BRICK> <NEW-BRICK> {commit force}"}));

TEST(Command, EmptySetValueIsRefused) {
  auto parsed = parse_command({"volume", "set", "v", "k", "   "});
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error(), "Usage: volume set <VOLNAME> <KEY> <VALUE> [<KEY> <VALUE>]...");
  EXPECT_FALSE(parse_command({"volume", "create", "", "h1:/b"}));
}

TEST(Command, EveryCommandHasAPattern) {
  for (const auto& spec : command_table()) {
    EXPECT_FALSE(spec.pattern.empty());
    EXPECT_FALSE(spec.description.empty()) << spec.pattern;
    EXPECT_EQ(pattern_of(spec.command), spec.pattern);
  }
}

// --- global options ---

TEST(CommandGlobalOptions, DefaultsToTheLocalSocket) {
  auto line = parse_global_options(split("volume info"));
  ASSERT_TRUE(line);
  EXPECT_EQ(line->words, split("volume info"));
  EXPECT_TRUE(line->options.remote_host.empty());
  EXPECT_TRUE(line->options.socket.empty());
  EXPECT_FALSE(line->options.script);
  EXPECT_FALSE(line->options.json);
}

TEST(CommandGlobalOptions, StandAnywhereLikeGlusters) {
  auto line =
      parse_global_options(split("--mode=script volume --remote-host=h1 status v --json detail"));
  ASSERT_TRUE(line) << line.error();
  EXPECT_EQ(line->words, split("volume status v detail"));
  EXPECT_TRUE(line->options.script);
  EXPECT_TRUE(line->options.json);
  EXPECT_EQ(line->options.remote_host, "h1");
  EXPECT_EQ(line->options.remote_port, kMgmtPort);
}

struct RemoteHost {
  std::string arg;
  std::string host;
  uint16_t port;
};

class CommandRemoteHost : public testing::TestWithParam<RemoteHost> {};

TEST_P(CommandRemoteHost, TakesAnOptionalPort) {
  const RemoteHost& c = GetParam();
  auto line = parse_global_options(split(c.arg + " peer status"));
  ASSERT_TRUE(line) << c.arg << ": " << line.error();
  EXPECT_EQ(line->options.remote_host, c.host) << c.arg;
  EXPECT_EQ(line->options.remote_port, c.port) << c.arg;
  EXPECT_EQ(line->words, split("peer status"));
}

INSTANTIATE_TEST_SUITE_P(Commands, CommandRemoteHost,
                         testing::Values(RemoteHost{"--remote-host=h1", "h1", 24007},
                                         RemoteHost{"--remote-host h1", "h1", 24007},
                                         RemoteHost{"--remote-host=h1:24017", "h1", 24017},
                                         RemoteHost{"--remote-host 10.0.0.2:1", "10.0.0.2", 1},
                                         RemoteHost{"--remote-host=[::1]:24010", "::1", 24010},
                                         RemoteHost{"--remote-host=[::1]", "::1", 24007},
                                         RemoteHost{"--remote-host=fe80::1", "fe80::1", 24007}));

TEST(CommandGlobalOptions, Socket) {
  auto a = parse_global_options(split("--socket=/tmp/m.sock pool list"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->options.socket, "/tmp/m.sock");
  auto b = parse_global_options(split("pool list --socket /tmp/n.sock"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->options.socket, "/tmp/n.sock");
  EXPECT_EQ(b->words, split("pool list"));
}

TEST(CommandGlobalOptions, GraphStaysWithTheCommandAndHelpBecomesAWord) {
  auto line = parse_global_options(split("volume info v --graph"));
  ASSERT_TRUE(line);
  EXPECT_EQ(line->words, split("volume info v --graph"));
  auto help = parse_global_options(split("--help"));
  ASSERT_TRUE(help);
  EXPECT_EQ(help->words, split("help"));
  auto version = parse_global_options(split("--version"));
  ASSERT_TRUE(version);
  EXPECT_TRUE(version->options.version);
  auto interactive = parse_global_options(split("--mode=interactive peer status"));
  ASSERT_TRUE(interactive);
  EXPECT_FALSE(interactive->options.script);
}

TEST(CommandGlobalOptions, Refusals) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--xml volume info", "--xml is not supported; use --json"},
      {"volume info --xml", "--xml is not supported; use --json"},
      {"--frob volume info", "unrecognized option --frob"},
      {"--json=yes volume info", "unrecognized option --json=yes"},
      {"--mode=batch volume info", "unrecognized option --mode=batch"},
      {"--mode volume info", "unrecognized option --mode"},
      {"volume info --remote-host", "option --remote-host needs a value"},
      {"volume info --socket", "option --socket needs a value"},
      {"--socket= volume info", "option --socket needs a path"},
      {"--remote-host= volume info", "invalid --remote-host "},
      {"--remote-host=h1:0 volume info", "invalid --remote-host h1:0"},
      {"--remote-host=h1:65536 volume info", "invalid --remote-host h1:65536"},
      {"--remote-host=h1:x volume info", "invalid --remote-host h1:x"},
      {"--remote-host=[::1 volume info", "invalid --remote-host [::1"},
      {"--remote-host=[::1]x volume info", "invalid --remote-host [::1]x"},
  };
  for (const auto& [line, error] : cases) {
    auto parsed = parse_global_options(split(line));
    ASSERT_FALSE(parsed) << line;
    EXPECT_EQ(parsed.error(), error) << line;
  }
}

}  // namespace
}  // namespace mortar::cli

namespace mortar::cli {
namespace {

TEST(CommandHeal, EveryForm) {
  struct Case {
    std::string line;
    std::string request;
  };
  const Case cases[] = {
      {"volume heal v", "volume_heal { name: 'v' op: INDEX }"},
      {"volume heal v full", "volume_heal { name: 'v' op: FULL }"},
      {"volume heal v info", "volume_heal { name: 'v' op: INFO }"},
      {"volume heal v info summary", "volume_heal { name: 'v' op: INFO_SUMMARY }"},
      {"volume heal v info split-brain", "volume_heal { name: 'v' op: INFO_SPLIT_BRAIN }"},
      {"volume heal v statistics", "volume_heal { name: 'v' op: STATISTICS }"},
      {"volume heal v statistics heal-count", "volume_heal { name: 'v' op: HEAL_COUNT }"},
      {"volume heal v split-brain bigger-file /a/b",
       "volume_heal { name: 'v' op: SPLIT_BRAIN choice: 'bigger-file' file: '/a/b' }"},
      {"volume heal v split-brain latest-mtime gfid:0f2b",
       "volume_heal { name: 'v' op: SPLIT_BRAIN choice: 'latest-mtime' file: 'gfid:0f2b' }"},
      {"volume heal v split-brain source-brick h1:/b",
       "volume_heal { name: 'v' op: SPLIT_BRAIN choice: 'source-brick' source_brick: 'h1:/b' }"},
      {"volume heal v split-brain source-brick h1:/b /f",
       "volume_heal { name: 'v' op: SPLIT_BRAIN choice: 'source-brick' source_brick: 'h1:/b' "
       "file: '/f' }"},
  };
  for (const auto& c : cases) {
    auto parsed = parse_command(split(c.line));
    ASSERT_TRUE(parsed) << c.line << ": " << parsed.error();
    EXPECT_EQ(parsed->command, Command::kVolumeHeal);
    EXPECT_EQ(parsed->volume, "v");
    pb::CliReq expected = request(c.request);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed->request, expected))
        << c.line << "\n got: " << parsed->request.ShortDebugString();
  }
}

TEST(CommandHeal, RefusesWhatItCannotDo) {
  const std::string usage(pattern_of(Command::kVolumeHeal));
  for (const char* line :
       {"volume heal", "volume heal v fully", "volume heal v info all", "volume heal v full now",
        "volume heal v statistics heal", "volume heal v split-brain bigger-file",
        "volume heal v split-brain latest-mtime /a /b", "volume heal v split-brain newest /a",
        "volume heal v split-brain source-brick"}) {
    auto parsed = parse_command(split(line));
    ASSERT_FALSE(parsed) << line;
    EXPECT_EQ(parsed.error(), "Usage: " + usage) << line;
  }
  auto relative = parse_command(split("volume heal v split-brain bigger-file a/b"));
  ASSERT_FALSE(relative);
  EXPECT_EQ(relative.error(),
            "FILE is a path from the volume's root (/dir/file) or gfid:UUID, not 'a/b'");
  auto brick = parse_command(split("volume heal v split-brain source-brick h1 /f"));
  ASSERT_FALSE(brick);
  EXPECT_EQ(brick.error(), "source-brick wants HOST:BRICK, not 'h1'");
}

}  // namespace
}  // namespace mortar::cli
