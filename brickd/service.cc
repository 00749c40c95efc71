#include "brickd/service.h"

#include <fnmatch.h>

#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/log.h"
#include "common/protocol.h"

namespace mortar::brickd {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Largest read a client may ask for, and the budget of one readdir answer.
constexpr uint32_t kMaxRead = 16u << 20;
constexpr uint32_t kMaxReaddir = 1u << 20;

Result<Gfid> gfid_arg(const std::string& raw) {
  auto g = Gfid::from_bytes(raw);
  if (!g || g->is_null()) return fail(EINVAL);
  return *g;
}

std::string proc_label(uint32_t proc) {
  if (pb::Proc_IsValid(static_cast<int>(proc))) return pb::Proc_Name(static_cast<pb::Proc>(proc));
  return "procedure " + std::to_string(proc);
}

template <class Msg>
void send_result(const rpc::ConnectionPtr& conn, uint64_t xid, Result<Msg>& r) {
  if (r) {
    conn->reply(xid, *r);
  } else {
    conn->reply_error(xid, r.error());
  }
}

template <class Msg>
void send_result(const rpc::ConnectionPtr& conn, uint64_t xid, Result<std::pair<Msg, Buffer>>& r) {
  if (r) {
    conn->reply(xid, r->first, std::move(r->second));
  } else {
    conn->reply_error(xid, r.error());
  }
}

LockMode lock_mode(pb::LockType t) {
  switch (t) {
    case pb::READ_LOCK:
      return LockMode::kRead;
    case pb::WRITE_LOCK:
      return LockMode::kWrite;
    default:
      return LockMode::kUnlock;
  }
}

pb::LockType lock_type(LockMode m) {
  switch (m) {
    case LockMode::kRead:
      return pb::READ_LOCK;
    case LockMode::kWrite:
      return pb::WRITE_LOCK;
    default:
      return pb::UNLOCK;
  }
}

std::vector<std::string> split_patterns(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& item : in) {
    size_t pos = 0;
    while (pos <= item.size()) {
      size_t end = item.find(',', pos);
      if (end == std::string::npos) end = item.size();
      std::string p = item.substr(pos, end - pos);
      if (!p.empty()) out.push_back(p);
      pos = end + 1;
    }
  }
  return out;
}

}  // namespace

bool address_admitted(const std::string& address, const std::vector<std::string>& allow,
                      const std::vector<std::string>& reject) {
  auto matches = [&](const std::vector<std::string>& patterns) {
    for (const auto& p : split_patterns(patterns)) {
      if (::fnmatch(p.c_str(), address.c_str(), 0) == 0) return true;
    }
    return false;
  };
  if (matches(reject)) return false;
  return split_patterns(allow).empty() || matches(allow);
}

struct BrickService::OpenFile {
  UniqueFd fd;
  Gfid gfid;
  bool is_dir = false;
  std::mutex mu;  // a directory's seek + getdents pair
};

struct BrickService::Session {
  bool ready = false;  // handshake done; touched on the connection's strand only
  std::string client_id;
  std::string process_name;

  std::mutex mu;
  uint64_t next_fd = 1;                                           // GUARDED_BY(mu)
  std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> files;  // GUARDED_BY(mu)

  uint64_t add(UniqueFd fd, const Gfid& gfid, bool is_dir) {
    auto f = std::make_shared<OpenFile>();
    f->fd = std::move(fd);
    f->gfid = gfid;
    f->is_dir = is_dir;
    std::lock_guard lock(mu);
    uint64_t id = next_fd++;
    files.emplace(id, std::move(f));
    return id;
  }
  Result<std::shared_ptr<OpenFile>> get(uint64_t id) {
    std::lock_guard lock(mu);
    auto it = files.find(id);
    if (it == files.end()) return fail(EBADF);
    return it->second;
  }
  bool remove(uint64_t id) {
    std::shared_ptr<OpenFile> f;  // closes outside the mutex
    std::lock_guard lock(mu);
    auto it = files.find(id);
    if (it == files.end()) return false;
    f = std::move(it->second);
    files.erase(it);
    return true;
  }
};

BrickService::BrickService(BrickFs& fs, Options options)
    : fs_(fs),
      options_(std::move(options)),
      pool_(std::make_unique<asio::thread_pool>(options_.io_threads)) {
  locks_.set_contention_listener(
      [this](uint64_t connection, LockKind kind, const std::string& domain, const Gfid& gfid) {
        on_contention(connection, kind, domain, gfid);
      });
}

