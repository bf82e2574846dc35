/**
 * The op table: every op of the IR, run natively.
 *  - forward against a closed form or a float64 JS reference;
 *  - JVP and VJP against a full central-finite-difference Jacobian (float64);
 *  - ops without a classical derivative (spikes, comparisons, stopGradient):
 *    the derivative against its documented formula (the surrogate's, or zero);
 *  - float32: forward and JVP against the float64 run.
 * A last test checks that the cases cover every op of OP_NAMES.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import type { Graph } from '../lib/graph/ir';
import { OP_NAMES, type OpKind } from '../lib/graph/ops';
import { GraphRunner, erf, leafList, mapLeaves, maxRelErr, prng, type Leaves } from './helpers/native';

type Gen = (rnd: () => number, i: number) => number;
const uniform = (lo: number, hi: number): Gen => (r) => lo + (hi - lo) * r();
const awayFromZero: Gen = (r) => (r() < 0.5 ? -1 : 1) * (0.2 + 1.3 * r());
const positive = uniform(0.3, 2);
const fixed = (vals: number[]): Gen => (_r, i) => vals[i % vals.length];

/** How a case's derivative is checked. */
type DerivCheck =
  | { kind: 'fd' } // full finite-difference Jacobian
  | { kind: 'zero' } // derivative is zero by definition
  | { kind: 'diag'; d: (u: number) => number }; // unary: dy_i/du_i = d(u_i), checked directly

interface OpCase {
  name: string;
  /** Per-input shapes (traceFunction) or, with `model`, per-sample input shapes. */
  shapes: number[][];
  gens?: Gen[];
  fn?: (...xs: Tensor[]) => Tensor | Tensor[];
  /** A model instead of a function (for ETP ops, params and states). */
  model?: () => bt.Module;
  batch?: number;
  ref?: (...xs: Float64Array[]) => ArrayLike<number>;
  deriv?: DerivCheck;
}

const unaryRef = (f: (x: number) => number) => (x: Float64Array) => Array.from(x, f);
const binaryRef = (f: (a: number, b: number) => number) => (a: Float64Array, b: Float64Array) =>
  Array.from(a, (v, i) => f(v, b[i]));
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

const S = [2, 3];
const unary = (
  name: string,
  fn: (x: Tensor) => Tensor,
  f: (x: number) => number,
  gen: Gen = uniform(-1.5, 1.5),
): OpCase => ({ name, shapes: [S], gens: [gen], fn, ref: unaryRef(f) });
const binary = (
  name: string,
  fn: (a: Tensor, b: Tensor) => Tensor,
  f: (a: number, b: number) => number,
  gens: Gen[] = [uniform(-1.5, 1.5), uniform(-1.5, 1.5)],
  shapes: number[][] = [S, S],
): OpCase => ({ name, shapes, gens, fn, ref: binaryRef(f) });

class ElementWiseModel extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [3]);
  update(x: Tensor): Tensor {
    return bt.elementWise(this.w, (y) => bt.mul(x, bt.tanh(y)));
  }
}
class EtpMatMulModel extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [3, 4]);
  b = new bt.ParamState(bt.init.normal(), [4]);
  constructor(private readonly bias: boolean) {
    super();
  }
  update(x: Tensor): Tensor {
    return this.bias ? bt.matmul(x, this.w, this.b) : bt.matmul(x, this.w);
  }
}
class StateModel extends bt.Module {
  h = new bt.HiddenState([3]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.5), x));
    return this.h.value;
  }
}

const surrogates: [string, bt.Surrogate][] = [
  ['sigmoid', bt.surrogate.sigmoid({ alpha: 3 })],
  ['arctan', bt.surrogate.arctan({ alpha: 2.5 })],
  ['reluGrad', bt.surrogate.reluGrad({ alpha: 0.4, width: 1.2 })],
  ['gaussianGrad', bt.surrogate.gaussianGrad({ sigma: 0.6, alpha: 0.7 })],
  ['piecewiseQuadratic', bt.surrogate.piecewiseQuadratic({ alpha: 1.1 })],
  ['multiGaussian', bt.surrogate.multiGaussian()],
];

