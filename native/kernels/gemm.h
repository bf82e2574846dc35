// Packed, register-blocked dense matrix product: the shared (ISA-independent) parts of
// the CPU backend's GEMM, in the BLIS / OpenBLAS design.
//
//   C = alpha * op(A) * op(B) + beta * C
//   op(A) is M x K: A itself (row-major, leading dimension lda) or, with trans_a, the
//   transpose of a K x M row-major A. op(B) is K x N likewise (trans_b: B is N x K).
//   C is M x N row-major with leading dimension ldc.
//
// Scheme (Goto / BLIS): for each NC-wide block of columns and each KC-deep slice of K,
// op(B)[KC x NC] is packed into NR-column panels (k-major: the NR values of one k are
// contiguous); for each MC-tall block of rows, op(A)[MC x KC] is packed into MR-row
// panels likewise; then an MR x NR micro-kernel multiplies one A panel by one B panel
// with the MR x NR block of C held in registers, and writes C once per KC slice. The
// transposes are absorbed by the packing (pack_panel reads either layout), never
// materialised. Panels are zero-padded to MR / NR, so the micro-kernel always runs at
// full size; a partial tile at the right or bottom edge goes through a small buffer
// (gemm_edge_tile), which gives bit-for-bit the same values as a full tile.
//
// The ISA-specific micro-kernels (AVX2+FMA, AVX-512F, NEON) and the runtime choice
// between them live in native/cpu (gemm_x86.cc, gemm_neon.cc, gemm_dispatch.cc); the
// portable one, plain C++ that compilers vectorise, is gemm_ukr_portable below. The
// SIMD kernels share one body, kernels/gemm_ukr_simd.inc.
//
// gemm_blocked computes the rectangle [m0, m1) x [n0, n1) of C, so a caller can split C
// into disjoint tiles and run them on several threads (native/cpu/parallel_gemm.cc
// does); every element of C is written by exactly one tile, and its value does not
// depend on the tiling (the K loop is blocked from 0 in every tile). beta == 0
// overwrites C (it never reads it, so NaN garbage in C does not propagate, as in BLAS);
// alpha == 0 or K == 0 reads neither A nor B.
#pragma once

#include <stdint.h>

#include <algorithm>
#include <cstddef>
#include <new>

namespace bt {

struct GemmDims {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
};

// Cache blocking of one micro-kernel: KC (depth of a packed slice), MC (rows of a packed
// A block, a multiple of MR), NC (columns of a packed B block, a multiple of NR).
struct GemmBlocking {
  int64_t kc = 256, mc = 128, nc = 3072;
};

// A micro-kernel: C[0:MR, 0:NR] (row stride ldc) = alpha * (Ap * Bp) + beta * C, where
// Ap is a packed kc x MR panel (Ap[k * MR + i]) and Bp a packed kc x NR panel
// (Bp[k * NR + j]). beta == 0: C is only written.
template <typename T>
using GemmMicroKernel = void (*)(int64_t kc, const T* Ap, const T* Bp, T alpha, T beta, T* C, int64_t ldc);

namespace gemm_detail {

// Packs the R x kc block whose element (r, k) is src[r * s_r + k * s_k] (r < rows, rows
// <= R) into dst[k * R + r], with zeros for rows..R-1. This is the one packing formula:
// A panels (R = MR, rows of op(A)) and B panels (R = NR, columns of op(B)) both use it,
// each in either layout (s_r == 1: one k of the panel is contiguous in memory; s_k == 1:
// one r is).
template <typename T, int R>
void pack_panel(const T* src, int64_t s_r, int64_t s_k, int64_t rows, int64_t kc, T* __restrict dst) {
  if (rows == R && s_r == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* s = src + k * s_k;
      T* d = dst + k * R;
      for (int r = 0; r < R; ++r) d[r] = s[r];
    }
    return;
  }
  if (rows == R && s_k == 1) {
    const T* s[R];
    for (int r = 0; r < R; ++r) s[r] = src + r * s_r;
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * R;
      for (int r = 0; r < R; ++r) d[r] = s[r][k];
    }
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    T* d = dst + k * R;
    for (int64_t r = 0; r < rows; ++r) d[r] = src[r * s_r + k * s_k];
    for (int64_t r = rows; r < R; ++r) d[r] = T(0);
  }
}

