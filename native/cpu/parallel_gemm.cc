#include "cpu/parallel_gemm.h"

#include <algorithm>
#include <atomic>
#include <new>

#include "cpu/thread_pool.h"

namespace bt {
namespace {

// Below this many multiply-adds per thread, handing work to the pool costs more than it
// saves (about 20 us of work at 50 GFLOP/s).
constexpr double kMinMacsPerThread = double(1 << 19);

// The cost of packing one value of op(A) or op(B) in multiply-adds of the micro-kernel (a
// strided read and a write against ~30 G multiply-adds/s per core; perf of the pp_prop step:
// about 30), for choosing how a product splits over threads.
constexpr double kPackMacsPerValue = 24.0;

// Values packed per chunk when the pack cache packs a B operand over the pool.
constexpr int64_t kMinPackPerChunk = int64_t(1) << 16;

// Up to this many multiply-adds, kernels/gemm.h's gemm_direct (no packing, the plain
// loop's rounding) on the calling thread, whatever the kernel.
constexpr double kDirectMaxMacs = double(1 << 14);

// Boundary p of `parts` near-equal parts of [0, n) in whole units of `unit` (the last
// boundary is n itself).
int64_t split_at(int64_t n, int64_t unit, int64_t parts, int64_t p) {
  const int64_t units = (n + unit - 1) / unit;
  return std::min(n, (units * p + parts - 1) / parts * unit);
}

// A tile function: the kernel's own packing one, or its prepacked one bound to Bp.
template <typename T>
struct TileCall {
  GemmTileFn<T> tile;
  GemmTilePreFn<T> tilep;
  const T* Bp;
  void operator()(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, int64_t m0, int64_t m1,
                  int64_t n0, int64_t n1) const {
    if (Bp != nullptr)
      tilep(d, alpha, A, B, Bp, beta, C, m0, m1, n0, n1);
    else
      tile(d, alpha, A, B, beta, C, m0, m1, n0, n1);
  }
};

// The body of gemm_with / gemm_with_packed (Bpacked null: the kernel packs as it goes).
template <typename T>
void gemm_run(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A, const T* B,
              const T* Bpacked, T beta, T* C) {
  if (d.M <= 0 || d.N <= 0) return;
  const TileCall<T> tile{kernel.tile(T()), kernel.tilep(T()), Bpacked};
  const int64_t mr = kernel.mr(T()), nr = kernel.nr(T());
  const double macs = double(d.M) * double(d.N) * double(std::max<int64_t>(d.K, 1));
  if (gemm_takes_direct(d)) {
    gemm_direct(d, alpha, A, B, beta, C, 0, d.M, 0, d.N);
    return;
  }
  int64_t threads = std::min<int64_t>(std::max(max_threads, 1), thread_pool_size());
  threads = std::min<int64_t>(threads, std::max<int64_t>(1, int64_t(macs / kMinMacsPerThread)));
  if (threads <= 1) {
    tile(d, alpha, A, B, beta, C, 0, d.M, 0, d.N);
    return;
  }
  // A grid of tm x tn tiles (tm * tn <= threads), with at least one MR (NR) unit per tile row
  // (column). The product ends when its largest tile does, and every tile packs its rows of
  // op(A) and (unless B is prepacked) its columns of op(B), so pick the grid whose largest
  // tile costs the least: rows * cols * K multiply-adds plus kPackMacsPerValue per packed
  // value. With B prepacked (the pack cache: a model's weights) a split of M packs no value
  // twice, a split of N packs all of A on every thread; split_at's first part is the largest.
  const int64_t m_units = (d.M + mr - 1) / mr, n_units = (d.N + nr - 1) / nr;
  const double K = double(std::max<int64_t>(d.K, 1));
  int64_t tm = 1, tn = 1;
  double best = -1;
  for (int64_t a = 1; a <= threads; ++a) {
    const int64_t b = threads / a;
    if (a > m_units || b > n_units) continue;
    const double rows = double(std::min(d.M, (m_units + a - 1) / a * mr));
    const double cols = double(std::min(d.N, (n_units + b - 1) / b * nr));
    const double packed = rows * K + (Bpacked != nullptr ? 0.0 : cols * K);
    const double cost = rows * cols * K + kPackMacsPerValue * packed;
    if (best < 0 || cost < best || (cost == best && a * b > tm * tn)) {
      best = cost;
      tm = a;
      tn = b;
    }
  }
  if (tm * tn <= 1) {
    tile(d, alpha, A, B, beta, C, 0, d.M, 0, d.N);
    return;
  }
  // The lambda captures one pointer (to `job`), so std::function stores it inline: no
  // allocation per product.
  struct Job {
    const GemmDims* d;
    TileCall<T> tile;
    T alpha, beta;
    const T* A;
    const T* B;
    T* C;
    int64_t mr, nr, tm, tn;
  } job{&d, tile, alpha, beta, A, B, C, mr, nr, tm, tn};
  const Job* j = &job;
  parallel_for(tm * tn, 1, [j](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t p = t / j->tn, q = t % j->tn;
      j->tile(*j->d, j->alpha, j->A, j->B, j->beta, j->C, split_at(j->d->M, j->mr, j->tm, p),
              split_at(j->d->M, j->mr, j->tm, p + 1), split_at(j->d->N, j->nr, j->tn, q),
              split_at(j->d->N, j->nr, j->tn, q + 1));
    }
  });
}

}  // namespace

