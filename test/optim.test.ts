/**
 * bt.optim: the native optimizers against a JS transcription of PyTorch's update rules
 * (float64, 1e-12), clipping by global norm, schedules, checkpoint round trips (bit for
 * bit), float32, typed errors, and an end-to-end D_RTRL + Adam training run.
 */
import * as bt from '../lib/index';
import * as optim from '../lib/optim/index';
import type { Tensor } from '../lib/dsl/tensor';
import { ArgumentError, DTypeError, ShapeError } from '../lib/runtime/errors';
import type { NativeBinding } from '../types/binding';
import { bindingInfo, loadBinding } from '../lib/runtime/native';
import type { HostTensor } from '../lib/tensor';
import { prng } from './helpers/native';

/**
 * The addon module itself. Under jest, loadBinding() returns a realm proxy that knows
 * sessions but not optimizers (see lib/optim/native.ts); its errors then come from the
 * addon's realm, so tests check `name` rather than `instanceof`.
 */
function rawBinding(): NativeBinding {
  loadBinding();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(bindingInfo().path) as NativeBinding;
}

function expectThrowNamed(fn: () => unknown, name: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  expect((caught as Error).name).toBe(name);
  expect((caught as Error).message).toMatch(message);
}

// ------------------------------------------------------------------------- the oracle

/** Hyper-parameters of the reference (PyTorch names). */
interface RefHyper {
  kind: 'sgd' | 'adam' | 'adamw' | 'rmsprop';
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  alpha?: number;
  centered?: boolean;
  clipNorm?: number;
}

/**
 * A plain transcription of torch.optim.{SGD, Adam, AdamW, RMSprop}.step (single tensor,
 * maximize = amsgrad = false) and torch.nn.utils.clip_grad_norm_, over several tensors.
 * Updates `params` in place; returns the pre-clip norms per step.
 */
function reference(h: RefHyper, params: Float64Array[], gradSeq: Float64Array[][], lrs: number[]): number[] {
  const mu = h.momentum ?? 0;
  const damp = h.dampening ?? 0;
  const wd = h.weightDecay ?? 0;
  const b1 = h.beta1 ?? 0.9;
  const b2 = h.beta2 ?? 0.999;
  const eps = h.eps ?? 1e-8;
  const alpha = h.alpha ?? 0.99;
  const st = params.map((p) => ({
    buf: null as Float64Array | null,
    m: new Float64Array(p.length),
    v: new Float64Array(p.length),
    sq: new Float64Array(p.length),
    ga: new Float64Array(p.length),
    mb: new Float64Array(p.length),
  }));
  const norms: number[] = [];
  gradSeq.forEach((grads0, s) => {
    const t = s + 1;
    const lr = lrs[s];
    let total = 0;
    for (const g of grads0) for (const x of g) total += x * x;
    const norm = Math.sqrt(total);
    norms.push(norm);
    const coef = h.clipNorm !== undefined ? Math.min(1, h.clipNorm / (norm + 1e-6)) : 1;
    params.forEach((p, i) => {
      const grad = grads0[i].map((x) => x * coef);
      const S = st[i];
      if (h.kind === 'sgd') {
        const d = grad.map((g, j) => (wd !== 0 ? g + wd * p[j] : g));
        if (mu !== 0) {
          if (S.buf === null) S.buf = Float64Array.from(d);
          else for (let j = 0; j < d.length; j++) S.buf[j] = mu * S.buf[j] + (1 - damp) * d[j];
          for (let j = 0; j < d.length; j++) d[j] = h.nesterov ? d[j] + mu * S.buf[j] : S.buf[j];
        }
        for (let j = 0; j < d.length; j++) p[j] = p[j] - lr * d[j];
      } else if (h.kind === 'adam' || h.kind === 'adamw') {
        if (h.kind === 'adamw') for (let j = 0; j < p.length; j++) p[j] = p[j] * (1 - lr * wd);
        const g = grad.map((x, j) => (h.kind === 'adam' && wd !== 0 ? x + wd * p[j] : x));
        const bc1 = 1 - b1 ** t;
        const bc2 = 1 - b2 ** t;
        const stepSize = lr / bc1;
        const bc2s = Math.sqrt(bc2);
        for (let j = 0; j < p.length; j++) {
          S.m[j] = b1 * S.m[j] + (1 - b1) * g[j];
          S.v[j] = b2 * S.v[j] + (1 - b2) * g[j] * g[j];
          const denom = Math.sqrt(S.v[j]) / bc2s + eps;
          p[j] = p[j] - stepSize * (S.m[j] / denom);
        }
      } else {
        const g = grad.map((x, j) => (wd !== 0 ? x + wd * p[j] : x));
        for (let j = 0; j < p.length; j++) {
          S.sq[j] = alpha * S.sq[j] + (1 - alpha) * g[j] * g[j];
          let avg: number;
          if (h.centered) {
            S.ga[j] = alpha * S.ga[j] + (1 - alpha) * g[j];
            avg = Math.sqrt(S.sq[j] - S.ga[j] * S.ga[j]) + eps;
          } else {
            avg = Math.sqrt(S.sq[j]) + eps;
          }
          if (mu > 0) {
            S.mb[j] = mu * S.mb[j] + g[j] / avg;
            p[j] = p[j] - lr * S.mb[j];
          } else {
            p[j] = p[j] - lr * (g[j] / avg);
          }
        }
      }
    });
  });
  return norms;
}

