#include "tests/support/brick.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

namespace mortar::test {

bool port_open(const std::string& address, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  sa.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

BrickDaemon::BrickDaemon(const std::string& address, const std::string& brick_dir,
                         const std::string& log_path, std::vector<std::string> extra_args,
                         std::string log_level)
    : address_(address),
      brick_dir_(brick_dir),
      log_path_(log_path),
      extra_args_(std::move(extra_args)),
      log_level_(std::move(log_level)),
      port_(free_port(address)) {
  std::filesystem::create_directories(brick_dir_);
}

BrickDaemon::~BrickDaemon() { process_.kill(); }

bool BrickDaemon::start() {
  std::vector<std::string> argv = {bin("mortar-brickd"),
                                   "--listen",
                                   address_ + ":" + std::to_string(port_),
                                   "--brick-dir",
                                   brick_dir_,
                                   "--volume",
                                   "vol",
                                   "--brick-name",
                                   "b0",
                                   "--foreground",
                                   "--log-file",
                                   log_path_,
                                   "--log-level",
                                   log_level_};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_ = Process::spawn(argv, log_path_ + ".out");
  return eventually([&] { return !process_.running() || port_open(address_, port_); }) &&
         process_.running();
}

int BrickDaemon::stop() { return process_.stop(); }

void BrickDaemon::kill9() { process_.kill(); }

BrickClient::Options BrickDaemon::client_options(std::chrono::milliseconds ping_timeout) const {
  BrickClient::Options o;
  o.rpc.host = address_;
  o.rpc.port = port_;
  o.rpc.ping_timeout = ping_timeout;
  o.rpc.reconnect_min = std::chrono::milliseconds(50);
  o.rpc.reconnect_max = std::chrono::milliseconds(200);
  o.rpc.call_timeout = std::chrono::milliseconds(20000);
  o.volume = "vol";
  o.brick_name = "b0";
  o.process_name = "test";
  return o;
}

}  // namespace mortar::test

namespace mortar::test {

std::string raw(const Gfid& g) { return std::string(g.bytes()); }
Gfid gfid_of(const pb::Iatt& attr) { return Gfid::from_bytes(attr.gfid()).value_or(Gfid()); }

SyncBrick::SyncBrick(IoThread& io, BrickClient::Options options, bool wait)
    : io_(io), client_(std::make_unique<BrickClient>(io.executor(), std::move(options))) {
  client_->start();
  if (wait) wait_up();
}

SyncBrick::~SyncBrick() { client_->stop(); }

bool SyncBrick::wait_up(std::chrono::milliseconds timeout) {
  return io_.run(client_->wait_up(timeout));
}

Result<pb::Iatt> SyncBrick::lookup(const Gfid& parent, const std::string& name) {
  pb::LookupReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  auto r = call<pb::LookupRsp>(pb::LOOKUP, req);
  if (!r) return fail(r.error());
  return r->attr();
}

Result<pb::Iatt> SyncBrick::getattr(const Gfid& gfid) {
  pb::GetattrReq req;
  req.set_gfid(raw(gfid));
  auto r = call<pb::GetattrRsp>(pb::GETATTR, req);
  if (!r) return fail(r.error());
  return r->attr();
}

Result<pb::CreateRsp> SyncBrick::create(const Gfid& parent, const std::string& name,
                                        uint32_t mode, uint32_t flags) {
  pb::CreateReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  req.set_gfid(raw(Gfid::random()));
  req.set_mode(mode);
  req.set_flags(flags);
  return call<pb::CreateRsp>(pb::CREATE, req);
}

Result<pb::Iatt> SyncBrick::mkdir(const Gfid& parent, const std::string& name, uint32_t mode) {
  pb::MkdirReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  req.set_gfid(raw(Gfid::random()));
  req.set_mode(mode);
  auto r = call<pb::EntryRsp>(pb::MKDIR, req);
  if (!r) return fail(r.error());
  return r->attr();
}

Result<pb::Iatt> SyncBrick::symlink(const Gfid& parent, const std::string& name,
                                    const std::string& target) {
  pb::SymlinkReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  req.set_gfid(raw(Gfid::random()));
  req.set_target(target);
  auto r = call<pb::EntryRsp>(pb::SYMLINK, req);
  if (!r) return fail(r.error());
  return r->attr();
}

Result<pb::Empty> SyncBrick::unlink(const Gfid& parent, const std::string& name) {
  pb::UnlinkReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  return call<pb::Empty>(pb::UNLINK, req);
}

Result<pb::Empty> SyncBrick::rmdir(const Gfid& parent, const std::string& name) {
  pb::RmdirReq req;
  req.set_parent(raw(parent));
  req.set_name(name);
  return call<pb::Empty>(pb::RMDIR, req);
}

Result<uint64_t> SyncBrick::open(const Gfid& gfid, uint32_t flags) {
  pb::OpenReq req;
  req.set_gfid(raw(gfid));
  req.set_flags(flags);
  auto r = call<pb::OpenRsp>(pb::OPEN, req);
  if (!r) return fail(r.error());
  return r->fd();
}

Result<uint64_t> SyncBrick::opendir(const Gfid& gfid) {
  pb::OpendirReq req;
  req.set_gfid(raw(gfid));
  auto r = call<pb::OpenRsp>(pb::OPENDIR, req);
  if (!r) return fail(r.error());
  return r->fd();
}

Result<pb::Empty> SyncBrick::release(uint64_t fd) {
  pb::ReleaseReq req;
  req.set_fd(fd);
  return call<pb::Empty>(pb::RELEASE, req);
}

Result<pb::WriteRsp> SyncBrick::write(uint64_t fd, uint64_t offset, const std::string& data) {
  pb::WriteReq req;
  req.set_fd(fd);
  req.set_offset(offset);
  return io_.run(client_->write(req, Buffer::copy_of(data)));
}

Result<std::string> SyncBrick::read(uint64_t fd, uint64_t offset, uint32_t size) {
  pb::ReadReq req;
  req.set_fd(fd);
  req.set_offset(offset);
  req.set_size(size);
  auto r = io_.run(client_->read(req));
  if (!r) return fail(r.error());
  return std::string(r->second.view());
}

Result<std::vector<pb::Dirent>> SyncBrick::readdir_all(const Gfid& dir, bool plus,
                                                       uint32_t chunk) {
  auto fd = opendir(dir);
  if (!fd) return fail(fd.error());
  std::vector<pb::Dirent> out;
  uint64_t offset = 0;
  while (true) {
    pb::ReaddirReq req;
    req.set_fd(*fd);
    req.set_offset(offset);
    req.set_size(chunk);
    req.set_plus(plus);
    auto r = call<pb::ReaddirRsp>(pb::READDIR, req);
    if (!r) return fail(r.error());
    for (const auto& e : r->entries()) {
      out.push_back(e);
      offset = e.offset();
    }
    if (r->eof() || r->entries().empty()) break;
  }
  release(*fd);
  return out;
}

}  // namespace mortar::test
