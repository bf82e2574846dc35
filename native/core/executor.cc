// The op -> executor task table of the seam (core/executor.h).
#include "core/executor.h"

#include <atomic>

namespace bt {
namespace {

std::atomic<uint64_t> g_task_calls[static_cast<int>(TaskId::Count_)];

constexpr const char* kTaskNames[] = {
#define BT_EXECUTOR_TASK_NAME(method, Task) #method,
    BT_EXECUTOR_TASKS(BT_EXECUTOR_TASK_NAME)
#undef BT_EXECUTOR_TASK_NAME
};

}  // namespace

void count_task(TaskId id) { g_task_calls[static_cast<int>(id)].fetch_add(1, std::memory_order_relaxed); }

std::vector<std::pair<const char*, uint64_t>> task_counts() {
  std::vector<std::pair<const char*, uint64_t>> out;
  for (int i = 0; i < static_cast<int>(TaskId::Count_); ++i)
    out.emplace_back(kTaskNames[i], g_task_calls[i].load(std::memory_order_relaxed));
  return out;
}

TaskKind op_task(OpCode op) {
  switch (op) {
    case OpCode::Input:
    case OpCode::Param:
    case OpCode::State:
    case OpCode::Const:
      return TaskKind::Leaf;
    case OpCode::Reshape:
    case OpCode::BroadcastTo:
    case OpCode::Transpose:
    case OpCode::Slice:
    case OpCode::Concat:
      return TaskKind::Layout;
    case OpCode::ReduceSum:
    case OpCode::ReduceMean:
    case OpCode::ReduceMax:
      return TaskKind::Reduce;
    case OpCode::Softmax:
    case OpCode::LogSoftmax:
      return TaskKind::Softmax;
    case OpCode::MatMul:
    case OpCode::EtpMatMul:
      return TaskKind::MatMul;
    default:
      return TaskKind::Elementwise;  // every other op of BT_OP_LIST (ew_arity > 0)
  }
}

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::Leaf: return "leaf";
    case TaskKind::Elementwise: return "elementwise";
    case TaskKind::Layout: return "layout";
    case TaskKind::Reduce: return "reduce";
    case TaskKind::Softmax: return "softmax";
    case TaskKind::MatMul: return "matmul";
  }
  return "unknown";
}

}  // namespace bt
