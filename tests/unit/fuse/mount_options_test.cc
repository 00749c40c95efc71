#include "fuse-client/mount_options.h"

#include <gtest/gtest.h>

namespace mortar::fuse {
namespace {

TEST(MountOptions, GlusterAndMortarSpellings) {
  MountOptions o;
  std::vector<std::string> warnings;
  ASSERT_TRUE(apply_mount_options(
      "volfile=/etc/v.vol,attribute-timeout=2,entry_timeout=500ms,negative-timeout=1,"
      "kernel-writeback-cache=yes,max_write=128KB,direct-io-mode=enable,log-level=WARNING,"
      "backup-volfile-servers=s2:s3,ro,noatime,nodev,acl,selinux,capability",
      o, warnings));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(o.volfile, "/etc/v.vol");
  EXPECT_DOUBLE_EQ(o.attr_timeout, 2.0);
  EXPECT_DOUBLE_EQ(o.entry_timeout, 0.5);
  EXPECT_DOUBLE_EQ(o.negative_timeout, 1.0);
  EXPECT_TRUE(o.writeback_cache);
  EXPECT_EQ(o.max_write, 128u * 1024);
  EXPECT_TRUE(o.direct_io);
  EXPECT_EQ(o.log_level, "warn");
  EXPECT_EQ(o.volfile_servers, (std::vector<std::string>{"s2", "s3"}));
  EXPECT_TRUE(o.read_only);
  EXPECT_TRUE(o.acl);
  EXPECT_TRUE(o.selinux);
  EXPECT_TRUE(o.capability);
  EXPECT_EQ(o.kernel_options, (std::vector<std::string>{"noatime", "nodev"}));
}

TEST(MountOptions, AclsLabelsAndCapabilitiesAreOffUnlessAskedFor) {
  MountOptions o;
  std::vector<std::string> warnings;
  ASSERT_TRUE(apply_mount_options("ro,noatime", o, warnings));
  EXPECT_FALSE(o.acl);
  EXPECT_FALSE(o.selinux);
  EXPECT_FALSE(o.capability);
}

TEST(MountOptions, SystemOptionsAreIgnoredAndUnknownOnesWarn) {
  MountOptions o;
  std::vector<std::string> warnings;
  ASSERT_TRUE(apply_mount_options(
      "defaults,_netdev,auto,noauto,nofail,x-systemd.requires=mortar-mgmtd.service,"
      "x-systemd.automount,transport=tcp,frobnicate,colour=blue",
      o, warnings));
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0], "unknown mount option 'frobnicate' ignored");
  EXPECT_EQ(warnings[1], "unknown mount option 'colour=blue' ignored");
}

TEST(MountOptions, BadValuesOfKnownOptionsAreErrors) {
  for (const char* bad :
       {"max_write=12", "max_write=2MB", "attribute-timeout=soon", "direct-io-mode=maybe",
        "log-level=loud", "volfile=", "kernel-writeback-cache=perhaps"}) {
    MountOptions o;
    std::vector<std::string> warnings;
    EXPECT_FALSE(apply_mount_options(bad, o, warnings)) << bad;
  }
}

}  // namespace
}  // namespace mortar::fuse
