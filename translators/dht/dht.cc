#include "translators/dht/dht.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstdio>
#include <deque>

#include "common/log.h"
#include "translators/afr/afr.h"
#include "translators/fanout.h"

namespace mortar::xl::dht {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kConnectGrace = 2s;
// Bounds of the in-memory tables; past them a table starts over (locate() asks the sets).
constexpr size_t kMaxRemembered = 1 << 18;
constexpr size_t kMaxVerified = 1 << 16;
// A removal mark younger than this stops lookups from re-creating the directory's copies.
constexpr int64_t kRmdirMarkLifeSecs = 60;
// What one set's listing is asked for when checking that a directory is empty.
constexpr uint32_t kEmptyCheckBytes = 16 * 1024;

std::string raw(const Gfid& g) { return std::string(g.bytes()); }
Gfid gfid_of(const pb::Iatt& a) { return Gfid::from_bytes(a.gfid()).value_or(Gfid()); }
bool is_dir(const pb::Iatt& a) { return (a.mode() & S_IFMT) == S_IFDIR; }
bool reserved(std::string_view xattr) { return xattr.starts_with(kXattrPrefix); }
// The set never answered (or its answer was lost): the name's fate there is unknown.
bool unreachable(const Errno& e) { return e.value == ENOTCONN || e.value == ETIMEDOUT; }
bool gone(const Errno& e) { return e.value == ENOENT || e.value == ESTALE; }

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  auto waiting = t.async_wait(asio::as_tuple(asio::use_awaitable));
  auto [ec] = co_await std::move(waiting);
  (void)ec;
}

std::string temp_name() {
  uint64_t v = 0;
  while (::getrandom(&v, sizeof v, 0) != sizeof v) {
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v));
  return std::string(kTempPrefix) + hex;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool later(int64_t s1, uint32_t n1, int64_t s2, uint32_t n2) {
  return s1 > s2 || (s1 == s2 && n1 > n2);
}

}  // namespace

bool moved_away(const pb::Iatt& a) {
  return (a.mode() & S_IFMT) == S_IFREG && (a.mode() & 07777) == S_ISVTX;
}

bool maybe_link(const pb::Iatt& a) {
  return (a.mode() & S_IFMT) == S_IFREG && (a.mode() & 07777) == S_ISVTX && a.size() == 0;
}

// An open file: the set holding it and that set's descriptor. Rebalance may move the file to
// another set while it is open; the first write that finds it moved reopens it there (see
// write()), so both fields can change.
struct Distribute::FileCtx {
  FileCtx(int s, FdPtr f) : set(s), fd(std::move(f)) {}
  std::pair<int, FdPtr> get() {
    std::lock_guard lock(mu);
    return {set, fd};
  }
  std::mutex mu;
  int set;                    // GUARDED_BY(mu)
  FdPtr fd;                   // GUARDED_BY(mu)
  std::vector<std::pair<int, FdPtr>> retired;  // GUARDED_BY(mu): released with the file
};

// An open directory. Entries fetched from the sets go to `log` in the order they are handed
// out, each with its offset (a sequence number from 1); the sets' own cursors never go back,
// which replication's listings require. See docs/design/distribution.md, "readdir".
struct Distribute::DirCtx {
  struct Set {
    FdPtr fd;             // null: not open there (down, or the directory is missing there)
    uint64_t cursor = 0;  // the set's offset after the last entry received from it
    bool eof = true;
  };
  std::mutex mu;
  bool busy = false;  // GUARDED_BY(mu): a readdir runs; the fields below are its alone
  std::vector<Set> sets;
  std::vector<bool> listing;  // sets that were open when this listing started
  int dots = -1;              // the set whose "." and ".." are listed
  std::deque<pb::Dirent> log;
  uint64_t first = 1;  // offset of log.front()
};

// ---- registry ----

std::vector<OptionSpec> Distribute::option_schema() {
  return {
      {"bucket-map", OptionKind::kString, "",
       "The volume's bucket map (version, owner of each bucket, buckets being moved); empty: "
       "buckets spread evenly over the subvolumes"},
  };
}

Checked<Config> Distribute::configure(const Options& options) {
  Config c;
  const std::string& text = options.str("bucket-map");
  if (!text.empty()) {
    auto m = decode(text);
    if (!m) return invalid(m.error());
    c.map = std::move(*m);
  }
  return c;
}

void register_distribute(Registry& registry) {
  registry.add(TranslatorType{
      "cluster/distribute", "Spreads names over its children by the volume's bucket map",
      Distribute::option_schema(), 1, kMaxSets,
      [](const std::string& name, const Options& options,
         const GraphContext& context) -> Checked<std::unique_ptr<Translator>> {
        auto config = Distribute::configure(options);
        if (!config) return invalid(config.error());
        return std::make_unique<Distribute>(name, std::move(*config), context);
      }});
}

Distribute::Distribute(std::string name, Config config, const GraphContext& context)
    : Translator(std::move(name), "cluster/distribute"),
      config_(std::move(config)),
      executor_(context.executor),
      up_(new std::atomic<bool>[kMaxSets]) {
  for (uint32_t i = 0; i < kMaxSets; ++i) up_[i] = false;
}

Distribute::~Distribute() = default;

void Distribute::start() {
  started_ = Clock::now();
  for (size_t i = 0; i < children().size(); ++i) {
    index_by_name_[children()[i]->name()] = static_cast<int>(i);
  }
  if (config_.map) {
    map_ = *config_.map;
    if (map_.sets != children().size()) {
      MLOG_ERROR("{}: the bucket map (version {}) places names on {} sets, but the graph gives "
                 "{} subvolumes; refusing to serve",
                 name(), map_.version, map_.sets, children().size());
      misconfigured_ = true;
    }
  } else {
    map_ = even_map(static_cast<uint32_t>(children().size()));
  }
  MLOG_INFO("{}: bucket map version {} over {} sets, {} buckets moving", name(), map_.version,
            map_.sets, map_.moving.size());
}

void Distribute::stop() {}

bool Distribute::is_up() const {
  if (misconfigured_) return false;
  bool any = false, every = true;
  for (size_t i = 0; i < children().size(); ++i) {
    if (up_[i]) {
      any = true;
    } else {
      every = false;
    }
  }
  // Right after start, give every set a moment to connect: names of a set still connecting
  // would answer ENOTCONN. A set lost after all were up once is a real outage, not a start.
  return any && (every || all_seen_up_.load() || Clock::now() - started_ > kConnectGrace);
}

void Distribute::notify(Event event, Translator* from, const EventInfo& info) {
  int i = child_index(from);
  if (i < 0) return;
  if (event == Event::kLockContention) {
    if (parent()) parent()->notify(event, this, info);
    return;
  }
  bool was_up = is_up();
  up_[i] = event == Event::kChildUp;
  if (all_up()) all_seen_up_ = true;
  if (event == Event::kChildUp) {
    // A set that was away may lack directories made meanwhile: check them again.
    std::lock_guard lock(mu_);
    verified_.clear();
  } else {
    MLOG_INFO("{}: set {} ({}) is down; its names answer ENOTCONN", name(), i, from->name());
  }
  bool now_up = is_up();
  if (!parent()) return;
  if (was_up != now_up) {
    parent()->notify(now_up ? Event::kChildUp : Event::kChildDown, this);
  } else if (event == Event::kChildUp) {
    parent()->notify(Event::kChildUp, this);
  }
}

int Distribute::child_index(const Translator* t) const {
  for (size_t i = 0; i < children().size(); ++i) {
    if (children()[i] == t) return static_cast<int>(i);
  }
  return -1;
}

int Distribute::child_named(std::string_view name) const {
  auto it = index_by_name_.find(name);
  return it == index_by_name_.end() ? -1 : it->second;
}

std::vector<int> Distribute::up_sets() const {
  std::vector<int> up;
  for (size_t i = 0; i < children().size(); ++i) {
    if (up_[i]) up.push_back(static_cast<int>(i));
  }
  return up;
}

bool Distribute::all_up() const {
  for (size_t i = 0; i < children().size(); ++i) {
    if (!up_[i]) return false;
  }
  return true;
}

int Distribute::first_up() const {
  for (size_t i = 0; i < children().size(); ++i) {
    if (up_[i]) return static_cast<int>(i);
  }
  return -1;
}

uint32_t Distribute::owner_of(const Gfid& parent, std::string_view name) const {
  return map_.owner_of(bucket_of(parent, name));
}

void Distribute::remember(const Gfid& gfid, int where) {
  std::lock_guard lock(mu_);
  if (where_.size() >= kMaxRemembered) where_.clear();
  where_[gfid] = where;
}

void Distribute::forget(const Gfid& gfid) {
  std::lock_guard lock(mu_);
  where_.erase(gfid);
  verified_.erase(gfid);
}

Result<std::shared_ptr<Distribute::FileCtx>> Distribute::file_ctx(const FdPtr& fd) const {
  if (!fd || fd->is_dir()) return fail(EBADF);
  auto c = fd->context<FileCtx>(this);
  if (!c) return fail(EBADF);
  return c;
}

FdPtr Distribute::wrap(const Gfid& gfid, uint32_t flags, int set, FdPtr child_fd) {
  auto fd = std::make_shared<Fd>(gfid, flags, false);
  fd->set_context(this, std::make_shared<FileCtx>(set, std::move(child_fd)));
  return fd;
}

// ---- finding inodes and names ----

asio::awaitable<Result<int>> Distribute::locate(OpContext ctx, Gfid gfid) {
  if (misconfigured_) co_return fail(EIO);
  if (gfid.is_root()) co_return kDir;
  {
    std::lock_guard lock(mu_);
    auto it = where_.find(gfid);
    if (it != where_.end()) co_return it->second;
  }
  std::vector<int> up = up_sets();
  if (up.empty()) co_return fail(ENOTCONN);
  std::vector<Task<pb::Iatt>> ops;
  for (int c : up) ops.push_back(child(c)->lookup_gfid(ctx, gfid));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  bool unknown = up.size() < children().size();
  int found = -2;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i]) {
      unknown |= unreachable(got[i].error());
      continue;
    }
    if (is_dir(*got[i])) {
      found = kDir;
      break;
    }
    // An old copy rebalance moved, still there for descriptors that hold it open.
    if (moved_away(*got[i])) continue;
    if (found == -2) found = up[i];
  }
  if (found == -2) co_return fail(unknown ? ENOTCONN : ESTALE);
  remember(gfid, found);
  co_return found;
}