const CASES: OpCase[] = [
  // ---- unary element-wise
  unary('neg', bt.neg, (x) => -x),
  unary('square', bt.square, (x) => x * x),
  unary('sqrt', bt.sqrt, Math.sqrt, positive),
  unary('abs', bt.abs, Math.abs, awayFromZero),
  unary('exp', bt.exp, Math.exp),
  unary('log', bt.log, Math.log, positive),
  unary('log1p', bt.log1p, Math.log1p, uniform(-0.5, 2)),
  unary('tanh', bt.tanh, Math.tanh),
  unary('sigmoid', bt.sigmoid, sig, uniform(-4, 4)),
  unary('relu', bt.relu, (x) => Math.max(x, 0), awayFromZero),
  unary('leakyRelu', (x) => bt.leakyRelu(x, 0.1), (x) => (x > 0 ? x : 0.1 * x), awayFromZero),
  unary('softplus', bt.softplus, (x) => Math.log1p(Math.exp(x)), uniform(-4, 4)),
  unary('elu', (x) => bt.elu(x, 1.3), (x) => (x > 0 ? x : 1.3 * Math.expm1(x)), awayFromZero),
  unary('gelu', bt.gelu, gelu, uniform(-3, 3)),
  unary('sin', bt.sin, Math.sin),
  unary('cos', bt.cos, Math.cos),
  unary('clamp', (x) => bt.clamp(x, -0.5, 0.7), (x) => Math.min(Math.max(x, -0.5), 0.7), fixed([-1.2, -0.3, 0.1, 0.5, 0.9, 1.4])),
  { ...unary('stopGradient', bt.stopGradient, (x) => x), deriv: { kind: 'zero' } },
  ...surrogates.map(
    ([name, sg]): OpCase => ({
      ...unary(`spike/${name}`, (u) => bt.spike(u, sg), (u) => (u > 0 ? 1 : 0), awayFromZero),
      deriv: { kind: 'diag', d: (u) => sg.derivative(u) },
    }),
  ),
  { name: 'spike/default', shapes: [S], gens: [awayFromZero], fn: (u) => bt.spike(u), ref: unaryRef((u) => (u > 0 ? 1 : 0)), deriv: { kind: 'diag', d: (u) => bt.surrogate.sigmoid().derivative(u) } },
  // ---- binary element-wise, with broadcasting
  binary('add', bt.add, (a, b) => a + b),
  binary('sub', bt.sub, (a, b) => a - b),
  binary('mul', bt.mul, (a, b) => a * b),
  binary('div', bt.div, (a, b) => a / b, [uniform(-1.5, 1.5), awayFromZero]),
  binary('pow', bt.pow, Math.pow, [positive, uniform(-2, 2)]),
  binary('minimum', bt.minimum, Math.min, [fixed([0.1, -0.7, 1.2, 0.4, -1.1, 0.9]), fixed([0.5, -0.2, 0.3, -0.6, 1.0, 0.0])]),
  binary('maximum', bt.maximum, Math.max, [fixed([0.1, -0.7, 1.2, 0.4, -1.1, 0.9]), fixed([0.5, -0.2, 0.3, -0.6, 1.0, 0.0])]),
  {
    name: 'add/broadcast row',
    shapes: [[2, 3], [3]],
    fn: bt.add,
    ref: (a, b) => Array.from(a, (v, i) => v + b[i % 3]),
  },
  {
    name: 'mul/broadcast outer',
    shapes: [[2, 1], [1, 3]],
    fn: bt.mul,
    ref: (a, b) => Array.from({ length: 6 }, (_, i) => a[Math.floor(i / 3)] * b[i % 3]),
  },
  {
    name: 'sub+div/scalar constants',
    shapes: [S],
    gens: [awayFromZero],
    fn: (x) => bt.div(bt.sub(x, 2.5), bt.mul(x, 3)),
    ref: unaryRef((x) => (x - 2.5) / (x * 3)),
  },
  ...(
    [
      ['lt', bt.lt, (a: number, b: number) => a < b],
      ['le', bt.le, (a: number, b: number) => a <= b],
      ['gt', bt.gt, (a: number, b: number) => a > b],
      ['ge', bt.ge, (a: number, b: number) => a >= b],
      ['eq', bt.eq, (a: number, b: number) => a === b],
      ['ne', bt.ne, (a: number, b: number) => a !== b],
    ] as const
  ).map(
    ([name, fn, f]): OpCase => ({
      ...binary(name, fn, (a, b) => (f(a, b) ? 1 : 0), [fixed([0.5, -1, 2, 0.25, 3, -2]), fixed([0.5, 1, -2, 0.25, 1, -3])]),
      deriv: { kind: 'zero' },
    }),
  ),
  {
    name: 'where',
    shapes: [S, S, S],
    gens: [awayFromZero, uniform(-1, 1), uniform(-1, 1)],
    fn: (c, a, b) => bt.where(bt.gt(c, 0), a, b),
    ref: (c, a, b) => Array.from(c, (v, i) => (v > 0 ? a[i] : b[i])),
  },
  // ---- reductions over (2, 3, 4)
  { name: 'sum/all', shapes: [[2, 3, 4]], fn: (x) => bt.sum(x), ref: (x) => [x.reduce((s, v) => s + v, 0)] },
  {
    name: 'sum/axis 1',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.sum(x, 1),
    ref: (x) => Array.from({ length: 8 }, (_, o) => [0, 1, 2].reduce((s, j) => s + x[Math.floor(o / 4) * 12 + j * 4 + (o % 4)], 0)),
  },
  {
    name: 'sum/axes [0,2] keepdims',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.sum(x, [0, 2], true),
    ref: (x) => [0, 1, 2].map((j) => { let s = 0; for (let a = 0; a < 2; a++) for (let k = 0; k < 4; k++) s += x[a * 12 + j * 4 + k]; return s; }),
  },
  {
    name: 'mean/axis -1',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.mean(x, -1),
    ref: (x) => Array.from({ length: 6 }, (_, o) => [0, 1, 2, 3].reduce((s, k) => s + x[o * 4 + k], 0) / 4),
  },
  { name: 'mean/all', shapes: [[2, 3, 4]], fn: (x) => bt.mean(x), ref: (x) => [x.reduce((s, v) => s + v, 0) / 24] },
  {
    name: 'max/axis 1',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.max(x, 1),
    ref: (x) => Array.from({ length: 8 }, (_, o) => Math.max(...[0, 1, 2].map((j) => x[Math.floor(o / 4) * 12 + j * 4 + (o % 4)]))),
  },
  { name: 'max/all', shapes: [[2, 3, 4]], fn: (x) => bt.max(x), ref: (x) => [Math.max(...x)] },
  // ---- normalisers
  {
    name: 'softmax/axis -1',
    shapes: [[2, 4]],
    fn: (x) => bt.softmax(x, -1),
    ref: (x) => Array.from(x, (v, i) => { const r = Math.floor(i / 4); let z = 0; for (let k = 0; k < 4; k++) z += Math.exp(x[r * 4 + k]); return Math.exp(v) / z; }),
  },
  {
    name: 'softmax/axis 0',
    shapes: [[3, 2]],
    fn: (x) => bt.softmax(x, 0),
    ref: (x) => Array.from(x, (v, i) => { const c = i % 2; let z = 0; for (let r = 0; r < 3; r++) z += Math.exp(x[r * 2 + c]); return Math.exp(v) / z; }),
  },
  {
    name: 'logSoftmax/axis -1',
    shapes: [[2, 4]],
    fn: (x) => bt.logSoftmax(x),
    ref: (x) => Array.from(x, (v, i) => { const r = Math.floor(i / 4); let z = 0; for (let k = 0; k < 4; k++) z += Math.exp(x[r * 4 + k]); return v - Math.log(z); }),
  },
  {
    name: 'logSoftmax/axis 0',
    shapes: [[3, 2]],
    fn: (x) => bt.logSoftmax(x, 0),
    ref: (x) => Array.from(x, (v, i) => { const c = i % 2; let z = 0; for (let r = 0; r < 3; r++) z += Math.exp(x[r * 2 + c]); return v - Math.log(z); }),
  },
  // ---- layout
  { name: 'reshape', shapes: [[2, 3, 4]], fn: (x) => bt.reshape(x, [6, -1]), ref: (x) => x },
  {
    name: 'transpose',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.transpose(x, [2, 0, 1]),
    ref: (x) => Array.from({ length: 24 }, (_, o) => { const k = Math.floor(o / 6), a = Math.floor(o / 3) % 2, j = o % 3; return x[a * 12 + j * 4 + k]; }),
  },
  {
    name: 'slice',
    shapes: [[2, 3, 4]],
    fn: (x) => bt.slice(x, [0, 1, 1], [2, 2, 2]),
    ref: (x) => { const o: number[] = []; for (let a = 0; a < 2; a++) for (let j = 1; j < 3; j++) for (let k = 1; k < 3; k++) o.push(x[a * 12 + j * 4 + k]); return o; },
  },
  {
    name: 'concat/axis 1',
    shapes: [[2, 1], [2, 3], [2, 2]],
    fn: (a, b, c) => bt.concat([a, b, c], 1),
    ref: (a, b, c) => [a[0], b[0], b[1], b[2], c[0], c[1], a[1], b[3], b[4], b[5], c[2], c[3]],
  },
  {
    name: 'concat/axis 0',
    shapes: [[1, 3], [2, 3]],
    fn: (a, b) => bt.concat([a, b], 0),
    ref: (a, b) => [...a, ...b],
  },
  { name: 'expandDims+squeeze', shapes: [S], fn: (x) => bt.squeeze(bt.mul(bt.expandDims(x, 1), 2), 1), ref: unaryRef((v) => 2 * v) },
  {
    name: 'broadcastTo',
    shapes: [[3]],
    fn: (x) => bt.broadcastTo(x, [2, 3]),
    ref: (x) => [...x, ...x],
  },
  {
    name: 'stack+sliceAxis+select',
    shapes: [S, S],
    fn: (a, b) => bt.add(bt.sliceAxis(bt.stack([a, b], 0), 2, 1, 3), bt.sliceAxis(bt.select(bt.stack([b, a], 0), 0, 0), 1, 1, 3)),
    ref: (a, b) => { const o: number[] = []; for (let s = 0; s < 2; s++) { const m = s === 0 ? a : b; for (let r = 0; r < 2; r++) for (let c = 1; c < 3; c++) o.push(m[r * 3 + c] + b[r * 3 + c]); } return o; },
  },
  // ---- products
  {
    name: 'matmul/2d',
    shapes: [[2, 3], [3, 4]],
    fn: bt.matmul,
    ref: (a, b) => Array.from({ length: 8 }, (_, o) => [0, 1, 2].reduce((s, k) => s + a[Math.floor(o / 4) * 3 + k] * b[k * 4 + (o % 4)], 0)),
  },
  {
    name: 'matmul/leading dims',
    shapes: [[2, 5, 3], [3, 4]],
    fn: bt.matmul,
    ref: (a, b) => Array.from({ length: 40 }, (_, o) => [0, 1, 2].reduce((s, k) => s + a[Math.floor(o / 4) * 3 + k] * b[k * 4 + (o % 4)], 0)),
  },
  {
    name: 'matmul/batched',
    shapes: [[2, 3, 4], [2, 4, 5]],
    fn: bt.matmul,
    ref: (a, b) => Array.from({ length: 30 }, (_, o) => { const g = Math.floor(o / 15), m = Math.floor(o / 5) % 3, n = o % 5; let s = 0; for (let k = 0; k < 4; k++) s += a[g * 12 + m * 4 + k] * b[g * 20 + k * 5 + n]; return s; }),
  },
  { name: 'etpMatMul/bias', shapes: [[3]], batch: 2, model: () => new EtpMatMulModel(true) },
  { name: 'etpMatMul/no bias', shapes: [[3]], batch: 5, model: () => new EtpMatMulModel(false) },
  { name: 'etpElementWise', shapes: [[3]], batch: 2, model: () => new ElementWiseModel() },
  { name: 'state leaf', shapes: [[3]], batch: 2, model: () => new StateModel() },
];

