// braintrace native core: the closed op set and the plan encoding.
//
// This header is the single native list of operations. Its TypeScript twin is
// lib/graph/ops.ts (`OP_TABLE`); the order (and therefore the numeric code) of
// every op is identical in both, and the test suite checks that
// `binding.opNames()` equals the TypeScript list.
//
// Conventions shared by every op
//   * Every value is a dense, row-major (C order) array of the plan's dtype.
//   * Element-wise binary/ternary ops take inputs of EXACTLY the output shape:
//     the TypeScript tracer inserts explicit BroadcastTo nodes. This keeps the
//     element-wise kernels index-free (one flat loop, trivially portable to CUDA).
//   * Comparison ops produce 0/1 in the plan dtype and have zero derivative.
//   * "attrs" are two lists per node: int attributes (int32) and float
//     attributes (float64). Their meaning per op is listed below.
//
// Plan encoding (an Int32Array `code` plus a Float64Array `fattr`):
//
//   code[0] = BT_PLAN_MAGIC, code[1] = BT_PLAN_VERSION, code[2] = dtype (0 f32, 1 f64)
//   code[3] = number of nodes N
//   then N node records, node i has id i and may only read ids < i:
//     opcode, nInputs, input ids..., rank, dims..., nInt, ints..., nFloat, floatOffset
//     (its float attributes are fattr[floatOffset .. floatOffset + nFloat))
//   then the output table:
//     nOutputs, then per output: kind, nodeId, index
//       kind 0 = model output   (index = output slot, 0..)
//       kind 1 = new state value (index = state slot; node shape == that state's leaf shape)
//       kind 2 = loss            (index 0; node must be a scalar, rank 0 or numel 1)
//
// Leaves: Input (ints [slot]), Param (ints [slot]), State (ints [slot]) and
// Const (floats = the values, numel of them). Slots are dense from 0 within
// each leaf kind; a slot appears in exactly one leaf node.
#pragma once

#include <cstdint>

#define BT_PLAN_MAGIC 0x42545031   /* "BTP1" */
#define BT_PLAN_VERSION 1

