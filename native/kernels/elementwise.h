// The single body of every element-wise op (unary, binary, comparison, Where)
// in its three modes: Forward, Jvp and Vjp.
//
//   ew_apply(task, i) computes element i of `task` (see EwTask in core/executor.h):
//     Forward: result[i] = f(in[..][i])
//     Jvp:     result[i] = sum_k df/din_k * tin[k][i]   (null tin[k] = zero tangent, skipped,
//                                                       so a 0 * inf derivative never appears)
//     Vjp:     gin[k][i] += df/din_k * gout[i]          (null gin[k] = not wanted)
//   The primal output `out` is optional in Jvp/Vjp: when null, y is recomputed.
//
// The CPU executor calls it in a parallel loop over [0, n); the CUDA executor calls it
// from a grid-stride kernel. It uses no exceptions, virtual calls or host-only functions.
#pragma once

#include <stdint.h>

#include "braintrace/ops.h"
#include "core/executor.h"
#include "kernels/ew_rules.h"
#include "kernels/hd.h"

namespace bt {

// Arity class of an element-wise op: 1 unary, 2 binary (incl. comparisons), 3 Where,
// 0 for an op that is not element-wise.
BT_HD int ew_arity(OpCode op) {
  int c = static_cast<int>(op);
  if (c >= static_cast<int>(OpCode::Neg) && c <= static_cast<int>(OpCode::EtpElementWise)) return 1;
  if (c >= static_cast<int>(OpCode::Add) && c <= static_cast<int>(OpCode::NotEqual)) return 2;
  if (op == OpCode::Where) return 3;
  return 0;
}

// True for element-wise ops whose derivative is zero everywhere (the JVP writes zeros,
// the VJP adds nothing).
BT_HD bool ew_zero_derivative(OpCode op) {
  return op == OpCode::StopGradient || is_comparison(op);
}

template <typename T>
BT_HD void ew_apply(const EwTask<T>& t, int64_t i) {
  const int arity = ew_arity(t.op);
  if (arity == 1) {
    const T x = t.in[0][i];
    if (t.mode == EwMode::Forward) {
      t.result[i] = unary_value<T>(t.op, t.attrs, x);
      return;
    }
    if (t.mode == EwMode::Jvp) {
      if (t.tin[0] == nullptr || t.op == OpCode::StopGradient) {
        t.result[i] = T(0);
        return;
      }
      const T y = t.out ? t.out[i] : unary_value<T>(t.op, t.attrs, x);
      t.result[i] = unary_deriv<T>(t.op, t.attrs, x, y) * t.tin[0][i];
      return;
    }
    // Vjp
    if (t.gin[0] == nullptr || t.op == OpCode::StopGradient) return;
    const T y = t.out ? t.out[i] : unary_value<T>(t.op, t.attrs, x);
    t.gin[0][i] += unary_deriv<T>(t.op, t.attrs, x, y) * t.gout[i];
    return;
  }
  if (arity == 2) {
    const T a = t.in[0][i], b = t.in[1][i];
    if (t.mode == EwMode::Forward) {
      t.result[i] = binary_value<T>(t.op, a, b);
      return;
    }
    if (is_comparison(t.op)) {
      if (t.mode == EwMode::Jvp) t.result[i] = T(0);
      return;
    }
    const T y = t.out ? t.out[i] : binary_value<T>(t.op, a, b);
    T da, db;
    binary_partials<T>(t.op, a, b, y, &da, &db);
    if (t.mode == EwMode::Jvp) {
      T r = T(0);
      if (t.tin[0]) r += da * t.tin[0][i];
      if (t.tin[1]) r += db * t.tin[1][i];
      t.result[i] = r;
      return;
    }
    const T g = t.gout[i];
    if (t.gin[0]) t.gin[0][i] += da * g;
    if (t.gin[1]) t.gin[1][i] += db * g;
    return;
  }
  if (arity == 3) {  // Where(cond, a, b): a selection, no derivative to cond
    const bool c = t.in[0][i] != T(0);
    if (t.mode == EwMode::Forward) {
      t.result[i] = c ? t.in[1][i] : t.in[2][i];
      return;
    }
    if (t.mode == EwMode::Jvp) {
      const T* tv = c ? t.tin[1] : t.tin[2];
      t.result[i] = tv ? tv[i] : T(0);
      return;
    }
    T* gv = c ? t.gin[1] : t.gin[2];
    if (gv) gv[i] += t.gout[i];
    return;
  }
}

}  // namespace bt
