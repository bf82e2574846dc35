// Softmax and log-softmax along one axis, forward / JVP / VJP.
//
// The input is seen as (outer, L, inner) around the axis; one "line" is the L values
// x[o * L * inner + j * inner + i], j = 0..L-1, for a fixed (o, i). Each function below
// handles one line (stride = inner) and is host+device; the caller loops over
// outer * inner lines.
//   softmax:     y = e^(x - max) / sum e^(x - max)      (max subtracted: no overflow)
//     JVP  dy = y * (dx - sum(y dx))      VJP  gx += y * (g - sum(g y))
//   logsoftmax:  y = x - max - log sum e^(x - max)
//     JVP  dy = dx - sum(softmax dx)      VJP  gx += g - softmax * sum(g),  softmax = e^y
// Line sums are accumulated in double, also for float32 data.
#pragma once

#include <stdint.h>

#include "kernels/hd.h"
#include "kernels/scalar_math.h"

namespace bt {

template <typename T>
BT_HD void softmax_line_forward(bool log_softmax, const T* x, T* y, int64_t L, int64_t stride) {
  T m = x[0];
  for (int64_t j = 1; j < L; ++j) m = x[j * stride] > m ? x[j * stride] : m;
  double s = 0;
  for (int64_t j = 0; j < L; ++j) s += static_cast<double>(km::exp_(x[j * stride] - m));
  if (log_softmax) {
    const T lse = m + static_cast<T>(km::log_(s));
    for (int64_t j = 0; j < L; ++j) y[j * stride] = x[j * stride] - lse;
  } else {
    const double inv = 1.0 / s;
    for (int64_t j = 0; j < L; ++j)
      y[j * stride] = static_cast<T>(static_cast<double>(km::exp_(x[j * stride] - m)) * inv);
  }
}

// y is the forward output of the line.
template <typename T>
BT_HD void softmax_line_jvp(bool log_softmax, const T* y, const T* dx, T* dy, int64_t L,
                            int64_t stride) {
  double s = 0;
  for (int64_t j = 0; j < L; ++j) {
    const T p = log_softmax ? km::exp_(y[j * stride]) : y[j * stride];
    s += static_cast<double>(p) * static_cast<double>(dx[j * stride]);
  }
  const T st = static_cast<T>(s);
  for (int64_t j = 0; j < L; ++j) {
    const int64_t k = j * stride;
    dy[k] = log_softmax ? dx[k] - st : y[k] * (dx[k] - st);
  }
}

template <typename T>
BT_HD void softmax_line_vjp(bool log_softmax, const T* y, const T* g, T* gx, int64_t L,
                            int64_t stride) {
  double s = 0;
  for (int64_t j = 0; j < L; ++j) {
    const int64_t k = j * stride;
    s += log_softmax ? static_cast<double>(g[k])
                     : static_cast<double>(g[k]) * static_cast<double>(y[k]);
  }
  const T st = static_cast<T>(s);
  for (int64_t j = 0; j < L; ++j) {
    const int64_t k = j * stride;
    gx[k] += log_softmax ? g[k] - km::exp_(y[k]) * st : y[k] * (g[k] - st);
  }
}

}  // namespace bt
