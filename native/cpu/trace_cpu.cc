// CPU drivers of the trace bodies (native/kernels/trace.h) on the process thread pool.
#include "cpu/trace_cpu.h"

#include <algorithm>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/parallel_gemm.h"
#include "cpu/thread_pool.h"

namespace bt {
namespace {

// The loops below run through on_isa: x86-64 GCC / Clang compile each of them three times,
// for the baseline ISA (SSE2: 4 floats / 2 doubles per instruction), for AVX2 (8 / 4) and
// for AVX-512F with 512-bit vectors (16 / 8), and pick one at run time (the build itself
// targets baseline x86-64, so prebuilt binaries run on any x86-64 CPU). GCC's `flatten`
// inlines the whole body of kernels/trace.h into each clone, so it is generated for that
// target. (Clang's flatten inlines one level only: a clang build, such as the fuzz and TSan
// builds, runs the dense and vector-trace bodies at the baseline ISA inside the clones; the
// results are the same.)
// No clone may fuse a * b + c into one multiply-add (rounded once instead of twice): the
// AVX2 target leaves FMA out, and AVX-512F, which has it, is held off by the build's
// -ffp-contract=off (binding.gyp, CMakeLists.txt). Every clone then rounds every operation
// the same way, so results are bit for bit the same on every CPU (test/trace-isa.test.ts).
// BRAINTRACE_TRACE_ISA=portable|avx2|avx512 caps the choice (cpu_isa_capped).
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
template <typename F>
__attribute__((target("avx2"), flatten)) void run_avx2(const F& f) {
  f();
}
// Both compilers' generic tuning prefers 256-bit vectors even where AVX-512 is enabled, so
// they are told to use 512-bit ones: GCC in the target attribute, clang (which would ignore a
// target attribute holding that option) with min_vector_width.
#if defined(__clang__)
#define BT_TRACE_AVX512_ATTRS target("avx512f"), min_vector_width(512), flatten
#else
#define BT_TRACE_AVX512_ATTRS target("avx512f,prefer-vector-width=512"), flatten
#endif
template <typename F>
__attribute__((BT_TRACE_AVX512_ATTRS)) void run_avx512(const F& f) {
  f();
}
#endif

// Runs f() compiled for `isa` (an ISA this CPU has: trace_isa()).
template <typename F>
void on_isa(CpuIsa isa, const F& f) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  if (isa == CpuIsa::Avx512) return run_avx512(f);
  if (isa == CpuIsa::Avx2) return run_avx2(f);
#else
  (void)isa;
#endif
  f();
}

// Rows per chunk such that a chunk moves at least ~64k trace values: the pool's dispatch
// cost (microseconds) stays small against the work.
int64_t row_grain(int64_t per_row) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, per_row)); }

// Dense trace: chunks of weight rows per thread (a little slack for uneven threads).
constexpr int64_t kDenseChunksPerThread = 2;
// Largest group width S whose scratch row lives on the stack.
constexpr int64_t kMaxStackS = 64;

}  // namespace

CpuIsa trace_isa() {
  static const CpuIsa isa = cpu_isa_capped("BRAINTRACE_TRACE_ISA");
  return isa;
}

// Rows [i0, i1) of the dense D_RTRL step, in tiles of R rows: inside a tile, batch row b
// outermost, so the trace streams in contiguous runs of R segments (R*O*S values: the
// hardware prefetcher sees long streams, not one 4 KiB page per segment) while the tile's
// dW rows (R*O values) stay in L1/L2 across the batch. Each dW[i, k] still sums over b in
// order, segment by segment, so the result does not depend on the tiling.
constexpr int64_t kTileBytes = 32 << 10;

// Software prefetch distance along the walk (bytes). The hardware prefetchers stop at 4 KiB
// page edges and restart on each run, so a trace larger than the last-level cache streamed
// from memory at ~30 GB/s on one core; prefetching the lines the walk reaches kPrefetchBytes
// later (across page and run edges) keeps enough misses in flight to stream at ~57 GB/s
// (64 MiB trace, AMD Zen 5, docs/benchmarks.md). Prefetches never fault and change no value.
constexpr int64_t kPrefetchBytes = 16 << 10;
// Traces of at most this many bytes are walked without the prefetches: they mostly stay in
// the caches from step to step, where the extra instructions only cost (2-8 MiB traces ran
// 25-50% slower with them, AVX2 and AVX-512; from 16 MiB on they pay off).
constexpr double kPrefetchMinBytes = 8 << 20;

