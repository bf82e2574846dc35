/**
 * Eligibility-trace pieces of the native session (float64):
 *  - per-position Jacobians of one step (hid2hid D (P, S, S) and df (P, S)), computed
 *    natively by forward-mode passes, against finite differences of the one-step
 *    function and hand-derived values;
 *  - probePositions: exact diagonal blocks when positions couple (the whole-batch
 *    passes then give row sums, which differ);
 *  - fetchValues / fetchCotangents, in evaluate and stacked over a sequence;
 *  - runSequence(Async) with Jacobians equals step-by-step evaluate calls, with and
 *    without computeGrads;
 *  - malformed requests throw (INVALID_ARGUMENT, TypeError or RangeError), never crash.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import type { Graph } from '../lib/graph/ir';
import { encodePlan } from '../lib/compiler/plan';
import { loadBinding } from '../lib/runtime/native';
import type { NativeJacobianRequest, NativeSession } from '../types/binding';
import { maxRelErr, prng } from './helpers/native';

// ---------------------------------------------------------------------------------------------
// helpers

interface Loaded {
  graph: Graph;
  session: NativeSession;
}

function load(model: bt.Module, opts: bt.TraceModelOptions): Loaded {
  const { graph } = bt.traceModel(model, { dtype: 'float64', ...opts });
  const plan = encodePlan(graph);
  return { graph, session: loadBinding().createSession(plan.code, plan.fattr) };
}

const sessions: NativeSession[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

/** Loads a model, fills every param (and state) with seeded random values. */
function setup(model: bt.Module, opts: bt.TraceModelOptions, seed: number, stateGen?: (r: () => number) => number): Loaded {
  const l = load(model, opts);
  sessions.push(l.session);
  const rnd = prng(seed);
  l.graph.params.forEach((p, s) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    l.session.setParam(s, Float64Array.from({ length: n }, () => rnd() - 0.5));
  });
  l.graph.states.forEach((st, s) => {
    const n = st.shape.reduce((a, b) => a * b, 1);
    l.session.setState(s, Float64Array.from({ length: n }, () => (stateGen ? stateGen(rnd) : rnd() - 0.5)));
  });
  return l;
}

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const stateSlot = (g: Graph, path: string) => {
  const s = g.states.findIndex((st) => st.path === path);
  if (s < 0) throw new Error(`no state ${path}`);
  return s;
};
const newRow = (g: Graph, slot: number) => g.outputs.findIndex((o) => o.kind === 'stateNew' && o.index === slot);
const newNode = (g: Graph, slot: number) => g.outputs[newRow(g, slot)].nodeId;
const nodesOf = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).map((n) => n.id);
const member = (g: Graph, path: string, width = 1) => {
  const s = stateSlot(g, path);
  return { leafNode: g.states[s].nodeId, newNode: newNode(g, s), width };
};
const randomArray = (n: number, rnd: () => number, lo = -1, hi = 1) => Float64Array.from({ length: n }, () => lo + (hi - lo) * rnd());
const inputsFor = (g: Graph, rnd: () => number) => g.inputs.map((i) => randomArray(numelOf(i.shape), rnd));
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

/** The current stored states of a session. */
const storedStates = (l: Loaded) => l.graph.states.map((_, s) => f64(l.session.getState(s)));

/**
 * Central finite differences of the one-step map per position:
 * D[p, a, b] = d new_a[p] / d h_b[p] for the group given by (state slot, width) members.
 */
