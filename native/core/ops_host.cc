#include "core/ops_host.h"

#include <algorithm>
#include <cstring>

#include "cpu/parallel_gemm.h"
#include "cpu/thread_pool.h"
#include "kernels/layout.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace bt {
namespace {

constexpr int64_t kGrain = 16384;

template <typename F>
void par(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n <= grain) {
    f(int64_t(0), n);
    return;
  }
  parallel_for(n, grain, f);
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

template <typename T>
void mm_product(const MM& m, const T* A, const T* B, T beta, T* C) {
  GemmDims d;
  d.M = m.M; d.N = m.N; d.K = m.K;
  d.lda = m.K; d.ldb = m.N; d.ldc = m.N;
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), A + g * m.sa, B + g * m.sb, beta, C + g * m.sc);
}

// gA += G B^T
template <typename T>
void mm_grad_a(const MM& m, const T* Gr, const T* B, T* gA) {
  GemmDims d;
  d.trans_b = true;
  d.M = m.M; d.N = m.K; d.K = m.N;
  d.lda = m.N; d.ldb = m.N; d.ldc = m.K;
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), Gr + g * m.sc, B + g * m.sb, T(1), gA + g * m.sa);
}

// gB += A^T G
template <typename T>
void mm_grad_b(const MM& m, const T* A, const T* Gr, T* gB) {
  GemmDims d;
  d.trans_a = true;
  d.M = m.K; d.N = m.N; d.K = m.M;
  d.lda = m.K; d.ldb = m.N; d.ldc = m.N;
  for (int64_t g = 0; g < m.G; ++g) gemm(d, T(1), A + g * m.sa, Gr + g * m.sc, T(1), gB + g * m.sb);
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
      par(n.numel, kGrain, [&](int64_t b, int64_t e) { std::memcpy(y + b, src + b, sizeof(T) * (e - b)); });
      return;
    }
    case OpCode::BroadcastTo:
    case OpCode::Transpose:
    case OpCode::Slice: {
      const auto& is = p.nodes[n.inputs[0]].shape;
      int64_t base = 0;
      if (n.op == OpCode::BroadcastTo)
        broadcast_strides(static_cast<int>(is.size()), is.data(), r, n.shape.data(), strides);
      else if (n.op == OpCode::Transpose)
        transpose_strides(r, is.data(), n.ints.data(), strides);
      else
        base = slice_strides(r, is.data(), n.ints.data(), strides);
      const T* src = x[0];
      par(n.numel, kGrain, [&](int64_t b, int64_t e) {
        strided_gather(r, n.shape.data(), strides, base, src, y, false, b, e);
      });
      return;
    }
    case OpCode::Concat: {
      const int axis = n.ints[0];
      row_major_strides(r, n.shape.data(), strides);
      int64_t off = 0;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const PlanNode& in = p.nodes[n.inputs[k]];
        const int64_t base = off * strides[axis];
        off += in.shape[axis];
        if (x[k] == nullptr) {
          for_each_strided(r, in.shape.data(), strides, base, 0, in.numel, [&](int64_t, int64_t o) { y[o] = T(0); });
          continue;
        }
        const T* src = x[k];
        par(in.numel, kGrain, [&](int64_t b, int64_t e) {
          strided_scatter(r, in.shape.data(), strides, base, src, y, false, b, e);
        });
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace

template <typename T>
void HostOps<T>::forward(const Plan& p, int id, const std::vector<T*>& v) {
  const PlanNode& n = p.nodes[id];
  T* y = v[id];
  switch (n.op) {
    case OpCode::Reshape:
    case OpCode::BroadcastTo:
    case OpCode::Transpose:
    case OpCode::Slice:
    case OpCode::Concat: {
      thread_local std::vector<const T*> x;  // grown once: no allocation per step
      x.resize(n.inputs.size());
      for (size_t k = 0; k < x.size(); ++k) x[k] = v[n.inputs[k]];
      layout_apply(p, n, x, y);
      return;
    }
    case OpCode::ReduceSum:
    case OpCode::ReduceMean:
    case OpCode::ReduceMax: {
      const ReduceGeom g = reduce_geom(n, p.nodes[n.inputs[0]]);
      const T* x = v[n.inputs[0]];
      const ReduceKind k = reduce_kind(n.op);
      par(g.out_numel, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, g.red_numel)),
          [&](int64_t b, int64_t e) { reduce_forward(k, g, x, y, false, b, e); });
      return;
    }
    case OpCode::Softmax:
    case OpCode::LogSoftmax: {
      const Lines l = lines_of(n);
      const bool lg = n.op == OpCode::LogSoftmax;
      const T* x = v[n.inputs[0]];
      par(l.outer * l.inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.L)), [&](int64_t b, int64_t e) {
        for (int64_t li = b; li < e; ++li) {
          const int64_t base = (li / l.inner) * l.L * l.inner + li % l.inner;
          softmax_line_forward(lg, x + base, y + base, l.L, l.inner);
        }
      });
      return;
    }
    case OpCode::MatMul:
    case OpCode::EtpMatMul: {
      const MM m = mm_of(p, n);
      T beta = T(0);
      if (n.inputs.size() == 3) {
        const T* bias = v[n.inputs[2]];
        for (int64_t r = 0; r < m.M; ++r) std::memcpy(y + r * m.N, bias, sizeof(T) * m.N);
        beta = T(1);
      }
      mm_product(m, v[n.inputs[0]], v[n.inputs[1]], beta, y);
      return;
    }
    default:
      return;  // leaves and element-wise ops are not host ops
  }
}

