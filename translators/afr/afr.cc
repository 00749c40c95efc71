#include "translators/afr/afr.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <thread>

#include "common/log.h"
#include "translators/fanout.h"

namespace mortar::xl::afr {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string raw(const Gfid& g) { return std::string(g.bytes()); }

int kind_index(Kind k) { return static_cast<int>(k); }

Kind kind_of_lock(int lock) {
  return lock == 0 ? Kind::kData : lock == 1 ? Kind::kMetadata : Kind::kEntry;
}

// A changelog delta over `n` replica slots: +1 dirty for `kind` when `dirty`, +1 pending for
// `kind` against each of `blame`.
pb::Changelog delta(size_t n, Kind kind, int dirty, const std::vector<int>& blame,
                    std::initializer_list<Kind> blame_kinds = {}) {
  pb::Changelog d;
  for (size_t i = 0; i < n * 3; ++i) d.add_pending(0);
  for (int k = 0; k < 3; ++k) d.add_dirty(k == kind_index(kind) ? dirty : 0);
  for (int b : blame) {
    if (blame_kinds.size() == 0) {
      d.set_pending(b * 3 + kind_index(kind), 1);
    } else {
      for (Kind k : blame_kinds) d.set_pending(b * 3 + kind_index(k), 1);
    }
  }
  return d;
}

pb::ChangelogReq mark(const Gfid& g, pb::Changelog d) {
  pb::ChangelogReq m;
  m.set_gfid(raw(g));
  *m.mutable_delta() = std::move(d);
  return m;
}

// The reply never reached us: the brick may or may not have applied the request.
bool undelivered(const Errno& e) { return e.value == ENOTCONN || e.value == ETIMEDOUT; }

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  auto waiting = t.async_wait(asio::as_tuple(asio::use_awaitable));
  auto [ec] = co_await std::move(waiting);
  (void)ec;
}

constexpr auto kConnectGrace = 2s;

uint64_t random_owner() {
  uint64_t v = 0;
  while (::getrandom(&v, sizeof v, 0) != sizeof v) {
  }
  return v | 1;  // never 0
}

}  // namespace

// ---- per-inode state ----

struct Replicate::Session {
  enum class State { kIdle, kAcquiring, kHeld, kReleasing };
  State state = State::kIdle;
  std::vector<bool> locked;     // children holding the lock
  std::vector<int> dirty;       // our dirty marks applied on each child
  std::vector<bool> dirty_sent; // a +1 is on its way to that child
  std::vector<bool> blamed;     // children already blamed in this session
  int users = 0;                // transactions using the lock now
  uint64_t generation = 0;
  bool release_asap = false;    // contention, close, or eager locking off
  Clock::time_point last_use{};
};

struct Replicate::Inode {
  std::mutex mu;
  std::array<std::vector<bool>, 3> readable;  // per kind; empty: not known yet
  std::array<Session, 3> sessions;            // data, metadata, entry locks
  std::vector<std::pair<uint64_t, uint64_t>> writing;  // data ranges in flight [start, end)
  Clock::time_point last_used{};
};

// The children's descriptors of one open file or directory.
struct Replicate::ChildFds {
  std::mutex mu;
  std::vector<FdPtr> fds;  // GUARDED_BY(mu); null where not open
  // Directory listings: where the listing stands, and on which child.
  int dir_child = -1;
  uint64_t child_offset = 0;
  uint64_t afr_offset = 0;
  std::set<std::string> listed;  // names handed out, to fail over to another child
};

// ---- registry ----

std::vector<OptionSpec> Replicate::option_schema() {
  return {
      {"quorum-type", OptionKind::kEnum, "none",
       "Writes need: none = any replica; auto = a majority (or half with the first); fixed = "
       "quorum-count replicas",
       false, 0, 0, {"none", "auto", "fixed"}},
      {"quorum-count", OptionKind::kInt, "0", "Replicas that must be up when quorum-type is fixed",
       false, 0, 3},
      {"arbiter-count", OptionKind::kInt, "0", "1: the last child is an arbiter (no data)", false,
       0, 1},
      {"favorite-child-policy", OptionKind::kEnum, "none",
       "Resolve split-brain automatically: none, size, mtime, ctime or majority", false, 0, 0,
       {"none", "size", "mtime", "ctime", "majority"}},
      {"eager-lock", OptionKind::kBool, "on", "Keep locks and dirty marks across a burst"},
      {"post-op-delay-secs", OptionKind::kDuration, "1",
       "Idle time after which an eagerly held lock is given back", false, 0, 60000},
      {"data-self-heal-algorithm", OptionKind::kEnum, "diff",
       "diff: move only blocks whose checksums differ; full: copy whole files", false, 0, 0,
       {"diff", "full"}},
  };
}

Checked<Config> Replicate::configure(const Options& o) {
  Config c;
  const std::string& q = o.str("quorum-type");
  c.quorum = q == "auto" ? Config::Quorum::kAuto
             : q == "fixed" ? Config::Quorum::kFixed
                            : Config::Quorum::kNone;
  c.quorum_count = static_cast<int>(o.integer("quorum-count"));
  c.arbiter = o.integer("arbiter-count") == 1;
  auto policy = parse_policy(o.str("favorite-child-policy"));
  if (!policy) return invalid(policy.error());
  c.favorite_child = *policy;
  c.eager_lock = o.flag("eager-lock");
  c.post_op_delay = o.duration("post-op-delay-secs");
  c.diff_heal = o.str("data-self-heal-algorithm") == "diff";
  return c;
}

void register_replicate(Registry& registry) {
  registry.add(TranslatorType{
      "cluster/replicate", "Replicates every file on 2 or 3 children", Replicate::option_schema(),
      2, 3,
      [](const std::string& name, const Options& options,
         const GraphContext& context) -> Checked<std::unique_ptr<Translator>> {
        auto config = Replicate::configure(options);
        if (!config) return invalid(config.error());
        return std::make_unique<Replicate>(name, *config, context);
      }});
}

Replicate::Replicate(std::string name, Config config, const GraphContext& context)
    : Translator(std::move(name), "cluster/replicate"),
      config_(config),
      executor_(context.executor),
      owner_(random_owner()),
      up_(new std::atomic<bool>[3]) {
  for (int i = 0; i < 3; ++i) up_[i] = false;
}

