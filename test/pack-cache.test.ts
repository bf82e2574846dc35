/**
 * The CPU driver's pack cache (issue 9): a matmul whose B operand is a parameter packs it
 * once per session call (cpu/parallel_gemm.h GemmPackCache, keyed by the session's
 * parameter epoch) and reuses the panels in every step's forward product and VJP.
 *
 * - The cache is used: a BPTT call over T steps packs each weight (and its transpose for the
 *   backward pass) once and serves the remaining products from the packed copies.
 * - It is never stale: after setParams, after an optimizer step and after `update` with new
 *   weights, results are bit for bit those of a fresh learner built with the new weights
 *   (BPTT, D_RTRL, pp_prop, and the forward-only update), and they differ from the results
 *   with the old weights (the negative control: the new weights matter).
 */
import * as bt from '../lib/index';
import { loadBinding } from '../lib/runtime/native';
import type { Learner } from '../lib/algorithms/learner';
import type { HostTensor } from '../lib/tensor';
import { prng } from './helpers/native';

const binding = loadBinding();
const B = 8;
const I = 48;
const H = 64;

/** h' = tanh(x W + h U), y = h' V: products of 8 x 48 x 64 and 8 x 64 x 64 (above the direct-loop size). */
class Rnn extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [I, H]);
  u = new bt.ParamState(bt.init.normal({ std: 0.1 }), [H, H]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [H, 3]);
  h = new bt.HiddenState([H]);
  update(x: bt.Tensor): bt.Tensor {
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.matmul(this.h.value, this.u)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** Spiking-free leaky layer for the online rules: h' = 0.8 h + tanh(x W) (diagonal recurrence). */
class Leaky extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [I, H]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [H, 3]);
  h = new bt.HiddenState([H]);
  update(x: bt.Tensor): bt.Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.8), bt.tanh(bt.matmul(x, this.w)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

function seq(T: number, width: number, seed: number, dtype: 'float32' | 'float64'): HostTensor {
  const rnd = prng(seed);
  const n = T * B * width;
  const data = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = rnd() - 0.5;
  return { data, shape: [T, B, width], dtype };
}

function flat(r: bt.GradResult): number[][] {
  return [...Object.keys(r.grads).sort().map((k) => Array.from(r.grads[k].data)), Array.from(r.losses)];
}

type Case = { name: string; model: () => bt.Module; algo: bt.AlgorithmClass; options: Record<string, unknown> };
const cases: Case[] = [
  { name: 'BPTT', model: () => new Rnn(), algo: bt.BPTT, options: {} },
  { name: 'D_RTRL', model: () => new Leaky(), algo: bt.D_RTRL, options: {} },
  { name: 'pp_prop', model: () => new Leaky(), algo: bt.pp_prop as unknown as bt.AlgorithmClass, options: { decayOrRank: 0.9 } },
];

describe.each(['float32', 'float64'] as const)('pack cache (%s)', (dtype) => {
  const xs = seq(6, I, 11, dtype);
  const ys = seq(6, 3, 12, dtype);
  const make = (c: Case, seed: number): Learner =>
    bt.compile(c.model(), c.algo, { inputShape: [I], batchSize: B, dtype, seed, ...c.options });

  test('a BPTT call packs each weight once and reuses it for the other steps', async () => {
    const l = make(cases[0], 1);
    await l.etraceGrad(xs, ys, { loss: 'mse' });
    const before = binding.gemmKernels().packCache;
    await l.etraceGrad(xs, ys, { loss: 'mse' });
    const after = binding.gemmKernels().packCache;
    // W and U forward (U is also the backward's h cotangent product: U^T), W^T is not needed
    // (x takes no cotangent), U^T once: a handful of packs, and many more hits over 6 steps.
    expect(after.packs - before.packs).toBeGreaterThanOrEqual(2);
    expect(after.packs - before.packs).toBeLessThanOrEqual(4);
    expect(after.hits - before.hits).toBeGreaterThanOrEqual(5 * (after.packs - before.packs));
    expect(after.bytes).toBeGreaterThan(0);
    l.dispose();
  });

  test.each(cases)('$name: after setParams, bit for bit a fresh learner with those weights', async (c) => {
    const a = make(c, 1);
    const b = make(c, 2);
    const old = flat(await a.etraceGrad(xs, ys, { loss: 'mse' }));
    const fresh = flat(await b.etraceGrad(xs, ys, { loss: 'mse' }));
    a.setParams(b.params());
    a.resetState(); // initial states (and, for the online rules, zero traces)
    // b's run advanced its state and traces: compare against another fresh learner.
    const c2 = make(c, 2);
    const want = flat(await c2.etraceGrad(xs, ys, { loss: 'mse' }));
    expect(want).toEqual(fresh);
    const got = flat(await a.etraceGrad(xs, ys, { loss: 'mse' }));
    expect(got).toEqual(want);
    expect(got).not.toEqual(old);
    for (const l of [a, b, c2]) l.dispose();
  });

  test('update after an optimizer step uses the new weights', async () => {
    const a = make(cases[0], 3);
    const x1: HostTensor = { data: xs.data.slice(0, B * I), shape: [B, I], dtype };
    const y0 = Array.from(a.update(x1).data);
    const { grads } = await a.etraceGrad(xs, ys, { loss: 'mse' });
    a.applyGradients(grads, new bt.optim.SGD({ lr: 0.5 }));
    const b = make(cases[0], 3);
    b.setParams(a.params());
    a.resetState();
    b.resetState();
    const ya = Array.from(a.update(x1).data);
    const yb = Array.from(b.update(x1).data);
    expect(ya).toEqual(yb);
    expect(ya).not.toEqual(y0);
    a.dispose();
    b.dispose();
  });
});
