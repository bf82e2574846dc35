// Reductions (sum, mean, max) over a set of axes, forward / JVP / VJP.
//
// A reduction splits the input axes into kept axes (which index the output, in order)
// and reduced axes. Every function below handles the output range [o0, o1); each input
// element belongs to exactly one output element, so splitting the output range over
// threads is race-free also for the VJP scatter.
// Sums are accumulated in double, also for float32 data (long reductions lose less).
// Max: ties split the derivative equally among the maximal elements (JVP: the mean of
// their tangents; VJP: g / count to each), so that max(x, x) has derivative 1 in total.
// BroadcastTo's VJP is a ReduceSum over the broadcast axes (layout.h explains why the
// output layout then matches the broadcast input).
#pragma once

#include <stdint.h>

#include "kernels/layout.h"

namespace bt {

enum class ReduceKind { Sum, Mean, Max };

struct ReduceGeom {
  int kept_rank = 0, red_rank = 0;
  int64_t kept_dims[kMaxRank], kept_strides[kMaxRank];
  int64_t red_dims[kMaxRank], red_strides[kMaxRank];
  int64_t out_numel = 1, red_numel = 1;
};

// `reduced[i]` says whether input axis i is reduced.
inline ReduceGeom make_reduce_geom(int rank, const int64_t* dims, const bool* reduced) {
  ReduceGeom g;
  int64_t strides[kMaxRank];
  row_major_strides(rank, dims, strides);
  for (int i = 0; i < rank; ++i) {
    if (reduced[i]) {
      g.red_dims[g.red_rank] = dims[i];
      g.red_strides[g.red_rank++] = strides[i];
      g.red_numel *= dims[i];
    } else {
      g.kept_dims[g.kept_rank] = dims[i];
      g.kept_strides[g.kept_rank++] = strides[i];
      g.out_numel *= dims[i];
    }
  }
  return g;
}

// Geometry of the VJP of BroadcastTo(in_dims -> out_dims): reduce the out shape over the
// leading axes and the axes where the input has size 1 and the output does not.
inline ReduceGeom make_broadcast_vjp_geom(int in_rank, const int64_t* in_dims, int out_rank,
                                          const int64_t* out_dims) {
  bool reduced[kMaxRank];
  const int lead = out_rank - in_rank;
  for (int i = 0; i < out_rank; ++i) {
    const int j = i - lead;
    reduced[i] = j < 0 || (in_dims[j] == 1 && out_dims[i] != 1);
  }
  return make_reduce_geom(out_rank, out_dims, reduced);
}

// y[o] = reduce(x over the reduced axes at o); accumulate adds into y instead of writing.
template <typename T>
inline void reduce_forward(ReduceKind kind, const ReduceGeom& g, const T* x, T* y, bool accumulate,
                           int64_t o0, int64_t o1) {
  for_each_strided(g.kept_rank, g.kept_dims, g.kept_strides, 0, o0, o1, [&](int64_t o, int64_t base) {
    T r;
    if (kind == ReduceKind::Max) {
      T m = x[base];  // red_numel >= 1 is checked by validation for Max
      for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                       [&](int64_t, int64_t off) { m = x[off] > m ? x[off] : m; });
      r = m;
    } else {
      double s = 0;
      for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                       [&](int64_t, int64_t off) { s += static_cast<double>(x[off]); });
      if (kind == ReduceKind::Mean) s /= static_cast<double>(g.red_numel);
      r = static_cast<T>(s);
    }
    if (accumulate) y[o] += r; else y[o] = r;
  });
}

// dy[o] = d reduce(x) . dx  (y is the forward output, used by Max).
template <typename T>
inline void reduce_jvp(ReduceKind kind, const ReduceGeom& g, const T* x, const T* y, const T* dx,
                       T* dy, int64_t o0, int64_t o1) {
  if (kind != ReduceKind::Max) {
    reduce_forward(kind, g, dx, dy, false, o0, o1);
    return;
  }
  for_each_strided(g.kept_rank, g.kept_dims, g.kept_strides, 0, o0, o1, [&](int64_t o, int64_t base) {
    const T m = y[o];
    double s = 0;
    int64_t count = 0;
    for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                     [&](int64_t, int64_t off) {
                       if (x[off] == m) { s += static_cast<double>(dx[off]); ++count; }
                     });
    dy[o] = count > 0 ? static_cast<T>(s / static_cast<double>(count)) : T(0);
  });
}

// gx += (d reduce / dx)^T gy.
template <typename T>
inline void reduce_vjp(ReduceKind kind, const ReduceGeom& g, const T* x, const T* y, const T* gy,
                       T* gx, int64_t o0, int64_t o1) {
  for_each_strided(g.kept_rank, g.kept_dims, g.kept_strides, 0, o0, o1, [&](int64_t o, int64_t base) {
    T w = gy[o];
    if (kind == ReduceKind::Mean) w = static_cast<T>(static_cast<double>(w) / static_cast<double>(g.red_numel));
    if (kind == ReduceKind::Max) {
      const T m = y[o];
      int64_t count = 0;
      for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                       [&](int64_t, int64_t off) { count += x[off] == m ? 1 : 0; });
      if (count == 0) return;
      const T share = static_cast<T>(static_cast<double>(w) / static_cast<double>(count));
      for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                       [&](int64_t, int64_t off) { if (x[off] == m) gx[off] += share; });
      return;
    }
    for_each_strided(g.red_rank, g.red_dims, g.red_strides, base, 0, g.red_numel,
                     [&](int64_t, int64_t off) { gx[off] += w; });
  });
}

}  // namespace bt
