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
// ew_apply decides op, mode and which optional pointers are present per element; it is
// a thin call of the one body ew_body, which takes those decisions as arguments. The CUDA
// executor calls ew_apply from a grid-stride kernel; the CPU executor calls ew_body with
// compile-time arguments, one loop per (op, mode, presence), chosen once per task
// (cpu/ew_dispatch.h). It uses no exceptions, virtual calls or host-only functions.
#pragma once

#include <stdint.h>

#include "braintrace/ops.h"
#include "core/executor.h"
#include "kernels/ew_rules.h"
#include "kernels/hd.h"

namespace bt {

// Arity class of an element-wise op: 1 unary, 2 binary (incl. comparisons), 3 Where,
// 0 for an op that is not element-wise.
BT_HD_FORCE constexpr int ew_arity(OpCode op) {
  return (static_cast<int>(op) >= static_cast<int>(OpCode::Neg) &&
          static_cast<int>(op) <= static_cast<int>(OpCode::EtpElementWise))
             ? 1
             : (static_cast<int>(op) >= static_cast<int>(OpCode::Add) &&
                static_cast<int>(op) <= static_cast<int>(OpCode::NotEqual))
                   ? 2
                   : (op == OpCode::Where ? 3 : 0);
}

// True for element-wise ops whose derivative is zero everywhere (the JVP writes zeros,
// the VJP adds nothing).
BT_HD_FORCE constexpr bool ew_zero_derivative(OpCode op) {
  return op == OpCode::StopGradient || is_comparison(op);
}

// Presence bits of a task's optional pointers (see ew_present).
enum : uint32_t {
  kEwOut = 1u,    // t.out (the primal output) is given
  kEwSlot0 = 2u,  // Jvp: t.tin[0] given; Vjp: t.gin[0] given
  kEwSlot1 = 4u,  // ... slot 1
  kEwSlot2 = 8u,  // ... slot 2
};

// The presence bits of task `t`: what the body tests instead of comparing pointers with
// null, so that a driver which knows them for a whole task can pass them as constants.
template <typename T>
BT_HD_FORCE uint32_t ew_present(const EwTask<T>& t) {
  uint32_t p = t.out != nullptr ? kEwOut : 0u;
  for (int k = 0; k < 3; ++k) {
    const bool has = t.mode == EwMode::Vjp ? t.gin[k] != nullptr : t.tin[k] != nullptr;
    if (has) p |= kEwSlot0 << k;
  }
  return p;
}

// The body: element i of task `t`, with its op, mode, Spike surrogate kind and presence
// bits passed separately (they must equal t.op, t.mode, t.attrs.surrogate and
// ew_present(t)). ew_apply passes the task's own; a driver may pass compile-time
// constants for a whole task (cpu/ew_dispatch.h), which folds every test below.
template <typename T>
BT_HD_FORCE void ew_body(OpCode op, EwMode mode, int32_t surrogate, uint32_t p, const EwTask<T>& t, int64_t i) {
  const int arity = ew_arity(op);
  if (arity == 1) {
    const T x = t.in[0][i];
    if (mode == EwMode::Forward) {
      t.result[i] = unary_value<T>(op, t.attrs, x);
      return;
    }
    EwAttrs at = t.attrs;
    at.surrogate = surrogate;
    if (mode == EwMode::Jvp) {
      if (!(p & kEwSlot0) || op == OpCode::StopGradient) {
        t.result[i] = T(0);
        return;
      }
      const T y = (p & kEwOut) ? t.out[i] : unary_value<T>(op, at, x);
      t.result[i] = unary_deriv<T>(op, at, x, y) * t.tin[0][i];
      return;
    }
    // Vjp
    if (!(p & kEwSlot0) || op == OpCode::StopGradient) return;
    const T y = (p & kEwOut) ? t.out[i] : unary_value<T>(op, at, x);
    t.gin[0][i] += unary_deriv<T>(op, at, x, y) * t.gout[i];
    return;
  }
  if (arity == 2) {
    const T a = t.in[0][i], b = t.in[1][i];
    if (mode == EwMode::Forward) {
      t.result[i] = binary_value<T>(op, a, b);
      return;
    }
    if (is_comparison(op)) {
      if (mode == EwMode::Jvp) t.result[i] = T(0);
      return;
    }
    const T y = (p & kEwOut) ? t.out[i] : binary_value<T>(op, a, b);
    T da, db;
    binary_partials<T>(op, a, b, y, &da, &db);
    if (mode == EwMode::Jvp) {
      T r = T(0);
      if (p & kEwSlot0) r += da * t.tin[0][i];
      if (p & kEwSlot1) r += db * t.tin[1][i];
      t.result[i] = r;
      return;
    }
    const T g = t.gout[i];
    if (p & kEwSlot0) t.gin[0][i] += da * g;
    if (p & kEwSlot1) t.gin[1][i] += db * g;
    return;
  }
  if (arity == 3) {  // Where(cond, a, b): a selection, no derivative to cond
    const bool c = t.in[0][i] != T(0);
    // Both sides are read unconditionally (they are in bounds) so that the selection
    // needs no branch; only the chosen value is used.
    if (mode == EwMode::Forward) {
      const T va = t.in[1][i], vb = t.in[2][i];
      t.result[i] = c ? va : vb;
      return;
    }
    if (mode == EwMode::Jvp) {
      const T ta = (p & kEwSlot1) ? t.tin[1][i] : T(0);
      const T tb = (p & kEwSlot2) ? t.tin[2][i] : T(0);
      t.result[i] = c ? ta : tb;
      return;
    }
    if (c) {
      if (p & kEwSlot1) t.gin[1][i] += t.gout[i];
    } else {
      if (p & kEwSlot2) t.gin[2][i] += t.gout[i];
    }
    return;
  }
}

// Element i of task `t`, every decision taken from the task itself (the CUDA kernel's
// per-element entry, and the CPU driver's fallback loop).
template <typename T>
BT_HD void ew_apply(const EwTask<T>& t, int64_t i) {
  ew_body(t.op, t.mode, t.attrs.surrogate, ew_present(t), t, i);
}

}  // namespace bt
