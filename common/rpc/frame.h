// The brick protocol's frame: a fixed 32-byte header, a protobuf message, and an optional raw
// data tail that carries file data without a copy into protobuf. Layout and limits are in
// docs/protocol.md; every length is checked against Limits before anything is allocated.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/buffer.h"
#include "common/result.h"

namespace google::protobuf {
class MessageLite;
}

namespace mortar::rpc {

inline constexpr uint32_t kMagic = 0x5254524d;  // "MRTR" as little-endian bytes
inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kHeaderSize = 32;

enum class Kind : uint8_t {
  kCall = 1,   // client -> server, answered by one kReply with the same xid
  kReply = 2,  // status 0 = success with the procedure's answer message; else an errno
  kPing = 3,   // either side; answered by kPong with the same xid
  kPong = 4,
  kEvent = 5,  // server -> client, unsolicited, never answered
};

struct Limits {
  uint32_t max_message = 8u << 20;  // protobuf part
  uint32_t max_data = 17u << 20;    // data tail: a 16 MiB read or write plus slack
};

struct Header {
  Kind kind = Kind::kCall;
  uint16_t flags = 0;
  uint64_t xid = 0;
  uint32_t proc = 0;
  int32_t status = 0;
  uint32_t message_len = 0;
  uint32_t data_len = 0;
};

void encode_header(const Header& h, std::span<char, kHeaderSize> out);
// EPROTO: wrong magic, version or kind. EMSGSIZE: a length over the limits.
Result<Header> decode_header(std::span<const char, kHeaderSize> in, const Limits& limits);

struct Frame {
  Header header;
  std::string message;
  Buffer data;
};

// A frame ready for the socket: header and message in one contiguous string, data apart.
struct OutFrame {
  std::string head;
  Buffer data;
};

// Serialises `msg` (may be null for an empty message) after a header. The caller checks
// sizes against the peer's limits; this only builds bytes.
OutFrame make_frame(Kind kind, uint64_t xid, uint32_t proc, int32_t status,
                    const google::protobuf::MessageLite* msg, Buffer data = {});
// Rewrites the xid of a frame built before its xid was known.
void set_xid(OutFrame& f, uint64_t xid);

}  // namespace mortar::rpc
