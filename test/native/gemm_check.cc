// Standalone check of the CPU GEMM kernels against a naive float64 triple loop, with no
// Node and no thread pool: build it together with native/cpu/gemm_dispatch.cc,
// gemm_x86.cc and gemm_neon.cc (scripts/test-gemm-arm64.sh cross-compiles it for arm64
// and runs it under qemu; it builds natively the same way). Every usable kernel is run
// on odd shapes, the four transpose combinations, alpha / beta in {0, 1, 2.5}, leading
// dimensions wider than the matrices and NaN in C with beta == 0; rows and columns of C whose
// bits must not depend on the rows / columns around them (row-edge and half-width kernels);
// the product is also
// computed as a 2 x 3 grid of tiles (what the thread split does), and as that grid over a
// prepacked op(B) (kernel.pack + kernel.tilep, the pack cache's path), and both must match the
// whole-matrix result bit for bit. Exit status 0 when every check passes.
//
//   gemm_check              run the checks
//   gemm_check bench M N K [reps] [ta tb]  time each kernel (float32 and float64; 0/1 transposes)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/gemm_kernels.h"

using bt::GemmDims;
using bt::GemmKernelImpl;

namespace {

int g_failures = 0;
int g_checks = 0;

template <typename T>
double tolerance() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

// op(A)(i, k) and op(B)(k, j) as in kernels/gemm.h.
template <typename T>
T a_at(const GemmDims& d, const std::vector<T>& A, int64_t i, int64_t k) {
  return d.trans_a ? A[k * d.lda + i] : A[i * d.lda + k];
}
template <typename T>
T b_at(const GemmDims& d, const std::vector<T>& B, int64_t k, int64_t j) {
  return d.trans_b ? B[j * d.ldb + k] : B[k * d.ldb + j];
}

template <typename T>
void check_one(const GemmKernelImpl& kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
               double beta, int64_t pad, std::mt19937_64& rng) {
  GemmDims d;
  d.trans_a = ta;
  d.trans_b = tb;
  d.M = M;
  d.N = N;
  d.K = K;
  d.lda = (ta ? M : K) + pad;
  d.ldb = (tb ? K : N) + pad;
  d.ldc = N + pad;
  const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> A(size_t(std::max<int64_t>(a_rows * d.lda, 1))), B(size_t(std::max<int64_t>(b_rows * d.ldb, 1)));
  std::vector<T> C0(size_t(std::max<int64_t>(M * d.ldc, 1)));
  for (auto& x : A) x = T(u(rng));
  for (auto& x : B) x = T(u(rng));
  for (auto& x : C0) x = beta == 0 ? T(NAN) : T(u(rng));
  std::vector<T> C = C0, Ct = C0;
  kern.tile(T())(d, T(alpha), A.data(), B.data(), T(beta), C.data(), 0, M, 0, N);
  // The same product as 2 x 3 tiles, edges on MR / NR multiples (as cpu/parallel_gemm.cc).
  const int64_t mr = kern.mr(T()), nr = kern.nr(T());
  const int64_t mcut = std::min(M, (M / 2 + mr - 1) / mr * mr);
  const int64_t ncut[4] = {0, std::min(N, (N / 3 + nr - 1) / nr * nr), std::min(N, (2 * N / 3 + nr - 1) / nr * nr), N};
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 3; ++q)
      kern.tile(T())(d, T(alpha), A.data(), B.data(), T(beta), Ct.data(), p == 0 ? 0 : mcut, p == 0 ? mcut : M,
                     ncut[q], ncut[q + 1]);
  // And over op(B) packed whole beforehand (the pack cache's path: kern.pack, kern.tilep),
  // as the same 2 x 3 tiles: bit for bit the whole-matrix result too.
  std::vector<T> Cp = C0;
  std::vector<T> Bp(size_t(std::max<int64_t>((N + nr - 1) / nr * nr * K, 1)), T(-7));
  // Packed in two column ranges (as the pack cache splits it over threads), the second first:
  // each range writes only its own panels, so the buffer is the whole pack's.
  const int64_t jcut = std::min(N, (N / 2 + nr - 1) / nr * nr);
  kern.pack(T())(d, B.data(), Bp.data(), jcut, N);
  kern.pack(T())(d, B.data(), Bp.data(), 0, jcut);
  {
    std::vector<T> Bw(Bp.size(), T(-7));
    kern.pack(T())(d, B.data(), Bw.data(), 0, N);
    if (std::memcmp(Bw.data(), Bp.data(), sizeof(T) * Bp.size()) != 0) {
      std::printf("FAIL %s %s pack of two column ranges != pack of [0, N)\n", kern.name, sizeof(T) == 4 ? "f32" : "f64");
      ++g_failures;
    }
    // Negative control: [jcut, N) alone leaves the panels before jcut unwritten.
    std::vector<T> Bh(Bp.size(), T(-7));
    kern.pack(T())(d, B.data(), Bh.data(), jcut, N);
    if (jcut > 0 && jcut < N && K > 0 && std::memcmp(Bw.data(), Bh.data(), sizeof(T) * Bh.size()) == 0) {
      std::printf("FAIL %s %s pack of [%lld, N) wrote the whole pack\n", kern.name, sizeof(T) == 4 ? "f32" : "f64",
                  (long long)jcut);
      ++g_failures;
    }
  }
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 3; ++q)
      kern.tilep(T())(d, T(alpha), A.data(), B.data(), Bp.data(), T(beta), Cp.data(), p == 0 ? 0 : mcut,
                      p == 0 ? mcut : M, ncut[q], ncut[q + 1]);
  // A tile whose first column is not on a panel boundary packs from B itself (same values).
  std::vector<T> Cu = C0;
  const int64_t cut = std::min<int64_t>(N, 1);
  kern.tilep(T())(d, T(alpha), A.data(), B.data(), Bp.data(), T(beta), Cu.data(), 0, M, 0, cut);
  kern.tilep(T())(d, T(alpha), A.data(), B.data(), Bp.data(), T(beta), Cu.data(), 0, M, cut, N);
  bool ok = true;
  for (int64_t i = 0; i < M && ok; ++i) {
    for (int64_t j = 0; j < d.ldc && ok; ++j) {
      const T got = C[i * d.ldc + j];
      if (std::memcmp(&got, &Cu[i * d.ldc + j], sizeof(T)) != 0) {
        std::printf("FAIL %s %s prepacked B, unaligned tile != whole at (%lld,%lld)\n", kern.name,
                    sizeof(T) == 4 ? "f32" : "f64", (long long)i, (long long)j);
        ok = false;
        break;
      }
      if (std::memcmp(&got, &Cp[i * d.ldc + j], sizeof(T)) != 0) {
        std::printf("FAIL %s %s prepacked B != whole at (%lld,%lld)\n", kern.name, sizeof(T) == 4 ? "f32" : "f64",
                    (long long)i, (long long)j);
        ok = false;
        break;
      }
      if (std::memcmp(&got, &Ct[i * d.ldc + j], sizeof(T)) != 0) {
        std::printf("FAIL %s %s tiled != whole at (%lld,%lld)\n", kern.name, sizeof(T) == 4 ? "f32" : "f64",
                    (long long)i, (long long)j);
        ok = false;
        break;
      }
      if (j >= N) {  // padding: untouched
        if (std::memcmp(&got, &C0[i * d.ldc + j], sizeof(T)) != 0) {
          std::printf("FAIL %s padding of C written at (%lld,%lld)\n", kern.name, (long long)i, (long long)j);
          ok = false;
        }
        continue;
      }
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = double(a_at(d, A, i, k)) * double(b_at(d, B, k, j));
        ref += t;
        mag += std::fabs(t);
      }
      const double c0 = double(C0[i * d.ldc + j]);
      ref = alpha * ref + (beta == 0 ? 0.0 : beta * c0);
      mag = std::fabs(alpha) * mag + (beta == 0 ? 0.0 : std::fabs(beta * c0));
      const double err = std::fabs(double(got) - ref);
      if (!(err <= tolerance<T>() * (mag + 1e-30) + 1e-300) && !(mag == 0 && got == T(0))) {
        std::printf("FAIL %s %s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%lld at (%lld,%lld): got %.17g "
                    "want %.17g\n",
                    kern.name, sizeof(T) == 4 ? "f32" : "f64", ta, tb, (long long)M, (long long)N, (long long)K,
                    alpha, beta, (long long)pad, (long long)i, (long long)j, double(got), ref);
        ok = false;
      }
    }
  }
  ++g_checks;
  if (!ok) ++g_failures;
}

