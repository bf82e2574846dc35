/**
 * Online learning: D_RTRL and pp_prop through bt.compile, proven against BPTT
 * where theory says they are equal (float64, non-zero initial hidden state),
 * against a plain recursion where they are not, and with negative controls.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { loadBinding } from '../lib/runtime/native';
import { encodePlan } from '../lib/compiler/plan';
import { analyseEtraceGraph } from '../lib/compiler/etrace';
import type { NativeOnlineConfig } from '../types/binding';
import { DiagRNN } from './helpers/models';
import { prng } from './helpers/native';

type Op = 'matmul' | 'matmulBias' | 'elementWise';

/** Leaky integrator h = 0.5 h + op(x) with a linear readout. */
class Leaky extends bt.Module {
  w: bt.ParamState;
  b = new bt.ParamState(bt.init.normal({ std: 0.5 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  constructor(private readonly op: Op) {
    super();
    this.w = new bt.ParamState(bt.init.normal(), op === 'elementWise' ? [4] : [4, 4]);
  }
  update(x: Tensor): Tensor {
    const drive =
      this.op === 'matmul'
        ? bt.matmul(x, this.w)
        : this.op === 'matmulBias'
          ? bt.matmul(x, this.w, this.b)
          : bt.elementWise(this.w, (y) => bt.mul(x, y));
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), drive);
    return bt.matmul(this.h.value, this.ro.value);
  }
}


/** LIF with an exponential current synapse and subtractive reset, no recurrent weight. */
class LIF extends bt.Module {
  w = new bt.ParamState(bt.init.normal({ mean: 0.6, std: 0.5 }), [4, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  i = new bt.HiddenState([4]);
  v = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const s = bt.spike(bt.sub(this.v.value, 1), bt.surrogate.arctan());
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w));
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.2)), s);
    return bt.matmul(this.v.value, this.ro.value);
  }
}

/** ALIF (v, a) with no recurrent weight. */
class ALIF extends bt.Module {
  w = new bt.ParamState(bt.init.normal({ mean: 0.6, std: 0.5 }), [4, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  v = new bt.HiddenState([4]);
  a = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const thr = bt.add(bt.mul(this.a.value, 0.5), 1);
    const s = bt.spike(bt.sub(this.v.value, thr), bt.surrogate.sigmoid({ alpha: 3 }));
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, 0.85), bt.mul(bt.matmul(x, this.w), 0.3)), bt.mul(s, thr));
    this.a.value = bt.add(bt.mul(this.a.value, 0.7), s);
    return bt.matmul(this.v.value, this.ro.value);
  }
}

/** GRU (not diagonal: the negative control). */
class GRU extends bt.Module {
  wz = new bt.ParamState(bt.init.xavierNormal(), [4 + 4, 4]);
  wr = new bt.ParamState(bt.init.xavierNormal(), [4 + 4, 4]);
  wh = new bt.ParamState(bt.init.xavierNormal({ gain: 1.5 }), [4 + 4, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz));
    const r = bt.sigmoid(bt.matmul(xh, this.wr));
    const c = bt.tanh(bt.matmul(bt.concat([x, bt.mul(r, h)], -1), this.wh));
    this.h.value = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, c));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** Vanilla RNN: zero-recurrence group (D = 0). */
class VanillaRNN extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [4 + 4, 4]);
  b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.tanh(bt.matmul(bt.concat([x, this.h.value], -1), this.w, this.b));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const B = 3;

function rand(shape: number[], rnd: () => number, scale = 1, offset = 0): bt.HostTensor {
  return { data: Float64Array.from({ length: bt.numel(shape) }, () => offset + scale * (2 * rnd() - 1)), shape, dtype: 'float64' };
}

function flat(g: Record<string, bt.HostTensor>): number[] {
  return Object.keys(g)
    .sort()
    .flatMap((k) => Array.from(g[k].data));
}

function relErr(a: Record<string, bt.HostTensor>, b: Record<string, bt.HostTensor>): number {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  const x = flat(a);
  const y = flat(b);
  let num = 0;
  let den = 0;
  x.forEach((v, i) => {
    num = Math.max(num, Math.abs(v - y[i]));
    den = Math.max(den, Math.abs(y[i]));
  });
  expect(den).toBeGreaterThan(1e-6);
  return num / den;
}