asio::awaitable<Result<Distribute::Entry>> Distribute::resolve(OpContext ctx, Gfid parent,
                                                               std::string name) {
  if (misconfigured_) co_return fail(EIO);
  uint32_t bucket = bucket_of(parent, name);
  int owner = static_cast<int>(map_.owner_of(bucket));
  std::optional<uint32_t> previous = map_.previous_owner(bucket);
  Result<pb::Iatt> got = fail(ENOTCONN);
  int from = owner;
  if (previous) {
    // The bucket is moving: the name is on its new owner, or still on the old one.
    std::vector<int> asked;
    std::vector<Task<pb::Iatt>> ops;
    std::vector<int> pair{owner, static_cast<int>(*previous)};
    for (int s : pair) {
      if (!up_[s]) continue;
      asked.push_back(s);
      ops.push_back(child(s)->lookup(ctx, parent, name));
    }
    if (asked.empty()) co_return fail(ENOTCONN);
    std::vector<Result<pb::Iatt>> answers = co_await all(std::move(ops));
    bool all_absent = asked.size() == 2;
    Errno error(ENOTCONN);
    for (size_t i = 0; i < answers.size(); ++i) {
      if (answers[i]) {
        got = std::move(answers[i]);
        from = asked[i];
        break;
      }
      if (answers[i].error().value != ENOENT) {
        all_absent = false;
        if (error.value == ENOTCONN) error = answers[i].error();
      }
    }
    if (!got) co_return fail(all_absent ? Errno(ENOENT) : error);
  } else {
    if (up_[owner]) {
      got = co_await child(owner)->lookup(ctx, parent, name);
    }
    if (!got && unreachable(got.error())) {
      Result<Entry> e = co_await resolve_without_owner(ctx, parent, name, owner);
      co_return e;
    }
    if (!got) co_return fail(got.error());
  }
  Gfid g = gfid_of(*got);
  if (is_dir(*got)) {
    remember(g, kDir);
    co_return Entry{std::move(*got), kDir, from, std::nullopt};
  }
  if (maybe_link(*got)) {
    Result<Entry> e = co_await follow_link(ctx, parent, name, from, std::move(*got));
    co_return e;
  }
  remember(g, from);
  co_return Entry{std::move(*got), from, from, std::nullopt};
}

asio::awaitable<Result<Distribute::Entry>> Distribute::resolve_without_owner(OpContext ctx,
                                                                             Gfid parent,
                                                                             std::string name,
                                                                             int owner) {
  std::vector<int> others;
  for (int c : up_sets()) {
    if (c != owner) others.push_back(c);
  }
  if (others.empty()) co_return fail(ENOTCONN);
  std::vector<Task<pb::Iatt>> ops;
  for (int c : others) ops.push_back(child(c)->lookup(ctx, parent, name));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  // Directories live on every set, so any copy answers for them.
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] && is_dir(*got[i])) {
      remember(gfid_of(*got[i]), kDir);
      co_return Entry{std::move(*got[i]), kDir, others[i], std::nullopt};
    }
  }
  // The data of a name whose link entry is on the missing owner.
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] && !maybe_link(*got[i])) {
      remember(gfid_of(*got[i]), others[i]);
      co_return Entry{std::move(*got[i]), others[i], others[i], std::nullopt};
    }
  }
  co_return fail(ENOTCONN);
}

asio::awaitable<Result<Distribute::Entry>> Distribute::follow_link(OpContext ctx, Gfid parent,
                                                                   std::string name, int set,
                                                                   pb::Iatt link) {
  Gfid lg = gfid_of(link);
  Result<std::string> target = co_await child(set)->getxattr(ctx, lg, nullptr, kLinkXattr);
  if (!target && target.error().value != ENODATA) co_return fail(target.error());
  bool is_link = target.has_value();
  if (is_link) {
    int t = child_named(*target);
    if (t >= 0 && t != set) {
      if (!up_[t]) co_return fail(ENOTCONN);
      Result<pb::Iatt> data = co_await child(t)->lookup(ctx, parent, name);
      if (data && !is_dir(*data) && !maybe_link(*data)) {
        remember(gfid_of(*data), t);
        co_return Entry{std::move(*data), t, set, std::move(link)};
      }
      if (!data && unreachable(data.error())) co_return fail(data.error());
    }
  }
  // The link names no set that has the data (stale, or from an older graph), or this is a
  // link still being made (its data is renamed first): look on every other set.
  std::vector<int> others;
  for (int c : up_sets()) {
    if (c != set) others.push_back(c);
  }
  std::vector<Task<pb::Iatt>> ops;
  for (int c : others) ops.push_back(child(c)->lookup(ctx, parent, name));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] && !is_dir(*got[i]) && !maybe_link(*got[i])) {
      remember(gfid_of(*got[i]), others[i]);
      co_return Entry{std::move(*got[i]), others[i], set, std::move(link)};
    }
  }
  if (!is_link) {
    // An ordinary empty file whose mode happens to be a link's.
    remember(lg, set);
    co_return Entry{std::move(link), set, set, std::nullopt};
  }
  bool unknown = others.size() + 1 < children().size();
  for (const auto& r : got) {
    if (!r && unreachable(r.error())) unknown = true;
  }
  co_return fail(unknown ? ENOTCONN : ENOENT);
}

asio::awaitable<void> Distribute::copy_xattrs(Gfid gfid, int from, std::vector<int> to) {
  OpContext ctx;
  Result<std::vector<std::string>> names = co_await child(from)->listxattr(ctx, gfid, nullptr);
  if (!names) co_return;
  for (const auto& x : *names) {
    if (x == kRmdirXattr) continue;
    Result<std::string> v = co_await child(from)->getxattr(ctx, gfid, nullptr, x);
    if (!v) continue;
    for (int s : to) {
      Result<void> r = co_await child(s)->setxattr(ctx, gfid, nullptr, x, *v, 0);
      if (!r) {
        MLOG_WARN("{}: cannot copy xattr {} of directory {} to set {}: {}", name(), x,
                  gfid.str(), s, r.error().message());
      }
    }
  }
}

asio::awaitable<void> Distribute::verify_dir(OpContext ctx, Gfid parent, std::string entry,
                                             Entry e) {
  Gfid g = gfid_of(e.attr);
  {
    std::lock_guard lock(mu_);
    if (verified_.count(g)) co_return;
  }
  std::vector<int> others;
  for (int c : up_sets()) {
    if (c != e.owner) others.push_back(c);
  }
  bool complete = others.size() + 1 == children().size();
  std::vector<Task<pb::Iatt>> ops;
  for (int c : others) ops.push_back(child(c)->lookup(ctx, parent, entry));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  std::vector<int> missing, differing;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i]) {
      if (got[i].error().value == ENOENT) {
        missing.push_back(others[i]);
      } else {
        complete = false;  // the parent is missing there too, or the set did not answer
      }
      continue;
    }
    if (!is_dir(*got[i]) || gfid_of(*got[i]) != g) {
      MLOG_WARN("{}: '{}' in {} is directory {} on set {} but {} {} on set {}", name(), entry,
                parent.str(), g.str(), e.owner, is_dir(*got[i]) ? "directory" : "a file",
                gfid_of(*got[i]).str(), others[i]);
      complete = false;
      continue;
    }
    const pb::Iatt& a = *got[i];
    if ((a.mode() & 07777) != (e.attr.mode() & 07777) || a.uid() != e.attr.uid() ||
        a.gid() != e.attr.gid()) {
      differing.push_back(others[i]);
    }
  }
  if (!missing.empty()) {
    // A removal under way marks the owner's copy first: what it took is not to come back.
    Result<std::string> mark = co_await child(e.owner)->getxattr(ctx, g, nullptr, kRmdirXattr);
    if (mark) {
      int64_t since = 0;
      std::from_chars(mark->data(), mark->data() + mark->size(), since);
      if (now_seconds() - since < kRmdirMarkLifeSecs) co_return;
      // A removal that never finished: the directory is still there, so it comes back whole.
      Result<void> cleared = co_await child(e.owner)->removexattr(ctx, g, nullptr, kRmdirXattr);
      (void)cleared;
    }
    pb::MkdirReq req;
    req.set_parent(raw(parent));
    req.set_name(entry);
    req.set_gfid(raw(g));
    req.set_mode(e.attr.mode() & 07777);
    req.set_uid(e.attr.uid());
    req.set_gid(e.attr.gid());
    std::vector<Task<pb::Iatt>> makes;
    for (int c : missing) makes.push_back(child(c)->mkdir(ctx, req));
    std::vector<Result<pb::Iatt>> made = co_await all(std::move(makes));
    std::vector<int> repaired;
    for (size_t i = 0; i < made.size(); ++i) {
      if (made[i]) {
        repaired.push_back(missing[i]);
      } else {
        complete = false;
        MLOG_WARN("{}: cannot create missing directory '{}' ({}) on set {}: {}", name(), entry,
                  g.str(), missing[i], made[i].error().message());
      }
    }
    if (!repaired.empty()) {
      MLOG_INFO("{}: directory '{}' ({}) was missing on {} set(s); created it there", name(),
                entry, g.str(), repaired.size());
      co_await copy_xattrs(g, e.owner, repaired);
    }
  }
  if (!differing.empty()) {
    pb::SetattrReq fix;
    fix.set_valid(pb::SET_MODE | pb::SET_UID | pb::SET_GID);
    fix.set_mode(e.attr.mode() & 07777);
    fix.set_uid(e.attr.uid());
    fix.set_gid(e.attr.gid());
    std::vector<Task<AttrPair>> fixes;
    for (int c : differing) fixes.push_back(child(c)->setattr(ctx, g, nullptr, fix));
    std::vector<Result<AttrPair>> fixed = co_await all(std::move(fixes));
    for (const auto& r : fixed) complete &= r.has_value();
  }
  if (complete) {
    std::lock_guard lock(mu_);
    if (verified_.size() >= kMaxVerified) verified_.clear();
    verified_.insert(g);
  }
}

