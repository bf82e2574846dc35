// Hand-off latency of the native thread pool (native/cpu/thread_pool.h): `jobs` calls of
// bt::parallel_for with 2 chunks of `work_us` busy work each, `gap_us` of busy work on the
// caller between calls. Prints how many jobs a worker took part in, the worker's mean start
// delay (from the call) and the median job wall time (1 thread: 2 x work_us).
// Build and run (no Node):
//   g++ -std=c++17 -O2 -pthread -Inative scripts/pool_handoff.cc native/cpu/thread_pool.cc -o /tmp/pool_handoff
//   BRAINTRACE_NUM_THREADS=2 /tmp/pool_handoff [work_us 500] [gap_us 50] [jobs 200]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#include "cpu/thread_pool.h"
using clk = std::chrono::steady_clock;
static void busy(double us) {
  auto end = clk::now() + std::chrono::duration<double, std::micro>(us);
  while (clk::now() < end) {}
}
int main(int argc, char** argv) {
  const double work_us = argc > 1 ? atof(argv[1]) : 500, gap_us = argc > 2 ? atof(argv[2]) : 50;
  const int jobs = argc > 3 ? atoi(argv[3]) : 200;
  std::printf("pool %d threads\n", bt::thread_pool_size());
  const auto main_id = std::this_thread::get_id();
  int shared = 0;
  double delay_sum = 0;
  std::vector<double> walls;
  for (int j = 0; j < jobs; ++j) {
    busy(gap_us);
    std::atomic<double> worker_start{-1};
    const auto t0 = clk::now();
    bt::parallel_for(2, 1, [&](int64_t b, int64_t e) {
      if (std::this_thread::get_id() != main_id)
        worker_start.store(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
      busy(work_us * (e - b));
    });
    walls.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    if (worker_start.load() >= 0) { shared++; delay_sum += worker_start.load(); }
  }
  std::sort(walls.begin(), walls.end());
  std::printf("work %.0f us x 2 chunks, gap %.0f us: worker ran a chunk in %d/%d jobs, mean start delay %.1f us, median job %.1f us (1 thread: %.0f)\n",
              work_us, gap_us, shared, jobs, shared ? delay_sum / shared : 0.0, walls[walls.size() / 2], 2 * work_us);
}