Replicate::~Replicate() {
  stopped_ = true;
  lifetime_->alive = false;
  // Let background post-ops finish: they use this translator and its children. A graph is
  // destroyed off the I/O threads (or after they stopped), so waiting cannot block them.
  for (int i = 0; i < 500 && lifetime_->running.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Replicate::spawn_background(asio::awaitable<void> work) {
  if (!lifetime_->alive) return;
  ++lifetime_->running;
  auto life = lifetime_;
  asio::co_spawn(executor_, std::move(work), [life](std::exception_ptr) { --life->running; });
}

void Replicate::start() { started_ = Clock::now(); }

void Replicate::stop() { stopped_ = true; }

bool Replicate::is_up() const {
  bool any = false, every = true;
  for (size_t i = 0; i < children().size(); ++i) {
    if (up_[i] && !is_arbiter(i)) any = true;
    if (!up_[i]) every = false;
  }
  // Right after start, wait a moment for every replica: the first operations would otherwise
  // blame replicas that were merely still connecting, and queue needless heals. A replica lost
  // after all were up once is a real outage, not a start: the others carry on at once.
  return any && (every || all_seen_up_.load() || Clock::now() - started_ > kConnectGrace);
}

void Replicate::notify(Event event, Translator* from, const EventInfo& info) {
  int child = -1;
  for (size_t i = 0; i < children().size(); ++i) {
    if (children()[i] == from) child = static_cast<int>(i);
  }
  if (child < 0) return;
  if (event == Event::kLockContention) {
    std::shared_ptr<Inode> ino;
    {
      std::lock_guard lock(mu_);
      auto it = inodes_.find(info.gfid);
      if (it != inodes_.end()) ino = it->second;
    }
    if (!ino) return;
    LockKind kind = info.entry ? kEntryLock
                    : info.domain == domain(kMetadataLock) ? kMetadataLock
                                                           : kDataLock;
    if (info.domain != domain(kind)) return;  // another translator's lock, or heal's
    bool release_now;
    {
      std::lock_guard lock(ino->mu);
      Session& s = ino->sessions[kind];
      // While acquiring too: the waiter may be queued behind the children this client has
      // already locked, and acquire() keeps the flag.
      if (s.state != Session::State::kIdle) s.release_asap = true;
      release_now = s.state == Session::State::kHeld && s.users == 0;
    }
    if (release_now) spawn_background(release_lock(ino, info.gfid, kind));
    return;
  }
  bool was_up = is_up();
  up_[child] = event == Event::kChildUp;
  if (event == Event::kChildUp && up_children().size() == children().size()) all_seen_up_ = true;
  bool now_up = is_up();
  if (event == Event::kChildDown) {
    MLOG_INFO("{}: child {} ({}) is down", name(), child, from->name());
  }
  if (was_up != now_up && parent()) parent()->notify(now_up ? Event::kChildUp : Event::kChildDown, this);
  // A child coming back matters to heal even when the set was up all along.
  if (event == Event::kChildUp && was_up == now_up && parent()) {
    parent()->notify(Event::kChildUp, this);
  }
}

std::shared_ptr<Replicate::Inode> Replicate::inode(const Gfid& gfid) {
  std::lock_guard lock(mu_);
  auto& slot = inodes_[gfid];
  if (!slot) {
    slot = std::make_shared<Inode>();
    size_t n = children().size();
    for (auto& s : slot->sessions) {
      s.locked.assign(n, false);
      s.dirty.assign(n, 0);
      s.dirty_sent.assign(n, false);
      s.blamed.assign(n, false);
    }
    // Bound the table: forget idle inodes no lock session is using.
    if (inodes_.size() > 65536) {
      auto now = Clock::now();
      for (auto it = inodes_.begin(); it != inodes_.end();) {
        auto& ino = it->second;
        bool idle = it->first != gfid && ino.use_count() == 1 &&
                    std::all_of(ino->sessions.begin(), ino->sessions.end(),
                                [](const Session& s) { return s.state == Session::State::kIdle; }) &&
                    now - ino->last_used > 10s;
        it = idle ? inodes_.erase(it) : std::next(it);
      }
    }
  }
  slot->last_used = Clock::now();
  return slot;
}

std::vector<int> Replicate::up_children() const {
  std::vector<int> up;
  for (size_t i = 0; i < children().size(); ++i) {
    if (up_[i]) up.push_back(static_cast<int>(i));
  }
  return up;
}

bool Replicate::data_writable(const std::shared_ptr<Inode>& ino, const Gfid& gfid) const {
  return !config_.arbiter || read_child(ino, gfid, Kind::kData) >= 0;
}

bool Replicate::quorum_met(const std::vector<int>& up) const {
  size_t n = children().size();
  switch (config_.quorum) {
    case Config::Quorum::kNone:
      return std::any_of(up.begin(), up.end(), [&](int c) { return !is_arbiter(c); });
    case Config::Quorum::kAuto:
      return up.size() * 2 > n ||
             (up.size() * 2 == n && std::find(up.begin(), up.end(), 0) != up.end());
    case Config::Quorum::kFixed:
      return static_cast<int>(up.size()) >= std::max(1, config_.quorum_count);
  }
  return false;
}

std::string Replicate::domain(LockKind kind) const {
  return kind == kMetadataLock ? name() + ":metadata" : name();
}

// ---- locks, pre-op and post-op ----

asio::awaitable<Result<void>> Replicate::lock_children(Gfid gfid, LockKind kind,
                                                      std::vector<int> children,
                                                      std::vector<int>& locked, uint64_t owner) {
  auto lock_one = [this, gfid, kind, owner](int c, bool blocking) -> Task<void> {
    OpContext ctx;
    ctx.deadline = Clock::now() + 120s;
    if (kind == kEntryLock) {
      pb::EntrylkReq req;
      req.set_domain(domain(kind));
      req.set_parent(raw(gfid));
      req.set_type(pb::WRITE_LOCK);
      req.set_blocking(blocking);
      req.set_owner(owner);
      return this->children()[c]->entrylk(ctx, req);
    }
    pb::InodelkReq req;
    req.set_domain(domain(kind));
    req.set_gfid(raw(gfid));
    req.set_type(pb::WRITE_LOCK);
    req.set_blocking(blocking);
    req.set_owner(owner);
    return this->children()[c]->inodelk(ctx, req);
  };
  // Everyone tries all children at once without waiting; if that fails somewhere, give back
  // what was taken and queue for the locks one child at a time, in child order, so two
  // clients cannot each hold half of the set.
  std::vector<Task<void>> tries;
  for (int c : children) tries.push_back(lock_one(c, false));
  std::vector<Result<void>> first = co_await all(std::move(tries));
  locked.clear();
  bool contended = false;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < children.size(); ++i) {
    if (first[i]) {
      locked.push_back(children[i]);
    } else if (first[i].error().value == EAGAIN) {
      contended = true;
    }
  }
  if (!contended) co_return ok();
  co_await unlock_children(gfid, kind, locked, owner);
  locked.clear();
  std::vector<int> abandoned;
  for (int c : children) {
    Result<void> r = co_await lock_one(c, true);
    if (r) {
      locked.push_back(c);
    } else {
      error = r.error();
      // A wait that ran out of time may still be queued on the brick and granted later, to
      // an owner that no longer expects it: an unlock withdraws the wait (or drops the lock).
      if (r.error().value != ENOTCONN) abandoned.push_back(c);
    }
  }
  if (!abandoned.empty()) co_await unlock_children(gfid, kind, abandoned, owner);
  if (locked.empty()) co_return fail(error);
  co_return ok();
}

asio::awaitable<void> Replicate::unlock_children(Gfid gfid, LockKind kind,
                                                 std::vector<int> children, uint64_t owner,
                                                 std::vector<std::optional<pb::ChangelogReq>> posts) {
  std::vector<Task<void>> ops;
  for (size_t i = 0; i < children.size(); ++i) {
    int c = children[i];
    OpContext ctx;
    const std::optional<pb::ChangelogReq>* post = i < posts.size() ? &posts[i] : nullptr;
    if (kind == kEntryLock) {
      pb::EntrylkReq req;
      req.set_domain(domain(kind));
      req.set_parent(raw(gfid));
      req.set_type(pb::UNLOCK);
      req.set_owner(owner);
      if (post && *post) *req.add_post_op() = **post;
      ops.push_back(this->children()[c]->entrylk(ctx, req));
    } else {
      pb::InodelkReq req;
      req.set_domain(domain(kind));
      req.set_gfid(raw(gfid));
      req.set_type(pb::UNLOCK);
      req.set_owner(owner);
      if (post && *post) *req.add_post_op() = **post;
      ops.push_back(this->children()[c]->inodelk(ctx, req));
    }
  }
  std::vector<Result<void>> done = co_await all(std::move(ops));
  (void)done;
}

Task<void> Replicate::lock_data(Gfid gfid) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  std::vector<int> locked;
  Result<void> r = co_await lock_children(gfid, kDataLock, up, locked, mover_owner());
  if (!r) co_return fail(r.error());
  if (locked.size() < up.size()) {
    // A replica that did not lock could take a client's write meanwhile.
    co_await unlock_children(gfid, kDataLock, locked, mover_owner());
    co_return fail(EAGAIN);
  }
  co_return ok();
}

asio::awaitable<void> Replicate::unlock_data(Gfid gfid) {
  std::vector<int> all_children;
  for (size_t i = 0; i < children().size(); ++i) all_children.push_back(static_cast<int>(i));
  co_await unlock_children(gfid, kDataLock, all_children, mover_owner());
}

Task<pb::BucketListRsp> Replicate::list_bucket(OpContext ctx, pb::BucketListReq req) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  std::map<std::pair<std::string, std::string>, pb::BucketEntry> merged;
  for (int c : up) {
    pb::BucketListReq page_req;
    page_req.set_bucket(req.bucket());
    page_req.set_max(10000);
    for (;;) {
      Result<pb::BucketListRsp> page = co_await children()[c]->list_bucket(ctx, page_req);
      if (!page) co_return fail(page.error());
      for (auto& e : *page->mutable_entries()) {
        auto key = std::make_pair(e.parent(), e.name());
        merged.emplace(std::move(key), std::move(e));
      }
      if (page->eof() || page->entries().empty()) break;
      page_req.set_cursor(page->cursor());
    }
  }
  pb::BucketListRsp rsp;
  for (auto& [key, e] : merged) *rsp.add_entries() = std::move(e);
  rsp.set_eof(true);
  co_return rsp;
}

