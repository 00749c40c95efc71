// Mount options of mortar-fuse and mount.mortar: what `-o` may say, in mortar's spelling and
// in GlusterFS's. Unknown options are warned about and ignored, never fatal (a stray `nofail`
// must not keep a web head from booting).
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "translators/options.h"

namespace mortar::fuse {

struct MountOptions {
  std::string volfile;                       // volfile=FILE: mount this graph
  std::vector<std::string> volfile_servers;  // HOST of HOST:/VOL, then backup-volfile-servers
  std::string volume;                        // VOL of HOST:/VOL
  std::string log_file;
  std::string pid_file;  // pid-file=PATH: where the mount daemon writes its PID
  std::string log_level = "info";
  double entry_timeout = 1.0;  // seconds the kernel may trust a name
  double attr_timeout = 1.0;   // seconds the kernel may trust attributes
  double negative_timeout = 0.0;
  bool writeback_cache = false;
  uint32_t max_write = 1u << 20;
  bool direct_io = false;
  bool read_only = false;
  bool debug = false;                       // log every operation
  // Names the kernel or ls(1) asks about for every file, answered by the client unless the
  // mount passes them to the bricks, as a GlusterFS mount does without the same options:
  // POSIX ACLs (`acl`: stored on the bricks and enforced by the kernel), security.* labels
  // (`selinux`), and security.capability alone (`capability`: setcap, without SELinux labels).
  bool acl = false;
  bool selinux = false;
  bool capability = false;
  std::vector<std::string> kernel_options;  // passed to mount(2): nodev, noatime, ...
  int volfile_max_fetch_attempts = 3;       // rounds over the volfile servers at mount time
  // The volume's mount options (GetspecRsp.mount_options) the user gave with -o, by their
  // mgmtd spelling ("attribute-timeout"): the user's value wins over the volume's.
  std::set<std::string> given;
};

// Applies one comma-separated option list. Malformed values of known options are errors;
// unknown options only add to `warnings`.
xl::Checked<void> apply_mount_options(std::string_view list, MountOptions& out,
                                      std::vector<std::string>& warnings);

// Applies the volume's mount options from mortar-mgmtd (attribute-timeout, entry-timeout,
// negative-timeout, kernel-writeback-cache) as defaults: keys in `out.given` keep the user's
// value. Keys this client does not know (a newer server's) are skipped.
xl::Checked<void> apply_volume_mount_options(const std::map<std::string, std::string>& options,
                                             MountOptions& out);

}  // namespace mortar::fuse
