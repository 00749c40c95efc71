#include "mgmtd/volgen.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "translators/volfile.h"

namespace mortar::mgmtd {
namespace {

// `bricks` bricks on servers s0, s1, ..., each brick at /exports/b on port 49152 + its index
// (port 0: the volume was never started).
pb::VolumeSpec make_volume(uint32_t replica, uint32_t arbiter, int bricks, uint32_t port = 49152) {
  pb::VolumeSpec v;
  v.set_name("webData");
  v.set_id("8a1e5b2c-0f3d-4c1e-9a77-3b2f6d1c0e44");
  v.set_replica_count(replica);
  v.set_arbiter_count(arbiter);
  v.set_transport("tcp");
  v.set_status(port ? pb::VOLUME_STARTED : pb::VOLUME_CREATED);
  v.set_version(7);
  for (int i = 0; i < bricks; ++i) {
    pb::BrickSpec* b = v.add_bricks();
    b->set_host("s" + std::to_string(i));
    b->set_path("/exports/b");
    b->set_port(port ? port + i : 0);
    b->set_arbiter(arbiter == 1 && replica > 0 && (i + 1) % replica == 0);
  }
  return v;
}

std::string client(int i, const std::string& extra = "") {
  std::string n = std::to_string(i);
  return "volume webData-client-" + n +
         "\n"
         "    type protocol/client\n" +
         extra + "    option remote-host s" + n +
         "\n"
         "    option remote-port " +
         std::to_string(49152 + i) +
         "\n"
         "    option remote-subvolume /exports/b\n"
         "    option remote-volume webData\n"
         "end-volume\n";
}

xl::OptionSpec stand_in(std::string name, xl::OptionKind kind, std::string default_value,
                        int64_t min = INT64_MIN, int64_t max = INT64_MAX,
                        std::vector<std::string> values = {}) {
  return {std::move(name), kind, std::move(default_value), "", false, min, max, std::move(values)};
}

// A registry that knows the types volgen writes: the real protocol/client, and stand-ins for
// cluster/replicate and cluster/distribute declaring the options volgen may give them (the
// contract in volgen.h).
xl::Registry registry_with_stand_ins() {
  xl::Registry r = xl::Registry::builtin();
  using xl::OptionKind;
  r.add({"cluster/replicate",
         "stand-in",
         {stand_in("quorum-type", OptionKind::kEnum, "none", 0, 0, {"none", "auto", "fixed"}),
          stand_in("quorum-count", OptionKind::kInt, "", 1, 3),
          stand_in("arbiter-count", OptionKind::kInt, "0", 0, 1),
          stand_in("favorite-child-policy", OptionKind::kEnum, "none", 0, 0,
                   {"none", "size", "mtime", "ctime", "majority"}),
          stand_in("eager-lock", OptionKind::kBool, "on"),
          stand_in("post-op-delay-secs", OptionKind::kDuration, "1", 0, 60000),
          stand_in("data-self-heal-algorithm", OptionKind::kEnum, "diff", 0, 0, {"diff", "full"})},
         2,
         3,
         nullptr});
  r.add({"cluster/distribute", "stand-in", {}, 2, SIZE_MAX, nullptr});
  return r;
}

struct GraphCase {
  const char* name;
  pb::VolumeSpec volume;
  std::string volfile;
  const char* type_name;
};

TEST(Volgen, Graphs) {
  pb::VolumeSpec with_options = make_volume(2, 0, 4);
  (*with_options.mutable_options())["network.ping-timeout"] = "5";
  (*with_options.mutable_options())["network.frame-timeout"] = "10m";
  (*with_options.mutable_options())["cluster.quorum-type"] = "fixed";
  (*with_options.mutable_options())["cluster.favorite-child-policy"] = "mtime";
  (*with_options.mutable_options())["nfs.disable"] = "on";              // compat: nowhere
  (*with_options.mutable_options())["auth.allow"] = "10.0.0.*";         // brick: not in the graph
  (*with_options.mutable_options())["features.from-the-future"] = "1";  // unknown: ignored

  const std::string timeouts = "    option call-timeout 600\n    option ping-timeout 5\n";
  const GraphCase cases[] = {
      {"1 brick", make_volume(1, 0, 1), client(0), "Distribute"},
      {"1 brick, replica 0 as sent by plain create", make_volume(0, 0, 1), client(0), "Distribute"},
      {"4 bricks distribute", make_volume(1, 0, 4),
       client(0) + "\n" + client(1) + "\n" + client(2) + "\n" + client(3) +
           "\n"
           "volume webData-dht\n"
           "    type cluster/distribute\n"
           "    subvolumes webData-client-0 webData-client-1 webData-client-2 webData-client-3\n"
           "end-volume\n",
       "Distribute"},
      {"1x2", make_volume(2, 0, 2),
       client(0) + "\n" + client(1) +
           "\n"
           "volume webData-replicate-0\n"
           "    type cluster/replicate\n"
           "    option quorum-type none\n"
           "    subvolumes webData-client-0 webData-client-1\n"
           "end-volume\n",
       "Replicate"},
      {"2x2", make_volume(2, 0, 4),
       client(0) + "\n" + client(1) + "\n" + client(2) + "\n" + client(3) +
           "\n"
           "volume webData-replicate-0\n"
           "    type cluster/replicate\n"
           "    option quorum-type none\n"
           "    subvolumes webData-client-0 webData-client-1\n"
           "end-volume\n"
           "\n"
           "volume webData-replicate-1\n"
           "    type cluster/replicate\n"
           "    option quorum-type none\n"
           "    subvolumes webData-client-2 webData-client-3\n"
           "end-volume\n"
           "\n"
           "volume webData-dht\n"
           "    type cluster/distribute\n"
           "    subvolumes webData-replicate-0 webData-replicate-1\n"
           "end-volume\n",
       "Distributed-Replicate"},
      {"1x3", make_volume(3, 0, 3),
       client(0) + "\n" + client(1) + "\n" + client(2) +
           "\n"
           "volume webData-replicate-0\n"
           "    type cluster/replicate\n"
           "    option quorum-type auto\n"
           "    subvolumes webData-client-0 webData-client-1 webData-client-2\n"
           "end-volume\n",
       "Replicate"},
      {"1x(2+1) arbiter", make_volume(3, 1, 3),
       client(0) + "\n" + client(1) + "\n" + client(2) +
           "\n"
           "volume webData-replicate-0\n"
           "    type cluster/replicate\n"
           "    option arbiter-count 1\n"
           "    option quorum-type auto\n"
           "    subvolumes webData-client-0 webData-client-1 webData-client-2\n"
           "end-volume\n",
       "Replicate"},
      {"2x2 with options", with_options,
       client(0, timeouts) + "\n" + client(1, timeouts) + "\n" + client(2, timeouts) + "\n" +
           client(3, timeouts) +
           "\n"
           "volume webData-replicate-0\n"
           "    type cluster/replicate\n"
           "    option favorite-child-policy mtime\n"
           "    option quorum-count 2\n"
           "    option quorum-type fixed\n"
           "    subvolumes webData-client-0 webData-client-1\n"
           "end-volume\n"
           "\n"
           "volume webData-replicate-1\n"
           "    type cluster/replicate\n"
           "    option favorite-child-policy mtime\n"
           "    option quorum-count 2\n"
           "    option quorum-type fixed\n"
           "    subvolumes webData-client-2 webData-client-3\n"
           "end-volume\n"
           "\n"
           "volume webData-dht\n"
           "    type cluster/distribute\n"
           "    subvolumes webData-replicate-0 webData-replicate-1\n"
           "end-volume\n",
       "Distributed-Replicate"},
  };
  const xl::Registry registry = registry_with_stand_ins();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto rsp = generate_client_graph(c.volume);
    ASSERT_TRUE(rsp) << rsp.error();
    EXPECT_EQ(xl::render_volfile(rsp->graph()), c.volfile);
    EXPECT_EQ(rsp->version(), 7u);
    EXPECT_EQ(volume_type_name(c.volume), c.type_name);
    // What volgen writes is a graph the client accepts, and survives the volfile round trip.
    auto valid = xl::validate_graph(rsp->graph(), registry);
    EXPECT_TRUE(valid) << valid.error();
    auto parsed = xl::parse_volfile(c.volfile);
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed->graph, rsp->graph()));
  }
}

