// The backend seam of the core: what the interpreter asks a backend to do.
//
// The interpreter (native/core) walks a plan and, for each node, either runs a
// host loop itself or hands a task to the session's Executor. The element-wise
// family (unary, binary, comparison and Where ops, in forward, JVP and VJP
// form) always goes through `Executor::elementwise` (one node) or
// `Executor::elementwise_chain` (a fused group of nodes, see core/fusion.h), whose
// tasks are applied by the single shared body in native/kernels/elementwise.h:
//   * the CPU executor (native/cpu) runs one loop per (op, mode) over tiles of [0, n) on
//     the thread pool, the op dispatch outside the loop (cpu/ew_dispatch.h);
//   * the CUDA executor (native/cuda) launches a grid-stride kernel that runs the
//     same body (ew_apply) on the device.
// Memory comes from Executor::alloc: plain aligned host memory on the CPU and
// CUDA managed memory on the GPU, so the ops that have no CUDA path yet can still
// run as host loops over the same pointers after synchronize().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "braintrace/api.h"

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

class Executor {
 public:
  virtual ~Executor() = default;
  virtual Backend kind() const = 0;

  // Allocates `bytes` of memory usable by both this executor and host loops
  // (after synchronize()). Returns nullptr on failure (never throws).
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  // Waits until every task handed to this executor has finished.
  virtual Status synchronize() = 0;

  virtual Status elementwise(const EwTask<float>& task) = 0;
  virtual Status elementwise(const EwTask<double>& task) = 0;
  // Runs a fused chain (see EwChainTask): the same results, element for element and bit
  // for bit, as handing its tasks to elementwise() one after the other.
  virtual Status elementwise_chain(const EwChainTask<float>& chain) = 0;
  virtual Status elementwise_chain(const EwChainTask<double>& chain) = 0;
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
