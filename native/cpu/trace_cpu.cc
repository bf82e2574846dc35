// CPU drivers of the trace bodies (native/kernels/trace.h) on the process thread pool.
#include "cpu/trace_cpu.h"

#include <algorithm>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/parallel_gemm.h"
#include "cpu/thread_pool.h"

// x86-64 GCC / Clang: an AVX2 clone of the dense trace rows, picked at run time (the
// build itself targets baseline x86-64, so prebuilt binaries run on any x86-64 CPU).
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define BT_TRACE_X86_AVX2 1
#else
#define BT_TRACE_X86_AVX2 0
#endif

namespace bt {
namespace {

// Rows per chunk such that a chunk moves at least ~64k trace values: the pool's dispatch
// cost (microseconds) stays small against the work.
int64_t row_grain(int64_t per_row) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, per_row)); }

// Dense trace: chunks of weight rows per thread (a little slack for uneven threads).
constexpr int64_t kDenseChunksPerThread = 2;
// Largest group width S whose scratch row lives on the stack.
constexpr int64_t kMaxStackS = 64;

}  // namespace

// Rows [i0, i1) of the dense D_RTRL step, in tiles of R rows: inside a tile, batch row b
// outermost, so the trace streams in contiguous runs of R segments (R*O*S values: the
// hardware prefetcher sees long streams, not one 4 KiB page per segment) while the tile's
// dW rows (R*O values) stay in L1/L2 across the batch. Each dW[i, k] still sums over b in
// order, segment by segment, so the result does not depend on the tiling.
constexpr int64_t kTileBytes = 32 << 10;

template <typename T>
void dense_rows(const DenseTraceTask<T>& t, int64_t i0, int64_t i1, T* tmp) {
  const int64_t seg = std::max<int64_t>(1, t.O * t.S * static_cast<int64_t>(sizeof(T)));
  const int64_t R = std::max<int64_t>(1, kTileBytes / seg);
  for (int64_t r0 = i0; r0 < i1; r0 += R) {
    const int64_t r1 = std::min(i1, r0 + R);
    for (int64_t b = 0; b < t.B; ++b)
      for (int64_t i = r0; i < r1; ++i) drtrl_dense_segment(t, b, i, tmp);
  }
}

#if BT_TRACE_X86_AVX2
// The same rows compiled for AVX2 (8 floats / 4 doubles per instruction instead of SSE2's
// 4 / 2): `flatten` inlines the whole body of kernels/trace.h here, so it is generated for
// this target. AVX2 only, not FMA: GCC would contract a * b + c into one fused
// multiply-add (rounded once), so the two versions would round differently; without it
// they compute bit for bit the same, and results do not depend on the CPU.
template <typename T>
__attribute__((target("avx2"), flatten)) void dense_rows_avx2(const DenseTraceTask<T>& t, int64_t i0,
                                                                   int64_t i1, T* tmp) {
  dense_rows(t, i0, i1, tmp);
}

#endif

template <typename T>
void cpu_drtrl_dense(const DenseTraceTask<T>& task) {
  if (task.B <= 0 || task.I <= 0 || task.O <= 0 || task.S <= 0) return;
  if (task.S > kMaxStackS) {
    // Rare (very wide groups): scratch per chunk on the heap.
    parallel_for(task.I, row_grain(task.B * task.O * task.S), [&task](int64_t i0, int64_t i1) {
      const DenseTraceTask<T> t = task;
      std::vector<T> tmp(static_cast<size_t>(t.S));
      dense_rows(t, i0, i1, tmp.data());
    });
    return;
  }
  // The weight rows split over the threads in a few large chunks (each thread owns its dW
  // rows: no atomics, no partial sums to reduce, no two threads on one dW cache line except
  // at a chunk edge when O*S*sizeof(T) is not a multiple of 64 bytes).
  const int64_t threads = thread_pool_size();
  const int64_t grain = std::max<int64_t>(row_grain(task.B * task.O * task.S),
                                          (task.I + kDenseChunksPerThread * threads - 1) /
                                              (kDenseChunksPerThread * threads));
#if BT_TRACE_X86_AVX2
  const bool avx2 = cpu_has_avx2();
#endif
  parallel_for(task.I, grain, [&](int64_t i0, int64_t i1) {
    const DenseTraceTask<T> t = task;  // local copy: no aliasing through the task
    T tmp[kMaxStackS];
#if BT_TRACE_X86_AVX2
    if (avx2) {
      dense_rows_avx2(t, i0, i1, tmp);
      return;
    }
#endif
    dense_rows(t, i0, i1, tmp);
  });
}

