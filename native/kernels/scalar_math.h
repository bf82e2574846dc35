// Scalar math for the shared host+device kernel bodies.
//
// One overload per dtype that forwards to the C function of that precision
// (expf / exp, ...). These C functions exist both in the host C library and in
// CUDA device code, so the same call compiles under g++ and nvcc; std:: overloads
// are avoided because some are host-only under nvcc, and the float overloads
// keep float32 arithmetic in float32 on both sides.
//
// Exception: float32 exp_, expm1_ and tanh_ (and so sigmoid) are our own branch-free
// implementations (range reduction + polynomial, selects instead of branches, always
// inlined), so that an element-wise loop over them vectorises; libm's are opaque calls.
// Their error is <= 2 ulp against the float64 libm value over every float32 input,
// with libm's special values (+-inf, NaN, overflow to inf, underflow to 0 through the
// denormals, -0 kept by expm1 and tanh): test/native/math_check.cc sweeps all 2^32
// inputs (test/math.test.ts). float64 keeps libm.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/hd.h"

namespace bt {
namespace km {

// The bits of a float and back (memcpy: defined behaviour, folded to a register move
// by g++ and nvcc, and vectorisable).
BT_HD_FORCE uint32_t f2u_(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
BT_HD_FORCE float u2f_(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

// c ? a : b on the bits: both values are computed whatever c is, so a loop over a function
// built from these selects is straight-line code that GCC vectorises (with a ternary it may
// sink a value's computation into a branch, and under the default -ftrapping-math it then
// will not if-convert the branch: "control flow in loop").
BT_HD_FORCE float sel_(bool c, float a, float b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return u2f_((f2u_(a) & m) | (f2u_(b) & ~m));
}

namespace detail {

// 1.5 * 2^23: x + kRound - kRound rounds |x| < 2^22 to an integer (round to nearest even)
// with no float-to-int conversion, and the low bits of x + kRound are that integer.
constexpr float kRound = 12582912.0f;
constexpr float kLog2e = 1.44269504088896341f;
// ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 9 significant bits, so n * kLn2Hi is exact for |n| < 2^15.
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;

// 2^n as a float for an integer-valued float n in [-126, 127] (the exponent field).
BT_HD_FORCE float pow2i_(float n) { return u2f_((f2u_(n + kRound) - f2u_(kRound) + 127u) << 23); }

// (expm1(r) - r) / r^2 for |r| <= 0.347 (minimax, relative error ~1e-9).
BT_HD_FORCE float exp_poly_(float r) {
  float p = 0x1.9f046ap-13f;
  p = p * r + 0x1.6d9458p-10f;
  p = p * r + 0x1.11127ep-7f;
  p = p * r + 0x1.555486p-5f;
  p = p * r + 0x1.555554p-3f;
  p = p * r + 0.5f;
  return p;
}

// (expm1(r) - r) / r^2 for |r| <= 0.70 (minimax, relative error ~7e-9).
BT_HD_FORCE float expm1_poly_(float r) {
  float p = 0x1.9fbfb2p-16f;
  p = p * r + 0x1.a58a1ep-13f;
  p = p * r + 0x1.6c217ap-10f;
  p = p * r + 0x1.110aeep-7f;
  p = p * r + 0x1.55553cp-5f;
  p = p * r + 0x1.55555ep-3f;
  p = p * r + 0.5f;
  return p;
}

}  // namespace detail

// e^x: x = n ln2 + r, |r| <= ln2 / 2, e^x = 2^n (1 + r + r^2 P(r)). The scale is applied as
// two halves 2^(n/2) 2^(n - n/2), so that n in [-150, 128] needs no special case: the
// first product is exact, the second rounds once, to a denormal, to 0 or to inf.
// e^x as hi + *lo: hi is exp_(x), *lo the rounding error of its last addition 1 + u (scaled
// like hi), so that hi + *lo is e^x to about 0.1 ulp of hi (for sigmoid's quotient).
BT_HD_FORCE float exp_parts_(float x, float* lo) {
  using namespace detail;
  float xc = sel_(x > 89.0f, 89.0f, x);  // e^89 > FLT_MAX; NaN passes both clamps
  xc = sel_(xc < -104.0f, -104.0f, xc);  // e^-104 < 2^-150 (rounds to 0)
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  const float u = r + (r * r) * exp_poly_(r);
  const float p = 1.0f + u;
  const float pl = u - (p - 1.0f);  // exact (Fast2Sum: |u| < 1)
  const float h = ((n * 0.5f + kRound) - kRound);  // n / 2 rounded to an integer
  const float s1 = pow2i_(h), s2 = pow2i_(n - h);
  *lo = (pl * s1) * s2;
  const float y = (p * s1) * s2;
  return sel_(x != x, x, y);  // NaN in, the same NaN out
}
BT_HD_FORCE float exp_(float x) {
  float lo;
  return exp_parts_(x, &lo);
}
BT_HD double exp_(double x) { return ::exp(x); }

// e^x - 1: for |x| < 0.69 the polynomial x + x^2 P(x) directly (no cancellation); else
// x = n ln2 + r as in exp_ and e^x - 1 = 2 (2^(n-1) u + (2^(n-1) - 1/2)) with u = e^r - 1
// (2^(n-1) - 1/2 is exact for the n where it matters; the factor 2 lets n = 128 overflow
// to inf). Above that threshold r >= 0 for n = 1 and r <= 0 for n = -1, so the sum never
// cancels badly. |x| < 2^-25 returns x (keeps -0 and denormals).
BT_HD_FORCE float expm1_(float x) {
  using namespace detail;
  float xc = sel_(x > 89.0f, 89.0f, x);
  xc = sel_(xc < -40.0f, -40.0f, xc);  // e^-40 - 1 rounds to -1
  const float ax = sel_(xc < 0.0f, -xc, xc);
  const float nr = (xc * kLog2e + kRound) - kRound;
  const float n = sel_(ax < 0.69f, 0.0f, nr);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  const float u = r + (r * r) * expm1_poly_(r);
  const float s = pow2i_(n - 1.0f);
  const float y = 2.0f * (s * u + (s - 0.5f));
  const float y0 = sel_(ax < 0x1p-25f, x, y);
  return sel_(x != x, x, y0);
}
BT_HD double expm1_(double x) { return ::expm1(x); }
BT_HD float log_(float x) { return ::logf(x); }
BT_HD double log_(double x) { return ::log(x); }
BT_HD float log1p_(float x) { return ::log1pf(x); }
BT_HD double log1p_(double x) { return ::log1p(x); }
BT_HD float sqrt_(float x) { return ::sqrtf(x); }
BT_HD double sqrt_(double x) { return ::sqrt(x); }
// tanh x: for |x| < 0.625 the odd polynomial x + x^3 P(x^2) (accurate at small |x|, keeps
// -0 and denormals); else sign(x) (1 - 2 / (e^(2|x|) + 1)), which rounds to +-1 for large |x|
// (e^(2|x|) = inf gives exactly 1).
BT_HD_FORCE float tanh_(float x) {
  const float ax = sel_(x < 0.0f, -x, x);
  const float z = x * x;
  float p = 0x1.18e10ap-9f;
  p = p * z - 0x1.0bf4bep-7f;
  p = p * z + 0x1.638b4ap-6f;
  p = p * z - 0x1.b9ee8ep-5f;
  p = p * z + 0x1.111066p-3f;
  p = p * z - 0x1.555554p-2f;
  const float small = x + (x * z) * p;
  const float big = 1.0f - 2.0f / (exp_(2.0f * ax) + 1.0f);
  const float sbig = sel_(x < 0.0f, -big, big);
  const float y = sel_(ax < 0.625f, small, sbig);  // NaN: the big side, exp_(NaN) = NaN
  return sel_(ax < 0x1p-12f, x, y);                // tanh x = x in float there; keeps -0
}
BT_HD double tanh_(double x) { return ::tanh(x); }
BT_HD float sin_(float x) { return ::sinf(x); }
BT_HD double sin_(double x) { return ::sin(x); }
BT_HD float cos_(float x) { return ::cosf(x); }
BT_HD double cos_(double x) { return ::cos(x); }
BT_HD float erf_(float x) { return ::erff(x); }
BT_HD double erf_(double x) { return ::erf(x); }
BT_HD float pow_(float a, float b) { return ::powf(a, b); }
BT_HD double pow_(double a, double b) { return ::pow(a, b); }
BT_HD float abs_(float x) { return ::fabsf(x); }
BT_HD double abs_(double x) { return ::fabs(x); }

template <typename T>
BT_HD T max_(T a, T b) { return a > b ? a : b; }
template <typename T>
BT_HD T min_(T a, T b) { return a < b ? a : b; }

// Constants as long literals; converted to T at the use site.
constexpr double kPi = 3.14159265358979323846;
constexpr double kSqrt1_2 = 0.70710678118654752440;    // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)

// Logistic function without overflow: exp is only ever taken of a non-positive number,
// e = e^-|x|, 1 / (1 + e) for x >= 0 and e / (1 + e) below (the numerator a select, so
// the function is branch-free and vectorises where exp_ does).
template <typename T>
BT_HD_FORCE T sigmoid(T x) {
  const T e = exp_(x >= T(0) ? -x : x);
  const T num = x >= T(0) ? T(1) : e;
  return num / (T(1) + e);
}
// float32: the same quotient with e^-|x| = e + el (exp_parts_) and the rounding error err of
// d = 1 + e carried as first-order corrections, (nh + nl) / (d + err) ~ q + (nl - q err) / d
// with q = nh / d. Without them the error reaches 2.3 ulp (exp_'s, the sum's and the
// quotient's add up, and e / (1 + e) can fall a binade below e).
template <>
BT_HD_FORCE float sigmoid<float>(float x) {
  float el;
  const bool pos = x >= 0.0f;
  const float e = exp_parts_(sel_(pos, -x, x), &el);
  const float nh = sel_(pos, 1.0f, e);
  const float nl = sel_(pos, 0.0f, el);
  const float d = 1.0f + e;
  const float err = ((1.0f - d) + e) + el;  // 1 + e + el = d + err
  const float q = nh / d;
  const float y = q + (nl - q * err) / d;  // (nh + nl) / (d + err) to first order
  return sel_(x != x, x, y);
}

// Normal density N(u; m, sd).
template <typename T>
BT_HD_FORCE T normal_pdf(T u, T m, T sd) {
  T z = (u - m) / sd;
  return T(kInvSqrt2Pi) / sd * exp_(T(-0.5) * z * z);
}

}  // namespace km
}  // namespace bt
