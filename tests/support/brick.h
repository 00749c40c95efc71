// A real mortar-brickd for integration tests, and a client of it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/brick_client.h"
#include "common/gfid.h"
#include "tests/support/process.h"

namespace mortar::test {

class BrickDaemon {
 public:
  // Serves `brick_dir` (created if missing) as brick "b0" of volume "vol" on `address`.
  BrickDaemon(const std::string& address, const std::string& brick_dir,
              const std::string& log_path, std::vector<std::string> extra_args = {},
              std::string log_level = "debug");
  ~BrickDaemon();

  // Starts the daemon and waits until it accepts connections. False if it did not.
  bool start();
  // SIGTERM and wait; returns the exit status.
  int stop();
  void kill9();
  void signal(int sig) { process_.signal(sig); }
  bool running() { return process_.running(); }

  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return process_.pid(); }

  BrickClient::Options client_options(std::chrono::milliseconds ping_timeout =
                                          std::chrono::milliseconds(2000)) const;

 private:
  std::string address_;
  std::string brick_dir_;
  std::string log_path_;
  std::vector<std::string> extra_args_;
  std::string log_level_;
  uint16_t port_;
  Process process_;
};

// True when a TCP connection to address:port succeeds.
bool port_open(const std::string& address, uint16_t port);

}  // namespace mortar::test

namespace mortar::test {

// Blocking calls to one brick, for tests that read top to bottom.
class SyncBrick {
 public:
  SyncBrick(IoThread& io, BrickClient::Options options, bool wait = true);
  ~SyncBrick();
  BrickClient& client() { return *client_; }
  bool wait_up(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  template <class Rsp>
  Result<Rsp> call(pb::Proc proc, const google::protobuf::MessageLite& req) {
    return io_.run(client_->call<Rsp>(proc, req));
  }

  Result<pb::Iatt> lookup(const Gfid& parent, const std::string& name);
  Result<pb::Iatt> getattr(const Gfid& gfid);
  Result<pb::CreateRsp> create(const Gfid& parent, const std::string& name, uint32_t mode = 0644,
                               uint32_t flags = 02 /* O_RDWR */);
  Result<pb::Iatt> mkdir(const Gfid& parent, const std::string& name, uint32_t mode = 0755);
  Result<pb::Iatt> symlink(const Gfid& parent, const std::string& name, const std::string& target);
  Result<pb::Empty> unlink(const Gfid& parent, const std::string& name);
  Result<pb::Empty> rmdir(const Gfid& parent, const std::string& name);
  Result<uint64_t> open(const Gfid& gfid, uint32_t flags);
  Result<uint64_t> opendir(const Gfid& gfid);
  Result<pb::Empty> release(uint64_t fd);
  Result<pb::WriteRsp> write(uint64_t fd, uint64_t offset, const std::string& data);
  Result<std::string> read(uint64_t fd, uint64_t offset, uint32_t size);
  // Every entry of a directory, following offsets until end of directory.
  Result<std::vector<pb::Dirent>> readdir_all(const Gfid& dir, bool plus, uint32_t chunk = 4096);

 private:
  IoThread& io_;
  std::unique_ptr<BrickClient> client_;
};

Gfid gfid_of(const pb::Iatt& attr);
std::string raw(const Gfid& g);

}  // namespace mortar::test
