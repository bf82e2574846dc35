// Launch geometry and the grid-stride loop of the CUDA executor, kept free of
// CUDA runtime calls so the same code can be compiled and checked on the host
// (a host emulation runs every (block, thread) pair of a launch through
// `grid_stride_range` and checks each element is visited exactly once).
#pragma once

#include <stdint.h>

#include "kernels/hd.h"

namespace bt {
namespace cuda_launch {

// Threads per block of the element-wise kernels (a multiple of the warp size).
constexpr int kThreadsPerBlock = 256;
// Resident blocks per SM we aim for; beyond that the grid-stride loop does the rest.
constexpr int kBlocksPerSm = 8;

struct Geometry {
  int blocks = 0;   // 0 means "nothing to launch" (n == 0)
  int threads = 0;
};

// Grid size for n elements: enough blocks to cover n once, capped at
// kBlocksPerSm * sm_count (each thread then strides over several elements).
// sm_count <= 0 (unknown) caps at 65535 blocks.
inline Geometry geometry_for(int64_t n, int sm_count) {
  Geometry g;
  if (n <= 0) return g;
  const int64_t want = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int64_t cap = sm_count > 0 ? int64_t(sm_count) * kBlocksPerSm : int64_t(65535);
  g.blocks = static_cast<int>(want < cap ? want : cap);
  g.threads = kThreadsPerBlock;
  return g;
}

// The grid-stride loop: the thread with global index `tid` of a grid of
// `nthreads` threads applies f to tid, tid + nthreads, ... (< n).
template <typename F>
BT_HD void grid_stride_range(int64_t tid, int64_t nthreads, int64_t n, F&& f) {
  for (int64_t i = tid; i < n; i += nthreads) f(i);
}

}  // namespace cuda_launch
}  // namespace bt
