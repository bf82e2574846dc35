// Session: a validated plan, its buffers and the interpreter (forward, JVP, VJP, and
// whole sequences with BPTT).
//
// Memory layout (allocated once per session, not per step):
//   persist   values of Param and Const nodes (params copied in at each call)
//   step      values of every other node for one step; run_sequence with gradients
//             uses a tape of T step blocks instead (one allocation per call)
//   tangents / cotangents: one slot per node (all nodes), allocated on first use.
// A node's tangent or cotangent is "absent" (zero, skipped) until something writes it;
// cotangent blocks are zeroed lazily on first accumulation.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "core/status_util.h"
#include "braintrace/api.h"
#include "core/checked.h"
#include "core/device_buffer.h"
#include "braintrace/online.h"
#include "core/executor.h"
#include "core/online_plan.h"
#include "core/ops_host.h"
#include "core/plan.h"
#include "cpu/thread_pool.h"
#include "cpu/trace_cpu.h"
#include "kernels/elementwise.h"
#include "kernels/finite.h"


namespace bt {
namespace {

bool is_leaf(OpCode op) {
  return op == OpCode::Input || op == OpCode::Param || op == OpCode::State || op == OpCode::Const;
}


// Checks a copy between the caller and stored value `index` of `count` (slots of params or
// states, or traces): the index, the length n against `numel`, and a null pointer. `noun` is
// "slot" or "index"; `desc` names the value in messages ("slot 0 [2, 3]", "trace r0/g0/weight [..]").
Status check_copy(const char* what, const char* noun, int index, size_t count, int64_t numel,
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
std::string non_finite_name(T v) {
  if (v != v) return "NaN";
  return v > 0 ? "Infinity" : "-Infinity";
}

bool stops_call(const Status& s) { return s.code == StatusCode::Cancelled || s.code == StatusCode::NonFinite; }

Status busy_status(const char* what) {
  return Status::Error(StatusCode::Busy, std::string(what) + ": the session is running another call");
}

template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, std::string(what) + ": out of host memory");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::Internal, std::string(what) + ": " + e.what());
  } catch (...) {
    return Status::Error(StatusCode::Internal, std::string(what) + ": unknown exception");
  }
}

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
    BT_RETURN_IF_ERROR(check_copy(what, "slot", slot, nodes.size(), slot_numel(nodes, slot),
                                  slot_desc(nodes, slot), n, data, true));
    if (checks_.data)
      BT_RETURN_IF_ERROR(check_finite(what, std::string(kind) + "[" + std::to_string(slot) + "]",
                                      static_cast<const T*>(data), static_cast<int64_t>(n), -1));
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
  static Status check_finite(const std::string& what, const std::string& tensor, const T* x, int64_t n,
                             int64_t step) {
    const int64_t bad = first_non_finite(x, n);
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
  // Gradient accumulators of run_online: every param gradient and transformed-weight scratch.
  Status check_online_grads(const std::vector<Buffer>& grads, int64_t step) const {
    if (!checks_.results) return Status::Ok();
    for (size_t s = 0; s < grads.size(); ++s)
      BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(s) + "]",
                                      reinterpret_cast<const T*>(grads[s].bytes.data()),
                                      static_cast<int64_t>(grads[s].numel), step));
    for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
      const ResolvedRelation& rr = on_.relations[ri];
      if (rr.weight_node >= 0)
        BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(rr.weight_slot) + "]",
                                        on_wscr_[ri].template as<T>(), numel(rr.weight_node), step));
      if (rr.bias_node >= 0)
        BT_RETURN_IF_ERROR(check_finite("run_online", "grads[" + std::to_string(rr.bias_slot) + "]",
                                        on_bscr_[ri].template as<T>(), numel(rr.bias_node), step));
    }
    return Status::Ok();
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
    for (size_t s = 0; s < plan_.input_nodes.size(); ++s) {
      const int node = plan_.input_nodes[s];
      T* dst = value_ptr(node, block);
      std::memcpy(dst, static_cast<const T*>(inputs[s]) + t * numel(node), nbytes(node));
      if (checks_.data)
        BT_RETURN_IF_ERROR(check_finite(what, "inputs[" + std::to_string(s) + "]", dst, numel(node), t));
    }
    return Status::Ok();
  }

  // --- executor plumbing -------------------------------------------------------------------
  Status sync() {
    if (!dirty_) return Status::Ok();
    dirty_ = false;
    return ex_->synchronize();
  }
  Status ew(const EwTask<T>& t) {
    dirty_ = true;
    return ex_->elementwise(t);
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
  // Cotangent of node j for accumulation, zeroed on first use.
  Status ctw(int j, T** out) {
    if (!has_c_[j]) {
      BT_RETURN_IF_ERROR(sync());
      std::memset(cp_[j], 0, nbytes(j));
      has_c_[j] = 1;
    }
    *out = cp_[j];
    return Status::Ok();
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
  Status forward_node(int i) {
    const PlanNode& n = plan_.nodes[i];
    if (is_leaf(n.op)) return Status::Ok();
    if (ew_arity(n.op) > 0) {
      EwTask<T> t = ew_task(i, EwMode::Forward);
      t.out = nullptr;
      t.result = vp_[i];
      return ew(t);
    }
    BT_RETURN_IF_ERROR(sync());
    HostOps<T>::forward(plan_, i, vp_);
    return Status::Ok();
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
    BT_RETURN_IF_ERROR(sync());
    HostOps<T>::jvp(plan_, i, vp_, tview_, tp_[i]);
    tview_[i] = tp_[i];
    return Status::Ok();
  }

  Status vjp_node(int i) {
    const PlanNode& n = plan_.nodes[i];
    if (is_leaf(n.op) || !has_c_[i] || ew_zero_derivative(n.op)) return Status::Ok();
    // Online learning signal: the cotangent stops at the hidden states' new values.
    if (vstop_active_ && vstop_[i]) return Status::Ok();
    std::vector<T*>& gin = gin_;
    gin.assign(n.inputs.size(), nullptr);
    bool any = false;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const int j = n.inputs[k];
      if (!want_[j] || (n.op == OpCode::Where && k == 0)) continue;
      BT_RETURN_IF_ERROR(ctw(j, &gin[k]));
      any = true;
    }
    if (!any) return Status::Ok();
    if (ew_arity(n.op) > 0) {
      EwTask<T> t = ew_task(i, EwMode::Vjp);
      t.gout = cp_[i];
      for (size_t k = 0; k < n.inputs.size(); ++k) t.gin[k] = gin[k];
      return ew(t);
    }
    BT_RETURN_IF_ERROR(sync());
    HostOps<T>::vjp(plan_, i, vp_, cp_[i], gin);
    return Status::Ok();
  }

  Status forward_all() {
    for (int i = 0; i < n_; ++i) {
      if (cancel_requested()) return cancelled_status();
      BT_RETURN_IF_ERROR(forward_node(i));
    }
    return sync();
  }
  Status reverse_all() {
    for (int i = n_ - 1; i >= 0; --i) {
      if (cancel_requested()) return cancelled_status();
      BT_RETURN_IF_ERROR(vjp_node(i));
    }
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
  void add_host(T* dst, const T* src, int64_t count) {
    for (int64_t k = 0; k < count; ++k) dst[k] += src[k];
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
  // Transformed relation weights: one reverse sweep seeded at each transformed weight / bias
  // node with the dL/dW_eff summed over the call (on_wscr_ / on_bscr_), adding the param
  // cotangents to grads. Values of the transform nodes are read from vp_ (any step's block).
  Status online_pullback(std::vector<Buffer>* grads);
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
  template <typename Seed>
  Status jac_pass(int seed_node, int end, Seed&& seed);
  // Writes the request's per-position Jacobian of the current step (values in vp_) to dst
  // (P*S*S or P*S values).
  Status jacobian(const JacobianRequest& r, T* dst);

  Plan plan_;
  std::unique_ptr<Executor> ex_;
  Backend backend_;
  int n_ = 0;
  std::vector<char> persist_;
  std::vector<int64_t> voff_, aoff_, soff_;  // value offset; all-node offset; state staging offset
  int64_t pers_total_ = 0, step_total_ = 0, all_total_ = 0, state_total_ = 0;
  std::vector<EwAttrs> attrs_;
  std::vector<char> dep_any_, dep_ps_;  // depends on a non-Const leaf / on a Param or State
  DeviceBuffer pers_, step_, tan_, ct_, stage_;
  std::vector<DeviceBuffer> param_store_, state_store_;
  std::vector<T*> vp_, tp_, cp_, gin_;
  std::vector<const T*> tview_;
  std::vector<char> has_t_, has_c_, want_;
  std::vector<char> jmark_;    // per node during Jacobian passes: 0 or kBlocked
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
  std::vector<char> vstop_;        // per node: a group member's new value (online_vjp stops there)
  // When a group's new value feeds another group's new value within the step (stacked
  // layers), each group's signal needs its own sweep that stops only at its own members:
  // group_stop_[g] is that stop set (empty when one sweep with all stops serves every group).
  std::vector<std::vector<char>> group_stop_;
  bool vstop_active_ = false;      // vjp_node honours vstop_ only while set
  bool nt_through_h_ = false;      // a non-temporal param reaches a member's new value
  // online_vjp's want_ masks (configure_online): the stopped sweep needs cotangents only on
  // nodes that depend on a member's new value or on a non-temporal param (the learning
  // signal and the instantaneous gradients); the unstopped one only on nodes that depend on
  // a non-temporal param. Relation weights (and inputs, old states) get none: no dW GEMM.
  std::vector<char> want_on_stop_, want_on_nt_;
  std::vector<int64_t> jac_off_;   // jacobian(): member offsets (no allocation per step)
  std::vector<std::vector<DeviceBuffer>> on_df_;
  DeviceBuffer on_q_, on_state_, on_carry_;
  // Per relation: dL/dW_eff (and dL/db_eff) summed over a run_online call, for a transformed
  // weight (bias) input; empty buffers for raw Param leaves.
  std::vector<DeviceBuffer> on_wscr_, on_bscr_;
};

template <typename T>
Status SessionImpl<T>::init() {
  n_ = static_cast<int>(plan_.nodes.size());
  // Every total below is a checked sum (decode_plan bounds each node and the sum over all
  // nodes; this keeps init safe on its own): a wrapped total would allocate a short buffer
  // that the kernels overrun. The session's own buffers together must fit kMaxTotalBytes.
  auto sum_error = [&](const char* total, int i) {
    return Status::Error(StatusCode::InvalidPlan,
                         std::string("session init: the ") + total + " overflows at node " + std::to_string(i) + " (" +
                             kOpNames[static_cast<int>(plan_.nodes[i].op)] + " " + shape_str(plan_.nodes[i].shape) +
                             ", " + std::to_string(plan_.nodes[i].numel) + " values)");
  };
  persist_.assign(n_, 0);
  voff_.assign(n_, 0);
  aoff_.assign(n_, 0);
  attrs_.assign(n_, EwAttrs{});
  dep_any_.assign(n_, 0);
  dep_ps_.assign(n_, 0);
  for (int i = 0; i < n_; ++i) {
    const PlanNode& n = plan_.nodes[i];
    persist_[i] = (n.op == OpCode::Param || n.op == OpCode::Const) ? 1 : 0;
    int64_t& total = persist_[i] ? pers_total_ : step_total_;
    voff_[i] = total;
    if (!checked_add(total, n.numel, &total)) return sum_error(persist_[i] ? "persistent value total" : "step value total", i);
    aoff_[i] = all_total_;
    if (!checked_add(all_total_, n.numel, &all_total_)) return sum_error("all-node value total", i);
    if (n.op == OpCode::Spike) attrs_[i].surrogate = n.ints[0];
    for (size_t k = 0; k < n.floats.size() && k < 4 && n.op != OpCode::Const; ++k) attrs_[i].f[k] = n.floats[k];
    if (n.op == OpCode::Input) dep_any_[i] = 1;
    if (n.op == OpCode::Param || n.op == OpCode::State) dep_any_[i] = dep_ps_[i] = 1;
    for (int j : n.inputs) {
      dep_any_[i] = dep_any_[i] || dep_any_[j];
      dep_ps_[i] = dep_ps_[i] || dep_ps_[j];
    }
  }
  soff_.assign(plan_.state_nodes.size(), 0);
  for (size_t s = 0; s < plan_.state_nodes.size(); ++s) {
    soff_[s] = state_total_;
    if (!checked_add(state_total_, numel(plan_.state_nodes[s]), &state_total_))
      return sum_error("state total", plan_.state_nodes[s]);
  }
  {
    // What init allocates now plus the tangent and cotangent slots allocated on first use.
    ByteBudget b(StatusCode::InvalidPlan, "session init: the session's buffers together");
    BT_RETURN_IF_ERROR(b.add("the parameter and constant values", pers_total_, sizeof(T)));
    BT_RETURN_IF_ERROR(b.add("the node values of one step", step_total_, sizeof(T)));
    BT_RETURN_IF_ERROR(b.add("the state staging", state_total_, sizeof(T)));
    BT_RETURN_IF_ERROR(b.add("the stored states", state_total_, sizeof(T)));
    for (int32_t id : plan_.param_nodes) BT_RETURN_IF_ERROR(b.add("the stored param of node " + std::to_string(id), numel(id), sizeof(T)));
    BT_RETURN_IF_ERROR(b.add("the tangents", all_total_, sizeof(T)));
    BT_RETURN_IF_ERROR(b.add("the cotangents", all_total_, sizeof(T)));
  }
  Executor* ex = ex_.get();
  BT_RETURN_IF_ERROR(pers_.allocate_values(ex, {pers_total_}, sizeof(T), "parameter and constant values"));
  BT_RETURN_IF_ERROR(step_.allocate_values(ex, {step_total_}, sizeof(T), "node values"));
  BT_RETURN_IF_ERROR(stage_.allocate_values(ex, {state_total_}, sizeof(T), "state staging"));
  param_store_.resize(plan_.param_nodes.size());
  state_store_.resize(plan_.state_nodes.size());
  for (size_t s = 0; s < param_store_.size(); ++s) {
    BT_RETURN_IF_ERROR(param_store_[s].allocate_values(ex, {numel(plan_.param_nodes[s])}, sizeof(T), "a stored parameter"));
    std::memset(param_store_[s].as<T>(), 0, nbytes(plan_.param_nodes[s]));
  }
  for (size_t s = 0; s < state_store_.size(); ++s) {
    BT_RETURN_IF_ERROR(state_store_[s].allocate_values(ex, {numel(plan_.state_nodes[s])}, sizeof(T), "a stored state"));
    std::memset(state_store_[s].as<T>(), 0, nbytes(plan_.state_nodes[s]));
  }
  for (int i = 0; i < n_; ++i) {
    const PlanNode& n = plan_.nodes[i];
    if (n.op != OpCode::Const) continue;
    T* dst = pers_.as<T>() + voff_[i];
    for (int64_t k = 0; k < n.numel; ++k) dst[k] = static_cast<T>(n.floats[k]);
  }
  vp_.assign(n_, nullptr);
  tp_.assign(n_, nullptr);
  cp_.assign(n_, nullptr);
  tview_.assign(n_, nullptr);
  has_t_.assign(n_, 0);
  has_c_.assign(n_, 0);
  want_.assign(n_, 0);
  jmark_.assign(n_, 0);
  return Status::Ok();
}

template <typename T>
template <typename Seed>
Status SessionImpl<T>::jac_pass(int seed_node, int end, Seed&& seed) {
  BT_RETURN_IF_ERROR(sync());  // the previous pass's tasks may still read the seed buffer
  std::fill(has_t_.begin(), has_t_.end(), 0);
  std::fill(tview_.begin(), tview_.end(), nullptr);
  seed(tp_[seed_node]);
  has_t_[seed_node] = 1;
  tview_[seed_node] = tp_[seed_node];
  for (int i = seed_node + 1; i <= end; ++i) {
    if (cancel_requested()) return cancelled_status();
    BT_RETURN_IF_ERROR(jvp_node(i));
  }
  return sync();
}

template <typename T>
Status SessionImpl<T>::jacobian(const JacobianRequest& r, T* dst) {
  BT_RETURN_IF_ERROR(ensure(tan_, all_total_, "tangents"));
  for (int i = 0; i < n_; ++i) tp_[i] = tan_.as<T>() + aoff_[i];
  const int64_t P = r.positions;
  const size_t nm = r.members.size();
  std::vector<int64_t>& off = jac_off_;  // kept between calls: no allocation per step
  off.assign(nm, 0);
  int64_t S = 0;
  int end = 0;
  for (size_t m = 0; m < nm; ++m) {
    off[m] = S;
    S += r.members[m].width;
    end = std::max(end, static_cast<int>(r.members[m].new_node));
  }
  // Blocked marks of this request; cleared on every exit. A seed is never blocked: the
  // pass starts after it.
  struct MarkGuard {
    SessionImpl* s;
    ~MarkGuard() {
      s->jac_active_ = false;
      std::fill(s->jmark_.begin(), s->jmark_.end(), 0);
    }
  } guard{this};
  std::fill(jmark_.begin(), jmark_.end(), 0);
  for (int32_t b : r.blocked) jmark_[b] = kBlocked;
  jac_active_ = true;

  // Copies the tangents of every member's new node at positions [p0, p1) into
  // the result: Hid2Hid column `col` (D[p, a, col]) or Df rows (df[p, a]).
  auto read = [&](int64_t p0, int64_t p1, int64_t col) {
    for (size_t m = 0; m < nm; ++m) {
      const int node = r.members[m].new_node;
      const int64_t w = r.members[m].width;
      const T* t = has_t_[node] ? tp_[node] : nullptr;
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t j = 0; j < w; ++j) {
          const T v = t ? t[p * w + j] : T(0);
          if (col >= 0) dst[(p * S + off[m] + j) * S + col] = v;
          else dst[p * S + off[m] + j] = v;
        }
    }
  };

  // Every entry of dst is written by `read` below (all p, a for each column b; all rows for Df).
  if (r.kind == JacobianRequest::Kind::Hid2Hid) {
    for (size_t m = 0; m < nm; ++m) {
      const int leaf = r.members[m].leaf_node;
      const int64_t w = r.members[m].width;
      for (int64_t j = 0; j < w; ++j) {
        const int64_t b = off[m] + j;
        if (!r.probe_positions) {
          // One pass per input state b: 1 at (p, j) for every position p.
          BT_RETURN_IF_ERROR(jac_pass(leaf, end, [&](T* t) {
            std::fill(t, t + P * w, T(0));
            for (int64_t p = 0; p < P; ++p) t[p * w + j] = T(1);
          }));
          read(0, P, b);
        } else {
          for (int64_t p = 0; p < P; ++p) {
            BT_RETURN_IF_ERROR(jac_pass(leaf, end, [&](T* t) {
              std::fill(t, t + P * w, T(0));
              t[p * w + j] = T(1);
            }));
            read(p, p + 1, b);
          }
        }
      }
    }
    return Status::Ok();
  }

  // Df: seed the ETP output y.
  const int y = r.y_node;
  const int64_t ny = numel(y);
  const int64_t reps = P / ny;  // 1 for a batched y; B for an unbatched one
  if (!r.probe_positions) {
    BT_RETURN_IF_ERROR(jac_pass(y, end, [&](T* t) { std::fill(t, t + ny, T(1)); }));
    read(0, P, -1);
    return Status::Ok();
  }
  for (int64_t q = 0; q < ny; ++q) {
    BT_RETURN_IF_ERROR(jac_pass(y, end, [&](T* t) {
      std::fill(t, t + ny, T(0));
      t[q] = T(1);
    }));
    for (int64_t k = 0; k < reps; ++k) read(q + k * ny, q + k * ny + 1, -1);
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::evaluate_impl(const EvalArgs& a, EvalResult* out) {
  const size_t ni = plan_.input_nodes.size(), np = plan_.param_nodes.size(), ns = plan_.state_nodes.size();
  BT_RETURN_IF_ERROR(check_slot_ptrs(a.inputs, ni, "evaluate: inputs", false, false));
  BT_RETURN_IF_ERROR(check_slot_ptrs(a.params, np, "evaluate: params", true, true));
  BT_RETURN_IF_ERROR(check_slot_ptrs(a.states, ns, "evaluate: states", true, true));
  const bool jvp = !a.input_tangents.empty() || !a.param_tangents.empty() || !a.state_tangents.empty();
  if (jvp) {
    BT_RETURN_IF_ERROR(check_slot_ptrs(a.input_tangents, ni, "evaluate: input_tangents", true, true));
    BT_RETURN_IF_ERROR(check_slot_ptrs(a.param_tangents, np, "evaluate: param_tangents", true, true));
    BT_RETURN_IF_ERROR(check_slot_ptrs(a.state_tangents, ns, "evaluate: state_tangents", true, true));
  }
  const bool vjp = !a.output_cotangents.empty();
  if (vjp && a.output_cotangents.size() != plan_.outputs.size())
    return invalid("evaluate: output_cotangents: expected " + std::to_string(plan_.outputs.size()) +
                   " pointers (one per output-table row), got " + std::to_string(a.output_cotangents.size()));
  std::vector<int64_t> jac_sizes;
  BT_RETURN_IF_ERROR(check_requests("evaluate", a.fetch_values, a.jacobians, &jac_sizes));
  BT_RETURN_IF_ERROR(check_node_ids(plan_, "evaluate", "fetch_cotangents", a.fetch_cotangents));
  BT_RETURN_IF_ERROR(check_node_ids(plan_, "evaluate", "stop_cotangents", a.stop_cotangents));
  if (!a.stop_cotangents.empty() && !vjp)
    return invalid("evaluate: stop_cotangents needs a VJP: give output_cotangents");
  if (!a.fetch_cotangents.empty() && !vjp)
    return invalid("evaluate: fetch_cotangents needs a VJP: give output_cotangents (one per output-table row, " +
                   std::to_string(plan_.outputs.size()) + " rows), got none");

  BT_RETURN_IF_ERROR(sync());
  T* block = step_.as<T>();
  for (size_t s = 0; s < np; ++s) {
    const int node = plan_.param_nodes[s];
    const void* src = (!a.params.empty() && a.params[s]) ? a.params[s] : param_store_[s].as<T>();
    std::memcpy(value_ptr(node, block), src, nbytes(node));
  }
  for (size_t s = 0; s < ns; ++s) {
    const int node = plan_.state_nodes[s];
    const void* src = (!a.states.empty() && a.states[s]) ? a.states[s] : state_store_[s].as<T>();
    std::memcpy(value_ptr(node, block), src, nbytes(node));
  }
  for (size_t s = 0; s < ni; ++s) {
    const int node = plan_.input_nodes[s];
    std::memcpy(value_ptr(node, block), a.inputs[s], nbytes(node));
  }
  set_value_ptrs(block);
  BT_RETURN_IF_ERROR(forward_all());
  const size_t ne = plan_.outputs.size();
  out->outputs.assign(ne, Buffer{});
  for (size_t e = 0; e < ne; ++e) copy_out(&out->outputs[e], vp_[plan_.outputs[e].node], numel(plan_.outputs[e].node));
  out->fetched_values.assign(a.fetch_values.size(), Buffer{});
  for (size_t k = 0; k < a.fetch_values.size(); ++k)
    copy_out(&out->fetched_values[k], vp_[a.fetch_values[k]], numel(a.fetch_values[k]));

  out->output_tangents.clear();
  if (jvp) {
    BT_RETURN_IF_ERROR(ensure(tan_, all_total_, "tangents"));
    for (int i = 0; i < n_; ++i) tp_[i] = tan_.as<T>() + aoff_[i];
    has_t_.assign(n_, 0);
    tview_.assign(n_, nullptr);
    auto seed = [&](const std::vector<const void*>& v, const std::vector<int32_t>& nodes) {
      for (size_t s = 0; s < v.size(); ++s) {
        if (!v[s]) continue;
        std::memcpy(tp_[nodes[s]], v[s], nbytes(nodes[s]));
        has_t_[nodes[s]] = 1;
        tview_[nodes[s]] = tp_[nodes[s]];
      }
    };
    seed(a.input_tangents, plan_.input_nodes);
    seed(a.param_tangents, plan_.param_nodes);
    seed(a.state_tangents, plan_.state_nodes);
    for (int i = 0; i < n_; ++i) BT_RETURN_IF_ERROR(jvp_node(i));
    BT_RETURN_IF_ERROR(sync());
    out->output_tangents.assign(ne, Buffer{});
    for (size_t e = 0; e < ne; ++e) {
      const int node = plan_.outputs[e].node;
      if (has_t_[node]) copy_out(&out->output_tangents[e], tp_[node], numel(node));
      else zero_out(&out->output_tangents[e], numel(node));
    }
  }

  out->input_cotangents.clear();
  out->param_cotangents.clear();
  out->state_cotangents.clear();
  if (vjp) {
    BT_RETURN_IF_ERROR(ensure(ct_, all_total_, "cotangents"));
    for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
    has_c_.assign(n_, 0);
    want_ = dep_any_;
    if (!a.fetch_cotangents.empty()) {
      // A fetched node needs a cotangent even when it depends on Consts only: so do the
      // nodes between it and the outputs.
      std::vector<char> down(n_, 0);
      for (int32_t id : a.fetch_cotangents) down[id] = 1;
      for (int i = 0; i < n_; ++i) {
        for (int j : plan_.nodes[i].inputs) down[i] = down[i] || down[j];
        want_[i] = want_[i] || down[i];
      }
    }
    for (size_t e = 0; e < ne; ++e) {
      const int node = plan_.outputs[e].node;
      if (!a.output_cotangents[e] || !want_[node]) continue;
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw(node, &c));
      add_host(c, static_cast<const T*>(a.output_cotangents[e]), numel(node));
    }
    if (a.stop_cotangents.empty()) {
      BT_RETURN_IF_ERROR(reverse_all());
    } else {
      // Temporarily stop the sweep at the requested nodes (the online configuration's own
      // stop set, if any, is restored afterwards).
      std::vector<char> stops(n_, 0);
      for (int32_t id : a.stop_cotangents) stops[id] = 1;
      std::swap(stops, vstop_);
      const bool was_active = vstop_active_;
      vstop_active_ = true;
      const Status st = reverse_all();
      vstop_active_ = was_active;
      std::swap(stops, vstop_);
      BT_RETURN_IF_ERROR(st);
    }
    auto collect = [&](std::vector<Buffer>* dst, const std::vector<int32_t>& nodes) {
      dst->assign(nodes.size(), Buffer{});
      for (size_t s = 0; s < nodes.size(); ++s) {
        if (has_c_[nodes[s]]) copy_out(&(*dst)[s], cp_[nodes[s]], numel(nodes[s]));
        else zero_out(&(*dst)[s], numel(nodes[s]));
      }
    };
    collect(&out->input_cotangents, plan_.input_nodes);
    collect(&out->param_cotangents, plan_.param_nodes);
    collect(&out->state_cotangents, plan_.state_nodes);
    // A node's cotangent is complete once the sweep reaches it (all its consumers have larger
    // ids) and the sweep never writes it again, so the final buffer is that value.
    collect(&out->fetched_cotangents, a.fetch_cotangents);
  } else {
    out->fetched_cotangents.clear();
  }

  out->jacobians.assign(a.jacobians.size(), Buffer{});
  for (size_t r = 0; r < a.jacobians.size(); ++r) {
    Buffer& b = out->jacobians[r];
    b.bytes.assign(sizeof(T) * static_cast<size_t>(jac_sizes[r]), 0);
    b.numel = static_cast<size_t>(jac_sizes[r]);
    BT_RETURN_IF_ERROR(jacobian(a.jacobians[r], reinterpret_cast<T*>(b.bytes.data())));
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::run_sequence_impl(const SequenceArgs& a, SequenceResult* out) {
  const size_t ni = plan_.input_nodes.size(), np = plan_.param_nodes.size(), ns = plan_.state_nodes.size();
  const int64_t steps = a.steps;
  if (steps < 1) return invalid("run_sequence: steps must be >= 1, got " + std::to_string(steps));
  BT_RETURN_IF_ERROR(check_slot_ptrs(a.inputs, ni, "run_sequence: inputs", false, false));
  if (!a.loss_scale.empty() && static_cast<int64_t>(a.loss_scale.size()) != steps)
    return invalid("run_sequence: loss_scale must be empty or have one weight per step: expected " +
                   std::to_string(steps) + ", got " + std::to_string(a.loss_scale.size()));
  std::vector<int64_t> jac_sizes;
  BT_RETURN_IF_ERROR(check_requests("run_sequence", a.fetch_values, a.jacobians, &jac_sizes));
  // Sizes below are products with T: each is checked, and the call's results and tape
  // together must fit kMaxTotalBytes (never a short buffer).
  {
    ByteBudget b(StatusCode::InvalidArgument, "run_sequence: the results of " + std::to_string(steps) + " steps");
    int64_t n = 0;
    auto piece = [&](const std::string& name, int64_t per_step) -> Status {
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "run_sequence: " + name + " (steps * values per step)",
                                        {steps, per_step}, sizeof(T), &n));
      return b.add(name, n, sizeof(T));
    };
    if (a.compute_grads) BT_RETURN_IF_ERROR(piece("the BPTT tape", step_total_));
    for (int s = 0; s < num_outputs(); ++s)
      BT_RETURN_IF_ERROR(piece("outputs[" + std::to_string(s) + "]", numel(plan_.outputs[plan_.output_slot_entry[s]].node)));
    for (size_t k = 0; k < a.fetch_values.size(); ++k)
      BT_RETURN_IF_ERROR(piece("fetch_values[" + std::to_string(k) + "]", numel(a.fetch_values[k])));
    for (size_t r = 0; r < jac_sizes.size(); ++r)
      BT_RETURN_IF_ERROR(piece("jacobians[" + std::to_string(r) + "]", jac_sizes[r]));
    if (has_loss()) BT_RETURN_IF_ERROR(b.add("the losses", steps, sizeof(double)));
    for (size_t s = 0; s < ni; ++s)  // read from the caller's memory at t * numel
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "run_sequence: inputs[" + std::to_string(s) +
                                        "] (steps * values per step)", {steps, numel(plan_.input_nodes[s])}, sizeof(T), &n));
  }

  const int nouts = num_outputs();
  out->outputs.assign(nouts, Buffer{});
  for (int s = 0; s < nouts; ++s) {
    const int node = plan_.outputs[plan_.output_slot_entry[s]].node;
    out->outputs[s].bytes.assign(sizeof(T) * static_cast<size_t>(numel(node) * steps), 0);
    out->outputs[s].numel = static_cast<size_t>(numel(node) * steps);
  }
  out->losses.assign(has_loss() ? static_cast<size_t>(steps) : 0, 0.0);
  out->param_grads.clear();
  out->initial_state_grads.clear();
  out->fetched_values.assign(a.fetch_values.size(), Buffer{});
  for (size_t k = 0; k < a.fetch_values.size(); ++k) {
    const int64_t count = numel(a.fetch_values[k]) * steps;
    out->fetched_values[k].bytes.assign(sizeof(T) * static_cast<size_t>(count), 0);
    out->fetched_values[k].numel = static_cast<size_t>(count);
  }
  out->jacobians.assign(a.jacobians.size(), Buffer{});
  for (size_t r = 0; r < a.jacobians.size(); ++r) {
    const int64_t count = jac_sizes[r] * steps;
    out->jacobians[r].bytes.assign(sizeof(T) * static_cast<size_t>(count), 0);
    out->jacobians[r].numel = static_cast<size_t>(count);
  }

  BT_RETURN_IF_ERROR(sync());
  for (size_t s = 0; s < np; ++s) {
    const int node = plan_.param_nodes[s];
    std::memcpy(value_ptr(node, nullptr) , param_store_[s].as<T>(), nbytes(node));
  }

  // Per-step bookkeeping shared by both modes.
  auto load_inputs = [&](T* block, int64_t t) { return load_step_inputs("run_sequence", a.inputs, block, t); };
  auto store_results = [&](int64_t t) -> Status {
    for (int s = 0; s < nouts; ++s) {
      const int node = plan_.outputs[plan_.output_slot_entry[s]].node;
      std::memcpy(out->outputs[s].bytes.data() + sizeof(T) * static_cast<size_t>(t * numel(node)), vp_[node],
                  nbytes(node));
    }
    if (!has_loss()) return Status::Ok();
    out->losses[t] = static_cast<double>(vp_[plan_.outputs[plan_.loss_entry].node][0]);
    return a.compute_grads ? check_loss("run_sequence", out->losses[t], t) : Status::Ok();
  };
  // Node values and Jacobians of step t, from the values in vp_ (the step block, or the
  // tape's block with compute_grads). The passes reuse the session's tangent buffer.
  auto store_requests = [&](int64_t t) -> Status {
    for (size_t k = 0; k < a.fetch_values.size(); ++k) {
      const int node = a.fetch_values[k];
      std::memcpy(out->fetched_values[k].bytes.data() + sizeof(T) * static_cast<size_t>(t * numel(node)), vp_[node],
                  nbytes(node));
    }
    for (size_t r = 0; r < a.jacobians.size(); ++r) {
      T* dst = reinterpret_cast<T*>(out->jacobians[r].bytes.data()) + t * jac_sizes[r];
      BT_RETURN_IF_ERROR(jacobian(a.jacobians[r], dst));
    }
    return Status::Ok();
  };
  // Pointer to the value state slot s has after the step whose values are in `block`.
  auto new_state_ptr = [&](size_t s, T* block) -> T* {
    const int e = plan_.state_new_entry[s];
    return value_ptr(e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s], block);
  };

  if (!a.compute_grads) {
    T* block = step_.as<T>();
    for (size_t s = 0; s < ns; ++s)
      std::memcpy(value_ptr(plan_.state_nodes[s], block), state_store_[s].as<T>(), nbytes(plan_.state_nodes[s]));
    set_value_ptrs(block);
    // The block's state leaves hold the states after the finished steps until a step's
    // staging below: a call stopped before that keeps exactly the finished steps.
    auto keep_states = [&]() {
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(state_store_[s].as<T>(), value_ptr(plan_.state_nodes[s], block), nbytes(plan_.state_nodes[s]));
    };
    for (int64_t t = 0; t < steps; ++t) {
      Status st = cancel_requested() ? cancelled_status() : load_inputs(block, t);
      if (st.ok()) st = forward_all();
      if (st.ok()) st = store_results(t);
      if (st.ok()) st = store_requests(t);
      if (!st.ok()) {
        if (!stops_call(st)) return st;
        keep_states();
        st.steps_done = t;
        return st;
      }
      // Stage all new states before writing any: a StateNew row may name another state's leaf.
      T* stage = stage_.as<T>();
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(stage + soff_[s], new_state_ptr(s, block), nbytes(plan_.state_nodes[s]));
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(value_ptr(plan_.state_nodes[s], block), stage + soff_[s], nbytes(plan_.state_nodes[s]));
      report(t + 1, steps);
    }
    keep_states();
    return Status::Ok();
  }
  // BPTT writes nothing back before the reverse sweep has finished: a stopped call keeps the
  // entry states (0 steps done).
  auto stopped = [](Status st) {
    if (stops_call(st)) st.steps_done = 0;
    return st;
  };

  // BPTT: forward over all steps into a tape (one allocation), then a reverse sweep.
  DeviceBuffer tape;
  BT_RETURN_IF_ERROR(tape.allocate_values(ex_.get(), {step_total_, steps}, sizeof(T),
                                   "the BPTT tape"));
  auto block_at = [&](int64_t t) { return tape.as<T>() + t * step_total_; };
  for (int64_t t = 0; t < steps; ++t) {
    T* block = block_at(t);
    for (size_t s = 0; s < ns; ++s) {
      const int node = plan_.state_nodes[s];
      const T* src = t == 0 ? state_store_[s].as<T>() : new_state_ptr(s, block_at(t - 1));
      std::memcpy(value_ptr(node, block), src, nbytes(node));
    }
    if (cancel_requested()) return stopped(cancelled_status());
    BT_RETURN_IF_ERROR(stopped(load_inputs(block, t)));
    set_value_ptrs(block);
    BT_RETURN_IF_ERROR(stopped(forward_all()));
    BT_RETURN_IF_ERROR(stopped(store_results(t)));
    BT_RETURN_IF_ERROR(stopped(store_requests(t)));
    report(t + 1, 2 * steps);
  }
  T* stage = stage_.as<T>();  // final states, written back after the sweep succeeds
  for (size_t s = 0; s < ns; ++s)
    std::memcpy(stage + soff_[s], new_state_ptr(s, block_at(steps - 1)), nbytes(plan_.state_nodes[s]));

  BT_RETURN_IF_ERROR(ensure(ct_, all_total_, "cotangents"));
  DeviceBuffer carry;
  BT_RETURN_IF_ERROR(carry.allocate_values(ex_.get(), {state_total_}, sizeof(T), "state cotangents"));
  std::vector<char> has_carry(ns, 0);
  for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
  has_c_.assign(n_, 0);
  want_ = dep_ps_;
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  for (int64_t t = steps - 1; t >= 0; --t) {
    set_value_ptrs(block_at(t));
    for (int i = 0; i < n_; ++i)
      if (plan_.nodes[i].op != OpCode::Param) has_c_[i] = 0;  // param cotangents accumulate over steps
    if (loss_node >= 0 && want_[loss_node]) {
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw(loss_node, &c));
      c[0] += static_cast<T>(a.loss_scale.empty() ? 1.0 : a.loss_scale[t]);
    }
    for (size_t s = 0; s < ns; ++s) {
      if (!has_carry[s]) continue;
      // The state leaf at step t+1 is this step's StateNew value (or, without a
      // StateNew row, this step's own leaf).
      const int e = plan_.state_new_entry[s];
      const int target = e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s];
      if (!want_[target]) continue;
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw(target, &c));
      add_host(c, carry.as<T>() + soff_[s], numel(plan_.state_nodes[s]));
    }
    BT_RETURN_IF_ERROR(stopped(reverse_all()));
    BT_RETURN_IF_ERROR(stopped(check_param_cotangents("run_sequence", t)));
    for (size_t s = 0; s < ns; ++s) {
      const int leaf = plan_.state_nodes[s];
      has_carry[s] = has_c_[leaf];
      if (has_carry[s]) std::memcpy(carry.as<T>() + soff_[s], cp_[leaf], nbytes(leaf));
    }
    report(2 * steps - t, 2 * steps);
  }
  out->param_grads.assign(np, Buffer{});
  for (size_t s = 0; s < np; ++s) {
    const int node = plan_.param_nodes[s];
    if (has_c_[node]) copy_out(&out->param_grads[s], cp_[node], numel(node));
    else zero_out(&out->param_grads[s], numel(node));
  }
  out->initial_state_grads.assign(ns, Buffer{});
  for (size_t s = 0; s < ns; ++s) {
    const int node = plan_.state_nodes[s];
    if (has_carry[s]) copy_out(&out->initial_state_grads[s], carry.as<T>() + soff_[s], numel(node));
    else zero_out(&out->initial_state_grads[s], numel(node));
  }
  for (size_t s = 0; s < ns; ++s)
    std::memcpy(state_store_[s].as<T>(), stage + soff_[s], nbytes(plan_.state_nodes[s]));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Online learning (braintrace/online.h)