// A partial MR x NR tile (mr <= MR rows, nr <= NR columns of C): the micro-kernel runs
// on a full-size buffer holding the live part of C (when beta reads it), and the live
// part is copied back. Same micro-kernel, same operands: the same values as a full tile.
template <typename T, int MR, int NR>
void gemm_edge_tile(GemmMicroKernel<T> ukr, int64_t kc, const T* Ap, const T* Bp, T alpha, T beta, T* C,
                    int64_t ldc, int64_t mr, int64_t nr) {
  alignas(64) T buf[MR * NR];
  if (beta != T(0)) {
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) buf[i * NR + j] = (i < mr && j < nr) ? C[i * ldc + j] : T(0);
  }
  ukr(kc, Ap, Bp, alpha, beta, buf, NR);
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) C[i * ldc + j] = buf[i * NR + j];
}

// C[m0:m1, n0:n1] = beta * C (beta == 0: zeros, C never read). The K == 0 / alpha == 0 case.
template <typename T>
void gemm_scale_c(const GemmDims& d, T beta, T* C, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t i = m0; i < m1; ++i) {
    T* c = C + i * d.ldc;
    if (beta == T(0)) {
      for (int64_t j = n0; j < n1; ++j) c[j] = T(0);
    } else if (beta != T(1)) {
      for (int64_t j = n0; j < n1; ++j) c[j] *= beta;
    }
  }
}

// A thread's packing buffer, 64-byte aligned, grown on demand and kept for the thread's
// lifetime (no allocation per product in steady state). Throws std::bad_alloc.
template <typename T>
struct PackBuffer {
  T* p = nullptr;
  size_t n = 0;
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { release(); }
  void release() {
    if (p != nullptr) ::operator delete(p, std::align_val_t(64));
    p = nullptr;
    n = 0;
  }
  T* get(size_t want) {
    if (want > n) {
      release();
      p = static_cast<T*>(::operator new(want * sizeof(T), std::align_val_t(64)));
      n = want;
    }
    return p;
  }
};

}  // namespace gemm_detail

// Small products: no packing, the rank-1 update order of a plain loop, per element
//   c = beta * c (0 when beta == 0, C unread; c when beta == 1), then for k = 0..K-1 in
//   order: c += (alpha * op(A)(i, k)) * op(B)(k, j), each product rounded before the add.
// This is the arithmetic of the GEMM before the packed kernels, kept bit for bit for the
// sizes where packing does not pay (cpu/parallel_gemm.cc picks it below a size), so
// small models (and their saved checkpoints) give the same values on every kernel.
template <typename T>
void gemm_direct(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0, int64_t m1,
                 int64_t n0, int64_t n1) {
  using namespace gemm_detail;
  gemm_scale_c(d, beta, C, m0, m1, n0, n1);
  if (d.K <= 0 || alpha == T(0)) return;
  const int64_t a_i = d.trans_a ? 1 : d.lda, a_k = d.trans_a ? d.lda : 1;
  const int64_t b_k = d.trans_b ? 1 : d.ldb, b_j = d.trans_b ? d.ldb : 1;
  for (int64_t i = m0; i < m1; ++i) {
    T* __restrict c = C + i * d.ldc;
    for (int64_t k = 0; k < d.K; ++k) {
      const T a = alpha * A[i * a_i + k * a_k];
      const T* b = B + k * b_k;
      for (int64_t j = n0; j < n1; ++j) {
        const T p = a * b[j * b_j];  // a separate statement: never contracted into an FMA
        c[j] += p;
      }
    }
  }
}

