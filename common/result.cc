#include "common/result.h"

#include <cstring>

namespace mortar {

std::string Errno::message() const { return std::strerror(value); }

std::string Errno::name() const {
  const char* n = strerrorname_np(value);
  return n ? n : "E" + std::to_string(value);
}

}  // namespace mortar
