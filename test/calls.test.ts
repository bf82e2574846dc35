/**
 * The per-call fast paths of issue 9 item 5: a small `step` with nothing queued runs at once
 * on the JS thread (Learner.runNow) yet keeps the queue contract (pending until settled,
 * BusyError, call order, errors as rejections, the same results as the queued path); the
 * optimizer's unchanged-layout path still rejects anything its full checks reject; and the
 * binding's `setParams` equals `setParam` slot by slot, with typed argument errors.
 */
import * as bt from '../lib/index';
import { CallsRNN, CALLS_B, callsX, callsY } from './helpers/models';
import type { NativeSession } from '../types/binding';

const B = CALLS_B;
const x = callsX;
const y = callsY;
const make = (algo: 'D_RTRL' | 'BPTT') => bt.compile(new CallsRNN(), bt[algo], { inputShape: [2], batchSize: B, dtype: 'float64' });

describe.each(['D_RTRL', 'BPTT'] as const)('%s: synchronous step', (algo) => {
  test('pending until settled, BusyError, call order, rejections', async () => {
    const l = make(algo);
    const opt = new bt.optim.SGD({ lr: 0.01 });
    await l.step(x(0), y(0), { optimizer: opt }); // the first step takes the queued path
    const p = l.step(x(1), y(1), { optimizer: opt });
    expect(l.pending).toBe(1);
    expect(opt.stepCount).toBe(2); // it ran at once (the queued path would not have started yet)
    expect(() => l.params()).toThrow(bt.BusyError);
    const order: string[] = [];
    const xs = { data: x(2).data, shape: [1, B, 2], dtype: 'float64' as const };
    const ys = { data: y(2).data, shape: [1, B, 1], dtype: 'float64' as const };
    const later = [
      l.etraceGrad(xs, ys).then(() => order.push('grad')),
      l.step(x(3), y(3), { optimizer: opt }).then(() => order.push('step')),
    ];
    order.push('first:' + typeof (await p).loss);
    await Promise.all(later);
    expect(order).toEqual(['first:number', 'grad', 'step']);
    expect(l.pending).toBe(0);
    await expect(l.step(x(4), y(4), { optimizer: opt, bad: 1 } as never)).rejects.toBeInstanceOf(bt.ArgumentError);
    await expect(l.step({ data: new Float64Array(6), shape: [B, 3], dtype: 'float64' }, y(4), { optimizer: opt })).rejects.toBeInstanceOf(
      bt.ShapeError,
    );
    expect(l.pending).toBe(0);
    expect(opt.stepCount).toBe(3);
    opt.dispose();
    l.dispose();
  });

  test('the same results as the queued path (a step queued behind another call)', async () => {
    const run = async (queued: boolean) => {
      const l = make(algo);
      const opt = new bt.optim.Adam({ lr: 0.01, clipNorm: 1 });
      const seen: number[] = [];
      for (let i = 0; i < 40; i++) {
        // With a call in the queue, the step is queued (the asynchronous path).
        const gate = queued ? l.enqueue(() => undefined) : undefined;
        const r = await l.step(x(i), y(i), { optimizer: opt });
        await gate;
        seen.push(r.loss, r.gradNorm, ...Array.from(r.output!.data));
      }
      const w = l.params();
      opt.dispose();
      l.dispose();
      return { seen, w: Object.values(w).map((t) => Array.from(t.data)) };
    };
    expect(await run(false)).toEqual(await run(true));
  });
});

