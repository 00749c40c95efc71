// File system workloads run through the VFS on one directory: small-file create, stat and
// read, large sequential write and read, 4 KiB random reads and writes. bench/fuse-vs-passthrough
// runs it on a raw directory, a FUSE passthrough and a mortar mount and compares them.
//
//   build/bin/mortar-bench-fs-workloads DIR [--files 5000] [--size-mib 1024]
//
// Prints one line per workload, `name<TAB>value<TAB>unit`, and removes everything it created.
// Every read checks what it got, so a file system that returns wrong data fails the run
// instead of posting a figure.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBlock = 4096;
constexpr size_t kMiB = 1 << 20;

std::filesystem::path work_dir;  // what we created, removed on every exit path

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "mortar-bench-fs-workloads: %s\n", what.c_str());
  std::error_code ec;
  std::filesystem::remove_all(work_dir, ec);
  std::exit(1);
}

[[noreturn]] void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

// A read or write that moved fewer bytes than asked is as much a failure as one that failed.
void expect_io(ssize_t n, size_t want, const std::string& what) {
  if (n < 0) fail_errno(what);
  if (static_cast<size_t>(n) != want) {
    fail(what + ": " + std::to_string(n) + " bytes instead of " + std::to_string(want));
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void report(const char* name, double value, const char* unit) {
  std::printf("%s\t%.0f\t%s\n", name, value, unit);
  std::fflush(stdout);
}

// Each 4 KiB block of a test file starts with its own offset, so any read can tell whether it
// got the bytes that belong where it read.
void stamp_blocks(char* buf, size_t len, uint64_t file_offset) {
  for (size_t b = 0; b < len; b += kBlock) {
    uint64_t at = file_offset + b;
    std::memcpy(buf + b, &at, sizeof at);
  }
}

void check_blocks(const char* buf, size_t len, uint64_t file_offset, const std::string& file) {
  for (size_t b = 0; b < len; b += kBlock) {
    uint64_t at;
    std::memcpy(&at, buf + b, sizeof at);
    if (at != file_offset + b) {
      fail("wrong data in " + file + " at offset " + std::to_string(file_offset + b));
    }
  }
}

// A pause longer than the FUSE mounts' 1 s entry and attribute timeouts, so the next workload
// measures the file system rather than the kernel's caches of it.
void let_kernel_caches_expire() { std::this_thread::sleep_for(std::chrono::milliseconds(1500)); }

void drop_page_cache(int fd) {
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (::geteuid() != 0) return;
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

std::string small_name(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "f%06d", i);
  return (work_dir / name).string();
}

void small_file_content(int i, char* buf) {
  std::memset(buf, 'a' + i % 26, kBlock);
  std::memcpy(buf, &i, sizeof i);
}

void small_files(int files) {
  alignas(kBlock) char buf[kBlock];
  auto t0 = Clock::now();
  for (int i = 0; i < files; ++i) {
    std::string path = small_name(i);
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) fail_errno("create " + path);
    small_file_content(i, buf);
    expect_io(::write(fd, buf, kBlock), kBlock, "write " + path);
    if (::close(fd) != 0) fail_errno("close " + path);
  }
  report("create-4k", files / seconds_since(t0), "files/s");

  let_kernel_caches_expire();
  t0 = Clock::now();
  for (int i = 0; i < files; ++i) {
    struct stat st;
    std::string path = small_name(i);
    if (::stat(path.c_str(), &st) != 0) fail_errno("stat " + path);
    if (st.st_size != static_cast<off_t>(kBlock)) fail("wrong size of " + path);
  }
  report("stat", files / seconds_since(t0), "ops/s");

  let_kernel_caches_expire();
  char expected[kBlock];
  t0 = Clock::now();
  for (int i = 0; i < files; ++i) {
    std::string path = small_name(i);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("open " + path);
    expect_io(::read(fd, buf, kBlock), kBlock, "read " + path);
    ::close(fd);
    small_file_content(i, expected);
    if (std::memcmp(buf, expected, kBlock) != 0) fail("wrong data in " + path);
  }
  report("read-4k", files / seconds_since(t0), "files/s");

  for (int i = 0; i < files; ++i) {
    if (::unlink(small_name(i).c_str()) != 0) fail_errno("unlink " + small_name(i));
  }
}

// Writes `bytes` in 1 MiB writes and fsyncs; returns the seconds that took.
double write_file(const std::string& path, uint64_t bytes) {
  std::vector<char> buf(kMiB);
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) fail_errno("create " + path);
  auto t0 = Clock::now();
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    stamp_blocks(buf.data(), kMiB, off);
    expect_io(::write(fd, buf.data(), kMiB), kMiB, "write " + path);
  }
  if (::fsync(fd) != 0) fail_errno("fsync " + path);
  double elapsed = seconds_since(t0);
  if (::close(fd) != 0) fail_errno("close " + path);
  return elapsed;
}

