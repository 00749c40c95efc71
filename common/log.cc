#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace mortar::log {

void init(const std::string& process, const std::string& path, const std::string& level) {
  std::shared_ptr<spdlog::logger> logger;
  if (path.empty()) {
    logger = spdlog::stderr_logger_mt(process);
  } else {
    logger = spdlog::basic_logger_mt(process, path);
  }
  // Level letters: T D I W E C. "%s:%#" names the source line for debugging.
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%f] %L [%n:%t] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace mortar::log
