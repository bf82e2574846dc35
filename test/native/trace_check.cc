// The specialised trace loops of the CPU driver give the same bytes (NaNs: both NaN) as the
// generic per-position bodies of kernels/trace.h, and the jacobian_read copy loops
// (cpu/jacobian_read.h) write what JacobianReadTask defines:
//  - cpu_vec_trace (the driver: thread pool, column tiles or, for an update without g, one
//    flat range of positions, the AVX2 clone where the CPU has
//    AVX2) and vec_trace_row called directly (this file's baseline -O3 build) against
//    vec_trace_col, for S = 1..5, with and without D, g and update, alpha / beta 1 and not 1;
//  - cpu_pp_project / pp_project_range against pp_project (S = 1..5, accumulate or not),
//    cpu_pp_input against pp_input_update, cpu_pp_vec_grad / pp_vec_cols against pp_vec_col;
//  - jacobian_read_member against the task's formula, for S = 1..6, every member layout of
//    widths summing to S, Df rows and every Hid2Hid column, null members, sub-ranges;
// on inputs with signed zeros, infinities, NaNs and ordinary values, in float32 and float64.
// Two negative controls must differ from the reference (so the comparison can fail): the
// contraction summed per position before it is added to the column accumulator, and the
// S == 1 update started from T(0) (0 + D e turns -0 into +0).
// Prints "ok <checks> checks" or the first mismatch. Built (with cpu/trace_cpu.cc and the
// thread pool / GEMM sources it links) and run by test/trace-kernels.test.ts; no addon.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/jacobian_read.h"
#include "cpu/trace_cpu.h"

namespace {

using namespace bt;

int checks = 0;

template <typename T>
std::vector<T> values(int64_t n, int which) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T special[] = {T(0), -T(0), T(0), -T(0), T(1), T(-1), T(0.5), T(-0.5), T(2), T(1e-30), T(-1e-30), T(0.3)};
  const int ns = static_cast<int>(sizeof(special) / sizeof(special[0]));
  std::vector<T> v(static_cast<size_t>(n));
  uint32_t a = 0x9e3779b9u * static_cast<uint32_t>(which + 1);
  for (int64_t i = 0; i < n; ++i) {
    a = a * 1664525u + 1013904223u;
    const uint32_t r = a >> 8;
    if (r % 97 == 0) v[i] = (r / 97) % 2 ? inf : nan;  // rare: most positions stay finite
    else if ((r >> 4) % 4 == 0) v[i] = special[(r / 7) % static_cast<uint32_t>(ns)];  // about 1 in 4
    else v[i] = T(static_cast<double>(r) / double(1u << 24) * 6.0 - 3.0);
  }
  return v;
}

template <typename T>
bool same_value(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (a != a && b != b);
}

template <typename T>
bool same(const char* what, const std::vector<T>& got, const std::vector<T>& want) {
  ++checks;
  for (size_t i = 0; i < want.size(); ++i)
    if (!same_value(got[i], want[i])) {
      std::printf("%s: element %zu: %.17g, expected %.17g\n", what, i, double(got[i]), double(want[i]));
      return false;
    }
  return true;
}

// Bytes differ somewhere (for the negative controls).
template <typename T>
bool differs(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_value(a[i], b[i])) return true;
  return false;
}

template <typename T>
const char* dtype() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// The generic reference: vec_trace_col for every k (kernels/trace.h).
template <typename T>
void vec_reference(const VecTraceTask<T>& t) {
  std::vector<T> tmp(static_cast<size_t>(t.S));
  for (int64_t k = 0; k < t.O; ++k) vec_trace_col(t, k, tmp.data());
}

// vec_trace_row over whole batch rows (all k at once), then dp (this file's build).
template <typename T>
void vec_rows_direct(const VecTraceTask<T>& t) {
  std::vector<T> tmp(static_cast<size_t>(t.S)), acc(static_cast<size_t>(t.O), T(0));
  for (int64_t b = 0; b < t.B; ++b) vec_trace_row(t, b, 0, t.O, acc.data(), tmp.data());
  if (t.g)
    for (int64_t k = 0; k < t.O; ++k) t.dp[k] += t.scale * acc[k];
}

