// The brick's view of its directory: every file operation of the brick protocol, addressed by
// GFID, done with syscalls relative to directory descriptors. Names are single components
// that never reach outside the brick: no symlink is followed, ".mortar" at the root is
// invisible, and GFIDs resolve through kernel file handles kept in the metadata store.
//
// Blocking: every call does disk I/O. Thread-safe: calls may run on any number of threads.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "brickd/meta_store.h"
#include "common/buffer.h"
#include "common/gfid.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "proto/brick.pb.h"

namespace mortar::brickd {

// A single path component a client may name: not empty, not "." or "..", no '/', no NUL,
// at most NAME_MAX bytes. EINVAL or ENAMETOOLONG otherwise.
Result<void> check_name(std::string_view name);
// True for a name the brick keeps for itself (".mortar" in the brick root).
bool is_reserved_name(const Gfid& parent, std::string_view name);
// True for an xattr name under the brick's reserved prefix.
bool is_reserved_xattr(std::string_view name);

void fill_iatt(const struct stat& st, const Gfid& gfid, pb::Iatt* out);

class BrickFs {
 public:
  struct Options {
    std::string brick_dir;
    std::string volume;
    bool rebuild_index = false;  // crawl the brick and rebuild the index even if it exists
  };

  // Opens the brick: it must be an existing directory. Claims it for `volume`, or refuses
  // (EEXIST) when it already belongs to another volume. Rebuilds the index from the brick
  // when the index is missing.
  static Result<std::unique_ptr<BrickFs>> open(const Options& options);
  ~BrickFs();

  const Gfid& brick_id() const { return brick_id_; }
  MetaStore& meta() { return *meta_; }

  // Entry operations.
  Result<pb::Iatt> lookup(const Gfid& parent, std::string_view name);
  Result<pb::Iatt> lookup_gfid(const Gfid& gfid);
  struct Created {
    pb::Iatt attr;
    UniqueFd fd;
  };
  Result<Created> create(const pb::CreateReq& req);
  Result<pb::Iatt> mknod(const pb::MknodReq& req);
  Result<pb::Iatt> mkdir(const pb::MkdirReq& req);
  Result<pb::Iatt> symlink(const pb::SymlinkReq& req);
  Result<pb::Iatt> link(const pb::LinkReq& req);
  Result<void> unlink(const pb::UnlinkReq& req);
  Result<void> rmdir(const pb::RmdirReq& req);
  Result<void> rename(const pb::RenameReq& req);

  // Inode operations by GFID.
  Result<pb::Iatt> getattr(const Gfid& gfid);
  Result<std::pair<pb::Iatt, pb::Iatt>> setattr(const Gfid& gfid, const pb::SetattrReq& req);
  Result<std::pair<pb::Iatt, pb::Iatt>> truncate(const Gfid& gfid, uint64_t size);
  Result<std::string> readlink(const Gfid& gfid);
  Result<UniqueFd> open(const Gfid& gfid, uint32_t flags);
  Result<UniqueFd> opendir(const Gfid& gfid);
  Result<pb::StatfsRsp> statfs();

  // Operations on an open descriptor (from open/create/opendir) of inode `gfid`.
  Result<pb::Iatt> fgetattr(int fd, const Gfid& gfid);
  Result<std::pair<pb::Iatt, pb::Iatt>> fsetattr(int fd, const Gfid& gfid,
                                                 const pb::SetattrReq& req);
  Result<std::pair<pb::Iatt, pb::Iatt>> ftruncate(int fd, const Gfid& gfid, uint64_t size);
  Result<Buffer> read(int fd, uint64_t offset, uint32_t size);
  Result<size_t> write(int fd, uint64_t offset, std::string_view data);
  Result<void> fsync(int fd, bool datasync);
  Result<void> fallocate(int fd, uint32_t mode, uint64_t offset, uint64_t length);
  // Entries after `offset` of directory `fd` (which is `dir`), about `size` bytes of them.
  // The caller serialises calls on one descriptor.
  Result<pb::ReaddirRsp> readdir(int fd, const Gfid& dir, uint64_t offset, uint32_t size,
                                 bool plus);

  // Extended attributes, by GFID (fd < 0) or by open descriptor. Reserved names are hidden.
  Result<std::string> getxattr(const Gfid& gfid, int fd, const std::string& name);
  Result<void> setxattr(const Gfid& gfid, int fd, const std::string& name, std::string_view value,
                        int flags);
  Result<std::vector<std::string>> listxattr(const Gfid& gfid, int fd);
  Result<void> removexattr(const Gfid& gfid, int fd, const std::string& name);

  // xxh3-64 of each `block_size` block of [offset, offset + length) of a regular file, and the
  // file's size.
  Result<std::pair<std::vector<uint64_t>, uint64_t>> checksum(const Gfid& gfid, uint64_t offset,
                                                              uint64_t length,
                                                              uint32_t block_size);
  // A path of the inode within the volume ("/a/b"), from the index's links; "" if none known.
  std::string path_of(const Gfid& gfid);

  // Walks the whole brick and rebuilds the GFID index from the files' xattrs.
  Result<size_t> rebuild_index();

 private:
  class InodeRef;
  BrickFs(UniqueFd root, int mount_id, std::unique_ptr<MetaStore> meta, Gfid brick_id);

  Result<InodeRef> inode(const Gfid& gfid);
  Result<UniqueFd> open_handle(const Gfid& gfid, int flags);
  Result<UniqueFd> dir_fd(const Gfid& gfid);
  // stat + GFID of the entry `name` in `dirfd` (which is `parent`), assigning a GFID to an
  // entry that has none and indexing what the index lacks.
  Result<pb::Iatt> stat_entry(int dirfd, const Gfid& parent, std::string_view name);
  Result<Gfid> entry_gfid(int dirfd, std::string_view name, bool assign);
  Result<void> index_entry(int dirfd, std::string_view name, const Gfid& gfid, const Gfid& parent,
                           const struct stat& st);
  // Common tail of every new-entry call: GFID, ownership, index; rolls the entry back on error.
  Result<pb::Iatt> finish_new_entry(int dirfd, const Gfid& parent, std::string_view name,
                                    const std::string& gfid_bytes, uint32_t uid, uint32_t gid,
                                    uint32_t mode, bool is_dir);
  Result<Gfid> check_new_entry(const Gfid& parent, std::string_view name,
                               const std::string& gfid_bytes);
  void forget_entry(const Gfid& gfid, const Gfid& parent, std::string_view name, bool last_link);

  UniqueFd root_;
  int mount_id_;
  std::unique_ptr<MetaStore> meta_;
  Gfid brick_id_;
};

}  // namespace mortar::brickd
