/**
 * What run_online keeps from step to step inside one call (native/core/online.cc): the
 * state leaves and new-state nodes in two buffers that swap roles after each step (no copy
 * of the new states), and the ones of a width-1 Hid2Hid seed left in the tangent arena by
 * the first step's pass. One T-step call must give exactly the bits of T one-step calls
 * (where neither is reused): the same losses, the same states and traces after every call.
 * Models: two stacked LIF layers (groups (i, v) of width-1 members, a state-dependent D
 * pass per step, per-group sweeps in the tangent arena), a tanh recurrence, and a state
 * whose new value is its own leaf (the swap does not apply: the negative control that the
 * fallback path still carries the state).
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';

class LIF2 extends bt.Module {
  w1 = new bt.ParamState(bt.init.kaimingNormal(), [3, 5]);
  w2 = new bt.ParamState(bt.init.kaimingNormal(), [5, 5]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [5, 2]);
  i1 = new bt.HiddenState([5]);
  v1 = new bt.HiddenState([5]);
  i2 = new bt.HiddenState([5]);
  v2 = new bt.HiddenState([5]);
  private layer(x: Tensor, w: bt.ParamState, i: bt.HiddenState, v: bt.HiddenState): Tensor {
    const s = bt.spike(bt.sub(v.value, 0.3), bt.surrogate.arctan());
    const iNew = bt.add(bt.mul(i.value, 0.8), bt.matmul(x, w.value));
    i.value = iNew;
    v.value = bt.sub(bt.add(bt.mul(v.value, 0.9), bt.mul(iNew, 0.5)), s);
    return bt.spike(bt.sub(v.value, 0.3), bt.surrogate.arctan());
  }
  update(x: Tensor): Tensor {
    const s1 = this.layer(x, this.w1, this.i1, this.v1);
    this.layer(s1, this.w2, this.i2, this.v2);
    return bt.matmul(this.v2.value, this.ro.value);
  }
}

class Tanh extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.7), bt.matmul(x, this.w)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** A hidden state `c` the step never assigns (its new value is its leaf), read by h. */
class Frozen extends Tanh {
  c = new bt.HiddenState([4]);
  override update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.7), bt.add(bt.matmul(x, this.w), this.c.value)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const B = 2;
function seq(T: number, w: number, seed: number, dtype: 'float32' | 'float64'): bt.HostTensor {
  const d = dtype === 'float32' ? new Float32Array(T * B * w) : new Float64Array(T * B * w);
  for (let i = 0; i < d.length; ++i) d[i] = 1.5 * Math.sin(seed + 0.37 * i) + 0.4 * Math.cos(1.3 * i);
  return bt.tensor(d, [T, B, w], dtype);
}
const slice = (t: bt.HostTensor, k: number): bt.HostTensor => {
  const per = t.shape[1] * t.shape[2];
  return bt.tensor(t.data.slice(k * per, (k + 1) * per), [1, t.shape[1], t.shape[2]], t.dtype);
};
const bits = (r: Record<string, bt.HostTensor>) =>
  Object.keys(r).sort().map((k) => [k, Array.from(r[k].data)]);

const models: [string, () => bt.Module][] = [
  ['two stacked LIF layers', () => new LIF2()],
  ['tanh recurrence', () => new Tanh()],
  ['a state that keeps its leaf', () => new Frozen()],
];
const algos: [string, unknown, Record<string, unknown>][] = [
  ['pp_prop', bt.pp_prop, { decayOrRank: 0.9 }],
  ['D_RTRL', bt.D_RTRL, {}],
];

describe('run_online: one T-step call gives the bits of T one-step calls', () => {
  for (const dtype of ['float64', 'float32'] as const)
    for (const [algoName, algo, extra] of algos)
      test.each(models)(`${algoName} ${dtype}: %s`, async (_name, make) => {
        const T = 6;
        const opts = { inputShape: [3], batchSize: B, dtype, seed: 5, ...extra };
        const whole = bt.compile(make(), algo as never, opts) as bt.OnlineLearner;
        const steps = bt.compile(make(), algo as never, opts) as bt.OnlineLearner;
        const xs = seq(T, 3, 1, dtype);
        const ys = seq(T, 2, 2, dtype);
        // Two calls each, so the second starts from carried states and traces.
        for (let round = 0; round < 2; ++round) {
          const r = await whole.etraceGrad(xs, ys, { loss: 'mse' });
          const losses: number[] = [];
          for (let k = 0; k < T; ++k) {
            const s = await steps.etraceGrad(slice(xs, k), slice(ys, k), { loss: 'mse' });
            losses.push(...Array.from(s.losses));
          }
          expect(Array.from(r.losses)).toEqual(losses);
          expect(bits(whole.states())).toEqual(bits(steps.states()));
          expect(bits(whole.traces())).toEqual(bits(steps.traces()));
        }
        // The states moved (the comparison is not between two untouched initial states).
        const fresh = bt.compile(make(), algo as never, opts) as bt.OnlineLearner;
        expect(bits(whole.states())).not.toEqual(bits(fresh.states()));
        whole.dispose();
        steps.dispose();
        fresh.dispose();
      });
});

describe('stacked groups: a member the unstopped sweep reaches takes its signal from there', () => {
  // pp_prop on two stacked LIF layers and a readout of v2, per step: 3 forward matmuls, the
  // readout's VJP and layer 2's input VJP (the learning signal of layer 1) in the unstopped
  // sweep. v2's group signal is its cotangent from that sweep (all its consumers lie outside
  // layer 2's ancestors): its group sweep does not repeat the readout's VJP (6 before).
  test.each([['float64'], ['float32']] as const)('%s: 5 matmul tasks per step', async (dtype) => {
    const { loadBinding } = await import('../lib/runtime/native');
    const binding = loadBinding();
    const l = bt.compile(new LIF2(), bt.pp_prop, { inputShape: [3], batchSize: B, dtype, seed: 5, decayOrRank: 0.9 });
    const count = async (T: number) => {
      const a = binding.taskCounts().matmul;
      await l.etraceGrad(seq(T, 3, 1, dtype), seq(T, 2, 2, dtype), { loss: 'mse' });
      return binding.taskCounts().matmul - a;
    };
    await count(1);
    expect((await count(12)) - (await count(2))).toBe(50);
    l.dispose();
  });
});
