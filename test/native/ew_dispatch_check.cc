// Every loop the CPU driver selects for an element-wise task (cpu/ew_dispatch.h: ew_select)
// gives the same bytes (NaNs: both NaN) as the generic per-element body ew_apply, for every element-wise op,
// every mode, every presence of the optional pointers (primal output, tangent / cotangent
// slots), every Spike surrogate, float32 and float64, on inputs with signed zeros,
// infinities, NaNs, kinks, ties and ordinary values, and over unaligned ranges (so the
// vectorised bodies and their scalar epilogues both run). Prints "ok <loops>" or the first
// mismatch. Both loop tables are checked: the portable one and, where the CPU has AVX2,
// the AVX2 one (ew_select_isa). Built and run by test/fusion.test.ts (no addon needed).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/ew_dispatch.h"

namespace {

using namespace bt;

constexpr int64_t kN = 203;  // odd: vector bodies plus an epilogue

template <typename T>
std::vector<T> values(int which) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T special[] = {T(0), -T(0), T(1), T(-1), T(0.5), T(-0.5), T(2), T(-3), inf, -inf, nan, T(1e-30), T(-1e-30),
                       T(20), T(-20), T(0.3), T(1.25)};
  const int ns = static_cast<int>(sizeof(special) / sizeof(special[0]));
  std::vector<T> v(kN);
  uint32_t a = 0x9e3779b9u * static_cast<uint32_t>(which + 1);
  for (int64_t i = 0; i < kN; ++i) {
    a = a * 1664525u + 1013904223u;
    // Every third element a special value (at different positions per array, so that
    // pairs like (x, x) ties and (inf, nan) appear), the others in [-3, 3).
    if ((i + which) % 3 == 0) v[i] = special[(a >> 8) % static_cast<uint32_t>(ns)];
    else v[i] = T(static_cast<double>(a >> 8) / double(1u << 24) * 6.0 - 3.0);
  }
  if (which == 1) v[5] = v[4] = T(0.75);  // a tie inside a range
  return v;
}

// The same bytes, or both NaN: the sign and payload of a NaN produced by arithmetic are
// not specified by IEEE 754 and differ between two compilations of one expression (GCC
// folds x * -1 into -x in one context and not in another), so they are not compared.
template <typename T>
bool same_value(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (a != a && b != b);
}

int loops = 0;
EwIsa g_isa = EwIsa::Portable;  // the table under test

template <typename T>
EwLoop<T> select_loop(const EwTask<T>& task) {
  return g_isa == EwIsa::Avx2 ? ew_select_isa<T, EwIsa::Avx2>(task) : ew_select_isa<T, EwIsa::Portable>(task);
}

// Runs `task` over [b, e) with the selected loop and with ew_loop_any, on copies of every
// writable array, and compares.
template <typename T>
bool check(const char* dtype, EwTask<T> task, std::vector<std::vector<T>>& writable, const char* what) {
  const EwLoop<T> loop = select_loop(task);
  if (loop == nullptr) {
    std::printf("%s %s: ew_select returned null\n", dtype, what);
    return false;
  }
  ++loops;
  std::vector<std::vector<T>> ref = writable;
  // Pointers of the writable arrays in `task` point into `writable`; build the reference
  // task pointing into `ref`.
  EwTask<T> rt = task;
  auto remap = [&](T* p) -> T* {
    for (size_t k = 0; k < writable.size(); ++k)
      if (p == writable[k].data()) return ref[k].data();
    return p;
  };
  rt.result = remap(task.result);
  for (int k = 0; k < 3; ++k) rt.gin[k] = remap(task.gin[k]);
  const int64_t cuts[][2] = {{0, kN}, {1, 7}, {3, kN - 2}};
  for (const auto& c : cuts) {
    loop(task, c[0], c[1]);
    ew_loop_any(rt, c[0], c[1]);
  }
  for (size_t k = 0; k < writable.size(); ++k)
    for (int64_t i = 0; i < kN; ++i)
      if (!same_value(writable[k][i], ref[k][i])) {
        std::printf("%s %s: array %zu element %lld: %.17g vs %.17g\n", dtype, what, k, static_cast<long long>(i),
                    static_cast<double>(writable[k][i]), static_cast<double>(ref[k][i]));
        return false;
      }
  return true;
}

