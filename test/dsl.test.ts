/**
 * Tests of the model-description layer: host tensors, PRNG, initialisers,
 * surrogates, the tracer (shapes, broadcasting, errors) and modules/states.
 */
import type { Graph, GraphNode } from '../lib/graph/ir';
import { ArgumentError, NotSupportedError, ShapeError } from '../lib/runtime/errors';
import { isHostTensor, numel, tensor, toDType, zeros, type HostTensor } from '../lib/tensor';
import * as bt from '../lib/dsl';
import {
  HiddenGroupState,
  HiddenState,
  Module,
  ParamState,
  Rng,
  State,
  Tensor,
  init,
  surrogate,
  traceFunction,
  traceModel,
} from '../lib/dsl';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function out(g: Graph, i = 0): GraphNode {
  const row = g.outputs.filter((o) => o.kind === 'output')[i];
  return g.nodes[row.nodeId];
}
function inputsOf(g: Graph, n: GraphNode): GraphNode[] {
  return n.inputs.map((id) => g.nodes[id]);
}
function ops(g: Graph): string[] {
  return g.nodes.map((n) => n.op);
}
function trace1(shape: number[], fn: (x: Tensor) => Tensor | Tensor[], dtype: 'float32' | 'float64' = 'float32'): Graph {
  return traceFunction(fn, [{ shape }], { dtype });
}
function trace2(a: number[], b: number[], fn: (x: Tensor, y: Tensor) => Tensor | Tensor[]): Graph {
  return traceFunction(fn, [{ shape: a }, { shape: b }]);
}
function stats(d: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < d.length; i++) {
    s += d[i];
    min = Math.min(min, d[i]);
    max = Math.max(max, d[i]);
  }
  const mean = s / d.length;
  let v = 0;
  for (let i = 0; i < d.length; i++) v += (d[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / d.length), min, max };
}
/** Checks that every node only reads earlier nodes. */
function expectTopological(g: Graph): void {
  g.nodes.forEach((n, i) => {
    expect(n.id).toBe(i);
    for (const id of n.inputs) expect(id).toBeLessThan(i);
  });
}
function expectThrow(fn: () => unknown, cls: new (...a: never[]) => Error, ...parts: string[]): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(cls);
  for (const p of parts) expect((err as Error).message).toContain(p);
}

// ---------------------------------------------------------------------------
// host tensors
// ---------------------------------------------------------------------------

describe('host tensors', () => {
  test('nested arrays infer the shape; data is row-major', () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6]);
    const t3 = tensor([[[1], [2]], [[3], [4]]], undefined, 'float64');
    expect(t3.shape).toEqual([2, 2, 1]);
    expect(t3.data).toBeInstanceOf(Float64Array);
  });

  test('scalars, flat arrays with shapes, typed arrays', () => {
    expect(tensor(2.5).shape).toEqual([]);
    expect(Array.from(tensor(2.5).data)).toEqual([2.5]);
    const f = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    expect(f.shape).toEqual([3, 2]);
    const ta = tensor(new Float64Array([1, 2, 3, 4]), [2, 2], 'float64');
    expect(ta.shape).toEqual([2, 2]);
    expect(Array.from(ta.data)).toEqual([1, 2, 3, 4]);
    expect(tensor([1, 2, 3]).shape).toEqual([3]);
    expect(tensor([]).shape).toEqual([0]);
  });

  test('data is copied', () => {
    const src = new Float32Array([1, 2]);
    const t = tensor(src, [2]);
    src[0] = 9;
    expect(t.data[0]).toBe(1);
  });

  test('wrong length names the shape, its numel and the actual length', () => {
    expectThrow(() => tensor([1, 2, 3, 4, 5], [2, 3]), ShapeError, '(2, 3)', '6', '5');
    expectThrow(() => tensor(new Float32Array(7), [2, 3]), ShapeError, '(2, 3)', '6', '7');
  });

  test('ragged nesting names the path and the lengths', () => {
    expectThrow(() => tensor([[1, 2], [3]]), ShapeError, 'data[1]', 'length 1', 'expected 2');
    expectThrow(() => tensor([[1, 2], 3] as never), ShapeError, 'data[1]');
    expectThrow(() => tensor([[[1, 2], [3, 4]], [[5, 6], [7]]]), ShapeError, 'data[1][1]', 'length 1', 'expected 2');
    expectThrow(() => tensor([[1, 'a']] as never), ShapeError, 'data[0][1]');
  });

  test('bad shapes and dtypes are ArgumentErrors', () => {
    expectThrow(() => tensor([1, 2], [-2]), ArgumentError, 'dimension 0');
    expectThrow(() => tensor([1, 2], [1.5] as never), ArgumentError, '1.5');
    expectThrow(() => tensor([1], undefined, 'int32' as never), ArgumentError, 'int32');
  });

  test('zeros, numel, isHostTensor, toDType', () => {
    const z = zeros([2, 3], 'float64');
    expect(z.data).toBeInstanceOf(Float64Array);
    expect(z.data.length).toBe(6);
    expect(numel([2, 3, 4])).toBe(24);
    expect(numel([])).toBe(1);
    expect(numel([3, 0])).toBe(0);
    expect(isHostTensor(z)).toBe(true);
    expect(isHostTensor({ data: new Float32Array(1), shape: [1], dtype: 'float64' })).toBe(false);
    expect(isHostTensor([1, 2])).toBe(false);
    const t = tensor([0.1, 0.2], undefined, 'float64');
    const c = toDType(t, 'float32');
    expect(c.dtype).toBe('float32');
    expect(c.data[0]).toBe(Math.fround(0.1));
    expect(toDType(t, 'float64')).toBe(t);
  });
});