asio::awaitable<Result<pb::Iatt>> Distribute::dir_attr(OpContext ctx, Gfid gfid) {
  std::vector<int> up = up_sets();
  if (up.empty()) co_return fail(ENOTCONN);
  std::vector<Task<pb::Iatt>> ops;
  for (int c : up) ops.push_back(child(c)->getattr(ctx, gfid, nullptr));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  // Each set's copy changes with the entries that set holds: the directory changed when the
  // latest copy did.
  std::optional<pb::Iatt> merged;
  Errno error(ENOTCONN);
  for (auto& r : got) {
    if (!r) {
      if (error.value == ENOTCONN) error = r.error();
      continue;
    }
    if (!merged) {
      merged = std::move(*r);
      continue;
    }
    if (later(r->mtime_sec(), r->mtime_nsec(), merged->mtime_sec(), merged->mtime_nsec())) {
      merged->set_mtime_sec(r->mtime_sec());
      merged->set_mtime_nsec(r->mtime_nsec());
    }
    if (later(r->ctime_sec(), r->ctime_nsec(), merged->ctime_sec(), merged->ctime_nsec())) {
      merged->set_ctime_sec(r->ctime_sec());
      merged->set_ctime_nsec(r->ctime_nsec());
    }
    if (later(r->atime_sec(), r->atime_nsec(), merged->atime_sec(), merged->atime_nsec())) {
      merged->set_atime_sec(r->atime_sec());
      merged->set_atime_nsec(r->atime_nsec());
    }
  }
  if (!merged) co_return fail(error);
  co_return std::move(*merged);
}

// ---- lookup and attributes ----

Task<pb::Iatt> Distribute::lookup(OpContext ctx, Gfid parent, std::string name) {
  Result<Entry> e = co_await resolve(ctx, parent, name);
  if (!e) co_return fail(e.error());
  if (e->dir()) co_await verify_dir(ctx, parent, name, *e);
  co_return std::move(e->attr);
}

Task<pb::Iatt> Distribute::lookup_gfid(OpContext ctx, Gfid gfid) {
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w == kDir) {
    Result<pb::Iatt> a = co_await dir_attr(ctx, gfid);
    co_return a;
  }
  Result<pb::Iatt> r = co_await child(*w)->lookup_gfid(ctx, gfid);
  if (!r && r.error().value == ESTALE) forget(gfid);
  co_return r;
}

Task<pb::Iatt> Distribute::getattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<pb::Iatt> r = co_await child(fset)->getattr(ctx, gfid, ffd);
    co_return r;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<int> w = co_await locate(ctx, gfid);
    if (!w) co_return fail(w.error());
    if (*w == kDir) {
      Result<pb::Iatt> a = co_await dir_attr(ctx, gfid);
      co_return a;
    }
    Result<pb::Iatt> r = co_await child(*w)->getattr(ctx, gfid, nullptr);
    // Not where we remembered it: ask every set once.
    if (r || r.error().value != ESTALE || attempt > 0) co_return r;
    forget(gfid);
  }
  co_return fail(ESTALE);
}

Task<AttrPair> Distribute::setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) {
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<AttrPair> r = co_await child(fset)->setattr(ctx, gfid, ffd, req);
    co_return r;
  }
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w != kDir) {
    Result<AttrPair> r = co_await child(*w)->setattr(ctx, gfid, nullptr, req);
    co_return r;
  }
  // A directory's attributes are the same on every set.
  std::vector<int> up = up_sets();
  std::vector<Task<AttrPair>> ops;
  for (int c : up) ops.push_back(child(c)->setattr(ctx, gfid, nullptr, req));
  std::vector<Result<AttrPair>> got = co_await all(std::move(ops));
  Errno error(ENOTCONN);
  for (auto& r : got) {
    if (r) co_return std::move(*r);
    if (error.value == ENOTCONN) error = r.error();
  }
  co_return fail(error);
}

Task<AttrPair> Distribute::truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) {
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<AttrPair> r = co_await child(fset)->truncate(ctx, gfid, ffd, size);
    co_return r;
  }
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w == kDir) co_return fail(EISDIR);
  Result<AttrPair> r = co_await child(*w)->truncate(ctx, gfid, nullptr, size);
  co_return r;
}

Task<std::string> Distribute::readlink(OpContext ctx, Gfid gfid) {
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w == kDir) co_return fail(EINVAL);
  Result<std::string> r = co_await child(*w)->readlink(ctx, gfid);
  co_return r;
}

// ---- link entries ----

asio::awaitable<Result<pb::Iatt>> Distribute::make_link(OpContext ctx, int set, Gfid parent,
                                                        std::string entry, int target) {
  pb::MknodReq req;
  req.set_parent(raw(parent));
  req.set_name(entry);
  req.set_gfid(raw(Gfid::random()));
  req.set_mode(kLinkMode);
  Result<pb::Iatt> made = co_await child(set)->mknod(ctx, req);
  if (!made) co_return made;
  Gfid lg = gfid_of(*made);
  Result<void> pointed =
      co_await child(set)->setxattr(ctx, lg, nullptr, kLinkXattr, child(target)->name(), 0);
  if (!pointed) {
    pb::UnlinkReq undo;
    undo.set_parent(raw(parent));
    undo.set_name(entry);
    undo.set_gfid(raw(lg));
    Result<void> removed = co_await child(set)->unlink(ctx, undo);
    (void)removed;
    co_return fail(pointed.error());
  }
  co_return made;
}

asio::awaitable<Result<void>> Distribute::replace_with_link(OpContext ctx, int set, Gfid parent,
                                                            std::string entry, int target) {
  std::string temp = temp_name();
  Result<pb::Iatt> made = co_await make_link(ctx, set, parent, temp, target);
  if (!made) co_return fail(made.error());
  pb::RenameReq req;
  req.set_old_parent(raw(parent));
  req.set_old_name(temp);
  req.set_new_parent(raw(parent));
  req.set_new_name(entry);
  Result<void> renamed = co_await child(set)->rename(ctx, req);
  if (!renamed) {
    pb::UnlinkReq undo;
    undo.set_parent(raw(parent));
    undo.set_name(temp);
    undo.set_gfid(made->gfid());
    Result<void> removed = co_await child(set)->unlink(ctx, undo);
    (void)removed;
  }
  co_return renamed;
}

asio::awaitable<bool> Distribute::clear_stale_link(OpContext ctx, int set, Gfid parent,
                                                   std::string entry) {
  Result<pb::Iatt> there = co_await child(set)->lookup(ctx, parent, entry);
  if (!there || !maybe_link(*there)) co_return false;
  Gfid lg = gfid_of(*there);
  Result<std::string> target = co_await child(set)->getxattr(ctx, lg, nullptr, kLinkXattr);
  if (!target) co_return false;
  // Stale only if its data is nowhere (links are made after their data, and removed after it).
  Result<Entry> e = co_await resolve(ctx, parent, entry);
  if (e || e.error().value != ENOENT) co_return false;
  pb::UnlinkReq req;
  req.set_parent(raw(parent));
  req.set_name(entry);
  req.set_gfid(raw(lg));
  Result<void> removed = co_await child(set)->unlink(ctx, req);
  if (removed) {
    MLOG_INFO("{}: removed stale link entry '{}' in {} on set {}", name(), entry, parent.str(),
              set);
  }
  co_return removed.has_value();
}

// ---- new entries ----

template <class MakeCall>
asio::awaitable<Result<pb::Iatt>> Distribute::new_entry(OpContext ctx, Gfid parent,
                                                        std::string entry, MakeCall make_call) {
  if (misconfigured_) co_return fail(EIO);
  uint32_t bucket = bucket_of(parent, entry);
  int owner = static_cast<int>(map_.owner_of(bucket));
  if (!up_[owner]) co_return fail(ENOTCONN);
  if (auto previous = map_.previous_owner(bucket)) {
    // Still on the set its bucket moves away from: the name is taken.
    if (!up_[*previous]) co_return fail(ENOTCONN);
    Result<pb::Iatt> old = co_await child(static_cast<int>(*previous))->lookup(ctx, parent, entry);
    if (old) co_return fail(EEXIST);
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<pb::Iatt> r = co_await make_call(owner);
    if (r) {
      remember(gfid_of(*r), is_dir(*r) ? kDir : owner);
      co_return r;
    }
    if (r.error().value != EEXIST || attempt > 0) co_return r;
    bool cleared = co_await clear_stale_link(ctx, owner, parent, entry);
    if (!cleared) co_return r;
  }
  co_return fail(EEXIST);
}

Task<pb::Iatt> Distribute::mknod(OpContext ctx, pb::MknodReq req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  std::string entry = req.name();
  auto call = [this, ctx, req](int set) { return child(set)->mknod(ctx, req); };
  Result<pb::Iatt> r = co_await new_entry(ctx, parent, entry, call);
  co_return r;
}

Task<pb::Iatt> Distribute::symlink(OpContext ctx, pb::SymlinkReq req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  std::string entry = req.name();
  auto call = [this, ctx, req](int set) { return child(set)->symlink(ctx, req); };
  Result<pb::Iatt> r = co_await new_entry(ctx, parent, entry, call);
  co_return r;
}

