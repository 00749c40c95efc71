// A real mortar-brickd on 127.0.0.2 with a temporary brick, driven through the client library
// (and, for malformed input, through a raw socket).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/protocol.h"
#include "common/rpc/frame.h"
#include "tests/support/brick.h"

namespace mortar::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kAddress = "127.0.0.2";

class BrickdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    brick_dir_ = dir_ / "brick";
    daemon_ = std::make_unique<BrickDaemon>(kAddress, brick_dir_, dir_ / "brickd.log", extra_args());
    ASSERT_TRUE(daemon_->start()) << "mortar-brickd did not start";
  }
  void TearDown() override {
    if (!daemon_) return;
    // A clean exit: no crash, no sanitizer report, no leak.
    EXPECT_EQ(daemon_->stop(), 0) << "see " << daemon_->log_path() << ".out";
    auto errors = error_lines(daemon_->log_path());
    EXPECT_TRUE(errors.empty()) << "ERROR lines in the brick log:\n" << errors.front();
  }
  virtual std::vector<std::string> extra_args() { return {}; }

  std::unique_ptr<SyncBrick> connect(std::chrono::milliseconds ping = 2000ms) {
    auto c = std::make_unique<SyncBrick>(io_, daemon_->client_options(ping));
    EXPECT_TRUE(c->client().is_up());
    return c;
  }

  TempDir dir_;
  std::string brick_dir_;
  IoThread io_;
  std::unique_ptr<BrickDaemon> daemon_;
};

const Gfid kRoot = Gfid::root();

