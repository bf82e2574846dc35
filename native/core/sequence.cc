// Whole sequences in one call: forward over T steps and BPTT over a tape (see
// session_impl.h).
#include "core/session_impl.h"

namespace bt {
namespace detail {

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
    // The tape counts as full step blocks (step_total_ >= tape_total_): the limit stays the
    // one callers have always seen, whatever the compact tape keeps.
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
  params_loaded();

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

  if (!a.compute_grads) {
    T* block = step_.as<T>();
    load_states(block);
    set_value_ptrs(block);
    // The block's state leaves hold the states after the finished steps until a step's
    // staging below: a call stopped before that keeps exactly the finished steps.
    auto keep_states = [&]() { keep_states_from(block); };
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
      // A StateNew row may name another state's leaf: advance_states stages then.
      advance_states(block);
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

  // BPTT: forward over all steps into the compact tape in the arena (reused across calls;
  // untaped nodes go to the step block and are recomputed by the reverse sweep), then the
  // reverse sweep.
  BT_RETURN_IF_ERROR(ensure_tape(steps, tape_total_, "the BPTT tape"));
  // State leaves are not copied from step to step: the leaf of slot s at step t reads the
  // value where it already is (state_at), and the tape slot the layout keeps for it is left
  // unused.
  std::vector<int> state_slot(n_, -1);
  for (size_t s = 0; s < ns; ++s) state_slot[plan_.state_nodes[s]] = static_cast<int>(s);
  // The value of state slot s at the start of BPTT step t (t = steps: the final state): the
  // stored state at t = 0, else the previous step's new value (its StateNew node, taped, or
  // persistent; a StateNew row naming a state leaf, or none, refers to that leaf a step
  // earlier).
  auto state_at = [&](size_t s, int64_t t) -> T* {
    for (;;) {
      const int e = plan_.state_new_entry[s];
      if (e < 0) return state_store_[s].as<T>();  // never assigned: the stored value throughout
      if (t == 0) return state_store_[s].as<T>();
      const int src = plan_.outputs[e].node;
      if (state_slot[src] < 0) return tape_ptr(src, t - 1);
      s = static_cast<size_t>(state_slot[src]);
      --t;
    }
  };
  // vp_ for BPTT step t: the compact tape (set_tape_ptrs) with the state leaves at state_at.
  auto set_step_ptrs = [&](int64_t t) {
    set_tape_ptrs(t);
    for (size_t s = 0; s < ns; ++s) vp_[plan_.state_nodes[s]] = state_at(s, t);
  };
  for (int64_t t = 0; t < steps; ++t) {
    if (cancel_requested()) return stopped(cancelled_status());
    set_step_ptrs(t);
    BT_RETURN_IF_ERROR(stopped(load_step_inputs_vp("run_sequence", a.inputs, t)));
    BT_RETURN_IF_ERROR(stopped(forward_all()));
    BT_RETURN_IF_ERROR(stopped(store_results(t)));
    BT_RETURN_IF_ERROR(stopped(store_requests(t)));
    report(t + 1, 2 * steps);
  }
  T* stage = stage_.as<T>();  // final states, written back after the sweep succeeds
  for (size_t s = 0; s < ns; ++s)
    std::memcpy(stage + soff_[s], state_at(s, steps), nbytes(plan_.state_nodes[s]));

  BT_RETURN_IF_ERROR(ensure(ct_, all_total_, "cotangents"));
  // The state cotangents carried from step t to step t - 1: the state leaf's cotangent of
  // step t seeds the cotangent of the node its value came from (the slot's StateNew node).
  // When no slot's StateNew node is a state leaf (direct), the leaf's cotangent stays in
  // its slot of the arena until the next step reads it (nothing else writes that slot in
  // between); otherwise it is staged in carry_ (a seed could overwrite a leaf's cotangent
  // that another slot still has to read).
  bool direct = true;
  for (size_t s = 0; s < ns; ++s) {
    const int e = plan_.state_new_entry[s];
    if (e < 0 || plan_.nodes[plan_.outputs[e].node].op == OpCode::State) direct = false;
  }
  if (has_loss() && plan_.nodes[plan_.outputs[plan_.loss_entry].node].op == OpCode::State)
    direct = false;  // the loss seed would overwrite a carried leaf cotangent
  if (!direct) BT_RETURN_IF_ERROR(ensure(carry_, state_total_, "state cotangents"));
  DeviceBuffer& carry = carry_;
  auto carry_ptr = [&](size_t s) -> T* { return direct ? cp_[plan_.state_nodes[s]] : carry.as<T>() + soff_[s]; };
  std::vector<char> has_carry(ns, 0);
  bptt_ct_layout();
  for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + bptt_coff_[i];
  want_ = dep_ps_;
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  // The reverse sweep from the last step to the first, from empty cotangents (`check_steps`:
  // the non-finite check of the gradient accumulators after every step; `progress`: report).
  auto sweep_back = [&](bool check_steps, bool progress) -> Status {
    has_c_.assign(n_, 0);
    has_carry.assign(ns, 0);
    for (int64_t t = steps - 1; t >= 0; --t) {
      set_step_ptrs(t);
      BT_RETURN_IF_ERROR(stopped(recompute_untaped()));
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
        // First contribution: target = 0 + carry in one pass (the values of a zeroed slot
        // plus the carry).
        const bool first = !has_c_[target];
        has_c_[target] = 1;
        BT_RETURN_IF_ERROR(accumulate(cp_[target], carry_ptr(s), numel(plan_.state_nodes[s]), first));
      }
      BT_RETURN_IF_ERROR(stopped(reverse_all()));
      if (check_steps) BT_RETURN_IF_ERROR(stopped(check_param_cotangents("run_sequence", t)));
      for (size_t s = 0; s < ns; ++s) {
        const int leaf = plan_.state_nodes[s];
        has_carry[s] = has_c_[leaf];
        if (has_carry[s] && !direct) std::memcpy(carry.as<T>() + soff_[s], cp_[leaf], nbytes(leaf));
      }
      if (progress) report(2 * steps - t, 2 * steps);
    }
    return Status::Ok();
  };
  // The gradient check (checks_.results) reports the step whose contribution made an
  // accumulator non-finite. The accumulators only ever have values added to them, and a sum
  // with a NaN or an infinity is never finite, so an accumulator finite after the sweep was
  // finite after every step: one scan after the sweep instead of one per step. When it
  // fails, the sweep runs again (the same tasks on the same tape: the same values, bit for
  // bit) with the scan after every step, which stops at that step with the per-step error.
  BT_RETURN_IF_ERROR(sweep_back(false, true));
  if (checks_.results) {
    const Status st = check_param_cotangents("run_sequence", 0);
    if (!st.ok()) {
      if (st.code != StatusCode::NonFinite) return stopped(st);
      BT_RETURN_IF_ERROR(sweep_back(true, false));
      return stopped(st);  // not reached: the checked sweep fails at step 0 or earlier
    }
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
    if (has_carry[s]) copy_out(&out->initial_state_grads[s], carry_ptr(s), numel(node));
    else zero_out(&out->initial_state_grads[s], numel(node));
  }
  for (size_t s = 0; s < ns; ++s)
    std::memcpy(state_store_[s].as<T>(), stage + soff_[s], nbytes(plan_.state_nodes[s]));
  return Status::Ok();
}

template Status SessionImpl<float>::run_sequence_impl(const SequenceArgs&, SequenceResult*);
template Status SessionImpl<double>::run_sequence_impl(const SequenceArgs&, SequenceResult*);

}  // namespace detail
}  // namespace bt
