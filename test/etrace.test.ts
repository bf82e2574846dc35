/**
 * The eligibility-trace compiler and ETraceVjpGraphExecutor: groups, relations,
 * diagnostics, and the per-step pieces (x, df, D, learning signal) against
 * hand-derived values and central finite differences of the one-step function
 * (written here with the weight-op outputs y as explicit arguments), in float64.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { prng } from './helpers/native';

const sig = (v: number) => 1 / (1 + Math.exp(-v));

function rand(shape: number[], rnd: () => number, scale = 1, offset = 0): bt.HostTensor {
  return {
    data: Float64Array.from({ length: bt.numel(shape) }, () => offset + scale * (2 * rnd() - 1)),
    shape,
    dtype: 'float64',
  };
}

/** x (B, I) · W (I, O) + b, host reference. */
function affine(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number> | null, B: number, I: number, O: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < B; r++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < I; i++) s += x[r * I + i] * W[i * O + o];
      y.push(s);
    }
  }
  return y;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  }
  expect(worst).toBeLessThan(tol);
}

/** Central differences of a vector function f at u, column `j`. */
function fdColumn(f: (u: number[]) => number[], u: number[], j: number, h = 1e-6): number[] {
  const up = u.slice();
  const dn = u.slice();
  up[j] += h;
  dn[j] -= h;
  const a = f(up);
  const b = f(dn);
  return a.map((v, i) => (v - b[i]) / (2 * h));
}

// ------------------------------------------------------------------ models

class Leaky extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [3, 4]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w));
    return this.h.value;
  }
}

class LeakyElementWise extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [4]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.elementWise(this.w, (y) => bt.mul(x, y)));
    return this.h.value;
  }
}

class VanillaRNN extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [3 + 4, 4]);
  b = new bt.ParamState(bt.init.normal({ std: 0.1 }), [4]);
  wo = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.matmul(bt.concat([x, this.h.value], -1), this.w, this.b));
    return bt.matmul(this.h.value, this.wo);
  }
}

class GRU extends bt.Module {
  wz = new bt.ParamState(bt.init.xavierNormal(), [3 + 4, 4]);
  wr = new bt.ParamState(bt.init.xavierNormal(), [3 + 4, 4]);
  wh = new bt.ParamState(bt.init.xavierNormal(), [3 + 4, 4]);
  wo = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz));
    const r = bt.sigmoid(bt.matmul(xh, this.wr));
    const c = bt.tanh(bt.matmul(bt.concat([x, bt.mul(r, h)], -1), this.wh));
    this.h.value = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, c));
    return bt.matmul(this.h.value, this.wo);
  }
}

const LIF_A = 0.8;
const LIF_B = 0.9;
const THETA = 1;
const arctan = bt.surrogate.arctan({ alpha: 2 });
/** LIF with an exponential current synapse: i' = a i + x W, v' = b v + i' − θ s(v), s = H(v − θ). */
class LIF extends bt.Module {
  w = new bt.ParamState(bt.init.normal({ mean: 0.5, std: 0.5 }), [3, 4]);
  i = new bt.HiddenState([4]);
  v = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const s = bt.spike(bt.sub(this.v.value, THETA), arctan);
    const iNew = bt.add(bt.mul(this.i.value, LIF_A), bt.matmul(x, this.w));
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, LIF_B), iNew), bt.mul(s, THETA));
    return this.v.value;
  }
}

const AL = 0.85;
const RHO = 0.7;
const BETA = 0.6;
/**
 * ALIF (v, a), one group S = 2: thr = θ + β a, s = f(v − thr),
 * v' = α v + (1 − α) y − s thr, a' = ρ a + s. `smooth` uses f = sigmoid(4·) (a
 * smooth twin for finite differences); otherwise a spike with the sigmoid surrogate.
 */
