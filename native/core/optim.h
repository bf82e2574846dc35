// Native optimizers (bt.optim): the state and the step driver behind the binding's
// createOptimizer. Plain C++ with status returns (no Node types, never aborts).
//
// An Optimizer updates a list of parameters in place from a list of gradients of the
// same sizes, in the optimizer's dtype (float for F32, double for F64). The per-element
// math is one body per kind in kernels/optim.h; on the CPU it runs over the process
// thread pool (cpu/thread_pool.h).
//
// State: per parameter, K buffers of the parameter's size (K and their names depend on
// the kind and hyper-parameters, see state_slot_name):
//   sgd      momentum > 0: "momentum"                                         (K = 0 or 1)
//   adam(w)  "m", "v"                                                         (K = 2)
//   rmsprop  "squareAvg", then "momentum" when momentum > 0, then "gradAvg" when
//            centered                                                         (K = 1..3)
// The buffers are allocated, zero-filled, by the first step (which fixes the number of
// parameters and their sizes: later steps must pass the same) or by set_state. They are
// recorded in the process memory accounting (memory_stats()).
//
// The flat state order (get_state / set_state) is parameter-major: entry i * K + k is
// slot k of parameter i.
//
// Not thread-safe: one call at a time per optimizer (the binding calls it on the JS thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "braintrace/api.h"

namespace bt {

class Executor;

enum class OptimKind : int32_t { Sgd = 0, Adam = 1, AdamW = 2, RmsProp = 3 };

// "sgd" | "adam" | "adamw" | "rmsprop" (InvalidArgument otherwise).
Status optim_kind_from_name(const std::string& name, OptimKind* out);
const char* optim_kind_name(OptimKind kind);

// Hyper-parameters (those a kind does not use are ignored). Checked by Create:
//   momentum in [0, inf), dampening in [0, 1], weight_decay in [0, inf),
//   beta1, beta2 in [0, 1), eps in [0, inf), alpha in [0, 1]; all finite;
//   nesterov requires momentum > 0 and dampening == 0 (as in PyTorch).
// What a step does with NaN and infinity (gradients, and new parameter or state values,
// e.g. from a learning rate so large that the update overflows):
//   Error: StatusCode::NonFinite naming "grads[i]" (a non-finite gradient, found by the
//          global-norm pass that reads every gradient anyway) or "params[i]" (an update that
//          would write a non-finite value, found by a dry run of the update bodies before
//          anything is written) with the first bad index; nothing is modified.
//   Skip:  the same checks; a failing step modifies nothing, does not count as a step, and
//          returns Ok with *skipped = true.
//   Allow: no checks (the update writes whatever it computes).
enum class NonFinitePolicy : int32_t { Error = 0, Skip = 1, Allow = 2 };

struct OptimHyper {
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double alpha = 0.99;
  bool centered = false;
};

class Optimizer {
 public:
  static Status Create(OptimKind kind, const OptimHyper& hyper, DType dtype, std::unique_ptr<Optimizer>* out);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  OptimKind kind() const { return kind_; }
  DType dtype() const { return dtype_; }
  const OptimHyper& hyper() const { return hyper_; }

  // State buffers per parameter (K) and their names.
  int num_state_slots() const { return static_cast<int>(slot_names_.size()); }
  const std::string& state_slot_name(int k) const { return slot_names_[static_cast<size_t>(k)]; }

  // True once the parameter sizes are fixed (first step, or set_state with K > 0).
  bool bound() const { return bound_; }
  // The bound element counts, one per parameter (empty before binding).
  const std::vector<int64_t>& sizes() const { return sizes_; }

  // Steps taken (t of Adam's bias correction; the next step uses t + 1).
  int64_t step_count() const { return step_count_; }
  // n >= 0 (InvalidArgument otherwise).
  Status set_step_count(int64_t n);

  // Bytes of state held (for the binding's external-memory report).
  size_t state_bytes() const { return state_bytes_; }

  // One update: params[i] (sizes[i] elements, updated in place) from grads[i].
  // norm = sqrt(sum over all gradients of g^2), accumulated in double in a fixed order
  // (deterministic whatever the thread count); *grad_norm receives it (before clipping).
  // max_norm > 0 clips: every gradient is scaled by min(1, max_norm / (norm + 1e-6))
  // before the update (the gradient arrays themselves are not modified). max_norm == 0:
  // no clip. lr and max_norm must be finite and >= 0. The first call binds the sizes;
  // later calls must pass the same count and sizes (InvalidArgument naming params[i]).
  // On any error nothing is modified. `policy`: see NonFinitePolicy; *skipped (when given)
  // says whether a Skip policy skipped this step.
  Status step(const std::vector<void*>& params, const std::vector<const void*>& grads,
              const std::vector<int64_t>& sizes, double lr, double max_norm, double* grad_norm,
              NonFinitePolicy policy = NonFinitePolicy::Allow, bool* skipped = nullptr);

  // Copies of the state buffers, parameter-major (empty before binding).
  Status get_state(std::vector<Buffer>* out) const;
  // Replaces the state buffers from data[j] (sizes[j] elements each, parameter-major,
  // length n * K for some n). Bound: n and every size must match the bound sizes. Not
  // bound: binds the sizes (sizes[i * K]); with K == 0, data must be empty (nothing to
  // bind). On any error nothing is modified.
  Status set_state(const std::vector<const void*>& data, const std::vector<int64_t>& sizes);

 private:
  struct HostBlock;  // one aligned, accounted state buffer
  Optimizer(OptimKind kind, const OptimHyper& hyper, DType dtype);
  Status bind(const std::vector<int64_t>& sizes);
  void* slot(size_t param, int k) const;
  // commit = true: the update. commit = false: a dry run writing nothing; returns the first
  // (param, element) whose new value would be non-finite, or (-1, -1).
  template <typename T>
  Status run_step(const std::vector<void*>& params, const std::vector<const void*>& grads, double lr, double scale,
                  bool commit, std::pair<int64_t, int64_t>* first_bad);

  OptimKind kind_;
  OptimHyper hyper_;
  DType dtype_;
  std::vector<std::string> slot_names_;
  bool bound_ = false;
  std::vector<int64_t> sizes_;
  std::vector<std::unique_ptr<HostBlock>> state_;  // parameter-major, sizes_.size() * K
  size_t state_bytes_ = 0;
  int64_t step_count_ = 0;
  std::unique_ptr<Executor> ex_;  // runs the update, norm and scan tasks (the CPU executor)
};

}  // namespace bt
