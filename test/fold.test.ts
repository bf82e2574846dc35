/**
 * Work a step does not repeat (native/core), counted with the executor's task counters:
 *  - nodes that depend on constants only (the BroadcastTo of a scalar that `bt.mul(h, 0.5)`
 *    makes) are folded: computed once when the session is created, skipped by every sweep;
 *    a layout node of a param or state still runs every step (the negative control);
 *  - an online Jacobian pass that is linear with Param / Const coefficients (a leaky
 *    integrator's D and df) is taken at the first step of a call only, and again in the
 *    next call (the params may have changed there); a tanh recurrence's passes run every
 *    step (the negative control).
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { loadBinding } from '../lib/runtime/native';
import type { NativeBinding } from '../types/binding';

const binding: NativeBinding = loadBinding();

/** h = tanh(0.5 h + x W): its only layout nodes broadcast the scalar constant 0.5. */
class ConstBroadcast extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** The same plus a broadcast of a param (u (4) to (B, 4)): a layout task every step. */
class ParamBroadcast extends ConstBroadcast {
  u = new bt.ParamState(bt.init.normal({ std: 0.3 }), [4]);
  override update(x: Tensor): Tensor {
    const u = bt.broadcastTo(this.u.value, [2, 4]);
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.5), bt.add(bt.matmul(x, this.w), u)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const data = (T: number, w: number): bt.HostTensor =>
  bt.tensor(new Float64Array(T * 2 * w).map((_, i) => Math.sin(0.7 * i)), [T, 2, w], 'float64');

type Make = () => bt.Module;

/** Layout tasks of `f` (the session already created by a first call). */
async function layoutTasks(f: () => Promise<unknown>): Promise<number> {
  const a = binding.taskCounts().layout;
  await f();
  return binding.taskCounts().layout - a;
}

describe('constant folding', () => {
  const opts = { inputShape: [3], batchSize: 2, dtype: 'float64' as const, seed: 3 };
  const algos: [string, (m: bt.Module) => bt.Learner][] = [
    ['BPTT', (m) => bt.compile(m, bt.BPTT, opts)],
    ['D_RTRL', (m) => bt.compile(m, bt.D_RTRL, opts)],
    ['pp_prop', (m) => bt.compile(m, bt.pp_prop, { ...opts, decayOrRank: 0.9 })],
  ];
  test.each(algos)('%s: a broadcast of a constant runs no task per step; one of a param does', async (_name, compile) => {
    const counts = async (make: Make) => {
      const l = compile(make());
      await l.etraceGrad(data(2, 3), data(2, 2), { loss: 'mse' }); // creates the session
      const short = await layoutTasks(() => l.etraceGrad(data(2, 3), data(2, 2), { loss: 'mse' }));
      const long = await layoutTasks(() => l.etraceGrad(data(12, 3), data(12, 2), { loss: 'mse' }));
      await l.run(data(1, 3)); // the forward session (folds its constants once, when created)
      const fwd = (await layoutTasks(() => l.run(data(11, 3)))) - (await layoutTasks(() => l.run(data(1, 3))));
      l.dispose();
      return { perTenSteps: long - short, run: fwd };
    };
    expect(await counts(() => new ConstBroadcast())).toEqual({ perTenSteps: 0, run: 0 });
    const control = await counts(() => new ParamBroadcast());
    expect(control.perTenSteps).toBeGreaterThanOrEqual(10);
    expect(control.run).toBeGreaterThanOrEqual(10);
  });

  test('a folded value is the constant broadcast: the same outputs as the model computed with the scalar', async () => {
    // 0.5 h through a folded BroadcastTo and through the param u = 0.5 (not folded): the same bits.
    class Scaled extends bt.Module {
      w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
      u = new bt.ParamState(bt.init.constant(0.5), [4]);
      h = new bt.HiddenState([4]);
      constructor(private readonly folded: boolean) {
        super();
      }
      update(x: Tensor): Tensor {
        const h = this.h.value;
        const hs = this.folded ? bt.mul(h, 0.5) : bt.mul(h, bt.broadcastTo(this.u.value, [2, 4]));
        this.h.value = bt.tanh(bt.add(hs, bt.matmul(x, this.w)));
        return this.h.value;
      }
    }
    const a = bt.compile(new Scaled(true), bt.BPTT, opts);
    const b = bt.compile(new Scaled(false), bt.BPTT, opts);
    b.setParams({ ...b.params(), w: a.params().w });
    const xs = data(5, 3);
    const ya = await a.run(xs);
    const yb = await b.run(xs);
    expect(Array.from(ya.data)).toEqual(Array.from(yb.data));
    a.dispose();
    b.dispose();
  });
});

/** h = a h + x W with a = sigmoid(alpha) (a param: fixed within a call), or tanh of it. */
class Leak extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
  alpha = new bt.ParamState(bt.init.constant(0.3), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  constructor(private readonly squash: boolean) {
    super();
  }
  update(x: Tensor): Tensor {
    const a = bt.broadcastTo(bt.sigmoid(this.alpha.value), [2, 4]);
    const pre = bt.add(bt.mul(this.h.value, a), bt.matmul(x, this.w));
    this.h.value = this.squash ? bt.tanh(pre) : pre;
    return bt.matmul(this.h.value, this.ro.value);
  }
}

describe('step-invariant Jacobian passes', () => {
  const opts = { inputShape: [3], batchSize: 2, dtype: 'float64' as const, seed: 4 };
  const algos: [string, (m: bt.Module) => bt.OnlineLearner][] = [
    ['D_RTRL', (m) => bt.compile(m, bt.D_RTRL, opts)],
    ['pp_prop', (m) => bt.compile(m, bt.pp_prop, { ...opts, decayOrRank: 0.9 })],
  ];
  const reads = async (l: bt.Learner, T: number) => {
    const a = binding.taskCounts().jacobian_read;
    await l.etraceGrad(data(T, 3), data(T, 2), { loss: 'mse' });
    return binding.taskCounts().jacobian_read - a;
  };
  test.each(algos)('%s: a linear recurrence takes D and df once per call; a tanh one every step', async (_n, compile) => {
    const lin = compile(new Leak(false));
    await reads(lin, 1);
    // Per step: the learning signal; once per call: D and df.
    expect((await reads(lin, 12)) - (await reads(lin, 2))).toBe(10);
    const sq = compile(new Leak(true));
    await reads(sq, 1);
    expect((await reads(sq, 12)) - (await reads(sq, 2))).toBe(30); // signal, D and df per step
    lin.dispose();
    sq.dispose();
  });

  test.each(algos)('%s: params changed between calls: the passes are taken again (same bits as a fresh learner)', async (_n, compile) => {
    const xs = data(6, 3);
    const ys = data(6, 2);
    const warm = compile(new Leak(false));
    const init = { params: warm.params(), states: warm.states(), traces: warm.traces() };
    await warm.etraceGrad(xs, ys, { loss: 'mse' }); // D of sigmoid(0.3) in place
    const alpha = bt.tensor(new Float64Array(4).fill(-1.2), [4], 'float64');
    warm.setParams({ ...init.params, alpha });
    warm.setStates(init.states);
    warm.setTraces(init.traces, 0);
    const fresh = compile(new Leak(false));
    fresh.setParams({ ...init.params, alpha });
    fresh.setStates(init.states);
    fresh.setTraces(init.traces, 0);
    const a = await warm.etraceGrad(xs, ys, { loss: 'mse' });
    const b = await fresh.etraceGrad(xs, ys, { loss: 'mse' });
    for (const k of Object.keys(b.grads)) expect([k, Array.from(a.grads[k].data)]).toEqual([k, Array.from(b.grads[k].data)]);
    expect(Array.from(a.losses)).toEqual(Array.from(b.losses));
    warm.dispose();
    fresh.dispose();
  });
});