// ------------------------------------------------------------------------- problems

const SHAPES: Record<string, number[]> = { 'layer.w': [3, 4], 'layer.b': [4], 'ro.w': [4, 2] };
const PATHS = Object.keys(SHAPES).sort();

function randomArray(n: number, rand: () => number, scale: number): Float64Array {
  return Float64Array.from({ length: n }, () => (2 * rand() - 1) * scale);
}

function makeParams(seed: number): Record<string, HostTensor> {
  const rand = prng(seed);
  const out: Record<string, HostTensor> = {};
  for (const p of PATHS) {
    const n = SHAPES[p].reduce((a, b) => a * b, 1);
    out[p] = { data: randomArray(n, rand, 1), shape: SHAPES[p].slice(), dtype: 'float64' };
  }
  return out;
}

function makeGrads(seed: number, steps: number, scale = 1): Record<string, HostTensor>[] {
  const rand = prng(seed + 1000);
  return Array.from({ length: steps }, () => {
    const out: Record<string, HostTensor> = {};
    for (const p of PATHS) {
      const n = SHAPES[p].reduce((a, b) => a * b, 1);
      out[p] = { data: randomArray(n, rand, scale), shape: SHAPES[p].slice(), dtype: 'float64' };
    }
    return out;
  });
}

function clone(r: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, v] of Object.entries(r)) out[k] = { data: v.data.slice(), shape: v.shape.slice(), dtype: v.dtype };
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    if (!(err <= worst)) worst = err; // NaN-safe
  }
  expect(worst).toBeLessThanOrEqual(tol);
}

/** Runs `opt` over `steps` steps and the reference over the same data; compares. */
function checkAgainstReference(
  make: () => optim.Optimizer,
  ref: RefHyper,
  lrOf: (t: number) => number,
  opts: { steps?: number; gradScale?: number; seed?: number } = {},
): void {
  const steps = opts.steps ?? 5;
  const seed = opts.seed ?? 7;
  const params = makeParams(seed);
  const grads = makeGrads(seed, steps, opts.gradScale ?? 1);
  const refParams = PATHS.map((p) => Float64Array.from(params[p].data));
  const lrs = Array.from({ length: steps }, (_, t) => lrOf(t));
  const norms = reference(ref, refParams, grads.map((g) => PATHS.map((p) => g[p].data as Float64Array)), lrs);
  const opt = make();
  grads.forEach((g, t) => {
    expect(opt.currentLr()).toBe(lrs[t]);
    const r = opt.step(params, g);
    expect(r.lr).toBe(lrs[t]);
    expect(Math.abs(r.gradNorm - norms[t])).toBeLessThanOrEqual(1e-12 * norms[t]);
  });
  expect(opt.stepCount).toBe(steps);
  PATHS.forEach((p, i) => expectClose(params[p].data, refParams[i], 1e-12));
  opt.dispose();
}

// ------------------------------------------------------------------------- tests

