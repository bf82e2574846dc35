#!/usr/bin/env node
// Benchmark: per-step time and peak native memory of BPTT, D_RTRL and pp_prop on a
// 3-layer LIF network and on a GRU for T in {50, 100, 200, 400, 1000}, plus the
// achieved bandwidth of the D_RTRL trace step next to a STREAM-like copy measured in
// the same run. Prints a table and writes bench-results/bench.json.
// Run: npm run bench   (builds the TypeScript first). Options: --quick (T up to 200).
// `npm run bench -- --compare [...]` runs the comparison with PyTorch and OpenBLAS instead
// (scripts/bench-compare.js; its options are listed there and in docs/benchmarks.md).
'use strict';
const fs = require('fs');
const path = require('path');
const bt = require('..');
const { loadBinding } = require('../dist/runtime/native');

if (process.argv.includes('--compare')) {
  // `npm run bench -- --compare`: braintrace next to PyTorch and OpenBLAS (scripts/bench-compare.js).
  require('./bench-compare').main(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
  return;
}

const { LIF3: LIF3Model, GRU: GRUModel, randomArray } = require('./lib/bench-models');

const quick = process.argv.includes('--quick');
const Ts = quick ? [50, 100, 200] : [50, 100, 200, 400, 1000];
const B = 16;
const IN = 32;
const H = 64;

function randomSeq(T, width, seed) {
  return { data: randomArray(T * B * width, seed, 1.5), shape: [T, B, width], dtype: 'float32' };
}

async function measure(make, algo, opts, T) {
  const binding = loadBinding();
  const learner = bt.compile(make(), algo, { inputShape: [IN], batchSize: B, seed: 0, ...opts });
  const xs = randomSeq(T, IN, 1);
  const ys = randomSeq(T, 4, 2);
  await learner.etraceGrad(randomSeq(2, IN, 3), randomSeq(2, 4, 4)); // warm-up: sessions built
  learner.resetState();
  const before = binding.memoryStats().liveBytes;
  binding.resetPeakMemory();
  const t0 = process.hrtime.bigint();
  await learner.etraceGrad(xs, ys);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const peak = binding.memoryStats().peakBytes - before;
  learner.dispose();
  return { msPerStep: ms / T, peakExtraBytes: peak, residentBytes: before };
}

/** STREAM-like copy bandwidth (GB/s, read + write) of a typed-array memcpy. */
function copyBandwidth(bytes) {
  const a = new Float32Array(bytes / 4).fill(1);
  const b = new Float32Array(bytes / 4);
  let best = Infinity;
  for (let r = 0; r < 20; r++) {
    const t0 = process.hrtime.bigint();
    b.set(a);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (2 * bytes) / best / 1e9;
}

/** D_RTRL trace step: a leaky layer with I = O = 256, B = 64, float32; GB/s of trace traffic. */
async function traceBandwidth() {
  const I = 256;
  const O = 256;
  const BB = 64;
  class Leaky extends bt.Module {
    constructor() {
      super();
      this.w = new bt.ParamState(bt.init.normal({ std: 0.05 }), [I, O]);
      this.h = new bt.HiddenState([O]);
    }
    update(x) {
      this.h.value = bt.add(bt.mul(this.h.value, 0.9), bt.matmul(x, this.w));
      return this.h.value;
    }
  }
  const learner = bt.compile(new Leaky(), bt.D_RTRL, { inputShape: [I], batchSize: BB });
  const T = 20;
  const xs = { data: new Float32Array(T * BB * I).fill(0.01), shape: [T, BB, I], dtype: 'float32' };
  const ys = { data: new Float32Array(T * BB * O), shape: [T, BB, O], dtype: 'float32' };
  await learner.etraceGrad(xs, ys);
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = process.hrtime.bigint();
    await learner.etraceGrad(xs, ys);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9 / T);
  }
  learner.dispose();
  const traceBytes = BB * I * O * 4;
  return { secondsPerStep: best, traceBytes, gbPerSecond: (2 * traceBytes) / best / 1e9 };
}

