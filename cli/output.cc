#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

namespace mortar::cli {

namespace {

// gluster's widths (cli/src/cli.h): the brick column of `volume status`, and its rules.
constexpr int kStatusBrickWidth = 43;
constexpr int kStatusLineWidth = 78;
// pool list: the hostname column is at least this wide.
constexpr int kPoolHostnameWidth = 8;

// printf formatting, so that every line is the byte-exact twin of gluster's cli_out().
[[gnu::format(printf, 1, 2)]] std::string sprintf_string(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  int size = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string out(size > 0 ? size : 0, '\0');
  if (size > 0) std::vsnprintf(out.data(), out.size() + 1, format, args);
  va_end(args);
  return out;
}

std::string dashes() {
  std::string line(kStatusLineWidth, '-');
  line += '\n';
  return line;
}

const char* status_name(pb::VolumeStatus status) {
  switch (status) {
    case pb::VOLUME_STARTED:
      return "Started";
    case pb::VOLUME_STOPPED:
      return "Stopped";
    default:
      return "Created";
  }
}

std::string brick_name(const pb::BrickStatus& b) { return "Brick " + b.host() + ":" + b.path(); }

std::string pid_string(int32_t pid) { return pid > 0 ? std::to_string(pid) : "N/A"; }

// cli_print_brick_status: the name wraps every 43 bytes; the columns follow its last piece.
std::string status_row(const std::string& name, const pb::BrickStatus& b) {
  std::string out;
  std::string_view rest = name;
  while (rest.size() > static_cast<size_t>(kStatusBrickWidth)) {
    out.append(rest.substr(0, kStatusBrickWidth));
    out += '\n';
    rest.remove_prefix(kStatusBrickWidth);
  }
  out.append(rest);
  out.append(kStatusBrickWidth - rest.size() + 1, ' ');
  std::string pid = pid_string(b.pid());
  if (b.port() != 0 && b.online()) {
    out += sprintf_string("%-10u%-11d%-8c%-5s\n", b.port(), 0, 'Y', pid.c_str());
  } else {
    out +=
        sprintf_string("%-10s%-11s%-8c%-5s\n", "N/A", "N/A", b.online() ? 'Y' : 'N', pid.c_str());
  }
  return out;
}

std::string detail_line(const char* key, const std::string& value) {
  return sprintf_string("%-20s : %-20s\n", key, value.c_str());
}

// cli_print_detailed_status. Mount options and inode size are not reported by mortar's
// bricks; gluster prints N/A when it lacks them, and so do we, keeping the layout.
std::string brick_status_detail(const pb::BrickStatus& b) {
  std::string out = dashes();
  out += detail_line("Brick", brick_name(b));
  if (b.online()) {
    out += sprintf_string("%-20s : %-20u\n", "TCP Port", b.port());
    out += sprintf_string("%-20s : %-20d\n", "RDMA Port", 0);
  } else {
    out += detail_line("TCP Port", "N/A");
    out += detail_line("RDMA Port", "N/A");
  }
  out += sprintf_string("%-20s : %-20c\n", "Online", b.online() ? 'Y' : 'N');
  out += detail_line("Pid", pid_string(b.pid()));
  out += detail_line("File System", b.fs_type().empty() ? "N/A" : b.fs_type());
  out += detail_line("Device", b.device().empty() ? "N/A" : b.device());
  out += detail_line("Mount Options", "N/A");
  out += detail_line("Inode Size", "N/A");
  out += detail_line("Disk Space Free", human_size(b.disk_free()));
  out += detail_line("Total Disk Space", human_size(b.disk_total()));
  out += detail_line("Inode Count", b.inodes_total() ? std::to_string(b.inodes_total()) : "N/A");
  out += detail_line("Free Inodes", b.inodes_free() ? std::to_string(b.inodes_free()) : "N/A");
  return out;
}

std::string remove_brick_word(const ParsedCommand& cmd) {
  switch (cmd.request.volume_remove_brick().action()) {
    case pb::VolumeRemoveBrick::START:
      return "start";
    case pb::VolumeRemoveBrick::STOP:
      return "stop";
    case pb::VolumeRemoveBrick::COMMIT:
      return "commit";
    case pb::VolumeRemoveBrick::FORCE:
      return "commit force";
    default:
      return "status";
  }
}

// What a failed command prints first: `volume start: webData`, `peer probe`, ...
std::string label(const ParsedCommand& cmd) {
  switch (cmd.command) {
    case Command::kPeerProbe:
      return "peer probe";
    case Command::kPeerDetach:
      return "peer detach";
    case Command::kPeerStatus:
      return "peer status";
    case Command::kPoolList:
      return "pool list";
    case Command::kVolumeCreate:
      return "volume create: " + cmd.volume;
    case Command::kVolumeStart:
      return "volume start: " + cmd.volume;
    case Command::kVolumeStop:
      return "volume stop: " + cmd.volume;
    case Command::kVolumeDelete:
      return "volume delete: " + cmd.volume;
    case Command::kVolumeInfo:
    case Command::kVolumeGraph:
      return "volume info";
    case Command::kVolumeStatus:
      return "volume status";
    case Command::kVolumeSet:
    case Command::kVolumeSetHelp:
      return "volume set";
    case Command::kVolumeGet:
      return "volume get option";
    case Command::kVolumeReset:
      return "volume reset";
    case Command::kVolumeHeal:
      return "volume heal";
    case Command::kVolumeAddBrick:
      return "volume add-brick";
    case Command::kVolumeReplaceBrick:
      return "volume replace-brick";
    case Command::kVolumeRebalance:
      return "volume rebalance: " + cmd.volume;
    case Command::kVolumeRemoveBrick:
      return "volume remove-brick " + remove_brick_word(cmd);
    default:
      return "help";
  }
}

Output failed(std::string line) { return Output{"", line + "\n", 1}; }

google::protobuf::util::JsonPrintOptions print_options() {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  return options;
}

// `{"key": [ ... ]}` in the printer's own layout (one space per level), so the JSON holds
// just the part of the answer the command is about, with every field present.
template <class Items>
std::string json_list(std::string_view key, const Items& items) {
  std::string out = "{\n \"" + std::string(key) + "\": [";
  if (items.empty()) return out + "]\n}\n";
  out += "\n";
  bool first = true;
  for (const auto& item : items) {
    std::string element = to_json(item);
    while (!element.empty() && element.back() == '\n') element.pop_back();
    if (!first) out += ",\n";
    first = false;
    size_t start = 0;
    while (start <= element.size()) {
      size_t end = element.find('\n', start);
      if (end == std::string::npos) end = element.size();
      out += "  " + element.substr(start, end - start);
      if (end < element.size()) out += "\n";
      start = end + 1;
    }
  }
  return out + "\n ]\n}\n";
}

// A single string field of the answer: {"text": "..."}; the printer does the escaping.
std::string json_string(bool text, const std::string& value) {
  pb::CliRsp part;
  if (text) {
    part.set_text(value);
  } else {
    part.set_message(value);
  }
  google::protobuf::util::JsonPrintOptions options = print_options();
  options.always_print_primitive_fields = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(part, &out, options);
  if (out.empty() || out.back() != '\n') out += "\n";
  return out;
}

std::vector<pb::PeerStatus> remote_peers(const pb::CliRsp& rsp) {
  std::vector<pb::PeerStatus> peers;
  for (const auto& p : rsp.peers()) {
    if (!p.local()) peers.push_back(p);
  }
  return peers;
}

std::string format_json(const ParsedCommand& cmd, const pb::CliRsp& rsp) {
  switch (cmd.command) {
    case Command::kPeerStatus:
      return json_list("peers", remote_peers(rsp));
    case Command::kPoolList:
      return json_list("peers", rsp.peers());
    case Command::kVolumeInfo:
      return json_list("volumes", rsp.volumes());
    case Command::kVolumeStatus:
      return json_list("status", rsp.status());
    case Command::kVolumeRemoveBrick:
      if (cmd.request.volume_remove_brick().action() == pb::VolumeRemoveBrick::STATUS ||
          cmd.request.volume_remove_brick().action() == pb::VolumeRemoveBrick::STOP) {
        return json_list("rebalance", rsp.rebalance());
      }
      return json_string(false, rsp.message());
    case Command::kVolumeRebalance:
      if (cmd.request.volume_rebalance().action() == pb::VolumeRebalance::STATUS ||
          cmd.request.volume_rebalance().action() == pb::VolumeRebalance::STOP) {
        return json_list("rebalance", rsp.rebalance());
      }
      return json_string(false, rsp.message());
    case Command::kVolumeGet:
    case Command::kVolumeSetHelp:
      return json_list("options", rsp.options());
    case Command::kVolumeGraph:
      return json_string(true, rsp.text());
    case Command::kVolumeHeal: {
      auto op = cmd.request.volume_heal().op();
      if (op == pb::VolumeHeal::INDEX || op == pb::VolumeHeal::FULL) {
        return json_string(false, rsp.message());
      }
      if (op == pb::VolumeHeal::SPLIT_BRAIN) {
        pb::CliRsp part;
        *part.mutable_heal_lines() = rsp.heal_lines();
        google::protobuf::util::JsonPrintOptions options = print_options();
        options.always_print_primitive_fields = false;
        std::string out;
        (void)google::protobuf::util::MessageToJsonString(part, &out, options);
        if (out.empty() || out.back() != '\n') out += "\n";
        return out;
      }
      return to_json(rsp.heal());
    }
    default:
      return json_string(false, rsp.message());
  }
}

std::string help_block(std::string_view title, std::string_view prefix1, std::string_view prefix2) {
  std::vector<CommandSpec> specs;
  for (const auto& s : command_table()) {
    if (s.pattern.starts_with(prefix1) || (!prefix2.empty() && s.pattern.starts_with(prefix2))) {
      specs.push_back(s);
    }
  }
  // cli_cmd_sort: by pattern.
  std::sort(specs.begin(), specs.end(),
            [](const CommandSpec& a, const CommandSpec& b) { return a.pattern < b.pattern; });
  std::string out = "\n" + std::string(title) + "\n" + std::string(title.size() + 1, '=') + "\n\n";
  for (const auto& s : specs) {
    out += std::string(s.pattern) + " - " + std::string(s.description) + "\n";
  }
  return out + "\n\n";
}

}  // namespace

std::string human_size(uint64_t n) {
  constexpr uint64_t kKB = 1024, kMB = kKB << 10, kGB = kMB << 10, kTB = kGB << 10, kPB = kTB << 10;
  const double d = static_cast<double>(n);
  if (n >= kPB) return sprintf_string("%.1fPB", d / kPB);
  if (n >= kTB) return sprintf_string("%.1fTB", d / kTB);
  if (n >= kGB) return sprintf_string("%.1fGB", d / kGB);
  if (n >= kMB) return sprintf_string("%.1fMB", d / kMB);
  if (n >= kKB) return sprintf_string("%.1fKB", d / kKB);
  return std::to_string(n) + "Bytes";
}

std::string hms(double seconds) {
  auto total = static_cast<uint64_t>(seconds);
  return sprintf_string("%llu:%02llu:%02llu", static_cast<unsigned long long>(total / 3600),
                        static_cast<unsigned long long>(total / 60 % 60),
                        static_cast<unsigned long long>(total % 60));
}

std::string rebalance_state_word(pb::RebalanceStatus::State state) {
  switch (state) {
    case pb::RebalanceStatus::IN_PROGRESS:
      return "in progress";
    case pb::RebalanceStatus::STOPPED:
      return "stopped";
    case pb::RebalanceStatus::COMPLETED:
      return "completed";
    case pb::RebalanceStatus::FAILED:
      return "failed";
    default:
      return "not started";
  }
}

// gluster's table (cli-rpc-ops.c, "%40s %16s %13s %13s %13s %13s %20s %18s").
std::string format_rebalance_status(const pb::CliRsp& rsp) {
  std::string out = sprintf_string("%40s %16s %13s %13s %13s %13s %20s %18s\n", "Node",
                                   "Rebalanced-files", "size", "scanned", "failures", "skipped",
                                   "status", "run time in h:m:s");
  out += sprintf_string("%40s %16s %13s %13s %13s %13s %20s %18s\n", "---------", "-----------",
                        "-----------", "-----------", "-----------", "-----------",
                        "------------", "--------------");
  double eta = 0;
  for (const auto& st : rsp.rebalance()) {
    out += sprintf_string("%40s %16llu %13s %13llu %13llu %13llu %20s %18s\n", st.node().c_str(),
                          static_cast<unsigned long long>(st.moved()),
                          human_size(st.bytes()).c_str(),
                          static_cast<unsigned long long>(st.scanned()),
                          static_cast<unsigned long long>(st.failed()),
                          static_cast<unsigned long long>(st.skipped()),
                          rebalance_state_word(st.state()).c_str(), hms(st.run_seconds()).c_str());
    if (st.state() == pb::RebalanceStatus::IN_PROGRESS) eta = std::max(eta, st.eta_seconds());
  }
  if (eta > 0) {
    out += "Estimated time left for rebalance to complete : " + sprintf_string("%14s", hms(eta).c_str()) + "\n";
  }
  return out;
}

std::string to_json(const google::protobuf::Message& message) {
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, print_options());
  if (!status.ok()) return "{}\n";
  if (out.empty() || out.back() != '\n') out += "\n";
  return out;
}

