/**
 * Online learning in the native session (configureOnline / runOnline; braintrace/online.h), float64,
 * with a non-zero initial hidden state:
 *  - D_RTRL single-step (chunk 1) on leaky integrators (dense with bias, element-wise) with a
 *    linear readout (non-temporal) and an MSE loss per step: gradients summed over T steps equal
 *    BPTT (runSequence with computeGrads) for T = 1, 4, 20;
 *  - a two-state group (S = 2, tanh) against the D_RTRL recursion written here from the
 *    executor's per-step pieces (evaluate with Jacobian requests and cotangent fetches), and
 *    against BPTT (exact there: no weight in the transition);
 *  - members whose new values feed each other within a step (the learning signal is the
 *    partial derivative at the new hidden values) equal BPTT; a non-temporal param inside the
 *    transition gets its exact instantaneous gradient;
 *  - pp_prop: exact at T = 1; at T = 3 equal to the recursion (xbar, epsf, c) written by hand;
 *  - multi-step windows (chunk 2, 5) at T = 20 equal BPTT on the leaky model;
 *  - traces do not grow (liveBytes after configure == after T = 200), trace layout;
 *  - runOnlineAsync == runOnline; errors are coded, never a crash.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import type { Graph } from '../lib/graph/ir';
import { encodePlan } from '../lib/compiler/plan';
import { analyseEtraceGraph } from '../lib/compiler/etrace';
import { loadBinding } from '../lib/runtime/native';
import type { NativeOnlineConfig, NativeSession } from '../types/binding';
import { prng, rawOnlineConfig } from './helpers/native';

// ---------------------------------------------------------------------------------------------
// helpers

const B = 3;
const N = 4;
const NIN = 2;
const NOUT = 2;

interface Loaded {
  graph: Graph;
  session: NativeSession;
  config: (algorithm: 'd_rtrl' | 'pp_prop', decay?: [number, number]) => NativeOnlineConfig;
}

const sessions: NativeSession[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const randomArray = (n: number, rnd: () => number, lo = -1, hi = 1) =>
  Float64Array.from({ length: n }, () => lo + (hi - lo) * rnd());

/** Traces a model (float64, with a loss), loads it, fills params and states (non-zero) with seeded values. */
function setup(model: bt.Module, inputShape: number[], loss: bt.TraceLoss, seed: number): Loaded {
  const { graph } = bt.traceModel(model, { dtype: 'float64', inputShapes: [inputShape], batchSize: B, loss });
  const plan = encodePlan(graph);
  const session = loadBinding().createSession(plan.code, plan.fattr);
  sessions.push(session);
  const rnd = prng(seed);
  graph.params.forEach((p, s) => session.setParam(s, randomArray(numelOf(p.shape), rnd, -0.7, 0.7)));
  graph.states.forEach((st, s) => session.setState(s, randomArray(numelOf(st.shape), rnd, 0.2, 1.2)));
  const etg = analyseEtraceGraph(graph, { batchSize: B });
  const config = (algorithm: 'd_rtrl' | 'pp_prop', decay: [number, number] = [0, 0]): NativeOnlineConfig =>
    rawOnlineConfig(graph, etg, algorithm, decay);
  return { graph, session, config };
}

const paramSlot = (g: Graph, path: string) => {
  const s = g.params.findIndex((p) => p.path === path);
  if (s < 0) throw new Error(`no param ${path}`);
  return s;
};
const storedStates = (l: Loaded) => l.graph.states.map((_, s) => f64(l.session.getState(s)));
const restoreStates = (l: Loaded, states: Float64Array[]) => states.forEach((v, s) => l.session.setState(s, v));

/** Random time-major inputs (x and target) for T steps. */
function sequenceInputs(l: Loaded, T: number, seed: number): Float64Array[] {
  const rnd = prng(seed);
  return l.graph.inputs.map((i) => randomArray(T * numelOf(i.shape), rnd));
}

/** BPTT gradients from the stored states (the states are restored afterwards). */
function bpttGrads(l: Loaded, inputs: Float64Array[], T: number, lossScale?: Float64Array): Float64Array[] {
  const s0 = storedStates(l);
  const r = l.session.runSequence({ steps: T, inputs, computeGrads: true, lossScale });
  restoreStates(l, s0);
  return r.paramGrads!.map(f64);
}

