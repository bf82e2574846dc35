// Scalar rules of the element-wise ops: value and partial derivatives.
//
// Each op has a value rule f(x...) and a derivative rule that receives the
// inputs and the already computed output y (several derivatives are cheapest,
// and most accurate, written in terms of y). The conventions at kinks and
// other non-differentiable points are the ones listed in braintrace/ops.h.
// These are the only copies of the formulas: the CPU and CUDA backends both
// reach them through ew_apply (elementwise.h).
#pragma once

#include "braintrace/ops.h"
#include "core/executor.h"
#include "kernels/hd.h"
#include "kernels/scalar_math.h"

namespace bt {

// Forward of the Spike op's surrogate derivative g'(u) (ops.h lists the formulas).
template <typename T>
BT_HD_FORCE T surrogate_grad(int32_t kind, const double* p, T u) {
  using namespace km;
  switch (static_cast<Surrogate>(kind)) {
    case Surrogate::Sigmoid: {
      T a = T(p[0]);
      T s = sigmoid(a * u);
      return a * s * (T(1) - s);
    }
    case Surrogate::Arctan: {
      T a = T(p[0]);
      T z = T(kPi / 2) * a * u;
      return (a / T(2)) / (T(1) + z * z);
    }
    case Surrogate::ReluGrad: {
      T a = T(p[0]), w = T(p[1]);
      return a * max_(w - abs_(u), T(0));
    }
    case Surrogate::GaussianGrad: {
      T sigma = T(p[0]), a = T(p[1]);
      return a * normal_pdf(u, T(0), sigma);
    }
    case Surrogate::PiecewiseQuadratic: {
      T a = T(p[0]);
      T au = abs_(u);
      return au < T(1) / a ? a - a * a * au : T(0);
    }
    case Surrogate::MultiGaussian: {
      T h = T(p[0]), s = T(p[1]), sigma = T(p[2]), scale = T(p[3]);
      return scale * ((T(1) + h) * normal_pdf(u, T(0), sigma) - h * normal_pdf(u, sigma, s * sigma) -
                      h * normal_pdf(u, -sigma, s * sigma));
    }
    default:
      return T(0);  // unreachable: plan validation rejects unknown kinds
  }
}

// ---------------------------------------------------------------------------------------------
// Unary ops: y = f(x)

template <typename T>
BT_HD_FORCE T unary_value(OpCode op, const EwAttrs& at, T x) {
  using namespace km;
  switch (op) {
    case OpCode::Neg: return -x;
    case OpCode::Square: return x * x;
    case OpCode::Sqrt: return sqrt_(x);
    case OpCode::Abs: return abs_(x);
    case OpCode::Exp: return exp_(x);
    case OpCode::Log: return log_(x);
    case OpCode::Log1p: return log1p_(x);
    case OpCode::Tanh: return tanh_(x);
    case OpCode::Sigmoid: return sigmoid(x);
    case OpCode::Relu: return x > T(0) ? x : T(0);
    // Both sides are computed unconditionally (here and below): the same value, and a
    // select the compiler can vectorise (a conditional FP operation it may not if-convert).
    case OpCode::LeakyRelu: {
      const T neg = T(at.f[0]) * x;
      return x > T(0) ? x : neg;
    }
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, no
    // cancellation for very negative x.
    case OpCode::Softplus: return max_(x, T(0)) + log1p_(exp_(-abs_(x)));
    // expm1 keeps alpha (e^x - 1) accurate near 0-.
    case OpCode::Elu: return x > T(0) ? x : T(at.f[0]) * expm1_(x);
    // Exact GELU: x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (not the tanh approximation).
    case OpCode::Gelu: return T(0.5) * x * (T(1) + erf_(x * T(kSqrt1_2)));
    case OpCode::Sin: return sin_(x);
    case OpCode::Cos: return cos_(x);
    case OpCode::Clamp: return min_(max_(x, T(at.f[0])), T(at.f[1]));
    // Heaviside(u > 0): a spike exactly at threshold does not fire.
    case OpCode::Spike: return x > T(0) ? T(1) : T(0);
    case OpCode::StopGradient: return x;
    case OpCode::EtpElementWise: return x;
    default: return T(0);
  }
}

// dy/dx given x and y = f(x).
template <typename T>
BT_HD_FORCE T unary_deriv(OpCode op, const EwAttrs& at, T x, T y) {
  using namespace km;
  switch (op) {
    case OpCode::Neg: return T(-1);
    case OpCode::Square: return T(2) * x;
    // 1 / (2 sqrt x); +inf at 0, as in JAX.
    case OpCode::Sqrt: return T(0.5) / y;
    case OpCode::Abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case OpCode::Exp: return y;
    case OpCode::Log: return T(1) / x;
    case OpCode::Log1p: return T(1) / (T(1) + x);
    case OpCode::Tanh: return T(1) - y * y;
    case OpCode::Sigmoid: return y * (T(1) - y);
    case OpCode::Relu: return x > T(0) ? T(1) : T(0);
    case OpCode::LeakyRelu: return x > T(0) ? T(1) : T(at.f[0]);
    // d softplus = sigmoid(x), in its overflow-free form.
    case OpCode::Softplus: return sigmoid(x);
    // alpha e^x = y + alpha for x <= 0.
    case OpCode::Elu: {
      const T neg = y + T(at.f[0]);
      return x > T(0) ? T(1) : neg;
    }
    // d (x Phi(x)) = Phi(x) + x phi(x).
    case OpCode::Gelu:
      return T(0.5) * (T(1) + erf_(x * T(kSqrt1_2))) + x * T(kInvSqrt2Pi) * exp_(T(-0.5) * x * x);
    case OpCode::Sin: return cos_(x);
    case OpCode::Cos: return -sin_(x);
    case OpCode::Clamp: return (x >= T(at.f[0]) && x <= T(at.f[1])) ? T(1) : T(0);
    // The straight heaviside has zero derivative almost everywhere; the surrogate
    // replaces it in the backward/forward-mode rules only.
    case OpCode::Spike: return surrogate_grad<T>(at.surrogate, at.f, x);
    case OpCode::StopGradient: return T(0);
    case OpCode::EtpElementWise: return T(1);
    default: return T(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Binary ops: y = f(a, b)

template <typename T>
BT_HD_FORCE T binary_value(OpCode op, T a, T b) {
  using namespace km;
  switch (op) {
    case OpCode::Add: return a + b;
    case OpCode::Sub: return a - b;
    case OpCode::Mul: return a * b;
    case OpCode::Div: return a / b;
    case OpCode::Pow: return pow_(a, b);
    case OpCode::Minimum: return a < b ? a : b;
    case OpCode::Maximum: return a > b ? a : b;
    case OpCode::Less: return a < b ? T(1) : T(0);
    case OpCode::LessEqual: return a <= b ? T(1) : T(0);
    case OpCode::Greater: return a > b ? T(1) : T(0);
    case OpCode::GreaterEqual: return a >= b ? T(1) : T(0);
    case OpCode::Equal: return a == b ? T(1) : T(0);
    case OpCode::NotEqual: return a != b ? T(1) : T(0);
    default: return T(0);
  }
}

// True for the comparison ops (0/1 output, zero derivative everywhere).
BT_HD_FORCE constexpr bool is_comparison(OpCode op) {
  return op == OpCode::Less || op == OpCode::LessEqual || op == OpCode::Greater ||
         op == OpCode::GreaterEqual || op == OpCode::Equal || op == OpCode::NotEqual;
}

// Partial derivatives (dy/da, dy/db) given a, b and y = f(a, b).
template <typename T>
BT_HD_FORCE void binary_partials(OpCode op, T a, T b, T y, T* da, T* db) {
  using namespace km;
  switch (op) {
    case OpCode::Add: *da = T(1); *db = T(1); return;
    case OpCode::Sub: *da = T(1); *db = T(-1); return;
    case OpCode::Mul: *da = b; *db = a; return;
    case OpCode::Div: *da = T(1) / b; *db = -y / b; return;
    case OpCode::Pow:
      // d/da = b a^(b-1), taken as 0 when b == 0 (a^0 is constant in a, also at a = 0
      // where the formula would give 0 * inf). d/db = a^b log a, 0 where a <= 0
      // (log undefined; the real power is only defined there for integer b).
      *da = b == T(0) ? T(0) : b * pow_(a, b - T(1));
      *db = a > T(0) ? y * log_(a) : T(0);
      return;
    // Ties split the derivative 1/2, 1/2: the mean of the one-sided derivatives,
    // and what makes min(x, x) = x have derivative 1.
    case OpCode::Minimum:
      if (a < b) { *da = T(1); *db = T(0); }
      else if (b < a) { *da = T(0); *db = T(1); }
      else { *da = T(0.5); *db = T(0.5); }
      return;
    case OpCode::Maximum:
      if (a > b) { *da = T(1); *db = T(0); }
      else if (b > a) { *da = T(0); *db = T(1); }
      else { *da = T(0.5); *db = T(0.5); }
      return;
    default:  // comparisons: piecewise constant
      *da = T(0); *db = T(0);
      return;
  }
}

// Which values the derivative rules above read (host only: BPTT's tape layout, see
// core/session_impl.h): input k of op (false where the rule ignores it) and the output y.
// Comparisons and StopGradient have zero derivatives (their VJP never runs). Change these
// together with unary_deriv / binary_partials: a rule that starts reading a value the table
// says it ignores would read an untaped (stale) value in BPTT.
inline bool ew_vjp_reads_input(OpCode op, int k) {
  switch (op) {
    case OpCode::Neg: case OpCode::Sqrt: case OpCode::Exp: case OpCode::Tanh: case OpCode::Sigmoid:
    case OpCode::StopGradient: case OpCode::EtpElementWise:
    case OpCode::Add: case OpCode::Sub:
    case OpCode::Less: case OpCode::LessEqual: case OpCode::Greater: case OpCode::GreaterEqual:
    case OpCode::Equal: case OpCode::NotEqual:
      return false;
    case OpCode::Div: return k == 1;    // da = 1 / b, db = -y / b
    case OpCode::Where: return k == 0;  // the condition selects the branch
    default: return true;  // Square, Abs, Log, ..., Spike, Mul, Pow, Minimum, Maximum
  }
}
inline bool ew_vjp_reads_output(OpCode op) {
  return op == OpCode::Sqrt || op == OpCode::Exp || op == OpCode::Tanh || op == OpCode::Sigmoid ||
         op == OpCode::Elu || op == OpCode::Div || op == OpCode::Pow;
}

}  // namespace bt
