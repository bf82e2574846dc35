/**
 * The native boundary's two-phase rule (native/binding/binding.h, docs/hardening.md):
 * every binding entry point reads all of its arguments first and takes pointers into
 * typed arrays only afterwards, with no JS call-out in between. Here a getter (or an
 * index accessor) read late in the argument parsing detaches, or shrinks behind a
 * length-tracking view, a typed array passed earlier in the same call. Each such call
 * must throw a TypeError / RangeError with code ERR_BRAINTRACE_INVALID_ARGUMENT naming
 * the argument (never crash, never compute on freed or stale memory), leave the object
 * unchanged, and a normal call afterwards must give the same result as before.
 *
 * Also: a getter that disposes the session (or optimizer) or starts an async call on
 * it during parsing gives ERR_BRAINTRACE_DISPOSED / ERR_BRAINTRACE_BUSY; entry points
 * without property reads (setParam, setState, setTrace, createSession) reject arrays
 * that were detached or shrunk before the call.
 *
 * Last, every argument error of the binding (convert.cc, session.cc, optim.cc, addon.cc)
 * keeps its class (TypeError / RangeError) and carries code ERR_BRAINTRACE_INVALID_ARGUMENT.
 *
 * The file name matches test/*detach*.test.ts, which `npm run test:asan` also runs.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import type { Graph } from '../lib/graph/ir';
import { encodePlan } from '../lib/compiler/plan';
import { analyseEtraceGraph } from '../lib/compiler/etrace';
import { loadBinding, wrapNativeError } from '../lib/runtime/native';
import type { NativeBinding, NativeOnlineConfig, NativeSession } from '../types/binding';
import { prng, rawOnlineConfig } from './helpers/native';

const CODE = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
const B = 3;
const N = 4;
const NIN = 2;
const NOUT = 2;

const binding: NativeBinding = loadBinding();
const sessions: NativeSession[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

// ---- buffers that go away --------------------------------------------------------------------

/** Detaches the buffer behind a typed array (transfers it away, as postMessage does). */
function detach(a: ArrayBufferView): void {
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  if (a.byteLength !== 0) throw new Error('the buffer was not detached');
}