test('optimizer: a step with the bound layout still rejects what the full checks reject', () => {
  const opt = new bt.optim.SGD({ lr: 0.1 });
  const p = () => ({ a: { data: new Float32Array(2), shape: [2], dtype: 'float32' as const }, b: { data: new Float32Array(3), shape: [3], dtype: 'float32' as const } });
  const g = p();
  opt.step(p(), g);
  opt.step(p(), g); // the fast path
  expect(() => opt.step(p(), { ...g, a: { data: new Float32Array(3), shape: [3], dtype: 'float32' } })).toThrow(bt.ShapeError);
  expect(() => opt.step(p(), { a: g.a } as never)).toThrow(bt.ArgumentError);
  expect(() => opt.step(p(), { ...g, b: { data: new Float64Array(3), shape: [3], dtype: 'float64' } })).toThrow(bt.DTypeError);
  expect(() => opt.step(p(), { ...g, b: { data: new Float32Array(2), shape: [3], dtype: 'float32' } })).toThrow(bt.ShapeError);
  expect(opt.stepCount).toBe(2);
  opt.dispose();
});

test('binding: setParams equals setParam slot by slot; bad arguments are typed errors', () => {
  const l = make('BPTT');
  l.update(x(0));
  const entry = (l as unknown as { sessions: Map<string, { session: NativeSession }> }).sessions.get('')!;
  const s = entry.session;
  const n = s.numParams;
  const vals = Array.from({ length: n }, (_, i) => {
    const a = s.getParam(i).slice();
    for (let k = 0; k < a.length; k++) a[k] = 0.25 * (i + 1) + k;
    return a;
  });
  s.setParams(vals);
  for (let i = 0; i < n; i++) expect(Array.from(s.getParam(i))).toEqual(Array.from(vals[i]));
  const code = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
  expect(() => s.setParams(vals.slice(1))).toThrow(expect.objectContaining({ code }));
  expect(() => s.setParams(vals.map((v) => Float32Array.from(v)))).toThrow(TypeError);
  expect(() => s.setParams('x' as never)).toThrow(TypeError);
  l.dispose();
});

test('D_RTRL: output: false steps equal the queued path; a user optimizer receives fresh gradient arrays', async () => {
  const run = async (queued: boolean, user: boolean) => {
    const l = make('D_RTRL');
    const sgd = new bt.optim.SGD({ lr: 0.05, momentum: 0.9 });
    const kept: bt.HostTensor[] = []; // every gradient a user optimizer was given
    const opt = user
      ? {
          step: (p: Record<string, bt.HostTensor>, g: Record<string, bt.HostTensor>) => {
            kept.push(...Object.values(g));
            return sgd.step(p, g);
          },
          get stepCount() {
            return sgd.stepCount;
          },
          currentLr: () => sgd.currentLr(),
          state: () => sgd.state(),
          loadState: (s: unknown) => sgd.loadState(s as never),
          dispose: () => sgd.dispose(),
        }
      : sgd;
    const seen: number[] = [];
    for (let i = 0; i < 30; i++) {
      const gate = queued ? l.enqueue(() => undefined) : undefined;
      const r = await l.step(x(i), y(i), { optimizer: opt, output: false });
      await gate;
      expect(r.output).toBeNull();
      seen.push(r.loss, r.gradNorm, r.lr);
    }
    const w = Object.values(l.params()).map((t) => Array.from(t.data));
    const distinct = new Set(kept.map((t) => t.data)).size;
    sgd.dispose();
    l.dispose();
    return { seen, w, kept: kept.map((t) => Array.from(t.data)), distinct };
  };
  const ref = await run(true, false);
  expect(await run(false, false)).toEqual(ref);
  const mine = await run(false, true);
  // Kept gradients keep their values (no array is reused under a user optimizer): the queued
  // path hands out fresh arrays, so this fails if the synchronous path reused its scratch.
  expect(mine).toEqual(await run(true, true));
  expect(mine.distinct).toBe(30 * 4);
  expect(mine.seen).toEqual(ref.seen);
  expect(mine.w).toEqual(ref.w);
});

