// The brick's metadata index in RocksDB under BRICK/.mortar/meta: GFID -> kernel file handle,
// GFID -> (parent, name) links for GFID-to-path answers, the bucket index (every entry by its
// distribute bucket, so rebalance lists one bucket without a crawl), replication changelogs
// and the heal index. File data and the GFIDs themselves live in the brick's files (xattrs), so this index
// can always be rebuilt from the brick.
//
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/gfid.h"
#include "common/result.h"
#include "proto/brick.pb.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace mortar::brickd {

struct InodeRecord {
  uint64_t ino = 0;  // st_ino, to tell a copied GFID xattr from a hard link
  int handle_type = 0;
  std::string handle;  // struct file_handle's f_handle bytes
};

struct Link {
  Gfid parent;
  std::string name;
};

// The distribute bucket of an entry: xxh3_64(parent GFID bytes ‖ name) mod 65536. The same
// function as cluster/distribute's bucket_of (translators/dht/bucket_map.h); a unit test holds
// the two together.
uint32_t entry_bucket(const Gfid& parent, std::string_view name);

// One entry of the bucket index.
struct BucketEntry {
  Gfid parent;
  std::string name;
  Gfid gfid;
  uint32_t type = 0;  // S_IFMT bits; 0 when the indexer did not know

  // Where a listing goes on after this entry.
  std::string cursor() const;
};

class MetaStore {
 public:
  // Opens or creates the store in `dir`.
  static Result<std::unique_ptr<MetaStore>> open(const std::string& dir);
  ~MetaStore();

  // Several index changes applied atomically by commit().
  class Batch {
   public:
    Batch();
    ~Batch();
    void put_inode(const Gfid& gfid, const InodeRecord& rec);
    // Removes the inode with everything kept about it (links, changelog, heal index).
    void remove_inode(const Gfid& gfid, const std::vector<Link>& links);
    // A name of the inode, also entered in the bucket index with its type (S_IFMT bits).
    void add_link(const Gfid& gfid, const Gfid& parent, std::string_view name,
                  uint32_t type = 0);
    // Removes the name from the link records and the bucket index. In one batch, removals must
    // come before the additions that reuse a name (a rename over an existing entry).
    void remove_link(const Gfid& gfid, const Gfid& parent, std::string_view name);
    size_t count() const;

   private:
    friend class MetaStore;
    std::unique_ptr<rocksdb::WriteBatch> wb_;
    std::vector<Gfid> removed_;  // inodes whose heal index entry goes too
  };
  Result<void> commit(Batch& batch);

  Result<std::optional<InodeRecord>> get_inode(const Gfid& gfid);
  Result<std::vector<Link>> links(const Gfid& gfid);
  Result<bool> has_link(const Gfid& gfid, const Gfid& parent, std::string_view name);

  // Adds `delta` to the inode's changelog and answers the new value; all-zero deltas read.
  // The inode enters the heal index while any counter is non-zero. `require_inode`: a non-zero
  // delta for an inode without a record (the root aside) fails with ESTALE.
  Result<pb::Changelog> apply_changelog(const Gfid& gfid, const pb::Changelog& delta,
                                        bool require_inode = false);
  // GFIDs in the heal index, in key order, at most `max`.
  Result<std::vector<Gfid>> heal_index(size_t max);
  // Number of inodes in the heal index (kept as a counter, so this is immediate).
  uint64_t heal_index_size() const { return heal_count_.load(); }

  // Entries of `bucket` in index order after `cursor` (a BucketEntry::cursor(); empty: from
  // the start), at most `max`.
  Result<std::vector<BucketEntry>> bucket_entries(uint32_t bucket, std::string_view cursor,
                                                  size_t max);

  Result<std::optional<std::string>> get_meta(std::string_view key);
  Result<void> put_meta(std::string_view key, std::string_view value);
  // Drops every inode, link and bucket record (before a rebuild from the brick).
  Result<void> clear_inodes();

  // Makes every change so far durable (fsync of the write-ahead log).
  Result<void> sync();

 private:
  explicit MetaStore(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
  // Striped by GFID: the changelog read-modify-write of one inode is serialised.
  std::array<std::mutex, 64> changelog_locks_;
  std::atomic<int64_t> heal_count_{0};
};

}  // namespace mortar::brickd