TEST_F(BrickdTest, HelpDocumentsEveryFlag) {
  TempDir out;
  Process p = Process::spawn({bin("mortar-brickd"), "--help"}, out / "help");
  ASSERT_EQ(p.wait(), 0);
  std::ifstream in(out / "help");
  std::string help((std::istreambuf_iterator<char>(in)), {});
  for (const char* flag : {"--listen", "--brick-dir", "--volume", "--brick-name", "--log-file",
                           "--pid-file", "--foreground"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST_F(BrickdTest, FileLifecycle) {
  auto b = connect();
  auto created = b->create(kRoot, "index.html", 0640, O_RDWR);
  ASSERT_TRUE(created) << created.error().message();
  Gfid g = gfid_of(created->attr());
  EXPECT_TRUE(S_ISREG(created->attr().mode()));
  EXPECT_EQ(created->attr().mode() & 07777, 0640u);

  auto w = b->write(created->fd(), 0, "<h1>hello</h1>");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->written(), 14u);
  EXPECT_EQ(w->post().size(), 14u);
  auto w2 = b->write(created->fd(), 100, "tail");  // leaves a hole
  ASSERT_TRUE(w2);
  EXPECT_EQ(w2->post().size(), 104u);
  auto r = b->read(created->fd(), 0, 14);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "<h1>hello</h1>");
  auto hole = b->read(created->fd(), 14, 86);
  ASSERT_TRUE(hole);
  EXPECT_EQ(*hole, std::string(86, '\0'));
  auto past_end = b->read(created->fd(), 200, 10);
  ASSERT_TRUE(past_end);
  EXPECT_TRUE(past_end->empty());

  // The brick holds a plain file with the same bytes.
  std::ifstream on_disk(brick_dir_ + "/index.html", std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(on_disk)), {});
  EXPECT_EQ(content.substr(0, 14), "<h1>hello</h1>");
  EXPECT_EQ(content.size(), 104u);

  pb::FsyncReq fsync;
  fsync.set_fd(created->fd());
  EXPECT_TRUE(b->call<pb::Empty>(pb::FSYNC, fsync));
  pb::FallocateReq falloc;
  falloc.set_fd(created->fd());
  falloc.set_offset(0);
  falloc.set_length(1 << 20);
  auto fa = b->call<pb::FallocateRsp>(pb::FALLOCATE, falloc);
  ASSERT_TRUE(fa) << fa.error().message();
  EXPECT_EQ(fa->post().size(), 1u << 20);

  pb::TruncateReq trunc;
  trunc.set_gfid(raw(g));
  trunc.set_size(5);
  auto t = b->call<pb::TruncateRsp>(pb::TRUNCATE, trunc);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pre().size(), 1u << 20);
  EXPECT_EQ(t->post().size(), 5u);

  pb::SetattrReq sa;
  sa.set_gfid(raw(g));
  sa.set_valid(pb::SET_MODE | pb::SET_UID | pb::SET_GID | pb::SET_MTIME | pb::SET_ATIME);
  sa.set_mode(0600);
  sa.set_uid(33);
  sa.set_gid(33);
  sa.set_mtime_sec(1000000000);
  sa.set_mtime_nsec(5);
  sa.set_atime_sec(1000000001);
  auto s = b->call<pb::SetattrRsp>(pb::SETATTR, sa);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->pre().mode() & 07777, 0640u);
  EXPECT_EQ(s->post().mode() & 07777, 0600u);
  EXPECT_EQ(s->post().uid(), 33u);
  EXPECT_EQ(s->post().mtime_sec(), 1000000000);
  EXPECT_EQ(s->post().mtime_nsec(), 5u);
  EXPECT_EQ(s->post().atime_sec(), 1000000001);
  struct stat st;
  ASSERT_EQ(::stat((brick_dir_ + "/index.html").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 33u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  pb::FlushReq flush;
  flush.set_fd(created->fd());
  EXPECT_TRUE(b->call<pb::Empty>(pb::FLUSH, flush));
  EXPECT_TRUE(b->release(created->fd()));
  EXPECT_EQ(b->read(created->fd(), 0, 1).error().value, EBADF);

  // Open again by GFID alone.
  auto fd = b->open(g, O_RDONLY);
  ASSERT_TRUE(fd);
  EXPECT_EQ(*b->read(*fd, 0, 100), "<h1>h");
  b->release(*fd);

  // Lookup by name and nameless lookup agree.
  auto by_name = b->lookup(kRoot, "index.html");
  ASSERT_TRUE(by_name);
  EXPECT_EQ(gfid_of(*by_name), g);
  pb::LookupReq nameless;
  nameless.set_gfid(raw(g));
  auto by_gfid = b->call<pb::LookupRsp>(pb::LOOKUP, nameless);
  ASSERT_TRUE(by_gfid);
  EXPECT_EQ(by_gfid->attr().size(), 5u);

  EXPECT_TRUE(b->unlink(kRoot, "index.html"));
  EXPECT_EQ(b->lookup(kRoot, "index.html").error().value, ENOENT);
  EXPECT_EQ(b->getattr(g).error().value, ESTALE);
  EXPECT_FALSE(fs::exists(brick_dir_ + "/index.html"));
}

TEST_F(BrickdTest, CreateSemantics) {
  auto b = connect();
  ASSERT_TRUE(b->create(kRoot, "f"));
  // O_EXCL on an existing name fails; without it the existing file is opened.
  EXPECT_EQ(b->create(kRoot, "f", 0644, O_RDWR | O_EXCL).error().value, EEXIST);
  auto again = b->create(kRoot, "f", 0644, O_RDWR);
  ASSERT_TRUE(again);
  EXPECT_EQ(gfid_of(again->attr()), gfid_of(*b->lookup(kRoot, "f")));
  // A GFID that already names a live inode cannot be given to another.
  pb::CreateReq dup;
  dup.set_parent(raw(kRoot));
  dup.set_name("g");
  dup.set_gfid(again->attr().gfid());
  dup.set_mode(0644);
  EXPECT_EQ(b->call<pb::CreateRsp>(pb::CREATE, dup).error().value, EEXIST);
  EXPECT_FALSE(fs::exists(brick_dir_ + "/g"));
  // Opening a directory as a file.
  auto d = b->mkdir(kRoot, "dir");
  ASSERT_TRUE(d);
  EXPECT_EQ(b->open(gfid_of(*d), O_RDONLY).error().value, EISDIR);
  EXPECT_EQ(b->opendir(gfid_of(again->attr())).error().value, ENOTDIR);
}

TEST_F(BrickdTest, DirectoriesLinksAndRenames) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "www", 0755);
  ASSERT_TRUE(d);
  Gfid www = gfid_of(*d);
  EXPECT_TRUE(S_ISDIR(d->mode()));
  auto f = b->create(www, "a.txt");
  ASSERT_TRUE(f);
  Gfid a = gfid_of(f->attr());
  b->write(f->fd(), 0, "A");

  EXPECT_EQ(b->rmdir(kRoot, "www").error().value, ENOTEMPTY);
  EXPECT_EQ(b->unlink(kRoot, "www").error().value, EISDIR);
  EXPECT_EQ(b->rmdir(www, "a.txt").error().value, ENOTDIR);

  // Hard link.
  pb::LinkReq link;
  link.set_gfid(raw(a));
  link.set_new_parent(raw(kRoot));
  link.set_new_name("a-link");
  auto l = b->call<pb::EntryRsp>(pb::LINK, link);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->attr().nlink(), 2u);
  EXPECT_EQ(gfid_of(*b->lookup(kRoot, "a-link")), a);
  link.set_gfid(raw(www));
  link.set_new_name("dir-link");
  EXPECT_EQ(b->call<pb::EntryRsp>(pb::LINK, link).error().value, EPERM);

  // Symlink.
  auto s = b->symlink(www, "latest", "a.txt");
  ASSERT_TRUE(s);
  EXPECT_TRUE(S_ISLNK(s->mode()));
  pb::ReadlinkReq rl;
  rl.set_gfid(s->gfid());
  auto target = b->call<pb::ReadlinkRsp>(pb::READLINK, rl);
  ASSERT_TRUE(target);
  EXPECT_EQ(target->target(), "a.txt");
  EXPECT_EQ(fs::read_symlink(brick_dir_ + "/www/latest"), "a.txt");

  // Rename over an existing file, NOREPLACE, EXCHANGE.
  auto other = b->create(www, "b.txt");
  ASSERT_TRUE(other);
  Gfid bg = gfid_of(other->attr());
  pb::RenameReq rn;
  rn.set_old_parent(raw(www));
  rn.set_old_name("a.txt");
  rn.set_new_parent(raw(www));
  rn.set_new_name("b.txt");
  rn.set_flags(RENAME_NOREPLACE);
  EXPECT_EQ(b->call<pb::Empty>(pb::RENAME, rn).error().value, EEXIST);
  rn.set_flags(RENAME_EXCHANGE);
  ASSERT_TRUE(b->call<pb::Empty>(pb::RENAME, rn));
  EXPECT_EQ(gfid_of(*b->lookup(www, "b.txt")), a);
  EXPECT_EQ(gfid_of(*b->lookup(www, "a.txt")), bg);
  rn.set_flags(0);
  ASSERT_TRUE(b->call<pb::Empty>(pb::RENAME, rn));  // a.txt (bg) replaces b.txt (a)
  EXPECT_EQ(gfid_of(*b->lookup(www, "b.txt")), bg);
  EXPECT_EQ(b->lookup(www, "a.txt").error().value, ENOENT);
  // a is still reachable through its other name.
  EXPECT_EQ(gfid_of(*b->lookup(kRoot, "a-link")), a);

  // Directory rename across parents.
  auto sub = b->mkdir(kRoot, "other");
  ASSERT_TRUE(sub);
  rn.set_old_parent(raw(kRoot));
  rn.set_old_name("www");
  rn.set_new_parent(raw(gfid_of(*sub)));
  rn.set_new_name("www2");
  ASSERT_TRUE(b->call<pb::Empty>(pb::RENAME, rn));
  EXPECT_TRUE(fs::is_directory(brick_dir_ + "/other/www2"));
  EXPECT_EQ(gfid_of(*b->lookup(gfid_of(*sub), "www2")), www);
  // Moving a directory into itself is refused by the kernel, unchanged.
  rn.set_old_parent(raw(gfid_of(*sub)));
  rn.set_old_name("www2");
  rn.set_new_parent(raw(www));
  rn.set_new_name("loop");
  EXPECT_EQ(b->call<pb::Empty>(pb::RENAME, rn).error().value, EINVAL);

  // Special files are created but never opened on the server.
  pb::MknodReq mk;
  mk.set_parent(raw(kRoot));
  mk.set_name("fifo");
  mk.set_gfid(raw(Gfid::random()));
  mk.set_mode(S_IFIFO | 0600);
  auto fifo = b->call<pb::EntryRsp>(pb::MKNOD, mk);
  ASSERT_TRUE(fifo) << fifo.error().message();
  EXPECT_TRUE(S_ISFIFO(fifo->attr().mode()));
  EXPECT_EQ(b->open(gfid_of(fifo->attr()), O_RDONLY).error().value, EPERM);
}