asio::awaitable<Result<Replicate::Held>> Replicate::acquire(std::shared_ptr<Inode> ino, Gfid gfid,
                                                           LockKind kind, OpContext ctx) {
  size_t n = children().size();
  Kind k = kind_of_lock(kind);
  for (int spins = 0;; ++spins) {
    bool do_lock = false;
    {
      std::lock_guard lock(ino->mu);
      Session& s = ino->sessions[kind];
      if (s.state == Session::State::kHeld && !s.release_asap) {
        Held held;
        std::vector<int> down;
        for (size_t c = 0; c < n; ++c) {
          if (!up_[c] || !s.locked[c]) {
            if (!s.blamed[c]) down.push_back(static_cast<int>(c));
          }
        }
        for (size_t c = 0; c < n; ++c) {
          if (!s.locked[c] || !up_[c]) continue;
          OpContext cc = ctx;
          bool add_dirty = s.dirty[c] == 0 && !s.dirty_sent[c];
          if (add_dirty || !down.empty()) {
            cc.pre_op.push_back(mark(gfid, delta(n, k, add_dirty ? 1 : 0, down)));
          }
          if (add_dirty) s.dirty_sent[c] = true;
          held.children.push_back(static_cast<int>(c));
          held.contexts.push_back(std::move(cc));
        }
        if (held.children.empty()) {
          s.release_asap = true;  // every holder is gone: lock again
        } else {
          for (int d : down) s.blamed[d] = true;
          ++s.users;
          s.last_use = Clock::now();
          co_return held;
        }
      }
      if (s.state == Session::State::kIdle) {
        s.state = Session::State::kAcquiring;
        do_lock = true;
      }
    }
    if (do_lock) {
      std::vector<int> locked;
      Result<void> r = co_await lock_children(gfid, kind, up_children(), locked, owner_);
      std::lock_guard lock(ino->mu);
      Session& s = ino->sessions[kind];
      if (!r || locked.empty()) {
        s.state = Session::State::kIdle;
        s.release_asap = false;
        co_return fail(r ? Errno(ENOTCONN) : r.error());
      }
      s.state = Session::State::kHeld;
      s.locked.assign(n, false);
      for (int c : locked) s.locked[c] = true;
      s.dirty.assign(n, 0);
      s.dirty_sent.assign(n, false);
      s.blamed.assign(n, false);
      s.users = 0;
      // A contention event that came while locking stands: another client waits for a child
      // this one locked first. Dropping it would leave that client waiting until this one
      // idles for post-op-delay-secs, however long that takes.
      s.release_asap = s.release_asap || !config_.eager_lock;
      ++s.generation;
      // An uneager lock is for this transaction alone.
      if (s.release_asap) {
        Held held;
        std::vector<int> down;
        for (size_t c = 0; c < n; ++c) {
          if (!s.locked[c]) down.push_back(static_cast<int>(c));
        }
        for (int c : locked) {
          OpContext cc = ctx;
          cc.pre_op.push_back(mark(gfid, delta(n, k, 1, down)));
          s.dirty_sent[c] = true;
          held.children.push_back(c);
          held.contexts.push_back(std::move(cc));
        }
        for (int d : down) s.blamed[d] = true;
        ++s.users;
        s.last_use = Clock::now();
        co_return held;
      }
      continue;
    }
    // Someone else of ours is locking or releasing: wait for that.
    co_await pause(std::chrono::milliseconds(spins < 50 ? 1 : 10));
    if (stopped_) co_return fail(ENOTCONN);
  }
}

asio::awaitable<void> Replicate::blame(Gfid gfid, Kind kind, std::vector<int> succeeded,
                                       std::vector<int> failed) {
  size_t n = children().size();
  std::vector<Task<pb::Changelog>> ops;
  for (int c : succeeded) {
    pb::ChangelogReq req = mark(gfid, delta(n, kind, 0, failed));
    ops.push_back(children()[c]->changelog(OpContext{}, req));
  }
  std::vector<Result<pb::Changelog>> done = co_await all(std::move(ops));
  for (size_t i = 0; i < done.size(); ++i) {
    if (!done[i]) {
      MLOG_WARN("{}: cannot record that child {} missed a change of {}: {}", name(), failed[0],
                gfid.str(), done[i].error().message());
    }
  }
}

asio::awaitable<void> Replicate::finish(std::shared_ptr<Inode> ino, Gfid gfid, LockKind kind,
                                        std::vector<int> succeeded, std::vector<int> failed) {
  if (!failed.empty() && !succeeded.empty()) {
    // The caller answers only after this: an acknowledged change always has its marks.
    co_await blame(gfid, kind_of_lock(kind), succeeded, failed);
  }
  bool release = false;
  {
    std::lock_guard lock(ino->mu);
    Session& s = ino->sessions[kind];
    for (int c : succeeded) {
      if (s.dirty_sent[c]) {
        s.dirty_sent[c] = false;
        ++s.dirty[c];
      }
    }
    for (int c : failed) {
      s.dirty_sent[c] = false;
      s.blamed[c] = true;
    }
    auto& readable = ino->readable[kind_index(kind_of_lock(kind))];
    if (!readable.empty()) {
      for (int c : failed) readable[c] = false;
    }
    --s.users;
    s.last_use = Clock::now();
    release = s.users == 0;
  }
  if (release) schedule_release(ino, gfid, kind);
}

void Replicate::schedule_release(std::shared_ptr<Inode> ino, Gfid gfid, LockKind kind) {
  uint64_t generation;
  bool now;
  {
    std::lock_guard lock(ino->mu);
    Session& s = ino->sessions[kind];
    generation = s.generation;
    now = s.release_asap;
  }
  if (now) {
    spawn_background(release_lock(ino, gfid, kind));
    return;
  }
  // The delayed post-op: keep the lock and the dirty mark for the next operation of a burst.
  auto timer = std::make_shared<asio::steady_timer>(executor_, config_.post_op_delay);
  auto life = lifetime_;
  timer->async_wait([this, life, timer, ino, gfid, kind, generation](const boost::system::error_code&) {
    if (!life->alive) return;
    bool go;
    {
      std::lock_guard lock(ino->mu);
      Session& s = ino->sessions[kind];
      go = s.generation == generation && s.users == 0 && s.state == Session::State::kHeld &&
           Clock::now() - s.last_use >= config_.post_op_delay;
      if (!go && s.generation == generation && s.users == 0 &&
          s.state == Session::State::kHeld) {
        // Used meanwhile: look again later.
        asio::post(executor_, [this, life, ino, gfid, kind] {
          if (life->alive) schedule_release(ino, gfid, kind);
        });
      }
    }
    if (go) spawn_background(release_lock(ino, gfid, kind));
  });
}

asio::awaitable<void> Replicate::release_lock(std::shared_ptr<Inode> ino, Gfid gfid,
                                              LockKind kind) {
  std::vector<int> locked;
  std::vector<int> dirty;
  size_t n = children().size();
  {
    std::lock_guard lock(ino->mu);
    Session& s = ino->sessions[kind];
    if (s.state != Session::State::kHeld || s.users > 0) co_return;
    s.state = Session::State::kReleasing;
    for (size_t c = 0; c < n; ++c) {
      if (s.locked[c]) locked.push_back(static_cast<int>(c));
    }
    dirty = s.dirty;
  }
  // Post-op: the brick takes our dirty marks back, then lets go of the lock, in one call.
  std::vector<std::optional<pb::ChangelogReq>> posts(locked.size());
  for (size_t i = 0; i < locked.size(); ++i) {
    int c = locked[i];
    if (dirty[c] > 0 && up_[c]) posts[i] = mark(gfid, delta(n, kind_of_lock(kind), -dirty[c], {}));
  }
  co_await unlock_children(gfid, kind, locked, owner_, std::move(posts));
  std::lock_guard lock(ino->mu);
  Session& s = ino->sessions[kind];
  s.state = Session::State::kIdle;
  s.locked.assign(n, false);
  s.dirty.assign(n, 0);
  s.dirty_sent.assign(n, false);
  s.blamed.assign(n, false);
  s.release_asap = false;
}

// ---- reads ----

int Replicate::read_child(const std::shared_ptr<Inode>& ino, const Gfid& gfid, Kind kind,
                          int skip) const {
  std::vector<int> candidates;
  {
    std::lock_guard lock(ino->mu);
    const auto& readable = ino->readable[kind_index(kind)];
    for (size_t c = 0; c < children().size(); ++c) {
      if (!up_[c] || static_cast<int>(c) == skip) continue;
      if (kind == Kind::kData && is_arbiter(c)) continue;
      if (!readable.empty() && !readable[c]) continue;
      candidates.push_back(static_cast<int>(c));
    }
  }
  if (candidates.empty()) return -1;
  // Every client reads a file from the same replica: spread by file, not by request.
  return candidates[gfid.hash() % candidates.size()];
}

