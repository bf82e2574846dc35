// Online learning in the session (braintrace/online.h): configuration, eligibility traces,
// and run_online (D_RTRL and pp_prop steps) (see session_impl.h).
#include "core/session_impl.h"

namespace bt {
namespace detail {

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
    BT_RETURN_IF_ERROR(fill(traces[k].template as<T>(), r.traces[k].numel, T(0)));
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
  std::vector<DeviceBuffer> ppx(r.relations.size()), ppq(r.relations.size());
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    const ResolvedRelation& rr = r.relations[ri];
    if (rr.pp_chunk <= 0) continue;
    BT_RETURN_IF_ERROR(ppx[ri].allocate_values(ex, {rr.pp_chunk * rr.B * rr.I}, sizeof(T), "the pp_prop input ring"));
    BT_RETURN_IF_ERROR(ppq[ri].allocate_values(ex, {rr.pp_chunk * rr.B * rr.O}, sizeof(T), "the pp_prop projection ring"));
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
  // Stacked groups (one group's new value feeds another's within the step): group g's
  // signal is the loss's derivative with only g's members held fixed. Outside A_g (the
  // ancestors of g's members) that equals the unstopped cotangent ct_N, so one unstopped
  // sweep over the nodes outside the intersection of every used group's A_g serves all
  // groups (and gives the non-temporal params' exact gradients), and each group adds a short
  // sweep over N_g = A_g ∩ (descendants of its members), seeded from the frontier: the
  // consumers outside A_g of N_g's nodes, whose ct_N the unstopped sweep left. A chain of L
  // layers then costs one reverse pass through the layers, not L(L-1)/2 layer VJPs.
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  std::vector<char> n_mask;
  std::vector<int> n_list, stop_list, nt_list;
  std::vector<std::vector<char>> g_mask(r.config.groups.size());
  std::vector<std::vector<int>> g_list(r.config.groups.size());
  std::vector<std::vector<char>> g_direct(r.config.groups.size());
  if (cross) {
    std::vector<char> inter(n_, 1), dep_member(n_, 0);
    std::vector<std::vector<char>> anc_of(r.config.groups.size());
    for (size_t g = 0; g < r.config.groups.size(); ++g) {
      if (!r.groups[g].used) continue;
      std::vector<char>& anc = anc_of[g];
      anc.assign(n_, 0);
      std::vector<char> desc(n_, 0), mem(n_, 0);
      for (const GroupMember& m : r.config.groups[g].members) anc[m.new_node] = desc[m.new_node] = mem[m.new_node] = 1;
      for (int i = n_ - 1; i >= 0; --i)
        if (anc[i])
          for (int j : plan_.nodes[i].inputs) anc[j] = 1;
      for (int i = 0; i < n_; ++i)
        for (int j : plan_.nodes[i].inputs) desc[i] = desc[i] || desc[j];
      std::vector<char>& ng = g_mask[g];
      ng.assign(n_, 0);
      for (int i = 0; i < n_; ++i) {
        inter[i] = inter[i] && anc[i];
        dep_member[i] = dep_member[i] || desc[i];
        ng[i] = anc[i] && desc[i];
      }
      for (int i = n_ - 1; i >= 0; --i) {
        bool feeds = false;  // a frontier node: outside A_g, consumes a node of N_g
        if (!anc[i])
          for (int j : plan_.nodes[i].inputs) feeds = feeds || ng[j];
        if ((ng[i] && !mem[i]) || feeds) g_list[g].push_back(i);
      }
    }
    n_mask.assign(n_, 0);
    for (int i = 0; i < n_; ++i) n_mask[i] = dep_ps_[i] && (from_nt[i] || (dep_member[i] && !inter[i]));
    for (int i = n_ - 1; i >= 0; --i)
      if (n_mask[i] || i == loss_node) n_list.push_back(i);
    // A member whose consumers all lie outside A_g and that the unstopped sweep reaches
    // (n_mask) is *direct*: its group cotangent is the contributions of those consumers
    // from their ct_N, which the unstopped sweep summed in the same order: gather reads its
    // ct_N. The group sweep keeps only the nodes whose VJP feeds a node of N_g that leads
    // to a member that is not direct (leads[j]: such a member, or a non-member of N_g with
    // an input in N_g that leads).
    for (size_t g = 0; g < r.config.groups.size(); ++g) {
      if (!r.groups[g].used) continue;
      const std::vector<GroupMember>& mem = r.config.groups[g].members;
      const std::vector<char>& anc = anc_of[g];
      const std::vector<char>& ng = g_mask[g];
      std::vector<char> is_mem(n_, 0), leads(n_, 0);
      for (const GroupMember& m : mem) is_mem[m.new_node] = 1;
      g_direct[g].assign(mem.size(), 0);
      for (size_t m = 0; m < mem.size(); ++m) {
        const int v = mem[m].new_node;
        bool outside = n_mask[v] != 0 && v != loss_node;
        for (int i = 0; i < n_ && outside; ++i)
          for (int j : plan_.nodes[i].inputs)
            if (j == v && anc[i]) outside = false;
        g_direct[g][m] = outside ? 1 : 0;
        if (!outside) leads[v] = 1;
      }
      for (int i = 0; i < n_; ++i)
        if (ng[i] && !is_mem[i])
          for (int j : plan_.nodes[i].inputs) leads[i] = leads[i] || (ng[j] && leads[j]);
      std::vector<int> kept;
      for (int i : g_list[g]) {
        bool feeds = false;
        for (int j : plan_.nodes[i].inputs) feeds = feeds || (ng[j] && leads[j]);
        if (feeds) kept.push_back(i);
      }
      g_list[g] = std::move(kept);
    }
  }
  // The nodes each sweep visits, last first: those that can hold a cotangent.
  for (int i = n_ - 1; i >= 0; --i) {
    if (want_stop[i] || i == loss_node) stop_list.push_back(i);
    if (from_nt[i] || i == loss_node) nt_list.push_back(i);
  }

