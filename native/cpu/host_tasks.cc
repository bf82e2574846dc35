// The CPU driver of every executor task (see cpu/host_tasks.h). Node tasks pick their
// geometry from the plan node and loop; the math bodies live in native/kernels/.
//
// Node tasks: all pointers are dense row-major arrays of the node / input shapes. VJP
// forms accumulate (+=) into input cotangents. JVP forms write the output tangent; a null
// input tangent means zero.
#include "cpu/host_tasks.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status_util.h"
#define BT_EW_AVX2_EXTERN  // the AVX2 element-wise table is instantiated in cpu/ew_avx2.cc
#include "cpu/ew_dispatch.h"
#include "cpu/jacobian_read.h"
#include "cpu/parallel_gemm.h"
#include "cpu/thread_pool.h"
#include "cpu/trace_cpu.h"
#include "kernels/elementwise.h"
#include "kernels/finite.h"
#include "kernels/layout.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace bt {
namespace {

constexpr int64_t kGrain = 16384;
// Elements per chunk of a copy-like task (layout ops, copy, fill, axpy: bandwidth bound,
// values independent of the split). GRU's concat blocks and gate slices are (64, 256) =
// 16384 elements: at kGrain they ran on the caller alone, a third of its serial time on
// 2 threads.
constexpr int64_t kCopyGrain = 4096;
// Elements per work item of the optimizer loops and per partial sum of the norm. Fixed
// (not derived from the thread count) so the norm's summation order never changes.
constexpr int64_t kOptimGrain = 16384;
constexpr int64_t kNormBlock = 16384;
// Elements per chunk of the non-finite scan over the pool (a bandwidth-bound pass: a few
// microseconds per chunk).
constexpr int64_t kScanGrain = 32768;

template <typename F>
void par(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n <= grain) {
    f(int64_t(0), n);
    return;
  }
  parallel_for(n, grain, f);
}

// guarded() for a task body that returns nothing.
template <typename F>
Status guard(const char* what, F&& f) {
  return guarded(what, [&f]() -> Status {
    f();
    return Status::Ok();
  });
}

ReduceKind reduce_kind(OpCode op) {
  return op == OpCode::ReduceSum ? ReduceKind::Sum : op == OpCode::ReduceMean ? ReduceKind::Mean : ReduceKind::Max;
}

ReduceGeom reduce_geom(const PlanNode& n, const PlanNode& in) {
  bool red[kMaxRank] = {false};
  for (int32_t a : n.ints) red[a] = true;
  return make_reduce_geom(static_cast<int>(in.shape.size()), in.shape.data(), red);
}

// (outer, L, inner) around a softmax axis.
struct Lines {
  int64_t outer = 1, L = 1, inner = 1;
};
Lines lines_of(const PlanNode& n) {
  Lines l;
  const int axis = n.ints[0];
  for (int d = 0; d < axis; ++d) l.outer *= n.shape[d];
  l.L = n.shape[axis];
  for (size_t d = axis + 1; d < n.shape.size(); ++d) l.inner *= n.shape[d];
  return l;
}

// Matrix-product geometry: G products of (M x K) by (K x N), operand strides per product.
struct MM {
  int64_t G = 1, M = 0, K = 0, N = 0;
  int64_t sa = 0, sb = 0, sc = 0;
};
MM mm_of(const Plan& p, const PlanNode& n) {
  const auto& a = p.nodes[n.inputs[0]].shape;
  const auto& b = p.nodes[n.inputs[1]].shape;
  MM m;
  m.K = a.back();
  m.N = b.back();
  if (b.size() == 2) {
    m.M = 1;
    for (size_t d = 0; d + 1 < a.size(); ++d) m.M *= a[d];
  } else {
    for (size_t d = 0; d + 2 < a.size(); ++d) m.G *= a[d];
    m.M = a[a.size() - 2];
    m.sa = m.M * m.K;
    m.sb = m.K * m.N;
    m.sc = m.M * m.N;
  }
  return m;
}

// One product of a matmul node: through the pack cache when B is a constant 2-D operand
// (epoch nonzero, one group), else the plain gemm.
template <typename T>
void mm_gemm(const GemmDims& d, const T* A, const T* B, T beta, T* C, GemmPackCache* cache, uint64_t epoch) {
  if (cache != nullptr && epoch != 0)
    cache->gemm(d, T(1), A, B, beta, C, epoch);
  else
    gemm(d, T(1), A, B, beta, C);
}

