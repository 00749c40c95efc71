#include "translators/protocol-client/protocol_client.h"

#include <fcntl.h>

#include "common/log.h"

namespace mortar::xl {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string raw(const Gfid& g) { return std::string(g.bytes()); }

// Replication's pre-op marks travel inside the request they announce.
template <class Req>
void add_pre_op(const OpContext& ctx, Req& req) {
  for (const auto& m : ctx.pre_op) *req.add_pre_op() = m;
}

}  // namespace

// Shared with the connection's callbacks, which may outlive the translator.
struct ProtocolClient::State {
  std::mutex mu;
  ProtocolClient* owner = nullptr;                              // GUARDED_BY(mu)
  std::unordered_map<const Fd*, std::weak_ptr<Fd>> open_files;  // GUARDED_BY(mu)
};

std::vector<OptionSpec> ProtocolClient::option_schema() {
  return {
      {"remote-host", OptionKind::kString, "", "Address of the brick's server", true},
      {"remote-port", OptionKind::kInt, "", "TCP port of the brick daemon", true, 1, 65535},
      {"remote-subvolume", OptionKind::kString, "", "Name of the brick on that server (its path)",
       true},
      {"remote-volume", OptionKind::kString, "", "Volume the brick belongs to", true},
      {"ping-timeout", OptionKind::kDuration, "3",
       "A brick silent this long is declared down and its calls fail with ENOTCONN", false, 100,
       1013000},
      {"call-timeout", OptionKind::kDuration, "1800",
       "A call not answered this long fails with ETIMEDOUT", false, 1000, 86400000},
      {"transport-type", OptionKind::kEnum, "tcp", "Transport to the brick", false, 0, 0, {"tcp"}},
  };
}

Checked<ProtocolClient::Config> ProtocolClient::configure(const Options& options,
                                                          const GraphContext& context) {
  Config c;
  c.brick.rpc.host = options.str("remote-host");
  c.brick.rpc.port = static_cast<uint16_t>(options.integer("remote-port"));
  c.brick.rpc.ping_timeout = options.duration("ping-timeout");
  c.brick.rpc.call_timeout = options.duration("call-timeout");
  c.brick.rpc.name = c.brick.rpc.host + ":" + options.str("remote-subvolume");
  c.brick.volume = options.str("remote-volume");
  c.brick.brick_name = options.str("remote-subvolume");
  c.brick.client_id = context.client_id;
  c.brick.process_name = context.process_name;
  return c;
}

void register_protocol_client(Registry& registry) {
  registry.add(TranslatorType{
      "protocol/client", "One connection to one brick", ProtocolClient::option_schema(), 0, 0,
      [](const std::string& name, const Options& options,
         const GraphContext& context) -> Checked<std::unique_ptr<Translator>> {
        auto config = ProtocolClient::configure(options, context);
        if (!config) return invalid(config.error());
        return std::make_unique<ProtocolClient>(name, std::move(*config), context);
      }});
}

ProtocolClient::ProtocolClient(std::string name, Config config, const GraphContext& context)
    : Translator(std::move(name), "protocol/client"),
      state_(std::make_shared<State>()),
      client_(std::make_unique<BrickClient>(context.executor, std::move(config.brick))) {
  state_->owner = this;
  std::weak_ptr<State> weak = state_;
  client_->set_state_listener([weak](bool up) {
    auto state = weak.lock();
    if (!state) return;
    std::lock_guard lock(state->mu);
    if (!state->owner) return;
    state->owner->up_ = up;
    state->owner->notify(up ? Event::kChildUp : Event::kChildDown, state->owner);
  });
  client_->set_event_listener([weak](uint32_t proc, std::string message) {
    if (proc != pb::LOCK_CONTENTION) return;
    pb::LockContention ev;
    if (!ev.ParseFromString(message)) return;
    auto state = weak.lock();
    if (!state) return;
    std::lock_guard lock(state->mu);
    if (!state->owner) return;
    EventInfo info{ev.domain(), Gfid::from_bytes(ev.gfid()).value_or(Gfid()), ev.entry()};
    state->owner->notify(Event::kLockContention, state->owner, info);
  });
  client_->set_reconnect_hook([weak]() -> asio::awaitable<Result<void>> {
    auto state = weak.lock();
    ProtocolClient* self = nullptr;
    if (state) {
      std::lock_guard lock(state->mu);
      self = state->owner;
    }
    if (!self) co_return fail(ECANCELED);
    Result<void> r = co_await self->reopen_all();
    co_return r;
  });
}

