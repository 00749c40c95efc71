#include "mgmtd/store.h"

#include <rocksdb/db.h>

#include "common/gfid.h"
#include "common/log.h"

namespace mortar::mgmtd {

StateStore::StateStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
StateStore::~StateStore() = default;

Result<std::unique_ptr<StateStore>> StateStore::open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    MLOG_ERROR("cannot open state store {}: {}", dir, s.ToString());
    return fail(EIO);
  }
  std::unique_ptr<StateStore> store(new StateStore(std::unique_ptr<rocksdb::DB>(raw)));
  std::string uuid;
  s = store->db_->Get(rocksdb::ReadOptions(), "uuid", &uuid);
  if (s.IsNotFound()) {
    uuid = Gfid::random().str();
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = store->db_->Put(sync, "uuid", uuid);
  }
  if (!s.ok()) {
    MLOG_ERROR("state store {}: {}", dir, s.ToString());
    return fail(EIO);
  }
  store->uuid_ = uuid;
  return store;
}

Result<void> StateStore::save(const pb::ClusterState& state) {
  auto s = db_->Put(rocksdb::WriteOptions(), "state", state.SerializeAsString());
  if (!s.ok()) {
    MLOG_ERROR("cannot save the cluster state: {}", s.ToString());
    return fail(EIO);
  }
  return ok();
}

std::optional<pb::ClusterState> StateStore::load() const {
  std::string raw;
  if (!db_->Get(rocksdb::ReadOptions(), "state", &raw).ok()) return std::nullopt;
  pb::ClusterState state;
  if (!state.ParseFromString(raw)) return std::nullopt;
  return state;
}

}  // namespace mortar::mgmtd