template <typename T>
void mm_product(const MM& m, const T* A, const T* B, T beta, T* C, GemmPackCache* cache = nullptr,
                uint64_t epoch = 0) {
  GemmDims d;
  d.M = m.M; d.N = m.N; d.K = m.K;
  d.lda = m.K; d.ldb = m.N; d.ldc = m.N;
  if (m.G == 1) return mm_gemm(d, A, B, beta, C, cache, epoch);
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), A + g * m.sa, B + g * m.sb, beta, C + g * m.sc);
}

// The GemmDims of one group's gA = G B^T (G (M, N), B (K, N) read transposed, gA (M, K)).
GemmDims mm_grad_a_dims(const MM& m) {
  GemmDims d;
  d.trans_b = true;
  d.M = m.M; d.N = m.K; d.K = m.N;
  d.lda = m.N; d.ldb = m.N; d.ldc = m.K;
  return d;
}

// gA = beta gA + G B^T (beta 1: accumulate; 0: gA is only written)
template <typename T>
void mm_grad_a(const MM& m, const T* Gr, const T* B, T* gA, T beta, GemmPackCache* cache = nullptr,
               uint64_t epoch = 0) {
  const GemmDims d = mm_grad_a_dims(m);
  if (m.G == 1) return mm_gemm(d, Gr, B, beta, gA, cache, epoch);
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), Gr + g * m.sc, B + g * m.sb, beta, gA + g * m.sa);
}

// True when every block of `full` (gA = G B^T over a Concat `c`: one block of columns per
// input) whose bit is set in `wanted` takes the same direct / packed path as `full` itself
// (gemm_takes_direct), so the block products give the full product's columns bit for bit.
bool blocks_like_full(const Plan& p, const PlanNode& c, const GemmDims& full, uint32_t wanted) {
  const bool full_direct = gemm_takes_direct(full);
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    GemmDims d = full;
    d.N = p.nodes[c.inputs[k]].shape.back();
    if (((wanted >> k) & 1u) && gemm_takes_direct(d) != full_direct) return false;
  }
  return true;
}

// The VJP of a matmul node into the inputs of its last-axis Concat operand (NodeTask::
// gin_concat): input k's block of gA = G B^T is G times rows [off_k, off_k + n_k) of B
// transposed, the same dot products as gA's columns off_k .. off_k + n_k. Values as the full
// product followed by the concat's VJP, bit for bit: a block written first is the product
// itself (the VJP's 0 + g; a product never gives -0), a block added to gets the product in
// a scratch first and then one add per element (gx + g); when the direct / packed choice of
// some block differs from the full product's (gemm_takes_direct: other rounding), the full
// product is formed in the scratch and its columns are read.
template <typename T>
void mm_grad_a_concat(const Plan& p, const PlanNode& n, const MM& m, const T* G, const T* B, T* const* gx,
                      uint32_t zero, GemmPackCache* cache, uint64_t epoch) {
  const PlanNode& c = p.nodes[n.inputs[0]];
  const GemmDims full = mm_grad_a_dims(m);
  uint32_t wanted = 0;
  for (size_t k = 0; k < c.inputs.size(); ++k)
    if (gx[k] != nullptr) wanted |= 1u << k;
  thread_local std::vector<T> scratch;  // grown once: no allocation per step
  int64_t off = 0;
  if (!blocks_like_full(p, c, full, wanted)) {
    scratch.resize(static_cast<size_t>(m.M * m.K));
    mm_gemm(full, G, B, T(0), scratch.data(), cache, epoch);
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      const int64_t w = p.nodes[c.inputs[k]].shape.back();
      T* y = gx[k];
      if (y != nullptr) {
        const T* src = scratch.data() + off;
        const bool first = (zero >> k) & 1u;
        par(m.M, std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, w)), [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            const T* a = src + r * m.K;
            T* o = y + r * w;
            if (first) {
              for (int64_t j = 0; j < w; ++j) o[j] = a[j];
            } else {
              for (int64_t j = 0; j < w; ++j) o[j] += a[j];
            }
          }
        });
      }
      off += w;
    }
    return;
  }
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    const int64_t w = p.nodes[c.inputs[k]].shape.back();
    T* y = gx[k];
    if (y != nullptr) {
      GemmDims d = full;
      d.N = d.ldc = w;
      const T* Bk = B + off * m.N;  // rows off .. off + w of B (K x N, row-major)
      if ((zero >> k) & 1u) {
        mm_gemm(d, G, Bk, T(0), y, cache, epoch);
      } else {
        scratch.resize(static_cast<size_t>(m.M * w));
        T* tmp = scratch.data();
        mm_gemm(d, G, Bk, T(0), tmp, cache, epoch);
        par(m.M * w, kCopyGrain, [&](int64_t b, int64_t e) {
          for (int64_t q = b; q < e; ++q) y[q] += tmp[q];
        });
      }
    }
    off += w;
  }
}

