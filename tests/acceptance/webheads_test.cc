// The deployment users build with GlusterFS, done with mortar: four storage servers, a 2 x 2
// volume webData, and two web heads that each mount it from an fstab line and serve it with
// nginx. HTTP load runs through both web heads: wrk for volume, and the test's own clients, which
// compare every body byte for byte with the file it should be. Meanwhile the site takes uploads.
// Under that load a whole storage server dies (mgmtd, brick and self-heal daemon, kill -9; it is
// the mounts' primary volfile server) and later returns. Not one request may fail or return other
// bytes than the file's; heal drains; each replica set's bricks end identical.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/acceptance/acceptance_support.h"
#include "tests/support/cluster.h"
#include "tests/support/process.h"
#include "tests/support/replica_tree.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// 127.0.0.144-147 are this test's servers; web heads A and B listen on .144 and .145. No other
// test uses them, so ctest -j can run this next to the rest.
constexpr int kFirstHost = 144;
constexpr int kWebHeads = 2;
constexpr auto kBeforeKill = 5s;
constexpr auto kDown = 8s;
constexpr auto kAfterReturn = 6s;
constexpr auto kHealDeadline = 30s;
// Longer than any stall a failover may cause, so a request that hangs is reported as failed
// instead of hanging the test.
constexpr auto kHttpTimeout = 15s;
constexpr int kVerifiersPerHead = 2;
constexpr int kUploadSlots = 400;

enum Phase { kBefore = 0, kServerDown = 1, kServerBack = 2 };
const char* const kPhaseNames[] = {"before the kill", "while the server was down",
                                   "after it returned"};
const char* const kUploadDirs[] = {"/uploads/before", "/uploads/down", "/uploads/back"};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Bytes of every value, for the binary files (images, video): a server or proxy that mangles
// what is not text shows here.
std::string random_bytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, size - i));
  }
  return s;
}