function cosine(a: Record<string, bt.HostTensor>, b: Record<string, bt.HostTensor>): number {
  const x = flat(a);
  const y = flat(b);
  let d = 0;
  let nx = 0;
  let ny = 0;
  x.forEach((v, i) => {
    d += v * y[i];
    nx += v * v;
    ny += y[i] * y[i];
  });
  return d / Math.sqrt(nx * ny);
}

interface Setup {
  xs: bt.HostTensor;
  ys: bt.HostTensor;
  h0: Record<string, bt.HostTensor>;
}

function data(make: () => bt.Module, T: number, seed: number): Setup {
  const rnd = prng(seed);
  const m = make().initStates({ batchSize: B, dtype: 'float64' });
  const h0: Record<string, bt.HostTensor> = {};
  for (const [p, s] of m.hiddenStates()) h0[p] = rand(s.hostValue.shape, rnd, 0.6, 0.4);
  return { xs: rand([T, B, 4], rnd, 1, 0.3), ys: rand([T, B, 2], rnd), h0 };
}

async function grads(
  make: () => bt.Module,
  algo: bt.AlgorithmClass<bt.Learner, bt.PpPropOptions>,
  d: Setup,
  opts: Partial<bt.PpPropOptions> = {},
  gradOpts: bt.OnlineGradOptions = {},
): Promise<Record<string, bt.HostTensor>> {
  // decayOrRank is an option of pp_prop only (issue 8: other learners reject unknown options).
  const base = { inputShape: [4], batchSize: B, dtype: 'float64' as const, seed: 3 };
  const learner = bt.compile(make(), algo, (algo === PP ? { ...base, decayOrRank: 0, ...opts } : { ...base, ...opts }) as bt.PpPropOptions);
  try {
    learner.setStates(d.h0);
    const r = await learner.etraceGrad(d.xs, d.ys, { loss: 'mse', ...gradOpts });
    expect(r.losses).toHaveLength(d.xs.shape[0]);
    return r.grads;
  } finally {
    learner.dispose();
  }
}

const BPTT = bt.BPTT as unknown as bt.AlgorithmClass<bt.Learner, bt.PpPropOptions>;
const DRTRL = bt.D_RTRL as unknown as bt.AlgorithmClass<bt.Learner, bt.PpPropOptions>;
const PP = bt.pp_prop as unknown as bt.AlgorithmClass<bt.Learner, bt.PpPropOptions>;

const EXACT_MODELS: [string, () => bt.Module][] = [
  ['leaky matmul', () => new Leaky('matmul')],
  ['leaky matmul + bias', () => new Leaky('matmulBias')],
  ['leaky element-wise', () => new Leaky('elementWise')],
  ['diagonal tanh RNN', () => new DiagRNN(4, 4, 2)],
  ['LIF, exponential synapse (S = 2)', () => new LIF()],
  ['ALIF (S = 2)', () => new ALIF()],
];

describe('D_RTRL single-step equals BPTT on diagonal models', () => {
  for (const [name, make] of EXACT_MODELS) {
    test.each([1, 4, 50])(`${name}, T = %i`, async (T) => {
      const d = data(make, T, 10 + T);
      const exact = await grads(make, BPTT, d);
      const online = await grads(make, DRTRL, d);
      expect(relErr(online, exact)).toBeLessThan(1e-9);
    });
  }
});

