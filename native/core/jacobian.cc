// Per-position Jacobians of one step: forward-mode passes of the interpreter's JVP seeded
// at each hidden-state position (see session_impl.h).
#include "core/session_impl.h"

namespace bt {
namespace detail {

template <typename T>
template <typename Seed>
Status SessionImpl<T>::jac_pass(int seed_node, int end, Seed&& seed, const std::vector<int>* nodes) {
  // Tasks run in order on the executor, so the seed may overwrite a buffer that the
  // previous pass's read task is still reading.
  std::fill(has_t_.begin(), has_t_.end(), 0);
  std::fill(tview_.begin(), tview_.end(), nullptr);
  BT_RETURN_IF_ERROR(seed(tp_[seed_node]));
  has_t_[seed_node] = 1;
  tview_[seed_node] = tp_[seed_node];
  if (nodes != nullptr) {
    // Only the nodes between the seed and the members' new values (configure_online's list),
    // in the fusion schedule's order (element-wise runs fused, as in jvp_range): a listed
    // node's inputs are listed or have no tangent, so the skipped nodes change nothing.
    std::vector<char>& on = jpass_mask_;
    on.assign(n_, 0);
    int hi = seed_node;
    for (int i : *nodes) {
      on[i] = 1;
      hi = std::max(hi, i);
    }
    BT_RETURN_IF_ERROR(sweep(false, seed_node + 1, hi, [this, &on](int i) {
      return on[i] ? jvp_node(i) : Status::Ok();
    }));
    return sync();
  }
  BT_RETURN_IF_ERROR(jvp_range(seed_node + 1, end));
  return sync();
}

template <typename T>
void SessionImpl<T>::jacobian_pass_nodes(const JacobianRequest& r, std::vector<std::vector<int>>* out) const {
  // Ancestors of the members' new values (what the read-out needs).
  std::vector<char> anc(n_, 0);
  for (const GroupMember& m : r.members) anc[m.new_node] = 1;
  for (int i = n_ - 1; i >= 0; --i)
    if (anc[i])
      for (int j : plan_.nodes[i].inputs) anc[j] = 1;
  auto list = [&](int seed) {
    std::vector<char> desc(n_, 0);
    desc[seed] = 1;
    std::vector<int> v;
    for (int i = seed + 1; i < n_; ++i) {
      for (int j : plan_.nodes[i].inputs) desc[i] = desc[i] || desc[j];
      if (desc[i] && anc[i]) v.push_back(i);
    }
    return v;
  };
  out->clear();
  if (r.kind == JacobianRequest::Kind::Hid2Hid)
    for (const GroupMember& m : r.members) out->push_back(list(m.leaf_node));
  else
    out->push_back(list(r.y_node));
}

template <typename T>
bool SessionImpl<T>::jac_pass_static(int seed, const std::vector<int>& nodes) const {
  // fixed[j]: node j's value is the same at every step of a call (no Input or State below
  // it: Params, Consts and what depends on them only; params change only between calls).
  std::vector<char> fixed(n_, 1), tan(n_, 0);
  for (int i = 0; i < n_; ++i) {
    const OpCode op = plan_.nodes[i].op;
    if (op == OpCode::Input || op == OpCode::State) fixed[i] = 0;
    for (int j : plan_.nodes[i].inputs) fixed[i] = fixed[i] && fixed[j];
  }
  tan[seed] = 1;  // the seed's tangent: fixed ones and zeros
  for (int i : nodes) tan[i] = 1;  // may carry a tangent (a blocked one carries zeros)
  for (int i : nodes) {
    const PlanNode& n = plan_.nodes[i];
    // Step-invariant when linear in its inputs' tangents with fixed coefficients.
    bool ok = false;
    switch (n.op) {
      case OpCode::Add: case OpCode::Sub: case OpCode::Neg: case OpCode::EtpElementWise:
      case OpCode::StopGradient:
      case OpCode::Reshape: case OpCode::BroadcastTo: case OpCode::Transpose: case OpCode::Slice:
      case OpCode::Concat: case OpCode::ReduceSum: case OpCode::ReduceMean:
        ok = true;
        break;
      case OpCode::Mul: case OpCode::MatMul: case OpCode::EtpMatMul: {
        // d(a b) = da b + a db: each tangent's coefficient is the other operand (the bias
        // input of an EtpMatMul is added as it is).
        const int a = n.inputs[0], b = n.inputs[1];
        ok = !(tan[a] && !fixed[b]) && !(tan[b] && !fixed[a]);
        break;
      }
      case OpCode::Where:
        ok = fixed[n.inputs[0]] != 0;  // the condition selects the tangent
        break;
      default:
        ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

template <typename T>
Status SessionImpl<T>::jacobian(const JacobianRequest& r, T* dst, const std::vector<std::vector<int>>* passes,
                                const std::vector<char>* skip, bool warm) {
  auto pass_nodes = [&](size_t k) -> const std::vector<int>* { return passes ? &(*passes)[k] : nullptr; };
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
  std::vector<const T*>& src = jac_src_;
  std::vector<int64_t>& width = jac_width_;
  src.assign(nm, nullptr);
  width.assign(nm, 0);
  for (size_t m = 0; m < nm; ++m) width[m] = r.members[m].width;
  // `warm`: a member without a tangent is left out (its entries were written zero by the
  // same pass earlier in the call: which tangents a pass has is decided by the plan alone).
  auto read = [&](int64_t p0, int64_t p1, int64_t col) -> Status {
    int k = 0;
    jr_width_.resize(nm);
    jr_off_.resize(nm);
    for (size_t m = 0; m < nm; ++m) {
      const int node = r.members[m].new_node;
      const T* s = has_t_[node] ? tp_[node] : nullptr;
      if (warm && s == nullptr) continue;
      src[k] = s;
      jr_width_[k] = width[m];
      jr_off_[k] = off[m];
      ++k;
    }
    if (k == 0) return Status::Ok();
    JacobianReadTask<T> task;
    task.members = k;
    task.src = src.data();
    task.width = jr_width_.data();
    task.off = jr_off_.data();
    task.p0 = p0;
    task.p1 = p1;
    task.S = S;
    task.col = col;
    task.dst = dst;
    dirty_ = true;
    return ex_->jacobian_read(task);
  };

  // Every entry of dst is written by `read` below (all p, a for each column b; all rows for Df).
  if (r.kind == JacobianRequest::Kind::Hid2Hid) {
    for (size_t m = 0; m < nm; ++m) {
      if (skip != nullptr && (*skip)[m]) continue;  // its columns hold this step's values already
      const int leaf = r.members[m].leaf_node;
      const int64_t w = r.members[m].width;
      for (int64_t j = 0; j < w; ++j) {
        const int64_t b = off[m] + j;
        if (!r.probe_positions) {
          // One pass per input state b: 1 at (p, j) for every position p (width 1: the
          // ones cover the whole seed, no zero fill first). A warm online pass keeps the
          // ones its seed left earlier in the call (on_seed_ones_: nothing else wrote them).
          const bool keep = warm && w == 1 && leaf < static_cast<int>(on_seed_ones_.size()) && on_seed_ones_[leaf];
          BT_RETURN_IF_ERROR(jac_pass(
              leaf, end,
              [&](T* t) {
                if (keep) return Status::Ok();
                if (w != 1) BT_RETURN_IF_ERROR(fill(t, P * w, T(0)));
                BT_RETURN_IF_ERROR(fill(t + j, P, T(1), w));
                if (w == 1 && leaf < static_cast<int>(on_seed_ok_.size()) && on_seed_ok_[leaf]) on_seed_ones_[leaf] = 1;
                return Status::Ok();
              },
              pass_nodes(m)));
          BT_RETURN_IF_ERROR(read(0, P, b));
        } else {
          for (int64_t p = 0; p < P; ++p) {
            BT_RETURN_IF_ERROR(jac_pass(
                leaf, end,
                [&](T* t) {
                  BT_RETURN_IF_ERROR(fill(t, P * w, T(0)));
                  return fill(t + p * w + j, 1, T(1));
                },
                pass_nodes(m)));
            BT_RETURN_IF_ERROR(read(p, p + 1, b));
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
    BT_RETURN_IF_ERROR(jac_pass(y, end, [&](T* t) { return fill(t, ny, T(1)); }, pass_nodes(0)));
    BT_RETURN_IF_ERROR(read(0, P, -1));
    return Status::Ok();
  }
  for (int64_t q = 0; q < ny; ++q) {
    BT_RETURN_IF_ERROR(jac_pass(
        y, end,
        [&](T* t) {
          BT_RETURN_IF_ERROR(fill(t, ny, T(0)));
          return fill(t + q, 1, T(1));
        },
        pass_nodes(0)));
    for (int64_t k = 0; k < reps; ++k) BT_RETURN_IF_ERROR(read(q + k * ny, q + k * ny + 1, -1));
  }
  return Status::Ok();
}

template Status SessionImpl<float>::jacobian(const JacobianRequest&, float*, const std::vector<std::vector<int>>*,
                                             const std::vector<char>*, bool);
template Status SessionImpl<double>::jacobian(const JacobianRequest&, double*, const std::vector<std::vector<int>>*,
                                              const std::vector<char>*, bool);
template bool SessionImpl<float>::jac_pass_static(int, const std::vector<int>&) const;
template bool SessionImpl<double>::jac_pass_static(int, const std::vector<int>&) const;
template void SessionImpl<float>::jacobian_pass_nodes(const JacobianRequest&, std::vector<std::vector<int>>*) const;
template void SessionImpl<double>::jacobian_pass_nodes(const JacobianRequest&, std::vector<std::vector<int>>*) const;

}  // namespace detail
}  // namespace bt