  std::vector<std::vector<std::vector<int>>> d_nodes(r.groups.size());
  std::vector<std::vector<std::vector<std::vector<int>>>> df_nodes(r.relations.size());
  for (size_t g = 0; g < r.groups.size(); ++g)
    if (r.groups[g].need_d) jacobian_pass_nodes(r.groups[g].d_request, &d_nodes[g]);
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    df_nodes[ri].resize(r.relations[ri].targets.size());
    for (size_t k = 0; k < r.relations[ri].targets.size(); ++k)
      jacobian_pass_nodes(r.relations[ri].targets[k].df_request, &df_nodes[ri][k]);
  }

  std::vector<std::vector<char>> d_static(r.groups.size()), df_static(r.relations.size());
  for (size_t g = 0; g < r.groups.size(); ++g) {
    if (!r.groups[g].need_d) continue;
    const JacobianRequest& q = r.groups[g].d_request;
    d_static[g].assign(q.members.size(), 0);
    for (size_t m = 0; m < q.members.size(); ++m)
      d_static[g][m] = jac_pass_static(q.members[m].leaf_node, d_nodes[g][m]) ? 1 : 0;
  }
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    df_static[ri].assign(r.relations[ri].targets.size(), 0);
    for (size_t k = 0; k < r.relations[ri].targets.size(); ++k) {
      const JacobianRequest& q = r.relations[ri].targets[k].df_request;
      df_static[ri][k] = jac_pass_static(q.y_node, df_nodes[ri][k][0]) ? 1 : 0;
    }
  }

  std::vector<char> seed_ok(n_, 0);
  for (size_t g = 0; g < r.groups.size(); ++g)
    if (r.groups[g].need_d)
      for (const GroupMember& m : r.groups[g].d_request.members)
        if (m.width == 1) seed_ok[m.leaf_node] = 1;
  for (size_t g = 0; g < r.config.groups.size(); ++g) {
    for (const GroupMember& m : r.config.groups[g].members) seed_ok[m.new_node] = 0;
    for (int i = 0; i < n_; ++i)
      if (!g_mask[g].empty() && g_mask[g][i]) seed_ok[i] = 0;
  }

  // A split concat (plan_split_concats) that a group sweep reads as a frontier node needs
  // the cotangent the unstopped sweep leaves it: its product keeps the plain VJP.
  // A trimmed one leaves the columns of the unstopped sweep's mask only: also plain.
  split_concat_ = split_base_;
  trim_concat_ = trim_base_;
  for (size_t g = 0; g < g_list.size(); ++g)
    for (int i : g_list[g])
      if (!g_mask[g].empty() && !g_mask[g][i])
        for (int u : concat_products_[i]) split_concat_[u] = trim_concat_[u] = 0;
  vstop_ = std::move(stop);
  on_d_static_ = std::move(d_static);
  on_df_static_ = std::move(df_static);
  on_pieces_warm_ = false;
  on_seed_ok_ = std::move(seed_ok);
  on_seed_ones_.assign(n_, 0);
  on_d_nodes_ = std::move(d_nodes);
  on_df_nodes_ = std::move(df_nodes);
  on_cross_ = cross;
  on_nmask_ = std::move(n_mask);
  on_nlist_ = std::move(n_list);
  on_gmask_ = std::move(g_mask);
  on_glist_ = std::move(g_list);
  on_gdirect_ = std::move(g_direct);
  on_stop_list_ = std::move(stop_list);
  on_nt_list_ = std::move(nt_list);
  cp2_.assign(n_, nullptr);
  has_c2_.assign(n_, 0);
  nt_through_h_ = nt_through;
  want_on_stop_ = std::move(want_stop);
  want_on_nt_ = std::move(from_nt);
  on_ = std::move(r);
  traces_ = std::move(traces);
  on_D_ = std::move(dbuf);
  on_g_ = std::move(gbuf);
  on_gzero_.assign(on_g_.size(), std::vector<char>());  // nothing known zero yet
  on_df_ = std::move(dfbuf);
  on_q_ = std::move(q);
  on_state_ = std::move(st);
  on_carry_ = std::move(carry);
  on_wscr_ = std::move(wscr);
  on_bscr_ = std::move(bscr);
  on_ppx_ = std::move(ppx);
  on_ppq_ = std::move(ppq);
  on_ppn_.assign(on_.relations.size(), 0);
  trace_n_ = 0;
  on_swap_ = online_swap_ok();
  online_ = true;
  return Status::Ok();
}