std::string volume_type(const pb::VolumeSpec& v) {
  if (v.replica_count() <= 1) return "Distribute";
  return static_cast<uint32_t>(v.bricks_size()) > v.replica_count() ? "Distributed-Replicate"
                                                                    : "Replicate";
}

std::string format_peer_status(const pb::CliRsp& rsp) {
  std::vector<pb::PeerStatus> peers = remote_peers(rsp);
  std::string out = sprintf_string("Number of Peers: %zu\n", peers.size());
  for (const auto& p : peers) {
    out += "\nHostname: " + p.hostname() + "\nUuid: " + p.uuid() + "\nState: Peer in Cluster (" +
           (p.connected() ? "Connected" : "Disconnected") + ")\n";
    if (!p.other_names().empty()) {
      out += "Other names:\n";
      for (const auto& name : p.other_names()) out += name + "\n";
    }
  }
  return out;
}

std::string format_pool_list(const pb::CliRsp& rsp) {
  // glusterd lists the other peers first and this server last, as "localhost".
  std::vector<const pb::PeerStatus*> order;
  for (const auto& p : rsp.peers()) {
    if (!p.local()) order.push_back(&p);
  }
  for (const auto& p : rsp.peers()) {
    if (p.local()) order.push_back(&p);
  }
  auto shown = [](const pb::PeerStatus* p) { return p->local() ? "localhost" : p->hostname(); };
  int width = kPoolHostnameWidth;
  for (const auto* p : order) width = std::max(width, static_cast<int>(shown(p).size()));
  std::string out = sprintf_string("UUID\t\t\t\t\t%-*s\tState\n", width, "Hostname");
  for (const auto* p : order) {
    out += sprintf_string("%s\t%-*s\t%s \n", p->uuid().c_str(), width, shown(p).c_str(),
                          p->connected() ? "Connected" : "Disconnected");
  }
  return out;
}

