/**
 * The BPTT reverse sweep's bookkeeping (issue 9, the BPTT step against its cost model):
 * - a VJP task zeroes the cotangents it writes first itself (EwTask / NodeTask zero_gin,
 *   AxpyTask zero_y): the values must be those of zeroing first and accumulating, down to
 *   the sign of zero (0 + -0 is +0, a plain store would keep -0);
 * - the gradient non-finite check scans once after the sweep and, on a hit, reruns the
 *   sweep with per-step checks: the error names the step, and the session is left as
 *   usable as before (the next call gives a fresh learner's gradients, bit for bit);
 * - cotangent slots shared by liveness: gradients equal with fusion on and off is covered
 *   by test/fusion.test.ts; here a deeper model (three layers, each with several
 *   cotangents alive at once) is compared with a float64 finite-difference check.
 */
import * as bt from '../lib/index';
import { Lin } from './helpers/models';
import type { Tensor } from '../lib/dsl/tensor';
import { NonFiniteError } from '../lib/runtime/errors';

/** out = x * w (element-wise, w a weight vector of 2). */
class Scale extends bt.Module {
  w = new bt.ParamState(bt.init.constant(0.5), [2]);
  update(x: Tensor): Tensor {
    return bt.mul(x, this.w.value);
  }
}

/** Three stacked tanh layers with leaky states and a readout (several cotangents live at once). */
class Deep extends bt.Module {
  w1 = new bt.ParamState(bt.init.xavierNormal(), [3, 5]);
  w2 = new bt.ParamState(bt.init.xavierNormal(), [5, 5]);
  w3 = new bt.ParamState(bt.init.xavierNormal(), [5, 5]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [5, 2]);
  h1 = new bt.HiddenState([5]);
  h2 = new bt.HiddenState([5]);
  h3 = new bt.HiddenState([5]);
  update(x: Tensor): Tensor {
    this.h1.value = bt.add(bt.mul(this.h1.value, 0.6), bt.tanh(bt.matmul(x, this.w1)));
    this.h2.value = bt.add(bt.mul(this.h2.value, 0.7), bt.tanh(bt.matmul(this.h1.value, this.w2)));
    this.h3.value = bt.sub(bt.mul(this.h3.value, 0.8), bt.tanh(bt.matmul(bt.mul(this.h2.value, this.h1.value), this.w3)));
    return bt.matmul(bt.add(this.h3.value, this.h1.value), this.ro.value);
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

describe('BPTT reverse sweep', () => {
  test.each(['float32', 'float64'] as const)('%s: a first contribution of -0 gives a +0 gradient (zero, then add)', async (dtype) => {
    const l = bt.compile(new Scale(), bt.BPTT, { inputShape: [2], batchSize: 1, dtype });
    const T = 3;
    const A = dtype === 'float64' ? Float64Array : Float32Array;
    // x = (0, 1), y = (1, 1): g = 2 (x w - y) = (-2, -1), dw = x g = (-0, -1) per step.
    const xs = new A(T * 2);
    for (let t = 0; t < T; ++t) xs[2 * t + 1] = 1;
    const ys = new A(T * 2).fill(1);
    const r = await l.etraceGrad(bt.tensor(xs, [T, 1, 2], dtype), bt.tensor(ys, [T, 1, 2], dtype), { loss: 'sumSquares' });
    const dw = r.grads.w.data;
    expect(Object.is(dw[0], 0)).toBe(true); // +0, not -0
    expect(dw[1]).toBeCloseTo(-3, 6);
    l.dispose();
  });

  test('a gradient that overflows reports its step, and the next call equals a fresh learner', async () => {
    const mk = (): bt.Learner => bt.compile(new Lin(), bt.BPTT, { inputShape: [1], batchSize: 1, dtype: 'float64' });
    const l = mk();
    const T = 8;
    const bad = new Float64Array(T).fill(0.1);
    bad[5] = 1e155;
    const ys = bt.tensor(new Float64Array(T), [T, 1, 1], 'float64');
    const e = await rejection(l.etraceGrad(bt.tensor(bad, [T, 1, 1], 'float64'), ys, { loss: 'sumSquares' }));
    expect(e).toBeInstanceOf(NonFiniteError);
    // The reverse sweep meets step 7, 6, 5 first: the readout gradient 2 out h overflows from step 5 on.
    expect({ tensor: (e as NonFiniteError).tensor, step: (e as NonFiniteError).step }).toEqual({ tensor: 'grads.ro', step: 5 });
    const good = bt.tensor(new Float64Array(T).map((_, i) => Math.sin(i + 1)), [T, 1, 1], 'float64');
    const a = await l.etraceGrad(good, ys, { loss: 'sumSquares' });
    const f = mk();
    const b = await f.etraceGrad(good, ys, { loss: 'sumSquares' });
    for (const k of Object.keys(b.grads)) expect(Array.from(a.grads[k].data)).toEqual(Array.from(b.grads[k].data));
    l.dispose();
    f.dispose();
  });

  test('a three-layer model: BPTT gradients match central differences of the summed loss', async () => {
    const T = 4, B = 2;
    const mk = (): bt.Learner => bt.compile(new Deep(), bt.BPTT, { inputShape: [3], batchSize: B, dtype: 'float64', seed: 4 });
    const l = mk();
    const xs = bt.tensor(new Float64Array(T * B * 3).map((_, i) => Math.sin(0.7 * i)), [T, B, 3], 'float64');
    const ys = bt.tensor(new Float64Array(T * B * 2).map((_, i) => Math.cos(0.3 * i)), [T, B, 2], 'float64');
    const r = await l.etraceGrad(xs, ys, { loss: 'sumSquares' });
    const params = l.params();
    const lossAt = async (p: Record<string, bt.HostTensor>): Promise<number> => {
      const m = mk();
      m.setParams(p);
      const out = await m.etraceGrad(xs, ys, { loss: 'sumSquares' });
      m.dispose();
      return Array.from(out.losses).reduce((s, v) => s + v, 0);
    };
    const h = 1e-6;
    for (const k of ['w1', 'w2', 'w3', 'ro']) {
      for (const idx of [0, 3, 7]) {
        const shift = async (d: number): Promise<number> => {
          const p: Record<string, bt.HostTensor> = {};
          for (const [n, v] of Object.entries(params)) p[n] = bt.tensor(Float64Array.from(v.data as Float64Array), v.shape, 'float64');
          (p[k].data as Float64Array)[idx] += d;
          return lossAt(p);
        };
        const fd = ((await shift(h)) - (await shift(-h))) / (2 * h);
        expect(r.grads[k].data[idx]).toBeCloseTo(fd, 5);
      }
    }
    l.dispose();
  });
});