ProtocolClient::~ProtocolClient() {
  {
    std::lock_guard lock(state_->mu);
    state_->owner = nullptr;
  }
  client_->stop();
}

void ProtocolClient::start() { client_->start(); }

void ProtocolClient::stop() {
  {
    std::lock_guard lock(state_->mu);
    state_->owner = nullptr;
  }
  up_ = false;
  client_->stop();
}

BrickClient::CallOptions ProtocolClient::call_options(const OpContext& ctx) const {
  BrickClient::CallOptions co;
  co.deadline = ctx.deadline;
  return co;
}

template <class Rsp>
Task<Rsp> ProtocolClient::call(const OpContext& ctx, pb::Proc proc,
                               const google::protobuf::MessageLite& req) {
  ++calls_sent_;
  return client_->call<Rsp>(proc, req, call_options(ctx));
}

Result<uint64_t> ProtocolClient::remote(const FdPtr& fd) const {
  if (!fd) return fail(EBADF);
  auto r = fd->context<RemoteFd>(this);
  if (!r || r->generation.load() != generation_.load() || r->fd.load() == 0) return fail(EBADF);
  return r->fd.load();
}

FdPtr ProtocolClient::remember(const Gfid& gfid, uint32_t flags, bool is_dir, uint64_t remote_fd) {
  auto fd = std::make_shared<Fd>(gfid, flags, is_dir);
  auto r = std::make_shared<RemoteFd>();
  r->fd = remote_fd;
  r->generation = generation_.load();
  fd->set_context(this, r);
  std::lock_guard lock(state_->mu);
  state_->open_files[fd.get()] = fd;
  return fd;
}

asio::awaitable<Result<void>> ProtocolClient::reopen_all() {
  uint64_t gen = ++generation_;
  std::vector<FdPtr> files;
  {
    std::lock_guard lock(state_->mu);
    for (auto it = state_->open_files.begin(); it != state_->open_files.end();) {
      if (auto fd = it->second.lock()) {
        files.push_back(std::move(fd));
        ++it;
      } else {
        it = state_->open_files.erase(it);
      }
    }
  }
  BrickClient::CallOptions co;
  co.setup = true;
  size_t failed = 0;
  for (auto& fd : files) {
    Result<pb::OpenRsp> r;
    if (fd->is_dir()) {
      pb::OpendirReq req;
      req.set_gfid(raw(fd->gfid()));
      r = co_await client_->call<pb::OpenRsp>(pb::OPENDIR, req, co);
    } else {
      pb::OpenReq req;
      req.set_gfid(raw(fd->gfid()));
      // Re-opening must not truncate or create again.
      req.set_flags(fd->flags() & ~static_cast<uint32_t>(O_TRUNC | O_CREAT | O_EXCL));
      r = co_await client_->call<pb::OpenRsp>(pb::OPEN, req, co);
    }
    if (!r) {
      if (r.error().value == ENOTCONN || r.error().value == ETIMEDOUT) co_return fail(r.error());
      // The file is gone from the brick: its descriptor stays bad (EBADF).
      ++failed;
      continue;
    }
    auto remote_fd = fd->context<RemoteFd>(this);
    if (!remote_fd) continue;
    remote_fd->fd = r->fd();
    remote_fd->generation = gen;
  }
  if (!files.empty()) {
    MLOG_INFO("{}: re-opened {} of {} open files", name(), files.size() - failed, files.size());
  }
  co_return ok();
}