namespace bt {

// X-macro: BT_OP(Name, arity) where arity -1 means "variadic" (Concat, EtpMatMul).
// Attribute conventions (ints | floats):
#define BT_OP_LIST(BT_OP)                                                                   \
  /* leaves */                                                                              \
  BT_OP(Input, 0)          /* ints [slot] */                                                \
  BT_OP(Param, 0)          /* ints [slot] */                                                \
  BT_OP(State, 0)          /* ints [slot] */                                                \
  BT_OP(Const, 0)          /* floats = values */                                            \
  /* unary element-wise: out shape == in shape */                                           \
  BT_OP(Neg, 1)                                                                             \
  BT_OP(Square, 1)                                                                          \
  BT_OP(Sqrt, 1)                                                                            \
  BT_OP(Abs, 1)            /* d/dx = sign(x), 0 at 0 */                                     \
  BT_OP(Exp, 1)                                                                             \
  BT_OP(Log, 1)                                                                             \
  BT_OP(Log1p, 1)                                                                           \
  BT_OP(Tanh, 1)                                                                            \
  BT_OP(Sigmoid, 1)                                                                         \
  BT_OP(Relu, 1)           /* d/dx = 1 if x > 0 else 0 */                                   \
  BT_OP(LeakyRelu, 1)      /* floats [negativeSlope] */                                     \
  BT_OP(Softplus, 1)       /* log(1 + e^x), computed stably */                              \
  BT_OP(Elu, 1)            /* floats [alpha] */                                             \
  BT_OP(Gelu, 1)           /* exact: x * Phi(x) */                                          \
  BT_OP(Sin, 1)                                                                             \
  BT_OP(Cos, 1)                                                                             \
  BT_OP(Clamp, 1)          /* floats [lo, hi]; d/dx = 1 if lo <= x <= hi else 0 */          \
  BT_OP(Spike, 1)          /* ints [surrogate kind], floats = surrogate params */           \
  BT_OP(StopGradient, 1)   /* identity forward, zero JVP/VJP */                             \
  BT_OP(EtpElementWise, 1) /* identity marker on a Param: an ETP element-wise weight */     \
  /* binary element-wise: all shapes equal */                                               \
  BT_OP(Add, 2)                                                                             \
  BT_OP(Sub, 2)                                                                             \
  BT_OP(Mul, 2)                                                                             \
  BT_OP(Div, 2)                                                                             \
  BT_OP(Pow, 2)            /* a^b; d/db = a^b log a (0 where a <= 0) */                     \
  BT_OP(Minimum, 2)        /* ties split the derivative 1/2, 1/2 */                         \
  BT_OP(Maximum, 2)        /* ties split the derivative 1/2, 1/2 */                         \
  BT_OP(Less, 2)                                                                            \
  BT_OP(LessEqual, 2)                                                                       \
  BT_OP(Greater, 2)                                                                         \
  BT_OP(GreaterEqual, 2)                                                                    \
  BT_OP(Equal, 2)                                                                           \
  BT_OP(NotEqual, 2)                                                                        \
  /* ternary element-wise */                                                                \
  BT_OP(Where, 3)          /* (cond, a, b): cond != 0 ? a : b; no derivative to cond */     \
  /* layout */                                                                              \
  BT_OP(BroadcastTo, 1)    /* numpy rules, in shape right-aligned to out shape */           \
  BT_OP(Reshape, 1)        /* same numel */                                                 \
  BT_OP(Transpose, 1)      /* ints = perm (out dim i = in dim perm[i]) */                   \
  BT_OP(Slice, 1)          /* ints = begin per in axis; out shape = sizes; step 1 */        \
  BT_OP(Concat, -1)        /* ints [axis]; >= 1 inputs of equal rank */                     \
  /* reductions: ints = sorted unique input axes reduced; out shape is the input */        \
  /* shape with those axes removed or kept as 1 (keepdims); numel decides nothing */        \
  BT_OP(ReduceSum, 1)                                                                       \
  BT_OP(ReduceMean, 1)                                                                      \
  BT_OP(ReduceMax, 1)      /* ties split the derivative equally */                          \
  /* normalisers over one axis */                                                           \
  BT_OP(Softmax, 1)        /* ints [axis] */                                                \
  BT_OP(LogSoftmax, 1)     /* ints [axis] */                                                \
  /* products */                                                                            \
  BT_OP(MatMul, 2)         /* a (..., M, K) x b (K, N) -> (..., M, N), or batched */         \
                           /* a (G..., M, K) x b (G..., K, N) with equal leading dims */    \
  BT_OP(EtpMatMul, -1)     /* (x (..., I), W (I, O) [, b (O)]) -> (..., O): x W + b, an */   \
                           /* ETP (trainable-weight) op; inputs are 2 or 3 */

enum class OpCode : int32_t {
#define BT_OP_ENUM(name, arity) name,
  BT_OP_LIST(BT_OP_ENUM)
#undef BT_OP_ENUM
  Count_
};

constexpr int32_t kOpCount = static_cast<int32_t>(OpCode::Count_);
static_assert(kOpCount == 50, "the op list changed: update lib/graph/ops.ts (OP_TABLE) too");

// Arity of each op (-1 = variadic), indexed by OpCode.
constexpr int kOpArity[] = {
#define BT_OP_ARITY(name, arity) arity,
    BT_OP_LIST(BT_OP_ARITY)
#undef BT_OP_ARITY
};

// Name of each op, as in lib/graph/ops.ts, indexed by OpCode.
constexpr const char* kOpNames[] = {
#define BT_OP_NAME(name, arity) #name,
    BT_OP_LIST(BT_OP_NAME)
#undef BT_OP_NAME
};

// Surrogate gradient functions of the Spike op (ints[0]); floats hold the
// parameters in the order listed. Forward is always heaviside(u > 0).
//   Sigmoid            [alpha]                 g'(u) = alpha * s * (1 - s), s = sigmoid(alpha u)
//   Arctan             [alpha]                 g'(u) = (alpha / 2) / (1 + (pi/2 * alpha * u)^2)
//   ReluGrad           [alpha, width]          g'(u) = alpha * max(width - |u|, 0)
//   GaussianGrad       [sigma, alpha]          g'(u) = alpha * N(u; 0, sigma)
//   PiecewiseQuadratic [alpha]                 g'(u) = alpha - alpha^2 |u| if |u| < 1/alpha else 0
//   MultiGaussian      [h, s, sigma, scale]    g'(u) = scale * ((1 + h) N(u; 0, sigma)
//                                                  - h N(u; sigma, s sigma) - h N(u; -sigma, s sigma))
// where N(u; m, sd) is the normal density.
enum class Surrogate : int32_t {
  Sigmoid = 0,
  Arctan = 1,
  ReluGrad = 2,
  GaussianGrad = 3,
  PiecewiseQuadratic = 4,
  MultiGaussian = 5,
  Count_
};

constexpr int kSurrogateParamCount[] = {1, 1, 2, 2, 1, 4};

enum class OutputKind : int32_t { Output = 0, StateNew = 1, Loss = 2 };

enum class DType : int32_t { F32 = 0, F64 = 1 };

}  // namespace bt
