// Running one operation on several children at once and collecting every answer: the fan-out
// of replication and distribution. Include only from .cc files (pulls in Asio's parallel group).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <vector>

namespace mortar::xl {

// Starts every operation, waits for all, answers their results in the operations' order.
// T must be default-constructible (Result<U> is when U is).
template <class T>
boost::asio::awaitable<std::vector<T>> all(std::vector<boost::asio::awaitable<T>> ops) {
  namespace asio = boost::asio;
  if (ops.empty()) co_return std::vector<T>{};
  if (ops.size() == 1) {
    T only = co_await std::move(ops[0]);
    std::vector<T> out;
    out.push_back(std::move(only));
    co_return out;
  }
  auto ex = co_await asio::this_coro::executor;
  using Op = decltype(asio::co_spawn(ex, std::move(ops[0]), asio::deferred));
  std::vector<Op> launched;
  launched.reserve(ops.size());
  for (auto& op : ops) launched.push_back(asio::co_spawn(ex, std::move(op), asio::deferred));
  // A named group: no temporaries with destructors inside the co_await (docs/engineering.md).
  auto group = asio::experimental::make_parallel_group(std::move(launched));
  auto waiting = group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  auto [order, errors, results] = co_await std::move(waiting);
  (void)order;
  (void)errors;
  co_return std::move(results);
}

}  // namespace mortar::xl
