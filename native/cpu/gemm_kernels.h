// The CPU GEMM's micro-kernels and the runtime choice between them.
//
// Kernels: "portable" (plain C++, kernels/gemm.h's gemm_ukr_portable, always present),
// "avx2" (AVX2+FMA) and "avx512" (AVX-512F) on x86-64 with GCC or Clang (gemm_x86.cc,
// compiled with per-function target attributes, so the binary still runs on any
// x86-64), "neon" on arm64 (gemm_neon.cc). A kernel is usable when it is compiled in and
// the CPU supports it (__builtin_cpu_supports, which also checks that the OS saves the
// vector registers).
//
// The active kernel is chosen once per process, on first use, and cached: the one named
// by the environment variable BRAINTRACE_GEMM_KERNEL (portable | avx2 | avx512 | neon)
// when it is usable, otherwise the fastest usable one (avx512 > avx2 > portable on
// x86-64, neon on arm64). A name that is unknown or not usable here is refused: the
// default is used instead (no crash), and gemm_kernel_requested() still reports it.
#pragma once

#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace bt {

// Computes the tile [m0, m1) x [n0, n1) of C = alpha * op(A) * op(B) + beta * C on the
// calling thread (kernels/gemm.h's gemm_blocked with one kernel's micro-kernel).
template <typename T>
using GemmTileFn = void (*)(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0,
                            int64_t m1, int64_t n0, int64_t n1);

// One micro-kernel family: its name, its register tile (MR x NR) per dtype, and the
// tile functions. Thread splits align tile edges to MR / NR.
// A tile over a prepacked op(B) (kernels/gemm.h gemm_pack_b's layout for this kernel, made
// from B): the packed panels start at column 0, so a tile whose first column n0 is not a
// multiple of the kernel's NR packs from B instead (same values).
template <typename T>
using GemmTilePreFn = void (*)(const GemmDims& d, T alpha, const T* A, const T* B, const T* Bpacked, T beta, T* C,
                               int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// Packs op(B) of d for this kernel's GemmTilePreFn into dst (gemm_packed_b_size(d, nr)
// values): the panels of columns [j0, j1) (j0 a multiple of nr; j1 one too, or >= N), each in
// its place of the whole layout; [0, N) packs it all (kernels/gemm.h gemm_pack_b).
template <typename T>
using GemmPackFn = void (*)(const GemmDims& d, const T* B, T* dst, int64_t j0, int64_t j1);

struct GemmKernelImpl {
  const char* name;
  int mr_f32, nr_f32, mr_f64, nr_f64;
  GemmTileFn<float> tile_f32;
  GemmTileFn<double> tile_f64;
  GemmTilePreFn<float> tilep_f32;
  GemmTilePreFn<double> tilep_f64;
  GemmPackFn<float> pack_f32;
  GemmPackFn<double> pack_f64;
  GemmTileFn<float> tile(float) const { return tile_f32; }
  GemmTileFn<double> tile(double) const { return tile_f64; }
  GemmTilePreFn<float> tilep(float) const { return tilep_f32; }
  GemmTilePreFn<double> tilep(double) const { return tilep_f64; }
  GemmPackFn<float> pack(float) const { return pack_f32; }
  GemmPackFn<double> pack(double) const { return pack_f64; }
  int mr(float) const { return mr_f32; }
  int mr(double) const { return mr_f64; }
  int nr(float) const { return nr_f32; }
  int nr(double) const { return nr_f64; }
};

// Per ISA: the kernel, or nullptr when it is not compiled into this binary or this CPU
// lacks the instructions. gemm_impl_portable() is never null.
const GemmKernelImpl* gemm_impl_portable();  // gemm_dispatch.cc
const GemmKernelImpl* gemm_impl_avx2();      // gemm_x86.cc
const GemmKernelImpl* gemm_impl_avx512();    // gemm_x86.cc
const GemmKernelImpl* gemm_impl_neon();      // gemm_neon.cc
// True on x86 CPUs where the AVX2 kernel is the faster default even though AVX-512 is there
// (AMD before Zen 5, see gemm_x86.cc); false elsewhere.
bool gemm_prefer_avx2();                      // gemm_x86.cc

// The usable kernel with this name, or nullptr (unknown name, or not usable here).
const GemmKernelImpl* gemm_kernel_find(const std::string& name);

// The names of the usable kernels, fastest first (the first is the default): avx512, avx2
// (swapped where gemm_prefer_avx2()), neon, portable.
std::vector<std::string> gemm_kernels_available();

// The active kernel (see the top of this file); never null.
const GemmKernelImpl* gemm_kernel_active();

// The value of BRAINTRACE_GEMM_KERNEL seen when the active kernel was chosen ("" when
// unset); differs from gemm_kernel_active()->name when the request was refused.
std::string gemm_kernel_requested();

}  // namespace bt