// ---------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------

describe('Rng', () => {
  test('deterministic per (seed, key); different seeds/keys differ', () => {
    const a = new Rng(7, 'w');
    const b = new Rng(7, 'w');
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    const c = new Rng(8, 'w');
    const d = new Rng(7, 'v');
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
    expect(Array.from({ length: 5 }, () => d.nextUint32())).not.toEqual(xs);
  });

  test('derive does not depend on how much of the parent was consumed', () => {
    const p1 = new Rng(3);
    const p2 = new Rng(3);
    for (let i = 0; i < 10; i++) p2.next();
    expect(p1.derive('k').next()).toBe(p2.derive('k').next());
    expect(p1.derive('k').next()).not.toBe(p1.derive('j').next());
  });

  test('uniform and normal moments', () => {
    const r = new Rng(1, 'moments');
    const u = r.fillUniform(new Float64Array(100000));
    const su = stats(u);
    expect(su.min).toBeGreaterThanOrEqual(0);
    expect(su.max).toBeLessThan(1);
    expect(su.mean).toBeCloseTo(0.5, 2);
    expect(su.std).toBeCloseTo(Math.sqrt(1 / 12), 2);
    const n = r.fillNormal(new Float64Array(100000), 2, 3);
    const sn = stats(n);
    expect(Math.abs(sn.mean - 2)).toBeLessThan(0.05);
    expect(Math.abs(sn.std - 3)).toBeLessThan(0.05);
  });

  test('rejects bad seeds', () => {
    expectThrow(() => new Rng(-1), ArgumentError, 'seed');
    expectThrow(() => new Rng(1.5), ArgumentError, 'seed');
  });
});

// ---------------------------------------------------------------------------
// initialisers
// ---------------------------------------------------------------------------

describe('initialisers', () => {
  const r = () => new Rng(42, 'init-test');

  test('zeros, ones, constant, dtype of the result', () => {
    expect(Array.from(init.zeros()([2, 2], r(), 'float32'))).toEqual([0, 0, 0, 0]);
    expect(Array.from(init.ones()([3], r(), 'float64'))).toEqual([1, 1, 1]);
    expect(init.ones()([3], r(), 'float64')).toBeInstanceOf(Float64Array);
    expect(Array.from(init.constant(0.5)([2], r(), 'float32'))).toEqual([0.5, 0.5]);
  });

  test('normal and uniform', () => {
    const n = stats(init.normal({ mean: 1, std: 0.5 })([200, 200], r(), 'float64'));
    expect(Math.abs(n.mean - 1)).toBeLessThan(0.01);
    expect(Math.abs(n.std - 0.5)).toBeLessThan(0.01);
    const u = stats(init.uniform({ low: 2, high: 4 })([200, 200], r(), 'float64'));
    expect(u.min).toBeGreaterThanOrEqual(2);
    expect(u.max).toBeLessThan(4);
    expect(u.mean).toBeCloseTo(3, 1);
    const s = stats(init.uniform({ scale: 0.1 })([1000], r(), 'float64'));
    expect(s.min).toBeGreaterThanOrEqual(-0.1);
    expect(s.max).toBeLessThan(0.1);
  });

  test('fans: (I, O) weights have fanIn = I, fanOut = O', () => {
    expect(init.computeFans([300, 500])).toEqual({ fanIn: 300, fanOut: 500 });
    expect(init.computeFans([3, 3, 16, 32])).toEqual({ fanIn: 144, fanOut: 288 });
    expectThrow(() => init.computeFans([5]), ArgumentError, '(5,)');
  });

  test('xavier statistics on a big matrix', () => {
    const shape = [400, 600];
    const xn = stats(init.xavierNormal()(shape, r(), 'float64'));
    expect(Math.abs(xn.mean)).toBeLessThan(0.002);
    expect(xn.std / Math.sqrt(2 / 1000)).toBeCloseTo(1, 1);
    const g = stats(init.xavierNormal({ gain: 2 })(shape, r(), 'float64'));
    expect(g.std / (2 * Math.sqrt(2 / 1000))).toBeCloseTo(1, 1);
    const xu = stats(init.xavierUniform()(shape, r(), 'float64'));
    const a = Math.sqrt(6 / 1000);
    expect(xu.max).toBeLessThanOrEqual(a);
    expect(xu.min).toBeGreaterThanOrEqual(-a);
    expect(xu.max).toBeGreaterThan(0.99 * a);
    expect(xu.std / (a / Math.sqrt(3))).toBeCloseTo(1, 1);
  });

  test('kaiming statistics (fanIn = shape[0]) and modes', () => {
    const shape = [250, 1000];
    const kn = stats(init.kaimingNormal()(shape, r(), 'float64'));
    expect(kn.std / (Math.SQRT2 / Math.sqrt(250))).toBeCloseTo(1, 1);
    const ko = stats(init.kaimingNormal({ mode: 'fanOut', nonlinearity: 'relu' })(shape, r(), 'float64'));
    expect(ko.std / (Math.SQRT2 / Math.sqrt(1000))).toBeCloseTo(1, 1);
    const kt = stats(init.kaimingNormal({ nonlinearity: 'tanh' })(shape, r(), 'float64'));
    expect(kt.std / (5 / 3 / Math.sqrt(250))).toBeCloseTo(1, 1);
    const ku = stats(init.kaimingUniform({ a: Math.sqrt(5) })(shape, r(), 'float64'));
    const bound = Math.sqrt(2 / (1 + 5)) * Math.sqrt(3 / 250); // PyTorch's nn.Linear default: 1/sqrt(fanIn)
    expect(bound).toBeCloseTo(1 / Math.sqrt(250), 12);
    expect(ku.max).toBeLessThanOrEqual(bound);
    expect(ku.max).toBeGreaterThan(0.99 * bound);
    const ln = stats(init.lecunNormal()(shape, r(), 'float64'));
    expect(ln.std / Math.sqrt(1 / 250)).toBeCloseTo(1, 1);
    expectThrow(() => init.kaimingNormal()([10], r(), 'float32'), ArgumentError, 'init.kaimingNormal', '(10,)');
    expectThrow(() => init.kaimingNormal({ mode: 'bad' as never }), ArgumentError, 'mode');
  });

  test('calculateGain', () => {
    expect(init.calculateGain('tanh')).toBeCloseTo(5 / 3);
    expect(init.calculateGain('relu')).toBeCloseTo(Math.SQRT2);
    expect(init.calculateGain('leaky_relu', 0.2)).toBeCloseTo(Math.sqrt(2 / 1.04));
    expect(init.calculateGain('sigmoid')).toBe(1);
  });

  function gram(w: ArrayLike<number>, rows: number, cols: number, tall: boolean): number[][] {
    const k = tall ? cols : rows;
    const g: number[][] = [];
    for (let i = 0; i < k; i++) {
      g.push([]);
      for (let j = 0; j < k; j++) {
        let s = 0;
        if (tall) for (let p = 0; p < rows; p++) s += w[p * cols + i] * w[p * cols + j];
        else for (let p = 0; p < cols; p++) s += w[i * cols + p] * w[j * cols + p];
        g[i].push(s);
      }
    }
    return g;
  }
  function maxDevFromIdentity(g: number[][], scale = 1): number {
    let m = 0;
    g.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - (i === j ? scale : 0))))));
    return m;
  }

  test('orthogonal: WᵀW ≈ I (tall and square), WWᵀ ≈ I (wide), gain', () => {
    const tall = init.orthogonal()([120, 40], r(), 'float64');
    expect(maxDevFromIdentity(gram(tall, 120, 40, true))).toBeLessThan(1e-12);
    const sq = init.orthogonal()([64, 64], r(), 'float64');
    expect(maxDevFromIdentity(gram(sq, 64, 64, true))).toBeLessThan(1e-12);
    const wide = init.orthogonal()([20, 70], r(), 'float64');
    expect(maxDevFromIdentity(gram(wide, 20, 70, false))).toBeLessThan(1e-12);
    const g = init.orthogonal({ gain: 2 })([30, 10], r(), 'float64');
    expect(maxDevFromIdentity(gram(g, 30, 10, true), 4)).toBeLessThan(1e-11);
    const f32 = init.orthogonal()([50, 50], r(), 'float32');
    expect(f32).toBeInstanceOf(Float32Array);
    expect(maxDevFromIdentity(gram(f32, 50, 50, true))).toBeLessThan(1e-5);
    // not just a permutation/identity: entries are spread out
    expect(stats(sq).std).toBeCloseTo(1 / 8, 2);
    expectThrow(() => init.orthogonal()([5], r(), 'float32'), ArgumentError, 'orthogonal', '(5,)');
  });
});

