// The CPU driver's element-wise loops: the op dispatch outside the inner loop.
//
// ew_select(task) returns, once per task, a loop over [begin, end) specialised for the
// task's (op, mode, presence of the optional pointers, Spike surrogate kind): it calls the
// one shared body ew_body (kernels/elementwise.h) with those as compile-time constants, so
// the op's switch and the null tests fold away and the compiler can vectorise the loop
// (float32 exp / expm1 / tanh / sigmoid are branch-free inline code, kernels/scalar_math.h;
// the other transcendental rules call libm per element; either way the results are the
// ones ew_apply gives, bit for bit). Combinations the interpreter does not
// hand out (a missing primal output, zero-derivative ops in JVP/VJP form, an unknown
// surrogate) get the generic loop, which calls ew_apply per element.
// The loops are instantiated from the BT_OP_LIST x-macro; a header so that
// test/native/ew_dispatch_check.cc can compare every loop with ew_apply.
//
// Two tables on x86-64 (GCC / clang): the portable loops (baseline ISA, SSE2: 4 floats a
// vector) and the same loops compiled for AVX2 (ew_loop_fixed_avx2: the one body under
// __attribute__((target("avx2"))), 8 floats a vector), chosen at run time (ew_isa_active:
// AVX2 where __builtin_cpu_supports says so; BRAINTRACE_EW_ISA=sse2 or avx2 forces one).
// The target is "avx2" without "fma", so no multiply-add can be contracted and both tables
// round every operation the same: their results are bit-identical (also to ew_apply).
// The addon instantiates the AVX2 table in its own translation unit (cpu/ew_avx2.cc; a
// file that defines BT_EW_AVX2_EXTERN before including this header uses that one).
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "braintrace/ops.h"
#include "core/executor.h"
#include "cpu/cpu_features.h"
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

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define BT_EW_AVX2 1
// ew_loop_fixed compiled for AVX2 (only called where the CPU has it). The body and the
// float32 math (km::) are always inlined into it, so they are compiled for AVX2 here. The
// attribute applies to this function only: a callee that is not inlined (libm) keeps the
// baseline ISA, so no AVX2 code can end up in an inline function's out-of-line copy that
// the linker might share with baseline callers (as a #pragma GCC target over the
// includes could).
template <typename T, OpCode OP, EwMode M, uint32_t P, int32_t SG>
__attribute__((target("avx2"))) void ew_loop_fixed_avx2(const EwTask<T>& task, int64_t begin, int64_t end) {
  const EwTask<T> t = task;
  for (int64_t i = begin; i < end; ++i) ew_body<T>(OP, M, SG, P, t, i);
}
#endif

// The instruction set of a table of element-wise loops.
enum class EwIsa : int { Portable = 0, Avx2 = 1 };

// True when this build has the AVX2 table and this CPU (and OS) runs AVX2 code.
inline bool ew_avx2_supported() {
#ifdef BT_EW_AVX2
  return cpu_has_avx2();
#else
  return false;
#endif
}

// The table ew_select uses, decided once per process: BRAINTRACE_EW_ISA=sse2 (or portable)
// forces the portable loops, =avx2 the AVX2 ones where supported (else portable); unset
// or any other value: AVX2 where supported.
inline EwIsa ew_isa_active() {
  static const EwIsa isa = [] {
    // The variable read as every run-time clone's cap (cpu_isa_capped); this table stops at AVX2.
    return ew_avx2_supported() && cpu_isa_capped("BRAINTRACE_EW_ISA") != CpuIsa::Portable ? EwIsa::Avx2
                                                                                         : EwIsa::Portable;
  }();
  return isa;
}

// The generic loop: every decision taken per element from the task (ew_apply).
template <typename T>
void ew_loop_any(const EwTask<T>& task, int64_t begin, int64_t end) {
  const EwTask<T> t = task;
  for (int64_t i = begin; i < end; ++i) ew_apply(t, i);
}

