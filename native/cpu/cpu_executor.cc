// The CPU executor: aligned host memory, and every task of the seam run by the CPU driver
// (cpu/host_tasks.h) on the thread pool. Tasks complete before the call returns, so
// synchronize() has nothing to wait for.
#include <memory>

#include "core/executor.h"
#include "core/memory.h"
#include "cpu/host_tasks.h"
#include "cpu/parallel_gemm.h"

namespace bt {
namespace {

class CpuExecutor final : public Executor {
 public:
  Backend kind() const override { return Backend::Cpu; }
  void* alloc(size_t bytes) override { return aligned_host_alloc(bytes); }
  void free(void* p) override { aligned_host_free(p); }
  Status synchronize() override { return Status::Ok(); }

#define BT_CPU_TASK(method, Task)                               \
  Status method(const Task<float>& task) override {                    \
    count_task(TaskId::method);                                        \
    return run(TaskId::method, task, &host_##method<float>);           \
  }                                                                    \
  Status method(const Task<double>& task) override {                   \
    count_task(TaskId::method);                                        \
    return run(TaskId::method, task, &host_##method<double>);          \
  }
  BT_EXECUTOR_TASKS(BT_CPU_TASK)
#undef BT_CPU_TASK

 private:
  template <typename Task>
  Status run(TaskId, const Task& task, Status (*fn)(const Task&)) {
    return fn(task);
  }
  // Matmul node tasks keep the packed copies of their constant B operands in the cache.
  template <typename T>
  Status run(TaskId id, const NodeTask<T>& task, Status (*fn)(const NodeTask<T>&)) {
    return id == TaskId::matmul ? host_matmul_cached(task, &pack_cache_) : fn(task);
  }

  GemmPackCache pack_cache_;
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor() { return std::unique_ptr<Executor>(new CpuExecutor()); }

}  // namespace bt
