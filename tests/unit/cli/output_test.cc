#include "cli/output.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <sstream>

namespace mortar::cli {
namespace {

ParsedCommand command(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  auto parsed = parse_command(words);
  EXPECT_TRUE(parsed) << line << ": " << parsed.error();
  return parsed ? *parsed : ParsedCommand{};
}

pb::CliRsp response(const std::string& text) {
  pb::CliRsp rsp;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &rsp)) << text;
  return rsp;
}

Output run(const std::string& line, const std::string& rsp_text = "", bool json = false) {
  return format_response(command(line), response(rsp_text), json);
}

void expect_success(const Output& o, const std::string& out) {
  EXPECT_EQ(o.out, out);
  EXPECT_EQ(o.err, "");
  EXPECT_EQ(o.exit_code, 0);
}

void expect_failure(const Output& o, const std::string& err) {
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, err + "\n");
  EXPECT_EQ(o.exit_code, 1);
}

const std::string kDashes(78, '-');

// --- peers ---

TEST(OutputPeer, Probe) {
  expect_success(run("peer probe host2"), "peer probe: success\n");
  expect_success(run("peer probe host2", "message: 'Host host2 port 24007 already in peer list'"),
                 "peer probe: success. Host host2 port 24007 already in peer list\n");
  expect_failure(run("peer probe host2",
                     "error: 'host2 is either already part of another "
                     "cluster or having volumes configured'"),
                 "peer probe: failed: host2 is either already part of another cluster or "
                 "having volumes configured");
}

TEST(OutputPeer, Detach) {
  expect_success(run("peer detach host2"), "peer detach: success\n");
  expect_failure(run("peer detach host9", "error: 'host9 is not part of cluster'"),
                 "peer detach: failed: host9 is not part of cluster");
}

const char* kPeers =
    "peers { uuid: '0a43f531-dff3-42a8-a7b0-aba584cb1245' hostname: 's1' connected: true "
    "local: true } "
    "peers { uuid: '974344a5-3675-4456-8e53-c759d578b113' hostname: 'host2' connected: true "
    "other_names: '10.0.0.2' other_names: 'host2.example.com' } "
    "peers { uuid: 'c2d6e0aa-0d1b-4b36-9a2e-57e5a30a3b9e' hostname: 'a-very-long-hostname' }";

TEST(OutputPeer, StatusListsOtherPeers) {
  expect_success(run("peer status", kPeers),
                 "Number of Peers: 2\n"
                 "\n"
                 "Hostname: host2\n"
                 "Uuid: 974344a5-3675-4456-8e53-c759d578b113\n"
                 "State: Peer in Cluster (Connected)\n"
                 "Other names:\n"
                 "10.0.0.2\n"
                 "host2.example.com\n"
                 "\n"
                 "Hostname: a-very-long-hostname\n"
                 "Uuid: c2d6e0aa-0d1b-4b36-9a2e-57e5a30a3b9e\n"
                 "State: Peer in Cluster (Disconnected)\n");
}

TEST(OutputPeer, StatusAlone) {
  expect_success(run("peer status",
                     "peers { uuid: 'u' hostname: 's1' connected: true local: "
                     "true }"),
                 "Number of Peers: 0\n");
  expect_failure(run("peer status", "error: 'no leader'"), "peer status: failed: no leader");
}

TEST(OutputPeer, PoolListShowsLocalhostLast) {
  expect_success(run("pool list", kPeers),
                 "UUID\t\t\t\t\tHostname            \tState\n"
                 "974344a5-3675-4456-8e53-c759d578b113\thost2               \tConnected \n"
                 "c2d6e0aa-0d1b-4b36-9a2e-57e5a30a3b9e\ta-very-long-hostname\tDisconnected \n"
                 "0a43f531-dff3-42a8-a7b0-aba584cb1245\tlocalhost           \tConnected \n");
}

TEST(OutputPeer, PoolListHostnameColumnIsAtLeastEightWide) {
  // gluster's own example: "localhost" (9) sets the width.
  expect_success(run("pool list",
                     "peers { uuid: '974344a5-3675-4456-8e53-c759d578b113' hostname: 'host2' "
                     "connected: true } peers { uuid: '0a43f531-dff3-42a8-a7b0-aba584cb1245' "
                     "hostname: 's1' connected: true local: true }"),
                 "UUID\t\t\t\t\tHostname \tState\n"
                 "974344a5-3675-4456-8e53-c759d578b113\thost2    \tConnected \n"
                 "0a43f531-dff3-42a8-a7b0-aba584cb1245\tlocalhost\tConnected \n");
  pb::CliRsp none;
  EXPECT_EQ(format_pool_list(none), "UUID\t\t\t\t\tHostname\tState\n");
  expect_failure(run("pool list", "error: 'no leader'"), "pool list: failed: no leader");
}

