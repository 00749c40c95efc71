#include "brickd/locks.h"

#include <algorithm>

namespace mortar::brickd {

Result<uint64_t> range_end(uint64_t start, uint64_t length) {
  if (length == 0) return UINT64_MAX;
  if (length - 1 > UINT64_MAX - start) return fail(EINVAL);
  return start + length - 1;
}

namespace {

bool overlaps(const RangeLock& a, const RangeLock& b) {
  return a.start <= b.end && b.start <= a.end;
}

bool modes_conflict(LockMode a, LockMode b) {
  return a == LockMode::kWrite || b == LockMode::kWrite;
}

}  // namespace

bool LockTable::range_conflicts(const Space& s, const RangeLock& r, const RangeLock** with) {
  for (const auto& held : s.ranges) {
    if (held.owner == r.owner) continue;
    if (overlaps(held, r) && modes_conflict(held.mode, r.mode)) {
      if (with) *with = &held;
      return true;
    }
  }
  return false;
}

// Replaces the owner's locks within r's range by r (or by nothing for an unlock), splitting
// locks that straddle the range and merging touching locks of the same mode.
void LockTable::apply_range(Space& s, const RangeLock& r) {
  std::vector<RangeLock> out;
  out.reserve(s.ranges.size() + 2);
  for (const auto& held : s.ranges) {
    if (!(held.owner == r.owner) || !overlaps(held, r)) {
      out.push_back(held);
      continue;
    }
    if (held.start < r.start) {
      RangeLock left = held;
      left.end = r.start - 1;
      out.push_back(left);
    }
    if (held.end > r.end) {
      RangeLock right = held;
      right.start = r.end + 1;
      out.push_back(right);
    }
  }
  if (r.mode != LockMode::kUnlock) {
    RangeLock merged = r;
    std::vector<RangeLock> rest;
    for (const auto& held : out) {
      bool touches =
          held.owner == r.owner && held.mode == r.mode &&
          (overlaps(held, merged) || (held.end != UINT64_MAX && held.end + 1 == merged.start) ||
           (merged.end != UINT64_MAX && merged.end + 1 == held.start));
      if (touches) {
        merged.start = std::min(merged.start, held.start);
        merged.end = std::max(merged.end, held.end);
      } else {
        rest.push_back(held);
      }
    }
    rest.push_back(merged);
    out = std::move(rest);
  }
  s.ranges = std::move(out);
}

bool LockTable::entry_conflicts(const Space& s, const EntryLock& e) {
  for (const auto& held : s.entries) {
    if (held.owner == e.owner) continue;
    bool same_scope = held.name.empty() || e.name.empty() || held.name == e.name;
    if (same_scope && modes_conflict(held.mode, e.mode)) return true;
  }
  return false;
}

void LockTable::run(Ready& ready) {
  for (auto& [done, result] : ready) done(std::move(result));
}

void LockTable::tell(const Blocked& blocked) const {
  if (!contention_) return;
  for (uint64_t c : blocked.holders) contention_(c, blocked.kind, blocked.domain, blocked.gfid);
}

void LockTable::grant_waiters(Key key, Space& s, Ready& ready) {
  for (auto it = s.waiters.begin(); it != s.waiters.end();) {
    bool granted;
    if (key.kind == LockKind::kEntry) {
      granted = !entry_conflicts(s, it->entry);
      if (granted) s.entries.push_back(it->entry);
    } else {
      granted = !range_conflicts(s, it->range, nullptr);
      if (granted) apply_range(s, it->range);
    }
    if (granted) {
      ready.emplace_back(std::move(it->done), ok());
      it = s.waiters.erase(it);
    } else {
      ++it;
    }
  }
}

void LockTable::drop_if_empty(const Key& key) {
  auto it = spaces_.find(key);
  if (it != spaces_.end() && it->second.empty()) spaces_.erase(it);
}

void LockTable::lock_range(LockKind kind, const std::string& domain, const Gfid& gfid,
                           const RangeLock& request, bool blocking, Done done) {
  Ready ready;
  Blocked blocked{{}, kind, domain, gfid};
  {
    std::lock_guard lock(mu_);
    Key key{kind, domain, gfid};
    Space& s = spaces_[key];
    if (request.mode == LockMode::kUnlock) {
      // An unlock also withdraws the owner's own waits on the range: that is how a client
      // abandons an interrupted blocking lock.
      for (auto w = s.waiters.begin(); w != s.waiters.end();) {
        if (w->range.owner == request.owner && overlaps(w->range, request)) {
          ready.emplace_back(std::move(w->done), fail(EINTR));
          w = s.waiters.erase(w);
        } else {
          ++w;
        }
      }
      apply_range(s, request);
      ready.emplace_back(std::move(done), ok());
      grant_waiters(key, s, ready);
    } else if (!range_conflicts(s, request, nullptr)) {
      apply_range(s, request);
      ready.emplace_back(std::move(done), ok());
      // An owner converting a write lock to read may let readers in.
      grant_waiters(key, s, ready);
    } else if (blocking) {
      for (const auto& held : s.ranges) {
        if (!(held.owner == request.owner) && overlaps(held, request) &&
            modes_conflict(held.mode, request.mode)) {
          blocked.holders.push_back(held.owner.connection);
        }
      }
      s.waiters.push_back(Waiter{request, {}, std::move(done)});
    } else {
      ready.emplace_back(std::move(done), fail(EAGAIN));
    }
    drop_if_empty(key);
  }
  run(ready);
  tell(blocked);
}

std::optional<RangeLock> LockTable::test_range(LockKind kind, const std::string& domain,
                                               const Gfid& gfid, const RangeLock& request) {
  std::lock_guard lock(mu_);
  auto it = spaces_.find(Key{kind, domain, gfid});
  if (it == spaces_.end()) return std::nullopt;
  const RangeLock* with = nullptr;
  if (range_conflicts(it->second, request, &with)) return *with;
  return std::nullopt;
}

void LockTable::release_owner(LockKind kind, const std::string& domain, const Gfid& gfid,
                              const LockOwner& owner) {
  RangeLock all;
  all.owner = owner;
  all.mode = LockMode::kUnlock;
  Ready ready;
  {
    std::lock_guard lock(mu_);
    Key key{kind, domain, gfid};
    auto it = spaces_.find(key);
    if (it == spaces_.end()) return;
    apply_range(it->second, all);
    grant_waiters(key, it->second, ready);
    drop_if_empty(key);
  }
  run(ready);
}

void LockTable::lock_entry(const std::string& domain, const Gfid& parent, const std::string& name,
                           LockMode mode, const LockOwner& owner, bool blocking, Done done) {
  Ready ready;
  Blocked blocked{{}, LockKind::kEntry, domain, parent};
  {
    std::lock_guard lock(mu_);
    Key key{LockKind::kEntry, domain, parent};
    Space& s = spaces_[key];
    EntryLock e{owner, mode, name};
    if (mode == LockMode::kUnlock) {
      auto it = std::find_if(s.entries.begin(), s.entries.end(), [&](const EntryLock& held) {
        return held.owner == owner && held.name == name;
      });
      if (it != s.entries.end()) s.entries.erase(it);
      ready.emplace_back(std::move(done), ok());
      grant_waiters(key, s, ready);
    } else if (!entry_conflicts(s, e)) {
      s.entries.push_back(e);
      ready.emplace_back(std::move(done), ok());
    } else if (blocking) {
      for (const auto& held : s.entries) {
        bool same_scope = held.name.empty() || e.name.empty() || held.name == e.name;
        if (!(held.owner == owner) && same_scope && modes_conflict(held.mode, e.mode)) {
          blocked.holders.push_back(held.owner.connection);
        }
      }
      s.waiters.push_back(Waiter{{}, e, std::move(done)});
    } else {
      ready.emplace_back(std::move(done), fail(EAGAIN));
    }
    drop_if_empty(key);
  }
  run(ready);
  tell(blocked);
}

void LockTable::release_connection(uint64_t connection) {
  Ready ready;
  {
    std::lock_guard lock(mu_);
    for (auto it = spaces_.begin(); it != spaces_.end();) {
      Space& s = it->second;
      std::erase_if(s.ranges, [&](const RangeLock& r) { return r.owner.connection == connection; });
      std::erase_if(s.entries,
                    [&](const EntryLock& e) { return e.owner.connection == connection; });
      for (auto w = s.waiters.begin(); w != s.waiters.end();) {
        uint64_t c = it->first.kind == LockKind::kEntry ? w->entry.owner.connection
                                                        : w->range.owner.connection;
        if (c == connection) {
          ready.emplace_back(std::move(w->done), fail(ENOTCONN));
          w = s.waiters.erase(w);
        } else {
          ++w;
        }
      }
      grant_waiters(it->first, s, ready);
      if (s.empty()) {
        it = spaces_.erase(it);
      } else {
        ++it;
      }
    }
  }
  run(ready);
}

size_t LockTable::granted_count() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [k, s] : spaces_) n += s.ranges.size() + s.entries.size();
  return n;
}

size_t LockTable::waiter_count() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [k, s] : spaces_) n += s.waiters.size();
  return n;
}

}  // namespace mortar::brickd