function fdHid2Hid(l: Loaded, inputs: Float64Array[], states: Float64Array[], members: { slot: number; width: number }[], P: number, eps = 1e-6): Float64Array {
  const S = members.reduce((a, m) => a + m.width, 0);
  const D = new Float64Array(P * S * S);
  const offs: number[] = [];
  members.reduce((o, m) => (offs.push(o), o + m.width), 0);
  const newVals = (st: Float64Array[]) => {
    const r = l.session.evaluate({ inputs, states: st });
    return members.map((m) => f64(r.outputs[newRow(l.graph, m.slot)]));
  };
  members.forEach((mb, ib) => {
    for (let jb = 0; jb < mb.width; jb++) {
      for (let p = 0; p < P; p++) {
        const idx = p * mb.width + jb;
        const plus = states.map((s) => f64(s));
        const minus = states.map((s) => f64(s));
        plus[mb.slot][idx] += eps;
        minus[mb.slot][idx] -= eps;
        const vp = newVals(plus);
        const vm = newVals(minus);
        members.forEach((ma, ia) => {
          for (let ja = 0; ja < ma.width; ja++) {
            const k = p * ma.width + ja;
            D[(p * S + offs[ia] + ja) * S + offs[ib] + jb] = (vp[ia][k] - vm[ia][k]) / (2 * eps);
          }
        });
      }
    }
  });
  return D;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  const err = maxRelErr(actual, expected);
  if (!(err <= tol)) throw new Error(`max rel error ${err} > ${tol}\nactual   ${Array.from(actual).slice(0, 12)}\nexpected ${Array.from(expected).slice(0, 12)}`);
}

function expectCode(f: () => unknown, code: string, match?: RegExp): void {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Error);
  expect((err as { code?: string }).code).toBe(code);
  if (match) expect((err as Error).message).toMatch(match);
}

// ---------------------------------------------------------------------------------------------
// models

const B = 3;
const N = 4;
const NIN = 2;

/** h' = 0.5 h + x W */
class Leaky extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w));
    return this.h.value;
  }
}

/** i' = 0.8 i + x W; v' = 0.9 v + 0.1 i' − s, s = stopGradient(spike(v − 1)); or v' = tanh(0.9 v + i'). */
class TwoState extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  i = new bt.HiddenState([N]);
  v = new bt.HiddenState([N]);
  constructor(private readonly smooth: boolean) {
    super();
  }
  update(x: Tensor): Tensor {
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w));
    let vNew: Tensor;
    if (this.smooth) {
      vNew = bt.tanh(bt.add(bt.mul(this.v.value, 0.9), iNew));
    } else {
      const s = bt.stopGradient(bt.spike(bt.sub(this.v.value, 1)));
      vNew = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.1)), s);
    }
    this.i.value = iNew;
    this.v.value = vNew;
    return vNew;
  }
}

/** c = h + x W; h' = tanh(c + 0.1 * sum(c, -1, keepdims)): positions couple through the sum. */
class Coupled extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    const c = bt.add(this.h.value, bt.matmul(x, this.w));
    this.h.value = bt.tanh(bt.add(c, bt.mul(bt.sum(c, -1, true), 0.1)));
    return this.h.value;
  }
}

/** h' = tanh(0.5 h + x * y + 0.1 * sum(y)) with y = elementWise(w), w (N,): an unbatched ETP output. */
class ElementWiseCell extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [N]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    this.h.value = bt.elementWise(this.w, (y) =>
      bt.tanh(bt.add(bt.add(bt.mul(this.h.value, 0.5), bt.mul(x, y)), bt.mul(bt.sum(y), 0.1))),
    );
    return this.h.value;
  }
}

/** A hidden group (B, N, 2): g0' = 0.9 g0 + 0.2 tanh(g1) + y, g1' = tanh(g0 g1) + 0.5 g1, y = x W. */
class Group extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  g = new bt.HiddenGroupState([N], 2);
  update(x: Tensor): Tensor {
    const g0 = bt.select(this.g.value, -1, 0);
    const g1 = bt.select(this.g.value, -1, 1);
    const n0 = bt.add(bt.add(bt.mul(g0, 0.9), bt.mul(bt.tanh(g1), 0.2)), bt.matmul(x, this.w));
    const n1 = bt.add(bt.tanh(bt.mul(g0, g1)), bt.mul(g1, 0.5));
    this.g.value = bt.stack([n0, n1], -1);
    return n0;
  }
}

/** h' = tanh(0.5 h + x W); out = h' Wo (plain readout); loss = sum((out − target)^2). */
class Readout extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  wo = new bt.ParamState(bt.init.normal(), [N, 2]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w)));
    return bt.matmul(this.h.value, this.wo.value);
  }
}
const sqLoss: bt.TraceLoss = { fn: (y, t) => bt.sum(bt.square(bt.sub(y, t))), targetShape: [2] };