// The five loops around an MR x NR micro-kernel, over the tile [m0, m1) x [n0, n1) of C
// (see the top of this file). Instantiated by each ISA's file with its micro-kernel and
// blocking; the loops themselves are baseline code (only the micro-kernel is ISA-specific).
// `rows` (optional): rows[r - 1] computes the first r < MR rows of a full-width tile from its
// MR-row panel, with the same operations per element as `ukr` (gemm_ukr_simd.inc's AS), so a
// tile's row edge is written straight into C instead of through gemm_edge_tile's buffer (a
// whole MR-row kernel's work for a few rows: the 4-row edge of every B = 64 product).
// `half` (optional): the first NR / 2 columns of an NR-wide panel, the same operations per
// element as `ukr` (gemm_ukr_simd.inc's BS): a column edge of at most NR / 2 columns (a
// readout's 4 outputs) runs it into gemm_edge_tile's buffer instead of the whole kernel.
template <typename T, int MR, int NR>
void gemm_blocked(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0, int64_t m1,
                  int64_t n0, int64_t n1, const GemmBlocking& bl, GemmMicroKernel<T> ukr, const T* Bpre = nullptr,
                  const GemmMicroKernel<T>* rows = nullptr, GemmMicroKernel<T> half = nullptr) {
  using namespace gemm_detail;
  if (m0 >= m1 || n0 >= n1) return;
  if (d.K <= 0 || alpha == T(0)) {
    gemm_scale_c(d, beta, C, m0, m1, n0, n1);
    return;
  }
  const int64_t KC = bl.kc, MC = bl.mc, NC = bl.nc;
  // op(A)(i, k) = A[i * a_i + k * a_k]; op(B)(k, j) = B[k * b_k + j * b_j].
  const int64_t a_i = d.trans_a ? 1 : d.lda, a_k = d.trans_a ? d.lda : 1;
  const int64_t b_k = d.trans_b ? 1 : d.ldb, b_j = d.trans_b ? d.ldb : 1;

  const int64_t kc_max = std::min(KC, d.K);
  const int64_t mc_max = std::min(MC, (m1 - m0 + MR - 1) / MR * MR);
  const int64_t nc_max = std::min(NC, (n1 - n0 + NR - 1) / NR * NR);
  // A prepacked op(B) (gemm_pack_b's layout) is read in place; its panels start at column 0,
  // so it serves tiles whose first column is a multiple of NR (parallel_gemm's splits are);
  // another tile packs from B as usual (the same values).
  if (Bpre != nullptr && n0 % NR != 0) Bpre = nullptr;
  const int64_t npad = (d.N + NR - 1) / NR * NR;
  thread_local PackBuffer<T> abuf, bbuf;
  T* const Ap = abuf.get(static_cast<size_t>(mc_max * kc_max));
  T* const Bp = Bpre != nullptr ? nullptr : bbuf.get(static_cast<size_t>(nc_max * kc_max));

  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min(NC, n1 - jc);
    for (int64_t pc = 0; pc < d.K; pc += KC) {
      const int64_t kc = std::min(KC, d.K - pc);
      const T beta_k = pc == 0 ? beta : T(1);  // later slices accumulate onto the first
      // The slice's panels: packed here, or the prepacked ones (column jc + jr's panel).
      const T* const Bs = Bpre != nullptr ? Bpre + pc * npad + jc * kc : Bp;
      if (Bpre == nullptr)
        for (int64_t jr = 0; jr < nc; jr += NR)
          pack_panel<T, NR>(B + pc * b_k + (jc + jr) * b_j, b_j, b_k, std::min<int64_t>(NR, nc - jr), kc,
                            Bp + jr * kc);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min(MC, m1 - ic);
        for (int64_t ir = 0; ir < mc; ir += MR)
          pack_panel<T, MR>(A + (ic + ir) * a_i + pc * a_k, a_i, a_k, std::min<int64_t>(MR, mc - ir), kc,
                            Ap + ir * kc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            T* c = C + (ic + ir) * d.ldc + (jc + jr);
            if (mr == MR && nr == NR)
              ukr(kc, Ap + ir * kc, Bs + jr * kc, alpha, beta_k, c, d.ldc);
            else if (nr == NR && rows != nullptr)
              rows[mr - 1](kc, Ap + ir * kc, Bs + jr * kc, alpha, beta_k, c, d.ldc);
            else if (2 * nr <= NR && half != nullptr)
              gemm_edge_tile<T, MR, NR>(half, kc, Ap + ir * kc, Bs + jr * kc, alpha, beta_k, c, d.ldc, mr, nr);
            else
              gemm_edge_tile<T, MR, NR>(ukr, kc, Ap + ir * kc, Bs + jr * kc, alpha, beta_k, c, d.ldc, mr, nr);
          }
        }
      }
    }
  }
}

