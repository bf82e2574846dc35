#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <map>
#include <string>
#if defined(__linux__)
#include <dlfcn.h>
#endif
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

// Opt-in counters (BRAINTRACE_POOL_STATS=1): where a 2-thread run loses time. Printed to
// stderr at process exit. Off by default: no clock is read then.
struct PoolStats {
  std::atomic<uint64_t> jobs{0}, inline_jobs{0}, joined{0}, missed{0}, woke{0};
  std::atomic<uint64_t> own_ns{0}, join_wait_ns{0}, caller_slept{0}, worker_lat_ns{0}, worker_work_ns{0};
  std::atomic<uint64_t> gap_ns{0}, gaps[5]{};  // gaps between jobs: <10us <100us <1ms <10ms more
  // Per call site (the job's callable type), touched by the run_mutex_ holder only.
  struct Site {
    uint64_t jobs = 0, missed = 0, own_ns = 0, wait_ns = 0, gap_ns = 0, n = 0;
    uint64_t inl_jobs = 0, inl_n = 0, inl_ns = 0;  // run inline (one chunk, or a 1-thread pool)
  };
  std::mutex site_m;
  std::map<const void*, Site> sites;
};
bool stats_on() {
  static const bool on = env_long("BRAINTRACE_POOL_STATS", 0, 1, 0) == 1;
  return on;
}
PoolStats* g_stats = nullptr;
// The function around a call site and the offset into it (dladdr), or the bare address.
std::string site_name(const void* pc) {
  char buf[64];
#if defined(__linux__)
  Dl_info info;
  if (dladdr(pc, &info) != 0) {  // module offset: addr2line -f -C -e <module> <offset>
    std::snprintf(buf, sizeof buf, "0x%llx ", (unsigned long long)((const char*)pc - (const char*)info.dli_fbase));
    return std::string(buf) + (info.dli_sname != nullptr ? info.dli_sname : "");
  }
#endif
  std::snprintf(buf, sizeof buf, "%p", pc);
  return buf;
}
void print_stats() {
  PoolStats& q = *g_stats;
  const double j = double(std::max<uint64_t>(q.jobs.load(), 1));
  std::fprintf(stderr,
               "bt-pool stats: jobs %llu (inline %llu), worker joined %llu, missed %llu, woke from sleep %llu\n"
               "  caller per job: own chunks %.2f us, wait at join %.2f us (slept %llu times)\n"
               "  worker per joined job: publish->join %.2f us, work %.2f us\n"
               "  gaps between jobs: mean %.2f us; <10us %llu, <100us %llu, <1ms %llu, <10ms %llu, more %llu\n",
               (unsigned long long)q.jobs.load(), (unsigned long long)q.inline_jobs.load(),
               (unsigned long long)q.joined.load(), (unsigned long long)q.missed.load(),
               (unsigned long long)q.woke.load(), q.own_ns.load() / j / 1e3, q.join_wait_ns.load() / j / 1e3,
               (unsigned long long)q.caller_slept.load(),
               q.worker_lat_ns.load() / double(std::max<uint64_t>(q.joined.load(), 1)) / 1e3,
               q.worker_work_ns.load() / double(std::max<uint64_t>(q.joined.load(), 1)) / 1e3,
               q.gap_ns.load() / j / 1e3, (unsigned long long)q.gaps[0].load(),
               (unsigned long long)q.gaps[1].load(), (unsigned long long)q.gaps[2].load(),
               (unsigned long long)q.gaps[3].load(), (unsigned long long)q.gaps[4].load());
  std::fprintf(stderr,
               "  per call site: jobs, missed, mean n, own us, wait us, gap before us (total ms) |"
               " inline: jobs, mean n, us (total ms)\n");
  std::lock_guard<std::mutex> lk(q.site_m);  // a call may still be running at exit
  for (const auto& kv : q.sites) {
    const auto& x = kv.second;
    const double jj = double(std::max<uint64_t>(x.jobs, 1)), ji = double(std::max<uint64_t>(x.inl_jobs, 1));
    std::fprintf(stderr, "  %8llu %7llu %9.0f %8.2f %7.2f %8.2f (%7.1f) | %8llu %9.0f %8.2f (%7.1f)  %s\n",
                 (unsigned long long)x.jobs, (unsigned long long)x.missed, x.n / jj, x.own_ns / jj / 1e3,
                 x.wait_ns / jj / 1e3, x.gap_ns / jj / 1e3, (x.own_ns + x.wait_ns + x.gap_ns) / 1e6,
                 (unsigned long long)x.inl_jobs, x.inl_n / ji, x.inl_ns / ji / 1e3, x.inl_ns / 1e6,
                 site_name(kv.first).c_str());
  }
}
PoolStats& stats() {
  static PoolStats* s = [] {
    g_stats = new PoolStats();  // intentionally leaked, like the pool
    std::atexit(print_stats);
    return g_stats;
  }();
  return *s;
}
inline uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
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

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, const void* site) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t max_chunks = (n + grain - 1) / grain;
    if (size_ == 1 || max_chunks <= 1 || t_in_parallel) {
      if (stats_on() && !t_in_parallel) {
        const uint64_t t0 = now_ns();
        fn(0, n);
        const uint64_t dt = now_ns() - t0;
        PoolStats& q = stats();
        q.inline_jobs.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(q.site_m);
        PoolStats::Site& rec = q.sites[site];
        rec.inl_jobs++;
        rec.inl_n += static_cast<uint64_t>(n);
        rec.inl_ns += dt;
        return;
      }
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
    const bool st = stats_on();
    if (st) {
      publish_ns_ = now_ns();
      PoolStats& q = stats();
      q.jobs.fetch_add(1, std::memory_order_relaxed);
      last_gap_ns_ = last_end_ns_ != 0 ? publish_ns_ - last_end_ns_ : 0;
      if (last_end_ns_ != 0) {
        const uint64_t g = publish_ns_ - last_end_ns_;
        q.gap_ns.fetch_add(g, std::memory_order_relaxed);
        q.gaps[g < 10000 ? 0 : g < 100000 ? 1 : g < 1000000 ? 2 : g < 10000000 ? 3 : 4].fetch_add(
            1, std::memory_order_relaxed);
      }
    }
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
    const uint64_t own_end = st ? now_ns() : 0;
    // No chunk is left to claim: close the job to late workers and wait for the joined ones.
    const uint64_t t = ticket_.fetch_or(kClosed, std::memory_order_acq_rel);
    const uint64_t joined = t & kJoinedMask;
    auto all_done = [&] { return finished_.load() == joined; };  // seq_cst: see finish()
    if (!spin_until(spin_, all_done)) {
      if (st) stats().caller_slept.fetch_add(1, std::memory_order_relaxed);
      std::unique_lock<std::mutex> lk(done_m_);
      caller_waiting_.store(true);  // seq_cst, mirrored in finish()
      done_cv_.wait(lk, all_done);
      caller_waiting_.store(false, std::memory_order_relaxed);
    }
    if (st) {
      PoolStats& q = stats();
      last_end_ns_ = now_ns();
      q.own_ns.fetch_add(own_end - publish_ns_, std::memory_order_relaxed);
      q.join_wait_ns.fetch_add(last_end_ns_ - own_end, std::memory_order_relaxed);
      if (joined == 0) q.missed.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lk(q.site_m);
      PoolStats::Site& rec = q.sites[site];
      rec.jobs++;
      rec.missed += joined == 0;
      rec.n += static_cast<uint64_t>(n);
      rec.own_ns += own_end - publish_ns_;
      rec.wait_ns += last_end_ns_ - own_end;
      rec.gap_ns += last_gap_ns_;
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
    if (stats_on()) stats().woke.fetch_add(1, std::memory_order_relaxed);
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
      if (stats_on()) {
        const uint64_t t0 = now_ns();
        work(self);
        PoolStats& q = stats();
        q.joined.fetch_add(1, std::memory_order_relaxed);
        q.worker_lat_ns.fetch_add(t0 - publish_ns_, std::memory_order_relaxed);
        q.worker_work_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
      } else {
        work(self);
      }
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
  uint64_t publish_ns_ = 0;   // stats only: when the job was published
  uint64_t last_end_ns_ = 0;  // stats only (run_mutex_ holder): when the last job returned
  uint64_t last_gap_ns_ = 0;
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
  pool().run(n, grain, fn, __builtin_return_address(0));
}

}  // namespace bt