describe('pp_prop', () => {
  test.each(EXACT_MODELS)('equals BPTT at T = 1: %s', async (_name, make) => {
    const d = data(make, 1, 21);
    expect(relErr(await grads(make, PP, d, { decayOrRank: 0.7 }), await grads(make, BPTT, d))).toBeLessThan(1e-9);
  });

  test('equals a plain recursion over the executor pieces at T = 6 (ALIF, S = 2)', async () => {
    const T = 6;
    const alpha = 0.6;
    const d = data(() => new ALIF(), T, 22);
    const online = await grads(() => new ALIF(), PP, d, { decayOrRank: alpha });
    // The recursion, from the executor's per-step x, df, D and dL^t/dh^t:
    const m = new ALIF().initStates({ batchSize: B, dtype: 'float64', seed: 3 });
    for (const [p, s] of m.hiddenStates()) s.hostValue = d.h0[p];
    const ex = new bt.ETraceVjpGraphExecutor(m);
    ex.compileGraph(bt.zeros([B, 4], 'float64'));
    const S = 2;
    const O = 4;
    const I = 4;
    const xbar = new Float64Array(B * I);
    const epsf = new Float64Array(B * O * S);
    const dW = new Float64Array(I * O);
    const dRo = new Float64Array(O * 2);
    for (let t = 0; t < T; t++) {
      const slice = (h: bt.HostTensor, n: number): bt.HostTensor => ({ data: h.data.slice(t * n, (t + 1) * n), shape: h.shape.slice(1), dtype: 'float64' });
      const r = ex.solveH2wH2hL2hJacobian([slice(d.xs, B * 4)], slice(d.ys, B * 2), { loss: 'mse' });
      const x = r.hid2weight.xs['w@0'].data;
      const df = r.hid2weight.dfs['w@0->hidden_group_0'].data;
      const D = r.hid2hid.hidden_group_0.data;
      const g = r.learningSignals.hidden_group_0.data;
      for (let k = 0; k < B * I; k++) xbar[k] = alpha * xbar[k] + x[k];
      const next = new Float64Array(epsf.length);
      for (let p = 0; p < B * O; p++) {
        for (let a = 0; a < S; a++) {
          let s = 0;
          for (let c = 0; c < S; c++) s += D[p * S * S + a * S + c] * epsf[p * S + c];
          next[p * S + a] = alpha * s + (1 - alpha) * df[p * S + a];
        }
      }
      epsf.set(next);
      const c = 1 - Math.pow(alpha, t + 1);
      for (let b = 0; b < B; b++) {
        for (let k = 0; k < O; k++) {
          let q = 0;
          for (let a = 0; a < S; a++) q += g[(b * O + k) * S + a] * epsf[(b * O + k) * S + a];
          for (let i = 0; i < I; i++) dW[i * O + k] += (xbar[b * I + i] * q) / c;
        }
      }
      // the readout is non-temporal: its instantaneous gradient, by hand for the mse loss
      const v = r.hiddenStates.v.data;
      const y = r.outputs[0].data;
      const tgt = slice(d.ys, B * 2).data;
      for (let b = 0; b < B; b++) {
        for (let o = 0; o < 2; o++) {
          const e = (2 / (B * 2)) * (y[b * 2 + o] - tgt[b * 2 + o]);
          for (let k = 0; k < O; k++) dRo[k * 2 + o] += v[b * O + k] * e;
        }
      }
      m.v.hostValue = r.hiddenStates.v;
      m.a.hostValue = r.hiddenStates.a;
    }
    ex.dispose();
    const expected = {
      w: { data: dW, shape: [4, 4], dtype: 'float64' as const },
      ro: { data: dRo, shape: [4, 2], dtype: 'float64' as const },
    };
    expect(relErr(online, expected)).toBeLessThan(1e-9);
  });

  test('rank 1 equals D_RTRL where D = 0 (vanilla RNN)', async () => {
    const make = () => new VanillaRNN();
    const d = data(make, 12, 23);
    expect(relErr(await grads(make, PP, d, { decayOrRank: 1 }), await grads(make, DRTRL, d))).toBeLessThan(1e-12);
  });

  test('decayOrRank: float decay, integer rank, and bad values', () => {
    expect(bt.decayOf(0.5)).toBe(0.5);
    expect(bt.decayOf(3)).toBe(0.5);
    expect(bt.decayOf(1)).toBe(0);
    expect(() => bt.decayOf(1.5)).toThrow(/decayOrRank must be a decay in \[0, 1\) or an integer rank >= 1; got 1.5/);
    expect(() => bt.compile(new Leaky('matmul'), bt.pp_prop, { inputShape: [4] } as never)).toThrow(/decayOrRank/);
  });
});

