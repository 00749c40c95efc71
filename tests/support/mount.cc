#include "tests/support/mount.h"

#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mortar::test {

bool is_mortar_mount(const std::string& path) {
  // A dead FUSE mount point cannot be stat()ed (ENOTCONN): resolve its parent instead, so a
  // mount whose daemon died is still found, and unmounted.
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec);
  if (ec) {
    fs::path p(path);
    canonical = (fs::weakly_canonical(p.parent_path(), ec) / p.filename()).string();
  }
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == canonical && line.find(" - fuse.mortar ") != std::string::npos) return true;
  }
  return false;
}

std::string single_brick_volfile(const BrickDaemon& brick, const std::string& ping_timeout) {
  std::ostringstream v;
  v << "volume vol-client-0\n"
    << "    type protocol/client\n"
    << "    option remote-host " << brick.address() << "\n"
    << "    option remote-port " << brick.port() << "\n"
    << "    option remote-subvolume b0\n"
    << "    option remote-volume vol\n"
    << "    option ping-timeout " << ping_timeout << "\n"
    << "end-volume\n";
  return v.str();
}

bool lazy_unmount(const std::string& path) {
  if (!is_mortar_mount(path)) return false;
  Process p = Process::spawn({"/bin/fusermount3", "-u", "-z", path});
  if (p.wait() != 0) ::umount2(path.c_str(), MNT_DETACH);
  return true;
}

FuseMount::FuseMount(std::string volfile, std::string mountpoint, std::string log_path,
                     std::vector<std::string> extra_args)
    : volfile_(std::move(volfile)),
      mountpoint_(std::move(mountpoint)),
      log_path_(std::move(log_path)),
      extra_args_(std::move(extra_args)) {
  std::filesystem::create_directories(mountpoint_);
}

FuseMount::~FuseMount() { unmount(); }

bool FuseMount::mount() {
  std::vector<std::string> argv = {bin("mortar-fuse"), "--volfile",  volfile_, mountpoint_,
                                   "--foreground",     "--log-file", log_path_};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_ = Process::spawn(argv, log_path_ + ".out");
  return eventually([&] { return !process_.running() || is_mortar_mount(mountpoint_); }) &&
         process_.running();
}

int FuseMount::unmount() {
  lazy_unmount(mountpoint_);
  if (process_.pid() < 0) return 0;
  int status = process_.wait(std::chrono::seconds(10));
  if (status < 0) {
    process_.kill();
    return -1;
  }
  return status;
}

}  // namespace mortar::test