template <typename T>
bool SessionImpl<T>::online_swap_ok() const {
  std::vector<char> taken(n_, 0);
  for (size_t s = 0; s < plan_.state_nodes.size(); ++s) {
    const int e = plan_.state_new_entry[s];
    if (e < 0) return false;  // the leaf is its own new value: nothing writes the other buffer
    const int node = plan_.outputs[e].node;
    // A leaf (another state, an input, ...) or a folded node is not written by the forward
    // sweep; two slots sharing a node would need it in two places.
    if (is_leaf(plan_.nodes[node].op) || persist_[node] || taken[node] || numel(node) != numel(plan_.state_nodes[s]))
      return false;
    taken[node] = 1;
  }
  return true;
}

template <typename T>
Status SessionImpl<T>::reset_traces() {
  BusyGuard guard(busy_);
  if (!guard.ok()) return busy_status("reset_traces");
  BT_RETURN_IF_ERROR(online_check("reset_traces"));
  for (size_t k = 0; k < traces_.size(); ++k)
    BT_RETURN_IF_ERROR(fill(traces_[k].template as<T>(), on_.traces[k].numel, T(0)));
  BT_RETURN_IF_ERROR(sync());
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
  // After the call's first step (warm), the step-invariant passes (on_d_static_,
  // on_df_static_) are skipped and the zero entries of members without a tangent are not
  // rewritten: their values are still in on_D_ / on_df_, the same bits a pass would write.
  const bool warm = on_pieces_warm_;
  if (!warm) std::fill(on_seed_ones_.begin(), on_seed_ones_.end(), 0);
  for (size_t g = 0; g < on_.groups.size(); ++g)
    if (on_.groups[g].need_d)
      BT_RETURN_IF_ERROR(jacobian(on_.groups[g].d_request, on_D_[g].template as<T>(), &on_d_nodes_[g],
                                  warm ? &on_d_static_[g] : nullptr, warm));
  for (size_t ri = 0; ri < on_.relations.size(); ++ri)
    for (size_t k = 0; k < on_.relations[ri].targets.size(); ++k) {
      if (warm && on_df_static_[ri][k]) continue;
      BT_RETURN_IF_ERROR(jacobian(on_.relations[ri].targets[k].df_request, on_df_[ri][k].template as<T>(),
                                  &on_df_nodes_[ri][k], nullptr, warm));
    }
  on_pieces_warm_ = true;
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_vjp(double scale, std::vector<Buffer>* grads) {
  const int loss_node = has_loss() ? plan_.outputs[plan_.loss_entry].node : -1;
  // One reverse sweep from the loss (cotangent `scale`) over `nodes` (last first) with the
  // cotangent mask `mask`; `stop`: not through the new hidden values.
  auto sweep = [&](const std::vector<char>& mask, const std::vector<int>& nodes, bool stop) -> Status {
    BT_RETURN_IF_ERROR(sync());
    for (int i = 0; i < n_; ++i) cp_[i] = ct_.as<T>() + aoff_[i];
    has_c_.assign(n_, 0);
    want_ = mask;  // same size: copies, no allocation
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
    // The listed nodes in the fusion schedule's reverse order (element-wise VJPs fused, as
    // in reverse_all): every cotangent gets its contributions in the same order.
    std::vector<char>& on = vjp_mask_;
    on.assign(n_, 0);
    for (int i : nodes) on[i] = 1;
    BT_RETURN_IF_ERROR(reverse_upto_masked(on));
    return sync();
  };
  auto add_non_temporal = [&]() -> Status {
    for (size_t s = 0; s < plan_.param_nodes.size(); ++s) {
      const int node = plan_.param_nodes[s];
      if (on_.non_temporal[s] && has_c_[node]) {
        BT_RETURN_IF_ERROR(accumulate(reinterpret_cast<T*>((*grads)[s].bytes.data()), cp_[node], numel(node)));
        mark_grad(static_cast<int64_t>(s));
      }
    }
    return Status::Ok();
  };
  // g[p, off_m + j] = cotangent of member m's new value at (p, j), from the arena (ptr, has).
  // A member without a cotangent whose columns of g are already zero (on_gzero_) is left out.
  // `direct` (or null): per member, read it from the session's arena (cp_, has_c_) instead.
  auto gather = [&](size_t g, const std::vector<T*>& ptr, const std::vector<char>& has,
                    const std::vector<char>* direct) -> Status {
    const ResolvedGroup& rg = on_.groups[g];
    const std::vector<GroupMember>& mem = on_.config.groups[g].members;
    std::vector<char>& zero = on_gzero_[g];
    zero.resize(mem.size(), 0);
    jac_src_.assign(mem.size(), nullptr);
    jac_width_.assign(mem.size(), 0);
    gat_off_.assign(mem.size(), 0);
    size_t k = 0;
    for (size_t m = 0; m < mem.size(); ++m) {
      const int node = mem[m].new_node;
      const bool d = direct != nullptr && (*direct)[m];
      const T* src = (d ? has_c_[node] : has[node]) ? (d ? cp_ : ptr)[node] : nullptr;
      if (src == nullptr && zero[m]) continue;
      zero[m] = src == nullptr ? 1 : 0;
      jac_width_[k] = mem[m].width;
      jac_src_[k] = src;
      gat_off_[k] = rg.member_off[m];
      ++k;
    }
    if (k == 0) return Status::Ok();
    // The rows of g are read like a Df Jacobian's: one jacobian_read task over the members.
    JacobianReadTask<T> read;
    read.members = static_cast<int>(k);
    read.src = jac_src_.data();
    read.width = jac_width_.data();
    read.off = gat_off_.data();
    read.p0 = 0;
    read.p1 = rg.P;
    read.S = rg.S;
    read.col = -1;
    read.dst = on_g_[g].template as<T>();
    dirty_ = true;
    return ex_->jacobian_read(read);
  };
  if (!on_cross_) {
    // One sweep stopped at every member serves all groups (no group's new value feeds
    // another's within the step); a second, unstopped one only when a non-temporal param
    // reaches a member (its exact instantaneous gradient).
    BT_RETURN_IF_ERROR(sweep(want_on_stop_, on_stop_list_, true));
    for (size_t g = 0; g < on_.groups.size(); ++g)
      if (on_.groups[g].used) BT_RETURN_IF_ERROR(gather(g, cp_, has_c_, nullptr));
    if (nt_through_h_) BT_RETURN_IF_ERROR(sweep(want_on_nt_, on_nt_list_, false));
    BT_RETURN_IF_ERROR(add_non_temporal());
    return Status::Ok();
  }
  // Stacked groups (see configure_online_impl): the unstopped sweep, then per group a short
  // sweep over N_g in the tangent arena (free once the step's Jacobians are taken).
  BT_RETURN_IF_ERROR(sweep(on_nmask_, on_nlist_, false));
  BT_RETURN_IF_ERROR(add_non_temporal());
  for (size_t g = 0; g < on_.groups.size(); ++g) {
    if (!on_.groups[g].used) continue;
    const std::vector<char>& ng = on_gmask_[g];
    for (int i = 0; i < n_; ++i) cp2_[i] = tan_.as<T>() + aoff_[i];
    std::fill(has_c2_.begin(), has_c2_.end(), 0);
    if (loss_node >= 0 && ng[loss_node]) {
      T* c = nullptr;
      BT_RETURN_IF_ERROR(ctw_in(loss_node, cp2_, has_c2_, &c));
      c[0] += static_cast<T>(scale);
    }
    std::vector<char>& on = vjp_mask_;
    on.assign(n_, 0);
    for (int i : on_glist_[g]) on[i] = 1;
    // In the fusion schedule's reverse order, as the unstopped sweep.
    BT_RETURN_IF_ERROR(this->sweep(true, 0, n_ - 1, [&](int i) -> Status {
      if (!on[i]) return Status::Ok();
      // N_g nodes carry their group cotangent; frontier nodes their unstopped one.
      const T* gout = ng[i] ? (has_c2_[i] ? cp2_[i] : nullptr) : (has_c_[i] ? cp_[i] : nullptr);
      return gout != nullptr ? vjp_node_into(i, gout, ng, cp2_, has_c2_) : Status::Ok();
    }));
    BT_RETURN_IF_ERROR(sync());
    BT_RETURN_IF_ERROR(gather(g, cp2_, has_c2_, &on_gdirect_[g]));
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_trace_step(bool update, bool contract, int64_t n_c, std::vector<Buffer>* grads) {
  BT_RETURN_IF_ERROR(sync());
  const OnlineConfig& c = on_.config;
  for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
    const ResolvedRelation& rr = on_.relations[ri];
    // Where the contraction goes: the param gradient of a raw weight, the call's dL/dW_eff
    // scratch of a transformed one (pulled back by online_pullback); marked as written for
    // check_online_grads.
    auto grad = [&](int32_t slot) -> T* {
      if (!contract || slot < 0) return nullptr;
      if (slot == rr.weight_slot && rr.weight_node >= 0) {
        mark_scr(ri, 0);
        return on_wscr_[ri].template as<T>();
      }
      if (slot == rr.bias_slot && rr.bias_node >= 0) {
        mark_scr(ri, 1);
        return on_bscr_[ri].template as<T>();
      }
      mark_grad(slot);
      return reinterpret_cast<T*>((*grads)[static_cast<size_t>(slot)].bytes.data());
    };
    const T* x = rr.kind == RelationKind::Dense ? vp_[rr.x_node] : nullptr;
    T* xbar = rr.xbar_trace >= 0 ? traces_[static_cast<size_t>(rr.xbar_trace)].template as<T>() : nullptr;
    if (update && xbar) {
      PpInputTask<T> in;
      in.xbar = xbar;
      in.x = x;
      in.decay_x = static_cast<T>(c.decay_x);
      in.n = rr.B * rr.I;
      dirty_ = true;
      BT_RETURN_IF_ERROR(ex_->pp_input(in));
    }
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
          dirty_ = true;
          BT_RETURN_IF_ERROR(ex_->drtrl_dense(d));
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
          dirty_ = true;
          BT_RETURN_IF_ERROR(ex_->vec_trace(v));
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
          dirty_ = true;
          BT_RETURN_IF_ERROR(ex_->vec_trace(v));
        }
        if (contract && n_c >= 1) {
          // Bias correction of the output trace after n_c steps (the reference counts calls: F-30).
          const double corr = std::max(1.0 - std::pow(c.decay_f, static_cast<double>(n_c)), 1e-8);
          const T inv_c = static_cast<T>(1.0 / corr);
          PpProjectTask<T> pq;
          pq.g = g;
          pq.epsf = epsf;
          pq.P = rg.B * rg.O;
          pq.S = rg.S;
          pq.inv_c = inv_c;
          dirty_ = true;
          if (rr.kind == RelationKind::Dense) {
            // q of every target summed into the ring's next slot; dW waits for the flush.
            pq.q = on_ppq_[ri].template as<T>() + on_ppn_[ri] * rr.B * rr.O;
            pq.accumulate = k > 0;
            BT_RETURN_IF_ERROR(ex_->pp_project(pq));
          } else {
            pq.q = on_q_.template as<T>();
            pq.accumulate = false;
            BT_RETURN_IF_ERROR(ex_->pp_project(pq));
            BT_RETURN_IF_ERROR(pp_vec_grad(pq.q, rg.B, rg.O, grad(rr.weight_slot)));
          }
        }
      }
    }
    if (c.algorithm == TraceAlgorithm::PpProp && rr.pp_chunk > 0 && contract && n_c >= 1) {
      // Close the slot: its input trace, the bias gradient (cheap, per contraction), and a
      // flush when the ring is full or the slot holds a non-finite value.
      const int64_t slot = on_ppn_[ri];
      T* xs = on_ppx_[ri].template as<T>() + slot * rr.B * rr.I;
      const T* qs = on_ppq_[ri].template as<T>() + slot * rr.B * rr.O;
      BT_RETURN_IF_ERROR(copy(xs, xbar, rr.B * rr.I));
      if (rr.bias_slot >= 0) BT_RETURN_IF_ERROR(pp_vec_grad(qs, rr.B, rr.O, grad(rr.bias_slot)));
      on_ppn_[ri] = slot + 1;
      bool bad = false;
      if (checks_.results) {
        int64_t bx = -1, bq = -1;
        BT_RETURN_IF_ERROR(scan_non_finite(xs, rr.B * rr.I, &bx));
        BT_RETURN_IF_ERROR(scan_non_finite(qs, rr.B * rr.O, &bq));
        bad = bx >= 0 || bq >= 0;
      }
      if (on_ppn_[ri] == rr.pp_chunk || bad) BT_RETURN_IF_ERROR(online_pp_flush(static_cast<int>(ri), grads));
    }
  }
  return Status::Ok();
}

