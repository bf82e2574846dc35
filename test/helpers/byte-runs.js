// Shared by the child scripts that compare two runs byte for byte (fusion-run.js,
// split-run.js): deterministic input sequences, a tensor's bytes as hex, and the runs
// themselves (every model with BPTT, D_RTRL and pp_prop, float64 and float32: two
// etraceGrad calls' losses, outputs, gradients and states, then a forward run).
'use strict';
const bt = require('../..');

/** A (T, B, width) sequence of values in [-0.5, 1.5) from a fixed generator (mulberry32). */
function seq(T, B, width, seed, dtype) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const Ctor = dtype === 'float64' ? Float64Array : Float32Array;
  return { data: Ctor.from({ length: T * B * width }, () => rnd() * 2 - 0.5), shape: [T, B, width], dtype };
}

/** A tensor's bytes as a hex string. */
const hex = (t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

/**
 * Runs `models` ([name, make] pairs; inputs of width `IN`, 2 outputs, batch `B`) with every
 * algorithm in both dtypes: per key `dtype/model/algo`, the hex of two etraceGrad calls of
 * `T` steps and of one run of `runT` steps.
 */
async function runAll(models, { B, IN, T, runT }) {
  const out = {};
  const algos = [
    ['bptt', bt.BPTT, {}],
    ['d_rtrl', bt.D_RTRL, {}],
    ['pp_prop', bt.pp_prop, { decayOrRank: 0.9 }],
  ];
  for (const dtype of ['float64', 'float32']) {
    for (const [mname, make] of models) {
      for (const [aname, algo, opts] of algos) {
        const learner = bt.compile(make(), algo, { inputShape: [IN], batchSize: B, dtype, seed: 7, ...opts });
        const rec = {};
        for (let call = 0; call < 2; call++) {
          const r = await learner.etraceGrad(seq(T, B, IN, 11 + call, dtype), seq(T, B, 2, 23 + call, dtype));
          rec[`losses${call}`] = Buffer.from(r.losses.buffer).toString('hex');
          rec[`outputs${call}`] = hex(r.outputs);
          for (const [p, g] of Object.entries(r.grads)) rec[`grad${call}.${p}`] = hex(g);
          for (const [p, s] of Object.entries(learner.states())) rec[`state${call}.${p}`] = hex(s);
        }
        rec.run = hex(await learner.run(seq(runT, B, IN, 31, dtype)));
        out[`${dtype}/${mname}/${aname}`] = rec;
        learner.dispose();
      }
    }
  }
  return out;
}

/** Runs `main`, printing an error's stack and exiting 1 when it fails. */
function runMain(main) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e));
    process.exit(1);
  });
}

module.exports = { seq, hex, runAll, runMain };