// op(B) of `d` packed whole for gemm_blocked<T, MR, NR>'s `Bpre`: the KC-deep slices of
// `bl` one after another (slice pc at dst + pc * Npad, Npad = N rounded up to NR), each the
// NR-column panels of all N columns from column 0 in pack_panel's layout (panel j at
// + j * kc, the last one zero-padded). The same values gemm_blocked packs per block, so a
// product over a prepacked B is bit for bit the product over B. Size: gemm_packed_b_size.
//
// Only the panels of columns [j0, j1) of op(B) are written (j0 a multiple of NR; j1 one too, or
// N), each in its place of the whole layout, so disjoint column ranges can be packed by
// different threads into one buffer; [0, N) packs it all.
inline int64_t gemm_packed_b_size(const GemmDims& d, int64_t nr) { return (d.N + nr - 1) / nr * nr * d.K; }

template <typename T, int NR>
void gemm_pack_b(const GemmDims& d, const T* B, const GemmBlocking& bl, T* dst, int64_t j0, int64_t j1) {
  const int64_t b_k = d.trans_b ? 1 : d.ldb, b_j = d.trans_b ? d.ldb : 1;
  const int64_t npad = (d.N + NR - 1) / NR * NR;
  j1 = std::min(j1, d.N);
  for (int64_t pc = 0; pc < d.K; pc += bl.kc) {
    const int64_t kc = std::min(bl.kc, d.K - pc);
    for (int64_t j = j0; j < j1; j += NR)
      gemm_detail::pack_panel<T, NR>(B + pc * b_k + j * b_j, b_j, b_k, std::min<int64_t>(NR, d.N - j), kc,
                                     dst + pc * npad + j * kc);
  }
}

// One kernel's entry points for a dtype (cpu/gemm_kernels.h's GemmKernelImpl): NAME##_tile
// (packs as it goes), NAME##_tilep (a gemm_pack_b-packed B) and NAME##_pack. ROWS, HALF: the
// row-edge and half-width kernels (gemm_blocked's `rows`, `half`) or nullptr.
#define BT_GEMM_KERNEL_FNS(NAME, T, MR, NR, BL, UKR, ROWS, HALF)                                            \
  void NAME##_tile(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0, int64_t m1, \
                   int64_t n0, int64_t n1) {                                                                \
    gemm_blocked<T, MR, NR>(d, alpha, A, B, beta, C, m0, m1, n0, n1, BL, UKR, nullptr, ROWS, HALF);         \
  }                                                                                                         \
  void NAME##_tilep(const GemmDims& d, T alpha, const T* A, const T* B, const T* Bp, T beta, T* C,         \
                    int64_t m0, int64_t m1, int64_t n0, int64_t n1) {                                       \
    gemm_blocked<T, MR, NR>(d, alpha, A, B, beta, C, m0, m1, n0, n1, BL, UKR, Bp, ROWS, HALF);              \
  }                                                                                                         \
  void NAME##_pack(const GemmDims& d, const T* B, T* dst, int64_t j0, int64_t j1) {                       \
    gemm_pack_b<T, NR>(d, B, BL, dst, j0, j1);                                                              \
  }

// The portable micro-kernel: plain C++ over an MR x NR accumulator array, which g++/clang
// -O3 vectorise for the baseline ISA (SSE2 on x86-64, NEON on arm64). Separate multiply
// and add (no FMA contraction is assumed), so results match a naive loop's rounding per
// step.
template <typename T, int MR, int NR>
void gemm_ukr_portable(int64_t kc, const T* __restrict Ap, const T* __restrict Bp, T alpha, T beta,
                       T* __restrict C, int64_t ldc) {
  T acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = T(0);
  for (int64_t k = 0; k < kc; ++k) {
    const T* a = Ap + k * MR;
    const T* b = Bp + k * NR;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  }
  if (beta == T(0)) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) C[i * ldc + j] = alpha * acc[i][j];
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) C[i * ldc + j] = alpha * acc[i][j] + beta * C[i * ldc + j];
  }
}

}  // namespace bt