// ---------------------------------------------------------------------------------------------

describe('native per-position Jacobians', () => {
  test('leaky integrator: D = 0.5, df = 1, fetched x equals the input', () => {
    const l = setup(new Leaky(), { inputShapes: [[NIN]], batchSize: B }, 1);
    const g = l.graph;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const m = member(g, 'h');
    const P = B * N;
    const x = inputsFor(g, prng(2));
    const xNode = g.nodes[etp].inputs[0];
    const r = l.session.evaluate({
      inputs: x,
      fetchValues: [xNode, etp],
      jacobians: [
        { kind: 'hid2hid', members: [m], blocked: [etp], positions: P },
        { kind: 'df', members: [m], yNode: etp, positions: P },
        { kind: 'hid2hid', members: [m], blocked: [etp], positions: P, probePositions: true },
      ],
    });
    expect(r.jacobians).toHaveLength(3);
    expect(r.jacobians![0]).toBeInstanceOf(Float64Array);
    expect(Array.from(r.jacobians![0])).toEqual(new Array(P).fill(0.5));
    expect(Array.from(r.jacobians![1])).toEqual(new Array(P).fill(1));
    expect(Array.from(r.jacobians![2])).toEqual(new Array(P).fill(0.5));
    expect(Array.from(r.fetchedValues![0])).toEqual(Array.from(x[0]));
    // y = x W, and h' = 0.5 h + y
    const h = storedStates(l)[0];
    const y = r.fetchedValues![1];
    expectClose(r.outputs[newRow(g, 0)], Array.from(h, (v, k) => 0.5 * v + y[k]), 1e-15);
    expect(r.fetchedCotangents).toBeUndefined();
    expect(r.outputTangents).toBeUndefined();
  });

  test.each([
    ['spiking', false],
    ['smooth', true],
  ])('two-state cell (%s): D (P, 2, 2) equals finite differences; df hand-derived', (_name, smooth) => {
    // v away from the threshold 1 so that finite differences never flip a spike.
    const l = setup(new TwoState(smooth), { inputShapes: [[NIN]], batchSize: B }, 3, (r) => {
      const u = r();
      return u < 0.5 ? 0.2 + u : 1.2 + u;
    });
    const g = l.graph;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const si = stateSlot(g, 'i');
    const sv = stateSlot(g, 'v');
    const members = [member(g, 'i'), member(g, 'v')];
    const P = B * N;
    const x = inputsFor(g, prng(4));
    const states = storedStates(l);
    const reqs: NativeJacobianRequest[] = [
      { kind: 'hid2hid', members, blocked: [etp], positions: P },
      { kind: 'hid2hid', members, blocked: [etp], positions: P, probePositions: true },
      { kind: 'df', members, yNode: etp, positions: P },
      { kind: 'df', members, yNode: etp, positions: P, probePositions: true },
    ];
    const r = l.session.evaluate({ inputs: x, jacobians: reqs });
    const D = r.jacobians![0];
    expect(D.length).toBe(P * 4);
    const fd = fdHid2Hid(l, x, states, [{ slot: si, width: 1 }, { slot: sv, width: 1 }], P);
    expectClose(D, fd, 1e-7);
    expectClose(r.jacobians![1], D, 1e-15);
    const vNew = r.outputs[newRow(g, sv)];
    const df = new Float64Array(P * 2);
    const Dh = new Float64Array(P * 4);
    for (let p = 0; p < P; p++) {
      const dv = smooth ? 1 - vNew[p] * vNew[p] : 0.1; // d v' / d i'
      df[p * 2] = 1;
      df[p * 2 + 1] = dv;
      Dh.set([0.8, 0, dv * 0.8, smooth ? dv * 0.9 : 0.9], p * 4);
    }
    expectClose(D, Dh, 1e-12);
    expectClose(r.jacobians![2], df, 1e-12);
    expectClose(r.jacobians![3], df, 1e-12);
    // The requests do not change the step's outputs.
    const plain = l.session.evaluate({ inputs: x });
    plain.outputs.forEach((o, e) => expect(Array.from(r.outputs[e])).toEqual(Array.from(o)));
  });

  test('hidden group state (width 2): D equals finite differences; df = [1, 0] per position', () => {
    const l = setup(new Group(), { inputShapes: [[NIN]], batchSize: B }, 5);
    const g = l.graph;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const m = member(g, 'g', 2);
    const P = B * N;
    const x = inputsFor(g, prng(6));
    const r = l.session.evaluate({
      inputs: x,
      jacobians: [
        { kind: 'hid2hid', members: [m], positions: P },
        { kind: 'hid2hid', members: [m], positions: P, probePositions: true },
        { kind: 'df', members: [m], yNode: etp, positions: P },
      ],
    });
    const fd = fdHid2Hid(l, x, storedStates(l), [{ slot: 0, width: 2 }], P);
    expectClose(r.jacobians![0], fd, 1e-7);
    expectClose(r.jacobians![1], fd, 1e-7);
    expect(Array.from(r.jacobians![2])).toEqual(new Array(P).fill([1, 0]).flat());
  });

  test('coupled positions: probePositions gives the exact diagonal, whole-batch passes give row sums', () => {
    const l = setup(new Coupled(), { inputShapes: [[NIN]], batchSize: B }, 7);
    const g = l.graph;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const m = member(g, 'h');
    const P = B * N;
    const x = inputsFor(g, prng(8));
    const r = l.session.evaluate({
      inputs: x,
      jacobians: [
        { kind: 'hid2hid', members: [m], blocked: [etp], positions: P, probePositions: true },
        { kind: 'hid2hid', members: [m], blocked: [etp], positions: P },
        { kind: 'df', members: [m], yNode: etp, positions: P, probePositions: true },
        { kind: 'df', members: [m], yNode: etp, positions: P },
      ],
    });
    const hNew = r.outputs[newRow(g, 0)];
    const fd = fdHid2Hid(l, x, storedStates(l), [{ slot: 0, width: 1 }], P);
    const exact = Array.from(hNew, (h) => (1 - h * h) * 1.1);
    const rowSum = Array.from(hNew, (h) => (1 - h * h) * (1 + 0.1 * N));
    expectClose(r.jacobians![0], fd, 1e-7);
    expectClose(r.jacobians![0], exact, 1e-12);
    expectClose(r.jacobians![1], rowSum, 1e-12);
    expect(maxRelErr(r.jacobians![1], fd)).toBeGreaterThan(1e-3);
    // d h'[p] / d y[p] has the same structure (y enters through c).
    expectClose(r.jacobians![2], exact, 1e-12);
    expectClose(r.jacobians![3], rowSum, 1e-12);
  });

  test('unbatched ETP output (elementWise weight): df per position, probing each y position', () => {
    const l = setup(new ElementWiseCell(), { inputShapes: [[N]], batchSize: B }, 9);
    const g = l.graph;
    const [y] = nodesOf(g, 'EtpElementWise');
    expect(numelOf(g.nodes[y].shape)).toBe(N);
    const m = member(g, 'h');
    const P = B * N;
    const x = inputsFor(g, prng(10));
    const r = l.session.evaluate({
      inputs: x,
      jacobians: [
        { kind: 'df', members: [m], yNode: y, positions: P, probePositions: true },
        { kind: 'df', members: [m], yNode: y, positions: P },
      ],
    });
    const hNew = r.outputs[newRow(g, 0)];
    // d h'[b, k] / d y[k] = (1 − h'^2) (x[b, k] + 0.1); seeding all of y adds 0.1 (N − 1) more.
    expectClose(r.jacobians![0], Array.from(hNew, (h, p) => (1 - h * h) * (x[0][p] + 0.1)), 1e-12);
    expectClose(r.jacobians![1], Array.from(hNew, (h, p) => (1 - h * h) * (x[0][p] + 0.1 * N)), 1e-12);
  });
});

