// The `mortar` command line: GlusterFS's `gluster` grammar (cli/src/cli-cmd-parser.c), turned
// into the CliReq that mortar-mgmtd answers. Pure functions, no I/O: every accepted and every
// refused form is a unit test (tests/unit/cli/command_test.cc). The reference is docs/cli.md.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "proto/mgmt.pb.h"

namespace mortar::cli {

// A result whose error is one line for the operator.
template <class T>
using Checked = std::expected<T, std::string>;

inline constexpr uint16_t kMgmtPort = 24007;
inline constexpr std::string_view kDefaultSocket = "/run/mortar/mgmtd.sock";

struct GlobalOptions {
  std::string remote_host;  // --remote-host=HOST[:PORT]; empty: the local Unix socket
  uint16_t remote_port = kMgmtPort;
  std::string socket;   // --socket=PATH; empty: $MORTAR_SOCKET, else kDefaultSocket
  bool script = false;  // --mode=script: never ask for confirmation
  bool json = false;    // --json: answers as JSON
  bool version = false;
};

struct CommandLine {
  GlobalOptions options;
  std::vector<std::string> words;  // the command, with the global options taken out
};

// Takes the global options out of argv (without the program name). Like gluster they may
// stand anywhere, so `mortar volume info --json` works as well as `mortar --json volume info`.
// `--graph` belongs to `volume info` and stays in `words`; any other unknown `--x` is an error.
Checked<CommandLine> parse_global_options(const std::vector<std::string>& argv);

enum class Command {
  kHelp,
  kPeerHelp,
  kVolumeHelp,
  kPeerProbe,
  kPeerDetach,
  kPeerStatus,
  kPoolList,
  kVolumeCreate,
  kVolumeStart,
  kVolumeStop,
  kVolumeDelete,
  kVolumeInfo,
  kVolumeGraph,
  kVolumeStatus,
  kVolumeSet,
  kVolumeSetHelp,
  kVolumeGet,
  kVolumeReset,
  kVolumeHeal,
  kVolumeAddBrick,
  kVolumeReplaceBrick,
  kVolumeRebalance,
  kVolumeRemoveBrick,
};

struct ParsedCommand {
  Command command = Command::kHelp;
  pb::CliReq request;     // empty for the help commands, which are answered without a server
  std::string volume;     // the volume the command names, if any (for output lines)
  std::string host;       // peer probe / detach
  bool help_all = false;  // `help all`
  // Asked on a terminal before the request is sent (gluster's y/n questions); empty: none.
  std::string question;
  // Printed on stderr before anything else; the command goes on (gluster's non-fatal notes).
  std::vector<std::string> warnings;

  bool is_local() const { return request.op_case() == pb::CliReq::OP_NOT_SET; }
};

// Parses the command words (after parse_global_options). Wrong arity gives
// "Usage: <pattern>"; bad values give gluster's message for them.
Checked<ParsedCommand> parse_command(const std::vector<std::string>& args);

struct CommandSpec {
  Command command;
  std::string_view pattern;  // gluster's syntax line, also printed by the help commands
  std::string_view description;
};

// Every command, in the order the help commands list them.
const std::vector<CommandSpec>& command_table();
std::string_view pattern_of(Command command);

}  // namespace mortar::cli
