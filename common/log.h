// Logging for every mortar process. Lines go to one file (or stderr) with a timestamp, the
// level letter and the thread; tests fail on any "E" line, so ERROR is for faults a person
// must look at, not for a client's bad request.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace mortar::log {

// Configures the default logger. An empty path logs to stderr. Level: trace, debug, info,
// warn, error. Safe to call once at process start, before other threads exist.
void init(const std::string& process, const std::string& path, const std::string& level);

}  // namespace mortar::log

#define MLOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define MLOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define MLOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define MLOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define MLOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
