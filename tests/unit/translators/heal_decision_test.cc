#include "translators/afr/heal_decision.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace mortar::xl::afr {
namespace {

using Verdict = HealPlan::Verdict;
constexpr Kind kData = Kind::kData;
constexpr Kind kMeta = Kind::kMetadata;
constexpr Kind kEntry = Kind::kEntry;

// A replica for the tables: up, holding a 100-byte regular file, with no marks. Each modifier
// returns a changed copy, so a row reads `Up().Blames(1).Size(200)`.
struct R : ReplicaView {
  R() {
    present = true;
    exists = true;
    type = S_IFREG;
    size = 100;
    mtime_sec = ctime_sec = 1000;
    mode = 0644;
  }
  R Blames(int slot, Kind kind = kData, int64_t count = 1) const {
    R r = *this;
    const int index = slot * 3 + static_cast<int>(kind);
    while (r.changelog.pending_size() <= index) r.changelog.add_pending(0);
    r.changelog.set_pending(index, r.changelog.pending(index) + count);
    return r;
  }
  R Dirty(Kind kind = kData, int64_t count = 1) const {
    R r = *this;
    while (r.changelog.dirty_size() < 3) r.changelog.add_dirty(0);
    r.changelog.set_dirty(static_cast<int>(kind), count);
    return r;
  }
  R Size(uint64_t v) const { return With(&R::size, v); }
  R Mtime(int64_t sec, uint32_t nsec = 0) const {
    R r = With(&R::mtime_sec, sec);
    r.mtime_nsec = nsec;
    return r;
  }
  R Ctime(int64_t sec) const { return With(&R::ctime_sec, sec); }
  R Mode(uint32_t v) const { return With(&R::mode, v); }
  R Uid(uint32_t v) const { return With(&R::uid, v); }
  R Content(std::string v) const { return With(&R::content_id, std::move(v)); }
  R Dir() const { return With(&R::type, uint32_t{S_IFDIR}); }
  R Arbiter() const { return With(&R::arbiter, true).Size(0); }
  R Missing() const {
    R r = With(&R::exists, false);
    r.changelog.Clear();
    return r;
  }
  R Down() const { return With(&R::present, false); }

