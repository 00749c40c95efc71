#include "mgmtd/volume_options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "mgmtd/volgen.h"
#include "translators/graph.h"

namespace mortar::mgmtd {
namespace {

pb::VolumeSpec volume_of(uint32_t replica) {
  pb::VolumeSpec v;
  v.set_name("webData");
  v.set_replica_count(replica);
  return v;
}

TEST(VolumeOptions, RegistryIsSortedUniqueAndDescribed) {
  const auto& all = volume_options();
  ASSERT_FALSE(all.empty());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].key(), all[i].key());
  for (const auto& o : all) {
    EXPECT_FALSE(o.spec.description.empty()) << o.key();
    EXPECT_EQ(find_volume_option(o.key()), &o);
    if (o.target == OptionTarget::kCompat) {
      EXPECT_TRUE(o.spec.description.starts_with("No effect in mortar")) << o.key();
    }
    if (o.target == OptionTarget::kClientGraph) {
      EXPECT_FALSE(o.xlator.empty()) << o.key();
      EXPECT_FALSE(o.setting.empty()) << o.key();
    }
  }
  EXPECT_EQ(find_volume_option("network.ping"), nullptr);
  EXPECT_EQ(find_volume_option(""), nullptr);
}

TEST(VolumeOptions, RequiredKeysArePresentWhereTheBriefPutsThem) {
  struct Want {
    const char* key;
    OptionTarget target;
    const char* default_value;
    const char* where;
  };
  const Want wants[] = {
      {"auth.allow", OptionTarget::kBrick, "*", "brick daemon: --auth-allow"},
      {"auth.reject", OptionTarget::kBrick, "", "brick daemon: --auth-reject"},
      {"network.ping-timeout", OptionTarget::kClientGraph, "3",
       "client graph: protocol/client ping-timeout"},
      {"network.frame-timeout", OptionTarget::kClientGraph, "1800",
       "client graph: protocol/client call-timeout"},
      {"performance.stat-prefetch", OptionTarget::kMount, "on",
       "mount: attribute-timeout,entry-timeout"},
      {"performance.md-cache-timeout", OptionTarget::kMount, "1",
       "mount: attribute-timeout,entry-timeout"},
      {"performance.nl-cache", OptionTarget::kMount, "off", "mount: negative-timeout"},
      {"performance.nl-cache-timeout", OptionTarget::kMount, "60", "mount: negative-timeout"},
      {"performance.write-behind", OptionTarget::kMount, "off", "mount: kernel-writeback-cache"},
      {"performance.client-io-threads", OptionTarget::kCompat, "off", "none (compatibility)"},
      {"nfs.disable", OptionTarget::kCompat, "on", "none (compatibility)"},
      {"transport.address-family", OptionTarget::kCompat, "inet", "none (compatibility)"},
      {"cluster.quorum-type", OptionTarget::kClientGraph, "none",
       "client graph: cluster/replicate quorum-type"},
      {"cluster.quorum-count", OptionTarget::kClientGraph, "",
       "client graph: cluster/replicate quorum-count"},
      {"cluster.favorite-child-policy", OptionTarget::kClientGraph, "none",
       "client graph: cluster/replicate favorite-child-policy"},
      {"cluster.self-heal-daemon", OptionTarget::kHealDaemon, "on", "heal daemon"},
      {"cluster.heal-timeout", OptionTarget::kHealDaemon, "600", "heal daemon"},
      {"cluster.data-self-heal-algorithm", OptionTarget::kClientGraph, "diff",
       "client graph: cluster/replicate data-self-heal-algorithm"},
      {"cluster.shd-max-threads", OptionTarget::kHealDaemon, "4", "heal daemon"},
      {"cluster.eager-lock", OptionTarget::kClientGraph, "on",
       "client graph: cluster/replicate eager-lock"},
      {"cluster.post-op-delay-secs", OptionTarget::kClientGraph, "1",
       "client graph: cluster/replicate post-op-delay-secs"},
  };
  for (const auto& w : wants) {
    const VolumeOption* o = find_volume_option(w.key);
    ASSERT_NE(o, nullptr) << w.key;
    EXPECT_EQ(o->target, w.target) << w.key;
    EXPECT_EQ(o->spec.default_value, w.default_value) << w.key;
    EXPECT_EQ(describe_target(*o), w.where) << w.key;
  }
}

