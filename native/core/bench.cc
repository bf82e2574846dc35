#include "core/status_util.h"
#include "core/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "core/memory.h"
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

template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, std::string(what) + ": out of memory");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::Internal, std::string(what) + ": " + e.what());
  }
}

}  // namespace

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
