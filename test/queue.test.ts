/**
 * Issue 8, items 5 and 7: one FIFO call queue per learner (concurrent calls run in call
 * order and are never rejected; a synchronous method while asynchronous work is pending
 * throws BusyError), typed errors with stable codes, unknown options rejected, sizes
 * checked before anything is allocated.
 */
import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { DiagRNN, rejected, thrown } from './helpers/models';
import { prng } from './helpers/native';


const B = 3;
type Algo = 'D_RTRL' | 'pp_prop' | 'BPTT';
const ALGOS: Algo[] = ['D_RTRL', 'pp_prop', 'BPTT'];

function make(algo: Algo): bt.Learner {
  const opts = { inputShape: [2], batchSize: B, dtype: 'float64' as const, seed: 5 };
  if (algo === 'D_RTRL') return bt.compile(new DiagRNN(), bt.D_RTRL, opts);
  if (algo === 'pp_prop') return bt.compile(new DiagRNN(), bt.pp_prop, { ...opts, decayOrRank: 0.5 });
  return bt.compile(new DiagRNN(), bt.BPTT, opts);
}

function data(T: number, seed: number): { xs: bt.HostTensor; ys: bt.HostTensor } {
  const r = prng(seed);
  const xs = new Float64Array(T * B * 2).map(() => r() * 2 - 1);
  const ys = new Float64Array(T * B).map(() => r() * 2 - 1);
  return {
    xs: { data: xs, shape: [T, B, 2], dtype: 'float64' },
    ys: { data: ys, shape: [T, B, 1], dtype: 'float64' },
  };
}

const arr = (t: bt.HostTensor) => Array.from(t.data);

describe.each(ALGOS)('call queue (%s)', (algo) => {
  test('concurrent etraceGrad calls run in call order and equal the sequential results', async () => {
    const a = data(6, 1);
    const b = data(4, 2);
    const seq = make(algo);
    const ga = await seq.etraceGrad(a.xs, a.ys);
    const gb = await seq.etraceGrad(b.xs, b.ys);
    seq.dispose();

    const con = make(algo);
    const order: string[] = [];
    const pa = con.etraceGrad(a.xs, a.ys).then((r) => (order.push('a'), r));
    const pb = con.etraceGrad(b.xs, b.ys).then((r) => (order.push('b'), r));
    expect(con.pending).toBe(2);
    const [ra, rb] = await Promise.all([pa, pb]);
    expect(order).toEqual(['a', 'b']);
    expect(con.pending).toBe(0);
    for (const k of Object.keys(ga.grads)) {
      expect(arr(ra.grads[k])).toEqual(arr(ga.grads[k]));
      expect(arr(rb.grads[k])).toEqual(arr(gb.grads[k]));
    }
    expect(Array.from(rb.losses)).toEqual(Array.from(gb.losses));
    con.dispose();
  });

  test('step, etraceGrad, run, save and fit mixed: none is rejected, all run in order', async () => {
    const l = make(algo);
    const opt = new bt.optim.SGD({ lr: 0.01 });
    const a = data(3, 3);
    const x1 = { data: a.xs.data.slice(0, B * 2), shape: [B, 2], dtype: 'float64' as const };
    const y1 = { data: a.ys.data.slice(0, B), shape: [B, 1], dtype: 'float64' as const };
    const order: string[] = [];
    const calls = [
      l.step(x1, y1, { optimizer: opt }).then(() => order.push('step')),
      l.etraceGrad(a.xs, a.ys).then(() => order.push('grad')),
      l.run(a.xs).then(() => order.push('run')),
      l.fit([a], { optimizer: opt }).then(() => order.push('fit')),
      l.enqueue(() => {
        order.push('sync');
        return l.params();
      }),
    ];
    await Promise.all(calls);
    expect(order).toEqual(['step', 'grad', 'run', 'fit', 'sync']);
    expect(opt.stepCount).toBe(2);
    opt.dispose();
    l.dispose();
  });

  test('a synchronous method while asynchronous calls are pending throws BusyError', async () => {
    const l = make(algo);
    const a = data(5, 4);
    const p = l.etraceGrad(a.xs, a.ys);
    for (const call of [
      () => l.params(),
      () => l.setParams({}),
      () => l.states(),
      () => l.setStates({}),
      () => l.resetState(),
      () => l.update(a.xs.data.slice(0, B * 2)),
    ]) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(bt.BusyError);
      expect((err as bt.BusyError).code).toBe('ERR_BRAINTRACE_BUSY');
      expect((err as Error).message).toMatch(/etraceGrad/);
      expect((err as Error).message).toMatch(/enqueue/);
    }
    await p;
    // Right after the await, nothing is pending: synchronous methods work again.
    expect(() => l.params()).not.toThrow();
    // enqueue() queues a synchronous one behind the pending call.
    const p2 = l.run(a.xs);
    const w = await l.enqueue(() => l.params());
    expect(Object.keys(w).length).toBeGreaterThan(0);
    await p2;
    l.dispose();
  });

  test('fit onProgress may use the learner synchronously (it runs inside the queued call)', async () => {
    const l = make(algo);
    const opt = new bt.optim.SGD({ lr: 0.01 });
    const a = data(4, 5);
    let seen = 0;
    await l.fit([a], {
      optimizer: opt,
      updateEvery: 2,
      onProgress: async () => {
        expect(Object.keys(l.params()).length).toBe(4);
        await l.save(`${require('os').tmpdir()}/bt-queue-${process.pid}-${algo}.btck`);
        seen++;
      },
    });
    expect(seen).toBe(2);
    require('fs').rmSync(`${require('os').tmpdir()}/bt-queue-${process.pid}-${algo}.btck`, { force: true });
    opt.dispose();
    l.dispose();
  });
});

