#!/usr/bin/env node
// pp_prop against BPTT on 3 x LIF(512), B 128: both learners in one process, interleaved
// rounds (each round: 3 etraceGrad calls of T 10 per learner), process CPU time per step,
// median of 7 rounds. `rec` times the recurrent layers (LIF3(..., { recurrent: true })),
// otherwise the feed-forward ones. Run with BRAINTRACE_NUM_THREADS=1 for one thread (CPU
// time then counts one core); BRAINTRACE_SPLIT_CONCAT=0 turns split concats off.
// Run: npx tsc -p tsconfig.build.json && BRAINTRACE_NUM_THREADS=1 node scripts/bench-pp-bptt.js [rec]
'use strict';
const path = require('path');
const bt = require(path.join(__dirname, '..'));
const { LIF3, randomArray } = require('./lib/bench-models');

const B = 128, I = 512, H = 512, O = 4, T = 10, ROUNDS = 7, CALLS = 3;
const rec = process.argv[2] === 'rec';
const seq = (n, seed, scale = 1) => ({
  data: randomArray(T * B * n, seed).map((v) => v * scale),
  shape: [T, B, n],
  dtype: 'float32',
});
const xs = seq(I, 10, 1.5);
const ys = seq(O, 11);
const learners = {
  pp: bt.compile(new LIF3(I, H, O, { recurrent: rec }), bt.pp_prop, { inputShape: [I], batchSize: B, seed: 9, decayOrRank: 0.9 }),
  bptt: bt.compile(new LIF3(I, H, O, { recurrent: rec }), bt.BPTT, { inputShape: [I], batchSize: B, seed: 9 }),
};

(async () => {
  for (const l of Object.values(learners)) await l.etraceGrad(xs, ys, { loss: 'mse' }); // warm-up
  const ms = { pp: [], bptt: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of Object.keys(learners)) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < CALLS; i++) await learners[k].etraceGrad(xs, ys, { loss: 'mse' });
      const c = process.cpuUsage(c0);
      ms[k].push((c.user + c.system) / 1e3 / (CALLS * T));
    }
  }
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const pp = med(ms.pp), bptt = med(ms.bptt);
  console.log(
    `${rec ? 'recurrent' : 'feed-forward'} 3xLIF(512) B${B}, threads ${bt.info().threads}, ` +
      `split concats ${process.env.BRAINTRACE_SPLIT_CONCAT === '0' ? 'off' : 'on'}: ` +
      `pp_prop ${pp.toFixed(3)} ms/step CPU, BPTT ${bptt.toFixed(3)}, ratio ${(pp / bptt).toFixed(3)}`,
  );
  for (const l of Object.values(learners)) l.dispose();
})();
