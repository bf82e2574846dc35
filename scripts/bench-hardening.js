#!/usr/bin/env node
// Cost of the non-finite checks and of cancellation: etraceGrad with nonFinite 'error'
// (every input copied into a step is scanned, every loss and the gradient accumulators
// are checked after each step) against 'allow' (no checks), for D_RTRL and BPTT; an
// optimizer step with its dry run ('error') against none ('allow'); and the time from
// abort() to the rejection of a long call.
// Run: npm run build:ts && node scripts/bench-hardening.js
'use strict';
const bt = require('..');

const B = 16;
const I = 64;
const H = 256;
const T = 300;

class RNN extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [I, H]);
    this.u = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.elementWise(this.u, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

async function best(reps, fn) {
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

async function main() {
  const xs = bt.tensor(new Float32Array(T * B * I).map((_, i) => Math.sin(i)), [T, B, I]);
  const ys = bt.tensor(new Float32Array(T * B * 2), [T, B, 2]);
  for (const [name, Algo] of [['D_RTRL', bt.D_RTRL], ['BPTT', bt.BPTT]]) {
    // Both learners alive, measured alternately, 12 runs each (the machine's noise is
    // larger than the checks' cost: compare the minima and the medians).
    const ls = {};
    const runs = { error: [], allow: [] };
    for (const nonFinite of ['error', 'allow']) {
      ls[nonFinite] = bt.compile(new RNN(), Algo, { inputShape: [I], batchSize: B, nonFinite });
      await ls[nonFinite].etraceGrad(xs, ys);
    }
    for (let rep = 0; rep < 12; rep++)
      for (const nonFinite of rep % 2 ? ['error', 'allow'] : ['allow', 'error'])
        runs[nonFinite].push(await best(1, () => ls[nonFinite].etraceGrad(xs, ys)));
    for (const l of Object.values(ls)) l.dispose();
    const ms = {};
    for (const k of ['error', 'allow']) {
      const a = runs[k].sort((x, y) => x - y);
      ms[k] = `min ${a[0].toFixed(1)} / median ${a[6].toFixed(1)}`;
    }
    console.log(`${name} etraceGrad T=${T} B=${B} I=${I} H=${H} float32: nonFinite 'error' ${ms.error} ms, 'allow' ${ms.allow} ms`);
  }
  const n = 1 << 22;
  const p = { a: bt.tensor(new Float32Array(n).fill(0.5), [n]) };
  const g = { a: bt.tensor(new Float32Array(n).fill(0.01), [n]) };
  const opt = new bt.optim.Adam({ lr: 1e-3 });
  const ms = {};
  for (const nonFinite of ['error', 'allow']) ms[nonFinite] = await best(7, () => opt.step(p, g, { nonFinite }));
  console.log(`Adam step, 2^22 float32 parameters: nonFinite 'error' ${ms.error.toFixed(2)} ms, 'allow' ${ms.allow.toFixed(2)} ms`);
  opt.dispose();

  const long = 20000;
  const lx = bt.tensor(new Float32Array(long * B * I).map((_, i) => Math.sin(i)), [long, B, I]);
  const ly = bt.tensor(new Float32Array(long * B * 2), [long, B, 2]);
  for (const [name, Algo] of [['D_RTRL', bt.D_RTRL], ['BPTT', bt.BPTT]]) {
    const l = bt.compile(new RNN(), Algo, { inputShape: [I], batchSize: B });
    const ac = new AbortController();
    let at = 0;
    const err = await l
      .etraceGrad(lx, ly, {
        signal: ac.signal,
        onProgress: (q) => {
          if (at === 0 && q.done >= 100) {
            at = performance.now();
            ac.abort();
          }
        },
      })
      .catch((e) => e);
    console.log(`${name} etraceGrad T=${long}: abort() to rejection ${(performance.now() - at).toFixed(1)} ms (${err.name}, stepsDone ${err.stepsDone})`);
    l.dispose();
  }
}

// Abort latency at a large size: D_RTRL B 64, I 256, H 512 (a 33 MB trace per relation).
async function large() {
  const [b, i, h] = [64, 256, 512];
  class Big extends bt.Module {
    constructor() {
      super();
      this.w = new bt.ParamState(bt.init.xavierNormal(), [i, h]);
      this.u = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [h]);
      this.ro = new bt.ParamState(bt.init.xavierNormal(), [h, 2]);
      this.h = new bt.HiddenState([h]);
    }
    update(x) {
      const hv = this.h.value;
      this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.elementWise(this.u, (y) => bt.mul(y, hv))));
      return bt.matmul(this.h.value, this.ro.value);
    }
  }
  const T2 = 2000;
  const xs = bt.tensor(new Float32Array(T2 * b * i).map((_, k) => Math.sin(k)), [T2, b, i]);
  const ys = bt.tensor(new Float32Array(T2 * b * 2), [T2, b, 2]);
  const l = bt.compile(new Big(), bt.D_RTRL, { inputShape: [i], batchSize: b });
  const ac = new AbortController();
  let at = 0;
  let t0 = 0;
  const err = await l
    .etraceGrad(xs, ys, {
      signal: ac.signal,
      onProgress: (q) => {
        if (t0 === 0) t0 = performance.now();
        if (at === 0 && q.done >= 20) {
          at = performance.now();
          ac.abort();
        }
      },
    })
    .catch((e) => e);
  const end = performance.now();
  const perStep = (at - t0) / Math.max(1, err.stepsDone - 1);
  console.log(
    `D_RTRL etraceGrad B=${b} I=${i} H=${h} T=${T2}: abort() to rejection ${(end - at).toFixed(1)} ms ` +
      `(${err.name}, stepsDone ${err.stepsDone}, about ${perStep.toFixed(1)} ms per step)`,
  );
  l.dispose();
}

main()
  .then(large)
  .catch((e) => {
  console.error(e);
  process.exit(1);
});