// ---------------------------------------------------------------------------
// surrogates
// ---------------------------------------------------------------------------

describe('surrogates', () => {
  function integral(f: (u: number) => number): number {
    let s = 0;
    const h = 1e-3;
    for (let u = -50; u < 50; u += h) s += f(u + h / 2) * h;
    return s;
  }

  test('kinds, params in ops.h order, defaults', () => {
    expect(surrogate.sigmoid()).toMatchObject({ kind: 'sigmoid', params: [4] });
    expect(surrogate.arctan()).toMatchObject({ kind: 'arctan', params: [2] });
    expect(surrogate.reluGrad()).toMatchObject({ kind: 'reluGrad', params: [0.3, 1] });
    expect(surrogate.gaussianGrad()).toMatchObject({ kind: 'gaussianGrad', params: [0.5, 0.5] });
    expect(surrogate.piecewiseQuadratic()).toMatchObject({ kind: 'piecewiseQuadratic', params: [1] });
    expect(surrogate.multiGaussian()).toMatchObject({ kind: 'multiGaussian', params: [0.15, 6, 0.5, 0.5] });
    expect(surrogate.gaussianGrad({ sigma: 2, alpha: 3 }).params).toEqual([2, 3]);
    expectThrow(() => surrogate.sigmoid({ alpha: -1 }), ArgumentError, 'alpha');
  });

  test('derivative values and areas match the formulas', () => {
    expect(surrogate.sigmoid({ alpha: 4 }).derivative(0)).toBeCloseTo(1);
    expect(integral(surrogate.sigmoid({ alpha: 4 }).derivative)).toBeCloseTo(1, 4);
    expect(surrogate.arctan({ alpha: 2 }).derivative(0)).toBeCloseTo(1);
    expect(integral(surrogate.arctan({ alpha: 2 }).derivative)).toBeCloseTo(1, 1);
    const rg = surrogate.reluGrad({ alpha: 0.3, width: 1 });
    expect(rg.derivative(0.5)).toBeCloseTo(0.15);
    expect(rg.derivative(1.5)).toBe(0);
    expect(integral(rg.derivative)).toBeCloseTo(0.3, 4);
    const gg = surrogate.gaussianGrad({ sigma: 0.5, alpha: 0.5 });
    expect(gg.derivative(0)).toBeCloseTo(0.5 / (0.5 * Math.sqrt(2 * Math.PI)));
    expect(integral(gg.derivative)).toBeCloseTo(0.5, 4);
    const pq = surrogate.piecewiseQuadratic({ alpha: 2 });
    expect(pq.derivative(0.25)).toBeCloseTo(2 - 4 * 0.25);
    expect(pq.derivative(0.6)).toBe(0);
    expect(integral(pq.derivative)).toBeCloseTo(1, 4);
    const mg = surrogate.multiGaussian({ h: 0.15, s: 6, sigma: 0.5, scale: 0.5 });
    expect(integral(mg.derivative)).toBeCloseTo(0.5 * (1 - 0.15), 4);
    expect(mg.derivative(0.3)).toBeCloseTo(mg.derivative(-0.3), 12);
  });
});

