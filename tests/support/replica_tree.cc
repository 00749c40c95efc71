#include "tests/support/replica_tree.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/brick.h"
#include "translators/graph.h"
#include "translators/volfile.h"

namespace mortar::test {

namespace fs = std::filesystem;

std::ostream& operator<<(std::ostream& o, const Node& n) {
  return o << n.type << " mode " << std::oct << n.mode << std::dec << " " << n.uid << ":" << n.gid
           << " size " << n.size << " xattrs " << n.xattrs.size();
}

namespace {

std::map<std::string, std::string> user_xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  char names[4096];
  ssize_t len = ::llistxattr(path.c_str(), names, sizeof names);
  for (ssize_t i = 0; i > -1 && i < len; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    std::string name(names + i);
    if (name.rfind("user.", 0) != 0) continue;
    char value[4096];
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
    out[name] = std::string(value, v > 0 ? static_cast<size_t>(v) : 0);
  }
  return out;
}

}  // namespace

std::map<std::string, Node> brick_tree(const std::string& root, bool data) {
  std::map<std::string, Node> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().string().substr(root.size());
    if (rel == "/.mortar") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    Node n;
    n.mode = st.st_mode & 07777;
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    if (S_ISDIR(st.st_mode)) {
      n.type = 'd';
    } else if (S_ISLNK(st.st_mode)) {
      n.type = 'l';
      n.content = fs::read_symlink(it->path()).string();
      n.mode = 0;  // symlink permissions mean nothing on Linux
    } else if (S_ISREG(st.st_mode)) {
      n.type = 'f';
      if (data) {
        n.size = static_cast<uint64_t>(st.st_size);
        std::ifstream in(it->path(), std::ios::binary);
        n.content.assign(std::istreambuf_iterator<char>(in), {});
      }
    }
    if (n.type != 'l') n.xattrs = user_xattrs(it->path());
    out[rel] = std::move(n);
  }
  return out;
}

std::string replicate_volfile(const std::vector<const BrickDaemon*>& bricks,
                              const std::map<std::string, std::string>& options,
                              const std::string& ping_timeout) {
  std::ostringstream v;
  for (size_t i = 0; i < bricks.size(); ++i) {
    v << "volume vol-client-" << i << "\n  type protocol/client\n"
      << "  option remote-host " << bricks[i]->address() << "\n"
      << "  option remote-port " << bricks[i]->port() << "\n"
      << "  option remote-subvolume b0\n  option remote-volume vol\n"
      << "  option ping-timeout " << ping_timeout << "\nend-volume\n";
  }
  v << "volume vol-replicate-0\n  type cluster/replicate\n";
  for (const auto& [k, val] : options) v << "  option " << k << " " << val << "\n";
  v << "  subvolumes";
  for (size_t i = 0; i < bricks.size(); ++i) v << " vol-client-" << i;
  v << "\nend-volume\n";
  return v.str();
}

std::unique_ptr<xl::Graph> start_graph(const std::string& volfile,
                                       boost::asio::any_io_executor executor,
                                       const std::string& client_id) {
  auto parsed = xl::load_volfile(volfile, xl::Registry::builtin());
  EXPECT_TRUE(parsed) << parsed.error();
  if (!parsed) return nullptr;
  xl::GraphContext ctx{std::move(executor), "test", client_id};
  auto g = xl::Graph::build(parsed->graph, xl::Registry::builtin(), ctx);
  EXPECT_TRUE(g) << g.error();
  if (!g) return nullptr;
  (*g)->start();
  return std::move(*g);
}

std::string pattern(size_t size, int seed) {
  std::string s(size, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

}  // namespace mortar::test
