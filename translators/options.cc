#include "translators/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace mortar::xl {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Splits "2.5MB" into the number "2.5" and the unit "mb".
std::pair<std::string_view, std::string> split_unit(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  return {text.substr(0, i), lower(text.substr(i))};
}

Checked<double> parse_number(std::string_view text) {
  if (text.empty()) return invalid("a number is missing");
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0 || !std::isfinite(v)) {
    return invalid("'" + std::string(text) + "' is not a number");
  }
  return v;
}

}  // namespace

Checked<int64_t> parse_int(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return invalid("'" + std::string(text) + "' is not an integer");
  }
  return v;
}

Checked<bool> parse_bool(std::string_view text) {
  std::string t = lower(text);
  if (t == "on" || t == "yes" || t == "true" || t == "enable" || t == "1") return true;
  if (t == "off" || t == "no" || t == "false" || t == "disable" || t == "0") return false;
  return invalid("'" + std::string(text) + "' is not on/off");
}

Checked<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto [number, unit] = split_unit(text);
  auto v = parse_number(number);
  if (!v) return invalid("'" + std::string(text) + "' is not a duration");
  double ms;
  if (unit.empty() || unit == "s" || unit == "sec") {
    ms = *v * 1000;
  } else if (unit == "ms") {
    ms = *v;
  } else if (unit == "m" || unit == "min") {
    ms = *v * 60000;
  } else if (unit == "h") {
    ms = *v * 3600000;
  } else {
    return invalid("'" + std::string(text) + "' has an unknown time unit (use ms, s, m or h)");
  }
  if (ms > 1e15) return invalid("'" + std::string(text) + "' is too long");
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

Checked<uint64_t> parse_size(std::string_view text) {
  auto [number, unit] = split_unit(text);
  auto v = parse_number(number);
  if (!v) return invalid("'" + std::string(text) + "' is not a size");
  double mult;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    mult = 1024.0;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    mult = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tb" || unit == "tib") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return invalid("'" + std::string(text) + "' has an unknown size unit (use KB, MB, GB or TB)");
  }
  double bytes = *v * mult;
  if (bytes > 9.0e18) return invalid("'" + std::string(text) + "' is too large");
  return static_cast<uint64_t>(std::llround(bytes));
}

Checked<void> check_option(const OptionSpec& spec, std::string_view value) {
  auto fail_with = [&](const std::string& why) -> Checked<void> {
    return invalid("option " + spec.name + ": " + why);
  };
  auto in_range = [&](int64_t v, const std::string& shown) -> Checked<void> {
    if (v < spec.min || v > spec.max) {
      return fail_with(shown + " is out of range [" + std::to_string(spec.min) + ", " +
                       std::to_string(spec.max) + "]");
    }
    return {};
  };
  switch (spec.kind) {
    case OptionKind::kString:
      return {};
    case OptionKind::kInt: {
      auto v = parse_int(value);
      if (!v) return fail_with(v.error());
      return in_range(*v, std::string(value));
    }
    case OptionKind::kBool: {
      auto v = parse_bool(value);
      if (!v) return fail_with(v.error());
      return {};
    }
    case OptionKind::kDuration: {
      auto v = parse_duration(value);
      if (!v) return fail_with(v.error());
      return in_range(v->count(), std::string(value));
    }
    case OptionKind::kSize: {
      auto v = parse_size(value);
      if (!v) return fail_with(v.error());
      if (*v > static_cast<uint64_t>(INT64_MAX)) return fail_with("too large");
      return in_range(static_cast<int64_t>(*v), std::string(value));
    }
    case OptionKind::kEnum: {
      if (std::find(spec.values.begin(), spec.values.end(), value) != spec.values.end()) return {};
      std::string allowed;
      for (const auto& v : spec.values) allowed += (allowed.empty() ? "" : ", ") + v;
      return fail_with("'" + std::string(value) + "' is not one of " + allowed);
    }
  }
  return {};
}

Checked<Options> Options::validate(const std::vector<OptionSpec>& schema,
                                   const std::map<std::string, std::string>& given) {
  Options out;
  for (const auto& [name, value] : given) {
    auto spec = std::find_if(schema.begin(), schema.end(),
                             [&](const OptionSpec& s) { return s.name == name; });
    if (spec == schema.end()) return invalid("unknown option '" + name + "'");
    if (auto r = check_option(*spec, value); !r) return invalid(r.error());
  }
  for (const auto& spec : schema) {
    auto it = given.find(spec.name);
    if (it != given.end()) {
      out.values_[spec.name] = it->second;
    } else if (spec.required) {
      return invalid("option " + spec.name + " is required");
    } else {
      out.values_[spec.name] = spec.default_value;
    }
  }
  return out;
}

const std::string& Options::str(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("option not in schema: " + name);
  return it->second;
}

int64_t Options::integer(const std::string& name) const { return parse_int(str(name)).value_or(0); }
bool Options::flag(const std::string& name) const { return parse_bool(str(name)).value_or(false); }
std::chrono::milliseconds Options::duration(const std::string& name) const {
  return parse_duration(str(name)).value_or(std::chrono::milliseconds(0));
}
uint64_t Options::size(const std::string& name) const { return parse_size(str(name)).value_or(0); }

}  // namespace mortar::xl
