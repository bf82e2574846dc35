// Host+device marker for kernel bodies shared by the CPU and CUDA backends.
// Under nvcc a body is compiled for both sides; otherwise it is a plain inline
// function (the same idea as Eigen's EIGEN_DEVICE_FUNC / Kokkos' KOKKOS_INLINE_FUNCTION).
#pragma once

#if defined(__CUDACC__)
#define BT_HD __host__ __device__ inline
#else
#define BT_HD inline
#endif