template <typename T>
Status SessionImpl<T>::configure_online_impl(const OnlineConfig& c) {
  ResolvedOnline r;
  BT_RETURN_IF_ERROR(resolve_online(plan_, c, &r));
  // Allocate into fresh buffers; the old configuration stays in place until all succeed.
  Executor* ex = ex_.get();
  BT_RETURN_IF_ERROR(sync());
  std::vector<DeviceBuffer> traces(r.traces.size());
  for (size_t k = 0; k < r.traces.size(); ++k) {
    BT_RETURN_IF_ERROR(traces[k].allocate_values(ex, {r.traces[k].numel}, sizeof(T), "an eligibility trace"));
    std::memset(traces[k].template as<T>(), 0, sizeof(T) * static_cast<size_t>(r.traces[k].numel));
  }
  std::vector<DeviceBuffer> dbuf(r.groups.size()), gbuf(r.groups.size());
  int64_t q_values = 1;
  for (size_t g = 0; g < r.groups.size(); ++g) {
    const ResolvedGroup& rg = r.groups[g];
    if (rg.need_d)
      BT_RETURN_IF_ERROR(dbuf[g].allocate_values(ex, {rg.P, rg.S, rg.S}, sizeof(T), "a group Jacobian"));
    if (rg.used)
      BT_RETURN_IF_ERROR(gbuf[g].allocate_values(ex, {rg.P, rg.S}, sizeof(T), "a learning signal"));
    q_values = std::max(q_values, rg.P);
  }
  std::vector<std::vector<DeviceBuffer>> dfbuf(r.relations.size());
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    dfbuf[ri].resize(r.relations[ri].targets.size());
    for (size_t k = 0; k < r.relations[ri].targets.size(); ++k) {
      const ResolvedGroup& rg = r.groups[static_cast<size_t>(r.relations[ri].targets[k].group)];
      BT_RETURN_IF_ERROR(dfbuf[ri][k].allocate_values(ex, {rg.P, rg.S}, sizeof(T), "a df Jacobian"));
    }
  }
  std::vector<DeviceBuffer> wscr(r.relations.size()), bscr(r.relations.size());
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    const ResolvedRelation& rr = r.relations[ri];
    if (rr.weight_node >= 0)
      BT_RETURN_IF_ERROR(wscr[ri].allocate_values(ex, {numel(rr.weight_node)}, sizeof(T), "a transformed-weight gradient"));
    if (rr.bias_node >= 0)
      BT_RETURN_IF_ERROR(bscr[ri].allocate_values(ex, {numel(rr.bias_node)}, sizeof(T), "a transformed-bias gradient"));
  }
  DeviceBuffer q, st, carry;
  BT_RETURN_IF_ERROR(q.allocate_values(ex, {q_values}, sizeof(T), "the pp_prop projection"));
  BT_RETURN_IF_ERROR(st.allocate_values(ex, {state_total_}, sizeof(T), "the window states"));
  BT_RETURN_IF_ERROR(carry.allocate_values(ex, {state_total_}, sizeof(T), "the window state cotangents"));
  // Interpreter buffers the runs use, allocated now so that a run allocates nothing that
  // outlives it (memory after configure == memory after any run).
  BT_RETURN_IF_ERROR(ensure(tan_, all_total_, "tangents"));
  BT_RETURN_IF_ERROR(ensure(ct_, all_total_, "cotangents"));

  // The learning signal is the partial derivative of the step's loss with respect to the new
  // hidden values (all members of all groups held fixed): the reverse sweep stops at them.
  // A non-temporal param that reaches one of them needs a second, unstopped sweep for its
  // exact instantaneous gradient.
  std::vector<char> stop(n_, 0);
  for (const OnlineGroup& g : r.config.groups)
    for (const GroupMember& m : g.members) stop[m.new_node] = 1;
  bool nt_through = false;
  std::vector<char> from_nt(n_, 0), want_stop(n_, 0);
  for (size_t sl = 0; sl < plan_.param_nodes.size(); ++sl)
    if (r.non_temporal[sl]) from_nt[plan_.param_nodes[sl]] = 1;
  for (int i = 0; i < n_; ++i) {
    for (int j : plan_.nodes[i].inputs) from_nt[i] = from_nt[i] || from_nt[j];
    if (stop[i] && from_nt[i]) nt_through = true;
  }
  for (int i = 0; i < n_; ++i) {
    want_stop[i] = (stop[i] || from_nt[i]) ? 1 : 0;
    for (int j : plan_.nodes[i].inputs) want_stop[i] = want_stop[i] || want_stop[j];
    // The sweeps only ever propagate through nodes that depend on a Param or State.
    want_stop[i] = want_stop[i] && dep_ps_[i];
    from_nt[i] = from_nt[i] && dep_ps_[i];
  }

  // Does a member's new value of one group feed a member's new value of another group?
  std::vector<int> group_of(n_, -1);
  for (size_t g = 0; g < r.config.groups.size(); ++g)
    for (const GroupMember& m : r.config.groups[g].members) group_of[m.new_node] = static_cast<int>(g);
  bool cross = false;
  {
    // upstream[i]: bitset-free scan: for each node, the set of groups whose new values it depends on,
    // kept as a small sorted vector (groups are few).
    std::vector<std::vector<int>> up(n_);
    for (int i = 0; i < n_ && !cross; ++i) {
      for (int j : plan_.nodes[i].inputs) {
        for (int gg : up[j])
          if (std::find(up[i].begin(), up[i].end(), gg) == up[i].end()) up[i].push_back(gg);
      }
      if (group_of[i] >= 0) {
        for (int gg : up[i])
          if (gg != group_of[i]) cross = true;
        if (std::find(up[i].begin(), up[i].end(), group_of[i]) == up[i].end()) up[i].push_back(group_of[i]);
      }
    }
  }
  std::vector<std::vector<char>> group_stop;
  if (cross) {
    group_stop.assign(r.config.groups.size(), std::vector<char>(n_, 0));
    for (size_t g = 0; g < r.config.groups.size(); ++g)
      for (const GroupMember& m : r.config.groups[g].members) group_stop[g][m.new_node] = 1;
  }

  vstop_ = std::move(stop);
  group_stop_ = std::move(group_stop);
  nt_through_h_ = nt_through;
  want_on_stop_ = std::move(want_stop);
  want_on_nt_ = std::move(from_nt);
  on_ = std::move(r);
  traces_ = std::move(traces);
  on_D_ = std::move(dbuf);
  on_g_ = std::move(gbuf);
  on_df_ = std::move(dfbuf);
  on_q_ = std::move(q);
  on_state_ = std::move(st);
  on_carry_ = std::move(carry);
  on_wscr_ = std::move(wscr);
  on_bscr_ = std::move(bscr);
  trace_n_ = 0;
  online_ = true;
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::reset_traces() {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("reset_traces");
  BT_RETURN_IF_ERROR(online_check("reset_traces"));
  BT_RETURN_IF_ERROR(sync());
  for (size_t k = 0; k < traces_.size(); ++k)
    std::memset(traces_[k].template as<T>(), 0, sizeof(T) * static_cast<size_t>(on_.traces[k].numel));
  trace_n_ = 0;
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::trace_info(std::vector<TraceInfo>* out) const {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("trace_info");
  if (out == nullptr) return invalid("trace_info: out is null");
  out->clear();
  if (!online_) return Status::Ok();
  for (const TraceSpec& t : on_.traces) out->push_back(TraceInfo{t.name, t.shape});
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::get_trace(int index, void* out, size_t n) const {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("get_trace");
  BT_RETURN_IF_ERROR(online_check("get_trace"));
  BT_RETURN_IF_ERROR(check_copy("get_trace", "index", index, traces_.size(), trace_numel(index), trace_desc(index), n,
                                out, false));
  if (n > 0) std::memcpy(out, traces_[static_cast<size_t>(index)].template as<T>(), n * sizeof(T));
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::set_trace(int index, const void* data, size_t n) {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("set_trace");
  BT_RETURN_IF_ERROR(online_check("set_trace"));
  BT_RETURN_IF_ERROR(check_copy("set_trace", "index", index, traces_.size(), trace_numel(index), trace_desc(index), n,
                                data, true));
  if (checks_.data)
    BT_RETURN_IF_ERROR(check_finite("set_trace", "traces[" + std::to_string(index) + "]", static_cast<const T*>(data),
                                    static_cast<int64_t>(n), -1));
  BT_RETURN_IF_ERROR(sync());
  if (n > 0) std::memcpy(traces_[static_cast<size_t>(index)].template as<T>(), data, n * sizeof(T));
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::set_trace_steps(int64_t n) {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("set_trace_steps");
  BT_RETURN_IF_ERROR(online_check("set_trace_steps"));
  // 2^53: the largest count the bias correction's double arithmetic (decay_f^n) holds exactly,
  // and what the binding accepts; far below int64 overflow when runs add their steps.
  if (n < 0 || n > (int64_t(1) << 53))
    return invalid("set_trace_steps: n must be in [0, 2^53], got " + std::to_string(n));
  trace_n_ = n;
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_pieces() {
  for (size_t g = 0; g < on_.groups.size(); ++g)
    if (on_.groups[g].need_d) BT_RETURN_IF_ERROR(jacobian(on_.groups[g].d_request, on_D_[g].template as<T>()));
  for (size_t ri = 0; ri < on_.relations.size(); ++ri)
    for (size_t k = 0; k < on_.relations[ri].targets.size(); ++k)
      BT_RETURN_IF_ERROR(jacobian(on_.relations[ri].targets[k].df_request, on_df_[ri][k].template as<T>()));
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_vjp(double scale, std::vector<Buffer>* grads) {
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  // One reverse sweep from the loss (cotangent `scale`); `stop`: not through the new hidden values.
  auto sweep = [&](bool stop) -> Status {
    BT_RETURN_IF_ERROR(sync());
    for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
    has_c_.assign(n_, 0);
    want_ = stop ? want_on_stop_ : want_on_nt_;  // same size: copies, no allocation
    if (loss_node >= 0 && want_[loss_node]) {
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw(loss_node, &c));
      c[0] += static_cast<T>(scale);
    }
    struct StopGuard {
      bool& flag;
      ~StopGuard() { flag = false; }
    } guard{vstop_active_};
    vstop_active_ = stop;
    return reverse_all();
  };
  auto add_non_temporal = [&]() {
    for (size_t s = 0; s < plan_.param_nodes.size(); ++s) {
      const int node = plan_.param_nodes[s];
      if (on_.non_temporal[s] && has_c_[node])
        add_host(reinterpret_cast<T*>((*grads)[s].bytes.data()), cp_[node], numel(node));
    }
  };
  // g[p, off_m + j] = cotangent of member m's new value at (p, j), with the new values of the
  // group's other members held fixed (the sweep stops at them). One sweep serves all groups
  // unless one group's new value feeds another's within the step; then one sweep per group.
  const bool per_group = !group_stop_.empty();
  if (!per_group) BT_RETURN_IF_ERROR(sweep(true));
  for (size_t g = 0; g < on_.groups.size(); ++g) {
    const ResolvedGroup& rg = on_.groups[g];
    if (!rg.used) continue;
    if (per_group) {
      std::swap(vstop_, group_stop_[g]);
      const Status st = sweep(true);
      std::swap(vstop_, group_stop_[g]);
      BT_RETURN_IF_ERROR(st);
    }
    T* dst = on_g_[g].template as<T>();
    const std::vector<GroupMember>& mem = on_.config.groups[g].members;
    for (size_t m = 0; m < mem.size(); ++m) {
      const int node = mem[m].new_node;
      const int64_t w = mem[m].width;
      const T* src = has_c_[node] ? cp_[node] : nullptr;
      for (int64_t p = 0; p < rg.P; ++p)
        for (int64_t j = 0; j < w; ++j) dst[p * rg.S + rg.member_off[m] + j] = src ? src[p * w + j] : T(0);
    }
  }
  if (nt_through_h_) BT_RETURN_IF_ERROR(sweep(false));
  add_non_temporal();
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_trace_step(bool update, bool contract, int64_t n_c, std::vector<Buffer>* grads) {
  BT_RETURN_IF_ERROR(sync());
  const OnlineConfig& c = on_.config;
  for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
    const ResolvedRelation& rr = on_.relations[ri];
    // Where the contraction goes: the param gradient of a raw weight, the call's dL/dW_eff
    // scratch of a transformed one (pulled back by online_pullback).
    auto grad = [&](int32_t slot) -> T* {
      if (!contract || slot < 0) return nullptr;
      if (slot == rr.weight_slot && rr.weight_node >= 0) return on_wscr_[ri].template as<T>();
      if (slot == rr.bias_slot && rr.bias_node >= 0) return on_bscr_[ri].template as<T>();
      return reinterpret_cast<T*>((*grads)[static_cast<size_t>(slot)].bytes.data());
    };
    const T* x = rr.kind == RelationKind::Dense ? vp_[rr.x_node] : nullptr;
    T* xbar = rr.xbar_trace >= 0 ? traces_[static_cast<size_t>(rr.xbar_trace)].template as<T>() : nullptr;
    if (update && xbar) cpu_pp_input(xbar, x, static_cast<T>(c.decay_x), rr.B * rr.I);
    for (size_t k = 0; k < rr.targets.size(); ++k) {
      const ResolvedTarget& t = rr.targets[k];
      const ResolvedGroup& rg = on_.groups[static_cast<size_t>(t.group)];
      const T* D = rg.need_d ? on_D_[static_cast<size_t>(t.group)].template as<T>() : nullptr;
      const T* df = on_df_[ri][k].template as<T>();
      const T* g = contract ? on_g_[static_cast<size_t>(t.group)].template as<T>() : nullptr;
      if (!update && !contract) continue;
      if (c.algorithm == TraceAlgorithm::DRtrl) {
        if (rr.kind == RelationKind::Dense) {
          DenseTraceTask<T> d;
          d.B = rr.B;
          d.I = rr.I;
          d.O = rr.O;
          d.S = rg.S;
          d.eps = traces_[static_cast<size_t>(t.weight_trace)].template as<T>();
          d.D = D;
          d.df = df;
          d.x = x;
          d.g = g;
          d.dW = grad(rr.weight_slot);
          d.update = update;
          cpu_drtrl_dense(d);
        }
        for (int which : {rr.kind == RelationKind::ElementWise ? t.weight_trace : -1, t.bias_trace}) {
          if (which < 0) continue;
          VecTraceTask<T> v;
          v.B = rg.B;
          v.O = rg.O;
          v.S = rg.S;
          v.eps = traces_[static_cast<size_t>(which)].template as<T>();
          v.D = D;
          v.df = df;
          v.g = g;
          v.dp = grad(which == t.bias_trace ? rr.bias_slot : rr.weight_slot);
          v.update = update;
          cpu_vec_trace(v);
        }
      } else {
        T* epsf = traces_[static_cast<size_t>(t.epsf_trace)].template as<T>();
        if (update) {
          VecTraceTask<T> v;
          v.B = rg.B;
          v.O = rg.O;
          v.S = rg.S;
          v.eps = epsf;
          v.D = D;
          v.df = df;
          v.alpha = static_cast<T>(c.decay_f);
          v.beta = static_cast<T>(1.0 - c.decay_f);
          cpu_vec_trace(v);
        }
        if (contract && n_c >= 1) {
          // Bias correction of the output trace after n_c steps (the reference counts calls: F-30).
          const double corr = std::max(1.0 - std::pow(c.decay_f, static_cast<double>(n_c)), 1e-8);
          const bool dense = rr.kind == RelationKind::Dense;
          cpu_pp_grad(g, epsf, xbar, rg.B, rr.I, rg.O, rg.S, static_cast<T>(1.0 / corr), on_q_.template as<T>(),
                      dense ? grad(rr.weight_slot) : nullptr, dense ? grad(rr.bias_slot) : grad(rr.weight_slot),
                      static_cast<T*>(nullptr));
        }
      }
    }
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_pullback(std::vector<Buffer>* grads) {
  int top = -1;
  for (const ResolvedRelation& rr : on_.relations) top = std::max({top, int(rr.weight_node), int(rr.bias_node)});
  if (top < 0) return Status::Ok();
  BT_RETURN_IF_ERROR(sync());
  for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
  has_c_.assign(n_, 0);
  want_ = dep_ps_;
  for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
    const ResolvedRelation& rr = on_.relations[ri];
    for (int which = 0; which < 2; ++which) {
      const int node = which == 0 ? rr.weight_node : rr.bias_node;
      if (node < 0) continue;
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw(node, &c));
      add_host(c, (which == 0 ? on_wscr_[ri] : on_bscr_[ri]).template as<T>(), numel(node));
    }
  }
  // The transforms depend on params and constants only: the sweep from the highest seed
  // down reaches nothing else (every other node has no cotangent).
  for (int i = top; i >= 0; --i) BT_RETURN_IF_ERROR(vjp_node(i));
  BT_RETURN_IF_ERROR(sync());
  for (size_t s = 0; s < plan_.param_nodes.size(); ++s) {
    const int node = plan_.param_nodes[s];
    if (has_c_[node]) add_host(reinterpret_cast<T*>((*grads)[s].bytes.data()), cp_[node], numel(node));
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::run_online_impl(const OnlineArgs& a, OnlineResult* out) {
  BT_RETURN_IF_ERROR(online_check("run_online"));
  const size_t ni = plan_.input_nodes.size(), np = plan_.param_nodes.size(), ns = plan_.state_nodes.size();
  const int64_t steps = a.steps;
  if (steps < 1) return invalid("run_online: steps must be >= 1, got " + std::to_string(steps));
  if (a.chunk < 1) return invalid("run_online: chunk must be >= 1, got " + std::to_string(a.chunk));
  if (steps % a.chunk != 0)
    return invalid("run_online: chunk must divide steps: steps = " + std::to_string(steps) + ", chunk = " +
                   std::to_string(a.chunk) + " (remainder " + std::to_string(steps % a.chunk) + ")");
  BT_RETURN_IF_ERROR(check_slot_ptrs(a.inputs, ni, "run_online: inputs", false, false));
  if (!a.loss_scale.empty() && static_cast<int64_t>(a.loss_scale.size()) != steps)
    return invalid("run_online: loss_scale must be empty or have one weight per step: expected " +
                   std::to_string(steps) + ", got " + std::to_string(a.loss_scale.size()));
  const bool windows = a.compute_grads && a.chunk >= 2;
  {
    // Products with T (outputs) and with the chunk (the window tape): checked, and the
    // call's results and tape together must fit kMaxTotalBytes.
    ByteBudget b(StatusCode::InvalidArgument, "run_online: the results of " + std::to_string(steps) + " steps");
    int64_t n = 0;
    for (int s = 0; s < num_outputs(); ++s) {
      const std::string name = "outputs[" + std::to_string(s) + "]";
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "run_online: " + name + " (steps * values per step)",
                                        {steps, numel(plan_.outputs[plan_.output_slot_entry[s]].node)}, sizeof(T), &n));
      BT_RETURN_IF_ERROR(b.add(name, n, sizeof(T)));
    }
    if (windows) {
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "run_online: the window tape (chunk * values per step)",
                                        {a.chunk, step_total_}, sizeof(T), &n));
      BT_RETURN_IF_ERROR(b.add("the window tape", n, sizeof(T)));
    }
    if (has_loss()) BT_RETURN_IF_ERROR(b.add("the losses", steps, sizeof(double)));
    int64_t trace_end = 0;  // the trace step counter after this call
    if (!checked_add(trace_n_.load(), steps, &trace_end))
      return invalid("run_online: the trace step counter " + std::to_string(trace_n_.load()) + " plus " +
                     std::to_string(steps) + " steps overflows");
    for (size_t s = 0; s < ni; ++s)  // read from the caller's memory at t * numel
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "run_online: inputs[" + std::to_string(s) +
                                        "] (steps * values per step)", {steps, numel(plan_.input_nodes[s])}, sizeof(T), &n));
  }
  const int nouts = num_outputs();
  out->outputs.assign(nouts, Buffer{});
  for (int s = 0; s < nouts; ++s) {
    const int node = plan_.outputs[plan_.output_slot_entry[s]].node;
    zero_out(&out->outputs[s], numel(node) * steps);
  }
  out->losses.assign((a.compute_grads && has_loss()) ? static_cast<size_t>(steps) : 0, 0.0);
  out->param_grads.clear();
  if (a.compute_grads) {
    out->param_grads.assign(np, Buffer{});
    for (size_t s = 0; s < np; ++s) zero_out(&out->param_grads[s], numel(plan_.param_nodes[s]));
    BT_RETURN_IF_ERROR(sync());
    for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
      const ResolvedRelation& rr = on_.relations[ri];
      if (rr.weight_node >= 0) std::memset(on_wscr_[ri].template as<T>(), 0, nbytes(rr.weight_node));
      if (rr.bias_node >= 0) std::memset(on_bscr_[ri].template as<T>(), 0, nbytes(rr.bias_node));
    }
  }
  auto scale_at = [&](int64_t t) { return a.loss_scale.empty() ? 1.0 : a.loss_scale[static_cast<size_t>(t)]; };

  BT_RETURN_IF_ERROR(sync());
  for (size_t s = 0; s < np; ++s) {
    const int node = plan_.param_nodes[s];
    std::memcpy(value_ptr(node, nullptr), param_store_[s].as<T>(), nbytes(node));
  }
  (void)ni;
  auto load_inputs = [&](T* block, int64_t t) { return load_step_inputs("run_online", a.inputs, block, t); };
  auto store_results = [&](int64_t t) -> Status {
    for (int s = 0; s < nouts; ++s) {
      const int node = plan_.outputs[plan_.output_slot_entry[s]].node;
      std::memcpy(out->outputs[s].bytes.data() + sizeof(T) * static_cast<size_t>(t * numel(node)), vp_[node],
                  nbytes(node));
    }
    if (out->losses.empty()) return Status::Ok();
    out->losses[t] = static_cast<double>(vp_[plan_.outputs[plan_.loss_entry].node][0]);
    return check_loss("run_online", out->losses[t], t);
  };
  auto new_state_ptr = [&](size_t s, T* block) -> T* {
    const int e = plan_.state_new_entry[s];
    return value_ptr(e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s], block);
  };

  if (!windows) {
    // Single-step: forward, pieces, learning signal, fused trace update + contraction.
    T* block = step_.as<T>();
    for (size_t s = 0; s < ns; ++s)
      std::memcpy(value_ptr(plan_.state_nodes[s], block), state_store_[s].as<T>(), nbytes(plan_.state_nodes[s]));
    set_value_ptrs(block);
    // Until a step's staging, the block's state leaves hold the states after the finished
    // steps, and the traces are updated only by online_trace_step: a call stopped before a
    // step's trace update keeps exactly the finished steps.
    auto keep_states = [&]() {
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(state_store_[s].as<T>(), value_ptr(plan_.state_nodes[s], block), nbytes(plan_.state_nodes[s]));
    };
    auto stop = [&](Status st, int64_t done) {
      if (stops_call(st)) {
        keep_states();
        st.steps_done = done;
      }
      return st;
    };
    for (int64_t t = 0; t < steps; ++t) {
      Status st = cancel_requested() ? cancelled_status() : load_inputs(block, t);
      if (st.ok()) st = forward_all();
      if (st.ok()) st = store_results(t);
      if (st.ok()) st = online_pieces();
      // A masked step (scale 0) has no learning signal: skip its VJP and contraction.
      const bool contract = a.compute_grads && scale_at(t) != 0.0;
      if (st.ok() && contract) st = online_vjp(scale_at(t), &out->param_grads);
      if (!st.ok()) return stop(st, t);
      const int64_t n = trace_n_.load();
      BT_RETURN_IF_ERROR(online_trace_step(true, contract, n + 1, &out->param_grads));
      trace_n_ = n + 1;
      T* stage = stage_.as<T>();
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(stage + soff_[s], new_state_ptr(s, block), nbytes(plan_.state_nodes[s]));
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(value_ptr(plan_.state_nodes[s], block), stage + soff_[s], nbytes(plan_.state_nodes[s]));
      // The step is complete (states and traces): a bad gradient now keeps t + 1 steps.
      if (contract) BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, t), t + 1));
      report(t + 1, steps);
    }
    keep_states();
    if (a.compute_grads) {
      BT_RETURN_IF_ERROR(online_pullback(&out->param_grads));
      BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, steps - 1), steps));
    }
    return Status::Ok();
  }

  // Multi-step windows of k steps: a k-step tape (freed at the end of the call).
  const int64_t k = a.chunk;
  DeviceBuffer tape;
  BT_RETURN_IF_ERROR(tape.allocate_values(ex_.get(), {step_total_, k}, sizeof(T),
                                   "the window tape"));
  auto block_at = [&](int64_t j) { return tape.as<T>() + j * step_total_; };
  T* cur = on_state_.as<T>();
  T* carry = on_carry_.as<T>();
  for (size_t s = 0; s < ns; ++s)
    std::memcpy(cur + soff_[s], state_store_[s].as<T>(), nbytes(plan_.state_nodes[s]));
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  std::vector<char> has_carry(ns, 0);
  // `cur` holds the states at the window entry and the traces are advanced only after the
  // window's reverse sweep: a call stopped before that keeps the steps before the window.
  auto keep_states = [&]() {
    for (size_t s = 0; s < ns; ++s) std::memcpy(state_store_[s].as<T>(), cur + soff_[s], nbytes(plan_.state_nodes[s]));
  };
  auto stop = [&](Status st, int64_t done) {
    if (stops_call(st)) {
      keep_states();
      st.steps_done = done;
    }
    return st;
  };
  for (int64_t t0 = 0; t0 < steps; t0 += k) {
    for (int64_t j = 0; j < k; ++j) {
      T* block = block_at(j);
      for (size_t s = 0; s < ns; ++s) {
        const int node = plan_.state_nodes[s];
        const T* src = j == 0 ? cur + soff_[s] : new_state_ptr(s, block_at(j - 1));
        std::memcpy(value_ptr(node, block), src, nbytes(node));
      }
      Status st = cancel_requested() ? cancelled_status() : load_inputs(block, t0 + j);
      set_value_ptrs(block);
      if (st.ok()) st = forward_all();
      if (st.ok()) st = store_results(t0 + j);
      if (!st.ok()) return stop(st, t0);
    }
    // Reverse sweep through the window (as run_sequence): exact within-window gradients and
    // the cotangent of the window-entry states.
    for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
    has_c_.assign(n_, 0);
    want_ = dep_ps_;
    std::fill(has_carry.begin(), has_carry.end(), 0);
    for (int64_t j = k - 1; j >= 0; --j) {
      set_value_ptrs(block_at(j));
      for (int i = 0; i < n_; ++i)
        if (plan_.nodes[i].op != OpCode::Param) has_c_[i] = 0;
      if (loss_node >= 0 && want_[loss_node]) {
        T* c = nullptr;
        BT_RETURN_IF_ERROR(ctw(loss_node, &c));
        c[0] += static_cast<T>(scale_at(t0 + j));
      }
      for (size_t s = 0; s < ns; ++s) {
        if (!has_carry[s]) continue;
        const int e = plan_.state_new_entry[s];
        const int target = e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s];
        if (!want_[target]) continue;
        T* c = nullptr;
        BT_RETURN_IF_ERROR(ctw(target, &c));
        add_host(c, carry + soff_[s], numel(plan_.state_nodes[s]));
      }
      BT_RETURN_IF_ERROR(stop(reverse_all(), t0));
      BT_RETURN_IF_ERROR(stop(check_param_cotangents("run_online", t0 + j), t0));
      for (size_t s = 0; s < ns; ++s) {
        const int leaf = plan_.state_nodes[s];
        has_carry[s] = has_c_[leaf];
        if (has_carry[s]) std::memcpy(carry + soff_[s], cp_[leaf], nbytes(leaf));
      }
    }
    for (size_t s = 0; s < np; ++s) {
      const int node = plan_.param_nodes[s];
      if (has_c_[node]) add_host(reinterpret_cast<T*>(out->param_grads[s].bytes.data()), cp_[node], numel(node));
    }
    // Learning signal at the entry: g[p, off_m + j] = dL_window / d h_m^entry at (p, j).
    for (size_t g = 0; g < on_.groups.size(); ++g) {
      const ResolvedGroup& rg = on_.groups[g];
      if (!rg.used) continue;
      T* dst = on_g_[g].template as<T>();
      const std::vector<GroupMember>& mem = on_.config.groups[g].members;
      for (size_t m = 0; m < mem.size(); ++m) {
        const size_t s = static_cast<size_t>(rg.member_slot[m]);
        const int64_t w = mem[m].width;
        const T* src = has_carry[s] ? carry + soff_[s] : nullptr;
        for (int64_t p = 0; p < rg.P; ++p)
          for (int64_t jj = 0; jj < w; ++jj) dst[p * rg.S + rg.member_off[m] + jj] = src ? src[p * w + jj] : T(0);
      }
    }
    // contract(dL_window / dh^entry, eps^entry), then advance the traces through the window.
    BT_RETURN_IF_ERROR(online_trace_step(false, true, trace_n_.load(), &out->param_grads));
    BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, t0), t0));
    for (int64_t j = 0; j < k; ++j) {
      set_value_ptrs(block_at(j));
      // Stopped inside the advance: the traces have taken j steps of the window, so the
      // states are those after step t0 + j - 1 (the tape's block j - 1).
      Status st = cancel_requested() ? cancelled_status() : online_pieces();
      if (!st.ok()) {
        if (stops_call(st) && j > 0)
          for (size_t s = 0; s < ns; ++s)
            std::memcpy(cur + soff_[s], new_state_ptr(s, block_at(j - 1)), nbytes(plan_.state_nodes[s]));
        return stop(st, t0 + j);
      }
      BT_RETURN_IF_ERROR(online_trace_step(true, false, 0, &out->param_grads));
      trace_n_ = trace_n_.load() + 1;
      report(t0 + j + 1, steps);
    }
    for (size_t s = 0; s < ns; ++s)
      std::memcpy(cur + soff_[s], new_state_ptr(s, block_at(k - 1)), nbytes(plan_.state_nodes[s]));
  }
  keep_states();
  // vp_ still points at the last window's last step (the tape lives until the return).
  BT_RETURN_IF_ERROR(online_pullback(&out->param_grads));
  BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, steps - 1), steps));
  return Status::Ok();
}

}  // namespace