TEST_F(BrickdTest, ExtendedAttributes) {
  auto b = connect();
  auto f = b->create(kRoot, "x");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());
  pb::SetxattrReq set;
  set.set_gfid(raw(g));
  set.set_name("user.mime");
  set.set_value(std::string("text/html\0bin", 13));
  ASSERT_TRUE(b->call<pb::Empty>(pb::SETXATTR, set));
  set.set_flags(XATTR_CREATE);
  EXPECT_EQ(b->call<pb::Empty>(pb::SETXATTR, set).error().value, EEXIST);
  set.set_name("trusted.mortar.gfid");
  set.set_flags(0);
  EXPECT_EQ(b->call<pb::Empty>(pb::SETXATTR, set).error().value, EPERM);

  pb::GetxattrReq get;
  get.set_fd(f->fd());
  get.set_name("user.mime");
  auto v = b->call<pb::GetxattrRsp>(pb::GETXATTR, get);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->value(), std::string("text/html\0bin", 13));
  get.set_name("trusted.mortar.gfid");
  EXPECT_EQ(b->call<pb::GetxattrRsp>(pb::GETXATTR, get).error().value, ENODATA);
  get.set_name("user.none");
  EXPECT_EQ(b->call<pb::GetxattrRsp>(pb::GETXATTR, get).error().value, ENODATA);

  pb::ListxattrReq list;
  list.set_gfid(raw(g));
  auto names = b->call<pb::ListxattrRsp>(pb::LISTXATTR, list);
  ASSERT_TRUE(names);
  ASSERT_EQ(names->names_size(), 1);
  EXPECT_EQ(names->names(0), "user.mime");

  pb::RemovexattrReq rm;
  rm.set_gfid(raw(g));
  rm.set_name("user.mime");
  ASSERT_TRUE(b->call<pb::Empty>(pb::REMOVEXATTR, rm));
  EXPECT_EQ(b->call<pb::Empty>(pb::REMOVEXATTR, rm).error().value, ENODATA);

  auto statfs = b->call<pb::StatfsRsp>(pb::STATFS, pb::StatfsReq());
  ASSERT_TRUE(statfs);
  EXPECT_GT(statfs->blocks(), 0u);
  EXPECT_EQ(statfs->namemax(), 255u);
}

