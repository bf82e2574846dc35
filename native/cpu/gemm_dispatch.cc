// The portable GEMM kernel and the runtime kernel choice (see cpu/gemm_kernels.h).
#include "cpu/gemm_kernels.h"

#include <cstdlib>

namespace bt {
namespace {

// 4 x 8 (float) and 4 x 4 (double) tiles: 8 accumulator registers of SSE2 / NEON width.
constexpr GemmBlocking kPortableF32{256, 128, 3072};
constexpr GemmBlocking kPortableF64{256, 128, 1536};

BT_GEMM_KERNEL_FNS(portable_f32, float, 4, 8, kPortableF32, (&gemm_ukr_portable<float, 4, 8>), nullptr, nullptr)
BT_GEMM_KERNEL_FNS(portable_f64, double, 4, 4, kPortableF64, (&gemm_ukr_portable<double, 4, 4>), nullptr,
                   nullptr)

const GemmKernelImpl kPortable{"portable",          4, 8, 4, 4, &portable_f32_tile, &portable_f64_tile,
                               &portable_f32_tilep, &portable_f64_tilep, &portable_f32_pack, &portable_f64_pack};

struct Choice {
  const GemmKernelImpl* active;
  std::string requested;
};

const Choice& choice() {
  static const Choice c = [] {
    Choice r;
    const char* env = std::getenv("BRAINTRACE_GEMM_KERNEL");
    r.requested = env != nullptr ? env : "";
    r.active = r.requested.empty() ? nullptr : gemm_kernel_find(r.requested);
    if (r.active == nullptr) r.active = gemm_kernel_find(gemm_kernels_available().front());
    return r;
  }();
  return c;
}

}  // namespace

const GemmKernelImpl* gemm_impl_portable() { return &kPortable; }

const GemmKernelImpl* gemm_kernel_find(const std::string& name) {
  for (const GemmKernelImpl* k : {gemm_impl_avx512(), gemm_impl_avx2(), gemm_impl_neon(), gemm_impl_portable()})
    if (k != nullptr && name == k->name) return k;
  return nullptr;
}

std::vector<std::string> gemm_kernels_available() {
  std::vector<std::string> out;
  const bool avx2_first = gemm_prefer_avx2();
  for (const GemmKernelImpl* k : {avx2_first ? gemm_impl_avx2() : gemm_impl_avx512(),
                                  avx2_first ? gemm_impl_avx512() : gemm_impl_avx2(), gemm_impl_neon(),
                                  gemm_impl_portable()})
    if (k != nullptr) out.push_back(k->name);
  return out;
}

const GemmKernelImpl* gemm_kernel_active() { return choice().active; }

std::string gemm_kernel_requested() { return choice().requested; }

}  // namespace bt
