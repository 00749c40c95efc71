// One framed connection: buffered frame reads and batched frame writes over a stream socket
// (TCP or Unix-domain).
// Shared by the RPC client and server. Not thread-safe: every call runs on the socket's
// strand.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "common/rpc/asio.h"
#include "common/rpc/frame.h"

namespace mortar::rpc {

class FrameStream : public std::enable_shared_from_this<FrameStream> {
 public:
  FrameStream(stream_socket socket, Limits limits);

  // Reads the next frame. EPROTO/EMSGSIZE for a malformed header (the caller closes),
  // ECONNRESET or another errno when the connection ends.
  asio::awaitable<Result<Frame>> read_frame();
  // Queues a frame for writing; writes of queued frames are batched into one syscall.
  void send(OutFrame frame);
  void close();
  // Closes once everything queued so far has been written.
  void close_after_flush();
  bool is_open() const { return open_; }
  stream_socket& socket() { return socket_; }
  size_t queued_bytes() const { return queued_bytes_; }

 private:
  asio::awaitable<Result<void>> fill(size_t need);
  asio::awaitable<Result<void>> read_exact(char* out, size_t len);
  void pump();

  stream_socket socket_;
  Limits limits_;
  bool open_ = true;

  std::vector<char> rbuf_;
  size_t rpos_ = 0;
  size_t rend_ = 0;

  std::deque<OutFrame> queue_;
  std::vector<OutFrame> writing_frames_;
  bool writing_ = false;
  bool close_when_flushed_ = false;
  size_t queued_bytes_ = 0;  // queued or being written
  size_t writing_bytes_ = 0;
};

}  // namespace mortar::rpc
