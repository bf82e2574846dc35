// Index arithmetic of the layout ops (BroadcastTo, Transpose, Slice, Concat) and the
// strided walks shared with the reductions.
//
// Every layout op maps a dense row-major index space onto strided offsets of another
// buffer, so all of them are one primitive, `for_each_strided`, plus a way to build
// the strides:
//   forward    BroadcastTo / Transpose / Slice : gather       y[o] = x[off(o)]
//              Concat (per input k)            : scatter      y[off(o)] = x_k[o]
//   VJP        Transpose / Slice               : scatter-add  gx[off(o)] += g[o]   (off injective:
//                                                             a slice's VJP pads into zeros)
//              Concat (per input k)            : gather-add   gx_k[o] += g[off(o)] (slices g)
//              BroadcastTo                     : a sum over the broadcast axes (reduce.h)
//   JVP        the forward applied to the tangent (all four are linear).
// The range form [o0, o1) lets a caller split the work over threads.
#pragma once

#include <stdint.h>

namespace bt {

// Largest rank a plan may use (checked by plan validation).
constexpr int kMaxRank = 8;

// Row-major strides of `dims`.
inline void row_major_strides(int rank, const int64_t* dims, int64_t* strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    strides[i] = s;
    s *= dims[i];
  }
}

// Calls f(o, off) for o in [o0, o1), o a flat row-major index into `dims` and
// off = base + sum_i idx_i(o) * strides[i]. The offset is updated incrementally.
template <typename F>
inline void for_each_strided(int rank, const int64_t* dims, const int64_t* strides, int64_t base,
                             int64_t o0, int64_t o1, F&& f) {
  if (o0 >= o1) return;
  int64_t idx[kMaxRank];
  int64_t off = base, rem = o0;
  for (int i = rank - 1; i >= 0; --i) {
    idx[i] = rem % dims[i];
    rem /= dims[i];
    off += idx[i] * strides[i];
  }
  if (rank == 0) {
    for (int64_t o = o0; o < o1; ++o) f(o, off);
    return;
  }
  const int last = rank - 1;
  const int64_t dl = dims[last], sl = strides[last];
  int64_t o = o0;
  while (o < o1) {
    // Innermost axis as a plain loop (the common contiguous case vectorises).
    int64_t run = dl - idx[last];
    if (run > o1 - o) run = o1 - o;
    if (sl == 1) {  // contiguous innermost axis (a concat block's rows, a slice of columns)
      for (int64_t j = 0; j < run; ++j) f(o + j, off + j);
    } else {
      for (int64_t j = 0; j < run; ++j) f(o + j, off + j * sl);
    }
    o += run;
    idx[last] += run;
    off += run * sl;
    if (idx[last] < dl) break;  // only possible when o == o1
    off -= dl * sl;
    idx[last] = 0;
    for (int i = last - 1; i >= 0; --i) {
      ++idx[i];
      off += strides[i];
      if (idx[i] < dims[i]) break;
      off -= idx[i] * strides[i];
      idx[i] = 0;
    }
  }
}

// Strides into an input of shape in_dims (rank in_rank) for walking the output shape
// out_dims (rank out_rank >= in_rank) under numpy broadcasting: dims are right-aligned,
// a missing or size-1 input dim gets stride 0.
inline void broadcast_strides(int in_rank, const int64_t* in_dims, int out_rank,
                              const int64_t* out_dims, int64_t* strides) {
  int64_t in_strides[kMaxRank];
  row_major_strides(in_rank, in_dims, in_strides);
  const int lead = out_rank - in_rank;
  for (int i = 0; i < out_rank; ++i) {
    const int j = i - lead;
    strides[i] = (j < 0 || (in_dims[j] == 1 && out_dims[i] != 1)) ? 0 : in_strides[j];
  }
}

// Strides into the input of a Transpose (out dim i = in dim perm[i]).
inline void transpose_strides(int rank, const int64_t* in_dims, const int32_t* perm,
                              int64_t* strides) {
  int64_t in_strides[kMaxRank];
  row_major_strides(rank, in_dims, in_strides);
  for (int i = 0; i < rank; ++i) strides[i] = in_strides[perm[i]];
}

// Base offset and strides into the input of a Slice (begin per axis, step 1).
inline int64_t slice_strides(int rank, const int64_t* in_dims, const int32_t* begin,
                             int64_t* strides) {
  row_major_strides(rank, in_dims, strides);
  int64_t base = 0;
  for (int i = 0; i < rank; ++i) base += begin[i] * strides[i];
  return base;
}

// y[o] = x[off(o)] (set) or += (accumulate), o in [o0, o1).
template <typename T>
inline void strided_gather(int rank, const int64_t* dims, const int64_t* strides, int64_t base,
                           const T* x, T* y, bool accumulate, int64_t o0, int64_t o1) {
  if (accumulate)
    for_each_strided(rank, dims, strides, base, o0, o1, [&](int64_t o, int64_t off) { y[o] += x[off]; });
  else
    for_each_strided(rank, dims, strides, base, o0, o1, [&](int64_t o, int64_t off) { y[o] = x[off]; });
}

// y[off(o)] = x[o] (set) or += (accumulate), o in [o0, o1). Only race-free across
// threads when off is injective (Transpose, Slice, Concat).
template <typename T>
inline void strided_scatter(int rank, const int64_t* dims, const int64_t* strides, int64_t base,
                            const T* x, T* y, bool accumulate, int64_t o0, int64_t o1) {
  if (accumulate)
    for_each_strided(rank, dims, strides, base, o0, o1, [&](int64_t o, int64_t off) { y[off] += x[o]; });
  else
    for_each_strided(rank, dims, strides, base, o0, o1, [&](int64_t o, int64_t off) { y[off] = x[o]; });
}

}  // namespace bt
