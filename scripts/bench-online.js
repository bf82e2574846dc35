#!/usr/bin/env node
// Benchmark of the online steps (issue 9, item 4): per-step time of pp_prop and BPTT on
// 3 x LIF(512), B 128; of D_RTRL on a diagonal (leaky) RNN, B 64, I = H = 256; and the
// D_RTRL trace kernel (benchmarkTraceStep, S = 1 and S = 2) next to the native copy
// bandwidth (its bound: the trace's bytes read + written / the measured 64 MiB copy rate).
// float32, medians of rounds.
//
// Run (after `npx tsc -p tsconfig.build.json`):
//   node scripts/bench-online.js [--rounds N] [--T N] [--cpu]
//   node scripts/bench-online.js --compare /abs/old/braintrace.node [--rounds N]
// --compare runs old and new binaries interleaved (one child process per round and binary,
// BRAINTRACE_ADDON selecting the binary) and prints both medians side by side.
'use strict';
const { execFileSync } = require('child_process');
const path = require('path');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const k = argv.indexOf(name);
  return k >= 0 ? argv[k + 1] : dflt;
};
const rounds = Number(opt('--rounds', 3));
const T = Number(opt('--T', 10));
const useCpu = argv.includes('--cpu');
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function randomSeq(shape, seed, scale) {
  let a = seed >>> 0;
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * scale;
  }
  return { data, shape, dtype: 'float32' };
}

async function measureOnce() {
  const bt = require('..');
  const { loadBinding } = require('../dist/runtime/native');
  const binding = loadBinding();
  const H = 512;
  const B = 128;
  // The benchmark models are defined once (scripts/lib/bench-models.js), loaded here so they
  // bind to this child's addon (BRAINTRACE_ADDON).
  const models = require('./lib/bench-models');
  class LIF3 extends models.LIF3 {
    constructor() {
      super(H, H, 8);
    }
  }
  class Leaky extends bt.Module {
    constructor() {
      super();
      this.w = new bt.ParamState(bt.init.normal({ std: 0.05 }), [256, 256]);
      this.h = new bt.HiddenState([256]);
    }
    update(x) {
      this.h.value = bt.add(bt.mul(this.h.value, 0.9), bt.matmul(x, this.w));
      return this.h.value;
    }
  }
  async function perStep(make, algo, opts, shapeIn, shapeOut, b, steps) {
    const learner = bt.compile(make(), algo, { inputShape: shapeIn, batchSize: b, seed: 0, ...opts });
    const xs = randomSeq([steps, b, ...shapeIn], 1, 1.5);
    const ys = randomSeq([steps, b, ...shapeOut], 2, 1);
    await learner.etraceGrad(randomSeq([2, b, ...shapeIn], 3, 1.5), randomSeq([2, b, ...shapeOut], 4, 1));
    learner.resetState();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await learner.etraceGrad(xs, ys);
    const wall = Number(process.hrtime.bigint() - t0) / 1e6 / steps;
    const c = process.cpuUsage(c0);
    // CPU time (user + system, every thread) per step under --cpu: less sensitive than wall
    // time to other processes on a shared machine; with 1 thread it is the step's cost.
    const ms = useCpu ? (c.user + c.system) / 1e3 / steps : wall;
    learner.dispose();
    return ms;
  }
  const r = {};
  r.ppLif = await perStep(() => new LIF3(), bt.pp_prop, { decayOrRank: 0.9 }, [H], [8], B, T);
  r.bpttLif = await perStep(() => new LIF3(), bt.BPTT, {}, [H], [8], B, T);
  r.drtrl = await perStep(() => new Leaky(), bt.D_RTRL, {}, [256], [256], 64, 2 * T);
  const nCopy = binding.benchmarkCopy(64 << 20, 20);
  r.copyGBs = nCopy.bytesMoved / nCopy.secondsPerRep / 1e9;
  const kern = binding.benchmarkTraceStep({ batch: 64, inputs: 256, outputs: 256, states: 1, dtype: 'float32', reps: 50 });
  r.kernelMs = kern.secondsPerStep * 1e3;
  r.boundMs = (kern.bytesMoved / (r.copyGBs * 1e9)) * 1e3;
  const kern2 = binding.benchmarkTraceStep({ batch: 64, inputs: 256, outputs: 256, states: 2, dtype: 'float32', reps: 10 });
  r.kernel2Ms = kern2.secondsPerStep * 1e3;
  r.bound2Ms = (kern2.bytesMoved / (r.copyGBs * 1e9)) * 1e3;
  r.threads = bt.info().threads;
  return r;
}

function runChild(addon) {
  const env = { ...process.env };
  if (addon) env.BRAINTRACE_ADDON = addon;
  else delete env.BRAINTRACE_ADDON;
  const out = execFileSync(process.execPath, [__filename, '--child', '--T', String(T), ...(useCpu ? ['--cpu'] : [])], { env, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

const KEYS = [
  ['ppLif', 'pp_prop 3 x LIF(512), B 128 (ms/step)'],
  ['bpttLif', 'BPTT    3 x LIF(512), B 128 (ms/step)'],
  ['drtrl', 'D_RTRL diag RNN B 64, I = H = 256 (ms/step)'],
  ['kernelMs', 'D_RTRL trace kernel B 64, 256 x 256 (ms)'],
  ['boundMs', '  its bound: 32 MiB / native copy rate (ms)'],
  ['kernel2Ms', 'same kernel with S = 2 (two-state groups) (ms)'],
  ['bound2Ms', '  its bound: 64 MiB / native copy rate (ms)'],
  ['copyGBs', 'native copy 64 MiB (GB/s)'],
];

async function main() {
  if (argv.includes('--child')) {
    console.log(JSON.stringify(await measureOnce()));
    return;
  }
  const old = opt('--compare', null);
  if (old && !path.isAbsolute(old)) throw new Error('--compare needs an absolute path');
  const res = { new: [], old: [] };
  for (let k = 0; k < rounds; k++) {
    if (old) res.old.push(runChild(old));
    res.new.push(runChild(null));
  }
  const threads = res.new[0].threads;
  console.log(`threads ${threads}, T ${T}, rounds ${rounds}, ${useCpu ? 'CPU' : 'wall'} time, medians${old ? ' (old = ' + old + ')' : ''}`);
  for (const [key, label] of KEYS) {
    const nv = median(res.new.map((r) => r[key]));
    const line = old ? `old ${median(res.old.map((r) => r[key])).toFixed(3).padStart(9)}   new ${nv.toFixed(3).padStart(9)}` : nv.toFixed(3).padStart(9);
    console.log(`${label.padEnd(46)} ${line}`);
  }
  const ratio = (set) => median(set.map((r) => r.ppLif / r.bpttLif));
  const kr = (set) => median(set.map((r) => r.kernelMs / r.boundMs));
  console.log(`pp_prop / BPTT per step: ${old ? 'old ' + ratio(res.old).toFixed(2) + '  new ' : ''}${ratio(res.new).toFixed(2)}`);
  console.log(`trace kernel / bound:    ${old ? 'old ' + kr(res.old).toFixed(2) + '  new ' : ''}${kr(res.new).toFixed(2)}`);
  const kr2 = (set) => median(set.map((r) => r.kernel2Ms / r.bound2Ms));
  console.log(`S 2 kernel / bound:      ${old ? 'old ' + kr2(res.old).toFixed(2) + '  new ' : ''}${kr2(res.new).toFixed(2)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