template <typename T>
void HostOps<T>::jvp(const Plan& p, int id, const std::vector<T*>& v, const std::vector<const T*>& t,
                     T* dy) {
  const PlanNode& n = p.nodes[id];
  switch (n.op) {
    case OpCode::Reshape:
    case OpCode::BroadcastTo:
    case OpCode::Transpose:
    case OpCode::Slice:
    case OpCode::Concat: {
      thread_local std::vector<const T*> x;  // grown once: no allocation per step
      x.resize(n.inputs.size());
      for (size_t k = 0; k < x.size(); ++k) x[k] = t[n.inputs[k]];
      layout_apply(p, n, x, dy);
      return;
    }
    case OpCode::ReduceSum:
    case OpCode::ReduceMean:
    case OpCode::ReduceMax: {
      const ReduceGeom g = reduce_geom(n, p.nodes[n.inputs[0]]);
      const T* x = v[n.inputs[0]];
      const T* dx = t[n.inputs[0]];
      const T* y = v[id];
      const ReduceKind k = reduce_kind(n.op);
      par(g.out_numel, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, g.red_numel)),
          [&](int64_t b, int64_t e) { reduce_jvp(k, g, x, y, dx, dy, b, e); });
      return;
    }
    case OpCode::Softmax:
    case OpCode::LogSoftmax: {
      const Lines l = lines_of(n);
      const bool lg = n.op == OpCode::LogSoftmax;
      const T* y = v[id];
      const T* dx = t[n.inputs[0]];
      par(l.outer * l.inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.L)), [&](int64_t b, int64_t e) {
        for (int64_t li = b; li < e; ++li) {
          const int64_t base = (li / l.inner) * l.L * l.inner + li % l.inner;
          softmax_line_jvp(lg, y + base, dx + base, dy + base, l.L, l.inner);
        }
      });
      return;
    }
    case OpCode::MatMul:
    case OpCode::EtpMatMul: {
      // d(A B + c) = dA B + A dB + dc
      const MM m = mm_of(p, n);
      const T* A = v[n.inputs[0]];
      const T* B = v[n.inputs[1]];
      const T* dA = t[n.inputs[0]];
      const T* dB = t[n.inputs[1]];
      const T* dc = n.inputs.size() == 3 ? t[n.inputs[2]] : nullptr;
      T beta = T(0);
      if (dc) {
        for (int64_t r = 0; r < m.M; ++r) std::memcpy(dy + r * m.N, dc, sizeof(T) * m.N);
        beta = T(1);
      }
      if (dA) {
        mm_product(m, dA, B, beta, dy);
        beta = T(1);
      }
      if (dB) {
        mm_product(m, A, dB, beta, dy);
        beta = T(1);
      }
      if (beta == T(0)) std::memset(dy, 0, sizeof(T) * n.numel);
      return;
    }
    default:
      return;
  }
}