// Negative controls: 0 = per-position partial sums, 1 = S == 1 update from T(0).
template <typename T>
void vec_control(const VecTraceTask<T>& t, int which) {
  const int64_t S = t.S;
  std::vector<T> acc(static_cast<size_t>(t.O), T(0)), tmp(static_cast<size_t>(S));
  for (int64_t b = 0; b < t.B; ++b)
    for (int64_t k = 0; k < t.O; ++k) {
      const int64_t p = b * t.O + k;
      T* row = t.eps + p * S;
      if (t.update) {
        for (int64_t a = 0; a < S; ++a) {
          T s = T(0);
          if (t.D)
            for (int64_t c = 0; c < S; ++c) s += t.D[(p * S + a) * S + c] * row[c];
          tmp[a] = t.alpha * s + t.beta * t.df[p * S + a];
        }
        if (which == 1 && S == 1) {
          for (int64_t a = 0; a < S; ++a) row[a] = tmp[a];
        } else {
          trace_position_update(S, t.D ? t.D + p * S * S : nullptr, t.df + p * S, t.alpha, t.beta, row, tmp.data());
        }
      }
      if (t.g) {
        if (which == 0) {
          T s = T(0);
          for (int64_t a = 0; a < S; ++a) s += t.g[p * S + a] * row[a];
          acc[k] += s;
        } else {
          for (int64_t a = 0; a < S; ++a) acc[k] += t.g[p * S + a] * row[a];
        }
      }
    }
  if (t.g)
    for (int64_t k = 0; k < t.O; ++k) t.dp[k] += t.scale * acc[k];
}

struct Controls {
  bool order = false, zero = false;
};

template <typename T>
bool check_vec(int64_t B, int64_t O, int64_t S, bool hasD, bool hasG, bool update, T alpha, T beta, T scale,
               Controls* controls) {
  const int64_t P = B * O;
  const std::vector<T> eps0 = values<T>(P * S, 1), D = values<T>(P * S * S, 2), df = values<T>(P * S, 3),
                       g = values<T>(P * S, 4), dp0 = values<T>(O, 5);
  auto task = [&](std::vector<T>& eps, std::vector<T>& dp) {
    VecTraceTask<T> t;
    t.B = B;
    t.O = O;
    t.S = S;
    t.eps = eps.data();
    t.D = hasD ? D.data() : nullptr;
    t.df = df.data();
    t.alpha = alpha;
    t.beta = beta;
    t.g = hasG ? g.data() : nullptr;
    t.dp = hasG ? dp.data() : nullptr;
    t.scale = scale;
    t.update = update;
    return t;
  };
  char what[200];
  std::snprintf(what, sizeof what, "%s vec_trace B=%lld O=%lld S=%lld D=%d g=%d update=%d alpha=%g", dtype<T>(),
                static_cast<long long>(B), static_cast<long long>(O), static_cast<long long>(S), hasD, hasG, update,
                double(alpha));
  std::vector<T> e_ref = eps0, dp_ref = dp0;
  vec_reference(task(e_ref, dp_ref));
  std::vector<T> e1 = eps0, dp1 = dp0;
  cpu_vec_trace(task(e1, dp1));
  std::vector<T> e2 = eps0, dp2 = dp0;
  vec_rows_direct(task(e2, dp2));
  const std::string w(what);
  if (!same((w + " driver eps").c_str(), e1, e_ref) || !same((w + " driver dp").c_str(), dp1, dp_ref) ||
      !same((w + " row eps").c_str(), e2, e_ref) || !same((w + " row dp").c_str(), dp2, dp_ref))
    return false;
  // The controls, where they can differ.
  if (hasG && S >= 2) {
    std::vector<T> ec = eps0, dpc = dp0;
    vec_control(task(ec, dpc), 0);
    if (differs(dpc, dp_ref)) controls->order = true;
  }
  if (update && S == 1) {
    std::vector<T> ec = eps0, dpc = dp0;
    vec_control(task(ec, dpc), 1);
    if (differs(ec, e_ref)) controls->zero = true;
  }
  return true;
}

