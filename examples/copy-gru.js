// Copying (memory) task with a GRU trained online by D_RTRL (the reference's
// examples/100-gru-on-copying-task.py and drtrl/04-vjp-single-step, much smaller).
//
// Task: a random sequence of L = 4 symbols from an alphabet of K = 6 is shown (one-hot, one
//       symbol per step), then DELAY = 10 blank steps, then a recall cue is held on for L
//       steps, during which the network must output the L symbols in order.
//       T = L + DELAY + L = 18. Chance is 1/6 = 16.7% per symbol.
// Model: bt.nn.GRUCell(8, 64) (inputs: 6 symbols + blank + recall cue) + bt.nn.Linear(64, 6) logits.
// Algorithm: bt.D_RTRL (single-step learning signal), crossEntropy on the recall window
//       only (mask), Adam (bt.optim.Adam when present, else examples/lib/adam.js) lr 1e-2,
//       batch 32. Under D_RTRL the GRU's Wz and Wh carry eligibility traces through the
//       diagonal of ∂h'/∂h (the gate z lets a unit hold its value over the delay); Wr gets
//       its instantaneous gradient. D_RTRL reaches the target here, so no BPTT fallback.
// Target (checked): recall accuracy per symbol on 8 fresh held-out batches (1024 symbols)
//       >= 85% after 3000 iterations; --quick (DELAY 5, 400 iterations): >= 50%.
// Run: node examples/copy-gru.js [--quick] [--plot copy.svg]   (after npm run build:ts)
'use strict';
const bt = require('braintrace');
const { Rng } = require('./lib/rng');
const { writePlot } = require('./lib/svgplot');
const { makeAdam } = require('./lib/adam');
const { trainMasked, heldOutAccuracy } = require('./lib/train');
const { parseArgs, checkTarget } = require('./lib/cli');

const args = parseArgs();
const K = 6; // alphabet
const L = 4; // symbols to remember
const DELAY = args.quick ? 5 : 10;
const T = L + DELAY + L;
const I = K + 2; // symbols, blank, recall cue
const H = 64;
const B = 32;
const ITERS = args.iters ?? (args.quick ? 400 : 3000);
const EVAL_EVERY = args.quick ? 20 : 50;
const FINAL_EVAL_BATCHES = 8;
const LR = 1e-2;
const SEED = args.seed ?? 0;
const TARGET = args.quick ? 0.5 : 0.85;

class CopyGRU extends bt.Module {
  constructor() {
    super();
    this.gru = new bt.nn.GRUCell(I, H);
    this.out = new bt.nn.Linear(H, K);
  }
  update(x) {
    return this.out.forward(this.gru.update(x));
  }
}

// xs (T, B, I); ys class indices (T, B) (0 outside the recall window, where the mask is 0).
function batch(rng) {
  const xs = new Float32Array(T * B * I);
  const ys = new Float32Array(T * B);
  for (let b = 0; b < B; b++) {
    const seq = Array.from({ length: L }, () => rng.int(K));
    for (let t = 0; t < T; t++) {
      const o = (t * B + b) * I;
      if (t < L) xs[o + seq[t]] = 1;
      else if (t < L + DELAY) xs[o + K] = 1;
      else {
        xs[o + K + 1] = 1;
        ys[t * B + b] = seq[t - L - DELAY];
      }
    }
  }
  return { xs: { data: xs, shape: [T, B, I], dtype: 'float32' }, ys: { data: ys, shape: [T, B], dtype: 'float32' } };
}

const mask = Array.from({ length: T }, (_, t) => (t >= L + DELAY ? 1 : 0));

async function accuracy(learner, data) {
  learner.resetState();
  const out = await learner.run(data.xs); // logits (T, B, K)
  let ok = 0;
  let n = 0;
  for (let t = L + DELAY; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const o = (t * B + b) * K;
      let best = 0;
      for (let k = 1; k < K; k++) if (out.data[o + k] > out.data[o + best]) best = k;
      ok += best === data.ys.data[t * B + b] ? 1 : 0;
      n++;
    }
  }
  return ok / n;
}

async function main() {
  console.log(`copy task: ${L} symbols of ${K}, delay ${DELAY}, T ${T}; GRUCell(${I}, ${H}) + Linear; D_RTRL, batch ${B}, ${ITERS} iterations (backend ${bt.info().backend})`);
  const learner = bt.compile(new CopyGRU(), bt.D_RTRL, { inputShape: [I], batchSize: B, seed: SEED });
  const { opt, source } = makeAdam(bt, { lr: LR });
  const rng = new Rng(2000 + SEED);
  const evalData = batch(new Rng(999 + SEED));
  const { losses, accX, accY, secs } = await trainMasked({
    learner, batch, rng, iters: ITERS, label: 'D_RTRL', mask, opt, evalEvery: EVAL_EVERY, accuracy, evalData,
  });
  // final accuracy on FINAL_EVAL_BATCHES fresh held-out batches
  const finalAcc = await heldOutAccuracy(learner, accuracy, batch, new Rng(777 + SEED), FINAL_EVAL_BATCHES);
  learner.dispose();
  if (typeof opt.dispose === 'function') opt.dispose();
  console.log(`optimizer: Adam lr ${LR} (${source})`);
  console.log(`loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}; recall accuracy ${(100 * finalAcc).toFixed(1)}% on ${FINAL_EVAL_BATCHES * B * L} held-out symbols (chance ${(100 / K).toFixed(1)}%); ${secs.toFixed(1)} s`);
  if (args.plot) {
    writePlot(args.plot, {
      title: `Copy task (${L} symbols, delay ${DELAY}), GRUCell(${I}, ${H}), D_RTRL`,
      panels: [
        { xlabel: 'iteration', ylabel: 'cross-entropy (recall)', series: [{ name: 'loss', y: losses }] },
        {
          xlabel: 'iteration',
          ylabel: 'recall accuracy',
          yMin: 0,
          yMax: 1,
          series: [
            { name: 'accuracy', x: accX, y: accY },
            { name: 'chance', x: [0, ITERS], y: [1 / K, 1 / K], dash: '4 3', color: '#888888' },
          ],
        },
      ],
    });
    console.log(`plot written to ${args.plot}`);
  }
  checkTarget(finalAcc >= TARGET, `recall accuracy ${(100 * finalAcc).toFixed(1)}% >= ${100 * TARGET}%`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