describe('optimizers match the PyTorch formulas (float64, 5 steps, 1e-12)', () => {
  const cases: [string, () => optim.Optimizer, RefHyper, number][] = [
    ['SGD', () => new optim.SGD({ lr: 0.1 }), { kind: 'sgd' }, 0.1],
    ['SGD weight decay', () => new optim.SGD({ lr: 0.1, weightDecay: 0.05 }), { kind: 'sgd', weightDecay: 0.05 }, 0.1],
    ['SGD momentum', () => new optim.SGD({ lr: 0.05, momentum: 0.9 }), { kind: 'sgd', momentum: 0.9 }, 0.05],
    [
      'SGD momentum dampening weight decay',
      () => new optim.SGD({ lr: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.01 }),
      { kind: 'sgd', momentum: 0.8, dampening: 0.3, weightDecay: 0.01 },
      0.05,
    ],
    [
      'SGD Nesterov',
      () => new optim.SGD({ lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.02 }),
      { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.02 },
      0.05,
    ],
    ['Adam', () => new optim.Adam({ lr: 0.01 }), { kind: 'adam' }, 0.01],
    [
      'Adam L2 weight decay, betas, eps',
      () => new optim.Adam({ lr: 0.02, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 }),
      { kind: 'adam', beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 },
      0.02,
    ],
    ['AdamW (default decay 1e-2)', () => new optim.AdamW({ lr: 0.01 }), { kind: 'adamw', weightDecay: 1e-2 }, 0.01],
    [
      'AdamW decay 0.3',
      () => new optim.AdamW({ lr: 0.05, betas: [0.85, 0.99], weightDecay: 0.3 }),
      { kind: 'adamw', beta1: 0.85, beta2: 0.99, weightDecay: 0.3 },
      0.05,
    ],
    ['AdamW no decay equals Adam', () => new optim.AdamW({ lr: 0.01, weightDecay: 0 }), { kind: 'adam' }, 0.01],
    ['RMSProp', () => new optim.RMSProp({ lr: 0.01 }), { kind: 'rmsprop' }, 0.01],
    [
      'RMSProp momentum',
      () => new optim.RMSProp({ lr: 0.01, momentum: 0.9, alpha: 0.9 }),
      { kind: 'rmsprop', momentum: 0.9, alpha: 0.9 },
      0.01,
    ],
    ['RMSProp centered', () => new optim.RMSProp({ lr: 0.01, centered: true }), { kind: 'rmsprop', centered: true }, 0.01],
    [
      'RMSProp centered momentum weight decay eps',
      () => new optim.RMSProp({ lr: 0.02, centered: true, momentum: 0.5, weightDecay: 0.1, eps: 1e-4 }),
      { kind: 'rmsprop', centered: true, momentum: 0.5, weightDecay: 0.1, eps: 1e-4 },
      0.02,
    ],
  ];
  test.each(cases)('%s', (_name, make, ref, lr) => {
    checkAgainstReference(make, ref, () => lr);
  });
});

describe('clipping by global norm', () => {
  test('clipNorm scales all gradients by min(1, c / (norm + 1e-6)) before the update', () => {
    // Gradients of scale 3: the global norm (~9) is far above 0.5, so every step clips.
    checkAgainstReference(
      () => new optim.SGD({ lr: 0.1, momentum: 0.9, clipNorm: 0.5 }),
      { kind: 'sgd', momentum: 0.9, clipNorm: 0.5 },
      () => 0.1,
      { gradScale: 3 },
    );
    checkAgainstReference(
      () => new optim.Adam({ lr: 0.01, weightDecay: 0.1, clipNorm: 1 }),
      { kind: 'adam', weightDecay: 0.1, clipNorm: 1 },
      () => 0.01,
      { gradScale: 3 },
    );
    checkAgainstReference(
      () => new optim.RMSProp({ lr: 0.01, centered: true, clipNorm: 2 }),
      { kind: 'rmsprop', centered: true, clipNorm: 2 },
      () => 0.01,
      { gradScale: 3 },
    );
  });

  test('a clip above the norm changes nothing; the returned norm is the pre-clip norm', () => {
    const a = makeParams(3);
    const b = clone(a);
    const g = makeGrads(3, 1)[0];
    const norm = Math.sqrt(PATHS.reduce((s, p) => s + Array.from(g[p].data).reduce((q, x) => q + x * x, 0), 0));
    const r1 = new optim.SGD({ lr: 0.1 }).step(a, g);
    const r2 = new optim.SGD({ lr: 0.1, clipNorm: 1e6 }).step(b, g);
    expect(Math.abs(r1.gradNorm - norm)).toBeLessThan(1e-12);
    expect(r2.gradNorm).toBe(r1.gradNorm);
    for (const p of PATHS) expect(b[p].data).toEqual(a[p].data);
    // The gradient arrays are not modified by a clipped step.
    const gc = clone(g);
    const r3 = new optim.SGD({ lr: 0.1, clipNorm: 0.1 }).step(clone(a), g);
    expect(r3.gradNorm).toBe(r1.gradNorm);
    for (const p of PATHS) expect(g[p].data).toEqual(gc[p].data);
  });

  test('the native norm of a large gradient is exact in double and independent of the split', () => {
    const o = rawBinding().createOptimizer('sgd', {}, 'float64');
    const n = 100003;
    const g = Float64Array.from({ length: n }, (_, i) => Math.sin(i));
    let s = 0;
    for (const x of g) s += x * x;
    const norm = o.step([new Float64Array(n)], [g], 0, 0);
    expect(Math.abs(norm - Math.sqrt(s))).toBeLessThan(1e-10);
    expect(o.step([new Float64Array(n)], [g], 0, 0)).toBe(norm);
    o.dispose();
  });
});

