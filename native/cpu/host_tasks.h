// The CPU driver of the executor seam (core/executor.h): one function per task, each a
// loop over the shared bodies in native/kernels split over the process thread pool.
//
// The CPU executor (cpu/cpu_executor.cc) forwards every task here. The CUDA executor
// forwards the families it has no device kernel for yet, after synchronize(), over CUDA
// managed memory. Every function returns a Status and never throws out (an exception from
// a worker becomes Internal / OutOfMemory).
#pragma once

#include "core/executor.h"

namespace bt {

#define BT_HOST_TASK_DECLARE(method, Task) \
  template <typename T>                    \
  Status host_##method(const Task<T>& task);
BT_EXECUTOR_TASKS(BT_HOST_TASK_DECLARE)
#undef BT_HOST_TASK_DECLARE

class GemmPackCache;  // cpu/parallel_gemm.h

// host_matmul with the products whose B operand the task marks constant (NodeTask::b_epoch)
// served from `cache`'s packed copies (null: host_matmul). The same values bit for bit.
template <typename T>
Status host_matmul_cached(const NodeTask<T>& task, GemmPackCache* cache);

}  // namespace bt
