// The backend seam of the core: every numeric task the core asks a backend to do.
//
// native/core decodes plans, owns sessions and schedules work; it holds no numeric loop.
// For each plan node the interpreter hands one task to the session's Executor, chosen by
// the single table `op_task` below (test/executor-seam.test.ts lists it for every OpCode):
//   Elementwise  unary, binary, comparison, Where ops   -> Executor::elementwise (EwTask), or
//                Executor::elementwise_chain (a fused group of nodes, core/fusion.h)
//   Layout       Reshape, BroadcastTo, Transpose, Slice, Concat  -> Executor::layout
//   Reduce       ReduceSum, ReduceMean, ReduceMax      -> Executor::reduce
//   Softmax      Softmax, LogSoftmax                   -> Executor::softmax
//   MatMul       MatMul, EtpMatMul (and their transposed VJP products) -> Executor::matmul
// each in forward, JVP and VJP form. The other families of a step are tasks too: the
// per-position Jacobian reads and seeds of the Jacobian passes (jacobian_read, fill),
// cotangent accumulation and copies (axpy, copy), the non-finite scans (find_non_finite), the
// eligibility-trace updates and contractions (D_RTRL dense / vector traces, pp_prop's input
// trace, projection and chunked gradients) and
// the optimizer steps (optim_step, sum_squares).
//
// Drivers: native/cpu runs every task on the thread pool over the shared bodies in
// native/kernels (cpu/host_tasks.h); native/cuda runs element-wise tasks on the device
// and, until its kernels for the other families land, runs those through the same CPU
// driver functions over CUDA managed memory after synchronize(). A new backend is a new
// driver: nothing in native/core changes.
// Memory comes from Executor::alloc: plain aligned host memory on the CPU and CUDA
// managed memory on the GPU.
// Element-wise tasks are applied by the single shared body in native/kernels/elementwise.h:
// the CPU runs one loop per (op, mode) over tiles, the op dispatch outside the loop
// (cpu/ew_dispatch.h); CUDA launches a grid-stride kernel running the same body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "braintrace/api.h"
#include "kernels/optim.h"
#include "kernels/trace.h"

namespace bt {
struct Plan;
}

