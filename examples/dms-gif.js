// Delayed match-to-sample with a recurrent spiking network of GIF neurons, trained online
// with pp_prop (ES-D-RTRL) — the reference's examples/001-gif-snn-for-dms.py and
// pp_prop/02-neurons-alif-dms, scaled down to a CPU budget.
//
// Task: a sample stimulus (A or B) for 5 steps, a delay of DELAY steps, a test stimulus
//       (A or B) for 5 steps, then a response cue for 4 steps: answer "match" when the test
//       equals the sample, "non-match" otherwise (an XOR of the two stimuli: it needs the
//       sample held over the delay). Inputs are Bernoulli spike trains: 10 channels per
//       stimulus (rate 0.5 while on), 5 response-cue channels, background rate 0.02.
//       Chance is 50%.
// Model: bt.nn.RSNN(25, 64, 2, { neuron: 'gif', synapse: 'expon' }) — GIF neurons with a
//       spike-triggered adaptation current I2 (A2 < 0, τ_I2 from 30 to 150 steps: the trace
//       of the sample the network can read at test time) and recurrent connections, a leaky
//       rate readout (τ 5) giving the two logits.
// Algorithm: bt.pp_prop with decayOrRank 0.9, crossEntropy on the response window only
//       (mask), Adam (bt.optim.Adam when present, else examples/lib/adam.js) lr 5e-3, batch 32.
// Target (checked): accuracy (mean logits over the response window, on 8 fresh held-out
//       batches = 256 trials) >= 90% with DELAY 30 after 600 iterations; --quick (DELAY 10,
//       150 iterations): >= 75%. (Control, measured once: training only the readout, with
//       the layer's gradients zeroed, stays near chance at DELAY 30 — the network's weights
//       must learn, by pp_prop, to keep the sample.)
// Run: node examples/dms-gif.js [--quick] [--plot dms.svg]   (after npm run build:ts)
'use strict';
const bt = require('braintrace');
const { Rng } = require('./lib/rng');
const { writePlot } = require('./lib/svgplot');
const { makeAdam } = require('./lib/adam');
const { trainMasked, heldOutAccuracy, windowDecisionAccuracy } = require('./lib/train');
const { parseArgs, checkTarget } = require('./lib/cli');

const args = parseArgs();
const NSTIM = 10; // channels per stimulus
const NCUE = 5;
const I = 2 * NSTIM + NCUE;
const N = 64;
const STIM = 5;
const DELAY = args.quick ? 10 : 30;
const RESP = 4;
const T = STIM + DELAY + STIM + RESP;
const B = 32;
const ITERS = args.iters ?? (args.quick ? 150 : 600);
const EVAL_EVERY = args.quick ? 10 : 20;
const FINAL_EVAL_BATCHES = 8;
const LR = 5e-3;
const SEED = args.seed ?? 0;
const TARGET = args.quick ? 0.75 : 0.9;
const P_ON = 0.5;
const P_BG = 0.02;

function gifOptions() {
  const r = new Rng(31);
  return {
    tauMem: 10,
    tauI2: Array.from({ length: N }, () => r.uniform(30, 150)),
    A2: -0.3,
  };
}

function makeModel() {
  return new bt.nn.RSNN(I, N, 2, { neuron: 'gif', synapse: 'expon', tauSyn: 5, neuronOptions: gifOptions(), readoutTau: 5 });
}

// xs (T, B, I) spikes; ys class indices (T, B): 1 = match, 0 = non-match (read only on the response window).
function batch(rng) {
  const xs = new Float32Array(T * B * I);
  const ys = new Float32Array(T * B);
  for (let b = 0; b < B; b++) {
    const sample = rng.int(2);
    const test = rng.int(2);
    const label = sample === test ? 1 : 0;
    for (let t = 0; t < T; t++) {
      const o = (t * B + b) * I;
      let on = -1;
      if (t < STIM) on = sample;
      else if (t >= STIM + DELAY && t < 2 * STIM + DELAY) on = test;
      const cue = t >= 2 * STIM + DELAY;
      for (let c = 0; c < I; c++) {
        const active = c < 2 * NSTIM ? Math.floor(c / NSTIM) === on : cue;
        xs[o + c] = rng.bernoulli(active ? P_ON : P_BG) ? 1 : 0;
      }
      ys[t * B + b] = label;
    }
  }
  return { xs: { data: xs, shape: [T, B, I], dtype: 'float32' }, ys: { data: ys, shape: [T, B], dtype: 'float32' } };
}

const RESP0 = T - RESP;
const mask = Array.from({ length: T }, (_, t) => (t >= RESP0 ? 1 : 0));

const accuracy = windowDecisionAccuracy(RESP0);

async function main() {
  console.log(
    `DMS: stimulus ${STIM}, delay ${DELAY}, test ${STIM}, response ${RESP} (T ${T}); RSNN GIF ${I} -> ${N} -> 2; pp_prop(0.9), batch ${B}, ${ITERS} iterations (backend ${bt.info().backend})`,
  );
  const learner = bt.compile(makeModel(), bt.pp_prop, { inputShape: [I], batchSize: B, seed: SEED, decayOrRank: 0.9 });
  const { opt, source } = makeAdam(bt, { lr: LR });
  const rng = new Rng(3000 + SEED);
  const evalData = batch(new Rng(998 + SEED));
  const { losses, accX, accY, secs } = await trainMasked({
    learner, batch, rng, iters: ITERS, label: 'pp_prop', mask, opt, evalEvery: EVAL_EVERY, accuracy, evalData,
  });
  // final accuracy on FINAL_EVAL_BATCHES fresh held-out batches
  const finalAcc = await heldOutAccuracy(learner, accuracy, batch, new Rng(776 + SEED), FINAL_EVAL_BATCHES);
  learner.dispose();
  if (typeof opt.dispose === 'function') opt.dispose();
  console.log(`optimizer: Adam lr ${LR} (${source})`);
  console.log(`loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}; accuracy ${(100 * finalAcc).toFixed(1)}% on ${FINAL_EVAL_BATCHES * B} held-out trials (chance 50%); ${secs.toFixed(1)} s`);
  if (args.plot) {
    writePlot(args.plot, {
      title: `Delayed match-to-sample (delay ${DELAY}), GIF RSNN ${N}, pp_prop(0.9)`,
      panels: [
        { xlabel: 'iteration', ylabel: 'cross-entropy (response)', series: [{ name: 'loss', y: losses }] },
        {
          xlabel: 'iteration',
          ylabel: 'accuracy',
          yMin: 0,
          yMax: 1,
          series: [
            { name: 'accuracy', x: accX, y: accY },
            { name: 'chance', x: [0, ITERS], y: [0.5, 0.5], dash: '4 3', color: '#888888' },
          ],
        },
      ],
    });
    console.log(`plot written to ${args.plot}`);
  }
  checkTarget(finalAcc >= TARGET, `accuracy ${(100 * finalAcc).toFixed(1)}% >= ${100 * TARGET}%`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