test('binding: runOnline(args, into) writes what a plain call returns; bad into arguments are typed errors', async () => {
  const twin = async () => {
    const l = make('D_RTRL');
    await l.etraceGrad({ data: x(0).data, shape: [1, B, 2], dtype: 'float64' }, { data: y(0).data, shape: [1, B, 1], dtype: 'float64' });
    const sessions = (l as unknown as { sessions: Map<string, { session: NativeSession }> }).sessions;
    const s = [...sessions.values()].map((e) => e.session).find((t) => t.hasLoss)!;
    return { l, s };
  };
  const a = await twin();
  const b = await twin();
  const args = { steps: 1, inputs: [x(5).data, y(5).data], computeGrads: true };
  const n = b.s.numParams;
  const plain = a.s.runOnline(args);
  const g = Array.from({ length: n }, (_, i) => new Float64Array(b.s.getParam(i).length));
  const losses = new Float64Array(1);
  expect(b.s.runOnline(args, { gradsOut: g, lossesOut: losses, outputs: false })).toEqual({});
  g.forEach((gi, i) => expect(gi).toEqual(plain.paramGrads![i]));
  expect(losses).toEqual(plain.losses);
  // The states and traces advanced as in the plain call.
  const next = a.s.runOnline(args);
  expect(b.s.runOnline(args, { outputs: true })).toEqual(next);
  // into.params: stored before the run, as setParams just before the call.
  const w = Array.from({ length: n }, (_, i) => a.s.getParam(i).map((v) => 0.5 * v + 0.01));
  a.s.setParams(w);
  const after = a.s.runOnline(args);
  expect(b.s.runOnline(args, { params: w })).toEqual(after);
  for (let i = 0; i < n; i++) expect(b.s.getParam(i)).toEqual(w[i]);
  // Typed argument errors (phase 1: nothing ran).
  const code = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
  const typeErr = expect.objectContaining({ name: 'TypeError', code });
  const rangeErr = expect.objectContaining({ name: 'RangeError', code });
  expect(() => b.s.runOnline(args, 'x' as never)).toThrow(typeErr);
  expect(() => b.s.runOnline(args, { gradsOut: g.slice(1) })).toThrow(rangeErr);
  expect(() => b.s.runOnline(args, { gradsOut: g.map((v) => Float32Array.from(v)) as never })).toThrow(typeErr);
  expect(() => b.s.runOnline({ ...args, computeGrads: false }, { gradsOut: g })).toThrow(typeErr);
  expect(() => b.s.runOnline(args, { lossesOut: new Float64Array(2) })).toThrow(rangeErr);
  expect(() => b.s.runOnline(args, { params: w.slice(1) })).toThrow(rangeErr);
  expect(() => b.s.runOnline(args, { outputs: 1 as never })).toThrow(typeErr);
  // A getter of `into` that detaches an input's buffer (the two-phase rule): TypeError, no run.
  const xs = x(6).data.slice();
  const into = {
    get gradsOut() {
      structuredClone(xs.buffer, { transfer: [xs.buffer] });
      return g;
    },
  };
  expect(() => b.s.runOnline({ ...args, inputs: [xs, y(6).data] }, into)).toThrow(
    expect.objectContaining({ name: 'TypeError', code, message: expect.stringContaining('detached during the call') }),
  );
  // After all the rejected calls the two sessions still agree.
  expect(b.s.runOnline(args)).toEqual(a.s.runOnline(args));
  a.l.dispose();
  b.l.dispose();
});

test('D_RTRL: an update that would overflow rejects a synchronous step as it rejects a queued one', async () => {
  const run = async (queued: boolean) => {
    const l = make('D_RTRL');
    const opt = new bt.optim.SGD({ lr: (t: number) => (t < 3 ? 0.01 : 1e308) });
    const seen: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      const gate = queued ? l.enqueue(() => undefined) : undefined;
      try {
        const r = await l.step(x(i), y(i), { optimizer: opt, output: false });
        seen.push(r.loss, r.gradNorm, r.lr);
      } catch (e) {
        const err = e as bt.NonFiniteError;
        seen.push(err.constructor.name, err.tensor, err.message);
      }
      await gate;
    }
    seen.push(opt.stepCount, Object.values(l.params()).map((t) => Array.from(t.data)));
    opt.dispose();
    l.dispose();
    return seen;
  };
  const sync = await run(false);
  expect(sync).toEqual(await run(true));
  expect(sync[9]).toBe('NonFiniteError'); // the 4th step (lr 1e308) names the weight by path
  expect(sync[10]).toMatch(/^params\.(w|b|wd|ro)$/);
});