/** max |a − b| / max |b| (relative to the reference's scale). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

function expectGradsClose(actual: ArrayLike<number>[], expected: ArrayLike<number>[], tol: number, label = ''): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, s) => {
    const e = relErr(a, expected[s]);
    if (!(e < tol)) throw new Error(`${label} param slot ${s}: rel error ${e} >= ${tol}\n${Array.from(a)}\n${Array.from(expected[s])}`);
    // a non-trivial check: the reference is not all zeros
    expect(Math.max(...Array.from(expected[s], Math.abs))).toBeGreaterThan(1e-6);
  });
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

const mse: bt.TraceLoss = {
  fn: (y, t) => bt.mul(bt.sum(bt.square(bt.sub(y, t))), 1 / (B * NOUT)),
  targetShape: [NOUT],
};

/** h' = 0.5 h + x W + b; out = h' Wo (plain readout). */
class LeakyDense extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  b = new bt.ParamState(bt.init.normal(), [N]);
  wo = new bt.ParamState(bt.init.normal(), [N, NOUT]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w, this.b));
    return bt.matmul(this.h.value, this.wo.value);
  }
}

/** h' = 0.5 h + x ⊙ w (w (N,), element-wise ETP); out = h' Wo. */
class LeakyElementWise extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [N]);
  wo = new bt.ParamState(bt.init.normal(), [N, NOUT]);
  h = new bt.HiddenState([N]);
  update(x: Tensor): Tensor {
    this.h.value = bt.elementWise(this.w, (y) => bt.add(bt.mul(this.h.value, 0.5), bt.mul(x, y)));
    return bt.matmul(this.h.value, this.wo.value);
  }
}

/** A group (B, N, 2): g0' = tanh(0.7 g0 + 0.3 g1 + x W + b), g1' = 0.6 g1 + 0.2 tanh(g0'); out = g1' Wo
 * (read from the stacked new value). */
class Group extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  b = new bt.ParamState(bt.init.normal(), [N]);
  wo = new bt.ParamState(bt.init.normal(), [N, NOUT]);
  g = new bt.HiddenGroupState([N], 2);
  update(x: Tensor): Tensor {
    const g0 = bt.select(this.g.value, -1, 0);
    const g1 = bt.select(this.g.value, -1, 1);
    const n0 = bt.tanh(bt.add(bt.add(bt.mul(g0, 0.7), bt.mul(g1, 0.3)), bt.matmul(x, this.w, this.b)));
    const n1 = bt.add(bt.mul(g1, 0.6), bt.mul(bt.tanh(n0), 0.2));
    this.g.value = bt.stack([n0, n1], -1);
    // The readout reads the new group value itself (the learning signal is the cotangent of
    // the members' new nodes: a consumer of n1 before the stack would not be seen, as in the
    // reference's hidden perturbation).
    return bt.matmul(bt.select(this.g.value, -1, 1), this.wo.value);
  }
}

/**
 * Two members where one new value reads the other's (i' feeds v'), plus a non-temporal gain `a`
 * inside the transition: i' = a ⊙ (0.8 i) + x W, v' = 0.9 v + 0.2 tanh(i'); out = v' Wo.
 */
class Chain extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [NIN, N]);
  a = new bt.ParamState(bt.init.normal(), [N]);
  wo = new bt.ParamState(bt.init.normal(), [N, NOUT]);
  i = new bt.HiddenState([N]);
  v = new bt.HiddenState([N]);
  constructor(private readonly gain: boolean) {
    super();
  }
  update(x: Tensor): Tensor {
    const decay = this.gain ? bt.mul(bt.mul(this.i.value, 0.8), this.a.value) : bt.mul(this.i.value, 0.8);
    const iNew = bt.add(decay, bt.matmul(x, this.w));
    this.i.value = iNew;
    this.v.value = bt.add(bt.mul(this.v.value, 0.9), bt.mul(bt.tanh(iNew), 0.2));
    return bt.matmul(this.v.value, this.wo.value);
  }
}

// ---------------------------------------------------------------------------------------------

