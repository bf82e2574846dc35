/**
 * The executor seam (native/core/executor.h): every OpCode maps to one executor task, and
 * every op family, Jacobian pass, trace update and optimizer step of a real training run is
 * handed to the executor (its driver counts the tasks it runs).
 */
import * as bt from '../lib/index';
import * as optim from '../lib/optim/index';
import type { Tensor } from '../lib/dsl/tensor';
import { OP_NAMES } from '../lib/graph/ops';
import { loadBinding } from '../lib/runtime/native';
import type { NativeBinding } from '../types/binding';
import { prng } from './helpers/native';

const binding: NativeBinding = loadBinding();

// Written out by hand: the op -> task table a driver has to implement.
const EXPECTED_TASK: Record<string, string> = {
  Input: 'leaf', Param: 'leaf', State: 'leaf', Const: 'leaf',
  Neg: 'elementwise', Square: 'elementwise', Sqrt: 'elementwise', Abs: 'elementwise', Exp: 'elementwise',
  Log: 'elementwise', Log1p: 'elementwise', Tanh: 'elementwise', Sigmoid: 'elementwise', Relu: 'elementwise',
  LeakyRelu: 'elementwise', Softplus: 'elementwise', Elu: 'elementwise', Gelu: 'elementwise', Sin: 'elementwise',
  Cos: 'elementwise', Clamp: 'elementwise', Spike: 'elementwise', StopGradient: 'elementwise',
  EtpElementWise: 'elementwise', Add: 'elementwise', Sub: 'elementwise', Mul: 'elementwise', Div: 'elementwise',
  Pow: 'elementwise', Minimum: 'elementwise', Maximum: 'elementwise', Less: 'elementwise',
  LessEqual: 'elementwise', Greater: 'elementwise', GreaterEqual: 'elementwise', Equal: 'elementwise',
  NotEqual: 'elementwise', Where: 'elementwise',
  BroadcastTo: 'layout', Reshape: 'layout', Transpose: 'layout', Slice: 'layout', Concat: 'layout',
  ReduceSum: 'reduce', ReduceMean: 'reduce', ReduceMax: 'reduce',
  Softmax: 'softmax', LogSoftmax: 'softmax',
  MatMul: 'matmul', EtpMatMul: 'matmul',
};

const TASKS = [
  'elementwise', 'elementwise_chain', 'layout', 'reduce', 'softmax', 'matmul', 'axpy', 'copy', 'fill', 'jacobian_read',
  'find_non_finite', 'drtrl_dense', 'vec_trace', 'pp_input', 'pp_project', 'pp_vec_grad', 'pp_dense_grad',
  'optim_step', 'sum_squares',
];

/** One hidden state through every node family: matmul, softmax, layout, reductions. */
class AllFamilies extends bt.Module {
  w: bt.ParamState;
  b: bt.ParamState;
  u: bt.ParamState;
  ro: bt.ParamState;
  h: bt.HiddenState;
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [3, 4]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [4]);
    this.u = new bt.ParamState(bt.init.normal({ std: 0.3 }), [4]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
    this.h = new bt.HiddenState([4]);
  }
  update(x: Tensor): Tensor {
    const h = this.h.value; // (B, 4)
    const z = bt.matmul(x, this.w, this.b); // EtpMatMul
    const c = bt.concat([bt.softmax(z, -1), bt.logSoftmax(h, -1)], -1); // (B, 8)
    const r = bt.transpose(bt.reshape(c, [-1, 2, 4]), [0, 2, 1]); // (B, 4, 2)
    const red = bt.add(bt.sum(r, -1), bt.add(bt.mean(r, -1), bt.max(r, -1)));
    const back = bt.sliceAxis(bt.concat([h, h], -1), 1, 2, 6); // (B, 4)
    const u = bt.broadcastTo(this.u.value, [2, 4]);
    this.h.value = bt.tanh(bt.add(bt.mul(back, 0.5), bt.add(bt.mul(red, 0.2), bt.add(z, u))));
    return bt.matmul(this.h.value, this.ro.value); // MatMul
  }
}

