// The CPU body of the jacobian_read task (core/executor.h: JacobianReadTask), one member
// over a range of positions: copies of tangent rows into a Df / learning-signal matrix
// (col < 0) or into one Hid2Hid column (col >= 0). Used by host_jacobian_read
// (cpu/host_tasks.cc), which splits the positions over the pool; a header so that
// test/native/jacobian_read_check.cc can compare it with the task's definition.
//
// Group widths S <= 4 (and member widths w <= S) run loops with S and w known at compile
// time (constant strides, restrict-qualified pointers: the compiler unrolls them and keeps
// the addresses in registers); wider groups a loop with run-time strides. Every path writes
// exactly the elements the task defines, with the same values (plain copies).
#pragma once

#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/executor.h"

namespace bt {
namespace jacobian_read_detail {

// d[p * kStep] = s[p] for p in [q0, q1) (s null: 0).
template <typename T, int64_t kStep>
inline void strided(T* __restrict d, const T* __restrict s, int64_t q0, int64_t q1) {
  if (s == nullptr) {
    for (int64_t p = q0; p < q1; ++p) d[p * kStep] = T(0);
    return;
  }
  for (int64_t p = q0; p < q1; ++p) d[p * kStep] = s[p];
}

// Df rows of a member of width kW at offset 0 of d: d[p * kS + j] = s[p * kW + j].
template <typename T, int kS, int kW>
inline void rows(T* __restrict d, const T* __restrict s, int64_t q0, int64_t q1) {
  for (int64_t p = q0; p < q1; ++p)
    for (int j = 0; j < kW; ++j) d[p * kS + j] = s[p * kW + j];
}

// Hid2Hid column of a member of width kW (d at the member's first row, the column applied):
// d[(p * kS + j) * kS] = s[p * kW + j] (s null: 0).
template <typename T, int kS, int kW>
inline void column(T* __restrict d, const T* __restrict s, int64_t q0, int64_t q1) {
  if (s == nullptr) {
    for (int64_t p = q0; p < q1; ++p)
      for (int j = 0; j < kW; ++j) d[(p * kS + j) * kS] = T(0);
    return;
  }
  for (int64_t p = q0; p < q1; ++p)
    for (int j = 0; j < kW; ++j) d[(p * kS + j) * kS] = s[p * kW + j];
}

// Calls f(std::integral_constant<int, W>()) with W = w, for w in [1, kS] (kS <= 4); false
// when w is outside (the caller falls back to the run-time loop).
template <int kS, typename F>
inline bool with_width(int64_t w, F&& f) {
  if (w == 1) { f(std::integral_constant<int, 1>()); return true; }
  if constexpr (kS >= 2) { if (w == 2) { f(std::integral_constant<int, 2>()); return true; } }
  if constexpr (kS >= 3) { if (w == 3) { f(std::integral_constant<int, 3>()); return true; } }
  if constexpr (kS >= 4) { if (w == 4) { f(std::integral_constant<int, 4>()); return true; } }
  return false;
}

// rows / column with the member width w as a template argument (false: w not in [1, kS]).
template <typename T, int kS>
inline bool rows_s(int64_t w, T* d, const T* s, int64_t q0, int64_t q1) {
  return with_width<kS>(w, [&](auto W) { rows<T, kS, decltype(W)::value>(d, s, q0, q1); });
}

template <typename T, int kS>
inline bool column_s(int64_t w, T* d, const T* s, int64_t q0, int64_t q1) {
  return with_width<kS>(w, [&](auto W) { column<T, kS, decltype(W)::value>(d, s, q0, q1); });
}

}  // namespace jacobian_read_detail

// Member m of task r at positions [q0, q1) (absolute positions, within [r.p0, r.p1)):
//   col <  0: r.dst[p * S + off + j]             = src[p * w + j]
//   col >= 0: r.dst[(p * S + off + j) * S + col] = src[p * w + j]
// (src null: 0), j in [0, w), w = r.width[m], off = r.off[m].
template <typename T>
inline void jacobian_read_member(const JacobianReadTask<T>& r, int m, int64_t q0, int64_t q1) {
  namespace jd = jacobian_read_detail;
  const T* src = r.src[m];
  const int64_t w = r.width[m];
  const int64_t off = r.off[m];
  const int64_t S = r.S;
  if (q1 <= q0 || w <= 0) return;
  if (r.col < 0) {
    T* d = r.dst + off;  // element (p, j): d[p * S + j]
    if (src == nullptr) {
      if (w == S) std::fill(r.dst + q0 * S, r.dst + q1 * S, T(0));
      else
        for (int64_t p = q0; p < q1; ++p) std::fill(d + p * S, d + p * S + w, T(0));
    } else if (w == S) {
      std::memcpy(r.dst + q0 * S, src + q0 * w, sizeof(T) * static_cast<size_t>((q1 - q0) * w));
    } else {
      bool done = false;
      switch (S) {
        case 2: done = jd::rows_s<T, 2>(w, d, src, q0, q1); break;
        case 3: done = jd::rows_s<T, 3>(w, d, src, q0, q1); break;
        case 4: done = jd::rows_s<T, 4>(w, d, src, q0, q1); break;
        default: break;
      }
      if (!done) {
        if (w == 1)
          for (int64_t p = q0; p < q1; ++p) d[p * S] = src[p];
        else
          for (int64_t p = q0; p < q1; ++p) std::memcpy(d + p * S, src + p * w, sizeof(T) * static_cast<size_t>(w));
      }
    }
    return;
  }
  T* d = r.dst + off * S + r.col;  // element (p, j): d[(p * S + j) * S]
  switch (S) {
    case 1: jd::strided<T, 1>(d, src, q0, q1); return;
    case 2: if (jd::column_s<T, 2>(w, d, src, q0, q1)) return; break;
    case 3: if (jd::column_s<T, 3>(w, d, src, q0, q1)) return; break;
    case 4: if (jd::column_s<T, 4>(w, d, src, q0, q1)) return; break;
    default: break;
  }
  if (src == nullptr) {
    for (int64_t p = q0; p < q1; ++p)
      for (int64_t j = 0; j < w; ++j) d[(p * S + j) * S] = T(0);
  } else if (w == 1) {
    const int64_t step = S * S;
    for (int64_t p = q0; p < q1; ++p) d[p * step] = src[p];
  } else {
    for (int64_t p = q0; p < q1; ++p)
      for (int64_t j = 0; j < w; ++j) d[(p * S + j) * S] = src[p * w + j];
  }
}

}  // namespace bt