template <typename T>
bool run_all(const char* dtype) {
  const std::vector<T> in0 = values<T>(0), in1 = values<T>(1), in2 = values<T>(2);
  const std::vector<T> tin0 = values<T>(3), tin1 = values<T>(4), tin2 = values<T>(5), gout = values<T>(6);
  for (int c = 0; c < kOpCount; ++c) {
    const OpCode op = static_cast<OpCode>(c);
    const int arity = ew_arity(op);
    if (arity == 0) continue;
    const int nsg = op == OpCode::Spike ? 7 : 1;  // 6 surrogates and an unknown kind
    for (int sg = 0; sg < nsg; ++sg) {
      EwTask<T> base;
      base.op = op;
      base.n = kN;
      base.attrs.surrogate = sg;
      const double f[4] = {op == OpCode::Clamp ? -1.0 : 0.35, op == OpCode::Clamp ? 1.5 : 0.8, 0.6, 1.1};
      for (int k = 0; k < 4; ++k) base.attrs.f[k] = f[k];
      base.in[0] = in0.data();
      if (arity >= 2) base.in[1] = in1.data();
      if (arity >= 3) base.in[2] = in2.data();
      // The primal output, from the forward loop itself (as the interpreter stores it).
      std::vector<T> out(kN);
      {
        EwTask<T> fw = base;
        fw.mode = EwMode::Forward;
        fw.result = out.data();
        std::vector<std::vector<T>> w = {std::vector<T>(kN, T(7))};
        fw.result = w[0].data();
        char what[96];
        std::snprintf(what, sizeof what, "%s forward sg %d", kOpNames[c], sg);
        if (!check<T>(dtype, fw, w, what)) return false;
        out = w[0];
      }
      for (int mode = 1; mode <= 2; ++mode) {
        for (uint32_t mask = 0; mask < 16; ++mask) {
          EwTask<T> t = base;
          t.mode = static_cast<EwMode>(mode);
          t.out = (mask & kEwOut) ? out.data() : nullptr;
          std::vector<std::vector<T>> w;
          if (mode == 1) {
            const T* tins[3] = {tin0.data(), tin1.data(), tin2.data()};
            for (int k = 0; k < 3; ++k) t.tin[k] = (mask & (kEwSlot0 << k)) ? tins[k] : nullptr;
            w.push_back(std::vector<T>(kN, T(7)));
            t.result = w[0].data();
          } else {
            t.gout = gout.data();
            w.push_back(values<T>(7));
            w.push_back(values<T>(8));
            w.push_back(values<T>(9));
            for (int k = 0; k < 3; ++k) t.gin[k] = (mask & (kEwSlot0 << k)) ? w[static_cast<size_t>(k)].data() : nullptr;
          }
          char what[96];
          std::snprintf(what, sizeof what, "%s %s mask %u sg %d", kOpNames[c], mode == 1 ? "jvp" : "vjp", mask, sg);
          if (!check<T>(dtype, t, w, what)) return false;
        }
      }
      // Vjp into one buffer from two slots (Mul(x, x), Where(c, x, x)).
      if (arity >= 2) {
        EwTask<T> t = base;
        t.mode = EwMode::Vjp;
        t.out = out.data();
        t.gout = gout.data();
        std::vector<std::vector<T>> w = {values<T>(10)};
        t.gin[arity - 2] = w[0].data();
        t.gin[arity - 1] = w[0].data();
        char what[96];
        std::snprintf(what, sizeof what, "%s vjp aliased cotangents", kOpNames[c]);
        if (!check<T>(dtype, t, w, what)) return false;
      }
    }
  }
  return true;
}

}  // namespace

int main() {
  if (!run_all<float>("float32")) return 1;
  if (!run_all<double>("float64")) return 1;
  if (ew_avx2_supported()) {
    // The AVX2 table is another set of functions (not the portable loops again).
    EwTask<float> t;
    t.op = OpCode::Tanh;
    t.mode = EwMode::Forward;
    if (ew_select_isa<float, EwIsa::Avx2>(t) == ew_select_isa<float, EwIsa::Portable>(t)) {
      std::printf("the AVX2 table returned a portable loop\n");
      return 1;
    }
    g_isa = EwIsa::Avx2;
    if (!run_all<float>("float32 avx2")) return 1;
    if (!run_all<double>("float64 avx2")) return 1;
  }
  std::printf("ok %d loops\n", loops);
  return 0;
}