TEST(VolumeOptions, EveryDefaultValidatesToItself) {
  for (const auto& o : volume_options()) {
    if (o.spec.default_value.empty()) continue;  // "not set": auth.reject, cluster.quorum-count
    auto v = validate_volume_option(o.key(), o.spec.default_value);
    ASSERT_TRUE(v) << v.error();
    EXPECT_EQ(*v, o.spec.default_value) << o.key();
  }
}

// The registry and the translators it feeds must agree, or a valid `volume set` would produce
// a graph the client refuses.
TEST(VolumeOptions, ClientGraphOptionsMatchTheTranslatorSchemas) {
  const xl::Registry& registry = xl::Registry::builtin();
  int checked = 0;
  for (const auto& o : volume_options()) {
    if (o.target != OptionTarget::kClientGraph) continue;
    const xl::TranslatorType* type = registry.find(o.xlator);
    if (!type) continue;  // a translator not written yet
    auto spec = std::find_if(type->options.begin(), type->options.end(),
                             [&](const xl::OptionSpec& s) { return s.name == o.setting; });
    ASSERT_NE(spec, type->options.end()) << o.key() << " -> " << o.setting;
    EXPECT_EQ(spec->kind, o.spec.kind) << o.key();
    // An empty registry default is one that depends on the volume's shape (quorum-count):
    // mgmtd always writes it into the graph.
    if (!o.spec.default_value.empty()) {
      EXPECT_EQ(spec->default_value, o.spec.default_value) << o.key();
    }
    bool numeric = o.spec.kind == xl::OptionKind::kInt || o.spec.kind == xl::OptionKind::kSize ||
                   o.spec.kind == xl::OptionKind::kDuration;
    if (numeric) {
      EXPECT_GE(o.spec.min, spec->min) << o.key();
      EXPECT_LE(o.spec.max, spec->max) << o.key();
    }
    // Every value the registry can hand out must be one the translator takes: the default,
    // each enum value, and the ends of a numeric range.
    std::vector<std::string> values;
    if (!o.spec.default_value.empty()) values.push_back(o.spec.default_value);
    if (o.spec.kind == xl::OptionKind::kEnum) {
      EXPECT_EQ(spec->values, o.spec.values) << o.key();
      values.insert(values.end(), o.spec.values.begin(), o.spec.values.end());
    } else if (o.spec.kind == xl::OptionKind::kBool) {
      values.insert(values.end(), {"on", "off"});
    } else if (o.spec.kind == xl::OptionKind::kDuration) {
      values.push_back(std::to_string(o.spec.min / 1000));
      values.push_back(std::to_string(o.spec.max / 1000));
    } else if (o.spec.kind == xl::OptionKind::kInt) {
      values.push_back(std::to_string(o.spec.min));
      values.push_back(std::to_string(o.spec.max));
    }
    for (const auto& value : values) {
      auto normalised = validate_volume_option(o.key(), value);
      ASSERT_TRUE(normalised) << normalised.error();
      EXPECT_TRUE(xl::check_option(*spec, *normalised)) << o.key() << " " << *normalised;
    }
    ++checked;
  }
  // ping-timeout, frame-timeout and the cluster/replicate options.
  EXPECT_GE(checked, 6);
}

TEST(VolumeOptions, MountOptionsFeedOnlyTheDeclaredKeys) {
  std::set<std::string_view> keys(kMountOptionKeys.begin(), kMountOptionKeys.end());
  for (const auto& o : volume_options()) {
    if (o.target != OptionTarget::kMount) continue;
    size_t pos = 0;
    while (pos <= o.setting.size()) {
      size_t end = std::min(o.setting.find(',', pos), o.setting.size());
      EXPECT_TRUE(keys.contains(std::string_view(o.setting).substr(pos, end - pos))) << o.key();
      pos = end + 1;
    }
  }
}

