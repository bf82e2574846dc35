// Online training with eligibility traces: a diagonal-recurrence tanh RNN learns a leaky
// integrator (y_t = 0.9 y_{t-1} + 0.5 (x_t[0] - x_t[1])) with D_RTRL, forward in time,
// next to the same model trained with exact BPTT. On this model D_RTRL's gradients equal
// BPTT's, so both curves should fall alike; D_RTRL's memory does not grow with T.
// The weights are updated by bt.optim.SGD.
// Run: node examples/online-integrator.js [--quick] [--plot online.svg] [--seed n] [--iters n]   (after npm run build:ts)
// Target: D_RTRL's mean loss over the last 10 iterations is below 20% of its first loss
// (--quick: 40% after 60 iterations).
'use strict';
const bt = require('braintrace');
const { mulberry32 } = require('./lib/rng');
const { parseArgs, checkTarget } = require('./lib/cli');
const { writePlot } = require('./lib/svgplot');

const args = parseArgs();
const ITERS = args.iters ?? (args.quick ? 60 : 200);
const SEED = args.seed ?? 0;
const FRAC = args.quick ? 0.4 : 0.2;

const I = 2;
const H = 16;
class DiagRNN extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [I, H]);
    this.b = new bt.ParamState(bt.init.zeros(), [H]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: 0.5, high: 0.95 }), [H]); // self-recurrence per unit
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 1]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro);
  }
}


function batch(T, B, rnd) {
  const xs = new Float32Array(T * B * I);
  const ys = new Float32Array(T * B);
  const acc = new Float32Array(B);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const a = rnd() - 0.5;
      const c = rnd() - 0.5;
      xs.set([a, c], (t * B + b) * I);
      acc[b] = 0.9 * acc[b] + 0.5 * (a - c);
      ys[t * B + b] = acc[b];
    }
  }
  return {
    xs: { data: xs, shape: [T, B, I], dtype: 'float32' },
    ys: { data: ys, shape: [T, B, 1], dtype: 'float32' },
  };
}

async function train(algorithm, label) {
  const T = 50;
  const B = 16;
  const learner = bt.compile(new DiagRNN(), algorithm, { inputShape: [I], batchSize: B, seed: SEED });
  const rnd = mulberry32(SEED + 7);
  const optimizer = new bt.optim.SGD({ lr: 0.01 });
  const curve = [];
  for (let it = 0; it < ITERS; it++) {
    const { xs, ys } = batch(T, B, rnd);
    learner.resetState();
    const { grads, losses } = await learner.etraceGrad(xs, ys, { loss: 'mse', reduction: 'mean' });
    curve.push(losses.reduce((s, v) => s + v, 0) / T);
    learner.applyGradients(grads, optimizer); // native SGD, in place
    if (it % 40 === 0 || it === ITERS - 1) console.log(`${label.padEnd(7)} iteration ${String(it).padStart(3)}  loss ${curve[it].toFixed(5)}`);
  }
  learner.dispose();
  optimizer.dispose();
  return curve;
}

async function main() {
  const online = await train(bt.D_RTRL, 'D_RTRL');
  const exact = await train(bt.BPTT, 'BPTT');
  const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
  const first = online[0];
  const last = mean(online.slice(-10));
  console.log(
    `backend: ${bt.info().backend}; D_RTRL loss ${first.toFixed(4)} -> ${last.toFixed(4)}; BPTT -> ${mean(exact.slice(-10)).toFixed(4)} (means of the last 10 iterations)`,
  );
  if (args.plot) {
    writePlot(args.plot, {
      title: 'Leaky integrator, diagonal tanh RNN: D_RTRL vs BPTT',
      panels: [
        {
          xlabel: 'iteration',
          ylabel: 'MSE loss',
          logY: true,
          series: [
            { name: 'D_RTRL', y: online },
            { name: 'BPTT', y: exact },
          ],
        },
      ],
    });
    console.log(`plot written to ${args.plot}`);
  }
  checkTarget(last < FRAC * first, `final D_RTRL loss ${last.toFixed(4)} < ${FRAC} x initial ${first.toFixed(4)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
