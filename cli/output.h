// What `mortar` prints: the text of GlusterFS 10's `gluster` (cli/src/cli-rpc-ops.c) for each
// answer, byte for byte where gluster has one, because scripts and monitoring checks grep it;
// or the answer as JSON with --json. Pure functions of the parsed command and the CliRsp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cli/command.h"
#include "proto/mgmt.pb.h"

namespace google::protobuf {
class Message;
}

namespace mortar::cli {

struct Output {
  std::string out;  // for stdout
  std::string err;  // for stderr
  int exit_code = 0;
};

// The whole answer to `cmd`. A non-empty rsp.error is a failure: one line on stderr, exit 1.
Output format_response(const ParsedCommand& cmd, const pb::CliRsp& rsp, bool json);
// A command that failed without an answer from the server (an errno, the user said no):
// `<command>: failed: <error>` on stderr, exit 1.
Output format_failure(const ParsedCommand& cmd, std::string_view error);
// help, peer help, volume help: answered without a server.
std::string format_help(const ParsedCommand& cmd);

// The pieces, for tests.
std::string format_peer_status(const pb::CliRsp& rsp);
std::string format_pool_list(const pb::CliRsp& rsp);
std::string format_volume_info(const pb::VolumeSpec& volume);
std::string format_volume_status(const pb::VolumeStatusEntry& entry, bool detail);
std::string format_volume_get(const pb::CliRsp& rsp);
// volume heal VOL ...: the trigger's line, heal info in its forms, resolution lines.
std::string format_heal(const pb::VolumeHeal& req, const pb::CliRsp& rsp);
std::string format_heal_statistics(const std::string& volume, const pb::ShdStats& stats);
std::string format_set_help(const pb::CliRsp& rsp);
// "Distribute", "Replicate" or "Distributed-Replicate".
std::string volume_type(const pb::VolumeSpec& volume);
// gf_uint64_2human_readable: "512Bytes", "1.5KB", "4.0GB" (powers of 1024).
std::string human_size(uint64_t bytes);
// Protobuf's JSON printer: indented, proto field names, default values included.
std::string to_json(const google::protobuf::Message& message);

}  // namespace mortar::cli
