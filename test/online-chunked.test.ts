/**
 * Online steps that do only what they need (issue 9, item 4), float64:
 *  - pp_prop's dense weight gradient is accumulated over a ring of C contractions as one
 *    GEMM (C chosen from the sizes, 1..64): one call of T steps equals the per-step path
 *    (T one-step calls, each flushing its single contraction) for T below, at and across
 *    chunk boundaries (any C <= 64), over several calls, in multi-step windows, and after a
 *    call cancelled mid-chunk (its pending contractions are dropped with it);
 *  - stacked groups share one unstopped reverse sweep plus short per-group sweeps: three
 *    stacked layers (the lower one with two members, i' feeding v') give D_RTRL == BPTT
 *    where D_RTRL is exact, and pp_prop == BPTT at T = 1; with a non-temporal gain between
 *    layers (it reaches members: its exact gradient comes from the shared unstopped sweep)
 *    pp_prop and D_RTRL == BPTT at T = 1.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';

const B = 3;
const NI = 4;

/** Leaky layer with a dense, biased drive, feeding a second leaky layer and a readout. */
class TwoLeaky extends bt.Module {
  w1 = new bt.ParamState(bt.init.normal({ std: 0.6 }), [NI, 5]);
  b1 = new bt.ParamState(bt.init.normal({ std: 0.3 }), [5]);
  w2 = new bt.ParamState(bt.init.normal({ std: 0.6 }), [5, 3]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [3, 2]);
  h1 = new bt.HiddenState([5]);
  h2 = new bt.HiddenState([3]);
  update(x: Tensor): Tensor {
    this.h1.value = bt.tanh(bt.add(bt.mul(this.h1.value, 0.6), bt.matmul(x, this.w1, this.b1)));
    this.h2.value = bt.add(bt.mul(this.h2.value, 0.5), bt.matmul(this.h1.value, this.w2));
    return bt.matmul(this.h2.value, this.ro.value);
  }
}

/** Three stacked layers: LIF-like (i, v; i' feeds v') below two memoryless tanh layers. */
class Stack3 extends bt.Module {
  w1 = new bt.ParamState(bt.init.normal({ mean: 0.3, std: 0.5 }), [NI, 4]);
  w2 = new bt.ParamState(bt.init.normal(), [4, 4]);
  w3 = new bt.ParamState(bt.init.normal(), [4, 3]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [3, 2]);
  i = new bt.HiddenState([4]);
  v = new bt.HiddenState([4]);
  r2 = new bt.HiddenState([4]);
  r3 = new bt.HiddenState([3]);
  update(x: Tensor): Tensor {
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w1));
    this.i.value = iNew;
    this.v.value = bt.add(bt.mul(this.v.value, 0.9), bt.tanh(bt.mul(iNew, 0.5)));
    this.r2.value = bt.tanh(bt.matmul(this.v.value, this.w2));
    this.r3.value = bt.tanh(bt.matmul(this.r2.value, this.w3));
    return bt.matmul(this.r3.value, this.ro.value);
  }
}

/** Stack3 with a gain between layers 1 and 2: a non-temporal param that reaches members. */
class Stack3Gain extends Stack3 {
  a = new bt.ParamState(bt.init.normal({ mean: 1, std: 0.3 }), [4]);
  update(x: Tensor): Tensor {
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w1));
    this.i.value = iNew;
    this.v.value = bt.add(bt.mul(this.v.value, 0.9), bt.tanh(bt.mul(iNew, 0.5)));
    this.r2.value = bt.tanh(bt.matmul(bt.mul(this.v.value, this.a.value), this.w2));
    this.r3.value = bt.tanh(bt.matmul(this.r2.value, this.w3));
    return bt.matmul(this.r3.value, this.ro.value);
  }
}

function seq(T: number, width: number, seed: number): bt.HostTensor {
  const d = new Float64Array(T * B * width).map((_, k) => Math.sin(0.37 * k + seed) + 0.3 * Math.cos(1.7 * k * seed));
  return bt.tensor(d, [T, B, width], 'float64');
}

