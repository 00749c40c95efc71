#include "mgmtd/raft_node.h"

// libraft's headers have no C++ linkage guards.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}
#include <uv.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <optional>

#include "common/log.h"

namespace mortar::mgmtd {

namespace {

// Every command and snapshot travels as an 8-byte length, the bytes, and zeros up to a multiple
// of 8. libraft 0.15 (Debian 12) pads entries to 8 bytes on the wire but hands a follower the
// entries after an unpadded one at the wrong offsets, corrupting them; entries whose length is
// already a multiple of 8 are immune. The length tells the padding apart from the payload.
std::string frame(std::string_view payload) {
  std::string out(8, '\0');
  uint64_t n = payload.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out.append(payload);
  out.resize((out.size() + 7) / 8 * 8, '\0');
  return out;
}

std::optional<std::string_view> unframe(const void* base, size_t len) {
  if (len < 8) return std::nullopt;
  auto* p = static_cast<const unsigned char*>(base);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(p[i]) << (8 * i);
  if (n > len - 8) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(p + 8), n);
}

// The errors callers act on get the fixed words raft_node.h promises ("not the leader",
// "leadership lost"); the others libraft's own text.
std::string error_text(int status) {
  if (status == RAFT_NOTLEADER) return "not the leader";
  if (status == RAFT_LEADERSHIPLOST) return "leadership lost";
  return raft_strerror(status);
}

}  // namespace

struct RaftNode::Impl {
  RaftNode* owner = nullptr;
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t poll{};
  raft_uv_transport transport{};
  raft_io io{};
  raft_fsm fsm{};
  raft r{};
  bool raft_open = false;

  std::mutex mu;
  std::deque<std::function<void()>> tasks;  // GUARDED_BY(mu)
  // The answer of the last applied command: libraft hands this pointer to the proposer's
  // completion right after applying, so it needs no allocation (followers would leak one).
  std::string last_result;

  struct Apply {
    struct raft_apply req {};
    Done done;
  };
  struct Change {
    struct raft_change req {};
    Impl* impl = nullptr;
    uint64_t id = 0;
    Done done;
  };

