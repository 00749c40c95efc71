// The floor under everything: round-trip latency and throughput of small requests (GETATTR)
// and of 1 MiB writes against one mortar-brickd over loopback.
//
//   build/bin/mortar-bench-brick-rpc [--dir DIR] [--seconds N]
//
// Prints a Markdown table; docs/benchmarks.md records a run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/log.h"
#include "tests/support/brick.h"

using namespace mortar;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Latencies {
  std::vector<double> us;
  double pct(double p) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))];
  }
};

// `depth` coroutines per client, each issuing calls back to back for `duration`.
template <class MakeCall>
double throughput(test::IoThread& io, std::vector<std::unique_ptr<test::SyncBrick>>& clients,
                  int depth, std::chrono::milliseconds duration, MakeCall make_call) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  auto end = Clock::now() + duration;
  std::vector<std::future<void>> workers;
  for (auto& c : clients) {
    for (int d = 0; d < depth; ++d) {
      BrickClient* client = &c->client();
      workers.push_back(boost::asio::co_spawn(
          io.io(),
          [&, client]() -> boost::asio::awaitable<void> {
            while (Clock::now() < end) {
              bool ok = co_await make_call(*client);
              if (!ok) {
                failed = true;
                co_return;
              }
              ++done;
            }
          },
          boost::asio::use_future));
    }
  }
  for (auto& w : workers) w.get();
  if (failed) std::fprintf(stderr, "warning: some calls failed\n");
  return static_cast<double>(done) / std::chrono::duration<double>(duration).count();
}

