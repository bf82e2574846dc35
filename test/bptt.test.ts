/**
 * BPTT through the learner interface: exact gradients of a whole sequence in
 * one native call, checked against central finite differences of the same
 * objective (float64, non-zero initial state, relative error < 1e-6).
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { prng } from './helpers/native';

/** GRU cell with a linear readout (three ETP matmuls, one plain readout). */
class GRU extends bt.Module {
  wz: bt.ParamState;
  wr: bt.ParamState;
  wh: bt.ParamState;
  bz = new bt.ParamState(bt.init.normal({ std: 0.1 }), [4]);
  br = new bt.ParamState(bt.init.normal({ std: 0.1 }), [4]);
  bh = new bt.ParamState(bt.init.normal({ std: 0.1 }), [4]);
  wo = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  bo = new bt.ParamState(bt.init.normal({ std: 0.1 }), [2]);
  h = new bt.HiddenState([4]);
  constructor(nIn: number) {
    super();
    this.wz = new bt.ParamState(bt.init.xavierNormal(), [nIn + 4, 4]);
    this.wr = new bt.ParamState(bt.init.xavierNormal(), [nIn + 4, 4]);
    this.wh = new bt.ParamState(bt.init.orthogonal(), [nIn + 4, 4]);
  }
  update(x: Tensor): Tensor {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz, this.bz));
    const r = bt.sigmoid(bt.matmul(xh, this.wr, this.br));
    const cand = bt.tanh(bt.matmul(bt.concat([x, bt.mul(r, h)], -1), this.wh, this.bh));
    const hNew = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, cand));
    this.h.value = hNew;
    return bt.add(bt.matmul(hNew, this.wo.value), this.bo.value);
  }
}

/**
 * Leaky integrate-and-fire neurons with an exponential current synapse:
 *   I' = α I + x W_in + s W_rec,   V' = β V + (1 − β) I' − θ s,   s = H(V − θ) of the previous V.
 * Two hidden states (I, V). The spike feeds the reset and the recurrent input
 * through stopGradient, so the model is piecewise smooth and finite differences
 * that do not flip a spike see its exact derivative; the surrogate derivative
 * of `spike` itself is checked in the op table.
 */
class LIF extends bt.Module {
  win: bt.ParamState;
  wrec = new bt.ParamState(bt.init.normal({ std: 0.3 }), [5, 5]);
  wout = new bt.ParamState(bt.init.xavierNormal(), [5, 2]);
  i = new bt.HiddenState([5]);
  v = new bt.HiddenState([5]);
  constructor(nIn: number) {
    super();
    this.win = new bt.ParamState(bt.init.normal({ mean: 0.8, std: 0.6 }), [nIn, 5]);
  }
  update(x: Tensor): Tensor {
    const theta = 1;
    const s = bt.stopGradient(bt.spike(bt.sub(this.v.value, theta), bt.surrogate.arctan()));
    const iNew = bt.add(bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.win)), bt.matmul(s, this.wrec.value));
    const vNew = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.1)), bt.mul(s, theta));
    this.i.value = iNew;
    this.v.value = vNew;
    return bt.matmul(vNew, this.wout.value);
  }
}

function randomTensor(shape: number[], rnd: () => number, scale = 1, offset = 0): bt.HostTensor {
  const n = bt.numel(shape);
  return { data: Float64Array.from({ length: n }, () => offset + scale * (2 * rnd() - 1)), shape, dtype: 'float64' };
}

/** Central finite differences of the objective with respect to every weight element. */
async function fdGrads(
  learner: bt.Learner,
  h0: Record<string, bt.HostTensor>,
  xs: bt.HostTensor,
  ys: bt.HostTensor,
  opts: bt.GradOptions,
): Promise<Record<string, Float64Array>> {
  const base = learner.params();
  const objective = async (params: Record<string, bt.HostTensor>): Promise<number> => {
    learner.setParams(params);
    learner.setStates(h0);
    const { losses } = await learner.etraceGrad(xs, ys, opts);
    const sum = losses.reduce((s, v) => s + v, 0);
    return opts.reduction === 'mean' ? sum / losses.length : sum;
  };
  const out: Record<string, Float64Array> = {};
  for (const [path, p] of Object.entries(base)) {
    const g = new Float64Array(p.data.length);
    for (let i = 0; i < p.data.length; i++) {
      const h = 1e-5 * Math.max(1, Math.abs(p.data[i]));
      const shifted = (d: number) => {
        const data = Float64Array.from(p.data);
        data[i] += d;
        return { ...base, [path]: { data, shape: p.shape, dtype: p.dtype } };
      };
      g[i] = ((await objective(shifted(h))) - (await objective(shifted(-h)))) / (2 * h);
    }
    out[path] = g;
  }
  learner.setParams(base);
  return out;
}

