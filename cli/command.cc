#include "cli/command.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <set>
#include <span>

namespace mortar::cli {

namespace {

std::unexpected<std::string> invalid(std::string message) {
  return std::unexpected<std::string>(std::move(message));
}

std::unexpected<std::string> usage(Command command) {
  return invalid("Usage: " + std::string(pattern_of(command)));
}

// gluster's questions (cli-cmd-volume.c, cli-cmd-peer.c, cli-cmd-parser.c), with the
// split-brain link pointing at our own documentation.
constexpr std::string_view kReplica2Question =
    "Replica 2 volumes are prone to split-brain. Use Arbiter or Replica 3 to avoid this. "
    "See: docs/replication.md.\nDo you still want to continue?\n";
constexpr std::string_view kStopQuestion =
    "Stopping volume will make its data inaccessible. Do you want to continue?";
constexpr std::string_view kDeleteQuestion =
    "Deleting volume will erase all information about the volume. Do you want to continue?";
constexpr std::string_view kDetachQuestion =
    "All clients mounted through the peer which is getting detached need to be remounted "
    "using one of the other active peers in the trusted storage pool to ensure client gets "
    "notification on any changes done on the mortar configuration and if the same has been "
    "done do you want to proceed?";

// gluster's GD_VOLUME_NAME_MAX (NAME_MAX + 1).
constexpr size_t kVolumeNameMax = 256;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address (more than one colon, no brackets).
Checked<void> set_remote_host(std::string_view text, GlobalOptions& options) {
  std::string_view host = text;
  std::optional<uint16_t> port = kMgmtPort;
  if (starts_with(text, "[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return invalid("invalid --remote-host " + std::string(text));
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      port = rest[0] == ':' ? parse_port(rest.substr(1)) : std::nullopt;
    }
  } else if (size_t colon = text.find(':'); colon != std::string_view::npos &&
                                            text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    port = parse_port(text.substr(colon + 1));
  }
  if (host.empty() || !port) return invalid("invalid --remote-host " + std::string(text));
  options.remote_host = std::string(host);
  options.remote_port = *port;
  return {};
}

// Global options that take a value: `--name=value` or `--name value`.
bool takes_value(std::string_view name) { return name == "remote-host" || name == "socket"; }

// gluster's cli_getunamb: an exact match wins, else a prefix shared by exactly one word.
std::optional<std::string_view> unambiguous(std::string_view token,
                                            std::initializer_list<std::string_view> words) {
  if (token.empty()) return std::nullopt;
  std::optional<std::string_view> found;
  int matches = 0;
  for (std::string_view w : words) {
    if (w == token) return w;
    if (starts_with(w, token)) {
      found = w;
      ++matches;
    }
  }
  return matches == 1 ? found : std::nullopt;
}

// cli_validate_volname, with gluster's messages joined into one line.
Checked<void> check_volume_name(const std::string& name) {
  if (name.empty()) return usage(Command::kVolumeCreate);
  static const std::set<std::string_view> kReserved = {"volume",
                                                       "type",
                                                       "help",
                                                       "subvolumes",
                                                       "option",
                                                       "end-volume",
                                                       "all",
                                                       "volume_not_in_ring",
                                                       "description",
                                                       "force",
                                                       "snap-max-hard-limit",
                                                       "snap-max-soft-limit",
                                                       "auto-delete",
                                                       "activate-on-create"};
  if (kReserved.contains(name)) return invalid("\"" + name + "\" cannot be the name of a volume.");
  if (name.size() > kVolumeNameMax) {
    return invalid("Volume name exceeds " + std::to_string(kVolumeNameMax) + " characters.");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return invalid(std::string("Volume name should not contain \"") + c +
                     "\" character. Volume names can only contain alphanumeric, '-' and '_' "
                     "characters.");
    }
  }
  if (name.front() == '-') return invalid("Volume name should not start with \"-\".");
  return {};
}

// gluster's valid_internet_address, loosely: a DNS name, an IPv4 or an IPv6 address.
bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  if (host.find(':') != std::string_view::npos) {
    return std::all_of(host.begin(), host.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
  }
  if (host.front() == '.' || host.front() == '-' || host.back() == '-') return false;
  if (host.find("..") != std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

// gf_canonicalize_path: no repeated or trailing slashes.
std::string canonical_path(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// cli_cmd_bricks_parse: HOST:/ABSOLUTE/PATH, canonicalised, no duplicates. A host that does
// not look like a name or an address is only a warning there, and here.
Checked<std::vector<std::string>> parse_bricks(std::span<const std::string> words,
                                               std::vector<std::string>& warnings) {
  std::vector<std::string> bricks;
  for (const std::string& word : words) {
    size_t colon = word.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 >= word.size() ||
        word[colon + 1] != '/') {
      return invalid("Wrong brick type: " + word + ", use <HOSTNAME>:<export-dir-abs-path>");
    }
    std::string host = word.substr(0, colon);
    // A bracketed IPv6 host is accepted as written.
    std::string_view bare = host;
    if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
      bare = bare.substr(1, bare.size() - 2);
    }
    if (!valid_host(bare)) {
      warnings.push_back("internet address '" + host + "' does not conform to standards");
    }
    std::string brick = host + ":" + canonical_path(std::string_view(word).substr(colon + 1));
    if (std::find(bricks.begin(), bricks.end(), brick) != bricks.end()) {
      return invalid("Found duplicate exports " + brick);
    }
    bricks.push_back(std::move(brick));
  }
  if (bricks.empty()) return invalid("No bricks specified");
  return bricks;
}

Checked<uint32_t> parse_count(const std::string& word) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (ec != std::errc() || end != word.data() + word.size()) return invalid("not a number");
  return value;
}

// cli_cmd_volume_create_parse.
Checked<ParsedCommand> parse_create(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeCreate;
  if (w.size() < 4) return usage(p.command);
  p.volume = w[2];
  if (auto ok = check_volume_name(p.volume); !ok) return std::unexpected(ok.error());

  uint32_t replica = 0;
  uint32_t arbiter = 0;
  bool transport_given = false;
  size_t i = 3;
  while (i < w.size()) {
    auto word = unambiguous(w[i], {"replica", "transport", "arbiter", "disperse", "disperse-data",
                                   "redundancy", "thin-arbiter"});
    if (!word) break;
    if (*word == "replica") {
      if (replica != 0) return invalid("replica option given twice");
      if (i + 1 >= w.size()) return usage(p.command);
      auto count = parse_count(w[i + 1]);
      if (!count || *count < 2) return invalid("replica count should be greater than 1");
      replica = *count;
      i += 2;
      if (i < w.size() && w[i] == "arbiter") {
        Checked<uint32_t> a = i + 1 < w.size() ? parse_count(w[i + 1]) : Checked<uint32_t>(0);
        if (!a || *a != 1 || replica > 3) {
          return invalid(
              "For arbiter configuration, replica count must be 2 and arbiter count must be 1. "
              "The 3rd brick of the replica will be the arbiter");
        }
        arbiter = 1;
        i += 2;
      } else if (i < w.size() && w[i] == "thin-arbiter") {
        return invalid("thin-arbiter volumes are not supported");
      }
      // As gluster does: "replica 2 arbiter 1" means two data bricks and an arbiter.
      if (arbiter == 1 && replica == 2) replica = 3;
    } else if (*word == "transport") {
      if (transport_given) return invalid("'transport' option given more than one time");
      if (i + 1 >= w.size()) return usage(p.command);
      std::string t = w[i + 1];
      std::transform(t.begin(), t.end(), t.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (t != "tcp") return invalid("transport " + w[i + 1] + " is not supported: use tcp");
      transport_given = true;
      i += 2;
    } else if (*word == "arbiter") {
      return invalid("arbiter option must be preceded by replica option.");
    } else if (*word == "thin-arbiter") {
      return invalid("thin-arbiter option must be preceded by replica option.");
    } else {
      return invalid("disperse volumes are not supported");
    }
  }
  if (i >= w.size()) return usage(p.command);

  size_t end = w.size();
  bool force = w.back() == "force";
  if (force) --end;
  if (i >= end) return invalid("No bricks specified");
  auto bricks = parse_bricks(std::span<const std::string>(w).subspan(i, end - i), p.warnings);
  if (!bricks) return std::unexpected(bricks.error());
  if (replica > 1 && bricks->size() % replica != 0) {
    return invalid("number of bricks is not a multiple of replica count");
  }

  auto* req = p.request.mutable_volume_create();
  req->set_name(p.volume);
  req->set_replica_count(replica);
  req->set_arbiter_count(arbiter);
  req->set_transport("tcp");
  for (auto& b : *bricks) req->add_bricks(std::move(b));
  req->set_force(force);
  if (replica == 2 && !force) p.question = std::string(kReplica2Question);
  return p;
}

// cli_cmd_volume_add_brick_parse: `volume add-brick VOL [replica N] BRICK... [force]`.
Checked<ParsedCommand> parse_add_brick(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeAddBrick;
  if (w.size() < 4) return usage(p.command);
  p.volume = w[2];
  if (auto ok = check_volume_name(p.volume); !ok) return std::unexpected(ok.error());
  size_t i = 3;
  uint32_t replica = 0;
  if (w[i] == "replica") {
    if (i + 2 >= w.size()) return usage(p.command);
    auto count = parse_count(w[i + 1]);
    if (!count || *count < 1) return invalid("replica count should be greater than 0");
    replica = *count;
    i += 2;
    if (i < w.size() && w[i] == "arbiter") return invalid("arbiter volumes cannot grow yet");
  }
  size_t end = w.size();
  bool force = w.back() == "force";
  if (force) --end;
  if (i >= end) return invalid("No bricks specified");
  auto bricks = parse_bricks(std::span<const std::string>(w).subspan(i, end - i), p.warnings);
  if (!bricks) return std::unexpected(bricks.error());
  auto* req = p.request.mutable_volume_add_brick();
  req->set_name(p.volume);
  req->set_replica_count(replica);
  for (auto& b : *bricks) req->add_bricks(std::move(b));
  req->set_force(force);
  return p;
}

// `volume replace-brick VOL OLD NEW commit force`: the only form GlusterFS still has.
Checked<ParsedCommand> parse_replace_brick(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeReplaceBrick;
  if (w.size() < 5) return usage(p.command);
  p.volume = w[2];
  if (auto ok = check_volume_name(p.volume); !ok) return std::unexpected(ok.error());
  if (w.size() != 7 || w[5] != "commit" || w[6] != "force") {
    return invalid("replace-brick is only supported as 'commit force': " +
                   std::string(pattern_of(p.command)));
  }
  auto bricks = parse_bricks(std::span<const std::string>(w).subspan(3, 2), p.warnings);
  if (!bricks) return std::unexpected(bricks.error());
  auto* req = p.request.mutable_volume_replace_brick();
  req->set_name(p.volume);
  req->set_old_brick((*bricks)[0]);
  req->set_new_brick((*bricks)[1]);
  return p;
}

// cli_cmd_volume_defrag_parse: `volume rebalance VOL {fix-layout start | start [force] | stop |
// status}`.
Checked<ParsedCommand> parse_rebalance(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeRebalance;
  if (w.size() < 4 || w.size() > 5) return usage(p.command);
  p.volume = w[2];
  if (auto ok = check_volume_name(p.volume); !ok) return std::unexpected(ok.error());
  auto* req = p.request.mutable_volume_rebalance();
  req->set_name(p.volume);
  std::vector<std::string> rest(w.begin() + 3, w.end());
  if (rest == std::vector<std::string>{"start"}) {
    req->set_action(pb::VolumeRebalance::START);
  } else if (rest == std::vector<std::string>{"start", "force"}) {
    req->set_action(pb::VolumeRebalance::START);
    req->set_force(true);
  } else if (rest == std::vector<std::string>{"stop"}) {
    req->set_action(pb::VolumeRebalance::STOP);
  } else if (rest == std::vector<std::string>{"status"}) {
    req->set_action(pb::VolumeRebalance::STATUS);
  } else if (rest == std::vector<std::string>{"fix-layout", "start"}) {
    req->set_action(pb::VolumeRebalance::FIX_LAYOUT_START);
  } else {
    return usage(p.command);
  }
  return p;
}

// cli_cmd_volume_remove_brick_parse: `volume remove-brick VOL [replica N] BRICK...
// {start | stop | status | commit | force}` ("commit force" as force).
Checked<ParsedCommand> parse_remove_brick(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeRemoveBrick;
  if (w.size() < 5) return usage(p.command);
  p.volume = w[2];
  if (auto ok = check_volume_name(p.volume); !ok) return std::unexpected(ok.error());
  auto* req = p.request.mutable_volume_remove_brick();
  req->set_name(p.volume);
  size_t i = 3;
  if (w[i] == "replica") {
    if (i + 2 >= w.size()) return usage(p.command);
    auto count = parse_count(w[i + 1]);
    if (!count || *count < 1) return invalid("replica count should be greater than 0");
    req->set_replica_count(*count);
    i += 2;
  }
  size_t end = w.size();
  std::string action = w.back();
  if (action == "force" && end >= 2 && w[end - 2] == "commit") {
    --end;
  }
  --end;
  if (action == "start") {
    req->set_action(pb::VolumeRemoveBrick::START);
  } else if (action == "stop") {
    req->set_action(pb::VolumeRemoveBrick::STOP);
  } else if (action == "status") {
    req->set_action(pb::VolumeRemoveBrick::STATUS);
  } else if (action == "commit") {
    req->set_action(pb::VolumeRemoveBrick::COMMIT);
    p.question = "Removing brick(s) can result in data loss. Do you want to Continue?";
  } else if (action == "force") {
    req->set_action(pb::VolumeRemoveBrick::FORCE);
    p.question = "Removing brick(s) can result in data loss. Do you want to Continue?";
  } else {
    return usage(p.command);
  }
  if (i >= end) return invalid("No bricks specified");
  auto bricks = parse_bricks(std::span<const std::string>(w).subspan(i, end - i), p.warnings);
  if (!bricks) return std::unexpected(bricks.error());
  for (auto& b : *bricks) req->add_bricks(std::move(b));
  return p;
}

// `volume start|stop NAME [force]`, `volume delete NAME`.
Checked<ParsedCommand> parse_lifecycle(Command command, const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = command;
  bool allows_force = command != Command::kVolumeDelete;
  if (w.size() < 3 || w.size() > (allows_force ? 4u : 3u)) return usage(command);
  if (w.size() == 4 && w[3] != "force") return usage(command);
  p.volume = w[2];
  pb::VolumeName* req = nullptr;
  switch (command) {
    case Command::kVolumeStart:
      req = p.request.mutable_volume_start();
      break;
    case Command::kVolumeStop:
      req = p.request.mutable_volume_stop();
      p.question = std::string(kStopQuestion);
      break;
    default:
      req = p.request.mutable_volume_delete();
      p.question = std::string(kDeleteQuestion);
      break;
  }
  req->set_name(p.volume);
  req->set_force(w.size() == 4);
  return p;
}

Checked<ParsedCommand> parse_info(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeInfo;
  std::vector<std::string> rest(w.begin() + 2, w.end());
  auto graph = std::find(rest.begin(), rest.end(), "--graph");
  if (graph != rest.end()) {
    rest.erase(graph);
    p.command = Command::kVolumeGraph;
    if (rest.size() != 1 || rest[0] == "all") return usage(p.command);
    p.volume = rest[0];
    p.request.mutable_volume_graph()->set_name(p.volume);
    return p;
  }
  if (rest.size() > 1) return usage(p.command);
  if (!rest.empty() && rest[0].size() > kVolumeNameMax) return invalid("Invalid volume name");
  if (!rest.empty() && rest[0] != "all") p.volume = rest[0];
  p.request.mutable_volume_info()->set_name(p.volume);
  return p;
}

// `volume status [all|NAME] [detail]`. gluster's other status forms (clients, mem, fd, a
// single brick, nfs/shd) have nothing behind them in mortar and are refused.
Checked<ParsedCommand> parse_status(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeStatus;
  std::vector<std::string> rest(w.begin() + 2, w.end());
  bool detail = false;
  if (!rest.empty() && rest.back() == "detail") {
    detail = true;
    rest.pop_back();
  }
  if (rest.size() > 1) return usage(p.command);
  if (!rest.empty() && rest[0] != "all") p.volume = rest[0];
  auto* req = p.request.mutable_volume_status();
  req->set_name(p.volume);
  req->set_detail(detail);
  return p;
}

// cli_cmd_volume_set_parse: `volume set help`, or KEY VALUE pairs.
Checked<ParsedCommand> parse_set(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeSet;
  if (w.size() == 3 && w[2] == "help") {
    p.command = Command::kVolumeSetHelp;
    p.request.mutable_volume_set_help();
    return p;
  }
  if (w.size() < 5 || (w.size() - 3) % 2 != 0) return usage(p.command);
  p.volume = w[2];
  auto* req = p.request.mutable_volume_set();
  req->set_name(p.volume);
  for (size_t i = 3; i < w.size(); i += 2) {
    std::string value = w[i + 1];
    // gluster keeps user.* values verbatim and trims every other one.
    if (!starts_with(w[i], "user.")) {
      auto space = [](unsigned char c) { return std::isspace(c); };
      value.erase(value.begin(), std::find_if_not(value.begin(), value.end(), space));
      value.erase(std::find_if_not(value.rbegin(), value.rend(), space).base(), value.end());
    }
    if (w[i].empty() || value.empty()) return usage(p.command);
    (*req->mutable_options())[w[i]] = value;
  }
  return p;
}

Checked<ParsedCommand> parse_get(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeGet;
  if (w.size() != 4) return usage(p.command);
  p.volume = w[2];
  auto* req = p.request.mutable_volume_get();
  req->set_name(p.volume);
  req->set_key(w[3]);
  return p;
}

// cli_cmd_volume_reset_parse: `volume reset NAME [KEY|all] [force]`.
Checked<ParsedCommand> parse_reset(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeReset;
  if (w.size() < 3 || w.size() > 5) return usage(p.command);
  p.volume = w[2];
  std::string key = "all";
  bool force = false;
  if (w.size() >= 4) {
    if (w[3] == "force") {
      if (w.size() == 5) return usage(p.command);
      force = true;
    } else {
      key = w[3];
    }
  }
  if (w.size() == 5) {
    if (w[4] != "force") return usage(p.command);
    force = true;
  }
  auto* req = p.request.mutable_volume_reset();
  req->set_name(p.volume);
  req->set_key(key);
  req->set_force(force);
  return p;
}

Checked<ParsedCommand> parse_peer(const std::vector<std::string>& w) {
  ParsedCommand p;
  const std::string& verb = w[1];
  if (verb == "help") {
    p.command = Command::kPeerHelp;
    if (w.size() != 2) return usage(p.command);
    return p;
  }
  if (verb == "status") {
    p.command = Command::kPeerStatus;
    if (w.size() != 2) return usage(p.command);
    p.request.mutable_peer_status();
    return p;
  }
  if (verb == "probe" || verb == "detach") {
    bool probe = verb == "probe";
    p.command = probe ? Command::kPeerProbe : Command::kPeerDetach;
    if (w.size() < 3 || w.size() > (probe ? 3u : 4u)) return usage(p.command);
    if (w.size() == 4 && w[3] != "force") return usage(p.command);
    p.host = w[2];
    if (probe && !valid_host(p.host)) {
      return invalid(p.host +
                     " is an invalid address. Usage: " + std::string(pattern_of(p.command)));
    }
    if (probe) {
      p.request.mutable_peer_probe()->set_host(p.host);
    } else {
      auto* req = p.request.mutable_peer_detach();
      req->set_host(p.host);
      req->set_force(w.size() == 4);
      p.question = std::string(kDetachQuestion);
    }
    return p;
  }
  return invalid("unrecognized word: " + verb + " (position 1). See 'mortar peer help'.");
}

// cli_cmd_volume_heal_options_parse, narrowed to what mortar has:
//   volume heal VOL [full | info [summary | split-brain] | statistics [heal-count] |
//                    split-brain {bigger-file FILE | latest-mtime FILE | source-brick HOST:BRICK [FILE]}]
Checked<ParsedCommand> parse_heal(const std::vector<std::string>& w) {
  ParsedCommand p;
  p.command = Command::kVolumeHeal;
  if (w.size() < 3) return usage(p.command);
  p.volume = w[2];
  auto* req = p.request.mutable_volume_heal();
  req->set_name(p.volume);
  std::vector<std::string> rest(w.begin() + 3, w.end());
  using Op = pb::VolumeHeal;
  if (rest.empty()) {
    req->set_op(Op::INDEX);
  } else if (rest[0] == "full" && rest.size() == 1) {
    req->set_op(Op::FULL);
  } else if (rest[0] == "info" && rest.size() == 1) {
    req->set_op(Op::INFO);
  } else if (rest[0] == "info" && rest.size() == 2 && rest[1] == "summary") {
    req->set_op(Op::INFO_SUMMARY);
  } else if (rest[0] == "info" && rest.size() == 2 && rest[1] == "split-brain") {
    req->set_op(Op::INFO_SPLIT_BRAIN);
  } else if (rest[0] == "statistics" && rest.size() == 1) {
    req->set_op(Op::STATISTICS);
  } else if (rest[0] == "statistics" && rest.size() == 2 && rest[1] == "heal-count") {
    req->set_op(Op::HEAL_COUNT);
  } else if (rest[0] == "split-brain" && rest.size() >= 2) {
    req->set_op(Op::SPLIT_BRAIN);
    const std::string& choice = rest[1];
    req->set_choice(choice);
    if (choice == "bigger-file" || choice == "latest-mtime") {
      if (rest.size() != 3) return usage(p.command);
      req->set_file(rest[2]);
    } else if (choice == "source-brick") {
      if (rest.size() < 3 || rest.size() > 4) return usage(p.command);
      if (rest[2].find(':') == std::string::npos) {
        return invalid("source-brick wants HOST:BRICK, not '" + rest[2] + "'");
      }
      req->set_source_brick(rest[2]);
      if (rest.size() == 4) req->set_file(rest[3]);
    } else {
      return usage(p.command);
    }
    if (!req->file().empty() && req->file()[0] != '/' && !starts_with(req->file(), "gfid:")) {
      return invalid("FILE is a path from the volume's root (/dir/file) or gfid:UUID, not '" +
                     req->file() + "'");
    }
  } else {
    return usage(p.command);
  }
  return p;
}

Checked<ParsedCommand> parse_volume(const std::vector<std::string>& w) {
  const std::string& verb = w[1];
  if (verb == "help") {
    ParsedCommand p;
    p.command = Command::kVolumeHelp;
    if (w.size() != 2) return usage(p.command);
    return p;
  }
  if (verb == "create") return parse_create(w);
  if (verb == "start") return parse_lifecycle(Command::kVolumeStart, w);
  if (verb == "stop") return parse_lifecycle(Command::kVolumeStop, w);
  if (verb == "delete") return parse_lifecycle(Command::kVolumeDelete, w);
  if (verb == "info") return parse_info(w);
  if (verb == "status") return parse_status(w);
  if (verb == "set") return parse_set(w);
  if (verb == "get") return parse_get(w);
  if (verb == "reset") return parse_reset(w);
  if (verb == "heal") return parse_heal(w);
  if (verb == "add-brick") return parse_add_brick(w);
  if (verb == "replace-brick") return parse_replace_brick(w);
  if (verb == "rebalance") return parse_rebalance(w);
  if (verb == "remove-brick") return parse_remove_brick(w);
  return invalid("unrecognized word: " + verb + " (position 1). See 'mortar volume help'.");
}

}  // namespace

const std::vector<CommandSpec>& command_table() {
  // Patterns and descriptions are gluster's (cli-cmd-volume.c, cli-cmd-peer.c) where the
  // command exists there, narrowed to what mortar supports.
  static const std::vector<CommandSpec> kTable = {
      {Command::kHelp, "help [all]", "display help for command classes"},
      {Command::kPeerProbe, "peer probe { <HOSTNAME> | <IP-address> }",
       "probe peer specified by <HOSTNAME>"},
      {Command::kPeerDetach, "peer detach { <HOSTNAME> | <IP-address> } [force]",
       "detach peer specified by <HOSTNAME>"},
      {Command::kPeerStatus, "peer status", "list status of peers"},
      {Command::kPeerHelp, "peer help", "display help for peer commands"},
      {Command::kPoolList, "pool list", "list all the nodes in the pool (including localhost)"},
      {Command::kVolumeHelp, "volume help", "display help for volume commands"},
      {Command::kVolumeInfo, "volume info [all|<VOLNAME>]", "list information of all volumes"},
      {Command::kVolumeGraph, "volume info <VOLNAME> --graph",
       "print the client graph of volume <VOLNAME> as a volfile"},
      {Command::kVolumeCreate,
       "volume create <NEW-VOLNAME> [replica <COUNT> [arbiter <COUNT>]] [transport <tcp>] "
       "<NEW-BRICK> ... [force]",
       "create a new volume of specified type with mentioned bricks"},
      {Command::kVolumeDelete, "volume delete <VOLNAME>", "delete volume specified by <VOLNAME>"},
      {Command::kVolumeAddBrick,
       "volume add-brick <VOLNAME> [replica <COUNT>] <NEW-BRICK> ... [force]",
       "add brick to volume <VOLNAME>"},
      {Command::kVolumeRemoveBrick,
       "volume remove-brick <VOLNAME> [replica <COUNT>] <BRICK> ... "
       "<start|stop|status|commit|force>",
       "remove brick from volume <VOLNAME>"},
      {Command::kVolumeRebalance,
       "volume rebalance <VOLNAME> {{fix-layout start} | {start [force]|stop|status}}",
       "rebalance operations"},
      {Command::kVolumeReplaceBrick,
       "volume replace-brick <VOLNAME> <SOURCE-BRICK> <NEW-BRICK> {commit force}",
       "replace-brick operations"},
      {Command::kVolumeStart, "volume start <VOLNAME> [force]",
       "start volume specified by <VOLNAME>"},
      {Command::kVolumeStop, "volume stop <VOLNAME> [force]", "stop volume specified by <VOLNAME>"},
      {Command::kVolumeSet, "volume set <VOLNAME> <KEY> <VALUE> [<KEY> <VALUE>]...",
       "set options for volume <VOLNAME>"},
      {Command::kVolumeSetHelp, "volume set help",
       "list the options of volumes with their defaults and descriptions"},
      {Command::kVolumeReset, "volume reset <VOLNAME> [option] [force]",
       "reset all the reconfigured options"},
      {Command::kVolumeStatus, "volume status [all | <VOLNAME>] [detail]",
       "display status of all or specified volume(s)"},
      {Command::kVolumeGet, "volume get <VOLNAME> <key|all>",
       "Get the value of the all options or given option for volume <VOLNAME>"},
      {Command::kVolumeHeal,
       "volume heal <VOLNAME> [full | statistics [heal-count] | info [summary | split-brain] | "
       "split-brain {bigger-file <FILE> | latest-mtime <FILE> | source-brick "
       "<HOSTNAME:BRICKNAME> [<FILE>]}]",
       "self-heal commands on volume specified by <VOLNAME>"},
  };
  return kTable;
}

std::string_view pattern_of(Command command) {
  for (const auto& spec : command_table()) {
    if (spec.command == command) return spec.pattern;
  }
  return {};
}

Checked<CommandLine> parse_global_options(const std::vector<std::string>& argv) {
  CommandLine line;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!starts_with(arg, "--") || arg == "--graph") {
      line.words.push_back(arg);
      continue;
    }
    std::string_view opt = std::string_view(arg).substr(2);
    std::string_view name = opt.substr(0, opt.find('='));
    std::optional<std::string> value;
    if (name.size() < opt.size()) {
      value = std::string(opt.substr(name.size() + 1));
    } else if (takes_value(name)) {
      if (i + 1 >= argv.size()) return invalid("option --" + std::string(name) + " needs a value");
      value = argv[++i];
    }
    if (name == "remote-host" && value) {
      if (auto ok = set_remote_host(*value, line.options); !ok) return std::unexpected(ok.error());
    } else if (name == "socket" && value) {
      if (value->empty()) return invalid("option --socket needs a path");
      line.options.socket = *value;
    } else if (name == "mode" && (value == "script" || value == "interactive")) {
      line.options.script = *value == "script";
    } else if (opt == "json") {
      line.options.json = true;
    } else if (opt == "xml") {
      return invalid("--xml is not supported; use --json");
    } else if (opt == "help") {
      line.words.push_back("help");
    } else if (opt == "version") {
      line.options.version = true;
    } else {
      return invalid("unrecognized option " + arg);
    }
  }
  return line;
}

