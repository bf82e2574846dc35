// Micro-benchmarks behind the binding's benchmarkCopy / benchmarkTraceStep (used by
// scripts/bench.js to put the D_RTRL trace kernel next to the machine's copy bandwidth).
// Both run on the process thread pool (cpu/thread_pool.h), like the kernels, allocate
// their buffers per call (64-byte aligned, not counted in memory_stats: no session owns
// them), touch every page before timing, and report the best of `reps` timed runs.
#pragma once

#include <cstdint>

#include "braintrace/api.h"

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

}  // namespace bt
