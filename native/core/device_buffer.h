// An executor allocation owned by the core, recorded in the memory accounting.
#pragma once

#include <cstddef>

#include <initializer_list>
#include <string>

#include "core/checked.h"
#include "core/status_util.h"
#include "core/executor.h"
#include "core/memory.h"

namespace bt {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ex_(o.ex_), p_(o.p_), bytes_(o.bytes_) {
    o.p_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ex_ = o.ex_;
      p_ = o.p_;
      bytes_ = o.bytes_;
      o.p_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  // Allocates `bytes` (a zero-byte request still returns a valid pointer).
  Status allocate(Executor* ex, size_t bytes, const char* what) {
    reset();
    const size_t n = bytes == 0 ? 64 : bytes;
    void* p = ex->alloc(n);
    if (p == nullptr)
      return Status::Error(StatusCode::OutOfMemory,
                           std::string("could not allocate ") + std::to_string(n) + " bytes for " + what);
    ex_ = ex;
    p_ = p;
    bytes_ = n;
    memory_record_alloc(n);
    return Status::Ok();
  }
  // Allocates the product of `factors` values of elem_size bytes each, the product and the
  // byte count computed with checked arithmetic (core/checked.h): a product that overflows or
  // passes kMaxTotalBytes is InvalidArgument naming `what` and the factors, never a short buffer.
  Status allocate_values(Executor* ex, std::initializer_list<int64_t> factors, size_t elem_size, const char* what) {
    int64_t n = 0;
    BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, std::string("allocating ") + what, factors,
                                      elem_size, &n));
    return allocate(ex, static_cast<size_t>(n) * elem_size, what);
  }
  void reset() {
    if (p_) {
      ex_->free(p_);
      memory_record_free(bytes_);
    }
    p_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  Executor* ex_ = nullptr;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace bt