// Where program `name` is installed (PATH, then the sbin directories); "" if nowhere.
std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string p = dir + "/" + name;
    if (!dir.empty() && ::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// PIDs of the processes whose parent is `parent` (from /proc, read while they live).
std::vector<int> children_of(int parent) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string stat = read_all("/proc/" + name + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

// A file the site serves. Immutable once published to the clients.
struct SiteFile {
  std::string path;
  std::string data;
};

// One keep-alive HTTP/1.1 connection doing GETs, as a browser would; anything but a complete,
// well-formed response within kHttpTimeout is an error, never retried.
class HttpClient {
 public:
  struct Response {
    std::string error;  // empty when a response arrived
    int status = 0;
    std::string body;
  };

  HttpClient(std::string address, uint16_t port)
      : address_(std::move(address)), port_(port), chunk_(256 * 1024) {}
  ~HttpClient() { disconnect(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Response get(const std::string& path) {
    Response r;
    if (fd_ < 0 && !connect(r.error)) return r;
    std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: " + address_ + ":" + std::to_string(port_) + "\r\n\r\n";
    for (size_t sent = 0; sent < request.size();) {
      ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(r, std::string("send: ") + std::strerror(errno));
      sent += static_cast<size_t>(n);
    }
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > 64 * 1024) return fail(r, "no end of headers in 64 KiB");
      if (!fill(r.error)) return fail(r, r.error);
    }
    std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    if (std::sscanf(head.c_str(), "HTTP/1.%*d %d", &r.status) != 1) {
      return fail(r, "bad status line: " + head.substr(0, head.find('\r')));
    }
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    auto at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return fail(r, "no Content-Length in\n" + head);
    size_t length = std::stoull(lower.substr(at + 17));
    buf_.reserve(length);
    while (buf_.size() < length) {
      if (!fill(r.error)) {
        return fail(r, "body cut at " + std::to_string(buf_.size()) + " of " +
                           std::to_string(length) + " bytes: " + r.error);
      }
    }
    if (buf_.size() > length) return fail(r, "bytes after the body");
    r.body = std::move(buf_);
    buf_.clear();
    if (lower.find("\r\nconnection: close") != std::string::npos) disconnect();
    return r;
  }

 private:
  bool connect(std::string& error) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{std::chrono::duration_cast<std::chrono::seconds>(kHttpTimeout).count(), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port_);
    ::inet_pton(AF_INET, address_.c_str(), &sa.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return true;
    error = std::string("connect: ") + std::strerror(errno);
    disconnect();
    return false;
  }
  bool fill(std::string& error) {
    ssize_t n;
    do n = ::recv(fd_, chunk_.data(), chunk_.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      buf_.append(chunk_.data(), static_cast<size_t>(n));
      return true;
    }
    error = n == 0 ? "connection closed by the server"
            : (errno == EAGAIN || errno == EWOULDBLOCK)
                ? "no answer in " + std::to_string(kHttpTimeout.count()) + " s"
                : std::string("recv: ") + std::strerror(errno);
    return false;
  }
  Response& fail(Response& r, std::string why) {
    r.error = std::move(why);
    disconnect();
    return r;
  }
  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  std::string address_;
  uint16_t port_;
  int fd_ = -1;
  std::string buf_;
  std::vector<char> chunk_;
};

// nginx as a web head runs it, but in the foreground as the test's child, with its
// configuration, pid file, logs and temp files in the test's directory, listening on the web
// head's own address; the system's nginx (if a package install started one) is not involved.
class Nginx {
 public:
  ~Nginx() { stop(); }

  // Serves `root` on `address`:`port`; "" once it answers, else why not.
  std::string start(const std::string& program, const std::string& dir, const std::string& address,
                    uint16_t port, const std::string& root) {
    dir_ = dir;
    address_ = address;
    port_ = port;
    fs::create_directories(dir + "/tmp");
    std::ofstream(dir + "/nginx.conf")
        // The mount lives in the test's directory, which only root may enter.
        << "user root;\n"
        << "worker_processes 2;\n"
        << "pid " << dir << "/nginx.pid;\n"
        << "error_log " << error_log() << " warn;\n"
        << "events { worker_connections 256; }\n"
        << "http {\n"
        << "  default_type application/octet-stream;\n"
        << "  types { text/html html; text/css css; application/javascript js;\n"
        << "          image/jpeg jpg; video/mp4 mp4; }\n"
        << "  access_log " << dir << "/access.log;\n"
        << "  client_body_temp_path " << dir << "/tmp/body;\n"
        << "  proxy_temp_path " << dir << "/tmp/proxy;\n"
        << "  fastcgi_temp_path " << dir << "/tmp/fastcgi;\n"
        << "  uwsgi_temp_path " << dir << "/tmp/uwsgi;\n"
        << "  scgi_temp_path " << dir
        << "/tmp/scgi;\n"
        // As nginx advises for network file systems, where sendfile() out of this host's page
        // cache can send stale or cut bytes of a file that changed on another host: nginx
        // read()s each body through the mount instead.
        << "  sendfile off;\n"
        // Every request opens the file anew: what is served is what the volume holds now.
        << "  open_file_cache off;\n"
        // The clients keep their connections for the whole run: a close by nginx between two
        // requests would look like a failure to a client that never retries.
        << "  keepalive_timeout 300s;\n"
        << "  keepalive_requests 1000000;\n"
        << "  server {\n"
        << "    listen " << address << ":" << port << ";\n"
        << "    root " << root << ";\n"
        << "    location / { }\n"
        << "  }\n"
        << "}\n";
    master_ = Process::spawn({program, "-e", error_log(), "-p", dir + "/", "-c",
                              dir + "/nginx.conf", "-g", "daemon off;"},
                             dir + "/nginx.out");
    std::string why = "no answer";
    bool up = eventually(
        [&] {
          if (!master_.running()) return true;
          HttpClient probe(address, port);
          HttpClient::Response r = probe.get("/");
          why = r.error;
          return r.error.empty();
        },
        10s);
    if (!master_.running()) return "nginx exited:\n" + read_all(dir + "/nginx.out");
    if (!up) return "nginx does not answer on " + address + ":" + std::to_string(port) + ": " + why;
    return "";
  }

  // SIGTERM to the master, which stops its workers and exits; if it does not, the workers it
  // had and then itself are killed by PID.
  void stop() {
    if (!master_.running()) return;
    std::vector<int> workers = children_of(master_.pid());
    master_.signal(SIGTERM);
    if (master_.wait(10s) >= 0) return;
    for (int pid : workers) ::kill(pid, SIGKILL);
    master_.kill();
  }

  std::string error_log() const { return dir_ + "/error.log"; }
  // Lines of nginx's error log at level error or worse: a request it could not serve.
  std::vector<std::string> error_lines() const {
    std::vector<std::string> out;
    std::istringstream in(read_all(error_log()));
    for (std::string line; std::getline(in, line);) {
      for (const char* level : {"[error]", "[crit]", "[alert]", "[emerg]"}) {
        if (contains(line, level)) {
          out.push_back(line);
          break;
        }
      }
    }
    return out;
  }
  std::string url() const { return "http://" + address_ + ":" + std::to_string(port_); }
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  uint64_t access_log_lines() const { return count(read_all(dir_ + "/access.log"), "\n"); }

 private:
  std::string dir_, address_;
  uint16_t port_ = 0;
  Process master_;
};

// What wrk's script (below) reports when wrk ends.
struct WrkResult {
  bool reported = false;
  uint64_t requests = 0, responses = 0, bad = 0;
  uint64_t connect = 0, read = 0, write = 0, status = 0, timeout = 0;
  double max_latency_ms = 0, p99_latency_ms = 0;
  std::string first_bad, output;
};

// wrk's Lua hooks: one connection per thread, so each response answers the thread's last
// request, and its status and length can be checked against that file. wrk cannot compare
// bodies; the test's own clients do.
std::string wrk_script(const std::vector<SiteFile>& files) {
  std::ostringstream o;
  o << "paths = {";
  for (const SiteFile& f : files) o << "\"" << f.path << "\",";
  o << "}\nsizes = {";
  for (const SiteFile& f : files) o << f.data.size() << ",";
  o << R"(}
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 37)
  table.insert(threads, thread)
end
function init(args)
  n = offset % #paths
  current = 1
  responses = 0
  bad = 0
  first_bad = ""
end
function request()
  n = n % #paths + 1
  current = n
  return wrk.format("GET", paths[n])
end
function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 or #body ~= sizes[current] then
    bad = bad + 1
    if first_bad == "" then
      first_bad = paths[current] .. ": status " .. status .. ", " .. #body .. " bytes, want " ..
                  sizes[current]
    end
  end
end
function done(summary, latency, requests)
  local responses_all, bad_all, why = 0, 0, ""
  for _, t in ipairs(threads) do
    responses_all = responses_all + t:get("responses")
    bad_all = bad_all + t:get("bad")
    if why == "" then why = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format("mortar-wrk requests=%d responses=%d bad=%d connect=%d read=%d " ..
                         "write=%d status=%d timeout=%d max_us=%d p99_us=%d first_bad=%s\n",
                         summary.requests, responses_all, bad_all, e.connect, e.read, e.write,
                         e.status, e.timeout, latency.max, latency:percentile(99), why))
end
)";
  return o.str();
}

