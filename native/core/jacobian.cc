// Per-position Jacobians of one step: forward-mode passes of the interpreter's JVP seeded
// at each hidden-state position (see session_impl.h).
#include "core/session_impl.h"

namespace bt {
namespace detail {

template <typename T>
template <typename Seed>
Status SessionImpl<T>::jac_pass(int seed_node, int end, Seed&& seed) {
  BT_RETURN_IF_ERROR(sync());  // the previous pass's tasks may still read the seed buffer
  std::fill(has_t_.begin(), has_t_.end(), 0);
  std::fill(tview_.begin(), tview_.end(), nullptr);
  seed(tp_[seed_node]);
  has_t_[seed_node] = 1;
  tview_[seed_node] = tp_[seed_node];
  BT_RETURN_IF_ERROR(jvp_range(seed_node + 1, end));
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

template Status SessionImpl<float>::jacobian(const JacobianRequest&, float*);
template Status SessionImpl<double>::jacobian(const JacobianRequest&, double*);

}  // namespace detail
}  // namespace bt
