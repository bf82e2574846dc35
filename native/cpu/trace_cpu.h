// CPU drivers of the eligibility-trace bodies in native/kernels/trace.h: each splits the
// gradient rows over the process thread pool (one writer per gradient element).
#pragma once

#include <stdint.h>

#include "kernels/trace.h"

namespace bt {

template <typename T>
void cpu_drtrl_dense(const DenseTraceTask<T>& t);
template <typename T>
void cpu_vec_trace(const VecTraceTask<T>& t);
// xbar <- decay_x xbar + x over n elements.
template <typename T>
void cpu_pp_input(T* xbar, const T* x, T decay_x, int64_t n);
// q (B*O) <- sum_a g epsf / c; then dW (I, O) += xbar^T q (dW may be null) and
// dp (O) += sum_b q (each dp may be null).
template <typename T>
void cpu_pp_grad(const T* g, const T* epsf, const T* xbar, int64_t B, int64_t I, int64_t O, int64_t S, T inv_c, T* q,
                 T* dW, T* dp0, T* dp1);

}  // namespace bt