namespace ew_detail {

// The fixed loop of table I.
template <typename T, OpCode OP, EwMode M, uint32_t P, int32_t SG, EwIsa I>
EwLoop<T> fixed() {
#ifdef BT_EW_AVX2
  if constexpr (I == EwIsa::Avx2) return &ew_loop_fixed_avx2<T, OP, M, P, SG>;
#endif
  return &ew_loop_fixed<T, OP, M, P, SG>;
}

template <typename T, OpCode OP, uint32_t P, int32_t SG, EwIsa I>
EwLoop<T> pick_mode(EwMode mode) {
  if (mode == EwMode::Jvp) return fixed<T, OP, EwMode::Jvp, P, SG, I>();
  if (mode == EwMode::Vjp) return fixed<T, OP, EwMode::Vjp, P, SG, I>();
  return &ew_loop_any<T>;
}

template <typename T, uint32_t P, EwIsa I>
EwLoop<T> pick_spike(EwMode mode, int32_t sg) {
  switch (static_cast<Surrogate>(sg)) {
    case Surrogate::Sigmoid: return pick_mode<T, OpCode::Spike, P, 0, I>(mode);
    case Surrogate::Arctan: return pick_mode<T, OpCode::Spike, P, 1, I>(mode);
    case Surrogate::ReluGrad: return pick_mode<T, OpCode::Spike, P, 2, I>(mode);
    case Surrogate::GaussianGrad: return pick_mode<T, OpCode::Spike, P, 3, I>(mode);
    case Surrogate::PiecewiseQuadratic: return pick_mode<T, OpCode::Spike, P, 4, I>(mode);
    case Surrogate::MultiGaussian: return pick_mode<T, OpCode::Spike, P, 5, I>(mode);
    default: return &ew_loop_any<T>;
  }
}
static_assert(static_cast<int>(Surrogate::Count_) == 6, "a surrogate was added: add its loop to pick_spike");

// The loop for op OP (nullptr when OP is not element-wise).
template <typename T, OpCode OP, EwIsa I>
EwLoop<T> select_op(EwMode mode, uint32_t p, int32_t sg) {
  constexpr int arity = ew_arity(OP);
  if constexpr (arity == 0) {
    return nullptr;
  } else {
    if (mode == EwMode::Forward) return fixed<T, OP, EwMode::Forward, 0u, 0, I>();
    if constexpr (ew_zero_derivative(OP)) {
      return &ew_loop_any<T>;  // the interpreter never hands these out in JVP/VJP form
    } else if constexpr (arity == 1) {
      constexpr uint32_t kAll = kEwOut | kEwSlot0;
      if (p != kAll) return &ew_loop_any<T>;
      if constexpr (OP == OpCode::Spike) {
        return pick_spike<T, kAll, I>(mode, sg);
      } else {
        return pick_mode<T, OP, kAll, 0, I>(mode);
      }
    } else if constexpr (arity == 2) {
      constexpr uint32_t k01 = kEwOut | kEwSlot0 | kEwSlot1, k0 = kEwOut | kEwSlot0, k1 = kEwOut | kEwSlot1;
      if (p == k01) return pick_mode<T, OP, k01, 0, I>(mode);
      if (p == k0) return pick_mode<T, OP, k0, 0, I>(mode);
      if (p == k1) return pick_mode<T, OP, k1, 0, I>(mode);
      return &ew_loop_any<T>;
    } else {
      // Where reads slots 1 and 2 only (no derivative to the condition, no primal output).
      constexpr uint32_t k12 = kEwSlot1 | kEwSlot2;
      const uint32_t q = p & k12;
      if (q == k12) return pick_mode<T, OP, k12, 0, I>(mode);
      if (q == kEwSlot1) return pick_mode<T, OP, kEwSlot1, 0, I>(mode);
      if (q == kEwSlot2) return pick_mode<T, OP, kEwSlot2, 0, I>(mode);
      return &ew_loop_any<T>;
    }
  }
}

}  // namespace ew_detail

// The loop of table I for `task`; nullptr when task.op is not element-wise.
template <typename T, EwIsa I>
EwLoop<T> ew_select_isa(const EwTask<T>& task) {
  const uint32_t p = ew_present(task);
  switch (task.op) {
#define BT_EW_SELECT_CASE(name, arity) \
  case OpCode::name:                   \
    return ew_detail::select_op<T, OpCode::name, I>(task.mode, p, task.attrs.surrogate);
    BT_OP_LIST(BT_EW_SELECT_CASE)
#undef BT_EW_SELECT_CASE
    default:
      return nullptr;
  }
}

#if defined(BT_EW_AVX2) && defined(BT_EW_AVX2_EXTERN)
extern template EwLoop<float> ew_select_isa<float, EwIsa::Avx2>(const EwTask<float>&);
extern template EwLoop<double> ew_select_isa<double, EwIsa::Avx2>(const EwTask<double>&);
#endif

// The loop for `task` from the active table (ew_isa_active), chosen once per task;
// nullptr when task.op is not element-wise.
template <typename T>
EwLoop<T> ew_select(const EwTask<T>& task) {
  if (ew_isa_active() == EwIsa::Avx2) return ew_select_isa<T, EwIsa::Avx2>(task);
  return ew_select_isa<T, EwIsa::Portable>(task);
}

}  // namespace bt
