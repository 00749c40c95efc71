// A real FUSE mount of a real graph, for integration tests. Unmounts (lazily) and kills the
// mount process on destruction, whatever the test did.
#pragma once

#include <string>
#include <vector>

#include "tests/support/brick.h"
#include "tests/support/process.h"

namespace mortar::test {

// True when `path` is a mount point of a mortar FUSE mount (per /proc/self/mountinfo).
bool is_mortar_mount(const std::string& path);

// Writes a volfile with one protocol/client for `brick` (served as "b0" of "vol").
std::string single_brick_volfile(const BrickDaemon& brick, const std::string& ping_timeout = "3");

class FuseMount {
 public:
  FuseMount(std::string volfile, std::string mountpoint, std::string log_path,
            std::vector<std::string> extra_args = {});
  ~FuseMount();

  // Starts mortar-fuse in the foreground and waits until the mount is there.
  bool mount();
  // fusermount3 -u -z, then waits for the process (killing it after a grace period).
  // Returns the process's exit status.
  int unmount();
  const std::string& path() const { return mountpoint_; }
  std::string operator/(const std::string& name) const { return mountpoint_ + "/" + name; }
  Process& process() { return process_; }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string volfile_;
  std::string mountpoint_;
  std::string log_path_;
  std::vector<std::string> extra_args_;
  Process process_;
};

// Lazy unmount of whatever is mounted on `path`; true if something was.
bool lazy_unmount(const std::string& path);

}  // namespace mortar::test
