// mortar-fuse: mounts a mortar volume with FUSE. Also the mount helper: installed (or linked)
// as mount.mortar, it takes mount(8)'s arguments, so `mount -t mortar ...` and fstab lines of
// type mortar work.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <future>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/daemon.h"
#include "common/gfid.h"
#include "common/log.h"
#include "fuse-client/bridge.h"
#include "fuse-client/mount_options.h"
#include "fuse-client/session_loop.h"
#include "translators/graph.h"
#include "translators/volfile.h"

using namespace mortar;
using namespace std::chrono_literals;

namespace {

struct Invocation {
  std::string spec;  // what to mount: a volfile path, or HOST:/VOL
  std::string mountpoint;
  fuse::MountOptions options;
  bool foreground = false;
  double wait_up_seconds = 10;
  unsigned threads = 1;
};

int fail_usage(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  return 1;
}

// mount(8) calls: mount.mortar SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]
std::optional<Invocation> parse_helper_args(int argc, char** argv, std::string& error,
                                            std::vector<std::string>& warnings) {
  Invocation inv;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" || a == "-t" || a == "-N") {
      if (i + 1 >= argc) {
        error = a + " needs a value";
        return std::nullopt;
      }
      std::string value = argv[++i];
      if (a == "-o") {
        if (auto r = fuse::apply_mount_options(value, inv.options, warnings); !r) {
          error = r.error();
          return std::nullopt;
        }
      }
    } else if (a.starts_with("-o")) {
      if (auto r = fuse::apply_mount_options(a.substr(2), inv.options, warnings); !r) {
        error = r.error();
        return std::nullopt;
      }
    } else if (a == "-s" || a == "-f" || a == "-n" || a == "-v" || a == "-i") {
      // sloppy, fake, no-mtab, verbose, internal-only: nothing for us to do
    } else if (a.starts_with("-")) {
      warnings.push_back("unknown argument '" + a + "' ignored");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    error = "usage: mount.mortar HOST:/VOLUME|none DIR [-o options]";
    return std::nullopt;
  }
  inv.spec = positional[0];
  inv.mountpoint = positional[1];
  return inv;
}

// Loads the graph the mount serves: from volfile=FILE. Fetching it from mortar-mgmtd by
// HOST:/VOLUME arrives with the management daemon.
xl::Checked<xl::ParsedVolfile> load_graph(const Invocation& inv) {
  if (inv.options.volfile.empty()) {
    if (inv.spec.find(":/") != std::string::npos) {
      return xl::invalid("cannot mount " + inv.spec +
                         ": fetching a volume from mortar-mgmtd is not supported yet; give "
                         "-o volfile=FILE");
    }
    return xl::invalid("no volfile given (-o volfile=FILE)");
  }
  std::ifstream in(inv.options.volfile);
  if (!in) return xl::invalid("cannot read volfile " + inv.options.volfile);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = xl::load_volfile(text.str(), xl::Registry::builtin());
  if (!parsed) return xl::invalid(inv.options.volfile + ": " + parsed.error());
  return parsed;
}