// ---------------------------------------------------------------------------
// tracing: element-wise ops and broadcasting
// ---------------------------------------------------------------------------

describe('tracing element-wise ops', () => {
  test('equal shapes: no BroadcastTo', () => {
    const g = trace2([2, 3], [2, 3], (a, b) => bt.add(a, b));
    expect(ops(g)).toEqual(['Input', 'Input', 'Add']);
    expect(out(g).shape).toEqual([2, 3]);
    expect(g.inputs.map((s) => s.name)).toEqual(['x', 'x1']);
    expect(g.outputs).toEqual([{ kind: 'output', nodeId: 2, index: 0 }]);
  });

  test('numpy broadcasting inserts explicit BroadcastTo nodes', () => {
    const g = trace2([4, 1, 3], [5, 1], (a, b) => a.mul(b));
    const y = out(g);
    expect(y.op).toBe('Mul');
    expect(y.shape).toEqual([4, 5, 3]);
    const [ia, ib] = inputsOf(g, y);
    expect(ia.op).toBe('BroadcastTo');
    expect(ia.shape).toEqual([4, 5, 3]);
    expect(g.nodes[ia.inputs[0]].op).toBe('Input');
    expect(ib.op).toBe('BroadcastTo');
    expect(ib.shape).toEqual([4, 5, 3]);
    expectTopological(g);
  });

  test('scalars and host constants become Const nodes of the graph dtype', () => {
    const g = trace1([2, 3], (x) => x.add(0.1).mul(tensor([1, 2, 3], undefined, 'float64')));
    const mul = out(g);
    const [addN, bc] = inputsOf(g, mul);
    expect(bc.op).toBe('BroadcastTo');
    const c = g.nodes[bc.inputs[0]];
    expect(c.op).toBe('Const');
    expect(c.shape).toEqual([3]);
    expect(c.floats).toEqual([1, 2, 3]);
    const scalar = g.nodes[g.nodes[addN.inputs[1]].inputs[0]];
    expect(scalar.op).toBe('Const');
    expect(scalar.shape).toEqual([]);
    expect(scalar.floats).toEqual([Math.fround(0.1)]); // converted to float32
    const g64 = trace1([2], (x) => x.add(0.1), 'float64');
    expect(g64.nodes.find((n) => n.op === 'Const')!.floats).toEqual([0.1]);
    expect(g64.dtype).toBe('float64');
  });

  test('bad broadcast names the op and both shapes', () => {
    expectThrow(() => trace2([2, 3], [4], (a, b) => bt.add(a, b)), ShapeError, 'add: shapes (2, 3) and (4,) cannot be broadcast');
    expectThrow(() => trace2([2, 3], [3, 3], (a, b) => a.sub(b)), ShapeError, 'sub: shapes (2, 3) and (3, 3)');
    expectThrow(
      () => traceFunction((c, a, b) => bt.where(c, a, b), [{ shape: [2] }, { shape: [3] }, { shape: [2] }]),
      ShapeError,
      'where: shapes (2,), (3,) and (2,) cannot be broadcast',
    );
  });

  test('unary ops keep the shape and carry their attributes', () => {
    const g = trace1([3], (x) => [
      x.leakyRelu(0.2),
      bt.elu(x, 0.5),
      x.clamp(-1, 2),
      x.spike(),
      bt.spike(x, surrogate.multiGaussian({ h: 0.1 })),
      bt.gelu(x),
      x.tanh().sigmoid().relu().softplus().exp().log().log1p().sqrt().abs().square().neg().sin().cos().stopGradient(),
    ]);
    const o = (i: number) => out(g, i);
    expect(o(0)).toMatchObject({ op: 'LeakyRelu', floats: [0.2], shape: [3] });
    expect(o(1)).toMatchObject({ op: 'Elu', floats: [0.5] });
    expect(o(2)).toMatchObject({ op: 'Clamp', floats: [-1, 2] });
    expect(o(3)).toMatchObject({ op: 'Spike', ints: [0], floats: [4] });
    expect(o(4)).toMatchObject({ op: 'Spike', ints: [5], floats: [0.1, 6, 0.5, 0.5] });
    expect(o(5)).toMatchObject({ op: 'Gelu' });
    expect(o(6).op).toBe('StopGradient');
    expect(ops(g)).toEqual(
      expect.arrayContaining(['Tanh', 'Sigmoid', 'Relu', 'Softplus', 'Exp', 'Log', 'Log1p', 'Sqrt', 'Abs', 'Square', 'Neg', 'Sin', 'Cos']),
    );
    expectThrow(() => trace1([3], (x) => x.clamp(2, 1)), ArgumentError, 'clamp', 'lo=2', 'hi=1');
    expectThrow(() => trace1([3], (x) => bt.spike(x, { kind: 'nope', params: [], derivative: () => 0 } as never)), ArgumentError, 'spike', 'nope');
  });

  test('comparisons, min/max, pow, where', () => {
    const g = trace2([2, 3], [3], (a, b) => [a.lt(b), a.le(b), a.gt(0), a.ge(b), a.eq(b), a.ne(b), bt.minimum(a, b), bt.maximum(a, 1), bt.pow(a, 2), bt.where(a.gt(0), a, b)]);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => out(g, i).op)).toEqual([
      'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'Equal', 'NotEqual', 'Minimum', 'Maximum', 'Pow', 'Where',
    ]);
    const w = out(g, 9);
    expect(w.shape).toEqual([2, 3]);
    expect(inputsOf(g, w).map((n) => n.shape)).toEqual([[2, 3], [2, 3], [2, 3]]);
    expect(inputsOf(g, w)[2].op).toBe('BroadcastTo');
  });
});