Status Session::Create(const int32_t* code, size_t code_len, const double* fattr, size_t fattr_len,
                       Backend backend, std::unique_ptr<Session>* out) {
  if (out == nullptr) return invalid("Session::Create: out is null");
  return guarded("Session::Create", [&]() -> Status {
    Plan plan;
    BT_RETURN_IF_ERROR(decode_plan(code, code_len, fattr, fattr_len, &plan));
    std::unique_ptr<Executor> ex;
    if (backend == Backend::Cpu) {
      ex = make_cpu_executor();
    } else if (backend == Backend::Cuda) {
      Status st;
      ex = make_cuda_executor(&st);
      if (!ex) {
        if (st.ok()) st = Status::Error(StatusCode::Internal, "make_cuda_executor returned no executor");
        return st;
      }
    } else {
      return invalid("Session::Create: unknown backend " + std::to_string(static_cast<int>(backend)));
    }
    if (!ex) return Status::Error(StatusCode::Internal, "could not create an executor");
    if (plan.dtype == DType::F32) {
      std::unique_ptr<SessionImpl<float>> s(new SessionImpl<float>(std::move(plan), std::move(ex), backend));
      BT_RETURN_IF_ERROR(s->init());
      *out = std::move(s);
    } else {
      std::unique_ptr<SessionImpl<double>> s(new SessionImpl<double>(std::move(plan), std::move(ex), backend));
      BT_RETURN_IF_ERROR(s->init());
      *out = std::move(s);
    }
    return Status::Ok();
  });
}

}  // namespace bt
