// Errors on the data path are errno values: they are what the brick's syscalls produce and
// what FUSE answers, so they travel unchanged from brick to kernel.
#pragma once

#include <cerrno>
#include <expected>
#include <string>

namespace mortar {

struct Errno {
  int value = 0;

  constexpr Errno() = default;
  constexpr explicit Errno(int v) : value(v) {}
  static Errno last() { return Errno(errno); }

  std::string message() const;  // strerror text, e.g. "No such file or directory"
  std::string name() const;     // symbolic name, e.g. "ENOENT"
  friend constexpr bool operator==(Errno a, Errno b) { return a.value == b.value; }
};

template <class T>
using Result = std::expected<T, Errno>;

// `return fail(ENOENT);` from any function returning Result<T>.
inline std::unexpected<Errno> fail(int err) { return std::unexpected<Errno>(Errno(err)); }
inline std::unexpected<Errno> fail(Errno err) { return std::unexpected<Errno>(err); }
inline std::unexpected<Errno> fail_errno() { return std::unexpected<Errno>(Errno::last()); }

// Result<void> success value: `return ok();`
inline Result<void> ok() { return {}; }

}  // namespace mortar

// Early return of an error Result. `ASSIGN_OR_RETURN(auto x, f());` binds x to the value.
#define MORTAR_CONCAT_INNER_(a, b) a##b
#define MORTAR_CONCAT_(a, b) MORTAR_CONCAT_INNER_(a, b)
#define MORTAR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr, ret) \
  auto tmp = (expr);                                       \
  if (!tmp) ret std::unexpected(tmp.error());              \
  lhs = std::move(*tmp)
#define ASSIGN_OR_RETURN(lhs, expr) \
  MORTAR_ASSIGN_OR_RETURN_IMPL_(MORTAR_CONCAT_(result_, __LINE__), lhs, expr, return)
#define CO_ASSIGN_OR_RETURN(lhs, expr) \
  MORTAR_ASSIGN_OR_RETURN_IMPL_(MORTAR_CONCAT_(result_, __LINE__), lhs, expr, co_return)
#define RETURN_IF_ERROR(expr)                               \
  do {                                                      \
    if (auto r_ = (expr); !r_) return std::unexpected(r_.error()); \
  } while (0)
#define CO_RETURN_IF_ERROR(expr)                               \
  do {                                                         \
    if (auto r_ = (expr); !r_) co_return std::unexpected(r_.error()); \
  } while (0)