// ---------------------------------------------------------------------------
// tracing: reductions, layout, products
// ---------------------------------------------------------------------------

describe('tracing reductions and layout', () => {
  test('reductions: axes sorted/unique, negative axes, keepdims, all axes', () => {
    const g = trace1([2, 3, 4], (x) => [x.sum(-1), x.mean([2, 0], true), x.max(), bt.sum(x, [-3, 1])]);
    expect(out(g, 0)).toMatchObject({ op: 'ReduceSum', ints: [2], shape: [2, 3] });
    expect(out(g, 1)).toMatchObject({ op: 'ReduceMean', ints: [0, 2], shape: [1, 3, 1] });
    expect(out(g, 2)).toMatchObject({ op: 'ReduceMax', ints: [0, 1, 2], shape: [] });
    expect(out(g, 3)).toMatchObject({ op: 'ReduceSum', ints: [0, 1], shape: [4] });
    expectThrow(() => trace1([2, 3], (x) => x.sum(2)), ShapeError, 'sum', 'axis 2', '(2, 3)');
    expectThrow(() => trace1([2, 3], (x) => x.sum([1, -1])), ArgumentError, 'sum', 'repeated');
  });

  test('reshape with -1, expandDims, squeeze', () => {
    const g = trace1([2, 3, 4], (x) => [x.reshape([-1, 4]), x.reshape([2, -1]), x.expandDims(-1), x.expandDims(0).squeeze(0), x.reshape([2, 1, 12]).squeeze()]);
    expect(out(g, 0)).toMatchObject({ op: 'Reshape', shape: [6, 4] });
    expect(out(g, 1).shape).toEqual([2, 12]);
    expect(out(g, 2)).toMatchObject({ op: 'Reshape', shape: [2, 3, 4, 1] });
    expect(out(g, 3).shape).toEqual([2, 3, 4]);
    expect(out(g, 4).shape).toEqual([2, 12]);
    expectThrow(() => trace1([2, 3], (x) => x.reshape([4, -1])), ShapeError, 'reshape', '(2, 3)', '(4, -1)');
    expectThrow(() => trace1([2, 3], (x) => x.reshape([5])), ShapeError, 'reshape', '(2, 3)', '(5,)');
    expectThrow(() => trace1([2, 3], (x) => x.reshape([-1, -1])), ArgumentError, 'only one');
    expectThrow(() => trace1([2, 3], (x) => x.squeeze(0)), ShapeError, 'squeeze', 'axis 0', 'size 2');
  });

  test('transpose, slice, sliceAxis, select', () => {
    const g = trace1([2, 3, 4], (x) => [x.transpose(), x.transpose([0, 2, 1]), x.slice([1, 0, 1], [1, -1, 2]), x.sliceAxis(-1, 1, 3), x.select(1, -1)]);
    expect(out(g, 0)).toMatchObject({ op: 'Transpose', ints: [2, 1, 0], shape: [4, 3, 2] });
    expect(out(g, 1)).toMatchObject({ op: 'Transpose', ints: [0, 2, 1], shape: [2, 4, 3] });
    expect(out(g, 2)).toMatchObject({ op: 'Slice', ints: [1, 0, 1], shape: [1, 3, 2] });
    expect(out(g, 3)).toMatchObject({ op: 'Slice', ints: [0, 0, 1], shape: [2, 3, 2] });
    const sel = out(g, 4);
    expect(sel).toMatchObject({ op: 'Reshape', shape: [2, 4] });
    expect(inputsOf(g, sel)[0]).toMatchObject({ op: 'Slice', ints: [0, 2, 0], shape: [2, 1, 4] });
    expectThrow(() => trace1([2, 3], (x) => x.transpose([0, 0])), ShapeError, 'transpose', '[0, 0]');
    expectThrow(() => trace1([2, 3], (x) => x.slice([1, 0], [2, 3])), ShapeError, 'slice', 'axis 0', 'dimension 2');
    expectThrow(() => trace1([2, 3], (x) => x.sliceAxis(1, 2, 5)), ShapeError, 'sliceAxis', 'size 3');
  });

  test('concat and stack', () => {
    const g = trace2([2, 3], [2, 5], (a, b) => [bt.concat([a, b]), bt.concat([a, a], 0), bt.stack([a, a, a], -1)]);
    expect(out(g, 0)).toMatchObject({ op: 'Concat', ints: [1], shape: [2, 8] });
    expect(out(g, 1)).toMatchObject({ op: 'Concat', ints: [0], shape: [4, 3] });
    expect(out(g, 2)).toMatchObject({ op: 'Concat', ints: [2], shape: [2, 3, 3] });
    expectThrow(() => trace2([2, 3], [3, 3], (a, b) => bt.concat([a, b], 1)), ShapeError, 'concat', '(3, 3)', '(2, 3)');
  });

  test('softmax / logSoftmax normalise the axis', () => {
    const g = trace1([2, 5], (x) => [x.softmax(), bt.logSoftmax(x, 0)]);
    expect(out(g, 0)).toMatchObject({ op: 'Softmax', ints: [1], shape: [2, 5] });
    expect(out(g, 1)).toMatchObject({ op: 'LogSoftmax', ints: [0] });
  });

  test('plain matmul: (..., M, K) x (K, N), batched, vectors, bias, errors', () => {
    const g = trace2([7, 2, 3], [3, 4], (a, b) => [bt.matmul(a, b), bt.matmul(a, b, tensor([1, 2, 3, 4]))]);
    expect(out(g, 0)).toMatchObject({ op: 'MatMul', shape: [7, 2, 4] });
    expect(out(g, 1).op).toBe('Add');
    const gb = trace2([5, 2, 3], [5, 3, 4], (a, b) => a.matmul(b));
    expect(out(gb)).toMatchObject({ op: 'MatMul', shape: [5, 2, 4] });
    const gv = trace2([3], [3, 4], (a, b) => bt.matmul(a, b));
    expect(out(gv).shape).toEqual([4]);
    expectThrow(() => trace2([2, 3], [4, 5], (a, b) => bt.matmul(a, b)), ShapeError, 'matmul', '(2, 3)', '(4, 5)');
    expectThrow(() => trace2([2, 2, 3], [5, 3, 4], (a, b) => bt.matmul(a, b)), ShapeError, 'matmul', '(2, 2, 3)', '(5, 3, 4)');
  });
});