// The volume's bucket map travels in the graph, so every client places names alike.
TEST(Volgen, BucketMapGoesToDistribute) {
  pb::VolumeSpec v = make_volume(2, 0, 4);
  v.set_bucket_map("version=3;sets=2;map=0-32767:0,32768-65535:1");
  auto rsp = generate_client_graph(v);
  ASSERT_TRUE(rsp) << rsp.error();
  const auto& top = rsp->graph().translators(rsp->graph().translators_size() - 1);
  ASSERT_EQ(top.type(), "cluster/distribute");
  ASSERT_TRUE(top.options().contains("bucket-map"));
  EXPECT_EQ(top.options().at("bucket-map"), v.bucket_map());
  // The translator accepts it, and it survives the volfile round trip.
  auto valid = xl::validate_graph(rsp->graph(), xl::Registry::builtin());
  EXPECT_TRUE(valid) << valid.error();
  auto parsed = xl::parse_volfile(xl::render_volfile(rsp->graph()));
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed->graph, rsp->graph()));
}

TEST(Volgen, ReplicateOptionsFromEveryClusterKey) {
  pb::VolumeSpec v = make_volume(3, 1, 3);
  auto& o = *v.mutable_options();
  o["cluster.quorum-count"] = "2";  // set, but quorum-type stays auto: still written
  o["cluster.eager-lock"] = "disable";
  o["cluster.post-op-delay-secs"] = "500ms";
  o["cluster.data-self-heal-algorithm"] = "FULL";
  o["cluster.self-heal-daemon"] = "off";  // heal daemon: not in the graph
  auto rsp = generate_client_graph(v);
  ASSERT_TRUE(rsp) << rsp.error();
  EXPECT_EQ(xl::render_volfile(rsp->graph()),
            client(0) + "\n" + client(1) + "\n" + client(2) +
                "\n"
                "volume webData-replicate-0\n"
                "    type cluster/replicate\n"
                "    option arbiter-count 1\n"
                "    option data-self-heal-algorithm full\n"
                "    option eager-lock off\n"
                "    option post-op-delay-secs 0.5\n"
                "    option quorum-count 2\n"
                "    option quorum-type auto\n"
                "    subvolumes webData-client-0 webData-client-1 webData-client-2\n"
                "end-volume\n");
  EXPECT_TRUE(xl::validate_graph(rsp->graph(), registry_with_stand_ins()));
}

