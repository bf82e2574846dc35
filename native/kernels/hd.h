// Host+device marker for kernel bodies shared by the CPU and CUDA backends.
// Under nvcc a body is compiled for both sides; otherwise it is a plain inline
// function (the same idea as Eigen's EIGEN_DEVICE_FUNC / Kokkos' KOKKOS_INLINE_FUNCTION).
#pragma once

#if defined(__CUDACC__)
#define BT_HD __host__ __device__ inline
#else
#define BT_HD inline
#endif

// BT_HD plus a forced inline: for the element-wise body and its rules, so that a driver
// which calls the body with a compile-time op and mode gets a loop with the op's switch
// folded away (and the compiler can vectorise it). Same semantics as BT_HD otherwise.
#if defined(__CUDACC__)
#define BT_HD_FORCE __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define BT_HD_FORCE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define BT_HD_FORCE __forceinline
#else
#define BT_HD_FORCE inline
#endif