async function main() {
  const info = bt.info();
  const models = [
    ['lif3', () => new LIF3Model(IN, H)],
    ['gru', () => new GRUModel(IN, H)],
  ];
  const algos = [
    ['BPTT', bt.BPTT, {}],
    ['D_RTRL', bt.D_RTRL, {}],
    ['pp_prop', bt.pp_prop, { decayOrRank: 0.9 }],
  ];
  const rows = [];
  console.log(`backend ${info.backend}, threads ${info.threads}, B = ${B}, input ${IN}, hidden ${H}, float32`);
  console.log('model   algorithm    T     ms/step   peak extra native memory (KiB)');
  for (const [mname, make] of models) {
    for (const [aname, algo, opts] of algos) {
      for (const T of Ts) {
        const r = await measure(make, algo, opts, T);
        rows.push({ model: mname, algorithm: aname, T, ...r });
        console.log(
          `${mname.padEnd(7)} ${aname.padEnd(10)} ${String(T).padStart(5)} ${r.msPerStep.toFixed(3).padStart(10)} ${(r.peakExtraBytes / 1024)
            .toFixed(1)
            .padStart(12)}`,
        );
      }
    }
  }
  const binding = loadBinding();
  const copy = copyBandwidth(64 << 20);
  const gbs = (bytes, seconds) => bytes / seconds / 1e9;
  // Native copies on the thread pool: 64 MiB (out of cache, STREAM's rule) and the size of
  // the trace (16 MiB, which may stay in a large last-level cache, as the trace does).
  const nCopy = binding.benchmarkCopy(64 << 20, 20);
  const nCopyTrace = binding.benchmarkCopy(16 << 20, 50);
  const nativeCopy = gbs(nCopy.bytesMoved, nCopy.secondsPerRep);
  const nativeCopyTrace = gbs(nCopyTrace.bytesMoved, nCopyTrace.secondsPerRep);
  const kern = binding.benchmarkTraceStep({ batch: 64, inputs: 256, outputs: 256, states: 1, dtype: 'float32', reps: 50 });
  const kernel = gbs(kern.bytesMoved, kern.secondsPerStep);
  const trace = await traceBandwidth();
  const pct = (a, b) => `${((100 * a) / b).toFixed(0)}%`;
  console.log(`STREAM-like copy (JS TypedArray.set, 64 MiB, 1 thread): ${copy.toFixed(1)} GB/s`);
  console.log(
    `STREAM-like copy (native, ${info.threads} threads): 64 MiB ${nativeCopy.toFixed(1)} GB/s, ` +
      `16 MiB ${nativeCopyTrace.toFixed(1)} GB/s`,
  );
  console.log(
    `D_RTRL trace kernel (benchmarkTraceStep, B 64, I = O = 256, S 1, float32, 16 MiB trace): ` +
      `${(kern.secondsPerStep * 1e3).toFixed(3)} ms/step, ${kernel.toFixed(1)} GB/s = ` +
      `${pct(kernel, nativeCopy)} of the native 64 MiB copy, ${pct(kernel, nativeCopyTrace)} of the native 16 MiB copy, ` +
      `${pct(kernel, copy)} of the JS copy`,
  );
  console.log(
    `D_RTRL full online step (etraceGrad, same model, ${(trace.traceBytes / 2 ** 20).toFixed(0)} MiB trace): ` +
      `${(trace.secondsPerStep * 1e3).toFixed(3)} ms/step, ${trace.gbPerSecond.toFixed(1)} GB/s of trace traffic ` +
      `(${pct(trace.gbPerSecond, copy)} of the JS copy, ${pct(trace.gbPerSecond, nativeCopy)} of the native 64 MiB copy)`,
  );
  const out = {
    date: new Date().toISOString(),
    info,
    B,
    input: IN,
    hidden: H,
    rows,
    copyGBs: copy,
    nativeCopyGBs: nativeCopy,
    nativeCopyTraceSizeGBs: nativeCopyTrace,
    traceKernel: { secondsPerStep: kern.secondsPerStep, bytesMoved: kern.bytesMoved, gbPerSecond: kernel },
    traceKernelRatio: kernel / nativeCopy,
    traceStep: trace,
  };
  fs.mkdirSync(path.join(__dirname, '..', 'bench-results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, '..', 'bench-results', 'bench.json'), JSON.stringify(out, null, 2));
  console.log('wrote bench-results/bench.json');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
