#!/usr/bin/env node
// Benchmark: per-call cost of the learner's entry points on a tiny model (a diagonal RNN,
// I 2, H 4, B 1; float32) and of one GRU BPTT call (B 64, I 64, H 256, T 100), plus the
// native memory a BPTT call keeps between calls (the tape arena) and its per-step size.
//   learner.update(x)                     forward only, synchronous
//   learner.step(x, y, { optimizer })     streaming: one D_RTRL step + an SGD update (output: true,
//                                         and output: false: the issue 9 target row)
//   learner.etraceGrad(xs, ys) (T 1)      one online gradient step, no update
//   etraceGrad of T 1000 / 1000           the same step inside one long call
//   GRU BPTT etraceGrad, T 100            one call (forward + reverse)
// Wall and process CPU time per call, medians of rounds; each round times `n` calls back to back.
// Run: node scripts/bench-calls.js [--quick] [--rounds N] [--json out.json]   (after npm run build:ts).
// Each row: wall and CPU per call (medians of the rounds) and the fastest round's CPU per call.
// Compare two builds interleaved: copy this script into the old tree's scripts/ and run it
// there (BRAINTRACE_ADDON=/abs/old/braintrace.node node <old>/scripts/bench-calls.js) and here,
// alternately (docs/benchmarks.md, "Per-call cost and the BPTT tape").
'use strict';
const bt = require('..');
const { loadBinding } = require('../dist/runtime/native');

const quick = process.argv.includes('--quick');
const jsonAt = process.argv.indexOf('--json');
const roundsAt = process.argv.indexOf('--rounds');
const ROUNDS = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : quick ? 5 : 9;

// DiagRNN (inputs, hidden, outputs) and GRU (inputs, hidden): the shared benchmark models.
const models = require('./lib/bench-models');
class DiagRNN extends models.DiagRNN {
  constructor(I, H) {
    super(I, H, 1);
  }
}
const { GRU } = models;

function filled(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 1.5;
  }
  return a;
}

const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];

/**
 * Per-call cost of `n` back-to-back calls of `fn` (awaited when async): the median over
 * ROUNDS of the wall time and of the process CPU time (user + system, all threads) per call.
 * On a loaded machine the CPU time is the steadier number; the wall time includes waits.
 * `cpuMin`: the fastest round's CPU time per call (the least disturbed by other jobs).
 */
async function perCall(n, fn, sync = false) {
  // Warm-up: V8's interpreter and baseline tiers run a fresh call path for the first few
  // thousand calls (the first row, step, read 30 us wall after 50 warm-up calls and 8 us
  // after 3000), so per-call rows first run 4000 calls untimed, as bench --compare does.
  // Long calls (n < 100 of them) warm up with n calls.
  const warm = n >= 100 ? 4000 : n;
  for (let i = 0; i < warm; i++) (sync ? fn() : await fn());
  const wall = [], cpu = [];
  for (let k = 0; k < ROUNDS; k++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    if (sync) for (let i = 0; i < n; i++) fn();
    else for (let i = 0; i < n; i++) await fn();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / n);
  }
  return { wall: median(wall), cpu: median(cpu), cpuMin: Math.min(...cpu) };
}
const perCallSync = (n, fn) => perCall(n, fn, true);

async function tiny() {
  const I = 2, H = 4, B = 1, T = 1000;
  const out = {};
  const x = { data: filled(B * I, 1), shape: [B, I], dtype: 'float32' };
  const y = { data: filled(B, 2), shape: [B, 1], dtype: 'float32' };
  const xs1 = { data: x.data, shape: [1, B, I], dtype: 'float32' };
  const ys1 = { data: y.data, shape: [1, B, 1], dtype: 'float32' };
  const xsT = { data: filled(T * B * I, 3), shape: [T, B, I], dtype: 'float32' };
  const ysT = { data: filled(T * B, 4), shape: [T, B, 1], dtype: 'float32' };
  {
    const l = bt.compile(new DiagRNN(I, H), bt.D_RTRL, { inputShape: [I], batchSize: B });
    out['update (D_RTRL learner), us/call'] = await perCallSync(2000, () => l.update(x));
    const optimizer = new bt.optim.SGD({ lr: 1e-3 });
    out['step (D_RTRL + SGD), us/call'] = await perCall(1000, () => l.step(x, y, { optimizer, output: true }));
    out['step output: false (D_RTRL + SGD), us/call'] = await perCall(1000, () => l.step(x, y, { optimizer, output: false }));
    out['etraceGrad T 1 (D_RTRL), us/call'] = await perCall(1000, () => l.etraceGrad(xs1, ys1));
    const long = await perCall(3, () => l.etraceGrad(xsT, ysT));
    out['etraceGrad T 1000 (D_RTRL), us/step'] = { wall: long.wall / T, cpu: long.cpu / T, cpuMin: long.cpuMin / T };
    optimizer.dispose();
    l.dispose();
  }
  {
    const l = bt.compile(new DiagRNN(I, H), bt.BPTT, { inputShape: [I], batchSize: B });
    out['update (BPTT learner), us/call'] = await perCallSync(2000, () => l.update(x));
    const optimizer = new bt.optim.SGD({ lr: 1e-3 });
    out['step (BPTT T 1 + SGD), us/call'] = await perCall(1000, () => l.step(x, y, { optimizer, output: true }));
    out['etraceGrad T 1 (BPTT), us/call'] = await perCall(1000, () => l.etraceGrad(xs1, ys1));
    optimizer.dispose();
    l.dispose();
  }
  return out;
}

async function gru() {
  const I = 64, H = 256, B = 64, T = quick ? 50 : 100;
  const out = {};
  const l = bt.compile(new GRU(I, H), bt.BPTT, { inputShape: [I], batchSize: B });
  const xs = { data: filled(T * B * I, 5), shape: [T, B, I], dtype: 'float32' };
  const ys = { data: filled(T * B * 4, 6), shape: [T, B, 4], dtype: 'float32' };
  await l.etraceGrad(xs, ys);
  const live0 = loadBinding().memoryStats().liveBytes;
  const wall = [], cpu = [];
  for (let k = 0; k < (quick ? 3 : 5); k++) {
    l.resetState();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await l.etraceGrad(xs, ys);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
  }
  out[`GRU BPTT B ${B} I ${I} H ${H} T ${T}, ms/call`] = { wall: median(wall), cpu: median(cpu) };
  out['GRU BPTT: native bytes kept between calls, MiB'] = live0 / 2 ** 20;
  l.dispose();
  out['GRU BPTT: native bytes after dispose, MiB'] = loadBinding().memoryStats().liveBytes / 2 ** 20;
  return out;
}

async function main() {
  const res = { addon: process.env.BRAINTRACE_ADDON ?? '(default)', ...(await tiny()), ...(await gru()) };
  console.log(`${'case'.padEnd(52)} ${'wall'.padStart(9)} ${'cpu'.padStart(9)} ${'cpu min'.padStart(9)}`);
  for (const [k, v] of Object.entries(res)) {
    const cell = (x) => x.toFixed(2).padStart(9);
    console.log(`${k.padEnd(52)} ${typeof v === 'object' ? `${cell(v.wall)} ${cell(v.cpu)}${v.cpuMin !== undefined ? ` ${cell(v.cpuMin)}` : ''}` : typeof v === 'number' ? cell(v) : v}`);
  }
  if (jsonAt > 0) require('fs').writeFileSync(process.argv[jsonAt + 1], JSON.stringify(res, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
