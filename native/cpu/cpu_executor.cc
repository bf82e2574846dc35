// The CPU executor: aligned host memory and element-wise tasks on the thread pool: one
// loop per (op, mode) chosen once per task (cpu/ew_dispatch.h); a fused chain runs all its
// tasks tile by tile.
#include <memory>
#include <string>

#include "core/executor.h"
#include "core/memory.h"
#include "cpu/thread_pool.h"
#include "cpu/ew_dispatch.h"
#include "kernels/elementwise.h"

namespace bt {
namespace {

// Elements per chunk: large enough that the pool's dispatch cost (a few microseconds)
// is small against the work, small enough to spread mid-size tensors over threads.
constexpr int64_t kEwGrain = 16384;
// Bytes of one array per tile of a fused chain: every task of the chain runs over one
// tile before the next tile starts, so the tile of each intermediate (written by one task,
// read by the next) is still in L1 / L2 when it is read: 1024 float64 or 2048 float32.
constexpr int64_t kEwTileBytes = 8192;

Status not_elementwise(const char* what, OpCode op) {
  return Status::Error(StatusCode::Internal,
                       std::string(what) + ": op " + kOpNames[static_cast<int>(op)] + " is not element-wise");
}

template <typename T>
Status run_elementwise(const EwTask<T>& task) {
  const EwLoop<T> loop = ew_select(task);
  if (loop == nullptr) return not_elementwise("elementwise", task.op);
  parallel_for(task.n, kEwGrain, [&task, loop](int64_t b, int64_t e) { loop(task, b, e); });
  return Status::Ok();
}

template <typename T>
Status run_chain(const EwChainTask<T>& chain) {
  if (chain.count < 0 || chain.count > kEwChainMax)
    return Status::Error(StatusCode::Internal, "elementwise_chain: task count " + std::to_string(chain.count) +
                                                   " is outside [0, " + std::to_string(kEwChainMax) + "]");
  EwLoop<T> loops[kEwChainMax];
  for (int k = 0; k < chain.count; ++k) {
    const EwTask<T>& t = chain.tasks[k];
    loops[k] = ew_select(t);
    if (loops[k] == nullptr) return not_elementwise("elementwise_chain", t.op);
    if (t.n != chain.n)
      return Status::Error(StatusCode::Internal, "elementwise_chain: task " + std::to_string(k) + " has " +
                                                     std::to_string(t.n) + " elements, the chain " +
                                                     std::to_string(chain.n));
  }
  constexpr int64_t kTile = kEwTileBytes / static_cast<int64_t>(sizeof(T));
  const int count = chain.count;
  parallel_for(chain.n, kEwGrain, [&chain, &loops, count](int64_t b, int64_t e) {
    for (int64_t t0 = b; t0 < e; t0 += kTile) {
      const int64_t t1 = e - t0 < kTile ? e : t0 + kTile;
      for (int k = 0; k < count; ++k) loops[k](chain.tasks[k], t0, t1);
    }
  });
  return Status::Ok();
}

class CpuExecutor final : public Executor {
 public:
  Backend kind() const override { return Backend::Cpu; }
  void* alloc(size_t bytes) override { return aligned_host_alloc(bytes); }
  void free(void* p) override { aligned_host_free(p); }
  Status synchronize() override { return Status::Ok(); }
  Status elementwise(const EwTask<float>& task) override { return run_elementwise(task); }
  Status elementwise(const EwTask<double>& task) override { return run_elementwise(task); }
  Status elementwise_chain(const EwChainTask<float>& chain) override { return run_chain(chain); }
  Status elementwise_chain(const EwChainTask<double>& chain) override { return run_chain(chain); }
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor() { return std::unique_ptr<Executor>(new CpuExecutor()); }

}  // namespace bt
