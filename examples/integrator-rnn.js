// Integrator regression with a vanilla (Elman) RNN, trained online with D_RTRL and, from
// the same initial weights and the same data, with exact BPTT (the reference's
// examples/101-integrator-rnn.py and drtrl/01-basics-integrator, smaller).
//
// Task: x_t = mu + noise_t (one channel, noise ~ N(0, 1), per-sequence mean mu ~ U(-1.5, 1.5)),
//       target y_t = dt · Σ_{s<=t} x_s (a noisy integrator), T = 25 steps, dt = 0.04.
// Model: bt.nn.VanillaRNNCell(1, 64) (h' = tanh([x, h] W + b)) + bt.nn.Linear(64, 1) readout.
// Algorithms: bt.D_RTRL vs bt.BPTT, Adam (bt.optim.Adam when present, else examples/lib/adam.js),
//       lr 5e-3, batch 32, 1000 iterations each. The vanilla cell's h reaches h' only
//       through W, so its group has zero diagonal recurrence: D_RTRL keeps the
//       instantaneous term x ⊗ df (a one-step truncated gradient of the recurrent
//       weights), while BPTT is exact — the plot shows how much that costs on a task that
//       needs memory (here little: the readout of h_{t-1} already carries y_{t-1}).
// Target (checked): final D_RTRL loss (mean of the last 50 iterations) < 5% of the
//       initial loss and within 4x of BPTT's final loss (same window); --quick (100
//       iterations, last 20): < 30% of the initial loss and within 5x of BPTT's.
// Run: node examples/integrator-rnn.js [--quick] [--plot integrator.svg]   (after npm run build:ts)
'use strict';
const bt = require('braintrace');
const { Rng } = require('./lib/rng');
const { Progress } = require('./lib/progress');
const { writePlot } = require('./lib/svgplot');
const { makeAdam, applyGradients } = require('./lib/adam');
const { parseArgs, checkTarget } = require('./lib/cli');

const args = parseArgs();
const H = 64;
const T = 25;
const B = 32;
const DT = 0.04;
const ITERS = args.iters ?? (args.quick ? 100 : 1000);
const LR = 5e-3;
const SEED = args.seed ?? 0;
const FRAC = args.quick ? 0.3 : 0.05;
const FACTOR = args.quick ? 5 : 4;

class IntegratorRNN extends bt.Module {
  constructor() {
    super();
    this.rnn = new bt.nn.VanillaRNNCell(1, H);
    this.out = new bt.nn.Linear(H, 1);
  }
  update(x) {
    return this.out.forward(this.rnn.update(x));
  }
}

function batch(rng) {
  const xs = new Float32Array(T * B);
  const ys = new Float32Array(T * B);
  for (let b = 0; b < B; b++) {
    const mu = rng.uniform(-1.5, 1.5);
    let acc = 0;
    for (let t = 0; t < T; t++) {
      const x = mu + rng.normal();
      acc += DT * x;
      xs[t * B + b] = x;
      ys[t * B + b] = acc;
    }
  }
  return { xs: { data: xs, shape: [T, B, 1], dtype: 'float32' }, ys: { data: ys, shape: [T, B, 1], dtype: 'float32' } };
}

async function train(algorithm, label) {
  const learner = bt.compile(new IntegratorRNN(), algorithm, { inputShape: [1], batchSize: B, seed: SEED });
  const { opt, source } = makeAdam(bt, { lr: LR });
  const rng = new Rng(1000 + SEED); // same data stream for both algorithms
  const curve = [];
  const bar = new Progress(ITERS, { label: label.padEnd(6) });
  const t0 = Date.now();
  for (let it = 0; it < ITERS; it++) {
    const { xs, ys } = batch(rng);
    learner.resetState();
    const { grads, losses } = await learner.etraceGrad(xs, ys, { loss: 'mse', reduction: 'mean' });
    curve.push(losses.reduce((s, v) => s + v, 0) / T);
    applyGradients(learner, grads, opt);
    bar.tick(it + 1, { loss: curve[it] });
  }
  bar.done();
  learner.dispose();
  if (typeof opt.dispose === 'function') opt.dispose();
  return { curve, secs: (Date.now() - t0) / 1000, source };
}

const TAIL = args.quick ? 20 : 50;
const tail = (c, n = TAIL) => c.slice(-n).reduce((s, v) => s + v, 0) / Math.min(n, c.length);

async function main() {
  console.log(`integrator regression: VanillaRNNCell(1, ${H}) + Linear, T ${T}, batch ${B}, ${ITERS} iterations (backend ${bt.info().backend})`);
  const online = await train(bt.D_RTRL, 'D_RTRL');
  const exact = await train(bt.BPTT, 'BPTT');
  console.log(`optimizer: Adam lr ${LR} (${online.source})`);
  const first = online.curve[0];
  const lastOn = tail(online.curve);
  const lastEx = tail(exact.curve);
  console.log(`D_RTRL loss ${first.toFixed(4)} -> ${lastOn.toFixed(4)} (${online.secs.toFixed(1)} s); BPTT ${exact.curve[0].toFixed(4)} -> ${lastEx.toFixed(4)} (${exact.secs.toFixed(1)} s)`);
  if (args.plot) {
    writePlot(args.plot, {
      title: `Integrator regression, VanillaRNNCell(1, ${H}): D_RTRL vs BPTT`,
      panels: [
        {
          xlabel: 'iteration',
          ylabel: 'MSE loss',
          logY: true,
          series: [
            { name: 'D_RTRL', y: online.curve },
            { name: 'BPTT', y: exact.curve },
          ],
        },
      ],
    });
    console.log(`plot written to ${args.plot}`);
  }
  checkTarget(
    lastOn < FRAC * first && lastOn < FACTOR * lastEx,
    `final D_RTRL loss ${lastOn.toFixed(4)} < ${FRAC} x initial ${first.toFixed(4)} and < ${FACTOR} x BPTT's ${lastEx.toFixed(4)}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