describe('aborting a queued call', () => {
  test.each(ALGOS)('%s: an abort while the call waits for its turn rejects it at once; it never runs', async (algo) => {
    const l = make(algo);
    const a = data(4, 11);
    const b = data(3, 12);
    const first = l.etraceGrad(a.xs, a.ys);
    const ac = new AbortController();
    const second = l.etraceGrad(b.xs, b.ys, { signal: ac.signal });
    const third = l.run(b.xs);
    const order: string[] = [];
    void first.then(() => order.push('first'));
    ac.abort();
    const err = await rejected(second, bt.AbortError);
    order.push('second');
    expect(err).toMatchObject({ code: 'ERR_BRAINTRACE_ABORTED', stepsDone: 0 });
    await first;
    // Rejected at once, not when its turn came after `first`.
    expect(order).toEqual(['second', 'first']);
    await third;
    // The aborted call never ran: the states are those of first + third only.
    const ref = make(algo);
    await ref.etraceGrad(a.xs, a.ys);
    await ref.run(b.xs);
    expect(arr(l.states()['h'])).toEqual(arr(ref.states()['h']));
    ref.dispose();
    l.dispose();
  });
});

describe('disposal and errors of queued calls', () => {
  test('calls queued behind a dispose() reject with DisposedError; a failing call does not block the queue', async () => {
    const l = make('D_RTRL');
    const a = data(3, 6);
    const bad = l.etraceGrad({ data: new Float64Array(6), shape: [1, B, 2], dtype: 'float64' }, a.ys);
    const good = l.etraceGrad(a.xs, a.ys);
    await expect(bad).rejects.toBeInstanceOf(bt.ShapeError);
    await expect(good).resolves.toHaveProperty('grads');
    const p1 = l.run(a.xs);
    const p2 = l.run(a.xs);
    await p1;
    l.dispose();
    await expect(p2).rejects.toBeInstanceOf(bt.DisposedError);
    await expect(l.run(a.xs)).rejects.toMatchObject({ code: 'ERR_BRAINTRACE_DISPOSED' });
    expect(() => l.params()).toThrow(bt.DisposedError);
  });

  test('a continuation created inside a queued call does not hold the queue after that call ended', async () => {
    const l = make('BPTT');
    const a = data(3, 7);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let later!: Promise<unknown>;
    await l.enqueue(() => {
      // This reaction inherits the queued call's async context; it runs after the call ended.
      later = gate.then(() => l.params());
    });
    const p = l.run(a.xs); // pending now
    open();
    await expect(later).rejects.toBeInstanceOf(bt.BusyError);
    await p;
    l.dispose();
  });
});