class ALIF extends bt.Module {
  w = new bt.ParamState(bt.init.normal({ mean: 0.5, std: 0.5 }), [3, 4]);
  v = new bt.HiddenState([4]);
  a = new bt.HiddenState([4]);
  constructor(private readonly smooth: boolean) {
    super();
  }
  update(x: Tensor): Tensor {
    const thr = bt.add(bt.mul(this.a.value, BETA), THETA);
    const u = bt.sub(this.v.value, thr);
    const s = this.smooth ? bt.sigmoid(bt.mul(u, 4)) : bt.spike(u, bt.surrogate.sigmoid({ alpha: 4 }));
    const y = bt.matmul(x, this.w);
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, AL), bt.mul(y, 1 - AL)), bt.mul(s, thr));
    this.a.value = bt.add(bt.mul(this.a.value, RHO), s);
    return this.v.value;
  }
}

/** A transition that couples positions through a mean over units. */
class Coupled extends bt.Module {
  w = new bt.ParamState(bt.init.normal(), [3, 4]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.add(bt.mul(h, 0.5), bt.mul(bt.mean(h, -1, true), 0.8)), bt.matmul(x, this.w)));
    return this.h.value;
  }
}

function setup<M extends bt.Module>(model: M, B: number, seed: number, method: bt.VjpMethod = 'single-step') {
  model.initStates({ batchSize: B, dtype: 'float64', seed });
  const rnd = prng(seed + 100);
  for (const s of model.hiddenStates().values()) s.hostValue = rand(s.hostValue.shape, rnd, 0.8);
  const ex = new bt.ETraceVjpGraphExecutor(model, { vjpMethod: method });
  return { ex, rnd };
}

const data = (t: bt.HostTensor) => Array.from(t.data);

// ------------------------------------------------------------------ tests

