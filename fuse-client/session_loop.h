// Serves a FUSE session from the graph's own io_context: the /dev/fuse descriptor is watched
// by Asio and requests are read and dispatched on the I/O threads, so a request's coroutine
// starts on the thread that read it instead of being handed from a FUSE worker to an I/O
// thread (on a VM each hand-off is a costly wake-up).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse3/fuse_lowlevel.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

namespace mortar::fuse {

// Reads and processes requests until the session ends (unmount, or fuse_session_exit()).
// Run one per I/O thread; each owns a receive buffer.
boost::asio::awaitable<void> serve_session(fuse_session* se);

}  // namespace mortar::fuse