interface ResizableBuffer extends ArrayBuffer {
  resize(bytes: number): void;
  readonly resizable: boolean;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (bytes: number, o: { maxByteLength: number }) => ResizableBuffer;

/** Node >= 20 (package.json engines) has resizable ArrayBuffers (ES2024); checked by a test below. */
const hasResizable = (() => {
  try {
    return new ResizableArrayBuffer(8, { maxByteLength: 16 }).resizable === true;
  } catch {
    return false;
  }
})();

/** A copy of `src` in a resizable buffer, seen through a length-tracking view (no length given). */
function resizableCopy(src: Float64Array): { view: Float64Array; buffer: ResizableBuffer } {
  const buffer = new ResizableArrayBuffer(src.byteLength, { maxByteLength: 2 * src.byteLength + 8 });
  const view = new Float64Array(buffer);
  view.set(src);
  return { view, buffer };
}

/** Shrinks a resizable buffer to one element. */
const shrink = (b: ResizableBuffer) => b.resize(8);

const tag = (x: unknown): string => Object.prototype.toString.call(x).slice(8, -1);

/** Calls fn, which must throw an error of class `name` with code INVALID_ARGUMENT matching `message`. */
function expectArgError(fn: () => unknown, name: 'TypeError' | 'RangeError', message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(tag(err)).toBe('Error');
  expect((err as Error).name).toBe(name);
  expect((err as { code?: string }).code).toBe(CODE);
  expect((err as Error).message).toMatch(message);
}

function expectCode(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect((err as { code?: string } | undefined)?.code).toBe(code);
}

const detachedMsg = (arg: string, type: string, length: number) =>
  new RegExp(
    `^${arg.replace(/[[\]]/g, '\\$&')} must be a ${type} of length ${length} \\(got a typed array whose buffer was detached during the call\\)$`,
  );
const resizedMsg = (arg: string, type: string, length: number) =>
  new RegExp(
    `^${arg.replace(/[[\]]/g, '\\$&')} must be a ${type} of length ${length} \\(got a typed array of length 1: its buffer was resized during the call\\)$`,
  );

/** An object whose `key` is a getter that runs `effect` and then returns `value`. */
function withGetter<T extends object>(base: T, key: string, effect: () => void, value?: unknown): T {
  const o = { ...base };
  Object.defineProperty(o, key, {
    enumerable: true,
    get() {
      effect();
      return value;
    },
  });
  return o;
}

/** An array whose element `index` is an accessor that runs `effect` and then returns `value`. */
function arrayWithGetter<T>(items: T[], index: number, effect: () => void): T[] {
  const a = items.slice();
  const value = a[index];
  Object.defineProperty(a, index, {
    get() {
      effect();
      return value;
    },
  });
  return a;
}

const copies = (list: ArrayLike<number>[]) => list.map((a) => Array.from(a));

// ---- the model: h' = 0.5 h + x W + b, out = h' Wo, MSE loss (two inputs: x and target) --------

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

const mse: bt.TraceLoss = {
  fn: (y, t) => bt.mul(bt.sum(bt.square(bt.sub(y, t))), 1 / (B * NOUT)),
  targetShape: [NOUT],
};

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const randomArray = (n: number, rnd: () => number) => Float64Array.from({ length: n }, () => 2 * rnd() - 1);

interface Loaded {
  graph: Graph;
  session: NativeSession;
  config: NativeOnlineConfig;
  params: Float64Array[];
  states: Float64Array[];
  /** Whether configureOnline has run (then restore() also zeroes the traces). */
  configured: boolean;
  /** Puts the initial params and states back (and zeroes the traces when configured). */
  restore(): void;
}

function setup(seed: number): Loaded {
  const { graph } = bt.traceModel(new LeakyDense(), { dtype: 'float64', inputShapes: [[NIN]], batchSize: B, loss: mse });
  const plan = encodePlan(graph);
  const session = binding.createSession(plan.code, plan.fattr);
  sessions.push(session);
  const rnd = prng(seed);
  const params = graph.params.map((p) => randomArray(numelOf(p.shape), rnd));
  const states = graph.states.map((s) => randomArray(numelOf(s.shape), rnd));
  const etg = analyseEtraceGraph(graph, { batchSize: B });
  const config: NativeOnlineConfig = rawOnlineConfig(graph, etg);
  const l: Loaded = {
    graph,
    session,
    config,
    params,
    states,
    configured: false,
    restore() {
      params.forEach((p, i) => session.setParam(i, p));
      states.forEach((s, i) => session.setState(i, s));
      if (l.configured) session.resetTraces();
    },
  };
  l.restore();
  return l;
}

/** configureOnline with the model's D_RTRL config. */
function configure(l: Loaded): void {
  l.session.configureOnline(l.config);
  l.configured = true;
}

/** Fresh time-major inputs (x and target) for T steps from a seed. */
function inputsFor(l: Loaded, T: number, seed: number): Float64Array[] {
  const rnd = prng(seed);
  return l.graph.inputs.map((i) => randomArray(T * numelOf(i.shape), rnd));
}

const T = 4;

test('this runtime has resizable ArrayBuffers (the shrink cases below rely on them)', () => {
  expect(hasResizable).toBe(true);
});

// ---- evaluate --------------------------------------------------------------------------------

describe('evaluate', () => {
  const l = setup(11);
  const one = () => inputsFor(l, 1, 12);
  const len0 = B * NIN;
  const baseline = () => copies(l.session.evaluate({ inputs: one(), params: l.params.slice() }).outputs);
  const before = baseline();

  test('a getter read after the inputs detaches inputs[0]: TypeError, same results afterwards', () => {
    const inputs = one();
    const args = withGetter({ inputs, params: l.params.slice() }, 'jacobians', () => detach(inputs[0]));
    expectArgError(() => l.session.evaluate(args), 'TypeError', detachedMsg('inputs[0]', 'Float64Array', len0));
    expect(baseline()).toEqual(before);
  });

  test('a Proxy trap on the args object detaches inputs[0]', () => {
    const inputs = one();
    const args = new Proxy(
      { inputs, params: l.params.slice() },
      {
        get(target, key, receiver) {
          if (key === 'outputCotangents') detach(inputs[0]);
          return Reflect.get(target, key, receiver);
        },
      },
    );
    expectArgError(() => l.session.evaluate(args), 'TypeError', detachedMsg('inputs[0]', 'Float64Array', len0));
    expect(baseline()).toEqual(before);
  });

  test('an index accessor of the inputs array detaches inputs[0]', () => {
    const inputs = one();
    const list = arrayWithGetter(inputs, 1, () => detach(inputs[0]));
    expectArgError(() => l.session.evaluate({ inputs: list }), 'TypeError', detachedMsg('inputs[0]', 'Float64Array', len0));
    expect(baseline()).toEqual(before);
  });

  test('a getter detaches an explicit param and a tangent', () => {
    const params = l.params.map((p) => p.slice());
    const args = withGetter({ inputs: one(), params }, 'fetchValues', () => detach(params[0]));
    expectArgError(
      () => l.session.evaluate(args),
      'TypeError',
      detachedMsg('params[0]', 'Float64Array', params[0].length),
    );
    const tangent = new Float64Array(len0).fill(1);
    const jvp = withGetter({ inputs: one(), inputTangents: [tangent] }, 'outputCotangents', () => detach(tangent));
    expectArgError(() => l.session.evaluate(jvp), 'TypeError', detachedMsg('inputTangents[0]', 'Float64Array', len0));
    expect(baseline()).toEqual(before);
  });

  test('a getter shrinks a resizable buffer behind inputs[0]: RangeError', () => {
    const [x, target] = one();
    const r = resizableCopy(x);
    expect(copies(l.session.evaluate({ inputs: [r.view, target], params: l.params.slice() }).outputs)).toEqual(before);
    const args = withGetter({ inputs: [r.view, target], params: l.params.slice() }, 'stopCotangents', () => shrink(r.buffer));
    expectArgError(() => l.session.evaluate(args), 'RangeError', resizedMsg('inputs[0]', 'Float64Array', len0));
    expect(baseline()).toEqual(before);
  });

  test('an accessor that grows a list while it is read: the length checked is the length used', () => {
    const params = l.params.slice();
    const first = params[0];
    Object.defineProperty(params, 0, {
      get() {
        for (let k = 0; k < 1000; k++) params.push(first);
        return first;
      },
    });
    expect(copies(l.session.evaluate({ inputs: one(), params }).outputs)).toEqual(before);
    const jac = [{ kind: 'hid2hid' as const, members: [], positions: 1 }];
    const list = jac.slice();
    Object.defineProperty(list, 0, {
      get() {
        for (let k = 0; k < 1000; k++) list.push(jac[0]);
        return { kind: 'hid2hid', members: [{ leafNode: 0, newNode: 0, width: 1 }], positions: 1 };
      },
    });
    // Whatever the core says about this request, it is a coded error or a result, never a write past the list.
    try {
      l.session.evaluate({ inputs: one(), jacobians: list });
    } catch (e) {
      expect(typeof (e as { code?: unknown }).code).toBe('string');
    }
    expect(baseline()).toEqual(before);
  });

  test('a getter that disposes the session: ERR_BRAINTRACE_DISPOSED, no crash', () => {
    const m = setup(13);
    const args = withGetter({ inputs: inputsFor(m, 1, 14) }, 'params', () => m.session.dispose());
    expectCode(() => m.session.evaluate(args), 'ERR_BRAINTRACE_DISPOSED');
    expect(m.session.disposed).toBe(true);
  });
});

// ---- runSequence (and its async form) -------------------------------------------------------

describe('runSequence', () => {
  const l = setup(21);
  const seq = () => inputsFor(l, T, 22);
  const len0 = T * B * NIN;
  const run = (extra: object = {}) => {
    const r = l.session.runSequence({ steps: T, inputs: seq(), computeGrads: true, ...extra });
    return { outputs: copies(r.outputs), losses: Array.from(r.losses), grads: copies(r.paramGrads ?? []) };
  };
  l.restore();
  const before = run();

  test('a getter read after the inputs detaches inputs[0]: TypeError, no state change', () => {
    l.restore();
    const inputs = seq();
    const args = withGetter({ steps: T, inputs }, 'computeGrads', () => detach(inputs[0]), true);
    expectArgError(() => l.session.runSequence(args), 'TypeError', detachedMsg('inputs[0]', 'Float64Array', len0));
    // The failed call did not run: the stored state is still the initial one.
    expect(run()).toEqual(before);
  });

  test('a getter detaches lossScale (read before it)', () => {
    l.restore();
    const lossScale = new Float64Array(T).fill(1);
    const args = withGetter({ steps: T, inputs: seq(), lossScale }, 'fetchValues', () => detach(lossScale));
    expectArgError(() => l.session.runSequence(args), 'TypeError', detachedMsg('lossScale', 'Float64Array', T));
    expect(run({ lossScale: new Float64Array(T).fill(1) })).toEqual(before);
  });

  test('a getter shrinks a resizable buffer behind inputs[0]: RangeError', () => {
    l.restore();
    const [x, target] = seq();
    const r = resizableCopy(x);
    const args = withGetter({ steps: T, inputs: [r.view, target] }, 'jacobians', () => shrink(r.buffer));
    expectArgError(() => l.session.runSequence(args), 'RangeError', resizedMsg('inputs[0]', 'Float64Array', len0));
    expect(run()).toEqual(before);
  });

  test('runSequenceAsync copies after parsing: a detaching getter rejects with the same error', async () => {
    l.restore();
    const inputs = seq();
    const args = withGetter({ steps: T, inputs }, 'jacobians', () => detach(inputs[0]));
    await expect(l.session.runSequenceAsync(args)).rejects.toMatchObject({
      name: 'TypeError',
      code: CODE,
      message: expect.stringMatching(detachedMsg('inputs[0]', 'Float64Array', len0)),
    });
    const r = await l.session.runSequenceAsync({ steps: T, inputs: seq(), computeGrads: true });
    expect({ outputs: copies(r.outputs), losses: Array.from(r.losses), grads: copies(r.paramGrads ?? []) }).toEqual(before);
  });

  test('a getter that starts runSequenceAsync on the same session: ERR_BRAINTRACE_BUSY, no race', async () => {
    l.restore();
    let pending: Promise<unknown> | undefined;
    const args = withGetter({ steps: T, inputs: seq() }, 'computeGrads', () => {
      pending = l.session.runSequenceAsync({ steps: T, inputs: seq() });
    });
    expectCode(() => l.session.runSequence(args), 'ERR_BRAINTRACE_BUSY');
    await pending;
    l.restore();
    expect(run()).toEqual(before);
  });

  test('a getter that disposes the session: ERR_BRAINTRACE_DISPOSED', () => {
    const m = setup(23);
    const args = withGetter({ steps: T, inputs: inputsFor(m, T, 24) }, 'lossScale', () => m.session.dispose());
    expectCode(() => m.session.runSequence(args), 'ERR_BRAINTRACE_DISPOSED');
  });
});

// ---- online learning: runOnline, runOnlineAsync, configureOnline ----------------------------

describe('runOnline and configureOnline', () => {
  const l = setup(31);
  configure(l);
  const seq = () => inputsFor(l, T, 32);
  const len0 = T * B * NIN;
  const run = () => {
    const r = l.session.runOnline({ steps: T, inputs: seq() });
    return { outputs: copies(r.outputs), losses: Array.from(r.losses), grads: copies(r.paramGrads ?? []) };
  };
  l.restore();
  const before = run();

  test('a getter read after the inputs detaches inputs[0]: TypeError, traces untouched', () => {
    l.restore();
    const inputs = seq();
    const args = withGetter({ steps: T, inputs }, 'chunk', () => detach(inputs[0]), 1);
    expectArgError(() => l.session.runOnline(args), 'TypeError', detachedMsg('inputs[0]', 'Float64Array', len0));
    expect(l.session.traceSteps()).toBe(0);
    expect(run()).toEqual(before);
  });

  test('an index accessor detaches inputs[0]; a getter detaches lossScale', () => {
    l.restore();
    const inputs = seq();
    const list = arrayWithGetter(inputs, 1, () => detach(inputs[0]));
    expectArgError(
      () => l.session.runOnline({ steps: T, inputs: list }),
      'TypeError',
      detachedMsg('inputs[0]', 'Float64Array', len0),
    );
    const lossScale = new Float64Array(T).fill(1);
    const args = withGetter({ steps: T, inputs: seq(), lossScale }, 'computeGrads', () => detach(lossScale), true);
    expectArgError(() => l.session.runOnline(args), 'TypeError', detachedMsg('lossScale', 'Float64Array', T));
    expect(run()).toEqual(before);
  });

  test('a getter shrinks a resizable buffer behind inputs[0]: RangeError', () => {
    l.restore();
    const [x, target] = seq();
    const r = resizableCopy(x);
    const args = withGetter({ steps: T, inputs: [r.view, target] }, 'chunk', () => shrink(r.buffer), 1);
    expectArgError(() => l.session.runOnline(args), 'RangeError', resizedMsg('inputs[0]', 'Float64Array', len0));
    expect(run()).toEqual(before);
  });

  test('runOnlineAsync rejects the same way and then runs normally', async () => {
    l.restore();
    const inputs = seq();
    const args = withGetter({ steps: T, inputs }, 'chunk', () => detach(inputs[0]), 1);
    await expect(l.session.runOnlineAsync(args)).rejects.toMatchObject({ name: 'TypeError', code: CODE });
    const r = await l.session.runOnlineAsync({ steps: T, inputs: seq() });
    expect({ outputs: copies(r.outputs), losses: Array.from(r.losses), grads: copies(r.paramGrads ?? []) }).toEqual(before);
  });

  test('runOnlineAsync: a getter that disposes the session rejects with ERR_BRAINTRACE_DISPOSED', async () => {
    const m = setup(34);
    configure(m);
    const args = withGetter({ steps: T, inputs: inputsFor(m, T, 35) }, 'computeGrads', () => m.session.dispose(), true);
    await expect(m.session.runOnlineAsync(args)).rejects.toMatchObject({ code: 'ERR_BRAINTRACE_DISPOSED' });
  });

  test('configureOnline: a getter that starts runOnlineAsync gives BUSY; one that disposes gives DISPOSED', async () => {
    l.restore();
    let pending: Promise<unknown> | undefined;
    const busy = withGetter(l.config, 'nonTemporalSlots', () => {
      pending = l.session.runOnlineAsync({ steps: T, inputs: seq() });
    }, l.config.nonTemporalSlots);
    expectCode(() => l.session.configureOnline(busy), 'ERR_BRAINTRACE_BUSY');
    await pending;
    l.restore();
    expect(run()).toEqual(before);

    const m = setup(33);
    const gone = withGetter(m.config, 'etpNodes', () => m.session.dispose(), m.config.etpNodes);
    expectCode(() => m.session.configureOnline(gone), 'ERR_BRAINTRACE_DISPOSED');
  });
});

// ---- entry points without property reads --------------------------------------------------

describe('setParam, setState, setTrace, createSession', () => {
  test('arrays detached or shrunk before the call are typed errors; stored values unchanged', () => {
    const l = setup(41);
    configure(l);
    const detachedBefore = /^data must be a Float64Array of length \d+ \(got a typed array whose buffer is detached\)$/;
    const p0 = l.params[0].slice();
    detach(p0);
    expectArgError(() => l.session.setParam(0, p0), 'TypeError', detachedBefore);
    const s0 = l.states[0].slice();
    detach(s0);
    expectArgError(() => l.session.setState(0, s0), 'TypeError', detachedBefore);
    const n = l.session.getTrace(0).length;
    const tr = new Float64Array(n);
    detach(tr);
    expectArgError(() => l.session.setTrace(0, tr), 'TypeError', detachedBefore);
    const r = resizableCopy(l.params[0]);
    shrink(r.buffer);
    expectArgError(() => l.session.setParam(0, r.view), 'RangeError', /\(got Float64Array of length 1\)$/);
    expect(Array.from(l.session.getParam(0))).toEqual(Array.from(l.params[0]));
    expect(Array.from(l.session.getState(0))).toEqual(Array.from(l.states[0]));
    expect(Array.from(l.session.getTrace(0))).toEqual(new Array(n).fill(0));
  });

  test('createSession with a detached plan array is a TypeError, never read', () => {
    const l = setup(42);
    const plan = encodePlan(l.graph);
    const code = plan.code.slice();
    detach(code);
    expectArgError(
      () => sessions.push(binding.createSession(code, plan.fattr)),
      'TypeError',
      /^code must be an Int32Array \(got a typed array whose buffer is detached\)$/,
    );
    const ok = binding.createSession(plan.code, plan.fattr);
    sessions.push(ok);
    expect(ok.numParams).toBe(l.graph.params.length);
  });
});

// ---- the optimizer -------------------------------------------------------------------------

describe('optimizer', () => {
  const sizes = [6, 4];
  const start = () => sizes.map((n, i) => Float64Array.from({ length: n }, (_, k) => 0.1 * (k + 1) * (i + 1)));
  const grads = () => sizes.map((n, i) => Float64Array.from({ length: n }, (_, k) => 0.05 * (k - 2) + 0.01 * i));
  /** Two Adam steps from `start()`: the parameters afterwards and the norms. */
  const reference = () => {
    const o = binding.createOptimizer('adam', {}, 'float64');
    const p = start();
    const norms = [o.step(p, grads(), 0.01), o.step(p, grads(), 0.01)];
    o.dispose();
    return { params: copies(p), norms };
  };
  const ref = reference();

  for (const bound of [false, true]) {
    const when = bound ? 'after the first step' : 'on the first step';
    test(`step ${when}: an index accessor detaches params[0] / grads[0]: TypeError, state unchanged`, () => {
      const o = binding.createOptimizer('adam', {}, 'float64');
      const p = start();
      if (bound) o.step(p, grads(), 0.01);
      const stateBefore = copies(o.stateBuffers());
      const victim = p[0].slice();
      const hostile = arrayWithGetter([victim, p[1]], 1, () => detach(victim));
      expectArgError(() => o.step(hostile, grads(), 0.01), 'TypeError', detachedMsg('params[0]', 'Float64Array', sizes[0]));
      const g = grads();
      const hostileGrads = arrayWithGetter(g, 1, () => detach(g[0]));
      expectArgError(() => o.step(p, hostileGrads, 0.01), 'TypeError', detachedMsg('grads[0]', 'Float64Array', sizes[0]));
      expect(copies(o.stateBuffers())).toEqual(stateBefore);
      expect(o.stepCount).toBe(bound ? 1 : 0);
      // Normal steps afterwards give the reference trajectory.
      const norms = bound ? [ref.norms[0], o.step(p, grads(), 0.01)] : [o.step(p, grads(), 0.01), o.step(p, grads(), 0.01)];
      expect(norms).toEqual(ref.norms);
      expect(copies(p)).toEqual(ref.params);
      o.dispose();
    });
  }

  test('step: an index accessor shrinks a resizable buffer behind params[0]: RangeError', () => {
    const o = binding.createOptimizer('adam', {}, 'float64');
    const p = start();
    o.step(p, grads(), 0.01);
    const r = resizableCopy(p[0]);
    const hostile = arrayWithGetter([r.view, p[1]], 1, () => shrink(r.buffer));
    expectArgError(() => o.step(hostile, grads(), 0.01), 'RangeError', resizedMsg('params[0]', 'Float64Array', sizes[0]));
    expect(o.step(p, grads(), 0.01)).toBe(ref.norms[1]);
    expect(copies(p)).toEqual(ref.params);
    o.dispose();
  });

  test('setStateBuffers: an index accessor detaches list[0]: TypeError, state unchanged', () => {
    const o = binding.createOptimizer('adam', {}, 'float64');
    const p = start();
    o.step(p, grads(), 0.01);
    const stateBefore = copies(o.stateBuffers());
    const list = o.stateBuffers() as Float64Array[];
    const hostile = arrayWithGetter(list, 1, () => detach(list[0]));
    expectArgError(() => o.setStateBuffers(hostile), 'TypeError', detachedMsg('list[0]', 'Float64Array', sizes[0]));
    expect(copies(o.stateBuffers())).toEqual(stateBefore);
    o.dispose();
  });

  test('a getter that disposes the optimizer during step: ERR_BRAINTRACE_DISPOSED, no crash', () => {
    const o = binding.createOptimizer('sgd', { momentum: 0.9 }, 'float64');
    const p = start();
    o.step(p, grads(), 0.01);
    const g = grads();
    const hostile = arrayWithGetter(g, 1, () => o.dispose());
    expectCode(() => o.step(p, hostile, 0.01), 'ERR_BRAINTRACE_DISPOSED');
    expect(o.disposed).toBe(true);
  });
});

// ---- the rest: no typed arrays, but getters still run first -----------------------------------

describe('entry points without typed arrays', () => {
  test('benchmarkTraceStep and createOptimizer read getters before any native work', () => {
    const order: string[] = [];
    const opts = { batch: 1, inputs: 2, outputs: 2, states: 1, dtype: 'float64' as const, reps: 1 };
    const spied: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(opts)) {
      Object.defineProperty(spied, k, { enumerable: true, get: () => (order.push(k), v) });
    }
    const r = binding.benchmarkTraceStep(spied as typeof opts);
    expect(r.bytesMoved).toBe(2 * 1 * 2 * 2 * 1 * 8);
    expect(order.sort()).toEqual(Object.keys(opts).sort());
    const throwing = withGetter(opts, 'reps', () => {
      throw new Error('from a getter');
    });
    expect(() => binding.benchmarkTraceStep(throwing)).toThrow('from a getter');
    const hyper = withGetter({ momentum: 0.5 }, 'momentum', () => undefined, 0.5);
    const o = binding.createOptimizer('sgd', hyper, 'float64');
    expect(o.stateNames).toEqual(['momentum']);
    o.dispose();
  });
});