std::string format_volume_info(const pb::VolumeSpec& v) {
  // gluster opens every volume with cli_out(" "): a line holding one space.
  std::string out = " \n";
  out += "Volume Name: " + v.name() + "\n";
  out += "Type: " + volume_type(v) + "\n";
  out += "Volume ID: " + v.id() + "\n";
  out += "Status: ";
  out += status_name(v.status());
  out += '\n';
  out += "Snapshot Count: 0\n";
  const uint32_t bricks = v.bricks_size();
  const uint32_t replica = v.replica_count();
  if (replica <= 1) {
    out += sprintf_string("Number of Bricks: %u\n", bricks);
  } else if (v.arbiter_count() == 0) {
    out += sprintf_string("Number of Bricks: %u x %u = %u\n", bricks / replica, replica, bricks);
  } else {
    out += sprintf_string("Number of Bricks: %u x (%u + %u) = %u\n", bricks / replica,
                          replica - v.arbiter_count(), v.arbiter_count(), bricks);
  }
  out += "Transport-type: " + (v.transport().empty() ? std::string("tcp") : v.transport()) + "\n";
  out += "Bricks:\n";
  for (int i = 0; i < v.bricks_size(); ++i) {
    const pb::BrickSpec& b = v.bricks(i);
    // The last brick of each replica set is the arbiter of an arbiter volume.
    bool arbiter = b.arbiter() || (v.arbiter_count() > 0 && replica > 1 &&
                                   static_cast<uint32_t>(i) % replica == replica - 1);
    out += sprintf_string("Brick%d: %s:%s%s\n", i + 1, b.host().c_str(), b.path().c_str(),
                          arbiter ? " (arbiter)" : "");
  }
  if (!v.options().empty()) {
    out += "Options Reconfigured:\n";
    std::map<std::string, std::string> sorted(v.options().begin(), v.options().end());
    for (const auto& [key, value] : sorted) out += key + ": " + value + "\n";
  }
  return out;
}