struct Case {
  const char* key;
  const char* value;
  const char* want;  // normalised value, or the error when `ok` is false
  bool ok = true;
};

TEST(VolumeOptions, ValidatesAndNormalisesEveryKind) {
  const Case cases[] = {
      // kInt
      {"cluster.shd-max-threads", "8", "8"},
      {"cluster.shd-max-threads", "08", "8"},
      {"cluster.shd-max-threads", " 16 ", "16"},
      {"cluster.shd-max-threads", "0",
       "option cluster.shd-max-threads: '0' is out of range: 1 to 64", false},
      {"cluster.shd-max-threads", "65",
       "option cluster.shd-max-threads: '65' is out of range: 1 to 64", false},
      {"cluster.shd-max-threads", "four",
       "option cluster.shd-max-threads: 'four' is not an integer", false},
      {"cluster.quorum-count", "2", "2"},
      {"cluster.quorum-count", "4", "option cluster.quorum-count: '4' is out of range: 1 to 3",
       false},
      // kBool
      {"performance.nl-cache", "on", "on"},
      {"performance.nl-cache", "YES", "on"},
      {"performance.nl-cache", "enable", "on"},
      {"performance.nl-cache", "1", "on"},
      {"performance.nl-cache", "false", "off"},
      {"performance.nl-cache", "disable", "off"},
      {"performance.nl-cache", "maybe", "option performance.nl-cache: 'maybe' is not on/off",
       false},
      {"performance.nl-cache", "", "option performance.nl-cache: '' is not on/off", false},
      // kDuration: decimal seconds
      {"network.ping-timeout", "10", "10"},
      {"network.ping-timeout", "10s", "10"},
      {"network.ping-timeout", "2m", "120"},
      {"network.ping-timeout", "1.5", "1.5"},
      {"network.ping-timeout", "2500ms", "2.5"},
      {"network.ping-timeout", "1013", "1013"},
      {"network.ping-timeout", "0",
       "option network.ping-timeout: '0' is out of range: 1 to 1013 seconds", false},
      {"network.ping-timeout", "500ms",
       "option network.ping-timeout: '500ms' is out of range: 1 to 1013 seconds", false},
      {"network.ping-timeout", "42", "42"},
      {"network.ping-timeout", "1014",
       "option network.ping-timeout: '1014' is out of range: 1 to 1013 seconds", false},
      {"network.ping-timeout", "soon", "option network.ping-timeout: 'soon' is not a duration",
       false},
      {"network.ping-timeout", "3d",
       "option network.ping-timeout: '3d' has an unknown time unit (use ms, s, m or h)", false},
      {"network.frame-timeout", "30m", "1800"},
      {"performance.md-cache-timeout", "0", "0"},
      {"performance.md-cache-timeout", "600", "600"},
      {"performance.md-cache-timeout", "0.25", "0.25"},
      {"performance.md-cache-timeout", "601",
       "option performance.md-cache-timeout: '601' is out of range: 0 to 600 seconds", false},
      {"cluster.post-op-delay-secs", "0", "0"},
      {"performance.nl-cache-timeout", "1h", "3600"},
      // kEnum: case-insensitive, stored in lower case
      {"cluster.quorum-type", "auto", "auto"},
      {"cluster.quorum-type", "FIXED", "fixed"},
      {"cluster.quorum-type", "sometimes",
       "option cluster.quorum-type: 'sometimes' is not one of none, auto, fixed", false},
      {"cluster.favorite-child-policy", "majority", "majority"},
      {"cluster.favorite-child-policy", "newest",
       "option cluster.favorite-child-policy: 'newest' is not one of none, size, mtime, ctime, "
       "majority",
       false},
      {"cluster.data-self-heal-algorithm", "full", "full"},
      {"transport.address-family", "inet6", "inet6"},
      {"transport.address-family", "unix",
       "option transport.address-family: 'unix' is not one of inet, inet6", false},
      // kSize: the largest exact unit
      {"performance.cache-size", "256MB", "256MB"},
      {"performance.cache-size", "268435456", "256MB"},
      {"performance.cache-size", "1.5K", "1536"},
      {"performance.cache-size", "1024mb", "1GB"},
      {"performance.cache-size", "lots", "option performance.cache-size: 'lots' is not a size",
       false},
      // kString with address-list syntax
      {"auth.allow", "192.168.50.*", "192.168.50.*"},
      {"auth.allow", "*", "*"},
      {"auth.allow", " 10.0.0.1 , 10.0.0.* ", "10.0.0.1,10.0.0.*"},
      {"auth.allow", "10.0.[1-3].?", "10.0.[1-3].?"},
      {"auth.allow", "FE80::*,::1", "fe80::*,::1"},
      {"auth.reject", "192.168.50.13", "192.168.50.13"},
      {"auth.allow", "web1",
       "option auth.allow: 'web1' is not an address pattern: give IP addresses, with * ? [ ] as "
       "wildcards (host names are not matched)",
       false},
      {"auth.allow", "10.0.0.0/8",
       "option auth.allow: '10.0.0.0/8' is not an address pattern: give IP addresses, with * ? "
       "[ ] as wildcards (host names are not matched)",
       false},
      {"auth.allow", "10.0.0.1 10.0.0.2",
       "option auth.allow: '10.0.0.1 10.0.0.2' is not an address pattern: give IP addresses, "
       "with * ? [ ] as wildcards (host names are not matched)",
       false},
      {"auth.allow", "", "option auth.allow: needs at least one address", false},
      {"auth.reject", "10.0.0.1,,10.0.0.2",
       "option auth.reject: '10.0.0.1,,10.0.0.2' has an empty entry", false},
      {"auth.reject", "10.0.0.1,", "option auth.reject: '10.0.0.1,' has an empty entry", false},
  };
  for (const Case& c : cases) {
    auto v = validate_volume_option(c.key, c.value);
    if (c.ok) {
      ASSERT_TRUE(v) << c.key << "=" << c.value << ": " << v.error();
      EXPECT_EQ(*v, c.want) << c.key << "=" << c.value;
    } else {
      ASSERT_FALSE(v) << c.key << "=" << c.value << " gave " << *v;
      EXPECT_EQ(v.error(), c.want) << c.key << "=" << c.value;
    }
  }
}