test('binding: into.update takes only a bound NativeOptimizer, slots a permutation of the param slots', async () => {
  const l = make('D_RTRL');
  const opt = new bt.optim.SGD({ lr: 0.01 });
  await l.step(x(0), y(0), { optimizer: opt, output: false }); // binds opt (the queued path)
  const sessions = (l as unknown as { sessions: Map<string, { session: NativeSession }> }).sessions;
  const s = [...sessions.values()].map((e) => e.session).find((t) => t.hasLoss)!;
  const { nativeObject } = await import('../lib/runtime/native');
  const native = nativeObject((opt as unknown as { native: object }).native);
  const n = s.numParams;
  const args = { steps: 1, inputs: [x(1).data, y(1).data], computeGrads: true };
  const code = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
  const typeErr = expect.objectContaining({ name: 'TypeError', code });
  const rangeErr = expect.objectContaining({ name: 'RangeError', code });
  const slots = [1, 3, 0, 2]; // the optimizer's sorted paths b, ro, w, wd -> param slots (w, b, wd, ro)
  expect(slots.length).toBe(n);
  const params = slots.map((slot) => s.getParam(slot).slice()); // in the optimizer's order
  const update = (u: object) => ({ update: { optimizer: native, params, slots, lr: 0.01, ...u } as never });
  // An object that only claims the optimizer's prototype has no type tag: TypeError.
  expect(() => s.runOnline(args, update({ optimizer: Object.create(Object.getPrototypeOf(native)) }))).toThrow(typeErr);
  expect(() => s.runOnline(args, update({ optimizer: s }))).toThrow(typeErr);
  const fresh = loadBindingOptimizer();
  expect(() => s.runOnline(args, update({ optimizer: fresh }))).toThrow(typeErr); // never stepped: unbound
  expect(() => s.runOnline(args, update({ slots: [1, 1, 0, 2] }))).toThrow(rangeErr); // repeated
  expect(() => s.runOnline(args, update({ slots: [0, 3, 1, 2] }))).toThrow(rangeErr); // sizes differ
  expect(() => s.runOnline(args, update({ slots: [0, 1, 2] }))).toThrow(rangeErr);
  expect(() => s.runOnline(args, update({ lr: -1 }))).toThrow(rangeErr);
  expect(() => s.runOnline({ ...args, computeGrads: false }, update({}))).toThrow(typeErr);
  expect(opt.stepCount).toBe(1); // nothing ran
  const r = s.runOnline(args, update({}));
  expect(opt.stepCount).toBe(2);
  expect(r.skipped).toBe(false);
  expect(r.gradNorm).toBeGreaterThan(0);
  // The updated weights are stored in the session (slot slots[k] <- params[k]).
  slots.forEach((slot, k) => expect(s.getParam(slot)).toEqual(params[k]));
  // An optimizer disposed by a getter after it was checked: DISPOSED, and nothing ran.
  const steps0 = s.traceSteps();
  const trap = params.slice();
  Object.defineProperty(trap, 0, {
    get() {
      opt.dispose();
      return params[0];
    },
  });
  expect(() => s.runOnline(args, update({ params: trap }))).toThrow(expect.objectContaining({ code: 'ERR_BRAINTRACE_DISPOSED' }));
  expect(s.traceSteps()).toBe(steps0);
  fresh.dispose();
  opt.dispose();
  l.dispose();
});

/** A NativeOptimizer of float64 that has taken no step. */
function loadBindingOptimizer(): { dispose(): void } {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { loadBinding, nativeObject } = require('../lib/runtime/native');
  return nativeObject(loadBinding().createOptimizer('sgd', {}, 'float64'));
}