describe('schedules', () => {
  test('stepLR, exponentialLR and cosineLR follow their formulas', () => {
    const s = optim.stepLR({ lr: 0.1, stepSize: 3, gamma: 0.5 });
    expect([0, 1, 2, 3, 5, 6, 9].map(s)).toEqual([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]);
    expect(optim.stepLR({ lr: 1, stepSize: 2 })(4)).toBeCloseTo(0.01, 15);
    const e = optim.exponentialLR({ lr: 0.2, gamma: 0.9 });
    expect(e(0)).toBe(0.2);
    expect(e(3)).toBe(0.2 * 0.9 ** 3);
    const c = optim.cosineLR({ lr: 1, tMax: 10, minLr: 0.1 });
    expect(c(0)).toBe(1);
    expect(c(5)).toBeCloseTo(0.55, 15);
    expect(c(10)).toBeCloseTo(0.1, 15);
    expect(c(25)).toBeCloseTo(0.1, 15); // held at minLr after tMax
    expect(c(2)).toBe(0.1 + (0.9 * (1 + Math.cos((Math.PI * 2) / 10))) / 2);
    expect(optim.cosineLR({ lr: 0.5, tMax: 4 })(4)).toBeCloseTo(0, 15);
  });

  test('a schedule drives the optimizer: step t uses lr(t)', () => {
    const sched = optim.exponentialLR({ lr: 0.1, gamma: 0.7 });
    checkAgainstReference(() => new optim.SGD({ lr: sched, momentum: 0.9 }), { kind: 'sgd', momentum: 0.9 }, sched);
    const cos = optim.cosineLR({ lr: 0.02, tMax: 4, minLr: 0.001 });
    checkAgainstReference(() => new optim.Adam({ lr: cos }), { kind: 'adam' }, cos);
    const st = optim.stepLR({ lr: 0.01, stepSize: 2, gamma: 0.1 });
    checkAgainstReference(() => new optim.RMSProp({ lr: st, centered: true }), { kind: 'rmsprop', centered: true }, st);
  });

  test('bad schedule options throw ArgumentError naming the option', () => {
    expect(() => optim.stepLR({ lr: 0.1, stepSize: 0 })).toThrow(ArgumentError);
    expect(() => optim.stepLR({ lr: 0.1, stepSize: 0 })).toThrow(/stepLR: stepSize: expected an integer >= 1; got 0/);
    expect(() => optim.exponentialLR({ lr: -1, gamma: 0.9 })).toThrow(/exponentialLR: lr: expected a finite number >= 0; got -1/);
    expect(() => optim.exponentialLR({ lr: 1 } as never)).toThrow(/exponentialLR: gamma/);
    expect(() => optim.cosineLR({ lr: 1, tMax: 1.5 })).toThrow(/cosineLR: tMax: expected an integer >= 1; got 1.5/);
    expect(() => optim.cosineLR({ lr: 1, tMax: 3, minLr: NaN })).toThrow(/cosineLR: minLr/);
    expect(() => optim.cosineLR({ lr: 1, tMax: 3 })(-1)).toThrow(/step must be an integer >= 0; got -1/);
    // A schedule returning a bad value is caught at the step.
    const opt = new optim.SGD({ lr: () => -0.5 });
    expect(() => opt.step(makeParams(1), makeGrads(1, 1)[0])).toThrow(/SGD: the lr schedule at step 0: expected a finite number >= 0; got -0.5/);
  });
});