// The first of the `seg` bytes that the walk of dense_rows reaches kPrefetchBytes after the
// start of segment (b, i) of the tile [r0, r1): further along the same b-run, else in the
// next b-run, else in the next tile's first run (rows below i1); null past the walk's rows.
// (Only the address: the prefetch instructions are issued by dense_rows itself, since GCC
// takes a helper that only prefetches for a function without effects and drops its calls.)
template <typename T>
inline const char* prefetch_target(const DenseTraceTask<T>& t, int64_t b, int64_t i, int64_t r0, int64_t r1,
                                   int64_t R, int64_t i1, int64_t seg) {
  int64_t p = (i - r0) * seg + kPrefetchBytes;
  int64_t run0 = r0, run1 = r1;
  if (p >= (r1 - r0) * seg) {
    p -= (r1 - r0) * seg;
    if (++b == t.B) {
      b = 0;
      run0 = r1;
      run1 = std::min(i1, r1 + R);
    }
  }
  if (p + seg > (run1 - run0) * seg) return nullptr;
  return reinterpret_cast<const char*>(t.eps + (b * t.I + run0) * t.O * t.S) + p;
}

template <typename T>
void dense_rows(const DenseTraceTask<T>& t, int64_t i0, int64_t i1, T* tmp) {
  const int64_t seg = std::max<int64_t>(1, t.O * t.S * static_cast<int64_t>(sizeof(T)));
  const int64_t R = std::max<int64_t>(1, kTileBytes / seg);
  const bool prefetch = double(t.B) * double(t.I) * double(seg) > kPrefetchMinBytes;
  for (int64_t r0 = i0; r0 < i1; r0 += R) {
    const int64_t r1 = std::min(i1, r0 + R);
    for (int64_t b = 0; b < t.B; ++b)
      for (int64_t i = r0; i < r1; ++i) {
#if defined(__GNUC__) || defined(__clang__)
        if (prefetch)
          if (const char* at = prefetch_target(t, b, i, r0, r1, R, i1, seg))
            for (int64_t o = 0; o < seg; o += 64) __builtin_prefetch(at + o, 1, 3);
#endif
        drtrl_dense_segment(t, b, i, tmp);
      }
  }
}

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
  const CpuIsa isa = trace_isa();
  parallel_for(task.I, grain, [&](int64_t i0, int64_t i1) {
    const DenseTraceTask<T> t = task;  // local copy: no aliasing through the task
    T tmp[kMaxStackS];
    on_isa(isa, [&] { dense_rows(t, i0, i1, tmp); });
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

// An update without contraction (pp_prop's output trace, g null): every position is
// independent, so the B x O positions run as one flat range (t: B 1, O = B * O), split in
// long chunks: one contiguous stream of eps, D and df per chunk instead of the column tiles'
// B runs of kVecTile positions. The same per-position body (vec_trace_row), so the same bits.
template <typename T>
void flat_update(const VecTraceTask<T>& t, int64_t p0, int64_t p1) {
  constexpr int64_t kRun = 4096;  // positions per call: bounded loop trip counts
  for (int64_t q = p0; q < p1; q += kRun) vec_trace_row(t, int64_t(0), q, std::min(p1, q + kRun), static_cast<T*>(nullptr), static_cast<T*>(nullptr));
}

template <typename T>
void cpu_vec_trace(const VecTraceTask<T>& task) {
  if (task.B <= 0 || task.O <= 0 || task.S <= 0 || (!task.update && !task.g)) return;
  const CpuIsa isa = trace_isa();
  if (!task.g && task.S <= 4) {
    VecTraceTask<T> flat = task;
    flat.O = task.B * task.O;
    flat.B = 1;
    parallel_for(flat.O, std::max<int64_t>(kVecTile, row_grain(task.S)), [&](int64_t p0, int64_t p1) {
      const VecTraceTask<T> t = flat;  // local copy: no aliasing through the task
      on_isa(isa, [&] { flat_update(t, p0, p1); });
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
    on_isa(isa, [&] { vec_cols(t, k0, k1, tmp); });
  });
}

template <typename T>
void cpu_pp_input(T* xbar, const T* x, T decay_x, int64_t n) {
  const CpuIsa isa = trace_isa();
  parallel_for(n, 65536, [=](int64_t b, int64_t e) { on_isa(isa, [&] { pp_input_run(e - b, xbar + b, x + b, decay_x); }); });
}

template <typename T>
void cpu_pp_project(const T* g, const T* epsf, int64_t P, int64_t S, T inv_c, T* q, bool accumulate) {
  const CpuIsa isa = trace_isa();
  parallel_for(P, row_grain(S), [=](int64_t p0, int64_t p1) {
    on_isa(isa, [&] { pp_project_range(g, epsf, S, inv_c, q, p0, p1, accumulate); });
  });
}

template <typename T>
void cpu_pp_vec_grad(const T* q, int64_t B, int64_t O, T* dp) {
  const CpuIsa isa = trace_isa();
  parallel_for(O, std::max<int64_t>(kVecTile, row_grain(B)), [=](int64_t k0, int64_t k1) {
    on_isa(isa, [&] { pp_vec_tiles(q, B, O, dp, k0, k1); });
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
