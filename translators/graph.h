// A client graph: translators built from a VolumeGraph by type name, checked for unknown
// types, bad options, missing or shared subvolumes and cycles before anything is created.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proto/graph.pb.h"
#include "translators/options.h"
#include "translators/xlator.h"

namespace mortar::xl {

// What translators may need from the process that hosts the graph.
struct GraphContext {
  boost::asio::any_io_executor executor;
  std::string process_name = "mortar";
  std::string client_id;  // unique per process; names lock owners on the bricks
};

struct TranslatorType {
  std::string type;  // "protocol/client"
  std::string description;
  std::vector<OptionSpec> options;
  size_t min_children = 0;
  size_t max_children = SIZE_MAX;
  std::function<Checked<std::unique_ptr<Translator>>(
      const std::string& name, const Options& options, const GraphContext& context)>
      create;
};

class Registry {
 public:
  void add(TranslatorType type);
  const TranslatorType* find(const std::string& type) const;
  std::vector<std::string> types() const;
  // Every translator type mortar ships.
  static const Registry& builtin();

 private:
  std::map<std::string, TranslatorType> types_;
};

// Where each part of a graph came from in a volfile, so errors can name the line.
struct SourceLines {
  std::map<std::string, int> volume;                          // translator -> "volume" line
  std::map<std::pair<std::string, std::string>, int> option;  // (translator, key)
  std::map<std::string, int> subvolumes;                      // translator -> "subvolumes" line
};

// Checks a graph against the registry: types, options, subvolumes, one parent per translator,
// no cycles, every translator reachable from the top (the last one).
Checked<void> validate_graph(const pb::VolumeGraph& graph, const Registry& registry,
                             const SourceLines* lines = nullptr);

class Graph {
 public:
  static Checked<std::unique_ptr<Graph>> build(const pb::VolumeGraph& spec,
                                               const Registry& registry,
                                               const GraphContext& context,
                                               const SourceLines* lines = nullptr);
  ~Graph();

  Translator* top() const { return top_; }
  Translator* find(const std::string& name) const;
  const pb::VolumeGraph& spec() const { return spec_; }
  // Starts every translator, children first. Call once.
  void start();
  // Stops every translator, parents first. Safe to call twice.
  void stop();

 private:
  Graph() = default;
  pb::VolumeGraph spec_;
  std::vector<std::unique_ptr<Translator>> translators_;  // children before parents
  Translator* top_ = nullptr;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace mortar::xl
