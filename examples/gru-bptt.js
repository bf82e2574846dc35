// A GRU trained by exact BPTT on a toy regression: predict a leaky running sum of the
// input channels' difference. Gradients come from one native call per batch of
// sequences; the weights are updated by bt.optim.SGD.
// Run: node examples/gru-bptt.js [--quick] [--plot gru.svg] [--seed n] [--iters n]   (after npm run build:ts)
// Target: the mean loss of the last 10 iterations is below half the first iteration's loss.
'use strict';
const bt = require('braintrace');
const { mulberry32 } = require('./lib/rng');
const { parseArgs, checkTarget } = require('./lib/cli');
const { writePlot } = require('./lib/svgplot');

const args = parseArgs();
const ITERS = args.iters ?? (args.quick ? 60 : 150);
const SEED = args.seed ?? 0;

const H = 8;
const I = 2;
class GRU extends bt.Module {
  constructor() {
    super();
    this.wz = new bt.ParamState(bt.init.xavierNormal(), [I + H, H]);
    this.wr = new bt.ParamState(bt.init.xavierNormal(), [I + H, H]);
    this.wh = new bt.ParamState(bt.init.orthogonal(), [I + H, H]);
    this.wo = new bt.ParamState(bt.init.xavierNormal(), [H, 1]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz));
    const r = bt.sigmoid(bt.matmul(xh, this.wr));
    const c = bt.tanh(bt.matmul(bt.concat([x, bt.mul(r, h)], -1), this.wh));
    this.h.value = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, c));
    return bt.matmul(this.h.value, this.wo);
  }
}

// Data: xs (T, B, 2) uniform in [-1, 1]; target y_t = 0.8 y_{t-1} + 0.3 (x_t[0] - x_t[1]).
function batch(T, B, rnd) {
  const xs = new Float32Array(T * B * I);
  const ys = new Float32Array(T * B);
  const acc = new Float32Array(B);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const a = 2 * rnd() - 1;
      const c = 2 * rnd() - 1;
      xs.set([a, c], (t * B + b) * I);
      acc[b] = 0.8 * acc[b] + 0.3 * (a - c);
      ys[t * B + b] = acc[b];
    }
  }
  return {
    xs: { data: xs, shape: [T, B, I], dtype: 'float32' },
    ys: { data: ys, shape: [T, B, 1], dtype: 'float32' },
  };
}


async function main() {
  const T = 30;
  const B = 16;
  const learner = bt.compile(new GRU(), bt.BPTT, { inputShape: [I], batchSize: B, seed: SEED });
  const rnd = mulberry32(SEED + 1);
  const optimizer = new bt.optim.SGD({ lr: 0.5 });
  const curve = [];
  for (let it = 0; it < ITERS; it++) {
    const { xs, ys } = batch(T, B, rnd);
    learner.resetState();
    const { grads, losses } = await learner.etraceGrad(xs, ys, { loss: 'mse', reduction: 'mean' });
    const loss = losses.reduce((s, v) => s + v, 0) / T;
    curve.push(loss);
    learner.applyGradients(grads, optimizer); // native SGD, in place
    if (it % 25 === 0 || it === ITERS - 1) console.log(`iteration ${String(it).padStart(3)}  loss ${loss.toFixed(5)}`);
  }
  learner.dispose();
  optimizer.dispose();
  const first = curve[0];
  const tail = curve.slice(-10);
  const last = tail.reduce((s, v) => s + v, 0) / tail.length;
  console.log(`backend: ${bt.info().backend}; loss ${first.toFixed(4)} -> ${last.toFixed(4)} (mean of the last ${tail.length} iterations)`);
  if (args.plot) {
    writePlot(args.plot, {
      title: `GRU(${I}, ${H}) by BPTT: leaky running sum`,
      panels: [{ xlabel: 'iteration', ylabel: 'MSE loss', logY: true, series: [{ name: 'BPTT', y: curve }] }],
    });
    console.log(`plot written to ${args.plot}`);
  }
  checkTarget(last < 0.5 * first, `final loss ${last.toFixed(4)} < 0.5 x initial ${first.toFixed(4)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
