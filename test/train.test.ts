/**
 * Training loops and checkpoints (lib/train): fit (sequence / step / k updates,
 * progress, abort, a free event loop), streamStep (constant native memory,
 * weights change per observation), and checkpoints (bit-for-bit resume for
 * D_RTRL, pp_prop and BPTT; typed errors for damaged or mismatched files;
 * atomic writes).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import * as optim from '../lib/optim/index';
import { loadBinding } from '../lib/runtime/native';
import {
  CheckpointError,
  fit,
  loadCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  streamStep,
  type OptimizerLike,
} from '../lib/train/index';
import { DiagRNN } from './helpers/models';
import { prng } from './helpers/native';

// ------------------------------------------------------------------ models and data

/** Leaky integrator with trainable input weights, bias, element-wise decay and readout. */
class Leaky extends bt.Module {
  w: bt.ParamState;
  b: bt.ParamState;
  wd: bt.ParamState;
  ro: bt.ParamState;
  h: bt.HiddenState;
  constructor(inputs = 2, hidden = 4, outputs = 1) {
    super();
    this.w = new bt.ParamState(bt.init.normal({ std: 0.5 }), [inputs, hidden]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.1 }), [hidden]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: 0.3, high: 0.8 }), [hidden]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, outputs]);
    this.h = new bt.HiddenState([hidden]);
  }
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}


/** DiagRNN with its input weight under another name. */
class Renamed extends bt.Module {
  win = new bt.ParamState(bt.init.xavierNormal(), [2, 4]);
  b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [4]);
  wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 1]);
  h = new bt.HiddenState([4]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.win, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const B = 3;

function rand(shape: number[], rnd: () => number, scale = 1): bt.HostTensor {
  return { data: Float64Array.from({ length: bt.numel(shape) }, () => scale * (2 * rnd() - 1)), shape, dtype: 'float64' };
}

/** Leaky-integrator regression: y_t = 0.8 y_{t-1} + 0.5 (x_t[0] - x_t[1]). */
function regression(T: number, seed: number, batch = B): { xs: bt.HostTensor; ys: bt.HostTensor } {
  const rnd = prng(seed);
  const xs = rand([T, batch, 2], rnd);
  const ys: bt.HostTensor = { data: new Float64Array(T * batch), shape: [T, batch, 1], dtype: 'float64' };
  for (let b = 0; b < batch; b++) {
    let y = 0;
    for (let t = 0; t < T; t++) {
      y = 0.8 * y + 0.5 * (xs.data[(t * batch + b) * 2] - xs.data[(t * batch + b) * 2 + 1]);
      ys.data[t * batch + b] = y;
    }
  }
  return { xs, ys };
}

function slice(t: bt.HostTensor, t0: number, t1: number): bt.HostTensor {
  const s = bt.numel(t.shape.slice(1));
  return { data: t.data.slice(t0 * s, t1 * s), shape: [t1 - t0, ...t.shape.slice(1)], dtype: t.dtype };
}

/** SGD with momentum implementing the optimizer interface (its state matters for resuming). */
class MomentumSGD implements OptimizerLike {
  private velocity: Record<string, Float64Array> = {};
  private steps = 0;
  constructor(
    private readonly lr = 0.05,
    private readonly momentum = 0.9,
  ) {}
  get stepCount(): number {
    return this.steps;
  }
  currentLr(): number {
    return this.lr / (1 + 0.01 * this.steps);
  }
  step(params: Record<string, bt.HostTensor>, grads: Record<string, bt.HostTensor>): { lr: number; gradNorm: number } {
    const lr = this.currentLr();
    let sq = 0;
    for (const k of Object.keys(grads)) for (const g of grads[k].data) sq += g * g;
    for (const k of Object.keys(params)) {
      const p = params[k].data;
      const g = grads[k].data;
      const v = (this.velocity[k] ??= new Float64Array(p.length));
      for (let i = 0; i < p.length; i++) {
        v[i] = this.momentum * v[i] + g[i];
        p[i] -= lr * v[i];
      }
    }
    this.steps++;
    return { lr, gradNorm: Math.sqrt(sq) };
  }
  state(): unknown {
    return { kind: 'momentum-sgd', lr: this.lr, momentum: this.momentum, stepCount: this.steps, velocity: this.velocity };
  }
  loadState(s: unknown): void {
    const st = s as { kind: string; stepCount: number; velocity: Record<string, Float64Array> };
    if (st.kind !== 'momentum-sgd') throw new Error(`wrong optimizer state ${st.kind}`);
    this.steps = st.stepCount;
    this.velocity = {};
    for (const [k, v] of Object.entries(st.velocity)) this.velocity[k] = Float64Array.from(v);
  }
  dispose(): void {}
}

type Algo = 'D_RTRL' | 'pp_prop' | 'BPTT';

// Compile-time check: lib/optim's optimizers fit the structural type the training loops take.
const asOptimizerLike = (o: optim.Optimizer): OptimizerLike => o;


function make(algo: Algo, seed = 3, model: () => bt.Module = () => new DiagRNN(), extra: Record<string, unknown> = {}): bt.Learner {
  const opts = { inputShape: [2], batchSize: B, dtype: 'float64' as const, seed, ...extra };
  if (algo === 'D_RTRL') return bt.compile(model(), bt.D_RTRL, opts);
  if (algo === 'pp_prop') return bt.compile(model(), bt.pp_prop, { decayOrRank: 0.6, ...opts });
  return bt.compile(model(), bt.BPTT, opts);
}

function snapshot(l: bt.Learner): Record<string, unknown> {
  const arr = (r: Record<string, bt.HostTensor>) =>
    Object.fromEntries(Object.entries(r).map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.data) }]));
  const out: Record<string, unknown> = { params: arr(l.params()), states: arr(l.states()) };
  if (l instanceof bt.OnlineLearner) {
    out.traces = arr(l.traces());
    out.traceSteps = l.traceSteps();
  }
  return out;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-train-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function leftovers(): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));
}

