/**
 * The non-finite policy (issue 8 item 4): NaN / infinity in inputs, targets, setParams,
 * an overflowing learning rate or a restored checkpoint gives a NonFiniteError naming the
 * tensor, the step and the first bad index, detected natively, with the parameters
 * unchanged; a gradient that becomes infinite mid-sequence reports its step; the
 * 'skipUpdate' and 'allow' policies.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as bt from '../lib/index';
import { Lin } from './helpers/models';
import type { Tensor } from '../lib/dsl/tensor';
import { ArgumentError, NonFiniteError } from '../lib/runtime/errors';

/** A small tanh RNN (B 2, I 3, H 4) for the data checks. */
class RNN extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
  u = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.elementWise(this.u, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

type Algo = 'D_RTRL' | 'pp_prop' | 'BPTT';
const ALGOS: Algo[] = ['D_RTRL', 'pp_prop', 'BPTT'];

function compile(algo: Algo, model: bt.Module, o: Record<string, unknown>): bt.Learner {
  if (algo === 'BPTT') return bt.compile(model, bt.BPTT, o as never);
  if (algo === 'pp_prop') return bt.compile(model, bt.pp_prop, { ...o, decayOrRank: 0.5 } as never);
  return bt.compile(model, bt.D_RTRL, o as never);
}

const rnn = (algo: Algo, dtype: 'float32' | 'float64' = 'float64', extra: Record<string, unknown> = {}): bt.Learner =>
  compile(algo, new RNN(), { inputShape: [3], batchSize: 2, dtype, seed: 1, ...extra });
const lin = (algo: Algo, extra: Record<string, unknown> = {}): bt.Learner =>
  compile(algo, new Lin(), { inputShape: [1], batchSize: 1, dtype: 'float64', ...extra });

function rnnData(T: number, dtype: 'float32' | 'float64' = 'float64'): { xs: bt.HostTensor; ys: bt.HostTensor } {
  const A = dtype === 'float64' ? Float64Array : Float32Array;
  return {
    xs: bt.tensor(new A(T * 2 * 3).map((_, i) => Math.sin(i)), [T, 2, 3], dtype),
    ys: bt.tensor(new A(T * 2 * 2).map((_, i) => Math.cos(i)), [T, 2, 2], dtype),
  };
}

/** xs of Lin: 0.1 everywhere except `big` at step `at`. */
function linData(T: number, at: number, big: number): { xs: bt.HostTensor; ys: bt.HostTensor } {
  const xs = new Float64Array(T).fill(0.1);
  xs[at] = big;
  return { xs: bt.tensor(xs, [T, 1, 1], 'float64'), ys: bt.tensor(new Float64Array(T), [T, 1, 1], 'float64') };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

function expectNonFinite(e: unknown, tensor: string, step: number, index: number): void {
  expect(e).toBeInstanceOf(NonFiniteError);
  const n = e as NonFiniteError;
  expect(n.code).toBe('ERR_BRAINTRACE_NON_FINITE');
  expect({ tensor: n.tensor, step: n.step, index: n.index }).toEqual({ tensor, step, index });
  expect(n.message).toContain(tensor);
}

function expectSame(a: Record<string, bt.HostTensor>, b: Record<string, bt.HostTensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) expect(Array.from(a[k].data)).toEqual(Array.from(b[k].data));
}

describe('data: xs, ys', () => {
  test.each(ALGOS.flatMap((a) => [[a, 'float64'], [a, 'float32']] as [Algo, 'float32' | 'float64'][]))(
    '%s %s: NaN in xs and Inf in ys name the tensor, the step and the index',
    async (algo, dtype) => {
      const l = rnn(algo, dtype);
      const before = l.params();
      const { xs, ys } = rnnData(10, dtype);
      xs.data[5 * 6 + 4] = NaN; // step 5, element 4 of the (2, 3) slice
      expectNonFinite(await rejection(l.etraceGrad(xs, ys)), 'xs', 5, 4);
      const d = rnnData(10, dtype);
      d.ys.data[2 * 4 + 3] = -Infinity; // step 2, element 3 of the (2, 2) slice
      expectNonFinite(await rejection(l.etraceGrad(d.xs, d.ys)), 'ys', 2, 3);
      // Forward-only calls check their inputs too.
      expectNonFinite(await rejection(l.run(xs)), 'xs', 5, 4);
      expectSame(l.params(), before);
      // Usable afterwards.
      l.resetState();
      expect((await l.etraceGrad(d.xs, rnnData(10, dtype).ys)).losses).toHaveLength(10);
      l.dispose();
    },
  );
});

describe('data wider than one scan chunk', () => {
  /** out = x w with w (I, 1): a step of xs holds B * I values, several chunks of the pool's scan. */
  class Wide extends bt.Module {
    w = new bt.ParamState(bt.init.constant(0.001), [40000, 1]);
    update(x: Tensor): Tensor {
      return bt.matmul(x, this.w);
    }
  }
  test('the first of several non-finite values in different chunks is the one named', async () => {
    const l = bt.compile(new Wide(), bt.BPTT, { inputShape: [40000], batchSize: 4, dtype: 'float32', seed: 1 });
    const n = 4 * 40000;
    const xs = bt.tensor(new Float32Array(2 * n).fill(0.5), [2, 4, 40000], 'float32');
    const ys = bt.tensor(new Float32Array(2 * 4), [2, 4, 1], 'float32');
    // Step 1: bad values at 150000, 100000 and 70000 (chunks of 32768 elements: the 5th, 4th and 3rd).
    xs.data[n + 150000] = NaN;
    xs.data[n + 100000] = Infinity;
    xs.data[n + 70000] = -Infinity;
    expectNonFinite(await rejection(l.etraceGrad(xs, ys)), 'xs', 1, 70000);
    expectNonFinite(await rejection(l.run(xs)), 'xs', 1, 70000);
    xs.data[n + 70000] = 0.5;
    xs.data[n + 100000] = 0.5;
    expectNonFinite(await rejection(l.run(xs)), 'xs', 1, 150000);
    xs.data[n + 150000] = 0.5;
    expect((await l.etraceGrad(xs, ys)).losses).toHaveLength(2);
    l.dispose();
  });
});

describe('the state a NonFiniteError leaves', () => {
  const traces = (l: bt.Learner) => (l instanceof bt.OnlineLearner ? l.traces() : {});
  async function evolved(algo: Algo, make: () => bt.Learner, xs: bt.HostTensor, n: number): Promise<bt.Learner> {
    const f = make();
    if (n === 0) return f;
    const part = { data: xs.data.slice(0, (n * xs.data.length) / xs.shape[0]), shape: [n, ...xs.shape.slice(1)], dtype: xs.dtype };
    if (f instanceof bt.OnlineLearner) await f.etraceEvolve(part);
    else await f.run(part);
    return f;
  }
  test.each(ALGOS)('%s: an input at step t keeps t steps (BPTT: none); a gradient at online step t keeps t + 1', async (algo) => {
    const l = rnn(algo);
    const { xs, ys } = rnnData(10);
    xs.data[6 * 6] = NaN; // step 6
    await rejection(l.etraceGrad(xs, ys));
    const keep = algo === 'BPTT' ? 0 : 6;
    const f = await evolved(algo, () => rnn(algo), xs, keep);
    expectSame(l.states(), f.states());
    expectSame(traces(l), traces(f));
    if (l instanceof bt.OnlineLearner) expect(l.traceSteps()).toBe(keep);
    l.dispose();
    f.dispose();

    const g = lin(algo);
    const d = linData(8, 3, 1e155);
    await rejection(g.etraceGrad(d.xs, d.ys, { loss: 'sumSquares' }));
    const keepG = algo === 'BPTT' ? 0 : 4;
    const fg = await evolved(algo, () => lin(algo), d.xs, keepG);
    expectSame(g.states(), fg.states());
    expectSame(traces(g), traces(fg));
    g.dispose();
    fg.dispose();
  });
});

describe('parameters, states and traces', () => {
  test.each(ALGOS)('%s: setParams / setStates with NaN or Inf throw and assign nothing', (algo) => {
    const l = rnn(algo);
    const before = l.params();
    const w = new Float64Array(12).fill(0.5);
    w[7] = Infinity;
    let e: unknown = null;
    try {
      l.setParams({ ro: bt.tensor(new Float64Array(8), [4, 2], 'float64'), w: bt.tensor(w, [3, 4], 'float64') });
    } catch (x) {
      e = x;
    }
    expectNonFinite(e, 'params.w', -1, 7);
    expectSame(l.params(), before); // ro (valid, given first) was not assigned either
    const h = new Float64Array(8);
    h[1] = NaN;
    expect(() => l.setStates({ h: bt.tensor(h, [2, 4], 'float64') })).toThrow(NonFiniteError);
    if (l instanceof bt.OnlineLearner) {
      const tr = l.traces();
      const name = Object.keys(tr)[0];
      const bad = new Float64Array(tr[name].data.length);
      bad[2] = NaN;
      let te: unknown = null;
      try {
        l.setTraces({ [name]: bt.tensor(bad, tr[name].shape, 'float64') });
      } catch (x) {
        te = x;
      }
      expectNonFinite(te, `traces.${name}`, -1, 2);
    }
    l.dispose();
  });

  test('an optimizer update never writes a non-finite weight (a NaN parameter, lr 0)', () => {
    const p = { w: bt.tensor(new Float64Array([1, 2, 3, NaN]), [4], 'float64') };
    const g = { w: bt.tensor(new Float64Array(4), [4], 'float64') };
    const opt = new bt.optim.SGD({ lr: 0 });
    let e: unknown = null;
    try {
      opt.step(p, g);
    } catch (x) {
      e = x;
    }
    expectNonFinite(e, 'params.w', -1, 3);
    opt.dispose();
  });

  test.each(ALGOS)('%s: a weight made non-finite behind the checks is caught natively when pushed to the session', async (algo) => {
    const l = rnn(algo);
    const { xs, ys } = rnnData(4);
    const r = await l.etraceGrad(xs, ys);
    // A hand-written optimizer (no checks of its own) writes a NaN into the learner's weights.
    const careless = {
      step(params: Record<string, bt.HostTensor>) {
        params.w.data[3] = NaN;
        return { lr: 0, gradNorm: 0, skipped: false };
      },
    };
    l.applyGradients(r.grads, careless as unknown as bt.optim.Optimizer);
    expectNonFinite(await rejection(l.etraceGrad(xs, ys)), 'params.w', -1, 3);
    l.dispose();
  });
});

describe('optimizer updates', () => {
  test.each(['D_RTRL', 'BPTT'] as Algo[])('%s: a learning rate that overflows gives NonFiniteError; weights unchanged', async (algo) => {
    const l = rnn(algo);
    const { xs, ys } = rnnData(6);
    const r = await l.etraceGrad(xs, ys);
    const before = l.params();
    // Adam's step size lr / (1 - beta1) = 1e309 overflows: every new weight would be infinite.
    const opt = new bt.optim.Adam({ lr: 1e308 });
    let e: unknown = null;
    try {
      l.applyGradients(r.grads, opt);
    } catch (x) {
      e = x;
    }
    // The native slots follow the sorted paths: 'ro' < 'u' < 'w'; element 0 is the first bad one.
    expectNonFinite(e, 'params.ro', -1, 0);
    expectSame(l.params(), before);
    expect(opt.stepCount).toBe(0);
    // A sane optimizer then works on the same learner.
    const ok = new bt.optim.Adam({ lr: 1e-3 });
    expect(l.applyGradients(r.grads, ok).skipped).toBe(false);
    expect(ok.stepCount).toBe(1);
    opt.dispose();
    ok.dispose();
    l.dispose();
  });

  test('Optimizer.step nonFinite option: error names the gradient, skipUpdate skips, allow writes; bad values rejected', () => {
    const p = { a: bt.tensor(new Float32Array([1, 2, 3]), [3], 'float32') };
    const g = { a: bt.tensor(new Float32Array([0.1, Infinity, 0.1]), [3], 'float32') };
    const opt = new bt.optim.SGD({ lr: 0.1, momentum: 0.9 });
    let e: unknown = null;
    try {
      opt.step(p, g);
    } catch (x) {
      e = x;
    }
    expectNonFinite(e, 'grads.a', -1, 1);
    expect(Array.from(p.a.data)).toEqual([1, 2, 3]);
    const s = opt.step(p, g, { nonFinite: 'skipUpdate' });
    expect(s.skipped).toBe(true);
    expect(Number.isFinite(s.gradNorm)).toBe(false);
    expect(Array.from(p.a.data)).toEqual([1, 2, 3]);
    expect(opt.stepCount).toBe(0);
    expect(opt.step(p, g, { nonFinite: 'allow' }).skipped).toBe(false);
    expect(p.a.data[1]).toBe(-Infinity);
    expect(opt.stepCount).toBe(1);
    expect(() => opt.step(p, g, { nonFinite: 'skip' as never })).toThrow(ArgumentError);
    expect(() => opt.step(p, g, { nonfinite: 'allow' } as never)).toThrow(/unknown option 'nonfinite'/);
    opt.dispose();
  });
});

describe('losses and gradients during a call', () => {
  // Step 3's input 1e155 makes h = 1e155 and out = 1e153: the loss 1e306 is finite, but the
  // readout gradient 2 * out * h = 2e308 overflows at step 3 (and only from step 3 on).
  test.each(ALGOS)('%s: a gradient that becomes Inf mid-sequence reports its step', async (algo) => {
    const l = lin(algo);
    const before = l.params();
    const { xs, ys } = linData(8, 3, 1e155);
    const e = await rejection(l.etraceGrad(xs, ys, { loss: 'sumSquares' }));
    expect(e).toBeInstanceOf(NonFiniteError);
    const n = e as NonFiniteError;
    expect(n.tensor).toBe('grads.ro');
    expect(n.step).toBe(3);
    expect(n.index).toBe(0);
    expectSame(l.params(), before);
    l.dispose();
  });

  // A trace-contracted weight gradient (not the readout's) that overflows: w 0.01, ro 10 and
  // an input 1e154 at step 3 give h 1e152 and out 1e153, so the loss (1.3e308 over the 128
  // samples) and grads.ro stay finite, but dL/dw = 2 out ro eps (eps ~ x = 1e154) overflows.
  // D_RTRL adds it at step 3; pp_prop adds its
  // contractions when its ring (8 steps at B 128) is flushed, after step 7. The native check
  // scans only the gradients written since the previous step (a missed one would surface
  // only at the end of the call, step 19).
  test.each([['D_RTRL', 3], ['pp_prop', 7]] as [Algo, number][])(
    '%s: a trace-contracted weight gradient that becomes Inf reports the step it is added at',
    async (algo, step) => {
      class LinRo extends Lin {
        override w = new bt.ParamState(bt.init.constant(0.01), [1, 1]);
        override ro = new bt.ParamState(bt.init.constant(10), [1, 1]);
      }
      const l = compile(algo, new LinRo(), { inputShape: [1], batchSize: 128, dtype: 'float64' });
      const T = 20;
      const xs = new Float64Array(T * 128).fill(0.1);
      xs.fill(1e154, 3 * 128, 4 * 128);
      const ys = new Float64Array(T * 128);
      const e = await rejection(
        l.etraceGrad(bt.tensor(xs, [T, 128, 1], 'float64'), bt.tensor(ys, [T, 128, 1], 'float64'), { loss: 'sumSquares' }),
      );
      expect(e).toBeInstanceOf(NonFiniteError);
      const n = e as NonFiniteError;
      expect({ tensor: n.tensor, step: n.step }).toEqual({ tensor: 'grads.w', step });
      l.dispose();
    },
  );

  test.each(ALGOS)('%s: a loss that overflows reports its step', async (algo) => {
    const l = lin(algo);
    const { xs, ys } = linData(8, 4, 1e300);
    const e = await rejection(l.etraceGrad(xs, ys, { loss: 'sumSquares' }));
    expectNonFinite(e, 'loss', 4, -1);
    l.dispose();
  });

  test.each(ALGOS)("%s: 'skipUpdate' returns the non-finite result and skips the update (applyGradients, fit, step)", async (algo) => {
    const l = lin(algo, { nonFinite: 'skipUpdate' });
    const before = l.params();
    const bad = linData(8, 3, 1e155);
    const r = await l.etraceGrad(bad.xs, bad.ys, { loss: 'sumSquares' });
    expect(Number.isFinite(r.grads.ro.data[0])).toBe(false);
    const opt = new bt.optim.SGD({ lr: 0.01 });
    expect(l.applyGradients(r.grads, opt).skipped).toBe(true);
    expectSame(l.params(), before);
    // fit: one bad batch skipped, one good batch applied; reported in the result and progress.
    const good = linData(8, 3, 0.2);
    const seen: number[] = [];
    const f = await l.fit([bad, good], { optimizer: opt, loss: 'sumSquares', onProgress: (p) => void seen.push(p.skipped) });
    expect(f).toMatchObject({ updates: 1, skipped: 1, aborted: false });
    expect(seen).toEqual([1, 1]);
    expect(l.params().ro.data[0]).not.toBe(before.ro.data[0]);
    // step(): streaming update of one bad observation is skipped.
    const p1 = l.params();
    const s = await l.step(bt.tensor([[1e155]], [1, 1], 'float64'), bt.tensor([[0]], [1, 1], 'float64'), {
      optimizer: opt,
      loss: 'sumSquares',
      output: false,
    });
    // One step from the current state: 1e155 alone overflows the readout gradient.
    expect(s.skipped).toBe(true);
    expectSame(l.params(), p1);
    // Bad data is still an error under 'skipUpdate'.
    const nan = linData(8, 2, NaN);
    expectNonFinite(await rejection(l.etraceGrad(nan.xs, nan.ys)), 'xs', 2, 0);
    opt.dispose();
    l.dispose();
  });

  test("'allow' restores the unchecked behaviour: NaN flows into losses, gradients and weights", async () => {
    const l = rnn('D_RTRL', 'float64', { nonFinite: 'allow' });
    const w = new Float64Array(12).fill(0.1);
    w[0] = NaN;
    l.setParams({ w: bt.tensor(w, [3, 4], 'float64') });
    const { xs, ys } = rnnData(5);
    const r = await l.etraceGrad(xs, ys);
    expect(Array.from(r.losses).some((x) => Number.isNaN(x))).toBe(true);
    const opt = new bt.optim.SGD({ lr: 0.1 });
    expect(l.applyGradients(r.grads, opt).skipped).toBe(false);
    expect(Array.from(l.params().ro.data).some((x) => Number.isNaN(x))).toBe(true);
    opt.dispose();
    l.dispose();
  });

  test('the nonFinite compile option is validated', () => {
    expect(() => rnn('D_RTRL', 'float64', { nonFinite: 'ignore' })).toThrow(ArgumentError);
    expect(() => rnn('D_RTRL', 'float64', { nonFinite: 'ignore' })).toThrow(/nonFinite: expected 'error', 'skipUpdate' or 'allow'/);
    expect(rnn('BPTT', 'float64', { nonFinite: 'skipUpdate' }).nonFinite).toBe('skipUpdate');
    expect(rnn('BPTT').nonFinite).toBe('error');
  });
});

describe('checkpoints', () => {
  test.each(['D_RTRL', 'BPTT'] as Algo[])('%s: restoring a checkpoint with a NaN weight gives NonFiniteError; weights unchanged', async (algo) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-nonfinite-'));
    try {
      const l = rnn(algo);
      const { xs, ys } = rnnData(4);
      const opt = new bt.optim.Adam({ lr: 1e-3 });
      l.applyGradients((await l.etraceGrad(xs, ys)).grads, opt);
      const file = path.join(dir, 'ck.btck');
      await l.save(file, { optimizer: opt });
      const ck = await bt.load(file);
      // Patch the decoded checkpoint (as a crafted, correctly checksummed file would decode).
      (ck.params.u.data as Float64Array)[2] = NaN;
      const other = rnn(algo, 'float64', { seed: 9 });
      const otherOpt = new bt.optim.Adam({ lr: 1e-3 });
      const before = other.params();
      const beforeStates = other.states();
      expectNonFinite(await rejection(other.load(ck, { optimizer: otherOpt })), 'params.u', -1, 2);
      // Nothing was restored: weights, states and the optimizer state are unchanged.
      expectSame(other.params(), before);
      expectSame(other.states(), beforeStates);
      expect(otherOpt.stepCount).toBe(0);
      // A NaN in a state is refused the same way.
      const ck2 = await bt.load(file);
      (ck2.states.h.data as Float64Array)[5] = Infinity;
      expectNonFinite(await rejection(other.load(ck2)), 'states.h', -1, 5);
      // The unpatched checkpoint restores.
      await other.load(await bt.load(file), { optimizer: otherOpt });
      expectSame(other.params(), l.params());
      expect(otherOpt.stepCount).toBe(1);
      l.dispose();
      other.dispose();
      opt.dispose();
      otherOpt.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