/** Transforms of the weight ParamState: W_eff = f(W) (the chain rule through f). */
type Transform = 'mask' | 'dale' | 'tanh' | 'square' | 'tanhBias';
const MASK4 = [
  [1, 0, 1, 1],
  [0, 1, 1, 0],
  [1, 1, 0, 1],
  [1, 0, 1, 0],
];
const SIGN4 = [[1], [-1], [1], [-1]];

/** Leaky integrator h = 0.5 h + x·f(W) (or x ⊙ f(w) element-wise) with a linear readout. */
class LeakyTransformed extends bt.Module {
  w: bt.ParamState;
  b = new bt.ParamState(bt.init.normal({ std: 0.5 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
  h = new bt.HiddenState([4]);
  constructor(private readonly f: Transform) {
    super();
    this.w = new bt.ParamState(bt.init.normal(), f === 'square' ? [4] : [4, 4]);
  }
  update(x: Tensor): Tensor {
    const w = this.w.value;
    let drive: Tensor;
    if (this.f === 'square') drive = bt.elementWise(bt.square(w), (y) => bt.mul(x, y));
    else if (this.f === 'mask') drive = bt.matmul(x, bt.mul(w, MASK4));
    else if (this.f === 'dale') drive = bt.matmul(x, bt.mul(bt.abs(w), SIGN4), this.b);
    else if (this.f === 'tanh') drive = bt.matmul(x, bt.tanh(w));
    else drive = bt.matmul(x, bt.tanh(w), bt.mul(bt.tanh(this.b.value), 2));
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), drive);
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const TRANSFORMED: [string, () => bt.Module][] = [
  ['mask ⊙ W', () => new LeakyTransformed('mask')],
  ["Dale's law |W| ⊙ sign (+ raw bias)", () => new LeakyTransformed('dale')],
  ['tanh(W)', () => new LeakyTransformed('tanh')],
  ['tanh(W) with a transformed bias 2 tanh(b)', () => new LeakyTransformed('tanhBias')],
  ['element-wise w²', () => new LeakyTransformed('square')],
];

describe('transformed weights W_eff = f(θ): the chain rule', () => {
  for (const [name, make] of TRANSFORMED) {
    test.each([1, 4, 20])(`D_RTRL equals BPTT: ${name}, T = %i`, async (T) => {
      const d = data(make, T, 60 + T);
      const exact = await grads(make, BPTT, d);
      const online = await grads(make, DRTRL, d);
      expect(relErr(online, exact)).toBeLessThan(1e-9);
      expect(Array.from(online.w.data).some((v) => v !== 0)).toBe(true);
    });
  }

  test('the relation records the transformed weight and bias', () => {
    const learner = bt.compile(new LeakyTransformed('tanhBias'), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64' });
    try {
      const [r] = (learner as bt.ParamDimVjpAlgorithm).graph.relations;
      expect(r.weightTransformed).toBe(true);
      expect(r.weightPath).toBe('w');
      expect(r.biasPath).toBe('b');
    } finally {
      learner.dispose();
    }
  });

  test('pp_prop equals BPTT at T = 1 on the masked weight', async () => {
    const make = () => new LeakyTransformed('mask');
    const d = data(make, 1, 71);
    expect(relErr(await grads(make, PP, d, { decayOrRank: 0.7 }), await grads(make, BPTT, d))).toBeLessThan(1e-9);
  });

  test("chunk 4 at T = 20 equals BPTT on the Dale's-law weight (multi-step)", async () => {
    const make = () => new LeakyTransformed('dale');
    const d = data(make, 20, 72);
    const exact = await grads(make, BPTT, d);
    const windows = await grads(make, DRTRL, d, { vjpMethod: 'multi-step' }, { chunkSize: 4 });
    expect(relErr(windows, exact)).toBeLessThan(1e-9);
  });

  test('the dL/dW_eff sum is per call: a repeat from the same states and traces gives the same gradient', async () => {
    const make = () => new LeakyTransformed('tanh');
    const d = data(make, 8, 73);
    const learner = bt.compile(make(), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64', seed: 3 });
    try {
      learner.setStates(d.h0);
      const a = await learner.etraceGrad(d.xs, d.ys, { loss: 'mse' });
      learner.setStates(d.h0);
      learner.resetState();
      learner.setStates(d.h0);
      const b = await learner.etraceGrad(d.xs, d.ys, { loss: 'mse' });
      expect(relErr(b.grads, a.grads)).toBeLessThan(1e-12);
    } finally {
      learner.dispose();
    }
  });

  test('native configuration: weightNode / biasNode are validated, and runOnline equals runSequence', () => {
    const loss: bt.TraceLoss = { fn: (y, t) => bt.mul(bt.sum(bt.square(bt.sub(y, t))), 0.5), targetShape: [2] };
    const { graph } = bt.traceModel(new LeakyTransformed('tanhBias'), { dtype: 'float64', inputShapes: [[4]], batchSize: B, loss });
    const plan = encodePlan(graph);
    const session = loadBinding().createSession(plan.code, plan.fattr);
    try {
      const rnd = prng(80);
      graph.params.forEach((p, i) => session.setParam(i, Float64Array.from({ length: bt.numel(p.shape) }, () => 2 * rnd() - 1)));
      graph.states.forEach((st, i) => session.setState(i, Float64Array.from({ length: bt.numel(st.shape) }, () => 0.3 + rnd())));
      const etg = analyseEtraceGraph(graph, { batchSize: B });
      const [r] = etg.relations;
      const y = graph.nodes[r.yNode];
      const config = (rel: Partial<NativeOnlineConfig['relations'][number]>): NativeOnlineConfig => ({
        algorithm: 'd_rtrl',
        groups: etg.groups.map((g) => ({
          members: g.members.map((m) => ({ leafNode: m.leafNode, newNode: m.newNode, width: m.width })),
          positions: g.positions,
          zeroRecurrence: g.zeroRecurrence,
          probePositions: g.coupled,
        })),
        relations: [
          {
            kind: 'dense',
            xNode: r.xNode!,
            yNode: r.yNode,
            weightSlot: r.weightSlot,
            biasSlot: r.biasSlot!,
            weightNode: y.inputs[1],
            biasNode: y.inputs[2],
            groups: r.groups.slice(),
            tailProbe: r.groups.map(() => false),
            ...rel,
          },
        ],
        blockedTransition: graph.nodes.filter((n) => n.op === 'EtpMatMul' || n.op === 'MatMul').map((n) => n.id),
        etpNodes: graph.nodes.filter((n) => n.op === 'EtpMatMul').map((n) => n.id),
        nonTemporalSlots: graph.params.map((_, i) => i).filter((i) => i !== r.weightSlot && i !== r.biasSlot),
      });
      const code = (f: () => unknown, re: RegExp) => {
        let err: unknown = null;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect((err as { code?: string }).code).toBe('ERR_BRAINTRACE_INVALID_ARGUMENT');
        expect(String((err as Error).message)).toMatch(re);
      };
      code(() => session.configureOnline(config({ weightNode: -1 })), /weight_node is -1 \(the raw ParamState\)/);
      code(() => session.configureOnline(config({ weightNode: r.xNode! })), /weight_node must be the weight \(input 1\)/);
      code(() => session.configureOnline(config({ biasNode: -1 })), /bias_node is -1/);
      code(() => session.configureOnline(config({ biasSlot: -1 })), /bias_node must be -1 without a bias_slot/);
      code(() => session.configureOnline(config({ weightSlot: r.biasSlot! })), /does not depend on the Param leaf of slot|depends on the Param leaf/);
      session.configureOnline(config({}));
      const T = 6;
      const inputs = graph.inputs.map((i) => Float64Array.from({ length: T * bt.numel(i.shape) }, () => 2 * rnd() - 1));
      const s0 = graph.states.map((_, i) => Float64Array.from(session.getState(i)));
      const seq = session.runSequence({ steps: T, inputs, computeGrads: true });
      s0.forEach((v, i) => session.setState(i, v));
      const on = session.runOnline({ steps: T, inputs, computeGrads: true });
      seq.paramGrads!.forEach((g, i) => {
        const a = Array.from(on.paramGrads![i]);
        const scale = Math.max(...Array.from(g, Math.abs));
        expect(scale).toBeGreaterThan(1e-6);
        a.forEach((v, k) => expect(Math.abs(v - g[k]) / scale).toBeLessThan(1e-9));
      });
    } finally {
      session.dispose();
    }
  });
});

describe('chunked windows (multi-step)', () => {
  test.each([2, 5])('chunk %i at T = 20 equals BPTT and the single-step rule on the leaky model', async (chunk) => {
    const make = () => new Leaky('matmulBias');
    const d = data(make, 20, 30 + chunk);
    const exact = await grads(make, BPTT, d);
    const single = await grads(make, DRTRL, d);
    const windows = await grads(make, DRTRL, d, { vjpMethod: 'multi-step' }, { chunkSize: chunk });
    expect(relErr(windows, exact)).toBeLessThan(1e-9);
    expect(relErr(windows, single)).toBeLessThan(1e-9);
  });

  test('chunk 4 at T = 20 on the diagonal RNN equals BPTT (D_RTRL) and is approximate for pp_prop', async () => {
    const make = () => new DiagRNN(4, 4, 2);
    const d = data(make, 20, 40);
    const exact = await grads(make, BPTT, d);
    expect(relErr(await grads(make, DRTRL, d, { vjpMethod: 'multi-step' }, { chunkSize: 4 }), exact)).toBeLessThan(1e-9);
    expect(relErr(await grads(make, PP, d, { vjpMethod: 'multi-step', decayOrRank: 0.5 }, { chunkSize: 4 }), exact)).toBeGreaterThan(1e-6);
  });

  test('windows need the multi-step method and a chunk that divides T', async () => {
    const learner = bt.compile(new Leaky('matmul'), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64' });
    const d = data(() => new Leaky('matmul'), 6, 41);
    await expect(learner.etraceGrad(d.xs, d.ys, { chunkSize: 2 })).rejects.toThrow(/vjpMethod: 'multi-step'/);
    learner.dispose();
    const l2 = bt.compile(new Leaky('matmul'), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64', vjpMethod: 'multi-step' });
    await expect(l2.etraceGrad(d.xs, d.ys, { chunkSize: 4 })).rejects.toThrow(/chunkSize 4 must divide the number of steps T = 6/);
    l2.dispose();
  });
});

/** Two stacked states: h1 (leaky, driven by x W1) feeds r (memoryless copy layer r = h1' W2) within the step. */
class Stacked extends bt.Module {
  w1 = new bt.ParamState(bt.init.normal(), [4, 4]);
  w2 = new bt.ParamState(bt.init.normal(), [4, 3]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [3, 2]);
  h1 = new bt.HiddenState([4]);
  r = new bt.HiddenState([3]);
  update(x: Tensor): Tensor {
    this.h1.value = bt.add(bt.mul(this.h1.value, 0.5), bt.matmul(x, this.w1));
    this.r.value = bt.tanh(bt.matmul(this.h1.value, this.w2));
    return bt.matmul(this.r.value, this.ro.value);
  }
}

describe('stacked layers: the signal runs through another group within the step', () => {
  test('D_RTRL equals BPTT when the upper layer has no memory (T = 12)', async () => {
    const make = () => new Stacked();
    const d = data(make, 12, 80);
    const g = await grads(make, DRTRL, d);
    expect(Array.from(g.w1.data).some((v) => v !== 0)).toBe(true);
    expect(relErr(g, await grads(make, BPTT, d))).toBeLessThan(1e-9);
  });
});

describe('negative controls (GRU)', () => {
  test('D_RTRL and pp_prop differ from BPTT; D_RTRL stays aligned with it', async () => {
    const make = () => new GRU();
    const d = data(make, 30, 50);
    const exact = await grads(make, BPTT, d);
    const drtrl = await grads(make, DRTRL, d);
    const pp = await grads(make, PP, d, { decayOrRank: 0.5 });
    expect(relErr(drtrl, exact)).toBeGreaterThan(1e-6);
    expect(relErr(pp, exact)).toBeGreaterThan(1e-6);
    expect(cosine(drtrl, exact)).toBeGreaterThanOrEqual(0.9);
  });
});

describe('learner behaviour', () => {
  test('states and traces carry across calls: two halves equal one whole sequence', async () => {
    const make = () => new DiagRNN(4, 4, 2);
    const d = data(make, 10, 60);
    const whole = await grads(make, DRTRL, d);
    const learner = bt.compile(make(), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64', seed: 3 });
    learner.setStates(d.h0);
    const half = (h: bt.HostTensor, k: number): bt.HostTensor => {
      const n = h.data.length / 10;
      return { data: h.data.slice(k * 5 * n, (k + 1) * 5 * n), shape: [5, ...h.shape.slice(1)], dtype: 'float64' };
    };
    const a = await learner.etraceGrad(half(d.xs, 0), half(d.ys, 0));
    const b = await learner.etraceGrad(half(d.xs, 1), half(d.ys, 1));
    const sum: Record<string, bt.HostTensor> = {};
    for (const k of Object.keys(a.grads)) {
      sum[k] = { ...a.grads[k], data: Float64Array.from(a.grads[k].data, (v, i) => v + b.grads[k].data[i]) };
    }
    expect(relErr(sum, whole)).toBeLessThan(1e-12);
    // update()/etraceEvolve advance traces too, and traces() exposes them with documented shapes
    const tr = learner.traces();
    expect(Object.keys(tr).sort()).toEqual(['r0/g0/bias', 'r0/g0/weight', 'r1/g0/elementwise']);
    expect(tr['r0/g0/weight'].shape).toEqual([B, 4, 4, 1]);
    learner.resetState();
    expect(Array.from(learner.traces()['r0/g0/weight'].data).every((v) => v === 0)).toBe(true);
    learner.dispose();
  });

  test('mask gates the loss of masked steps (the model still advances)', async () => {
    const make = () => new Leaky('matmul');
    const d = data(make, 6, 61);
    const masked = await grads(make, DRTRL, d, {}, { mask: [0, 0, 0, 1, 1, 1] });
    // BPTT with the same weights: losses of masked steps contribute nothing
    const learner = bt.compile(make(), bt.BPTT, { inputShape: [4], batchSize: B, dtype: 'float64', seed: 3 });
    learner.setStates(d.h0);
    const custom = (y: Tensor, t: Tensor) => bt.mean(bt.mul(bt.square(bt.sub(y, bt.sliceAxis(t, -1, 0, 2))), bt.sliceAxis(t, -1, 2, 3)));
    const ys3 = { data: new Float64Array(6 * B * 3), shape: [6, B, 3], dtype: 'float64' as const };
    for (let t = 0; t < 6; t++) {
      for (let b = 0; b < B; b++) {
        ys3.data[(t * B + b) * 3] = d.ys.data[(t * B + b) * 2];
        ys3.data[(t * B + b) * 3 + 1] = d.ys.data[(t * B + b) * 2 + 1];
        ys3.data[(t * B + b) * 3 + 2] = t >= 3 ? 1 : 0;
      }
    }
    const exact = await learner.etraceGrad(d.xs, ys3, { loss: custom });
    // BPTT's own mask gives the same gradients
    learner.setStates(d.h0);
    const bpttMasked = await learner.etraceGrad(d.xs, d.ys, { loss: 'mse', mask: [0, 0, 0, 1, 1, 1] });
    learner.dispose();
    expect(relErr(masked, exact.grads)).toBeLessThan(1e-9);
    expect(relErr(bpttMasked.grads, exact.grads)).toBeLessThan(1e-12);
  });

  test('trace memory does not grow with T (native allocation counters)', async () => {
    const binding = loadBinding();
    const make = () => new LIF();
    const learner = bt.compile(make(), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64' });
    const small = data(make, 10, 70);
    await learner.etraceGrad(small.xs, small.ys);
    const live = binding.memoryStats().liveBytes;
    binding.resetPeakMemory();
    const big = data(make, 400, 71);
    await learner.etraceGrad(big.xs, big.ys);
    const after = binding.memoryStats();
    expect(after.liveBytes).toBe(live);
    // Peak during the long run: only per-call input/output copies grow with T, not the traces.
    const traceBytes = Object.values(learner.traces()).reduce((s, t) => s + t.data.byteLength, 0);
    expect(traceBytes).toBe(8 * (B * 4 * 4 * 2)); // one (B, I, O, S) trace, S = 2
    expect(after.peakBytes - live).toBeLessThan(traceBytes);
    learner.dispose();
  });
});