describe('online D_RTRL, single-step', () => {
  test.each([1, 4, 20])('leaky dense + bias, T = %i: summed gradients equal BPTT', (T) => {
    const l = setup(new LeakyDense(), [NIN], mse, 100 + T);
    const inputs = sequenceInputs(l, T, 7 + T);
    const expected = bpttGrads(l, inputs, T);
    const s0 = storedStates(l);
    l.session.configureOnline(l.config('d_rtrl'));
    const r = l.session.runOnline({ steps: T, inputs });
    expectGradsClose(r.paramGrads!, expected, 1e-9, `T=${T}`);
    expect(r.losses).toHaveLength(T);
    expect(l.session.traceSteps()).toBe(T);
    // Same outputs and final states as a plain sequence from the same start.
    const end = storedStates(l);
    restoreStates(l, s0);
    const plain = l.session.runSequence({ steps: T, inputs });
    expect(relErr(r.outputs[0], plain.outputs[0])).toBe(0);
    expect(relErr(r.losses, plain.losses)).toBe(0);
    storedStates(l).forEach((s, k) => expect(relErr(end[k], s)).toBe(0));
  });

  test.each([1, 4, 20])('leaky element-wise, T = %i: summed gradients equal BPTT', (T) => {
    const l = setup(new LeakyElementWise(), [N], mse, 200 + T);
    const inputs = sequenceInputs(l, T, 9 + T);
    const expected = bpttGrads(l, inputs, T);
    l.session.configureOnline(l.config('d_rtrl'));
    expect(l.session.traceInfo()).toEqual([{ name: 'r0/g0/elementwise', shape: [B, N, 1] }]);
    const r = l.session.runOnline({ steps: T, inputs });
    expectGradsClose(r.paramGrads!, expected, 1e-9, `T=${T}`);
  });

  test('loss masking: lossScale weights each step as in BPTT; traces persist across calls', () => {
    const T = 6;
    const l = setup(new LeakyDense(), [NIN], mse, 300);
    const inputs = sequenceInputs(l, T, 301);
    const scale = Float64Array.from([1, 0, 0.5, 2, 0, 1]);
    const expected = bpttGrads(l, inputs, T, scale);
    l.session.configureOnline(l.config('d_rtrl'));
    // Two calls of 3 steps: traces and states carry over.
    const half = (k: number) =>
      inputs.map((a, s) => {
        const per = a.length / T;
        return a.slice(k * 3 * per, (k + 1) * 3 * per);
      });
    const r1 = l.session.runOnline({ steps: 3, inputs: half(0), lossScale: scale.slice(0, 3) });
    const r2 = l.session.runOnline({ steps: 3, inputs: half(1), lossScale: scale.slice(3) });
    const sum = r1.paramGrads!.map((g, s) => g.map((v, i) => v + r2.paramGrads![s][i]));
    expectGradsClose(sum, expected, 1e-9);
  });

  test('two-state group (S = 2, tanh): equals the D_RTRL recursion built from the executor pieces', () => {
    const T = 5;
    const l = setup(new Group(), [NIN], mse, 400);
    const g = l.graph;
    const cfg = l.config('d_rtrl');
    const inputs = sequenceInputs(l, T, 401);
    const s0 = storedStates(l);
    // Reference: per step, evaluate (stored params, explicit states) with D, df, x and the
    // learning signal (cotangents of the group's new values with the loss cotangent 1).
    const grp = cfg.groups[0];
    const rel = cfg.relations[0];
    const S = 2;
    const P = B * N;
    const I = NIN;
    const O = N;
    const wSlot = paramSlot(g, 'w');
    const bSlot = paramSlot(g, 'b');
    const woSlot = paramSlot(g, 'wo');
    const lossRow = g.outputs.findIndex((o) => o.kind === 'loss');
    const eps = new Float64Array(B * I * O * S);
    const epsB = new Float64Array(B * O * S);
    const dW = new Float64Array(I * O);
    const db = new Float64Array(O);
    const dWo = new Float64Array(N * NOUT);
    let states = s0.map(f64);
    const per = g.inputs.map((i) => numelOf(i.shape));
    for (let t = 0; t < T; t++) {
      const stepInputs = inputs.map((a, s) => a.slice(t * per[s], (t + 1) * per[s]));
      const r = l.session.evaluate({
        inputs: stepInputs,
        states,
        outputCotangents: g.outputs.map((_, e) => (e === lossRow ? new Float64Array([1]) : null)),
        fetchValues: [rel.xNode!],
        fetchCotangents: [grp.members[0].newNode],
        jacobians: [
          { kind: 'hid2hid', members: grp.members, blocked: cfg.blockedTransition, positions: P },
          { kind: 'df', members: grp.members, yNode: rel.yNode, blocked: [], positions: P },
        ],
      });
      const D = r.jacobians![0];
      const df = r.jacobians![1];
      const x = r.fetchedValues![0];
      const lg = r.fetchedCotangents![0]; // (B, N, 2) = (P, S)
      for (let b = 0; b < B; b++)
        for (let k = 0; k < O; k++) {
          const p = b * O + k;
          for (let i = 0; i < I; i++) {
            const base = ((b * I + i) * O + k) * S;
            const old = [eps[base], eps[base + 1]];
            for (let a = 0; a < S; a++) {
              eps[base + a] = D[(p * S + a) * S] * old[0] + D[(p * S + a) * S + 1] * old[1] + x[b * I + i] * df[p * S + a];
              dW[i * O + k] += lg[p * S + a] * eps[base + a];
            }
          }
          const oldB = [epsB[p * S], epsB[p * S + 1]];
          for (let a = 0; a < S; a++) {
            epsB[p * S + a] = D[(p * S + a) * S] * oldB[0] + D[(p * S + a) * S + 1] * oldB[1] + df[p * S + a];
            db[k] += lg[p * S + a] * epsB[p * S + a];
          }
        }
      r.paramCotangents![woSlot].forEach((v, i) => (dWo[i] += v));
      states = g.states.map((_, s) => f64(r.outputs[g.outputs.findIndex((o) => o.kind === 'stateNew' && o.index === s)]));
    }
    restoreStates(l, s0);
    l.session.configureOnline(cfg);
    const res = l.session.runOnline({ steps: T, inputs });
    expect(relErr(res.paramGrads![wSlot], dW)).toBeLessThan(1e-12);
    expect(relErr(res.paramGrads![bSlot], db)).toBeLessThan(1e-12);
    expect(relErr(res.paramGrads![woSlot], dWo)).toBeLessThan(1e-12);
    expect(relErr(l.session.getTrace(0), eps)).toBeLessThan(1e-12);
    expect(relErr(l.session.getTrace(1), epsB)).toBeLessThan(1e-12);
    // No weight runs from h^{t-1} to h^t here, so the per-position D is the whole Jacobian:
    // D_RTRL is exact RTRL and equals BPTT.
    restoreStates(l, s0);
    expectGradsClose(res.paramGrads!, bpttGrads(l, inputs, T), 1e-9);
  });
});