std::string format_volume_status(const pb::VolumeStatusEntry& entry, bool detail) {
  std::string out = "Status of volume: " + entry.name() + "\n";
  if (!detail) {
    out += sprintf_string("%-*s %s  %s  %s  %s\n", kStatusBrickWidth, "Mortar process", "TCP Port",
                          "RDMA Port", "Online", "Pid");
    out += dashes();
  }
  for (const auto& b : entry.bricks()) {
    out += detail ? brick_status_detail(b) : status_row(brick_name(b), b);
  }
  if (!detail) {
    for (const auto& d : entry.heal_daemons()) {
      out += status_row("Self-heal Daemon on " + (d.local() ? std::string("localhost") : d.host()),
                        d);
    }
  }
  out += " \n";
  if (!detail) {
    out += "Task Status of Volume " + entry.name() + "\n";
    out += dashes();
    out += "There are no active volume tasks\n";
    out += " \n";
  }
  return out;
}

std::string format_heal(const pb::VolumeHeal& req, const pb::CliRsp& rsp) {
  using Op = pb::VolumeHeal;
  const pb::ShdInfoRsp& info = rsp.heal();
  std::string out;
  switch (req.op()) {
    case Op::INDEX:
    case Op::FULL:
      // glusterd's text, trailing space included.
      return "Launching heal operation to perform " +
             std::string(req.op() == Op::FULL ? "full" : "index") +
             " self heal on volume " + req.name() +
             " has been successful \nUse heal info commands to check status.\n";
    case Op::SPLIT_BRAIN:
      for (const auto& line : rsp.heal_lines()) out += line + "\n";
      return out;
    case Op::STATISTICS:
      return format_heal_statistics(req.name(), info.stats());
    case Op::HEAL_COUNT:
      out = "Gathering count of entries to be healed on volume " + req.name() +
            " has been successful \n\n";
      break;
    default:
      break;
  }
  for (const auto& b : info.bricks()) {
    out += "Brick " + b.brick() + "\n";
    if (req.op() == Op::HEAL_COUNT) {
      out += b.connected() ? "Number of entries: " + std::to_string(b.total()) + "\n\n"
                           : "Status: " + b.status() + "\nNumber of entries: -\n\n";
      continue;
    }
    if (req.op() == Op::INFO || req.op() == Op::INFO_SPLIT_BRAIN) {
      for (const auto& e : b.entries()) {
        out += e.path();
        if (req.op() == Op::INFO && e.state() == pb::ShdEntry::SPLIT_BRAIN) {
          out += " - Is in split-brain";
        } else if (req.op() == Op::INFO && e.state() == pb::ShdEntry::HEALING) {
          out += " - Possibly undergoing heal";
        }
        out += "\n";
      }
    }
    out += "Status: " + b.status() + "\n";
    if (req.op() == Op::INFO) {
      out += "Number of entries: " + (b.connected() ? std::to_string(b.total()) : "-") + "\n\n";
    } else if (req.op() == Op::INFO_SPLIT_BRAIN) {
      out += "Number of entries in split-brain: " +
             (b.connected() ? std::to_string(b.split_brain()) : "-") + "\n\n";
    } else {  // summary
      auto n = [&](uint64_t v) { return b.connected() ? std::to_string(v) : std::string("-"); };
      out += "Total Number of entries: " + n(b.total()) + "\n";
      out += "Number of entries in heal pending: " + n(b.pending()) + "\n";
      out += "Number of entries in split-brain: " + n(b.split_brain()) + "\n";
      out += "Number of entries possibly healing: " + n(b.healing()) + "\n\n";
    }
  }
  if (req.op() == Op::INFO_SUMMARY) {
    // mortar's addition: what GlusterFS users ask for and cannot get (no rate, no ETA).
    const pb::ShdStats& st = info.stats();
    out += sprintf_string("Heal rate: %.1f entries/s\n", st.rate());
    if (st.pending() == 0) {
      out += "Estimated time left: 0s\n";
    } else if (st.eta_seconds() < 0) {
      out += "Estimated time left: unknown\n";
    } else {
      out += "Estimated time left: " + std::to_string(static_cast<uint64_t>(st.eta_seconds() + 0.5)) +
             "s\n";
    }
  }
  return out;
}

