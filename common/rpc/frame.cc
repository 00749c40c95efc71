#include "common/rpc/frame.h"

#include <google/protobuf/message_lite.h>

namespace mortar::rpc {

namespace {

template <class T>
void put(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

template <class T>
T get(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return static_cast<T>(v);
}

// Offsets within the header.
constexpr size_t kOffMagic = 0, kOffVersion = 4, kOffKind = 5, kOffFlags = 6, kOffXid = 8,
                 kOffProc = 16, kOffStatus = 20, kOffMessageLen = 24, kOffDataLen = 28;

}  // namespace

void encode_header(const Header& h, std::span<char, kHeaderSize> out) {
  char* p = out.data();
  put<uint32_t>(p + kOffMagic, kMagic);
  put<uint8_t>(p + kOffVersion, kWireVersion);
  put<uint8_t>(p + kOffKind, static_cast<uint8_t>(h.kind));
  put<uint16_t>(p + kOffFlags, h.flags);
  put<uint64_t>(p + kOffXid, h.xid);
  put<uint32_t>(p + kOffProc, h.proc);
  put<uint32_t>(p + kOffStatus, static_cast<uint32_t>(h.status));
  put<uint32_t>(p + kOffMessageLen, h.message_len);
  put<uint32_t>(p + kOffDataLen, h.data_len);
}

Result<Header> decode_header(std::span<const char, kHeaderSize> in, const Limits& limits) {
  const char* p = in.data();
  if (get<uint32_t>(p + kOffMagic) != kMagic) return fail(EPROTO);
  if (get<uint8_t>(p + kOffVersion) != kWireVersion) return fail(EPROTO);
  Header h;
  uint8_t kind = get<uint8_t>(p + kOffKind);
  if (kind < static_cast<uint8_t>(Kind::kCall) || kind > static_cast<uint8_t>(Kind::kEvent)) {
    return fail(EPROTO);
  }
  h.kind = static_cast<Kind>(kind);
  h.flags = get<uint16_t>(p + kOffFlags);
  h.xid = get<uint64_t>(p + kOffXid);
  h.proc = get<uint32_t>(p + kOffProc);
  h.status = static_cast<int32_t>(get<uint32_t>(p + kOffStatus));
  h.message_len = get<uint32_t>(p + kOffMessageLen);
  h.data_len = get<uint32_t>(p + kOffDataLen);
  if (h.message_len > limits.max_message || h.data_len > limits.max_data) return fail(EMSGSIZE);
  return h;
}

OutFrame make_frame(Kind kind, uint64_t xid, uint32_t proc, int32_t status,
                    const google::protobuf::MessageLite* msg, Buffer data) {
  OutFrame f;
  size_t msg_len = msg ? msg->ByteSizeLong() : 0;
  f.head.resize(kHeaderSize + msg_len);
  Header h{kind,
           0,
           xid,
           proc,
           status,
           static_cast<uint32_t>(msg_len),
           static_cast<uint32_t>(data.size())};
  encode_header(h, std::span<char, kHeaderSize>(f.head.data(), kHeaderSize));
  if (msg_len > 0) {
    msg->SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(f.head.data() + kHeaderSize));
  }
  f.data = std::move(data);
  return f;
}

void set_xid(OutFrame& f, uint64_t xid) { put<uint64_t>(f.head.data() + kOffXid, xid); }

}  // namespace mortar::rpc