describe('state() / loadState()', () => {
  const makers: [string, () => optim.Optimizer][] = [
    ['SGD Nesterov', () => new optim.SGD({ lr: 0.05, momentum: 0.9, nesterov: true })],
    ['SGD plain (no state)', () => new optim.SGD({ lr: 0.05, weightDecay: 0.1 })],
    ['Adam with a schedule and clipping', () => new optim.Adam({ lr: optim.cosineLR({ lr: 0.01, tMax: 5 }), clipNorm: 1 })],
    ['AdamW', () => new optim.AdamW({ lr: 0.01, weightDecay: 0.2 })],
    ['RMSProp centered momentum', () => new optim.RMSProp({ lr: 0.01, centered: true, momentum: 0.9 })],
  ];
  test.each(makers)('%s: 3 steps, save, load into a fresh optimizer, 3 more = 6 steps bit for bit', (_name, make) => {
    const grads = makeGrads(11, 6, 2);
    const a = makeParams(11);
    const optA = make();
    for (const g of grads) optA.step(a, g);

    const b = makeParams(11);
    const optB = make();
    for (const g of grads.slice(0, 3)) optB.step(b, g);
    const saved = JSON.parse(JSON.stringify(optB.state())) as optim.OptimizerState;
    optB.dispose();
    expect(saved.stepCount).toBe(3);
    expect(saved.paths).toEqual(PATHS);
    const optC = make();
    optC.loadState(saved);
    expect(optC.stepCount).toBe(3);
    for (const g of grads.slice(3)) optC.step(b, g);
    expect(optC.stepCount).toBe(6);
    for (const p of PATHS) expect(b[p].data).toEqual(a[p].data);
    // The state itself continues identically.
    expect(optC.state()).toEqual(optA.state());
    optA.dispose();
    optC.dispose();
  });

  test('the snapshot names its parts and is plain data', () => {
    const opt = new optim.Adam({ lr: 0.01, betas: [0.8, 0.9] });
    expect(opt.state()).toEqual({
      kind: 'adam',
      hyper: { lr: 0.01, clipNorm: null, beta1: 0.8, beta2: 0.9, eps: 1e-8, weightDecay: 0 },
      dtype: null,
      stepCount: 0,
      paths: [],
      shapes: [],
      stateNames: [],
      state: {},
    });
    const params = makeParams(2);
    opt.step(params, makeGrads(2, 1)[0]);
    const s = opt.state();
    expect(s.dtype).toBe('float64');
    expect(s.stateNames).toEqual(['m', 'v']);
    expect(s.shapes).toEqual(PATHS.map((p) => SHAPES[p]));
    expect(Array.isArray(s.state['layer.w'].m)).toBe(true);
    expect((s.state['layer.w'].m as number[]).length).toBe(12);
    // Typed arrays are accepted too.
    const t = { ...s, state: { ...s.state, 'ro.w': { m: new Float64Array(8), v: new Float64Array(8) } } };
    const o2 = new optim.Adam({ lr: 0.01 });
    o2.loadState(t);
    expect(o2.state().state['ro.w'].m).toEqual(new Array(8).fill(0));
    opt.dispose();
    o2.dispose();
  });

  test('loadState rejects another kind, layout, paths or shapes', () => {
    const opt = new optim.SGD({ lr: 0.1, momentum: 0.9 });
    opt.step(makeParams(1), makeGrads(1, 1)[0]);
    const s = opt.state();
    expect(() => new optim.Adam().loadState(s)).toThrow(ArgumentError);
    expect(() => new optim.Adam().loadState(s)).toThrow(/loadState: kind: expected 'adam'; got "sgd"/);
    expect(() => new optim.SGD({ lr: 0.1 }).loadState(s)).toThrow(/stateNames: expected \[\] for this SGD/);
    expect(() => new optim.SGD({ lr: 0.1, momentum: 0.5 }).loadState({ ...s, stepCount: -1 })).toThrow(/stepCount: expected an integer >= 0/);
    const bad = { ...s, state: { ...s.state, 'layer.b': { momentum: [1, 2] } } };
    expect(() => new optim.SGD({ lr: 0.1, momentum: 0.5 }).loadState(bad)).toThrow(ShapeError);
    expect(() => new optim.SGD({ lr: 0.1, momentum: 0.5 }).loadState(bad)).toThrow(/state\['layer.b'\].momentum: expected 4 values/);
    const other = new optim.SGD({ lr: 0.1, momentum: 0.9 });
    const p = makeParams(1);
    const q: Record<string, HostTensor> = { x: p['layer.b'] };
    other.step(q, { x: makeGrads(1, 1)[0]['layer.b'] });
    expect(() => other.loadState(s)).toThrow(/paths: expected \[x\]/);
    opt.dispose();
    other.dispose();
  });
});

