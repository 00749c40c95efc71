#include "translators/options.h"

#include <gtest/gtest.h>

namespace mortar::xl {
namespace {

using std::chrono::milliseconds;

TEST(Options, Durations) {
  EXPECT_EQ(*parse_duration("42"), milliseconds(42000));
  EXPECT_EQ(*parse_duration("2.5"), milliseconds(2500));
  EXPECT_EQ(*parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(*parse_duration("3s"), milliseconds(3000));
  EXPECT_EQ(*parse_duration("2m"), milliseconds(120000));
  for (const char* bad : {"", "x", "-1", "3 s", "1d", "1.2.3"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(Options, Sizes) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("128KB"), 128u * 1024);
  EXPECT_EQ(*parse_size("1MB"), 1u << 20);
  EXPECT_EQ(*parse_size("1mb"), 1u << 20);
  EXPECT_EQ(*parse_size("2GB"), 2ull << 30);
  EXPECT_EQ(*parse_size("1.5K"), 1536u);
  for (const char* bad : {"", "MB", "1XB", "-5", "1 MB"}) EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(Options, Bools) {
  for (const char* yes : {"on", "ON", "yes", "true", "enable", "1"}) EXPECT_TRUE(*parse_bool(yes));
  for (const char* no : {"off", "no", "false", "disable", "0"}) EXPECT_FALSE(*parse_bool(no));
  EXPECT_FALSE(parse_bool("maybe"));
}

TEST(Options, ValidateFillsDefaultsAndRefusesUnknown) {
  std::vector<OptionSpec> schema = {
      {"host", OptionKind::kString, "", "", true},
      {"port", OptionKind::kInt, "24007", "", false, 1, 65535},
      {"cache", OptionKind::kBool, "off"},
      {"policy", OptionKind::kEnum, "none", "", false, 0, 0, {"none", "size", "mtime"}},
  };
  auto o = Options::validate(schema, {{"host", "s1"}, {"cache", "on"}});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->str("host"), "s1");
  EXPECT_EQ(o->integer("port"), 24007);
  EXPECT_TRUE(o->flag("cache"));
  EXPECT_EQ(o->str("policy"), "none");

  auto missing = Options::validate(schema, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "option host is required");
  auto unknown = Options::validate(schema, {{"host", "s1"}, {"colour", "red"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), "unknown option 'colour'");
  auto range = Options::validate(schema, {{"host", "s1"}, {"port", "0"}});
  ASSERT_FALSE(range);
  EXPECT_EQ(range.error(), "option port: 0 is out of range [1, 65535]");
  auto choice = Options::validate(schema, {{"host", "s1"}, {"policy", "random"}});
  ASSERT_FALSE(choice);
  EXPECT_EQ(choice.error(), "option policy: 'random' is not one of none, size, mtime");
}

}  // namespace
}  // namespace mortar::xl
