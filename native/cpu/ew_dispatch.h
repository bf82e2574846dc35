// The CPU driver's element-wise loops: the op dispatch outside the inner loop.
//
// ew_select(task) returns, once per task, a loop over [begin, end) specialised for the
// task's (op, mode, presence of the optional pointers, Spike surrogate kind): it calls the
// one shared body ew_body (kernels/elementwise.h) with those as compile-time constants, so
// the op's switch and the null tests fold away and the compiler can vectorise the loop
// (the transcendental rules still call the same scalar libm functions per element, so the
// results are the ones ew_apply gives, bit for bit). Combinations the interpreter does not
// hand out (a missing primal output, zero-derivative ops in JVP/VJP form, an unknown
// surrogate) get the generic loop, which calls ew_apply per element.
// The loops are instantiated from the BT_OP_LIST x-macro; a header so that
// test/native/ew_dispatch_check.cc can compare every loop with ew_apply.
#pragma once

#include <stdint.h>

#include "braintrace/ops.h"
#include "core/executor.h"
#include "kernels/elementwise.h"

namespace bt {

// A loop applying `task` to the elements [begin, end).
template <typename T>
using EwLoop = void (*)(const EwTask<T>& task, int64_t begin, int64_t end);

// The loop with everything the body decides fixed at compile time. P holds the presence
// bits the body reads for OP in mode M (ew_present, possibly masked to those bits).
template <typename T, OpCode OP, EwMode M, uint32_t P, int32_t SG>
void ew_loop_fixed(const EwTask<T>& task, int64_t begin, int64_t end) {
  const EwTask<T> t = task;  // local copy: the compiler sees no aliasing through the task
  for (int64_t i = begin; i < end; ++i) ew_body<T>(OP, M, SG, P, t, i);
}

// The generic loop: every decision taken per element from the task (ew_apply).
template <typename T>
void ew_loop_any(const EwTask<T>& task, int64_t begin, int64_t end) {
  const EwTask<T> t = task;
  for (int64_t i = begin; i < end; ++i) ew_apply(t, i);
}

namespace ew_detail {

template <typename T, OpCode OP, uint32_t P, int32_t SG>
EwLoop<T> pick_mode(EwMode mode) {
  if (mode == EwMode::Jvp) return &ew_loop_fixed<T, OP, EwMode::Jvp, P, SG>;
  if (mode == EwMode::Vjp) return &ew_loop_fixed<T, OP, EwMode::Vjp, P, SG>;
  return &ew_loop_any<T>;
}

template <typename T, uint32_t P>
EwLoop<T> pick_spike(EwMode mode, int32_t sg) {
  switch (static_cast<Surrogate>(sg)) {
    case Surrogate::Sigmoid: return pick_mode<T, OpCode::Spike, P, 0>(mode);
    case Surrogate::Arctan: return pick_mode<T, OpCode::Spike, P, 1>(mode);
    case Surrogate::ReluGrad: return pick_mode<T, OpCode::Spike, P, 2>(mode);
    case Surrogate::GaussianGrad: return pick_mode<T, OpCode::Spike, P, 3>(mode);
    case Surrogate::PiecewiseQuadratic: return pick_mode<T, OpCode::Spike, P, 4>(mode);
    case Surrogate::MultiGaussian: return pick_mode<T, OpCode::Spike, P, 5>(mode);
    default: return &ew_loop_any<T>;
  }
}
static_assert(static_cast<int>(Surrogate::Count_) == 6, "a surrogate was added: add its loop to pick_spike");

// The loop for op OP (nullptr when OP is not element-wise).
template <typename T, OpCode OP>
EwLoop<T> select_op(EwMode mode, uint32_t p, int32_t sg) {
  constexpr int arity = ew_arity(OP);
  if constexpr (arity == 0) {
    return nullptr;
  } else {
    if (mode == EwMode::Forward) return &ew_loop_fixed<T, OP, EwMode::Forward, 0u, 0>;
    if constexpr (ew_zero_derivative(OP)) {
      return &ew_loop_any<T>;  // the interpreter never hands these out in JVP/VJP form
    } else if constexpr (arity == 1) {
      constexpr uint32_t kAll = kEwOut | kEwSlot0;
      if (p != kAll) return &ew_loop_any<T>;
      if constexpr (OP == OpCode::Spike) {
        return pick_spike<T, kAll>(mode, sg);
      } else {
        return pick_mode<T, OP, kAll, 0>(mode);
      }
    } else if constexpr (arity == 2) {
      constexpr uint32_t k01 = kEwOut | kEwSlot0 | kEwSlot1, k0 = kEwOut | kEwSlot0, k1 = kEwOut | kEwSlot1;
      if (p == k01) return pick_mode<T, OP, k01, 0>(mode);
      if (p == k0) return pick_mode<T, OP, k0, 0>(mode);
      if (p == k1) return pick_mode<T, OP, k1, 0>(mode);
      return &ew_loop_any<T>;
    } else {
      // Where reads slots 1 and 2 only (no derivative to the condition, no primal output).
      constexpr uint32_t k12 = kEwSlot1 | kEwSlot2;
      const uint32_t q = p & k12;
      if (q == k12) return pick_mode<T, OP, k12, 0>(mode);
      if (q == kEwSlot1) return pick_mode<T, OP, kEwSlot1, 0>(mode);
      if (q == kEwSlot2) return pick_mode<T, OP, kEwSlot2, 0>(mode);
      return &ew_loop_any<T>;
    }
  }
}

}  // namespace ew_detail

// The loop for `task`, chosen once per task; nullptr when task.op is not element-wise.
template <typename T>
EwLoop<T> ew_select(const EwTask<T>& task) {
  const uint32_t p = ew_present(task);
  switch (task.op) {
#define BT_EW_SELECT_CASE(name, arity) \
  case OpCode::name:                   \
    return ew_detail::select_op<T, OpCode::name>(task.mode, p, task.attrs.surrogate);
    BT_OP_LIST(BT_EW_SELECT_CASE)
#undef BT_EW_SELECT_CASE
    default:
      return nullptr;
  }
}

}  // namespace bt