// The machine's own floor: a 32-byte ping-pong over loopback TCP between two threads with
// blocking sockets. Every brick round trip pays at least this.
double tcp_pingpong_us(const std::string& address, int rounds) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  ::bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len);
  ::listen(listener, 1);
  std::thread echo([listener] {
    int c = ::accept(listener, nullptr, nullptr);
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[32];
    while (::recv(c, buf, sizeof buf, MSG_WAITALL) == sizeof buf) ::send(c, buf, sizeof buf, 0);
    ::close(c);
  });
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int one = 1;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[32] = {};
  Latencies lat;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    ::send(s, buf, sizeof buf, 0);
    ::recv(s, buf, sizeof buf, MSG_WAITALL);
    lat.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::close(s);
  echo.join();
  ::close(listener);
  return lat.pct(0.5);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Round trips against one mortar-brickd over loopback"};
  std::string dir = "/dev/shm";
  int seconds = 3;
  int client_threads = 2;
  std::vector<std::string> brickd_args;
  app.add_option("--dir", dir, "Where to put the temporary brick");
  app.add_option("--seconds", seconds, "Length of each throughput run");
  app.add_option("--client-threads", client_threads, "Threads running the clients");
  app.add_option("--brickd-arg", brickd_args, "Extra mortar-brickd argument (repeatable)")
      ->allow_extra_args(false);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  ::setenv("TMPDIR", dir.c_str(), 1);
  test::TempDir tmp("mortar-bench");
  test::BrickDaemon daemon("127.0.0.2", tmp / "brick", tmp / "brickd.log", brickd_args, "warn");
  if (!daemon.start()) {
    std::fprintf(stderr, "mortar-brickd did not start; see %s\n", (tmp / "brickd.log").c_str());
    return 1;
  }
  test::IoThread io(client_threads);
  std::vector<std::unique_ptr<test::SyncBrick>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<test::SyncBrick>(io, daemon.client_options(3000ms)));
  }
  auto created = clients[0]->create(Gfid::root(), "bench-file", 0644, O_RDWR);
  if (!created) {
    std::fprintf(stderr, "create failed: %s\n", created.error().message().c_str());
    return 1;
  }
  std::string gfid = created->attr().gfid();
  auto run_for = std::chrono::milliseconds(seconds * 1000);

  auto getattr = [gfid](BrickClient& c) -> boost::asio::awaitable<bool> {
    pb::GetattrReq req;
    req.set_gfid(gfid);
    Result<pb::GetattrRsp> r = co_await c.call<pb::GetattrRsp>(pb::GETATTR, req);
    co_return r.has_value();
  };

  // Latency: one call at a time on one connection.
  Latencies lat;
  for (int i = 0; i < 2000; ++i) io.run(getattr(clients[0]->client()));  // warm up
  auto lat_end = Clock::now() + run_for;
  while (Clock::now() < lat_end) {
    auto t0 = Clock::now();
    io.run(getattr(clients[0]->client()));
    lat.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }

  std::vector<std::unique_ptr<test::SyncBrick>> one;
  one.push_back(std::make_unique<test::SyncBrick>(io, daemon.client_options(3000ms)));
  double small_1x1 = throughput(io, one, 1, run_for, getattr);
  double small_1x32 = throughput(io, one, 32, run_for, getattr);
  double small_4x32 = throughput(io, clients, 32, run_for, getattr);

  // 1 MiB writes, each client to its own file.
  constexpr size_t kMiB = 1 << 20;
  Buffer payload = Buffer::allocate(kMiB);
  std::memset(payload.mutable_data(), 'w', kMiB);
  std::map<const BrickClient*, uint64_t> fds;
  for (size_t i = 0; i < clients.size(); ++i) {
    auto f = clients[i]->create(Gfid::root(), "big-" + std::to_string(i), 0644, O_RDWR);
    fds[&clients[i]->client()] = f ? f->fd() : 0;
  }
  std::atomic<uint64_t> offset{0};
  auto write_mib = [&](BrickClient& c) -> boost::asio::awaitable<bool> {
    pb::WriteReq req;
    req.set_fd(fds.at(&c));
    // Wrap within 256 MiB so the page cache, not the disk, is what we measure against.
    req.set_offset((offset.fetch_add(kMiB) % (256 * kMiB)));
    Result<pb::WriteRsp> r = co_await c.write(req, payload);
    co_return r.has_value() && r->written() == kMiB;
  };
  std::vector<std::unique_ptr<test::SyncBrick>> first;
  first.push_back(std::move(clients[0]));
  double big_1x1 = throughput(io, first, 1, run_for, write_mib);
  clients[0] = std::move(first[0]);
  double big_4x4 = throughput(io, clients, 4, run_for, write_mib);

  double floor_us = tcp_pingpong_us("127.0.0.2", 20000);

  struct utsname u;
  ::uname(&u);
  std::printf("## Brick RPC floor (one mortar-brickd on 127.0.0.2, brick on %s)\n\n", dir.c_str());
  std::printf("Machine: %s %s, %u cores\n\n", u.sysname, u.release,
              std::thread::hardware_concurrency());
  std::printf("| workload | result |\n|---|---|\n");
  std::printf("| reference: TCP ping-pong on loopback, p50 | %.1f us |\n", floor_us);
  std::printf("| GETATTR latency, 1 in flight, p50 | %.1f us (%.2fx the ping-pong) |\n",
              lat.pct(0.50), lat.pct(0.50) / floor_us);
  std::printf("| GETATTR latency, 1 in flight, p99 | %.1f us |\n", lat.pct(0.99));
  std::printf("| GETATTR, 1 connection x 1 in flight | %.0f ops/s |\n", small_1x1);
  std::printf("| GETATTR, 1 connection x 32 in flight | %.0f ops/s |\n", small_1x32);
  std::printf("| GETATTR, 4 connections x 32 in flight | %.0f ops/s |\n", small_4x32);
  std::printf("| WRITE 1 MiB, 1 connection x 1 in flight | %.0f MiB/s |\n", big_1x1);
  std::printf("| WRITE 1 MiB, 4 connections x 4 in flight | %.0f MiB/s |\n", big_4x4);
  clients.clear();
  one.clear();
  daemon.stop();
  return 0;
}