describe('float32', () => {
  test('Adam, RMSProp and SGD on float32 parameters track the float64 reference', () => {
    for (const [make, ref, lr] of [
      [() => new optim.Adam({ lr: 0.01, weightDecay: 0.1, clipNorm: 1 }), { kind: 'adam', weightDecay: 0.1, clipNorm: 1 }, 0.01],
      [() => new optim.RMSProp({ lr: 0.01, centered: true, momentum: 0.9 }), { kind: 'rmsprop', centered: true, momentum: 0.9 }, 0.01],
      [() => new optim.SGD({ lr: 0.1, momentum: 0.9, nesterov: true }), { kind: 'sgd', momentum: 0.9, nesterov: true }, 0.1],
    ] as [() => optim.Optimizer, RefHyper, number][]) {
      const p64 = makeParams(5);
      const grads = makeGrads(5, 5);
      const p32: Record<string, HostTensor> = {};
      for (const p of PATHS) p32[p] = { data: Float32Array.from(p64[p].data), shape: SHAPES[p].slice(), dtype: 'float32' };
      // The reference starts from the float32-rounded values with float32-rounded gradients.
      const refParams = PATHS.map((p) => Float64Array.from(p32[p].data));
      const g32 = grads.map((g) => {
        const o: Record<string, HostTensor> = {};
        for (const p of PATHS) o[p] = { data: Float32Array.from(g[p].data), shape: SHAPES[p].slice(), dtype: 'float32' };
        return o;
      });
      reference(ref, refParams, g32.map((g) => PATHS.map((p) => Float64Array.from(g[p].data))), [lr, lr, lr, lr, lr]);
      const opt = make();
      for (const g of g32) opt.step(p32, g);
      expect(opt.state().dtype).toBe('float32');
      for (const [i, p] of PATHS.entries()) {
        expect(p32[p].data).toBeInstanceOf(Float32Array);
        expectClose(p32[p].data, refParams[i], 2e-5);
      }
      opt.dispose();
    }
  });
});

describe('native state memory', () => {
  test('state buffers are counted in memoryStats and freed by dispose', () => {
    const binding = loadBinding();
    const before = binding.memoryStats().liveBytes;
    const opt = new optim.Adam({ lr: 0.01 });
    const params = makeParams(1);
    opt.step(params, makeGrads(1, 1)[0]);
    const numel = PATHS.reduce((s, p) => s + params[p].data.length, 0);
    expect(binding.memoryStats().liveBytes - before).toBeGreaterThanOrEqual(2 * numel * 8);
    opt.dispose();
    expect(binding.memoryStats().liveBytes).toBe(before);
    opt.dispose(); // idempotent
    expect(() => opt.step(params, makeGrads(1, 1)[0])).toThrow(/Adam.step: the optimizer has been disposed/);
  });
});