// --- create, start, stop, delete ---

TEST(OutputVolume, Lifecycle) {
  expect_success(run("volume create webData replica 3 h1:/b h2:/b h3:/b"),
                 "volume create: webData: success: please start the volume to access data\n");
  expect_failure(run("volume create webData h1:/b", "error: 'Volume webData already exists'"),
                 "volume create: webData: failed: Volume webData already exists");
  expect_success(run("volume start webData"), "volume start: webData: success\n");
  expect_failure(run("volume start webData", "error: 'Volume webData already started'"),
                 "volume start: webData: failed: Volume webData already started");
  expect_success(run("volume stop webData"), "volume stop: webData: success\n");
  expect_failure(run("volume stop webData force",
                     "error: 'Volume webData is not in the started "
                     "state'"),
                 "volume stop: webData: failed: Volume webData is not in the started state");
  expect_success(run("volume delete webData"), "volume delete: webData: success\n");
  expect_failure(run("volume delete webData", "error: 'Volume webData does not exist'"),
                 "volume delete: webData: failed: Volume webData does not exist");
}

TEST(OutputVolume, FailuresWithoutAnAnswer) {
  expect_failure(
      format_failure(command("volume create v replica 2 h1:/b h2:/b"), "aborted by user"),
      "volume create: v: failed: aborted by user");
  expect_failure(format_failure(command("volume stop v"), "Permission denied"),
                 "volume stop: v: failed: Permission denied");
  expect_failure(format_failure(command("volume delete v"), ""), "volume delete: v: failed");
  expect_failure(format_failure(command("peer detach h2"), "aborted by user"),
                 "peer detach: failed: aborted by user");
  expect_failure(format_failure(command("volume info"), "Connection reset by peer"),
                 "volume info: failed: Connection reset by peer");
  expect_failure(format_failure(command("volume get v all"), "Broken pipe"),
                 "volume get option: failed: Broken pipe");
}

// --- info ---

const char* kDistRep =
    "volumes { name: 'webData' id: '4f2d7849-fbd6-40a2-b346-d13420978a01' replica_count: 2 "
    "transport: 'tcp' status: VOLUME_STARTED "
    "bricks { host: 'h1' path: '/b' } bricks { host: 'h2' path: '/b' } "
    "bricks { host: 'h3' path: '/b' } bricks { host: 'h4' path: '/b' } "
    "options { key: 'transport.address-family' value: 'inet' } "
    "options { key: 'cluster.granular-entry-heal' value: 'on' } "
    "options { key: 'performance.client-io-threads' value: 'off' } }";

TEST(OutputInfo, DistributedReplicate) {
  expect_success(run("volume info webData", kDistRep),
                 " \n"
                 "Volume Name: webData\n"
                 "Type: Distributed-Replicate\n"
                 "Volume ID: 4f2d7849-fbd6-40a2-b346-d13420978a01\n"
                 "Status: Started\n"
                 "Snapshot Count: 0\n"
                 "Number of Bricks: 2 x 2 = 4\n"
                 "Transport-type: tcp\n"
                 "Bricks:\n"
                 "Brick1: h1:/b\n"
                 "Brick2: h2:/b\n"
                 "Brick3: h3:/b\n"
                 "Brick4: h4:/b\n"
                 "Options Reconfigured:\n"
                 "cluster.granular-entry-heal: on\n"
                 "performance.client-io-threads: off\n"
                 "transport.address-family: inet\n");
}