// ---------------------------------------------------------------------------
// tracing: lifecycle and errors
// ---------------------------------------------------------------------------

describe('trace lifecycle', () => {
  test('a tensor from another trace is rejected clearly', () => {
    let leaked: Tensor | null = null;
    trace1([2], (x) => {
      leaked = x;
      return x.neg();
    });
    expectThrow(() => trace1([2], (x) => x.add(leaked!)), ArgumentError, 'add', 'another trace');
    expectThrow(() => leaked!.neg(), ArgumentError, 'neg', 'trace');
  });

  test('nested tracing is refused and no global state survives an exception', () => {
    expectThrow(
      () => trace1([2], (x) => { trace1([2], (y) => y); return x; }),
      NotSupportedError,
      'nested',
    );
    expect(bt.isTracing()).toBe(false);
    expect(() => trace1([2], () => { throw new Error('boom'); })).toThrow('boom');
    expect(bt.isTracing()).toBe(false);
    expect(ops(trace1([2], (x) => x.exp()))).toEqual(['Input', 'Exp']);
  });

  test('ops outside tracing and bad returns', () => {
    expectThrow(() => bt.add(1, 2), NotSupportedError, 'add', 'no trace');
    expectThrow(() => traceFunction(() => 3 as never, []), ArgumentError, 'must return');
    expectThrow(() => trace1([2], (x) => x.add('a' as never)), ArgumentError, 'add', 'argument b');
  });
});

// ---------------------------------------------------------------------------
// modules and states
// ---------------------------------------------------------------------------

class Cell extends Module {
  w = new ParamState(init.xavierNormal(), [3, 4]);
  h = new HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = this.h.value.mul(0.9).add(bt.matmul(x, this.w));
    return this.h.value;
  }
}

class Net extends Module {
  rnn = new Cell();
  layers = [new HiddenState([2]), { g: new HiddenGroupState([4], 2), count: new State([], 0, { batched: false }) }];
  out = { weight: new ParamState(init.kaimingUniform(), [4, 2]), bias: new ParamState(init.zeros(), [2]) };
  config = { note: 'not a state', n: 3 };
  update(x: Tensor): Tensor {
    const h = this.rnn.update(x);
    const g = this.layers[1] as { g: HiddenGroupState; count: State };
    g.g.value = bt.stack([h, bt.select(g.g.value, -1, 0)], -1);
    return bt.matmul(h, this.out.weight, this.out.bias);
  }
}

