// Cache-blocked dense matrix product, the built-in GEMM of the CPU backend.
//
//   C = alpha * op(A) * op(B) + beta * C
//   op(A) is M x K: A itself (row-major, leading dimension lda) or, with trans_a, the
//   transpose of a K x M row-major A. op(B) is K x N likewise (trans_b: B is N x K).
//   C is M x N row-major with leading dimension ldc.
//
// gemm_tile computes the rectangle [m0, m1) x [n0, n1) of C, so a caller can split C
// into disjoint tiles and run them on several threads (native/cpu/parallel.h does);
// every element of C is written by exactly one tile. beta == 0 overwrites C (it never
// reads it, so NaN garbage in C does not propagate, as in BLAS).
//
// Scheme: op(B) is packed block by block (KC x NC) into a contiguous buffer, then four
// rows of C are updated at a time with rank-1 updates whose inner loop runs over
// contiguous j, which g++ -O2/-O3 vectorises; the packed block stays in L2 and the four
// C row segments in L1.
#pragma once

#include <stdint.h>

#include <algorithm>
#include <vector>

namespace bt {

struct GemmDims {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
};

namespace gemm_detail {
constexpr int64_t kKC = 128;  // depth of a packed block
constexpr int64_t kNC = 256;  // width of a packed block
}  // namespace gemm_detail

template <typename T>
void gemm_tile(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0,
               int64_t m1, int64_t n0, int64_t n1) {
  using namespace gemm_detail;
  if (m0 >= m1 || n0 >= n1) return;
  for (int64_t i = m0; i < m1; ++i) {
    T* c = C + i * d.ldc;
    if (beta == T(0)) {
      for (int64_t j = n0; j < n1; ++j) c[j] = T(0);
    } else if (beta != T(1)) {
      for (int64_t j = n0; j < n1; ++j) c[j] *= beta;
    }
  }
  if (d.K == 0 || alpha == T(0)) return;

  const int64_t nc_max = std::min<int64_t>(kNC, n1 - n0);
  const int64_t kc_max = std::min<int64_t>(kKC, d.K);
  // Per-thread packing buffer, grown once (at most kKC * kNC values): no allocation per
  // product in steady state.
  thread_local std::vector<T> packed;
  if (packed.size() < static_cast<size_t>(nc_max * kc_max)) packed.resize(static_cast<size_t>(nc_max * kc_max));
  T* __restrict bp = packed.data();

  auto a_at = [&](int64_t i, int64_t k) -> T {
    return d.trans_a ? A[k * d.lda + i] : A[i * d.lda + k];
  };

  for (int64_t j0 = n0; j0 < n1; j0 += kNC) {
    const int64_t nc = std::min<int64_t>(kNC, n1 - j0);
    for (int64_t k0 = 0; k0 < d.K; k0 += kKC) {
      const int64_t kc = std::min<int64_t>(kKC, d.K - k0);
      // Pack op(B)[k0:k0+kc, j0:j0+nc] row by row (stride nc).
      if (!d.trans_b) {
        for (int64_t k = 0; k < kc; ++k) {
          const T* src = B + (k0 + k) * d.ldb + j0;
          T* dst = bp + k * nc;
          for (int64_t j = 0; j < nc; ++j) dst[j] = src[j];
        }
      } else {
        for (int64_t j = 0; j < nc; ++j) {
          const T* src = B + (j0 + j) * d.ldb + k0;
          for (int64_t k = 0; k < kc; ++k) bp[k * nc + j] = src[k];
        }
      }
      int64_t i = m0;
      for (; i + 4 <= m1; i += 4) {
        T* __restrict c0 = C + (i + 0) * d.ldc + j0;
        T* __restrict c1 = C + (i + 1) * d.ldc + j0;
        T* __restrict c2 = C + (i + 2) * d.ldc + j0;
        T* __restrict c3 = C + (i + 3) * d.ldc + j0;
        for (int64_t k = 0; k < kc; ++k) {
          const T a0 = alpha * a_at(i + 0, k0 + k);
          const T a1 = alpha * a_at(i + 1, k0 + k);
          const T a2 = alpha * a_at(i + 2, k0 + k);
          const T a3 = alpha * a_at(i + 3, k0 + k);
          const T* __restrict b = bp + k * nc;
          for (int64_t j = 0; j < nc; ++j) {
            const T bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
          }
        }
      }
      for (; i < m1; ++i) {
        T* __restrict c0 = C + i * d.ldc + j0;
        for (int64_t k = 0; k < kc; ++k) {
          const T a0 = alpha * a_at(i, k0 + k);
          const T* __restrict b = bp + k * nc;
          for (int64_t j = 0; j < nc; ++j) c0[j] += a0 * b[j];
        }
      }
    }
  }
}

// Whole product on the calling thread.
template <typename T>
void gemm_serial(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C) {
  gemm_tile(d, alpha, A, B, beta, C, 0, d.M, 0, d.N);
}

}  // namespace bt