Task<Created> Distribute::create(OpContext ctx, pb::CreateReq req) {
  if (misconfigured_) co_return fail(EIO);
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  std::string entry = req.name();
  uint32_t flags = req.flags();
  uint32_t bucket = bucket_of(parent, entry);
  int owner = static_cast<int>(map_.owner_of(bucket));
  if (!up_[owner]) co_return fail(ENOTCONN);
  bool exists = false;
  if (auto previous = map_.previous_owner(bucket)) {
    if (!up_[*previous]) co_return fail(ENOTCONN);
    Result<pb::Iatt> old = co_await child(static_cast<int>(*previous))->lookup(ctx, parent, entry);
    exists = old.has_value();
  }
  // Exclusive on the brick: an existing name may be a link entry, which is not the file.
  pb::CreateReq exclusive = req;
  exclusive.set_flags(flags | O_EXCL);
  for (int attempt = 0; !exists && attempt < 2; ++attempt) {
    Result<Created> r = co_await child(owner)->create(ctx, exclusive);
    if (r) {
      Gfid g = gfid_of(r->attr);
      remember(g, owner);
      FdPtr fd = wrap(g, flags, owner, std::move(r->fd));
      co_return Created{std::move(r->attr), std::move(fd)};
    }
    if (r.error().value != EEXIST) co_return fail(r.error());
    if (attempt == 0) {
      bool cleared = co_await clear_stale_link(ctx, owner, parent, entry);
      if (cleared) continue;
    }
    exists = true;
  }
  if (flags & O_EXCL) co_return fail(EEXIST);
  // open(2) with O_CREAT on an existing file opens it.
  Result<Entry> e = co_await resolve(ctx, parent, entry);
  if (!e) co_return fail(e.error().value == ENOENT ? Errno(EEXIST) : e.error());
  if (e->dir()) co_return fail(EISDIR);
  Gfid g = gfid_of(e->attr);
  Result<FdPtr> fd = co_await open(ctx, g, flags & ~static_cast<uint32_t>(O_CREAT | O_EXCL));
  if (!fd) co_return fail(fd.error());
  pb::Iatt attr = std::move(e->attr);
  if (flags & O_TRUNC) {
    Result<pb::Iatt> now = co_await getattr(ctx, g, *fd);
    if (now) attr = std::move(*now);
  }
  co_return Created{std::move(attr), std::move(*fd)};
}

asio::awaitable<Result<void>> Distribute::absent_from_previous_owner(OpContext ctx, Gfid parent,
                                                                     std::string name) {
  std::optional<uint32_t> previous = map_.previous_owner(bucket_of(parent, name));
  if (!previous) co_return ok();
  int p = static_cast<int>(*previous);
  if (!up_[p]) co_return fail(ENOTCONN);  // the name may be there: nothing can be decided
  Result<pb::Iatt> there = co_await child(p)->lookup(ctx, parent, name);
  if (there) co_return fail(EEXIST);
  if (there.error().value != ENOENT) co_return fail(there.error());
  co_return ok();
}

Task<pb::Iatt> Distribute::mkdir(OpContext ctx, pb::MkdirReq req) {
  if (misconfigured_) co_return fail(EIO);
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  int owner = static_cast<int>(owner_of(parent, req.name()));
  // The owner decides between racing mkdirs of one name; the others follow with its GFID.
  if (!up_[owner]) co_return fail(ENOTCONN);
  Result<void> free_name = co_await absent_from_previous_owner(ctx, parent, req.name());
  if (!free_name) co_return fail(free_name.error());
  Result<pb::Iatt> made = co_await child(owner)->mkdir(ctx, req);
  if (!made) co_return made;
  Gfid g = gfid_of(*made);
  remember(g, kDir);
  std::vector<int> others;
  for (int c : up_sets()) {
    if (c != owner) others.push_back(c);
  }
  bool complete = others.size() + 1 == children().size();
  std::vector<Task<pb::Iatt>> ops;
  for (int c : others) ops.push_back(child(c)->mkdir(ctx, req));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) continue;
    complete = false;
    MLOG_WARN("{}: directory '{}' ({}) not created on set {}: {}; lookups will retry", name(),
              req.name(), g.str(), others[i], got[i].error().message());
  }
  if (complete) {
    std::lock_guard lock(mu_);
    if (verified_.size() >= kMaxVerified) verified_.clear();
    verified_.insert(g);
  }
  co_return made;
}

Task<pb::Iatt> Distribute::link(OpContext ctx, pb::LinkReq req) {
  Gfid g = Gfid::from_bytes(req.gfid()).value_or(Gfid());
  Gfid parent = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  std::string entry = req.new_name();
  Result<int> w = co_await locate(ctx, g);
  if (!w) co_return fail(w.error());
  if (*w == kDir) co_return fail(EPERM);
  int data = *w;
  int owner = static_cast<int>(owner_of(parent, entry));
  if (!up_[data] || !up_[owner]) co_return fail(ENOTCONN);
  Result<void> free_name = co_await absent_from_previous_owner(ctx, parent, entry);
  if (!free_name) co_return fail(free_name.error());
  // The new name is a hard link on the data's set, and a link entry on its owner if that is
  // another set: every name of an inode lives where its data is.
  Result<pb::Iatt> linked = co_await child(data)->link(ctx, req);
  if (!linked) co_return linked;
  if (owner != data) {
    Result<pb::Iatt> pointer = co_await make_link(ctx, owner, parent, entry, data);
    if (!pointer && pointer.error().value == EEXIST) {
      bool cleared = co_await clear_stale_link(ctx, owner, parent, entry);
      if (cleared) pointer = co_await make_link(ctx, owner, parent, entry, data);
    }
    if (!pointer) {
      pb::UnlinkReq undo;
      undo.set_parent(raw(parent));
      undo.set_name(entry);
      undo.set_gfid(raw(g));
      Result<void> removed = co_await child(data)->unlink(ctx, undo);
      (void)removed;
      co_return fail(pointer.error());
    }
  }
  co_return linked;
}

Task<void> Distribute::unlink(OpContext ctx, pb::UnlinkReq req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  Result<Entry> e = co_await resolve(ctx, parent, req.name());
  if (!e) co_return fail(e.error());
  if (e->dir()) co_return fail(EISDIR);
  if (!req.gfid().empty() && req.gfid() != e->attr.gfid()) co_return fail(ESTALE);
  // Data first: a link entry left behind by a crash points at nothing and is cleared later; a
  // name left without its link entry would be listed but not found.
  Result<void> removed = co_await child(e->set)->unlink(ctx, req);
  if (!removed) co_return removed;
  if (e->link) {
    pb::UnlinkReq l;
    l.set_parent(req.parent());
    l.set_name(req.name());
    l.set_gfid(e->link->gfid());
    Result<void> r = co_await child(e->owner)->unlink(ctx, l);
    if (!r && !gone(r.error())) {
      MLOG_WARN("{}: link entry '{}' in {} stays on set {}: {}", name(), req.name(),
                parent.str(), e->owner, r.error().message());
    }
  }
  if (e->attr.nlink() <= 1) forget(gfid_of(e->attr));
  co_return ok();
}

// ---- removing and renaming directories ----

asio::awaitable<Result<std::vector<pb::Dirent>>> Distribute::only_links_on(OpContext ctx, int set,
                                                                           Gfid dir) {
  Result<FdPtr> fd = co_await child(set)->opendir(ctx, dir);
  if (!fd) {
    if (gone(fd.error())) co_return std::vector<pb::Dirent>{};  // no copy there
    co_return fail(fd.error());
  }
  std::vector<pb::Dirent> links;
  Result<void> outcome = ok();
  uint64_t offset = 0;
  bool done = false;
  while (!done && outcome) {
    Result<pb::ReaddirRsp> r = co_await child(set)->readdir(ctx, *fd, offset, kEmptyCheckBytes, true);
    if (!r) {
      outcome = fail(r.error());
      break;
    }
    done = r->eof() || r->entries_size() == 0;
    for (auto& e : *r->mutable_entries()) {
      offset = e.offset();
      if (e.name() == "." || e.name() == "..") continue;
      if (e.has_attr() && maybe_link(e.attr())) {
        Result<std::string> to =
            co_await child(set)->getxattr(ctx, gfid_of(e.attr()), nullptr, kLinkXattr);
        if (to) {
          links.push_back(std::move(e));
          continue;
        }
      }
      outcome = fail(ENOTEMPTY);
      break;
    }
  }
  co_await child(set)->release(*fd);
  if (!outcome) co_return fail(outcome.error());
  co_return links;
}

asio::awaitable<Result<void>> Distribute::check_empty(OpContext ctx, Gfid dir,
                                                      std::vector<std::vector<pb::Dirent>>& links) {
  size_t n = children().size();
  std::vector<Task<std::vector<pb::Dirent>>> ops;
  for (size_t i = 0; i < n; ++i) ops.push_back(only_links_on(ctx, static_cast<int>(i), dir));
  std::vector<Result<std::vector<pb::Dirent>>> got = co_await all(std::move(ops));
  links.assign(n, {});
  Errno error(0);
  for (size_t i = 0; i < n; ++i) {
    if (got[i]) {
      links[i] = std::move(*got[i]);
    } else if (error.value == 0 || got[i].error().value == ENOTEMPTY) {
      error = got[i].error();
    }
  }
  if (error.value != 0) co_return fail(error);
  co_return ok();
}

asio::awaitable<void> Distribute::restore_dir(OpContext ctx, Gfid parent, std::string entry,
                                              pb::Iatt attr, int owner, std::vector<int> sets) {
  if (sets.empty()) co_return;
  pb::MkdirReq req;
  req.set_parent(raw(parent));
  req.set_name(entry);
  req.set_gfid(attr.gfid());
  req.set_mode(attr.mode() & 07777);
  req.set_uid(attr.uid());
  req.set_gid(attr.gid());
  std::vector<Task<pb::Iatt>> ops;
  for (int c : sets) ops.push_back(child(c)->mkdir(ctx, req));
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i]) {
      MLOG_WARN("{}: cannot put back directory '{}' on set {}: {}", name(), entry, sets[i],
                got[i].error().message());
    }
  }
  co_await copy_xattrs(gfid_of(attr), owner, sets);
}

