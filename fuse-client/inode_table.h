// The FUSE client's inode table: kernel node ids <-> GFIDs, with the kernel's lookup counts.
// A node id is handed out once per GFID while the kernel remembers it and is never reused, so
// (node id, generation 0) stays unique for the life of the mount.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/gfid.h"

namespace mortar::fuse {

using NodeId = uint64_t;
inline constexpr NodeId kRootNode = 1;  // FUSE_ROOT_ID

class InodeTable {
 public:
  InodeTable();

  // The node id for `gfid`, taking one kernel lookup reference on it.
  NodeId ref(const Gfid& gfid);
  // Drops `count` kernel references; the entry goes when none are left (never the root).
  void forget(NodeId node, uint64_t count);
  std::optional<Gfid> gfid(NodeId node) const;
  size_t size() const;

 private:
  struct Entry {
    Gfid gfid;
    uint64_t lookups = 0;
  };
  mutable std::mutex mu_;
  NodeId next_ = kRootNode + 1;               // GUARDED_BY(mu_)
  std::unordered_map<NodeId, Entry> nodes_;   // GUARDED_BY(mu_)
  std::unordered_map<Gfid, NodeId> by_gfid_;  // GUARDED_BY(mu_)
};

// The st_ino the application sees: the same on every mount and for every name of a file.
uint64_t inode_number(const Gfid& gfid);

}  // namespace mortar::fuse
