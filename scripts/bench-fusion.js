#!/usr/bin/env node
// Per-step time of the element-wise-heavy cases of issue 9 item 3, for comparing builds:
//   lif3       scripts/bench.js's LIF3 (B 16, input 32, hidden 64), BPTT, T 200
//   lif512-fwd 3 x LIF(512), B 128, input 512: forward only (learner.run), T 50
//   lif512     the same with BPTT (etraceGrad), T 50
//   gru        scripts/bench.js's GRU (B 16, input 32, hidden 64), BPTT, T 200
// and, when named: lif512-pp_prop (pp_prop, T 20), gru-d_rtrl (D_RTRL, T 200), and pop-fwd /
// pop: a matmul-free LIF population of 8192 neurons, B 128 (4 MiB per float32 value, beyond
// L2), forward only / BPTT, T 20.
// float32. Prints one JSON line {case: ms of process CPU time (user + system) per step, the
// median of the reps}: CPU time, not wall time, so that other load on a shared machine does
// not count (run with BRAINTRACE_NUM_THREADS=1 for per-thread work).
// Usage: node scripts/bench-fusion.js [case ...] [--reps N]
// Compare builds interleaved, e.g. an old addon via BRAINTRACE_ADDON=/path/to/braintrace.node,
// fusion off via BRAINTRACE_FUSE=0 (see docs/architecture.md, "Element-wise fusion").
'use strict';
const bt = require('..');

const argv = process.argv.slice(2);
const repsAt = argv.indexOf('--reps');
const reps = repsAt >= 0 ? Number(argv[repsAt + 1]) : 5;
const cases = argv.filter((a, i) => !a.startsWith('--') && (repsAt < 0 || i !== repsAt + 1));

// LIF3 (inputs, hidden, outputs) and GRU (inputs, hidden, outputs): the shared benchmark models.
const { LIF3, GRU } = require('./lib/bench-models');

// Element-wise only: a LIF population driven by its input directly (no matmul), N neurons
// with a per-neuron leak; the step is one long element-wise chain over (B, N).
class LIFPop extends bt.Module {
  constructor(n) {
    super();
    this.leak = new bt.ParamState(bt.init.uniform({ low: 0.8, high: 0.95 }), [n]);
    this.i = new bt.HiddenState([n]);
    this.v = new bt.HiddenState([n]);
  }
  update(x) {
    const s = bt.spike(bt.sub(this.v.value, 1), bt.surrogate.arctan());
    const iNew = bt.add(bt.mul(this.i.value, 0.8), x);
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, this.leak), bt.mul(iNew, 0.5)), s);
    return bt.spike(bt.sub(this.v.value, 1), bt.surrogate.arctan());
  }
}

function seq(T, B, width, seed) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { data: Float32Array.from({ length: T * B * width }, () => rnd() * 1.5), shape: [T, B, width], dtype: 'float32' };
}

const CASES = {
  lif3: { make: () => new LIF3(32, 64, 4), B: 16, IN: 32, OUT: 4, T: 200, grad: true },
  'lif512-fwd': { make: () => new LIF3(512, 512, 4), B: 128, IN: 512, OUT: 4, T: 50, grad: false },
  lif512: { make: () => new LIF3(512, 512, 4), B: 128, IN: 512, OUT: 4, T: 50, grad: true },
  gru: { make: () => new GRU(32, 64, 4), B: 16, IN: 32, OUT: 4, T: 200, grad: true },
  'lif512-pp_prop': {
    make: () => new LIF3(512, 512, 4), B: 128, IN: 512, OUT: 4, T: 20, grad: true, algo: 'pp_prop',
  },
  'gru-d_rtrl': { make: () => new GRU(32, 64, 4), B: 16, IN: 32, OUT: 4, T: 200, grad: true, algo: 'D_RTRL' },
};
CASES['pop-fwd'] = { make: () => new LIFPop(8192), B: 128, IN: 8192, OUT: 8192, T: 20, grad: false };
CASES.pop = { make: () => new LIFPop(8192), B: 128, IN: 8192, OUT: 8192, T: 20, grad: true };
const DEFAULT_CASES = ['lif3', 'lif512-fwd', 'lif512', 'gru'];

async function measure(c) {
  const algo = c.algo === undefined ? bt.BPTT : bt[c.algo];
  const opts = c.algo === 'pp_prop' ? { decayOrRank: 0.9 } : {};
  const learner = bt.compile(c.make(), algo, { inputShape: [c.IN], batchSize: c.B, seed: 0, ...opts });
  const xs = seq(c.T, c.B, c.IN, 1);
  const ys = seq(c.T, c.B, c.OUT, 2);
  const once = () => (c.grad ? learner.etraceGrad(xs, ys) : learner.run(xs));
  await once(); // warm-up: session built, buffers touched
  const times = [];
  for (let r = 0; r < reps; r++) {
    learner.resetState();
    const t0 = process.cpuUsage();
    await once();
    const d = process.cpuUsage(t0);
    times.push((d.user + d.system) / 1e3 / c.T);
  }
  learner.dispose();
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function main() {
  const out = {};
  for (const name of cases.length ? cases : DEFAULT_CASES) {
    if (!CASES[name]) throw new Error(`unknown case ${name} (one of ${Object.keys(CASES).join(', ')})`);
    out[name] = Number((await measure(CASES[name])).toFixed(4));
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