asio::awaitable<void> Replicate::refresh(std::shared_ptr<Inode> ino, Gfid gfid) {
  std::vector<int> up = up_children();
  std::vector<Task<pb::LookupRsp>> ops;
  for (int c : up) {
    pb::LookupReq req;
    req.set_gfid(raw(gfid));
    req.set_want_changelog(true);
    ops.push_back(children()[c]->lookup_raw(OpContext{}, req));
  }
  std::vector<Result<pb::LookupRsp>> got = co_await all(std::move(ops));
  std::vector<ReplicaView> views(children().size());
  for (size_t i = 0; i < up.size(); ++i) {
    ReplicaView& v = views[up[i]];
    v.arbiter = is_arbiter(up[i]);
    if (!got[i]) {
      v.present = got[i].error().value != ENOTCONN;
      continue;
    }
    v.present = v.exists = true;
    v.changelog = got[i]->changelog();
    v.type = got[i]->attr().mode() & S_IFMT;
    v.size = got[i]->attr().size();
  }
  std::lock_guard lock(ino->mu);
  for (Kind k : {Kind::kData, Kind::kMetadata, Kind::kEntry}) {
    ino->readable[kind_index(k)] = readable(views, k);
    for (size_t c = 0; c < views.size(); ++c) {
      if (!views[c].exists) ino->readable[kind_index(k)][c] = false;
    }
  }
}

Result<std::shared_ptr<Replicate::ChildFds>> Replicate::fds_of(const FdPtr& fd) const {
  if (!fd) return fail(EBADF);
  auto c = fd->context<ChildFds>(this);
  if (!c) return fail(EBADF);
  return c;
}

// The child's descriptor of `fd`, opening it there if the file was opened while that child
// was away: its writes must reach every replica that is up.
asio::awaitable<Result<FdPtr>> Replicate::child_fd(FdPtr fd, int child) {
  CO_ASSIGN_OR_RETURN(auto fds, fds_of(fd));
  {
    std::lock_guard lock(fds->mu);
    if (fds->fds[child]) co_return fds->fds[child];
  }
  Result<FdPtr> opened;
  if (fd->is_dir()) {
    opened = co_await children()[child]->opendir(OpContext{}, fd->gfid());
  } else {
    uint32_t flags = fd->flags() & ~static_cast<uint32_t>(O_TRUNC | O_CREAT | O_EXCL);
    opened = co_await children()[child]->open(OpContext{}, fd->gfid(), flags);
  }
  if (!opened) co_return fail(opened.error());
  std::lock_guard lock(fds->mu);
  if (!fds->fds[child]) fds->fds[child] = *opened;
  co_return fds->fds[child];
}

// ---- lookup ----

Task<pb::Iatt> Replicate::lookup(OpContext ctx, Gfid parent, std::string name) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  std::vector<Task<pb::LookupRsp>> ops;
  for (int c : up) {
    pb::LookupReq req;
    req.set_parent(raw(parent));
    req.set_name(name);
    req.set_want_changelog(true);
    ops.push_back(children()[c]->lookup_raw(ctx, req));
  }
  std::vector<Result<pb::LookupRsp>> got = co_await all(std::move(ops));
  std::vector<ReplicaView> views(children().size());
  Errno first_error(ENOTCONN);
  Gfid found;
  bool mismatch = false, missing = false;
  int any = -1;
  for (size_t i = 0; i < up.size(); ++i) {
    int c = up[i];
    ReplicaView& v = views[c];
    v.arbiter = is_arbiter(c);
    if (!got[i]) {
      if (got[i].error().value == ENOENT) {
        v.present = true;
        missing = true;
      }
      if (first_error.value == ENOTCONN) first_error = got[i].error();
      continue;
    }
    const pb::Iatt& a = got[i]->attr();
    Gfid g = Gfid::from_bytes(a.gfid()).value_or(Gfid());
    if (any >= 0 && (g != found || (a.mode() & S_IFMT) != (got[any]->attr().mode() & S_IFMT))) {
      mismatch = true;
    }
    if (any < 0) {
      any = static_cast<int>(i);
      found = g;
    }
    v.present = v.exists = true;
    v.changelog = got[i]->changelog();
    v.type = a.mode() & S_IFMT;
    v.size = a.size();
    v.mtime_sec = a.mtime_sec();
    v.mtime_nsec = a.mtime_nsec();
  }
  if (any < 0) co_return fail(first_error);
  if (mismatch) {
    MLOG_WARN("{}: '{}' in {} names different files on different replicas (entry split-brain)",
              this->name(), name, parent.str());
    queue_heal(parent);
    co_return fail(EIO);
  }
  if (missing) queue_heal(parent);
  auto ino = inode(found);
  bool marks = false;
  {
    std::lock_guard lock(ino->mu);
    for (Kind k : {Kind::kData, Kind::kMetadata, Kind::kEntry}) {
      ino->readable[kind_index(k)] = readable(views, k);
      for (size_t c = 0; c < views.size(); ++c) {
        if (!views[c].exists) ino->readable[kind_index(k)][c] = false;
      }
    }
    for (const auto& v : views) {
      if (v.exists && needs_heal(v.changelog)) marks = true;
    }
  }
  // Marks with no transaction of ours behind them: somebody must look at this inode.
  if (marks) {
    bool ours = false;
    {
      std::lock_guard lock(ino->mu);
      for (const auto& s : ino->sessions) ours |= s.state != Session::State::kIdle;
    }
    if (!ours) queue_heal(found);
  }
  bool dir = (got[any]->attr().mode() & S_IFMT) == S_IFDIR;
  int from = read_child(ino, found, dir ? Kind::kEntry : Kind::kData);
  if (from < 0) from = read_child(ino, found, Kind::kMetadata);
  if (from < 0) {
    // Every replica is blamed for the data: split-brain. Names still resolve, data does not.
    from = up[any];
  }
  for (size_t i = 0; i < up.size(); ++i) {
    if (up[i] == from && got[i]) co_return std::move(*got[i]->mutable_attr());
  }
  co_return std::move(*got[any]->mutable_attr());
}

Task<pb::Iatt> Replicate::lookup_gfid(OpContext ctx, Gfid gfid) {
  auto ino = inode(gfid);
  co_await refresh(ino, gfid);
  int c = read_child(ino, gfid, Kind::kMetadata);
  if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
  Result<pb::Iatt> r = co_await children()[c]->lookup_gfid(ctx, gfid);
  co_return r;
}

Task<pb::LookupRsp> Replicate::lookup_raw(OpContext ctx, pb::LookupReq req) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  Result<pb::LookupRsp> r = co_await children()[up.front()]->lookup_raw(ctx, req);
  co_return r;
}

// ---- metadata reads ----

Task<pb::Iatt> Replicate::getattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  auto ino = inode(gfid);
  bool known;
  {
    std::lock_guard lock(ino->mu);
    known = !ino->readable[kind_index(Kind::kMetadata)].empty();
  }
  if (!known) co_await refresh(ino, gfid);
  // Size and times are data too: ask a replica that is good for both when one is.
  int c = read_child(ino, gfid, Kind::kData);
  if (c < 0) c = read_child(ino, gfid, Kind::kMetadata);
  if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<pb::Iatt> r;
    if (fd && !fd->is_dir()) {
      Result<FdPtr> cfd = co_await child_fd(fd, c);
      if (!cfd) {
        r = fail(cfd.error());
      } else {
        r = co_await children()[c]->getattr(ctx, gfid, *cfd);
      }
    } else {
      r = co_await children()[c]->getattr(ctx, gfid, nullptr);
    }
    if (r || !undelivered(r.error())) co_return r;
    int other = read_child(ino, gfid, Kind::kMetadata, c);
    if (other < 0) co_return r;
    c = other;
  }
  co_return fail(ENOTCONN);
}

Task<std::string> Replicate::readlink(OpContext ctx, Gfid gfid) {
  auto ino = inode(gfid);
  int c = read_child(ino, gfid, Kind::kMetadata);
  if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
  Result<std::string> r = co_await children()[c]->readlink(ctx, gfid);
  co_return r;
}

Task<std::string> Replicate::getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  auto ino = inode(gfid);
  int c = read_child(ino, gfid, Kind::kMetadata);
  if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
  Result<std::string> r = co_await children()[c]->getxattr(ctx, gfid, nullptr, std::move(name));
  co_return r;
}

Task<std::vector<std::string>> Replicate::listxattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  auto ino = inode(gfid);
  int c = read_child(ino, gfid, Kind::kMetadata);
  if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
  Result<std::vector<std::string>> r = co_await children()[c]->listxattr(ctx, gfid, nullptr);
  co_return r;
}