Task<void> Distribute::rmdir(OpContext ctx, pb::RmdirReq req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  std::string entry = req.name();
  // Every copy must go, and emptiness is only known where a set answers.
  if (!all_up()) co_return fail(ENOTCONN);
  Result<Entry> e = co_await resolve(ctx, parent, entry);
  if (!e) co_return fail(e.error());
  if (!e->dir()) co_return fail(ENOTDIR);
  Gfid g = gfid_of(e->attr);
  if (!req.gfid().empty() && req.gfid() != e->attr.gfid()) co_return fail(ESTALE);
  // 1. Empty everywhere (link entries aside), before anything changes.
  std::vector<std::vector<pb::Dirent>> links;
  Result<void> empty = co_await check_empty(ctx, g, links);
  if (!empty) co_return empty;
  // 2. Mark the owner's copy, which goes last: lookups meanwhile do not re-create the others.
  int owner = e->owner;
  Result<void> marked = co_await child(owner)->setxattr(ctx, g, nullptr, kRmdirXattr,
                                                        std::to_string(now_seconds()), 0);
  if (!marked) co_return marked;
  for (size_t s = 0; s < links.size(); ++s) {
    for (const auto& l : links[s]) {
      pb::UnlinkReq u;
      u.set_parent(raw(g));
      u.set_name(l.name());
      u.set_gfid(l.attr().gfid());
      Result<void> r = co_await child(static_cast<int>(s))->unlink(ctx, u);
      (void)r;
    }
  }
  // 3. The other copies, then the owner's. A set that refuses (an entry created since the
  // check) puts back what was removed.
  pb::RmdirReq one = req;
  one.set_gfid(raw(g));
  std::vector<int> others;
  for (size_t c = 0; c < children().size(); ++c) {
    if (static_cast<int>(c) != owner) others.push_back(static_cast<int>(c));
  }
  std::vector<Task<void>> ops;
  for (int c : others) ops.push_back(child(c)->rmdir(ctx, one));
  std::vector<Result<void>> got = co_await all(std::move(ops));
  std::vector<int> removed;
  std::optional<Errno> refusal;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      removed.push_back(others[i]);
    } else if (got[i].error().value != ENOENT && !refusal) {
      refusal = got[i].error();
    }
  }
  if (!refusal) {
    Result<void> last = co_await child(owner)->rmdir(ctx, one);
    if (last) {
      forget(g);
      co_return ok();
    }
    refusal = last.error();
  }
  co_await restore_dir(ctx, parent, entry, e->attr, owner, removed);
  Result<void> unmarked = co_await child(owner)->removexattr(ctx, g, nullptr, kRmdirXattr);
  (void)unmarked;
  co_return fail(*refusal);
}

asio::awaitable<Result<void>> Distribute::rename_dir(OpContext ctx, pb::RenameReq req, Entry src) {
  if (!all_up()) co_return fail(ENOTCONN);
  Gfid np = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  std::string nn = req.new_name();
  uint32_t flags = req.flags();
  Gfid g = gfid_of(src.attr);
  Result<Entry> dst = co_await resolve(ctx, np, nn);
  if (!dst && dst.error().value != ENOENT) co_return fail(dst.error());
  if (dst) {
    if (flags & RENAME_NOREPLACE) co_return fail(EEXIST);
    if (gfid_of(dst->attr) == g) co_return ok();
    if (!dst->dir()) co_return fail((flags & RENAME_EXCHANGE) ? EXDEV : ENOTDIR);
    if (!(flags & RENAME_EXCHANGE)) {
      std::vector<std::vector<pb::Dirent>> links;
      Result<void> empty = co_await check_empty(ctx, gfid_of(dst->attr), links);
      if (!empty) co_return empty;
      for (size_t s = 0; s < links.size(); ++s) {
        for (const auto& l : links[s]) {
          pb::UnlinkReq u;
          u.set_parent(dst->attr.gfid());
          u.set_name(l.name());
          u.set_gfid(l.attr().gfid());
          Result<void> r = co_await child(static_cast<int>(s))->unlink(ctx, u);
          (void)r;
        }
      }
    }
  } else if (flags & RENAME_EXCHANGE) {
    co_return fail(ENOENT);
  }
  // Directories are renamed on every set; the new name's owner decides (loops, races).
  int owner = static_cast<int>(owner_of(np, nn));
  Result<void> first = co_await child(owner)->rename(ctx, req);
  if (!first) co_return first;
  std::vector<int> others;
  for (size_t c = 0; c < children().size(); ++c) {
    if (static_cast<int>(c) != owner) others.push_back(static_cast<int>(c));
  }
  std::vector<Task<void>> ops;
  for (int c : others) ops.push_back(child(c)->rename(ctx, req));
  std::vector<Result<void>> got = co_await all(std::move(ops));
  for (size_t i = 0; i < got.size(); ++i) {
    // ENOENT: that set lacked the directory; a lookup of the new name brings it.
    if (!got[i] && got[i].error().value != ENOENT) {
      MLOG_WARN("{}: renaming directory {} to '{}' failed on set {}: {}", name(), g.str(), nn,
                others[i], got[i].error().message());
    }
  }
  if (dst) forget(gfid_of(dst->attr));
  remember(g, kDir);
  co_return ok();
}

// ---- rename ----

Task<void> Distribute::rename(OpContext ctx, pb::RenameReq req) {
  Gfid op = Gfid::from_bytes(req.old_parent()).value_or(Gfid());
  Gfid np = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  std::string on = req.old_name(), nn = req.new_name();
  uint32_t flags = req.flags();
  Result<Entry> src = co_await resolve(ctx, op, on);
  if (!src) co_return fail(src.error());
  if (src->dir()) {
    Result<void> r = co_await rename_dir(ctx, req, *src);
    co_return r;
  }
  Result<Entry> dst = co_await resolve(ctx, np, nn);
  if (!dst && dst.error().value != ENOENT) co_return fail(dst.error());
  bool exists = dst.has_value();
  Gfid g = gfid_of(src->attr);
  if (exists) {
    if (flags & RENAME_NOREPLACE) co_return fail(EEXIST);
    if (dst->dir() && !(flags & RENAME_EXCHANGE)) co_return fail(EISDIR);
    if (gfid_of(dst->attr) == g) co_return ok();  // two names of one inode: nothing to do
  }
  int data = src->set;
  int owner = static_cast<int>(owner_of(np, nn));
  if (flags & RENAME_EXCHANGE) {
    if (!exists) co_return fail(ENOENT);
    // Both names change places: one brick call when everything is on one set, else refused.
    if (dst->dir() || dst->set != data || src->link || dst->link) co_return fail(EXDEV);
    Result<void> r = co_await child(data)->rename(ctx, req);
    co_return r;
  }
  if (!up_[data] || !up_[owner]) co_return fail(ENOTCONN);

  // 1. The data takes its new name on its own set, replacing what that set had under it.
  Result<void> moved = co_await child(data)->rename(ctx, req);
  if (!moved) co_return moved;

  // 2. The new name's owner points at the data.
  if (owner != data) {
    Result<void> pointed = ok();
    if (!exists) {
      Result<pb::Iatt> made = co_await make_link(ctx, owner, np, nn, data);
      if (!made && made.error().value == EEXIST) {
        bool cleared = co_await clear_stale_link(ctx, owner, np, nn);
        if (cleared) made = co_await make_link(ctx, owner, np, nn, data);
      }
      if (!made) pointed = fail(made.error());
    } else if (dst->link) {
      if (dst->set != data) {
        pointed = co_await child(owner)->setxattr(ctx, gfid_of(*dst->link), nullptr, kLinkXattr,
                                                  child(data)->name(), 0);
      }
    } else {
      // The replaced file's data is on the owner: a link entry takes its place in one rename.
      pointed = co_await replace_with_link(ctx, owner, np, nn, data);
    }
    if (!pointed) {
      // Put the name back where it came from, unless the rename replaced a file there.
      if (!exists || dst->set != data) {
        pb::RenameReq back;
        back.set_old_parent(req.new_parent());
        back.set_old_name(nn);
        back.set_new_parent(req.old_parent());
        back.set_new_name(on);
        Result<void> undone = co_await child(data)->rename(ctx, back);
        if (undone) co_return fail(pointed.error());
      }
      MLOG_WARN("{}: '{}' in {} renamed on set {}, but set {} could not point at it: {}",
                name(), nn, np.str(), data, owner, pointed.error().message());
      co_return fail(pointed.error());
    }
  }

  // 3. The replaced file, when its data was on a third set.
  if (exists && dst->set != data && dst->set != owner) {
    pb::UnlinkReq u;
    u.set_parent(req.new_parent());
    u.set_name(nn);
    u.set_gfid(dst->attr.gfid());
    Result<void> r = co_await child(dst->set)->unlink(ctx, u);
    if (!r && !gone(r.error())) {
      MLOG_WARN("{}: the data of the file renamed over '{}' stays on set {}: {}", name(), nn,
                dst->set, r.error().message());
    }
  }
  if (exists && dst->attr.nlink() <= 1) forget(gfid_of(dst->attr));

  // 4. The old name's link entry.
  if (src->link) {
    pb::UnlinkReq u;
    u.set_parent(req.old_parent());
    u.set_name(on);
    u.set_gfid(src->link->gfid());
    Result<void> r = co_await child(src->owner)->unlink(ctx, u);
    if (!r && !gone(r.error())) {
      MLOG_WARN("{}: link entry '{}' in {} stays on set {}: {}", name(), on, op.str(),
                src->owner, r.error().message());
    }
  }
  remember(g, data);
  co_return ok();
}

// ---- open files ----

Task<FdPtr> Distribute::open(OpContext ctx, Gfid gfid, uint32_t flags) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<int> w = co_await locate(ctx, gfid);
    if (!w) co_return fail(w.error());
    if (*w == kDir) co_return fail(EISDIR);
    Result<FdPtr> r = co_await child(*w)->open(ctx, gfid, flags);
    if (r) co_return wrap(gfid, flags, *w, std::move(*r));
    if (r.error().value != ESTALE || attempt > 0) co_return fail(r.error());
    forget(gfid);
  }
  co_return fail(ESTALE);
}

Task<Buffer> Distribute::read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) {
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Result<Buffer> r = co_await child(fset)->read(ctx, ffd, offset, size);
  co_return r;
}