template <typename T>
void HostOps<T>::vjp(const Plan& p, int id, const std::vector<T*>& v, const T* g,
                     const std::vector<T*>& gin) {
  const PlanNode& n = p.nodes[id];
  const int r = static_cast<int>(n.shape.size());
  int64_t strides[kMaxRank];
  switch (n.op) {
    case OpCode::Reshape: {
      T* gx = gin[0];
      if (!gx) return;
      par(n.numel, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) gx[i] += g[i];
      });
      return;
    }
    case OpCode::BroadcastTo: {
      T* gx = gin[0];
      if (!gx) return;
      const auto& is = p.nodes[n.inputs[0]].shape;
      const ReduceGeom geo = make_broadcast_vjp_geom(static_cast<int>(is.size()), is.data(), r, n.shape.data());
      par(geo.out_numel, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, geo.red_numel)),
          [&](int64_t b, int64_t e) { reduce_forward(ReduceKind::Sum, geo, g, gx, true, b, e); });
      return;
    }
    case OpCode::Transpose:
    case OpCode::Slice: {
      T* gx = gin[0];
      if (!gx) return;
      const auto& is = p.nodes[n.inputs[0]].shape;
      int64_t base = 0;
      if (n.op == OpCode::Transpose)
        transpose_strides(r, is.data(), n.ints.data(), strides);
      else
        base = slice_strides(r, is.data(), n.ints.data(), strides);
      par(n.numel, kGrain, [&](int64_t b, int64_t e) {
        strided_scatter(r, n.shape.data(), strides, base, g, gx, true, b, e);
      });
      return;
    }
    case OpCode::Concat: {
      const int axis = n.ints[0];
      row_major_strides(r, n.shape.data(), strides);
      int64_t off = 0;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const PlanNode& in = p.nodes[n.inputs[k]];
        const int64_t base = off * strides[axis];
        off += in.shape[axis];
        T* gx = gin[k];
        if (!gx) continue;
        par(in.numel, kGrain, [&](int64_t b, int64_t e) {
          strided_gather(r, in.shape.data(), strides, base, g, gx, true, b, e);
        });
      }
      return;
    }
    case OpCode::ReduceSum:
    case OpCode::ReduceMean:
    case OpCode::ReduceMax: {
      T* gx = gin[0];
      if (!gx) return;
      const ReduceGeom geo = reduce_geom(n, p.nodes[n.inputs[0]]);
      const T* x = v[n.inputs[0]];
      const T* y = v[id];
      const ReduceKind k = reduce_kind(n.op);
      par(geo.out_numel, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, geo.red_numel)),
          [&](int64_t b, int64_t e) { reduce_vjp(k, geo, x, y, g, gx, b, e); });
      return;
    }
    case OpCode::Softmax:
    case OpCode::LogSoftmax: {
      T* gx = gin[0];
      if (!gx) return;
      const Lines l = lines_of(n);
      const bool lg = n.op == OpCode::LogSoftmax;
      const T* y = v[id];
      par(l.outer * l.inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.L)), [&](int64_t b, int64_t e) {
        for (int64_t li = b; li < e; ++li) {
          const int64_t base = (li / l.inner) * l.L * l.inner + li % l.inner;
          softmax_line_vjp(lg, y + base, g + base, gx + base, l.L, l.inner);
        }
      });
      return;
    }
    case OpCode::MatMul:
    case OpCode::EtpMatMul: {
      const MM m = mm_of(p, n);
      const T* A = v[n.inputs[0]];
      const T* B = v[n.inputs[1]];
      if (gin[0]) mm_grad_a(m, g, B, gin[0]);
      if (gin[1]) mm_grad_b(m, A, g, gin[1]);
      if (n.inputs.size() == 3 && gin[2]) {
        // The bias is broadcast over all leading dims: its VJP sums the rows.
        T* gb = gin[2];
        par(m.N, 64, [&](int64_t b, int64_t e) {
          for (int64_t row = 0; row < m.M; ++row) {
            const T* gr = g + row * m.N;
            for (int64_t j = b; j < e; ++j) gb[j] += gr[j];
          }
        });
      }
      return;
    }
    default:
      return;
  }
}

template struct HostOps<float>;
template struct HostOps<double>;

}  // namespace bt