template <typename T>
bool check_pp(int64_t B, int64_t O, int64_t S) {
  const int64_t P = B * O;
  const std::vector<T> g = values<T>(P * S, 6), epsf = values<T>(P * S, 7), q0 = values<T>(P, 8),
                       x = values<T>(P, 9), dp0 = values<T>(O, 10);
  const T inv_c = T(1.0 / 0.271);
  char what[160];
  for (int accumulate = 0; accumulate < 2; ++accumulate) {
    std::vector<T> ref = q0, drv = q0, row = q0;
    for (int64_t p = 0; p < P; ++p) pp_project(g.data(), epsf.data(), S, inv_c, ref.data(), p, accumulate != 0);
    cpu_pp_project(g.data(), epsf.data(), P, S, inv_c, drv.data(), accumulate != 0);
    // In two pieces (a driver's chunk edge inside a batch row).
    pp_project_range(g.data(), epsf.data(), S, inv_c, row.data(), 0, P / 3, accumulate != 0);
    pp_project_range(g.data(), epsf.data(), S, inv_c, row.data(), P / 3, P, accumulate != 0);
    std::snprintf(what, sizeof what, "%s pp_project P=%lld S=%lld accumulate=%d", dtype<T>(),
                  static_cast<long long>(P), static_cast<long long>(S), accumulate);
    if (!same((std::string(what) + " driver").c_str(), drv, ref) || !same((std::string(what) + " range").c_str(), row, ref))
      return false;
  }
  {
    std::vector<T> ref = q0, drv = q0;
    const T decay = T(0.83);
    for (int64_t i = 0; i < P; ++i) pp_input_update(ref.data(), x.data(), decay, i);
    cpu_pp_input(drv.data(), x.data(), decay, P);
    std::snprintf(what, sizeof what, "%s pp_input n=%lld", dtype<T>(), static_cast<long long>(P));
    if (!same(what, drv, ref)) return false;
  }
  {
    std::vector<T> ref = dp0, drv = dp0, cols = dp0, acc(static_cast<size_t>(O));
    for (int64_t k = 0; k < O; ++k) pp_vec_col(q0.data(), B, O, ref.data(), k);
    cpu_pp_vec_grad(q0.data(), B, O, drv.data());
    pp_vec_cols(q0.data(), B, O, cols.data(), 0, O / 2, acc.data());
    pp_vec_cols(q0.data(), B, O, cols.data(), O / 2, O, acc.data());
    std::snprintf(what, sizeof what, "%s pp_vec_grad B=%lld O=%lld", dtype<T>(), static_cast<long long>(B),
                  static_cast<long long>(O));
    if (!same((std::string(what) + " driver").c_str(), drv, ref) || !same((std::string(what) + " cols").c_str(), cols, ref))
      return false;
  }
  return true;
}

// Every composition of S into member widths (w_0 + w_1 + ... = S), each layout with its
// members present or null in turn.
void compositions(int64_t S, std::vector<int64_t>& cur, std::vector<std::vector<int64_t>>& out) {
  int64_t sum = 0;
  for (int64_t w : cur) sum += w;
  if (sum == S) {
    out.push_back(cur);
    return;
  }
  for (int64_t w = 1; sum + w <= S; ++w) {
    cur.push_back(w);
    compositions(S, cur, out);
    cur.pop_back();
  }
}

