#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define BT_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define BT_CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#elif defined(_M_ARM64) || defined(_M_ARM)
#include <intrin.h>
#define BT_CPU_RELAX() __yield()
#else
#define BT_CPU_RELAX() std::this_thread::yield()
#endif

namespace bt {
namespace {

// Parses a decimal integer in [lo, hi] from an environment variable; `def` when unset or bad.
long env_long(const char* name, long lo, long hi, long def) {
  if (const char* env = std::getenv(name)) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= lo) return std::min(v, hi);
  }
  return def;
}

int configured_size() {
  unsigned hc = std::thread::hardware_concurrency();
  const long def = hc == 0 ? 1 : static_cast<long>(std::min<unsigned>(hc, 1024));
  return static_cast<int>(env_long("BRAINTRACE_NUM_THREADS", 1, 1024, def));
}

constexpr long kDefaultSpinUs = 100;
constexpr long kMaxSpinUs = 100000;

std::chrono::microseconds configured_spin() {
  return std::chrono::microseconds(env_long("BRAINTRACE_SPIN_US", 0, kMaxSpinUs, kDefaultSpinUs));
}

// Spins (pause / yield instruction) until done() holds or `spin` has passed; returns done().
// Every few pauses it also yields the core: on an idle machine that returns at once, on an
// oversubscribed one (more runnable threads than cores) it lets the thread we wait for,
// or a neighbour's, run instead of burning the core it needs.
template <class Done>
bool spin_until(std::chrono::microseconds spin, Done done) {
  if (done()) return true;
  if (spin.count() <= 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + spin;
  for (;;) {
    for (int i = 0; i < 32; ++i) {  // a few pauses between clock reads
      BT_CPU_RELAX();
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::yield();
    if (done()) return true;
  }
}

// True on pool workers and on a caller while it runs a parallel job: nested
// parallel_for calls from there run inline.
thread_local bool t_in_parallel = false;

// The job ticket: one 64-bit atomic, [generation : 40][closed : 1][joined : 23].
// The caller publishes job g by storing (g, open, 0) after writing the job's fields; a
// worker takes part only by incrementing `joined` while the ticket still reads (g, open),
// and the caller closes the ticket when its own chunk loop ends. So the caller waits only
// for workers that joined (never for one that woke late), and a late worker never reads
// the fields of a job that is over, or of the next one being written.
constexpr uint64_t kJoinedBits = 23;
constexpr uint64_t kJoinedMask = (uint64_t(1) << kJoinedBits) - 1;
constexpr uint64_t kClosed = uint64_t(1) << kJoinedBits;
constexpr int kGenShift = kJoinedBits + 1;
inline uint64_t gen_of(uint64_t t) { return t >> kGenShift; }

class ThreadPool {
 public:
  explicit ThreadPool(int size, std::chrono::microseconds spin)
      : size_(size), spin_(spin), cursors_(static_cast<size_t>(size)), block_end_(static_cast<size_t>(size)) {
    for (int i = 1; i < size_; ++i) {
      try {
        workers_.emplace_back([this, i] { worker_loop(i); });
      } catch (...) {
        break;  // could not start more threads: run with fewer
      }
    }
    size_ = static_cast<int>(workers_.size()) + 1;
  }
  // Never destroyed (see pool()): joining threads during static destruction can
  // deadlock inside a host process such as Node.

  int size() const { return size_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t max_chunks = (n + grain - 1) / grain;
    if (size_ == 1 || max_chunks <= 1 || t_in_parallel) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (!run_lock.owns_lock()) {  // another thread is using the workers
      fn(0, n);
      return;
    }
    // A few chunks per thread balance uneven chunk costs.
    const int64_t chunks = std::min<int64_t>(max_chunks, int64_t(size_) * 4);
    const int64_t chunk = (n + chunks - 1) / chunks;
    // The previous job is closed and every worker that joined it has finished: nobody
    // reads these fields until the ticket below publishes them.
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    nchunks_ = (n + chunk - 1) / chunk;
    // Slot s (0: the caller, i: worker i) owns the chunks [cursor s, block_end_ s), the same
    // contiguous block of every job of this size, so consecutive element-wise ops and GEMM
    // tiles find their data in the cache of the core that touched it last; a thread that
    // runs out of its own block takes chunks from the others' (a worker that woke late).
    for (int sl = 0; sl < size_; ++sl) {
      cursors_[static_cast<size_t>(sl)].v.store(nchunks_ * sl / size_, std::memory_order_relaxed);
      block_end_[static_cast<size_t>(sl)] = nchunks_ * (sl + 1) / size_;
    }
    finished_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    ++gen_;
    // seq_cst store, then seq_cst load of sleepers_ (the worker does the mirror image):
    // either the worker sees the new ticket before it blocks, or we see it sleeping.
    ticket_.store(gen_ << kGenShift);
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lk(m_); }  // a worker between its check and its wait
      cv_.notify_all();
    }
    t_in_parallel = true;
    work(0);
    t_in_parallel = false;
    // No chunk is left to claim: close the job to late workers and wait for the joined ones.
    const uint64_t t = ticket_.fetch_or(kClosed, std::memory_order_acq_rel);
    const uint64_t joined = t & kJoinedMask;
    auto all_done = [&] { return finished_.load() == joined; };  // seq_cst: see finish()
    if (!spin_until(spin_, all_done)) {
      std::unique_lock<std::mutex> lk(done_m_);
      caller_waiting_.store(true);  // seq_cst, mirrored in finish()
      done_cv_.wait(lk, all_done);
      caller_waiting_.store(false, std::memory_order_relaxed);
    }
    fn_ = nullptr;
    std::exception_ptr err = error_;
    error_ = nullptr;
    run_lock.unlock();
    if (err) std::rethrow_exception(err);
  }

 private:
  // Runs chunks until none is left to claim: slot `self`'s block first, then the others'.
  void work(int self) {
    for (int k = 0; k < size_; ++k) {
      const size_t sl = static_cast<size_t>((self + k) % size_);
      const int64_t end = block_end_[sl];
      std::atomic<int64_t>& cur = cursors_[sl].v;
      while (cur.load(std::memory_order_relaxed) < end) {
        const int64_t c = cur.fetch_add(1, std::memory_order_relaxed);
        if (c >= end) break;
        const int64_t b = c * chunk_, e = std::min(n_, b + chunk_);
        try {
          (*fn_)(b, e);
        } catch (...) {
          std::lock_guard<std::mutex> lk(error_m_);
          if (!error_) error_ = std::current_exception();
        }
      }
    }
  }

  // Waits for a ticket whose generation is not `seen`: spins for spin_, then sleeps.
  uint64_t await_job(uint64_t seen) {
    uint64_t t = 0;
    auto fresh = [&] {
      t = ticket_.load(std::memory_order_acquire);
      return gen_of(t) != seen;
    };
    if (spin_until(spin_, fresh)) return t;
    std::unique_lock<std::mutex> lk(m_);
    sleepers_.fetch_add(1);  // seq_cst, then the seq_cst ticket load in fresh()
    cv_.wait(lk, [&] {
      t = ticket_.load();
      return gen_of(t) != seen;
    });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return t;
  }

  void finish() {
    finished_.fetch_add(1);  // seq_cst, then the seq_cst load of caller_waiting_
    if (caller_waiting_.load()) {
      { std::lock_guard<std::mutex> lk(done_m_); }  // the caller between its check and its wait
      done_cv_.notify_one();
    }
  }

  void worker_loop(int self) {
#if defined(__linux__)
    // "bt-pool": how a profile or /proc/<pid>/task tells the workers from the host's threads
    // (scripts/bench-serial.js counts their CPU time).
    pthread_setname_np(pthread_self(), "bt-pool");
#endif
    t_in_parallel = true;
    uint64_t seen = 0;  // the initial ticket: generation 0
    for (;;) {
      uint64_t t = await_job(seen);
      seen = gen_of(t);
      bool joined = false;
      while (gen_of(t) == seen && !(t & kClosed)) {
        if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;  // the job was over (or a newer one is up: await_job sees it)
      work(self);
      finish();
    }
  }

  int size_;
  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time on the workers
  uint64_t gen_ = 0;      // the last published generation (run_mutex_ holder only)
  std::atomic<uint64_t> ticket_{0};
  // The job (written by the run_mutex_ holder before it publishes the ticket).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, nchunks_ = 0;
  struct alignas(64) Cursor {
    std::atomic<int64_t> v{0};
  };
  std::vector<Cursor> cursors_;     // per slot: its next unclaimed chunk
  std::vector<int64_t> block_end_;  // per slot: the end of its block of chunks
  std::atomic<uint64_t> finished_{0};  // workers of this job done with their chunks
  std::mutex error_m_;
  std::exception_ptr error_;
  // Sleeping workers (m_, cv_) and a sleeping caller (done_m_, done_cv_).
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};
  std::mutex done_m_;
  std::condition_variable done_cv_;
  std::atomic<bool> caller_waiting_{false};
};

ThreadPool& pool() {
  static ThreadPool* p = new ThreadPool(configured_size(), configured_spin());  // intentionally leaked
  return *p;
}

}  // namespace

int thread_pool_size() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace bt
