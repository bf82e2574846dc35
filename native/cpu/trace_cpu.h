// CPU drivers of the eligibility-trace bodies in native/kernels/trace.h: each splits the
// gradient rows over the process thread pool (one writer per gradient element).
#pragma once

#include <stdint.h>

#include "cpu/cpu_features.h"
#include "kernels/trace.h"

namespace bt {

template <typename T>
void cpu_drtrl_dense(const DenseTraceTask<T>& t);

// The instruction set of the trace loops in this process (trace_cpu.cc), decided once: the
// widest this CPU runs, capped by BRAINTRACE_TRACE_ISA.
CpuIsa trace_isa();
// One vector trace step (kernels/trace.h: VecTraceTask): the columns k split over the pool,
// each chunk in tiles of batch rows run by vec_trace_row (compile-time S <= 4 loops, an
// AVX2 clone where the CPU has it); bit for bit the generic vec_trace_col.
template <typename T>
void cpu_vec_trace(const VecTraceTask<T>& t);
// xbar <- decay_x xbar + x over n elements.
template <typename T>
void cpu_pp_input(T* xbar, const T* x, T decay_x, int64_t n);
// pp_prop projection of the learning signal on the output trace, over P positions:
// q[p] <- sum_a g[p, a] epsf[p, a] * inv_c (accumulate: q[p] += ...).
template <typename T>
void cpu_pp_project(const T* g, const T* epsf, int64_t P, int64_t S, T inv_c, T* q, bool accumulate);
// pp_prop bias / element-wise gradient: dp[k] += sum_b q[b, k] (q is B x O).
template <typename T>
void cpu_pp_vec_grad(const T* q, int64_t B, int64_t O, T* dp);
// pp_prop dense gradient of a chunk of contractions: dW (I x O) += Xbar^T Q, where Xbar
// (K x I) and Q (K x O) stack the input traces and projections of the chunk's steps
// (K = steps * B rows, row-major): one GEMM (cpu/parallel_gemm.h) instead of a rank-B
// update per step. K == 0 does nothing.
template <typename T>
void cpu_pp_dense_grad(const T* xbar, const T* q, int64_t K, int64_t I, int64_t O, T* dW);

}  // namespace bt