Task<pb::WriteRsp> Distribute::write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) {
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Buffer again = data;  // shares the bytes: for the new set if the file has moved
  Result<pb::WriteRsp> r = co_await child(fset)->write(ctx, ffd, offset, std::move(data));
  // Rebalance moved the file while this descriptor was open: the copy written to is no
  // longer the file's (its mark says so, or, once its name is gone, replication cannot
  // reach it by GFID any more). Reopen it where it is now and write there.
  bool stale = !r && gone(r.error());
  if (r ? !moved_away(r->post()) : !stale) co_return r;
  Result<void> followed = co_await follow_move(ctx, fd, fc, fset);
  if (!followed) co_return stale ? fail(r.error()) : fail(followed.error());
  auto [nset, nfd] = fc->get();
  Result<pb::WriteRsp> redone = co_await child(nset)->write(ctx, nfd, offset, std::move(again));
  co_return redone;
}

asio::awaitable<Result<void>> Distribute::follow_move(OpContext ctx, FdPtr fd,
                                                      std::shared_ptr<FileCtx> fc, int from) {
  {
    std::lock_guard lock(fc->mu);
    if (fc->set != from) co_return ok();  // another write followed it already
  }
  forget(fd->gfid());
  Result<int> w = co_await locate(ctx, fd->gfid());
  if (!w) co_return fail(w.error());
  if (*w == kDir || *w == from) co_return fail(ESTALE);
  uint32_t flags = fd->flags() & ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Result<FdPtr> reopened = co_await child(*w)->open(ctx, fd->gfid(), flags);
  if (!reopened) co_return fail(reopened.error());
  FdPtr extra;
  {
    std::lock_guard lock(fc->mu);
    if (fc->set == from) {
      fc->retired.emplace_back(fc->set, std::move(fc->fd));
      fc->set = *w;
      fc->fd = std::move(*reopened);
    } else {
      extra = std::move(*reopened);  // raced with another write that followed it
    }
  }
  if (extra) co_await child(*w)->release(extra);
  MLOG_INFO("{}: {} moved to set {} while open; its descriptor follows", name(),
            fd->gfid().str(), *w);
  co_return ok();
}

Task<void> Distribute::flush(OpContext ctx, FdPtr fd) {
  if (fd && fd->is_dir()) co_return ok();
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Result<void> r = co_await child(fset)->flush(ctx, ffd);
  co_return r;
}

Task<void> Distribute::fsync(OpContext ctx, FdPtr fd, bool datasync) {
  if (fd && fd->is_dir()) {
    auto dc = fd->context<DirCtx>(this);
    if (!dc) co_return fail(EBADF);
    std::vector<std::pair<int, FdPtr>> open;
    {
      std::lock_guard lock(dc->mu);
      for (size_t i = 0; i < dc->sets.size(); ++i) {
        if (dc->sets[i].fd) open.emplace_back(static_cast<int>(i), dc->sets[i].fd);
      }
    }
    std::vector<Task<void>> ops;
    for (auto& [i, f] : open) ops.push_back(child(i)->fsync(ctx, f, datasync));
    std::vector<Result<void>> got = co_await all(std::move(ops));
    for (auto& r : got) {
      if (!r && !unreachable(r.error())) co_return r;
    }
    co_return ok();
  }
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Result<void> r = co_await child(fset)->fsync(ctx, ffd, datasync);
  co_return r;
}

Task<pb::Iatt> Distribute::fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                     uint64_t length) {
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Result<pb::Iatt> r = co_await child(fset)->fallocate(ctx, ffd, mode, offset, length);
  co_return r;
}

Task<pb::LkRsp> Distribute::lk(OpContext ctx, FdPtr fd, pb::LkReq req) {
  CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
  auto [fset, ffd] = fc->get();
  Result<pb::LkRsp> r = co_await child(fset)->lk(ctx, ffd, std::move(req));
  co_return r;
}

boost::asio::awaitable<void> Distribute::release(FdPtr fd) {
  if (!fd) co_return;
  if (fd->is_dir()) {
    auto dc = fd->context<DirCtx>(this);
    if (!dc) co_return;
    std::vector<std::pair<int, FdPtr>> open;
    {
      std::lock_guard lock(dc->mu);
      for (size_t i = 0; i < dc->sets.size(); ++i) {
        if (dc->sets[i].fd) open.emplace_back(static_cast<int>(i), std::move(dc->sets[i].fd));
      }
    }
    for (auto& [i, f] : open) co_await child(i)->release(f);
    co_return;
  }
  auto fc = fd->context<FileCtx>(this);
  if (!fc) co_return;
  std::vector<std::pair<int, FdPtr>> open;
  {
    std::lock_guard lock(fc->mu);
    open = std::move(fc->retired);
    if (fc->fd) open.emplace_back(fc->set, std::move(fc->fd));
  }
  for (auto& [i, f] : open) co_await child(i)->release(f);
}

// ---- directories ----

Task<FdPtr> Distribute::opendir(OpContext ctx, Gfid gfid) {
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w != kDir) co_return fail(ENOTDIR);
  std::vector<int> up = up_sets();
  std::vector<Task<FdPtr>> ops;
  for (int c : up) ops.push_back(child(c)->opendir(ctx, gfid));
  std::vector<Result<FdPtr>> got = co_await all(std::move(ops));
  auto dc = std::make_shared<DirCtx>();
  dc->sets.resize(children().size());
  bool any = false;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      dc->sets[up[i]].fd = std::move(*got[i]);
      any = true;
    } else if (error.value == ENOTCONN) {
      error = got[i].error();
    }
  }
  if (!any) co_return fail(error);
  auto fd = std::make_shared<Fd>(gfid, O_RDONLY, true);
  fd->set_context(this, dc);
  co_return fd;
}

bool Distribute::keep(const DirCtx& dc, const Gfid& dir, int set, const pb::Dirent& e) const {
  const std::string& n = e.name();
  if (n == "." || n == "..") return set == dc.dots;
  if (n.starts_with(kTempPrefix)) return false;
  bool directory = e.type() == DT_DIR || (e.has_attr() && is_dir(e.attr()));
  if (!directory) return true;
  // A directory is on every set: one lister per name, its owner when that set takes part.
  // While its bucket moves, the previous owner: a set added since the directory was made
  // holds it only once a lookup has repaired it there.
  uint32_t bucket = bucket_of(dir, n);
  uint32_t owner = map_.owner_of(bucket);
  int lister = dc.dots;
  if (auto previous = map_.previous_owner(bucket); previous && dc.listing[*previous]) {
    lister = static_cast<int>(*previous);
  } else if (dc.listing[owner]) {
    lister = static_cast<int>(owner);
  }
  return set == lister;
}

asio::awaitable<void> Distribute::fetch(OpContext ctx, Gfid dir, std::shared_ptr<DirCtx> dc,
                                        uint32_t size) {
  std::vector<int> active;
  std::vector<Task<pb::ReaddirRsp>> ops;
  for (size_t i = 0; i < dc->sets.size(); ++i) {
    auto& s = dc->sets[i];
    if (!s.fd || s.eof) continue;
    active.push_back(static_cast<int>(i));
    // Always with attributes: they tell directories and link entries apart.
    ops.push_back(child(static_cast<int>(i))->readdir(ctx, s.fd, s.cursor, size, true));
  }
  std::vector<Result<pb::ReaddirRsp>> got = co_await all(std::move(ops));
  std::vector<std::pair<int, pb::Dirent>> kept;
  std::vector<size_t> maybe_links;
  for (size_t k = 0; k < got.size(); ++k) {
    int i = active[k];
    auto& s = dc->sets[static_cast<size_t>(i)];
    if (!got[k]) {
      MLOG_WARN("{}: listing {} on set {} failed: {}; the listing goes on without it", name(),
                dir.str(), i, got[k].error().message());
      s.eof = true;
      continue;
    }
    if (got[k]->eof() || got[k]->entries_size() == 0) s.eof = true;
    for (auto& e : *got[k]->mutable_entries()) {
      s.cursor = e.offset();
      if (!keep(*dc, dir, i, e)) continue;
      // The old copy of a file rebalance is moving, for the moment before its name goes.
      if (e.has_attr() && moved_away(e.attr()) && e.attr().size() > 0) continue;
      if (e.has_attr() && maybe_link(e.attr())) maybe_links.push_back(kept.size());
      kept.emplace_back(i, std::move(e));
    }
  }
  if (!maybe_links.empty()) {
    std::vector<Task<std::string>> checks;
    for (size_t k : maybe_links) {
      checks.push_back(child(kept[k].first)
                           ->getxattr(ctx, gfid_of(kept[k].second.attr()), nullptr, kLinkXattr));
    }
    std::vector<Result<std::string>> links = co_await all(std::move(checks));
    for (size_t j = 0; j < links.size(); ++j) {
      if (links[j]) kept[maybe_links[j]].first = -1;  // a link entry: its data lists the name
    }
  }
  for (auto& [i, e] : kept) {
    if (i < 0) continue;
    e.set_offset(dc->first + dc->log.size());
    dc->log.push_back(std::move(e));
  }
}

