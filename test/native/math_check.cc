// Accuracy of the float32 math of the shared kernels (kernels/scalar_math.h: km::exp_,
// expm1_, tanh_, sigmoid) against the float64 libm value, over float32 inputs: every
// bit pattern with stride 1 (exhaustive, 2^32 inputs), or every `stride`-th one.
//
//   math_check <function|all> [stride] [threads]
//
// A result passes when it is NaN exactly where the reference is, +-inf exactly where the
// reference rounds to +-inf, has the reference's sign at zero (-0 stays -0), and is
// within 2 ulp of the float64 reference otherwise (ulp: the float32 spacing at the
// reference's magnitude, 2^-149 in the denormal range). Prints one line per function,
// "<name> max_ulp <e> at <input bits> exact <fraction> ok|FAIL ...", and exits non-zero
// when any function fails. The functions named bad_* are deliberately wrong variants
// (the negative controls of test/math.test.ts: the check must reject them).
// Built and run by test/math.test.ts (no addon needed). Exhaustive sweep (stride 1) of the
// current implementations, max ulp: exp 0.966, expm1 1.402, tanh 1.330, sigmoid 1.462, no
// wrong special value.
#include <math.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernels/scalar_math.h"

namespace {

using Fn = float (*)(float);
using Ref = double (*)(double);

struct Case {
  const char* name;
  Fn f;
  Ref ref;
};

float f_exp(float x) { return bt::km::exp_(x); }
float f_expm1(float x) { return bt::km::expm1_(x); }
float f_tanh(float x) { return bt::km::tanh_(x); }
float f_sigmoid(float x) { return bt::km::sigmoid(x); }

double r_exp(double x) { return ::exp(x); }
double r_expm1(double x) { return ::expm1(x); }
double r_tanh(double x) { return ::tanh(x); }
double r_sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + ::exp(-x)) : ::exp(x) / (1.0 + ::exp(x)); }

// Negative controls. tanh by the textbook formula everywhere (cancellation at small |x|);
// exp off by 3 ulp; expm1 losing the sign of -0 (and of nothing else).
float bad_tanh(float x) {
  const float e = bt::km::exp_(2.0f * x);
  return 1.0f - 2.0f / (e + 1.0f);
}
float bad_exp(float x) { return bt::km::exp_(x) * (1.0f + 0x1p-22f + 0x1p-23f); }
float bad_expm1(float x) { return bt::km::expm1_(x) + 0.0f; }

const Case kCases[] = {
    {"exp", f_exp, r_exp},           {"expm1", f_expm1, r_expm1},     {"tanh", f_tanh, r_tanh},
    {"sigmoid", f_sigmoid, r_sigmoid}, {"bad_tanh", bad_tanh, r_tanh}, {"bad_exp", bad_exp, r_exp},
    {"bad_expm1", bad_expm1, r_expm1},
};

struct Result {
  double max_ulp = 0;
  uint32_t worst = 0;
  uint64_t exact = 0, count = 0, special_fail = 0;
  uint32_t first_special = 0;
};

// The error of `got` in ulp of the reference; a negative value marks a wrong special value.
double ulp_error(float got, double ref) {
  if (ref != ref) return got != got ? 0.0 : -1.0;
  if (got != got) return -1.0;
  const float rf = static_cast<float>(ref);
  if (isinf(rf)) return got == rf ? 0.0 : -1.0;
  if (isinf(got)) return -1.0;
  if (ref == 0.0) {
    if (got != 0.0f) return fabs(static_cast<double>(got)) / 0x1p-149;
    return signbit(got) == signbit(ref) ? 0.0 : -1.0;
  }
  if (got == 0.0f && signbit(got) != signbit(ref)) return -1.0;
  int e = 0;
  frexp(ref, &e);  // |ref| in [2^(e-1), 2^e)
  const int exp2 = e - 1 < -126 ? -126 : e - 1;
  const double ulp = ldexp(1.0, exp2 - 23);
  return fabs(static_cast<double>(got) - ref) / ulp;
}

Result sweep(const Case& c, uint64_t stride, int threads) {
  std::vector<Result> part(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  const uint64_t total = 1ull << 32;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Result r;
      for (uint64_t b = static_cast<uint64_t>(t) * stride; b < total; b += stride * static_cast<uint64_t>(threads)) {
        const uint32_t bits = static_cast<uint32_t>(b);
        float x;
        std::memcpy(&x, &bits, sizeof x);
        const float got = c.f(x);
        const double err = ulp_error(got, c.ref(static_cast<double>(x)));
        ++r.count;
        if (err < 0) {
          if (r.special_fail++ == 0) r.first_special = bits;
          continue;
        }
        if (err == 0 || static_cast<double>(got) == static_cast<double>(static_cast<float>(c.ref(x)))) ++r.exact;
        if (err > r.max_ulp) {
          r.max_ulp = err;
          r.worst = bits;
        }
      }
      part[static_cast<size_t>(t)] = r;
    });
  }
  for (auto& th : pool) th.join();
  Result all;
  for (const Result& r : part) {
    all.count += r.count;
    all.exact += r.exact;
    if (r.special_fail > 0 && all.special_fail == 0) all.first_special = r.first_special;
    all.special_fail += r.special_fail;
    if (r.max_ulp > all.max_ulp) {
      all.max_ulp = r.max_ulp;
      all.worst = r.worst;
    }
  }
  return all;
}

// A few inputs every run checks whatever the stride (the special values and the edges
// of the ranges), with the same rule.
const float kSpecial[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 0x1p-149f, -0x1p-149f, 0x1p-126f,
                          -0x1p-126f, 0x1p-25f, -0x1p-25f, 0.625f, -0.625f, 0.69f, -0.69f, 88.72f, 88.73f,
                          89.0f, 100.0f, -87.0f, -103.0f, -104.0f, -110.0f, 1e30f, -1e30f, 3.4e38f, -3.4e38f};

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  const uint64_t stride = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  if (stride == 0 || threads <= 0) {
    std::printf("usage: math_check <function|all> [stride >= 1] [threads >= 1]\n");
    return 2;
  }
  bool ok = true, any = false;
  for (const Case& c : kCases) {
    const bool bad = std::strncmp(c.name, "bad_", 4) == 0;
    if (which == "all" ? bad : which != c.name) continue;
    any = true;
    Result r = sweep(c, stride, threads);
    for (float x : kSpecial) {
      const double err = ulp_error(c.f(x), c.ref(static_cast<double>(x)));
      uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      if (err < 0) {
        if (r.special_fail++ == 0) r.first_special = bits;
      } else if (err > r.max_ulp) {
        r.max_ulp = err;
        r.worst = bits;
      }
    }
    const bool pass = r.special_fail == 0 && r.max_ulp <= 2.0;
    ok = ok && pass;
    float w;
    std::memcpy(&w, &r.worst, sizeof w);
    std::printf("%s max_ulp %.3f at 0x%08x (%.9g) exact %.6f inputs %llu %s", c.name, r.max_ulp, r.worst,
                static_cast<double>(w), r.count ? static_cast<double>(r.exact) / static_cast<double>(r.count) : 0.0,
                static_cast<unsigned long long>(r.count), pass ? "ok" : "FAIL");
    if (r.special_fail > 0) {
      float s;
      std::memcpy(&s, &r.first_special, sizeof s);
      std::printf(" special_fail %llu first 0x%08x (%.9g)", static_cast<unsigned long long>(r.special_fail),
                  r.first_special, static_cast<double>(s));
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  if (!any) {
    std::printf("unknown function %s\n", which.c_str());
    return 2;
  }
  return ok ? 0 : 1;
}