// ---- every argument error of the binding is coded (issue 8, item 7) ---------------------------

describe('argument errors of the binding', () => {
  test('keep their class and carry code ERR_BRAINTRACE_INVALID_ARGUMENT (convert, session, optim, addon)', () => {
    const l = setup(51);
    const o = binding.createOptimizer('sgd', {}, 'float64');
    const cases: [string, () => unknown, 'TypeError' | 'RangeError', RegExp][] = [
      ['wrong dtype', () => l.session.evaluate({ inputs: [new Float32Array(6), new Float32Array(6)] } as never), 'TypeError', /^inputs\[0\] must be a Float64Array of length 6 \(got Float32Array of length 6\)$/],
      ['wrong length', () => l.session.setParam(0, new Float64Array(1)), 'RangeError', /^data must be a Float64Array of length \d+ \(got Float64Array of length 1\)$/],
      ['bad slot', () => l.session.getParam(99), 'RangeError', /^slot must be an integer in \[0, \d+\) \(got number 99\)$/],
      ['bad steps', () => l.session.runSequence({ steps: 0, inputs: [] }), 'RangeError', /^steps must be an integer >= 1/],
      ['bad node id', () => l.session.evaluate({ inputs: inputsFor(l, 1, 52), fetchValues: [-1] }), 'RangeError', /^fetchValues\[0\] must be an integer node id \(got -1\)$/],
      ['bad config', () => l.session.configureOnline({ ...l.config, algorithm: 'x' as 'd_rtrl' }), 'TypeError', /^config\.algorithm must be/],
      ['bad hyper', () => binding.createOptimizer('sgd', { momentum: 'a' as unknown as number }), 'TypeError', /^hyper\.momentum must be a number/],
      ['bad lr', () => o.step([], [], -1), 'RangeError', /^lr must be a finite number >= 0 \(got number -1\)$/],
      ['bad plan type', () => binding.createSession([] as unknown as Int32Array, new Float64Array(0)), 'TypeError', /^code must be an Int32Array \(got Array of length 0\)$/],
      ['bad preference', () => binding.info('gpu'), 'RangeError', /^preference \(or BRAINTRACE_DEVICE\) must be/],
      ['bad benchmark size', () => binding.benchmarkCopy(0, 1), 'RangeError', /^bytes must be an integer in \[1, /],
      ['bad benchmark opts', () => binding.benchmarkTraceStep(null as never), 'TypeError', /^opts must be an object/],
    ];
    for (const [what, fn, name, message] of cases) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect({ what, name: (err as Error | undefined)?.name, code: (err as { code?: string } | undefined)?.code }).toEqual({
        what,
        name,
        code: CODE,
      });
      expect((err as Error).message).toMatch(message);
      // wrapNativeError keeps the class (and the error itself).
      expect(wrapNativeError(err)).toBe(err);
    }
    o.dispose();
  });
});