WrkResult parse_wrk(const std::string& output) {
  WrkResult w;
  w.output = output;
  std::smatch m;
  std::regex re(
      "mortar-wrk requests=(\\d+) responses=(\\d+) bad=(\\d+) connect=(\\d+) read=(\\d+) "
      "write=(\\d+) status=(\\d+) timeout=(\\d+) max_us=(\\d+) p99_us=(\\d+) first_bad=(.*)");
  if (!std::regex_search(output, m, re)) return w;
  w.reported = true;
  w.requests = std::stoull(m[1]);
  w.responses = std::stoull(m[2]);
  w.bad = std::stoull(m[3]);
  w.connect = std::stoull(m[4]);
  w.read = std::stoull(m[5]);
  w.write = std::stoull(m[6]);
  w.status = std::stoull(m[7]);
  w.timeout = std::stoull(m[8]);
  w.max_latency_ms = std::stod(m[9]) / 1000;
  w.p99_latency_ms = std::stod(m[10]) / 1000;
  w.first_bad = m[11];
  return w;
}

// What one verifying client saw, by phase.
struct ClientStats {
  uint64_t requests[3] = {};
  uint64_t bytes = 0;
  Clock::duration max_latency[3] = {};
  uint64_t failed = 0;
  std::vector<std::string> failures;  // the first few, with when and what
};

