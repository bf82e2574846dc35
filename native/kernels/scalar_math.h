// Scalar math for the shared host+device kernel bodies.
//
// One overload per dtype that forwards to the C function of that precision
// (expf / exp, ...). These C functions exist both in the host C library and in
// CUDA device code, so the same call compiles under g++ and nvcc; std:: overloads
// are avoided because some are host-only under nvcc, and the float overloads
// keep float32 arithmetic in float32 on both sides.
#pragma once

#include <math.h>

#include "kernels/hd.h"

namespace bt {
namespace km {

BT_HD float exp_(float x) { return ::expf(x); }
BT_HD double exp_(double x) { return ::exp(x); }
BT_HD float expm1_(float x) { return ::expm1f(x); }
BT_HD double expm1_(double x) { return ::expm1(x); }
BT_HD float log_(float x) { return ::logf(x); }
BT_HD double log_(double x) { return ::log(x); }
BT_HD float log1p_(float x) { return ::log1pf(x); }
BT_HD double log1p_(double x) { return ::log1p(x); }
BT_HD float sqrt_(float x) { return ::sqrtf(x); }
BT_HD double sqrt_(double x) { return ::sqrt(x); }
BT_HD float tanh_(float x) { return ::tanhf(x); }
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

// Logistic function without overflow: exp is only ever taken of a non-positive number.
template <typename T>
BT_HD T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + exp_(-x));
  T e = exp_(x);
  return e / (T(1) + e);
}

// Normal density N(u; m, sd).
template <typename T>
BT_HD T normal_pdf(T u, T m, T sd) {
  T z = (u - m) / sd;
  return T(kInvSqrt2Pi) / sd * exp_(T(-0.5) * z * z);
}

}  // namespace km
}  // namespace bt