// gA = beta gA + G B^T on the column blocks of gA (A a last-axis Concat: one block per
// input) whose bit is set in `blocks` (NodeTask::gin0_blocks): each block is G times its rows
// of B transposed, written at its column offset with gA's row stride, the full product's
// values for those columns (the whole product instead when a block's direct / packed choice
// differs from the full product's).
template <typename T>
void mm_grad_a_blocks(const Plan& p, const PlanNode& n, const MM& m, const T* G, const T* B, T* gA, T beta,
                      uint32_t blocks, GemmPackCache* cache, uint64_t epoch) {
  const PlanNode& c = p.nodes[n.inputs[0]];
  const GemmDims full = mm_grad_a_dims(m);
  if (!blocks_like_full(p, c, full, blocks)) return mm_grad_a(m, G, B, gA, beta, cache, epoch);
  int64_t off = 0;
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    const int64_t w = p.nodes[c.inputs[k]].shape.back();
    if ((blocks >> k) & 1u) {
      GemmDims d = full;
      d.N = w;  // ldc stays gA's row stride
      mm_gemm(d, G, B + off * m.N, beta, gA + off, cache, epoch);
    }
    off += w;
  }
}

// gB = beta gB + A^T G (beta 1: accumulate; 0: gB is only written)
template <typename T>
void mm_grad_b(const MM& m, const T* A, const T* Gr, T* gB, T beta) {
  GemmDims d;
  d.trans_a = true;
  d.M = m.K; d.N = m.N; d.K = m.M;
  d.lda = m.K; d.ldb = m.N; d.ldc = m.N;
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), A + g * m.sa, Gr + g * m.sc, beta, gB + g * m.sb);
}

// Input strides (and base offset) of a BroadcastTo / Transpose / Slice node: output index
// -> input offset (kernels/layout.h).
int64_t layout_strides(const Plan& p, const PlanNode& n, int64_t* strides) {
  const int r = static_cast<int>(n.shape.size());
  const auto& is = p.nodes[n.inputs[0]].shape;
  if (n.op == OpCode::BroadcastTo) {
    broadcast_strides(static_cast<int>(is.size()), is.data(), r, n.shape.data(), strides);
    return 0;
  }
  if (n.op == OpCode::Transpose) {
    transpose_strides(r, is.data(), n.ints.data(), strides);
    return 0;
  }
  return slice_strides(r, is.data(), n.ints.data(), strides);
}

// Calls f(k, input node k, base offset of its block in the output) for each input of a
// Concat node; `strides` receives the output's row-major strides.
template <typename F>
void concat_blocks(const Plan& p, const PlanNode& n, int64_t* strides, F&& f) {
  const int axis = n.ints[0];
  row_major_strides(static_cast<int>(n.shape.size()), n.shape.data(), strides);
  int64_t off = 0;
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const PlanNode& in = p.nodes[n.inputs[k]];
    const int64_t base = off * strides[axis];
    off += in.shape[axis];
    f(k, in, base);
  }
}

// Linear layout ops: y = L(x). Used for the forward and (on tangents) the JVP.
// Concat takes one pointer per input (nullptr = zero block).
template <typename T>
void layout_apply(const Plan& p, const PlanNode& n, const std::vector<const T*>& x, T* y) {
  const int r = static_cast<int>(n.shape.size());
  int64_t strides[kMaxRank];
  switch (n.op) {
    case OpCode::Reshape: {
      const T* src = x[0];
      if (src == nullptr) {
        par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) { std::fill(y + b, y + e, T(0)); });
        return;
      }
      par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) { std::memcpy(y + b, src + b, sizeof(T) * (e - b)); });
      return;
    }
    case OpCode::BroadcastTo:
    case OpCode::Transpose:
    case OpCode::Slice: {
      const int64_t base = layout_strides(p, n, strides);
      const T* src = x[0];
      if (src == nullptr) {
        par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) { std::fill(y + b, y + e, T(0)); });
        return;
      }
      par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) {
        strided_gather(r, n.shape.data(), strides, base, src, y, false, b, e);
      });
      return;
    }
    case OpCode::Concat: {
      concat_blocks(p, n, strides, [&](size_t k, const PlanNode& in, int64_t base) {
        if (x[k] == nullptr) {
          for_each_strided(r, in.shape.data(), strides, base, 0, in.numel, [&](int64_t, int64_t o) { y[o] = T(0); });
          return;
        }
        const T* src = x[k];
        par(in.numel, kCopyGrain, [&](int64_t b, int64_t e) {
          strided_scatter(r, in.shape.data(), strides, base, src, y, false, b, e);
        });
      });
      return;
    }
    default:
      return;
  }
}

