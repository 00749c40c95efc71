// The volfile: a graph as text, in the shape GlusterFS users know.
//
//   volume webData-client-0
//       type protocol/client
//       option remote-host 127.0.0.2
//       option remote-port 49152
//       option remote-subvolume /srv/b0
//   end-volume
//
// A stanza's children are named on its `subvolumes` line; the last stanza is the top of the
// graph. '#' starts a comment.
#pragma once

#include <string>
#include <string_view>

#include "proto/graph.pb.h"
#include "translators/graph.h"

namespace mortar::xl {

std::string render_volfile(const pb::VolumeGraph& graph);

struct ParsedVolfile {
  pb::VolumeGraph graph;
  SourceLines lines;
};
// Syntax only; errors name the line. validate_graph() checks the meaning.
Checked<ParsedVolfile> parse_volfile(std::string_view text);

// parse_volfile + validate_graph against `registry`.
Checked<ParsedVolfile> load_volfile(std::string_view text, const Registry& registry);

}  // namespace mortar::xl
