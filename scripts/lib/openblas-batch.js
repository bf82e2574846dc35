// OpenBLAS timings for comparison benchmarks (never a dependency of braintrace).
//
// openblasGemm(shapes, opts) compiles a tiny C program against the system OpenBLAS
// (`cc -O2 x.c -lopenblas`, cached in os.tmpdir()) and runs it once per thread count,
// with OPENBLAS_NUM_THREADS set, returning per shape the best seconds of `reps` calls of
// cblas_sgemm / cblas_dgemm (row-major, alpha 1, beta 0, after one warm-up call), and the
// core type OpenBLAS chose (openblas_get_corename; OPENBLAS_CORETYPE overrides it). It
// returns null when there is no C compiler or no OpenBLAS (install libopenblas-dev);
// openblasReason() then says which. Used by scripts/bench-gemm.js (many shapes per process); scripts/lib/openblas-runner.js is the line-protocol worker of the interleaved --compare bench.
//
//   const { openblasAvailable, openblasGemm } = require('./lib/openblas-batch');
//   const r = openblasGemm([{ M, N, K, transA, transB, dtype: 'float32' }], { threads: 1, reps: 5 });
//   // r: { coretype, threads, results: [{ M, N, K, transA, transB, dtype, seconds }] }
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SOURCE = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* argv: reps, then per shape "M N K transA transB dtype(4|8)"; prints one JSON line per shape. */
int main(int argc, char** argv) {
  int reps = atoi(argv[1]);
  printf("{\"coretype\":\"%s\",\"results\":[", openblas_get_corename());
  for (int s = 2; s + 5 < argc; s += 6) {
    long M = atol(argv[s]), N = atol(argv[s + 1]), K = atol(argv[s + 2]);
    int ta = atoi(argv[s + 3]), tb = atoi(argv[s + 4]), sz = atoi(argv[s + 5]);
    void* A = malloc(sz * M * K); void* B = malloc(sz * K * N); void* C = malloc(sz * M * N);
    for (long i = 0; i < M * K; ++i) { double v = ((i * 7919) % 2001 - 1000) / 1000.0; if (sz == 4) ((float*)A)[i] = (float)v; else ((double*)A)[i] = v; }
    for (long i = 0; i < K * N; ++i) { double v = ((i * 104729) % 2001 - 1000) / 1000.0; if (sz == 4) ((float*)B)[i] = (float)v; else ((double*)B)[i] = v; }
    memset(C, 0, sz * M * N);
    double best = 1e30;
    for (int r = -1; r < reps; ++r) {
      double t0 = now();
      if (sz == 4)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                    (float*)A, ta ? M : K, (float*)B, tb ? K : N, 0.0f, (float*)C, N);
      else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0,
                    (double*)A, ta ? M : K, (double*)B, tb ? K : N, 0.0, (double*)C, N);
      double t = now() - t0;
      if (r >= 0 && t < best) best = t;
    }
    printf("%s{\"seconds\":%.9g}", s == 2 ? "" : ",", best);
    free(A); free(B); free(C);
  }
  printf("]}\n");
  return 0;
}
`;

let built; // { exe } or { reason }

// Compiles the runner once per process (cached on disk by source hash). Returns the
// executable path, or null with the reason in openblasReason().
function build() {
  if (built) return built.exe || null;
  const cc = process.env.CC || 'cc';
  const hash = crypto.createHash('sha1').update(SOURCE).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), 'braintrace-openblas-runner');
  const exe = path.join(dir, `gemm-${hash}`);
  if (fs.existsSync(exe)) return (built = { exe }).exe;
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(dir, `gemm-${hash}.c`);
  fs.writeFileSync(src, SOURCE);
  const incs = ['/usr/include/openblas', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu']
    .filter((d) => fs.existsSync(d))
    .map((d) => `-I${d}`);
  const r = spawnSync(cc, ['-O2', ...incs, src, '-o', exe, '-lopenblas'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    built = { reason: `could not build the OpenBLAS runner with ${cc} (${r.error ? r.error.message : r.stderr.trim().split('\n').slice(-2).join(' ')}); install libopenblas-dev` };
    return null;
  }
  return (built = { exe }).exe;
}

/** True when OpenBLAS and a C compiler are present (the runner builds). */
function openblasAvailable() {
  return build() !== null;
}

/** Why openblasAvailable() is false ('' when it is true). */
function openblasReason() {
  build();
  return built.reason || '';
}

/**
 * Times each shape with OpenBLAS on `opts.threads` threads (OPENBLAS_NUM_THREADS), best of
 * `opts.reps` (default 5) after one warm-up. Returns { coretype, threads, results } or null
 * when OpenBLAS is not available. OPENBLAS_CORETYPE from the environment is passed through.
 */
function openblasGemm(shapes, opts = {}) {
  const exe = build();
  if (!exe) return null;
  const threads = opts.threads || 1;
  const reps = opts.reps || 5;
  const args = [String(reps)];
  for (const s of shapes)
    args.push(String(s.M), String(s.N), String(s.K), s.transA ? '1' : '0', s.transB ? '1' : '0', s.dtype === 'float64' ? '8' : '4');
  const out = execFileSync(exe, args, {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
  });
  const j = JSON.parse(out);
  return { coretype: j.coretype, threads, results: shapes.map((s, i) => ({ ...s, seconds: j.results[i].seconds })) };
}

module.exports = { openblasAvailable, openblasReason, openblasGemm };