// An element of C has the same bits whatever rows and columns surround it: the M x N
// product against the first M rows and N columns of an Mf x Nf one (Mf >= M, Nf >= N, the
// extra rows and columns of A and B random). With Mf = M rounded up to MR the M-row product's
// last rows are a row edge (the row-edge kernels, or the edge buffer); with Nf = N rounded up
// to NR its last columns are a column edge (the half-width kernel up to NR / 2 columns). Over
// whole and prepacked B, beta 0 (NaN in C) and beta != 0; C outside M x N stays untouched.
template <typename T>
void check_edge(const GemmKernelImpl& kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t Mf,
                int64_t Nf, double beta, std::mt19937_64& rng) {
  GemmDims d;
  d.trans_a = ta;
  d.trans_b = tb;
  d.K = K;
  d.lda = ta ? Mf : K;
  d.ldb = tb ? K : Nf;
  d.ldc = Nf;
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> A(size_t(std::max<int64_t>(Mf * K, 1))), B(size_t(std::max<int64_t>(K * Nf, 1)));
  std::vector<T> C0(size_t(std::max<int64_t>(Mf * Nf, 1)));
  for (auto& x : A) x = T(u(rng));
  for (auto& x : B) x = T(u(rng));
  for (auto& x : C0) x = beta == 0 ? T(NAN) : T(u(rng));
  const int64_t nr = kern.nr(T());
  for (int packed = 0; packed < 2; ++packed) {
    std::vector<T> Cf = C0, Ce = C0;
    GemmDims df = d, de = d;
    df.M = Mf;
    df.N = Nf;
    de.M = M;
    de.N = N;
    if (packed) {
      std::vector<T> Bf(size_t(std::max<int64_t>((Nf + nr - 1) / nr * nr * K, 1))), Be(Bf.size());
      kern.pack(T())(df, B.data(), Bf.data(), 0, Nf);
      kern.pack(T())(de, B.data(), Be.data(), 0, N);
      kern.tilep(T())(df, T(1), A.data(), B.data(), Bf.data(), T(beta), Cf.data(), 0, Mf, 0, Nf);
      kern.tilep(T())(de, T(1), A.data(), B.data(), Be.data(), T(beta), Ce.data(), 0, M, 0, N);
    } else {
      kern.tile(T())(df, T(1), A.data(), B.data(), T(beta), Cf.data(), 0, Mf, 0, Nf);
      kern.tile(T())(de, T(1), A.data(), B.data(), T(beta), Ce.data(), 0, M, 0, N);
    }
    ++g_checks;
    bool ok = true;
    for (int64_t i = 0; i < Mf && ok; ++i)
      for (int64_t j = 0; j < Nf && ok; ++j) {
        const size_t q = size_t(i * Nf + j);
        ok = std::memcmp(&Ce[q], i < M && j < N ? &Cf[q] : &C0[q], sizeof(T)) == 0;
      }
    if (!ok) {
      std::printf("FAIL %s %s edge: M=%lld of %lld N=%lld of %lld K=%lld ta=%d tb=%d beta=%g packed=%d differs "
                  "from the larger product (or wrote outside M x N)\n",
                  kern.name, sizeof(T) == 4 ? "f32" : "f64", (long long)M, (long long)Mf, (long long)N, (long long)Nf,
                  (long long)K, ta, tb, beta, packed);
      ++g_failures;
    }
  }
}