int run(const std::string& program, Invocation inv) {
  struct stat st;
  if (::stat(inv.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail_usage(program, "mount point " + inv.mountpoint + " is not a directory");
  }
  auto graph_spec = load_graph(inv);
  if (!graph_spec) return fail_usage(program, graph_spec.error());

  // The kernel side of the mount: allow every local user (web servers run as www-data) and
  // let the kernel check permissions against the attributes we return.
  std::string fsname;
  for (char c : inv.spec) {
    if (c == ',' || c == '\\') fsname.push_back('\\');
    fsname.push_back(c);
  }
  std::string mount_opts = "allow_other,default_permissions,subtype=mortar,fsname=" + fsname;
  if (inv.options.read_only) mount_opts += ",ro";
  for (const auto& k : inv.options.kernel_options) mount_opts += "," + k;
  std::vector<std::string> fuse_argv = {program, "-o", mount_opts};
  std::vector<char*> fuse_argp;
  for (auto& a : fuse_argv) fuse_argp.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fuse_argp.size()), fuse_argp.data());

  boost::asio::io_context io;
  xl::GraphContext context{io.get_executor(), "mortar-fuse", Gfid::random().str()};
  auto graph =
      xl::Graph::build(graph_spec->graph, xl::Registry::builtin(), context, &graph_spec->lines);
  if (!graph) return fail_usage(program, graph.error());

  auto bridge = std::make_unique<fuse::FuseBridge>((*graph)->top(), io.get_executor(), inv.options);
  fuse_session* se = fuse_session_new(&args, &fuse::FuseBridge::operations(),
                                      sizeof(fuse_lowlevel_ops), bridge.get());
  if (!se) return fail_usage(program, "cannot create the FUSE session");
  if (fuse_session_mount(se, inv.mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return fail_usage(program, "cannot mount on " + inv.mountpoint +
                                   " (is /dev/fuse available, and are you root?)");
  }

  Daemon daemon;
  if (!inv.foreground) {
    // A child that dies before it serves would leave a dead mount point: take it down.
    std::string mountpoint = inv.mountpoint;
    if (auto r = daemon.detach([mountpoint] { ::umount2(mountpoint.c_str(), MNT_DETACH); }); !r) {
      fuse_session_unmount(se);
      return fail_usage(program, "cannot detach: " + r.error().message());
    }
  }
  if (inv.options.debug && inv.options.log_level != "trace") inv.options.log_level = "debug";
  log::init("fuse", inv.options.log_file, inv.options.log_level);
  MLOG_INFO("mortar-fuse {} on {}: final graph:\n{}", inv.spec, inv.mountpoint,
            xl::render_volfile((*graph)->spec()));

  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < std::max(1u, inv.threads); ++i)
    threads.emplace_back([&io] { io.run(); });
  (*graph)->start();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(inv.wait_up_seconds * 1000));
  while (!(*graph)->top()->is_up() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (!(*graph)->top()->is_up()) {
    MLOG_WARN("no brick is reachable yet; operations fail with ENOTCONN until one is");
    if (inv.foreground) {
      std::fprintf(stderr, "%s: warning: no brick of %s is reachable yet\n", program.c_str(),
                   inv.spec.c_str());
    }
  }
  if (!inv.options.pid_file.empty()) {
    if (auto r = write_pid_file(inv.options.pid_file); !r) {
      MLOG_WARN("cannot write pid file {}: {}", inv.options.pid_file, r.error().message());
    }
  }
  daemon.report_ready();

  // The session is served on the I/O threads; the main thread waits for it to end, by unmount
  // or by a signal.
  std::promise<void> ended;
  std::atomic<unsigned> readers{static_cast<unsigned>(threads.size())};
  for (size_t i = 0; i < threads.size(); ++i) {
    boost::asio::co_spawn(io, fuse::serve_session(se), [&](std::exception_ptr) {
      if (--readers == 0) ended.set_value();
    });
  }
  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  signals.async_wait([se](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    // A lazy unmount: the kernel ends the session once no file on the mount is open any
    // more, and the readers then see it end.
    MLOG_INFO("signal {}: unmounting", sig);
    fuse_session_unmount(se);
  });
  ended.get_future().wait();
  signals.cancel();
  MLOG_INFO("unmounting {}", inv.mountpoint);
  fuse_session_unmount(se);
  int rc = 0;
  // Let requests that are still running finish before their graph goes away.
  for (int i = 0; i < 500 && bridge->in_flight() > 0; ++i) std::this_thread::sleep_for(10ms);
  (*graph)->stop();
  work.reset();
  io.stop();
  for (auto& t : threads) t.join();
  fuse_session_destroy(se);
  if (!inv.options.pid_file.empty()) ::unlink(inv.options.pid_file.c_str());
  MLOG_INFO("mortar-fuse stopped");
  return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string program = std::filesystem::path(argv[0]).filename();
  std::vector<std::string> warnings;
  Invocation inv;

  if (program.starts_with("mount.")) {
    std::string error;
    auto parsed = parse_helper_args(argc, argv, error, warnings);
    if (!parsed) return fail_usage(program, error);
    inv = std::move(*parsed);
    if (inv.spec == "none" && !inv.options.volfile.empty()) inv.spec = inv.options.volfile;
  } else {
    CLI::App app{"mortar-fuse: mounts a mortar volume"};
    std::vector<std::string> opts;
    app.add_option("--volfile", inv.options.volfile, "The volume's graph, as a volfile");
    app.add_option("mountpoint", inv.mountpoint, "Where to mount")->required();
    app.add_option("-o", opts, "Mount options, comma-separated (see docs/mount.md)");
    app.add_flag("--foreground,-f", inv.foreground, "Stay in the foreground (default: detach)");
    app.add_option("--log-file", inv.options.log_file, "Log to this file (default: stderr)");
    app.add_option("--log-level", inv.options.log_level, "trace, debug, info, warn or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_flag("--debug", inv.options.debug, "Log every operation (implies --log-level debug)");
    app.add_option("--wait-up", inv.wait_up_seconds,
                   "Seconds to wait for the bricks before serving (default 10)");
    app.add_option("--threads", inv.threads, "Threads running the graph and reading /dev/fuse (default 1: on small machines every hand-off between threads costs more than it saves)");
    CLI11_PARSE(app, argc, argv);
    std::string volfile = inv.options.volfile;
    std::string log_file = inv.options.log_file;
    for (const auto& o : opts) {
      if (auto r = fuse::apply_mount_options(o, inv.options, warnings); !r) {
        return fail_usage(program, r.error());
      }
    }
    if (!volfile.empty()) inv.options.volfile = volfile;
    if (!log_file.empty()) inv.options.log_file = log_file;
    inv.spec = inv.options.volfile;
  }
  for (const auto& w : warnings)
    std::fprintf(stderr, "%s: warning: %s\n", program.c_str(), w.c_str());
  return run(program, std::move(inv));
}
