#include "cpu/parallel_gemm.h"

#include <algorithm>

#include "cpu/thread_pool.h"

namespace bt {

template <typename T>
void gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C) {
  if (d.M <= 0 || d.N <= 0) return;
  const double flops = double(d.M) * double(d.N) * double(std::max<int64_t>(d.K, 1));
  const int threads = thread_pool_size();
  if (threads == 1 || flops < 1.0e5) {
    gemm_serial(d, alpha, A, B, beta, C);
    return;
  }
  // Prefer whole row blocks (each packs op(B) once per block); with fewer rows than
  // about 4 per thread, split columns instead.
  if (d.M >= int64_t(threads) * 8) {
    const int64_t rows = 8;  // rows per grain; parallel_for groups grains into chunks
    const int64_t blocks = (d.M + rows - 1) / rows;
    parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
      gemm_tile(d, alpha, A, B, beta, C, b * rows, std::min(d.M, e * rows), 0, d.N);
    });
  } else {
    const int64_t cols = 64;
    const int64_t blocks = (d.N + cols - 1) / cols;
    parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
      gemm_tile(d, alpha, A, B, beta, C, 0, d.M, b * cols, std::min(d.N, e * cols));
    });
  }
}

template void gemm<float>(const GemmDims&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmDims&, double, const double*, const double*, double, double*);

}  // namespace bt