TEST(OutputInfo, ArbiterDistributeAndSeveralVolumes) {
  const char* rsp =
      "volumes { name: 'arb' id: 'id-1' replica_count: 3 arbiter_count: 1 "
      "bricks { host: 'h1' path: '/b' } bricks { host: 'h2' path: '/b' } "
      "bricks { host: 'h3' path: '/a' arbiter: true } } "
      "volumes { name: 'dist' id: 'id-2' status: VOLUME_STOPPED "
      "bricks { host: 'h1' path: '/d' } bricks { host: 'h2' path: '/d' } } "
      "volumes { name: 'rep' id: 'id-3' replica_count: 3 transport: 'tcp' "
      "bricks { host: 'h1' path: '/r' } bricks { host: 'h2' path: '/r' } "
      "bricks { host: 'h3' path: '/r' } }";
  expect_success(run("volume info", rsp),
                 " \n"
                 "Volume Name: arb\n"
                 "Type: Replicate\n"
                 "Volume ID: id-1\n"
                 "Status: Created\n"
                 "Snapshot Count: 0\n"
                 "Number of Bricks: 1 x (2 + 1) = 3\n"
                 "Transport-type: tcp\n"
                 "Bricks:\n"
                 "Brick1: h1:/b\n"
                 "Brick2: h2:/b\n"
                 "Brick3: h3:/a (arbiter)\n"
                 " \n"
                 "Volume Name: dist\n"
                 "Type: Distribute\n"
                 "Volume ID: id-2\n"
                 "Status: Stopped\n"
                 "Snapshot Count: 0\n"
                 "Number of Bricks: 2\n"
                 "Transport-type: tcp\n"
                 "Bricks:\n"
                 "Brick1: h1:/d\n"
                 "Brick2: h2:/d\n"
                 " \n"
                 "Volume Name: rep\n"
                 "Type: Replicate\n"
                 "Volume ID: id-3\n"
                 "Status: Created\n"
                 "Snapshot Count: 0\n"
                 "Number of Bricks: 1 x 3 = 3\n"
                 "Transport-type: tcp\n"
                 "Bricks:\n"
                 "Brick1: h1:/r\n"
                 "Brick2: h2:/r\n"
                 "Brick3: h3:/r\n");
}

TEST(OutputInfo, ArbiterFollowsTheCountWhenBricksDoNotSayIt) {
  pb::CliRsp rsp = response(
      "volumes { name: 'a' id: 'i' replica_count: 3 arbiter_count: 1 "
      "bricks { host: 'h1' path: '/1' } bricks { host: 'h2' path: '/2' } "
      "bricks { host: 'h3' path: '/3' } bricks { host: 'h4' path: '/4' } "
      "bricks { host: 'h5' path: '/5' } bricks { host: 'h6' path: '/6' } }");
  std::string text = format_volume_info(rsp.volumes(0));
  EXPECT_NE(text.find("Type: Distributed-Replicate\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Number of Bricks: 2 x (2 + 1) = 6\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Brick3: h3:/3 (arbiter)\nBrick4: h4:/4\nBrick5: h5:/5\n"
                      "Brick6: h6:/6 (arbiter)\n"),
            std::string::npos)
      << text;
}

TEST(OutputInfo, NoVolumesAndUnknownVolume) {
  Output all = run("volume info");
  EXPECT_EQ(all.out, "");
  EXPECT_EQ(all.err, "No volumes present\n");
  EXPECT_EQ(all.exit_code, 0);
  expect_failure(run("volume info nope"), "Volume nope does not exist");
  expect_failure(run("volume info nope", "error: 'Volume nope does not exist'"),
                 "Volume nope does not exist");
}

TEST(OutputInfo, Graph) {
  const std::string volfile = "volume v-client-0\n    type protocol/client\nend-volume\n";
  expect_success(run("volume info v --graph", "text: '" +
                                                  std::string("volume v-client-0\\n    "
                                                              "type protocol/client\\n"
                                                              "end-volume\\n") +
                                                  "'"),
                 volfile);
  expect_success(run("volume info v --graph", "text: 'no newline'"), "no newline\n");
  expect_failure(run("volume info v --graph", "error: 'Volume v does not exist'"),
                 "Volume v does not exist");
}

TEST(OutputInfo, Type) {
  pb::VolumeSpec v;
  EXPECT_EQ(volume_type(v), "Distribute");
  v.set_replica_count(1);
  v.add_bricks();
  v.add_bricks();
  EXPECT_EQ(volume_type(v), "Distribute");
  v.set_replica_count(2);
  EXPECT_EQ(volume_type(v), "Replicate");
  v.add_bricks();
  v.add_bricks();
  EXPECT_EQ(volume_type(v), "Distributed-Replicate");
}

// --- status ---