TEST_F(BrickdTest, ReaddirListsEverythingOnceInChunks) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "big");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  std::set<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    std::string name = "file-" + std::to_string(i) + std::string(i % 40, 'x');
    auto c = b->create(dir, name);
    ASSERT_TRUE(c) << name;
    b->release(c->fd());
    names.insert(name);
  }
  for (bool plus : {false, true}) {
    auto entries = b->readdir_all(dir, plus, 3000);
    ASSERT_TRUE(entries);
    std::set<std::string> seen;
    for (const auto& e : *entries) {
      if (e.name() == "." || e.name() == "..") continue;
      EXPECT_TRUE(seen.insert(e.name()).second) << "duplicate " << e.name();
      if (plus) {
        ASSERT_TRUE(e.has_attr()) << e.name();
        EXPECT_TRUE(S_ISREG(e.attr().mode()));
        EXPECT_FALSE(gfid_of(e.attr()).is_null());
      }
    }
    EXPECT_EQ(seen, names);
  }
  // The root lists without the brick's private directory.
  auto root = b->readdir_all(kRoot, true);
  ASSERT_TRUE(root);
  for (const auto& e : *root) EXPECT_NE(e.name(), ".mortar");
}

TEST_F(BrickdTest, ManyClientsAtOnce) {
  constexpr int kClients = 6;
  constexpr int kFiles = 40;
  std::vector<std::unique_ptr<SyncBrick>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(connect());
  auto d = clients[0]->mkdir(kRoot, "shared");
  ASSERT_TRUE(d);
  Gfid dir = gfid_of(*d);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kFiles; ++i) {
        std::string name = "c" + std::to_string(c) + "-" + std::to_string(i);
        std::string body(1000 + i * 100, static_cast<char>('a' + c));
        auto f = clients[c]->create(dir, name);
        if (!f) continue;
        if (!clients[c]->write(f->fd(), 0, body)) continue;
        auto back = clients[(c + 1) % kClients]->lookup(dir, name);
        if (back && back->size() == body.size()) ++good;
        clients[c]->release(f->fd());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kClients * kFiles);
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kFiles; ++i) {
      std::ifstream in(brick_dir_ + "/shared/c" + std::to_string(c) + "-" + std::to_string(i));
      std::string body((std::istreambuf_iterator<char>(in)), {});
      EXPECT_EQ(body, std::string(1000 + i * 100, static_cast<char>('a' + c)));
    }
  }
}

TEST_F(BrickdTest, NamesCannotLeaveTheBrick) {
  auto b = connect();
  struct Case {
    std::string name;
    int lookup_err;
    int create_err;
  } cases[] = {
      {"..", EINVAL, EINVAL},
      {".", EINVAL, EINVAL},
      {"", EINVAL, EINVAL},
      {"../../etc/passwd", EINVAL, EINVAL},
      {"/etc/passwd", EINVAL, EINVAL},
      {"a/b", EINVAL, EINVAL},
      {std::string(256, 'x'), ENAMETOOLONG, ENAMETOOLONG},
      {".mortar", ENOENT, EPERM},
  };
  for (const auto& c : cases) {
    auto l = b->lookup(kRoot, c.name);
    ASSERT_FALSE(l) << c.name;
    EXPECT_EQ(l.error().value, c.lookup_err) << c.name;
    auto cr = b->create(kRoot, c.name);
    ASSERT_FALSE(cr) << c.name;
    EXPECT_EQ(cr.error().value, c.create_err) << c.name;
    EXPECT_EQ(b->mkdir(kRoot, c.name).error().value, c.create_err) << c.name;
  }
  // GFIDs that name nothing.
  EXPECT_EQ(b->getattr(Gfid::random()).error().value, ESTALE);
  EXPECT_EQ(b->getattr(Gfid()).error().value, EINVAL);
  pb::GetattrReq short_gfid;
  short_gfid.set_gfid("abc");
  EXPECT_EQ(b->call<pb::GetattrRsp>(pb::GETATTR, short_gfid).error().value, EINVAL);
  // Renames into the brick's private directory.
  ASSERT_TRUE(b->create(kRoot, "f"));
  pb::RenameReq rn;
  rn.set_old_parent(raw(kRoot));
  rn.set_old_name("f");
  rn.set_new_parent(raw(kRoot));
  rn.set_new_name(".mortar");
  EXPECT_EQ(b->call<pb::Empty>(pb::RENAME, rn).error().value, EPERM);
  EXPECT_TRUE(fs::exists(brick_dir_ + "/.mortar/meta"));
}

