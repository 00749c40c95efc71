#include "common/rpc/stream.h"

#include <cstring>

namespace mortar::rpc {

namespace {
constexpr size_t kReadBufferSize = 64 * 1024;
// Bound one gathered write so a deep queue does not build an enormous iovec.
constexpr size_t kMaxBatchFrames = 64;
}  // namespace

FrameStream::FrameStream(stream_socket socket, Limits limits)
    : socket_(std::move(socket)), limits_(limits), rbuf_(kReadBufferSize) {}

asio::awaitable<Result<void>> FrameStream::fill(size_t need) {
  if (rend_ - rpos_ >= need) co_return ok();
  if (rpos_ > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  while (rend_ < need) {
    auto [ec, n] = co_await socket_.async_read_some(
        asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_), use_nothrow);
    if (ec) co_return fail(to_errno(ec));
    rend_ += n;
  }
  co_return ok();
}

// Copies what the read buffer holds, then reads the rest straight into `out`, so a large
// data tail is never staged twice.
asio::awaitable<Result<void>> FrameStream::read_exact(char* out, size_t len) {
  size_t have = std::min(len, rend_ - rpos_);
  std::memcpy(out, rbuf_.data() + rpos_, have);
  rpos_ += have;
  if (have == len) co_return ok();
  if (len - have < rbuf_.size() / 2) {
    if (auto r = co_await fill(len - have); !r) co_return r;
    std::memcpy(out + have, rbuf_.data() + rpos_, len - have);
    rpos_ += len - have;
    co_return ok();
  }
  auto [ec, n] =
      co_await asio::async_read(socket_, asio::buffer(out + have, len - have), use_nothrow);
  if (ec) co_return fail(to_errno(ec));
  co_return ok();
}

asio::awaitable<Result<Frame>> FrameStream::read_frame() {
  if (auto r = co_await fill(kHeaderSize); !r) co_return fail(r.error());
  auto header =
      decode_header(std::span<const char, kHeaderSize>(rbuf_.data() + rpos_, kHeaderSize), limits_);
  if (!header) co_return fail(header.error());
  rpos_ += kHeaderSize;
  Frame frame;
  frame.header = *header;
  if (header->message_len > 0) {
    frame.message.resize(header->message_len);
    if (auto r = co_await read_exact(frame.message.data(), header->message_len); !r) {
      co_return fail(r.error());
    }
  }
  if (header->data_len > 0) {
    frame.data = Buffer::allocate(header->data_len);
    if (auto r = co_await read_exact(frame.data.mutable_data(), header->data_len); !r) {
      co_return fail(r.error());
    }
  }
  co_return frame;
}

void FrameStream::send(OutFrame frame) {
  if (!open_) return;
  queued_bytes_ += frame.head.size() + frame.data.size();
  queue_.push_back(std::move(frame));
  if (!writing_) pump();
}

void FrameStream::pump() {
  writing_ = true;
  writing_frames_.clear();
  writing_bytes_ = 0;
  std::vector<asio::const_buffer> bufs;
  while (!queue_.empty() && writing_frames_.size() < kMaxBatchFrames) {
    writing_frames_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    const OutFrame& f = writing_frames_.back();
    writing_bytes_ += f.head.size() + f.data.size();
    bufs.emplace_back(f.head.data(), f.head.size());
    if (!f.data.empty()) bufs.emplace_back(f.data.data(), f.data.size());
  }
  asio::async_write(socket_, bufs,
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      if (self->open_) self->queued_bytes_ -= self->writing_bytes_;
                      self->writing_frames_.clear();
                      if (ec) {
                        self->writing_ = false;
                        self->close();
                        return;
                      }
                      if (self->queue_.empty() || !self->open_) {
                        self->writing_ = false;
                        if (self->close_when_flushed_) self->close();
                      } else {
                        self->pump();
                      }
                    });
}

void FrameStream::close_after_flush() {
  close_when_flushed_ = true;
  if (!writing_) close();
}

void FrameStream::close() {
  if (!open_) return;
  open_ = false;
  boost::system::error_code ignored;
  socket_.shutdown(stream_socket::shutdown_both, ignored);
  socket_.close(ignored);
  queue_.clear();
  queued_bytes_ = 0;
}

}  // namespace mortar::rpc