const char* kStatus =
    "status { name: 'webData' "
    "bricks { host: 'h1' path: '/b' port: 49152 online: true pid: 2209 } "
    "bricks { host: 'h2' path: '/b' } "
    "bricks { host: 'server-with-a-long-name.example.com' path: '/data/glusterfs/webData/brick1' "
    "port: 49153 online: true pid: 31337 } }";

TEST(OutputStatus, Table) {
  expect_success(
      run("volume status webData", kStatus),
      "Status of volume: webData\n"
      "Mortar process                              TCP Port  RDMA Port  Online  Pid\n" +
          kDashes + "\n" +
          "Brick h1:/b                                 49152     0          Y       2209 \n"
          "Brick h2:/b                                 N/A       N/A        N       N/A  \n"
          "Brick server-with-a-long-name.example.com:/\n"
          "data/glusterfs/webData/brick1               49153     0          Y       31337\n"
          " \n"
          "Task Status of Volume webData\n" +
          kDashes + "\n" +
          "There are no active volume tasks\n"
          " \n");
}

TEST(OutputStatus, NameOfExactlyTheColumnWidthDoesNotWrap) {
  pb::BrickStatus b;
  b.set_host("h");
  b.set_path("/" + std::string(43 - 9, 'x'));  // "Brick h:/xxx" is 43 bytes
  pb::VolumeStatusEntry e;
  e.set_name("v");
  *e.add_bricks() = b;
  std::string text = format_volume_status(e, false);
  EXPECT_NE(text.find("Brick h:/" + std::string(34, 'x') + " N/A       N/A        N       N/A  \n"),
            std::string::npos)
      << text;
  // One byte more wraps, and the next line holds the last byte.
  b.set_path("/" + std::string(35, 'x'));
  *e.mutable_bricks(0) = b;
  text = format_volume_status(e, false);
  EXPECT_NE(text.find("Brick h:/" + std::string(34, 'x') + "\nx" + std::string(43, ' ') + "N/A"),
            std::string::npos)
      << text;
}

TEST(OutputStatus, Detail) {
  const char* rsp =
      "status { name: 'webData' "
      "bricks { host: 'h1' path: '/b' port: 49152 online: true pid: 1234 disk_total: 4294967296 "
      "disk_free: 1288490189 inodes_total: 2097152 inodes_free: 2096000 fs_type: 'xfs' "
      "device: '/dev/sdb1' } "
      "bricks { host: 'h2' path: '/b' } }";
  expect_success(run("volume status webData detail", rsp),
                 "Status of volume: webData\n" + kDashes + "\n" +
                     "Brick                : Brick h1:/b         \n"
                     "TCP Port             : 49152               \n"
                     "RDMA Port            : 0                   \n"
                     "Online               : Y                   \n"
                     "Pid                  : 1234                \n"
                     "File System          : xfs                 \n"
                     "Device               : /dev/sdb1           \n"
                     "Mount Options        : N/A                 \n"
                     "Inode Size           : N/A                 \n"
                     "Disk Space Free      : 1.2GB               \n"
                     "Total Disk Space     : 4.0GB               \n"
                     "Inode Count          : 2097152             \n"
                     "Free Inodes          : 2096000             \n" +
                     kDashes + "\n" +
                     "Brick                : Brick h2:/b         \n"
                     "TCP Port             : N/A                 \n"
                     "RDMA Port            : N/A                 \n"
                     "Online               : N                   \n"
                     "Pid                  : N/A                 \n"
                     "File System          : N/A                 \n"
                     "Device               : N/A                 \n"
                     "Mount Options        : N/A                 \n"
                     "Inode Size           : N/A                 \n"
                     "Disk Space Free      : 0Bytes              \n"
                     "Total Disk Space     : 0Bytes              \n"
                     "Inode Count          : N/A                 \n"
                     "Free Inodes          : N/A                 \n"
                     " \n");
}

