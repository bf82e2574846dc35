// The session's implementation class, shared by the files that define its members along
// the pipeline (private to native/core):
//   session.cc      construction and buffer layout (init), Session::Create
//   interpreter.cc  one node forward / JVP / VJP through the executor, evaluate
//   jacobian.cc     the forward-mode Jacobian passes (per-position Jacobians, fetches)
//   sequence.cc     whole sequences: forward, BPTT over a tape
//   online.cc       online learning: configure, traces, run_online
// Each file explicitly instantiates its members for float and double.
// Session: a validated plan, its buffers and the interpreter (forward, JVP, VJP, and
// whole sequences with BPTT).
//
// Memory layout (allocated once per session, not per step):
//   persist   values of Param and Const nodes (params copied in at each call) and of the
//             folded nodes (non-leaf, Consts only: computed once at init, skipped by sweeps)
//   step      values of every other node for one step (and the values BPTT recomputes);
//             run_sequence with gradients keeps the others in the tape arena
//   tape      the tape arena (ensure_tape), kept by the session across calls and grown
//             when a call needs more than it holds, so repeated calls of the same T
//             allocate nothing; freed with the session (dispose), counted in
//             memory_stats() like every other buffer. BPTT keeps T compact blocks of
//             tape_total_ values (tape_ptr): the values of the "taped" nodes only, decided
//             per node (init) in plan order:
//               - a state's new value (the next step's state leaf) is taped;
//               - a value no VJP reads (tape_needed: e.g. a MatMul output feeding Tanh or
//                 Sigmoid, whose rules use their output; the inputs of Add, Sub, Concat,
//                 Reshape; the new state's summands) is not kept at all: its slot in the
//                 step block holds whatever the last step wrote, and the rules that load
//                 it ignore it;
//               - a needed value of a cheap op (tape_recomputable: Neg, Square, Abs, Relu,
//                 LeakyRelu, Clamp, Spike, StopGradient, EtpElementWise, Add, Sub, Mul,
//                 Minimum, Maximum, comparisons, Where, and the layout ops Reshape,
//                 BroadcastTo, Transpose, Slice, Concat) whose inputs are all Params,
//                 Consts, taped or recomputed is recomputed by the reverse sweep (once per
//                 step, in plan order, into the step block, before the step's VJPs): the
//                 same kernel on the same inputs, bit-identical, and at most one forward
//                 pass over the cheap ops per step. Its inputs count as needed when the
//                 ones nothing else needs hold no more values than it does (init);
//               - every other needed value is taped (leaves, products, reductions,
//                 softmaxes, transcendental element-wise ops, and cheap ops of an input
//                 that is kept nowhere).
//             For a GRU cell this keeps x, h, the gates z, r, the candidate and the new h
//             (I + 5 H values per sample and step) and recomputes [x, h], r h, [x, r h] and
//             1 - z (torch.nn.GRU saves about 8.3 H at I = H / 4; docs/benchmarks.md).
//             run_online's windows use a k-block tape of full step blocks allocated per
//             call instead (the trace advance re-reads every value of the window's steps,
//             and an online session keeps only what configure_online allocated).
//   tangents / cotangents: one slot per node (all nodes), allocated on first use.
// A node's tangent or cotangent is "absent" (zero, skipped) until something writes it;
// cotangent blocks are zeroed lazily on first accumulation: by ctw, or, for element-wise
// and MatMul VJPs, by the task itself (zero_gin: no separate fill pass). BPTT lays the
// cotangents out by liveness (bptt_ct_layout: slots shared between nodes whose reverse-sweep
// intervals do not overlap); the other passes use one slot per node (aoff_).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "core/status_util.h"
#include "braintrace/api.h"
#include "core/checked.h"
#include "core/device_buffer.h"
#include "braintrace/online.h"
#include "core/executor.h"
#include "core/fusion.h"
#include "core/online_plan.h"
#include "core/plan.h"
#include "cpu/thread_pool.h"
#include "cpu/trace_cpu.h"
#include "kernels/elementwise.h"
#include "kernels/finite.h"


namespace bt {
namespace detail {

inline bool is_leaf(OpCode op) {
  return op == OpCode::Input || op == OpCode::Param || op == OpCode::State || op == OpCode::Const;
}

// Ops whose forward costs about a load and an add per element (element-wise ops without
// division or transcendentals, and the layout copies): BPTT recomputes them in the reverse
// sweep instead of taping them (see the layout comment of SessionImpl).
// Marks in *needed the values the VJP of node n (id i) reads: its inputs and its own output
// (kernels/ew_rules.h for the element-wise rules, cpu/host_tasks.cc for the node tasks; an op
// not listed reads everything).
inline void tape_needed(const PlanNode& n, int i, std::vector<char>* needed) {
  std::vector<char>& nd = *needed;
  if (ew_arity(n.op) > 0) {
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (ew_vjp_reads_input(n.op, static_cast<int>(k))) nd[n.inputs[k]] = 1;
    if (ew_vjp_reads_output(n.op)) nd[i] = 1;
    return;
  }
  switch (n.op) {
    case OpCode::Input: case OpCode::Param: case OpCode::State: case OpCode::Const:
    case OpCode::Reshape: case OpCode::BroadcastTo: case OpCode::Transpose: case OpCode::Slice:
    case OpCode::Concat:
      return;  // leaves; layout VJPs move cotangents only
    case OpCode::MatMul: case OpCode::EtpMatMul:
      nd[n.inputs[0]] = 1;  // dB = A^T g
      nd[n.inputs[1]] = 1;  // dA = g B^T; the bias VJP sums g
      return;
    case OpCode::Softmax: case OpCode::LogSoftmax:
      nd[i] = 1;
      return;
    default:
      for (int j : n.inputs) nd[j] = 1;
      nd[i] = 1;
      return;
  }
}

inline bool tape_recomputable(OpCode op) {
  switch (op) {
    case OpCode::Neg: case OpCode::Square: case OpCode::Abs: case OpCode::Relu: case OpCode::LeakyRelu:
    case OpCode::Clamp: case OpCode::Spike: case OpCode::StopGradient: case OpCode::EtpElementWise:
    case OpCode::Add: case OpCode::Sub: case OpCode::Mul: case OpCode::Minimum: case OpCode::Maximum:
    case OpCode::Less: case OpCode::LessEqual: case OpCode::Greater: case OpCode::GreaterEqual:
    case OpCode::Equal: case OpCode::NotEqual: case OpCode::Where:
    case OpCode::Reshape: case OpCode::BroadcastTo: case OpCode::Transpose: case OpCode::Slice:
    case OpCode::Concat:
      return true;
    default:
      return false;
  }
}


// Checks a copy between the caller and stored value `index` of `count` (slots of params or
// states, or traces): the index, the length n against `numel`, and a null pointer. `noun` is
// "slot" or "index"; `desc` names the value in messages ("slot 0 [2, 3]", "trace r0/g0/weight [..]").
inline Status check_copy(const char* what, const char* noun, int index, size_t count, int64_t numel,
                  const std::string& desc, size_t n, const void* ptr, bool writing) {
  if (index < 0 || index >= static_cast<int>(count))
    return invalid(std::string(what) + ": " + noun + " must be in [0, " + std::to_string(count) + "), got " +
                   std::to_string(index));
  if (n != static_cast<size_t>(numel))
    return invalid(std::string(what) + ": " + desc + (writing ? " needs " : " has ") + std::to_string(numel) +
                   (writing ? " values, got " : " values, got a buffer for ") + std::to_string(n));
  if (ptr == nullptr && n > 0) return invalid(std::string(what) + (writing ? ": data is null" : ": out is null"));
  return Status::Ok();
}

class BusyGuard {
 public:
  explicit BusyGuard(std::atomic<bool>& f) : f_(f) {
    bool expected = false;
    ok_ = f_.compare_exchange_strong(expected, true);
  }
  ~BusyGuard() {
    if (ok_) f_.store(false);
  }
  bool ok() const { return ok_; }

