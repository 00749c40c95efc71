#include "translators/volfile.h"

#include <sstream>

namespace mortar::xl {

std::string render_volfile(const pb::VolumeGraph& graph) {
  std::ostringstream out;
  for (int i = 0; i < graph.translators_size(); ++i) {
    const auto& t = graph.translators(i);
    if (i > 0) out << "\n";
    out << "volume " << t.name() << "\n";
    out << "    type " << t.type() << "\n";
    std::map<std::string, std::string> sorted(t.options().begin(), t.options().end());
    for (const auto& [key, value] : sorted) out << "    option " << key << " " << value << "\n";
    if (t.subvolumes_size() > 0) {
      out << "    subvolumes";
      for (const auto& s : t.subvolumes()) out << " " << s;
      out << "\n";
    }
    out << "end-volume\n";
  }
  return out.str();
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::pair<std::string_view, std::string_view> first_word(std::string_view s) {
  s = trim(s);
  size_t end = s.find_first_of(" \t");
  if (end == std::string_view::npos) return {s, {}};
  return {s.substr(0, end), trim(s.substr(end))};
}

}  // namespace

Checked<ParsedVolfile> parse_volfile(std::string_view text) {
  ParsedVolfile out;
  pb::TranslatorSpec* cur = nullptr;
  int cur_line = 0;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) {
      if (end == text.size()) break;
      continue;
    }
    std::string where = "line " + std::to_string(line_no) + ": ";
    auto [keyword, rest] = first_word(line);
    if (keyword == "volume") {
      if (cur) {
        return invalid(where + "'volume' inside volume '" + cur->name() + "' (missing end-volume)");
      }
      auto [name, extra] = first_word(rest);
      if (name.empty()) return invalid(where + "'volume' needs a name");
      if (!extra.empty()) return invalid(where + "unexpected text after the volume name");
      cur = out.graph.add_translators();
      cur->set_name(std::string(name));
      cur_line = line_no;
      out.lines.volume[cur->name()] = line_no;
    } else if (keyword == "end-volume") {
      if (!cur) return invalid(where + "'end-volume' without 'volume'");
      if (!rest.empty()) return invalid(where + "unexpected text after end-volume");
      cur = nullptr;
    } else if (!cur) {
      return invalid(where + "'" + std::string(keyword) + "' outside a volume stanza");
    } else if (keyword == "type") {
      auto [type, extra] = first_word(rest);
      if (type.empty()) return invalid(where + "'type' needs a translator type");
      if (!extra.empty()) return invalid(where + "unexpected text after the type");
      if (!cur->type().empty())
        return invalid(where + "volume '" + cur->name() + "' has two types");
      cur->set_type(std::string(type));
    } else if (keyword == "option") {
      auto [key, value] = first_word(rest);
      if (key.empty() || value.empty()) return invalid(where + "'option' needs a key and a value");
      if (cur->options().count(std::string(key))) {
        return invalid(where + "option " + std::string(key) + " is given twice");
      }
      (*cur->mutable_options())[std::string(key)] = std::string(value);
      out.lines.option[{cur->name(), std::string(key)}] = line_no;
    } else if (keyword == "subvolumes") {
      if (cur->subvolumes_size() > 0) return invalid(where + "a second 'subvolumes' line");
      std::string_view names = rest;
      while (!names.empty()) {
        auto [name, more] = first_word(names);
        cur->add_subvolumes(std::string(name));
        names = more;
      }
      if (cur->subvolumes_size() == 0) return invalid(where + "'subvolumes' names none");
      out.lines.subvolumes[cur->name()] = line_no;
    } else {
      return invalid(where + "unknown keyword '" + std::string(keyword) + "'");
    }
    if (end == text.size()) break;
  }
  if (cur) {
    return invalid("line " + std::to_string(cur_line) + ": volume '" + cur->name() +
                   "' has no end-volume");
  }
  if (out.graph.translators().empty()) return invalid("the volfile defines no volume");
  return out;
}

Checked<ParsedVolfile> load_volfile(std::string_view text, const Registry& registry) {
  auto parsed = parse_volfile(text);
  if (!parsed) return parsed;
  if (auto v = validate_graph(parsed->graph, registry, &parsed->lines); !v) {
    return invalid(v.error());
  }
  return parsed;
}

}  // namespace mortar::xl
