// What the acceptance tests share: servers with a brick file system each, the webData volume,
// web heads that mount it from an fstab line, and the checks at the end of a story (heal drained,
// each replica set's bricks identical, the sets holding exactly what was written). Each test
// gives its servers their own 127.0.0.x block, so tests under ctest -j never share an address.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/process.h"
#include "tests/support/replica_tree.h"

namespace mortar::test {

inline const std::string kVolume = "webData";
constexpr int kServers = 4;
constexpr size_t kMiB = 1024 * 1024;

std::string read_all(const std::string& path);
bool contains(const std::string& text, const std::string& what);
size_t count(const std::string& text, const std::string& what);
double seconds(std::chrono::steady_clock::duration d);
std::string show(const CliResult& r);

// Running and not a zombie: detached daemons are reaped by init, which may do it late.
bool alive(int pid);

// Polls `pred` every 250 ms until it holds or `timeout` passes; for predicates that run the
// CLI (a process each time).
bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// "Number of entries: N" of each brick in `volume heal VOL info`, in brick order; a brick that
// is not connected prints "-", read as -1.
std::vector<int64_t> pending_entries(const std::string& text);

// Writes `data` to `path` (created or truncated unless `offset` is given); 0 or the errno of the
// step that failed.
int write_file(const std::string& path, const std::string& data, int64_t offset = -1);
int append_file(const std::string& path, const std::string& data);

// `path` read whole; an errno (and no content) if open or read failed.
struct ReadResult {
  int err = 0;
  std::string data;
};
ReadResult read_file(const std::string& path);

// Why `got` is not `want` ("" when it is): the sizes and the first byte that differs.
std::string difference(const std::string& got, const std::string& want);
// Why `path` does not read back as `want` ("" when it does).
std::string mismatch(const std::string& path, const std::string& want);

// A link entry of cluster/distribute: an empty file of mode ---------T on the set that owns a
// name whose data another set holds (translators/dht/dht.h).
bool is_link_entry(const Node& n);

// Paths where two brick trees differ, with what each side holds there; empty when they are
// equal.
std::string tree_diff(const std::map<std::string, Node>& a, const std::map<std::string, Node>& b,
                      const std::string& a_name, const std::string& b_name);

// Where the replica sets put what was written.
struct Placement {
  std::vector<size_t> files_per_set;
  size_t link_entries = 0;
};
// Adds a test failure for anything the sets (`set_trees`: one brick tree of each set) hold that
// is not in `files` or `dirs`, any file whose data is lost, wrong or on two sets, a link entry
// pointing at nothing, and a directory missing from a brick of `all_trees`.
Placement expect_sets_hold(const std::vector<std::map<std::string, Node>>& all_trees,
                           int replica_count, const std::map<std::string, std::string>& files,
                           const std::set<std::string>& dirs);

// A file system of its own for each server's brick, as storage servers have: mortar-mgmtd then
// takes the story's `volume create` without `force` (it refuses bricks on the root file system).
class Disk {
 public:
  explicit Disk(std::string path);
  ~Disk();
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Runs `f` when the scope ends, however it ends: a failed ASSERT returns early, and the threads
// a test started must be stopped and joined before their state goes.
template <class F>
struct Finally {
  F f;
  ~Finally() { f(); }
};

// Lazy unmount of the FUSE mount on `path` whether its daemon lives or not. Reads
// /proc/self/mountinfo rather than stat()ing the path, which fails once a mount's daemon is dead.
void detach_mount(const std::string& path);

// Four storage servers on 127.0.0.F ... F+3 with a disk each, the web heads that mount webData,
// and on teardown (pass or fail): the mounts gone, then the daemons, and a failure for every
// ERROR line any of them logged.
class AcceptanceTest : public ::testing::Test {
 protected:
  struct WebHead {
    std::string dir, pid_file, log;
    pid_t pid = -1;
  };

  explicit AcceptanceTest(int first_host) : first_host_(first_host) {}
  void SetUp() override;
  void TearDown() override;

  std::string host(int i) const { return "127.0.0." + std::to_string(first_host_ + i); }
  std::string brick(int i) const { return root_ + "/disk" + std::to_string(i) + "/exports/b"; }
  std::string brick_spec(int i) const { return host(i) + ":" + brick(i); }
  std::string fstab() const { return root_ + "/fstab"; }

  // A disk for each server, then the servers, not yet probed.
  void start_servers();
  // Everything up to the web heads, without the story's step-by-step checks: servers probed,
  // `volume create webData replica 2` over one brick on each, auth.allow, started, and every
  // server running its brick and self-heal daemon.
  void start_web_data();

  // Web head `i`: its directory, and its line in the test's fstab (primary volfile server 0,
  // backup 1), with the mount daemon's pid and log the test's so it can clean up and read them.
  void add_web_head(int i);
  // `mount DIR` from the fstab line.
  void mount_from_fstab(WebHead& w);

  // `volume heal webData info` through server `via`.
  CliResult heal_info(int via);
  // Polls heal info through `via` until every brick has 0 entries pending; `last` gets the last
  // answer.
  bool heal_drained(int via, std::chrono::milliseconds deadline, std::string& last);

  int first_host_;
  TempDir dir_{"mortar-acceptance"};
  std::string root_;
  std::vector<std::unique_ptr<Disk>> disks_;
  std::unique_ptr<TestCluster> cluster_;
  std::vector<WebHead> heads_;
};

}  // namespace mortar::test
