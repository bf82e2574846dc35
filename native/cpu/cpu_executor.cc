// The CPU executor: aligned host memory and element-wise tasks on the thread pool.
#include <memory>

#include "core/executor.h"
#include "core/memory.h"
#include "cpu/thread_pool.h"
#include "kernels/elementwise.h"

namespace bt {
namespace {

// Elements per chunk: large enough that the pool's dispatch cost (a few microseconds)
// is small against the work, small enough to spread mid-size tensors over threads.
constexpr int64_t kEwGrain = 16384;

template <typename T>
Status run_elementwise(const EwTask<T>& task) {
  if (ew_arity(task.op) == 0) {
    return Status::Error(StatusCode::Internal,
                         std::string("elementwise: op ") + kOpNames[static_cast<int>(task.op)] +
                             " is not element-wise");
  }
  parallel_for(task.n, kEwGrain, [&task](int64_t b, int64_t e) {
    const EwTask<T> t = task;  // local copy: the compiler sees no aliasing through the task
    for (int64_t i = b; i < e; ++i) ew_apply(t, i);
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
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor() { return std::unique_ptr<Executor>(new CpuExecutor()); }

}  // namespace bt