TEST(VolumeOptions, UnknownKeysSuggestTheClosest) {
  struct Unknown {
    const char* key;
    const char* suggestion;  // "" for none
  };
  const Unknown cases[] = {
      {"network.ping-timout", "network.ping-timeout"},
      {"network.pingtimeout", "network.ping-timeout"},
      {"ping-timeout", "network.ping-timeout"},  // without its prefix, as GlusterFS allows
      {"quorum-type", "cluster.quorum-type"},
      {"Auth.Allow", "auth.allow"},
      {"auth.alow", "auth.allow"},
      {"performance.nl_cache", "performance.nl-cache"},
      {"cluster.favourite-child-policy", "cluster.favorite-child-policy"},
      {"performance.md-cache-timout", "performance.md-cache-timeout"},
      {"features.shard", ""},
      {"storage.owner-uid", ""},
      {"x", ""},
      {"", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(closest_volume_option(c.key), c.suggestion) << c.key;
    auto v = validate_volume_option(c.key, "on");
    ASSERT_FALSE(v) << c.key;
    std::string want = "option '" + std::string(c.key) + "' does not exist";
    if (*c.suggestion) want += "; did you mean " + std::string(c.suggestion) + "?";
    EXPECT_EQ(v.error(), want);
  }
}

TEST(VolumeOptions, DefaultsThatDependOnTheVolumeShape) {
  const VolumeOption& type = *find_volume_option("cluster.quorum-type");
  const VolumeOption& count = *find_volume_option("cluster.quorum-count");
  EXPECT_EQ(option_default(type, volume_of(0)), "none");
  EXPECT_EQ(option_default(type, volume_of(1)), "none");
  EXPECT_EQ(option_default(type, volume_of(2)), "none");
  EXPECT_EQ(option_default(type, volume_of(3)), "auto");  // replica 3, and 2 + arbiter
  EXPECT_EQ(option_default(count, volume_of(2)), "2");
  EXPECT_EQ(option_default(count, volume_of(3)), "3");
  EXPECT_EQ(option_default(*find_volume_option("network.ping-timeout"), volume_of(3)), "3");
}

TEST(VolumeOptions, ShapeChecksWhenSettingOnAVolume) {
  auto ok = validate_volume_option(volume_of(3), "cluster.quorum-count", "3");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(*ok, "3");
  auto over = validate_volume_option(volume_of(2), "cluster.quorum-count", "3");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error(),
            "option cluster.quorum-count: 3 is more than the 2 bricks of each replica set of "
            "volume webData");
  auto single = validate_volume_option(volume_of(1), "cluster.quorum-count", "2");
  ASSERT_FALSE(single);
  EXPECT_EQ(single.error(),
            "option cluster.quorum-count: 2 is more than the 1 brick of each replica set of "
            "volume webData");
  auto bad = validate_volume_option(volume_of(2), "network.ping-timeout", "0");
  EXPECT_FALSE(bad);
}

