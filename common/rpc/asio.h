// The Asio pieces the RPC layer and the daemons share. Only .cc files include this: headers
// that other layers see stay on <boost/asio/awaitable.hpp> to keep builds fast.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/result.h"

namespace mortar {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
// Connections are TCP or Unix-domain stream sockets behind one type.
using stream_protocol = asio::generic::stream_protocol;
using stream_socket = stream_protocol::socket;

// Completion token that reports errors as values (a tuple with the error_code first), so no
// exception crosses the I/O path.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

inline Errno to_errno(const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return Errno(ECONNRESET);
  if (ec == asio::error::operation_aborted) return Errno(ECANCELED);
  if (ec.category() == boost::system::system_category()) return Errno(ec.value());
  return Errno(EIO);
}

}  // namespace mortar
