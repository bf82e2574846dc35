// The process-wide CPU thread pool (no OpenMP).
//
// Size: BRAINTRACE_NUM_THREADS when it is set to a positive integer, otherwise
// std::thread::hardware_concurrency() (at least 1). The pool is created on first use
// and lives until the process exits. The size counts the calling thread, which always
// takes part in the work: a pool of size n starts n - 1 workers.
//
// Waiting: a worker that finishes a job spins (a pause / yield instruction between polls,
// and a sched yield every ~1 us, so a spinner on an oversubscribed machine gives its core
// away) for BRAINTRACE_SPIN_US microseconds (default 100, 0 disables, at most 100000)
// waiting for the next one, then blocks on a condition variable, so an idle process uses no CPU once
// that window has passed. A job is published by one atomic ticket store, so a spinning
// worker starts at once; a sleeping one is woken. The caller waits only for the workers
// that joined the job before its own chunk loop ran out (a late-waking worker delays
// nothing), spinning for the same window before it blocks. Each thread first runs its own
// contiguous block of a job's chunks (the same range of every same-sized job), then takes
// what is left of the others' blocks.
//
// Statistics: BRAINTRACE_POOL_STATS=1 counts, per process, the jobs, the ones the worker
// never joined, wake-ups from sleep, the caller's time in its own chunks and at the join,
// the worker's start latency, the gaps between jobs (serial time) and the same per call
// site (the return address of parallel_for: `addr2line -f -C -e braintrace.node <offset>`),
// jobs run inline included, and prints them to stderr at exit. Off by default (no clock read).
#pragma once

#include <cstdint>
#include <functional>

namespace bt {

// Number of threads parallel_for uses (>= 1), the caller included.
int thread_pool_size();

// Runs fn(begin, end) over disjoint chunks covering [0, n), each at least `grain`
// elements long (except the last), and returns when all chunks are done.
// Safe to call from several threads at once: only one call at a time uses the
// workers; a concurrent call (another session, another AsyncWorker) or a nested
// call from inside fn runs its chunks inline on the calling thread instead.
// An exception thrown by fn is rethrown in the caller (the first one, if several).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace bt