function build(c: OpCase, dtype: bt.DType): Graph {
  if (c.model) {
    return bt.traceModel(c.model(), { inputShapes: c.shapes, batchSize: c.batch ?? 1, dtype }).graph;
  }
  return bt.traceFunction(c.fn!, c.shapes.map((shape) => ({ shape })), { dtype });
}

function makeLeaves(c: OpCase, g: Graph, seed: number): Leaves {
  const rnd = prng(seed);
  const inputs = g.inputs.map((s, k) => {
    const gen = c.gens?.[k] ?? uniform(-1.5, 1.5);
    return Float64Array.from({ length: bt.numel(s.shape) }, (_, i) => gen(rnd, i));
  });
  const params = g.params.map((s) => Float64Array.from({ length: bt.numel(s.shape) }, () => uniform(-1, 1)(rnd, 0)));
  const states = g.states.map((s) => Float64Array.from({ length: bt.numel(s.shape) }, () => uniform(-1, 1)(rnd, 0)));
  return { inputs, params, states };
}

/** Full Jacobian by central differences: J[out row r][leaf-element column c]. */
function fdJacobian(run: GraphRunner, leaves: Leaves): number[][] {
  const flat = leafList(leaves);
  const cols: number[][] = [];
  flat.forEach((arr, k) =>
    arr.forEach((v, i) => {
      const h = 1e-6 * Math.max(1, Math.abs(v));
      const shifted = (d: number) => mapLeaves(leaves, (leaf, j, x) => (leaf === k && j === i ? x + d : x));
      const plus = run.forward(shifted(h)).flatMap((o) => Array.from(o));
      const minus = run.forward(shifted(-h)).flatMap((o) => Array.from(o));
      cols.push(plus.map((p, r) => (p - minus[r]) / (2 * h)));
    }),
  );
  const rows = cols.length === 0 ? 0 : cols[0].length;
  return Array.from({ length: rows }, (_, r) => cols.map((col) => col[r]));
}

