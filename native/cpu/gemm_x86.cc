// The x86-64 GEMM micro-kernels: AVX2+FMA and AVX-512F, float32 and float64 (see
// cpu/gemm_kernels.h). Only the micro-kernels are compiled for those ISAs, through
// per-function target attributes (no ISA flag on the file or the build), so the binary
// runs on any x86-64 and a kernel is only called after __builtin_cpu_supports said yes.
// Other architectures and compilers without target attributes get null kernels.
#include "cpu/gemm_kernels.h"

#include <array>
#include <utility>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BT_GEMM_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace bt {

#if defined(BT_GEMM_X86)
namespace {

#define BT_AVX2_FN __attribute__((target("avx2,fma"), always_inline)) static inline
#define BT_AVX512_FN __attribute__((target("avx512f,avx2,fma"), always_inline)) static inline

// Vector traits for kernels/gemm_ukr_simd.inc.
struct Avx2F32 {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;
  BT_AVX2_FN V zero() { return _mm256_setzero_ps(); }
  BT_AVX2_FN V set1(T x) { return _mm256_set1_ps(x); }
  BT_AVX2_FN V load(const T* p) { return _mm256_loadu_ps(p); }
  BT_AVX2_FN void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  BT_AVX2_FN V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  BT_AVX2_FN V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  BT_AVX2_FN V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

struct Avx2F64 {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  BT_AVX2_FN V zero() { return _mm256_setzero_pd(); }
  BT_AVX2_FN V set1(T x) { return _mm256_set1_pd(x); }
  BT_AVX2_FN V load(const T* p) { return _mm256_loadu_pd(p); }
  BT_AVX2_FN void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  BT_AVX2_FN V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  BT_AVX2_FN V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  BT_AVX2_FN V mul(V a, V b) { return _mm256_mul_pd(a, b); }
};

struct Avx512F32 {
  using T = float;
  using V = __m512;
  static constexpr int W = 16;
  BT_AVX512_FN V zero() { return _mm512_setzero_ps(); }
  BT_AVX512_FN V set1(T x) { return _mm512_set1_ps(x); }
  BT_AVX512_FN V load(const T* p) { return _mm512_loadu_ps(p); }
  BT_AVX512_FN void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  BT_AVX512_FN V bcast(const T* p) { return _mm512_set1_ps(*p); }
  BT_AVX512_FN V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  BT_AVX512_FN V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};

struct Avx512F64 {
  using T = double;
  using V = __m512d;
  static constexpr int W = 8;
  BT_AVX512_FN V zero() { return _mm512_setzero_pd(); }
  BT_AVX512_FN V set1(T x) { return _mm512_set1_pd(x); }
  BT_AVX512_FN V load(const T* p) { return _mm512_loadu_pd(p); }
  BT_AVX512_FN void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  BT_AVX512_FN V bcast(const T* p) { return _mm512_set1_pd(*p); }
  BT_AVX512_FN V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  BT_AVX512_FN V mul(V a, V b) { return _mm512_mul_pd(a, b); }
};

#define BT_GEMM_UKR_NAME ukr_avx2
#define BT_GEMM_UKR_ATTR __attribute__((target("avx2,fma")))
#include "kernels/gemm_ukr_simd.inc"
#undef BT_GEMM_UKR_NAME
#undef BT_GEMM_UKR_ATTR

#define BT_GEMM_UKR_NAME ukr_avx512
#define BT_GEMM_UKR_ATTR __attribute__((target("avx512f,avx2,fma")))
#include "kernels/gemm_ukr_simd.inc"
#undef BT_GEMM_UKR_NAME
#undef BT_GEMM_UKR_ATTR

// Register tiles: AVX2 6 x 16 float / 6 x 8 double (12 of 16 ymm accumulators);
// AVX-512 12 x 32 float / 12 x 16 double (24 of 32 zmm accumulators). Blocking: a KC x NR
// B micro-panel stays in L1, the MC x KC A block in L2, the KC x NC B block in L3.
constexpr int kAvx2Mr = 6, kAvx512Mr = 12;
constexpr GemmBlocking kAvx2F32{256, 144, 3072};
constexpr GemmBlocking kAvx2F64{256, 72, 1536};
constexpr GemmBlocking kAvx512F32{256, 144, 3072};
constexpr GemmBlocking kAvx512F64{256, 72, 1536};

// Row-edge kernels: entry r - 1 computes the first r rows of an MR-row panel (gemm_blocked's
// `rows`), the same operations per element as the full kernel.
template <class S, int MR, size_t... R>
constexpr std::array<GemmMicroKernel<typename S::T>, MR - 1> avx2_rows(std::index_sequence<R...>) {
  return {{&ukr_avx2<S, int(R) + 1, 2, MR>...}};
}
template <class S, int MR, size_t... R>
constexpr std::array<GemmMicroKernel<typename S::T>, MR - 1> avx512_rows(std::index_sequence<R...>) {
  return {{&ukr_avx512<S, int(R) + 1, 2, MR>...}};
}
constexpr auto kAvx2RowsF32 = avx2_rows<Avx2F32, kAvx2Mr>(std::make_index_sequence<kAvx2Mr - 1>());
constexpr auto kAvx2RowsF64 = avx2_rows<Avx2F64, kAvx2Mr>(std::make_index_sequence<kAvx2Mr - 1>());
constexpr auto kAvx512RowsF32 = avx512_rows<Avx512F32, kAvx512Mr>(std::make_index_sequence<kAvx512Mr - 1>());
constexpr auto kAvx512RowsF64 = avx512_rows<Avx512F64, kAvx512Mr>(std::make_index_sequence<kAvx512Mr - 1>());

// Half-width kernels: one vector of columns of the two-vector panel (gemm_blocked's `half`).
BT_GEMM_KERNEL_FNS(avx2_f32, float, kAvx2Mr, 16, kAvx2F32, (&ukr_avx2<Avx2F32, kAvx2Mr, 2>), kAvx2RowsF32.data(),
                   (&ukr_avx2<Avx2F32, kAvx2Mr, 1, kAvx2Mr, 16>))
BT_GEMM_KERNEL_FNS(avx2_f64, double, kAvx2Mr, 8, kAvx2F64, (&ukr_avx2<Avx2F64, kAvx2Mr, 2>), kAvx2RowsF64.data(),
                   (&ukr_avx2<Avx2F64, kAvx2Mr, 1, kAvx2Mr, 8>))
BT_GEMM_KERNEL_FNS(avx512_f32, float, kAvx512Mr, 32, kAvx512F32, (&ukr_avx512<Avx512F32, kAvx512Mr, 2>),
                   kAvx512RowsF32.data(), (&ukr_avx512<Avx512F32, kAvx512Mr, 1, kAvx512Mr, 32>))
BT_GEMM_KERNEL_FNS(avx512_f64, double, kAvx512Mr, 16, kAvx512F64, (&ukr_avx512<Avx512F64, kAvx512Mr, 2>),
                   kAvx512RowsF64.data(), (&ukr_avx512<Avx512F64, kAvx512Mr, 1, kAvx512Mr, 16>))

const GemmKernelImpl kAvx2{"avx2",           kAvx2Mr,          16, kAvx2Mr, 8, &avx2_f32_tile, &avx2_f64_tile,
                           &avx2_f32_tilep,  &avx2_f64_tilep,  &avx2_f32_pack, &avx2_f64_pack};
const GemmKernelImpl kAvx512{"avx512",          kAvx512Mr,         32, kAvx512Mr, 16, &avx512_f32_tile,
                             &avx512_f64_tile,  &avx512_f32_tilep, &avx512_f64_tilep, &avx512_f32_pack,
                             &avx512_f64_pack};

bool cpu_has(bool avx512) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx512 ? avx2 && __builtin_cpu_supports("avx512f") : avx2;
}

// AMD before Zen 5 (family < 0x1A) executes 512-bit instructions as two 256-bit halves: on
// such a core (a Zen 4 EPYC here) the AVX2 kernel was as fast as the AVX-512 one at every
// shape measured and faster where AVX-512's wider B panels cost more to pack (float32
// G * B^T: 0.74x OpenBLAS with avx512, 1.02x with avx2; docs/benchmarks.md, "GEMM against
// OpenBLAS"). Intel cores and Zen 5 keep AVX-512 first.
bool amd_before_zen5() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d) == 0) return false;
  const bool amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;  // "AuthenticAMD"
  if (!amd || __get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  unsigned family = (a >> 8) & 0xfu;
  if (family == 0xfu) family += (a >> 20) & 0xffu;
  return family < 0x1Au;
}

}  // namespace

bool gemm_prefer_avx2() {
  static const bool prefer = amd_before_zen5();
  return prefer;
}

const GemmKernelImpl* gemm_impl_avx2() {
  static const bool ok = cpu_has(false);
  return ok ? &kAvx2 : nullptr;
}
const GemmKernelImpl* gemm_impl_avx512() {
  static const bool ok = cpu_has(true);
  return ok ? &kAvx512 : nullptr;
}

#else

bool gemm_prefer_avx2() { return false; }
const GemmKernelImpl* gemm_impl_avx2() { return nullptr; }
const GemmKernelImpl* gemm_impl_avx512() { return nullptr; }

#endif

}  // namespace bt