// Columns [k0, k1) of a vector trace in tiles of kVecTile columns, batch row b outermost
// inside a tile: the trace streams in contiguous runs of kVecTile * S values (walking one
// column over b would touch a new O*S-strided line, often a new page, per position), and
// each column's contraction sums over b in order, as vec_trace_col does. Each (b, tile)
// run is one call of vec_trace_row (kernels/trace.h: compile-time S <= 4 loops).
constexpr int64_t kVecTile = 256;

template <typename T>
void vec_cols(const VecTraceTask<T>& t, int64_t k0, int64_t k1, T* tmp) {
  T acc[kVecTile];
  for (int64_t c0 = k0; c0 < k1; c0 += kVecTile) {
    const int64_t c1 = std::min(k1, c0 + kVecTile);
    std::fill(acc, acc + (c1 - c0), T(0));
    for (int64_t b = 0; b < t.B; ++b) vec_trace_row(t, b, c0, c1, acc, tmp);
    if (t.g)
      for (int64_t k = c0; k < c1; ++k) t.dp[k] += t.scale * acc[k - c0];
  }
}

// pp_prop bias / element-wise gradient columns [k0, k1), in tiles of kVecTile columns.
template <typename T>
void pp_vec_tiles(const T* q, int64_t B, int64_t O, T* dp, int64_t k0, int64_t k1) {
  T acc[kVecTile];
  for (int64_t c0 = k0; c0 < k1; c0 += kVecTile) pp_vec_cols(q, B, O, dp, c0, std::min(k1, c0 + kVecTile), acc);
}

#if BT_TRACE_X86_AVX2
// AVX2 clones of the vector-trace, projection, input-trace and bias-gradient loops (the
// same reasoning as dense_rows_avx2: flatten compiles the bodies of kernels/trace.h for
// AVX2 here; no FMA, so the results are bit for bit the baseline build's).
template <typename T>
__attribute__((target("avx2"), flatten)) void vec_cols_avx2(const VecTraceTask<T>& t, int64_t k0, int64_t k1,
                                                               T* tmp) {
  vec_cols(t, k0, k1, tmp);
}

template <typename T>
__attribute__((target("avx2"), flatten)) void pp_project_avx2(const T* g, const T* epsf, int64_t S, T inv_c, T* q,
                                                                 int64_t p0, int64_t p1, bool accumulate) {
  pp_project_range(g, epsf, S, inv_c, q, p0, p1, accumulate);
}

template <typename T>
__attribute__((target("avx2"), flatten)) void pp_input_avx2(int64_t n, T* xbar, const T* x, T decay_x) {
  pp_input_run(n, xbar, x, decay_x);
}

template <typename T>
__attribute__((target("avx2"), flatten)) void pp_vec_avx2(const T* q, int64_t B, int64_t O, T* dp, int64_t k0,
                                                             int64_t k1) {
  pp_vec_tiles(q, B, O, dp, k0, k1);
}
#endif

// An update without contraction (pp_prop's output trace, g null): every position is
// independent, so the B x O positions run as one flat range (t: B 1, O = B * O), split in
// long chunks: one contiguous stream of eps, D and df per chunk instead of the column tiles'
// B runs of kVecTile positions. The same per-position body (vec_trace_row), so the same bits.
template <typename T>
void flat_update(const VecTraceTask<T>& t, int64_t p0, int64_t p1) {
  constexpr int64_t kRun = 4096;  // positions per call: bounded loop trip counts
  for (int64_t q = p0; q < p1; q += kRun) vec_trace_row(t, int64_t(0), q, std::min(p1, q + kRun), static_cast<T*>(nullptr), static_cast<T*>(nullptr));
}

#if BT_TRACE_X86_AVX2
template <typename T>
__attribute__((target("avx2"), flatten)) void flat_update_avx2(const VecTraceTask<T>& t, int64_t p0, int64_t p1) {
  flat_update(t, p0, p1);
}
#endif

