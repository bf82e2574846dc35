#!/usr/bin/env node
// braintrace side of `npm run bench -- --compare` (scripts/bench-compare.js): a child process
// (started with BRAINTRACE_NUM_THREADS set, which sizes the native thread pool at load) that
// answers one JSON request per stdin line with one JSON line on stdout:
//   request  {"id": 3, "op": "gemm", ...params}
//   response {"id": 3, "ok": true, "result": {...}}  or  {"id": 3, "ok": false, "error": "..."}
// Every timed op returns `seconds` (wall time per unit: per matmul, per call or per step, as
// the op says) and `cpuSeconds` (process CPU time, all threads, per unit) of one round;
// the driver interleaves rounds with the peers' and takes medians. Learners and data are
// built at the first request of a given shape (with one warm-up call) and reused.
'use strict';
const readline = require('readline');
const bt = require('../..');
const { loadBinding } = require('../../dist/runtime/native');
const { DiagRNN, LIF3, MatMul, randomArray } = require('../lib/bench-models');

const binding = loadBinding();
const cache = new Map();

function seq(T, B, width, seed, scale = 1, dtype = 'float32') {
  const Ctor = dtype === 'float64' ? Float64Array : Float32Array;
  return { data: randomArray(T * B * width, seed, scale, Ctor), shape: [T, B, width], dtype };
}

/** Whether `v` is a Promise (or another thenable): what `timed` awaits. */
function isThenable(v) {
  return v !== null && typeof v === 'object' && typeof v.then === 'function';
}

/**
 * Wall and CPU seconds of `fn()` run `reps` times, divided by `reps * units`. A Promise that
 * `fn` returns is awaited; a synchronous call (`learner.update`) is not: awaiting a plain
 * value costs a microtask turn per call, which a user calling it synchronously never pays.
 */
async function timed(reps, units, fn) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < reps; r++) {
    const p = fn();
    if (isThenable(p)) await p; // never `await` a plain value: that is a microtask turn too
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { seconds: wall / (reps * units), cpuSeconds: (c.user + c.system) / 1e6 / (reps * units) };
}

/**
 * Builds (once per key) a learner plus its data, runs one warm-up call, and measures the
 * native bytes it holds (`residentBytes`: sessions, weights, states, traces), the extra
 * peak native memory of one call (`peakExtraBytes`: BPTT's tape; about 0 for online learners),
 * and the bytes of its eligibility traces (`traceBytes`, 0 for BPTT) and states (`stateBytes`).
 */
async function setup(key, build) {
  if (cache.has(key)) return cache.get(key);
  const live0 = binding.memoryStats().liveBytes;
  const s = build();
  await s.call(); // warm-up: sessions compiled, buffers allocated
  const live1 = binding.memoryStats().liveBytes;
  binding.resetPeakMemory();
  await s.call();
  s.residentBytes = live1 - live0;
  s.peakExtraBytes = Math.max(0, binding.memoryStats().peakBytes - live1);
  const bytesOf = (rec) => Object.values(rec).reduce((a, t) => a + t.data.byteLength, 0);
  s.traceBytes = typeof s.learner.traces === 'function' ? bytesOf(s.learner.traces()) : 0;
  s.stateBytes = bytesOf(s.learner.states());
  cache.set(key, s);
  return s;
}

/** What setup measured: native bytes held and peak extra of a call, trace and state bytes. */
function memOf(s) {
  return { residentBytes: s.residentBytes, peakExtraBytes: s.peakExtraBytes, traceBytes: s.traceBytes, stateBytes: s.stateBytes };
}

/** A GRU (bt.nn.GRUCell, biases) with a linear readout (no bias): torch.nn.GRU + Linear's shapes. */
class GRUModel extends bt.Module {
  constructor(inputs, hidden, outputs) {
    super();
    this.cell = new bt.nn.GRUCell(inputs, hidden);
    this.ro = new bt.nn.Linear(hidden, outputs, { bias: false });
  }
  update(x) {
    return this.ro.forward(this.cell.update(x));
  }
}