describe('modules and states', () => {
  test('state paths from nested modules, arrays and plain objects, in definition order', () => {
    const net = new Net();
    expect([...net.states().keys()]).toEqual(['rnn.w', 'rnn.h', 'layers.0', 'layers.1.g', 'layers.1.count', 'out.weight', 'out.bias']);
    expect([...net.paramStates().keys()]).toEqual(['rnn.w', 'out.weight', 'out.bias']);
    expect([...net.hiddenStates().keys()]).toEqual(['rnn.h', 'layers.0', 'layers.1.g']);
    expect([...net.otherStates().keys()]).toEqual(['layers.1.count']);
    expect(net.rnn.w.path).toBe('rnn.w');
  });

  test('initStates: shapes (B, ...), HiddenGroupState (B, ..., S), dtype', () => {
    const net = new Net().initStates({ batchSize: 5, dtype: 'float64', seed: 1 });
    expect(net.rnn.w.hostValue.shape).toEqual([3, 4]);
    expect(net.rnn.h.hostValue.shape).toEqual([5, 4]);
    const g = (net.layers[1] as { g: HiddenGroupState }).g;
    expect(g.numState).toBe(2);
    expect(g.hostValue.shape).toEqual([5, 4, 2]);
    expect(g.hostValue.dtype).toBe('float64');
    expect(g.hostValue.data).toBeInstanceOf(Float64Array);
    expect((net.layers[1] as { count: State }).count.hostValue.shape).toEqual([]);
  });

  test('init determinism: same seed + path → same values; different path or seed → different; order-free', () => {
    class A extends Module {
      p = new ParamState(init.normal(), [8, 8]);
      q = new ParamState(init.normal(), [8, 8]);
      update(x: Tensor) { return x; }
    }
    class B extends Module {
      q = new ParamState(init.normal(), [8, 8]); // defined in the other order
      p = new ParamState(init.normal(), [8, 8]);
      update(x: Tensor) { return x; }
    }
    const a1 = new A().initStates({ seed: 3 });
    const a2 = new A().initStates({ seed: 3 });
    const b = new B().initStates({ seed: 3 });
    const a4 = new A().initStates({ seed: 4 });
    expect(Array.from(a1.p.hostValue.data)).toEqual(Array.from(a2.p.hostValue.data));
    expect(Array.from(a1.p.hostValue.data)).toEqual(Array.from(b.p.hostValue.data));
    expect(Array.from(a1.q.hostValue.data)).toEqual(Array.from(b.q.hostValue.data));
    expect(Array.from(a1.p.hostValue.data)).not.toEqual(Array.from(a1.q.hostValue.data));
    expect(Array.from(a1.p.hostValue.data)).not.toEqual(Array.from(a4.p.hostValue.data));
  });

  test('resetState re-initialises short-term states only; host value setter checks shapes', () => {
    const c = new Cell().initStates({ batchSize: 2 });
    const w0 = Array.from(c.w.hostValue.data);
    c.h.value = tensor([[1, 2, 3, 4], [5, 6, 7, 8]]);
    expect(Array.from(c.h.hostValue.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    c.w.hostValue = zeros([3, 4]);
    c.resetState();
    expect(Array.from(c.h.hostValue.data)).toEqual(new Array(8).fill(0));
    expect(Array.from(c.w.hostValue.data)).toEqual(new Array(12).fill(0));
    expect(w0.some((v) => v !== 0)).toBe(true);
    expectThrow(() => (c.h.hostValue = zeros([3, 4])), ShapeError, "state 'h'", '(3, 4)', '(2, 4)');
    expectThrow(() => new Cell().h.hostValue, ArgumentError, 'initStates');
  });

  test('ParamState from data and constants', () => {
    const p = new ParamState([
      [1, 2],
      [3, 4],
    ]);
    expect(p.shape).toEqual([2, 2]);
    expect(Array.from(p.hostValue.data)).toEqual([1, 2, 3, 4]);
    const c = new ParamState(0.5, [3]);
    class M extends Module {
      p = p;
      c = c;
      update(x: Tensor) { return x; }
    }
    new M().initStates({ dtype: 'float64' });
    expect(p.hostValue.dtype).toBe('float64');
    expect(Array.from(c.hostValue.data)).toEqual([0.5, 0.5, 0.5]);
    expectThrow(() => new ParamState(init.normal()), ArgumentError, 'shape');
  });
});

describe('traceModel', () => {
  test('leaves, slots, outputs table and ETP ops', () => {
    const net = new Net();
    const { graph: g, params, states, outputShapes } = traceModel(net, { inputShapes: [[3]], batchSize: 2, dtype: 'float64' });
    expectTopological(g);
    expect(g.dtype).toBe('float64');
    expect(g.inputs).toEqual([{ nodeId: 0, name: 'x', shape: [2, 3] }]);
    expect(g.params.map((p) => [p.path, p.shape])).toEqual([
      ['rnn.w', [3, 4]],
      ['out.weight', [4, 2]],
      ['out.bias', [2]],
    ]);
    expect(params.map((p) => p.path)).toEqual(['rnn.w', 'out.weight', 'out.bias']);
    expect(g.states.map((s) => [s.path, s.kind, s.shape, s.numState])).toEqual([
      ['rnn.h', 'hidden', [2, 4], 1],
      ['layers.0', 'hidden', [2, 2], 1],
      ['layers.1.g', 'hiddenGroup', [2, 4, 2], 2],
      ['layers.1.count', 'other', [], 1],
    ]);
    expect(states.map((s) => s.path)).toEqual(g.states.map((s) => s.path));
    g.params.forEach((p, i) => expect(g.nodes[p.nodeId]).toMatchObject({ op: 'Param', ints: [i] }));
    g.states.forEach((s, i) => expect(g.nodes[s.nodeId]).toMatchObject({ op: 'State', ints: [i], shape: s.shape }));
    expect(outputShapes).toEqual([[2, 2]]);

    // outputs: model output, then one stateNew per state slot
    expect(g.outputs.map((o) => [o.kind, o.index])).toEqual([
      ['output', 0],
      ['stateNew', 0],
      ['stateNew', 1],
      ['stateNew', 2],
      ['stateNew', 3],
    ]);
    // unwritten states map to their own leaves
    expect(g.outputs[2].nodeId).toBe(g.states[1].nodeId);
    expect(g.outputs[4].nodeId).toBe(g.states[3].nodeId);
    // written states: the new value has the leaf's shape
    expect(g.nodes[g.outputs[3].nodeId]).toMatchObject({ op: 'Concat', shape: [2, 4, 2] });
    const hNew = g.nodes[g.outputs[1].nodeId];
    expect(hNew.op).toBe('Add');
    const etp = inputsOf(g, hNew)[1];
    expect(etp.op).toBe('EtpMatMul');
    expect(etp.inputs).toEqual([g.inputs[0].nodeId, g.params[0].nodeId]);
    expect(etp.shape).toEqual([2, 4]);
    // readout with a ParamState bias: EtpMatMul with 3 inputs
    const y = out(g);
    expect(y.op).toBe('EtpMatMul');
    expect(y.inputs).toEqual([g.outputs[1].nodeId, g.params[1].nodeId, g.params[2].nodeId]);
    // states are unbound afterwards
    expect(() => net.rnn.h.value).toThrow(/initStates/);
  });

  test('loss: target input after the model inputs, scalar loss row', () => {
    const c = new Cell();
    const { graph: g } = traceModel(c, {
      inputShapes: [[3]],
      batchSize: 4,
      loss: { fn: (y, t) => y.sub(t).square().mean(), targetShape: [4] },
    });
    expect(g.inputs.map((i) => [i.name, i.shape])).toEqual([
      ['x', [4, 3]],
      ['target', [4, 4]],
    ]);
    const last = g.outputs[g.outputs.length - 1];
    expect(last.kind).toBe('loss');
    expect(g.nodes[last.nodeId]).toMatchObject({ op: 'ReduceMean', shape: [] });
    expectThrow(
      () => traceModel(new Cell(), { inputShapes: [[3]], loss: { fn: (y, t) => y.sub(t), targetShape: [4] } }),
      ShapeError,
      'loss must be a scalar',
      '(1, 4)',
    );
  });

  test('writing a ParamState during tracing is NotSupported and names the path', () => {
    class Bad extends Module {
      rnn = { w: new ParamState(init.zeros(), [2, 2]) };
      update(x: Tensor) {
        this.rnn.w.value = this.rnn.w.value.add(1);
        return x;
      }
    }
    expectThrow(() => traceModel(new Bad(), { inputShapes: [[2]] }), NotSupportedError, "ParamState 'rnn.w'", 'weights cannot be dynamical');
    expect(bt.isTracing()).toBe(false);
  });

  test('assigning a wrong shape to a state names the state and both shapes', () => {
    class Bad extends Module {
      h = new HiddenState([4]);
      update(x: Tensor) {
        this.h.value = x;
        return x;
      }
    }
    expectThrow(() => traceModel(new Bad(), { inputShapes: [[3]], batchSize: 2 }), ShapeError, "'h'", '(2, 3)', '(2, 4)');
  });

  test('ETP detection: weight transforms, element-wise weights, plain products', () => {
    class M extends Module {
      w = new ParamState(init.normal(), [3, 3]);
      m = new ParamState(init.ones(), [3]);
      h = new HiddenState([3]);
      update(x: Tensor) {
        const a = bt.matmul(x, this.w.value.abs()); // transform of one param → ETP
        const b = bt.matmul(x, this.h.value.expandDims(-1).mul(this.w.value).sum(0)); // depends on a state → plain
        this.h.value = this.h.value.mul(0.5).add(bt.elementWise(this.m, (y) => y.mul(x)));
        return [a, b];
      }
    }
    const { graph: g } = traceModel(new M(), { inputShapes: [[3]], batchSize: 2 });
    expect(out(g, 0).op).toBe('EtpMatMul');
    expect(g.nodes[out(g, 0).inputs[1]].op).toBe('Abs');
    expect(out(g, 1).op).toBe('MatMul');
    const ew = g.nodes.find((n) => n.op === 'EtpElementWise')!;
    expect(ew.inputs).toEqual([g.params[1].nodeId]);
    expect(ew.shape).toEqual([3]);
    expectThrow(
      () => traceModel(new Cell(), { inputShapes: [[5]] }),
      ShapeError,
      'matmul',
      "weight 'w'",
      '(1, 5)',
      '(3, 4)',
    );
  });

  test('a state read while tracing another function is an error', () => {
    const c = new Cell();
    expectThrow(() => trace1([2], (x) => x.add(c.h.value)), ArgumentError, 'not a state of the traced model');
  });

  test('HiddenGroupState value is (B, ...shape, S) and must be written back with that shape', () => {
    class Lif extends Module {
      g = new HiddenGroupState([5], 2);
      update(x: Tensor) {
        const i = bt.select(this.g.value, -1, 0);
        const v = bt.select(this.g.value, -1, 1);
        expect(i.shape).toEqual([3, 5]);
        this.g.value = bt.stack([i.mul(0.9).add(x), v.mul(0.8).add(i)], -1);
        return v.spike();
      }
    }
    const { graph: g } = traceModel(new Lif(), { inputShapes: [[5]], batchSize: 3 });
    expect(g.states[0]).toMatchObject({ kind: 'hiddenGroup', shape: [3, 5, 2], numState: 2 });
    expect(g.nodes[g.outputs[1].nodeId].shape).toEqual([3, 5, 2]);
    class Bad extends Module {
      g = new HiddenGroupState([5], 2);
      update(x: Tensor) {
        this.g.value = bt.select(this.g.value, -1, 0);
        return x;
      }
    }
    expectThrow(() => traceModel(new Bad(), { inputShapes: [[5]], batchSize: 3 }), ShapeError, "'g'", '(3, 5)', '(3, 5, 2)');
  });
});

// silence unused-import lint for types used only in annotations
export type _Unused = HostTensor;
