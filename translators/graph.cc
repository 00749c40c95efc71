#include "translators/graph.h"

#include <set>

namespace mortar::xl {

void register_protocol_client(Registry& registry);
namespace afr {
void register_replicate(Registry& registry);
}
namespace dht {
void register_distribute(Registry& registry);
}

void Registry::add(TranslatorType type) {
  std::string name = type.type;
  types_[name] = std::move(type);
}

const TranslatorType* Registry::find(const std::string& type) const {
  auto it = types_.find(type);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::types() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : types_) out.push_back(name);
  return out;
}

const Registry& Registry::builtin() {
  static const Registry registry = [] {
    Registry r;
    register_protocol_client(r);
    afr::register_replicate(r);
    dht::register_distribute(r);
    return r;
  }();
  return registry;
}

namespace {

std::string at(const SourceLines* lines, const std::map<std::string, int>& which,
               const std::string& name) {
  if (!lines) return "";
  auto it = which.find(name);
  return it == which.end() ? "" : "line " + std::to_string(it->second) + ": ";
}

}  // namespace

Checked<void> validate_graph(const pb::VolumeGraph& graph, const Registry& registry,
                             const SourceLines* lines) {
  if (graph.translators().empty()) return invalid("the graph has no translators");
  std::map<std::string, int> index;
  for (int i = 0; i < graph.translators_size(); ++i) {
    const auto& t = graph.translators(i);
    std::string where = lines ? at(lines, lines->volume, t.name()) : "";
    if (t.name().empty()) return invalid(where + "a translator has no name");
    if (!index.emplace(t.name(), i).second) {
      return invalid(where + "translator '" + t.name() + "' is defined twice");
    }
  }
  std::map<std::string, std::string> parent_of;
  for (const auto& t : graph.translators()) {
    std::string where = lines ? at(lines, lines->volume, t.name()) : "";
    const TranslatorType* type = registry.find(t.type());
    if (t.type().empty()) return invalid(where + "translator '" + t.name() + "' has no type");
    if (!type) {
      return invalid(where + "translator '" + t.name() + "': unknown type '" + t.type() + "'");
    }
    std::map<std::string, std::string> opts(t.options().begin(), t.options().end());
    if (auto o = Options::validate(type->options, opts); !o) {
      std::string line = where;
      if (lines) {
        for (const auto& [key, value] : opts) {
          if (o.error().find(key) != std::string::npos) {
            auto it = lines->option.find({t.name(), key});
            if (it != lines->option.end()) line = "line " + std::to_string(it->second) + ": ";
          }
        }
      }
      return invalid(line + "translator '" + t.name() + "': " + o.error());
    }
    std::string subs_where = lines ? at(lines, lines->subvolumes, t.name()) : "";
    if (subs_where.empty()) subs_where = where;
    size_t n = static_cast<size_t>(t.subvolumes_size());
    if (n < type->min_children || n > type->max_children) {
      std::string want = type->min_children == type->max_children
                             ? std::to_string(type->min_children)
                             : "at least " + std::to_string(type->min_children);
      return invalid(subs_where + "translator '" + t.name() + "' (" + t.type() + ") needs " + want +
                     " subvolume(s), has " + std::to_string(n));
    }
    for (const auto& sub : t.subvolumes()) {
      if (!index.count(sub)) {
        return invalid(subs_where + "translator '" + t.name() + "': subvolume '" + sub +
                       "' is not defined");
      }
      if (sub == t.name()) {
        return invalid(subs_where + "translator '" + t.name() + "' is its own subvolume");
      }
      auto [it, fresh] = parent_of.emplace(sub, t.name());
      if (!fresh) {
        return invalid(subs_where + "subvolume '" + sub + "' is used by both '" + it->second +
                       "' and '" + t.name() + "'");
      }
    }
  }
  // With one parent each, a cycle is a chain of parents that comes back to its start.
  for (const auto& t : graph.translators()) {
    std::set<std::string> seen{t.name()};
    std::string cur = t.name();
    while (parent_of.count(cur)) {
      cur = parent_of[cur];
      if (!seen.insert(cur).second) {
        return invalid(at(lines, lines ? lines->volume : std::map<std::string, int>{}, cur) +
                       "translators form a cycle through '" + cur + "'");
      }
    }
  }
  const std::string& top = graph.translators(graph.translators_size() - 1).name();
  if (parent_of.count(top)) {
    return invalid(at(lines, lines ? lines->volume : std::map<std::string, int>{}, top) +
                   "the last translator ('" + top +
                   "') is the top of the graph and cannot be "
                   "a subvolume");
  }
  for (const auto& t : graph.translators()) {
    if (t.name() != top && !parent_of.count(t.name())) {
      return invalid(at(lines, lines ? lines->volume : std::map<std::string, int>{}, t.name()) +
                     "translator '" + t.name() + "' is not reachable from the top ('" + top + "')");
    }
  }
  return {};
}

Checked<std::unique_ptr<Graph>> Graph::build(const pb::VolumeGraph& spec, const Registry& registry,
                                             const GraphContext& context,
                                             const SourceLines* lines) {
  if (auto v = validate_graph(spec, registry, lines); !v) return invalid(v.error());
  std::unique_ptr<Graph> g(new Graph());
  g->spec_ = spec;
  std::map<std::string, Translator*> by_name;
  // Create children before parents: repeat over the list until everything is built.
  std::set<std::string> built;
  while (built.size() < static_cast<size_t>(spec.translators_size())) {
    for (const auto& t : spec.translators()) {
      if (built.count(t.name())) continue;
      bool ready = std::all_of(t.subvolumes().begin(), t.subvolumes().end(),
                               [&](const std::string& s) { return built.count(s) > 0; });
      if (!ready) continue;
      const TranslatorType* type = registry.find(t.type());
      std::map<std::string, std::string> opts(t.options().begin(), t.options().end());
      auto options = Options::validate(type->options, opts);
      auto xl = type->create(t.name(), *options, context);
      if (!xl) return invalid("translator '" + t.name() + "': " + xl.error());
      for (const auto& sub : t.subvolumes()) (*xl)->add_child(by_name.at(sub));
      by_name[t.name()] = xl->get();
      g->translators_.push_back(std::move(*xl));
      built.insert(t.name());
    }
  }
  g->top_ = by_name.at(spec.translators(spec.translators_size() - 1).name());
  return g;
}

Graph::~Graph() {
  stop();
  // Parents before their children: a translator's destructor may wait for its background
  // work (replication's delayed post-ops and unlocks), which still calls its children.
  while (!translators_.empty()) translators_.pop_back();
}

Translator* Graph::find(const std::string& name) const {
  for (const auto& t : translators_) {
    if (t->name() == name) return t.get();
  }
  return nullptr;
}

void Graph::start() {
  if (started_) return;
  started_ = true;
  for (auto& t : translators_) t->start();
}

void Graph::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  for (auto it = translators_.rbegin(); it != translators_.rend(); ++it) (*it)->stop();
}

}  // namespace mortar::xl