Task<pb::StatfsRsp> Replicate::statfs(OpContext ctx, Gfid gfid) {
  std::vector<Task<pb::StatfsRsp>> ops;
  for (int c : up_children()) ops.push_back(children()[c]->statfs(ctx, gfid));
  std::vector<Result<pb::StatfsRsp>> got = co_await all(std::move(ops));
  // The set holds what its fullest replica can hold.
  std::optional<pb::StatfsRsp> best;
  for (auto& r : got) {
    if (r && (!best || r->bavail() * r->frsize() < best->bavail() * best->frsize())) best = *r;
  }
  if (!best) co_return fail(ENOTCONN);
  co_return *best;
}

// ---- opening files ----

Task<FdPtr> Replicate::open(OpContext ctx, Gfid gfid, uint32_t flags) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  // Truncation changes data: it goes through a transaction, not through open.
  uint32_t child_flags = flags & ~static_cast<uint32_t>(O_TRUNC);
  if ((flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC)) {
    // A reader needs only the replica it reads from; child_fd opens another if a read fails
    // over (or a lock or fsync asks for it). Half the opens and closes of a web server's reads.
    int reader = read_child(inode(gfid), gfid, Kind::kData);
    if (reader >= 0) up = {reader};
  }
  std::vector<Task<FdPtr>> ops;
  for (int c : up) ops.push_back(children()[c]->open(ctx, gfid, child_flags));
  std::vector<Result<FdPtr>> got = co_await all(std::move(ops));
  if (up.size() == 1 && !got[0] && up_children().size() > 1) {
    // The reader's replica refused: the others may still have the file.
    int refused = up[0];
    up.clear();
    for (int c : up_children()) {
      if (c != refused) up.push_back(c);
    }
    ops.clear();
    for (int c : up) ops.push_back(children()[c]->open(ctx, gfid, child_flags));
    std::vector<Result<FdPtr>> others = co_await all(std::move(ops));
    got = std::move(others);
  }
  auto fds = std::make_shared<ChildFds>();
  fds->fds.resize(children().size());
  Errno error(ENOTCONN);
  bool data_open = false;
  for (size_t i = 0; i < up.size(); ++i) {
    if (got[i]) {
      fds->fds[up[i]] = *got[i];
      data_open |= !is_arbiter(up[i]);
    } else if (error.value == ENOTCONN) {
      error = got[i].error();
    }
  }
  if (!data_open) {
    for (auto& f : fds->fds) {
      if (f) co_await children()[&f - fds->fds.data()]->release(f);
    }
    co_return fail(error);
  }
  auto fd = std::make_shared<Fd>(gfid, flags, false);
  fd->set_context(this, fds);
  if (flags & O_TRUNC) {
    Result<AttrPair> t = co_await truncate(ctx, gfid, fd, 0);
    if (!t) {
      co_await release(fd);
      co_return fail(t.error());
    }
  }
  co_return fd;
}

Task<FdPtr> Replicate::opendir(OpContext ctx, Gfid gfid) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  auto fds = std::make_shared<ChildFds>();
  fds->fds.resize(children().size());
  auto fd = std::make_shared<Fd>(gfid, O_RDONLY, true);
  fd->set_context(this, fds);
  // Directories open lazily on the child that lists them (readdir).
  co_return fd;
}

boost::asio::awaitable<void> Replicate::release(FdPtr fd) {
  auto fds = fds_of(fd);
  if (!fds) co_return;
  std::vector<FdPtr> open;
  {
    std::lock_guard lock((*fds)->mu);
    open = (*fds)->fds;
  }
  {
    std::vector<Task<void>> closes;
    for (size_t c = 0; c < open.size(); ++c) {
      if (!open[c]) continue;
      closes.push_back([](Translator* child, FdPtr f) -> Task<void> {
        co_await child->release(std::move(f));
        co_return ok();
      }(children()[c], open[c]));
    }
    std::vector<Result<void>> closed = co_await all(std::move(closes));
    (void)closed;
  }
  if (!fd->is_dir()) {
    // The last close of a burst: give the lock and dirty mark back now, not a second later.
    auto ino = inode(fd->gfid());
    bool now;
    {
      std::lock_guard lock(ino->mu);
      Session& s = ino->sessions[kDataLock];
      if (s.state != Session::State::kIdle) s.release_asap = true;  // idle: nothing to give back
      now = s.state == Session::State::kHeld && s.users == 0;
    }
    if (now) spawn_background(release_lock(ino, fd->gfid(), kDataLock));
  }
}

Task<Buffer> Replicate::read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) {
  auto ino = inode(fd->gfid());
  int c = read_child(ino, fd->gfid(), Kind::kData);
  for (int attempt = 0; c >= 0 && attempt < 3; ++attempt) {
    Result<FdPtr> cfd = co_await child_fd(fd, c);
    // Plain statements: g++ 12 miscompiles co_await inside a conditional expression.
    Result<Buffer> r = fail(ENOTCONN);
    if (cfd) {
      r = co_await children()[c]->read(ctx, *cfd, offset, size);
    } else {
      r = fail(cfd.error());
    }
    if (r || !undelivered(r.error())) co_return r;
    c = read_child(ino, fd->gfid(), Kind::kData, c);
  }
  co_return fail(up_children().empty() ? ENOTCONN : EIO);
}

// ---- data transactions ----

Task<pb::WriteRsp> Replicate::write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid gfid = fd->gfid();
  auto ino = inode(gfid);
  // With an arbiter, a data change no good data copy takes would leave the only good data on
  // a brick that is away, and the two data bricks in split-brain when it returns: refuse it,
  // as GlusterFS's arbiter does.
  if (!data_writable(ino, gfid)) co_return fail(ENOTCONN);
  uint64_t end = offset + data.size();
  // Overlapping writes of this client go one after the other, so every replica applies them
  // in the same order; the lock orders them against other clients.
  for (;;) {
    {
      std::lock_guard lock(ino->mu);
      bool overlap = std::any_of(ino->writing.begin(), ino->writing.end(), [&](const auto& r) {
        return r.first < end && offset < r.second;
      });
      if (!overlap) {
        ino->writing.emplace_back(offset, end);
        break;
      }
    }
    co_await pause(1ms);
  }
  auto leave = [&] {
    std::lock_guard lock(ino->mu);
    auto it = std::find(ino->writing.begin(), ino->writing.end(), std::make_pair(offset, end));
    if (it != ino->writing.end()) ino->writing.erase(it);
  };
  Result<Held> held = co_await acquire(ino, gfid, kDataLock, ctx);
  if (!held) {
    leave();
    co_return fail(held.error());
  }
  std::vector<Task<pb::WriteRsp>> ops;
  std::vector<Result<FdPtr>> cfds;
  for (size_t i = 0; i < held->children.size(); ++i) {
    int c = held->children[i];
    Result<FdPtr> cfd = co_await child_fd(fd, c);
    cfds.push_back(cfd);
  }
  for (size_t i = 0; i < held->children.size(); ++i) {
    int c = held->children[i];
    if (cfds[i]) {
      ops.push_back(children()[c]->write(held->contexts[i], *cfds[i], offset, data));
    } else {
      ops.push_back([](Errno e) -> Task<pb::WriteRsp> { co_return fail(e); }(cfds[i].error()));
    }
  }
  std::vector<Result<pb::WriteRsp>> got = co_await all(std::move(ops));
  std::vector<int> succeeded, failed;
  std::optional<pb::WriteRsp> answer;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < got.size(); ++i) {
    int c = held->children[i];
    if (got[i] && got[i]->written() == data.size()) {
      succeeded.push_back(c);
      if (!is_arbiter(c) && !answer) answer = *got[i];
    } else {
      failed.push_back(c);
      if (!got[i] && (error.value == ENOTCONN || !undelivered(got[i].error()))) {
        error = got[i].error();
      } else if (got[i]) {
        error = Errno(EIO);  // short write
      }
    }
  }
  if (!answer) {
    // No data replica took it: nothing to acknowledge (an arbiter alone holds no data).
    co_await finish(ino, gfid, kDataLock, {}, failed);
    leave();
    co_return fail(error);
  }
  co_await finish(ino, gfid, kDataLock, succeeded, failed);
  leave();
  co_return *answer;
}

