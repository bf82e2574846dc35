// Overflow-checked size arithmetic: the one place where the core multiplies and adds sizes.
//
// Every element count and byte count the core derives from a plan, an online configuration
// or a request goes through these helpers, so that a hostile or corrupt input can never make
// a product or a sum wrap around (a wrapped byte total allocates a small buffer that the
// kernels then overrun). Sizes are int64 and non-negative; the byte limit is
// kMaxTotalBytes (braintrace/api.h, with its rationale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "braintrace/api.h"

namespace bt {

// *out = a * b; false (and *out untouched) when a or b is negative or the product overflows int64.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  if (b != 0 && a > std::numeric_limits<int64_t>::max() / b) return false;
  *out = a * b;
  return true;
}

// *out = a + b; false when a or b is negative or the sum overflows int64.
inline bool checked_add(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  if (a > std::numeric_limits<int64_t>::max() - b) return false;
  *out = a + b;
  return true;
}

// *out = the product of `factors`; false on a negative factor or int64 overflow.
inline bool checked_product(std::initializer_list<int64_t> factors, int64_t* out) {
  int64_t p = 1;
  for (int64_t f : factors)
    if (!checked_mul(p, f, &p)) return false;
  *out = p;
  return true;
}

// *bytes = numel * elem_size as a size_t; false when numel is negative, the product overflows
// or it exceeds kMaxTotalBytes.
inline bool checked_bytes(int64_t numel, size_t elem_size, size_t* bytes) {
  int64_t b = 0;
  if (!checked_mul(numel, static_cast<int64_t>(elem_size), &b) || b > kMaxTotalBytes) return false;
  *bytes = static_cast<size_t>(b);
  return true;
}

// "2 * 3 * 4" (for messages).
inline std::string factors_str(std::initializer_list<int64_t> factors) {
  std::string r;
  for (int64_t f : factors) {
    if (!r.empty()) r += " * ";
    r += std::to_string(f);
  }
  return r;
}

// The element count `factors` multiplied out, checked: it must not overflow and, times
// elem_size, must stay within kMaxTotalBytes. On failure: `code` with
// "<what>: <f1> * <f2> * ... values of <elem_size> bytes exceed the size limit of 2^42 bytes".
inline Status checked_values(StatusCode code, const std::string& what, std::initializer_list<int64_t> factors,
                             size_t elem_size, int64_t* out) {
  int64_t n = 0;
  size_t bytes = 0;
  if (!checked_product(factors, &n) || !checked_bytes(n, elem_size, &bytes))
    return Status::Error(code, what + ": " + factors_str(factors) + " values of " + std::to_string(elem_size) +
                                   " bytes exceed the size limit of 2^42 bytes (kMaxTotalBytes)");
  *out = n;
  return Status::Ok();
}

// A running byte total (a session's buffers, a configuration's buffers, one call's results):
// add() refuses a piece that would overflow or pass kMaxTotalBytes, naming it.
class ByteBudget {
 public:
  ByteBudget(StatusCode code, std::string what) : code_(code), what_(std::move(what)) {}
  // Adds numel values of elem_size bytes for `piece` ("node 3 (Input) [2, 3]", "trace r0/g0/weight").
  Status add(const std::string& piece, int64_t numel, size_t elem_size) {
    size_t b = 0;
    int64_t t = 0;
    if (!checked_bytes(numel, elem_size, &b) || !checked_add(total_, static_cast<int64_t>(b), &t) ||
        t > kMaxTotalBytes)
      return Status::Error(code_, what_ + ": " + piece + " (" + std::to_string(numel) + " values of " +
                                      std::to_string(elem_size) + " bytes) brings the total past the size limit " +
                                      "of 2^42 bytes (kMaxTotalBytes; " + std::to_string(total_) +
                                      " bytes before it)");
    total_ = t;
    return Status::Ok();
  }
  int64_t total() const { return total_; }

 private:
  StatusCode code_;
  std::string what_;
  int64_t total_ = 0;
};

}  // namespace bt
