#include "common/rpc/frame.h"

#include <gtest/gtest.h>

#include <array>

#include "proto/brick.pb.h"

namespace mortar::rpc {
namespace {

std::array<char, kHeaderSize> encoded(const Header& h) {
  std::array<char, kHeaderSize> buf;
  encode_header(h, buf);
  return buf;
}

TEST(Frame, HeaderRoundTrips) {
  Header h{Kind::kReply, 0x1234, 0xdeadbeefcafef00dull, 17, -5, 1000, 4096};
  auto buf = encoded(h);
  auto d = decode_header(buf, Limits{});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, Kind::kReply);
  EXPECT_EQ(d->flags, 0x1234);
  EXPECT_EQ(d->xid, 0xdeadbeefcafef00dull);
  EXPECT_EQ(d->proc, 17u);
  EXPECT_EQ(d->status, -5);
  EXPECT_EQ(d->message_len, 1000u);
  EXPECT_EQ(d->data_len, 4096u);
}

TEST(Frame, HeaderIsLittleEndianWithMagicFirst) {
  auto buf = encoded(Header{Kind::kCall, 0, 1, 2, 0, 0, 0});
  EXPECT_EQ(std::string(buf.data(), 4), "MRTR");
  EXPECT_EQ(buf[4], kWireVersion);
  EXPECT_EQ(buf[5], static_cast<char>(Kind::kCall));
  EXPECT_EQ(buf[8], 1);  // xid, low byte first
}

TEST(Frame, RejectsWrongMagicVersionAndKind) {
  auto good = encoded(Header{Kind::kCall, 0, 1, 2, 0, 3, 0});
  auto bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_EQ(decode_header(bad_magic, Limits{}).error().value, EPROTO);
  auto bad_version = good;
  bad_version[4] = 2;
  EXPECT_EQ(decode_header(bad_version, Limits{}).error().value, EPROTO);
  for (char kind : {char(0), char(6), char(255)}) {
    auto bad_kind = good;
    bad_kind[5] = kind;
    EXPECT_EQ(decode_header(bad_kind, Limits{}).error().value, EPROTO) << int(kind);
  }
}

TEST(Frame, BoundsEveryLengthBeforeAllocation) {
  Limits limits{1000, 2000};
  EXPECT_TRUE(decode_header(encoded(Header{Kind::kCall, 0, 1, 2, 0, 1000, 2000}), limits));
  EXPECT_EQ(decode_header(encoded(Header{Kind::kCall, 0, 1, 2, 0, 1001, 0}), limits).error().value,
            EMSGSIZE);
  EXPECT_EQ(decode_header(encoded(Header{Kind::kCall, 0, 1, 2, 0, 0, 2001}), limits).error().value,
            EMSGSIZE);
  EXPECT_EQ(
      decode_header(encoded(Header{Kind::kCall, 0, 1, 2, 0, 0xffffffffu, 0}), Limits{}).error().value,
      EMSGSIZE);
}

TEST(Frame, MakeFrameCarriesMessageAndDataApart) {
  pb::LookupReq req;
  req.set_name("index.html");
  Buffer data = Buffer::copy_of("payload");
  OutFrame f = make_frame(Kind::kCall, 0, pb::LOOKUP, 0, &req, data);
  ASSERT_EQ(f.head.size(), kHeaderSize + req.ByteSizeLong());
  set_xid(f, 77);
  auto h = decode_header(std::span<const char, kHeaderSize>(f.head.data(), kHeaderSize), Limits{});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->xid, 77u);
  EXPECT_EQ(h->proc, static_cast<uint32_t>(pb::LOOKUP));
  EXPECT_EQ(h->message_len, req.ByteSizeLong());
  EXPECT_EQ(h->data_len, 7u);
  pb::LookupReq back;
  ASSERT_TRUE(back.ParseFromString(f.head.substr(kHeaderSize)));
  EXPECT_EQ(back.name(), "index.html");
  EXPECT_EQ(f.data.view(), "payload");
}

TEST(Frame, EmptyMessageHasNoBody) {
  OutFrame f = make_frame(Kind::kPing, 9, 0, 0, nullptr);
  EXPECT_EQ(f.head.size(), kHeaderSize);
  EXPECT_TRUE(f.data.empty());
}

}  // namespace
}  // namespace mortar::rpc
