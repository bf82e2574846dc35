// The per-element update bodies of the optimizers (bt.optim), shared by the CPU and
// CUDA backends: one body per optimizer, applied to element i of one parameter.
//
// Semantics follow PyTorch's single-tensor implementations (torch.optim, 2.x,
// maximize = false, amsgrad = false, foreach/fused paths differ only in rounding):
//
//   g  = scale * grad[i]               scale: the global-norm clip factor (1 = no clip)
//
//   SGD       g += wd p                                     (L2, coupled)
//             momentum > 0:  b = first ? g : mu b + (1 - dampening) g
//                            g = nesterov ? g + mu b : b
//             p -= lr g
//   Adam      g += wd p                                     (L2, coupled)
//   AdamW     p *= 1 - lr wd                                (decoupled, before the update)
//             m = b1 m + (1 - b1) g
//             v = b2 v + (1 - b2) g^2
//             p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t
//   RMSProp   g += wd p
//             s = alpha s + (1 - alpha) g^2
//             centered: a = alpha a + (1 - alpha) g;  d = sqrt(max(s - a^2, 0)) + eps
//             else:                                    d = sqrt(s) + eps
//             momentum > 0:  b = mu b + g / d;  p -= lr b
//             else:          p -= lr g / d
//
// Every body takes `commit`: true writes the new parameter and state values; false writes
// nothing (a dry run, for the non-finite policy: the step driver first checks that no new
// value would be NaN or infinite, so an update that overflows touches nothing). Both return
// whether every new value of element i (parameter and state) is finite.
//
// The host computes every per-step scalar (lr, the clip scale, the bias corrections) in
// double and passes them here already rounded to T, so the body does only element math.
// No exceptions, virtual calls or host-only functions (it must compile under nvcc).
#pragma once

#include <stdint.h>

#include "kernels/finite.h"
#include "kernels/hd.h"
#include "kernels/scalar_math.h"

namespace bt {

// SGD with momentum (heavy ball or Nesterov) and L2 weight decay.
template <typename T>
struct SgdTask {
  T* p = nullptr;         // parameter (updated in place)
  const T* g = nullptr;   // gradient (read only)
  T* buf = nullptr;       // momentum buffer (null when momentum == 0)
  T lr = 0, scale = 1, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first = false;     // first step: PyTorch initialises the buffer with the gradient
};

template <typename T>
BT_HD bool sgd_update(const SgdTask<T>& t, int64_t i, bool commit = true) {
  T g = t.g[i] * t.scale;
  if (t.weight_decay != T(0)) g = g + t.weight_decay * t.p[i];
  bool ok = true;
  if (t.buf != nullptr) {
    // torch: buf = clone(d_p) on the first step (no dampening), then mu buf + (1 - damp) d_p.
    const T b = t.first ? g : t.momentum * t.buf[i] + (T(1) - t.dampening) * g;
    if (commit) t.buf[i] = b;
    ok = is_finite_value(b);
    g = t.nesterov ? g + t.momentum * b : b;
  }
  const T p = t.p[i] - t.lr * g;
  if (commit) t.p[i] = p;
  return ok && is_finite_value(p);
}

// Adam / AdamW (decoupled = true) with bias correction; eps is added outside the sqrt.
template <typename T>
struct AdamTask {
  T* p = nullptr;
  const T* g = nullptr;
  T* m = nullptr;          // first moment (exp_avg)
  T* v = nullptr;          // second moment (exp_avg_sq)
  T lr = 0, scale = 1, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  T step_size = 0;         // lr / (1 - beta1^t)
  T bc2_sqrt = 1;          // sqrt(1 - beta2^t)
  bool decoupled = false;  // AdamW
};

template <typename T>
BT_HD bool adam_update(const AdamTask<T>& t, int64_t i, bool commit = true) {
  T g = t.g[i] * t.scale;
  T p = t.p[i];
  if (t.weight_decay != T(0)) {
    if (t.decoupled) p = p * (T(1) - t.lr * t.weight_decay);  // Loshchilov & Hutter: p -= lr wd p
    else g = g + t.weight_decay * p;
  }
  const T m = t.beta1 * t.m[i] + (T(1) - t.beta1) * g;
  const T v = t.beta2 * t.v[i] + (T(1) - t.beta2) * g * g;
  const T denom = km::sqrt_(v) / t.bc2_sqrt + t.eps;
  const T np = p - t.step_size * (m / denom);
  if (commit) {
    t.m[i] = m;
    t.v[i] = v;
    t.p[i] = np;
  }
  return is_finite_value(m) && is_finite_value(v) && is_finite_value(np);
}

// RMSProp (Hinton's, PyTorch flavour: eps outside the sqrt; optional centring and momentum).
template <typename T>
struct RmsPropTask {
  T* p = nullptr;
  const T* g = nullptr;
  T* sq = nullptr;        // square_avg
  T* buf = nullptr;       // momentum buffer (null when momentum == 0)
  T* avg = nullptr;       // grad_avg (null unless centered)
  T lr = 0, scale = 1, alpha = 0, eps = 0, momentum = 0, weight_decay = 0;
};

template <typename T>
BT_HD bool rmsprop_update(const RmsPropTask<T>& t, int64_t i, bool commit = true) {
  T g = t.g[i] * t.scale;
  if (t.weight_decay != T(0)) g = g + t.weight_decay * t.p[i];
  const T s = t.alpha * t.sq[i] + (T(1) - t.alpha) * g * g;
  if (commit) t.sq[i] = s;
  bool ok = is_finite_value(s);
  T d;
  if (t.avg != nullptr) {
    const T a = t.alpha * t.avg[i] + (T(1) - t.alpha) * g;
    if (commit) t.avg[i] = a;
    ok = ok && is_finite_value(a);
    // s - a^2 >= 0 in exact arithmetic (a weighted variance); clamp the rounding so a
    // constant gradient cannot produce sqrt(-tiny) = NaN (torch would return NaN there).
    const T var = s - a * a;
    d = km::sqrt_(var > T(0) ? var : T(0)) + t.eps;
  } else {
    d = km::sqrt_(s) + t.eps;
  }
  T p;
  if (t.buf != nullptr) {
    const T b = t.momentum * t.buf[i] + g / d;
    if (commit) t.buf[i] = b;
    ok = ok && is_finite_value(b);
    p = t.p[i] - t.lr * b;
  } else {
    p = t.p[i] - t.lr * (g / d);
  }
  if (commit) t.p[i] = p;
  return ok && is_finite_value(p);
}

// Sum of squares of x[begin, end), accumulated in double (the global-norm clip).
template <typename T>
BT_HD double sum_squares(const T* x, int64_t begin, int64_t end) {
  double s = 0;
  for (int64_t i = begin; i < end; ++i) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  return s;
}

}  // namespace bt
