// Micro-benchmark of the CPU element-wise loops of the transcendental ops (cpu/ew_dispatch.h):
// ns per element of Exp, Tanh, Sigmoid forward and Tanh VJP (y taped) over n float32 / float64
// elements, with the loop table ew_select picks (BRAINTRACE_EW_ISA=sse2 forces the portable
// one). Header-only, so it also builds against an older checkout for an A/B:
//   g++ -std=c++17 -O3 -I <checkout>/native/include -I <checkout>/native scripts/ew_math_bench.cc -o b
//   ./b [n] [reps]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cpu/ew_dispatch.h"

using namespace bt;

template <typename T>
double time_op(OpCode op, EwMode mode, int64_t n, int reps) {
  std::vector<T> x(n), y(n), g(n), gi(n);
  for (int64_t i = 0; i < n; ++i) x[i] = T(((i * 7919) % 2001) / 250.0 - 4.0);  // [-4, 4]
  EwTask<T> t;
  t.op = op;
  t.mode = mode;
  t.n = n;
  t.in[0] = x.data();
  if (mode == EwMode::Forward) {
    t.result = y.data();
  } else {
    t.out = y.data();
    t.gout = g.data();
    t.gin[0] = gi.data();
  }
  const EwLoop<T> loop = ew_select(t);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    loop(t, 0, n);
    const auto b = std::chrono::steady_clock::now();
    const double ns = std::chrono::duration<double, std::nano>(b - a).count() / static_cast<double>(n);
    if (ns < best) best = ns;
  }
  volatile T sink = y[n / 2] + gi[n / 3];
  (void)sink;
  return best;
}

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 16384;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 200;
  struct Row { const char* name; OpCode op; EwMode mode; };
  const Row rows[] = {{"exp", OpCode::Exp, EwMode::Forward}, {"tanh", OpCode::Tanh, EwMode::Forward},
                      {"sigmoid", OpCode::Sigmoid, EwMode::Forward}, {"tanh_vjp", OpCode::Tanh, EwMode::Vjp}};
  for (const Row& r : rows)
    std::printf("%-9s f32 %6.3f ns/elem   f64 %6.3f ns/elem\n", r.name, time_op<float>(r.op, r.mode, n, reps),
                time_op<double>(r.op, r.mode, n, reps));
  return 0;
}