function rand(shape: number[], rnd: () => number): bt.HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  for (let i = 0; i < n; ++i) data[i] = rnd() * 2 - 1;
  return { data, shape, dtype: 'float64' };
}

describe('executor seam', () => {
  test('every OpCode maps to its executor task (native op_task table)', () => {
    expect(binding.opNames()).toEqual([...OP_NAMES]);
    const tasks = binding.opTasks();
    expect(tasks).toHaveLength(OP_NAMES.length);
    const table: Record<string, string> = {};
    OP_NAMES.forEach((op, i) => (table[op] = tasks[i]));
    expect(table).toEqual(EXPECTED_TASK);
  });

  test('the task counters name every task of the seam', () => {
    expect(Object.keys(binding.taskCounts())).toEqual(TASKS);
  });

  test('BPTT, D_RTRL, pp_prop and an optimizer step hand every task family to the executor', async () => {
    const before = binding.taskCounts();
    const rnd = prng(5);
    const xs = rand([3, 2, 3], rnd);
    const ys = rand([3, 2, 2], rnd);
    const opts = { inputShape: [3], batchSize: 2, dtype: 'float64' as const, seed: 1 };
    const used = new Set<string>();
    const ran = (what: string, f: () => Promise<void>) => async () => {
      const a = binding.taskCounts();
      await f();
      const b = binding.taskCounts();
      for (const t of TASKS) if (b[t] > a[t]) used.add(`${what}:${t}`);
    };
    await ran('bptt', async () => {
      const l = bt.compile(new AllFamilies(), bt.BPTT, opts);
      const r = await l.etraceGrad(xs, ys, { loss: 'mse' });
      l.applyGradients(r.grads, new optim.Adam({ lr: 0.01, clipNorm: 1 }));
      l.dispose();
    })();
    await ran('drtrl', async () => {
      const l = bt.compile(new AllFamilies(), bt.D_RTRL, opts);
      await l.etraceGrad(xs, ys, { loss: 'mse' });
      l.dispose();
    })();
    await ran('pp', async () => {
      const l = bt.compile(new AllFamilies(), bt.pp_prop, { ...opts, decayOrRank: 0.9 });
      await l.etraceGrad(xs, ys, { loss: 'mse' });
      l.dispose();
    })();
    const after = binding.taskCounts();
    for (const t of TASKS) expect([t, after[t] > before[t]]).toEqual([t, true]);
    // Where each family runs: the node families in every algorithm, the Jacobian reads in
    // the online ones, each trace kernel in its algorithm, the optimizer in its step.
    for (const algo of ['bptt', 'drtrl', 'pp']) {
      // Element-wise nodes run one by one or as fused chains (core/fusion.h).
      const ew = used.has(`${algo}:elementwise`) || used.has(`${algo}:elementwise_chain`);
      expect([algo, 'element-wise', ew]).toEqual([algo, 'element-wise', true]);
      for (const t of ['layout', 'reduce', 'softmax', 'matmul', 'find_non_finite'])
        expect(used.has(`${algo}:${t}`) ? `${algo}:${t}` : `missing ${algo}:${t}`).toBe(`${algo}:${t}`);
    }
    for (const t of ['drtrl_dense', 'vec_trace', 'jacobian_read']) expect(used.has(`drtrl:${t}`)).toBe(true);
    for (const t of ['pp_input', 'pp_project', 'pp_vec_grad', 'pp_dense_grad', 'copy', 'vec_trace', 'jacobian_read']) expect(used.has(`pp:${t}`)).toBe(true);
    for (const t of ['optim_step', 'sum_squares']) expect(used.has(`bptt:${t}`)).toBe(true);
    expect(used.has('drtrl:optim_step')).toBe(false); // negative control: no optimizer there
  });
});