namespace bt {

// Which rule of an element-wise op a task applies.
enum class EwMode : int32_t {
  Forward = 0,  // result[i] = f(in[..][i])
  Jvp = 1,      // result[i] = sum_k d f / d in_k * tin[k][i]   (tin[k] null = zero tangent)
  Vjp = 2,      // gin[k][i] += d f / d in_k * gout[i]           (gin[k] null = not wanted)
};

// Attributes of an element-wise op, plain data so it can be passed by value to a kernel.
struct EwAttrs {
  int32_t surrogate = 0;  // Spike: bt::Surrogate
  double f[4] = {0, 0, 0, 0};  // LeakyRelu/Elu: f[0]; Clamp: lo, hi; Spike: surrogate params
};

// One element-wise task over n elements. All arrays have n elements.
template <typename T>
struct EwTask {
  OpCode op = OpCode::Neg;
  EwMode mode = EwMode::Forward;
  EwAttrs attrs;
  int64_t n = 0;
  const T* in[3] = {nullptr, nullptr, nullptr};   // primal inputs (arity of op)
  const T* out = nullptr;                          // primal output (Jvp/Vjp; some rules use it)
  const T* tin[3] = {nullptr, nullptr, nullptr};  // Jvp: input tangents
  T* result = nullptr;                             // Forward: output; Jvp: output tangent
  const T* gout = nullptr;                         // Vjp: output cotangent
  T* gin[3] = {nullptr, nullptr, nullptr};         // Vjp: input cotangents, accumulated into
  // Vjp: bit k set: gin[k] holds no value yet; the task zeroes gin[k][0, n) before it
  // accumulates (the result is the one of a fill with zeros followed by this task: a
  // driver may zero tile by tile just before the tile's accumulation, sparing a pass).
  uint32_t zero_gin = 0;
};


// Which executor task runs an op: the one table (op_task in native/core/executor.cc).
enum class TaskKind : int32_t { Leaf = 0, Elementwise = 1, Layout = 2, Reduce = 3, Softmax = 4, MatMul = 5 };
TaskKind op_task(OpCode op);
// "leaf" | "elementwise" | "layout" | "reduce" | "softmax" | "matmul"
const char* task_kind_name(TaskKind kind);

// One node of the Layout, Reduce, Softmax or MatMul family in forward, JVP or VJP form.
// The driver reads the node's geometry (shapes, axes, permutation) from the plan; the
// arrays are dense row-major arrays of the node and input shapes, indexed by node id.
template <typename T>
struct NodeTask {
  const Plan* plan = nullptr;
  int node = -1;
  EwMode mode = EwMode::Forward;
  const T* const* v = nullptr;  // values of every node (inputs and, for JVP/VJP, the output)
  const T* const* t = nullptr;  // Jvp: tangents of every node, null = zero tangent
  T* result = nullptr;          // Forward: the node's value; Jvp: its tangent (overwritten)
  const T* gout = nullptr;      // Vjp: the node's cotangent
  T* const* gin = nullptr;      // Vjp: one per input, accumulated into (+=); null = not wanted
  // Vjp of a MatMul / EtpMatMul: bit k set: gin[k] holds no value yet; the task writes it
  // as if it had been zeroed first (the products with beta 0: the same bits as zeros
  // followed by beta 1, since a product's accumulator starts at +0 and so is never -0).
  // Other node families do not read it: the session zeroes their inputs' cotangents itself.
  uint32_t zero_gin = 0;
  // Vjp of a MatMul / EtpMatMul whose input 0 is a Concat over its last axis that nothing
  // else reads (the session's split concats, core/session_impl.h): when set, gin[0] is null
  // and gin_concat[k] (null: not wanted) is the cotangent of the concat's input k, given its
  // share of G B^T directly (rows off_k .. off_k + n_k of B, n_k the input's last dim), so
  // the concat's own cotangent is never formed. The values are those of the concat's VJP
  // after the full product, bit for bit. Bit k of zero_concat: gin_concat[k] holds no value
  // yet (written as if zeroed first).
  T* const* gin_concat = nullptr;
  uint32_t zero_concat = 0;
  // Vjp of a MatMul / EtpMatMul whose input 0 is a last-axis Concat that is not split (it has
  // other readers, or splitting would reorder a sum: the session's trimmed concats):
  // nonzero = bit k set for each concat input k whose columns of
  // gin[0] = G B^T are wanted; only those columns are computed (the others stay as they
  // were and nothing reads them). Their values are the full product's, bit for bit.
  uint32_t gin0_blocks = 0;
  // MatMul: nonzero when input 1 (B) is a parameter whose values do not change while the
  // session hands out this number (it takes a new one whenever it loads parameters); a
  // driver may keep data derived from B (packed panels) keyed by B's address and this.
  uint64_t b_epoch = 0;
};

// y[0, n) += alpha * x[0, n).
template <typename T>
struct AxpyTask {
  int64_t n = 0;
  T alpha = T(1);
  const T* x = nullptr;
  T* y = nullptr;
  // y holds no value yet: y = 0 + alpha * x (the values of zeroing y first; 0 + x is x
  // except that -0 becomes +0), y is not read.
  bool zero_y = false;
};

// y[k * stride] = value for k in [0, count) (stride 1: a dense fill).
template <typename T>
struct FillTask {
  T* y = nullptr;
  int64_t count = 0;
  int64_t stride = 1;
  T value = T(0);
};

// Copies the tangents of a Jacobian request's members at positions [p0, p1) into its
// result: members m with width w[m] at column offset off[m] of S; src[m] null = zero.
//   col >= 0: Hid2Hid column col, dst[(p * S + off[m] + j) * S + col] = src[m][p * w[m] + j]
//   col <  0: Df rows,            dst[p * S + off[m] + j]             = src[m][p * w[m] + j]
template <typename T>
struct JacobianReadTask {
  int members = 0;
  const T* const* src = nullptr;
  const int64_t* width = nullptr;
  const int64_t* off = nullptr;
  int64_t p0 = 0, p1 = 0, S = 0, col = -1;
  T* dst = nullptr;
};

// The first index i in [0, n) with x[i] NaN or infinite, or -1, into *first.
template <typename T>
struct FiniteScanTask {
  const T* x = nullptr;
  int64_t n = 0;
  int64_t* first = nullptr;
};

// One optimizer update over n elements with the body of `kind` (kernels/optim.h). commit:
// apply it; !commit: a dry run that only reports, in *first_bad, the first element whose
// new value would not be finite (-1: none).
template <typename T>
struct OptimTask {
  int32_t kind = 0;  // 0 sgd, 1 adam / adamw, 2 rmsprop
  int64_t n = 0;
  bool commit = true;
  SgdTask<T> sgd;
  AdamTask<T> adam;
  RmsPropTask<T> rmsprop;
  int64_t* first_bad = nullptr;
};

// Sum of squares of a list of arrays into *out (double), in fixed blocks summed in order,
// so the result does not depend on the thread count.
template <typename T>
struct SumSquaresTask {
  const T* const* x = nullptr;
  const int64_t* n = nullptr;
  int64_t arrays = 0;
  double* out = nullptr;
};

// pp_prop's input trace: xbar[0, n) <- decay_x * xbar + x.
template <typename T>
struct PpInputTask {
  T* xbar = nullptr;
  const T* x = nullptr;
  T decay_x = T(0);
  int64_t n = 0;
};

// y[0, n) = x[0, n).
template <typename T>
struct CopyTask {
  int64_t n = 0;
  const T* x = nullptr;
  T* y = nullptr;
};

// pp_prop's projection of the learning signal on the output trace over P positions:
// q[p] = inv_c * sum_a g[p, a] epsf[p, a] (accumulate: q[p] += ...).
template <typename T>
struct PpProjectTask {
  const T* g = nullptr;
  const T* epsf = nullptr;
  int64_t P = 0, S = 1;
  T inv_c = T(1);
  T* q = nullptr;
  bool accumulate = false;
};

// pp_prop's bias / element-wise gradient: dp[k] += sum_b q[b, k] (q is B x O).
template <typename T>
struct PpVecGradTask {
  const T* q = nullptr;
  int64_t B = 0, O = 0;
  T* dp = nullptr;
};

// pp_prop's dense gradient of a chunk of contractions: dW (I x O) += Xbar^T Q, Xbar (K x I)
// and Q (K x O) stacking the chunk's input traces and projections (K = steps * B rows).
template <typename T>
struct PpDenseGradTask {
  const T* xbar = nullptr;
  const T* q = nullptr;
  int64_t K = 0, I = 0, O = 0;
  T* dW = nullptr;
};

// Most tasks one fused chain holds (the fusion pass, core/fusion.cc, closes a group there).
constexpr int kEwChainMax = 32;

// A fused chain of element-wise tasks over the same n elements, applied in order: the
// result must equal running tasks[0], then tasks[1], ... each over all n elements (each
// task reads and writes element i of its arrays only, so a driver may instead run every
// task over one tile of elements before moving to the next tile, keeping the chain's
// intermediates in cache). Plain data (no allocation): a fixed-capacity list.
template <typename T>
struct EwChainTask {
  int count = 0;  // tasks[0, count) are used; every one has tasks[k].n == n
  int64_t n = 0;
  EwTask<T> tasks[kEwChainMax];
};


// The task list of the seam: X(method, task type). Each becomes a pair of pure virtual
// methods of Executor (float and double). BT_EXECUTOR_EW_TASKS: the element-wise family
// (one node, a fused chain: elementwise_chain must give the same results, element for
// element and bit for bit, as handing its tasks to elementwise() one after the other);
// BT_EXECUTOR_NON_EW_TASKS: all the others.
#define BT_EXECUTOR_NON_EW_TASKS(X)    \
  X(layout, NodeTask)                  \
  X(reduce, NodeTask)                  \
  X(softmax, NodeTask)                 \
  X(matmul, NodeTask)                  \
  X(axpy, AxpyTask)                    \
  X(copy, CopyTask)                    \
  X(fill, FillTask)                    \
  X(jacobian_read, JacobianReadTask)   \
  X(find_non_finite, FiniteScanTask)   \
  X(drtrl_dense, DenseTraceTask)       \
  X(vec_trace, VecTraceTask)           \
  X(pp_input, PpInputTask)             \
  X(pp_project, PpProjectTask)         \
  X(pp_vec_grad, PpVecGradTask)        \
  X(pp_dense_grad, PpDenseGradTask)    \
  X(optim_step, OptimTask)             \
  X(sum_squares, SumSquaresTask)
#define BT_EXECUTOR_EW_TASKS(X) \
  X(elementwise, EwTask)        \
  X(elementwise_chain, EwChainTask)
#define BT_EXECUTOR_TASKS(X) \
  BT_EXECUTOR_EW_TASKS(X)    \
  BT_EXECUTOR_NON_EW_TASKS(X)

// Process-wide call counters of the seam, one per task method (relaxed atomics, a few
// nanoseconds per task, never per element): each driver counts the tasks it is handed, so
// a test can check that every op family runs through its task. Index order: the task list.
enum class TaskId : int32_t {
#define BT_EXECUTOR_TASK_ID(method, Task) method,
  BT_EXECUTOR_TASKS(BT_EXECUTOR_TASK_ID)
#undef BT_EXECUTOR_TASK_ID
  Count_
};
void count_task(TaskId id);
// (task method name, calls so far) for every task, in the order of the task list.
std::vector<std::pair<const char*, uint64_t>> task_counts();

class Executor {
 public:
  virtual ~Executor() = default;
  virtual Backend kind() const = 0;

  // Allocates `bytes` of memory usable by both this executor and the host (after
  // synchronize()). Returns nullptr on failure (never throws).
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  // Waits until every task handed to this executor has finished.
  virtual Status synchronize() = 0;

#define BT_EXECUTOR_DECLARE(method, Task)                  \
  virtual Status method(const Task<float>& task) = 0;     \
  virtual Status method(const Task<double>& task) = 0;
  BT_EXECUTOR_TASKS(BT_EXECUTOR_DECLARE)
#undef BT_EXECUTOR_DECLARE
};

// CPU executor (native/cpu): always available.
std::unique_ptr<Executor> make_cpu_executor();

// CUDA executor (native/cuda/*.cu in the CUDA build; native/cuda/cuda_stub.cc in
// the CPU build, where it returns nullptr and a status saying "built without CUDA").
std::unique_ptr<Executor> make_cuda_executor(Status* status);

// CUDA probe (same two implementations). Fills cuda_compiled, device_count,
// cuda_runtime_version, and a reason string when no device is usable
// (e.g. "built without CUDA", "cudaErrorInsufficientDriver: ..."). Never throws.
void cuda_probe(bool* cuda_compiled, int* device_count, int* runtime_version, std::string* reason);

}  // namespace bt
