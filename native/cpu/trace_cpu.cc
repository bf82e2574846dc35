// CPU drivers of the trace bodies (native/kernels/trace.h) on the process thread pool.
#include "cpu/trace_cpu.h"

#include <algorithm>
#include <vector>

#include "cpu/thread_pool.h"

namespace bt {
namespace {

// Rows per chunk such that a chunk moves at least ~64k trace values: the pool's dispatch
// cost (microseconds) stays small against the work.
int64_t row_grain(int64_t per_row) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, per_row)); }

}  // namespace

template <typename T>
void cpu_drtrl_dense(const DenseTraceTask<T>& task) {
  parallel_for(task.I, row_grain(task.B * task.O * task.S), [&task](int64_t i0, int64_t i1) {
    const DenseTraceTask<T> t = task;  // local copy: no aliasing through the task
    std::vector<T> tmp(static_cast<size_t>(t.S));
    for (int64_t i = i0; i < i1; ++i) drtrl_dense_row(t, i, tmp.data());
  });
}

template <typename T>
void cpu_vec_trace(const VecTraceTask<T>& task) {
  parallel_for(task.O, row_grain(task.B * task.S), [&task](int64_t k0, int64_t k1) {
    const VecTraceTask<T> t = task;
    std::vector<T> tmp(static_cast<size_t>(t.S));
    for (int64_t k = k0; k < k1; ++k) vec_trace_col(t, k, tmp.data());
  });
}

template <typename T>
void cpu_pp_input(T* xbar, const T* x, T decay_x, int64_t n) {
  parallel_for(n, 65536, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pp_input_update(xbar, x, decay_x, i);
  });
}

template <typename T>
void cpu_pp_grad(const T* g, const T* epsf, const T* xbar, int64_t B, int64_t I, int64_t O, int64_t S, T inv_c, T* q,
                 T* dW, T* dp0, T* dp1) {
  parallel_for(B * O, row_grain(S), [=](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) pp_project(g, epsf, S, inv_c, q, p);
  });
  if (dW)
    parallel_for(I, row_grain(B * O), [=](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) pp_dense_row(xbar, q, B, I, O, dW, i);
    });
  for (T* dp : {dp0, dp1})
    if (dp)
      parallel_for(O, row_grain(B), [=](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) pp_vec_col(q, B, O, dp, k);
      });
}

#define BT_TRACE_INSTANTIATE(T)                                                                     \
  template void cpu_drtrl_dense<T>(const DenseTraceTask<T>&);                                       \
  template void cpu_vec_trace<T>(const VecTraceTask<T>&);                                           \
  template void cpu_pp_input<T>(T*, const T*, T, int64_t);                                          \
  template void cpu_pp_grad<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, T, T*, T*, T*, \
                               T*);
BT_TRACE_INSTANTIATE(float)
BT_TRACE_INSTANTIATE(double)
#undef BT_TRACE_INSTANTIATE

}  // namespace bt