TEST(OutputStatus, EveryVolumeAndNone) {
  Output o = run("volume status",
                 "status { name: 'a' bricks { host: 'h1' path: '/a' port: 49152 online: true "
                 "pid: 7 } } status { name: 'b' }");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out,
            "Status of volume: a\n"
            "Mortar process                              TCP Port  RDMA Port  Online  Pid\n" +
                kDashes + "\n" +
                "Brick h1:/a                                 49152     0          Y       7    \n"
                " \n"
                "Task Status of Volume a\n" +
                kDashes + "\n" +
                "There are no active volume tasks\n"
                " \n"
                "Status of volume: b\n"
                "Mortar process                              TCP Port  RDMA Port  Online  Pid\n" +
                kDashes + "\n" +
                " \n"
                "Task Status of Volume b\n" +
                kDashes + "\n" +
                "There are no active volume tasks\n"
                " \n");
  Output none = run("volume status all");
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "No volumes present\n");
  EXPECT_EQ(none.exit_code, 0);
  expect_failure(run("volume status webData", "error: 'Volume webData is not started'"),
                 "Volume webData is not started");
}

TEST(OutputStatus, HumanSizes) {
  EXPECT_EQ(human_size(0), "0Bytes");
  EXPECT_EQ(human_size(1023), "1023Bytes");
  EXPECT_EQ(human_size(1024), "1.0KB");
  EXPECT_EQ(human_size(1536), "1.5KB");
  EXPECT_EQ(human_size(5ull << 20), "5.0MB");
  EXPECT_EQ(human_size(4ull << 30), "4.0GB");
  EXPECT_EQ(human_size(3ull << 40), "3.0TB");
  EXPECT_EQ(human_size(2ull << 50), "2.0PB");
}

// --- set, get, reset ---

TEST(OutputOptions, SetAndReset) {
  expect_success(run("volume set v a b"), "volume set: success\n");
  expect_failure(run("volume set v a b", "error: 'option a does not exist'"),
                 "volume set: failed: option a does not exist");
  expect_success(run("volume reset v"), "volume reset: success: reset volume successful\n");
  expect_success(run("volume reset v k", "message: 'reset k'"), "volume reset: success: reset k\n");
  expect_failure(run("volume reset v k", "error: 'option k does not exist'"),
                 "volume reset: failed: option k does not exist");
}

TEST(OutputOptions, Get) {
  expect_success(
      run("volume get webData cluster.quorum-type",
          "options { key: 'cluster.quorum-type' value: 'none' }"),
      "Option                                   Value                                  \n"
      "------                                   -----                                  \n"
      "cluster.quorum-type                      none                                   \n");
  expect_failure(run("volume get v k", "error: 'Did you mean cluster.quorum-type?'"),
                 "volume get option: failed: Did you mean cluster.quorum-type?");
}

TEST(OutputOptions, SetHelp) {
  expect_success(run("volume set help",
                     "options { key: 'network.ping-timeout' default_value: '42' description: "
                     "'Time after which an unresponsive brick is declared dead.' } "
                     "options { key: 'nfs.disable' default_value: 'on' description: 'Accepted "
                     "and ignored.' }"),
                 "Option: network.ping-timeout\n"
                 "Default Value: 42\n"
                 "Description: Time after which an unresponsive brick is declared dead.\n"
                 "\n"
                 "Option: nfs.disable\n"
                 "Default Value: on\n"
                 "Description: Accepted and ignored.\n"
                 "\n"
                 "\n");
  expect_failure(run("volume set help", "error: 'no leader'"), "volume set: failed: no leader");
}

// --- JSON ---

TEST(OutputJson, PeerStatusHoldsOnlyOtherPeersWithEveryField) {
  expect_success(run("peer status", kPeers, true),
                 "{\n"
                 " \"peers\": [\n"
                 "  {\n"
                 "   \"uuid\": \"974344a5-3675-4456-8e53-c759d578b113\",\n"
                 "   \"hostname\": \"host2\",\n"
                 "   \"other_names\": [\n"
                 "    \"10.0.0.2\",\n"
                 "    \"host2.example.com\"\n"
                 "   ],\n"
                 "   \"connected\": true,\n"
                 "   \"local\": false\n"
                 "  },\n"
                 "  {\n"
                 "   \"uuid\": \"c2d6e0aa-0d1b-4b36-9a2e-57e5a30a3b9e\",\n"
                 "   \"hostname\": \"a-very-long-hostname\",\n"
                 "   \"other_names\": [],\n"
                 "   \"connected\": false,\n"
                 "   \"local\": false\n"
                 "  }\n"
                 " ]\n"
                 "}\n");
}

