// The brick's lock manager: POSIX byte-range locks and BSD flock locks held by applications,
// and the inode and entry locks replication takes. All in memory: a lock lives as long as the
// connection of its owner, so a client that disconnects or dies releases everything it held.
//
// Thread-safe. Completion callbacks run outside the table's mutex, on the thread that made
// the lock available (the caller of lock/unlock/release).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/gfid.h"
#include "common/result.h"

namespace mortar::brickd {

enum class LockKind : uint8_t { kPosix, kFlock, kInode, kEntry };
enum class LockMode : uint8_t { kUnlock, kRead, kWrite };

struct LockOwner {
  uint64_t connection = 0;
  uint64_t owner = 0;  // the client's lock owner
  friend bool operator==(const LockOwner&, const LockOwner&) = default;
};

struct RangeLock {
  LockOwner owner;
  LockMode mode = LockMode::kWrite;
  uint64_t start = 0;
  uint64_t end = UINT64_MAX;  // inclusive
  uint32_t pid = 0;
};

// Converts fcntl's (start, length) with length 0 meaning "to end of file" to an inclusive end.
// EINVAL when the range overflows.
Result<uint64_t> range_end(uint64_t start, uint64_t length);

class LockTable {
 public:
  // Granted (ok), refused (EAGAIN for a non-blocking conflict) or dropped (ENOTCONN when the
  // waiter's connection closes).
  using Done = std::function<void(Result<void>)>;

  // Locks or unlocks (mode kUnlock) a range of inode `gfid` in lock space (kind, domain),
  // with POSIX semantics: an owner's own locks are replaced, split and merged, never
  // conflict. A conflicting request fails with EAGAIN or, if `blocking`, waits in FIFO order.
  // An unlock also ends the owner's waits on the range, with EINTR.
  void lock_range(LockKind kind, const std::string& domain, const Gfid& gfid,
                  const RangeLock& request, bool blocking, Done done);
  // The first lock of another owner that would conflict with `request`, if any (F_GETLK).
  std::optional<RangeLock> test_range(LockKind kind, const std::string& domain, const Gfid& gfid,
                                      const RangeLock& request);
  // Drops every range lock `owner` holds on the inode in this space (close(2) semantics).
  void release_owner(LockKind kind, const std::string& domain, const Gfid& gfid,
                     const LockOwner& owner);

  // Entry locks: a name in directory `parent`, or the whole directory when `name` is empty.
  // Each lock call takes one more hold; each unlock call drops one hold of that name.
  void lock_entry(const std::string& domain, const Gfid& parent, const std::string& name,
                  LockMode mode, const LockOwner& owner, bool blocking, Done done);

  // Drops every lock and waiter of a connection.
  void release_connection(uint64_t connection);

  size_t granted_count() const;
  size_t waiter_count() const;

  // Told, outside the table's mutex, when a blocking request has to wait: `connection` holds a
  // conflicting lock of (kind, domain, gfid). Set once, before use.
  using Contention = std::function<void(uint64_t connection, LockKind kind,
                                        const std::string& domain, const Gfid& gfid)>;
  void set_contention_listener(Contention listener) { contention_ = std::move(listener); }

 private:
  struct Key {
    LockKind kind;
    std::string domain;
    Gfid gfid;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  struct EntryLock {
    LockOwner owner;
    LockMode mode;
    std::string name;
  };
  struct Waiter {
    RangeLock range;  // range locks
    EntryLock entry;  // entry locks
    Done done;
  };
  struct Space {
    std::vector<RangeLock> ranges;
    std::vector<EntryLock> entries;
    std::list<Waiter> waiters;
    bool empty() const { return ranges.empty() && entries.empty() && waiters.empty(); }
  };
  using Ready = std::vector<std::pair<Done, Result<void>>>;
  struct Blocked {
    std::vector<uint64_t> holders;
    LockKind kind;
    std::string domain;
    Gfid gfid;
  };

  static bool range_conflicts(const Space& s, const RangeLock& r, const RangeLock** with);
  static void apply_range(Space& s, const RangeLock& r);
  static bool entry_conflicts(const Space& s, const EntryLock& e);
  void grant_waiters(Key key, Space& s, Ready& ready);  // REQUIRES(mu_)
  void drop_if_empty(const Key& key);                   // REQUIRES(mu_)
  static void run(Ready& ready);
  void tell(const Blocked& blocked) const;

  Contention contention_;
  mutable std::mutex mu_;
  std::map<Key, Space> spaces_;  // GUARDED_BY(mu_)
};

}  // namespace mortar::brickd