void BrickService::on_contention(uint64_t connection, LockKind kind, const std::string& domain,
                                 const Gfid& gfid) {
  if (kind != LockKind::kInode && kind != LockKind::kEntry) return;
  rpc::ConnectionPtr conn;
  {
    std::lock_guard lock(conns_mu_);
    auto it = conns_.find(connection);
    if (it != conns_.end()) conn = it->second.lock();
  }
  if (!conn) return;
  pb::LockContention ev;
  ev.set_domain(domain);
  ev.set_gfid(std::string(gfid.bytes()));
  ev.set_entry(kind == LockKind::kEntry);
  conn->send_event(pb::LOCK_CONTENTION, ev);
}

Result<void> BrickService::apply_pre_op(
    const google::protobuf::RepeatedPtrField<pb::ChangelogReq>& marks) {
  // Every mark is checked before any is applied: a refused request leaves no marks. A mark on
  // an inode the brick lacks could never be cleared (CHANGELOG answers ESTALE for it).
  std::vector<Gfid> gfids;
  gfids.reserve(static_cast<size_t>(marks.size()));
  for (const auto& m : marks) {
    auto g = Gfid::from_bytes(m.gfid());
    if (!g || g->is_null()) return fail(EINVAL);
    gfids.push_back(*g);
  }
  for (const Gfid& g : gfids) {
    if (g.is_root()) continue;
    ASSIGN_OR_RETURN(auto rec, fs_.meta().get_inode(g));
    if (!rec) return fail(ESTALE);
  }
  for (int i = 0; i < marks.size(); ++i) {
    RETURN_IF_ERROR(
        fs_.meta().apply_changelog(gfids[static_cast<size_t>(i)], marks[i].delta(), true));
  }
  return ok();
}

Result<void> BrickService::apply_post_op(
    const google::protobuf::RepeatedPtrField<pb::ChangelogReq>& marks) {
  // Unlike a pre-op, one bad mark does not hold back the others: the lock goes regardless, and
  // every mark that stays is a heal that need not run. An inode that is gone keeps no marks.
  Result<void> result = ok();
  for (const auto& m : marks) {
    auto g = Gfid::from_bytes(m.gfid());
    if (!g || g->is_null()) {
      result = fail(EINVAL);
      continue;
    }
    auto r = fs_.meta().apply_changelog(*g, m.delta(), true);
    if (!r && r.error().value != ESTALE) result = fail(r.error());
  }
  return result;
}

BrickService::~BrickService() { pool_->join(); }

void BrickService::set_auth(std::vector<std::string> allow, std::vector<std::string> reject,
                            std::vector<std::string> trusted) {
  std::lock_guard lock(auth_mu_);
  options_.auth_allow = std::move(allow);
  options_.auth_reject = std::move(reject);
  options_.auth_trusted = std::move(trusted);
}

bool BrickService::connected(uint64_t connection) {
  std::lock_guard lock(conns_mu_);
  return conns_.contains(connection);
}

uint64_t BrickService::call_count(uint32_t proc) const {
  return proc < calls_.size() ? calls_[proc].load() : 0;
}