// ------------------------------------------------------------------ checkpoints: resume

describe('checkpoint resume is bit-for-bit', () => {
  test.each<Algo>(['D_RTRL', 'pp_prop', 'BPTT'])('%s, 6 step updates = 3 + save/load into a fresh learner + 3', async (algo) => {
    const { xs, ys } = regression(6, 7);
    // Uninterrupted.
    const a = make(algo);
    const optA = new MomentumSGD();
    const ra = await fit(a, [{ xs, ys }], { optimizer: optA, updateEvery: 'step' });
    expect(ra.updates).toBe(6);
    // Interrupted: 3 updates, save, fresh learner (other seed) and optimizer, restore, 3 more.
    const b = make(algo);
    const optB = new MomentumSGD();
    await fit(b, [{ xs: slice(xs, 0, 3), ys: slice(ys, 0, 3) }], { optimizer: optB, updateEvery: 'step' });
    const file = path.join(dir, `resume-${algo}.btck`);
    await saveCheckpoint(b, file, { optimizer: optB, meta: { note: 'half way', at: 3 } });
    b.dispose();
    const c = make(algo, 99);
    const optC = new MomentumSGD();
    const ck = loadCheckpoint(file);
    expect(ck.algorithm).toBe(algo);
    expect(ck.meta).toEqual({ note: 'half way', at: 3 });
    expect(snapshot(c)).not.toEqual(snapshot(a));
    restoreCheckpoint(c, ck, { optimizer: optC });
    expect(optC.stepCount).toBe(3);
    await fit(c, [{ xs: slice(xs, 3, 6), ys: slice(ys, 3, 6) }], { optimizer: optC, updateEvery: 'step', resetState: false });
    expect(snapshot(c)).toEqual(snapshot(a));
    expect(optC.state()).toEqual(optA.state());
    // The async reader decodes the same.
    const ck2 = await readCheckpoint(file);
    expect(ck2.params).toEqual(ck.params);
    a.dispose();
    c.dispose();
  });

  test.each<Algo>(['D_RTRL', 'pp_prop'])('%s: negative controls (without traces or optimizer state the runs differ)', async (algo) => {
    const { xs, ys } = regression(6, 7);
    const a = make(algo);
    await fit(a, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step' });
    const b = make(algo);
    const optB = new MomentumSGD();
    await fit(b, [{ xs: slice(xs, 0, 3), ys: slice(ys, 0, 3) }], { optimizer: optB, updateEvery: 'step' });
    const file = path.join(dir, `control-${algo}.btck`);
    await saveCheckpoint(b, file, { optimizer: optB });
    const ck = loadCheckpoint(file);
    const rest = { xs: slice(xs, 3, 6), ys: slice(ys, 3, 6) };
    // Without the traces.
    const c = make(algo, 99);
    const optC = new MomentumSGD();
    optC.loadState(ck.optimizer);
    c.setParams(ck.params);
    c.setStates(ck.states);
    await fit(c, [rest], { optimizer: optC, updateEvery: 'step', resetState: false });
    expect(snapshot(c).params).not.toEqual(snapshot(a).params);
    // Without the optimizer state.
    const d = make(algo, 99);
    restoreCheckpoint(d, ck);
    await fit(d, [rest], { optimizer: new MomentumSGD(), updateEvery: 'step', resetState: false });
    expect(snapshot(d).params).not.toEqual(snapshot(a).params);
    for (const l of [a, b, c, d]) l.dispose();
  });

  test('a checkpoint taken from onProgress in the middle of fit resumes exactly', async () => {
    const { xs, ys } = regression(8, 17);
    const a = make('D_RTRL');
    const optA = new MomentumSGD();
    const file = path.join(dir, 'midfit.btck');
    await fit(a, [{ xs, ys }], {
      optimizer: optA,
      updateEvery: 2,
      onProgress: async (p) => {
        if (p.step === 2) await saveCheckpoint(a, file, { optimizer: optA, meta: { t: p.t } });
      },
    });
    const ck = loadCheckpoint(file);
    expect(ck.meta).toEqual({ t: 4 });
    const c = make('D_RTRL', 42);
    const optC = new MomentumSGD();
    restoreCheckpoint(c, ck, { optimizer: optC });
    await fit(c, [{ xs: slice(xs, 4, 8), ys: slice(ys, 4, 8) }], { optimizer: optC, updateEvery: 2, resetState: false });
    expect(snapshot(c)).toEqual(snapshot(a));
    a.dispose();
    c.dispose();
  });

  test.each(['D_RTRL', 'pp_prop', 'BPTT'] as Algo[])(
    '%s with lib/optim Adam (clipNorm) and SGD (Nesterov): resume is bit-for-bit',
    async (algo: Algo) => {
      const makers = [
        () => new optim.Adam({ lr: 0.01, clipNorm: 1 }),
        () => new optim.SGD({ lr: 0.05, momentum: 0.9, nesterov: true }),
      ];
      for (const mk of makers) {
        const { xs, ys } = regression(6, 27);
        const a = make(algo);
        const optA = mk();
        await fit(a, [{ xs, ys }], { optimizer: asOptimizerLike(optA), updateEvery: 'step' });
        const b = make(algo);
        const optB = mk();
        await fit(b, [{ xs: slice(xs, 0, 3), ys: slice(ys, 0, 3) }], { optimizer: optB, updateEvery: 'step' });
        const file = path.join(dir, `optim-${algo}.btck`);
        await saveCheckpoint(b, file, { optimizer: optB });
        const c = make(algo, 99);
        const optC = mk();
        restoreCheckpoint(c, loadCheckpoint(file), { optimizer: optC });
        await fit(c, [{ xs: slice(xs, 3, 6), ys: slice(ys, 3, 6) }], { optimizer: optC, updateEvery: 'step', resetState: false });
        expect(snapshot(c)).toEqual(snapshot(a));
        expect(optC.state()).toEqual(optA.state());
        for (const o of [optA, optB, optC]) o.dispose();
        for (const l of [a, b, c]) l.dispose();
      }
    },
  );

  test('with and without learner.applyGradients (params/step/setParams fallback) the results are identical', async () => {
    const { xs, ys } = regression(5, 37);
    const a = make('D_RTRL');
    const b = make('D_RTRL');
    (b as unknown as { applyGradients?: unknown }).applyGradients = undefined;
    await fit(a, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step' });
    await fit(b, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step' });
    expect(snapshot(a)).toEqual(snapshot(b));
    a.dispose();
    b.dispose();
  });

  test('optimizer state with numbers JSON cannot hold, nested typed arrays and $-keys round-trips', async () => {
    const l = make('D_RTRL');
    const state = {
      kind: 'weird',
      a: NaN,
      b: -Infinity,
      c: -0,
      big: 12345678901234567890n,
      $tricky: { $array: 'not an array ref' },
      nested: [new Float32Array([1.5, -2]), new Int32Array([7, -8, 9]), { u8: new Uint8Array([1, 2, 3]) }],
    };
    const opt: OptimizerLike = {
      step: () => ({ lr: 0, gradNorm: 0 }),
      stepCount: 0,
      currentLr: () => 0,
      state: () => state,
      loadState: () => undefined,
      dispose: () => undefined,
    };
    const file = path.join(dir, 'weird.btck');
    await saveCheckpoint(l, file, { optimizer: opt });
    const ck = loadCheckpoint(file);
    expect(ck.optimizer).toEqual(state);
    expect(Object.is((ck.optimizer as { c: number }).c, -0)).toBe(true);
    l.dispose();
  });
});

// ------------------------------------------------------------------ checkpoints: damage and mismatch

describe('checkpoint errors', () => {
  let file: string;
  let good: Buffer;
  beforeAll(async () => {
    const l = make('D_RTRL');
    file = path.join(dir, 'good.btck');
    await saveCheckpoint(l, file, { optimizer: new MomentumSGD() });
    good = fs.readFileSync(file);
    l.dispose();
  });

  function expectReason(bytes: Buffer, reason: string, name: string): CheckpointError {
    const f = path.join(dir, name);
    fs.writeFileSync(f, bytes);
    let err: unknown;
    try {
      loadCheckpoint(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err).toBeInstanceOf(bt.BraintraceError);
    const ce = err as CheckpointError;
    expect(ce.reason).toBe(reason);
    expect(ce.message).toContain(f);
    expect(ce.file).toBe(f);
    return ce;
  }

  test('layout: magic, version, 8-aligned header, checksum', () => {
    expect(good.subarray(0, 4).toString('latin1')).toBe('BTCK');
    expect(good.readUInt32LE(4)).toBe(1);
    const H = Number(good.readBigUInt64LE(8));
    const P = Number(good.readBigUInt64LE(16));
    expect(H % 8).toBe(0);
    expect(good.length).toBe(24 + H + P + 32);
    const header = JSON.parse(good.subarray(24, 24 + H).toString('utf8'));
    expect(header.algorithm).toBe('D_RTRL');
    expect(header.params.map((p: { name: string }) => p.name).sort()).toEqual(['b', 'ro', 'w', 'wd']);
  });

  test('a flipped payload byte or header byte: checksum-mismatch', () => {
    const H = Number(good.readBigUInt64LE(8));
    const p = Buffer.from(good);
    p[24 + H + 17] ^= 0x40;
    expectReason(p, 'checksum-mismatch', 'flip-payload.btck');
    const h = Buffer.from(good);
    h[30] ^= 0x01;
    expectReason(h, 'checksum-mismatch', 'flip-header.btck');
    const d = Buffer.from(good);
    d[d.length - 1] ^= 0xff;
    expectReason(d, 'checksum-mismatch', 'flip-digest.btck');
  });

  test('truncated anywhere: truncated', () => {
    for (const n of [0, 3, 6, 20, 100, good.length >> 1, good.length - 1]) {
      expectReason(good.subarray(0, n), 'truncated', `trunc-${n}.btck`);
    }
  });

  test('wrong magic or another file: not-a-checkpoint', () => {
    const m = Buffer.from(good);
    m.write('BTCX', 0, 'latin1');
    expectReason(m, 'not-a-checkpoint', 'magic.btck');
    expectReason(Buffer.from('{"hello": "world"}\n'), 'not-a-checkpoint', 'json.btck');
    expectReason(Buffer.from('ab'), 'not-a-checkpoint', 'short.btck');
  });

  test('a bumped version: unsupported-version', () => {
    const v = Buffer.from(good);
    // Version 2 is the authenticated format (issue 8); 3 is the first unknown one.
    v.writeUInt32LE(3, 4);
    const e = expectReason(v, 'unsupported-version', 'version.btck');
    expect(e.message).toMatch(/version 3 .*reads version 1/);
  });

  test('trailing bytes, bad JSON or out-of-range arrays with a valid checksum: corrupt', () => {
    expectReason(Buffer.concat([good, Buffer.from([0])]), 'corrupt', 'trailing.btck');
    const { createHash } = require('crypto') as typeof import('crypto');
    const reseal = (b: Buffer): Buffer => {
      const end = b.length - 32;
      createHash('sha256').update(b.subarray(0, end)).digest().copy(b, end);
      return b;
    };
    const j = Buffer.from(good);
    j[24] = 0x5b; // '[' instead of '{'
    j[25] = 0x5b;
    expectReason(reseal(j), 'corrupt', 'badjson.btck');
    // A well-formed file (lengths, checksum) whose header points outside the payload.
    const H = Number(good.readBigUInt64LE(8));
    const payload = good.subarray(24 + H, good.length - 32);
    const header = JSON.parse(good.subarray(24, 24 + H).toString('utf8'));
    header.params[0].offset = payload.length + 64;
    let text = Buffer.from(JSON.stringify(header));
    text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
    const pre = Buffer.alloc(24);
    good.copy(pre, 0, 0, 8);
    pre.writeBigUInt64LE(BigInt(text.length), 8);
    pre.writeBigUInt64LE(BigInt(payload.length), 16);
    const o = reseal(Buffer.concat([pre, text, payload, Buffer.alloc(32)]));
    const e = expectReason(o, 'corrupt', 'offset.btck');
    expect(e.message).toMatch(/outside the payload/);
    // Unknown algorithm.
    header.params[0].offset = 0;
    header.algorithm = 'SGD';
    text = Buffer.from(JSON.stringify(header));
    text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
    pre.writeBigUInt64LE(BigInt(text.length), 8);
    expectReason(reseal(Buffer.concat([pre, text, payload, Buffer.alloc(32)])), 'corrupt', 'algo.btck');
  });

  test('restoring into another hidden size, dtype, algorithm or decay: mismatch naming the field', () => {
    const ck = loadCheckpoint(file);
    const tryRestore = (l: bt.Learner): CheckpointError => {
      const before = snapshot(l);
      let err: unknown;
      try {
        restoreCheckpoint(l, ck);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).reason).toBe('mismatch');
      expect((err as CheckpointError).message).toContain(file);
      expect(snapshot(l)).toEqual(before); // nothing changed
      l.dispose();
      return err as CheckpointError;
    };
    const hidden = tryRestore(make('D_RTRL', 3, () => new Leaky(2, 8, 1)));
    expect(hidden.field).toMatch(/^params\.\w+\.shape$/);
    expect(hidden.message).toMatch(/\(8,\)|\(2, 8\)|\(8, 1\)/);
    const dtype = tryRestore(bt.compile(new DiagRNN(), bt.D_RTRL, { inputShape: [2], batchSize: B, dtype: 'float32', seed: 3 }));
    expect(dtype.field).toBe('dtype');
    expect(dtype.expected).toBe('float32');
    expect(dtype.actual).toBe('float64');
    expect(tryRestore(make('pp_prop')).field).toBe('algorithm');
    expect(tryRestore(bt.compile(new DiagRNN(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 3 })).field).toBe(
      'batchSize',
    );
    expect(tryRestore(make('D_RTRL', 3, () => new Renamed())).field).toBe('params');
  });

  test('pp_prop decay is checked', async () => {
    const l = make('pp_prop');
    const f = path.join(dir, 'pp.btck');
    await saveCheckpoint(l, f);
    l.dispose();
    const other = bt.compile(new DiagRNN(), bt.pp_prop, { inputShape: [2], batchSize: B, dtype: 'float64', decayOrRank: 0.5 });
    expect(() => restoreCheckpoint(other, loadCheckpoint(f))).toThrow(expect.objectContaining({ reason: 'mismatch', field: 'decay' }));
    // A checkpoint saved without an optimizer cannot fill one.
    const same = make('pp_prop');
    expect(() => restoreCheckpoint(same, loadCheckpoint(f), { optimizer: new MomentumSGD() })).toThrow(
      expect.objectContaining({ reason: 'mismatch', field: 'optimizer' }),
    );
    restoreCheckpoint(same, loadCheckpoint(f));
    other.dispose();
    same.dispose();
  });
});

// ------------------------------------------------------------------ checkpoints: atomicity

describe('atomic writes', () => {
  test('a crash before the rename leaves the old checkpoint intact; no temp files remain', async () => {
    const l = make('D_RTRL');
    const opt = new MomentumSGD();
    const file = path.join(dir, 'atomic.btck');
    await saveCheckpoint(l, file, { optimizer: opt, meta: 'old' });
    expect(leftovers()).toEqual([]);
    const old = fs.readFileSync(file);
    const { xs, ys } = regression(4, 1);
    await fit(l, [{ xs, ys }], { optimizer: opt, updateEvery: 'step' });
    let seenTmp = '';
    await expect(
      saveCheckpoint(l, file, {
        optimizer: opt,
        meta: 'new',
        hooks: {
          beforeRename: (tmp) => {
            seenTmp = tmp;
            // The new file is complete and synced, next to the target; the target is still the old one.
            expect(path.dirname(tmp)).toBe(dir);
            expect(path.basename(tmp)).toMatch(new RegExp(`^atomic\\.btck\\.tmp-${process.pid}-[0-9a-f]+$`));
            expect(loadCheckpoint(tmp).meta).toBe('new');
            expect(loadCheckpoint(file).meta).toBe('old');
            throw new Error('simulated crash');
          },
        },
      }),
    ).rejects.toThrow('simulated crash');
    expect(seenTmp).not.toBe('');
    expect(fs.readFileSync(file).equals(old)).toBe(true);
    expect(loadCheckpoint(file).meta).toBe('old');
    expect(leftovers()).toEqual([]);
    // A write that fails outright (missing directory) leaves nothing either.
    await expect(saveCheckpoint(l, path.join(dir, 'missing', 'x.btck'))).rejects.toThrow(/ENOENT/);
    // A successful overwrite replaces it and leaves no temp file.
    await saveCheckpoint(l, file, { optimizer: opt, meta: 'new' });
    expect(loadCheckpoint(file).meta).toBe('new');
    expect(leftovers()).toEqual([]);
    l.dispose();
  });
});

// ------------------------------------------------------------------ fit

describe('fit', () => {
  test("D_RTRL in 'step' mode learns a leaky-integrator regression; onProgress is called per update", async () => {
    const l = make('D_RTRL', 1, () => new Leaky(2, 8, 1));
    const data = [regression(40, 11), regression(40, 12), regression(40, 13)];
    const seen: { epoch: number; batch: number; step: number; loss: number; lr: number; gradNorm: number }[] = [];
    const r = await fit(l, data, {
      optimizer: new MomentumSGD(0.02, 0.5),
      epochs: 8,
      updateEvery: 'step',
      onProgress: (p) => {
        seen.push(p);
      },
    });
    expect(r.aborted).toBe(false);
    expect(r.epochs).toBe(8);
    expect(r.batches).toBe(24);
    expect(r.updates).toBe(24 * 40);
    expect(r.losses).toHaveLength(24);
    expect(seen).toHaveLength(24 * 40);
    expect(seen[0]).toMatchObject({ epoch: 0, batch: 0, step: 1 });
    expect(seen[seen.length - 1]).toMatchObject({ epoch: 7, batch: 2, step: 960 });
    expect(seen.every((p) => Number.isFinite(p.loss) && p.lr > 0 && p.gradNorm >= 0)).toBe(true);
    const first = (r.losses[0] + r.losses[1] + r.losses[2]) / 3;
    const last = (r.losses[21] + r.losses[22] + r.losses[23]) / 3;
    expect(last).toBeLessThan(0.2 * first);
    l.dispose();
  });

  test("'sequence' and k-step modes: one update per sequence / per chunk; BPTT k is truncated BPTT", async () => {
    const { xs, ys } = regression(10, 2);
    for (const algo of ['D_RTRL', 'pp_prop', 'BPTT'] as Algo[]) {
      const l = make(algo);
      expect((await fit(l, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'sequence' })).updates).toBe(1);
      expect((await fit(l, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 4 })).updates).toBe(3);
      const r = await fit(l, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step', reduction: 'mean', mask: Array(10).fill(1) });
      expect(r.updates).toBe(10);
      l.dispose();
    }
  });

  test("'step' mode equals hand-written etraceGrad(xs[t:t+1]) + optimizer step", async () => {
    const { xs, ys } = regression(5, 3);
    const a = make('pp_prop');
    await fit(a, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step' });
    const b = make('pp_prop');
    const opt = new MomentumSGD();
    for (let t = 0; t < 5; t++) {
      const { grads } = await b.etraceGrad(slice(xs, t, t + 1), slice(ys, t, t + 1), { loss: 'mse' });
      const p = b.params();
      opt.step(p, grads);
      b.setParams(p);
    }
    expect(snapshot(a)).toEqual(snapshot(b));
    a.dispose();
    b.dispose();
  });

  test('AbortSignal stops after the current chunk; the learner stays usable', async () => {
    const l = make('D_RTRL');
    const ac = new AbortController();
    const { xs, ys } = regression(20, 4);
    let calls = 0;
    const r = await fit(l, [{ xs, ys }, { xs, ys }], {
      optimizer: new MomentumSGD(),
      updateEvery: 'step',
      onProgress: () => {
        if (++calls === 7) ac.abort();
      },
      signal: ac.signal,
    });
    expect(r).toMatchObject({ aborted: true, updates: 7, batches: 1, epochs: 0 });
    expect(r.losses).toHaveLength(1);
    // Already aborted: nothing is done.
    expect(await fit(l, [{ xs, ys }], { optimizer: new MomentumSGD(), signal: ac.signal })).toMatchObject({ aborted: true, updates: 0 });
    // Usable afterwards.
    expect((await fit(l, [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 5 })).updates).toBe(4);
    expect((await l.etraceGrad(xs, ys)).losses).toHaveLength(20);
    l.dispose();
  });

  test('the event loop stays free: timers and setImmediate run during fit, and a timer can abort it', async () => {
    // 1000 epochs of per-step momentum SGD (a hand-written optimizer that checks nothing) can
    // diverge before the abort; this test is about the event loop, so it opts out of the
    // non-finite checks (issue 8 made a non-finite loss an error by default).
    const l = make('D_RTRL', 1, () => new Leaky(2, 8, 1), { nonFinite: 'allow' });
    const { xs, ys } = regression(400, 5);
    let immediates = 0;
    let intervals = 0;
    let running = true;
    const tick = (): void => {
      immediates++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const iv = setInterval(() => intervals++, 1);
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 150);
    const t0 = Date.now();
    const r = await fit(l, () => [{ xs, ys }], { optimizer: new MomentumSGD(), updateEvery: 'step', epochs: 1000, signal: ac.signal });
    running = false;
    clearInterval(iv);
    clearTimeout(timer);
    expect(r.aborted).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.updates).toBeGreaterThan(10);
    expect(immediates).toBeGreaterThan(10);
    expect(intervals).toBeGreaterThan(5);
    l.dispose();
  });

  test('async iterables, epoch factories, and one-shot iterators with epochs > 1', async () => {
    const l = make('D_RTRL');
    const d = regression(4, 6);
    async function* gen(): AsyncGenerator<{ xs: bt.HostTensor; ys: bt.HostTensor }> {
      yield d;
      yield d;
    }
    expect((await fit(l, gen(), { optimizer: new MomentumSGD() })).batches).toBe(2);
    expect((await fit(l, () => gen(), { optimizer: new MomentumSGD(), epochs: 3 })).batches).toBe(6);
    await expect(fit(l, gen(), { optimizer: new MomentumSGD(), epochs: 2 })).rejects.toThrow(bt.ArgumentError);
    await expect(fit(l, [d], { optimizer: new MomentumSGD(), updateEvery: 0 })).rejects.toThrow(/updateEvery/);
    await expect(fit(l, [{ xs: d.xs, ys: slice(d.ys, 0, 3) }], { optimizer: new MomentumSGD() })).rejects.toThrow(bt.ShapeError);
    l.dispose();
  });
});

// ------------------------------------------------------------------ streamStep

describe('streamStep', () => {
  function obs(rnd: () => number): { x: bt.HostTensor; y: bt.HostTensor } {
    return { x: rand([B, 2], rnd), y: rand([B, 1], rnd) };
  }

  test('constant native memory over 500 observations; weights change after each', async () => {
    const binding = loadBinding();
    const l = make('D_RTRL');
    const opt = new MomentumSGD(0.01);
    const rnd = prng(8);
    for (let i = 0; i < 5; i++) {
      const o = obs(rnd);
      await streamStep(l, o.x, o.y, { optimizer: opt });
    }
    const live = binding.memoryStats().liveBytes;
    let prev = l.params();
    for (let i = 0; i < 500; i++) {
      const o = obs(rnd);
      const r = await streamStep(l, o.x, o.y, { optimizer: opt });
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(r.output?.shape).toEqual([B, 1]);
      const now = l.params();
      expect(Object.keys(now).some((k) => now[k].data.some((v, j) => v !== prev[k].data[j]))).toBe(true);
      prev = now;
    }
    expect(binding.memoryStats().liveBytes).toBe(live);
    expect(opt.stepCount).toBe(505);
    l.dispose();
  });

  test('output is the prediction before the update, and computing it changes nothing', async () => {
    for (const algo of ['D_RTRL', 'pp_prop', 'BPTT'] as Algo[]) {
      const a = make(algo);
      const b = make(algo);
      const ref = make(algo);
      const optA = new MomentumSGD();
      const optB = new MomentumSGD();
      const rnd = prng(9);
      for (let i = 0; i < 6; i++) {
        const o = obs(rnd);
        // The reference predicts with the same weights and states, then is synchronised by restore.
        ref.setParams(a.params());
        ref.setStates(a.states());
        const want = ref.update(o.x);
        const ra = await streamStep(a, o.x, o.y, { optimizer: optA });
        const rb = await streamStep(b, o.x, o.y, { optimizer: optB, output: false });
        expect(Array.from(ra.output!.data)).toEqual(Array.from(want.data));
        expect(rb.output).toBeNull();
        expect(ra.loss).toBe(rb.loss);
        expect(ra.gradNorm).toBe(rb.gradNorm);
      }
      expect(snapshot(a)).toEqual(snapshot(b));
      a.dispose();
      b.dispose();
      ref.dispose();
    }
  });

  test('concurrent calls are queued in call order', async () => {
    const a = make('D_RTRL');
    const b = make('D_RTRL');
    const rnd = prng(10);
    const os_ = Array.from({ length: 5 }, () => obs(rnd));
    const optA = new MomentumSGD();
    const optB = new MomentumSGD();
    const ra = await Promise.all(os_.map((o) => streamStep(a, o.x, o.y, { optimizer: optA })));
    const rb: number[] = [];
    for (const o of os_) rb.push((await streamStep(b, o.x, o.y, { optimizer: optB })).loss);
    expect(ra.map((r) => r.loss)).toEqual(rb);
    expect(snapshot(a)).toEqual(snapshot(b));
    await expect(streamStep(a, bt.zeros([B, 3], 'float64'), os_[0].y, { optimizer: optA })).rejects.toThrow(bt.ShapeError);
    a.dispose();
    b.dispose();
  });
});

describe('learner methods and bt.load', () => {
  test('learner.fit / learner.step / learner.save / bt.load / learner.load delegate to lib/train', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-learner-'));
    const make = () => bt.compile(new (class extends bt.Module {
      w = new bt.ParamState(bt.init.normal({ std: 0.3 }), [2, 3]);
      h = new bt.HiddenState([3]);
      update(x: bt.Tensor): bt.Tensor {
        this.h.value = bt.add(bt.mul(this.h.value, 0.8), bt.matmul(x, this.w));
        return this.h.value;
      }
    })(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 4 });
    const a = make();
    const opt = new optim.SGD({ lr: 0.05, momentum: 0.5 });
    const xs = bt.tensor(Array.from({ length: 4 * 2 * 2 }, (_, i) => Math.sin(i)), [4, 2, 2], 'float64');
    const ys = bt.tensor(Array.from({ length: 4 * 2 * 3 }, (_, i) => Math.cos(i)), [4, 2, 3], 'float64');
    const r = await a.fit([{ xs, ys }], { optimizer: opt, updateEvery: 'step' });
    expect(r.updates).toBe(4);
    const s = await a.step(bt.tensor([[0.1, 0.2], [0.3, 0.4]], undefined, 'float64'), bt.tensor([[0, 1, 0], [1, 0, 0]], undefined, 'float64'), { optimizer: opt });
    expect(s.output?.shape).toEqual([2, 3]);
    const file = path.join(dir, 'ck.btck');
    await a.save(file, { optimizer: opt });
    const ck = await bt.load(file);
    const b = make();
    const opt2 = new optim.SGD({ lr: 0.05, momentum: 0.5 });
    await b.load(ck, { optimizer: opt2 });
    expect(Array.from(b.params().w.data)).toEqual(Array.from(a.params().w.data));
    expect(Array.from(b.traces()['r0/g0/weight'].data)).toEqual(Array.from(a.traces()['r0/g0/weight'].data));
    const c = make();
    await c.load(file);
    expect(Array.from(c.states().h.data)).toEqual(Array.from(a.states().h.data));
    for (const l of [a, b, c]) l.dispose();
    opt.dispose();
    opt2.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