function slice(t: bt.HostTensor, a: number, b: number): bt.HostTensor {
  const n = t.data.length / t.shape[0];
  return { data: t.data.slice(a * n, b * n), shape: [b - a, ...t.shape.slice(1)], dtype: t.dtype };
}

type Grads = Record<string, bt.HostTensor>;

function addInto(acc: Grads, g: Grads): void {
  for (const k of Object.keys(g)) {
    if (!acc[k]) acc[k] = { ...g[k], data: Float64Array.from(g[k].data) };
    else g[k].data.forEach((v, i) => ((acc[k].data as Float64Array)[i] += v));
  }
}

function relErr(a: Grads, b: Grads): number {
  let num = 0;
  let den = 0;
  for (const k of Object.keys(b)) {
    b[k].data.forEach((v, i) => {
      num += (a[k].data[i] - v) ** 2;
      den += v * v;
    });
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

const PP = { decayOrRank: 0.7 };

function learner(
  make: () => bt.Module,
  algo: 'pp_prop' | 'D_RTRL' | 'BPTT' = 'pp_prop',
  extra: Record<string, unknown> = {},
): bt.Learner {
  const o = { inputShape: [NI], batchSize: B, dtype: 'float64' as const, seed: 5, ...extra };
  if (algo === 'pp_prop') return bt.compile(make(), bt.pp_prop, { ...o, ...PP });
  if (algo === 'D_RTRL') return bt.compile(make(), bt.D_RTRL, o);
  return bt.compile(make(), bt.BPTT, o);
}

/** Gradients of steps [a, b) taken one step per call (each call flushes its one contraction). */
async function perStep(l: bt.Learner, xs: bt.HostTensor, ys: bt.HostTensor, a: number, b: number): Promise<Grads> {
  const acc: Grads = {};
  for (let t = a; t < b; t++) addInto(acc, (await l.etraceGrad(slice(xs, t, t + 1), slice(ys, t, t + 1), { loss: 'mse' })).grads);
  return acc;
}

describe('pp_prop: the chunked dense gradient equals the per-step path', () => {
  test.each([1, 5, 63, 64, 65, 131])('T = %i in one call', async (T) => {
    const xs = seq(T, NI, 1);
    const ys = seq(T, 2, 2);
    const one = learner(() => new TwoLeaky());
    const ref = learner(() => new TwoLeaky());
    try {
      const g = (await one.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      const r = await perStep(ref, xs, ys, 0, T);
      expect(Array.from(g.w1.data).some((v) => v !== 0)).toBe(true);
      expect(relErr(g, r)).toBeLessThan(1e-12);
      // the traces after the call are the same too
      const ta = (one as bt.OnlineLearner).traces();
      const tb = (ref as bt.OnlineLearner).traces();
      for (const k of Object.keys(tb)) expect(Array.from(ta[k].data)).toEqual(Array.from(tb[k].data));
    } finally {
      one.dispose();
      ref.dispose();
    }
  });

  test('several calls (70 + 1 + 66 steps) continue the traces and restart the ring', async () => {
    const T = 137;
    const xs = seq(T, NI, 3);
    const ys = seq(T, 2, 4);
    const l = learner(() => new TwoLeaky());
    const ref = learner(() => new TwoLeaky());
    try {
      for (const [a, b] of [
        [0, 70],
        [70, 71],
        [71, 137],
      ]) {
        const g = (await l.etraceGrad(slice(xs, a, b), slice(ys, a, b), { loss: 'mse' })).grads;
        expect(relErr(g, await perStep(ref, xs, ys, a, b))).toBeLessThan(1e-12);
      }
    } finally {
      l.dispose();
      ref.dispose();
    }
  });

  test('multi-step windows (chunkSize 4, 70 windows) equal one window per call', async () => {
    const T = 280;
    const xs = seq(T, NI, 5);
    const ys = seq(T, 2, 6);
    const l = learner(() => new TwoLeaky(), 'pp_prop', { vjpMethod: 'multi-step' });
    const ref = learner(() => new TwoLeaky(), 'pp_prop', { vjpMethod: 'multi-step' });
    try {
      const g = (await (l as bt.OnlineLearner).etraceGrad(xs, ys, { loss: 'mse', chunkSize: 4 })).grads;
      const acc: Grads = {};
      for (let t = 0; t < T; t += 4)
        addInto(
          acc,
          (await (ref as bt.OnlineLearner).etraceGrad(slice(xs, t, t + 4), slice(ys, t, t + 4), { loss: 'mse', chunkSize: 4 })).grads,
        );
      expect(relErr(g, acc)).toBeLessThan(1e-12);
    } finally {
      l.dispose();
      ref.dispose();
    }
  });

  test('a call cancelled mid-chunk drops its pending contractions; the next call is exact', async () => {
    const T = 60000;
    const K = 70;
    const xs = seq(T, NI, 7);
    const ys = seq(T, 2, 8);
    const l = learner(() => new TwoLeaky()) as bt.OnlineLearner;
    const ref = learner(() => new TwoLeaky()) as bt.OnlineLearner;
    try {
      const ac = new AbortController();
      const err = await l
        .etraceGrad(xs, ys, { loss: 'mse', signal: ac.signal, onProgress: (p) => p.done >= 37 && ac.abort() })
        .then(
          () => null,
          (e: unknown) => e as { stepsDone?: number },
        );
      expect(err).not.toBeNull();
      const done = err!.stepsDone ?? 0;
      expect(done).toBeGreaterThanOrEqual(37);
      expect(done).toBeLessThan(T - K);
      // The reference starts from the same states and traces (and trace count).
      ref.setStates(l.states());
      ref.setTraces(l.traces(), l.traceSteps());
      const g = (await l.etraceGrad(slice(xs, done, done + K), slice(ys, done, done + K), { loss: 'mse' })).grads;
      expect(relErr(g, await perStep(ref, xs, ys, done, done + K))).toBeLessThan(1e-12);
    } finally {
      l.dispose();
      ref.dispose();
    }
  });
});

describe('stacked groups: one shared reverse sweep', () => {
  test('three stacked layers: D_RTRL equals BPTT (T = 9)', async () => {
    const T = 9;
    const xs = seq(T, NI, 9);
    const ys = seq(T, 2, 10);
    const d = learner(() => new Stack3(), 'D_RTRL');
    const b = learner(() => new Stack3(), 'BPTT');
    try {
      const gd = (await d.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      const gb = (await b.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      expect(Array.from(gd.w1.data).some((v) => v !== 0)).toBe(true);
      expect(relErr(gd, gb)).toBeLessThan(1e-9);
    } finally {
      d.dispose();
      b.dispose();
    }
  });

  test.each(['pp_prop', 'D_RTRL'] as const)('a non-temporal gain reaching the stacked members: %s equals BPTT at T = 1', async (algo) => {
    const xs = seq(1, NI, 13);
    const ys = seq(1, 2, 14);
    const o = learner(() => new Stack3Gain(), algo);
    const b = learner(() => new Stack3Gain(), 'BPTT');
    try {
      const go = (await o.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      const gb = (await b.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      expect(Array.from(go.a.data).some((v) => v !== 0)).toBe(true);
      expect(relErr(go, gb)).toBeLessThan(1e-12);
    } finally {
      o.dispose();
      b.dispose();
    }
  });

  test('three stacked layers: pp_prop equals BPTT at T = 1', async () => {
    const xs = seq(1, NI, 11);
    const ys = seq(1, 2, 12);
    const p = learner(() => new Stack3(), 'pp_prop');
    const b = learner(() => new Stack3(), 'BPTT');
    try {
      const gp = (await p.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      const gb = (await b.etraceGrad(xs, ys, { loss: 'mse' })).grads;
      expect(relErr(gp, gb)).toBeLessThan(1e-12);
    } finally {
      p.dispose();
      b.dispose();
    }
  });
});
