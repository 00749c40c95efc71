// Translator options: each translator type declares its options (name, kind, default, range,
// one-line description); a graph's string options are checked against that schema once, and
// translators read typed values from then on. The same schema backs `volume set` validation.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mortar::xl {

// A result whose error is a message for a person.
template <class T>
using Checked = std::expected<T, std::string>;
inline std::unexpected<std::string> invalid(std::string message) {
  return std::unexpected<std::string>(std::move(message));
}

enum class OptionKind {
  kString,
  kInt,       // decimal integer within [min, max]
  kBool,      // on/off, yes/no, true/false, enable/disable, 1/0
  kDuration,  // seconds ("42", "2.5"), or with a unit: "500ms", "3s", "2m"
  kSize,      // bytes ("4096"), or with a unit: "128KB", "1MB", "2GB" (powers of 1024)
  kEnum,      // one of `values`
};

struct OptionSpec {
  std::string name;
  OptionKind kind = OptionKind::kString;
  std::string default_value;  // empty with required = true: must be given
  std::string description;
  bool required = false;
  int64_t min = INT64_MIN;  // kInt, kSize (bytes), kDuration (milliseconds)
  int64_t max = INT64_MAX;
  std::vector<std::string> values;  // kEnum
};

Checked<int64_t> parse_int(std::string_view text);
Checked<bool> parse_bool(std::string_view text);
Checked<std::chrono::milliseconds> parse_duration(std::string_view text);
Checked<uint64_t> parse_size(std::string_view text);
// Checks one value against its spec; the message names the option.
Checked<void> check_option(const OptionSpec& spec, std::string_view value);

// Option values of one translator, checked against its schema: unknown names, missing
// required options and bad values are refused; absent options take their defaults.
class Options {
 public:
  static Checked<Options> validate(const std::vector<OptionSpec>& schema,
                                   const std::map<std::string, std::string>& given);

  const std::string& str(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  bool flag(const std::string& name) const;
  std::chrono::milliseconds duration(const std::string& name) const;
  uint64_t size(const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace mortar::xl