Task<pb::Iatt> ProtocolClient::lookup(OpContext ctx, Gfid parent, std::string name) {
  pb::LookupReq req;
  req.set_parent(raw(parent));
  req.set_name(std::move(name));
  Result<pb::LookupRsp> r = co_await call<pb::LookupRsp>(ctx, pb::LOOKUP, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<pb::Iatt> ProtocolClient::lookup_gfid(OpContext ctx, Gfid gfid) {
  pb::LookupReq req;
  req.set_gfid(raw(gfid));
  Result<pb::LookupRsp> r = co_await call<pb::LookupRsp>(ctx, pb::LOOKUP, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<pb::Iatt> ProtocolClient::getattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  pb::GetattrReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  Result<pb::GetattrRsp> r = co_await call<pb::GetattrRsp>(ctx, pb::GETATTR, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<AttrPair> ProtocolClient::setattr(OpContext ctx, Gfid gfid, FdPtr fd, pb::SetattrReq req) {
  req.clear_fd();
  req.clear_gfid();
  add_pre_op(ctx, req);
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  Result<pb::SetattrRsp> r = co_await call<pb::SetattrRsp>(ctx, pb::SETATTR, req);
  if (!r) co_return fail(r.error());
  co_return AttrPair{std::move(*r->mutable_pre()), std::move(*r->mutable_post())};
}

Task<AttrPair> ProtocolClient::truncate(OpContext ctx, Gfid gfid, FdPtr fd, uint64_t size) {
  pb::TruncateReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  req.set_size(size);
  add_pre_op(ctx, req);
  Result<pb::TruncateRsp> r = co_await call<pb::TruncateRsp>(ctx, pb::TRUNCATE, req);
  if (!r) co_return fail(r.error());
  co_return AttrPair{std::move(*r->mutable_pre()), std::move(*r->mutable_post())};
}

Task<Created> ProtocolClient::create(OpContext ctx, pb::CreateReq req) {
  add_pre_op(ctx, req);
  Result<pb::CreateRsp> r = co_await call<pb::CreateRsp>(ctx, pb::CREATE, req);
  if (!r) co_return fail(r.error());
  Gfid g = Gfid::from_bytes(r->attr().gfid()).value_or(Gfid());
  FdPtr fd = remember(g, req.flags(), false, r->fd());
  co_return Created{std::move(*r->mutable_attr()), std::move(fd), r->locked()};
}

Task<pb::Iatt> ProtocolClient::mknod(OpContext ctx, pb::MknodReq req) {
  add_pre_op(ctx, req);
  Result<pb::EntryRsp> r = co_await call<pb::EntryRsp>(ctx, pb::MKNOD, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<pb::Iatt> ProtocolClient::mkdir(OpContext ctx, pb::MkdirReq req) {
  add_pre_op(ctx, req);
  Result<pb::EntryRsp> r = co_await call<pb::EntryRsp>(ctx, pb::MKDIR, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<pb::Iatt> ProtocolClient::symlink(OpContext ctx, pb::SymlinkReq req) {
  add_pre_op(ctx, req);
  Result<pb::EntryRsp> r = co_await call<pb::EntryRsp>(ctx, pb::SYMLINK, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<pb::Iatt> ProtocolClient::link(OpContext ctx, pb::LinkReq req) {
  add_pre_op(ctx, req);
  Result<pb::EntryRsp> r = co_await call<pb::EntryRsp>(ctx, pb::LINK, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_attr());
}

Task<void> ProtocolClient::unlink(OpContext ctx, pb::UnlinkReq req) {
  add_pre_op(ctx, req);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::UNLINK, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<void> ProtocolClient::rmdir(OpContext ctx, pb::RmdirReq req) {
  add_pre_op(ctx, req);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::RMDIR, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<void> ProtocolClient::rename(OpContext ctx, pb::RenameReq req) {
  add_pre_op(ctx, req);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::RENAME, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<std::string> ProtocolClient::readlink(OpContext ctx, Gfid gfid) {
  pb::ReadlinkReq req;
  req.set_gfid(raw(gfid));
  Result<pb::ReadlinkRsp> r = co_await call<pb::ReadlinkRsp>(ctx, pb::READLINK, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_target());
}

Task<FdPtr> ProtocolClient::open(OpContext ctx, Gfid gfid, uint32_t flags) {
  pb::OpenReq req;
  req.set_gfid(raw(gfid));
  req.set_flags(flags);
  Result<pb::OpenRsp> r = co_await call<pb::OpenRsp>(ctx, pb::OPEN, req);
  if (!r) co_return fail(r.error());
  co_return remember(gfid, flags, false, r->fd());
}

Task<Buffer> ProtocolClient::read(OpContext ctx, FdPtr fd, uint64_t offset, uint32_t size) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  pb::ReadReq req;
  req.set_fd(rfd);
  req.set_offset(offset);
  req.set_size(size);
  ++calls_sent_;
  Result<std::pair<pb::ReadRsp, Buffer>> r = co_await client_->read(req, call_options(ctx));
  if (!r) co_return fail(r.error());
  co_return std::move(r->second);
}

Task<pb::WriteRsp> ProtocolClient::write(OpContext ctx, FdPtr fd, uint64_t offset, Buffer data) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  pb::WriteReq req;
  req.set_fd(rfd);
  req.set_offset(offset);
  add_pre_op(ctx, req);
  ++calls_sent_;
  Result<pb::WriteRsp> r = co_await client_->write(req, std::move(data), call_options(ctx));
  co_return r;
}

Task<void> ProtocolClient::flush(OpContext ctx, FdPtr fd) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  {
    std::lock_guard lock(locked_mu_);
    if (!locked_.count(fd->gfid())) co_return ok();
  }
  pb::FlushReq req;
  req.set_fd(rfd);
  req.set_lock_owner(ctx.lock_owner);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::FLUSH, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<void> ProtocolClient::fsync(OpContext ctx, FdPtr fd, bool datasync) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  pb::FsyncReq req;
  req.set_fd(rfd);
  req.set_datasync(datasync);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::FSYNC, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

asio::awaitable<void> ProtocolClient::release(FdPtr fd) {
  if (!fd) co_return;
  {
    std::lock_guard lock(state_->mu);
    state_->open_files.erase(fd.get());
  }
  auto rfd = remote(fd);
  if (!rfd) co_return;  // the brick dropped it with its connection already
  pb::ReleaseReq req;
  req.set_fd(*rfd);
  Result<pb::Empty> r = co_await call<pb::Empty>(OpContext{}, pb::RELEASE, req);
  (void)r;
}

Task<FdPtr> ProtocolClient::opendir(OpContext ctx, Gfid gfid) {
  pb::OpendirReq req;
  req.set_gfid(raw(gfid));
  Result<pb::OpenRsp> r = co_await call<pb::OpenRsp>(ctx, pb::OPENDIR, req);
  if (!r) co_return fail(r.error());
  co_return remember(gfid, O_RDONLY, true, r->fd());
}

Task<pb::ReaddirRsp> ProtocolClient::readdir(OpContext ctx, FdPtr fd, uint64_t offset,
                                             uint32_t size, bool plus) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  pb::ReaddirReq req;
  req.set_fd(rfd);
  req.set_offset(offset);
  req.set_size(size);
  req.set_plus(plus);
  Result<pb::ReaddirRsp> r = co_await call<pb::ReaddirRsp>(ctx, pb::READDIR, req);
  co_return r;
}

Task<pb::StatfsRsp> ProtocolClient::statfs(OpContext ctx, Gfid gfid) {
  Result<pb::StatfsRsp> r = co_await call<pb::StatfsRsp>(ctx, pb::STATFS, pb::StatfsReq());
  co_return r;
}

Task<std::string> ProtocolClient::getxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  pb::GetxattrReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  req.set_name(std::move(name));
  Result<pb::GetxattrRsp> r = co_await call<pb::GetxattrRsp>(ctx, pb::GETXATTR, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_value());
}

Task<void> ProtocolClient::setxattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name,
                                    std::string value, int flags) {
  pb::SetxattrReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  req.set_name(std::move(name));
  req.set_value(std::move(value));
  req.set_flags(static_cast<uint32_t>(flags));
  add_pre_op(ctx, req);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::SETXATTR, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<std::vector<std::string>> ProtocolClient::listxattr(OpContext ctx, Gfid gfid, FdPtr fd) {
  pb::ListxattrReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  Result<pb::ListxattrRsp> r = co_await call<pb::ListxattrRsp>(ctx, pb::LISTXATTR, req);
  if (!r) co_return fail(r.error());
  co_return std::vector<std::string>(r->names().begin(), r->names().end());
}

Task<void> ProtocolClient::removexattr(OpContext ctx, Gfid gfid, FdPtr fd, std::string name) {
  pb::RemovexattrReq req;
  if (fd) {
    CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
    req.set_fd(rfd);
  } else {
    req.set_gfid(raw(gfid));
  }
  req.set_name(std::move(name));
  add_pre_op(ctx, req);
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::REMOVEXATTR, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<pb::Iatt> ProtocolClient::fallocate(OpContext ctx, FdPtr fd, uint32_t mode, uint64_t offset,
                                         uint64_t length) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  pb::FallocateReq req;
  req.set_fd(rfd);
  req.set_mode(mode);
  req.set_offset(offset);
  req.set_length(length);
  add_pre_op(ctx, req);
  Result<pb::FallocateRsp> r = co_await call<pb::FallocateRsp>(ctx, pb::FALLOCATE, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_post());
}

Task<pb::LkRsp> ProtocolClient::lk(OpContext ctx, FdPtr fd, pb::LkReq req) {
  CO_ASSIGN_OR_RETURN(uint64_t rfd, remote(fd));
  req.set_fd(rfd);
  if (!req.flock() && req.cmd() != pb::LkReq::GETLK && req.type() != pb::UNLOCK) {
    std::lock_guard lock(locked_mu_);
    locked_.insert(fd->gfid());
  }
  Result<pb::LkRsp> r = co_await call<pb::LkRsp>(ctx, pb::LK, req);
  co_return r;
}

Task<void> ProtocolClient::inodelk(OpContext ctx, pb::InodelkReq req) {
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::INODELK, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<void> ProtocolClient::entrylk(OpContext ctx, pb::EntrylkReq req) {
  Result<pb::Empty> r = co_await call<pb::Empty>(ctx, pb::ENTRYLK, req);
  if (!r) co_return fail(r.error());
  co_return ok();
}

Task<pb::LookupRsp> ProtocolClient::lookup_raw(OpContext ctx, pb::LookupReq req) {
  Result<pb::LookupRsp> r = co_await call<pb::LookupRsp>(ctx, pb::LOOKUP, req);
  co_return r;
}

Task<pb::ChecksumRsp> ProtocolClient::checksum(OpContext ctx, pb::ChecksumReq req) {
  Result<pb::ChecksumRsp> r = co_await call<pb::ChecksumRsp>(ctx, pb::CHECKSUM, req);
  co_return r;
}

Task<pb::HealIndexRsp> ProtocolClient::heal_index(OpContext ctx, pb::HealIndexReq req) {
  Result<pb::HealIndexRsp> r = co_await call<pb::HealIndexRsp>(ctx, pb::HEAL_INDEX, req);
  co_return r;
}

Task<pb::BucketListRsp> ProtocolClient::list_bucket(OpContext ctx, pb::BucketListReq req) {
  Result<pb::BucketListRsp> r = co_await call<pb::BucketListRsp>(ctx, pb::BUCKET_LIST, req);
  co_return r;
}

Task<pb::Changelog> ProtocolClient::changelog(OpContext ctx, pb::ChangelogReq req) {
  Result<pb::ChangelogRsp> r = co_await call<pb::ChangelogRsp>(ctx, pb::CHANGELOG, req);
  if (!r) co_return fail(r.error());
  co_return std::move(*r->mutable_value());
}

}  // namespace mortar::xl