TEST(VolumeOptions, EffectiveValuesAndVolumeGet) {
  pb::VolumeSpec v = volume_of(3);
  (*v.mutable_options())["network.ping-timeout"] = "10s";
  (*v.mutable_options())["cluster.quorum-type"] = "FIXED";

  EXPECT_EQ(*effective_option(v, "network.ping-timeout"), "10");
  EXPECT_EQ(*effective_option(v, "cluster.quorum-type"), "fixed");
  EXPECT_EQ(*effective_option(v, "cluster.quorum-count"), "3");
  EXPECT_EQ(*effective_option(v, "performance.stat-prefetch"), "on");
  auto unknown = effective_option(v, "network.ping-timout");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(),
            "option 'network.ping-timout' does not exist; did you mean network.ping-timeout?");

  auto one = volume_get(v, "network.ping-timeout");
  ASSERT_TRUE(one) << one.error();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].key(), "network.ping-timeout");
  EXPECT_EQ((*one)[0].value(), "10");
  EXPECT_EQ((*one)[0].default_value(), "3");
  EXPECT_FALSE((*one)[0].description().empty());

  auto all = volume_get(v, "all");
  ASSERT_TRUE(all) << all.error();
  ASSERT_EQ(all->size(), volume_options().size());
  for (const auto& o : *all) {
    if (o.key() == "cluster.quorum-type") {
      EXPECT_EQ(o.value(), "fixed");
      EXPECT_EQ(o.default_value(), "auto");
    }
    if (o.key() == "nfs.disable") {
      EXPECT_EQ(o.value(), "on");
    }
  }
  EXPECT_FALSE(volume_get(v, "nfs.disabled"));

  // A stored value that no longer validates: an error for volgen, shown as stored by get.
  (*v.mutable_options())["cluster.quorum-count"] = "7";
  auto broken = effective_option(v, "cluster.quorum-count");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error(),
            "volume webData: option cluster.quorum-count: '7' is out of range: 1 to 3");
  auto shown = volume_get(v, "cluster.quorum-count");
  ASSERT_TRUE(shown);
  EXPECT_EQ((*shown)[0].value(), "7");
}

TEST(VolumeOptions, SetHelpListsEveryOption) {
  auto help = volume_set_help();
  ASSERT_EQ(help.size(), volume_options().size());
  for (size_t i = 0; i < help.size(); ++i) {
    EXPECT_EQ(help[i].key(), volume_options()[i].key());
    EXPECT_EQ(help[i].default_value(), volume_options()[i].spec.default_value);
    EXPECT_EQ(help[i].description(), volume_options()[i].spec.description);
    EXPECT_TRUE(help[i].value().empty());
  }
}

}  // namespace
}  // namespace mortar::mgmtd
