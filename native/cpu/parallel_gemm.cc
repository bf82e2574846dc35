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
  // about 4 per thread, split columns instead. The lambdas capture one pointer (to `job`),
  // so std::function stores them inline: no allocation per product.
  struct Job {
    const GemmDims* d;
    T alpha, beta;
    const T* A;
    const T* B;
    T* C;
  } job{&d, alpha, beta, A, B, C};
  const Job* j = &job;
  if (d.M >= int64_t(threads) * 8) {
    parallel_for((d.M + 7) / 8, 1, [j](int64_t b, int64_t e) {
      const int64_t rows = 8;  // rows per grain; parallel_for groups grains into chunks
      gemm_tile(*j->d, j->alpha, j->A, j->B, j->beta, j->C, b * rows, std::min(j->d->M, e * rows), 0, j->d->N);
    });
  } else {
    parallel_for((d.N + 63) / 64, 1, [j](int64_t b, int64_t e) {
      const int64_t cols = 64;
      gemm_tile(*j->d, j->alpha, j->A, j->B, j->beta, j->C, 0, j->d->M, b * cols, std::min(j->d->N, e * cols));
    });
  }
}

template void gemm<float>(const GemmDims&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmDims&, double, const double*, const double*, double, double*);

}  // namespace bt