Checked<ParsedCommand> parse_command(const std::vector<std::string>& w) {
  if (w.empty()) return invalid("Usage: mortar [options] <command> [<args>]. See 'mortar help'.");
  if (auto graph = std::find(w.begin(), w.end(), "--graph");
      graph != w.end() && !(w.size() >= 2 && w[0] == "volume" && w[1] == "info")) {
    return invalid("unrecognized option --graph");
  }
  const std::string& first = w[0];
  if (first == "help") {
    ParsedCommand p;
    p.command = Command::kHelp;
    if (w.size() > 2 || (w.size() == 2 && w[1] != "all")) return usage(p.command);
    p.help_all = w.size() == 2;
    return p;
  }
  if (first == "pool") {
    ParsedCommand p;
    p.command = Command::kPoolList;
    if (w.size() < 2 || w[1] != "list") {
      if (w.size() >= 2) {
        return invalid("unrecognized word: " + w[1] + " (position 1). See 'mortar peer help'.");
      }
      return usage(p.command);
    }
    if (w.size() != 2) return usage(p.command);
    p.request.mutable_pool_list();
    return p;
  }
  if (first == "peer" || first == "volume") {
    if (w.size() < 2) {
      return invalid("unrecognized command. See 'mortar " + first + " help'.");
    }
    return first == "peer" ? parse_peer(w) : parse_volume(w);
  }
  return invalid("unrecognized word: " + first + " (position 0). See 'mortar help'.");
}

}  // namespace mortar::cli