template <typename T>
void layout_vjp(const Plan& p, const PlanNode& n, const T* g, T* const* gin) {
  const int r = static_cast<int>(n.shape.size());
  int64_t strides[kMaxRank];
  switch (n.op) {
    case OpCode::Reshape: {
      T* gx = gin[0];
      if (!gx) return;
      par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) gx[i] += g[i];
      });
      return;
    }
    case OpCode::BroadcastTo: {
      T* gx = gin[0];
      if (!gx) return;
      const auto& is = p.nodes[n.inputs[0]].shape;
      const ReduceGeom geo = make_broadcast_vjp_geom(static_cast<int>(is.size()), is.data(), r, n.shape.data());
      par(geo.out_numel, std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, geo.red_numel)),
          [&](int64_t b, int64_t e) { reduce_forward(ReduceKind::Sum, geo, g, gx, true, b, e); });
      return;
    }
    case OpCode::Transpose:
    case OpCode::Slice: {
      T* gx = gin[0];
      if (!gx) return;
      const int64_t base = layout_strides(p, n, strides);
      par(n.numel, kCopyGrain, [&](int64_t b, int64_t e) {
        strided_scatter(r, n.shape.data(), strides, base, g, gx, true, b, e);
      });
      return;
    }
    case OpCode::Concat: {
      concat_blocks(p, n, strides, [&](size_t k, const PlanNode& in, int64_t base) {
        T* gx = gin[k];
        if (!gx) return;
        par(in.numel, kCopyGrain, [&](int64_t b, int64_t e) {
          strided_gather(r, in.shape.data(), strides, base, g, gx, true, b, e);
        });
      });
      return;
    }
    default:
      return;
  }
}

Status wrong_family(const char* method, OpCode op) {
  return Status::Error(StatusCode::Internal, std::string("executor ") + method + ": op " +
                                                 kOpNames[static_cast<int>(op)] + " belongs to the " +
                                                 task_kind_name(op_task(op)) + " task");
}

// Runs body(i, commit) over [0, n): the update (commit), or a dry run returning the first
// failing element (the lowest, independent of the thread count).
template <typename F>
int64_t drive_optim(int64_t n, bool commit, F&& body) {
  if (commit) {
    par(n, kOptimGrain, [&body](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) body(i, true);
    });
    return -1;
  }
  if (n <= kOptimGrain) {
    for (int64_t i = 0; i < n; ++i)
      if (!body(i, false)) return i;
    return -1;
  }
  const int64_t chunks = (n + kOptimGrain - 1) / kOptimGrain;
  std::vector<int64_t> first(static_cast<size_t>(chunks), -1);
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t end = std::min(n, (c + 1) * kOptimGrain);
      for (int64_t i = c * kOptimGrain; i < end; ++i)
        if (!body(i, false)) {
          first[static_cast<size_t>(c)] = i;
          break;
        }
    }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

}  // namespace

// Elements per chunk of an element-wise task: large enough that the pool's dispatch cost
// (about a microsecond with spinning workers) is small against the work, small enough to
// spread mid-size tensors over threads: a (64, 256) GRU gate is 4 chunks (16384 made it one,
// and GRU BPTT on 2 threads 1.2x instead of 1.6x faster than on 1). Values do not depend on it.
constexpr int64_t kEwGrain = 4096;
// Bytes of one array per tile of a fused chain: every task of the chain runs over one
// tile before the next tile starts, so the tile of each intermediate (written by one task,
// read by the next) is still in L1 / L2 when it is read: 1024 float64 or 2048 float32.
constexpr int64_t kEwTileBytes = 8192;

