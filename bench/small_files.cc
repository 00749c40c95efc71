// Small-file phases for bench/run, one phase per call so the driver can remount between them
// (a cold read must not be served by the kernel's caches of the mount that wrote the files):
//
//   mortar-bench-small-files create DIR [--files 5000] [--writers 1]
//   mortar-bench-small-files stat|read|meta DIR [--files 5000] [--writers 1]
//
// `create` makes FILES 4 KiB files under DIR/w0 .. DIR/w{WRITERS-1}, one thread per writer.
// `stat` and `read` visit them all from one thread; `read` checks every byte, so a file system
// that returns wrong data fails the run instead of posting a figure. `meta` renames every
// file, makes and removes as many directories, and unlinks every file: the namespace mix.
// Prints `name<TAB>value<TAB>unit` lines.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBlock = 4096;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "mortar-bench-small-files: %s\n", what.c_str());
  std::exit(1);
}
[[noreturn]] void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void report(const std::string& name, double value, const char* unit) {
  std::printf("%s\t%.1f\t%s\n", name.c_str(), value, unit);
  std::fflush(stdout);
}

struct Layout {
  std::string dir;
  int files = 5000;
  int writers = 1;

  // File i belongs to writer i % writers, so each writer's share is the same size.
  std::string writer_dir(int w) const { return dir + "/w" + std::to_string(w); }
  std::string name(int i, const char* prefix = "f") const {
    char leaf[32];
    std::snprintf(leaf, sizeof leaf, "/%s%06d", prefix, i);
    return writer_dir(i % writers) + leaf;
  }
};

// Every file's bytes differ from its neighbours', so a read of the wrong file is caught.
void content(int i, char* buf) {
  std::memset(buf, 'a' + i % 26, kBlock);
  std::memcpy(buf, &i, sizeof i);
}

void create(const Layout& l) {
  for (int w = 0; w < l.writers; ++w) {
    if (::mkdir(l.writer_dir(w).c_str(), 0755) != 0) fail_errno("mkdir " + l.writer_dir(w));
  }
  std::atomic<bool> failed{false};
  std::string failure;
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < l.writers; ++w) {
    threads.emplace_back([&, w] {
      alignas(kBlock) char buf[kBlock];
      for (int i = w; i < l.files && !failed; i += l.writers) {
        std::string path = l.name(i);
        int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        content(i, buf);
        bool ok = fd >= 0 && ::write(fd, buf, kBlock) == static_cast<ssize_t>(kBlock);
        int saved = errno;
        if (fd >= 0 && ::close(fd) != 0) ok = false, saved = errno;
        if (!ok && !failed.exchange(true)) failure = path + ": " + std::strerror(saved);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) fail("create " + failure);
  report("create-4k-x" + std::to_string(l.writers), l.files / seconds_since(t0), "files/s");
}

void stat_all(const Layout& l) {
  auto t0 = Clock::now();
  for (int i = 0; i < l.files; ++i) {
    struct stat st;
    std::string path = l.name(i);
    if (::stat(path.c_str(), &st) != 0) fail_errno("stat " + path);
    if (st.st_size != static_cast<off_t>(kBlock)) fail("wrong size of " + path);
  }
  report("stat", l.files / seconds_since(t0), "ops/s");
}

void read_all(const Layout& l) {
  alignas(kBlock) char buf[kBlock];
  char expected[kBlock];
  auto t0 = Clock::now();
  for (int i = 0; i < l.files; ++i) {
    std::string path = l.name(i);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("open " + path);
    if (::read(fd, buf, kBlock) != static_cast<ssize_t>(kBlock)) fail_errno("read " + path);
    ::close(fd);
    content(i, expected);
    if (std::memcmp(buf, expected, kBlock) != 0) fail("wrong data in " + path);
  }
  report("read-4k", l.files / seconds_since(t0), "files/s");
}

// Runs `op` on every index and reports its rate; returns the seconds it took.
template <class Op>
double timed(const char* name, int n, Op op) {
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) op(i);
  double s = seconds_since(t0);
  report(name, n / s, "ops/s");
  return s;
}

void meta(const Layout& l) {
  int n = l.files;
  double total = 0;
  total += timed("rename", n, [&](int i) {
    if (::rename(l.name(i).c_str(), l.name(i, "r").c_str()) != 0) fail_errno("rename " + l.name(i));
  });
  total += timed("mkdir", n, [&](int i) {
    if (::mkdir(l.name(i, "d").c_str(), 0755) != 0) fail_errno("mkdir " + l.name(i, "d"));
  });
  total += timed("rmdir", n, [&](int i) {
    if (::rmdir(l.name(i, "d").c_str()) != 0) fail_errno("rmdir " + l.name(i, "d"));
  });
  total += timed("unlink", n, [&](int i) {
    if (::unlink(l.name(i, "r").c_str()) != 0) fail_errno("unlink " + l.name(i, "r"));
  });
  report("meta-mix", 4.0 * n / total, "ops/s");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Small-file phases of bench/run; prints name<TAB>value<TAB>unit lines"};
  app.require_subcommand(1);
  Layout l;
  for (const char* phase : {"create", "stat", "read", "meta"}) {
    CLI::App* sub = app.add_subcommand(phase);
    sub->add_option("dir", l.dir, "Directory holding the files")
        ->required()
        ->check(CLI::ExistingDirectory);
    sub->add_option("--files", l.files, "Number of 4 KiB files")->check(CLI::Range(1, 10'000'000));
    sub->add_option("--writers", l.writers, "Writer threads of `create` (and its layout)")
        ->check(CLI::Range(1, 256));
  }
  CLI11_PARSE(app, argc, argv);
  std::string phase = app.get_subcommands().front()->get_name();
  if (phase == "create") create(l);
  if (phase == "stat") stat_all(l);
  if (phase == "read") read_all(l);
  if (phase == "meta") meta(l);
  return 0;
}