Task<AttrPair> Replicate::truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  auto ino = inode(gfid);
  // With an arbiter, a data change no good data copy takes would leave the only good data on
  // a brick that is away, and the two data bricks in split-brain when it returns: refuse it,
  // as GlusterFS's arbiter does.
  if (!data_writable(ino, gfid)) co_return fail(ENOTCONN);
  for (;;) {
    {
      std::lock_guard lock(ino->mu);
      if (ino->writing.empty()) {
        ino->writing.emplace_back(0, UINT64_MAX);
        break;
      }
    }
    co_await pause(1ms);
  }
  auto leave = [&] {
    std::lock_guard lock(ino->mu);
    auto it = std::find(ino->writing.begin(), ino->writing.end(), std::make_pair(uint64_t{0}, UINT64_MAX));
    if (it != ino->writing.end()) ino->writing.erase(it);
  };
  Result<Held> held = co_await acquire(ino, gfid, kDataLock, ctx);
  if (!held) {
    leave();
    co_return fail(held.error());
  }
  std::vector<Task<AttrPair>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    int c = held->children[i];
    FdPtr cfd;
    if (fd) {
      Result<FdPtr> r = co_await child_fd(fd, c);
      if (r) cfd = *r;
    }
    ops.push_back(children()[c]->truncate(held->contexts[i], gfid, cfd, size));
  }
  std::vector<Result<AttrPair>> got = co_await all(std::move(ops));
  std::vector<int> succeeded, failed;
  std::optional<AttrPair> answer;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < got.size(); ++i) {
    int c = held->children[i];
    if (got[i]) {
      succeeded.push_back(c);
      if (!is_arbiter(c) && !answer) answer = *got[i];
    } else {
      failed.push_back(c);
      if (error.value == ENOTCONN) error = got[i].error();
    }
  }
  // A named local: g++ 12 frees a non-trivial temporary of a co_await expression twice.
  std::vector<int> blamers = answer ? succeeded : std::vector<int>{};
  co_await finish(ino, gfid, kDataLock, blamers, failed);
  leave();
  if (!answer) co_return fail(error);
  co_return *answer;
}

Task<pb::Iatt> Replicate::fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                    uint64_t length) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid gfid = fd->gfid();
  auto ino = inode(gfid);
  // With an arbiter, a data change no good data copy takes would leave the only good data on
  // a brick that is away, and the two data bricks in split-brain when it returns: refuse it,
  // as GlusterFS's arbiter does.
  if (!data_writable(ino, gfid)) co_return fail(ENOTCONN);
  Result<Held> held = co_await acquire(ino, gfid, kDataLock, ctx);
  if (!held) co_return fail(held.error());
  std::vector<Task<pb::Iatt>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    int c = held->children[i];
    Result<FdPtr> cfd = co_await child_fd(fd, c);
    if (cfd) {
      ops.push_back(children()[c]->fallocate(held->contexts[i], *cfd, mode, offset, length));
    } else {
      ops.push_back([](Errno e) -> Task<pb::Iatt> { co_return fail(e); }(cfd.error()));
    }
  }
  std::vector<Result<pb::Iatt>> got = co_await all(std::move(ops));
  std::vector<int> succeeded, failed;
  std::optional<pb::Iatt> answer;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < got.size(); ++i) {
    int c = held->children[i];
    if (got[i]) {
      succeeded.push_back(c);
      if (!is_arbiter(c) && !answer) answer = *got[i];
    } else {
      failed.push_back(c);
      if (error.value == ENOTCONN) error = got[i].error();
    }
  }
  // A named local: g++ 12 frees a non-trivial temporary of a co_await expression twice.
  std::vector<int> blamers = answer ? succeeded : std::vector<int>{};
  co_await finish(ino, gfid, kDataLock, blamers, failed);
  if (!answer) co_return fail(error);
  co_return *answer;
}

Task<void> Replicate::fsync(OpContext ctx, FdPtr fd, bool datasync) {
  CO_ASSIGN_OR_RETURN(auto fds, fds_of(fd));
  std::vector<Task<void>> ops;
  std::vector<FdPtr> open;
  {
    std::lock_guard lock(fds->mu);
    open = fds->fds;
  }
  for (size_t c = 0; c < open.size(); ++c) {
    if (open[c] && up_[c]) ops.push_back(children()[c]->fsync(ctx, open[c], datasync));
  }
  std::vector<Result<void>> got = co_await all(std::move(ops));
  bool any = false;
  Errno error(ENOTCONN);
  for (auto& r : got) {
    if (r) {
      any = true;
    } else {
      error = r.error();
    }
  }
  if (!any) co_return fail(error);
  co_return ok();
}

Task<void> Replicate::flush(OpContext ctx, FdPtr fd) {
  CO_ASSIGN_OR_RETURN(auto fds, fds_of(fd));
  std::vector<FdPtr> open;
  {
    std::lock_guard lock(fds->mu);
    open = fds->fds;
  }
  std::vector<Task<void>> ops;
  for (size_t c = 0; c < open.size(); ++c) {
    if (open[c] && up_[c]) ops.push_back(children()[c]->flush(ctx, open[c]));
  }
  std::vector<Result<void>> got = co_await all(std::move(ops));
  (void)got;
  co_return ok();
}

// ---- metadata transactions ----

namespace {

template <class T>
struct Outcome {
  std::vector<int> succeeded, failed;
  std::optional<T> answer;
  Errno error{ENOTCONN};
};

}  // namespace

Task<AttrPair> Replicate::setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  auto ino = inode(gfid);
  Result<Held> held = co_await acquire(ino, gfid, kMetadataLock, ctx);
  if (!held) co_return fail(held.error());
  std::vector<Task<AttrPair>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    ops.push_back(children()[held->children[i]]->setattr(held->contexts[i], gfid, nullptr, req));
  }
  std::vector<Result<AttrPair>> got = co_await all(std::move(ops));
  Outcome<AttrPair> out;
  for (size_t i = 0; i < got.size(); ++i) {
    int c = held->children[i];
    if (got[i]) {
      out.succeeded.push_back(c);
      if (!out.answer || is_arbiter(held->children[0])) out.answer = *got[i];
    } else {
      out.failed.push_back(c);
      if (out.error.value == ENOTCONN) out.error = got[i].error();
    }
  }
  co_await finish(ino, gfid, kMetadataLock, out.succeeded, out.failed);
  if (!out.answer) co_return fail(out.error);
  co_return *out.answer;
}

Task<void> Replicate::setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                               std::string value, int flags) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  auto ino = inode(gfid);
  Result<Held> held = co_await acquire(ino, gfid, kMetadataLock, ctx);
  if (!held) co_return fail(held.error());
  std::vector<Task<void>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    ops.push_back(children()[held->children[i]]->setxattr(held->contexts[i], gfid, nullptr, name,
                                                          value, flags));
  }
  std::vector<Result<void>> got = co_await all(std::move(ops));
  Outcome<bool> out;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      out.succeeded.push_back(held->children[i]);
      out.answer = true;
    } else {
      out.failed.push_back(held->children[i]);
      if (out.error.value == ENOTCONN) out.error = got[i].error();
    }
  }
  // A refusal every replica agrees on (EEXIST with XATTR_CREATE) is an answer, not a failure.
  if (!out.answer) {
    co_await finish(ino, gfid, kMetadataLock, {}, {});
    co_return fail(out.error);
  }
  co_await finish(ino, gfid, kMetadataLock, out.succeeded, out.failed);
  co_return ok();
}

Task<void> Replicate::removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  auto ino = inode(gfid);
  Result<Held> held = co_await acquire(ino, gfid, kMetadataLock, ctx);
  if (!held) co_return fail(held.error());
  std::vector<Task<void>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    ops.push_back(
        children()[held->children[i]]->removexattr(held->contexts[i], gfid, nullptr, name));
  }
  std::vector<Result<void>> got = co_await all(std::move(ops));
  Outcome<bool> out;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      out.succeeded.push_back(held->children[i]);
      out.answer = true;
    } else {
      out.failed.push_back(held->children[i]);
      if (out.error.value == ENOTCONN) out.error = got[i].error();
    }
  }
  if (!out.answer) {
    co_await finish(ino, gfid, kMetadataLock, {}, {});
    co_return fail(out.error);
  }
  co_await finish(ino, gfid, kMetadataLock, out.succeeded, out.failed);
  co_return ok();
}

// ---- entry transactions ----