TEST_F(BrickdTest, PlantedSymlinksAreNeverFollowed) {
  TempDir outside;
  std::ofstream(outside / "secret") << "do not read";
  fs::create_directory(outside / "dir");
  fs::create_symlink(outside.path(), brick_dir_ + "/escape");
  fs::create_symlink(outside / "secret", brick_dir_ + "/secret-link");

  auto b = connect();
  auto escape = b->lookup(kRoot, "escape");
  ASSERT_TRUE(escape);
  EXPECT_TRUE(S_ISLNK(escape->mode()));
  Gfid eg = gfid_of(*escape);
  // Used as a directory, the symlink is not one.
  EXPECT_EQ(b->lookup(eg, "secret").error().value, ENOTDIR);
  EXPECT_EQ(b->create(eg, "planted").error().value, ENOTDIR);
  EXPECT_EQ(b->mkdir(eg, "planted").error().value, ENOTDIR);
  EXPECT_EQ(b->opendir(eg).error().value, ENOTDIR);
  pb::RenameReq rn;
  rn.set_old_parent(raw(eg));
  rn.set_old_name("secret");
  rn.set_new_parent(raw(kRoot));
  rn.set_new_name("stolen");
  EXPECT_EQ(b->call<pb::Empty>(pb::RENAME, rn).error().value, ENOTDIR);

  auto link = b->lookup(kRoot, "secret-link");
  ASSERT_TRUE(link);
  Gfid lg = gfid_of(*link);
  // Its size is the link's own, not the target's; opening it does not reach the target.
  EXPECT_EQ(link->size(), (outside / "secret").size());
  EXPECT_EQ(b->open(lg, O_RDONLY).error().value, ELOOP);
  pb::TruncateReq trunc;
  trunc.set_gfid(raw(lg));
  trunc.set_size(0);
  EXPECT_EQ(b->call<pb::TruncateRsp>(pb::TRUNCATE, trunc).error().value, EINVAL);
  pb::SetattrReq chmod;
  chmod.set_gfid(raw(lg));
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(0777);
  EXPECT_FALSE(b->call<pb::SetattrRsp>(pb::SETATTR, chmod));
  pb::SetxattrReq setx;
  setx.set_gfid(raw(lg));
  setx.set_name("user.x");
  setx.set_value("1");
  EXPECT_FALSE(b->call<pb::Empty>(pb::SETXATTR, setx));
  pb::LinkReq hard;
  hard.set_gfid(raw(lg));
  hard.set_new_parent(raw(kRoot));
  hard.set_new_name("hard");
  ASSERT_TRUE(b->call<pb::EntryRsp>(pb::LINK, hard));  // links the symlink itself
  EXPECT_TRUE(fs::is_symlink(brick_dir_ + "/hard"));

  // Nothing outside changed.
  std::ifstream in(outside / "secret");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "do not read");
  EXPECT_EQ((fs::status(outside / "secret").permissions() & fs::perms::all),
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  std::set<std::string> listing;
  for (const auto& e : fs::directory_iterator(outside.path())) {
    listing.insert(e.path().filename());
  }
  EXPECT_EQ(listing, (std::set<std::string>{"secret", "dir"}));
  char buf[64];
  EXPECT_LT(::getxattr((outside / "secret").c_str(), "user.x", buf, sizeof buf), 0);
}

// Raw socket access for the malformed-frame tests.
class RawConnection {
 public:
  RawConnection(const std::string& address, uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    sa.sin_port = htons(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) { (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void send(const rpc::OutFrame& f) {
    send(f.head);
    send(std::string(f.data.view()));
  }
  // True when the server closes the connection within `timeout`.
  bool closed_by_server(std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return true;
      }
    }
    return false;
  }
  // Reads one whole reply frame; returns its header.
  std::optional<rpc::Header> read_reply(std::chrono::milliseconds timeout = 3000ms) {
    std::string in;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      in.append(buf, static_cast<size_t>(n));
      if (in.size() >= rpc::kHeaderSize) {
        auto h = rpc::decode_header(std::span<const char, rpc::kHeaderSize>(in.data(), rpc::kHeaderSize),
                                    rpc::Limits{});
        if (!h) return std::nullopt;
        if (in.size() >= rpc::kHeaderSize + h->message_len + h->data_len) return *h;
      }
    }
    return std::nullopt;
  }

 private:
  int fd_;
  bool connected_ = false;
};

std::string handshake_frame_bytes(const std::string& volume = "vol") {
  pb::HandshakeReq hs;
  hs.set_protocol_version(kBrickProtocolVersion);
  hs.set_volume(volume);
  hs.set_brick_name("b0");
  hs.set_client_id("raw");
  hs.set_ping_interval_ms(100);
  return rpc::make_frame(rpc::Kind::kCall, 1, pb::HANDSHAKE, 0, &hs).head;
}

