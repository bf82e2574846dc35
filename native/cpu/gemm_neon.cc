// The arm64 (AArch64) GEMM micro-kernel: NEON, float32 and float64 (see
// cpu/gemm_kernels.h). NEON is part of the AArch64 baseline, so no attribute or flag is
// needed and the kernel is always usable there; other architectures get a null kernel.
#include "cpu/gemm_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace bt {

#if defined(__aarch64__)
namespace {

#define BT_NEON_FN __attribute__((always_inline)) static inline

// Vector traits for kernels/gemm_ukr_simd.inc.
struct NeonF32 {
  using T = float;
  using V = float32x4_t;
  static constexpr int W = 4;
  BT_NEON_FN V zero() { return vdupq_n_f32(0.0f); }
  BT_NEON_FN V set1(T x) { return vdupq_n_f32(x); }
  BT_NEON_FN V load(const T* p) { return vld1q_f32(p); }
  BT_NEON_FN void store(T* p, V v) { vst1q_f32(p, v); }
  BT_NEON_FN V bcast(const T* p) { return vld1q_dup_f32(p); }
  BT_NEON_FN V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  BT_NEON_FN V mul(V a, V b) { return vmulq_f32(a, b); }
};

struct NeonF64 {
  using T = double;
  using V = float64x2_t;
  static constexpr int W = 2;
  BT_NEON_FN V zero() { return vdupq_n_f64(0.0); }
  BT_NEON_FN V set1(T x) { return vdupq_n_f64(x); }
  BT_NEON_FN V load(const T* p) { return vld1q_f64(p); }
  BT_NEON_FN void store(T* p, V v) { vst1q_f64(p, v); }
  BT_NEON_FN V bcast(const T* p) { return vld1q_dup_f64(p); }
  BT_NEON_FN V fma(V a, V b, V c) { return vfmaq_f64(c, a, b); }
  BT_NEON_FN V mul(V a, V b) { return vmulq_f64(a, b); }
};

#define BT_GEMM_UKR_NAME ukr_neon
#define BT_GEMM_UKR_ATTR
#include "kernels/gemm_ukr_simd.inc"
#undef BT_GEMM_UKR_NAME
#undef BT_GEMM_UKR_ATTR

// Register tiles: 8 x 12 float (24 of 32 q accumulators), 6 x 8 double (24).
constexpr GemmBlocking kNeonF32{256, 128, 3072};
constexpr GemmBlocking kNeonF64{256, 72, 1536};

BT_GEMM_KERNEL_FNS(neon_f32, float, 8, 12, kNeonF32, (&ukr_neon<NeonF32, 8, 3>), nullptr, nullptr)
BT_GEMM_KERNEL_FNS(neon_f64, double, 6, 8, kNeonF64, (&ukr_neon<NeonF64, 6, 4>), nullptr, nullptr)

const GemmKernelImpl kNeon{"neon",          8, 12, 6, 8, &neon_f32_tile, &neon_f64_tile,
                           &neon_f32_tilep, &neon_f64_tilep, &neon_f32_pack, &neon_f64_pack};

}  // namespace

const GemmKernelImpl* gemm_impl_neon() { return &kNeon; }

#else

const GemmKernelImpl* gemm_impl_neon() { return nullptr; }

#endif

}  // namespace bt
