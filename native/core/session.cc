// Session construction: buffer layout (init) and Session::Create (see session_impl.h for
// the class and the files that define its other members).
#include "core/session_impl.h"

namespace bt {
namespace detail {

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
  // pc[i]: a Param or Const leaf (what BPTT's tape rule below treats as persistent). A
  // non-leaf node that depends on Consts only (a BroadcastTo of a scalar, ...) is folded:
  // persistent too, computed once here (fold_constants) and skipped by every sweep.
  std::vector<char> pc(n_, 0);
  fold_.assign(n_, 0);
  for (int i = 0; i < n_; ++i) {
    const PlanNode& n = plan_.nodes[i];
    if (n.op == OpCode::Input) dep_any_[i] = 1;
    if (n.op == OpCode::Param || n.op == OpCode::State) dep_any_[i] = dep_ps_[i] = 1;
    for (int j : n.inputs) {
      dep_any_[i] = dep_any_[i] || dep_any_[j];
      dep_ps_[i] = dep_ps_[i] || dep_ps_[j];
    }
    pc[i] = (n.op == OpCode::Param || n.op == OpCode::Const) ? 1 : 0;
    fold_[i] = (!is_leaf(n.op) && !dep_any_[i]) ? 1 : 0;
    persist_[i] = (pc[i] || fold_[i]) ? 1 : 0;
    int64_t& total = persist_[i] ? pers_total_ : step_total_;
    voff_[i] = total;
    if (!checked_add(total, n.numel, &total)) return sum_error(persist_[i] ? "persistent value total" : "step value total", i);
    aoff_[i] = all_total_;
    if (!checked_add(all_total_, n.numel, &all_total_)) return sum_error("all-node value total", i);
    if (n.op == OpCode::Spike) attrs_[i].surrogate = n.ints[0];
    for (size_t k = 0; k < n.floats.size() && k < 4 && n.op != OpCode::Const; ++k) attrs_[i].f[k] = n.floats[k];
  }
  // BPTT's compact tape: which nodes are taped (tape_recomputable and the layout comment).
  // The rule counts only Param and Const leaves as persistent (as before folding; a folded
  // node it tapes keeps an unused tape slot, tape_ptr reads the persistent value).
  {
    std::vector<char> state_new(n_, 0);
    for (size_t s = 0; s < plan_.state_nodes.size(); ++s) {  // what the next step's state leaf copies
      const int e = plan_.state_new_entry[s];
      state_new[e >= 0 ? plan_.outputs[e].node : plan_.state_nodes[s]] = 1;
    }
    std::vector<char> needed(n_, 0), recomputed(n_, 0);
    for (int i = 0; i < n_; ++i) tape_needed(plan_.nodes[i], i, &needed);
    // A needed cheap value is worth recomputing when the inputs that would have to be kept
    // for it (those no VJP reads) hold no more values than it does: keep them instead.
    // Consumers come later in plan order, so this runs backwards.
    for (int i = n_ - 1; i >= 0; --i) {
      const PlanNode& n = plan_.nodes[i];
      if (pc[i] || !needed[i] || state_new[i] || !tape_recomputable(n.op)) continue;
      int64_t extra = 0;
      for (int j : n.inputs)
        if (!pc[j] && !needed[j]) extra += numel(j);  // <= step_total_ each
      if (extra <= n.numel)
        for (int j : n.inputs) needed[j] = 1;
    }
    toff_.assign(n_, -1);
    tape_total_ = 0;
    tape_recompute_.clear();
    for (int i = 0; i < n_; ++i) {
      const PlanNode& n = plan_.nodes[i];
      if (pc[i] || (!needed[i] && !state_new[i])) continue;  // persistent, or read by no VJP
      bool recompute = tape_recomputable(n.op) && !state_new[i];
      for (int j : n.inputs) recompute = recompute && (pc[j] || toff_[j] >= 0 || recomputed[j]);
      recomputed[i] = recompute ? 1 : 0;
      if (recompute) {
        if (!fold_[i]) tape_recompute_.push_back(i);  // a folded value is already in place
        continue;
      }
      toff_[i] = tape_total_;
      tape_total_ += n.numel;  // <= step_total_, a checked sum above
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
    BT_RETURN_IF_ERROR(fill(param_store_[s].as<T>(), numel(plan_.param_nodes[s]), T(0)));
  }
  for (size_t s = 0; s < state_store_.size(); ++s) {
    BT_RETURN_IF_ERROR(state_store_[s].allocate_values(ex, {numel(plan_.state_nodes[s])}, sizeof(T), "a stored state"));
    BT_RETURN_IF_ERROR(fill(state_store_[s].as<T>(), numel(plan_.state_nodes[s]), T(0)));
  }
  for (int i = 0; i < n_; ++i) {
    const PlanNode& n = plan_.nodes[i];
    if (n.op != OpCode::Const) continue;
    T* dst = pers_.as<T>() + voff_[i];
    for (int64_t k = 0; k < n.numel; ++k) dst[k] = static_cast<T>(n.floats[k]);
  }
  vp_.assign(n_, nullptr);
  BT_RETURN_IF_ERROR(fold_constants());
  tp_.assign(n_, nullptr);
  cp_.assign(n_, nullptr);
  tview_.assign(n_, nullptr);
  has_t_.assign(n_, 0);
  has_c_.assign(n_, 0);
  want_.assign(n_, 0);
  jmark_.assign(n_, 0);
  fusion_ = plan_fusion(plan_, fusion_enabled_by_env());
  plan_split_concats();
  return Status::Ok();
}

template Status SessionImpl<float>::init();
template Status SessionImpl<double>::init();

}  // namespace detail

using detail::SessionImpl;
using detail::guarded;

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
