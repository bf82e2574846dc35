// Eligibility-trace update and gradient contraction bodies (D_RTRL, pp_prop), shared by
// the CPU driver (native/cpu/trace_cpu.cc) and any device driver. See
// braintrace/online.h for the equations, shapes and timing rules.
//
// Shapes (row-major): D (B, O, S, S) with D[b,k,a,c] = d h_a[b,k] / d h_c[b,k] (null: a
// zero-recurrence group, D == 0); df (B, O, S); x (B, I); g (B, O, S); dense trace
// eps (B, I, O, S); bias / element-wise / pp_prop output traces (B, O, S).
//
// Every body below owns one output row of the parameter gradient (one i of dW, or one k
// of db / dw) and loops over the batch inside, so a driver that splits the rows over
// threads (or blocks) has exactly one writer per gradient element and needs no atomics.
#pragma once

#include <stdint.h>

#include "kernels/hd.h"

namespace bt {

// Plain-data description of one dense D_RTRL trace step (one relation, one target group).
template <typename T>
struct DenseTraceTask {
  int64_t B = 0, I = 0, O = 0, S = 1;
  T* eps = nullptr;        // (B, I, O, S), updated in place when `update`
  const T* D = nullptr;    // (B, O, S, S) or null (D == 0)
  const T* df = nullptr;   // (B, O, S)
  const T* x = nullptr;    // (B, I)
  const T* g = nullptr;    // (B, O, S) learning signal, or null: no contraction
  T* dW = nullptr;         // (I, O) gradient accumulator (read only when g is set)
  bool update = true;      // false: contraction only (multi-step windows, trace at entry)
};

// One vector trace (B, O, S) step: eps <- alpha (D eps) + beta df, and optionally
// dp[k] += scale * sum_b sum_a g[b,k,a] eps[b,k,a] with the NEW eps.
// D_RTRL bias / element-wise: alpha = beta = 1, scale = 1.
// pp_prop output trace: alpha = decay_f, beta = 1 - decay_f; its contraction is done
// separately (pp_project) because it is weighted by the input trace.
template <typename T>
struct VecTraceTask {
  int64_t B = 0, O = 0, S = 1;
  T* eps = nullptr;
  const T* D = nullptr;
  const T* df = nullptr;
  T alpha = T(1), beta = T(1);
  const T* g = nullptr;    // null: no contraction
  T* dp = nullptr;         // (O)
  T scale = T(1);
  bool update = true;
};

// Recurrent + instant term of one (b, k) position of a trace with S states:
//   row[a] <- alpha * sum_c Dk[a, c] row[c] + beta * dfk[a]
// `tmp` holds S values (the old row must be read whole before it is overwritten).
template <typename T>
BT_HD void trace_position_update(int64_t S, const T* Dk, const T* dfk, T alpha, T beta, T* row, T* tmp) {
  if (S == 1) {
    const T r = Dk ? Dk[0] * row[0] : T(0);
    row[0] = alpha * r + beta * dfk[0];
    return;
  }
  for (int64_t a = 0; a < S; ++a) {
    T acc = T(0);
    if (Dk)
      for (int64_t c = 0; c < S; ++c) acc += Dk[a * S + c] * row[c];
    tmp[a] = alpha * acc + beta * dfk[a];
  }
  for (int64_t a = 0; a < S; ++a) row[a] = tmp[a];
}

// Dense D_RTRL, one trace segment: batch row b, weight row i (all k, a), the single body
// of the dense update + contraction:
//   eps[b,i,k,a] <- sum_c D[b,k,a,c] eps[b,i,k,c] + x[b,i] df[b,k,a]
//   dW[i,k]      += sum_a g[b,k,a] eps[b,i,k,a]            (new eps)
// The segment eps[b, i, :, :] (O*S contiguous values) is read once and written once; a
// driver owns dW row i while it runs segments of that row (no atomics). `tmp` holds S
// values (S >= 2 only).
namespace trace_detail {

// S == 1: contiguous, branch-free inner loops the compiler vectorises (the flags are
// compile-time, the pointers restrict-qualified: e, dw are written, everything else read).
template <typename T, bool kD, bool kG>
BT_HD void dense_s1_update(int64_t O, T* __restrict e, const T* __restrict D, const T* __restrict df, T xi,
                           const T* __restrict g, T* __restrict dw) {
  for (int64_t k = 0; k < O; ++k) {
    const T v = kD ? D[k] * e[k] + xi * df[k] : xi * df[k];
    e[k] = v;
    if (kG) dw[k] += g[k] * v;
  }
}

template <typename T>
BT_HD void dense_s1_contract(int64_t O, const T* __restrict e, const T* __restrict g, T* __restrict dw) {
  for (int64_t k = 0; k < O; ++k) dw[k] += g[k] * e[k];
}

// 2 <= S <= 4 known at compile time: the position update and the contraction unrolled
// (no scratch row, no inner loop bounds), in exactly the generic path's operation order
// (trace_position_update with alpha = 1, then the contraction sum from 0), so results are
// bit for bit those of the generic path.
template <typename T, int kS, bool kD, bool kU, bool kG>
BT_HD void dense_sn_segment(int64_t O, T* __restrict e, const T* __restrict D, const T* __restrict df, T xi,
                            const T* __restrict g, T* __restrict dw) {
  for (int64_t k = 0; k < O; ++k) {
    T* __restrict row = e + k * kS;
    T v[kS];
    for (int a = 0; a < kS; ++a) v[a] = row[a];
    if (kU) {
      T n[kS];
      for (int a = 0; a < kS; ++a) {
        T acc = T(0);
        if (kD)
          for (int c = 0; c < kS; ++c) acc += D[(k * kS + a) * kS + c] * v[c];
        n[a] = T(1) * acc + xi * df[k * kS + a];
      }
      for (int a = 0; a < kS; ++a) row[a] = v[a] = n[a];
    }
    if (kG) {
      T acc = T(0);
      for (int a = 0; a < kS; ++a) acc += g[k * kS + a] * v[a];
      dw[k] += acc;
    }
  }
}

template <typename T, int kS>
BT_HD void dense_sn_dispatch(int64_t O, T* e, const T* D, const T* df, T xi, const T* g, T* dw, bool update) {
  if (!update) {
    if (g) dense_sn_segment<T, kS, false, false, true>(O, e, D, df, xi, g, dw);
  } else if (D) {
    if (g) dense_sn_segment<T, kS, true, true, true>(O, e, D, df, xi, g, dw);
    else dense_sn_segment<T, kS, true, true, false>(O, e, D, df, xi, g, dw);
  } else {
    if (g) dense_sn_segment<T, kS, false, true, true>(O, e, D, df, xi, g, dw);
    else dense_sn_segment<T, kS, false, true, false>(O, e, D, df, xi, g, dw);
  }
}

}  // namespace trace_detail

template <typename T>
BT_HD void drtrl_dense_segment(const DenseTraceTask<T>& t, int64_t b, int64_t i, T* tmp) {
  const int64_t O = t.O, S = t.S, OS = t.O * t.S;
  T* e = t.eps + (b * t.I + i) * OS;
  const T* gb = t.g ? t.g + b * OS : nullptr;
  T* dWi = t.g ? t.dW + i * O : nullptr;
  if (S == 1) {
    if (!t.update) {
      if (gb) trace_detail::dense_s1_contract(O, e, gb, dWi);
      return;
    }
    const T xi = t.x[b * t.I + i];
    const T* dfb = t.df + b * O;
    if (t.D) {
      const T* Db = t.D + b * O;
      if (gb) trace_detail::dense_s1_update<T, true, true>(O, e, Db, dfb, xi, gb, dWi);
      else trace_detail::dense_s1_update<T, true, false>(O, e, Db, dfb, xi, gb, dWi);
    } else {
      if (gb) trace_detail::dense_s1_update<T, false, true>(O, e, nullptr, dfb, xi, gb, dWi);
      else trace_detail::dense_s1_update<T, false, false>(O, e, nullptr, dfb, xi, gb, dWi);
    }
    return;
  }
  const T xi = t.update ? t.x[b * t.I + i] : T(0);
  if (S <= 4) {
    const T* Db = t.D ? t.D + b * O * S * S : nullptr;
    const T* dfb = t.update ? t.df + b * OS : nullptr;
    if (S == 2) trace_detail::dense_sn_dispatch<T, 2>(O, e, Db, dfb, xi, gb, dWi, t.update);
    else if (S == 3) trace_detail::dense_sn_dispatch<T, 3>(O, e, Db, dfb, xi, gb, dWi, t.update);
    else trace_detail::dense_sn_dispatch<T, 4>(O, e, Db, dfb, xi, gb, dWi, t.update);
    return;
  }
  for (int64_t k = 0; k < O; ++k) {
    T* row = e + k * S;
    if (t.update)
      trace_position_update(S, t.D ? t.D + ((b * O + k) * S) * S : nullptr, t.df + (b * O + k) * S, T(1), xi, row,
                            tmp);
    if (gb) {
      T acc = T(0);
      for (int64_t a = 0; a < S; ++a) acc += gb[k * S + a] * row[a];
      dWi[k] += acc;
    }
  }
}

// Dense D_RTRL, one row i of the weight (every b): the segments of row i in batch order.
// A driver that gives each thread (or block) whole rows has one writer per dW element.
// (The CPU driver walks rows [i0, i1) inside each b instead, which streams the trace in
// contiguous runs; the result is the same, segment by segment.)
template <typename T>
BT_HD void drtrl_dense_row(const DenseTraceTask<T>& t, int64_t i, T* tmp) {
  for (int64_t b = 0; b < t.B; ++b) drtrl_dense_segment(t, b, i, tmp);
}

// Vector trace, one position p = (b, k): the update, then acc += sum_a g[p, a] eps[p, a]
// (with g). A column k's contraction is acc over b = 0..B-1 in order, then
// dp[k] += scale * acc; drivers may walk positions in any order that keeps b ascending per k.
template <typename T>
BT_HD void vec_trace_position(const VecTraceTask<T>& t, int64_t p, T* tmp, T& acc) {
  const int64_t S = t.S;
  T* row = t.eps + p * S;
  if (t.update) trace_position_update(S, t.D ? t.D + p * S * S : nullptr, t.df + p * S, t.alpha, t.beta, row, tmp);
  if (t.g)
    for (int64_t a = 0; a < S; ++a) acc += t.g[p * S + a] * row[a];
}

// Vector trace, one output position k (every b, a): see VecTraceTask.
template <typename T>
BT_HD void vec_trace_col(const VecTraceTask<T>& t, int64_t k, T* tmp) {
  T acc = T(0);
  for (int64_t b = 0; b < t.B; ++b) vec_trace_position(t, b * t.O + k, tmp, acc);
  if (t.g) t.dp[k] += t.scale * acc;
}

namespace trace_detail {

// Vector trace, a run of n consecutive positions of one batch row (p = p0 .. p0 + n - 1,
// the pointers already offset to p0) with 1 <= S <= 4, D / update / contraction known at
// compile time: contiguous, restrict-qualified, branch-free loops the compiler vectorises
// (e and acc are written, everything else read). acc[j] is position p0 + j's column
// accumulator: acc[j] += sum_a g[., a] eps[., a] (new eps), a ascending, added into acc
// one product at a time. The operation order per element is vec_trace_position's
// (trace_position_update: S == 1 without the zero start, S >= 2 from T(0)), so results
// are bit for bit those of the generic body.
template <typename T, int kS, bool kD, bool kU, bool kG>
BT_HD void vec_sn_run(int64_t n, T* __restrict e, const T* __restrict D, const T* __restrict df, T alpha, T beta,
                      const T* __restrict g, T* __restrict acc) {
  for (int64_t j = 0; j < n; ++j) {
    T v[kS];
    for (int a = 0; a < kS; ++a) v[a] = e[j * kS + a];
    if (kU) {
      T nv[kS];
      if (kS == 1) {
        const T r = kD ? D[j] * v[0] : T(0);
        nv[0] = alpha * r + beta * df[j];
      } else {
        for (int a = 0; a < kS; ++a) {
          T s = T(0);
          if (kD)
            for (int c = 0; c < kS; ++c) s += D[(j * kS + a) * kS + c] * v[c];
          nv[a] = alpha * s + beta * df[j * kS + a];
        }
      }
      for (int a = 0; a < kS; ++a) e[j * kS + a] = v[a] = nv[a];
    }
    if (kG) {
      T s = acc[j];
      for (int a = 0; a < kS; ++a) s += g[j * kS + a] * v[a];
      acc[j] = s;
    }
  }
}

// vec_sn_run with the flags taken from the run-time pointers (D, g null or not) and
// `update` (no update and no g: nothing to do).
template <typename T, int kS>
BT_HD void vec_sn_dispatch(int64_t n, T* e, const T* D, const T* df, T alpha, T beta, const T* g, T* acc,
                           bool update) {
  if (!update) {
    if (g) vec_sn_run<T, kS, false, false, true>(n, e, D, df, alpha, beta, g, acc);
  } else if (D) {
    if (g) vec_sn_run<T, kS, true, true, true>(n, e, D, df, alpha, beta, g, acc);
    else vec_sn_run<T, kS, true, true, false>(n, e, D, df, alpha, beta, g, acc);
  } else {
    if (g) vec_sn_run<T, kS, false, true, true>(n, e, D, df, alpha, beta, g, acc);
    else vec_sn_run<T, kS, false, true, false>(n, e, D, df, alpha, beta, g, acc);
  }
}

}  // namespace trace_detail

// Vector trace, batch row b, columns [k0, k1): vec_trace_position for p = b * O + k in k
// order, with acc[k - k0] the column accumulator of k (a driver walks b ascending for each
// column, then adds dp[k] += scale * acc[k - k0] as vec_trace_col does). S <= 4 runs the
// specialised loops above; wider groups the generic body with `tmp` (S values).
template <typename T>
BT_HD void vec_trace_row(const VecTraceTask<T>& t, int64_t b, int64_t k0, int64_t k1, T* acc, T* tmp) {
  const int64_t S = t.S, p0 = b * t.O + k0, n = k1 - k0;
  if (n <= 0 || (!t.update && !t.g)) return;
  if (S <= 4) {
    T* e = t.eps + p0 * S;
    const T* D = t.update && t.D ? t.D + p0 * S * S : nullptr;
    const T* df = t.update ? t.df + p0 * S : nullptr;
    const T* g = t.g ? t.g + p0 * S : nullptr;
    if (S == 1) trace_detail::vec_sn_dispatch<T, 1>(n, e, D, df, t.alpha, t.beta, g, acc, t.update);
    else if (S == 2) trace_detail::vec_sn_dispatch<T, 2>(n, e, D, df, t.alpha, t.beta, g, acc, t.update);
    else if (S == 3) trace_detail::vec_sn_dispatch<T, 3>(n, e, D, df, t.alpha, t.beta, g, acc, t.update);
    else trace_detail::vec_sn_dispatch<T, 4>(n, e, D, df, t.alpha, t.beta, g, acc, t.update);
    return;
  }
  for (int64_t j = 0; j < n; ++j) vec_trace_position(t, p0 + j, tmp, acc[j]);
}

// pp_prop input trace, one element: xbar <- decay_x xbar + x.
template <typename T>
BT_HD void pp_input_update(T* xbar, const T* x, T decay_x, int64_t n) {
  xbar[n] = decay_x * xbar[n] + x[n];
}

// pp_prop input trace over n consecutive elements (pointers offset to the first): the
// pp_input_update body as one restrict-qualified loop the compiler vectorises.
template <typename T>
BT_HD void pp_input_run(int64_t n, T* __restrict xbar, const T* __restrict x, T decay_x) {
  for (int64_t i = 0; i < n; ++i) xbar[i] = decay_x * xbar[i] + x[i];
}

// pp_prop learning-signal projection, one position p = (b, k):
//   q[p] = sum_a g[p, a] epsf[p, a] / c        (accumulate: q[p] += ..., for a relation
//                                               that targets several groups)
template <typename T>
BT_HD void pp_project(const T* g, const T* epsf, int64_t S, T inv_c, T* q, int64_t p, bool accumulate) {
  T acc = T(0);
  for (int64_t a = 0; a < S; ++a) acc += g[p * S + a] * epsf[p * S + a];
  q[p] = accumulate ? q[p] + acc * inv_c : acc * inv_c;
}

namespace trace_detail {

// pp_project over n consecutive positions (pointers offset to the first) with S and
// accumulate known at compile time: the same sum from T(0), a ascending, then the same
// scaling, so results are bit for bit pp_project's.
template <typename T, int kS, bool kAcc>
BT_HD void pp_project_sn(int64_t n, const T* __restrict g, const T* __restrict epsf, T inv_c, T* __restrict q) {
  for (int64_t p = 0; p < n; ++p) {
    T acc = T(0);
    for (int a = 0; a < kS; ++a) acc += g[p * kS + a] * epsf[p * kS + a];
    q[p] = kAcc ? q[p] + acc * inv_c : acc * inv_c;
  }
}

// pp_project_sn with `accumulate` as a template argument.
template <typename T, int kS>
BT_HD void pp_project_acc(int64_t n, const T* g, const T* epsf, T inv_c, T* q, bool accumulate) {
  if (accumulate) pp_project_sn<T, kS, true>(n, g, epsf, inv_c, q);
  else pp_project_sn<T, kS, false>(n, g, epsf, inv_c, q);
}

}  // namespace trace_detail

// pp_project over positions [p0, p1): S <= 4 runs the specialised loops, wider groups
// the per-position body.
template <typename T>
BT_HD void pp_project_range(const T* g, const T* epsf, int64_t S, T inv_c, T* q, int64_t p0, int64_t p1,
                            bool accumulate) {
  const int64_t n = p1 - p0;
  if (n <= 0) return;
  const T* gp = g + p0 * S;
  const T* ep = epsf + p0 * S;
  T* qp = q + p0;
  switch (S) {
    case 1: trace_detail::pp_project_acc<T, 1>(n, gp, ep, inv_c, qp, accumulate); return;
    case 2: trace_detail::pp_project_acc<T, 2>(n, gp, ep, inv_c, qp, accumulate); return;
    case 3: trace_detail::pp_project_acc<T, 3>(n, gp, ep, inv_c, qp, accumulate); return;
    case 4: trace_detail::pp_project_acc<T, 4>(n, gp, ep, inv_c, qp, accumulate); return;
    default:
      for (int64_t p = p0; p < p1; ++p) pp_project(g, epsf, S, inv_c, q, p, accumulate);
  }
}

// pp_prop dense gradient: dW[i,k] += sum_t sum_b xbar_t[b,i] q_t[b,k] is one GEMM over a
// chunk of contractions (xbar and q of C steps stacked, K = C * B): dW += Xbar^T Q, run by
// the driver's gemm (cpu/parallel_gemm.h), not a per-step body here (a rank-B update per
// step would be BLAS-2: B*I*O multiply-adds over B*(I+O) values, bound by reading dW).

// pp_prop bias / element-wise gradient, one k: dp[k] += sum_b q[b,k].
template <typename T>
BT_HD void pp_vec_col(const T* q, int64_t B, int64_t O, T* dp, int64_t k) {
  T acc = T(0);
  for (int64_t b = 0; b < B; ++b) acc += q[b * O + k];
  dp[k] += acc;
}

// pp_prop bias / element-wise gradient, columns [k0, k1) at once: batch rows outer, so q
// is read in contiguous runs; acc (k1 - k0 values, scratch) holds each column's sum, which
// adds q[b, k] over b ascending from T(0) and then goes into dp[k] exactly as pp_vec_col's
// does (bit for bit the same).
template <typename T>
BT_HD void pp_vec_cols(const T* __restrict q, int64_t B, int64_t O, T* __restrict dp, int64_t k0, int64_t k1,
                       T* __restrict acc) {
  const int64_t n = k1 - k0;
  for (int64_t j = 0; j < n; ++j) acc[j] = T(0);
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict qb = q + b * O + k0;
    for (int64_t j = 0; j < n; ++j) acc[j] += qb[j];
  }
  for (int64_t j = 0; j < n; ++j) dp[k0 + j] += acc[j];
}

}  // namespace bt