describe('native fetches', () => {
  test('fetchCotangents: the complete cotangent of h\' equals 2 (out − target) Woᵀ and finite differences', () => {
    const l = setup(new Readout(), { inputShapes: [[NIN]], batchSize: B, loss: sqLoss }, 11);
    const g = l.graph;
    const hNewNode = newNode(g, 0);
    const hLeaf = g.states[0].nodeId;
    const rnd = prng(12);
    const inputs = inputsFor(g, rnd);
    const lossRow = g.outputs.findIndex((o) => o.kind === 'loss');
    const cot = g.outputs.map((_, e) => (e === lossRow ? new Float64Array([1]) : null));
    const r = l.session.evaluate({ inputs, outputCotangents: cot, fetchCotangents: [hNewNode, hLeaf], fetchValues: [hNewNode] });
    expect(r.fetchedCotangents).toHaveLength(2);
    const out = r.outputs[g.outputs.findIndex((o) => o.kind === 'output')];
    const target = inputs[g.inputs.findIndex((i) => i.name === 'target')];
    const wo = f64(l.session.getParam(g.params.findIndex((p) => p.path === 'wo')));
    const expected = new Float64Array(B * N);
    for (let b = 0; b < B; b++)
      for (let k = 0; k < N; k++)
        for (let j = 0; j < 2; j++) expected[b * N + k] += 2 * (out[b * 2 + j] - target[b * 2 + j]) * wo[k * 2 + j];
    expectClose(r.fetchedCotangents![0], expected, 1e-12);
    // Finite differences of the loss with h' perturbed: loss(h') = sum((h' Wo − t)^2).
    const hNew = r.fetchedValues![0];
    const lossOf = (h: Float64Array) => {
      let s = 0;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < 2; j++) {
          let o = 0;
          for (let k = 0; k < N; k++) o += h[b * N + k] * wo[k * 2 + j];
          s += (o - target[b * 2 + j]) ** 2;
        }
      return s;
    };
    expect(Math.abs(lossOf(f64(hNew)) - r.outputs[lossRow][0])).toBeLessThan(1e-12);
    const eps = 1e-6;
    const fd = Array.from(hNew, (_, k) => {
      const p = f64(hNew);
      const m = f64(hNew);
      p[k] += eps;
      m[k] -= eps;
      return (lossOf(p) - lossOf(m)) / (2 * eps);
    });
    expectClose(r.fetchedCotangents![0], fd, 1e-7);
    // A leaf's fetched cotangent is its final cotangent.
    expect(Array.from(r.fetchedCotangents![1])).toEqual(Array.from(r.stateCotangents![0]));
  });

  test('fetched cotangent of a node computed from constants only', () => {
    class ConstFed extends bt.Module {
      h = new bt.HiddenState([N]);
      update(x: Tensor): Tensor {
        this.h.value = bt.add(bt.mul(this.h.value, bt.exp(0.5)), x); // exp(0.5): a Const-only node
        return this.h.value;
      }
    }
    const l = setup(new ConstFed(), { inputShapes: [[N]], batchSize: B }, 13);
    const g = l.graph;
    const expNode = nodesOf(g, 'Exp')[0];
    expect(g.nodes[expNode].shape).toEqual([]);
    const inputs = inputsFor(g, prng(14));
    const cot = g.outputs.map((o) => (o.kind === 'output' ? new Float64Array(B * N).fill(1) : null));
    const r = l.session.evaluate({ inputs, outputCotangents: cot, fetchCotangents: [expNode], fetchValues: [expNode] });
    expect(r.fetchedValues![0][0]).toBeCloseTo(Math.exp(0.5), 15);
    // out = h * c with c broadcast: d sum(out) / d c = sum(h)
    const want = storedStates(l)[0].reduce((a, v) => a + v, 0);
    expectClose(r.fetchedCotangents![0], [want], 1e-12);
  });
});

