#include "fuse-client/volume_fetch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "common/rpc/asio.h"
#include "common/rpc/client.h"

namespace mortar::fuse {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

std::string VolfileServer::str() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == kMgmtPort ? h : h + ":" + std::to_string(port);
}

xl::Checked<VolfileServer> parse_volfile_server(std::string_view text) {
  VolfileServer s;
  std::string_view port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return xl::invalid("volfile server '" + std::string(text) + "': missing ']'");
    }
    s.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) {
        return xl::invalid("volfile server '" + std::string(text) + "': expected ':PORT'");
      }
      port = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    s.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  } else {
    s.host = std::string(text);  // a name, an IPv4 address, or a bare IPv6 address
  }
  if (s.host.empty()) return xl::invalid("volfile server '" + std::string(text) + "': no host");
  if (!port.empty() || text.ends_with(':')) {
    auto p = xl::parse_int(port);
    if (!p || *p < 1 || *p > 65535) {
      return xl::invalid("volfile server '" + std::string(text) + "': bad port '" +
                         std::string(port) + "'");
    }
    s.port = static_cast<uint16_t>(*p);
  }
  return s;
}

xl::Checked<MountSource> parse_mount_source(std::string_view spec) {
  auto bad = [&] { return xl::invalid("'" + std::string(spec) + "' is not HOST:/VOLUME"); };
  size_t colon;
  if (spec.starts_with('[')) {
    size_t close = spec.find(']');
    if (close == std::string_view::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      return bad();
    }
    colon = close + 1;
  } else {
    colon = spec.find(':');
    if (colon == std::string_view::npos) return bad();
  }
  auto server = parse_volfile_server(spec.substr(0, colon));
  if (!server) return bad();
  std::string_view volume = spec.substr(colon + 1);
  if (volume.starts_with('/')) volume.remove_prefix(1);
  if (volume.ends_with('/')) volume.remove_suffix(1);
  if (volume.empty()) return bad();
  if (volume.find('/') != std::string_view::npos) {
    return xl::invalid("'" + std::string(spec) +
                       "': mounting a subdirectory of a volume is not supported");
  }
  return MountSource{std::move(*server), std::string(volume)};
}

std::string describe_servers(const std::vector<VolfileServer>& servers) {
  std::string out;
  for (const auto& s : servers) {
    if (!out.empty()) out += ", ";
    out += s.str();
  }
  return out;
}

asio::awaitable<Result<pb::GetspecRsp>> getspec(std::shared_ptr<rpc::RpcClient> client,
                                                std::string volume, bool subscribe,
                                                milliseconds timeout) {
  pb::GetspecReq req;
  req.set_volume(std::move(volume));
  req.set_subscribe(subscribe);
  rpc::CallOptions options;
  options.deadline = Clock::now() + timeout;
  auto call = client->call(pb::GETSPEC, req, Buffer{}, options);
  Result<rpc::Reply> reply = co_await std::move(call);
  if (!reply) co_return fail(reply.error());
  pb::GetspecRsp rsp;
  if (!rsp.ParseFromString(reply->message)) co_return fail(EPROTO);
  co_return rsp;
}

std::string describe_getspec_error(const Errno& err, const std::string& volume,
                                   const VolfileServer& server) {
  switch (err.value) {
    case ENOENT:
      return "volume " + volume + " does not exist";
    case EAGAIN:
      return "volume " + volume + " is not started";
    case EINVAL:
      return "the management daemon on " + server.str() + " has no usable client graph for " +
             volume + " (see its log)";
    case EPROTO:
      return "the management daemon on " + server.str() + " sent an answer that does not parse";
    default:
      return server.str() + ": " + err.message();
  }
}

bool getspec_error_is_final(const Errno& err) {
  return err.value == ENOENT || err.value == EAGAIN || err.value == EINVAL;
}

namespace {

asio::awaitable<void> sleep_for(milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(use_nothrow);
}

asio::awaitable<xl::Checked<FetchedVolume>> fetch_all(std::vector<VolfileServer> servers,
                                                      std::string volume, FetchPolicy policy,
                                                      std::vector<std::string>* tried) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + policy.total;
  auto remaining = [&] {
    return std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  };
  milliseconds backoff = policy.backoff;
  for (int round = 0; round < std::max(1, policy.rounds); ++round) {
    if (round > 0) {
      if (remaining() <= 0ms) break;
      co_await sleep_for(std::min(backoff, remaining()));
      backoff *= 2;
    }
    for (size_t i = 0; i < servers.size(); ++i) {
      const VolfileServer& server = servers[i];
      milliseconds budget = std::min(policy.per_server, remaining());
      if (budget <= 0ms) break;
      rpc::RpcClient::Options o;
      o.host = server.host;
      o.port = server.port;
      o.name = "mortar-mgmtd " + server.str();
      // Within its budget a server is tried again and again: one that is just starting (a
      // web head booting with its storage) answers as soon as it listens.
      o.connect_timeout = std::min(budget, milliseconds(1500));
      o.reconnect_min = 100ms;
      o.reconnect_max = 500ms;
      auto client = std::make_shared<rpc::RpcClient>(executor, o);
      client->start();
      bool up = co_await client->wait_up(budget);
      if (!up) {
        client->stop();
        tried->push_back(server.str() + ": no answer");
        continue;
      }
      // A healthy server answers in milliseconds. One whose port accepts but nobody answers
      // (a hung daemon, or a listening socket a dead one left to its children) gets the
      // server's budget, not the whole fetch's.
      milliseconds call_budget = std::max(std::min(policy.per_server, remaining()), 500ms);
      auto fetch = getspec(client, volume, false, call_budget);
      Result<pb::GetspecRsp> r = co_await std::move(fetch);
      client->stop();
      if (r) co_return FetchedVolume{std::move(*r), i};
      tried->push_back(server.str() + ": " + r.error().message());
      if (getspec_error_is_final(r.error())) {
        co_return xl::invalid(describe_getspec_error(r.error(), volume, server));
      }
    }
  }
  co_return xl::invalid("no management daemon answered on " + describe_servers(servers));
}

}  // namespace

xl::Checked<FetchedVolume> fetch_volume(const std::vector<VolfileServer>& servers,
                                        const std::string& volume, const FetchPolicy& policy,
                                        std::vector<std::string>& tried) {
  if (servers.empty()) return xl::invalid("no volfile server given");
  // The log is not open yet (it opens once the mount daemon detaches): the RPC layer's
  // connection lines would land on the user's terminal. What happened is kept in `tried`.
  auto level = spdlog::default_logger()->level();
  spdlog::default_logger()->set_level(spdlog::level::off);
  std::optional<xl::Checked<FetchedVolume>> result;
  {
    asio::io_context io;
    asio::co_spawn(io, fetch_all(servers, volume, policy, &tried),
                   [&](std::exception_ptr e, xl::Checked<FetchedVolume> r) {
                     if (e) {
                       result = xl::invalid("internal error while fetching the volume");
                     } else {
                       result = std::move(r);
                     }
                   });
    // Stopped clients wind down once their last connect attempt ends (at most a connect
    // timeout); bound that too.
    io.run_for(policy.total + 5s);
    io.stop();
  }
  spdlog::default_logger()->set_level(level);
  if (!result) return xl::invalid("fetching the volume did not finish");
  return std::move(*result);
}

}  // namespace mortar::fuse