describe('online learning signal with intra-step member chains', () => {
  test.each([1, 4, 20])('i\' feeds v\' in the same step, T = %i: D_RTRL equals BPTT', (T) => {
    const l = setup(new Chain(false), [NIN], mse, 1200 + T);
    const inputs = sequenceInputs(l, T, 1201 + T);
    const expected = bpttGrads(l, inputs, T).filter((_, s) => s !== paramSlot(l.graph, 'a'));
    l.session.configureOnline(l.config('d_rtrl'));
    const r = l.session.runOnline({ steps: T, inputs });
    expectGradsClose(r.paramGrads!.filter((_, s) => s !== paramSlot(l.graph, 'a')), expected, 1e-9);
  });

  test('a non-temporal param inside the transition gets its exact instantaneous gradient', () => {
    const T = 5;
    const l = setup(new Chain(true), [NIN], mse, 1300);
    const g = l.graph;
    const aSlot = paramSlot(g, 'a');
    const cfg = l.config('d_rtrl');
    expect(cfg.nonTemporalSlots).toContain(aSlot);
    const inputs = sequenceInputs(l, T, 1301);
    const s0 = storedStates(l);
    const lossRow = g.outputs.findIndex((o) => o.kind === 'loss');
    const per = g.inputs.map((i) => numelOf(i.shape));
    const da = new Float64Array(N);
    let states = s0.map(f64);
    for (let t = 0; t < T; t++) {
      const r = l.session.evaluate({
        inputs: inputs.map((a, s) => a.slice(t * per[s], (t + 1) * per[s])),
        states,
        outputCotangents: g.outputs.map((_, e) => (e === lossRow ? new Float64Array([1]) : null)),
      });
      r.paramCotangents![aSlot].forEach((v, k) => (da[k] += v));
      states = g.states.map((_, s) => f64(r.outputs[g.outputs.findIndex((o) => o.kind === 'stateNew' && o.index === s)]));
    }
    restoreStates(l, s0);
    const expected = bpttGrads(l, inputs, T);
    l.session.configureOnline(cfg);
    const r = l.session.runOnline({ steps: T, inputs });
    expect(relErr(r.paramGrads![aSlot], da)).toBeLessThan(1e-12);
    expect(relErr(r.paramGrads![paramSlot(g, 'wo')], expected[paramSlot(g, 'wo')])).toBeLessThan(1e-12);
  });
});

