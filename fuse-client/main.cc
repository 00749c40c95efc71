// mortar-fuse: mounts a mortar volume with FUSE. Also the mount helper: installed (or linked)
// as mount.mortar, it takes mount(8)'s arguments, so `mount -t mortar ...` and fstab lines of
// type mortar work.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "common/daemon.h"
#include "common/gfid.h"
#include "common/log.h"
#include "fuse-client/bridge.h"
#include "fuse-client/graph_switcher.h"
#include "fuse-client/mount_options.h"
#include "fuse-client/session_loop.h"
#include "fuse-client/volume_fetch.h"
#include "translators/graph.h"
#include "translators/volfile.h"

using namespace mortar;
using namespace std::chrono_literals;

namespace {

struct Invocation {
  std::string spec;  // what to mount: a volfile path, or HOST:/VOL (fsname, messages)
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

// The graph a mount starts with, from a volfile or from mortar-mgmtd.
struct InitialGraph {
  pb::VolumeGraph graph;
  xl::SourceLines lines;  // volfile only
  std::string label;      // "version 3 of webData", for the log
  // From mortar-mgmtd:
  bool from_mgmtd = false;
  std::vector<fuse::VolfileServer> servers;  // starting with the one that answered
  uint64_t version = 0;
  std::map<std::string, std::string> mount_options;
  std::vector<std::string> tried;  // servers that did not answer, and why
};

xl::Checked<InitialGraph> load_volfile(const Invocation& inv) {
  std::ifstream in(inv.options.volfile);
  if (!in) return xl::invalid("cannot read volfile " + inv.options.volfile);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = xl::load_volfile(text.str(), xl::Registry::builtin());
  if (!parsed) return xl::invalid(inv.options.volfile + ": " + parsed.error());
  InitialGraph g;
  g.graph = std::move(parsed->graph);
  g.lines = std::move(parsed->lines);
  g.label = "from " + inv.options.volfile;
  return g;
}

// Asks the volfile servers (HOST of HOST:/VOL first, then the backups) for the volume's graph.
// This happens before anything is mounted, so a volume that cannot be served leaves no mount.
xl::Checked<InitialGraph> fetch_graph(const Invocation& inv) {
  std::vector<fuse::VolfileServer> servers;
  for (const auto& text : inv.options.volfile_servers) {
    auto s = fuse::parse_volfile_server(text);
    if (!s) return xl::invalid(s.error());
    servers.push_back(std::move(*s));
  }
  fuse::FetchPolicy policy;
  policy.rounds = inv.options.volfile_max_fetch_attempts;
  InitialGraph g;
  auto fetched = fuse::fetch_volume(servers, inv.options.volume, policy, g.tried);
  if (!fetched) return xl::invalid("cannot mount " + inv.spec + ": " + fetched.error());
  g.from_mgmtd = true;
  g.version = fetched->spec.version();
  g.label = "version " + std::to_string(g.version) + " of " + inv.options.volume;
  g.graph = std::move(*fetched->spec.mutable_graph());
  g.mount_options.insert(fetched->spec.mount_options().begin(),
                         fetched->spec.mount_options().end());
  // The management connection stays with the server that answered, then goes round the list.
  for (size_t i = 0; i < servers.size(); ++i) {
    g.servers.push_back(servers[(fetched->server + i) % servers.size()]);
  }
  return g;
}

xl::Checked<InitialGraph> load_graph(const Invocation& inv) {
  if (!inv.options.volfile.empty()) return load_volfile(inv);
  if (!inv.options.volume.empty()) return fetch_graph(inv);
  return xl::invalid(
      "nothing to mount: give HOST:/VOLUME, --volfile-server and --volfile-id, or "
      "-o volfile=FILE");
}

int run(const std::string& program, Invocation inv) {
  struct stat st;
  if (::stat(inv.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail_usage(program, "mount point " + inv.mountpoint + " is not a directory");
  }
  auto initial = load_graph(inv);
  if (!initial) return fail_usage(program, initial.error());
  // The volume's mount options are defaults; what the user said with -o wins.
  const fuse::MountOptions user_options = inv.options;
  if (initial->from_mgmtd) {
    if (auto r = fuse::apply_volume_mount_options(initial->mount_options, inv.options); !r) {
      return fail_usage(program, "cannot mount " + inv.spec + ": " + r.error());
    }
  }

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
  // libfuse copies the arguments into memory of its own when it edits them; that copy is ours
  // to free, after the session that may still read it.
  struct ArgsGuard {
    fuse_args* a;
    ~ArgsGuard() { fuse_opt_free_args(a); }
  } args_guard{&args};

  boost::asio::io_context io;
  xl::GraphContext context{io.get_executor(), "mortar-fuse", Gfid::random().str()};
  auto built = xl::Graph::build(initial->graph, xl::Registry::builtin(), context,
                                initial->from_mgmtd ? nullptr : &initial->lines);
  if (!built) {
    if (initial->from_mgmtd) {
      return fail_usage(
          program, "cannot mount " + inv.spec + ": graph " + initial->label + ": " + built.error());
    }
    return fail_usage(program, built.error());
  }
  fuse::GraphKeeper keeper(io.get_executor());
  fuse::GraphPtr graph = keeper.adopt(std::move(*built), initial->label);

  auto bridge = std::make_unique<fuse::FuseBridge>(graph, io.get_executor(), inv.options);
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
  if (initial->from_mgmtd) {
    for (const auto& t : initial->tried) MLOG_INFO("volfile server {}", t);
    MLOG_INFO("fetched graph {} from {}", initial->label, initial->servers.front().str());
  }
  MLOG_INFO("mortar-fuse {} on {}: final graph {}:\n{}", inv.spec, inv.mountpoint, initial->label,
            xl::render_volfile(graph->spec()));

  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < std::max(1u, inv.threads); ++i)
    threads.emplace_back([&io] { io.run(); });
  keeper.set_executor_running(true);
  graph->start();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(inv.wait_up_seconds * 1000));
  while (!graph->top()->is_up() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (!graph->top()->is_up()) {
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
  // The bridge, open files and requests own graphs from here on.
  graph.reset();
  std::shared_ptr<fuse::GraphSwitcher> switcher;
  if (initial->from_mgmtd) {
    fuse::GraphSwitcher::Config config;
    config.servers = initial->servers;
    config.volume = inv.options.volume;
    config.version = initial->version;
    config.user_options = user_options;
    config.mounted_writeback_cache = inv.options.writeback_cache;
    config.context = context;
    switcher = std::make_shared<fuse::GraphSwitcher>(*bridge, keeper, io.get_executor(),
                                                     std::move(config));
    switcher->start();
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
  if (switcher) switcher->stop();
  MLOG_INFO("unmounting {}", inv.mountpoint);
  fuse_session_unmount(se);
  int rc = 0;
  // Let requests that are still running finish before their graph goes away.
  for (int i = 0; i < 500 && bridge->in_flight() > 0; ++i) std::this_thread::sleep_for(10ms);
  // Graphs are freed on the I/O threads once their last user lets go: wait for that while the
  // threads still run.
  bridge->switch_graph(nullptr);
  if (!keeper.wait_all_freed(5s)) {
    MLOG_WARN("{} graph(s) still in use at exit", keeper.live());
  }
  keeper.set_executor_running(false);
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
    if (!inv.options.volfile.empty()) {
      if (inv.spec == "none") inv.spec = inv.options.volfile;
    } else if (inv.spec != "none") {
      auto source = fuse::parse_mount_source(inv.spec);
      if (!source) return fail_usage(program, source.error());
      inv.options.volume = source->volume;
      // HOST of HOST:/VOL first, then backup-volfile-servers in their order.
      inv.options.volfile_servers.insert(inv.options.volfile_servers.begin(), source->server.str());
    }
  } else {
    CLI::App app{"mortar-fuse: mounts a mortar volume"};
    std::vector<std::string> opts;
    std::vector<std::string> volfile_servers;
    std::string volfile_id;
    app.add_option("--volfile", inv.options.volfile, "The volume's graph, as a volfile");
    app.add_option("-s,--volfile-server", volfile_servers,
                   "mortar-mgmtd to fetch the graph from, HOST[:PORT] (repeat for backups)");
    app.add_option("--volfile-id", volfile_id, "The volume to mount (with --volfile-server)");
    app.add_option("mountpoint", inv.mountpoint, "Where to mount")->required();
    app.add_option("-o", opts, "Mount options, comma-separated (see docs/mount.md)");
    app.add_flag("--foreground,-f", inv.foreground, "Stay in the foreground (default: detach)");
    app.add_option("--log-file", inv.options.log_file, "Log to this file (default: stderr)");
    app.add_option("--log-level", inv.options.log_level, "trace, debug, info, warn or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_flag("--debug", inv.options.debug, "Log every operation (implies --log-level debug)");
    app.add_flag("--acl", inv.options.acl, "Store and enforce POSIX ACLs");
    app.add_flag("--selinux", inv.options.selinux,
                 "Pass security.* attributes (SELinux labels) to the bricks");
    app.add_flag("--capability", inv.options.capability,
                 "Pass file capabilities (security.capability) to the bricks");
    app.add_option("--wait-up", inv.wait_up_seconds,
                   "Seconds to wait for the bricks before serving (default 10)");
    app.add_option("--threads", inv.threads,
                   "Threads running the graph and reading /dev/fuse (default 1: on small machines "
                   "every hand-off between threads costs more than it saves)");
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
    if (inv.options.volfile.empty() && (!volfile_id.empty() || !volfile_servers.empty())) {
      while (volfile_id.starts_with('/')) volfile_id.erase(0, 1);  // GlusterFS writes "/VOL"
      if (volfile_id.empty()) return fail_usage(program, "--volfile-server needs --volfile-id");
      if (volfile_servers.empty())
        return fail_usage(program, "--volfile-id needs --volfile-server");
      inv.options.volume = volfile_id;
      // --volfile-server first, then backup-volfile-servers from -o.
      inv.options.volfile_servers.insert(inv.options.volfile_servers.begin(),
                                         volfile_servers.begin(), volfile_servers.end());
      inv.spec = inv.options.volfile_servers.front() + ":/" + volfile_id;
    }
  }
  for (const auto& w : warnings)
    std::fprintf(stderr, "%s: warning: %s\n", program.c_str(), w.c_str());
  return run(program, std::move(inv));
}