/** Jacobian from JVPs with unit tangents (columns) and from VJPs with unit cotangents (rows). */
function nativeJacobians(run: GraphRunner, leaves: Leaves): { byJvp: number[][]; byVjp: number[][] } {
  const flat = leafList(leaves);
  const outs = run.forward(leaves);
  const cols: number[][] = [];
  flat.forEach((arr, k) =>
    arr.forEach((_v, i) => {
      const t = mapLeaves(leaves, (leaf, j) => (leaf === k && j === i ? 1 : 0));
      cols.push(run.jvp(leaves, t).flatMap((o) => Array.from(o)));
    }),
  );
  const byJvp = outs.flatMap((o) => Array.from(o)).map((_, r) => cols.map((col) => col[r]));
  const byVjp: number[][] = [];
  outs.forEach((o, oi) =>
    o.forEach((_v, j) => {
      const ct = outs.map((p, pi) => Float64Array.from(p, (_x, q) => (pi === oi && q === j ? 1 : 0)));
      byVjp.push(leafList(run.vjp(leaves, ct)).flatMap((a) => Array.from(a)));
    }),
  );
  return { byJvp, byVjp };
}

const covered = new Set<OpKind>();

describe('op table (float64)', () => {
  test.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const g = build(c, 'float64');
    g.nodes.forEach((n) => covered.add(n.op));
    const run = new GraphRunner(g);
    try {
      const leaves = makeLeaves(c, g, 1234);
      const outs = run.forward(leaves);
      if (c.ref) {
        expect(maxRelErr(outs[0], c.ref(...leaves.inputs))).toBeLessThan(1e-13);
      }
      const { byJvp, byVjp } = nativeJacobians(run, leaves);
      const deriv = c.deriv ?? { kind: 'fd' };
      let expected: number[][];
      if (deriv.kind === 'fd') {
        expected = fdJacobian(run, leaves);
        // Guard against a vacuous check: the Jacobian must not be all zeros.
        expect(expected.some((row) => row.some((v) => Math.abs(v) > 1e-3))).toBe(true);
      } else if (deriv.kind === 'zero') {
        expected = byJvp.map((row) => row.map(() => 0));
      } else {
        const u = leaves.inputs[0];
        expected = byJvp.map((row, r) => row.map((_v, col) => (r === col ? deriv.d(u[r]) : 0)));
        expect(expected.some((row) => row.some((v) => Math.abs(v) > 1e-3))).toBe(true);
      }
      const tol = deriv.kind === 'fd' ? 1e-7 : 1e-13;
      expect(maxRelErr(byJvp.flat(), expected.flat())).toBeLessThan(tol);
      expect(maxRelErr(byVjp.flat(), expected.flat())).toBeLessThan(tol);
    } finally {
      run.dispose();
    }
  });

  test('the cases cover every op of the IR', () => {
    const missing = OP_NAMES.filter((op) => !covered.has(op));
    expect(missing).toEqual([]);
  });
});

describe('op table (float32 against float64)', () => {
  test.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const g64 = build(c, 'float64');
    const g32 = build(c, 'float32');
    const r64 = new GraphRunner(g64);
    const r32 = new GraphRunner(g32);
    try {
      // Leaves rounded to float32 so both runs see the same values.
      const leaves = mapLeaves(makeLeaves(c, g64, 99), (_l, _i, v) => Math.fround(v));
      const o64 = r64.forward(leaves);
      const o32 = r32.forward(leaves);
      o64.forEach((o, k) => expect(maxRelErr(o32[k], o)).toBeLessThan(2e-6));
      const rnd = prng(7);
      const t = mapLeaves(leaves, () => Math.fround(uniform(-1, 1)(rnd, 0)));
      const j64 = r64.jvp(leaves, t);
      const j32 = r32.jvp(leaves, t);
      j64.forEach((o, k) => expect(maxRelErr(j32[k], o)).toBeLessThan(2e-5));
    } finally {
      r64.dispose();
      r32.dispose();
    }
  });
});