// The zero_gin slots of `t` (EwTask::zero_gin) over [b, e): zeroed just before the tile's
// accumulation, while the tile is about to be read and written anyway (no separate pass).
template <typename T>
inline void ew_zero_slots(const EwTask<T>& t, int64_t b, int64_t e) {
  for (int k = 0; k < 3; ++k)
    if (((t.zero_gin >> k) & 1u) && t.gin[k] != nullptr) std::fill(t.gin[k] + b, t.gin[k] + e, T(0));
}

// One loop per (op, mode, presence) chosen once per task (cpu/ew_dispatch.h). A task with
// zero_gin slots runs tile by tile (kEwTileBytes), each tile's slots zeroed just before it.
template <typename T>
Status host_elementwise(const EwTask<T>& task) {
  const EwLoop<T> loop = ew_select(task);
  if (loop == nullptr) return wrong_family("elementwise", task.op);
  if (task.mode == EwMode::Vjp && task.zero_gin != 0) {
    constexpr int64_t kTile = kEwTileBytes / static_cast<int64_t>(sizeof(T));
    return guard("elementwise", [&] {
      parallel_for(task.n, kEwGrain, [&task, loop](int64_t b, int64_t e) {
        for (int64_t t0 = b; t0 < e; t0 += kTile) {
          const int64_t t1 = e - t0 < kTile ? e : t0 + kTile;
          ew_zero_slots(task, t0, t1);
          loop(task, t0, t1);
        }
      });
    });
  }
  return guard("elementwise", [&] {
    parallel_for(task.n, kEwGrain, [&task, loop](int64_t b, int64_t e) { loop(task, b, e); });
  });
}

// A fused chain: all its tasks tile by tile.
template <typename T>
Status host_elementwise_chain(const EwChainTask<T>& chain) {
  if (chain.count < 0 || chain.count > kEwChainMax)
    return Status::Error(StatusCode::Internal, "elementwise_chain: task count " + std::to_string(chain.count) +
                                                   " is outside [0, " + std::to_string(kEwChainMax) + "]");
  EwLoop<T> loops[kEwChainMax];
  for (int k = 0; k < chain.count; ++k) {
    const EwTask<T>& t = chain.tasks[k];
    loops[k] = ew_select(t);
    if (loops[k] == nullptr) return wrong_family("elementwise_chain", t.op);
    if (t.n != chain.n)
      return Status::Error(StatusCode::Internal, "elementwise_chain: task " + std::to_string(k) + " has " +
                                                     std::to_string(t.n) + " elements, the chain " +
                                                     std::to_string(chain.n));
  }
  constexpr int64_t kTile = kEwTileBytes / static_cast<int64_t>(sizeof(T));
  const int count = chain.count;
  return guard("elementwise_chain", [&] {
    parallel_for(chain.n, kEwGrain, [&chain, &loops, count](int64_t b, int64_t e) {
      for (int64_t t0 = b; t0 < e; t0 += kTile) {
        const int64_t t1 = e - t0 < kTile ? e : t0 + kTile;
        for (int k = 0; k < count; ++k) {
          const EwTask<T>& t = chain.tasks[k];
          if (t.mode == EwMode::Vjp && t.zero_gin != 0) ew_zero_slots(t, t0, t1);
          loops[k](t, t0, t1);
        }
      }
    });
  });
}

template <typename T>
Status host_layout(const NodeTask<T>& task) {
  const Plan& p = *task.plan;
  const PlanNode& n = p.nodes[task.node];
  if (op_task(n.op) != TaskKind::Layout) return wrong_family("layout", n.op);
  return guard("layout", [&] {
    if (task.mode == EwMode::Vjp) {
      layout_vjp(p, n, task.gout, task.gin);
      return;
    }
    const T* const* src = task.mode == EwMode::Forward ? task.v : task.t;
    thread_local std::vector<const T*> x;  // grown once: no allocation per step
    x.resize(n.inputs.size());
    for (size_t k = 0; k < x.size(); ++k) x[k] = src[n.inputs[k]];
    layout_apply(p, n, x, task.result);
  });
}

