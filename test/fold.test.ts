/**
 * Work a step does not repeat (native/core): nodes that depend on constants only (the
 * BroadcastTo of a scalar that `bt.mul(h, 0.5)` makes) are folded, computed once when the
 * session is created and skipped by every sweep; a layout node of a param or state still
 * runs every step (the negative control). Counted with the executor's task counters.
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