TEST(Volgen, FixedQuorumWithoutACountMeansTheWholeSet) {
  pb::VolumeSpec v = make_volume(3, 0, 6);
  (*v.mutable_options())["cluster.quorum-type"] = "fixed";
  auto rsp = generate_client_graph(v);
  ASSERT_TRUE(rsp) << rsp.error();
  for (const auto& t : rsp->graph().translators()) {
    if (t.type() != "cluster/replicate") continue;
    EXPECT_EQ(t.options().at("quorum-count"), "3") << t.name();
    EXPECT_EQ(t.options().at("quorum-type"), "fixed") << t.name();
  }
  EXPECT_EQ(rsp->graph().translators(rsp->graph().translators_size() - 1).name(), "webData-dht");
}

TEST(Volgen, MountOptions) {
  struct Case {
    const char* name;
    std::map<std::string, std::string> set;
    std::map<std::string, std::string> want;
  };
  const Case cases[] = {
      {"defaults",
       {},
       {{"attribute-timeout", "1"},
        {"entry-timeout", "1"},
        {"negative-timeout", "0"},
        {"kernel-writeback-cache", "off"}}},
      {"longer md-cache, nl-cache on with its default timeout, write-behind",
       {{"performance.md-cache-timeout", "10"},
        {"performance.nl-cache", "on"},
        {"performance.write-behind", "yes"}},
       {{"attribute-timeout", "10"},
        {"entry-timeout", "10"},
        {"negative-timeout", "60"},
        {"kernel-writeback-cache", "on"}}},
      {"stat-prefetch off wins over the timeout; nl-cache timeout alone does nothing",
       {{"performance.stat-prefetch", "off"},
        {"performance.md-cache-timeout", "30"},
        {"performance.nl-cache-timeout", "5"}},
       {{"attribute-timeout", "0"},
        {"entry-timeout", "0"},
        {"negative-timeout", "0"},
        {"kernel-writeback-cache", "off"}}},
      {"fractions",
       {{"performance.md-cache-timeout", "250ms"},
        {"performance.nl-cache", "on"},
        {"performance.nl-cache-timeout", "1.5"}},
       {{"attribute-timeout", "0.25"},
        {"entry-timeout", "0.25"},
        {"negative-timeout", "1.5"},
        {"kernel-writeback-cache", "off"}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    pb::VolumeSpec v = make_volume(2, 0, 2);
    for (const auto& [k, value] : c.set) (*v.mutable_options())[k] = value;
    auto rsp = generate_client_graph(v);
    ASSERT_TRUE(rsp) << rsp.error();
    std::map<std::string, std::string> got(rsp->mount_options().begin(),
                                           rsp->mount_options().end());
    EXPECT_EQ(got, c.want);
    ASSERT_EQ(got.size(), kMountOptionKeys.size());
    for (auto key : kMountOptionKeys) EXPECT_TRUE(got.contains(std::string(key))) << key;
  }
}

TEST(Volgen, Refusals) {
  struct Case {
    const char* name;
    pb::VolumeSpec volume;
    const char* error;
  };
  pb::VolumeSpec half_started = make_volume(2, 0, 4);
  half_started.mutable_bricks(2)->set_port(0);
  pb::VolumeSpec broken_option = make_volume(2, 0, 2);
  (*broken_option.mutable_options())["network.ping-timeout"] = "0";
  pb::VolumeSpec count_over_set = make_volume(2, 0, 2);
  (*count_over_set.mutable_options())["cluster.quorum-count"] = "3";
  pb::VolumeSpec no_name = make_volume(1, 0, 1);
  no_name.clear_name();
  pb::VolumeSpec no_host = make_volume(1, 0, 1);
  no_host.mutable_bricks(0)->clear_host();

  const Case cases[] = {
      {"never started", make_volume(2, 0, 4, 0),
       "volume webData is not started: brick s0:/exports/b has no port"},
      {"one brick without a port", half_started,
       "volume webData is not started: brick s2:/exports/b has no port"},
      {"no bricks", make_volume(1, 0, 0), "volume webData has no bricks"},
      {"incomplete sets", make_volume(2, 0, 3),
       "volume webData: 3 bricks do not make whole replica sets of 2"},
      {"arbiter on replica 2", make_volume(2, 1, 2),
       "volume webData: an arbiter needs replica sets of 3 bricks (2 data bricks and the "
       "arbiter)"},
      {"bad stored option", broken_option,
       "volume webData: option network.ping-timeout: '0' is out of range: 1 to 1013 seconds"},
      {"quorum count above the set", count_over_set,
       "volume webData: option cluster.quorum-count: 3 is more than the 2 bricks of each "
       "replica set of volume webData"},
      {"no name", no_name, "the volume has no name"},
      {"no host", no_host, "volume webData has a brick without a host or path"},
  };
  for (const auto& c : cases) {
    auto rsp = generate_client_graph(c.volume);
    ASSERT_FALSE(rsp) << c.name;
    EXPECT_EQ(rsp.error(), c.error) << c.name;
  }
}

TEST(Volgen, VolumeTypeNames) {
  EXPECT_EQ(volume_type_name(make_volume(0, 0, 3)), "Distribute");
  EXPECT_EQ(volume_type_name(make_volume(1, 0, 1)), "Distribute");
  EXPECT_EQ(volume_type_name(make_volume(2, 0, 2)), "Replicate");
  EXPECT_EQ(volume_type_name(make_volume(3, 1, 3)), "Replicate");
  EXPECT_EQ(volume_type_name(make_volume(3, 1, 6)), "Distributed-Replicate");
  EXPECT_EQ(volume_type_name(make_volume(2, 0, 8)), "Distributed-Replicate");
}

}  // namespace
}  // namespace mortar::mgmtd
