// Fetching a volume's client graph from mortar-mgmtd (GETSPEC on port 24007): the server list
// of a mount (HOST of HOST:/VOL, then backup-volfile-servers), and the bounded start-up fetch
// that tries them in turn, as GlusterFS's mount does with volfile-max-fetch-attempts.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proto/mgmt.pb.h"
#include "translators/options.h"

namespace mortar::rpc {
class RpcClient;
}

namespace mortar::fuse {

inline constexpr uint16_t kMgmtPort = 24007;

struct VolfileServer {
  std::string host;
  uint16_t port = kMgmtPort;
  // "host" on the default port, else "host:port" ("[v6]:port").
  std::string str() const;
};

// "HOST", "HOST:PORT", "[V6ADDR]" or "[V6ADDR]:PORT".
xl::Checked<VolfileServer> parse_volfile_server(std::string_view text);

// What `mount -t mortar SPEC DIR` names: "HOST:/VOL" (GlusterFS also takes "HOST:VOL").
struct MountSource {
  VolfileServer server;
  std::string volume;
};
xl::Checked<MountSource> parse_mount_source(std::string_view spec);

// "127.0.0.2, 127.0.0.3"
std::string describe_servers(const std::vector<VolfileServer>& servers);

struct FetchPolicy {
  int rounds = 3;                              // volfile-max-fetch-attempts
  std::chrono::milliseconds per_server{2000};  // to connect to one server and get an answer
  std::chrono::milliseconds backoff{500};      // before the second round; doubles after
  std::chrono::milliseconds total{14000};      // the whole fetch, whatever the counts say
};

struct FetchedVolume {
  pb::GetspecRsp spec;
  size_t server = 0;  // index of the server that answered
};

// One GETSPEC on a connected management client; `subscribe` asks for GRAPH_CHANGED events on
// this connection. Errors are the server's errno (ENOENT: no such volume, EAGAIN: not started)
// or the transport's (ENOTCONN, ETIMEDOUT), EPROTO for an answer that does not parse.
boost::asio::awaitable<Result<pb::GetspecRsp>> getspec(std::shared_ptr<rpc::RpcClient> client,
                                                       std::string volume, bool subscribe,
                                                       std::chrono::milliseconds timeout);

// The reason a server's GETSPEC error gives a person ("volume webData does not exist").
std::string describe_getspec_error(const Errno& err, const std::string& volume,
                                   const VolfileServer& server);

// True when every server would answer the same (the cluster state is replicated), so trying
// the others is pointless: no such volume, volume not started, no graph for it.
bool getspec_error_is_final(const Errno& err);

// The volume's graph from the first server that answers, trying each in order for up to
// `policy.rounds` rounds. Blocks; runs on its own io_context, which is gone when it returns, so
// it may be called before the process forks. The error is one line for the user:
// "volume webData does not exist", "no management daemon answered on 127.0.0.2, 127.0.0.3".
// `tried` collects what happened on the way, for the log once it is open.
xl::Checked<FetchedVolume> fetch_volume(const std::vector<VolfileServer>& servers,
                                        const std::string& volume, const FetchPolicy& policy,
                                        std::vector<std::string>& tried);

}  // namespace mortar::fuse