describe('online pp_prop, single-step', () => {
  const decay: [number, number] = [0.6, 0.8];

  test('T = 1 equals BPTT', () => {
    const l = setup(new LeakyDense(), [NIN], mse, 500);
    const inputs = sequenceInputs(l, 1, 501);
    const expected = bpttGrads(l, inputs, 1);
    l.session.configureOnline(l.config('pp_prop', decay));
    expect(l.session.traceInfo()).toEqual([
      { name: 'r0/xbar', shape: [B, NIN] },
      { name: 'r0/g0/epsf', shape: [B, N, 1] },
    ]);
    const r = l.session.runOnline({ steps: 1, inputs });
    expectGradsClose(r.paramGrads!, expected, 1e-12);
  });

  test('T = 3 equals the hand-written recursion (xbar, epsf, bias correction c)', () => {
    const T = 3;
    const [ax, af] = decay;
    const l = setup(new LeakyDense(), [NIN], mse, 600);
    const g = l.graph;
    const inputs = sequenceInputs(l, T, 601);
    const expected = bpttGrads(l, inputs, T);
    const wo = f64(l.session.getParam(paramSlot(g, 'wo')));
    l.session.configureOnline(l.config('pp_prop', decay));
    const r = l.session.runOnline({ steps: T, inputs });
    // Leaky model: D = 0.5, df = 1 everywhere; g = dL/dh = 2/(B·NOUT) (y − target) Wo^T.
    const xbar = new Float64Array(B * NIN);
    const epsf = new Float64Array(B * N);
    const dW = new Float64Array(NIN * N);
    const db = new Float64Array(N);
    const y = r.outputs[0];
    for (let t = 0; t < T; t++) {
      for (let k = 0; k < B * NIN; k++) xbar[k] = ax * xbar[k] + inputs[0][t * B * NIN + k];
      for (let p = 0; p < B * N; p++) epsf[p] = af * (0.5 * epsf[p]) + (1 - af) * 1;
      const c = 1 - Math.pow(af, t + 1);
      for (let b = 0; b < B; b++)
        for (let k = 0; k < N; k++) {
          let gk = 0;
          for (let j = 0; j < NOUT; j++) {
            const idx = t * B * NOUT + b * NOUT + j;
            gk += (2 / (B * NOUT)) * (y[idx] - inputs[1][idx]) * wo[k * NOUT + j];
          }
          const q = (gk * epsf[b * N + k]) / c;
          db[k] += q;
          for (let i = 0; i < NIN; i++) dW[i * N + k] += xbar[b * NIN + i] * q;
        }
    }
    expect(relErr(r.paramGrads![paramSlot(g, 'w')], dW)).toBeLessThan(1e-12);
    expect(relErr(r.paramGrads![paramSlot(g, 'b')], db)).toBeLessThan(1e-12);
    // The readout is non-temporal: its instantaneous gradients sum to the exact one.
    expect(relErr(r.paramGrads![paramSlot(g, 'wo')], expected[paramSlot(g, 'wo')])).toBeLessThan(1e-12);
    // pp_prop is an approximation at T > 1: visibly not BPTT for W.
    expect(relErr(r.paramGrads![paramSlot(g, 'w')], expected[paramSlot(g, 'w')])).toBeGreaterThan(1e-6);
    expect(relErr(l.session.getTrace(0), xbar)).toBeLessThan(1e-14);
    expect(relErr(l.session.getTrace(1), epsf)).toBeLessThan(1e-14);
    expect(l.session.traceSteps()).toBe(3);
  });

  test('element-wise relation, T = 1 equals BPTT', () => {
    const l = setup(new LeakyElementWise(), [N], mse, 650);
    const inputs = sequenceInputs(l, 1, 651);
    const expected = bpttGrads(l, inputs, 1);
    l.session.configureOnline(l.config('pp_prop', decay));
    expect(l.session.traceInfo()).toEqual([{ name: 'r0/g0/epsf', shape: [B, N, 1] }]);
    const r = l.session.runOnline({ steps: 1, inputs });
    expectGradsClose(r.paramGrads!, expected, 1e-12);
  });
});