TEST(OutputJson, ReadCommands) {
  Output info = run("volume info", kDistRep, true);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(info.out.rfind("{\n \"volumes\": [\n  {\n   \"name\": \"webData\",\n", 0), 0u)
      << info.out;
  EXPECT_NE(info.out.find("\"status\": \"VOLUME_STARTED\""), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("\"arbiter\": false"), std::string::npos) << info.out;

  Output status = run("volume status", kStatus, true);
  EXPECT_NE(status.out.find("\"online\": false"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"disk_total\": \"0\""), std::string::npos) << status.out;

  expect_success(run("volume get v k", "options { key: 'k' value: 'v' }", true),
                 "{\n"
                 " \"options\": [\n"
                 "  {\n"
                 "   \"key\": \"k\",\n"
                 "   \"value\": \"v\",\n"
                 "   \"default_value\": \"\",\n"
                 "   \"description\": \"\"\n"
                 "  }\n"
                 " ]\n"
                 "}\n");
  expect_success(run("volume info", "", true), "{\n \"volumes\": []\n}\n");
  expect_success(run("volume info v --graph", "text: 'volume x\\n'", true),
                 "{\n \"text\": \"volume x\\n\"\n}\n");
}

TEST(OutputJson, WriteCommandsAndFailures) {
  expect_success(run("volume start v", "", true), "{}\n");
  expect_success(run("peer probe h2", "message: 'Host h2 port 24007 already in peer list'", true),
                 "{\n \"message\": \"Host h2 port 24007 already in peer list\"\n}\n");
  expect_failure(run("volume start v", "error: 'Volume v already started'", true),
                 "volume start: v: failed: Volume v already started");
  expect_failure(run("volume info nope", "", true), "Volume nope does not exist");
}

// --- help ---

TEST(OutputHelp, Classes) {
  expect_success(run("help"),
                 " peer help                - display help for peer commands\n"
                 " volume help              - display help for volume commands\n"
                 " volume set help          - list the options of volumes with their defaults "
                 "and descriptions\n"
                 "\n\n");
  expect_success(run("peer help"),
                 "\n"
                 "mortar peer commands\n"
                 "=====================\n"
                 "\n"
                 "peer detach { <HOSTNAME> | <IP-address> } [force] - detach peer specified by "
                 "<HOSTNAME>\n"
                 "peer help - display help for peer commands\n"
                 "peer probe { <HOSTNAME> | <IP-address> } - probe peer specified by <HOSTNAME>\n"
                 "peer status - list status of peers\n"
                 "pool list - list all the nodes in the pool (including localhost)\n"
                 "\n\n");
  Output volume = run("volume help");
  EXPECT_EQ(volume.out.rfind("\nmortar volume commands\n=======================\n\n", 0), 0u);
  for (const auto& spec : command_table()) {
    if (spec.pattern.starts_with("volume ")) {
      EXPECT_NE(
          volume.out.find(std::string(spec.pattern) + " - " + std::string(spec.description) + "\n"),
          std::string::npos)
          << spec.pattern;
    }
  }
  Output all = run("help all");
  EXPECT_EQ(all.out, run("peer help").out + volume.out + "\n\n");
}

}  // namespace
}  // namespace mortar::cli

namespace mortar::cli {
namespace {

const char* kHealInfo = R"(heal {
  bricks { brick: "h1:/b" connected: true status: "Connected" total: 3 pending: 1 split_brain: 1
           healing: 1
           entries { path: "/uploads/a.jpg" }
           entries { path: "/index.php" state: SPLIT_BRAIN }
           entries { path: "/cache/x" state: HEALING } }
  bricks { brick: "h2:/b" status: "Transport endpoint is not connected" }
  stats { rate: 210.44 pending: 3 eta_seconds: 0.6 healed: 12 bytes_healed: 4096
          blocks_healed: 1 blocks_skipped: 8191 crawls: 2 }
})";

TEST(OutputHeal, TriggerLines) {
  expect_success(run("volume heal webData"),
                 "Launching heal operation to perform index self heal on volume webData has "
                 "been successful \nUse heal info commands to check status.\n");
  expect_success(run("volume heal webData full"),
                 "Launching heal operation to perform full self heal on volume webData has "
                 "been successful \nUse heal info commands to check status.\n");
}