function relErr(a: Record<string, bt.HostTensor>, b: Record<string, Float64Array>): number {
  let num = 0;
  let den = 0;
  for (const [path, g] of Object.entries(b)) {
    expect(a[path]).toBeDefined();
    g.forEach((v, i) => {
      num = Math.max(num, Math.abs(a[path].data[i] - v));
      den = Math.max(den, Math.abs(v));
    });
  }
  expect(den).toBeGreaterThan(1e-3); // the check is not vacuous
  return num / den;
}

async function checkAgainstFd(
  learner: bt.Learner,
  h0: Record<string, bt.HostTensor>,
  xs: bt.HostTensor,
  ys: bt.HostTensor,
  opts: bt.GradOptions,
): Promise<number> {
  learner.setStates(h0);
  const { grads, losses } = await learner.etraceGrad(xs, ys, opts);
  expect(losses.length).toBe(xs.shape[0]);
  const fd = await fdGrads(learner, h0, xs, ys, opts);
  return relErr(grads, fd);
}

describe('BPTT gradients against finite differences (float64)', () => {
  test('GRU, mse, mean over time, non-zero initial state', async () => {
    const rnd = prng(11);
    const learner = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], batchSize: 2, dtype: 'float64', seed: 5 });
    try {
      const h0 = { h: randomTensor([2, 4], rnd, 0.8) };
      const xs = randomTensor([7, 2, 3], rnd);
      const ys = randomTensor([7, 2, 2], rnd);
      expect(await checkAgainstFd(learner, h0, xs, ys, { loss: 'mse', reduction: 'mean' })).toBeLessThan(1e-6);
    } finally {
      learner.dispose();
    }
  });

  test('GRU, crossEntropy with class indices, sum over time', async () => {
    const rnd = prng(12);
    const learner = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], batchSize: 3, dtype: 'float64', seed: 6 });
    try {
      const h0 = { h: randomTensor([3, 4], rnd, 0.8) };
      const xs = randomTensor([5, 3, 3], rnd);
      const labels: bt.HostTensor = {
        data: Float64Array.from({ length: 15 }, () => Math.floor(rnd() * 2)),
        shape: [5, 3],
        dtype: 'float64',
      };
      expect(await checkAgainstFd(learner, h0, xs, labels, { loss: 'crossEntropy', reduction: 'sum' })).toBeLessThan(1e-6);
    } finally {
      learner.dispose();
    }
  });

  test('GRU, custom traced loss function', async () => {
    const rnd = prng(13);
    const learner = bt.compile(new GRU(2), bt.BPTT, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 7 });
    try {
      const h0 = { h: randomTensor([2, 4], rnd, 0.5) };
      const xs = randomTensor([4, 2, 2], rnd);
      const ys = randomTensor([4, 2, 2], rnd);
      const huberish = (y: Tensor, t: Tensor) => bt.sum(bt.softplus(bt.mul(bt.sub(y, t), 2)));
      expect(await checkAgainstFd(learner, h0, xs, ys, { loss: huberish })).toBeLessThan(1e-6);
    } finally {
      learner.dispose();
    }
  });

  test('two-state LIF with an exponential synapse, spikes occurring, sumSquares', async () => {
    const rnd = prng(21);
    const learner = bt.compile(new LIF(3), bt.BPTT, { inputShape: [3], batchSize: 2, dtype: 'float64', seed: 8 });
    try {
      const h0 = { i: randomTensor([2, 5], rnd, 0.5, 0.5), v: randomTensor([2, 5], rnd, 0.4, 0.5) };
      const xs = randomTensor([12, 2, 3], rnd, 0.5, 0.7);
      const ys = randomTensor([12, 2, 2], rnd);
      // The forward pass must actually spike (else the reset path is never exercised).
      learner.setStates(h0);
      const outs = await learner.run(xs);
      expect(outs.shape).toEqual([12, 2, 2]);
      const vs: number[] = [];
      learner.setStates(h0);
      for (let t = 0; t < 12; t++) {
        learner.update({ data: xs.data.slice(t * 6, t * 6 + 6), shape: [2, 3], dtype: 'float64' });
        vs.push(...learner.states().v.data);
      }
      const spikes = vs.filter((v) => v > 1).length;
      expect(spikes).toBeGreaterThan(0);
      // No membrane value sits so close to threshold that a finite-difference step flips a spike.
      expect(Math.min(...vs.map((v) => Math.abs(v - 1)))).toBeGreaterThan(1e-4);
      expect(await checkAgainstFd(learner, h0, xs, ys, { loss: 'sumSquares' })).toBeLessThan(1e-6);
    } finally {
      learner.dispose();
    }
  });
});

