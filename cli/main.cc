// mortar: the administration command, `gluster`'s grammar and output (docs/cli.md).
// Parse, connect to mortar-mgmtd, ask gluster's y/n question when a person is at the
// terminal, send one CliReq, print the answer. Exit status: 0 on success, 1 on any failure.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/mgmt_client.h"
#include "cli/output.h"

namespace mortar::cli {
namespace {

constexpr std::chrono::milliseconds kConnectTimeout{10000};
constexpr std::chrono::milliseconds kCallTimeout{60000};

int fail_line(const std::string& line) {
  std::fputs((line + "\n").c_str(), stderr);
  return 1;
}

int print(const Output& o) {
  std::fputs(o.out.c_str(), stdout);
  std::fflush(stdout);
  std::fputs(o.err.c_str(), stderr);
  return o.exit_code;
}

// cli_cmd_get_confirmation: "y"/"yes" goes on, "n"/"no" stops, anything else stops too.
bool confirm(const std::string& question) {
  std::printf("%s (y/n) ", question.c_str());
  std::fflush(stdout);
  std::string answer;
  if (!std::getline(std::cin, answer)) {
    std::printf("\n");
    return false;
  }
  for (char& c : answer) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (answer == "y" || answer == "yes") return true;
  if (answer != "n" && answer != "no") std::printf("Invalid input, please enter y/n\n");
  return false;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto line = parse_global_options(args);
  if (!line) return fail_line(line.error());
  if (line->options.version) {
    std::printf("mortar %s\n", MORTAR_VERSION);
    return 0;
  }
  auto cmd = parse_command(line->words);
  if (!cmd) return fail_line(cmd.error());
  for (const auto& w : cmd->warnings) std::fprintf(stderr, "%s\n", w.c_str());
  if (cmd->is_local()) return print(Output{format_help(*cmd), "", 0});

  Endpoint endpoint = endpoint_for(line->options, std::getenv("MORTAR_SOCKET"));
  // Connect before asking, as gluster does: no question for a command that cannot run.
  auto conn = MgmtConnection::connect(endpoint, kConnectTimeout);
  if (!conn) {
    return fail_line("Connection failed. Please check if mortar-mgmtd is operational. (" +
                     conn.error().message + ")");
  }

  if (!cmd->question.empty() && !line->options.script && ::isatty(STDIN_FILENO)) {
    if (!confirm(cmd->question)) return print(format_failure(*cmd, "aborted by user"));
  }

  auto rsp = conn->call(cmd->request, kCallTimeout);
  if (!rsp) {
    switch (rsp.error().kind) {
      case CallError::Kind::kTimeout:
        // gluster's words for a call that got no answer.
        return fail_line("Error : Request timed out (" + rsp.error().message + ")");
      case CallError::Kind::kServer:
        return print(format_failure(*cmd, rsp.error().message));
      default:
        return fail_line(rsp.error().message);
    }
  }
  return print(format_response(*cmd, *rsp, line->options.json));
}

}  // namespace
}  // namespace mortar::cli

int main(int argc, char** argv) { return mortar::cli::run(argc, argv); }