template <typename T>
Status host_reduce(const NodeTask<T>& task) {
  const Plan& p = *task.plan;
  const PlanNode& n = p.nodes[task.node];
  if (op_task(n.op) != TaskKind::Reduce) return wrong_family("reduce", n.op);
  return guard("reduce", [&] {
    const ReduceGeom g = reduce_geom(n, p.nodes[n.inputs[0]]);
    const T* x = task.v[n.inputs[0]];
    const ReduceKind k = reduce_kind(n.op);
    const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, g.red_numel));
    switch (task.mode) {
      case EwMode::Forward: {
        T* y = task.result;
        par(g.out_numel, grain, [&](int64_t b, int64_t e) { reduce_forward(k, g, x, y, false, b, e); });
        return;
      }
      case EwMode::Jvp: {
        const T* dx = task.t[n.inputs[0]];
        const T* y = task.v[task.node];
        T* dy = task.result;
        par(g.out_numel, grain, [&](int64_t b, int64_t e) { reduce_jvp(k, g, x, y, dx, dy, b, e); });
        return;
      }
      case EwMode::Vjp: {
        T* gx = task.gin[0];
        if (!gx) return;
        const T* y = task.v[task.node];
        const T* gy = task.gout;
        par(g.out_numel, grain, [&](int64_t b, int64_t e) { reduce_vjp(k, g, x, y, gy, gx, b, e); });
        return;
      }
    }
  });
}

template <typename T>
Status host_softmax(const NodeTask<T>& task) {
  const Plan& p = *task.plan;
  const PlanNode& n = p.nodes[task.node];
  if (op_task(n.op) != TaskKind::Softmax) return wrong_family("softmax", n.op);
  return guard("softmax", [&] {
    const Lines l = lines_of(n);
    const bool lg = n.op == OpCode::LogSoftmax;
    const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.L));
    const T* y = task.v[task.node];
    auto lines = [&](auto&& line) {
      par(l.outer * l.inner, grain, [&](int64_t b, int64_t e) {
        for (int64_t li = b; li < e; ++li) line((li / l.inner) * l.L * l.inner + li % l.inner);
      });
    };
    switch (task.mode) {
      case EwMode::Forward: {
        const T* x = task.v[n.inputs[0]];
        T* out = task.result;
        lines([&](int64_t base) { softmax_line_forward(lg, x + base, out + base, l.L, l.inner); });
        return;
      }
      case EwMode::Jvp: {
        const T* dx = task.t[n.inputs[0]];
        T* dy = task.result;
        lines([&](int64_t base) { softmax_line_jvp(lg, y + base, dx + base, dy + base, l.L, l.inner); });
        return;
      }
      case EwMode::Vjp: {
        T* gx = task.gin[0];
        if (!gx) return;
        const T* g = task.gout;
        lines([&](int64_t base) { softmax_line_vjp(lg, y + base, g + base, gx + base, l.L, l.inner); });
        return;
      }
    }
  });
}

template <typename T>
Status host_matmul(const NodeTask<T>& task) {
  return host_matmul_cached(task, nullptr);
}

template <typename T>
Status host_matmul_cached(const NodeTask<T>& task, GemmPackCache* cache) {
  const Plan& p = *task.plan;
  const uint64_t ep = task.b_epoch;
  const PlanNode& n = p.nodes[task.node];
  if (op_task(n.op) != TaskKind::MatMul) return wrong_family("matmul", n.op);
  return guard("matmul", [&] {
    const MM m = mm_of(p, n);
    const T* A = task.v[n.inputs[0]];
    const T* B = task.v[n.inputs[1]];
    const bool has_bias = n.inputs.size() == 3;
    switch (task.mode) {
      case EwMode::Forward: {
        T* y = task.result;
        T beta = T(0);
        if (has_bias) {
          const T* bias = task.v[n.inputs[2]];
          for (int64_t r = 0; r < m.M; ++r) std::memcpy(y + r * m.N, bias, sizeof(T) * m.N);
          beta = T(1);
        }
        mm_product(m, A, B, beta, y, cache, ep);
        return;
      }
      case EwMode::Jvp: {
        // d(A B + c) = dA B + A dB + dc
        T* dy = task.result;
        const T* dA = task.t[n.inputs[0]];
        const T* dB = task.t[n.inputs[1]];
        const T* dc = has_bias ? task.t[n.inputs[2]] : nullptr;
        T beta = T(0);
        if (dc) {
          for (int64_t r = 0; r < m.M; ++r) std::memcpy(dy + r * m.N, dc, sizeof(T) * m.N);
          beta = T(1);
        }
        if (dA) {
          mm_product(m, dA, B, beta, dy, cache, ep);
          beta = T(1);
        }
        if (dB) {
          mm_product(m, A, dB, beta, dy);
          beta = T(1);
        }
        if (beta == T(0)) std::memset(dy, 0, sizeof(T) * n.numel);
        return;
      }
      case EwMode::Vjp: {
        const T* g = task.gout;
        // zero_gin: a product with beta 0 gives the bits of zeros followed by beta 1 (its
        // accumulators start at +0, so a sum is never -0 and 0 + sum == sum).
        auto beta_of = [&task](int k) { return (task.zero_gin >> k) & 1u ? T(0) : T(1); };
        if (task.gin_concat != nullptr) mm_grad_a_concat(p, n, m, g, B, task.gin_concat, task.zero_concat, cache, ep);
        if (task.gin[0] && task.gin0_blocks != 0)
          mm_grad_a_blocks(p, n, m, g, B, task.gin[0], beta_of(0), task.gin0_blocks, cache, ep);
        else if (task.gin[0])
          mm_grad_a(m, g, B, task.gin[0], beta_of(0), cache, ep);
        if (task.gin[1]) mm_grad_b(m, A, g, task.gin[1], beta_of(1));
        if (has_bias && task.gin[2]) {
          // The bias is broadcast over all leading dims: its VJP sums the rows.
          T* gb = task.gin[2];
          if ((task.zero_gin >> 2) & 1u) std::fill(gb, gb + m.N, T(0));
          par(m.N, 64, [&](int64_t b, int64_t e) {
            for (int64_t row = 0; row < m.M; ++row) {
              const T* gr = g + row * m.N;
              for (int64_t j = b; j < e; ++j) gb[j] += gr[j];
            }
          });
        }
        return;
      }
    }
  });
}