class WebHeadsTest : public AcceptanceTest {
 protected:
  WebHeadsTest() : AcceptanceTest(kFirstHost) {}

  void SetUp() override {
    AcceptanceTest::SetUp();
    if (IsSkipped()) return;
    nginx_program_ = find_program("nginx");
    wrk_program_ = find_program("wrk");
    if (nginx_program_.empty() || wrk_program_.empty()) {
      GTEST_SKIP() << "needs nginx and wrk (the Debian packages; scripts/deps installs them)";
    }
  }

  // Load and web servers go before the mounts they read: a process holding a file on a mount
  // keeps it busy.
  void TearDown() override {
    for (Process& w : wrk_) w.kill();
    for (Nginx& n : nginx_) {
      n.stop();
      for (const auto& line : n.error_lines()) ADD_FAILURE() << n.error_log() << ": " << line;
    }
    AcceptanceTest::TearDown();
  }

  // Stops wrk the way its user does (SIGINT: it stops and prints its summary) and reads it.
  WrkResult stop_wrk(Process& wrk, const std::string& output_file) {
    wrk.signal(SIGINT);
    int rc = wrk.wait(15s);
    WrkResult r = parse_wrk(read_all(output_file));
    EXPECT_EQ(rc, 0) << "wrk did not end on SIGINT as it should:\n" << r.output;
    return r;
  }

  std::string nginx_program_, wrk_program_;
  Nginx nginx_[kWebHeads];
  std::vector<Process> wrk_;
};

