// Host emulation of the CUDA executor's launch: for many sizes and SM counts, every
// (block, thread) pair of the grid that native/cuda/launch.h chooses runs the grid-stride
// loop over the shared element-wise body ew_apply, exactly as the __global__ kernel in
// native/cuda/executor.cu does. Checks that every element is visited exactly once and that
// the results equal a plain loop over ew_apply. Prints "ok" and exits 0 on success.
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/executor.h"
#include "cuda/launch.h"
#include "kernels/elementwise.h"

using namespace bt;

static int failures = 0;
#define CHECK(cond, ...)                 \
  do {                                   \
    if (!(cond)) {                       \
      std::printf(__VA_ARGS__);          \
      std::printf("\n");                 \
      ++failures;                        \
    }                                    \
  } while (0)

// Runs `body(i)` for every element the emulated grid visits; returns the visit counts.
template <typename F>
static std::vector<int> emulate(int64_t n, int sm_count, F&& body) {
  std::vector<int> visits(static_cast<size_t>(n), 0);
  const cuda_launch::Geometry g = cuda_launch::geometry_for(n, sm_count);
  if (n == 0) {
    CHECK(g.blocks == 0, "n = 0 must launch nothing (got %d blocks)", g.blocks);
    return visits;
  }
  CHECK(g.blocks >= 1 && g.threads == cuda_launch::kThreadsPerBlock, "bad geometry for n = %lld", (long long)n);
  const int64_t nthreads = int64_t(g.blocks) * g.threads;
  for (int b = 0; b < g.blocks; ++b)
    for (int t = 0; t < g.threads; ++t)
      cuda_launch::grid_stride_range(int64_t(b) * g.threads + t, nthreads, n, [&](int64_t i) {
        ++visits[static_cast<size_t>(i)];
        body(i);
      });
  return visits;
}

int main() {
  const int64_t sizes[] = {0, 1, 255, 256, 257, 1000, 70000, 300000};
  const int sms[] = {0, 1, 4, 132};
  for (int64_t n : sizes) {
    for (int sm : sms) {
      // Tanh forward + VJP on the emulated grid against a plain loop over the same body.
      std::vector<double> x(static_cast<size_t>(n)), y(x.size()), g(x.size(), 1.0), gx(x.size(), 0.0);
      std::vector<double> y_ref(x.size()), gx_ref(x.size(), 0.0);
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * double(i));
      EwTask<double> fwd;
      fwd.op = OpCode::Tanh;
      fwd.mode = EwMode::Forward;
      fwd.n = n;
      fwd.in[0] = x.data();
      fwd.result = y.data();
      std::vector<int> v = emulate(n, sm, [&](int64_t i) { ew_apply(fwd, i); });
      for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == 1, "n %lld sm %d: element %zu visited %d times", (long long)n, sm, i, v[i]);
      EwTask<double> ref = fwd;
      ref.result = y_ref.data();
      for (int64_t i = 0; i < n; ++i) ew_apply(ref, i);
      EwTask<double> vjp;
      vjp.op = OpCode::Tanh;
      vjp.mode = EwMode::Vjp;
      vjp.n = n;
      vjp.in[0] = x.data();
      vjp.out = y.data();
      vjp.gout = g.data();
      vjp.gin[0] = gx.data();
      emulate(n, sm, [&](int64_t i) { ew_apply(vjp, i); });
      EwTask<double> vref = vjp;
      vref.gin[0] = gx_ref.data();
      for (int64_t i = 0; i < n; ++i) ew_apply(vref, i);
      for (size_t i = 0; i < x.size(); ++i) {
        CHECK(y[i] == y_ref[i], "n %lld sm %d: forward differs at %zu", (long long)n, sm, i);
        CHECK(gx[i] == gx_ref[i], "n %lld sm %d: VJP differs at %zu", (long long)n, sm, i);
      }
    }
  }
  // The grid is capped at kBlocksPerSm * SMs (each thread then strides).
  const cuda_launch::Geometry capped = cuda_launch::geometry_for(int64_t(1) << 30, 10);
  CHECK(capped.blocks == 10 * cuda_launch::kBlocksPerSm, "cap: got %d blocks", capped.blocks);
  if (failures == 0) std::printf("ok\n");
  return failures == 0 ? 0 : 1;
}
