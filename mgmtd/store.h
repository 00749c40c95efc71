// mortar-mgmtd's own RocksDB: the server's UUID (created once) and the last applied cluster
// state, so `volume info` answers from disk even before Raft has caught up.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "proto/mgmt.pb.h"

namespace rocksdb {
class DB;
}

namespace mortar::mgmtd {

class StateStore {
 public:
  static Result<std::unique_ptr<StateStore>> open(const std::string& dir);
  ~StateStore();

  const std::string& uuid() const { return uuid_; }
  Result<void> save(const pb::ClusterState& state);
  std::optional<pb::ClusterState> load() const;

 private:
  explicit StateStore(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
  std::string uuid_;
};

}  // namespace mortar::mgmtd