describe('online D_RTRL, multi-step windows', () => {
  test.each([2, 5])('chunk %i at T = 20 equals BPTT on the leaky model', (k) => {
    const T = 20;
    const l = setup(new LeakyDense(), [NIN], mse, 700 + k);
    const inputs = sequenceInputs(l, T, 701 + k);
    const expected = bpttGrads(l, inputs, T);
    const s0 = storedStates(l);
    l.session.configureOnline(l.config('d_rtrl'));
    const r = l.session.runOnline({ steps: T, inputs, chunk: k });
    expectGradsClose(r.paramGrads!, expected, 1e-9, `chunk=${k}`);
    expect(l.session.traceSteps()).toBe(T);
    // The traces end where single-step ones do.
    const tracesW = f64(l.session.getTrace(0));
    const end = storedStates(l);
    restoreStates(l, s0);
    l.session.resetTraces();
    l.session.runOnline({ steps: T, inputs, computeGrads: false });
    expect(relErr(tracesW, l.session.getTrace(0))).toBeLessThan(1e-13);
    storedStates(l).forEach((s, i) => expect(relErr(end[i], s)).toBe(0));
  });

  test('chunk 5 at T = 20 equals BPTT on the two-state group (S = 2)', () => {
    const T = 20;
    const l = setup(new Group(), [NIN], mse, 720);
    const inputs = sequenceInputs(l, T, 721);
    const expected = bpttGrads(l, inputs, T);
    l.session.configureOnline(l.config('d_rtrl'));
    const r = l.session.runOnline({ steps: T, inputs, chunk: 5 });
    expectGradsClose(r.paramGrads!, expected, 1e-9);
  });

  test('chunk 4 at T = 20 with pp_prop runs and keeps the readout gradient exact', () => {
    const T = 20;
    const l = setup(new LeakyDense(), [NIN], mse, 750);
    const inputs = sequenceInputs(l, T, 751);
    const expected = bpttGrads(l, inputs, T);
    l.session.configureOnline(l.config('pp_prop', [0.5, 0.5]));
    const r = l.session.runOnline({ steps: T, inputs, chunk: 4 });
    expect(relErr(r.paramGrads![paramSlot(l.graph, 'wo')], expected[paramSlot(l.graph, 'wo')])).toBeLessThan(1e-12);
    expect(relErr(r.paramGrads![paramSlot(l.graph, 'w')], expected[paramSlot(l.graph, 'w')])).toBeLessThan(0.5);
  });
});

