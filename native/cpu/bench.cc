#include "core/status_util.h"
#include "cpu/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "core/memory.h"
#include "cpu/parallel_gemm.h"
#include "cpu/thread_pool.h"
#include "cpu/trace_cpu.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif


namespace bt {
namespace {


// Physical memory in bytes, 0 when unknown.
double physical_memory() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return double(pages) * double(page);
#endif
  return 0;
}

std::string bytes_str(double b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", b);
  return buf;
}

// Refuses totals that cannot be addressed or that would take more than half the physical
// memory (overcommit would grant them and the process would be killed when touching them).
Status check_total(double total_bytes, const char* what) {
  const double phys = physical_memory();
  const double limit = phys > 0 ? phys / 2 : double(int64_t(1) << 46);
  if (!(total_bytes <= limit) || total_bytes > double(SIZE_MAX / 2))
    return Status::Error(StatusCode::OutOfMemory, std::string(what) + ": " + bytes_str(total_bytes) +
                                                      " bytes of buffers exceed the limit of " + bytes_str(limit) +
                                                      " bytes (half the physical memory)");
  return Status::Ok();
}

// A 64-byte aligned host buffer, freed on scope exit.
struct HostBuf {
  void* p = nullptr;
  HostBuf() = default;
  HostBuf(const HostBuf&) = delete;
  HostBuf& operator=(const HostBuf&) = delete;
  ~HostBuf() { aligned_host_free(p); }
  Status allocate(size_t bytes, const char* what) {
    p = aligned_host_alloc(bytes);
    if (p == nullptr)
      return Status::Error(StatusCode::OutOfMemory,
                           std::string("could not allocate ") + std::to_string(bytes) + " bytes for " + what);
    return Status::Ok();
  }
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double best_of(int64_t reps, F&& f) {
  double best = 0;
  for (int64_t r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    f();
    const double s = now_seconds() - t0;
    if (r == 0 || s < best) best = s;
  }
  return best;
}

template <typename T>
void fill(T* p, int64_t n, T v) {
  parallel_for(n, 65536, [=](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
}

template <typename T>
Status trace_step(const TraceBenchArgs& a, TraceBenchResult* out) {
  const int64_t B = a.batch, I = a.inputs, O = a.outputs, S = a.states;
  const double n_eps = double(B) * double(I) * double(O) * double(S);
  const double n_small = double(B) * double(O) * double(S) * double(S) + 2.0 * double(B) * double(O) * double(S) +
                         double(B) * double(I) + double(I) * double(O);
  BT_RETURN_IF_ERROR(check_total((n_eps + n_small) * sizeof(T), "benchmarkTraceStep"));
  HostBuf eps, D, df, x, g, dW;
  BT_RETURN_IF_ERROR(eps.allocate(sizeof(T) * size_t(B * I * O * S), "the benchmark trace"));
  BT_RETURN_IF_ERROR(D.allocate(sizeof(T) * size_t(B * O * S * S), "the benchmark D"));
  BT_RETURN_IF_ERROR(df.allocate(sizeof(T) * size_t(B * O * S), "the benchmark df"));
  BT_RETURN_IF_ERROR(x.allocate(sizeof(T) * size_t(B * I), "the benchmark x"));
  BT_RETURN_IF_ERROR(g.allocate(sizeof(T) * size_t(B * O * S), "the benchmark g"));
  BT_RETURN_IF_ERROR(dW.allocate(sizeof(T) * size_t(I * O), "the benchmark dW"));
  // Bounded values: D's rows sum to 0.9 / S (a contraction), so the trace stays finite and
  // normal however many steps run; every page is touched here, before timing.
  fill(eps.as<T>(), B * I * O * S, T(0.01));
  fill(D.as<T>(), B * O * S * S, T(0.9) / T(S));
  fill(df.as<T>(), B * O * S, T(0.5));
  fill(x.as<T>(), B * I, T(0.25));
  fill(g.as<T>(), B * O * S, T(0.125));
  fill(dW.as<T>(), I * O, T(0));
  DenseTraceTask<T> t;
  t.B = B;
  t.I = I;
  t.O = O;
  t.S = S;
  t.eps = eps.as<T>();
  t.D = D.as<T>();
  t.df = df.as<T>();
  t.x = x.as<T>();
  t.g = g.as<T>();
  t.dW = dW.as<T>();
  t.update = true;
  cpu_drtrl_dense(t);  // warm-up (thread pool started, caches and TLB in steady state)
  out->seconds_per_step = best_of(a.reps, [&] { cpu_drtrl_dense(t); });
  out->bytes_moved = 2.0 * n_eps * sizeof(T);
  return Status::Ok();
}

// The usable kernel named `name` ("" = the active one), or InvalidArgument.
Status find_kernel(const std::string& name, const char* what, const GemmKernelImpl** out) {
  *out = name.empty() ? gemm_kernel_active() : gemm_kernel_find(name);
  if (*out != nullptr) return Status::Ok();
  std::string avail;
  for (const std::string& k : gemm_kernels_available()) avail += (avail.empty() ? "" : ", ") + k;
  return invalid(std::string(what) + ": GEMM kernel \"" + name + "\" is not available on this machine (available: " +
                 avail + ")");
}

template <typename T>
Status gemm_bench(const GemmBenchArgs& a, const GemmKernelImpl& k, GemmBenchResult* out) {
  GemmDims d = a.d;
  const int64_t M = d.M, N = d.N, K = d.K;
  d.lda = d.trans_a ? M : K;
  d.ldb = d.trans_b ? K : N;
  d.ldc = N;
  BT_RETURN_IF_ERROR(check_total((double(M) * double(K) + double(K) * double(N) + double(M) * double(N)) * sizeof(T),
                                 "benchmarkGemm"));
  HostBuf A, B, C;
  BT_RETURN_IF_ERROR(A.allocate(sizeof(T) * size_t(M * K), "the benchmark A"));
  BT_RETURN_IF_ERROR(B.allocate(sizeof(T) * size_t(K * N), "the benchmark B"));
  BT_RETURN_IF_ERROR(C.allocate(sizeof(T) * size_t(M * N), "the benchmark C"));
  // Values in [-1, 1) that are not all equal (a fixed pattern), every page touched here.
  for (int64_t i = 0; i < M * K; ++i) A.as<T>()[i] = T(int64_t((i * 7919) % 2001) - 1000) / T(1000);
  for (int64_t i = 0; i < K * N; ++i) B.as<T>()[i] = T(int64_t((i * 104729) % 2001) - 1000) / T(1000);
  fill(C.as<T>(), M * N, T(0));
  auto run = [&] { gemm_with<T>(k, a.threads, d, T(1), A.as<T>(), B.as<T>(), T(0), C.as<T>()); };
  run();  // warm-up (thread pool started, packing buffers grown)
  out->seconds_per_rep = best_of(a.reps, run);
  out->flops = 2.0 * double(M) * double(N) * double(K);
  out->kernel = k.name;
  return Status::Ok();
}

}  // namespace

GemmKernelsInfo gemm_kernels_info() {
  GemmKernelsInfo r;
  r.active = gemm_kernel_active()->name;
  r.requested = gemm_kernel_requested();
  r.available = gemm_kernels_available();
  const GemmPackStats ps = gemm_pack_stats();
  r.pack_packs = ps.packs;
  r.pack_hits = ps.hits;
  r.pack_bytes = ps.bytes;
  return r;
}

Status gemm_call(const std::string& kernel, int threads, const GemmDims& d, DType dtype, double alpha,
                 const void* A, const void* B, double beta, void* C) {
  if (threads < 1) return invalid("gemm: threads must be >= 1, got " + std::to_string(threads));
  if (dtype != DType::F32 && dtype != DType::F64) return invalid("gemm: unknown dtype");
  const GemmKernelImpl* k = nullptr;
  BT_RETURN_IF_ERROR(find_kernel(kernel, "gemm", &k));
  return guarded("gemm", [&]() -> Status {
    if (dtype == DType::F32)
      gemm_with<float>(*k, threads, d, float(alpha), static_cast<const float*>(A), static_cast<const float*>(B),
                       float(beta), static_cast<float*>(C));
    else
      gemm_with<double>(*k, threads, d, alpha, static_cast<const double*>(A), static_cast<const double*>(B), beta,
                        static_cast<double*>(C));
    return Status::Ok();
  });
}

Status benchmark_gemm(const GemmBenchArgs& a, GemmBenchResult* out) {
  if (out == nullptr) return invalid("benchmark_gemm: out is null");
  const struct {
    const char* name;
    int64_t v;
  } dims[] = {{"M", a.d.M}, {"N", a.d.N}, {"K", a.d.K}, {"reps", a.reps}, {"threads", a.threads}};
  for (const auto& d : dims)
    if (d.v < 1) return invalid(std::string("benchmark_gemm: ") + d.name + " must be >= 1, got " + std::to_string(d.v));
  if (a.dtype != DType::F32 && a.dtype != DType::F64) return invalid("benchmark_gemm: unknown dtype");
  const GemmKernelImpl* k = nullptr;
  BT_RETURN_IF_ERROR(find_kernel(a.kernel, "benchmark_gemm", &k));
  return guarded("benchmark_gemm", [&]() -> Status {
    return a.dtype == DType::F32 ? gemm_bench<float>(a, *k, out) : gemm_bench<double>(a, *k, out);
  });
}

Status benchmark_copy(int64_t bytes, int64_t reps, CopyBenchResult* out) {
  if (out == nullptr) return invalid("benchmark_copy: out is null");
  if (bytes < 1) return invalid("benchmark_copy: bytes must be >= 1, got " + std::to_string(bytes));
  if (reps < 1) return invalid("benchmark_copy: reps must be >= 1, got " + std::to_string(reps));
  return guarded("benchmark_copy", [&]() -> Status {
    BT_RETURN_IF_ERROR(check_total(2.0 * double(bytes), "benchmarkCopy"));
    HostBuf src, dst;
    BT_RETURN_IF_ERROR(src.allocate(size_t(bytes), "the benchmark copy source"));
    BT_RETURN_IF_ERROR(dst.allocate(size_t(bytes), "the benchmark copy destination"));
    char* s = src.as<char>();
    char* d = dst.as<char>();
    // Work in 64-byte lines so chunk edges are cache-line aligned (no false sharing).
    const int64_t lines = (bytes + 63) / 64;
    const int64_t threads = thread_pool_size();
    const int64_t grain = std::max<int64_t>(1024, (lines + 2 * threads - 1) / (2 * threads));
    parallel_for(lines, grain, [=](int64_t b, int64_t e) {
      const int64_t lo = b * 64, hi = std::min(bytes, e * 64);
      std::memset(s + lo, 1, size_t(hi - lo));
      std::memset(d + lo, 0, size_t(hi - lo));
    });
    auto copy = [&] {
      parallel_for(lines, grain, [=](int64_t b, int64_t e) {
        const int64_t lo = b * 64, hi = std::min(bytes, e * 64);
        std::memcpy(d + lo, s + lo, size_t(hi - lo));
      });
    };
    copy();  // warm-up
    out->seconds_per_rep = best_of(reps, copy);
    out->bytes_moved = 2.0 * double(bytes);
    return Status::Ok();
  });
}

Status benchmark_trace_step(const TraceBenchArgs& a, TraceBenchResult* out) {
  if (out == nullptr) return invalid("benchmark_trace_step: out is null");
  const struct {
    const char* name;
    int64_t v;
  } dims[] = {{"batch", a.batch}, {"inputs", a.inputs}, {"outputs", a.outputs}, {"states", a.states}, {"reps", a.reps}};
  for (const auto& d : dims)
    if (d.v < 1) return invalid(std::string("benchmark_trace_step: ") + d.name + " must be >= 1, got " + std::to_string(d.v));
  if (a.dtype != DType::F32 && a.dtype != DType::F64) return invalid("benchmark_trace_step: unknown dtype");
  return guarded("benchmark_trace_step", [&]() -> Status {
    return a.dtype == DType::F32 ? trace_step<float>(a, out) : trace_step<double>(a, out);
  });
}

}  // namespace bt
