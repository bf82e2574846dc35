// The process-wide CPU thread pool (no OpenMP).
//
// Size: BRAINTRACE_NUM_THREADS when it is set to a positive integer, otherwise
// std::thread::hardware_concurrency() (at least 1). The pool is created on first use
// and lives until the process exits. The size counts the calling thread, which always
// takes part in the work: a pool of size n starts n - 1 workers.
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