template <typename T>
Status SessionImpl<T>::online_pp_flush(int which, std::vector<Buffer>* grads) {
  for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
    if (which >= 0 && static_cast<size_t>(which) != ri) continue;
    const ResolvedRelation& rr = on_.relations[ri];
    if (rr.pp_chunk <= 0 || on_ppn_[ri] == 0) continue;
    T* dW = rr.weight_node >= 0 ? on_wscr_[ri].template as<T>()
                                : reinterpret_cast<T*>((*grads)[static_cast<size_t>(rr.weight_slot)].bytes.data());
    if (rr.weight_node >= 0) mark_scr(ri, 0);
    else mark_grad(rr.weight_slot);
    PpDenseGradTask<T> dg;
    dg.xbar = on_ppx_[ri].template as<T>();
    dg.q = on_ppq_[ri].template as<T>();
    dg.K = on_ppn_[ri] * rr.B;
    dg.I = rr.I;
    dg.O = rr.O;
    dg.dW = dW;
    dirty_ = true;
    BT_RETURN_IF_ERROR(ex_->pp_dense_grad(dg));
    on_ppn_[ri] = 0;
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
      BT_RETURN_IF_ERROR(accumulate(c, (which == 0 ? on_wscr_[ri] : on_bscr_[ri]).template as<T>(), numel(node)));
    }
  }
  // The transforms depend on params and constants only: the sweep from the highest seed
  // down reaches nothing else (every other node has no cotangent).
  for (int i = top; i >= 0; --i) BT_RETURN_IF_ERROR(vjp_node(i));
  BT_RETURN_IF_ERROR(sync());
  for (size_t s = 0; s < plan_.param_nodes.size(); ++s) {
    const int node = plan_.param_nodes[s];
    if (has_c_[node]) {
      BT_RETURN_IF_ERROR(accumulate(reinterpret_cast<T*>((*grads)[s].bytes.data()), cp_[node], numel(node)));
      mark_grad(static_cast<int64_t>(s));
    }
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
  on_pieces_warm_ = false;  // the params may have changed since the last call
  // The size checks below build their messages as they go; a call that passes them all (the
  // arithmetic alone, no strings: every call of a streaming step) skips them.
  auto sizes_fit = [&]() -> bool {
    int64_t n = 0, total = 0;
    size_t bytes = 0;
    auto add = [&](int64_t values, size_t elem) {
      return checked_bytes(values, elem, &bytes) && checked_add(total, static_cast<int64_t>(bytes), &total) &&
             total <= kMaxTotalBytes;
    };
    for (int s = 0; s < num_outputs(); ++s) {
      const int64_t per = numel(plan_.outputs[plan_.output_slot_entry[s]].node);
      if (!checked_product({steps, per}, &n) || !checked_bytes(n, sizeof(T), &bytes) || !add(n, sizeof(T))) return false;
    }
    if (windows && (!checked_product({a.chunk, step_total_}, &n) || !checked_bytes(n, sizeof(T), &bytes) ||
                    !add(n, sizeof(T))))
      return false;
    if (has_loss() && !add(steps, sizeof(double))) return false;
    if (!checked_add(trace_n_.load(), steps, &n)) return false;
    for (size_t s = 0; s < ni; ++s)
      if (!checked_product({steps, numel(plan_.input_nodes[s])}, &n) || !checked_bytes(n, sizeof(T), &bytes)) return false;
    return true;
  };
  if (!sizes_fit()) {
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
  // The result buffers keep their storage when the caller passes the same result again
  // (resize / assign reuse capacity: a streaming step allocates nothing here).
  const int nouts = num_outputs();
  out->outputs.resize(static_cast<size_t>(nouts));
  for (int s = 0; s < nouts; ++s) {
    const int node = plan_.outputs[plan_.output_slot_entry[s]].node;
    zero_out(&out->outputs[s], numel(node) * steps);
  }
  out->losses.assign((a.compute_grads && has_loss()) ? static_cast<size_t>(steps) : 0, 0.0);
  out->param_grads.resize(a.compute_grads ? np : 0);
  if (a.compute_grads) {
    std::fill(on_ppn_.begin(), on_ppn_.end(), 0);  // a stopped call's pending slots are dropped with it
    for (size_t s = 0; s < np; ++s) zero_out(&out->param_grads[s], numel(plan_.param_nodes[s]));
    clear_grad_marks(np);  // all zero: the per-step checks scan what the steps write
    for (size_t ri = 0; ri < on_.relations.size(); ++ri) {
      const ResolvedRelation& rr = on_.relations[ri];
      if (rr.weight_node >= 0) BT_RETURN_IF_ERROR(fill(on_wscr_[ri].template as<T>(), numel(rr.weight_node), T(0)));
      if (rr.bias_node >= 0) BT_RETURN_IF_ERROR(fill(on_bscr_[ri].template as<T>(), numel(rr.bias_node), T(0)));
    }
  }
  auto scale_at = [&](int64_t t) { return a.loss_scale.empty() ? 1.0 : a.loss_scale[static_cast<size_t>(t)]; };

  BT_RETURN_IF_ERROR(sync());
  for (size_t s = 0; s < np; ++s) {
    const int node = plan_.param_nodes[s];
    std::memcpy(value_ptr(node, nullptr), param_store_[s].as<T>(), nbytes(node));
  }
  params_loaded();
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

  if (!windows) {
    // Single-step: forward, pieces, learning signal, fused trace update + contraction.
    T* block = step_.as<T>();
    // With on_swap_ the states live in two state-sized buffers that swap roles after each
    // step (no copy of the new states into the leaves); otherwise in the block.
    T* leaves = on_state_.as<T>();
    T* news = on_carry_.as<T>();
    set_value_ptrs(block);
    if (on_swap_) {
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(leaves + soff_[s], state_store_[s].as<T>(), nbytes(plan_.state_nodes[s]));
      point_states(leaves, news);
    } else {
      load_states(block);
    }
    // Until a step's staging, the state leaves hold the states after the finished steps,
    // and the traces are updated only by online_trace_step: a call stopped before a step's
    // trace update keeps exactly the finished steps.
    auto keep_states = [&]() {
      if (!on_swap_) return keep_states_from(block);
      for (size_t s = 0; s < ns; ++s)
        std::memcpy(state_store_[s].as<T>(), vp_[plan_.state_nodes[s]], nbytes(plan_.state_nodes[s]));
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
      if (on_swap_) {
        std::swap(leaves, news);  // this step's new states are the next step's leaves
        point_states(leaves, news);
      } else {
        advance_states(block);
      }
      // The step is complete (states and traces): a bad gradient now keeps t + 1 steps.
      if (contract) BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, t), t + 1));
      report(t + 1, steps);
    }
    keep_states();
    if (a.compute_grads) {
      BT_RETURN_IF_ERROR(online_pp_flush(-1, &out->param_grads));
      BT_RETURN_IF_ERROR(online_pullback(&out->param_grads));
      BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, steps - 1, true), steps));
    }
    return Status::Ok();
  }

  // Multi-step windows of k steps: a k-step tape of full step blocks, freed at the end of the
  // call (not the session's tape arena: between calls an online session holds only what
  // configure_online allocated).
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
        BT_RETURN_IF_ERROR(accumulate(c, carry + soff_[s], numel(plan_.state_nodes[s])));
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
      if (has_c_[node]) {
        BT_RETURN_IF_ERROR(accumulate(reinterpret_cast<T*>(out->param_grads[s].bytes.data()), cp_[node], numel(node)));
        mark_grad(static_cast<int64_t>(s));
      }
    }
    // Learning signal at the entry: g[p, off_m + j] = dL_window / d h_m^entry at (p, j).
    for (size_t g = 0; g < on_.groups.size(); ++g) {
      const ResolvedGroup& rg = on_.groups[g];
      if (!rg.used) continue;
      T* dst = on_g_[g].template as<T>();
      const std::vector<GroupMember>& mem = on_.config.groups[g].members;
      on_gzero_[g].assign(mem.size(), 0);  // written here: gather rewrites every column next
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
  BT_RETURN_IF_ERROR(online_pp_flush(-1, &out->param_grads));
  BT_RETURN_IF_ERROR(online_pullback(&out->param_grads));
  BT_RETURN_IF_ERROR(stop(check_online_grads(out->param_grads, steps - 1, true), steps));
  return Status::Ok();
}