template <class Req, class Fn>
void BrickService::offload(const rpc::ConnectionPtr& conn, rpc::Frame& frame, Fn fn) {
  ++in_flight_;
  asio::post(*pool_, [this, conn, session = conn->context<Session>(), frame = std::move(frame),
                      fn = std::move(fn)]() mutable {
    Req req;
    for (const auto& [proc, ms] : options_.inject_delay_ms) {
      if (proc == frame.header.proc) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    if (!req.ParseFromString(frame.message)) {
      conn->close("undecodable " + proc_label(frame.header.proc) + " request");
    } else {
      // Replication's marks go down before the change they announce.
      Result<void> marked = ok();
      if constexpr (requires { req.pre_op(); }) marked = apply_pre_op(req.pre_op());
      if (!marked) {
        conn->reply_error(frame.header.xid, marked.error());
      } else {
        auto result = fn(*session, req, frame.data);
        send_result(conn, frame.header.xid, result);
      }
    }
    --in_flight_;
  });
}

template <class Req>
bool BrickService::parse_inline(const rpc::ConnectionPtr& conn, const rpc::Frame& frame, Req& req) {
  if (req.ParseFromString(frame.message)) return true;
  conn->close("undecodable " + proc_label(frame.header.proc) + " request");
  return false;
}

void BrickService::handshake(const rpc::ConnectionPtr& conn, const rpc::Frame& frame) {
  pb::HandshakeReq req;
  if (!parse_inline(conn, frame, req)) return;
  uint64_t xid = frame.header.xid;
  if (req.protocol_version() != kBrickProtocolVersion) {
    MLOG_WARN("client {} speaks protocol {}, this brick {}", conn->peer(), req.protocol_version(),
              kBrickProtocolVersion);
    conn->reply_error(xid, Errno(EPROTONOSUPPORT));
    return;
  }
  if (req.volume() != options_.volume || req.brick_name() != options_.brick_name) {
    MLOG_WARN("client {} asked for brick '{}' of volume '{}'; this is '{}' of '{}'", conn->peer(),
              req.brick_name(), req.volume(), options_.brick_name, options_.volume);
    conn->reply_error(xid, Errno(ENOENT));
    return;
  }
  bool admitted;
  {
    std::lock_guard lock(auth_mu_);
    // Local (Unix-socket) clients are processes of this server: always admitted.
    const auto& trusted = options_.auth_trusted;
    admitted = conn->is_local() ||
               std::find(trusted.begin(), trusted.end(), conn->peer_address()) != trusted.end() ||
               address_admitted(conn->peer_address(), options_.auth_allow, options_.auth_reject);
  }
  if (!admitted) {
    MLOG_WARN("client {} refused by auth.allow/auth.reject", conn->peer());
    conn->reply_error(xid, Errno(EACCES));
    return;
  }
  auto s = conn->context<Session>();
  s->client_id = req.client_id();
  s->process_name = req.process_name();
  s->ready = true;
  {
    std::lock_guard lock(conns_mu_);
    conns_[conn->id()] = conn;
  }
  if (req.ping_interval_ms() > 0) {
    auto interval = std::clamp<uint32_t>(req.ping_interval_ms(), 100, 60000);
    conn->set_idle_timeout(std::chrono::milliseconds(interval) * 4);
  }
  MLOG_INFO("client {} ({}, {}) connected", conn->peer(), req.process_name(), req.client_id());
  pb::HandshakeRsp rsp;
  rsp.set_protocol_version(kBrickProtocolVersion);
  rsp.set_volume(options_.volume);
  rsp.set_brick_name(options_.brick_name);
  rsp.set_brick_id(std::string(fs_.brick_id().bytes()));
  conn->reply(xid, rsp);
}

void BrickService::handle_lk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame) {
  pb::LkReq req;
  if (!parse_inline(conn, frame, req)) return;
  uint64_t xid = frame.header.xid;
  auto file = conn->context<Session>()->get(req.fd());
  if (!file) return conn->reply_error(xid, file.error());
  auto end = range_end(req.start(), req.length());
  if (!end) return conn->reply_error(xid, end.error());
  LockKind kind = req.flock() ? LockKind::kFlock : LockKind::kPosix;
  // flock locks belong to the open file, POSIX locks to the application's lock owner.
  RangeLock lock{LockOwner{conn->id(), req.flock() ? req.fd() : req.lock_owner()},
                 lock_mode(req.type()), req.flock() ? 0 : req.start(),
                 req.flock() ? UINT64_MAX : *end, req.pid()};
  if (req.cmd() == pb::LkReq::GETLK) {
    pb::LkRsp rsp;
    if (auto held = locks_.test_range(kind, "", (*file)->gfid, lock)) {
      rsp.set_type(lock_type(held->mode));
      rsp.set_start(held->start);
      rsp.set_length(held->end == UINT64_MAX ? 0 : held->end - held->start + 1);
      rsp.set_pid(held->pid);
    } else {
      rsp.set_type(pb::UNLOCK);
    }
    return conn->reply(xid, rsp);
  }
  locks_.lock_range(kind, "", (*file)->gfid, lock, req.cmd() == pb::LkReq::SETLKW,
                    [conn, xid](Result<void> r) {
                      if (r) {
                        conn->reply(xid, pb::LkRsp());
                      } else {
                        conn->reply_error(xid, r.error());
                      }
                    });
}

