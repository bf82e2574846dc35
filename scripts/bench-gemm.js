#!/usr/bin/env node
// GEMM benchmark: GFLOP/s of braintrace's CPU GEMM, every usable kernel (binding
// benchmarkGemm), next to OpenBLAS (scripts/lib/openblas-runner.js, when libopenblas-dev
// and a C compiler are present; for comparison only), at 1024^3 and at the models' shapes
// (a GRU gate product and its two VJPs, gA = G B^T and gB = A^T G, and 128 x 512 x 512),
// float32 and float64, on 1 and 2 threads. Rounds are interleaved (every configuration once
// per round, best of all rounds kept), so a noisy neighbour hurts all columns alike.
// Run: npm run build:ts && node scripts/bench-gemm.js [--rounds 3] [--reps 3] [--quick]
// Prints a table and writes bench-results/gemm.json. Needs a pool of >= 2 threads for the
// 2-thread rows (BRAINTRACE_NUM_THREADS; default: the hardware threads).
'use strict';
const fs = require('fs');
const path = require('path');
const { loadBinding } = require('../dist/runtime/native');
const { openblasGemm, openblasReason } = require('./lib/openblas-batch');

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const quick = process.argv.includes('--quick');
const rounds = arg('--rounds', quick ? 1 : 3);
const reps = arg('--reps', 3);

const binding = loadBinding();
const kinfo = binding.gemmKernels();
const shapes = [
  { name: '1024^3', M: 1024, N: 1024, K: 1024 },
  { name: 'GRU gate x W (64x320 * 320x768)', M: 64, N: 768, K: 320 },
  { name: 'gA = G W^T', M: 64, N: 320, K: 768, transB: true },
  { name: 'gW = X^T G', M: 320, N: 768, K: 64, transA: true },
  { name: '128x512 * 512x512', M: 128, N: 512, K: 512 },
];
const dtypes = ['float32', 'float64'];
const poolThreads = binding.info().threads;
const threadCounts = poolThreads >= 2 ? [1, 2] : [1];
const kernels = kinfo.available;

const best = new Map(); // key -> seconds
const keep = (key, s) => best.set(key, Math.min(best.get(key) ?? Infinity, s));
let coretype = '';
const blasNote = openblasReason();
for (let r = 0; r < rounds; ++r) {
  for (const threads of threadCounts) {
    const ob = openblasGemm(
      dtypes.flatMap((dtype) => shapes.map((s) => ({ ...s, dtype }))),
      { threads, reps },
    );
    if (ob) {
      coretype = ob.coretype;
      for (const x of ob.results) keep(`openblas|${x.dtype}|${threads}|${x.name}`, x.seconds);
    }
    for (const dtype of dtypes)
      for (const s of shapes)
        for (const kernel of kernels) {
          const res = binding.benchmarkGemm({ M: s.M, N: s.N, K: s.K, transA: !!s.transA, transB: !!s.transB, dtype, reps, kernel, threads });
          keep(`${kernel}|${dtype}|${threads}|${s.name}`, res.secondsPerRep);
        }
  }
}

const gflops = (s, sec) => (2 * s.M * s.N * s.K) / sec / 1e9;
const cols = [...kernels, ...(blasNote ? [] : ['openblas'])];
console.log(`braintrace GEMM kernels: ${kernels.join(', ')} (active: ${kinfo.active}); pool ${poolThreads} threads`);
console.log(blasNote ? `OpenBLAS: not run (${blasNote})` : `OpenBLAS core type: ${coretype} (OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'unset'})`);
console.log(`best of ${rounds} interleaved rounds x ${reps} reps; GFLOP/s`);
const rows = [];
for (const dtype of dtypes)
  for (const threads of threadCounts) {
    console.log(`\n${dtype}, ${threads} thread${threads > 1 ? 's' : ''}`);
    console.log(`  ${'shape'.padEnd(34)}${cols.map((c) => c.padStart(10)).join('')}${blasNote ? '' : '   best/openblas'}`);
    for (const s of shapes) {
      const v = cols.map((c) => gflops(s, best.get(`${c}|${dtype}|${threads}|${s.name}`)));
      const ours = Math.max(...v.slice(0, kernels.length));
      const ratio = blasNote ? '' : `${(ours / v[v.length - 1]).toFixed(2)}x`.padStart(16);
      console.log(`  ${s.name.padEnd(34)}${v.map((x) => x.toFixed(1).padStart(10)).join('')}${ratio}`);
      rows.push({ dtype, threads, shape: s, gflops: Object.fromEntries(cols.map((c, i) => [c, v[i]])) });
    }
  }
const outDir = path.join(__dirname, '..', 'bench-results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'gemm.json'), JSON.stringify({ kernels: kinfo, coretype, rounds, reps, rows }, null, 2));
console.log(`\nwrote ${path.relative(process.cwd(), path.join(outDir, 'gemm.json'))}`);
