// The interpreter's single-step entry: evaluate (forward, JVP, VJP of one step, fetches
// and Jacobians) (see session_impl.h).
#include "core/session_impl.h"

namespace bt {
namespace detail {

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
  params_loaded();
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
    BT_RETURN_IF_ERROR(jvp_range(0, n_ - 1));
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
    // A fetched or stopping node that is a split or trimmed concat (plan_split_concats)
    // needs its whole cotangent: this call takes the plain VJPs.
    bool unsplit = false;
    for (const auto* ids : {&a.fetch_cotangents, &a.stop_cotangents})
      for (int32_t id : *ids)
        for (int u : concat_products_[id]) unsplit = unsplit || split_concat_[u] || trim_concat_[u];
    struct SplitGuard {
      bool& off;
      ~SplitGuard() { off = false; }
    } split_guard{splits_off_};
    splits_off_ = unsplit;
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
      BT_RETURN_IF_ERROR(accumulate(c, static_cast<const T*>(a.output_cotangents[e]), numel(node)));
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

template Status SessionImpl<float>::evaluate_impl(const EvalArgs&, EvalResult*);
template Status SessionImpl<double>::evaluate_impl(const EvalArgs&, EvalResult*);

}  // namespace detail
}  // namespace bt