const ops = {
  info() {
    return { ...bt.info(), env: { BRAINTRACE_NUM_THREADS: process.env.BRAINTRACE_NUM_THREADS ?? null } };
  },

  /** Native STREAM-like copy of `bytes` (best of `reps`): GB/s of read + write traffic. */
  copy({ bytes, reps }) {
    const r = binding.benchmarkCopy(bytes, reps);
    return { gbPerSecond: r.bytesMoved / r.secondsPerRep / 1e9, seconds: r.secondsPerRep, bytesMoved: r.bytesMoved };
  },

  /**
   * y = x W, x (m, k), W (k, n), float32, through a compiled model whose step is one matmul:
   * `update(x)` per matmul when steps = 1, else `run(xs)` over `steps` steps (per matmul).
   */
  async gemm({ m, n, k, steps, reps }) {
    const s = await setup(`gemm:${m}:${n}:${k}:${steps}`, () => {
      const learner = bt.compile(new MatMul(k, n), bt.BPTT, { inputShape: [k], batchSize: m, seed: 1 });
      if (steps === 1) {
        const x = { data: randomArray(m * k, 2, 1), shape: [m, k], dtype: 'float32' };
        return { learner, call: () => learner.update(x) };
      }
      const xs = seq(steps, m, k, 2);
      return { learner, call: () => learner.run(xs) };
    });
    return { ...(await timed(reps, steps, s.call)), ...memOf(s) };
  },

  /**
   * The bare CPU GEMM (binding benchmarkGemm, default kernel, float32, up to the pool's
   * threads): wall seconds per product, best of `reps` (no CPU time: the hook times itself).
   */
  gemmHook({ m, n, k, reps }) {
    const r = binding.benchmarkGemm({ M: m, N: n, K: k, dtype: 'float32', reps, threads: binding.info().threads });
    return { seconds: r.secondsPerRep, cpuSeconds: null };
  },

  /** GRU BPTT: etraceGrad (forward + backward, mse summed over time) per call of T steps. */
  async gruBptt({ B, I, H, O, T, reps }) {
    const s = await setup(`gru:${B}:${I}:${H}:${O}:${T}`, () => {
      const learner = bt.compile(new GRUModel(I, H, O), bt.BPTT, { inputShape: [I], batchSize: B, seed: 3 });
      const xs = seq(T, B, I, 4);
      const ys = seq(T, B, O, 5);
      return { learner, call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }) };
    });
    return { ...(await timed(reps, 1, s.call)), ...memOf(s) };
  },

  /** D_RTRL on DiagRNN: one etraceGrad over a window of T steps; seconds per step. */
  async drtrlDiag({ B, I, H, O, T, reps }) {
    const s = await setup(`drtrl:${B}:${I}:${H}:${O}:${T}`, () => {
      const learner = bt.compile(new DiagRNN(I, H, O), bt.D_RTRL, { inputShape: [I], batchSize: B, seed: 6 });
      const xs = seq(T, B, I, 7);
      const ys = seq(T, B, O, 8);
      return { learner, call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }) };
    });
    return { ...(await timed(reps, T, s.call)), ...memOf(s) };
  },

  /** The fused D_RTRL trace kernel alone (benchmarkTraceStep): best of `reps` steps. */
  traceKernel({ B, I, O, S, reps }) {
    // No CPU time: the call also allocates and fills the buffers, which a per-step CPU time would count.
    const r = binding.benchmarkTraceStep({ batch: B, inputs: I, outputs: O, states: S, dtype: 'float32', reps });
    return { seconds: r.secondsPerStep, cpuSeconds: null, bytesMoved: r.bytesMoved };
  },

  /**
   * 3 × LIF layers (`recurrent`: each layer also reads its own last spikes): etraceGrad of
   * `algo` ('pp_prop' | 'BPTT') over T steps; seconds per step.
   */
  async lif3({ algo, B, I, H, O, T, reps, recurrent = false }) {
    const s = await setup(`lif3:${algo}:${B}:${I}:${H}:${O}:${T}:${recurrent}`, () => {
      const Algo = algo === 'pp_prop' ? bt.pp_prop : bt.BPTT;
      const opts = algo === 'pp_prop' ? { decayOrRank: 0.9 } : {};
      const learner = bt.compile(new LIF3(I, H, O, { recurrent }), Algo, { inputShape: [I], batchSize: B, seed: 9, ...opts });
      const xs = seq(T, B, I, 10, 1.5);
      const ys = seq(T, B, O, 11);
      return { learner, call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }) };
    });
    return { ...(await timed(reps, T, s.call)), ...memOf(s) };
  },

  /**
   * Per-call overhead on a tiny D_RTRL model (DiagRNN, B 1): mode 'step' = learner.step (one
   * online step + SGD update, output: false) per call; 'grad1' = etraceGrad of 1 step per call;
   * 'update' = learner.update (forward only) per call; 'gradT' = one etraceGrad of T steps,
   * per step.
   */
  async tiny({ mode, I, H, O, T, reps }) {
    const s = await setup(`tiny:${mode}:${I}:${H}:${O}:${T}`, () => {
      const learner = bt.compile(new DiagRNN(I, H, O), bt.D_RTRL, { inputShape: [I], batchSize: 1, seed: 12 });
      const x1 = { data: randomArray(I, 13), shape: [1, I], dtype: 'float32' };
      const y1 = { data: randomArray(O, 14), shape: [1, O], dtype: 'float32' };
      const xs1 = { ...x1, shape: [1, 1, I] };
      const ys1 = { ...y1, shape: [1, 1, O] };
      if (mode === 'step') {
        const optimizer = new bt.optim.SGD({ lr: 1e-6 });
        return { learner, call: () => learner.step(x1, y1, { optimizer, output: false }) };
      }
      if (mode === 'grad1') return { learner, call: () => learner.etraceGrad(xs1, ys1) };
      if (mode === 'update') return { learner, call: () => learner.update(x1) };
      const xs = seq(T, 1, I, 15);
      const ys = seq(T, 1, O, 16);
      return { learner, call: () => learner.etraceGrad(xs, ys) };
    });
    // Per-call rows are dominated by JS: a fresh case's first few thousand calls time V8's
    // interpreter and baseline tiers and its background compiles (measured: 180 us per step
    // over the first 300 calls, 27 us after 2400), so each case first runs 4000 calls untimed.
    if (mode !== 'gradT' && !s.warmed) {
      for (let r = 0; r < 4000; r++) {
        const p = s.call();
        if (isThenable(p)) await p;
      }
      s.warmed = true;
    }
    return await timed(reps, mode === 'gradT' ? T : 1, s.call);
  },

  /**
   * The --verify data: a float64 DiagRNN D_RTRL learner's weights, initial state, data and
   * etraceGrad gradients (mse, summed over time), for the torch loop to reproduce.
   */
  async verifyDrtrl({ B, I, H, O, T }) {
    const learner = bt.compile(new DiagRNN(I, H, O), bt.D_RTRL, { inputShape: [I], batchSize: B, dtype: 'float64', seed: 17 });
    const xs = seq(T, B, I, 18, 2, 'float64');
    const ys = seq(T, B, O, 19, 1, 'float64');
    const params = learner.params();
    const states = learner.states();
    const { grads, losses } = await learner.etraceGrad(xs, ys, { loss: 'mse' });
    learner.dispose();
    const plain = (t) => ({ data: Array.from(t.data), shape: t.shape });
    const rec = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, plain(v)]));
    return { params: rec(params), h0: plain(states.h), xs: plain(xs), ys: plain(ys), grads: rec(grads), losses: Array.from(losses) };
  },
};

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { id: null, ok: false, error: `bad request JSON: ${e.message}` };
  }
  const f = ops[req.op];
  if (typeof f !== 'function') return { id: req.id, ok: false, error: `unknown op ${JSON.stringify(req.op)}` };
  try {
    return { id: req.id, ok: true, result: await f(req) };
  } catch (e) {
    return { id: req.id, ok: false, error: String(e && e.stack ? e.stack : e) };
  }
}

// Requests are handled one at a time, in order (the driver sends the next after the answer).
const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => process.stdout.write(JSON.stringify(await handle(line)) + '\n'));
});
rl.on('close', () => {
  chain.then(() => {
    for (const s of cache.values()) s.learner?.dispose();
    process.exit(0);
  });
});
