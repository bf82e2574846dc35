// GEMM on the CPU thread pool: the packed, register-blocked kernels of
// cpu/gemm_kernels.h (kernels/gemm.h's gemm_blocked) over disjoint tiles of C.
#pragma once

#include "cpu/gemm_kernels.h"
#include "kernels/gemm.h"

namespace bt {

// C = alpha * op(A) * op(B) + beta * C (see GemmDims in kernels/gemm.h) with the active
// kernel (gemm_kernel_active()). Tiny products (up to 2^14 multiply-adds) take
// kernels/gemm.h's gemm_direct, the same values on every kernel. Runs on the calling
// thread for small products, otherwise
// splits C into a grid of row x column tiles (edges aligned to the kernel's MR / NR) over
// the thread pool. Each element's value is independent of the split, hence of the number
// of threads. Defined for T = float and double.
template <typename T>
void gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C);

// As gemm, with a given kernel and at most max_threads threads (>= 1; 1 = the calling
// thread only). For tests and benchmarks.
template <typename T>
void gemm_with(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A, const T* B,
               T beta, T* C);

}  // namespace bt