void sequential(uint64_t size_mib) {
  std::string path = (work_dir / "sequential").string();
  report("seq-write-1m", size_mib / write_file(path, size_mib * kMiB), "MiB/s");

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno("open " + path);
  drop_page_cache(fd);
  std::vector<char> buf(kMiB);
  uint64_t total = 0;
  auto t0 = Clock::now();
  while (true) {
    ssize_t n = ::read(fd, buf.data(), kMiB);
    if (n < 0) fail_errno("read " + path);
    if (n == 0) break;
    check_blocks(buf.data(), static_cast<size_t>(n), total, path);
    total += static_cast<uint64_t>(n);
  }
  double elapsed = seconds_since(t0);
  ::close(fd);
  if (total != size_mib * kMiB) fail("short read of " + path + ": " + std::to_string(total));
  report("seq-read-1m", size_mib / elapsed, "MiB/s");
  if (::unlink(path.c_str()) != 0) fail_errno("unlink " + path);
}

bool on_fuse(int fd) {
  constexpr decltype(statfs::f_type) kFuseSuperMagic = 0x65735546;
  struct statfs sf;
  return ::fstatfs(fd, &sf) == 0 && sf.f_type == kFuseSuperMagic;
}

// One thread, one 4 KiB pread or pwrite at a time at random aligned offsets. The writes'
// figure includes the fsync that ends them, so a file system cannot score by not writing.
//
// On a FUSE mount each block read is dropped from the mount's page cache again, so every read
// is a round trip to the daemon. Otherwise the figure would be a hit rate: a faster daemon
// fills the cache sooner and then scores on hits alone. The daemon's backing file stays in
// the page cache, like the file the raw run reads.
void random_io(uint64_t file_mib, double seconds) {
  std::string path = (work_dir / "random").string();
  write_file(path, file_mib * kMiB);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail_errno("open " + path);
  const bool drop_each_read = on_fuse(fd);
  std::mt19937_64 rng(42);  // every file system gets the same offsets
  std::uniform_int_distribution<uint64_t> block(0, file_mib * kMiB / kBlock - 1);
  alignas(kBlock) char buf[kBlock];
  auto run = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));

  uint64_t ops = 0;
  auto t0 = Clock::now();
  for (auto end = t0 + run; Clock::now() < end; ++ops) {
    uint64_t off = block(rng) * kBlock;
    expect_io(::pread(fd, buf, kBlock, static_cast<off_t>(off)), kBlock, "pread " + path);
    check_blocks(buf, kBlock, off, path);
    if (drop_each_read) ::posix_fadvise(fd, static_cast<off_t>(off), kBlock, POSIX_FADV_DONTNEED);
  }
  report("rand-read-4k", ops / seconds_since(t0), "IOPS");

  ops = 0;
  t0 = Clock::now();
  for (auto end = t0 + run; Clock::now() < end; ++ops) {
    uint64_t off = block(rng) * kBlock;
    stamp_blocks(buf, kBlock, off);
    expect_io(::pwrite(fd, buf, kBlock, static_cast<off_t>(off)), kBlock, "pwrite " + path);
  }
  if (::fsync(fd) != 0) fail_errno("fsync " + path);
  report("rand-write-4k", ops / seconds_since(t0), "IOPS");
  ::close(fd);
  if (::unlink(path.c_str()) != 0) fail_errno("unlink " + path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"File system workloads on one directory; prints name<TAB>value<TAB>unit lines"};
  std::string dir;
  int files = 5000;
  uint64_t size_mib = 1024;
  uint64_t random_mib = 256;
  double random_seconds = 5;
  app.add_option("dir", dir, "Directory to work in (a subdirectory is created and removed)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--files", files, "Number of 4 KiB files")->check(CLI::Range(1, 10'000'000));
  app.add_option("--size-mib", size_mib, "Size of the sequentially written file, in MiB")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--random-mib", random_mib, "Size of the randomly accessed file, in MiB")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--random-seconds", random_seconds, "Length of each random I/O run")
      ->check(CLI::Range(0.1, 3600.0));
  CLI11_PARSE(app, argc, argv);

  auto dir_path = std::filesystem::path(dir) / ("mortar-bench-" + std::to_string(::getpid()));
  if (::mkdir(dir_path.c_str(), 0755) != 0) fail_errno("mkdir " + dir_path.string());
  work_dir = dir_path;  // only now ours to remove
  small_files(files);
  sequential(size_mib);
  random_io(random_mib, random_seconds);
  if (::rmdir(work_dir.c_str()) != 0) fail_errno("rmdir " + work_dir.string());
  return 0;
}
