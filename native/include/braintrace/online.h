// braintrace native core: online learning by eligibility traces (D_RTRL, pp_prop).
//
// A session configured with an OnlineConfig owns eligibility traces whose size
// does not depend on the sequence length, and runs whole sequences in one call:
// per step the forward pass, the per-position Jacobians (see JacobianRequest in
// api.h), the trace update, the learning signal and the gradient accumulation.
//
// Notation: B batch, P = B*O positions of a group (O = prod(varshape)), S the
// group's state width, I the input width of a dense relation, D the group's
// per-position Jacobian (P, S, S), df (P, S), x (B, I), g the learning signal (P, S).
//
// D_RTRL (ParamDimVjpAlgorithm), one trace per (relation, target group):
//   dense weight   eps[b, i, k, a] (B, I, O, S):
//                  eps[b,i,k,a] <- sum_c D[b,k,a,c] eps[b,i,k,c] + x[b,i] df[b,k,a]
//   bias           eps[b, k, a]    (B, O, S):   eps <- D eps + df
//   element-wise   eps[b, k, a]    (B, O, S):   eps <- D eps + df   (x enters through df)
//   gradient       dW[i,k] += sum_b sum_a g[b,k,a] eps[b,i,k,a]; db[k], dw[k] likewise.
// pp_prop / ES_D_RTRL (IODimVjpAlgorithm), per relation an input trace and per
// (relation, group) an output trace:
//   xbar[b, i] (B, I)  <- decay_x xbar + x
//   epsf[b, k, a] (B, O, S) <- decay_f (D epsf) + (1 - decay_f) df
//   gradient       dW[i,k] += sum_b xbar[b,i] sum_a g[b,k,a] epsf[b,k,a] / c,
//                  db[k] and dw[k] += sum_b sum_a g epsf / c,
//                  c = 1 - decay_f^(n+1), n = number of trace steps taken before this one
//                  (the reference counts calls instead: its finding F-30).
// The D_RTRL update, the contraction with g and the accumulation into dW are one
// fused pass: the trace is read once and written once per step.
//
// Learning signal and timing (as the reference's single-step / multi-step VJP):
//   chunk == 1 (single-step): at step t the trace is first updated with step t's
//     (D, df, x); then g = dL^t / dh^t is contracted with the NEW trace, where g is
//     the partial derivative with the new values of the group's other members held
//     fixed (the reverse sweep stops at them; it does run through other groups' new
//     values, e.g. a stacked layer): a member computed from another member of the same
//     step (i' feeding v') reaches the loss through its own signal and through the
//     total derivatives in the group's traces, so counting it in g too would double it. Parameters without a relation (readouts,
//     weight-to-weight) get their exact instantaneous gradient dL^t/dtheta.
//   chunk == k >= 2 (multi-step windows of k steps, T % k == 0): per window,
//     every parameter gets the exact within-window gradient (reverse mode through
//     the window), relation weights also get contract(dL_window/dh^entry, eps^entry)
//     with the trace at the window's entry; then the traces advance through the
//     window's k steps.
//
// Transformed weights (OnlineRelation::weight_node / bias_node): when the op's weight input
// is W_eff = f(theta) (a mask, Dale's law |W| * sign, a weight function) the traces above
// are traces of W_eff: x, df and D do not depend on how W_eff is made, and the contraction
// yields dL/dW_eff. That is linear in the learning signal, so the session sums dL/dW_eff
// over the whole call (all steps, or all windows' entry terms) in a per-relation scratch
// buffer and, at the end of run_online, pulls the sum back through the transform with ONE
// reverse-mode sweep seeded at the weight node (the transform depends only on params and
// constants, whose values are the same at every step of the call):
//     dtheta += (d W_eff / d theta)^T  sum_t dL/dW_eff(t).
// The bias node likewise. Raw weights (weight_node = -1 or the Param leaf) contract straight
// into the param gradient. In windowed mode the within-window reverse sweep already runs
// through the transform; only the window-entry contraction goes through the scratch buffer.
// pp_prop: dW_eff[i,k] = sum_b xbar[b,i] q[b,k] / c, pulled back the same way.
#pragma once