TEST_F(BrickdTest, MalformedFramesCloseOnlyTheirConnection) {
  auto good = connect();
  ASSERT_TRUE(good->create(kRoot, "still-here"));

  rpc::OutFrame lookup = rpc::make_frame(rpc::Kind::kCall, 2, pb::LOOKUP, 0, nullptr);
  std::vector<std::pair<std::string, std::function<void(RawConnection&)>>> attacks = {
      {"bad magic", [](RawConnection& c) { c.send(std::string(32, 'Z')); }},
      {"bad version",
       [](RawConnection& c) {
         auto f = rpc::make_frame(rpc::Kind::kCall, 1, pb::LOOKUP, 0, nullptr);
         f.head[4] = 9;
         c.send(f);
       }},
      {"oversize message length",
       [](RawConnection& c) {
         std::string h(rpc::kHeaderSize, '\0');
         rpc::encode_header({rpc::Kind::kCall, 0, 1, pb::LOOKUP, 0, 0x7fffffff, 0},
                            std::span<char, rpc::kHeaderSize>(h.data(), rpc::kHeaderSize));
         c.send(h);
       }},
      {"oversize data length",
       [](RawConnection& c) {
         std::string h(rpc::kHeaderSize, '\0');
         rpc::encode_header({rpc::Kind::kCall, 0, 1, pb::WRITE, 0, 0, 0xffffffff},
                            std::span<char, rpc::kHeaderSize>(h.data(), rpc::kHeaderSize));
         c.send(h);
       }},
      {"unknown procedure",
       [&](RawConnection& c) {
         c.send(handshake_frame_bytes());
         c.send(rpc::make_frame(rpc::Kind::kCall, 2, 999, 0, nullptr));
       }},
      {"garbage protobuf",
       [&](RawConnection& c) {
         c.send(handshake_frame_bytes());
         std::string h(rpc::kHeaderSize, '\0');
         rpc::encode_header({rpc::Kind::kCall, 0, 2, pb::LOOKUP, 0, 8, 0},
                            std::span<char, rpc::kHeaderSize>(h.data(), rpc::kHeaderSize));
         c.send(h + "\xff\xff\xff\xff\xff\xff\xff\xff");
       }},
      {"data tail on a lookup",
       [&](RawConnection& c) {
         c.send(handshake_frame_bytes());
         pb::LookupReq req;
         req.set_parent(raw(kRoot));
         req.set_name("x");
         c.send(rpc::make_frame(rpc::Kind::kCall, 2, pb::LOOKUP, 0, &req, Buffer::copy_of("x")));
       }},
      {"reply frame from a client",
       [](RawConnection& c) { c.send(rpc::make_frame(rpc::Kind::kReply, 1, 0, 0, nullptr)); }},
  };
  for (auto& [what, attack] : attacks) {
    RawConnection c(kAddress, daemon_->port());
    ASSERT_TRUE(c.connected());
    attack(c);
    EXPECT_TRUE(c.closed_by_server()) << what;
    // Everyone else is still served.
    EXPECT_TRUE(good->lookup(kRoot, "still-here")) << what;
  }
  {
    // A truncated frame followed by a hang-up.
    RawConnection c(kAddress, daemon_->port());
    c.send(handshake_frame_bytes().substr(0, 40));
  }
  EXPECT_TRUE(daemon_->running());
  EXPECT_TRUE(good->lookup(kRoot, "still-here"));
}

TEST_F(BrickdTest, CallsBeforeTheHandshakeAreRefused) {
  RawConnection c(kAddress, daemon_->port());
  pb::LookupReq req;
  req.set_parent(raw(kRoot));
  req.set_name("x");
  c.send(rpc::make_frame(rpc::Kind::kCall, 5, pb::LOOKUP, 0, &req));
  auto reply = c.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->xid, 5u);
  EXPECT_EQ(reply->status, EACCES);
}

TEST_F(BrickdTest, WrongVolumeIsRefused) {
  auto options = daemon_->client_options();
  options.volume = "another";
  SyncBrick b(io_, options, false);
  EXPECT_FALSE(b.wait_up(1s));
  RawConnection c(kAddress, daemon_->port());
  c.send(handshake_frame_bytes("another"));
  auto reply = c.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, ENOENT);
}

TEST_F(BrickdTest, SilentClientIsDroppedAndItsLocksReleased) {
  RawConnection silent(kAddress, daemon_->port());
  silent.send(handshake_frame_bytes());  // promises a ping every 100 ms
  ASSERT_TRUE(silent.read_reply());
  pb::InodelkReq lk;
  lk.set_domain("d");
  lk.set_gfid(raw(kRoot));
  lk.set_type(pb::WRITE_LOCK);
  lk.set_owner(1);
  silent.send(rpc::make_frame(rpc::Kind::kCall, 2, pb::INODELK, 0, &lk));
  auto granted = silent.read_reply();
  ASSERT_TRUE(granted);
  ASSERT_EQ(granted->status, 0);

  auto b = connect();
  lk.set_blocking(true);
  auto start = std::chrono::steady_clock::now();
  auto r = b->call<pb::Empty>(pb::INODELK, lk);
  EXPECT_TRUE(r) << r.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(silent.closed_by_server(1s));
}

