#include "brickd/meta_store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace mortar::brickd {

namespace {

// Key spaces, one leading byte each.
constexpr char kInodeKey = 'G';
constexpr char kLinkKey = 'L';
constexpr char kChangelogKey = 'C';
constexpr char kHealKey = 'H';
constexpr char kMetaKey = 'M';
// Bucket index: 'B' + bucket (2 bytes, big-endian) + parent GFID + name -> GFID + type
// (4 bytes, little-endian). Keys of one bucket are contiguous and ordered by (parent, name).
constexpr char kBucketKey = 'B';

std::string key(char space, const Gfid& gfid) {
  std::string k(1, space);
  k.append(gfid.bytes());
  return k;
}

std::string link_key(const Gfid& gfid, const Gfid& parent, std::string_view name) {
  std::string k = key(kLinkKey, gfid);
  k.append(parent.bytes());
  k.append(name);
  return k;
}

std::string bucket_prefix(uint32_t bucket) {
  std::string k(1, kBucketKey);
  k.push_back(static_cast<char>((bucket >> 8) & 0xff));
  k.push_back(static_cast<char>(bucket & 0xff));
  return k;
}

std::string bucket_key(const Gfid& parent, std::string_view name) {
  std::string k = bucket_prefix(entry_bucket(parent, name));
  k.append(parent.bytes());
  k.append(name);
  return k;
}

std::string bucket_value(const Gfid& gfid, uint32_t type) {
  std::string v(gfid.bytes());
  for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>(type >> (8 * i)));
  return v;
}

// Inode record: ino (8 bytes LE), handle type (4 bytes LE), handle bytes.
std::string encode(const InodeRecord& rec) {
  std::string v(12, '\0');
  for (int i = 0; i < 8; ++i) v[i] = static_cast<char>(rec.ino >> (8 * i));
  uint32_t t = static_cast<uint32_t>(rec.handle_type);
  for (int i = 0; i < 4; ++i) v[8 + i] = static_cast<char>(t >> (8 * i));
  v.append(rec.handle);
  return v;
}

std::optional<InodeRecord> decode(std::string_view v) {
  if (v.size() < 12) return std::nullopt;
  InodeRecord rec;
  for (int i = 0; i < 8; ++i)
    rec.ino |= static_cast<uint64_t>(static_cast<uint8_t>(v[i])) << (8 * i);
  uint32_t t = 0;
  for (int i = 0; i < 4; ++i) {
    t |= static_cast<uint32_t>(static_cast<uint8_t>(v[8 + i])) << (8 * i);
  }
  rec.handle_type = static_cast<int>(t);
  rec.handle = std::string(v.substr(12));
  return rec;
}

Errno log_status(const rocksdb::Status& s, std::string_view what) {
  MLOG_ERROR("metadata store: {} failed: {}", what, s.ToString());
  return Errno(EIO);
}

bool all_zero(const pb::Changelog& c) {
  for (auto v : c.pending()) {
    if (v != 0) return false;
  }
  for (auto v : c.dirty()) {
    if (v != 0) return false;
  }
  return true;
}

void add_into(google::protobuf::RepeatedField<int64_t>* to,
              const google::protobuf::RepeatedField<int64_t>& delta) {
  while (to->size() < delta.size()) to->Add(0);
  for (int i = 0; i < delta.size(); ++i) to->Set(i, to->Get(i) + delta.Get(i));
}

}  // namespace

uint32_t entry_bucket(const Gfid& parent, std::string_view name) {
  // One contiguous key, on the stack for any name a directory can hold.
  char stack[Gfid::kSize + 256];
  std::string heap;
  char* key = stack;
  size_t len = Gfid::kSize + name.size();
  if (len > sizeof stack) {
    heap.resize(len);
    key = heap.data();
  }
  std::memcpy(key, parent.bytes().data(), Gfid::kSize);
  std::memcpy(key + Gfid::kSize, name.data(), name.size());
  return static_cast<uint32_t>(XXH3_64bits(key, len) % 65536);
}

std::string BucketEntry::cursor() const {
  std::string c(parent.bytes());
  c.append(name);
  return c;
}

MetaStore::Batch::Batch() : wb_(std::make_unique<rocksdb::WriteBatch>()) {}
MetaStore::Batch::~Batch() = default;

void MetaStore::Batch::put_inode(const Gfid& gfid, const InodeRecord& rec) {
  wb_->Put(key(kInodeKey, gfid), encode(rec));
}

