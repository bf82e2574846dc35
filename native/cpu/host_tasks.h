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

}  // namespace bt