  template <class M, class V>
  R With(M ReplicaView::*member, V value) const {
    R r = *this;
    r.*member = std::move(value);
    return r;
  }
};
R Up() { return R(); }

// The replicas of one row, slot 0 first. (A call rather than a braced list keeps each row on
// one or two lines under clang-format.)
template <class... Rs>
std::vector<ReplicaView> Set(const Rs&... replicas) {
  return {replicas...};
}

// A plan as a row writes it: "heal 0 > 1" (sources > sinks), "policy 0 2 > 1" (a heal the
// policy or the CLI chose), "heal 0 1 >" (no sinks), "split-brain", "in-sync", "no-source".
std::string Describe(const HealPlan& plan) {
  std::string out;
  switch (plan.verdict) {
    case Verdict::kInSync:
      out = "in-sync";
      break;
    case Verdict::kHeal:
      out = plan.resolved_by_policy ? "policy" : "heal";
      break;
    case Verdict::kSplitBrain:
      out = "split-brain";
      break;
    case Verdict::kNoSource:
      out = "no-source";
      break;
  }
  if (plan.verdict == Verdict::kHeal || !plan.sources.empty() || !plan.sinks.empty()) {
    for (int s : plan.sources) out += " " + std::to_string(s);
    out += " >";
    for (int s : plan.sinks) out += " " + std::to_string(s);
  }
  if (plan.verdict != Verdict::kHeal && plan.resolved_by_policy) out += " (by policy?)";
  return out;
}

struct DecideCase {
  std::string name;
  std::vector<ReplicaView> replicas;
  Kind kind;
  std::string want;         // Describe() of the expected plan
  std::string reason = "";  // a substring of the expected reason
  Policy policy = Policy::kNone;
};

void Check(const std::vector<DecideCase>& cases) {
  for (const DecideCase& c : cases) {
    const HealPlan plan = decide(c.replicas, c.kind, c.policy);
    SCOPED_TRACE(c.name + " (reason: " + plan.reason + ")");
    EXPECT_EQ(Describe(plan), c.want);
    EXPECT_NE(plan.reason.find(c.reason), std::string::npos) << "want: " << c.reason;
    EXPECT_FALSE(plan.reason.empty());
  }
}

TEST(HealDecision, TwoReplicas) {
  Check({
      {"clean", Set(Up(), Up()), kData, "in-sync"},
      {"0 blames 1", Set(Up().Blames(1), Up()), kData, "heal 0 > 1", "replica 1 is blamed"},
      {"1 blames 0", Set(Up(), Up().Blames(0, kData, 7)), kData, "heal 1 > 0"},
      {"a negative counter blames too", Set(Up().Blames(1, kData, -1), Up()), kData, "heal 0 > 1"},
      {"mutual data blame", Set(Up().Blames(1), Up().Blames(0)), kData, "split-brain",
       "each replica blames the other"},
      {"mutual metadata blame", Set(Up().Blames(1, kMeta), Up().Blames(0, kMeta)), kMeta,
       "split-brain", "each replica blames the other"},
      {"mutual entry blame merges names",
       Set(Up().Dir().Blames(1, kEntry), Up().Dir().Blames(0, kEntry)), kEntry, "heal 0 1 >",
       "merging names"},
      {"marks of another kind are ignored", Set(Up().Blames(1, kMeta), Up()), kData, "in-sync"},
      {"the other kind sees them", Set(Up().Blames(1, kMeta), Up()), kMeta, "heal 0 > 1"},
      {"self-accusation blames nobody", Set(Up().Blames(0), Up()), kData, "heal 0 1 >",
       "accuses itself"},
      {"self-accusation beside real blame", Set(Up().Blames(0).Blames(1), Up()), kData,
       "heal 0 > 1"},
      {"blame of a slot beyond the set", Set(Up().Blames(5), Up()), kData, "no-source",
       "not reachable"},
      // One replica can be healed neither from nor to.
      {"sink down", Set(Up().Blames(1), Up().Down()), kData, "no-source",
       "only one replica is reachable"},
      {"source down, its marks unseen", Set(Up(), Up().Blames(0).Down()), kData, "in-sync",
       "only one replica"},
      {"one up, dirty", Set(Up().Dirty(), Up().Down()), kData, "no-source"},
      {"none up", Set(Up().Down(), Up().Down()), kData, "no-source", "no replica is reachable"},
      // Dirty marks only: a client died mid-transaction.
      {"dirty, replicas agree", Set(Up().Dirty(), Up().Dirty()), kData, "heal 0 1 >",
       "interrupted transaction; replicas agree"},
      {"dirty on one, it is bigger", Set(Up().Dirty().Size(200), Up()), kData, "heal 0 > 1",
       "interrupted transaction; replicas differ"},
      {"dirty, bigger beats newer", Set(Up().Dirty().Mtime(900), Up().Size(50)), kData,
       "heal 0 > 1"},
      {"dirty, same size, later mtime wins", Set(Up().Dirty(), Up().Mtime(1001)), kData,
       "heal 1 > 0"},
      {"dirty, mtime nanoseconds decide", Set(Up().Dirty().Mtime(1000, 5), Up().Mtime(1000, 4)),
       kData, "heal 0 > 1"},
      {"dirty, only content differs: lowest slot",
       Set(Up().Content("a"), Up().Dirty().Content("b")), kData, "heal 0 > 1"},
      {"dirty, unknown content matches", Set(Up().Content("a"), Up().Dirty()), kData, "heal 0 1 >"},
      {"dirty metadata, latest ctime wins", Set(Up().Dirty(kMeta), Up().Mode(0600).Ctime(1002)),
       kMeta, "heal 1 > 0"},
      {"dirty metadata, ctime tie: lowest slot", Set(Up().Dirty(kMeta).Uid(5), Up()), kMeta,
       "heal 0 > 1"},
      {"dirty metadata ignores data and times", Set(Up().Dirty(kMeta).Size(5).Mtime(3), Up()),
       kMeta, "heal 0 1 >", "agree"},
      {"dirty metadata, xattrs differ", Set(Up().Dirty(kMeta).Content("x=1"), Up().Content("x=2")),
       kMeta, "heal 0 > 1"},
      {"dirty entry, names differ: merge",
       Set(Up().Dir().Dirty(kEntry).Content("a"), Up().Dir().Content("b")), kEntry, "heal 0 1 >"},
      {"dirty of another kind is ignored", Set(Up().Dirty(kMeta), Up()), kData, "in-sync"},
      // Nothing marked.
      {"differ without blame", Set(Up().Size(200), Up()), kData, "split-brain",
       "replicas differ and none is blamed"},
      {"content differs without blame", Set(Up().Content("a"), Up().Content("b")), kData,
       "split-brain"},
      {"brick clocks differ: still in sync", Set(Up().Mtime(1000, 1), Up().Mtime(1000, 9).Ctime(7)),
       kData, "in-sync"},
      {"owner differs without blame", Set(Up().Uid(1), Up()), kMeta, "split-brain"},
      {"types differ without blame", Set(Up(), Up().Dir()), kMeta, "split-brain"},
      {"names differ without blame: merge", Set(Up().Dir().Content("a"), Up().Dir().Content("b")),
       kEntry, "heal 0 1 >", "merging names"},
      {"data differences do not matter to metadata", Set(Up().Size(200), Up()), kMeta, "in-sync"},
      // The inode missing on a replica.
      {"missing, unmarked", Set(Up(), Up().Missing()), kData, "heal 0 > 1", "missing"},
      {"missing and blamed", Set(Up().Blames(1, kMeta), Up().Missing()), kMeta, "heal 0 > 1"},
      {"missing everywhere reachable", Set(Up().Missing(), Up().Missing()), kData, "no-source"},
      {"a missing replica's stale changelog accuses nobody",
       Set(Up(), Up().Blames(0).With(&R::exists, false)), kData, "heal 0 > 1"},
  });
}

TEST(HealDecision, ThreeReplicas) {
  Check({
      {"two blame the third", Set(Up().Blames(2), Up().Blames(2), Up()), kData, "heal 0 1 > 2"},
      {"one blames two", Set(Up().Blames(1).Blames(2), Up(), Up()), kData, "heal 0 > 1 2",
       "replicas 1, 2 are blamed"},
      {"the blamed one is down", Set(Up().Blames(2), Up().Blames(2), Up().Down()), kData,
       "no-source", "blamed replicas are not reachable"},
      {"the blamed one is down, dirty elsewhere", Set(Up().Blames(2), Up().Dirty(), Up().Down()),
       kData, "heal 0 1 >", "interrupted"},
      {"a down replica's accusations do not count", Set(Up(), Up(), Up().Blames(0).Down()), kData,
       "in-sync"},
      {"a down replica is never a sink", Set(Up().Blames(1).Blames(2), Up(), Up().Down()), kData,
       "heal 0 > 1"},
      {"two blame each other, the third is clean", Set(Up().Blames(1), Up().Blames(0), Up()), kData,
       "heal 2 > 0 1"},
      {"ring of blame", Set(Up().Blames(1), Up().Blames(2), Up().Blames(0)), kData, "split-brain",
       "every replica is blamed"},
      {"mutual blame of the two up", Set(Up().Blames(1), Up().Blames(0), Up().Down()), kData,
       "split-brain", "each replica blames the other"},
      {"unblamed copies differ: the bigger heals",
       Set(Up().Blames(2).Size(50), Up().Blames(2).Dirty(), Up()), kData, "heal 1 > 0 2",
       "unblamed copies differ"},
      {"unblamed copies differ only in mtime", Set(Up().Blames(2).Mtime(5), Up().Blames(2), Up()),
       kData, "heal 0 1 > 2"},
      {"missing on one, another blamed", Set(Up().Blames(1), Up(), Up().Missing()), kData,
       "heal 0 > 1 2"},
  });
}

// Slot 2 is the arbiter: names, metadata and changelogs, no data.
TEST(HealDecision, Arbiter) {
  const R arb = Up().Arbiter();
  Check({
      {"clean; the arbiter's size does not count", Set(Up(), Up(), arb), kData, "in-sync"},
      {"a data brick and the arbiter blame the other", Set(Up().Blames(1), Up(), arb.Blames(1)),
       kData, "heal 0 > 1"},
      {"the arbiter alone blames", Set(Up(), Up(), arb.Blames(0)), kData, "heal 1 > 0"},
      {"only the arbiter is unblamed", Set(Up().Blames(1), Up().Blames(0), arb), kData, "no-source",
       "only the arbiter is unblamed"},
      {"the arbiter is a metadata source", Set(Up().Blames(1, kMeta), Up().Blames(0, kMeta), arb),
       kMeta, "heal 2 > 0 1"},
      {"the arbiter is an entry source",
       Set(Up().Dir().Blames(1, kEntry), Up().Dir().Blames(0, kEntry), arb.Dir()), kEntry,
       "heal 2 > 0 1"},
      {"a blamed arbiter is a data sink, to clear its marks", Set(Up().Blames(2), Up(), arb), kData,
       "heal 0 1 > 2"},
      {"dirty on the arbiter only", Set(Up(), Up(), arb.Dirty()), kData, "heal 0 1 >", "agree"},
      {"every data brick blamed, the arbiter too",
       Set(Up().Blames(1).Blames(2), Up().Blames(0), arb), kData, "split-brain",
       "each replica blames the other"},
      {"only the arbiter holds the inode", Set(Up().Missing(), Up().Missing(), arb), kData,
       "no-source"},
      {"arbiter missing: not a data sink", Set(Up(), Up(), arb.Missing()), kData, "in-sync"},
      {"arbiter missing: a metadata sink", Set(Up(), Up(), arb.Missing()), kMeta, "heal 0 1 > 2"},
      {"a data brick down, the other blamed by the arbiter", Set(Up().Down(), Up(), arb.Blames(1)),
       kData, "no-source", "only the arbiter is unblamed"},
  });
}

// Two replicas blaming each other (data unless told), differing as the row says.
std::vector<ReplicaView> Pair(R a, R b, Kind kind = kData) {
  return {a.Blames(1, kind), b.Blames(0, kind)};
}
// Three replicas, each blamed by the next.
std::vector<ReplicaView> Ring(R a, R b, R c) { return {a.Blames(1), b.Blames(2), c.Blames(0)}; }

TEST(HealDecision, FavoriteChildPolicy) {
  using enum Policy;
  Check({
      {"size", Pair(Up().Size(200), Up()), kData, "policy 0 > 1",
       "each replica blames the other; resolved by favorite-child-policy size", kSize},
      {"size, the second", Pair(Up(), Up().Size(101)), kData, "policy 1 > 0", "", kSize},
      {"size tie", Pair(Up().Mtime(5), Up()), kData, "split-brain", "cannot choose", kSize},
      {"size of metadata means mtime", Pair(Up().Mtime(1), Up().Size(9), kMeta), kMeta,
       "policy 1 > 0", "", kSize},
      {"mtime", Pair(Up(), Up().Mtime(1001)), kData, "policy 1 > 0", "", kMtime},
      {"mtime nanoseconds", Pair(Up().Mtime(1000, 2), Up().Mtime(1000, 1)), kData, "policy 0 > 1",
       "", kMtime},
      {"mtime tie", Pair(Up().Size(1), Up()), kData, "split-brain", "", kMtime},
      {"ctime", Pair(Up().Ctime(1005), Up().Mtime(2000)), kData, "policy 0 > 1", "", kCtime},
      {"ctime tie", Pair(Up(), Up(), kMeta), kMeta, "split-brain", "", kCtime},
      {"none", Pair(Up().Size(200), Up()), kData, "split-brain", "", kNone},
      {"majority by content", Ring(Up().Content("a"), Up().Content("b"), Up().Content("a")), kData,
       "policy 0 2 > 1", "", kMajority},
      {"majority by size and mtime", Ring(Up().Size(7), Up(), Up()), kData, "policy 1 2 > 0", "",
       kMajority},
      {"majority: equal size, other mtimes", Ring(Up().Mtime(3), Up(), Up().Mtime(4)), kData,
       "split-brain", "", kMajority},
      {"majority: digests known on some only", Ring(Up().Content("a"), Up(), Up().Content("b")),
       kData, "policy 0 1 > 2", "", kMajority},
      {"no majority", Ring(Up().Size(1), Up().Size(2), Up().Size(3)), kData, "split-brain", "",
       kMajority},
      {"no majority of two", Pair(Up().Size(1), Up()), kData, "split-brain", "", kMajority},
      {"majority of metadata by owner and mode",
       Set(Up().Blames(1, kMeta).Mode(0600), Up().Blames(2, kMeta).Mtime(1),
           Up().Blames(0, kMeta).Mtime(2)),
       kMeta, "policy 1 2 > 0", "", kMajority},
      {"a replica is down: no policy", Set(Up().Blames(1).Size(200), Up().Blames(0), Up().Down()),
       kData, "split-brain", "needs every replica", kSize},
      {"differ without blame, resolved", Set(Up(), Up().Size(300)), kData, "policy 1 > 0",
       "replicas differ and none is blamed", kSize},
      {"only the arbiter unblamed, resolved",
       Set(Up().Blames(1).Mtime(2000), Up().Blames(0), Up().Arbiter()), kData, "policy 0 > 1",
       "only the arbiter is unblamed", kMtime},
      {"directories merge whatever the policy", Pair(Up().Dir().Mtime(5), Up().Dir(), kEntry),
       kEntry, "heal 0 1 >", "", kMtime},
      {"a policy does not override blame", Set(Up().Blames(1), Up().Size(500)), kData, "heal 0 > 1",
       "", kSize},
  });
}

TEST(HealDecision, ParsePolicy) {
  EXPECT_EQ(*parse_policy("none"), Policy::kNone);
  EXPECT_EQ(*parse_policy("size"), Policy::kSize);
  EXPECT_EQ(*parse_policy("mtime"), Policy::kMtime);
  EXPECT_EQ(*parse_policy("ctime"), Policy::kCtime);
  EXPECT_EQ(*parse_policy("majority"), Policy::kMajority);
  for (const char* bad : {"", "Size", "bigger-file", "latest"}) EXPECT_FALSE(parse_policy(bad));
}

struct ResolveCase {
  std::string name;
  std::vector<ReplicaView> replicas;
  Kind kind;
  Choice choice;
  int brick;
  std::string want;  // Describe() of the plan, or "error: <substring of the message>"
};

TEST(HealDecision, ResolveSplitBrain) {
  using enum Choice;
  const auto split = Set(Up().Blames(1).Size(200), Up().Blames(0).Mtime(2000));
  const auto meta = Set(Up().Blames(1, kMeta), Up().Blames(0, kMeta).Mode(0));
  const auto dirs = Set(Up().Dir().Blames(1, kEntry), Up().Dir().Blames(0, kEntry));
  const auto arbitered = Set(Up().Blames(1), Up().Blames(0), Up().Arbiter());
  const std::vector<ResolveCase> cases = {
      {"bigger-file", split, kData, kBiggerFile, -1, "policy 0 > 1"},
      {"bigger-file tie", Pair(Up(), Up()), kData, kBiggerFile, -1, "error: same size"},
      {"bigger-file ignores the arbiter", arbitered, kData, kBiggerFile, -1, "error: same size"},
      {"bigger-file on a directory", dirs, kEntry, kBiggerFile, -1,
       "error: 'bigger-file' not a valid option for directories."},
      {"bigger-file on a directory's metadata", Set(Up().Dir(), Up().Dir().Size(9)), kMeta,
       kBiggerFile, -1, "error: 'bigger-file' not a valid option for directories."},
      {"bigger-file on metadata", meta, kMeta, kBiggerFile, -1, "error: source-brick"},
      {"latest-mtime", split, kData, kLatestMtime, -1, "policy 1 > 0"},
      {"latest-mtime tie", Pair(Up().Size(5), Up()), kData, kLatestMtime, -1, "error: same mtime"},
      {"latest-mtime on metadata", meta, kMeta, kLatestMtime, -1, "error: source-brick"},
      {"source-brick", split, kData, kSourceBrick, 1, "policy 1 > 0"},
      {"source-brick for metadata", meta, kMeta, kSourceBrick, 0, "policy 0 > 1"},
      {"source-brick out of range", split, kData, kSourceBrick, 2, "error: Invalid brick"},
      {"source-brick negative", split, kData, kSourceBrick, -1, "error: Invalid brick"},
      {"source-brick without the file", Set(Up(), Up().Missing()), kData, kSourceBrick, 1,
       "error: does not exist"},
      {"source-brick: an arbiter has no data", arbitered, kData, kSourceBrick, 2, "error: arbiter"},
      {"source-brick: arbiter metadata is fine", arbitered, kMeta, kSourceBrick, 2,
       "policy 2 > 0 1"},
      {"source-brick: the arbiter is a data sink only when blamed", arbitered, kData, kSourceBrick,
       0, "policy 0 > 1"},
      {"source-brick on a directory merges", dirs, kEntry, kSourceBrick, 1, "policy 0 1 >"},
      {"latest-mtime on a directory merges", dirs, kEntry, kLatestMtime, -1, "policy 0 1 >"},
      {"not in split-brain: still allowed", Set(Up().Blames(1), Up()), kData, kSourceBrick, 1,
       "policy 1 > 0"},
      {"a replica down", Set(Up().Blames(1).Size(9), Up().Blames(0), Up().Down()), kData,
       kBiggerFile, -1, "error: Failed to obtain replies from all bricks"},
      {"a set of one", Set(Up()), kData, kSourceBrick, 0, "error: Cannot resolve"},
  };
  for (const ResolveCase& c : cases) {
    SCOPED_TRACE(c.name);
    Checked<HealPlan> plan = resolve_split_brain(c.replicas, c.kind, c.choice, c.brick);
    if (c.want.starts_with("error: ")) {
      ASSERT_FALSE(plan) << Describe(*plan);
      EXPECT_NE(plan.error().find(c.want.substr(7)), std::string::npos) << plan.error();
    } else {
      ASSERT_TRUE(plan) << plan.error();
      EXPECT_EQ(Describe(*plan), c.want) << plan->reason;
    }
  }
}

// The non-zero counters of a changelog: "1:data=2 dirty:entry=1", or "clean".
std::string Counters(const pb::Changelog& c) {
  static constexpr const char* kNames[] = {"data", "meta", "entry"};
  std::string out;
  auto add = [&](std::string item) { out += (out.empty() ? "" : " ") + item; };
  for (int i = 0; i < c.pending_size(); ++i)
    if (c.pending(i) != 0)
      add(std::to_string(i / 3) + ":" + kNames[i % 3] + "=" + std::to_string(c.pending(i)));
  for (int i = 0; i < c.dirty_size(); ++i)
    if (c.dirty(i) != 0) add(std::string("dirty:") + kNames[i] + "=" + std::to_string(c.dirty(i)));
  return out.empty() ? "clean" : out;
}

// What the brick does with a ChangelogReq: add element-wise.
void Apply(pb::Changelog& to, const pb::Changelog& delta) {
  while (to.pending_size() < delta.pending_size()) to.add_pending(0);
  while (to.dirty_size() < delta.dirty_size()) to.add_dirty(0);
  for (int i = 0; i < delta.pending_size(); ++i)
    to.set_pending(i, to.pending(i) + delta.pending(i));
  for (int i = 0; i < delta.dirty_size(); ++i) to.set_dirty(i, to.dirty(i) + delta.dirty(i));
}

struct ClearCase {
  std::string name;
  std::vector<ReplicaView> replicas;
  Kind kind;
  std::string after;  // each replica's Counters() once the deltas are applied, joined by " | "
  Policy policy = Policy::kNone;
};

// Heal as decide() plans it, apply clearing_deltas(), and look at what is left.
TEST(HealDecision, ClearingDeltas) {
  const std::vector<ClearCase> cases = {
      {"the source stops blaming the sink", Set(Up().Blames(1, kData, 4), Up()), kData,
       "clean | clean"},
      {"dirty cleared everywhere", Set(Up().Dirty(kData, 2).Blames(1), Up().Dirty()), kData,
       "clean | clean"},
      {"other kinds stay", Set(Up().Blames(1).Blames(1, kMeta, 2).Dirty(kEntry), Up().Dirty(kMeta)),
       kData, "1:meta=2 dirty:entry=1 | dirty:meta=1"},
      {"marks against a down replica stay",
       Set(Up().Blames(1).Blames(2, kData, 3), Up().Blames(2), Up().Blames(0).Down()), kData,
       "2:data=3 | 2:data=1 | 0:data=1"},
      {"split-brain resolved by policy: both sides forgiven",
       Set(Up().Blames(1, kData, 2).Size(9), Up().Blames(0, kData, 5)), kData, "clean | clean",
       Policy::kSize},
      {"the arbiter's accusations cleared, its dirty too",
       Set(Up().Blames(1), Up(), Up().Arbiter().Blames(1).Dirty()), kData, "clean | clean | clean"},
      {"a self-accusation cleared", Set(Up().Blames(0, kMeta), Up()), kMeta, "clean | clean"},
      {"an unblamed arbiter's self-accusation cleared",
       Set(Up().Blames(1), Up(), Up().Arbiter().Blames(2)), kData, "clean | clean | clean"},
      {"unresolved split-brain clears nothing", Set(Up().Blames(1), Up().Blames(0)), kData,
       "1:data=1 | 0:data=1"},
      {"an entry merge forgives everyone",
       Set(Up().Dir().Blames(1, kEntry), Up().Dir().Blames(0, kEntry, 3).Dirty(kEntry)), kEntry,
       "clean | clean"},
  };
  for (const ClearCase& c : cases) {
    SCOPED_TRACE(c.name);
    const HealPlan plan = decide(c.replicas, c.kind, c.policy);
    const std::vector<pb::Changelog> deltas = clearing_deltas(c.replicas, c.kind, plan);
    ASSERT_EQ(deltas.size(), c.replicas.size());
    std::string after;
    for (size_t i = 0; i < c.replicas.size(); ++i) {
      if (!c.replicas[i].present) {
        EXPECT_FALSE(needs_heal(deltas[i])) << "replica " << i << " did not answer";
      }
      pb::Changelog changelog = c.replicas[i].changelog;
      Apply(changelog, deltas[i]);
      after += (i == 0 ? "" : " | ") + Counters(changelog);
    }
    EXPECT_EQ(after, c.after) << plan.reason;
  }
}

TEST(HealDecision, ClearingDeltasLayout) {
  // A full-width delta for a replica with something to clear; an empty one, needing no call,
  // for a replica without.
  const auto replicas = Set(Up().Blames(1, kData, 2), Up());
  const std::vector<pb::Changelog> deltas =
      clearing_deltas(replicas, kData, decide(replicas, kData));
  EXPECT_EQ(Counters(deltas[0]), "1:data=-2");
  EXPECT_EQ(deltas[0].pending_size(), 6);
  EXPECT_EQ(deltas[0].dirty_size(), 3);
  EXPECT_FALSE(needs_heal(deltas[1]));
  EXPECT_EQ(deltas[1].pending_size(), 0);
}

// After the heal copies a source's state to the sinks and the deltas are applied, the next
// decision finds nothing left to do.
TEST(HealDecision, HealThenInSync) {
  const std::vector<std::vector<ReplicaView>> scenarios = {
      Set(Up().Blames(1).Size(300), Up()),
      Set(Up().Dirty().Size(300), Up().Dirty()),
      Set(Up().Blames(2), Up().Blames(2).Dirty(), Up().Size(1)),
      Set(Up().Blames(1).Mtime(2000), Up().Blames(0), Up().Arbiter().Blames(1)),
      Set(Up().Blames(0), Up()),
  };
  for (size_t n = 0; n < scenarios.size(); ++n) {
    SCOPED_TRACE("scenario " + std::to_string(n));
    std::vector<ReplicaView> replicas = scenarios[n];
    const HealPlan plan = decide(replicas, kData, Policy::kMtime);
    ASSERT_EQ(plan.verdict, Verdict::kHeal) << plan.reason;
    const std::vector<pb::Changelog> deltas = clearing_deltas(replicas, kData, plan);
    const ReplicaView source = replicas[plan.sources.front()];
    for (size_t i = 0; i < replicas.size(); ++i) Apply(replicas[i].changelog, deltas[i]);
    for (int sink : plan.sinks) {
      if (replicas[sink].arbiter) continue;
      replicas[sink].size = source.size;
      replicas[sink].mtime_sec = source.mtime_sec;
    }
    const HealPlan again = decide(replicas, kData, Policy::kMtime);
    EXPECT_EQ(again.verdict, Verdict::kInSync) << again.reason;
    for (const ReplicaView& r : replicas) EXPECT_FALSE(needs_heal(r.changelog));
  }
}

TEST(HealDecision, Readable) {
  const R arb = Up().Arbiter();
  // `want`: one character per slot, 1 = readable.
  const struct {
    std::string name;
    std::vector<ReplicaView> replicas;
    Kind kind;
    std::string want;
  } cases[] = {
      {"clean", Set(Up(), Up()), kData, "11"},
      {"a blamed one", Set(Up().Blames(1), Up()), kData, "10"},
      {"blame of another kind", Set(Up().Blames(1, kMeta), Up()), kData, "11"},
      {"split-brain", Set(Up().Blames(1), Up().Blames(0)), kData, "00"},
      {"a down replica", Set(Up(), Up().Down()), kData, "10"},
      {"a down replica's blame is unknown", Set(Up(), Up().Blames(0).Down()), kData, "10"},
      {"missing", Set(Up(), Up().Missing()), kData, "10"},
      {"self-accusation", Set(Up().Blames(0), Up()), kData, "11"},
      {"dirty does not stop reads", Set(Up().Dirty(), Up().Dirty()), kData, "11"},
      {"arbiter, data", Set(Up(), Up(), arb), kData, "110"},
      {"arbiter, metadata", Set(Up(), Up(), arb), kMeta, "111"},
      {"the arbiter blames one", Set(Up(), Up(), arb.Blames(0)), kData, "010"},
      {"data bricks split, the arbiter unblamed", Set(Up().Blames(1), Up().Blames(0), arb), kData,
       "000"},
  };
  for (const auto& c : cases) {
    std::string got;
    for (bool r : readable(c.replicas, c.kind)) got += r ? '1' : '0';
    EXPECT_EQ(got, c.want) << c.name;
  }
}

TEST(HealDecision, NeedsHeal) {
  pb::Changelog c;
  EXPECT_FALSE(needs_heal(c));
  c.add_pending(0);
  c.add_pending(0);
  c.add_dirty(0);
  EXPECT_FALSE(needs_heal(c));
  c.set_dirty(0, 1);
  EXPECT_TRUE(needs_heal(c));
  c.set_dirty(0, 0);
  c.set_pending(1, -1);
  EXPECT_TRUE(needs_heal(c));
}

}  // namespace
}  // namespace mortar::xl::afr
