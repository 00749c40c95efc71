#include "fuse-client/inode_table.h"

namespace mortar::fuse {

InodeTable::InodeTable() {
  nodes_[kRootNode] = Entry{Gfid::root(), 1};
  by_gfid_[Gfid::root()] = kRootNode;
}

NodeId InodeTable::ref(const Gfid& gfid) {
  std::lock_guard lock(mu_);
  auto it = by_gfid_.find(gfid);
  if (it != by_gfid_.end()) {
    ++nodes_[it->second].lookups;
    return it->second;
  }
  NodeId node = next_++;
  nodes_[node] = Entry{gfid, 1};
  by_gfid_[gfid] = node;
  return node;
}

void InodeTable::forget(NodeId node, uint64_t count) {
  if (node == kRootNode) return;
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  if (it->second.lookups > count) {
    it->second.lookups -= count;
    return;
  }
  by_gfid_.erase(it->second.gfid);
  nodes_.erase(it);
}

std::optional<Gfid> InodeTable::gfid(NodeId node) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.gfid;
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

uint64_t inode_number(const Gfid& gfid) {
  if (gfid.is_root()) return 1;
  std::string_view b = gfid.bytes();
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = hi << 8 | static_cast<uint8_t>(b[i]);
    lo = lo << 8 | static_cast<uint8_t>(b[8 + i]);
  }
  uint64_t ino = hi ^ lo;
  return ino <= 1 ? ino + 2 : ino;  // 0 is "no inode" and 1 is the root
}

}  // namespace mortar::fuse