TEST_F(BrickdTest, AKilledClientReleasesItsLocks) {
  auto b = connect();
  auto f = b->create(kRoot, "locked");
  ASSERT_TRUE(f);
  Gfid g = gfid_of(f->attr());

  // The lock holder is another process, killed with SIGKILL while it holds its locks.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  auto options = daemon_->client_options(30000ms);  // a long ping: only the kill frees the locks
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    IoThread io;
    SyncBrick holder(io, options);
    auto fd = holder.open(g, O_RDWR);
    pb::LkReq lk;
    lk.set_fd(fd.value_or(0));
    lk.set_cmd(pb::LkReq::SETLK);
    lk.set_type(pb::WRITE_LOCK);
    lk.set_lock_owner(7);
    pb::InodelkReq ilk;
    ilk.set_domain("vol-replicate-0");
    ilk.set_gfid(raw(g));
    ilk.set_type(pb::WRITE_LOCK);
    ilk.set_owner(7);
    pb::EntrylkReq elk;
    elk.set_domain("vol-replicate-0");
    elk.set_parent(raw(kRoot));
    elk.set_name("locked");
    elk.set_type(pb::WRITE_LOCK);
    elk.set_owner(7);
    bool all = fd && holder.call<pb::LkRsp>(pb::LK, lk) && holder.call<pb::Empty>(pb::INODELK, ilk) &&
               holder.call<pb::Empty>(pb::ENTRYLK, elk);
    char c = all ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(c, 'y');

  auto fd = b->open(g, O_RDWR);
  ASSERT_TRUE(fd);
  pb::LkReq probe;
  probe.set_fd(*fd);
  probe.set_cmd(pb::LkReq::GETLK);
  probe.set_type(pb::READ_LOCK);
  probe.set_lock_owner(1);
  auto held = b->call<pb::LkRsp>(pb::LK, probe);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->type(), pb::WRITE_LOCK);
  probe.set_cmd(pb::LkReq::SETLK);
  EXPECT_EQ(b->call<pb::LkRsp>(pb::LK, probe).error().value, EAGAIN);

  // Blocking requests queue behind the dead process's locks...
  pb::LkReq wait_lk = probe;
  wait_lk.set_cmd(pb::LkReq::SETLKW);
  wait_lk.set_type(pb::WRITE_LOCK);
  auto posix = boost::asio::co_spawn(io_.io(), b->client().call<pb::LkRsp>(pb::LK, wait_lk),
                                     boost::asio::use_future);
  pb::InodelkReq ilk;
  ilk.set_domain("vol-replicate-0");
  ilk.set_gfid(raw(g));
  ilk.set_type(pb::WRITE_LOCK);
  ilk.set_owner(1);
  ilk.set_blocking(true);
  auto inode = boost::asio::co_spawn(io_.io(), b->client().call<pb::Empty>(pb::INODELK, ilk),
                                     boost::asio::use_future);
  pb::EntrylkReq elk;
  elk.set_domain("vol-replicate-0");
  elk.set_parent(raw(kRoot));
  elk.set_name("");  // the whole directory
  elk.set_type(pb::WRITE_LOCK);
  elk.set_owner(1);
  elk.set_blocking(true);
  auto entry = boost::asio::co_spawn(io_.io(), b->client().call<pb::Empty>(pb::ENTRYLK, elk),
                                     boost::asio::use_future);
  EXPECT_EQ(posix.wait_for(300ms), std::future_status::timeout);
  // ...and are granted as soon as it dies.
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_EQ(posix.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(posix.get());
  ASSERT_EQ(inode.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(inode.get());
  ASSERT_EQ(entry.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(entry.get());
}

TEST_F(BrickdTest, ChangelogAddsAtomically) {
  auto b = connect();
  auto f = b->create(kRoot, "c");
  ASSERT_TRUE(f);
  pb::ChangelogReq req;
  req.set_gfid(f->attr().gfid());
  for (int i = 0; i < 6; ++i) req.mutable_delta()->add_pending(0);
  req.mutable_delta()->set_pending(kChangelogData + 3, 1);  // slot 1, data
  // Many clients adding at once never lose an increment.
  std::vector<std::unique_ptr<SyncBrick>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connect());
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) c->call<pb::ChangelogRsp>(pb::CHANGELOG, req);
    });
  }
  for (auto& t : threads) t.join();
  pb::ChangelogReq read;
  read.set_gfid(f->attr().gfid());
  auto v = b->call<pb::ChangelogRsp>(pb::CHANGELOG, read);
  ASSERT_TRUE(v);
  ASSERT_GE(v->value().pending_size(), 4);
  EXPECT_EQ(v->value().pending(3), 200);
  // Marks are only kept for inodes the brick has.
  read.set_gfid(raw(Gfid::random()));
  EXPECT_EQ(b->call<pb::ChangelogRsp>(pb::CHANGELOG, read).error().value, ESTALE);
}