describe('online traces: memory, layout, async, errors', () => {
  test('traces are allocated once: liveBytes after configure == after T = 200 runs', () => {
    const T = 200;
    const l = setup(new LeakyDense(), [NIN], mse, 800);
    const binding = loadBinding();
    const before = binding.memoryStats().liveBytes;
    l.session.configureOnline(l.config('d_rtrl'));
    const info = l.session.traceInfo();
    expect(info).toEqual([
      { name: 'r0/g0/weight', shape: [B, NIN, N, 1] },
      { name: 'r0/g0/bias', shape: [B, N, 1] },
    ]);
    info.forEach((t, i) => expect(l.session.getTrace(i)).toHaveLength(numelOf(t.shape)));
    const configured = binding.memoryStats().liveBytes;
    const traceBytes = 8 * info.reduce((a, t) => a + numelOf(t.shape), 0);
    expect(configured - before).toBeGreaterThanOrEqual(traceBytes);
    const inputs = sequenceInputs(l, T, 801);
    l.session.runOnline({ steps: T, inputs });
    expect(binding.memoryStats().liveBytes).toBe(configured);
    l.session.runOnline({ steps: T, inputs, chunk: 10 });
    expect(binding.memoryStats().liveBytes).toBe(configured);
    l.session.runOnline({ steps: T, inputs, computeGrads: false });
    expect(binding.memoryStats().liveBytes).toBe(configured);
    expect(l.session.traceSteps()).toBe(3 * T);
  });

  test('resetTraces, getTrace / setTrace, setTraceSteps', () => {
    const l = setup(new LeakyDense(), [NIN], mse, 900);
    l.session.configureOnline(l.config('pp_prop', [0.5, 0.9]));
    l.session.runOnline({ steps: 3, inputs: sequenceInputs(l, 3, 901) });
    expect(l.session.traceSteps()).toBe(3);
    expect(Math.max(...Array.from(l.session.getTrace(1), Math.abs))).toBeGreaterThan(0);
    l.session.resetTraces();
    expect(l.session.traceSteps()).toBe(0);
    expect(Array.from(l.session.getTrace(1))).toEqual(new Array(B * N).fill(0));
    const v = Float64Array.from({ length: B * NIN }, (_, i) => i + 0.5);
    l.session.setTrace(0, v);
    expect(Array.from(l.session.getTrace(0))).toEqual(Array.from(v));
    l.session.setTraceSteps(7);
    expect(l.session.traceSteps()).toBe(7);
    expect(() => l.session.setTrace(0, new Float64Array(2))).toThrow(RangeError);
    expect(() => l.session.getTrace(5)).toThrow(RangeError);
    expect(() => l.session.setTraceSteps(-1)).toThrow(RangeError);
  });

  test('runOnlineAsync equals runOnline; the session is busy meanwhile', async () => {
    const T = 8;
    const l = setup(new LeakyDense(), [NIN], mse, 1000);
    const inputs = sequenceInputs(l, T, 1001);
    const s0 = storedStates(l);
    l.session.configureOnline(l.config('d_rtrl'));
    const sync = l.session.runOnline({ steps: T, inputs });
    restoreStates(l, s0);
    l.session.resetTraces();
    const p = l.session.runOnlineAsync({ steps: T, inputs });
    expectCode(() => l.session.runOnline({ steps: T, inputs }), 'ERR_BRAINTRACE_BUSY');
    const r = await p;
    r.paramGrads!.forEach((g, s) => expect(relErr(g, sync.paramGrads![s])).toBe(0));
    expect(Array.from(r.losses)).toEqual(Array.from(sync.losses));
  });

  test('errors are coded, never a crash', async () => {
    const l = setup(new LeakyDense(), [NIN], mse, 1100);
    const g = l.graph;
    const inputs = sequenceInputs(l, 20, 1101);
    expectCode(() => l.session.runOnline({ steps: 20, inputs }), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /configure_online/);
    expectCode(() => l.session.resetTraces(), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /configure_online/);
    await expect(l.session.runOnlineAsync({ steps: 20, inputs })).rejects.toMatchObject({
      code: 'ERR_BRAINTRACE_INVALID_ARGUMENT',
    });
    // The weight slot of the relation must be the EtpMatMul's raw Param leaf.
    const bad = l.config('d_rtrl');
    bad.relations[0].weightSlot = paramSlot(g, 'wo');
    expectCode(() => l.session.configureOnline(bad), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /raw ParamState/);
    const badBias = l.config('d_rtrl');
    badBias.relations[0].biasSlot = paramSlot(g, 'w');
    expectCode(() => l.session.configureOnline(badBias), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /bias/);
    const badGroup = l.config('d_rtrl');
    badGroup.relations[0].groups = [3];
    expectCode(() => l.session.configureOnline(badGroup), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /group index/);
    const badX = l.config('d_rtrl');
    badX.relations[0].xNode = badX.relations[0].yNode;
    expectCode(() => l.session.configureOnline(badX), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /x_node/);
    expect(() => l.session.configureOnline({ ...l.config('pp_prop'), decayF: 1 })).toThrow(RangeError);
    expect(() => l.session.configureOnline({ ...l.config('d_rtrl'), algorithm: 'x' as 'd_rtrl' })).toThrow(TypeError);
    // A failed configure leaves the session unconfigured (or as before).
    expectCode(() => l.session.runOnline({ steps: 20, inputs }), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /configure_online/);
    l.session.configureOnline(l.config('d_rtrl'));
    expectCode(() => l.session.runOnline({ steps: 20, inputs, chunk: 3 }), 'ERR_BRAINTRACE_INVALID_ARGUMENT', /chunk/);
    expect(() => l.session.runOnline({ steps: 20, inputs, chunk: 0 })).toThrow(RangeError);
    expect(() => l.session.runOnline({ steps: 20, inputs: [inputs[0]] })).toThrow(RangeError);
    expect(() => l.session.runOnline({ steps: 20, inputs, lossScale: new Float64Array(3) })).toThrow(RangeError);
    // Still usable afterwards.
    const r = l.session.runOnline({ steps: 20, inputs, chunk: 4 });
    expect(r.losses).toHaveLength(20);
  });
});