template <class Rsp, class MakeCall>
asio::awaitable<Result<std::vector<Result<Rsp>>>> Replicate::entry_txn(OpContext ctx, Gfid parent,
                                                                       MakeCall make_call) {
  auto ino = inode(parent);
  Result<Held> held = co_await acquire(ino, parent, kEntryLock, ctx);
  if (!held) co_return fail(held.error());
  std::vector<Task<Rsp>> ops;
  for (size_t i = 0; i < held->children.size(); ++i) {
    ops.push_back(make_call(held->children[i], held->contexts[i]));
  }
  std::vector<Result<Rsp>> got = co_await all(std::move(ops));
  std::vector<int> succeeded, failed;
  bool all_refused_alike = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      succeeded.push_back(held->children[i]);
      all_refused_alike = false;
    } else {
      failed.push_back(held->children[i]);
      if (i > 0 && (got[0] || got[0].error() != got[i].error())) all_refused_alike = false;
    }
  }
  // Every replica refused the same way (EEXIST, ENOTEMPTY...): they agree; nobody is blamed.
  if (succeeded.empty() && all_refused_alike && !got.empty() && !undelivered(got[0].error())) {
    failed.clear();
  }
  co_await finish(ino, parent, kEntryLock, succeeded, failed);
  // Callers read the per-child results in the order of `children`.
  std::vector<Result<Rsp>> by_child(children().size(), Result<Rsp>(fail(ENOTCONN)));
  for (size_t i = 0; i < got.size(); ++i) by_child[held->children[i]] = std::move(got[i]);
  co_return by_child;
}

// A new inode was created on `succeeded` only: the others must get it by heal, with its data.
void Replicate::remember_new_inode(const pb::Iatt& attr, const std::vector<int>& succeeded) {
  size_t n = children().size();
  std::vector<int> missing;
  for (size_t c = 0; c < n; ++c) {
    if (std::find(succeeded.begin(), succeeded.end(), static_cast<int>(c)) == succeeded.end()) {
      missing.push_back(static_cast<int>(c));
    }
  }
  Gfid g = Gfid::from_bytes(attr.gfid()).value_or(Gfid());
  auto ino = inode(g);
  std::lock_guard lock(ino->mu);
  for (Kind k : {Kind::kData, Kind::kMetadata, Kind::kEntry}) {
    auto& r = ino->readable[kind_index(k)];
    r.assign(n, false);
    for (int c : succeeded) r[c] = true;
  }
  (void)missing;
}

namespace {

std::vector<int> ok_children(const auto& by_child) {
  std::vector<int> out;
  for (size_t c = 0; c < by_child.size(); ++c) {
    if (by_child[c]) out.push_back(static_cast<int>(c));
  }
  return out;
}

template <class Rsp>
Errno first_error(const std::vector<Result<Rsp>>& by_child) {
  Errno e(ENOTCONN);
  for (const auto& r : by_child) {
    if (!r && (e.value == ENOTCONN || !undelivered(r.error()))) e = r.error();
  }
  return e;
}

}  // namespace

Task<Created> Replicate::create(OpContext ctx, pb::CreateReq req) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  uint32_t flags = req.flags();
  req.set_flags(flags & ~static_cast<uint32_t>(O_TRUNC));
  if (config_.eager_lock) {
    // A new file's first write would otherwise start with a lock round trip: the bricks take
    // the data lock for us as they create it (see adopt_create_locks).
    pb::InodelkReq* l = req.mutable_data_lock();
    l->set_domain(domain(kDataLock));
    l->set_type(pb::WRITE_LOCK);
    l->set_owner(owner_);
  }
  auto call = [this, req](int c, OpContext cc) { return children()[c]->create(cc, req); };
  Result<std::vector<Result<Created>>> by_child = co_await entry_txn<Created>(ctx, parent, call);
  if (!by_child) co_return fail(by_child.error());
  std::vector<int> good = ok_children(*by_child);
  if (good.empty() || std::all_of(good.begin(), good.end(), [&](int c) { return is_arbiter(c); })) {
    for (int c : good) co_await children()[c]->release((*by_child)[c]->fd);
    co_return fail(first_error(*by_child));
  }
  auto fds = std::make_shared<ChildFds>();
  fds->fds.resize(children().size());
  pb::Iatt attr;
  bool have_attr = false;
  for (int c : good) {
    fds->fds[c] = (*by_child)[c]->fd;
    if (!have_attr || is_arbiter(good.front())) {
      attr = (*by_child)[c]->attr;
      have_attr = !is_arbiter(c);
    }
  }
  Gfid g = Gfid::from_bytes(attr.gfid()).value_or(Gfid());
  if (good.size() < children().size()) {
    // Replicas that did not get the file must get it, and its data, from the others.
    std::vector<int> missing;
    for (size_t c = 0; c < children().size(); ++c) {
      if (!fds->fds[c]) missing.push_back(static_cast<int>(c));
    }
    co_await blame(g, Kind::kData, good, missing);
    co_await blame(g, Kind::kMetadata, good, missing);
  }
  remember_new_inode(attr, good);
  if (req.has_data_lock()) adopt_create_locks(g, *by_child);
  auto fd = std::make_shared<Fd>(g, flags, false);
  fd->set_context(this, fds);
  co_return Created{std::move(attr), std::move(fd)};
}

void Replicate::adopt_create_locks(const Gfid& gfid, const std::vector<Result<Created>>& by_child) {
  size_t n = children().size();
  std::vector<int> granted;
  bool everywhere = true;
  for (size_t c = 0; c < n; ++c) {
    if (by_child[c] && by_child[c]->locked) {
      granted.push_back(static_cast<int>(c));
    } else if (by_child[c]) {
      everywhere = false;  // an existing file, or somebody locked it first
    }
  }
  if (granted.empty()) return;
  auto ino = inode(gfid);
  bool adopted = false;
  if (everywhere) {
    std::lock_guard lock(ino->mu);
    Session& s = ino->sessions[kDataLock];
    // A GFID this create chose: no transaction of ours can be on it yet, but stay safe.
    if (s.state == Session::State::kIdle) {
      s.state = Session::State::kHeld;
      s.locked.assign(n, false);
      for (int c : granted) s.locked[c] = true;
      s.dirty.assign(n, 0);
      s.dirty_sent.assign(n, false);
      // Replicas the file was not created on are blamed already (create's blame).
      s.blamed.assign(n, false);
      for (size_t c = 0; c < n; ++c) {
        if (!s.locked[c]) s.blamed[c] = true;
      }
      s.users = 0;
      s.release_asap = false;
      s.last_use = Clock::now();
      ++s.generation;
      adopted = true;
    }
  }
  if (adopted) {
    // Held like any eager lock: given back after the post-op delay, on contention or close.
    schedule_release(ino, gfid, kDataLock);
  } else {
    // Half a lock would make writes blame the replicas that did not grant it: give it back and
    // let the first write lock as usual.
    spawn_background(unlock_children(gfid, kDataLock, granted, owner_));
  }
}

// mknod, mkdir, symlink, link: the same shape, an inode answer.
#define MORTAR_AFR_ENTRY_OP(NAME, REQ, PARENT_FIELD)                                            \
  Task<pb::Iatt> Replicate::NAME(OpContext ctx, REQ req) {                                     \
    if (!quorum_met(up_children())) co_return fail(EROFS);                                     \
    Gfid parent = Gfid::from_bytes(req.PARENT_FIELD()).value_or(Gfid());                       \
    auto call = [this, req](int c, OpContext cc) { return children()[c]->NAME(cc, req); };     \
    Result<std::vector<Result<pb::Iatt>>> by_child =                                            \
        co_await entry_txn<pb::Iatt>(ctx, parent, call);                                       \
    if (!by_child) co_return fail(by_child.error());                                           \
    std::vector<int> good = ok_children(*by_child);                                            \
    if (good.empty()) co_return fail(first_error(*by_child));                                  \
    pb::Iatt attr = *(*by_child)[good.front()];                                                \
    if (good.size() < children().size()) {                                                     \
      std::vector<int> missing;                                                                \
      for (size_t c = 0; c < children().size(); ++c) {                                         \
        if (!(*by_child)[c]) missing.push_back(static_cast<int>(c));                           \
      }                                                                                        \
      Gfid g = Gfid::from_bytes(attr.gfid()).value_or(Gfid());                                 \
      co_await blame(g, Kind::kMetadata, good, missing);                                       \
      if ((attr.mode() & S_IFMT) == S_IFDIR) co_await blame(g, Kind::kEntry, good, missing);   \
      if ((attr.mode() & S_IFMT) == S_IFREG) co_await blame(g, Kind::kData, good, missing);    \
    }                                                                                          \
    remember_new_inode(attr, good);                                                            \
    co_return attr;                                                                            \
  }

MORTAR_AFR_ENTRY_OP(mknod, pb::MknodReq, parent)
MORTAR_AFR_ENTRY_OP(mkdir, pb::MkdirReq, parent)
MORTAR_AFR_ENTRY_OP(symlink, pb::SymlinkReq, parent)
MORTAR_AFR_ENTRY_OP(link, pb::LinkReq, new_parent)
#undef MORTAR_AFR_ENTRY_OP

