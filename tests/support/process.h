// Test helpers that own real resources: temporary directories, child processes, and a
// running io_context. Every one cleans up in its destructor, so a failing test leaves
// nothing behind.
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace mortar::test {

// A fresh directory under $TMPDIR (default /tmp), removed with everything in it.
class TempDir {
 public:
  // Under `base`, or $TMPDIR, or /tmp.
  explicit TempDir(const std::string& prefix = "mortar-test", const std::string& base = "");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process, killed (SIGKILL) and reaped on destruction if still running. The child
// also dies if the test process dies (PR_SET_PDEATHSIG).
class Process {
 public:
  Process() = default;
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  ~Process();

  // Starts `argv[0]` with `argv`; stdout and stderr go to `output_file` when given, stderr to
  // `error_file` instead when that is given too.
  static Process spawn(const std::vector<std::string>& argv, const std::string& output_file = "",
                       const std::string& error_file = "");
  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit status (128+signal if killed), -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // SIGTERM, then SIGKILL after `grace`; returns the exit status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill();

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A free TCP port on `address` (bound once and released, so a race is possible but rare).
uint16_t free_port(const std::string& address);

// Path of a program built next to the tests (CMake passes MORTAR_BIN_DIR).
std::string bin(const std::string& name);

// Polls `pred` every 10 ms until it holds or `timeout` passes; returns the last value.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Lines of `path` that are ERROR or CRITICAL log lines.
std::vector<std::string> error_lines(const std::string& path);

// An io_context running on its own threads for the lifetime of the object; `run` executes
// a coroutine on it and waits for the result.
class IoThread {
 public:
  explicit IoThread(int threads = 2);
  ~IoThread();
  boost::asio::io_context& io() { return io_; }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  template <class T>
  T run(boost::asio::awaitable<T> aw) {
    return boost::asio::co_spawn(io_, std::move(aw), boost::asio::use_future).get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

}  // namespace mortar::test