Task<pb::ReaddirRsp> Distribute::readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                                         bool plus) {
  if (!fd || !fd->is_dir()) co_return fail(EBADF);
  auto dc = fd->context<DirCtx>(this);
  if (!dc) co_return fail(EBADF);
  // One listing step at a time per descriptor (the kernel already serialises them).
  for (;;) {
    {
      std::lock_guard lock(dc->mu);
      if (!dc->busy) {
        dc->busy = true;
        break;
      }
    }
    co_await pause(1ms);
  }
  struct Unbusy {
    DirCtx* dc;
    ~Unbusy() {
      std::lock_guard lock(dc->mu);
      dc->busy = false;
    }
  } unbusy{dc.get()};

  if (offset == 0) {
    // A listing starts (again): sets that came back since opendir take part.
    std::vector<int> reopen;
    for (size_t i = 0; i < dc->sets.size(); ++i) {
      if (!dc->sets[i].fd && up_[i]) reopen.push_back(static_cast<int>(i));
    }
    if (!reopen.empty()) {
      std::vector<Task<FdPtr>> ops;
      for (int c : reopen) ops.push_back(child(c)->opendir(ctx, fd->gfid()));
      std::vector<Result<FdPtr>> got = co_await all(std::move(ops));
      for (size_t i = 0; i < got.size(); ++i) {
        if (got[i]) dc->sets[static_cast<size_t>(reopen[i])].fd = std::move(*got[i]);
      }
    }
    dc->listing.assign(dc->sets.size(), false);
    dc->dots = -1;
    for (size_t i = 0; i < dc->sets.size(); ++i) {
      auto& s = dc->sets[i];
      s.cursor = 0;
      s.eof = !s.fd;
      dc->listing[i] = static_cast<bool>(s.fd);
      if (s.fd && dc->dots < 0) dc->dots = static_cast<int>(i);
    }
    dc->log.clear();
    dc->first = 1;
  } else {
    // The caller continues after an entry it received: one of the log's, or the last one.
    if (offset + 1 < dc->first || offset >= dc->first + dc->log.size()) co_return fail(EINVAL);
    while (!dc->log.empty() && dc->first <= offset) {
      dc->log.pop_front();
      ++dc->first;
    }
  }

  pb::ReaddirRsp out;
  size_t budget = 0;
  size_t next = 0;
  bool full = false;
  for (int round = 0; !full && round < 64; ++round) {
    while (next < dc->log.size()) {
      const pb::Dirent& e = dc->log[next];
      size_t cost = 32 + e.name().size() + (plus ? 128 : 0);
      if (budget + cost > size && out.entries_size() > 0) {
        full = true;
        break;
      }
      budget += cost;
      *out.add_entries() = e;
      ++next;
    }
    if (full) break;
    bool listing = std::any_of(dc->sets.begin(), dc->sets.end(),
                               [](const DirCtx::Set& s) { return s.fd && !s.eof; });
    if (!listing) break;
    co_await fetch(ctx, fd->gfid(), dc, std::max<uint32_t>(size, 4096));
  }
  bool more = next < dc->log.size() ||
              std::any_of(dc->sets.begin(), dc->sets.end(),
                          [](const DirCtx::Set& s) { return s.fd && !s.eof; });
  out.set_eof(!more);
  co_return out;
}

Task<pb::StatfsRsp> Distribute::statfs(OpContext ctx, Gfid gfid) {
  std::vector<Task<pb::StatfsRsp>> ops;
  for (int c : up_sets()) ops.push_back(child(c)->statfs(ctx, gfid));
  std::vector<Result<pb::StatfsRsp>> got = co_await all(std::move(ops));
  // The volume holds what its sets hold together, counted in the first one's block size.
  std::optional<pb::StatfsRsp> sum;
  for (auto& r : got) {
    if (!r) continue;
    if (!sum) {
      sum = std::move(*r);
      continue;
    }
    uint64_t unit = std::max<uint64_t>(sum->frsize(), 1);
    auto scaled = [&](uint64_t blocks) {
      return static_cast<uint64_t>(static_cast<unsigned __int128>(blocks) * r->frsize() / unit);
    };
    sum->set_blocks(sum->blocks() + scaled(r->blocks()));
    sum->set_bfree(sum->bfree() + scaled(r->bfree()));
    sum->set_bavail(sum->bavail() + scaled(r->bavail()));
    sum->set_files(sum->files() + r->files());
    sum->set_ffree(sum->ffree() + r->ffree());
    sum->set_favail(sum->favail() + r->favail());
    sum->set_namemax(std::min(sum->namemax(), r->namemax()));
  }
  if (!sum) co_return fail(ENOTCONN);
  co_return std::move(*sum);
}

// ---- extended attributes ----

Task<std::string> Distribute::getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  if (reserved(name)) co_return fail(ENODATA);
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<std::string> r = co_await child(fset)->getxattr(ctx, gfid, ffd, std::move(name));
    co_return r;
  }
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  int from = *w == kDir ? first_up() : *w;
  if (from < 0) co_return fail(ENOTCONN);
  Result<std::string> r = co_await child(from)->getxattr(ctx, gfid, nullptr, std::move(name));
  co_return r;
}

Task<void> Distribute::setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                                std::string value, int flags) {
  if (reserved(name)) co_return fail(EPERM);
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<void> r = co_await child(fset)->setxattr(ctx, gfid, ffd, std::move(name),
                                                       std::move(value), flags);
    co_return r;
  }
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w != kDir) {
    Result<void> r =
        co_await child(*w)->setxattr(ctx, gfid, nullptr, std::move(name), std::move(value), flags);
    co_return r;
  }
  std::vector<Task<void>> ops;
  for (int c : up_sets()) ops.push_back(child(c)->setxattr(ctx, gfid, nullptr, name, value, flags));
  std::vector<Result<void>> got = co_await all(std::move(ops));
  Errno error(ENOTCONN);
  bool any = false;
  for (auto& r : got) {
    if (r) {
      any = true;
    } else if (error.value == ENOTCONN) {
      error = r.error();
    }
  }
  if (!any) co_return fail(error);
  co_return ok();
}

Task<std::vector<std::string>> Distribute::listxattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  Result<std::vector<std::string>> r = fail(ENOTCONN);
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    r = co_await child(fset)->listxattr(ctx, gfid, ffd);
  } else {
    Result<int> w = co_await locate(ctx, gfid);
    if (!w) co_return fail(w.error());
    int from = *w == kDir ? first_up() : *w;
    if (from < 0) co_return fail(ENOTCONN);
    r = co_await child(from)->listxattr(ctx, gfid, nullptr);
  }
  if (!r) co_return r;
  std::erase_if(*r, [](const std::string& x) { return reserved(x); });
  co_return r;
}

Task<void> Distribute::removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  if (reserved(name)) co_return fail(EPERM);
  if (fd && !fd->is_dir()) {
    CO_ASSIGN_OR_RETURN(auto fc, file_ctx(fd));
    auto [fset, ffd] = fc->get();
    Result<void> r = co_await child(fset)->removexattr(ctx, gfid, ffd, std::move(name));
    co_return r;
  }
  Result<int> w = co_await locate(ctx, gfid);
  if (!w) co_return fail(w.error());
  if (*w != kDir) {
    Result<void> r = co_await child(*w)->removexattr(ctx, gfid, nullptr, std::move(name));
    co_return r;
  }
  std::vector<Task<void>> ops;
  for (int c : up_sets()) ops.push_back(child(c)->removexattr(ctx, gfid, nullptr, name));
  std::vector<Result<void>> got = co_await all(std::move(ops));
  Errno error(ENOTCONN);
  bool any = false;
  for (auto& r : got) {
    if (r) {
      any = true;
    } else if (error.value == ENOTCONN) {
      error = r.error();
    }
  }
  if (!any) co_return fail(error);
  co_return ok();
}

// ---- internal locks ----

Task<void> Distribute::inodelk(OpContext ctx, pb::InodelkReq req) {
  Gfid g = Gfid::from_bytes(req.gfid()).value_or(Gfid());
  Result<int> w = co_await locate(ctx, g);
  if (!w) co_return fail(w.error());
  int to = *w == kDir ? first_up() : *w;
  if (to < 0) co_return fail(ENOTCONN);
  Result<void> r = co_await child(to)->inodelk(ctx, std::move(req));
  co_return r;
}

Task<void> Distribute::entrylk(OpContext ctx, pb::EntrylkReq req) {
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  int to = req.name().empty() ? first_up() : static_cast<int>(owner_of(parent, req.name()));
  if (to < 0) co_return fail(ENOTCONN);
  Result<void> r = co_await child(to)->entrylk(ctx, std::move(req));
  co_return r;
}

// ---- rebalance ----

asio::awaitable<MoveStats> Distribute::move_bucket(uint32_t bucket) {
  std::optional<uint32_t> previous = map_.previous_owner(bucket);
  if (misconfigured_ || !previous) co_return MoveStats{};
  MoveStats st = co_await move_entries(bucket, static_cast<int>(*previous),
                                       static_cast<int>(map_.owner_of(bucket)));
  co_return st;
}

asio::awaitable<MoveStats> Distribute::drain_bucket(uint32_t bucket, uint32_t set) {
  int from = static_cast<int>(set), to = static_cast<int>(map_.owner_of(bucket));
  if (misconfigured_ || from == to || from >= static_cast<int>(children().size())) {
    co_return MoveStats{};
  }
  MoveStats st = co_await move_entries(bucket, from, to);
  co_return st;
}

asio::awaitable<MoveStats> Distribute::move_entries(uint32_t bucket, int from, int to) {
  MoveStats st;
  if (!up_[from] || !up_[to]) {
    ++st.failed;
    co_return st;
  }
  OpContext ctx;
  std::vector<pb::BucketEntry> entries;
  pb::BucketListReq req;
  req.set_bucket(bucket);
  req.set_max(10000);
  for (;;) {
    Result<pb::BucketListRsp> page = co_await child(from)->list_bucket(ctx, req);
    if (!page) {
      MLOG_WARN("{}: cannot list bucket {} on set {}: {}", name(), bucket, from,
                page.error().message());
      ++st.failed;
      co_return st;
    }
    for (auto& e : *page->mutable_entries()) entries.push_back(std::move(e));
    if (page->eof() || page->entries().empty()) break;
    req.set_cursor(page->cursor());
  }
  for (const auto& e : entries) {
    if ((e.type() & S_IFMT) == S_IFDIR || e.name().starts_with(kTempPrefix)) continue;
    Gfid parent = Gfid::from_bytes(e.parent()).value_or(Gfid());
    uint64_t bytes = 0;
    Moved m = co_await move_name(parent, e.name(), from, to, &bytes);
    st.bytes += bytes;
    // Names gone meanwhile and directories are not this bucket's to move.
    if (m != Moved::kGone && m != Moved::kDirectory) ++st.scanned;
    if (m == Moved::kMoved) ++st.moved;
    if (m == Moved::kFailed) ++st.failed;
    if (m == Moved::kSkipped) ++st.skipped;
  }
  co_return st;
}