describe('typed errors', () => {
  test('bad options name the option, the expected and the actual value', () => {
    expect(() => new optim.SGD({} as never)).toThrow(ArgumentError);
    expect(() => new optim.SGD({} as never)).toThrow(/SGD: lr: .*got undefined/);
    expect(() => new optim.SGD({ lr: -0.1 })).toThrow(/SGD: lr: expected a finite number >= 0; got -0.1/);
    expect(() => new optim.SGD({ lr: 0.1, momentum: -1 })).toThrow(/SGD: momentum: expected a finite number >= 0; got -1/);
    expect(() => new optim.SGD({ lr: 0.1, nesterov: true })).toThrow(/SGD: nesterov: expected momentum > 0 and dampening 0/);
    expect(() => new optim.SGD({ lr: 0.1, nesterov: 'yes' as never })).toThrow(/SGD: nesterov: expected a boolean; got "yes"/);
    expect(() => new optim.SGD({ lr: 0.1, dampening: 2 })).toThrow(/SGD: dampening: expected a number in \[0, 1\]; got 2/);
    expect(() => new optim.Adam({ betas: [1, 0.9] })).toThrow(/Adam: betas\[0\]: expected a number in \[0, 1\); got 1/);
    expect(() => new optim.Adam({ betas: [0.9] as never })).toThrow(/Adam: betas: expected \[beta1, beta2\]/);
    expect(() => new optim.AdamW({ weightDecay: NaN })).toThrow(/AdamW: weightDecay: expected a finite number >= 0; got NaN/);
    expect(() => new optim.Adam({ eps: -1 })).toThrow(/Adam: eps/);
    expect(() => new optim.Adam({ lr: 'fast' as never })).toThrow(/Adam: lr: expected a finite number >= 0 or a schedule/);
    expect(() => new optim.Adam({ clipNorm: 0 })).toThrow(/Adam: clipNorm: expected a finite number > 0/);
    expect(() => new optim.Adam({ beta1: 0.9 } as never)).toThrow(/Adam: unknown option 'beta1'; expected one of lr, betas/);
    expect(() => new optim.RMSProp({ alpha: 1.5 })).toThrow(/RMSProp: alpha: expected a number in \[0, 1\]; got 1.5/);
    expect(() => new optim.RMSProp({ centered: 1 as never })).toThrow(/RMSProp: centered: expected a boolean/);
    expect(() => new optim.RMSProp(null as never)).toThrow(/RMSProp: expected an options object/);
  });

  test('mismatched paths, shapes and dtypes', () => {
    const opt = new optim.Adam({ lr: 0.01 });
    const params = makeParams(1);
    const grads = makeGrads(1, 1)[0];
    const { 'ro.w': _drop, ...fewer } = grads;
    expect(() => opt.step(params, fewer)).toThrow(ArgumentError);
    expect(() => opt.step(params, fewer)).toThrow(/Adam.step: grads must have the paths of params .*missing \[ro.w\]/);
    expect(() => opt.step(params, { ...grads, extra: grads['ro.w'] })).toThrow(/unexpected \[extra\]/);
    const wrong = { ...grads, 'layer.b': { data: new Float64Array(5), shape: [5], dtype: 'float64' as const } };
    expect(() => opt.step(params, wrong)).toThrow(ShapeError);
    expect(() => opt.step(params, wrong)).toThrow(/grads\['layer.b'\]: expected shape \(4,\); got \(5,\)/);
    const f32 = { ...grads, 'layer.b': { data: new Float32Array(4), shape: [4], dtype: 'float32' as const } };
    expect(() => opt.step(params, f32)).toThrow(DTypeError);
    expect(() => opt.step(params, f32)).toThrow(/grads\['layer.b'\]: expected dtype 'float64'; got 'float32'/);
    const lying = { ...grads, 'layer.b': { data: new Float64Array(3), shape: [4], dtype: 'float64' as const } };
    expect(() => opt.step(params, lying)).toThrow(/grads\['layer.b'\]: shape \(4,\) needs 4 values; data has 3/);
    expect(() => opt.step(params, { ...grads, 'layer.b': [1, 2, 3, 4] as never })).toThrow(/grads\['layer.b'\]: expected a host tensor/);
    expect(() => opt.step(null as never, grads)).toThrow(/Adam.step: params: expected a record/);
    expect(opt.stepCount).toBe(0); // nothing happened
    // The first step binds paths and shapes.
    opt.step(params, grads);
    const { 'ro.w': _p, ...fewerParams } = params;
    expect(() => opt.step(fewerParams, fewer)).toThrow(/params must have the paths bound at the first step .*\(missing ro.w\)/);
    const reshaped = { ...params, 'ro.w': { data: params['ro.w'].data, shape: [2, 4], dtype: 'float64' as const } };
    const regrads = { ...grads, 'ro.w': { data: grads['ro.w'].data, shape: [2, 4], dtype: 'float64' as const } };
    expect(() => opt.step(reshaped, regrads)).toThrow(ShapeError);
    expect(() => opt.step(reshaped, regrads)).toThrow(/params\['ro.w'\]: expected shape \(4, 2\) \(bound at the first step\); got \(2, 4\)/);
    expect(opt.stepCount).toBe(1);
    opt.dispose();
  });

  test('the binding checks its arguments too (TypeError / RangeError naming them)', () => {
    const binding = rawBinding();
    expectThrowNamed(() => binding.createOptimizer('adagrad' as never, {}, 'float64'), 'RangeError', /kind must be 'sgd', 'adam', 'adamw' or 'rmsprop'/);
    expectThrowNamed(() => binding.createOptimizer('adam', { beta2: 1 }, 'float64'), 'RangeError', /hyper.beta2 must be a number in \[0, 1\) \(got 1\)/);
    expectThrowNamed(() => binding.createOptimizer('adam', { eps: 'x' } as never, 'float64'), 'TypeError', /hyper.eps must be a number/);
    expectThrowNamed(() => binding.createOptimizer('adam', { lr: 1 } as never, 'float64'), 'TypeError', /hyper.lr is not a hyper-parameter/);
    expectThrowNamed(() => binding.createOptimizer('adam', {}, 'int8' as never), 'RangeError', /dtype must be 'float32' or 'float64'/);
    const o = binding.createOptimizer('rmsprop', { momentum: 0.5, centered: true }, 'float64');
    expect(Array.from(o.stateNames)).toEqual(['squareAvg', 'momentum', 'gradAvg']);
    expect(o.kind).toBe('rmsprop');
    expect(o.dtype).toBe('float64');
    const p = new Float64Array(3);
    const g = new Float64Array([1, 2, 3]);
    expectThrowNamed(() => o.step([p], [new Float32Array(3)], 0.1, 0), 'TypeError', /grads\[0\] must be a Float64Array of length 3 \(got Float32Array of length 3\)/);
    expectThrowNamed(() => o.step([p], [new Float64Array(2)], 0.1, 0), 'RangeError', /grads\[0\] must be a Float64Array of length 3/);
    expectThrowNamed(() => o.step([p], [g], -1, 0), 'RangeError', /lr must be a finite number >= 0/);
    expectThrowNamed(() => o.step([p], [g], 0.1, NaN), 'RangeError', /maxNorm must be a finite number >= 0/);
    expectThrowNamed(() => o.step(p as never, [g], 0.1, 0), 'TypeError', /params must be an Array of Float64Array/);
    expect(o.stepCount).toBe(0);
    expect(o.stateBuffers().length).toBe(0);
    o.step([p], [g], 0.1, 0);
    expect(o.stepCount).toBe(1);
    expectThrowNamed(() => o.step([new Float64Array(4)], [new Float64Array(4)], 0.1, 0), 'RangeError', /params\[0\] must be a Float64Array of length 3 \(got Float64Array of length 4\)/);
    expectThrowNamed(() => o.step([p, p], [g, g], 0.1, 0), 'RangeError', /params must be an Array of length 1/);
    const bufs = o.stateBuffers();
    expect(bufs.length).toBe(3);
    expectThrowNamed(() => o.setStateBuffers(bufs.slice(0, 2)), 'RangeError', /list must be an Array of length 3/);
    expectThrowNamed(() => o.setStateBuffers([bufs[0], bufs[1], new Float64Array(1)]), 'RangeError', /list\[2\] must be a Float64Array of length 3/);
    expectThrowNamed(() => (o.stepCount = 1.5), 'RangeError', /stepCount must be an integer/);
    o.stepCount = 7;
    expect(o.stepCount).toBe(7);
    o.setStateBuffers(bufs);
    expect(Array.from(o.stateBuffers()[2])).toEqual(Array.from(bufs[2]));
    o.dispose();
    expect(o.disposed).toBe(true);
    o.dispose();
    let code: unknown;
    try {
      o.step([p], [g], 0.1, 0);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe('ERR_BRAINTRACE_DISPOSED');
    // A fresh optimizer takes its sizes from setStateBuffers (a checkpoint loaded before any step).
    const f = binding.createOptimizer('adam', {}, 'float32');
    expectThrowNamed(() => f.setStateBuffers([new Float32Array(2)]), 'Error', /list must hold 2 buffers per parameter/);
    f.setStateBuffers([new Float32Array(2), new Float32Array(2)]);
    expectThrowNamed(() => f.step([new Float32Array(3)], [new Float32Array(3)], 0.1), 'RangeError', /params\[0\] must be a Float32Array of length 2/);
    f.dispose();
  });
});

// ------------------------------------------------------------------------- end to end

/** Leaky integrator h = 0.5 h + x W with a linear readout. */
class Leaky extends bt.Module {
  w = new bt.ParamState(bt.init.normal({ std: 0.5 }), [3, 4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 1]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w.value));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

describe('end to end: D_RTRL + etraceGrad + applyGradients(Adam)', () => {
  test('30 iterations lower the loss of a leaky-integrator regression', async () => {
    const T = 20;
    const B = 4;
    const rand = prng(42);
    const xs = Float64Array.from({ length: T * B * 3 }, () => 2 * rand() - 1);
    // Target: a fixed leaky filter of the first input channel.
    const ys = new Float64Array(T * B);
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let t = 0; t < T; t++) {
        s = 0.5 * s + xs[(t * B + b) * 3];
        ys[t * B + b] = 0.8 * s;
      }
    }
    const xt = bt.tensor(xs, [T, B, 3], 'float64');
    const yt = bt.tensor(ys, [T, B, 1], 'float64');
    const learner = bt.compile(new Leaky(), bt.D_RTRL, { inputShape: [3], batchSize: B, dtype: 'float64', seed: 1 });
    const opt = new optim.Adam({ lr: 0.05, clipNorm: 10 });
    const losses: number[] = [];
    for (let it = 0; it < 30; it++) {
      learner.resetState();
      const { grads, losses: l } = await learner.etraceGrad(xt, yt, { reduction: 'mean' });
      losses.push(Array.from(l).reduce((a, b) => a + b, 0) / T);
      const before = learner.params();
      const r = learner.applyGradients(grads, opt);
      expect(r.lr).toBe(0.05);
      expect(r.gradNorm).toBeGreaterThan(0);
      // The weights moved, and the sessions see them (the next loss differs).
      expect(learner.params().w.data).not.toEqual(before.w.data);
    }
    expect(opt.stepCount).toBe(30);
    // (2.9 -> 0.025 here: Adam's overshoot around iteration 17 is damped out by 30.)
    expect(losses[29]).toBeLessThan(0.1 * losses[0]);
    // Typed errors reach through the learner.
    expect(() => learner.applyGradients({ w: learner.params().w }, opt)).toThrow(/missing \[ro\]/);
    expect(() => learner.applyGradients({}, null as never)).toThrow(/applyGradients: optimizer must be a bt.optim optimizer/);
    opt.dispose();
    learner.dispose();
    expect(() => learner.applyGradients({}, opt)).toThrow(/applyGradients: the learner has been disposed/);
  });
});