std::string format_heal_statistics(const std::string& volume, const pb::ShdStats& st) {
  auto when = [](int64_t t) -> std::string {
    if (t <= 0) return "never";
    std::time_t tt = static_cast<std::time_t>(t);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", std::localtime(&tt));
    return buf;
  };
  std::string out = "Gathering crawl statistics on volume " + volume + " has been successful \n";
  out += "------------------------------------------------\n\n";
  out += "Starting time of last crawl: " + when(st.last_crawl_start()) + "\n";
  out += "Ending time of last crawl: " +
         (st.last_crawl_start() > st.last_crawl_end() ? std::string("crawl in progress")
                                                      : when(st.last_crawl_end())) +
         "\n";
  out += "Index crawls: " + std::to_string(st.crawls()) + "\n";
  out += "Full crawls: " + std::to_string(st.full_crawls()) + "\n";
  out += "No. of entries healed: " + std::to_string(st.healed()) + "\n";
  out += "No. of entries in split-brain: " + std::to_string(st.split_brain()) + "\n";
  out += "No. of heal failed entries: " + std::to_string(st.failed()) + "\n";
  out += "Bytes healed: " + std::to_string(st.bytes_healed()) + "\n";
  out += "Blocks healed: " + std::to_string(st.blocks_healed()) + "\n";
  out += "Blocks skipped (already identical): " + std::to_string(st.blocks_skipped()) + "\n";
  out += "Entries pending: " + std::to_string(st.pending()) + "\n";
  out += sprintf_string("Heal rate: %.1f entries/s\n", st.rate());
  return out;
}