template <typename T>
void gemm_with(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A, const T* B,
               T beta, T* C) {
  gemm_run<T>(kernel, max_threads, d, alpha, A, B, nullptr, beta, C);
}

template <typename T>
void gemm_with_packed(const GemmKernelImpl& kernel, int max_threads, const GemmDims& d, T alpha, const T* A,
                      const T* B, const T* Bpacked, T beta, T* C) {
  gemm_run<T>(kernel, max_threads, d, alpha, A, B, Bpacked, beta, C);
}

bool gemm_takes_direct(const GemmDims& d) {
  return double(d.M) * double(d.N) * double(std::max<int64_t>(d.K, 1)) <= kDirectMaxMacs;
}

template <typename T>
void gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C) {
  gemm_with(*gemm_kernel_active(), thread_pool_size(), d, alpha, A, B, beta, C);
}

namespace {
std::atomic<uint64_t> g_packs{0}, g_hits{0}, g_bytes{0};
}  // namespace

GemmPackStats gemm_pack_stats() {
  GemmPackStats s;
  s.packs = g_packs.load(std::memory_order_relaxed);
  s.hits = g_hits.load(std::memory_order_relaxed);
  s.bytes = g_bytes.load(std::memory_order_relaxed);
  return s;
}

GemmPackCache::~GemmPackCache() {
  for (Entry& e : entries_) ::operator delete(e.data, std::align_val_t(64));
  g_bytes.fetch_sub(bytes_, std::memory_order_relaxed);
}

template <typename T>
void GemmPackCache::gemm(const GemmDims& d, T alpha, const T* A, const T* B, T beta, T* C, uint64_t epoch) {
  const GemmKernelImpl& kernel = *gemm_kernel_active();
  // Products gemm_direct takes never pack; alpha == 0 / K == 0 read no B.
  if (epoch == 0 || gemm_takes_direct(d) || d.M <= 0 || d.N <= 0 || d.K <= 0 || alpha == T(0)) {
    bt::gemm(d, alpha, A, B, beta, C);
    return;
  }
  const int64_t ldb = d.ldb;
  Entry* hit = nullptr;
  for (Entry& e : entries_)
    if (e.b == B && e.trans == d.trans_b && e.K == d.K && e.N == d.N && e.ldb == ldb && e.elem == sizeof(T) &&
        e.kernel == &kernel) {
      hit = &e;
      break;
    }
  if (hit == nullptr) {
    const size_t size = sizeof(T) * static_cast<size_t>(gemm_packed_b_size(d, kernel.nr(T())));
    if (bytes_ + size > kMaxBytes) {
      bt::gemm(d, alpha, A, B, beta, C);
      return;
    }
    Entry e;
    e.b = B;
    e.trans = d.trans_b;
    e.K = d.K;
    e.N = d.N;
    e.ldb = ldb;
    e.elem = sizeof(T);
    e.kernel = &kernel;
    e.data = ::operator new(size, std::align_val_t(64));  // throws std::bad_alloc: the task's guard reports it
    e.size = size;
    entries_.push_back(e);
    bytes_ += size;
    g_bytes.fetch_add(size, std::memory_order_relaxed);
    hit = &entries_.back();
  }
  if (hit->epoch != epoch) {
    // The panels split over the pool (each chunk packs whole NR-column panels, ~64k values
    // or more, into their own places): the same bytes as one pack of [0, N).
    const GemmPackFn<T> pack = kernel.pack(T());
    T* const dst = static_cast<T*>(hit->data);
    const int64_t nr = kernel.nr(T());
    const int64_t panels = (d.N + nr - 1) / nr;
    const int64_t grain = std::max<int64_t>(1, kMinPackPerChunk / std::max<int64_t>(1, nr * d.K));
    if (panels <= grain) {
      pack(d, B, dst, 0, d.N);
    } else {
      struct PackJob {  // captured by one pointer: std::function stores it inline
        GemmPackFn<T> pack;
        const GemmDims* d;
        const T* B;
        T* dst;
        int64_t nr;
      } job{pack, &d, B, dst, nr};
      const PackJob* j = &job;
      parallel_for(panels, grain, [j](int64_t p0, int64_t p1) { j->pack(*j->d, j->B, j->dst, p0 * j->nr, p1 * j->nr); });
    }
    hit->epoch = epoch;
    g_packs.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_hits.fetch_add(1, std::memory_order_relaxed);
  }
  gemm_with_packed(kernel, thread_pool_size(), d, alpha, A, B, static_cast<const T*>(hit->data), beta, C);
}

template void gemm<float>(const GemmDims&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmDims&, double, const double*, const double*, double, double*);
template void gemm_with<float>(const GemmKernelImpl&, int, const GemmDims&, float, const float*, const float*, float,
                               float*);
template void gemm_with<double>(const GemmKernelImpl&, int, const GemmDims&, double, const double*, const double*,
                                double, double*);
template void gemm_with_packed<float>(const GemmKernelImpl&, int, const GemmDims&, float, const float*, const float*,
                                      const float*, float, float*);
template void gemm_with_packed<double>(const GemmKernelImpl&, int, const GemmDims&, double, const double*,
                                       const double*, const double*, double, double*);
template void GemmPackCache::gemm<float>(const GemmDims&, float, const float*, const float*, float, float*, uint64_t);
template void GemmPackCache::gemm<double>(const GemmDims&, double, const double*, const double*, double, double*,
                                          uint64_t);

}  // namespace bt