template <typename T>
void cpu_vec_trace(const VecTraceTask<T>& task) {
  if (task.B <= 0 || task.O <= 0 || task.S <= 0 || (!task.update && !task.g)) return;
#if BT_TRACE_X86_AVX2
  const bool avx2 = cpu_has_avx2();
#endif
  if (!task.g && task.S <= 4) {
    VecTraceTask<T> flat = task;
    flat.O = task.B * task.O;
    flat.B = 1;
    parallel_for(flat.O, std::max<int64_t>(kVecTile, row_grain(task.S)), [&](int64_t p0, int64_t p1) {
      const VecTraceTask<T> t = flat;  // local copy: no aliasing through the task
#if BT_TRACE_X86_AVX2
      if (avx2) {
        flat_update_avx2(t, p0, p1);
        return;
      }
#endif
      flat_update(t, p0, p1);
    });
    return;
  }
  parallel_for(task.O, std::max<int64_t>(kVecTile, row_grain(task.B * task.S)), [&](int64_t k0, int64_t k1) {
    const VecTraceTask<T> t = task;  // local copy: no aliasing through the task
    if (t.S > kMaxStackS) {
      // Rare (very wide groups): the generic body's scratch row on the heap.
      std::vector<T> tmp(static_cast<size_t>(t.S));
      vec_cols(t, k0, k1, tmp.data());
      return;
    }
    T tmp[kMaxStackS];
#if BT_TRACE_X86_AVX2
    if (avx2) {
      vec_cols_avx2(t, k0, k1, tmp);
      return;
    }
#endif
    vec_cols(t, k0, k1, tmp);
  });
}

template <typename T>
void cpu_pp_input(T* xbar, const T* x, T decay_x, int64_t n) {
#if BT_TRACE_X86_AVX2
  const bool avx2 = cpu_has_avx2();
#endif
  parallel_for(n, 65536, [=](int64_t b, int64_t e) {
#if BT_TRACE_X86_AVX2
    if (avx2) {
      pp_input_avx2(e - b, xbar + b, x + b, decay_x);
      return;
    }
#endif
    pp_input_run(e - b, xbar + b, x + b, decay_x);
  });
}

template <typename T>
void cpu_pp_project(const T* g, const T* epsf, int64_t P, int64_t S, T inv_c, T* q, bool accumulate) {
#if BT_TRACE_X86_AVX2
  const bool avx2 = cpu_has_avx2();
#endif
  parallel_for(P, row_grain(S), [=](int64_t p0, int64_t p1) {
#if BT_TRACE_X86_AVX2
    if (avx2) {
      pp_project_avx2(g, epsf, S, inv_c, q, p0, p1, accumulate);
      return;
    }
#endif
    pp_project_range(g, epsf, S, inv_c, q, p0, p1, accumulate);
  });
}

template <typename T>
void cpu_pp_vec_grad(const T* q, int64_t B, int64_t O, T* dp) {
#if BT_TRACE_X86_AVX2
  const bool avx2 = cpu_has_avx2();
#endif
  parallel_for(O, std::max<int64_t>(kVecTile, row_grain(B)), [=](int64_t k0, int64_t k1) {
#if BT_TRACE_X86_AVX2
    if (avx2) {
      pp_vec_avx2(q, B, O, dp, k0, k1);
      return;
    }
#endif
    pp_vec_tiles(q, B, O, dp, k0, k1);
  });
}

template <typename T>
void cpu_pp_dense_grad(const T* xbar, const T* q, int64_t K, int64_t I, int64_t O, T* dW) {
  if (K <= 0 || I <= 0 || O <= 0) return;
  GemmDims d;
  d.trans_a = true;  // op(A) = Xbar^T: I x K, from the K x I row-major stack
  d.M = I;
  d.N = O;
  d.K = K;
  d.lda = I;
  d.ldb = O;
  d.ldc = O;
  gemm(d, T(1), xbar, q, T(1), dW);
}

#define BT_TRACE_INSTANTIATE(T)                                                                     \
  template void cpu_drtrl_dense<T>(const DenseTraceTask<T>&);                                       \
  template void cpu_vec_trace<T>(const VecTraceTask<T>&);                                           \
  template void cpu_pp_input<T>(T*, const T*, T, int64_t);                                          \
  template void cpu_pp_project<T>(const T*, const T*, int64_t, int64_t, T, T*, bool);                   \
  template void cpu_pp_vec_grad<T>(const T*, int64_t, int64_t, T*);                                    \
  template void cpu_pp_dense_grad<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);
BT_TRACE_INSTANTIATE(float)
BT_TRACE_INSTANTIATE(double)
#undef BT_TRACE_INSTANTIATE

}  // namespace bt
