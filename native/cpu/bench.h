// Micro-benchmarks behind the binding's benchmarkCopy / benchmarkTraceStep (used by
// scripts/bench.js to put the D_RTRL trace kernel next to the machine's copy bandwidth).
// Both run on the process thread pool (cpu/thread_pool.h), like the kernels, allocate
// their buffers per call (64-byte aligned, not counted in memory_stats: no session owns
// them), touch every page before timing, and report the best of `reps` timed runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "braintrace/api.h"
#include "kernels/gemm.h"

namespace bt {

struct CopyBenchResult {
  double seconds_per_rep = 0;  // best of reps
  double bytes_moved = 0;      // 2 * bytes (read + write)
};

// Copies `bytes` bytes between two buffers, split into contiguous chunks over the thread
// pool (memcpy per chunk). bytes >= 1, reps >= 1 (InvalidArgument otherwise); buffers that
// cannot be allocated, or that would take more than half the physical memory: OutOfMemory.
Status benchmark_copy(int64_t bytes, int64_t reps, CopyBenchResult* out);

struct TraceBenchArgs {
  int64_t batch = 0, inputs = 0, outputs = 0, states = 1;  // B, I, O, S (each >= 1)
  DType dtype = DType::F32;
  int64_t reps = 1;
};

struct TraceBenchResult {
  double seconds_per_step = 0;  // best of reps
  double bytes_moved = 0;       // 2 * B*I*O*S * sizeof(dtype): the trace read once, written once
};

// One fused dense D_RTRL step (update eps <- D eps + x df and contraction dW += g eps), the
// kernel run_online uses (cpu_drtrl_dense), on synthetic D (B, O, S, S), df (B, O, S),
// x (B, I), g (B, O, S) and a trace (B, I, O, S). Same error rules as benchmark_copy.
Status benchmark_trace_step(const TraceBenchArgs& args, TraceBenchResult* out);

// The CPU GEMM kernels (cpu/gemm_kernels.h): the active one, the value of
// BRAINTRACE_GEMM_KERNEL it was chosen under ("" when unset), and the usable ones,
// fastest first.
struct GemmKernelsInfo {
  std::string active, requested;
  std::vector<std::string> available;
  uint64_t pack_packs = 0, pack_hits = 0, pack_bytes = 0;  // cpu/parallel_gemm.h gemm_pack_stats()
};
GemmKernelsInfo gemm_kernels_info();

// One call of the CPU GEMM on caller memory (the binding's `gemm` test hook):
// C = alpha * op(A) * op(B) + beta * C with d (kernels/gemm.h), elements of `dtype`
// (F32 or F64), with the usable kernel named `kernel` ("" = the active one) on at most
// `threads` threads (>= 1). The caller has checked that the arrays cover d's extents.
// An unknown or unusable kernel, or threads < 1: InvalidArgument.
Status gemm_call(const std::string& kernel, int threads, const GemmDims& d, DType dtype, double alpha,
                 const void* A, const void* B, double beta, void* C);

struct GemmBenchArgs {
  GemmDims d;               // M, N, K >= 1, trans flags; leading dimensions are set here (dense)
  DType dtype = DType::F32;
  std::string kernel;       // "" = the active one
  int threads = 1;          // at most this many threads (>= 1)
  int64_t reps = 1;
};

struct GemmBenchResult {
  double seconds_per_rep = 0;  // best of reps, after one warm-up call
  double flops = 0;            // 2 * M * N * K
  std::string kernel;          // the kernel that ran
};

// Times C = op(A) * op(B) (alpha 1, beta 0) on synthetic dense operands (64-byte aligned,
// filled before timing). Same size rules as benchmark_copy; bad arguments: InvalidArgument.
Status benchmark_gemm(const GemmBenchArgs& args, GemmBenchResult* out);

}  // namespace bt