 private:
  std::atomic<bool>& f_;
  bool ok_ = false;
};

// "NaN", "Infinity" or "-Infinity" (as JavaScript prints them).
template <typename T>
inline std::string non_finite_name(T v) {
  if (v != v) return "NaN";
  return v > 0 ? "Infinity" : "-Infinity";
}

inline bool stops_call(const Status& s) { return s.code == StatusCode::Cancelled || s.code == StatusCode::NonFinite; }

inline Status busy_status(const char* what) {
  return Status::Error(StatusCode::Busy, std::string(what) + ": the session is running another call");
}

using ::bt::guarded;

template <typename T>
class SessionImpl final : public Session {
 public:
  SessionImpl(Plan plan, std::unique_ptr<Executor> ex, Backend backend)
      : plan_(std::move(plan)), ex_(std::move(ex)), backend_(backend) {}

  Status init();

  DType dtype() const override { return plan_.dtype; }
  Backend backend() const override { return backend_; }
  int num_inputs() const override { return static_cast<int>(plan_.input_nodes.size()); }
  int num_params() const override { return static_cast<int>(plan_.param_nodes.size()); }
  int num_states() const override { return static_cast<int>(plan_.state_nodes.size()); }
  int num_outputs() const override { return static_cast<int>(plan_.output_slot_entry.size()); }
  int num_output_entries() const override { return static_cast<int>(plan_.outputs.size()); }
  bool has_loss() const override { return plan_.loss_entry >= 0; }
  const std::vector<int64_t>& input_shape(int s) const override { return slot_shape(plan_.input_nodes, s); }
  const std::vector<int64_t>& param_shape(int s) const override { return slot_shape(plan_.param_nodes, s); }
  const std::vector<int64_t>& state_shape(int s) const override { return slot_shape(plan_.state_nodes, s); }
  const std::vector<int64_t>& output_shape(int s) const override {
    if (s < 0 || s >= num_outputs()) return empty_;
    return plan_.nodes[plan_.outputs[plan_.output_slot_entry[s]].node].shape;
  }
  OutputKind output_entry_kind(int e) const override {
    return (e < 0 || e >= num_output_entries()) ? OutputKind::Output : plan_.outputs[e].kind;
  }
  int output_entry_index(int e) const override {
    return (e < 0 || e >= num_output_entries()) ? -1 : plan_.outputs[e].index;
  }
  const std::vector<int64_t>& output_entry_shape(int e) const override {
    if (e < 0 || e >= num_output_entries()) return empty_;
    return plan_.nodes[plan_.outputs[e].node].shape;
  }

  Status set_param(int slot, const void* data, size_t n) override {
    return set_stored(param_store_, plan_.param_nodes, "set_param", "params", slot, data, n);
  }
  Status get_param(int slot, void* out, size_t n) const override {
    return get_stored(param_store_, plan_.param_nodes, "get_param", slot, out, n);
  }
  Status set_state(int slot, const void* data, size_t n) override {
    return set_stored(state_store_, plan_.state_nodes, "set_state", "states", slot, data, n);
  }
  Status get_state(int slot, void* out, size_t n) const override {
    return get_stored(state_store_, plan_.state_nodes, "get_state", slot, out, n);
  }

  void set_finite_checks(const FiniteChecks& c) override { checks_ = c; }
  FiniteChecks finite_checks() const override { return checks_; }

  Status evaluate(const EvalArgs& args, EvalResult* out) override {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status("evaluate");
    if (out == nullptr) return invalid("evaluate: result pointer is null");
    return guarded("evaluate", [&] { return evaluate_impl(args, out); });
  }
  Status run_sequence(const SequenceArgs& args, SequenceResult* out) override {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status("run_sequence");
    if (out == nullptr) return invalid("run_sequence: result pointer is null");
    ControlScope scope(this, args.control);
    return guarded("run_sequence", [&] { return run_sequence_impl(args, out); });
  }

  // --- online learning (braintrace/online.h; definitions after run_sequence_impl) ----------
  Status configure_online(const OnlineConfig& config) override {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status("configure_online");
    return guarded("configure_online", [&] { return configure_online_impl(config); });
  }
  Status run_online(const OnlineArgs& args, OnlineResult* out) override {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status("run_online");
    if (out == nullptr) return invalid("run_online: result pointer is null");
    ControlScope scope(this, args.control);
    return guarded("run_online", [&] { return run_online_impl(args, out); });
  }
  Status reset_traces() override;
  Status trace_info(std::vector<TraceInfo>* out) const override;
  Status get_trace(int index, void* out, size_t n) const override;
  Status set_trace(int index, const void* data, size_t n) override;
  int64_t trace_steps() const override { return trace_n_.load(); }
  Status set_trace_steps(int64_t n) override;
  FusionInfo fusion_info() const override {
    FusionInfo f;
    f.enabled = fusion_.enabled;
    f.groups = fusion_.groups;
    f.fused_nodes = fusion_.fused_nodes;
    f.items = static_cast<int>(fusion_.items.size());
    for (char c : split_concat_) f.split_concats += c != 0;
    for (char c : trim_concat_) f.trimmed_concats += c != 0;
    return f;
  }

 private:
  const std::vector<int64_t>& slot_shape(const std::vector<int32_t>& nodes, int s) const {
    if (s < 0 || s >= static_cast<int>(nodes.size())) return empty_;
    return plan_.nodes[nodes[s]].shape;
  }
  int64_t numel(int node) const { return plan_.nodes[node].numel; }
  size_t nbytes(int node) const { return sizeof(T) * static_cast<size_t>(numel(node)); }

  Status set_stored(std::vector<DeviceBuffer>& store, const std::vector<int32_t>& nodes, const char* what,
                    const char* kind, int slot, const void* data, size_t n) {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status(what);
    // The checks build their messages (slot_desc, the tensor name) only for a call that
    // fails them (set_param runs for every weight after each streaming update).
    const bool copy_ok = slot >= 0 && slot < static_cast<int>(nodes.size()) &&
                         n == static_cast<size_t>(slot_numel(nodes, slot)) && (data != nullptr || n == 0);
    if (!copy_ok)
      BT_RETURN_IF_ERROR(check_copy(what, "slot", slot, nodes.size(), slot_numel(nodes, slot),
                                    slot_desc(nodes, slot), n, data, true));
    if (checks_.data) {
      int64_t bad = -1;
      BT_RETURN_IF_ERROR(scan_non_finite(static_cast<const T*>(data), static_cast<int64_t>(n), &bad));
      if (bad >= 0)  // the error of check_finite (it scans again and names the slot)
        BT_RETURN_IF_ERROR(check_finite(what, std::string(kind) + "[" + std::to_string(slot) + "]",
                                        static_cast<const T*>(data), static_cast<int64_t>(n), -1));
    }
    BT_RETURN_IF_ERROR(sync());
    if (n > 0) std::memcpy(store[slot].as<T>(), data, n * sizeof(T));
    return Status::Ok();
  }
  Status get_stored(const std::vector<DeviceBuffer>& store, const std::vector<int32_t>& nodes, const char* what,
                    int slot, void* out, size_t n) const {
    BusyGuard guard(busy_);
    if (!guard.ok()) return busy_status(what);
    BT_RETURN_IF_ERROR(check_copy(what, "slot", slot, nodes.size(), slot_numel(nodes, slot),
                                  slot_desc(nodes, slot), n, out, false));
    if (n > 0) std::memcpy(out, store[slot].as<T>(), n * sizeof(T));
    return Status::Ok();
  }
  int64_t slot_numel(const std::vector<int32_t>& nodes, int slot) const {
    return slot >= 0 && slot < static_cast<int>(nodes.size()) ? numel(nodes[slot]) : 0;
  }
  int64_t trace_numel(int index) const {
    return index >= 0 && index < static_cast<int>(on_.traces.size()) ? on_.traces[static_cast<size_t>(index)].numel : 0;
  }
  std::string trace_desc(int index) const {
    if (index < 0 || index >= static_cast<int>(on_.traces.size())) return "trace " + std::to_string(index);
    const TraceSpec& t = on_.traces[static_cast<size_t>(index)];
    return "trace " + t.name + " " + shape_str(t.shape);
  }
  std::string slot_desc(const std::vector<int32_t>& nodes, int slot) const {
    if (slot < 0 || slot >= static_cast<int>(nodes.size())) return "slot " + std::to_string(slot);
    return "slot " + std::to_string(slot) + " " + shape_str(plan_.nodes[nodes[slot]].shape);
  }

