// What a brick's directory holds, file by file, for tests that compare replicas on disk.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

namespace mortar::xl {
class Graph;
}

namespace mortar::test {

class BrickDaemon;

struct Node {
  char type = '?';  // 'f', 'd', 'l', or '?' for anything else
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  std::string content;  // file bytes (when compared) or symlink target
  std::map<std::string, std::string> xattrs;  // user.* only
  bool operator==(const Node&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Node& n);

// Every entry below a brick root by path ("/dir/file"), ".mortar" excluded. `data`: read file
// contents and sizes (not for an arbiter, which keeps none).
std::map<std::string, Node> brick_tree(const std::string& root, bool data = true);

// A volfile of one cluster/replicate ("vol-replicate-0") over protocol clients of `bricks`
// ("vol-client-N", each serving "b0" of "vol"), with `options` on the replicate translator.
std::string replicate_volfile(const std::vector<const BrickDaemon*>& bricks,
                              const std::map<std::string, std::string>& options = {},
                              const std::string& ping_timeout = "2");

// The started graph of a volfile; null (with a test failure) if it does not build.
std::unique_ptr<xl::Graph> start_graph(const std::string& volfile,
                                       boost::asio::any_io_executor executor,
                                       const std::string& client_id);

// `size` bytes of lowercase letters from a seeded generator.
std::string pattern(size_t size, int seed);

}  // namespace mortar::test