template <typename T>
void check_kernel(const GemmKernelImpl& kern) {
  std::mt19937_64 rng(1234);
  const int64_t sizes[] = {1, 2, 3, 5, 7, 13, 17, 31, 33, 63, 65, 127, 129, 255, 257};
  const double scalars[] = {0, 1, 2.5};
  int n = 0;
  for (int t = 0; t < 4; ++t) {
    // Square-ish sweep over all sizes, and mixed shapes that cross the blocking edges.
    for (int64_t s : sizes) {
      const double alpha = scalars[(n + 1) % 3], beta = scalars[n % 3];
      check_one<T>(kern, t & 1, t & 2, s, s, s, alpha, beta, n % 2 ? 3 : 0, rng);
      ++n;
    }
    for (int64_t m : {1, 7, 33, 129}) {
      for (int64_t nn : {2, 17, 65, 257}) {
        for (int64_t k : {0, 1, 5, 63, 300}) {
          const double alpha = scalars[(n + 2) % 3], beta = scalars[n % 3];
          check_one<T>(kern, t & 1, t & 2, m, nn, k, alpha, beta, n % 3, rng);
          ++n;
        }
      }
    }
  }
  // Every alpha / beta pair on one odd shape, and the models' shapes.
  for (double a : scalars)
    for (double b : scalars) check_one<T>(kern, false, false, 13, 31, 17, a, b, 1, rng);
  check_one<T>(kern, false, false, 64, 768, 320, 1, 0, 0, rng);
  check_one<T>(kern, false, true, 64, 320, 768, 1, 1, 0, rng);
  check_one<T>(kern, true, false, 320, 768, 64, 1, 1, 0, rng);
  // Several NC column blocks and KC slices (the prepacked layout across both).
  check_one<T>(kern, false, true, 7, 3100, 260, 1, 1, 0, rng);
  check_one<T>(kern, false, false, 7, 3100, 260, 2.5, 0, 1, rng);
  // Every row-edge height, full-width and ragged columns, one and two KC slices.
  const int64_t mr = kern.mr(T()), nr = kern.nr(T());
  const auto up = [](int64_t x, int64_t r) { return (x + r - 1) / r * r; };
  for (int64_t m = 1; m < 2 * mr; ++m)
    for (int64_t nn : {nr, 2 * nr + 3})
      for (int64_t k : {int64_t(9), int64_t(300)})
        check_edge<T>(kern, m % 2, m % 3 == 0, m, nn, k, up(m, mr), nn, m % 2 ? 0 : 2.5, rng);
  // Every column-edge width (the half-width kernel up to NR / 2), on row edges too.
  for (int64_t nn = 1; nn < 2 * nr; ++nn)
    for (int64_t m : {mr, 2 * mr + 5})
      for (int64_t k : {int64_t(9), int64_t(300)})
        check_edge<T>(kern, nn % 2, nn % 3 == 0, m, nn, k, m, up(nn, nr), nn % 2 ? 0 : 2.5, rng);
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <typename T>
double bench(const GemmKernelImpl& kern, int64_t M, int64_t N, int64_t K, int reps, bool ta, bool tb) {
  GemmDims d;
  d.trans_a = ta;
  d.trans_b = tb;
  d.M = M;
  d.N = N;
  d.K = K;
  d.lda = ta ? M : K;
  d.ldb = tb ? K : N;
  d.ldc = N;
  std::vector<T> A(size_t(M * K), T(0.5)), B(size_t(K * N), T(0.25)), C(size_t(M * N), T(0));
  kern.tile(T())(d, T(1), A.data(), B.data(), T(0), C.data(), 0, M, 0, N);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    kern.tile(T())(d, T(1), A.data(), B.data(), T(0), C.data(), 0, M, 0, N);
    best = std::min(best, now() - t0);
  }
  return 2.0 * double(M) * double(N) * double(K) / best * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const GemmKernelImpl*> kernels;
  for (const std::string& name : bt::gemm_kernels_available()) kernels.push_back(bt::gemm_kernel_find(name));
  if (argc >= 5 && std::string(argv[1]) == "bench") {
    const int64_t M = std::atoll(argv[2]), N = std::atoll(argv[3]), K = std::atoll(argv[4]);
    const int reps = argc >= 6 ? std::atoi(argv[5]) : 5;
    const bool ta = argc >= 7 && std::atoi(argv[6]) != 0, tb = argc >= 8 && std::atoi(argv[7]) != 0;
    for (const GemmKernelImpl* k : kernels)
      std::printf("%-8s f32 %7.1f GFLOP/s  f64 %7.1f GFLOP/s\n", k->name, bench<float>(*k, M, N, K, reps, ta, tb),
                  bench<double>(*k, M, N, K, reps, ta, tb));
    return 0;
  }
  for (const GemmKernelImpl* k : kernels) {
    const int before = g_failures;
    check_kernel<float>(*k);
    check_kernel<double>(*k);
    std::printf("%-8s %s\n", k->name, g_failures == before ? "ok" : "FAILED");
  }
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