void MetaStore::Batch::remove_inode(const Gfid& gfid, const std::vector<Link>& links) {
  removed_.push_back(gfid);
  wb_->Delete(key(kInodeKey, gfid));
  wb_->Delete(key(kChangelogKey, gfid));
  wb_->Delete(key(kHealKey, gfid));
  for (const auto& l : links) {
    wb_->Delete(link_key(gfid, l.parent, l.name));
    wb_->Delete(bucket_key(l.parent, l.name));
  }
}

void MetaStore::Batch::add_link(const Gfid& gfid, const Gfid& parent, std::string_view name,
                                uint32_t type) {
  wb_->Put(link_key(gfid, parent, name), "");
  wb_->Put(bucket_key(parent, name), bucket_value(gfid, type));
}

void MetaStore::Batch::remove_link(const Gfid& gfid, const Gfid& parent, std::string_view name) {
  wb_->Delete(link_key(gfid, parent, name));
  wb_->Delete(bucket_key(parent, name));
}

size_t MetaStore::Batch::count() const { return wb_->Count(); }

MetaStore::MetaStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
MetaStore::~MetaStore() = default;

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = 2;
  options.keep_log_file_num = 3;
  options.max_log_file_size = 1 << 20;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    MLOG_ERROR("cannot open metadata store {}: {}", dir, s.ToString());
    return fail(EIO);
  }
  std::unique_ptr<MetaStore> store(new MetaStore(std::unique_ptr<rocksdb::DB>(raw)));
  // The heal index's size, counted once; apply_changelog keeps it up to date.
  int64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(store->db_->NewIterator(rocksdb::ReadOptions()));
  std::string prefix(1, kHealKey);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
  store->heal_count_ = n;
  return store;
}

Result<void> MetaStore::commit(Batch& batch) {
  // Removed inodes' changelog stripes, held across the read and the write: a concurrent
  // apply_changelog could otherwise clear (or re-create) an index entry between them, and the
  // counter would go wrong, or a mark would outlive its inode. Locked in stripe order.
  std::vector<size_t> stripes;
  for (const auto& g : batch.removed_) stripes.push_back(g.hash() % changelog_locks_.size());
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  std::vector<std::unique_lock<std::mutex>> held;
  for (size_t i : stripes) held.emplace_back(changelog_locks_[i]);
  int64_t unindexed = 0;
  for (const auto& g : batch.removed_) {
    std::string v;
    if (db_->Get(rocksdb::ReadOptions(), key(kHealKey, g), &v).ok()) ++unindexed;
  }
  auto s = db_->Write(rocksdb::WriteOptions(), batch.wb_.get());
  if (!s.ok()) return fail(log_status(s, "write"));
  heal_count_ -= unindexed;
  batch.wb_->Clear();
  batch.removed_.clear();
  return ok();
}

Result<std::optional<InodeRecord>> MetaStore::get_inode(const Gfid& gfid) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), key(kInodeKey, gfid), &v);
  if (s.IsNotFound()) return std::optional<InodeRecord>();
  if (!s.ok()) return fail(log_status(s, "read"));
  auto rec = decode(v);
  if (!rec) {
    MLOG_ERROR("metadata store: corrupt inode record for {}", gfid.str());
    return fail(EIO);
  }
  return rec;
}

Result<std::vector<Link>> MetaStore::links(const Gfid& gfid) {
  std::vector<Link> out;
  std::string prefix = key(kLinkKey, gfid);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto k = it->key().ToStringView().substr(prefix.size());
    if (k.size() < Gfid::kSize) continue;
    out.push_back(
        Link{*Gfid::from_bytes(k.substr(0, Gfid::kSize)), std::string(k.substr(Gfid::kSize))});
  }
  if (!it->status().ok()) return fail(log_status(it->status(), "scan"));
  return out;
}

Result<bool> MetaStore::has_link(const Gfid& gfid, const Gfid& parent, std::string_view name) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), link_key(gfid, parent, name), &v);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return fail(log_status(s, "read"));
  return true;
}