TEST_F(BrickdTest, RestartUnderAConnectedClient) {
  auto b = connect(500ms);
  auto d = b->mkdir(kRoot, "site");
  ASSERT_TRUE(d);
  auto f = b->create(gfid_of(*d), "page");
  ASSERT_TRUE(f);
  Gfid dir = gfid_of(*d), file = gfid_of(f->attr());

  EXPECT_EQ(daemon_->stop(), 0);  // SIGTERM exits cleanly
  EXPECT_TRUE(eventually([&] { return !b->client().is_up(); }, 3s));
  EXPECT_EQ(b->lookup(kRoot, "site").error().value, ENOTCONN);
  ASSERT_TRUE(daemon_->start());
  ASSERT_TRUE(b->wait_up(5s)) << "client did not reconnect";
  EXPECT_EQ(gfid_of(*b->lookup(kRoot, "site")), dir);
  EXPECT_EQ(gfid_of(*b->lookup(dir, "page")), file);
  EXPECT_TRUE(b->getattr(file));
  // Descriptors die with the connection that opened them.
  EXPECT_EQ(b->read(f->fd(), 0, 1).error().value, EBADF);

  // The same after SIGKILL.
  daemon_->kill9();
  EXPECT_TRUE(eventually([&] { return !b->client().is_up(); }, 3s));
  ASSERT_TRUE(daemon_->start());
  ASSERT_TRUE(b->wait_up(5s));
  EXPECT_EQ(gfid_of(*b->lookup(dir, "page")), file);
}

TEST_F(BrickdTest, LostIndexIsRebuiltWithTheSameGfids) {
  auto b = connect();
  auto d = b->mkdir(kRoot, "a");
  ASSERT_TRUE(d);
  auto f = b->create(gfid_of(*d), "b");
  ASSERT_TRUE(f);
  b.reset();
  ASSERT_EQ(daemon_->stop(), 0);
  fs::remove_all(brick_dir_ + "/.mortar/meta");
  ASSERT_TRUE(daemon_->start());
  auto c = connect();
  auto got = c->getattr(gfid_of(f->attr()));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->gfid(), f->attr().gfid());
  EXPECT_EQ(gfid_of(*c->lookup(gfid_of(*d), "b")), gfid_of(f->attr()));
}

TEST_F(BrickdTest, PidFileAndDetach) {
  TempDir other;
  std::string pid_file = other / "brickd.pid";
  uint16_t port = free_port(kAddress);
  fs::create_directories(other / "brick");
  Process starter = Process::spawn({bin("mortar-brickd"), "--listen",
                                    std::string(kAddress) + ":" + std::to_string(port),
                                    "--brick-dir", other / "brick", "--volume", "vol2",
                                    "--pid-file", pid_file, "--log-file", other / "log"});
  // The starter returns once the daemon serves.
  ASSERT_EQ(starter.wait(), 0);
  EXPECT_TRUE(port_open(kAddress, port));
  std::ifstream in(pid_file);
  pid_t pid = 0;
  in >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(eventually([&] { return ::kill(pid, 0) != 0; }, 5s));
  EXPECT_FALSE(fs::exists(pid_file));

  // A start that cannot work says why and fails.
  Process bad = Process::spawn({bin("mortar-brickd"), "--listen",
                                std::string(kAddress) + ":" + std::to_string(port), "--brick-dir",
                                brick_dir_, "--volume", "not-vol", "--log-file", other / "log2"},
                               other / "bad.out");
  EXPECT_EQ(bad.wait(), 1);
  std::ifstream out(other / "bad.out");
  std::string text((std::istreambuf_iterator<char>(out)), {});
  EXPECT_NE(text.find("cannot open brick"), std::string::npos) << text;
}

class SlowDiskTest : public BrickdTest {
  std::vector<std::string> extra_args() override { return {"--inject-delay", "FSYNC:3000"}; }
};

TEST_F(SlowDiskTest, ASlowDiskCallDoesNotStallOtherClients) {
  auto slow = connect();
  auto fast = connect();
  auto f = slow->create(kRoot, "big");
  ASSERT_TRUE(f);
  pb::FsyncReq fsync;
  fsync.set_fd(f->fd());
  auto pending = boost::asio::co_spawn(io_.io(), slow->client().call<pb::Empty>(pb::FSYNC, fsync),
                                       boost::asio::use_future);
  std::this_thread::sleep_for(100ms);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(fast->lookup(kRoot, "big"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout);  // still sleeping
  EXPECT_TRUE(pending.get());
}

}  // namespace
}  // namespace mortar::test

namespace mortar::test {
namespace {

class AuthTest : public BrickdTest {
  std::vector<std::string> extra_args() override {
    return {"--auth-allow", "192.168.50.*,10.*", "--auth-reject", "10.0.0.9"};
  }
};

TEST_F(AuthTest, ClientOutsideAuthAllowIsRefused) {
  RawConnection c(kAddress, daemon_->port());
  c.send(handshake_frame_bytes());
  auto reply = c.read_reply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, EACCES);
  SyncBrick b(io_, daemon_->client_options(), false);
  EXPECT_FALSE(b.wait_up(1s));
}

}  // namespace
}  // namespace mortar::test
