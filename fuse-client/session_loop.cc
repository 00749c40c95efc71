#include "fuse-client/session_loop.h"

#include <fcntl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>

#include "common/log.h"

namespace mortar::fuse {

namespace asio = boost::asio;

asio::awaitable<void> serve_session(fuse_session* se) {
  int fd = fuse_session_fd(se);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  asio::posix::stream_descriptor watch(co_await asio::this_coro::executor, ::dup(fd));
  fuse_buf buf{};
  while (!fuse_session_exited(se)) {
    auto [ec] = co_await watch.async_wait(asio::posix::descriptor_base::wait_read,
                                          asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    // Several readers wake for one request; the ones that find nothing go back to waiting.
    while (!fuse_session_exited(se)) {
      int res = fuse_session_receive_buf(se, &buf);
      if (res == -EAGAIN || res == -EINTR) break;
      if (res <= 0) {
        if (res < 0 && res != -ENODEV) MLOG_WARN("reading /dev/fuse: {}", std::strerror(-res));
        fuse_session_exit(se);
        break;
      }
      fuse_session_process_buf(se, &buf);
    }
  }
  std::free(buf.mem);
}

}  // namespace mortar::fuse