template <typename T>
Status host_axpy(const AxpyTask<T>& task) {
  return guard("axpy", [&] {
    const AxpyTask<T> t = task;
    par(t.n, kCopyGrain, [&t](int64_t b, int64_t e) {
      if (t.zero_y) {
        if (t.alpha == T(1)) {
          for (int64_t i = b; i < e; ++i) t.y[i] = T(0) + t.x[i];
        } else {
          for (int64_t i = b; i < e; ++i) t.y[i] = T(0) + t.alpha * t.x[i];
        }
      } else if (t.alpha == T(1)) {
        for (int64_t i = b; i < e; ++i) t.y[i] += t.x[i];
      } else {
        for (int64_t i = b; i < e; ++i) t.y[i] += t.alpha * t.x[i];
      }
    });
  });
}

template <typename T>
Status host_copy(const CopyTask<T>& task) {
  return guard("copy", [&] {
    const CopyTask<T> t = task;
    par(t.n, kCopyGrain, [&t](int64_t b, int64_t e) { std::memcpy(t.y + b, t.x + b, sizeof(T) * static_cast<size_t>(e - b)); });
  });
}

template <typename T>
Status host_fill(const FillTask<T>& task) {
  return guard("fill", [&] {
    const FillTask<T> t = task;
    if (t.stride == 1) {
      par(t.count, kCopyGrain, [&t](int64_t b, int64_t e) { std::fill(t.y + b, t.y + e, t.value); });
      return;
    }
    for (int64_t k = 0; k < t.count; ++k) t.y[k * t.stride] = t.value;
  });
}

template <typename T>
Status host_jacobian_read(const JacobianReadTask<T>& task) {
  return guard("jacobian_read", [&] {
    const JacobianReadTask<T> r = task;
    for (int m = 0; m < r.members; ++m) {
      const int64_t w = r.width[m];
      // Positions split over the pool (disjoint rows of dst); each chunk runs one member's
      // copy loop (cpu/jacobian_read.h: compile-time strides for S <= 4).
      par(r.p1 - r.p0, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, w)),
          [&](int64_t b, int64_t e) { jacobian_read_member(r, m, r.p0 + b, r.p0 + e); });
    }
  });
}

template <typename T>
Status host_find_non_finite(const FiniteScanTask<T>& task) {
  if (task.first == nullptr) return Status::Error(StatusCode::Internal, "find_non_finite: no result pointer");
  const T* const x = task.x;
  if (task.n <= kScanGrain) {
    *task.first = first_non_finite(x, task.n);
    return Status::Ok();
  }
  // Chunks over the pool, each its own first non-finite index; the answer is the smallest,
  // whatever the split (a chunk that starts past one already found skips its scan).
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
  return guard("find_non_finite", [&] {
    parallel_for(task.n, kScanGrain, [x, &first](int64_t b, int64_t e) {
      if (b >= first.load(std::memory_order_relaxed)) return;
      const int64_t i = first_non_finite(x + b, e - b);
      if (i < 0) return;
      int64_t cur = first.load(std::memory_order_relaxed);
      while (b + i < cur && !first.compare_exchange_weak(cur, b + i, std::memory_order_relaxed)) {
      }
    });
    const int64_t f = first.load();
    *task.first = f == std::numeric_limits<int64_t>::max() ? -1 : f;
  });
}