asio::awaitable<Distribute::Moved> Distribute::move_name(Gfid parent, std::string entry, int from,
                                                         int to, uint64_t* bytes) {
  OpContext ctx;
  Result<pb::Iatt> src = co_await child(from)->lookup(ctx, parent, entry);
  if (!src) co_return gone(src.error()) ? Moved::kGone : Moved::kFailed;
  if (is_dir(*src)) co_return Moved::kDirectory;
  Gfid g = gfid_of(*src);
  auto remove_old = [&](Gfid which) -> Task<void> {
    pb::UnlinkReq u;
    u.set_parent(raw(parent));
    u.set_name(entry);
    u.set_gfid(raw(which));
    return child(from)->unlink(ctx, u);
  };

  if (maybe_link(*src)) {
    Result<std::string> target = co_await child(from)->getxattr(ctx, g, nullptr, kLinkXattr);
    if (target) {
      // A link entry: the new owner gets its own (unless it holds the data itself).
      int t = child_named(*target);
      if (t >= 0 && t != to) {
        Result<pb::Iatt> made = co_await make_link(ctx, to, parent, entry, t);
        if (!made && made.error().value != EEXIST) co_return Moved::kFailed;
      }
      Result<void> removed = co_await remove_old(g);
      co_return removed || gone(removed.error()) ? Moved::kMoved : Moved::kFailed;
    }
  }
  uint32_t type = src->mode() & S_IFMT;
  // Special files, and files with other names (which may live in other buckets: moving one
  // name would split the inode), stay where they are; the new owner gets a link entry to
  // them, so the name still resolves once the bucket settles and only the new owner is asked.
  if ((type != S_IFREG && type != S_IFLNK) || src->nlink() > 1) {
    Result<pb::Iatt> pointer = co_await make_link(ctx, to, parent, entry, from);
    if (!pointer && pointer.error().value == EEXIST) {
      Result<pb::Iatt> there = co_await child(to)->lookup(ctx, parent, entry);
      if (there && maybe_link(*there)) co_return Moved::kSkipped;
      co_return Moved::kFailed;
    }
    co_return pointer ? Moved::kSkipped : Moved::kFailed;
  }

  std::string temp = temp_name();
  auto rename_in = [&]() -> Task<void> {
    pb::RenameReq r;
    r.set_old_parent(raw(parent));
    r.set_old_name(temp);
    r.set_new_parent(raw(parent));
    r.set_new_name(entry);
    return child(to)->rename(ctx, r);
  };
  // What the new owner has under the name: nothing, a link entry to the old owner (a rename
  // made it), or this file already (an interrupted move renamed it in).
  bool already_there = false;
  Result<pb::Iatt> there = co_await child(to)->lookup(ctx, parent, entry);
  if (there) {
    if (gfid_of(*there) == g) {
      already_there = true;
    } else if (!maybe_link(*there)) {
      MLOG_WARN("{}: cannot move '{}' in {} to set {}: another inode has the name there", name(),
                entry, parent.str(), to);
      co_return Moved::kFailed;
    }
  } else if (!gone(there.error())) {
    co_return Moved::kFailed;
  }

  if (type == S_IFLNK) {
    if (!already_there) {
      Result<std::string> target = co_await child(from)->readlink(ctx, g);
      if (!target) co_return Moved::kFailed;
      pb::SymlinkReq req;
      req.set_parent(raw(parent));
      req.set_name(temp);
      req.set_gfid(raw(g));
      req.set_target(*target);
      req.set_uid(src->uid());
      req.set_gid(src->gid());
      Result<pb::Iatt> made = co_await child(to)->symlink(ctx, req);
      if (!made) co_return Moved::kFailed;
      Result<void> renamed = co_await rename_in();
      if (!renamed) co_return Moved::kFailed;
    }
    remember(g, to);
    Result<void> removed = co_await remove_old(g);
    co_return removed || gone(removed.error()) ? Moved::kMoved : Moved::kFailed;
  }

  // A regular file: under its data lock, so no client write lands between the copy and the
  // mark on the old copy; writers that had it open find the mark on their next write.
  auto* replica = dynamic_cast<afr::Replicate*>(child(from));
  if (!replica) co_return Moved::kSkipped;
  Result<void> locked = co_await replica->lock_data(g);
  if (!locked) co_return Moved::kFailed;
  Moved outcome = Moved::kFailed;
  do {
    Result<pb::Iatt> now = co_await child(from)->lookup(ctx, parent, entry);
    if (!now || gfid_of(*now) != g) {
      outcome = now || gone(now.error()) ? Moved::kGone : Moved::kFailed;
      break;
    }
    if (!already_there) {
      pb::CreateReq req;
      req.set_parent(raw(parent));
      req.set_name(temp);
      req.set_gfid(raw(g));
      req.set_mode(now->mode() & 07777);
      req.set_flags(O_RDWR);
      req.set_uid(now->uid());
      req.set_gid(now->gid());
      Result<Created> made = co_await child(to)->create(ctx, req);
      if (!made) {
        MLOG_WARN("{}: cannot move '{}' in {} to set {}: {}", name(), entry, parent.str(), to,
                  made.error().message());
        break;
      }
      Result<uint64_t> copied = co_await copy_data(g, from, to, made->fd, now->size());
      co_await child(to)->release(made->fd);
      if (!copied) {
        MLOG_WARN("{}: copying '{}' in {} to set {}: {}", name(), entry, parent.str(), to,
                  copied.error().message());
        pb::UnlinkReq undo;
        undo.set_parent(raw(parent));
        undo.set_name(temp);
        undo.set_gfid(raw(g));
        Result<void> removed = co_await child(to)->unlink(ctx, undo);
        (void)removed;
        break;
      }
      *bytes = *copied;
      Result<std::vector<std::string>> xattrs = co_await child(from)->listxattr(ctx, g, nullptr);
      bool xattrs_ok = xattrs.has_value();
      if (xattrs) {
        for (const auto& x : *xattrs) {
          if (reserved(x)) continue;
          Result<std::string> v = co_await child(from)->getxattr(ctx, g, nullptr, x);
          if (!v) continue;
          Result<void> set = co_await child(to)->setxattr(ctx, g, nullptr, x, *v, 0);
          xattrs_ok &= set.has_value();
        }
      }
      pb::SetattrReq times;
      times.set_valid(pb::SET_MODE | pb::SET_UID | pb::SET_GID | pb::SET_ATIME | pb::SET_MTIME);
      times.set_mode(now->mode() & 07777);
      times.set_uid(now->uid());
      times.set_gid(now->gid());
      times.set_atime_sec(now->atime_sec());
      times.set_atime_nsec(now->atime_nsec());
      times.set_mtime_sec(now->mtime_sec());
      times.set_mtime_nsec(now->mtime_nsec());
      Result<AttrPair> stamped = co_await child(to)->setattr(ctx, g, nullptr, times);
      if (!xattrs_ok || !stamped) {
        pb::UnlinkReq undo;
        undo.set_parent(raw(parent));
        undo.set_name(temp);
        undo.set_gfid(raw(g));
        Result<void> removed = co_await child(to)->unlink(ctx, undo);
        (void)removed;
        break;
      }
      Result<void> renamed = co_await rename_in();
      if (!renamed) break;
    }
    remember(g, to);
    pb::SetattrReq mark;
    mark.set_valid(pb::SET_MODE);
    mark.set_mode(S_ISVTX);
    Result<AttrPair> marked = co_await child(from)->setattr(ctx, g, nullptr, mark);
    if (!marked) break;
    Result<void> removed = co_await remove_old(g);
    outcome = removed || gone(removed.error()) ? Moved::kMoved : Moved::kFailed;
  } while (false);
  co_await replica->unlock_data(g);
  co_return outcome;
}

asio::awaitable<Result<uint64_t>> Distribute::copy_data(Gfid gfid, int from, int to,
                                                        FdPtr to_fd, uint64_t size) {
  OpContext ctx;
  Result<FdPtr> in = co_await child(from)->open(ctx, gfid, O_RDONLY);
  if (!in) co_return fail(in.error());
  constexpr uint32_t kChunk = 1 << 20;
  uint64_t done = 0;
  Result<void> status = ok();
  while (done < size) {
    uint32_t want = static_cast<uint32_t>(std::min<uint64_t>(kChunk, size - done));
    Result<Buffer> got = co_await child(from)->read(ctx, *in, done, want);
    if (!got) {
      status = fail(got.error());
      break;
    }
    if (got->size() == 0) break;
    size_t n = got->size();
    Result<pb::WriteRsp> put = co_await child(to)->write(ctx, to_fd, done, std::move(*got));
    if (!put || put->written() != n) {
      status = fail(put ? Errno(EIO) : put.error());
      break;
    }
    done += n;
  }
  co_await child(from)->release(*in);
  if (!status) co_return fail(status.error());
  co_return done;
}

asio::awaitable<Result<uint64_t>> Distribute::repair_directories() {
  OpContext ctx;
  std::deque<Gfid> todo{Gfid::root()};
  uint64_t visited = 0;
  while (!todo.empty()) {
    Gfid dir = todo.front();
    todo.pop_front();
    ++visited;
    Result<FdPtr> fd = co_await opendir(ctx, dir);
    if (!fd) co_return fail(fd.error());
    uint64_t offset = 0;
    std::vector<std::string> subdirs;
    for (;;) {
      Result<pb::ReaddirRsp> page = co_await readdir(ctx, *fd, offset, 64 * 1024, true);
      if (!page) {
        co_await release(*fd);
        co_return fail(page.error());
      }
      for (const auto& e : page->entries()) {
        offset = e.offset();
        if (e.name() == "." || e.name() == "..") continue;
        bool directory = e.type() == DT_DIR || (e.has_attr() && is_dir(e.attr()));
        if (directory) subdirs.push_back(e.name());
      }
      if (page->eof() || page->entries().empty()) break;
    }
    co_await release(*fd);
    for (const auto& n : subdirs) {
      // The lookup creates the directory on every set that lacks it.
      Result<pb::Iatt> a = co_await lookup(ctx, dir, n);
      if (a && is_dir(*a)) todo.push_back(gfid_of(*a));
    }
  }
  co_return visited;
}

}  // namespace mortar::xl::dht
