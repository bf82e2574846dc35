// NaN / infinity detection for the non-finite policy (FiniteChecks in braintrace/api.h).
//
// A value is non-finite when its exponent bits are all ones (IEEE 754: infinities and
// NaNs). Testing the bits with integer operations, OR-reduced over a block, lets the
// compiler vectorise the scan without -ffast-math (under which std::isfinite may be folded
// to true); only a block that holds a bad value is scanned again for its first index.
#pragma once

#include <stdint.h>
#include <string.h>

#include "kernels/hd.h"

namespace bt {

template <typename T>
struct FiniteBits;
template <>
struct FiniteBits<float> {
  using U = uint32_t;
  static constexpr U kExp = 0x7f800000u;
};
template <>
struct FiniteBits<double> {
  using U = uint64_t;
  static constexpr U kExp = 0x7ff0000000000000ull;
};

template <typename T>
BT_HD bool is_finite_value(T v) {
  typename FiniteBits<T>::U u;
  memcpy(&u, &v, sizeof u);
  return (u & FiniteBits<T>::kExp) != FiniteBits<T>::kExp;
}

// Index of the first non-finite element of x[0, n), or -1 when all are finite.
template <typename T>
BT_HD int64_t first_non_finite(const T* x, int64_t n) {
  using U = typename FiniteBits<T>::U;
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = n - b < kBlock ? n : b + kBlock;
    U any = 0;
    for (int64_t i = b; i < e; ++i) {
      U u;
      memcpy(&u, x + i, sizeof u);
      any |= static_cast<U>((u & FiniteBits<T>::kExp) == FiniteBits<T>::kExp);
    }
    if (any != 0)
      for (int64_t i = b; i < e; ++i)
        if (!is_finite_value(x[i])) return i;
  }
  return -1;
}

}  // namespace bt