  // --- cancellation, progress and the non-finite policy ------------------------------------
  // The control block of the call in progress (run_sequence / run_online), or null.
  struct ControlScope {
    SessionImpl* s;
    ControlScope(SessionImpl* self, const RunControl* c) : s(self) { s->ctl_ = c; }
    ~ControlScope() { s->ctl_ = nullptr; }
  };
  bool cancel_requested() const {
    return ctl_ != nullptr && ctl_->cancel != nullptr && ctl_->cancel->load(std::memory_order_relaxed);
  }
  Status cancelled_status() {
    (void)sync();  // no task of the abandoned step may still run
    return Status::Error(StatusCode::Cancelled, "the call was cancelled");
  }
  void report(int64_t done, int64_t total) const {
    if (ctl_ != nullptr && ctl_->progress != nullptr) ctl_->progress(ctl_->ctx, done, total);
  }
  // NonFinite naming `tensor` when x[0, n) holds a NaN or infinity (step -1: no time axis).
  Status check_finite(const std::string& what, const std::string& tensor, const T* x, int64_t n,
                      int64_t step) const {
    int64_t bad = -1;
    BT_RETURN_IF_ERROR(scan_non_finite(x, n, &bad));
    if (bad < 0) return Status::Ok();
    return Status::NonFiniteValue(what + ": " + tensor + " holds a non-finite value (" + non_finite_name(x[bad]) +
                                      ")" + (step >= 0 ? " at step " + std::to_string(step) : std::string()) +
                                      ", index " + std::to_string(bad),
                                  tensor, step, bad);
  }
  // The per-step loss check of a sequence call.
  Status check_loss(const std::string& what, double loss, int64_t step) const {
    if (!checks_.results || std::isfinite(loss)) return Status::Ok();
    return Status::NonFiniteValue(what + ": loss became non-finite (" + non_finite_name(loss) + ") at step " +
                                      std::to_string(step),
                                  "loss", step, -1);
  }
  // Gradient accumulators of run_online: every param gradient and transformed-weight scratch
  // (`all`), or only those written since the last check (marked by mark_grad / mark_scr; the
  // others were finite then and are unchanged, so the first non-finite value is found at
  // the same step either way). Clears the marks.
  Status check_online_grads(const std::vector<Buffer>& grads, int64_t step, bool all = false) {
    if (!checks_.results) return Status::Ok();
    on_gdirty_.resize(grads.size(), 1);
    on_sdirty_.resize(2 * on_.relations.size(), 1);
    for (size_t s = 0; s < grads.size(); ++s) {
      if (!all && !on_gdirty_[s]) continue;
      BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(s) + "]",
                                      reinterpret_cast<const T*>(grads[s].bytes.data()),
                                      static_cast<int64_t>(grads[s].numel), step));
      on_gdirty_[s] = 0;
    }
    for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
      const ResolvedRelation& rr = on_.relations[ri];
      if (rr.weight_node >= 0 && (all || on_sdirty_[2 * ri]))
        BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(rr.weight_slot) + "]",
                                        on_wscr_[ri].template as<T>(), numel(rr.weight_node), step));
      if (rr.bias_node >= 0 && (all || on_sdirty_[2 * ri + 1]))
        BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(rr.bias_slot) + "]",
                                        on_bscr_[ri].template as<T>(), numel(rr.bias_node), step));
      on_sdirty_[2 * ri] = on_sdirty_[2 * ri + 1] = 0;
    }
    return Status::Ok();
  }
  // Marks for check_online_grads: param gradient `slot` (< 0: none) was written.
  void mark_grad(int64_t slot) {
    if (slot >= 0 && static_cast<size_t>(slot) < on_gdirty_.size()) on_gdirty_[static_cast<size_t>(slot)] = 1;
  }
  // Relation ri's transformed-weight (which 0) or transformed-bias (which 1) scratch was written.
  void mark_scr(size_t ri, int which) {
    if (2 * ri + static_cast<size_t>(which) < on_sdirty_.size()) on_sdirty_[2 * ri + static_cast<size_t>(which)] = 1;
  }
  // Every accumulator unwritten (run_online's start: they are all zero).
  void clear_grad_marks(size_t np) {
    on_gdirty_.assign(np, 0);
    on_sdirty_.assign(2 * on_.relations.size(), 0);
  }
  // Param cotangents accumulated so far by a reverse sweep (BPTT, windows).
  Status check_param_cotangents(const std::string& what, int64_t step) const {
    if (!checks_.results) return Status::Ok();
    for (size_t s = 0; s < plan_.param_nodes.size(); ++s) {
      const int node = plan_.param_nodes[s];
      if (has_c_[node])
        BT_RETURN_IF_ERROR(check_finite(what, "grads[" + std::to_string(s) + "]", cp_[node], numel(node), step));
    }
    return Status::Ok();
  }
  // Copies step t's slice of every input slot into `block` (checking it under checks_.data).
  Status load_step_inputs(const char* what, const std::vector<const void*>& inputs, T* block, int64_t t) {
    for (size_t s = 0; s < plan_.input_nodes.size(); ++s)
      BT_RETURN_IF_ERROR(load_step_input(what, inputs, s, value_ptr(plan_.input_nodes[s], block), t));
    return Status::Ok();
  }
  // The same into vp_ (BPTT's compact tape: vp_ set by set_tape_ptrs).
  Status load_step_inputs_vp(const char* what, const std::vector<const void*>& inputs, int64_t t) {
    for (size_t s = 0; s < plan_.input_nodes.size(); ++s)
      BT_RETURN_IF_ERROR(load_step_input(what, inputs, s, vp_[plan_.input_nodes[s]], t));
    return Status::Ok();
  }
  // Copies step t's slice of input slot s to dst (checked under checks_.data).
  Status load_step_input(const char* what, const std::vector<const void*>& inputs, size_t s, T* dst, int64_t t) {
    const int node = plan_.input_nodes[s];
    std::memcpy(dst, static_cast<const T*>(inputs[s]) + t * numel(node), nbytes(node));
    if (checks_.data)
      BT_RETURN_IF_ERROR(check_finite(what, "inputs[" + std::to_string(s) + "]", dst, numel(node), t));
    return Status::Ok();
  }

  // --- executor plumbing -------------------------------------------------------------------
  Status sync() {
    if (!dirty_) return Status::Ok();
    dirty_ = false;
    return ex_->synchronize();
  }
  // Hands one element-wise task to the executor, or, inside a fusion group of a sweep
  // (sweep below), appends it to the group's chain.
  Status ew(const EwTask<T>& t) {
    dirty_ = true;
    if (chain_open_) {
      if (chain_.count == kEwChainMax) BT_RETURN_IF_ERROR(submit_chain());  // not reached: groups fit
      chain_.tasks[chain_.count++] = t;
      return Status::Ok();
    }
    return ex_->elementwise(t);
  }
  // Runs the tasks collected in chain_ (one task as a plain elementwise call) and empties it.
  Status submit_chain() {
    const int count = chain_.count;
    chain_.count = 0;
    if (count == 0) return Status::Ok();
    if (count == 1) return ex_->elementwise(chain_.tasks[0]);
    EwChainTask<T>& c = chain_;
    c.count = count;
    c.n = c.tasks[0].n;
    const Status st = ex_->elementwise_chain(c);
    c.count = 0;
    return st;
  }
  // Applies fn(i) to the nodes lo <= i <= hi in the fusion schedule's order (reversed when
  // `reverse`), checking for cancellation per item. The element-wise tasks fn hands out for
  // the members of one fusion group are collected and run as one fused chain after the
  // group's last member (fn only decides and fills tasks for them: no host loop runs
  // between; a cotangent zeroed by ctw is not touched by the chain before its first
  // accumulation, which is in the chain itself).
  template <typename F>
  Status sweep(bool reverse, int lo, int hi, F&& fn) {
    const int ni = static_cast<int>(fusion_.items.size());
    for (int s = 0; s < ni; ++s) {
      const FusionItem& it = fusion_.items[static_cast<size_t>(reverse ? ni - 1 - s : s)];
      if (cancel_requested()) return cancelled_status();
      if (!it.group) {
        const int i = fusion_.order[static_cast<size_t>(it.begin)];
        if (i >= lo && i <= hi) BT_RETURN_IF_ERROR(fn(i));
        continue;
      }
      chain_open_ = true;
      chain_.count = 0;
      Status st = Status::Ok();
      const int len = it.end - it.begin;
      for (int m = 0; m < len && st.ok(); ++m) {
        const int i = fusion_.order[static_cast<size_t>(reverse ? it.end - 1 - m : it.begin + m)];
        if (i >= lo && i <= hi) st = fn(i);
      }
      chain_open_ = false;
      if (!st.ok()) {
        chain_.count = 0;
        return st;
      }
      BT_RETURN_IF_ERROR(submit_chain());
    }
    return Status::Ok();
  }
  T* value_ptr(int i, T* block) const {
    return (persist_[i] ? pers_.as<T>() : block) + voff_[i];
  }
  void set_value_ptrs(T* block) {
    for (int i = 0; i < n_; ++i) vp_[i] = value_ptr(i, block);
  }
  Status ensure(DeviceBuffer& b, int64_t count, const char* what) {
    if (b.as<T>() != nullptr) return Status::Ok();
    return b.allocate_values(ex_.get(), {count}, sizeof(T), what);
  }
  // The tape arena holding at least `steps` blocks of `per_step` values. Reused as is when
  // it is large enough; otherwise the old one is freed first (after every task that may
  // read it) and one of exactly steps * per_step values allocated, so the arena grows to
  // the longest sequence the session has run and never shrinks. `what` names the tape in
  // errors ("the BPTT tape").
  Status ensure_tape(int64_t steps, int64_t per_step, const char* what) {
    int64_t count = 0;
    BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, std::string("allocating ") + what,
                                      {per_step, steps}, sizeof(T), &count));
    if (tape_.as<T>() != nullptr && tape_.bytes() >= static_cast<size_t>(count) * sizeof(T)) return Status::Ok();
    BT_RETURN_IF_ERROR(sync());
    tape_.reset();
    return tape_.allocate_values(ex_.get(), {per_step, steps}, sizeof(T), what);
  }
  // Where node i's value of BPTT step t lives: persistent values, the step's compact tape
  // block for taped nodes, the step block (scratch) for recomputed ones.
  T* tape_ptr(int i, int64_t t) const {
    if (persist_[i]) return pers_.as<T>() + voff_[i];
    if (toff_[i] >= 0) return tape_.as<T>() + t * tape_total_ + toff_[i];
    return step_.as<T>() + voff_[i];
  }
  void set_tape_ptrs(int64_t t) {
    for (int i = 0; i < n_; ++i) vp_[i] = tape_ptr(i, t);
  }
  // BPTT's cotangent layout (bptt_coff_, bptt_ct_total_; computed on first use, it depends
  // on the plan and the fusion schedule only). The reverse sweep of one step touches a
  // node's cotangent from the first VJP that writes it (or the step's seed: the loss and the
  // carried state cotangents) to its own VJP, which reads it last; two nodes of the same
  // size whose intervals do not overlap share a slot, so a step's cotangents stay in cache
  // instead of one slot per node (the sessions' layout, aoff_). Leaves keep their own slots
  // (Param cotangents accumulate over the steps, State ones are carried to the next step).
  // A slot is reused only after the VJP that read it last has been handed out (a later
  // member of the same fusion group may reuse it: the chain is element-wise, every task
  // reads and writes element i only, in order, so element i is read before it is reused).
  void bptt_ct_layout() {
    if (bptt_ct_total_ >= 0) return;
    const int ni = static_cast<int>(fusion_.items.size());
    std::vector<int> order;  // the reverse sweep's visiting order
    order.reserve(static_cast<size_t>(n_));
    for (int s = 0; s < ni; ++s) {
      const FusionItem& it = fusion_.items[static_cast<size_t>(ni - 1 - s)];
      for (int m = it.end - 1; m >= it.begin; --m) order.push_back(fusion_.order[static_cast<size_t>(m)]);
    }
    const int L = static_cast<int>(order.size());
    constexpr int kNever = std::numeric_limits<int>::max();
    std::vector<int> pos(n_, kNever), first(n_, kNever);
    for (int p = 0; p < L; ++p) pos[order[static_cast<size_t>(p)]] = p;
    for (int p = 0; p < L; ++p) {
      const int i = order[static_cast<size_t>(p)];
      const PlanNode& n = plan_.nodes[i];
      if (is_leaf(n.op) || ew_zero_derivative(n.op)) continue;
      for (int j : n.inputs) first[j] = std::min(first[j], p);  // a superset of the writes
      if (split_base_[i])  // the product writes its concat operand's inputs (vjp_node_into)
        for (int j : plan_.nodes[n.inputs[0]].inputs) first[j] = std::min(first[j], p);
    }
    if (has_loss()) first[plan_.outputs[plan_.loss_entry].node] = -1;
    for (size_t s = 0; s < plan_.state_nodes.size(); ++s) {
      const int e = plan_.state_new_entry[s];
      first[e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s]] = -1;
    }
    bptt_coff_.assign(n_, -1);
    int64_t total = 0;
    // alloc_at[p + 1]: nodes first written at p; free_after[p + 1]: nodes last read at p.
    std::vector<std::vector<int>> alloc_at(static_cast<size_t>(L + 1)), free_after(static_cast<size_t>(L + 1));
    for (int i = 0; i < n_; ++i) {
      if (is_leaf(plan_.nodes[i].op) || first[i] == kNever || pos[i] == kNever || first[i] > pos[i]) {
        bptt_coff_[i] = total;  // own slot (leaves; never written; not in the schedule)
        total += numel(i);
        continue;
      }
      alloc_at[static_cast<size_t>(first[i] + 1)].push_back(i);
      free_after[static_cast<size_t>(pos[i] + 1)].push_back(i);
    }
    std::vector<std::pair<int64_t, int64_t>> free_slots;  // (numel, offset)
    for (int p = -1; p < L; ++p) {
      if (p >= 0)  // slots last read before p are free from p on
        for (int i : free_after[static_cast<size_t>(p)]) free_slots.emplace_back(numel(i), bptt_coff_[i]);
      for (int i : alloc_at[static_cast<size_t>(p + 1)]) {
        auto it = std::find_if(free_slots.begin(), free_slots.end(),
                               [&](const std::pair<int64_t, int64_t>& f) { return f.first == numel(i); });
        if (it != free_slots.end()) {
          bptt_coff_[i] = it->second;
          free_slots.erase(it);
        } else {
          bptt_coff_[i] = total;
          total += numel(i);
        }
      }
    }
    bptt_ct_total_ = total;  // <= all_total_: at most one slot of its size per node
  }

  // The reverse sweep's recompute of BPTT step t (vp_ set by set_tape_ptrs(t)): the
  // recomputed nodes, in plan order, from taped, persistent or recomputed inputs.
  Status recompute_untaped() {
    for (int i : tape_recompute_) BT_RETURN_IF_ERROR(forward_node(i));
    return sync();
  }
  // Cotangent of node j for accumulation, zeroed on first use.
  Status ctw(int j, T** out) { return ctw_in(j, cp_, has_c_, out); }
  // The same in another cotangent arena (ptrs[j], has[j]).
  Status ctw_in(int j, std::vector<T*>& ptrs, std::vector<char>& has, T** out) {
    if (!has[j]) {
      BT_RETURN_IF_ERROR(fill(ptrs[j], numel(j), T(0)));
      has[j] = 1;
    }
    *out = ptrs[j];
    return Status::Ok();
  }

  NodeTask<T> node_task(int i, EwMode mode) const {
    NodeTask<T> t;
    t.plan = &plan_;
    t.node = i;
    t.mode = mode;
    t.v = vp_.data();
    // A weight matrix is constant between parameter loads: the driver may keep it packed.
    const PlanNode& n = plan_.nodes[i];
    if ((n.op == OpCode::MatMul || n.op == OpCode::EtpMatMul) && n.inputs.size() >= 2 &&
        plan_.nodes[n.inputs[1]].op == OpCode::Param)
      t.b_epoch = param_epoch_;
    return t;
  }
  // Hands a Layout / Reduce / Softmax / MatMul node task to the executor (op_task decides).
  Status run_node(const NodeTask<T>& t) {
    dirty_ = true;
    switch (op_task(plan_.nodes[t.node].op)) {
      case TaskKind::Layout: return ex_->layout(t);
      case TaskKind::Reduce: return ex_->reduce(t);
      case TaskKind::Softmax: return ex_->softmax(t);
      case TaskKind::MatMul: return ex_->matmul(t);
      default:
        return Status::Error(StatusCode::Internal, std::string("run_node: op ") +
                                                       kOpNames[static_cast<int>(plan_.nodes[t.node].op)] +
                                                       " is not a node task");
    }
  }
  // Where state slot s's new value lives in `block` (its StateNew output node, or the state
  // leaf itself when the step does not assign it).
  T* new_state_ptr(size_t s, T* block) const {
    const int e = plan_.state_new_entry[s];
    return value_ptr(e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s], block);
  }
  // The stored states into (load) or out of (keep) the state leaves of `block`.
  void load_states(T* block) {
    for (size_t s = 0; s < plan_.state_nodes.size(); ++s)
      std::memcpy(value_ptr(plan_.state_nodes[s], block), state_store_[s].as<T>(), nbytes(plan_.state_nodes[s]));
  }
  // Every state leaf of `block` := its slot's new value in `block` (the next step's states).
  // Copied directly, or staged first when a new value is another slot's state leaf (a copy
  // would overwrite a value a later copy reads).
  void advance_states(T* block) {
    const size_t ns = plan_.state_nodes.size();
    bool direct = true;
    for (size_t s = 0; s < ns; ++s) {
      const int e = plan_.state_new_entry[s];
      const int src = e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s];
      if (src != plan_.state_nodes[s] && plan_.nodes[src].op == OpCode::State) direct = false;
    }
    if (direct) {
      for (size_t s = 0; s < ns; ++s) {
        const T* src = new_state_ptr(s, block);
        T* dst = value_ptr(plan_.state_nodes[s], block);
        if (src != dst) std::memcpy(dst, src, nbytes(plan_.state_nodes[s]));
      }
      return;
    }
    T* stage = stage_.as<T>();
    for (size_t s = 0; s < ns; ++s) std::memcpy(stage + soff_[s], new_state_ptr(s, block), nbytes(plan_.state_nodes[s]));
    for (size_t s = 0; s < ns; ++s)
      std::memcpy(value_ptr(plan_.state_nodes[s], block), stage + soff_[s], nbytes(plan_.state_nodes[s]));
  }
  void keep_states_from(T* block) {
    for (size_t s = 0; s < plan_.state_nodes.size(); ++s)
      std::memcpy(state_store_[s].as<T>(), value_ptr(plan_.state_nodes[s], block), nbytes(plan_.state_nodes[s]));
  }

  // dst[0, count) += src[0, count) (cotangent and gradient accumulation); zero_dst: dst
  // holds no value yet, dst = 0 + src (the values of zeroing it first, in one pass).
  Status accumulate(T* dst, const T* src, int64_t count, bool zero_dst = false) {
    AxpyTask<T> a;
    a.n = count;
    a.x = src;
    a.y = dst;
    a.zero_y = zero_dst;
    dirty_ = true;
    return ex_->axpy(a);
  }
  // dst[0, count) = src[0, count).
  Status copy(T* dst, const T* src, int64_t count) {
    CopyTask<T> c;
    c.n = count;
    c.x = src;
    c.y = dst;
    dirty_ = true;
    return ex_->copy(c);
  }
  // *first = the first non-finite index of x[0, n), or -1.
  Status scan_non_finite(const T* x, int64_t n, int64_t* first) const {
    FiniteScanTask<T> scan;
    scan.x = x;
    scan.n = n;
    scan.first = first;
    return ex_->find_non_finite(scan);
  }
  // pp_prop bias / element-wise gradient: dp[k] += sum_b q[b, k] (q is B x O; dp null: none).
  Status pp_vec_grad(const T* q, int64_t B, int64_t O, T* dp) {
    if (dp == nullptr) return Status::Ok();
    PpVecGradTask<T> v;
    v.q = q;
    v.B = B;
    v.O = O;
    v.dp = dp;
    dirty_ = true;
    return ex_->pp_vec_grad(v);
  }
  // y[k * stride] = value for k in [0, count).
  Status fill(T* y, int64_t count, T value, int64_t stride = 1) {
    FillTask<T> f;
    f.y = y;
    f.count = count;
    f.stride = stride;
    f.value = value;
    dirty_ = true;
    return ex_->fill(f);
  }

  EwTask<T> ew_task(int i, EwMode mode) const {
    const PlanNode& n = plan_.nodes[i];
    EwTask<T> t;
    t.op = n.op;
    t.mode = mode;
    t.attrs = attrs_[i];
    t.n = n.numel;
    for (size_t k = 0; k < n.inputs.size(); ++k) t.in[k] = vp_[n.inputs[k]];
    t.out = vp_[i];
    return t;
  }

  // --- one node ----------------------------------------------------------------------------
  // The forward task of node i; nothing for leaves and for folded nodes (fold_: their value
  // is persistent, computed once by fold_constants).
  Status forward_node(int i) {
    if (fold_[i]) return Status::Ok();
    return forward_node_task(i);
  }
  // The forward task of non-leaf node i into vp_[i] (forward_node without the folded skip).
  Status forward_node_task(int i) {
    const PlanNode& n = plan_.nodes[i];
    if (is_leaf(n.op)) return Status::Ok();
    if (ew_arity(n.op) > 0) {
      EwTask<T> t = ew_task(i, EwMode::Forward);
      t.out = nullptr;
      t.result = vp_[i];
      return ew(t);
    }
    NodeTask<T> t = node_task(i, EwMode::Forward);
    t.result = vp_[i];
    return run_node(t);
  }

  Status jvp_node(int i) {
    const PlanNode& n = plan_.nodes[i];
    if (jac_active_ && jmark_[i] == kBlocked) {
      // Jacobian passes: a blocked node (an excluded op) has a zero tangent.
      has_t_[i] = 0;
      tview_[i] = nullptr;
      return Status::Ok();
    }
    if (is_leaf(n.op)) return Status::Ok();
    bool any = false;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.op == OpCode::Where && k == 0) continue;
      any = any || has_t_[n.inputs[k]];
    }
    if (!any || ew_zero_derivative(n.op)) {
      has_t_[i] = 0;  // zero tangent
      tview_[i] = nullptr;
      return Status::Ok();
    }
    has_t_[i] = 1;
    if (ew_arity(n.op) > 0) {
      tview_[i] = tp_[i];
      EwTask<T> t = ew_task(i, EwMode::Jvp);
      for (size_t k = 0; k < n.inputs.size(); ++k) t.tin[k] = has_t_[n.inputs[k]] ? tp_[n.inputs[k]] : nullptr;
      t.result = tp_[i];
      return ew(t);
    }
    NodeTask<T> t = node_task(i, EwMode::Jvp);
    t.t = tview_.data();
    t.result = tp_[i];
    tview_[i] = tp_[i];
    return run_node(t);
  }

  Status vjp_node(int i) {
    const PlanNode& n = plan_.nodes[i];
    if (is_leaf(n.op) || !has_c_[i] || ew_zero_derivative(n.op)) return Status::Ok();
    // Online learning signal: the cotangent stops at the hidden states' new values.
    if (vstop_active_ && vstop_[i]) return Status::Ok();
    return vjp_node_into(i, cp_[i], want_, cp_, has_c_);
  }
  // The VJP of non-leaf node i with output cotangent `gout`, accumulated into the
  // cotangents of those inputs j with mask[j], held in the arena (ptrs, has) (zeroed on
  // first use). vjp_node is this with the session's cotangents; online_vjp's per-group
  // sweeps use a second arena. An element-wise or MatMul task zeroes the cotangents it is
  // the first to write itself (the tasks' zero_gin: the same values, without a separate
  // fill pass); the other families get them zeroed by ctw_in.
  Status vjp_node_into(int i, const T* gout, const std::vector<char>& mask, std::vector<T*>& ptrs,
                       std::vector<char>& has) {
    const PlanNode& n = plan_.nodes[i];
    if (is_leaf(n.op) || ew_zero_derivative(n.op)) return Status::Ok();
    const bool ew_op = ew_arity(n.op) > 0;
    const bool task_zeroes = ew_op || n.op == OpCode::MatMul || n.op == OpCode::EtpMatMul;
    std::vector<T*>& gin = gin_;
    gin.assign(n.inputs.size(), nullptr);
    bool any = false;
    uint32_t zero = 0;
    // A split concat operand: its wanted inputs take their blocks of G B^T here, and the
    // concat (read by nothing else) never gets a cotangent, so its own VJP is skipped.
    const bool split = !splits_off_ && split_concat_[i] != 0 && mask[n.inputs[0]];
    uint32_t zero_concat = 0;
    if (split) {
      const PlanNode& c = plan_.nodes[n.inputs[0]];
      gin_concat_.assign(c.inputs.size(), nullptr);
      for (size_t k = 0; k < c.inputs.size(); ++k) {
        const int j = c.inputs[k];
        if (!mask[j]) continue;
        if (!has[j]) {
          has[j] = 1;
          zero_concat |= 1u << k;
        }
        gin_concat_[k] = ptrs[j];
        any = true;
      }
    }
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const int j = n.inputs[k];
      if (!mask[j] || (n.op == OpCode::Where && k == 0) || (split && k == 0)) continue;
      if (task_zeroes && !has[j] && k < 3) {
        has[j] = 1;
        gin[k] = ptrs[j];
        zero |= 1u << k;
      } else {
        BT_RETURN_IF_ERROR(ctw_in(j, ptrs, has, &gin[k]));
      }
      any = true;
    }
    if (!any) return Status::Ok();
    if (ew_op) {
      EwTask<T> t = ew_task(i, EwMode::Vjp);
      t.gout = gout;
      for (size_t k = 0; k < n.inputs.size(); ++k) t.gin[k] = gin[k];
      t.zero_gin = zero;
      return ew(t);
    }
    NodeTask<T> t = node_task(i, EwMode::Vjp);
    t.gout = gout;
    t.gin = gin.data();
    t.zero_gin = zero;
    if (split) {
      t.gin_concat = gin_concat_.data();
      t.zero_concat = zero_concat;
    } else if (!splits_off_ && trim_concat_[i] && gin[0] != nullptr) {
      const PlanNode& c = plan_.nodes[n.inputs[0]];
      uint32_t blocks = 0;
      for (size_t k = 0; k < c.inputs.size(); ++k)
        if (mask[c.inputs[k]]) blocks |= 1u << k;
      // All wanted: the plain product (gin0_blocks 0); none: no product.
      if (blocks != (c.inputs.size() == 32 ? ~0u : (1u << c.inputs.size()) - 1u)) t.gin0_blocks = blocks;
      if (blocks == 0) gin[0] = nullptr;
    }
    return run_node(t);
  }

  // The products whose Concat operand is split or trimmed (docs/architecture.md, "Split
  // concats"): a MatMul / EtpMatMul with a 2-D B whose input 0 is a Concat over its last axis
  // of at most 32 inputs, not folded and no output or state of the plan. Split
  // (split_concat_, NodeTask::gin_concat) when nothing else reads the concat, so its
  // cotangent is this product's VJP alone: its inputs take their blocks straight from the
  // product, one sweep position earlier than through the concat's VJP. That keeps every
  // cotangent's sum in the same order only when no other reader of a concat input has its
  // VJP between the two positions of the reverse sweep; otherwise, and when the concat has
  // other readers, trimmed (trim_concat_, NodeTask::gin0_blocks): the product computes only
  // the wanted inputs' columns of the concat's cotangent, and the concat's VJP runs as usual.
  void plan_split_concats() {
    split_concat_.assign(n_, 0);
    split_base_ = split_concat_;
    trim_concat_.assign(n_, 0);
    trim_base_ = trim_concat_;
    concat_products_.assign(n_, {});
    const char* env = std::getenv("BRAINTRACE_SPLIT_CONCAT");
    if (env != nullptr && std::strcmp(env, "0") == 0) return;
    std::vector<int> uses(n_, 0);
    for (int i = 0; i < n_; ++i)
      for (int j : plan_.nodes[i].inputs) ++uses[j];
    std::vector<char> is_out(n_, 0);
    for (const auto& o : plan_.outputs) is_out[o.node] = 1;
    for (int s : plan_.state_nodes) is_out[s] = 1;
    // Reverse-sweep positions (the fusion schedule's order, last first).
    std::vector<int> rpos(n_, 0);
    {
      int p = 0;
      for (int s = static_cast<int>(fusion_.items.size()) - 1; s >= 0; --s) {
        const FusionItem& it = fusion_.items[static_cast<size_t>(s)];
        for (int m = it.end - 1; m >= it.begin; --m) rpos[fusion_.order[static_cast<size_t>(m)]] = p++;
      }
    }
    for (int i = 0; i < n_; ++i) {
      const PlanNode& n = plan_.nodes[i];
      if ((n.op != OpCode::MatMul && n.op != OpCode::EtpMatMul) || n.inputs.size() < 2) continue;
      const int ci = n.inputs[0];
      const PlanNode& c = plan_.nodes[ci];
      if (c.op != OpCode::Concat || fold_[ci] || is_out[ci] || c.inputs.size() > 32) continue;
      if (c.ints.empty() || c.ints[0] != static_cast<int>(c.shape.size()) - 1) continue;
      if (plan_.nodes[n.inputs[1]].shape.size() != 2 || n.inputs[1] == ci) continue;
      concat_products_[ci].push_back(i);
      if (uses[ci] != 1) {
        trim_concat_[i] = 1;  // read elsewhere too: compute only the wanted columns
        continue;
      }
      bool ok = true;
      for (int j : c.inputs) {
        for (int u = 0; u < n_ && ok; ++u) {
          if (u == ci) continue;
          bool reads = false;
          for (int x : plan_.nodes[u].inputs) reads = reads || x == j;
          if (reads && rpos[u] > rpos[i] && rpos[u] < rpos[ci]) ok = false;
        }
      }
      split_concat_[i] = ok ? 1 : 0;
      trim_concat_[i] = ok ? 0 : 1;
    }
    split_base_ = split_concat_;
    trim_base_ = trim_concat_;
  }

  // Computes the value of every folded node (fold_: non-leaf, depends on Consts only) into
  // the persistent block, in plan order (init, once: the Consts never change).
  Status fold_constants() {
    set_value_ptrs(step_.as<T>());
    for (int i = 0; i < n_; ++i)
      if (fold_[i]) BT_RETURN_IF_ERROR(forward_node_task(i));
    return sync();
  }

  // The sweeps, in the fusion schedule's order (core/fusion.h).
  Status forward_all() {
    BT_RETURN_IF_ERROR(sweep(false, 0, n_ - 1, [this](int i) { return forward_node(i); }));
    return sync();
  }
  // JVP of the nodes lo <= i <= hi (the tangents of the others as they are).
  Status jvp_range(int lo, int hi) {
    return sweep(false, lo, hi, [this](int i) { return jvp_node(i); });
  }
  // VJP of the nodes i <= hi, from the last to the first.
  Status reverse_upto(int hi) {
    return sweep(true, 0, hi, [this](int i) { return vjp_node(i); });
  }
  // VJP of the nodes with on[i], from the last to the first (online_vjp's sweeps).
  Status reverse_upto_masked(const std::vector<char>& on) {
    return sweep(true, 0, n_ - 1, [this, &on](int i) { return on[i] ? vjp_node(i) : Status::Ok(); });
  }
  Status reverse_all() {
    BT_RETURN_IF_ERROR(reverse_upto(n_ - 1));
    return sync();
  }

  void copy_out(Buffer* b, const T* src, int64_t count) {
    b->bytes.resize(sizeof(T) * static_cast<size_t>(count));
    b->numel = static_cast<size_t>(count);
    if (count > 0) std::memcpy(b->bytes.data(), src, sizeof(T) * static_cast<size_t>(count));
  }
  void zero_out(Buffer* b, int64_t count) {
    b->bytes.assign(sizeof(T) * static_cast<size_t>(count), 0);
    b->numel = static_cast<size_t>(count);
  }

  Status check_slot_ptrs(const std::vector<const void*>& v, size_t count, const char* what, bool allow_empty,
                         bool allow_null) {
    if (v.empty() && (allow_empty || count == 0)) return Status::Ok();
    if (v.size() != count)
      return invalid(std::string(what) + ": expected " + std::to_string(count) + " pointers (one per slot), got " +
                     std::to_string(v.size()));
    if (!allow_null)
      for (size_t s = 0; s < v.size(); ++s)
        if (v[s] == nullptr) return invalid(std::string(what) + "[" + std::to_string(s) + "] is null");
    return Status::Ok();
  }

  Status evaluate_impl(const EvalArgs& a, EvalResult* out);
  Status run_sequence_impl(const SequenceArgs& a, SequenceResult* out);
  Status configure_online_impl(const OnlineConfig& c);
  Status run_online_impl(const OnlineArgs& a, OnlineResult* out);
  // Online pieces of the step whose values are in vp_: D per group, df per (relation, target).
  Status online_pieces();
  // The VJP of the step in vp_ with the loss cotangent `scale`: learning signals g per used
  // group into on_g_ (partial derivatives: the sweep stops at the new hidden values), exact
  // instantaneous cotangents of the non-temporal params added to grads.
  Status online_vjp(double scale, std::vector<Buffer>* grads);
  // update: advance every trace by the pieces in on_D_ / on_df_ / vp_ (and contract the NEW
  // trace with on_g_ when `contract`); !update: contract the current traces only. `n_c` is
  // the trace count entering pp_prop's bias correction c = 1 - decay_f^n_c (0: skip).
  Status online_trace_step(bool update, bool contract, int64_t n_c, std::vector<Buffer>* grads);
  // on_swap_ (see there): may every state slot s's new value live outside the step block?
  // Each slot has its own non-leaf, non-folded new-value node, written by every forward.
  bool online_swap_ok() const;
  // Points vp_ of every state leaf at leaves + soff_[s] and of its new-value node at
  // news + soff_[s] (after set_value_ptrs: every other node stays in the step block).
  void point_states(T* leaves, T* news) {
    for (size_t s = 0; s < plan_.state_nodes.size(); ++s) {
      vp_[plan_.state_nodes[s]] = leaves + soff_[s];
      vp_[plan_.outputs[plan_.state_new_entry[s]].node] = news + soff_[s];
    }
  }
  // Transformed relation weights: one reverse sweep seeded at each transformed weight / bias
  // node with the dL/dW_eff summed over the call (on_wscr_ / on_bscr_), adding the param
  // cotangents to grads. Values of the transform nodes are read from vp_ (any step's block).
  Status online_pullback(std::vector<Buffer>* grads);
  // pp_prop, dense relations: adds the ring's pending contractions to the weight gradient
  // (one GEMM, dW += Xbar^T Q) and empties the ring; relation `ri`, or every relation (-1).
  // Run when a ring fills, when a pending slot holds a non-finite value (so the per-step
  // gradient check sees it at its step), and before a call returns its gradients.
  Status online_pp_flush(int ri, std::vector<Buffer>* grads);
  Status online_check(const char* what) const {
    if (!online_)
      return invalid(std::string(what) + ": the session has no online configuration: call configure_online first");
    return Status::Ok();
  }

  // --- eligibility-trace pieces: node fetches and per-position Jacobians (forward-mode
  // passes of the interpreter's JVP) ------------------------------------------------------
  static constexpr char kBlocked = 1;
  // Checks fetch_values and the Jacobian requests; *jac_sizes gets each request's
  // per-step result size.
  Status check_requests(const std::string& what, const std::vector<int32_t>& fetch_values,
                        const std::vector<JacobianRequest>& jacobians, std::vector<int64_t>* jac_sizes) {
    BT_RETURN_IF_ERROR(check_node_ids(plan_, what, "fetch_values", fetch_values));
    jac_sizes->assign(jacobians.size(), 0);
    for (size_t r = 0; r < jacobians.size(); ++r)
      BT_RETURN_IF_ERROR(check_jacobian_request(plan_, what, r, jacobians[r], &(*jac_sizes)[r]));
    return Status::Ok();
  }
  // One forward-mode pass: every tangent cleared, `seed` writes the tangent of seed_node
  // (a leaf, or a non-leaf whose propagated tangent it replaces), then the JVP runs over
  // (seed_node, end]: nodes before the seed have no tangent, nodes after `end` are not read.
  // `nodes` (ascending, or null: every node in (seed_node, end]) lists the nodes the pass visits.
  template <typename Seed>
  Status jac_pass(int seed_node, int end, Seed&& seed, const std::vector<int>* nodes = nullptr);
  // Writes the request's per-position Jacobian of the current step (values in vp_) to dst
  // (P*S*S or P*S values). `passes` (from jacobian_pass_nodes, or null) restricts each
  // pass to the nodes that descend from its seed and lead to a member's new value. `skip`
  // (Hid2Hid, or null): per member, leave its columns of dst as they are (they hold this
  // step's values: a step-invariant pass, jac_pass_static, taken earlier in the call).
  // `warm`: dst holds this request's result of an earlier step of the call, so the entries
  // of members without a tangent (zeros, decided by the plan) are not written again.
  Status jacobian(const JacobianRequest& r, T* dst, const std::vector<std::vector<int>>* passes = nullptr,
                  const std::vector<char>* skip = nullptr, bool warm = false);
  // True when the Jacobian pass seeded at `seed` over `nodes` (a jacobian_pass_nodes list)
  // gives the same tangents at every step of a call: every node's JVP is linear in its
  // inputs' tangents with coefficients that depend on Params and Consts only (Add, Sub,
  // Neg, layout, sums; Mul and products by a fixed operand; Where on a fixed condition).
  bool jac_pass_static(int seed, const std::vector<int>& nodes) const;
  // Per seed of the request (each member's leaf for Hid2Hid, y for Df): the nodes after the
  // seed that descend from it and are ancestors of a member's new value, ascending (the only
  // nodes whose tangents the request reads). Computed once, at configure_online.
  void jacobian_pass_nodes(const JacobianRequest& r, std::vector<std::vector<int>>* out) const;

  Plan plan_;
  std::unique_ptr<Executor> ex_;
  Backend backend_;
  int n_ = 0;
  std::vector<char> persist_;  // value in the persistent block: Param, Const and folded nodes
  std::vector<char> fold_;     // folded: a non-leaf node of Consts only, computed once (init)
  std::vector<int64_t> voff_, aoff_, soff_;  // value offset; all-node offset; state staging offset
  int64_t pers_total_ = 0, step_total_ = 0, all_total_ = 0, state_total_ = 0;
  // BPTT's compact tape (see the layout comment): offset of a taped node in a tape block
  // (-1: persistent or recomputed), the values per block, the recomputed nodes in order.
  std::vector<int64_t> toff_;
  int64_t tape_total_ = 0;
  std::vector<int> tape_recompute_;
  // BPTT's cotangent slots (bptt_ct_layout): offset per node in ct_, the values used (-1:
  // not computed yet).
  std::vector<int64_t> bptt_coff_;
  int64_t bptt_ct_total_ = -1;
  std::vector<EwAttrs> attrs_;
  std::vector<char> dep_any_, dep_ps_;  // depends on a non-Const leaf / on a Param or State
  DeviceBuffer pers_, step_, tan_, ct_, stage_;
  DeviceBuffer tape_;       // the tape arena (ensure_tape)
  DeviceBuffer carry_;      // BPTT state cotangents (state_total_ values, allocated on first use)
  std::vector<DeviceBuffer> param_store_, state_store_;
  // Advanced (params_loaded) every time parameter values are copied into the value arena:
  // NodeTask::b_epoch of the products over them.
  uint64_t param_epoch_ = 0;
  void params_loaded() { ++param_epoch_; }
  std::vector<T*> vp_, tp_, cp_, gin_;
  std::vector<const T*> tview_;
  std::vector<char> has_t_, has_c_, want_;
  std::vector<char> jmark_;    // per node during Jacobian passes: 0 or kBlocked
  FusionSchedule fusion_;      // the sweeps' order and fusion groups (init)
  // Per node: a MatMul / EtpMatMul whose VJP writes its Concat operand's inputs' cotangents
  // block by block (plan_split_concats; cleared by configure_online for a concat that a
  // group sweep reads as a frontier node). gin_concat_: the task's block pointers.
  std::vector<char> split_concat_;
  std::vector<char> split_base_;  // as init decided (a superset of split_concat_)
  // Per node: a product whose Concat operand has other readers (no split): its VJP computes
  // only the wanted inputs' columns of the concat's cotangent (NodeTask::gin0_blocks).
  std::vector<char> trim_concat_, trim_base_;
  // Per Concat node: the products split or trimmed over it when the session was created.
  std::vector<std::vector<int>> concat_products_;
  // True while a call takes the plain VJPs everywhere (a fetched or stopping concat cotangent).
  bool splits_off_ = false;
  std::vector<T*> gin_concat_;
  EwChainTask<T> chain_;       // the open fusion group's tasks (sweep)
  bool chain_open_ = false;    // ew() appends to chain_ while set
  bool jac_active_ = false;    // jvp_node honours jmark_ only while set
  bool dirty_ = false;
  mutable std::atomic<bool> busy_{false};
  FiniteChecks checks_;
  const RunControl* ctl_ = nullptr;  // the running call's control block (ControlScope)
  std::vector<int64_t> empty_;

  // Online learning: configuration, traces (allocated once by configure_online) and the
  // per-step scratch (D per group, df per (relation, target), learning signal per group,
  // pp_prop's projection q, the window state carry and its cotangent).
  bool online_ = false;
  ResolvedOnline on_;
  std::vector<DeviceBuffer> traces_;
  std::atomic<int64_t> trace_n_{0};
  std::vector<DeviceBuffer> on_D_, on_g_;
  // Per group and member: its columns of on_g_ hold zeros (written by the last gather of a
  // member without a cotangent; online_vjp's gather then skips rewriting them).
  std::vector<std::vector<char>> on_gzero_;
  std::vector<int64_t> gat_off_;  // online_vjp's gather: column offsets of the members read
  std::vector<char> vstop_;        // per node: a group member's new value (online_vjp stops there)
  // When a group's new value feeds another group's new value within the step (stacked
  // layers: on_cross_), online_vjp runs one unstopped sweep over on_nlist_ (cotangent mask
  // on_nmask_) and per used group g a short sweep over on_glist_[g] (mask on_gmask_[g]) in
  // a second arena (cp2_, has_c2_: views of the tangent buffer); see configure_online_impl.
  bool on_cross_ = false;
  std::vector<char> on_nmask_;
  std::vector<int> on_nlist_;
  std::vector<std::vector<char>> on_gmask_;
  std::vector<std::vector<int>> on_glist_;
  // Per used group and member (on_cross_): its learning signal is its ct_N from the
  // unstopped sweep (a direct member: see configure_online), not the group sweep's.
  std::vector<std::vector<char>> on_gdirect_;
  std::vector<T*> cp2_;
  std::vector<char> has_c2_;
  // The nodes the single stopped sweep and the non-temporal sweep visit (last first).
  std::vector<int> on_stop_list_, on_nt_list_;
  // The Jacobian passes' node lists (jacobian_pass_nodes): per group (D) and per
  // (relation, target) (df).
  std::vector<std::vector<std::vector<int>>> on_d_nodes_;
  std::vector<std::vector<std::vector<std::vector<int>>>> on_df_nodes_;
  // Per group and member (D) and per (relation, target) (df): the passes are step-invariant
  // (jac_pass_static). online_pieces takes them at the first step of a run_online call only
  // (on_pieces_warm_ set after it; cleared when a call starts: the params may have changed).
  std::vector<std::vector<char>> on_d_static_, on_df_static_;
  bool on_pieces_warm_ = false;
  // Per node: a width-1 state leaf whose tangent slot only its own Hid2Hid seed writes during
  // run_online (it is no member's new value and in no per-group sweep of online_vjp, the
  // other writer of the tangent arena): on_seed_ok_ (configure_online). on_seed_ones_: the
  // slot holds that seed's ones from an earlier pass of this call (cleared by online_pieces
  // at a call's first step), so a warm pass does not refill it.
  std::vector<char> on_seed_ok_, on_seed_ones_;
  bool vstop_active_ = false;      // vjp_node honours vstop_ only while set
  bool nt_through_h_ = false;      // a non-temporal param reaches a member's new value
  // online_vjp's want_ masks (configure_online): the stopped sweep needs cotangents only on
  // nodes that depend on a member's new value or on a non-temporal param (the learning
  // signal and the instantaneous gradients); the unstopped one only on nodes that depend on
  // a non-temporal param. Relation weights (and inputs, old states) get none: no dW GEMM.
  std::vector<char> want_on_stop_, want_on_nt_;
  std::vector<int64_t> jac_off_;   // jacobian(): member offsets (no allocation per step)
  std::vector<int64_t> jac_width_;  // jacobian(): member widths
  std::vector<const T*> jac_src_;   // jacobian(): member tangents of the current pass
  std::vector<char> jpass_mask_;    // jac_pass(): the listed nodes of the current pass
  std::vector<int64_t> jr_width_, jr_off_;  // jacobian(): widths, offsets of the members read
  std::vector<char> vjp_mask_;      // online_vjp(): the listed nodes of the current sweep
  std::vector<std::vector<DeviceBuffer>> on_df_;
  DeviceBuffer on_q_, on_state_, on_carry_;
  // Single-step run_online without a state copy per step (on_swap_, decided by
  // configure_online): the state leaves and the new-state nodes point into two state-sized
  // buffers, on_state_ and on_carry_ (the windows path's, unused there), that swap roles
  // after each step, so the new states become the next step's leaves in place.
  bool on_swap_ = false;
  // Per relation: dL/dW_eff (and dL/db_eff) summed over a run_online call, for a transformed
  // weight (bias) input; empty buffers for raw Param leaves.
  std::vector<DeviceBuffer> on_wscr_, on_bscr_;
  // Per relation (pp_prop, dense): the ring of pending contractions, pp_chunk slots of the
  // input trace xbar (B, I) and of the projection q (B, O) summed over the targets, and the
  // number of filled slots (reset at the start of every run_online).
  std::vector<DeviceBuffer> on_ppx_, on_ppq_;
  std::vector<int64_t> on_ppn_;
  // check_online_grads' marks: per param slot, and per relation (weight, bias scratch), the
  // accumulators written since the last check.
  std::vector<char> on_gdirty_, on_sdirty_;
};

}  // namespace detail
}  // namespace bt