template <typename T>
bool check_jacobian_read(int64_t P, int64_t S) {
  std::vector<std::vector<int64_t>> layouts;
  std::vector<int64_t> cur;
  compositions(S, cur, layouts);
  const std::vector<T> garbage = values<T>(P * S * S, 11);
  for (const std::vector<int64_t>& widths : layouts) {
    const int nm = static_cast<int>(widths.size());
    std::vector<int64_t> off(static_cast<size_t>(nm));
    for (int m = 1; m < nm; ++m) off[m] = off[m - 1] + widths[m - 1];
    std::vector<std::vector<T>> srcs;
    for (int m = 0; m < nm; ++m) srcs.push_back(values<T>(P * widths[m], 12 + m));
    for (int nulls = 0; nulls < 2; ++nulls) {
      std::vector<const T*> src(static_cast<size_t>(nm));
      for (int m = 0; m < nm; ++m) src[m] = nulls && m % 2 == 0 ? nullptr : srcs[m].data();
      for (int64_t col = -1; col < S; ++col) {
        const int64_t n = col < 0 ? P * S : P * S * S;
        // Whole range, and a sub-range split in two pieces (chunk edges).
        const int64_t p0 = P / 5, p1 = P - P / 7, mid = (p0 + p1) / 2;
        std::vector<T> ref(garbage.begin(), garbage.begin() + n), got = ref, part = ref, part_ref = ref;
        JacobianReadTask<T> r;
        r.members = nm;
        r.src = src.data();
        r.width = widths.data();
        r.off = off.data();
        r.S = S;
        r.col = col;
        for (int m = 0; m < nm; ++m)
          for (int64_t p = 0; p < P; ++p)
            for (int64_t j = 0; j < widths[m]; ++j) {
              const T v = src[m] ? src[m][p * widths[m] + j] : T(0);
              const int64_t at = col < 0 ? p * S + off[m] + j : (p * S + off[m] + j) * S + col;
              ref[at] = v;
              if (p >= p0 && p < p1) part_ref[at] = v;
            }
        r.dst = got.data();
        for (int m = 0; m < nm; ++m) jacobian_read_member(r, m, 0, P);
        r.dst = part.data();
        for (int m = 0; m < nm; ++m) {
          jacobian_read_member(r, m, p0, mid);
          jacobian_read_member(r, m, mid, p1);
        }
        char what[200];
        std::snprintf(what, sizeof what, "%s jacobian_read P=%lld S=%lld members=%d nulls=%d col=%lld", dtype<T>(),
                      static_cast<long long>(P), static_cast<long long>(S), nm, nulls, static_cast<long long>(col));
        if (!same(what, got, ref) || !same((std::string(what) + " sub-range").c_str(), part, part_ref)) return false;
      }
    }
  }
  return true;
}

template <typename T>
bool run_all(Controls* controls) {
  const T one = T(1), alpha = T(0.7), beta = T(0.45);
  // (B, O): one tile, a partial second tile, several pool chunks (grain >= 256 columns).
  const int64_t shapes[][2] = {{3, 5}, {5, 300}, {130, 700}};
  for (const auto& sh : shapes)
    for (int64_t S = 1; S <= 5; ++S) {
      if (sh[0] * sh[1] * S * S > 4000000) continue;
      for (int hasD = 0; hasD < 2; ++hasD)
        for (int hasG = 0; hasG < 2; ++hasG)
          for (int update = 0; update < 2; ++update)
            for (int ab = 0; ab < 2; ++ab) {
              if (!update && ab) continue;  // alpha, beta only matter for the update
              if (!check_vec<T>(sh[0], sh[1], S, hasD, hasG, update, ab ? alpha : one, ab ? beta : one,
                                ab ? T(1.5) : one, controls))
                return false;
            }
      if (!check_pp<T>(sh[0], sh[1], S)) return false;
    }
  for (int64_t S = 1; S <= 6; ++S)
    if (!check_jacobian_read<T>(37, S)) return false;
  return true;
}

}  // namespace

int main() {
  Controls cf, cd;
  if (!run_all<float>(&cf) || !run_all<double>(&cd)) return 1;
  if (!cf.order || !cd.order) {
    std::printf("negative control: per-position partial sums matched the reference\n");
    return 1;
  }
  if (!cf.zero || !cd.zero) {
    std::printf("negative control: the S == 1 update from T(0) matched the reference\n");
    return 1;
  }
  std::printf("ok %d checks\n", checks);
  return 0;
}
