#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace bt {
namespace {

int configured_size() {
  if (const char* env = std::getenv("BRAINTRACE_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) return static_cast<int>(std::min<long>(v, 1024));
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min<unsigned>(hc, 1024));
}

// True on pool workers and on a caller while it runs a parallel job: nested
// parallel_for calls from there run inline.
thread_local bool t_in_parallel = false;

class ThreadPool {
 public:
  explicit ThreadPool(int size) : size_(size) {
    for (int i = 1; i < size_; ++i) {
      try {
        workers_.emplace_back([this] { worker_loop(); });
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
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      nchunks_ = (n + chunk - 1) / chunk;
      next_.store(0);
      error_ = nullptr;
      active_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    t_in_parallel = true;
    work();
    t_in_parallel = false;
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return active_ == 0; });
    fn_ = nullptr;
    std::exception_ptr err = error_;
    error_ = nullptr;
    lk.unlock();
    if (err) std::rethrow_exception(err);
  }

 private:
  void work() {
    for (;;) {
      const int64_t c = next_.fetch_add(1);
      if (c >= nchunks_) return;
      const int64_t b = c * chunk_, e = std::min(n_, b + chunk_);
      try {
        (*fn_)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker_loop() {
    t_in_parallel = true;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--active_ == 0) done_cv_.notify_one();
      }
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time on the workers
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  uint64_t generation_ = 0;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, nchunks_ = 0;
  std::atomic<int64_t> next_{0};
  int active_ = 0;
  std::exception_ptr error_;
};

ThreadPool& pool() {
  static ThreadPool* p = new ThreadPool(configured_size());  // intentionally leaked
  return *p;
}

}  // namespace

int thread_pool_size() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace bt
