#include "translators/volfile.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace mortar::xl {
namespace {

// A registry with test types: no network, no children limits beyond what each declares.
Registry test_registry() {
  Registry r;
  auto leaf = [](const std::string& name, const Options&,
                 const GraphContext&) -> Checked<std::unique_ptr<Translator>> {
    return std::make_unique<Translator>(name, "test/leaf");
  };
  auto pass = [](const std::string& name, const Options&,
                 const GraphContext&) -> Checked<std::unique_ptr<Translator>> {
    return std::make_unique<PassThrough>(name, "test/pass");
  };
  r.add({"test/leaf",
         "a leaf",
         {{"port", OptionKind::kInt, "", "a port", true, 1, 65535},
          {"timeout", OptionKind::kDuration, "3", "a timeout", false, 100, 60000}},
         0,
         0,
         leaf});
  r.add({"test/pass",
         "one child",
         {{"mode", OptionKind::kEnum, "a", "", false, 0, 0, {"a", "b"}}},
         1,
         1,
         pass});
  r.add({"test/fan", "two or more", {}, 2, SIZE_MAX, pass});
  return r;
}

constexpr const char* kGood = R"(# a replicated pair under a pass-through
volume c0
    type test/leaf
    option port 49152
end-volume

volume c1
    type test/leaf
    option port 49153
    option timeout 500ms
end-volume

volume fan
    type test/fan
    subvolumes c0 c1
end-volume

volume top
    type test/pass
    option mode b
    subvolumes fan
end-volume
)";

TEST(Volfile, ParsesAndValidates) {
  auto parsed = load_volfile(kGood, test_registry());
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& g = parsed->graph;
  ASSERT_EQ(g.translators_size(), 4);
  EXPECT_EQ(g.translators(0).name(), "c0");
  EXPECT_EQ(g.translators(0).options().at("port"), "49152");
  EXPECT_EQ(g.translators(2).subvolumes_size(), 2);
  EXPECT_EQ(g.translators(3).name(), "top");
  EXPECT_EQ(parsed->lines.volume.at("c1"), 7);
}

TEST(Volfile, RenderParsesBackToTheSameGraph) {
  auto parsed = load_volfile(kGood, test_registry());
  ASSERT_TRUE(parsed);
  std::string text = render_volfile(parsed->graph);
  auto again = parse_volfile(text);
  ASSERT_TRUE(again) << again.error();
  // Field by field: serialised maps have no fixed order.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again->graph, parsed->graph));
  EXPECT_NE(text.find("volume fan\n    type test/fan\n    subvolumes c0 c1\nend-volume\n"),
            std::string::npos)
      << text;
}

TEST(Volfile, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* error;  // must appear in the message
  } cases[] = {
      {"volume a\n  type test/nope\nend-volume\n",
       "line 1: translator 'a': unknown type 'test/nope'"},
      {"volume a\n  type test/leaf\n  option port 70000\nend-volume\n",
       "line 3: translator 'a': option port: 70000 is out of range"},
      {"volume a\n  type test/leaf\n  option port x\nend-volume\n", "line 3:"},
      {"volume a\n  type test/leaf\n  option port 1\n  option bogus 2\nend-volume\n",
       "line 4: translator 'a': unknown option 'bogus'"},
      {"volume a\n  type test/leaf\nend-volume\n", "option port is required"},
      {"volume p\n  type test/pass\n  subvolumes ghost\nend-volume\n",
       "line 3: translator 'p': subvolume 'ghost' is not defined"},
      {"volume p\n  type test/pass\nend-volume\n", "needs 1 subvolume(s), has 0"},
      {"volume a\n  type test/pass\n  subvolumes b\nend-volume\n"
       "volume b\n  type test/pass\n  subvolumes a\nend-volume\n",
       "cycle"},
      {"volume a\n  type test/pass\n  subvolumes a\nend-volume\n", "its own subvolume"},
      {"volume a\n  type test/leaf\n  option port 1\n", "line 1: volume 'a' has no end-volume"},
      {"type test/leaf\n", "line 1: 'type' outside a volume stanza"},
      {"volume a\n  tpye test/leaf\nend-volume\n", "line 2: unknown keyword 'tpye'"},
      {"volume a\nvolume b\n", "line 2: 'volume' inside volume 'a'"},
      {"volume a\n  type test/leaf\n  option port 1\nend-volume\n"
       "volume a\n  type test/leaf\n  option port 1\nend-volume\n",
       "line 5: translator 'a' is defined twice"},
      {"volume a\n  type test/leaf\n  option port 1\nend-volume\n"
       "volume b\n  type test/leaf\n  option port 1\nend-volume\n",
       "line 1: translator 'a' is not reachable from the top ('b')"},
      {"volume c0\n  type test/leaf\n  option port 1\nend-volume\n"
       "volume p\n  type test/pass\n  subvolumes c0\nend-volume\n"
       "volume q\n  type test/fan\n  subvolumes c0 p\nend-volume\n",
       "subvolume 'c0' is used by both 'p' and 'q'"},
      {"", "defines no volume"},
      {"volume a\n  type test/leaf\n  option port\nend-volume\n",
       "line 3: 'option' needs a key and a value"},
  };
  for (const auto& c : cases) {
    auto r = load_volfile(c.text, test_registry());
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().find(c.error), std::string::npos)
        << "got: " << r.error() << "\nwanted: " << c.error;
  }
}

TEST(Graph, BuildsChildrenBeforeParentsAndLinksThem) {
  auto parsed = load_volfile(kGood, test_registry());
  ASSERT_TRUE(parsed);
  auto g = Graph::build(parsed->graph, test_registry(), GraphContext{});
  ASSERT_TRUE(g) << g.error();
  Translator* top = (*g)->top();
  EXPECT_EQ(top->name(), "top");
  ASSERT_EQ(top->children().size(), 1u);
  Translator* fan = top->children()[0];
  EXPECT_EQ(fan->name(), "fan");
  ASSERT_EQ(fan->children().size(), 2u);
  EXPECT_EQ(fan->children()[1]->name(), "c1");
  EXPECT_EQ(fan->children()[1]->parent(), fan);
}

TEST(Graph, BuiltinRegistryKnowsProtocolClient) {
  auto parsed = load_volfile(
      "volume v-client-0\n  type protocol/client\n  option remote-host 127.0.0.2\n"
      "  option remote-port 49152\n  option remote-subvolume /srv/b0\n"
      "  option remote-volume v\n  option ping-timeout 2.5\nend-volume\n",
      Registry::builtin());
  ASSERT_TRUE(parsed) << parsed.error();
  auto bad = load_volfile("volume c\n  type protocol/client\n  option remote-host h\nend-volume\n",
                          Registry::builtin());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("is required"), std::string::npos) << bad.error();
}

}  // namespace
}  // namespace mortar::xl