#include <cstdint>
#include <vector>

#include <string>

#include "braintrace/api.h"

namespace bt {

enum class TraceAlgorithm : int32_t { DRtrl = 0, PpProp = 1 };

enum class RelationKind : int32_t {
  Dense = 0,        // EtpMatMul: x (B, I), W (I, O) [+ bias (O)], y (B, O)
  ElementWise = 1,  // EtpElementWise: w (O), y (O)
};

struct OnlineGroup {
  std::vector<GroupMember> members;
  int64_t positions = 0;        // P
  bool zero_recurrence = false; // D == 0: no Jacobian pass at all
  bool probe_positions = false; // see JacobianRequest
};

struct OnlineRelation {
  RelationKind kind = RelationKind::Dense;
  int32_t x_node = -1;        // Dense: the op's x input node; -1 for ElementWise
  int32_t y_node = -1;        // the EtpMatMul / EtpElementWise node
  int32_t weight_slot = -1;   // param slot of W (the Param leaf that the weight input depends on)
  int32_t bias_slot = -1;     // param slot of the bias (the op's 3rd input depends on it), or -1
  // The op's weight / bias input node when it is a TRANSFORM of the slot's ParamState
  // (W_eff = f(theta): a mask, a sign constraint |W| * sign, a weight function); -1 = the
  // input is the Param leaf of the slot itself (the raw fast path). Such a node must depend
  // on no Input or State leaf and on exactly one Param leaf, that of the slot.
  int32_t weight_node = -1;
  int32_t bias_node = -1;
  std::vector<int32_t> groups;          // target group indices
  std::vector<uint8_t> tail_probe;      // per target group: probe df one position at a time
};

struct OnlineConfig {
  TraceAlgorithm algorithm = TraceAlgorithm::DRtrl;
  double decay_x = 0.0;                 // pp_prop: in [0, 1)
  double decay_f = 0.0;                 // pp_prop: in [0, 1)
  std::vector<OnlineGroup> groups;
  std::vector<OnlineRelation> relations;
  std::vector<int32_t> blocked_transition;  // nodes cut when computing D (EtpMatMul, MatMul)
  std::vector<int32_t> etp_nodes;           // every EtpMatMul node (cut for df, except y)
  std::vector<int32_t> non_temporal_slots;  // params trained by instantaneous / window gradients only
};

struct OnlineArgs {
  int64_t steps = 0;                    // T
  std::vector<const void*> inputs;      // per input slot (targets included): T * numel, time-major
  std::vector<double> loss_scale;       // T weights (0 masks a step's loss); empty = all 1
  bool compute_grads = true;            // false: evolve states and traces only (no loss needed)
  int64_t chunk = 1;                    // 1 single-step; k >= 2 windows (T % k == 0)
  // Cancellation and progress (see RunControl in api.h; null: neither). On Cancelled the
  // stored states, the traces and the trace step counter are exactly those after
  // Status::steps_done steps of this call (as if the call had been given only those steps):
  // single-step mode stops between steps (or inside a step before its trace update, which
  // then does not count); window mode stops at a window boundary, or between the steps of a
  // window's trace advance. Gradients and outputs of a cancelled call are discarded.
  // On NonFinite: an input or loss at step t leaves the state after t steps; a gradient
  // found after the trace update of step t leaves it after t + 1 steps (steps_done says
  // which); in window mode a gradient leaves the state at the window's entry.
  const RunControl* control = nullptr;
};

struct OnlineResult {
  std::vector<Buffer> outputs;      // per model-output slot: T * numel
  std::vector<double> losses;       // T (empty without compute_grads or without a loss row)
  std::vector<Buffer> param_grads;  // per param slot (compute_grads), zeros where nothing flowed
};

// Description of one trace buffer, for inspection (learner.traces()).
struct TraceInfo {
  std::string name;                 // e.g. "rel3/group0/weight", "rel3/xbar"
  std::vector<int64_t> shape;       // documented layout, e.g. (B, I, O, S)
};

}  // namespace bt