describe('typed errors: codes, fields, unknown options, sizes', () => {
  test('every error class has a stable code', () => {
    const cases: [new (...a: never[]) => bt.BraintraceError, string][] = [
      [bt.ShapeError, 'ERR_BRAINTRACE_SHAPE'],
      [bt.DTypeError, 'ERR_BRAINTRACE_DTYPE'],
      [bt.ArgumentError, 'ERR_BRAINTRACE_INVALID_ARGUMENT'],
      [bt.NotSupportedError, 'ERR_BRAINTRACE_NOT_SUPPORTED'],
      [bt.DisposedError, 'ERR_BRAINTRACE_DISPOSED'],
      [bt.BusyError, 'ERR_BRAINTRACE_BUSY'],
      [bt.CompilationError, 'ERR_BRAINTRACE_COMPILATION'],
    ];
    for (const [C, code] of cases) {
      const e = new (C as unknown as new (m: string) => bt.BraintraceError)('x');
      expect(e.code).toBe(code);
      expect(e).toBeInstanceOf(bt.BraintraceError);
      expect(e.name).toBe(C.name);
    }
    const nf = new bt.NonFiniteError('nan', { tensor: 'xs', step: 3, index: 7 });
    expect(nf).toMatchObject({ code: 'ERR_BRAINTRACE_NON_FINITE', tensor: 'xs', step: 3, index: 7, argument: 'xs' });
    expect(new bt.AbortError('stop', { stepsDone: 4 })).toMatchObject({ code: 'ERR_BRAINTRACE_ABORTED', stepsDone: 4 });
    expect(new bt.CheckpointError('corrupt', 'f', 'bad').code).toBe('ERR_BRAINTRACE_CHECKPOINT');
    expect(new bt.NativeError('m', 'ERR_BRAINTRACE_INVALID_PLAN').code).toBe('ERR_BRAINTRACE_INVALID_PLAN');
  });

  test('errors thrown with a standard message carry argument / expected / actual', () => {
    const catchIt = (f: () => unknown) => thrown(f, bt.BraintraceError);
    expect(catchIt(() => new bt.nn.LIF(3, { tauMem: -1 } as never))).toMatchObject({
      code: 'ERR_BRAINTRACE_INVALID_ARGUMENT',
      argument: 'LIF: tauMem',
      expected: '> 0',
      actual: '-1',
    });
    expect(catchIt(() => bt.tensor([1, 2], [3]))).toMatchObject({
      code: 'ERR_BRAINTRACE_SHAPE',
      argument: 'tensor',
      expected: 'shape (3,) needs 3 values',
      actual: '2',
    });
    expect(catchIt(() => bt.compile(null as never, bt.BPTT, {} as never))).toMatchObject({
      argument: 'compile: model',
      actual: 'null',
    });
    // Explicit fields win over the message.
    expect(new bt.ArgumentError('a: expected b; got c', { argument: 'z' }).argument).toBe('z');
    expect(new bt.ArgumentError('free text').argument).toBeUndefined();
  });

  test('unknown compile options are rejected (a misspelt key, decayOrRank for D_RTRL, vjpMethod for BPTT)', () => {
    const base = { inputShape: [2], batchSize: B };
    const expectUnknown = (f: () => unknown, key: string) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(bt.ArgumentError);
      expect((err as bt.ArgumentError).message).toMatch(new RegExp(`unknown option '${key}'`));
      expect((err as bt.ArgumentError).argument).toBe(`compile: options.${key}`);
      expect((err as bt.ArgumentError).actual).toBe(key);
    };
    expectUnknown(() => bt.compile(new DiagRNN(), bt.D_RTRL, { ...base, decayOrRank: 0.5 } as never), 'decayOrRank');
    expectUnknown(() => bt.compile(new DiagRNN(), bt.BPTT, { ...base, vjpMethod: 'multi-step' } as never), 'vjpMethod');
    expectUnknown(() => bt.compile(new DiagRNN(), bt.pp_prop, { ...base, decayOrRank: 0.5, batchsize: 2 } as never), 'batchsize');
    // The valid ones still compile.
    bt.compile(new DiagRNN(), bt.pp_prop, { ...base, decayOrRank: 0.5, vjpMethod: 'multi-step', seed: 1, dtype: 'float64' }).dispose();
  });

  test('unknown options of fit, step, schedules, optimizers and layers are rejected with the key named', async () => {
    const l = make('D_RTRL');
    const opt = new bt.optim.SGD({ lr: 0.01 });
    const a = data(2, 9);
    await expect(l.fit([a], { optimizer: opt, epoch: 2 } as never)).rejects.toMatchObject({
      code: 'ERR_BRAINTRACE_INVALID_ARGUMENT',
      argument: 'fit: options.epoch',
    });
    const x1 = { data: a.xs.data.slice(0, B * 2), shape: [B, 2], dtype: 'float64' as const };
    const y1 = { data: a.ys.data.slice(0, B), shape: [B, 1], dtype: 'float64' as const };
    await expect(l.step(x1, y1, { optimizer: opt, lr: 1 } as never)).rejects.toMatchObject({
      argument: 'streamStep: options.lr',
    });
    expect(() => bt.optim.cosineLR({ lr: 1, tMax: 3, min: 0 } as never)).toThrow(/cosineLR: unknown option 'min'/);
    expect(() => new bt.optim.Adam({ lr: 1e-3, beta1: 0.9 } as never)).toThrow(bt.ArgumentError);
    expect(() => new bt.nn.LIF(3, { tau_mem: 2 } as never)).toThrow(/LIF: unknown option 'tau_mem'/);
    expect(opt.stepCount).toBe(0);
    opt.dispose();
    l.dispose();
  });

  test('batchSize 2**31 is a typed error naming the option (no bare RangeError)', () => {
    let err: unknown;
    try {
      bt.compile(new DiagRNN(), bt.BPTT, { inputShape: [2], batchSize: 2 ** 31 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(bt.ArgumentError);
    expect(err).toMatchObject({ code: 'ERR_BRAINTRACE_INVALID_ARGUMENT', argument: 'compile: options.batchSize' });
  });

  test('a weight or state too large for a typed array is a ShapeError naming it, before allocation', () => {
    class Huge extends bt.Module {
      w = new bt.ParamState(bt.init.zeros(), [2 ** 17, 2 ** 16]);
      update(x: Tensor): Tensor {
        return bt.matmul(x, this.w.value);
      }
    }
    let err: unknown;
    try {
      bt.compile(new Huge(), bt.BPTT, { inputShape: [2 ** 17] }).dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(bt.ShapeError);
    expect((err as bt.ShapeError).message).toMatch(/w.*\(131072, 65536\) has 8589934592 elements/);
    // A state: batch 2^20 of 2^13 units.
    class Wide extends bt.Module {
      h = new bt.HiddenState([2 ** 13]);
      update(x: Tensor): Tensor {
        return bt.add(x, this.h.value);
      }
    }
    expect(() => bt.compile(new Wide(), bt.BPTT, { inputShape: [2 ** 13], batchSize: 2 ** 20 })).toThrow(bt.ShapeError);
  });

  test('a declared length far beyond the data is a ShapeError before anything is allocated', async () => {
    const l = make('D_RTRL');
    const before = process.memoryUsage().arrayBuffers;
    const huge = { data: new Float64Array(B * 2), shape: [2 ** 28, B, 2], dtype: 'float64' as const };
    const ys = { data: new Float64Array(B), shape: [2 ** 28, B, 1], dtype: 'float64' as const };
    await expect(l.etraceGrad(huge, ys)).rejects.toBeInstanceOf(bt.ShapeError);
    await expect(l.run(huge)).rejects.toMatchObject({ code: 'ERR_BRAINTRACE_SHAPE', argument: 'xs' });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    l.dispose();
  });

  test('one dtype rule: float32 data into a float64 learner is converted everywhere, gradients included', async () => {
    const l = make('BPTT');
    const a = data(3, 8);
    const f32 = (t: bt.HostTensor): bt.HostTensor => ({ data: Float32Array.from(t.data), shape: t.shape, dtype: 'float32' });
    const r = await l.etraceGrad(f32(a.xs), f32(a.ys));
    const g32 = Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, f32(g)]));
    const opt = new bt.optim.SGD({ lr: 0.1 });
    const before = l.params();
    l.applyGradients(g32, opt);
    const after = l.params();
    for (const k of Object.keys(before)) {
      const expected = Array.from(before[k].data, (v, i) => v - 0.1 * Math.fround(r.grads[k].data[i]));
      Array.from(after[k].data).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 12));
    }
    opt.dispose();
    l.dispose();
  });
});
