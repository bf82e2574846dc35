// GEMM on the CPU thread pool: kernels/gemm.h's gemm_tile over disjoint tiles of C.
#pragma once

#include "kernels/gemm.h"

namespace bt {

// C = alpha * op(A) * op(B) + beta * C (see GemmDims in kernels/gemm.h). Runs on the
// calling thread for small products, otherwise splits C into row (or, for few rows,
// column) blocks over the thread pool. Defined for T = float and double.
template <typename T>
void gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C);

}  // namespace bt