Result<pb::Changelog> MetaStore::apply_changelog(const Gfid& gfid, const pb::Changelog& delta,
                                                 bool require_inode) {
  std::lock_guard lock(changelog_locks_[gfid.hash() % changelog_locks_.size()]);
  std::string k = key(kChangelogKey, gfid);
  std::string v;
  pb::Changelog cur;
  auto s = db_->Get(rocksdb::ReadOptions(), k, &v);
  if (s.ok()) {
    if (!cur.ParseFromString(v)) {
      MLOG_ERROR("metadata store: corrupt changelog for {}", gfid.str());
      return fail(EIO);
    }
  } else if (!s.IsNotFound()) {
    return fail(log_status(s, "read"));
  }
  if (all_zero(delta)) return cur;
  // Checked under the stripe lock that commit() holds while it removes an inode: a mark on an
  // inode removed since the caller looked could never be cleared.
  if (require_inode && !gfid.is_root()) {
    std::string rec;
    auto r = db_->Get(rocksdb::ReadOptions(), key(kInodeKey, gfid), &rec);
    if (r.IsNotFound()) return fail(ESTALE);
    if (!r.ok()) return fail(log_status(r, "read"));
  }
  bool was_indexed = !all_zero(cur);
  add_into(cur.mutable_pending(), delta.pending());
  add_into(cur.mutable_dirty(), delta.dirty());
  rocksdb::WriteBatch wb;
  bool indexed = !all_zero(cur);
  if (!indexed) {
    wb.Delete(k);
    wb.Delete(key(kHealKey, gfid));
  } else {
    wb.Put(k, cur.SerializeAsString());
    wb.Put(key(kHealKey, gfid), "");
  }
  s = db_->Write(rocksdb::WriteOptions(), &wb);
  if (!s.ok()) return fail(log_status(s, "write"));
  if (indexed != was_indexed) heal_count_ += indexed ? 1 : -1;
  return cur;
}

Result<std::vector<Gfid>> MetaStore::heal_index(size_t max) {
  std::vector<Gfid> out;
  std::string prefix(1, kHealKey);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && out.size() < max;
       it->Next()) {
    if (auto g = Gfid::from_bytes(it->key().ToStringView().substr(1))) out.push_back(*g);
  }
  if (!it->status().ok()) return fail(log_status(it->status(), "scan"));
  return out;
}

Result<std::vector<BucketEntry>> MetaStore::bucket_entries(uint32_t bucket,
                                                           std::string_view cursor, size_t max) {
  std::vector<BucketEntry> out;
  if (bucket >= 65536) return fail(EINVAL);
  std::string prefix = bucket_prefix(bucket);
  std::string start = prefix + std::string(cursor);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek(start);
  // The cursor names the last entry already listed: go on after it.
  if (!cursor.empty() && it->Valid() && it->key() == start) it->Next();
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < max; it->Next()) {
    auto k = it->key().ToStringView().substr(prefix.size());
    auto v = it->value().ToStringView();
    if (k.size() < Gfid::kSize || v.size() < Gfid::kSize + 4) continue;
    BucketEntry e;
    e.parent = *Gfid::from_bytes(k.substr(0, Gfid::kSize));
    e.name = std::string(k.substr(Gfid::kSize));
    e.gfid = *Gfid::from_bytes(v.substr(0, Gfid::kSize));
    for (int i = 0; i < 4; ++i) {
      e.type |= static_cast<uint32_t>(static_cast<uint8_t>(v[Gfid::kSize + i])) << (8 * i);
    }
    out.push_back(std::move(e));
  }
  if (!it->status().ok()) return fail(log_status(it->status(), "scan"));
  return out;
}

Result<std::optional<std::string>> MetaStore::get_meta(std::string_view k) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), std::string(1, kMetaKey) + std::string(k), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return fail(log_status(s, "read"));
  return std::optional<std::string>(std::move(v));
}

Result<void> MetaStore::put_meta(std::string_view k, std::string_view value) {
  auto s = db_->Put(rocksdb::WriteOptions(), std::string(1, kMetaKey) + std::string(k), value);
  if (!s.ok()) return fail(log_status(s, "write"));
  return ok();
}

Result<void> MetaStore::clear_inodes() {
  for (char space : {kInodeKey, kLinkKey, kBucketKey}) {
    std::string begin(1, space), end(1, static_cast<char>(space + 1));
    auto s = db_->DeleteRange(rocksdb::WriteOptions(), db_->DefaultColumnFamily(), begin, end);
    if (!s.ok()) return fail(log_status(s, "delete range"));
  }
  return ok();
}

Result<void> MetaStore::sync() {
  auto s = db_->SyncWAL();
  if (!s.ok()) return fail(log_status(s, "sync"));
  return ok();
}

}  // namespace mortar::brickd