describe('learner interface', () => {
  test('same seed gives the same weights; different seeds differ', () => {
    const a = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], seed: 1 });
    const b = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], seed: 1 });
    const c = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], seed: 2 });
    try {
      expect(Array.from(a.params().wz.data)).toEqual(Array.from(b.params().wz.data));
      expect(Array.from(a.params().wz.data)).not.toEqual(Array.from(c.params().wz.data));
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  test('run() over a sequence equals T calls of update(), and resetState() restores the start', async () => {
    const rnd = prng(3);
    const learner = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], batchSize: 2, dtype: 'float64' });
    try {
      const xs = randomTensor([5, 2, 3], rnd);
      const whole = await learner.run(xs);
      const hAfter = learner.states().h;
      learner.resetState();
      expect(Array.from(learner.states().h.data)).toEqual(new Array(8).fill(0));
      for (let t = 0; t < 5; t++) {
        const y = learner.update({ data: xs.data.slice(t * 6, t * 6 + 6), shape: [2, 3], dtype: 'float64' });
        expect(Array.from(y.data)).toEqual(Array.from(whole.data.slice(t * 4, t * 4 + 4)));
      }
      expect(Array.from(learner.states().h.data)).toEqual(Array.from(hAfter.data));
    } finally {
      learner.dispose();
    }
  });

  test('setParams is used by the next call; bad input gives typed errors naming the argument', async () => {
    const learner = bt.compile(new GRU(3), bt.BPTT, { inputShape: [3], batchSize: 2, dtype: 'float64' });
    try {
      const p = learner.params();
      const zeros = { data: new Float64Array(8), shape: [4, 2], dtype: 'float64' as const };
      learner.setParams({ wo: zeros, bo: { data: new Float64Array(2), shape: [2], dtype: 'float64' } });
      const y = learner.update({ data: new Float64Array(6).fill(1), shape: [2, 3], dtype: 'float64' });
      expect(Array.from(y.data)).toEqual([0, 0, 0, 0]);
      expect(() => learner.setParams({ wo: p.wz })).toThrow(bt.ShapeError);
      expect(() => learner.setParams({ wo: p.wz })).toThrow(/'wo' expects shape \(4, 2\); got \(7, 4\)/);
      expect(() => learner.setParams({ nope: zeros })).toThrow(/unknown path 'nope'/);
      const xs = { data: new Float64Array(12), shape: [2, 2, 3], dtype: 'float64' as const };
      await expect(learner.etraceGrad({ data: new Float64Array(8), shape: [2, 2, 2], dtype: 'float64' }, xs)).rejects.toThrow(
        /xs: expected a sequence of shape \(T, 2, 3\)/,
      );
      await expect(learner.etraceGrad(xs, { data: new Float64Array(8), shape: [2, 2, 2], dtype: 'float64' }, { loss: 'bogus' as never })).rejects.toThrow(
        /loss must be one of/,
      );
      await expect(learner.etraceGrad(xs, { data: new Float64Array(12), shape: [2, 2, 3], dtype: 'float64' })).rejects.toThrow(
        bt.ShapeError,
      );
    } finally {
      learner.dispose();
    }
    expect(() => learner.params()).toThrow(/disposed/);
  });
});