template Status SessionImpl<float>::configure_online_impl(const OnlineConfig&);
template Status SessionImpl<float>::reset_traces();
template Status SessionImpl<float>::trace_info(std::vector<TraceInfo>*) const;
template Status SessionImpl<float>::get_trace(int, void*, size_t) const;
template Status SessionImpl<float>::set_trace(int, const void*, size_t);
template Status SessionImpl<float>::set_trace_steps(int64_t);
template Status SessionImpl<float>::online_pieces();
template Status SessionImpl<float>::online_vjp(double, std::vector<Buffer>*);
template Status SessionImpl<float>::online_trace_step(bool, bool, int64_t, std::vector<Buffer>*);
template Status SessionImpl<float>::online_pullback(std::vector<Buffer>*);
template Status SessionImpl<float>::online_pp_flush(int, std::vector<Buffer>*);
template Status SessionImpl<float>::run_online_impl(const OnlineArgs&, OnlineResult*);
template Status SessionImpl<double>::configure_online_impl(const OnlineConfig&);
template Status SessionImpl<double>::reset_traces();
template Status SessionImpl<double>::trace_info(std::vector<TraceInfo>*) const;
template Status SessionImpl<double>::get_trace(int, void*, size_t) const;
template Status SessionImpl<double>::set_trace(int, const void*, size_t);
template Status SessionImpl<double>::set_trace_steps(int64_t);
template Status SessionImpl<double>::online_pieces();
template Status SessionImpl<double>::online_vjp(double, std::vector<Buffer>*);
template Status SessionImpl<double>::online_trace_step(bool, bool, int64_t, std::vector<Buffer>*);
template Status SessionImpl<double>::online_pullback(std::vector<Buffer>*);
template Status SessionImpl<double>::online_pp_flush(int, std::vector<Buffer>*);
template Status SessionImpl<double>::run_online_impl(const OnlineArgs&, OnlineResult*);

}  // namespace detail
}  // namespace bt