std::string format_volume_get(const pb::CliRsp& rsp) {
  std::string out = sprintf_string("%-40s %-39s\n", "Option", "Value");
  out += sprintf_string("%-40s %-39s\n", "------", "-----");
  for (const auto& o : rsp.options()) {
    out += sprintf_string("%-40s %-39s\n", o.key().c_str(), o.value().c_str());
  }
  return out;
}

std::string format_set_help(const pb::CliRsp& rsp) {
  std::string out;
  for (const auto& o : rsp.options()) {
    out += "Option: " + o.key() + "\nDefault Value: " + o.default_value() +
           "\nDescription: " + o.description() + "\n\n";
  }
  // glusterd's help text ends with a blank line, and cli_out() adds a newline to it.
  return out + "\n";
}

std::string format_help(const ParsedCommand& cmd) {
  std::string peer = help_block("mortar peer commands", "peer ", "pool ");
  std::string volume = help_block("mortar volume commands", "volume ", "");
  switch (cmd.command) {
    case Command::kPeerHelp:
      return peer;
    case Command::kVolumeHelp:
      return volume;
    default:
      break;
  }
  // cli_cmd_display_help: the help commands, or with `all` what each of them prints.
  if (cmd.help_all) return peer + volume + "\n\n";
  std::string out;
  for (const auto& s : command_table()) {
    if (s.command != Command::kHelp && s.pattern.find("help") != std::string_view::npos) {
      out += sprintf_string(" %-25s- %s\n", std::string(s.pattern).c_str(),
                            std::string(s.description).c_str());
    }
  }
  return out + "\n\n";
}

Output format_failure(const ParsedCommand& cmd, std::string_view error) {
  std::string line = label(cmd) + ": failed";
  if (!error.empty()) line += ": " + std::string(error);
  return failed(std::move(line));
}