template <typename T>
Status host_drtrl_dense(const DenseTraceTask<T>& task) {
  return guard("drtrl_dense", [&] { cpu_drtrl_dense(task); });
}

template <typename T>
Status host_vec_trace(const VecTraceTask<T>& task) {
  return guard("vec_trace", [&] { cpu_vec_trace(task); });
}

template <typename T>
Status host_pp_input(const PpInputTask<T>& task) {
  return guard("pp_input", [&] { cpu_pp_input(task.xbar, task.x, task.decay_x, task.n); });
}

template <typename T>
Status host_pp_project(const PpProjectTask<T>& t) {
  return guard("pp_project", [&] { cpu_pp_project(t.g, t.epsf, t.P, t.S, t.inv_c, t.q, t.accumulate); });
}

template <typename T>
Status host_pp_vec_grad(const PpVecGradTask<T>& t) {
  return guard("pp_vec_grad", [&] { cpu_pp_vec_grad(t.q, t.B, t.O, t.dp); });
}

template <typename T>
Status host_pp_dense_grad(const PpDenseGradTask<T>& t) {
  return guard("pp_dense_grad", [&] { cpu_pp_dense_grad(t.xbar, t.q, t.K, t.I, t.O, t.dW); });
}

template <typename T>
Status host_optim_step(const OptimTask<T>& task) {
  if (task.first_bad == nullptr) return Status::Error(StatusCode::Internal, "optim_step: no result pointer");
  return guard("optim_step", [&] {
    int64_t bad = -1;
    switch (task.kind) {
      case 0: {
        const SgdTask<T>& k = task.sgd;
        bad = drive_optim(task.n, task.commit, [&k](int64_t j, bool c) { return sgd_update(k, j, c); });
        break;
      }
      case 1: {
        const AdamTask<T>& k = task.adam;
        bad = drive_optim(task.n, task.commit, [&k](int64_t j, bool c) { return adam_update(k, j, c); });
        break;
      }
      default: {
        const RmsPropTask<T>& k = task.rmsprop;
        bad = drive_optim(task.n, task.commit, [&k](int64_t j, bool c) { return rmsprop_update(k, j, c); });
        break;
      }
    }
    *task.first_bad = bad;
  });
}

template <typename T>
Status host_sum_squares(const SumSquaresTask<T>& task) {
  if (task.out == nullptr) return Status::Error(StatusCode::Internal, "sum_squares: no result pointer");
  return guard("sum_squares", [&] {
    struct Block {
      const T* x;
      int64_t b, e;
    };
    std::vector<Block> blocks;
    for (int64_t a = 0; a < task.arrays; ++a)
      for (int64_t b = 0; b < task.n[a]; b += kNormBlock)
        blocks.push_back({task.x[a], b, std::min(task.n[a], b + kNormBlock)});
    std::vector<double> partial(blocks.size(), 0.0);
    const int64_t nb = static_cast<int64_t>(blocks.size());
    int64_t total = 0;
    for (int64_t a = 0; a < task.arrays; ++a) total += task.n[a];
    // Less than one block of work in all (many tiny tensors): the pool's wake-up would cost
    // more than the sums; the same partials, summed in the same order, on this thread.
    if (nb > 1 && total > kNormBlock) {
      parallel_for(nb, 1, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) partial[j] = sum_squares(blocks[j].x, blocks[j].b, blocks[j].e);
      });
    } else {
      for (int64_t j = 0; j < nb; ++j) partial[j] = sum_squares(blocks[j].x, blocks[j].b, blocks[j].e);
    }
    double s = 0;
    for (double v : partial) s += v;
    *task.out = s;
  });
}

#define BT_HOST_TASK_INSTANTIATE(method, Task)                         \
  template Status host_##method<float>(const Task<float>& task);      \
  template Status host_##method<double>(const Task<double>& task);
BT_EXECUTOR_TASKS(BT_HOST_TASK_INSTANTIATE)
#undef BT_HOST_TASK_INSTANTIATE
template Status host_matmul_cached<float>(const NodeTask<float>&, GemmPackCache*);
template Status host_matmul_cached<double>(const NodeTask<double>&, GemmPackCache*);

}  // namespace bt
