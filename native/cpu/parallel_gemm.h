// GEMM on the CPU thread pool: the packed, register-blocked kernels of
// cpu/gemm_kernels.h (kernels/gemm.h's gemm_blocked) over disjoint tiles of C.
#pragma once

#include "cpu/gemm_kernels.h"
#include "kernels/gemm.h"

#include <stddef.h>
#include <stdint.h>

#include <vector>

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

// True when gemm() computes `d` with gemm_direct (the plain loop's rounding) rather than a
// packed kernel: a product of a few multiply-adds. Two products whose elements are the same
// dot products give the same bits when this agrees for both.
bool gemm_takes_direct(const GemmDims& d);

// As gemm, with a given kernel and at most max_threads threads (>= 1; 1 = the calling
// thread only). For tests and benchmarks.
template <typename T>
void gemm_with(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A, const T* B,
               T beta, T* C);

// As gemm_with, with op(B) given prepacked by kernel.pack (its layout, for these dims):
// the same values, bit for bit, as gemm_with over B itself (B is read for products small
// enough for gemm_direct, so both must be given).
template <typename T>
void gemm_with_packed(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A,
                      const T* B, const T* Bpacked, T beta, T* C);

// Packed copies of GEMM B operands that stay constant over many products (a model's weight
// matrices during one session call: the forward x W and the backward g W^T of every step).
// A product names its operand's version by `epoch` (nonzero; the caller promises that B's
// values at that address do not change while it passes the same epoch, and passes a new one
// after they may have); the first product of an (address, layout, epoch) packs op(B) whole,
// later ones read the packed panels instead of packing again. Values are bit for bit those of
// gemm(). Entries are kept (and repacked in place at a new epoch) up to kMaxBytes in all;
// beyond that a product is not cached. One user at a time (the session's busy guard).
class GemmPackCache {
 public:
  static constexpr size_t kMaxBytes = size_t(256) << 20;
  GemmPackCache() = default;
  GemmPackCache(const GemmPackCache&) = delete;
  GemmPackCache& operator=(const GemmPackCache&) = delete;
  ~GemmPackCache();

  // C = alpha op(A) op(B) + beta C as gemm(); epoch 0: not cached (plain gemm).
  template <typename T>
  void gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, uint64_t epoch);

  // Bytes held by the packed copies.
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    const void* b = nullptr;
    bool trans = false;
    int64_t K = 0, N = 0, ldb = 0;
    size_t elem = 0;
    const GemmKernelImpl* kernel = nullptr;
    uint64_t epoch = 0;
    void* data = nullptr;
    size_t size = 0;  // bytes
  };
  std::vector<Entry> entries_;
  size_t bytes_ = 0;
};

// Process-wide totals over every GemmPackCache: packs made, products served from a packed
// copy, bytes held now (the binding's gemmKernels().packCache).
struct GemmPackStats {
  uint64_t packs = 0, hits = 0, bytes = 0;
};
GemmPackStats gemm_pack_stats();

}  // namespace bt