Task<void> Replicate::unlink(OpContext ctx, pb::UnlinkReq req) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto call = [this, req](int c, OpContext cc) { return children()[c]->unlink(cc, req); };
  Result<std::vector<Result<void>>> by_child = co_await entry_txn<void>(ctx, parent, call);
  if (!by_child) co_return fail(by_child.error());
  if (ok_children(*by_child).empty()) co_return fail(first_error(*by_child));
  co_return ok();
}

Task<void> Replicate::rmdir(OpContext ctx, pb::RmdirReq req) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid parent = Gfid::from_bytes(req.parent()).value_or(Gfid());
  auto call = [this, req](int c, OpContext cc) { return children()[c]->rmdir(cc, req); };
  Result<std::vector<Result<void>>> by_child = co_await entry_txn<void>(ctx, parent, call);
  if (!by_child) co_return fail(by_child.error());
  if (ok_children(*by_child).empty()) co_return fail(first_error(*by_child));
  co_return ok();
}

Task<void> Replicate::rename(OpContext ctx, pb::RenameReq req) {
  if (!quorum_met(up_children())) co_return fail(EROFS);
  Gfid from = Gfid::from_bytes(req.old_parent()).value_or(Gfid());
  Gfid to = Gfid::from_bytes(req.new_parent()).value_or(Gfid());
  if (from == to) {
    auto call = [this, req](int c, OpContext cc) { return children()[c]->rename(cc, req); };
    Result<std::vector<Result<void>>> by_child = co_await entry_txn<void>(ctx, from, call);
    if (!by_child) co_return fail(by_child.error());
    if (ok_children(*by_child).empty()) co_return fail(first_error(*by_child));
    co_return ok();
  }
  // Two directories: both entry locks, taken in GFID order so two renames cannot deadlock.
  Gfid first = std::min(from, to), second = std::max(from, to);
  auto ino1 = inode(first), ino2 = inode(second);
  Result<Held> h1 = co_await acquire(ino1, first, kEntryLock, ctx);
  if (!h1) co_return fail(h1.error());
  Result<Held> h2 = co_await acquire(ino2, second, kEntryLock, ctx);
  if (!h2) {
    co_await finish(ino1, first, kEntryLock, {}, {});
    co_return fail(h2.error());
  }
  std::vector<int> targets;
  std::vector<OpContext> contexts;
  for (size_t i = 0; i < h1->children.size(); ++i) {
    int c = h1->children[i];
    auto j = std::find(h2->children.begin(), h2->children.end(), c);
    if (j == h2->children.end()) continue;
    OpContext cc = h1->contexts[i];
    for (auto& m : h2->contexts[j - h2->children.begin()].pre_op) cc.pre_op.push_back(m);
    targets.push_back(c);
    contexts.push_back(std::move(cc));
  }
  std::vector<Task<void>> ops;
  for (size_t i = 0; i < targets.size(); ++i) ops.push_back(children()[targets[i]]->rename(contexts[i], req));
  std::vector<Result<void>> got = co_await all(std::move(ops));
  std::vector<int> succeeded, failed;
  Errno error(ENOTCONN);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i]) {
      succeeded.push_back(targets[i]);
    } else {
      failed.push_back(targets[i]);
      if (error.value == ENOTCONN) error = got[i].error();
    }
  }
  if (succeeded.empty()) failed.clear();  // refused alike everywhere
  co_await finish(ino2, second, kEntryLock, succeeded, failed);
  co_await finish(ino1, first, kEntryLock, succeeded, failed);
  if (succeeded.empty()) co_return fail(error);
  co_return ok();
}

// ---- directories ----

Task<pb::ReaddirRsp> Replicate::readdir(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size,
                                        bool plus) {
  CO_ASSIGN_OR_RETURN(auto fds, fds_of(fd));
  auto ino = inode(fd->gfid());
  for (int attempt = 0; attempt < 3; ++attempt) {
    int c;
    uint64_t child_offset;
    bool restart = false;
    {
      std::lock_guard lock(fds->mu);
      if (offset == 0) {
        fds->dir_child = -1;
        fds->afr_offset = 0;
        fds->child_offset = 0;
        fds->listed.clear();
      } else if (offset != fds->afr_offset) {
        co_return fail(EINVAL);  // offsets are ours; only continuing a listing is supported
      }
      c = fds->dir_child;
      child_offset = fds->child_offset;
    }
    if (c < 0 || !up_[c]) {
      restart = c >= 0;  // the child listing it went away: go on from another's start
      c = read_child(ino, fd->gfid(), Kind::kEntry);
      if (c < 0) co_return fail(up_children().empty() ? ENOTCONN : EIO);
      child_offset = 0;
    }
    Result<FdPtr> cfd = co_await child_fd(fd, c);
    if (!cfd) {
      if (undelivered(cfd.error())) continue;
      co_return fail(cfd.error());
    }
    Result<pb::ReaddirRsp> r = co_await children()[c]->readdir(ctx, *cfd, child_offset, size, plus);
    if (!r) {
      std::lock_guard lock(fds->mu);
      fds->dir_child = -1;
      if (undelivered(r.error())) continue;
      co_return fail(r.error());
    }
    pb::ReaddirRsp out;
    std::lock_guard lock(fds->mu);
    fds->dir_child = c;
    (void)restart;
    for (auto& e : *r->mutable_entries()) {
      fds->child_offset = e.offset();
      // After a fail-over, names already handed out come again from the new child: skip them.
      if (!fds->listed.insert(e.name()).second) continue;
      e.set_offset(++fds->afr_offset);
      *out.add_entries() = std::move(e);
    }
    out.set_eof(r->eof());
    co_return out;
  }
  co_return fail(ENOTCONN);
}

// ---- locks ----

Task<pb::LkRsp> Replicate::lk(OpContext ctx, FdPtr fd, pb::LkReq req) {
  std::vector<int> up = up_children();
  if (up.empty()) co_return fail(ENOTCONN);
  std::vector<int> targets;
  std::vector<FdPtr> cfds;
  for (int c : up) {
    Result<FdPtr> cfd = co_await child_fd(fd, c);
    if (cfd) {
      targets.push_back(c);
      cfds.push_back(*cfd);
    }
  }
  if (targets.empty()) co_return fail(ENOTCONN);
  if (req.cmd() == pb::LkReq::GETLK) {
    Result<pb::LkRsp> r = co_await children()[targets.front()]->lk(ctx, cfds.front(), req);
    co_return r;
  }
  // Application locks live on every replica, so they survive the loss of one brick.
  std::vector<Task<pb::LkRsp>> ops;
  for (size_t i = 0; i < targets.size(); ++i) ops.push_back(children()[targets[i]]->lk(ctx, cfds[i], req));
  std::vector<Result<pb::LkRsp>> got = co_await all(std::move(ops));
  std::optional<Errno> refusal;
  for (auto& r : got) {
    if (!r && !undelivered(r.error())) refusal = r.error();
  }
  if (refusal && req.type() != pb::UNLOCK) {
    pb::LkReq undo = req;
    undo.set_type(pb::UNLOCK);
    undo.set_cmd(pb::LkReq::SETLK);
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i]) (void)co_await children()[targets[i]]->lk(ctx, cfds[i], undo);
    }
    co_return fail(*refusal);
  }
  for (auto& r : got) {
    if (r) co_return *r;
  }
  co_return fail(ENOTCONN);
}

// ---- background heal in clients ----

void Replicate::queue_heal(const Gfid& gfid) {
  bool start = false;
  {
    std::lock_guard lock(mu_);
    if (std::find(heal_queue_.begin(), heal_queue_.end(), gfid) != heal_queue_.end()) return;
    if (heal_queue_.size() >= 1024) return;  // the heal daemon finds the rest in the index
    heal_queue_.push_back(gfid);
    if (!heal_worker_running_) {
      heal_worker_running_ = true;
      start = true;
    }
  }
  if (start) spawn_background(heal_worker());
}

asio::awaitable<void> Replicate::heal_worker() {
  for (;;) {
    Gfid next;
    {
      std::lock_guard lock(mu_);
      if (heal_queue_.empty() || stopped_) {
        heal_worker_running_ = false;
        co_return;
      }
      next = heal_queue_.front();
      heal_queue_.erase(heal_queue_.begin());
    }
    HealRequest background;
    background.skip_busy = true;
    HealOutcome o = co_await heal(next, background);
    (void)o;
  }
}

}  // namespace mortar::xl::afr