void BrickService::handle_inodelk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame) {
  pb::InodelkReq req;
  if (!parse_inline(conn, frame, req)) return;
  uint64_t xid = frame.header.xid;
  auto gfid = gfid_arg(req.gfid());
  if (!gfid) return conn->reply_error(xid, gfid.error());
  auto end = range_end(req.start(), req.length());
  if (!end) return conn->reply_error(xid, end.error());
  RangeLock lock{LockOwner{conn->id(), req.owner()}, lock_mode(req.type()), req.start(), *end, 0};
  if (req.type() == pb::UNLOCK && req.post_op_size() > 0) {
    // The marks go to the metadata store, which is disk work: off the network thread.
    ++in_flight_;
    asio::post(*pool_, [this, conn, xid, req = std::move(req), lock, g = *gfid] {
      Result<void> marked = apply_post_op(req.post_op());
      locks_.lock_range(LockKind::kInode, req.domain(), g, lock, false, [](Result<void>) {});
      if (marked) {
        conn->reply(xid, pb::Empty());
      } else {
        conn->reply_error(xid, marked.error());
      }
      --in_flight_;
    });
    return;
  }
  locks_.lock_range(LockKind::kInode, req.domain(), *gfid, lock, req.blocking(),
                    [conn, xid](Result<void> r) {
                      if (r) {
                        conn->reply(xid, pb::Empty());
                      } else {
                        conn->reply_error(xid, r.error());
                      }
                    });
}

void BrickService::handle_entrylk(const rpc::ConnectionPtr& conn, const rpc::Frame& frame) {
  pb::EntrylkReq req;
  if (!parse_inline(conn, frame, req)) return;
  uint64_t xid = frame.header.xid;
  auto parent = gfid_arg(req.parent());
  if (!parent) return conn->reply_error(xid, parent.error());
  if (!req.name().empty()) {
    if (auto r = check_name(req.name()); !r) return conn->reply_error(xid, r.error());
  }
  if (req.type() == pb::UNLOCK && req.post_op_size() > 0) {
    ++in_flight_;
    asio::post(*pool_, [this, conn, xid, req = std::move(req), p = *parent] {
      Result<void> marked = apply_post_op(req.post_op());
      locks_.lock_entry(req.domain(), p, req.name(), LockMode::kUnlock,
                        LockOwner{conn->id(), req.owner()}, false, [](Result<void>) {});
      if (marked) {
        conn->reply(xid, pb::Empty());
      } else {
        conn->reply_error(xid, marked.error());
      }
      --in_flight_;
    });
    return;
  }
  locks_.lock_entry(req.domain(), *parent, req.name(), lock_mode(req.type()),
                    LockOwner{conn->id(), req.owner()}, req.blocking(),
                    [conn, xid](Result<void> r) {
                      if (r) {
                        conn->reply(xid, pb::Empty());
                      } else {
                        conn->reply_error(xid, r.error());
                      }
                    });
}

void BrickService::on_close(const rpc::ConnectionPtr& conn) {
  {
    std::lock_guard lock(conns_mu_);
    conns_.erase(conn->id());
  }
  locks_.release_connection(conn->id());
  if (auto s = conn->context<Session>(); s && s->ready) {
    MLOG_INFO("client {} ({}) disconnected", conn->peer(), s->process_name);
  }
  // Open files close when the last in-flight operation on them finishes.
  conn->set_context(nullptr);
}

size_t BrickService::drain(std::chrono::milliseconds max_wait) {
  draining_ = true;
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  return in_flight_;
}