describe('native sequences with Jacobians and fetches', () => {
  const T = 4;
  const build = () => {
    const l = setup(new TwoState(true), { inputShapes: [[NIN]], batchSize: B, loss: { fn: (y, t) => bt.sum(bt.square(bt.sub(y, t))), targetShape: [N] } }, 15);
    const g = l.graph;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const members = [member(g, 'i'), member(g, 'v')];
    const P = B * N;
    const jacobians: NativeJacobianRequest[] = [
      { kind: 'hid2hid', members, blocked: [etp], positions: P },
      { kind: 'df', members, yNode: etp, positions: P },
      { kind: 'hid2hid', members, blocked: [etp], positions: P, probePositions: true },
    ];
    const fetchValues = [etp, g.nodes[etp].inputs[0], members[1].newNode];
    const rnd = prng(16);
    const steps = Array.from({ length: T }, () => inputsFor(g, rnd));
    const seqInputs = g.inputs.map((_, s) => {
      const a = new Float64Array(T * steps[0][s].length);
      steps.forEach((st, t) => a.set(st[s], t * st[s].length));
      return a;
    });
    return { l, g, jacobians, fetchValues, steps, seqInputs };
  };

  test('runSequence (with and without computeGrads, and async) equals T evaluate calls', async () => {
    const { l, g, jacobians, fetchValues, steps, seqInputs } = build();
    const init = storedStates(l);
    // Reference: step by step.
    let states = init.map(f64);
    const refJ: number[][] = jacobians.map(() => []);
    const refV: number[][] = fetchValues.map(() => []);
    for (let t = 0; t < T; t++) {
      const r = l.session.evaluate({ inputs: steps[t], states, jacobians, fetchValues });
      r.jacobians!.forEach((j, k) => refJ[k].push(...j));
      r.fetchedValues!.forEach((v, k) => refV[k].push(...v));
      states = g.states.map((_, s) => f64(r.outputs[newRow(g, s)]));
    }
    const check = (res: { jacobians?: ArrayLike<number>[]; fetchedValues?: ArrayLike<number>[] }) => {
      expect(res.jacobians).toHaveLength(jacobians.length);
      res.jacobians!.forEach((j, k) => expectClose(j, refJ[k], 1e-13));
      expect(res.fetchedValues).toHaveLength(fetchValues.length);
      res.fetchedValues!.forEach((v, k) => expectClose(v, refV[k], 1e-13));
    };
    const plain = l.session.runSequence({ steps: T, inputs: seqInputs, jacobians, fetchValues });
    check(plain);
    expect(plain.paramGrads).toBeUndefined();
    states.forEach((s, k) => expectClose(l.session.getState(k), s, 1e-13));

    init.forEach((s, k) => l.session.setState(k, s));
    const withGrads = l.session.runSequence({ steps: T, inputs: seqInputs, jacobians, fetchValues, computeGrads: true });
    check(withGrads);
    expect(withGrads.paramGrads).toHaveLength(g.params.length);
    // Gradients are unchanged by the requests.
    init.forEach((s, k) => l.session.setState(k, s));
    const gradsOnly = l.session.runSequence({ steps: T, inputs: seqInputs, computeGrads: true });
    expect(gradsOnly.jacobians).toBeUndefined();
    expect(gradsOnly.fetchedValues).toBeUndefined();
    gradsOnly.paramGrads!.forEach((gr, k) => expect(Array.from(withGrads.paramGrads![k])).toEqual(Array.from(gr)));
    expect(Array.from(withGrads.losses)).toEqual(Array.from(gradsOnly.losses));

    init.forEach((s, k) => l.session.setState(k, s));
    // The async form copies its arguments: mutating them after the call changes nothing.
    const jc = jacobians.map((j) => ({ ...j, members: j.members.map((m) => ({ ...m })) }));
    const fv = fetchValues.slice();
    const p = l.session.runSequenceAsync({ steps: T, inputs: seqInputs.map(f64), jacobians: jc, fetchValues: fv, computeGrads: true });
    jc[0].members[0].leafNode = -5;
    jc[0].positions = 1;
    fv[0] = 1e6;
    check(await p);
  });

  test('Jacobian tangent memory does not grow with T', () => {
    const { l, jacobians, fetchValues, g } = build();
    const long = 64;
    const rnd = prng(17);
    const inputs = g.inputs.map((i) => randomArray(long * numelOf(i.shape), rnd));
    const b = loadBinding();
    l.session.runSequence({ steps: 2, inputs: g.inputs.map((i) => randomArray(2 * numelOf(i.shape), rnd)), jacobians, fetchValues });
    b.resetPeakMemory();
    const before = b.memoryStats();
    l.session.runSequence({ steps: long, inputs, jacobians, fetchValues });
    const after = b.memoryStats();
    // No session allocation at all: the tangent buffer is the session's, allocated once.
    expect(after.peakBytes).toBe(before.liveBytes);
    expect(after.allocations).toBe(before.allocations);
  });
});