describe('compiler: groups, relations, diagnostics', () => {
  test('leaky integrator: one group, one all-direct relation', () => {
    const m = new Leaky();
    const g = bt.compileEtraceGraph(m, bt.zeros([2, 3], 'float64'));
    expect(g.groups.map((x) => x.hiddenPaths)).toEqual([['h']]);
    expect(g.groups[0]).toMatchObject({ key: 'hidden_group_0', numState: 1, varshape: [4], zeroRecurrence: false, coupled: false });
    expect(g.relations.map((r) => [r.key, r.op, r.weightPath, r.groups, r.pathClass])).toEqual([
      ['w@0', 'EtpMatMul', 'w', [0], { h: 'allDirect' }],
    ]);
    expect(g.diagnostics.map((d) => d.kind)).toContain('RELATION_INCLUDED');
    expect(g.explain()).toMatch(/hidden_group_0: \[h\]/);
    expect(g.explain()).toMatch(/w@0: EtpMatMul\(w\)/);
  });

  test('vanilla RNN: zero-recurrence group, readout is non-temporal', () => {
    const g = bt.compileEtraceGraph(new VanillaRNN(), bt.zeros([2, 3], 'float64'));
    expect(g.groups[0]).toMatchObject({ hiddenPaths: ['h'], zeroRecurrence: true });
    expect(g.relations.map((r) => [r.key, r.biasPath])).toEqual([['w@0', 'b']]);
    const kinds = g.diagnostics.map((d) => d.kind);
    expect(kinds).toContain('ZERO_RECURRENCE_GROUP');
    expect(kinds).toContain('RELATION_EXCLUDED_NON_TEMPORAL');
    expect(g.nonTemporalParams).toEqual(['wo']);
    expect(g.explain({ weightPath: 'wo' })).toMatch(/RELATION_EXCLUDED_NON_TEMPORAL/);
  });

  test('GRU: the reset-gate weight reaches h only through another weight op', () => {
    const g = bt.compileEtraceGraph(new GRU(), bt.zeros([2, 3], 'float64'));
    expect(g.groups.map((x) => [x.hiddenPaths, x.zeroRecurrence])).toEqual([[['h'], false]]);
    expect(g.relations.map((r) => r.key)).toEqual(['wz@0', 'wh@0']);
    const w2w = g.diagnostics.filter((d) => d.kind === 'RELATION_EXCLUDED_WEIGHT_TO_WEIGHT');
    expect(w2w.map((d) => d.weightPath)).toEqual(['wr']);
    expect(g.nonTemporalParams).toEqual(['wr', 'wo']);
  });

  test('LIF and ALIF: two states merge into one group with S = 2', () => {
    for (const m of [new LIF(), new ALIF(false)]) {
      const g = bt.compileEtraceGraph(m, bt.zeros([2, 3], 'float64'));
      expect(g.groups).toHaveLength(1);
      expect(g.groups[0].numState).toBe(2);
      expect(g.groups[0].members.map((x) => [x.path, x.offset])).toEqual(
        m instanceof LIF ? [['i', 0], ['v', 1]] : [['v', 0], ['a', 1]],
      );
      expect(g.diagnostics.map((d) => d.kind)).toContain('HIDDEN_GROUP_MERGED');
    }
  });

  test('a transition that couples positions gets its diagnostic', () => {
    const g = bt.compileEtraceGraph(new Coupled(), bt.zeros([2, 3], 'float64'));
    expect(g.groups[0].coupled).toBe(true);
    const d = g.diagnostics.find((x) => x.kind === 'TRANSITION_COUPLES_POSITIONS');
    expect(d?.message).toMatch(/ReduceMean/);
    // Element-wise models are not flagged.
    for (const m of [new Leaky(), new GRU(), new LIF(), new ALIF(false)]) {
      expect(bt.compileEtraceGraph(m, bt.zeros([2, 3], 'float64')).diagnostics.map((x) => x.kind)).not.toContain(
        'TRANSITION_COUPLES_POSITIONS',
      );
    }
  });

  test('no relation: CompilationError carrying the diagnostics', () => {
    class Readout extends bt.Module {
      w = new bt.ParamState(bt.init.normal(), [3, 2]);
      update(x: Tensor): Tensor {
        return bt.matmul(x, this.w);
      }
    }
    let err: unknown;
    try {
      bt.compileEtraceGraph(new Readout(), bt.zeros([2, 3]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(bt.CompilationError);
    expect((err as bt.CompilationError).diagnostics.map((d) => d.kind)).toContain('RELATION_EXCLUDED_NON_TEMPORAL');
  });

  test('states of different per-sample shapes cannot group', () => {
    class Bad extends bt.Module {
      w = new bt.ParamState(bt.init.normal(), [3, 4]);
      h = new bt.HiddenState([4]);
      c = new bt.HiddenState([2]);
      update(x: Tensor): Tensor {
        this.c.value = bt.add(bt.slice(this.h.value, [0, 0], [this.h.value.shape[0], 2]), this.c.value);
        this.h.value = bt.add(this.h.value, bt.matmul(x, this.w));
        return this.h.value;
      }
    }
    expect(() => bt.compileEtraceGraph(new Bad(), bt.zeros([2, 3]))).toThrow(bt.NotSupportedError);
    expect(() => bt.compileEtraceGraph(new Bad(), bt.zeros([2, 3]))).toThrow(/'h' \(per-sample shape \(4,\)\) and 'c' \(per-sample shape \(2,\)\)/);
  });
});

describe('executor: x, df and D against hand-derived values and finite differences', () => {
  test('leaky integrator (matmul and element-wise)', () => {
    const { ex, rnd } = setup(new Leaky(), 2, 1);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const x = rand([2, 3], rnd);
    const r = ex.solveH2wH2hJacobian(x);
    expect(data(r.hid2weight.xs['w@0'])).toEqual(data(x));
    expect(r.hid2weight.dfs['w@0->hidden_group_0'].shape).toEqual([2, 4, 1]);
    expect(data(r.hid2weight.dfs['w@0->hidden_group_0'])).toEqual(new Array(8).fill(1));
    expect(r.hid2hid.hidden_group_0.shape).toEqual([2, 4, 1, 1]);
    expect(data(r.hid2hid.hidden_group_0)).toEqual(new Array(8).fill(0.5));
    ex.dispose();

    const e2 = setup(new LeakyElementWise(), 2, 2);
    e2.ex.compileGraph(bt.zeros([2, 4], 'float64'));
    const x2 = rand([2, 4], e2.rnd);
    const r2 = e2.ex.solveH2wH2hJacobian(x2);
    expect(Object.keys(r2.hid2weight.xs)).toEqual([]);
    expect(data(r2.hid2weight.dfs['w@0->hidden_group_0'])).toEqual(data(x2)); // df = x (h = 0.5 h + x ⊙ w)
    e2.ex.dispose();
  });

  test('vanilla RNN: D = 0, df = 1 − h², x = [x, h_old]', () => {
    const m = new VanillaRNN();
    const { ex, rnd } = setup(m, 3, 3);
    ex.compileGraph(bt.zeros([3, 3], 'float64'));
    const x = rand([3, 3], rnd);
    const hOld = data(m.h.hostValue);
    const r = ex.solveH2wH2hJacobian(x);
    const xh: number[] = [];
    for (let b = 0; b < 3; b++) xh.push(...data(x).slice(b * 3, b * 3 + 3), ...hOld.slice(b * 4, b * 4 + 4));
    expect(data(r.hid2weight.xs['w@0'])).toEqual(xh);
    const y = affine(xh, m.w.hostValue.data, m.b.hostValue.data, 3, 7, 4);
    const hNew = y.map(Math.tanh);
    expectClose(data(r.hiddenStates.h), hNew, 1e-14);
    expectClose(data(r.hid2weight.dfs['w@0->hidden_group_0']), hNew.map((v) => 1 - v * v), 1e-14);
    // finite differences of the step with y as an argument
    const fd = hNew.map((_, p) => fdColumn((u) => u.map(Math.tanh), y, p)[p]);
    expectClose(data(r.hid2weight.dfs['w@0->hidden_group_0']), fd, 1e-7);
    expect(data(r.hid2hid.hidden_group_0)).toEqual(new Array(12).fill(0));
    ex.dispose();
  });

  test('GRU: D = 1 − z, df_z = z(1 − z)(ĥ − h), df_h = z(1 − ĥ²), and finite differences', () => {
    const m = new GRU();
    const { ex, rnd } = setup(m, 2, 4);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const x = rand([2, 3], rnd);
    const h = data(m.h.hostValue);
    const r = ex.solveH2wH2hJacobian(x);
    const xh: number[] = [];
    for (let b = 0; b < 2; b++) xh.push(...data(x).slice(b * 3, b * 3 + 3), ...h.slice(b * 4, b * 4 + 4));
    const yz = affine(xh, m.wz.hostValue.data, null, 2, 7, 4);
    const yr = affine(xh, m.wr.hostValue.data, null, 2, 7, 4);
    const xrh: number[] = [];
    for (let b = 0; b < 2; b++) {
      xrh.push(...data(x).slice(b * 3, b * 3 + 3), ...h.slice(b * 4, b * 4 + 4).map((v, k) => sig(yr[b * 4 + k]) * v));
    }
    const yh = affine(xrh, m.wh.hostValue.data, null, 2, 7, 4);
    // the step with the weight-op outputs as arguments
    const step = (hh: number[], zz: number[], cc: number[]) => hh.map((v, p) => (1 - sig(zz[p])) * v + sig(zz[p]) * Math.tanh(cc[p]));
    const z = yz.map(sig);
    const c = yh.map(Math.tanh);
    expectClose(data(r.hiddenStates.h), step(h, yz, yh), 1e-14);
    expectClose(data(r.hid2hid.hidden_group_0), z.map((v) => 1 - v), 1e-14);
    expectClose(data(r.hid2weight.dfs['wz@0->hidden_group_0']), z.map((v, p) => v * (1 - v) * (c[p] - h[p])), 1e-14);
    expectClose(data(r.hid2weight.dfs['wh@0->hidden_group_0']), z.map((v, p) => v * (1 - c[p] * c[p])), 1e-14);
    expectClose(data(r.hid2weight.xs['wh@0']), xrh, 1e-14);
    const fdD = h.map((_, p) => fdColumn((u) => step(u, yz, yh), h, p)[p]);
    const fdZ = h.map((_, p) => fdColumn((u) => step(h, u, yh), yz, p)[p]);
    const fdH = h.map((_, p) => fdColumn((u) => step(h, yz, u), yh, p)[p]);
    expectClose(data(r.hid2hid.hidden_group_0), fdD, 1e-7);
    expectClose(data(r.hid2weight.dfs['wz@0->hidden_group_0']), fdZ, 1e-7);
    expectClose(data(r.hid2weight.dfs['wh@0->hidden_group_0']), fdH, 1e-7);
    ex.dispose();
  });

  test('LIF with an exponential synapse (S = 2): D = [[α, 0], [α, β − θ g′(v − θ)]], df = [1, 1]', () => {
    const m = new LIF();
    const { ex, rnd } = setup(m, 2, 5);
    m.v.hostValue = rand([2, 4], rnd, 0.6, 1); // around the threshold: some spikes
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const r = ex.solveH2wH2hJacobian(rand([2, 3], rnd));
    const v = data(m.v.hostValue);
    const D: number[] = [];
    v.forEach((vp) => D.push(LIF_A, 0, LIF_A, LIF_B - THETA * arctan.derivative(vp - THETA)));
    expect(r.hid2hid.hidden_group_0.shape).toEqual([2, 4, 2, 2]);
    expectClose(data(r.hid2hid.hidden_group_0), D, 1e-14);
    expect(data(r.hid2weight.dfs['w@0->hidden_group_0'])).toEqual(new Array(16).fill(1));
    ex.dispose();
  });

  test('ALIF (S = 2): hand-derived D with the surrogate, and finite differences on a smooth twin', () => {
    const rows = (v: number, a: number, g: number, s: number) => {
      const thr = THETA + BETA * a;
      return [AL - thr * g, BETA * g * thr - BETA * s, g, RHO - BETA * g];
    };
    const m = new ALIF(false);
    const { ex, rnd } = setup(m, 2, 6);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const x = rand([2, 3], rnd);
    const r = ex.solveH2wH2hJacobian(x);
    const v = data(m.v.hostValue);
    const a = data(m.a.hostValue);
    const sg = bt.surrogate.sigmoid({ alpha: 4 });
    const D = v.flatMap((vp, p) => {
      const u = vp - THETA - BETA * a[p];
      return rows(vp, a[p], sg.derivative(u), u > 0 ? 1 : 0);
    });
    expectClose(data(r.hid2hid.hidden_group_0), D, 1e-14);
    expectClose(data(r.hid2weight.dfs['w@0->hidden_group_0']), v.flatMap(() => [1 - AL, 0]), 1e-14);
    ex.dispose();

    const ms = new ALIF(true);
    const e2 = setup(ms, 2, 6);
    e2.ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const r2 = e2.ex.solveH2wH2hJacobian(x);
    const vs = data(ms.v.hostValue);
    const as = data(ms.a.hostValue);
    const y = affine(data(x), ms.w.hostValue.data, null, 2, 3, 4);
    const step = (p: number, vv: number, aa: number, yy: number) => {
      const thr = THETA + BETA * aa;
      const s = sig(4 * (vv - thr));
      return [AL * vv + (1 - AL) * yy - s * thr, RHO * aa + s];
    };
    const fdD: number[] = [];
    const fdF: number[] = [];
    vs.forEach((vp, p) => {
      const colV = fdColumn((u) => step(p, u[0], u[1], y[p]), [vp, as[p]], 0);
      const colA = fdColumn((u) => step(p, u[0], u[1], y[p]), [vp, as[p]], 1);
      fdD.push(colV[0], colA[0], colV[1], colA[1]);
      fdF.push(...fdColumn((u) => step(p, vp, as[p], u[0]), [y[p]], 0));
    });
    expectClose(data(r2.hid2hid.hidden_group_0), fdD, 1e-7);
    expectClose(data(r2.hid2weight.dfs['w@0->hidden_group_0']), fdF, 1e-7);
    e2.ex.dispose();
  });

  test('coupled transition: D is the exact per-position block (not a column sum)', () => {
    const m = new Coupled();
    const { ex, rnd } = setup(m, 2, 7);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const x = rand([2, 3], rnd);
    const h = data(m.h.hostValue);
    const r = ex.solveH2wH2hJacobian(x);
    const y = affine(data(x), m.w.hostValue.data, null, 2, 3, 4);
    const step = (hh: number[]) =>
      hh.map((v, p) => {
        const b = Math.floor(p / 4);
        const mean = (hh[b * 4] + hh[b * 4 + 1] + hh[b * 4 + 2] + hh[b * 4 + 3]) / 4;
        return Math.tanh(0.5 * v + 0.8 * mean + y[p]);
      });
    const hNew = step(h);
    const exact = hNew.map((v) => (1 - v * v) * (0.5 + 0.8 / 4));
    expectClose(data(r.hid2hid.hidden_group_0), exact, 1e-14);
    const fd = h.map((_, p) => fdColumn(step, h, p)[p]);
    expectClose(data(r.hid2hid.hidden_group_0), fd, 1e-7);
    // The reference's column sum differs here (negative control).
    const colSum = h.map((_, p) => {
      const b = Math.floor(p / 4);
      let s = 0;
      for (let q = b * 4; q < b * 4 + 4; q++) s += fdColumn(step, h, p)[q];
      return s;
    });
    expect(Math.max(...colSum.map((v, p) => Math.abs(v - exact[p])))).toBeGreaterThan(1e-3);
    ex.dispose();
  });
});

describe('executor: windows and learning signals', () => {
  test('a multi-step window equals T single steps (outputs, states, x, df, D)', () => {
    for (const method of ['single-step', 'multi-step'] as const) {
      const m = new ALIF(false);
      const { ex, rnd } = setup(m, 2, 8, method);
      ex.compileGraph(bt.zeros([2, 3], 'float64'));
      const xs = rand([5, 2, 3], rnd, 1, 0.3);
      const h0 = { v: m.v.hostValue, a: m.a.hostValue };
      const win = ex.solveH2wH2hJacobian(new bt.MultiStepData(xs));
      expect(win.hid2hid.hidden_group_0.shape).toEqual([5, 2, 4, 2, 2]);
      expect(win.hid2weight.xs['w@0'].shape).toEqual([5, 2, 3]);
      // the executor does not write the model's states
      expect(data(m.v.hostValue)).toEqual(data(h0.v));
      for (let t = 0; t < 5; t++) {
        const r = ex.solveH2wH2hJacobian(new bt.SingleStepData({ data: xs.data.slice(t * 6, t * 6 + 6), shape: [2, 3], dtype: 'float64' }));
        const slice = (ht: bt.HostTensor) => data(ht).slice((t * ht.data.length) / 5, ((t + 1) * ht.data.length) / 5);
        expect(data(r.outputs[0])).toEqual(slice(win.outputs[0]));
        expect(data(r.hid2hid.hidden_group_0)).toEqual(slice(win.hid2hid.hidden_group_0));
        expect(data(r.hid2weight.dfs['w@0->hidden_group_0'])).toEqual(slice(win.hid2weight.dfs['w@0->hidden_group_0']));
        expect(data(r.hid2weight.xs['w@0'])).toEqual(slice(win.hid2weight.xs['w@0']));
        m.v.hostValue = r.hiddenStates.v;
        m.a.hostValue = r.hiddenStates.a;
      }
      expect(data(m.v.hostValue)).toEqual(data(win.hiddenStates.v));
      expect(data(m.a.hostValue)).toEqual(data(win.hiddenStates.a));
      ex.dispose();
    }
  });

  test('single-step learning signal dL/dh^t equals the hand-derived value', () => {
    const m = new VanillaRNN();
    const { ex, rnd } = setup(m, 2, 9);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const x = rand([2, 3], rnd);
    const t = rand([2, 2], rnd);
    const r = ex.solveH2wH2hL2hJacobian([x], t, { loss: 'mse' });
    const h = data(r.hiddenStates.h);
    const out = affine(h, m.wo.hostValue.data, null, 2, 4, 2);
    expectClose(data(r.outputs[0]), out, 1e-14);
    const err = out.map((v, i) => v - t.data[i]);
    expect(r.losses[0]).toBeCloseTo(err.reduce((s, e) => s + e * e, 0) / 4, 14);
    const sigExp: number[] = [];
    for (let b = 0; b < 2; b++) {
      for (let k = 0; k < 4; k++) {
        let s = 0;
        for (let o = 0; o < 2; o++) s += (2 / 4) * err[b * 2 + o] * m.wo.hostValue.data[k * 2 + o];
        sigExp.push(s);
      }
    }
    expect(r.learningSignals.hidden_group_0.shape).toEqual([2, 4, 1]);
    expectClose(data(r.learningSignals.hidden_group_0), sigExp, 1e-14);
    ex.dispose();
  });

  test('single-step signal holds the other hidden states fixed (LIF: i feeds v in the same step)', () => {
    const m = new LIF();
    const { ex, rnd } = setup(m, 2, 12);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const t = rand([2, 4], rnd);
    const r = ex.solveH2wH2hL2hJacobian([rand([2, 3], rnd)], t, { loss: 'mse' });
    const v = data(r.hiddenStates.v);
    const expected = v.flatMap((vp, p) => [0, (2 / 8) * (vp - t.data[p])]);
    expectClose(data(r.learningSignals.hidden_group_0), expected, 1e-14);
    ex.dispose();
  });

  test('multi-step: signal at the window entry and within-window gradients equal finite differences', () => {
    const m = new GRU();
    const { ex, rnd } = setup(m, 2, 10, 'multi-step');
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    const xs = new bt.MultiStepData(rand([4, 2, 3], rnd));
    const ys = rand([4, 2, 2], rnd);
    const r = ex.solveH2wH2hL2hJacobian([xs], ys, { loss: 'mse', reduction: 'mean' });
    expect(r.losses).toHaveLength(4);
    const objective = () => {
      const q = ex.solveH2wH2hL2hJacobian([xs], ys, { loss: 'mse', reduction: 'mean' });
      return q.losses.reduce((s, v) => s + v, 0) / 4;
    };
    const h0 = Float64Array.from(m.h.hostValue.data);
    const fdSignal = Array.from(h0, (_, i) => {
      const at = (d: number) => {
        const h = Float64Array.from(h0);
        h[i] += d;
        m.h.hostValue = { data: h, shape: [2, 4], dtype: 'float64' };
        return objective();
      };
      const g = (at(1e-6) - at(-1e-6)) / 2e-6;
      m.h.hostValue = { data: h0, shape: [2, 4], dtype: 'float64' };
      return g;
    });
    expectClose(data(r.learningSignals.hidden_group_0), fdSignal, 1e-7);
    for (const path of ['wz', 'wr', 'wo']) {
      const p = m.paramStates().get(path)!;
      const w0 = Float64Array.from(p.hostValue.data);
      const fd = Array.from(w0, (_, i) => {
        const at = (d: number) => {
          const w = Float64Array.from(w0);
          w[i] += d;
          p.hostValue = { data: w, shape: p.hostValue.shape, dtype: 'float64' };
          return objective();
        };
        const g = (at(1e-6) - at(-1e-6)) / 2e-6;
        p.hostValue = { data: w0, shape: p.hostValue.shape, dtype: 'float64' };
        return g;
      });
      expectClose(data(r.windowGrads![path]), fd, 1e-7);
    }
    ex.dispose();
  });

  test('the single-step method refuses window data with a message that says what to do', () => {
    const { ex, rnd } = setup(new Leaky(), 2, 11);
    ex.compileGraph(bt.zeros([2, 3], 'float64'));
    expect(ex.isSingleStepVjp).toBe(true);
    expect(ex.isMultiStepVjp).toBe(false);
    const call = () => ex.solveH2wH2hL2hJacobian([new bt.MultiStepData(rand([3, 2, 3], rnd))], rand([3, 2, 4], rnd));
    expect(call).toThrow(bt.NotSupportedError);
    expect(call).toThrow(/vjpMethod: 'multi-step'/);
    // forward-only windows work on both methods
    expect(ex.solveH2wH2hJacobian(new bt.MultiStepData(rand([3, 2, 3], rnd))).outputs[0].shape).toEqual([3, 2, 4]);
    ex.dispose();
  });

  test('executor errors name the argument', () => {
    const ex = new bt.ETraceVjpGraphExecutor(new Leaky());
    expect(() => ex.graph).toThrow(/compileGraph/);
    expect(() => new bt.ETraceVjpGraphExecutor(new Leaky(), { vjpMethod: 'x' as never })).toThrow(/vjpMethod must be/);
    ex.compileGraph(bt.zeros([2, 3]));
    expect(() => ex.solveH2wH2hJacobian(bt.zeros([2, 5]))).toThrow(/args\[0\] must have shape \(2, 3\); got \(2, 5\)/);
    ex.dispose();
  });
});