  static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
    auto* self = static_cast<Impl*>(fsm->data);
    auto payload = unframe(buf->base, buf->len);
    if (!payload) {
      MLOG_ERROR("raft: a log entry of {} bytes is malformed", buf->len);
      self->last_result = "malformed log entry";
    } else {
      // Entries are applied in order, each right after the one before it.
      uint64_t index = raft_last_applied(&self->r) + 1;
      self->last_result = self->owner->fsm_.apply(index, *payload);
    }
    *result = &self->last_result;
    return 0;
  }

  static int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
    auto* self = static_cast<Impl*>(fsm->data);
    std::string data = frame(self->owner->fsm_.snapshot());
    *bufs = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    if (!*bufs) return RAFT_NOMEM;
    (*bufs)[0].len = data.size();
    (*bufs)[0].base = raft_malloc(std::max<size_t>(1, data.size()));
    if (!(*bufs)[0].base) return RAFT_NOMEM;
    std::memcpy((*bufs)[0].base, data.data(), data.size());
    *n = 1;
    return 0;
  }

  static int fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
    auto* self = static_cast<Impl*>(fsm->data);
    auto payload = unframe(buf->base, buf->len);
    if (payload) {
      self->owner->fsm_.restore(*payload);
    } else {
      MLOG_ERROR("raft: a snapshot of {} bytes is malformed", buf->len);
    }
    raft_free(buf->base);
    return payload ? 0 : RAFT_MALFORMED;
  }

  static void on_wake(uv_async_t* handle) {
    auto* self = static_cast<Impl*>(handle->data);
    std::deque<std::function<void()>> run;
    {
      std::lock_guard lock(self->mu);
      run.swap(self->tasks);
    }
    for (auto& t : run) t();
  }

  static void on_poll(uv_timer_t* handle) {
    auto* self = static_cast<Impl*>(handle->data);
    if (!self->raft_open) return;
    self->owner->leader_ = raft_state(&self->r) == RAFT_LEADER;
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(&self->r, &id, &address);
    self->owner->leader_id_ = id;
  }

  static void on_raft_closed(raft* r) {
    auto* self = static_cast<Impl*>(r->data);
    raft_uv_close(&self->io);
    raft_uv_tcp_close(&self->transport);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->poll), nullptr);
  }

  // Runs on the Raft thread until stop(); reports start-up through `started`.
  void run(bool bootstrap, std::promise<Result<void>>& started) {
    const Options& o = owner->options_;
    uv_loop_init(&loop);
    uv_async_init(&loop, &wake, on_wake);
    wake.data = this;
    uv_timer_init(&loop, &poll);
    poll.data = this;
    auto fail_start = [&](const std::string& what, int rv) {
      MLOG_ERROR("raft: {} failed: {} ({})", what, raft_strerror(rv),
                 raft_open ? raft_errmsg(&r) : io.errmsg);
      started.set_value(fail(EIO));
    };
    transport.data = nullptr;
    int rv = raft_uv_tcp_init(&transport, &loop);
    if (rv != 0) {
      fail_start("transport init", rv);
      uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
      return;
    }
    rv = raft_uv_init(&io, &loop, o.dir.c_str(), &transport);
    if (rv == 0) {
      fsm.version = 1;
      fsm.data = this;
      fsm.apply = fsm_apply;
      fsm.snapshot = fsm_snapshot;
      fsm.restore = fsm_restore;
      rv = raft_init(&r, &io, &fsm, o.id, o.address.c_str());
      if (rv == 0) {
        raft_open = true;
        r.data = this;
      }
    }
    if (rv != 0) {
      fail_start("init", rv);
    } else {
      raft_set_election_timeout(&r, o.election_timeout_ms);
      raft_set_heartbeat_timeout(&r, o.heartbeat_timeout_ms);
      raft_set_snapshot_threshold(&r, o.snapshot_threshold);
      raft_set_snapshot_trailing(&r, 64);
      raft_set_pre_vote(&r, true);
      if (bootstrap) {
        raft_configuration conf;
        raft_configuration_init(&conf);
        raft_configuration_add(&conf, o.id, o.address.c_str(), RAFT_VOTER);
        int b = raft_bootstrap(&r, &conf);
        raft_configuration_close(&conf);
        if (b != 0 && b != RAFT_CANTBOOTSTRAP) rv = b;
      }
      if (rv == 0) rv = raft_start(&r);
      if (rv != 0) {
        fail_start("start", rv);
      } else {
        uv_timer_start(&poll, on_poll, 0, 50);
        owner->running_ = true;
        started.set_value(ok());
      }
    }
    if (rv != 0) {
      if (raft_open) {
        raft_close(&r, on_raft_closed);
      } else {
        raft_uv_close(&io);
        raft_uv_tcp_close(&transport);
        uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
      }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    owner->running_ = false;
    owner->leader_ = false;
  }
};

uint64_t raft_id_of(std::string_view uuid) {
  // FNV-1a: stable across versions and platforms.
  uint64_t h = 1469598103934665603ull;
  for (char c : uuid) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

RaftNode::RaftNode(Options options, StateMachine& fsm) : options_(std::move(options)), fsm_(fsm) {}

RaftNode::~RaftNode() { stop(); }

Result<void> RaftNode::start(bool bootstrap) {
  if (thread_.joinable()) return fail(EALREADY);
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) {
    MLOG_ERROR("raft: cannot create {}: {}", options_.dir, ec.message());
    return fail(ec.value());
  }
  impl_ = std::make_unique<Impl>();
  impl_->owner = this;
  // Shared: the thread may still be inside set_value() when this function returns.
  auto started = std::make_shared<std::promise<Result<void>>>();
  auto result = started->get_future();
  thread_ = std::thread([this, bootstrap, started] { impl_->run(bootstrap, *started); });
  Result<void> r = result.get();
  if (!r) {
    thread_.join();
    impl_.reset();
  }
  return r;
}