describe('malformed requests', () => {
  test('throw INVALID_ARGUMENT, TypeError or RangeError and leave the session usable', async () => {
    const l = setup(new TwoState(true), { inputShapes: [[NIN]], batchSize: B }, 19);
    const g = l.graph;
    const s = l.session;
    const [etp] = nodesOf(g, 'EtpMatMul');
    const m = member(g, 'i');
    const P = B * N;
    const x = inputsFor(g, prng(20));
    const inv = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
    const xNode = g.inputs[0].nodeId;
    // not a State leaf
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [{ ...m, leafNode: xNode }], positions: P }] }), inv, /jacobians\[0\]\.members\[0\]\.leaf_node must be a State leaf/);
    // wrong positions
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m], positions: P + 1 }] }), inv, /positions \* width/);
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [{ ...m, width: 2 }], positions: P }] }), inv, /expected positions \* width = 12 \* 2 = 24/);
    // y with a size that does not divide positions
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'df', members: [m], yNode: g.params[0].nodeId, positions: P }] }), inv, /y_node/);
    // node ids out of range (the binding cannot know the node count)
    expectCode(() => s.evaluate({ inputs: x, fetchValues: [0, 100000] }), inv, /fetch_values\[1\]/);
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m], blocked: [99999], positions: P }] }), inv, /blocked\[0\]/);
    expectCode(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'df', members: [m], yNode: 99999, positions: P }] }), inv, /y_node/);
    // fetchCotangents without a VJP
    expectCode(() => s.evaluate({ inputs: x, fetchCotangents: [etp] }), inv, /fetch_cotangents needs a VJP/);
    expectCode(() => s.runSequence({ steps: 2, inputs: g.inputs.map((i) => new Float64Array(2 * numelOf(i.shape))), fetchValues: [-0 + 123456] }), inv, /run_sequence: fetch_values\[0\]/);
    // binding-level type and range errors
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'df', members: [m], positions: P }] })).toThrow(TypeError);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'df', members: [m], positions: P }] })).toThrow(/jacobians\[0\]\.yNode/);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'foo' as 'df', members: [m], positions: P }] })).toThrow(TypeError);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m, { ...m, leafNode: -1 }], positions: P }] })).toThrow(
      new RangeError('jacobians[0].members[1].leafNode must be an integer node id (got -1)'),
    );
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [], positions: P }] })).toThrow(RangeError);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m], positions: 0 }] })).toThrow(RangeError);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [{ ...m, width: 0.5 }], positions: P }] })).toThrow(RangeError);
    expect(() => s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m], positions: P, probePositions: 1 as unknown as boolean }] })).toThrow(TypeError);
    expect(() => s.evaluate({ inputs: x, jacobians: {} as unknown as NativeJacobianRequest[] })).toThrow(TypeError);
    expect(() => s.evaluate({ inputs: x, fetchValues: ['1' as unknown as number] })).toThrow(/fetchValues\[0\] must be an integer node id/);
    expect(() => s.evaluate({ inputs: x, jacobians: [null as unknown as NativeJacobianRequest] })).toThrow(TypeError);
    await expect(
      s.runSequenceAsync({ steps: 1, inputs: g.inputs.map((i) => new Float64Array(numelOf(i.shape))), jacobians: [{ kind: 'hid2hid', members: [{ ...m, leafNode: xNode }], positions: P }] }),
    ).rejects.toMatchObject({ code: inv });
    await expect(
      s.runSequenceAsync({ steps: 1, inputs: g.inputs.map((i) => new Float64Array(numelOf(i.shape))), jacobians: [{ kind: 'df', members: [m], positions: P }] }),
    ).rejects.toBeInstanceOf(TypeError);
    // still usable
    const r = s.evaluate({ inputs: x, jacobians: [{ kind: 'hid2hid', members: [m], blocked: [etp], positions: P }] });
    expect(Array.from(r.jacobians![0])).toEqual(new Array(P).fill(0.8));
  });
});
