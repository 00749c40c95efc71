#include "fuse-client/mount_options.h"

#include <algorithm>
#include <array>

namespace mortar::fuse {

namespace {

constexpr std::array kKernelFlags = {
    "nosuid",     "suid",        "nodev",         "dev",      "noexec",    "exec",       "async",
    "sync",       "dirsync",     "atime",         "noatime",  "diratime",  "nodiratime", "relatime",
    "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime"};
// Read by mount(8), systemd or fstab tooling, not by the file system.
constexpr std::array kIgnored = {"defaults", "_netdev", "auto",  "noauto", "nofail",  "user",
                                 "nouser",   "users",   "owner", "group",  "comment", "rw"};

xl::Checked<double> seconds(std::string_view key, std::string_view value) {
  auto d = xl::parse_duration(value);
  if (!d) return xl::invalid("mount option " + std::string(key) + ": " + d.error());
  return static_cast<double>(d->count()) / 1000.0;
}

xl::Checked<bool> yes_no(std::string_view key, std::string_view value) {
  auto b = xl::parse_bool(value);
  if (!b) return xl::invalid("mount option " + std::string(key) + ": " + b.error());
  return *b;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(sep, pos);
    if (end == std::string_view::npos) end = s.size();
    if (end > pos) out.emplace_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

}  // namespace

xl::Checked<void> apply_mount_options(std::string_view list, MountOptions& out,
                                      std::vector<std::string>& warnings) {
  for (const std::string& item : split(list, ',')) {
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    bool has_value = eq != std::string::npos;
    auto need_value = [&]() -> xl::Checked<void> {
      if (!has_value || value.empty()) return xl::invalid("mount option " + key + " needs a value");
      return {};
    };

    if (key == "volfile") {
      if (auto r = need_value(); !r) return r;
      out.volfile = value;
    } else if (key == "backup-volfile-servers" || key == "backupvolfile-server") {
      if (auto r = need_value(); !r) return r;
      for (auto& h : split(value, ':')) out.volfile_servers.push_back(h);
    } else if (key == "log-file" || key == "log_file") {
      if (auto r = need_value(); !r) return r;
      out.log_file = value;
    } else if (key == "pid-file" || key == "pid_file") {
      if (auto r = need_value(); !r) return r;
      out.pid_file = value;
    } else if (key == "log-level" || key == "log_level") {
      if (auto r = need_value(); !r) return r;
      std::string level = value;
      std::transform(level.begin(), level.end(), level.begin(), ::tolower);
      if (level == "warning") level = "warn";
      if (level == "critical") level = "error";
      if (level == "none") level = "off";
      if (level != "trace" && level != "debug" && level != "info" && level != "warn" &&
          level != "error" && level != "off") {
        return xl::invalid("mount option log-level: '" + value + "' is not a log level");
      }
      out.log_level = level;
    } else if (key == "entry_timeout" || key == "entry-timeout") {
      auto s = seconds(key, value);
      if (!s) return xl::invalid(s.error());
      out.entry_timeout = *s;
      out.given.insert("entry-timeout");
    } else if (key == "attr_timeout" || key == "attribute-timeout") {
      auto s = seconds(key, value);
      if (!s) return xl::invalid(s.error());
      out.attr_timeout = *s;
      out.given.insert("attribute-timeout");
    } else if (key == "negative_timeout" || key == "negative-timeout") {
      auto s = seconds(key, value);
      if (!s) return xl::invalid(s.error());
      out.negative_timeout = *s;
      out.given.insert("negative-timeout");
    } else if (key == "writeback_cache" || key == "kernel-writeback-cache") {
      if (has_value) {
        auto b = yes_no(key, value);
        if (!b) return xl::invalid(b.error());
        out.writeback_cache = *b;
      } else {
        out.writeback_cache = true;
      }
      out.given.insert("kernel-writeback-cache");
    } else if (key == "volfile-max-fetch-attempts") {
      auto n = xl::parse_int(value);
      if (!n || *n < 1 || *n > 100) {
        return xl::invalid("mount option volfile-max-fetch-attempts: '" + value +
                           "' is not a number from 1 to 100");
      }
      out.volfile_max_fetch_attempts = static_cast<int>(*n);
    } else if (key == "max_write") {
      auto size = xl::parse_size(value);
      if (!size || *size < 4096 || *size > (1u << 20)) {
        return xl::invalid("mount option max_write: '" + value + "' is not a size from 4KB to 1MB");
      }
      out.max_write = static_cast<uint32_t>(*size);
    } else if (key == "direct_io") {
      out.direct_io = true;
    } else if (key == "direct-io-mode") {
      if (value == "enable" || value == "on" || value == "yes") {
        out.direct_io = true;
      } else if (value == "disable" || value == "off" || value == "no" || value == "auto") {
        out.direct_io = false;
      } else {
        return xl::invalid("mount option direct-io-mode: '" + value + "' is not enable/disable");
      }
    } else if (key == "ro") {
      out.read_only = true;
    } else if (key == "debug") {
      out.debug = true;
    } else if (key == "acl") {
      out.acl = true;
    } else if (key == "selinux") {
      out.selinux = true;
    } else if (key == "capability") {
      out.capability = true;
    } else if (std::find(kKernelFlags.begin(), kKernelFlags.end(), key) != kKernelFlags.end()) {
      out.kernel_options.push_back(key);
    } else if (std::find(kIgnored.begin(), kIgnored.end(), key) != kIgnored.end() ||
               key.starts_with("x-") || key == "transport") {
      // Not ours to act on.
    } else {
      warnings.push_back("unknown mount option '" + item + "' ignored");
    }
  }
  return {};
}

xl::Checked<void> apply_volume_mount_options(const std::map<std::string, std::string>& options,
                                             MountOptions& out) {
  constexpr std::array kVolumeKeys = {"attribute-timeout", "entry-timeout", "negative-timeout",
                                      "kernel-writeback-cache"};
  std::set<std::string> given = out.given;
  std::vector<std::string> unused;
  for (const auto& [key, value] : options) {
    if (std::find(kVolumeKeys.begin(), kVolumeKeys.end(), key) == kVolumeKeys.end()) continue;
    if (given.count(key)) continue;
    if (auto r = apply_mount_options(key + "=" + value, out, unused); !r) {
      out.given = given;
      return xl::invalid("the volume's " + r.error());
    }
  }
  // The volume's values are defaults, not the user's word: a later update may change them.
  out.given = std::move(given);
  return {};
}

}  // namespace mortar::fuse