void RaftNode::post(std::function<void()> task) {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->tasks.push_back(std::move(task));
  }
  uv_async_send(&impl_->wake);
}

void RaftNode::stop() {
  if (!thread_.joinable()) return;
  Impl* impl = impl_.get();
  post([impl] {
    if (!impl->raft_open) return;
    impl->raft_open = false;
    uv_timer_stop(&impl->poll);
    raft_close(&impl->r, Impl::on_raft_closed);
  });
  thread_.join();
  impl_.reset();
  leader_ = false;
  leader_id_ = 0;
}

Result<void> RaftNode::reset(bool bootstrap) {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(options_.dir, ec);
  if (ec) return fail(ec.value());
  return start(bootstrap);
}

void RaftNode::propose(std::string command, Done done) {
  if (!running_) return done("the management daemon's Raft is not running");
  Impl* impl = impl_.get();
  post([impl, command = frame(command), done = std::move(done)]() mutable {
    if (!impl->raft_open || raft_state(&impl->r) != RAFT_LEADER) return done("not the leader");
    auto* a = new Impl::Apply{};
    a->req.data = a;
    a->done = std::move(done);
    raft_buffer buf;
    buf.len = command.size();
    buf.base = raft_malloc(std::max<size_t>(1, command.size()));
    std::memcpy(buf.base, command.data(), command.size());
    int rv = raft_apply(&impl->r, &a->req, &buf, 1,
                        [](struct raft_apply* req, int status, void* result) {
                          auto* a = static_cast<Impl::Apply*>(req->data);
                          if (status != 0) {
                            a->done(error_text(status));
                          } else {
                            a->done(result ? *static_cast<std::string*>(result) : std::string());
                          }
                          delete a;
                        });
    if (rv != 0) {
      raft_free(buf.base);
      a->done(error_text(rv));
      delete a;
    }
  });
}

void RaftNode::add_voter(uint64_t id, std::string address, Done done) {
  if (!running_) return done("the management daemon's Raft is not running");
  Impl* impl = impl_.get();
  post([impl, id, address = std::move(address), done = std::move(done)]() mutable {
    if (!impl->raft_open || raft_state(&impl->r) != RAFT_LEADER) return done("not the leader");
    auto* c = new Impl::Change{};
    c->req.data = c;
    c->impl = impl;
    c->id = id;
    c->done = std::move(done);
    int rv = raft_add(&impl->r, &c->req, id, address.c_str(), [](raft_change* req, int status) {
      auto* c = static_cast<Impl::Change*>(req->data);
      if (status != 0) {
        c->done(std::string("adding the server: ") + raft_strerror(status));
        delete c;
        return;
      }
      // Catch the new server up, then let it vote.
      int rv = raft_assign(&c->impl->r, &c->req, c->id, RAFT_VOTER, [](raft_change* req, int st) {
        auto* c = static_cast<Impl::Change*>(req->data);
        c->done(st == 0 ? std::string()
                        : std::string("promoting the server: ") + raft_strerror(st));
        delete c;
      });
      if (rv != 0) {
        c->done(std::string("promoting the server: ") + raft_strerror(rv));
        delete c;
      }
    });
    if (rv != 0) {
      c->done(std::string("adding the server: ") + raft_strerror(rv));
      delete c;
    }
  });
}

void RaftNode::remove(uint64_t id, Done done) {
  if (!running_) return done("the management daemon's Raft is not running");
  Impl* impl = impl_.get();
  post([impl, id, done = std::move(done)]() mutable {
    if (!impl->raft_open || raft_state(&impl->r) != RAFT_LEADER) return done("not the leader");
    auto* c = new Impl::Change{};
    c->req.data = c;
    c->done = std::move(done);
    int rv = raft_remove(&impl->r, &c->req, id, [](raft_change* req, int status) {
      auto* c = static_cast<Impl::Change*>(req->data);
      c->done(status == 0 ? std::string() : raft_strerror(status));
      delete c;
    });
    if (rv != 0) {
      c->done(raft_strerror(rv));
      delete c;
    }
  });
}

}  // namespace mortar::mgmtd
