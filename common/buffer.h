// File data in flight. Shared ownership so one payload can be sent to several replicas and
// sit in a connection's write queue without a copy; a Buffer is not written after it is handed
// on, so sharing needs no locks.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace mortar {

class Buffer {
 public:
  Buffer() = default;
  static Buffer allocate(size_t size) {
    Buffer b;
    if (size > 0) b.storage_ = std::shared_ptr<char[]>(new char[size]);
    b.data_ = b.storage_.get();
    b.size_ = size;
    return b;
  }
  static Buffer copy_of(std::string_view bytes) {
    Buffer b = allocate(bytes.size());
    if (!bytes.empty()) std::memcpy(b.mutable_data(), bytes.data(), bytes.size());
    return b;
  }

  const char* data() const { return data_; }
  // Only for the owner that is filling a freshly allocated buffer.
  char* mutable_data() { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_, size_}; }

  // A view of part of this buffer that keeps the whole allocation alive.
  Buffer slice(size_t offset, size_t length) const {
    Buffer b;
    b.storage_ = storage_;
    b.data_ = data_ + offset;
    b.size_ = length;
    return b;
  }
  // Shrinks the visible size (e.g. a short read); never grows.
  void truncate(size_t size) {
    if (size < size_) size_ = size;
  }

 private:
  std::shared_ptr<char[]> storage_;
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mortar