TEST(OutputHeal, InfoListsPathsPerBrick) {
  expect_success(run("volume heal webData info", kHealInfo),
                 "Brick h1:/b\n"
                 "/uploads/a.jpg\n"
                 "/index.php - Is in split-brain\n"
                 "/cache/x - Possibly undergoing heal\n"
                 "Status: Connected\n"
                 "Number of entries: 3\n\n"
                 "Brick h2:/b\n"
                 "Status: Transport endpoint is not connected\n"
                 "Number of entries: -\n\n");
}

TEST(OutputHeal, SplitBrainSummaryAndCount) {
  expect_success(run("volume heal webData info split-brain", kHealInfo),
                 "Brick h1:/b\n/uploads/a.jpg\n/index.php\n/cache/x\nStatus: Connected\n"
                 "Number of entries in split-brain: 1\n\n"
                 "Brick h2:/b\nStatus: Transport endpoint is not connected\n"
                 "Number of entries in split-brain: -\n\n");
  expect_success(run("volume heal webData info summary", kHealInfo),
                 "Brick h1:/b\nStatus: Connected\nTotal Number of entries: 3\n"
                 "Number of entries in heal pending: 1\nNumber of entries in split-brain: 1\n"
                 "Number of entries possibly healing: 1\n\n"
                 "Brick h2:/b\nStatus: Transport endpoint is not connected\n"
                 "Total Number of entries: -\nNumber of entries in heal pending: -\n"
                 "Number of entries in split-brain: -\nNumber of entries possibly healing: -\n\n"
                 "Heal rate: 210.4 entries/s\nEstimated time left: 1s\n");
  expect_success(run("volume heal webData statistics heal-count", kHealInfo),
                 "Gathering count of entries to be healed on volume webData has been "
                 "successful \n\nBrick h1:/b\nNumber of entries: 3\n\n"
                 "Brick h2:/b\nStatus: Transport endpoint is not connected\n"
                 "Number of entries: -\n\n");
}

TEST(OutputHeal, StatisticsShowTheCounters) {
  Output o = run("volume heal webData statistics", kHealInfo);
  EXPECT_EQ(o.exit_code, 0);
  for (const char* line :
       {"No. of entries healed: 12\n", "Bytes healed: 4096\n", "Blocks healed: 1\n",
        "Blocks skipped (already identical): 8191\n", "Index crawls: 2\n",
        "Entries pending: 3\n", "Starting time of last crawl: never\n"}) {
    EXPECT_NE(o.out.find(line), std::string::npos) << line << " missing from\n" << o.out;
  }
}

TEST(OutputHeal, ResolutionLinesAndTheirExitStatus) {
  expect_success(run("volume heal webData split-brain bigger-file /a", R"(heal_lines: "Healed /a.")"),
                 "Healed /a.\n");
  Output o = run("volume heal webData split-brain source-brick h1:/b",
                 R"(heal_lines: "Healed /a." heal_lines: "Healing /b failed: File not in split-brain.")");
  EXPECT_EQ(o.out, "Healed /a.\nHealing /b failed: File not in split-brain.\n");
  EXPECT_EQ(o.exit_code, 1);
  expect_failure(run("volume heal webData info", R"(error: "Volume webData is not started.")"),
                 "volume heal: failed: Volume webData is not started.");
}

TEST(OutputHeal, JsonCarriesTheDaemonsAnswer) {
  Output o = run("volume heal webData info", kHealInfo, true);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.out.find("\"path\": \"/index.php\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"state\": \"SPLIT_BRAIN\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"blocks_skipped\": \"8191\""), std::string::npos) << o.out;
}

TEST(OutputStatus, SelfHealDaemonRows) {
  expect_success(
      run("volume status webData", R"(status { name: "webData"
          bricks { host: "h1" path: "/b" port: 49152 online: true pid: 2209 }
          heal_daemons { host: "h1" online: true pid: 2077 local: true }
          heal_daemons { host: "h2" online: false } })"),
      "Status of volume: webData\n"
      "Mortar process                              TCP Port  RDMA Port  Online  Pid\n" +
          kDashes + "\n" +
          "Brick h1:/b                                 49152     0          Y       2209 \n"
          "Self-heal Daemon on localhost               N/A       N/A        Y       2077 \n"
          "Self-heal Daemon on h2                      N/A       N/A        N       N/A  \n"
          " \n"
          "Task Status of Volume webData\n" +
          kDashes + "\n" +
          "There are no active volume tasks\n"
          " \n");
}

}  // namespace
}  // namespace mortar::cli