void BrickService::on_call(const rpc::ConnectionPtr& conn, rpc::Frame frame) {
  uint32_t proc = frame.header.proc;
  uint64_t xid = frame.header.xid;
  if (proc == pb::PROC_NONE || !pb::Proc_IsValid(static_cast<int>(proc))) {
    conn->close("unknown " + proc_label(proc));
    return;
  }
  // Only WRITE carries a data tail towards the brick.
  if (!frame.data.empty() && proc != pb::WRITE) {
    conn->close("data tail on a " + proc_label(proc) + " request");
    return;
  }
  calls_[proc % calls_.size()]++;
  if (draining_) return conn->reply_error(xid, Errno(ENOTCONN));
  if (!conn->context<Session>()) conn->set_context(std::make_shared<Session>());
  if (proc == pb::HANDSHAKE) return handshake(conn, frame);
  if (!conn->context<Session>()->ready) return conn->reply_error(xid, Errno(EACCES));

  switch (static_cast<pb::Proc>(proc)) {
    case pb::LK:
      return handle_lk(conn, frame);
    case pb::INODELK:
      return handle_inodelk(conn, frame);
    case pb::ENTRYLK:
      return handle_entrylk(conn, frame);

    case pb::LOOKUP:
      return offload<pb::LookupReq>(
          conn, frame, [this](Session&, pb::LookupReq& req, Buffer&) -> Result<pb::LookupRsp> {
            pb::LookupRsp rsp;
            if (req.parent().empty()) {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.lookup_gfid(g));
            } else {
              ASSIGN_OR_RETURN(Gfid parent, gfid_arg(req.parent()));
              ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.lookup(parent, req.name()));
            }
            if (req.want_changelog()) {
              auto g = Gfid::from_bytes(rsp.attr().gfid());
              if (!g) return fail(EIO);
              ASSIGN_OR_RETURN(*rsp.mutable_changelog(),
                               fs_.meta().apply_changelog(*g, pb::Changelog()));
            }
            return rsp;
          });

    case pb::GETATTR:
      return offload<pb::GetattrReq>(
          conn, frame, [this](Session& s, pb::GetattrReq& req, Buffer&) -> Result<pb::GetattrRsp> {
            pb::GetattrRsp rsp;
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.fgetattr(f->fd.get(), f->gfid));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.getattr(g));
            }
            return rsp;
          });

    case pb::SETATTR:
      return offload<pb::SetattrReq>(
          conn, frame, [this](Session& s, pb::SetattrReq& req, Buffer&) -> Result<pb::SetattrRsp> {
            std::pair<pb::Iatt, pb::Iatt> attrs;
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              ASSIGN_OR_RETURN(attrs, fs_.fsetattr(f->fd.get(), f->gfid, req));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(attrs, fs_.setattr(g, req));
            }
            pb::SetattrRsp rsp;
            *rsp.mutable_pre() = std::move(attrs.first);
            *rsp.mutable_post() = std::move(attrs.second);
            return rsp;
          });

    case pb::TRUNCATE:
      return offload<pb::TruncateReq>(
          conn, frame,
          [this](Session& s, pb::TruncateReq& req, Buffer&) -> Result<pb::TruncateRsp> {
            std::pair<pb::Iatt, pb::Iatt> attrs;
            if (options_.arbiter) {
              Gfid g;
              if (req.fd() != 0) {
                ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
                g = f->gfid;
              } else {
                ASSIGN_OR_RETURN(g, gfid_arg(req.gfid()));
              }
              ASSIGN_OR_RETURN(attrs.first, fs_.getattr(g));
              if ((attrs.first.mode() & S_IFMT) == S_IFDIR) return fail(EISDIR);
              attrs.second = attrs.first;
            } else if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              if (f->is_dir) return fail(EISDIR);
              ASSIGN_OR_RETURN(attrs, fs_.ftruncate(f->fd.get(), f->gfid, req.size()));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(attrs, fs_.truncate(g, req.size()));
            }
            pb::TruncateRsp rsp;
            *rsp.mutable_pre() = std::move(attrs.first);
            *rsp.mutable_post() = std::move(attrs.second);
            return rsp;
          });

    case pb::CREATE:
      return offload<pb::CreateReq>(
          conn, frame,
          [this, conn](Session& s, pb::CreateReq& req, Buffer&) -> Result<pb::CreateRsp> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            ASSIGN_OR_RETURN(auto created, fs_.create(req));
            pb::CreateRsp rsp;
            Gfid g = *Gfid::from_bytes(created.attr.gfid());
            // Only an inode made with the caller's new GFID: an existing file (no O_EXCL) may
            // be locked by this very client already, and it must ask for that lock itself.
            if (req.has_data_lock() && created.attr.gfid() == req.gfid()) {
              const pb::InodelkReq& l = req.data_lock();
              RangeLock lock{LockOwner{conn->id(), l.owner()}, LockMode::kWrite, 0, UINT64_MAX, 0};
              bool granted = false;
              locks_.lock_range(LockKind::kInode, l.domain(), g, lock, false,
                                [&granted](Result<void> r) { granted = r.has_value(); });
              if (granted && !connected(conn->id())) {
                // The connection closed while this worker ran: its locks were released
                // before this one existed, and nobody would ever release this one.
                RangeLock unlock = lock;
                unlock.mode = LockMode::kUnlock;
                locks_.lock_range(LockKind::kInode, l.domain(), g, unlock, false,
                                  [](Result<void>) {});
                granted = false;
              }
              rsp.set_locked(granted);
            }
            *rsp.mutable_attr() = std::move(created.attr);
            rsp.set_fd(s.add(std::move(created.fd), g, false));
            return rsp;
          });

    case pb::MKNOD:
      return offload<pb::MknodReq>(
          conn, frame, [this](Session&, pb::MknodReq& req, Buffer&) -> Result<pb::EntryRsp> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            pb::EntryRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.mknod(req));
            return rsp;
          });

    case pb::MKDIR:
      return offload<pb::MkdirReq>(
          conn, frame, [this](Session&, pb::MkdirReq& req, Buffer&) -> Result<pb::EntryRsp> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            pb::EntryRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.mkdir(req));
            return rsp;
          });

    case pb::SYMLINK:
      return offload<pb::SymlinkReq>(
          conn, frame, [this](Session&, pb::SymlinkReq& req, Buffer&) -> Result<pb::EntryRsp> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            pb::EntryRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.symlink(req));
            return rsp;
          });

    case pb::LINK:
      return offload<pb::LinkReq>(
          conn, frame, [this](Session&, pb::LinkReq& req, Buffer&) -> Result<pb::EntryRsp> {
            RETURN_IF_ERROR(gfid_arg(req.gfid()));
            RETURN_IF_ERROR(gfid_arg(req.new_parent()));
            pb::EntryRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.link(req));
            return rsp;
          });

    case pb::UNLINK:
      return offload<pb::UnlinkReq>(
          conn, frame, [this](Session&, pb::UnlinkReq& req, Buffer&) -> Result<pb::Empty> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            RETURN_IF_ERROR(fs_.unlink(req));
            return pb::Empty();
          });

    case pb::RMDIR:
      return offload<pb::RmdirReq>(
          conn, frame, [this](Session&, pb::RmdirReq& req, Buffer&) -> Result<pb::Empty> {
            RETURN_IF_ERROR(gfid_arg(req.parent()));
            RETURN_IF_ERROR(fs_.rmdir(req));
            return pb::Empty();
          });

    case pb::RENAME:
      return offload<pb::RenameReq>(
          conn, frame, [this](Session&, pb::RenameReq& req, Buffer&) -> Result<pb::Empty> {
            RETURN_IF_ERROR(gfid_arg(req.old_parent()));
            RETURN_IF_ERROR(gfid_arg(req.new_parent()));
            RETURN_IF_ERROR(fs_.rename(req));
            return pb::Empty();
          });

    case pb::READLINK:
      return offload<pb::ReadlinkReq>(
          conn, frame, [this](Session&, pb::ReadlinkReq& req, Buffer&) -> Result<pb::ReadlinkRsp> {
            ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
            pb::ReadlinkRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_target(), fs_.readlink(g));
            return rsp;
          });

    case pb::OPEN:
      return offload<pb::OpenReq>(
          conn, frame, [this](Session& s, pb::OpenReq& req, Buffer&) -> Result<pb::OpenRsp> {
            ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
            ASSIGN_OR_RETURN(UniqueFd fd, fs_.open(g, req.flags()));
            pb::OpenRsp rsp;
            rsp.set_fd(s.add(std::move(fd), g, false));
            return rsp;
          });

    case pb::OPENDIR:
      return offload<pb::OpendirReq>(
          conn, frame, [this](Session& s, pb::OpendirReq& req, Buffer&) -> Result<pb::OpenRsp> {
            ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
            ASSIGN_OR_RETURN(UniqueFd fd, fs_.opendir(g));
            pb::OpenRsp rsp;
            rsp.set_fd(s.add(std::move(fd), g, true));
            return rsp;
          });

    case pb::READ:
      return offload<pb::ReadReq>(
          conn, frame,
          [this](Session& s, pb::ReadReq& req, Buffer&) -> Result<std::pair<pb::ReadRsp, Buffer>> {
            if (req.size() > kMaxRead) return fail(EINVAL);
            ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
            if (f->is_dir) return fail(EISDIR);
            ASSIGN_OR_RETURN(Buffer data, fs_.read(f->fd.get(), req.offset(), req.size()));
            pb::ReadRsp rsp;
            if (data.size() < req.size()) {
              ASSIGN_OR_RETURN(*rsp.mutable_attr(), fs_.fgetattr(f->fd.get(), f->gfid));
            }
            return std::pair{std::move(rsp), std::move(data)};
          });

    case pb::WRITE:
      return offload<pb::WriteReq>(
          conn, frame, [this](Session& s, pb::WriteReq& req, Buffer& data) -> Result<pb::WriteRsp> {
            ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
            if (f->is_dir) return fail(EISDIR);
            // An arbiter takes part in the transaction (locks, marks) but keeps no data.
            size_t written = data.size();
            if (!options_.arbiter) {
              ASSIGN_OR_RETURN(written, fs_.write(f->fd.get(), req.offset(), data.view()));
            }
            pb::WriteRsp rsp;
            rsp.set_written(static_cast<uint32_t>(written));
            ASSIGN_OR_RETURN(*rsp.mutable_post(), fs_.fgetattr(f->fd.get(), f->gfid));
            return rsp;
          });

    case pb::FLUSH: {
      pb::FlushReq req;
      if (!parse_inline(conn, frame, req)) return;
      auto f = conn->context<Session>()->get(req.fd());
      if (!f) return conn->reply_error(xid, f.error());
      locks_.release_owner(LockKind::kPosix, "", (*f)->gfid,
                           LockOwner{conn->id(), req.lock_owner()});
      return conn->reply(xid, pb::Empty());
    }

    case pb::FSYNC:
      return offload<pb::FsyncReq>(
          conn, frame, [this](Session& s, pb::FsyncReq& req, Buffer&) -> Result<pb::Empty> {
            ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
            RETURN_IF_ERROR(fs_.fsync(f->fd.get(), req.datasync()));
            return pb::Empty();
          });

    case pb::RELEASE: {
      pb::ReleaseReq req;
      if (!parse_inline(conn, frame, req)) return;
      auto s = conn->context<Session>();
      auto f = s->get(req.fd());
      if (!f) return conn->reply_error(xid, f.error());
      // flock locks belong to the open file: its last close drops them.
      locks_.release_owner(LockKind::kFlock, "", (*f)->gfid, LockOwner{conn->id(), req.fd()});
      s->remove(req.fd());
      return conn->reply(xid, pb::Empty());
    }

    case pb::READDIR:
      return offload<pb::ReaddirReq>(
          conn, frame, [this](Session& s, pb::ReaddirReq& req, Buffer&) -> Result<pb::ReaddirRsp> {
            ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
            if (!f->is_dir) return fail(ENOTDIR);
            std::lock_guard lock(f->mu);
            return fs_.readdir(f->fd.get(), f->gfid, req.offset(),
                               std::clamp<uint32_t>(req.size(), 1, kMaxReaddir), req.plus());
          });

    case pb::STATFS:
      return offload<pb::StatfsReq>(
          conn, frame, [this](Session&, pb::StatfsReq&, Buffer&) -> Result<pb::StatfsRsp> {
            return fs_.statfs();
          });

    case pb::GETXATTR:
      return offload<pb::GetxattrReq>(
          conn, frame,
          [this](Session& s, pb::GetxattrReq& req, Buffer&) -> Result<pb::GetxattrRsp> {
            pb::GetxattrRsp rsp;
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              ASSIGN_OR_RETURN(*rsp.mutable_value(),
                               fs_.getxattr(f->gfid, f->fd.get(), req.name()));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(*rsp.mutable_value(), fs_.getxattr(g, -1, req.name()));
            }
            return rsp;
          });

    case pb::SETXATTR:
      return offload<pb::SetxattrReq>(
          conn, frame, [this](Session& s, pb::SetxattrReq& req, Buffer&) -> Result<pb::Empty> {
            int flags = static_cast<int>(req.flags());
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              RETURN_IF_ERROR(fs_.setxattr(f->gfid, f->fd.get(), req.name(), req.value(), flags));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              RETURN_IF_ERROR(fs_.setxattr(g, -1, req.name(), req.value(), flags));
            }
            return pb::Empty();
          });

    case pb::LISTXATTR:
      return offload<pb::ListxattrReq>(
          conn, frame,
          [this](Session& s, pb::ListxattrReq& req, Buffer&) -> Result<pb::ListxattrRsp> {
            std::vector<std::string> names;
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              ASSIGN_OR_RETURN(names, fs_.listxattr(f->gfid, f->fd.get()));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              ASSIGN_OR_RETURN(names, fs_.listxattr(g, -1));
            }
            pb::ListxattrRsp rsp;
            for (auto& n : names) rsp.add_names(std::move(n));
            return rsp;
          });

    case pb::REMOVEXATTR:
      return offload<pb::RemovexattrReq>(
          conn, frame, [this](Session& s, pb::RemovexattrReq& req, Buffer&) -> Result<pb::Empty> {
            if (req.fd() != 0) {
              ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
              RETURN_IF_ERROR(fs_.removexattr(f->gfid, f->fd.get(), req.name()));
            } else {
              ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
              RETURN_IF_ERROR(fs_.removexattr(g, -1, req.name()));
            }
            return pb::Empty();
          });

    case pb::FALLOCATE:
      return offload<pb::FallocateReq>(
          conn, frame,
          [this](Session& s, pb::FallocateReq& req, Buffer&) -> Result<pb::FallocateRsp> {
            ASSIGN_OR_RETURN(auto f, s.get(req.fd()));
            if (f->is_dir) return fail(EISDIR);
            if (!options_.arbiter) {
              RETURN_IF_ERROR(fs_.fallocate(f->fd.get(), req.mode(), req.offset(), req.length()));
            }
            pb::FallocateRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_post(), fs_.fgetattr(f->fd.get(), f->gfid));
            return rsp;
          });

    case pb::CHANGELOG:
      return offload<pb::ChangelogReq>(
          conn, frame,
          [this](Session&, pb::ChangelogReq& req, Buffer&) -> Result<pb::ChangelogRsp> {
            ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
            // A changelog only for inodes the brick has: heal marks must not outlive their file.
            if (!g.is_root()) RETURN_IF_ERROR(fs_.getattr(g));
            pb::ChangelogRsp rsp;
            ASSIGN_OR_RETURN(*rsp.mutable_value(),
                             fs_.meta().apply_changelog(g, req.delta(), true));
            return rsp;
          });

    case pb::CHECKSUM:
      return offload<pb::ChecksumReq>(conn, frame, [this](Session&, pb::ChecksumReq& req,
                                                          Buffer&) -> Result<pb::ChecksumRsp> {
        ASSIGN_OR_RETURN(Gfid g, gfid_arg(req.gfid()));
        ASSIGN_OR_RETURN(auto sums,
                         fs_.checksum(g, req.offset(), req.length(), req.block_size()));
        pb::ChecksumRsp rsp;
        for (uint64_t v : sums.first) rsp.add_sums(v);
        rsp.set_size(sums.second);
        return rsp;
      });

    case pb::HEAL_INDEX:
      return offload<pb::HealIndexReq>(conn, frame, [this](Session&, pb::HealIndexReq& req,
                                                           Buffer&) -> Result<pb::HealIndexRsp> {
        pb::HealIndexRsp rsp;
        rsp.set_total(fs_.meta().heal_index_size());
        if (req.max() == 0) return rsp;
        ASSIGN_OR_RETURN(auto gfids, fs_.meta().heal_index(req.max()));
        for (const auto& g : gfids) {
          pb::HealEntry* e = rsp.add_entries();
          e->set_gfid(std::string(g.bytes()));
          if (req.with_paths()) e->set_path(fs_.path_of(g));
          ASSIGN_OR_RETURN(*e->mutable_changelog(), fs_.meta().apply_changelog(g, {}));
        }
        return rsp;
      });

    case pb::BUCKET_LIST:
      return offload<pb::BucketListReq>(conn, frame, [this](Session&, pb::BucketListReq& req,
                                                            Buffer&) -> Result<pb::BucketListRsp> {
        if (req.bucket() >= 65536) return fail(EINVAL);
        size_t max = req.max() == 0 ? 1000 : std::min<uint32_t>(req.max(), 10000);
        // One more than asked: whether it exists is the answer's eof.
        ASSIGN_OR_RETURN(auto entries, fs_.meta().bucket_entries(req.bucket(), req.cursor(), max + 1));
        pb::BucketListRsp rsp;
        rsp.set_eof(entries.size() <= max);
        if (entries.size() > max) entries.resize(max);
        for (const auto& e : entries) {
          pb::BucketEntry* out = rsp.add_entries();
          out->set_parent(std::string(e.parent.bytes()));
          out->set_name(e.name);
          out->set_gfid(std::string(e.gfid.bytes()));
          out->set_type(e.type);
        }
        rsp.set_cursor(entries.empty() ? req.cursor() : entries.back().cursor());
        return rsp;
      });

    case pb::HANDSHAKE:
    case pb::PROC_NONE:
    default:
      conn->close("unknown " + proc_label(proc));
      return;
  }
}

}  // namespace mortar::brickd