TEST_F(WebHeadsTest, NginxOnTwoMountsServesEveryRequestWhileAServerDiesAndReturns) {
  const auto test_start = Clock::now();
  ASSERT_NO_FATAL_FAILURE(start_web_data());
  for (int i = 0; i < kWebHeads; ++i) add_web_head(i);
  for (WebHead& w : heads_) ASSERT_NO_FATAL_FAILURE(mount_from_fstab(w));
  const std::string a = heads_[0].dir;

  // The site, deployed through web head A: pages, styles, scripts and images of 1-64 KiB in a
  // few directories, and some videos of 1-8 MiB. Then room for the uploads the site takes
  // during the run, their bytes made now so the uploader only writes.
  std::vector<SiteFile> site;
  std::set<std::string> dirs = {"/css", "/js", "/img", "/pages", "/media", "/uploads"};
  std::mt19937 rng(20240607);
  auto small = [&] { return 1024 + rng() % (63 * 1024 + 1); };
  int seed = 0;
  site.push_back({"/index.html", pattern(small(), seed++)});
  for (int k = 0; k < 60; ++k)
    site.push_back({"/css/s" + std::to_string(k) + ".css", pattern(small(), seed++)});
  for (int k = 0; k < 60; ++k)
    site.push_back({"/js/app" + std::to_string(k) + ".js", pattern(small(), seed++)});
  for (int k = 0; k < 100; ++k)
    site.push_back({"/pages/p" + std::to_string(k) + ".html", pattern(small(), seed++)});
  for (int k = 0; k < 100; ++k)
    site.push_back({"/img/photo" + std::to_string(k) + ".jpg", random_bytes(small(), seed++)});
  int mib = 1;
  for (const char* name :
       {"/media/intro.mp4", "/media/tour.mp4", "/media/talk.mp4", "/media/keynote.mp4"}) {
    site.push_back({name, random_bytes(mib * kMiB, seed++)});
    mib = std::min(mib * 2 + 1, 8);  // 1, 3, 7, 8 MiB
  }
  const size_t deployed = site.size();
  for (int k = 0; k < kUploadSlots; ++k) site.push_back({"", random_bytes(small(), seed++)});

  for (const std::string& d : dirs) {
    ASSERT_EQ(::mkdir((a + d).c_str(), 0755), 0) << a + d << ": " << std::strerror(errno);
  }
  uint64_t site_bytes = 0;
  for (size_t i = 0; i < deployed; ++i) {
    int err = write_file(a + site[i].path, site[i].data);
    ASSERT_EQ(err, 0) << a + site[i].path << ": " << std::strerror(err);
    site_bytes += site[i].data.size();
  }

  // A web server on each web head, its root the mount.
  for (int i = 0; i < kWebHeads; ++i) {
    std::string why = nginx_[i].start(nginx_program_, root_ + "/nginx" + std::to_string(i), host(i),
                                      free_port(host(i)), heads_[i].dir);
    ASSERT_EQ(why, "") << "web head " << i;
  }
  // Both serve what A deployed, B through its own mount.
  for (Nginx& n : nginx_) {
    HttpClient c(n.address(), n.port());
    for (size_t i = 0; i < deployed; ++i) {
      HttpClient::Response r = c.get(site[i].path);
      ASSERT_EQ(r.error, "") << n.url() << site[i].path;
      ASSERT_EQ(r.status, 200) << n.url() << site[i].path;
      ASSERT_EQ(difference(r.body, site[i].data), "") << n.url() << site[i].path;
    }
  }

  const std::string script = root_ + "/site.lua";
  {
    std::vector<SiteFile> deployed_files(site.begin(), site.begin() + deployed);
    std::ofstream(script) << wrk_script(deployed_files);
  }

  // The load. Files up to `published` may be asked for; the uploader publishes each upload
  // once it is written and closed, through web heads A and B in turn.
  std::atomic<size_t> published{deployed};
  std::atomic<int> phase{kBefore};
  std::atomic<bool> stop{false};
  const auto load_start = Clock::now();
  std::vector<ClientStats> stats(kWebHeads * kVerifiersPerHead);
  std::vector<std::thread> verifiers;
  for (int v = 0; v < kWebHeads * kVerifiersPerHead; ++v) {
    verifiers.emplace_back([&, v] {
      const Nginx& head = nginx_[v % kWebHeads];
      ClientStats& st = stats[v];
      HttpClient client(head.address(), head.port());
      std::mt19937 pick(v);
      while (!stop) {
        const SiteFile& f = site[pick() % published.load(std::memory_order_acquire)];
        const int ph = phase;
        const auto sent = Clock::now();
        HttpClient::Response r = client.get(f.path);
        const auto took = Clock::now() - sent;
        ++st.requests[ph];
        st.bytes += r.body.size();
        st.max_latency[ph] = std::max(st.max_latency[ph], took);
        std::string why = !r.error.empty()  ? r.error
                          : r.status != 200 ? "status " + std::to_string(r.status)
                                            : difference(r.body, f.data);
        if (why.empty()) continue;
        if (++st.failed <= 5) {
          std::ostringstream o;
          o << head.url() << f.path << " at +" << seconds(sent - load_start) << " s ("
            << kPhaseNames[ph] << ", " << ms(took) << " ms): " << why;
          st.failures.push_back(o.str());
        }
      }
    });
  }
  std::mutex upload_mu;
  std::vector<std::string> upload_errors;
  std::set<std::string> upload_dirs;
  std::thread uploader([&] {
    int dir_phase = -1;
    for (size_t slot = deployed; slot < site.size() && !stop; std::this_thread::sleep_for(100ms)) {
      const int ph = phase;
      auto error = [&](const std::string& what, int err) {
        std::lock_guard lock(upload_mu);
        if (upload_errors.size() < 20)
          upload_errors.push_back(what + " (" + kPhaseNames[ph] + "): " + std::strerror(err));
      };
      // A directory of each phase: one is made while the server is down.
      if (ph != dir_phase) {
        std::string d = kUploadDirs[ph];
        if (::mkdir((a + d).c_str(), 0755) != 0) {
          int err = errno;
          error("mkdir " + d, err);
          continue;
        }
        std::lock_guard lock(upload_mu);
        upload_dirs.insert(d);
        dir_phase = ph;
      }
      // Each web head takes uploads; the other serves them at once.
      const std::string& mnt = heads_[slot % kWebHeads].dir;
      site[slot].path = std::string(kUploadDirs[ph]) + "/u" + std::to_string(slot) + ".jpg";
      if (int err = write_file(mnt + site[slot].path, site[slot].data); err != 0) {
        error("upload " + site[slot].path, err);
        continue;
      }
      published.store(++slot, std::memory_order_release);
    }
  });
  Finally join{[&] {
    stop = true;
    for (std::thread& t : verifiers) t.join();
    if (uploader.joinable()) uploader.join();
  }};
  std::vector<std::string> wrk_out;
  for (int i = 0; i < kWebHeads; ++i) {
    wrk_out.push_back(root_ + "/wrk" + std::to_string(i) + ".out");
    // Ended by SIGINT when the story is over; -d only bounds it if the test dies first.
    wrk_.push_back(Process::spawn({wrk_program_, "-t2", "-c2", "-d120s", "--timeout", "10s", "-s",
                                   script, nginx_[i].url() + "/"},
                                  wrk_out.back()));
  }

  std::this_thread::sleep_for(kBeforeKill);

  // Server 0 dies: its mgmtd (the web heads' primary volfile server), its brick (half of replica
  // set 0) and its self-heal daemon, all at once.
  MgmtdServer& s0 = cluster_->server(0);
  std::vector<int> victims = s0.brick_pids();
  victims.push_back(s0.shd_pid());
  ASSERT_EQ(victims.size(), 2u);
  ASSERT_GT(victims[1], 0);
  s0.kill9();
  s0.kill_bricks();
  const auto died = Clock::now();
  phase = kServerDown;
  for (int pid : victims) {
    ASSERT_TRUE(eventually([&] { return !alive(pid); }, 10s)) << "pid " << pid << " survived";
  }
  // The web heads move on to their backup volfile server, and the survivors know what the dead
  // brick misses (the uploads since).
  for (const WebHead& w : heads_) {
    EXPECT_TRUE(eventually(
        [&] { return contains(read_all(w.log), "management connection to " + host(1)); }, 15s))
        << read_all(w.log);
  }
  CliResult info;
  std::vector<int64_t> pending;
  EXPECT_TRUE(poll_until(
      [&] {
        info = heal_info(1);
        pending = pending_entries(info.stdout_text);
        return info.status == 0 && pending.size() == 4 && pending[0] == -1 && pending[1] > 0;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(kDown)))
      << show(info);
  const int64_t pending_while_down = pending.size() == 4 ? pending[1] : -1;
  std::this_thread::sleep_until(died + kDown);

  // It returns: mgmtd restarts its brick and self-heal daemon.
  const auto down_for = Clock::now() - died;
  ASSERT_TRUE(s0.start()) << read_all(s0.root() + "/mgmtd.out");
  phase = kServerBack;
  const auto returned = Clock::now();
  ASSERT_TRUE(eventually([&] { return s0.brick_pids().size() == 1 && s0.shd_pid() > 0; }, 15s))
      << read_all(s0.log());
  std::this_thread::sleep_for(kAfterReturn);

  // The load ends.
  std::vector<WrkResult> wrk;
  for (int i = 0; i < kWebHeads; ++i) wrk.push_back(stop_wrk(wrk_[i], wrk_out[i]));
  stop = true;
  for (std::thread& t : verifiers) t.join();
  verifiers.clear();
  uploader.join();
  const auto load_time = Clock::now() - load_start;

  std::string last;
  const auto heal_start = Clock::now();
  bool drained = heal_drained(0, kHealDeadline, last);
  const auto healed_in = Clock::now() - heal_start;
  EXPECT_TRUE(drained) << "heal did not drain in " << kHealDeadline.count() << " s:\n"
                       << last
                       << cluster_->server(1).cli({"volume", "heal", kVolume, "statistics"}).out;

  // No request failed, by wrk's count or the verifying clients'.
  uint64_t wrk_requests = 0;
  double wrk_max_ms = 0;
  for (int i = 0; i < kWebHeads; ++i) {
    const WrkResult& w = wrk[i];
    ASSERT_TRUE(w.reported) << "no summary from wrk on " << nginx_[i].url() << ":\n" << w.output;
    EXPECT_GT(w.responses, 0u) << w.output;
    EXPECT_EQ(w.bad, 0u) << "first: " << w.first_bad << "\n" << w.output;
    EXPECT_EQ(w.connect + w.read + w.write + w.timeout, 0u) << "socket errors\n" << w.output;
    EXPECT_EQ(w.status, 0u) << "4xx/5xx responses\n" << w.output;
    wrk_requests += w.requests;
    wrk_max_ms = std::max(wrk_max_ms, w.max_latency_ms);
  }
  uint64_t verified = 0, verified_bytes = 0, failed = 0;
  uint64_t by_phase[kWebHeads][3] = {};
  Clock::duration max_latency[3] = {};
  for (int v = 0; v < kWebHeads * kVerifiersPerHead; ++v) {
    const ClientStats& st = stats[v];
    for (const std::string& f : st.failures) ADD_FAILURE() << f;
    failed += st.failed;
    verified_bytes += st.bytes;
    for (int ph = 0; ph < 3; ++ph) {
      verified += st.requests[ph];
      by_phase[v % kWebHeads][ph] += st.requests[ph];
      max_latency[ph] = std::max(max_latency[ph], st.max_latency[ph]);
    }
  }
  EXPECT_EQ(failed, 0u) << "requests failed or served other bytes";
  // Each web head served in every phase: the load did not stall while the server was away.
  for (int h = 0; h < kWebHeads; ++h) {
    for (int ph = 0; ph < 3; ++ph) {
      EXPECT_GT(by_phase[h][ph], 10u) << nginx_[h].url() << " " << kPhaseNames[ph];
    }
  }
  EXPECT_EQ(upload_errors, std::vector<std::string>{});
  for (const char* d : kUploadDirs) {
    EXPECT_TRUE(upload_dirs.contains(d)) << d << " was never made";
  }

  // What the site holds now: the deployed files and every upload that was published.
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < published; ++i) files[site[i].path] = site[i].data;
  dirs.insert(upload_dirs.begin(), upload_dirs.end());
  const size_t uploads = published - deployed;

  // Each replica set's bricks are identical and together the sets hold exactly the site.
  std::vector<std::map<std::string, Node>> trees;
  for (int i = 0; i < kServers; ++i) trees.push_back(brick_tree(brick(i)));
  EXPECT_EQ(tree_diff(trees[0], trees[1], "brick 0", "brick 1"), "");
  EXPECT_EQ(tree_diff(trees[2], trees[3], "brick 2", "brick 3"), "");
  Placement placed = expect_sets_hold(trees, 2, files, dirs);
  EXPECT_GT(placed.files_per_set[0], 0u) << "set 0 holds no file";
  EXPECT_GT(placed.files_per_set[1], 0u) << "set 1 holds no file";

  // Both mounts read, and both web servers serve, every file as it was written.
  for (const WebHead& w : heads_) {
    for (const auto& [path, data] : files) EXPECT_EQ(mismatch(w.dir + path, data), "");
  }
  for (Nginx& n : nginx_) {
    HttpClient c(n.address(), n.port());
    for (const auto& [path, data] : files) {
      HttpClient::Response r = c.get(path);
      EXPECT_EQ(r.error + (r.status == 200 ? "" : " status " + std::to_string(r.status)) +
                    difference(r.body, data),
                "")
          << n.url() << path;
    }
  }

  std::cout << deployed << " files deployed (" << site_bytes / kMiB << " MiB), " << uploads
            << " uploaded under load; " << wrk_requests << " requests by wrk (max latency "
            << wrk_max_ms << " ms), " << verified << " verified byte for byte ("
            << verified_bytes / kMiB << " MiB, " << failed << " failed); max latency of a verified "
            << "request " << ms(max_latency[0]) << " / " << ms(max_latency[1]) << " / "
            << ms(max_latency[2]) << " ms before / while down / after; " << host(0) << " down "
            << seconds(down_for) << " s with " << pending_while_down
            << " entries pending; heal drained " << seconds(healed_in) << " s after the load ("
            << seconds(Clock::now() - returned) << " s after the return); load "
            << seconds(load_time) << " s; whole test " << seconds(Clock::now() - test_start)
            << " s\n";
  for (int i = 0; i < kWebHeads; ++i) {
    std::cout << nginx_[i].url() << ": wrk " << wrk[i].requests << " requests, p99 "
              << wrk[i].p99_latency_ms << " ms, max " << wrk[i].max_latency_ms << " ms; "
              << nginx_[i].access_log_lines() << " access log lines\n";
  }
}

}  // namespace
}  // namespace mortar::test