Output format_response(const ParsedCommand& cmd, const pb::CliRsp& rsp, bool json) {
  if (cmd.is_local()) return Output{format_help(cmd), "", 0};
  if (!rsp.error().empty()) {
    switch (cmd.command) {
      // gluster prints these errors bare: "Volume webData does not exist".
      case Command::kVolumeInfo:
      case Command::kVolumeGraph:
      case Command::kVolumeStatus:
        return failed(rsp.error());
      default:
        return format_failure(cmd, rsp.error());
    }
  }
  // Asked for every volume and there are none: gluster says so on stderr and succeeds.
  if ((cmd.command == Command::kVolumeInfo && rsp.volumes().empty()) ||
      (cmd.command == Command::kVolumeStatus && rsp.status().empty())) {
    if (cmd.volume.empty()) {
      return json ? Output{format_json(cmd, rsp), "", 0} : Output{"", "No volumes present\n", 0};
    }
    return failed("Volume " + cmd.volume + " does not exist");
  }
  if (json) return Output{format_json(cmd, rsp), "", 0};

  Output o;
  switch (cmd.command) {
    case Command::kPeerProbe:
      o.out = "peer probe: success" + (rsp.message().empty() ? "" : ". " + rsp.message()) + "\n";
      break;
    case Command::kPeerDetach:
      o.out = "peer detach: success\n";
      break;
    case Command::kPeerStatus:
      o.out = format_peer_status(rsp);
      break;
    case Command::kPoolList:
      o.out = format_pool_list(rsp);
      break;
    case Command::kVolumeCreate:
      o.out =
          "volume create: " + cmd.volume + ": success: please start the volume to access data\n";
      break;
    case Command::kVolumeStart:
      o.out = "volume start: " + cmd.volume + ": success\n";
      break;
    case Command::kVolumeStop:
      o.out = "volume stop: " + cmd.volume + ": success\n";
      break;
    case Command::kVolumeDelete:
      o.out = "volume delete: " + cmd.volume + ": success\n";
      break;
    case Command::kVolumeInfo:
      for (const auto& v : rsp.volumes()) o.out += format_volume_info(v);
      break;
    case Command::kVolumeGraph:
      o.out = rsp.text();
      if (!o.out.empty() && o.out.back() != '\n') o.out += "\n";
      break;
    case Command::kVolumeStatus:
      for (const auto& e : rsp.status()) {
        o.out += format_volume_status(e, cmd.request.volume_status().detail());
      }
      break;
    case Command::kVolumeSet:
      o.out = "volume set: success\n";
      break;
    case Command::kVolumeSetHelp:
      o.out = format_set_help(rsp);
      break;
    case Command::kVolumeGet:
      o.out = format_volume_get(rsp);
      break;
    case Command::kVolumeReset:
      o.out = "volume reset: success: " +
              (rsp.message().empty() ? std::string("reset volume successful") : rsp.message()) +
              "\n";
      break;
    case Command::kVolumeAddBrick:
      o.out = "volume add-brick: success\n";
      break;
    case Command::kVolumeReplaceBrick:
      o.out = "volume replace-brick: success: " +
              (rsp.message().empty() ? std::string("replace-brick commit force operation successful")
                                     : rsp.message()) +
              "\n";
      break;
    case Command::kVolumeRemoveBrick: {
      auto action = cmd.request.volume_remove_brick().action();
      std::string head = "volume remove-brick " + remove_brick_word(cmd) + ": success";
      if (action == pb::VolumeRemoveBrick::STATUS || action == pb::VolumeRemoveBrick::STOP) {
        o.out = format_rebalance_status(rsp) + head + "\n";
      } else {
        o.out = head + (rsp.message().empty() ? "" : "\n" + rsp.message()) + "\n";
      }
      break;
    }
    case Command::kVolumeRebalance: {
      auto action = cmd.request.volume_rebalance().action();
      if (action == pb::VolumeRebalance::START || action == pb::VolumeRebalance::FIX_LAYOUT_START) {
        o.out = "volume rebalance: " + cmd.volume + ": success: " + rsp.message() + "\n";
      } else {
        o.out = format_rebalance_status(rsp);
        if (action == pb::VolumeRebalance::STOP) {
          o.out += "volume rebalance: " + cmd.volume +
                   ": success: rebalance process may be in the middle of a file migration.\n"
                   "The process will be fully stopped once the migration of the file is "
                   "complete.\nPlease check rebalance process for completion before doing any "
                   "further brick related tasks on the volume.\n";
        } else {
          o.out += "volume rebalance: " + cmd.volume + ": success\n";
        }
      }
      break;
    }
    case Command::kVolumeHeal:
      o.out = format_heal(cmd.request.volume_heal(), rsp);
      // Like glfsheal: a resolution that failed for some file fails the command.
      for (const auto& line : rsp.heal_lines()) {
        if (line.find(" failed: ") != std::string::npos) o.exit_code = 1;
      }
      break;
    default:
      o.out = format_help(cmd);
      break;
  }
  return o;
}

}  // namespace mortar::cli
