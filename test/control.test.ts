/**
 * Cancellation and progress of long calls (issue 8 item 6): an AbortSignal stops the
 * native call in flight within milliseconds, the state afterwards is the documented one
 * (compared with a fresh run over the finished steps), progress is monotone with a final
 * total, worker.terminate() during a long etraceGrad returns within 100 ms, and the
 * learner stays usable after a cancel.
 */
import * as path from 'path';
import { spawn } from 'child_process';
import { Worker } from 'worker_threads';

import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import { encodePlan } from '../lib/compiler/plan';
import { traceModel } from '../lib/dsl/trace';
import { AbortError, ArgumentError } from '../lib/runtime/errors';
import { loadBinding } from '../lib/runtime/native';

const B = 8;
const I = 4;
const H = 32;
// Latency bounds are the contract on a normal build; a sanitizer build (npm run test:asan sets
// BRAINTRACE_TEST_TIME_SCALE) runs everything several times slower and checks memory safety.
const TIME_SCALE = Number(process.env.BRAINTRACE_TEST_TIME_SCALE ?? '1') || 1;

/** Diagonal-recurrence tanh RNN with a readout (D_RTRL-exact, cheap per step). */
class RNN extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [I, H]);
  u = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [H]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
  h = new bt.HiddenState([H]);
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.elementWise(this.u, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

type Algo = 'D_RTRL' | 'pp_prop' | 'BPTT';

function make(algo: Algo, extra: Record<string, unknown> = {}): bt.Learner {
  const o = { inputShape: [I], batchSize: B, dtype: 'float64' as const, seed: 3, ...extra };
  if (algo === 'BPTT') return bt.compile(new RNN(), bt.BPTT, o);
  if (algo === 'pp_prop') return bt.compile(new RNN(), bt.pp_prop, { ...o, decayOrRank: 0.5 });
  return bt.compile(new RNN(), bt.D_RTRL, o);
}

function data(T: number): { xs: bt.HostTensor; ys: bt.HostTensor } {
  const xs = new Float64Array(T * B * I).map((_, i) => Math.sin(0.37 * i));
  const ys = new Float64Array(T * B * 2).map((_, i) => Math.cos(0.11 * i));
  return { xs: bt.tensor(xs, [T, B, I], 'float64'), ys: bt.tensor(ys, [T, B, 2], 'float64') };
}

function slice(t: bt.HostTensor, n: number): bt.HostTensor {
  const stride = t.data.length / t.shape[0];
  return { data: t.data.slice(0, n * stride), shape: [n, ...t.shape.slice(1)], dtype: t.dtype };
}

function traces(l: bt.Learner): Record<string, bt.HostTensor> {
  return l instanceof bt.OnlineLearner ? l.traces() : {};
}

function expectSame(a: Record<string, bt.HostTensor>, b: Record<string, bt.HostTensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) expect(Array.from(a[k].data)).toEqual(Array.from(b[k].data));
}

/** Starts `call(signal)`, aborts once `onProgress` has seen `afterDone` units, returns the rejection and the abort-to-rejection time. */
async function abortMidway(
  call: (o: { signal: AbortSignal; onProgress: (p: bt.CallProgress) => void }) => Promise<unknown>,
  afterDone: number,
): Promise<{ err: unknown; ms: number; seen: bt.CallProgress[] }> {
  const ac = new AbortController();
  const seen: bt.CallProgress[] = [];
  let abortedAt = 0;
  const p = call({
    signal: ac.signal,
    onProgress: (q) => {
      seen.push(q);
      if (abortedAt === 0 && q.done >= afterDone) {
        abortedAt = performance.now();
        ac.abort();
      }
    },
  });
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  return { err, ms: performance.now() - abortedAt, seen };
}

const T_LONG = 20000;
// Calls that keep no tape (forward-only `run`, fit's D_RTRL) take this many steps, so that on a
// fast machine the call is still in flight when the abort comes (on an Intel AVX-512 machine,
// 20000 steps of BPTT `run` and of fit finished before the abort fired); their memory does not
// grow with T.
const T_FLAT = 200000;

describe('cancel mid-call', () => {
  test.each<[Algo, 'etraceGrad' | 'run']>([
    ['D_RTRL', 'etraceGrad'],
    ['pp_prop', 'etraceGrad'],
    ['BPTT', 'etraceGrad'],
    ['D_RTRL', 'run'],
    ['BPTT', 'run'],
  ])('%s %s: stops within 50 ms of abort(), keeps the documented state', async (algo, method) => {
    const l = make(algo);
    const T = method === 'run' ? T_FLAT : T_LONG;
    const { xs, ys } = data(T);
    const before = { states: l.states(), traces: traces(l) };
    const t0 = performance.now();
    const { err, ms, seen } = await abortMidway(
      (o) => (method === 'run' ? l.run(xs, o) : l.etraceGrad(xs, ys, o)),
      200,
    );
    const total = performance.now() - t0;
    expect(err).toBeInstanceOf(AbortError);
    const e = err as AbortError;
    expect(e.code).toBe('ERR_BRAINTRACE_ABORTED');
    // The point: the call stops within a few steps of the abort, not at the end of T steps.
    // 50 ms is the contract; the margin covers CI noise on shared cores.
    expect(ms).toBeLessThan(150 * TIME_SCALE);
    expect(total).toBeLessThan(20000 * TIME_SCALE);
    expect(seen.length).toBeGreaterThan(0);
    const after = { states: l.states(), traces: traces(l) };
    if (algo === 'BPTT' && method === 'etraceGrad') {
      // BPTT writes nothing back until its reverse sweep has finished.
      expect(e.stepsDone).toBe(0);
      expectSame(after.states, before.states);
    } else {
      expect(e.stepsDone).toBeGreaterThanOrEqual(200);
      expect(e.stepsDone).toBeLessThan(T);
      // The same as a fresh learner run over exactly the finished steps.
      const fresh = make(algo);
      if (l instanceof bt.OnlineLearner) await (fresh as bt.OnlineLearner).etraceEvolve(slice(xs, e.stepsDone));
      else await fresh.run(slice(xs, e.stepsDone));
      expectSame(after.states, fresh.states());
      expectSame(after.traces, traces(fresh));
      if (fresh instanceof bt.OnlineLearner) expect((l as bt.OnlineLearner).traceSteps()).toBe(e.stepsDone);
      fresh.dispose();
    }
    // Usable afterwards: a call gives the same result as on a learner in the same state.
    const short = data(7);
    const twin = make(algo);
    twin.setStates(l.states());
    if (l instanceof bt.OnlineLearner) (twin as bt.OnlineLearner).setTraces(traces(l), l.traceSteps());
    const a = await l.etraceGrad(short.xs, short.ys);
    const b = await twin.etraceGrad(short.xs, short.ys);
    expect(Array.from(a.losses)).toEqual(Array.from(b.losses));
    expectSame(a.grads, b.grads);
    l.dispose();
    twin.dispose();
  });

  test('windows (multi-step chunks): the state after a cancel equals a fresh run over stepsDone steps', async () => {
    const l = make("D_RTRL", { vjpMethod: "multi-step" }) as bt.OnlineLearner;
    const { xs, ys } = data(8000);
    const { err } = await abortMidway((o) => l.etraceGrad(xs, ys, { ...o, chunkSize: 4 }), 400);
    expect(err).toBeInstanceOf(AbortError);
    const done = (err as AbortError).stepsDone;
    expect(done).toBeGreaterThan(0);
    const fresh = make('D_RTRL', { vjpMethod: 'multi-step' }) as bt.OnlineLearner;
    await fresh.etraceEvolve(slice(xs, done));
    expectSame(l.states(), fresh.states());
    expectSame(traces(l), traces(fresh));
    expect((l as bt.OnlineLearner).traceSteps()).toBe(done);
    l.dispose();
    fresh.dispose();
  });

  test('an already-aborted signal rejects before any native work', async () => {
    const l = make('D_RTRL');
    const { xs, ys } = data(50);
    const before = { states: l.states(), traces: traces(l) };
    const ac = new AbortController();
    ac.abort();
    const seen: unknown[] = [];
    for (const call of [
      () => l.etraceGrad(xs, ys, { signal: ac.signal, onProgress: (p) => seen.push(p) }),
      () => l.run(xs, { signal: ac.signal }),
      () => (l as bt.OnlineLearner).etraceEvolve(xs, { signal: ac.signal }),
    ]) {
      const e = await call().then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(AbortError);
      expect((e as AbortError).stepsDone).toBe(0);
    }
    expect(seen).toEqual([]);
    expectSame(l.states(), before.states);
    expectSame(traces(l), before.traces);
    expect((l as bt.OnlineLearner).traceSteps()).toBe(0);
    l.dispose();
  });

  test('unknown option keys and bad signal / onProgress values are typed errors', async () => {
    const l = make('BPTT');
    const { xs, ys } = data(3);
    await expect(l.etraceGrad(xs, ys, { sigal: undefined } as never)).rejects.toThrow(ArgumentError);
    await expect(l.etraceGrad(xs, ys, { sigal: undefined } as never)).rejects.toThrow(/unknown option 'sigal'/);
    await expect(l.run(xs, { onprogress: () => {} } as never)).rejects.toThrow(/unknown option 'onprogress'/);
    const online = make('D_RTRL') as bt.OnlineLearner;
    await expect(online.run(xs, { chunkSize: 1 } as never)).rejects.toThrow(/unknown option 'chunkSize'/);
    await expect(online.etraceEvolve(xs, { sginal: undefined } as never)).rejects.toThrow(/unknown option 'sginal'/);
    online.dispose();
    await expect(l.etraceGrad(xs, ys, { signal: {} as AbortSignal })).rejects.toThrow(/signal: expected an AbortSignal/);
    await expect(l.etraceGrad(xs, ys, { onProgress: 3 as never })).rejects.toThrow(/onProgress: expected a function/);
    l.dispose();
  });
});

describe('the binding contract', () => {
  function session() {
    const traced = traceModel(new RNN(), { inputShapes: [[I]], batchSize: B, dtype: 'float64' });
    const plan = encodePlan(traced.graph);
    return loadBinding().createSession(plan.code, plan.fattr);
  }
  test('cancelRun, the control argument and setFiniteChecks', async () => {
    const s = session();
    const T = 400000; // long enough that the first progress report (after ~50 ms) comes before the end
    const args = { steps: T, inputs: [new Float64Array(T * B * I).fill(0.25)] };
    expect(s.cancelRun()).toBe(false); // nothing in flight
    // A bad control argument rejects with a TypeError that has the argument code.
    for (const bad of [3, { onProgres: () => {} }, { onProgress: 'x' }]) {
      const e = await s.runSequenceAsync(args, bad as never).then(
        () => null,
        (x: unknown) => x as { name: string; code: string },
      );
      expect(e?.name).toBe('TypeError');
      expect(e?.code).toBe('ERR_BRAINTRACE_INVALID_ARGUMENT');
    }
    const dones: number[] = [];
    let firstReport!: () => void;
    const reported = new Promise<void>((r) => (firstReport = r));
    const p = s.runSequenceAsync(args, {
      onProgress: (d, t) => {
        dones.push(d);
        expect(t).toBe(T);
        firstReport();
      },
    });
    // Cancel as soon as the call has reported progress (a fixed sleep raced the end of the call).
    await reported;
    expect(s.cancelRun()).toBe(true);
    const e = (await p.then(
      () => null,
      (x: unknown) => x,
    )) as { code: string; stepsDone: number };
    expect(e.code).toBe('ERR_BRAINTRACE_ABORTED');
    expect(e.stepsDone).toBeGreaterThan(0);
    expect(e.stepsDone).toBeLessThan(T);
    expect(s.cancelRun()).toBe(false);
    expect(() => s.setFiniteChecks('yes' as never, true)).toThrow(TypeError);
    s.dispose();
  });
});

describe('progress', () => {
  test.each<[Algo, number]>([
    ['D_RTRL', 3000],
    ['BPTT', 3000],
  ])('%s etraceGrad: monotone, throttled, final report is the total', async (algo, T) => {
    const l = make(algo);
    const { xs, ys } = data(T);
    const seen: bt.CallProgress[] = [];
    const times: number[] = [];
    const r = await l.etraceGrad(xs, ys, {
      onProgress: (p) => {
        seen.push(p);
        times.push(performance.now());
      },
    });
    expect(r.losses).toHaveLength(T);
    const total = algo === 'BPTT' ? 2 * T : T;
    expect(seen.length).toBeGreaterThanOrEqual(1);
    for (const p of seen) expect(p.total).toBe(total);
    for (let i = 1; i < seen.length; i++) expect(seen[i].done).toBeGreaterThan(seen[i - 1].done);
    expect(seen[seen.length - 1].done).toBe(total);
    // Throttled: consecutive reports (except the final one) at least ~50 ms apart.
    for (let i = 1; i < times.length - 1; i++) expect(times[i] - times[i - 1]).toBeGreaterThan(40);
    l.dispose();
  });

  test('a long call reports intermediate progress; a throwing onProgress cancels the call with its error', async () => {
    const l = make('D_RTRL');
    const { xs, ys } = data(T_LONG);
    const seen: number[] = [];
    const boom = new Error('stop from onProgress');
    const e = await l
      .etraceGrad(xs, ys, {
        onProgress: (p) => {
          seen.push(p.done);
          if (seen.length === 2) throw boom;
        },
      })
      .then(
        () => null,
        (x: unknown) => x,
      );
    expect(e).toBe(boom);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBeLessThan(T_LONG);
    // Usable afterwards.
    expect((await l.etraceGrad(slice(xs, 5), slice(ys, 5))).losses).toHaveLength(5);
    l.dispose();
  });
});

describe('fit', () => {
  test("fit's AbortSignal cancels the native call in flight (not only between batches)", async () => {
    const l = make('D_RTRL');
    const { xs, ys } = data(T_FLAT);
    const ac = new AbortController();
    const opt = new bt.optim.SGD({ lr: 0.01 });
    const before = l.params();
    const timer = setTimeout(() => ac.abort(), 200);
    const t0 = performance.now();
    const r = await l.fit([{ xs, ys }], { optimizer: opt, signal: ac.signal });
    const ms = performance.now() - t0;
    clearTimeout(timer);
    expect(r.aborted).toBe(true);
    expect(r.updates).toBe(0);
    // The whole sequence alone takes seconds; the abort came at 200 ms.
    expect(ms).toBeLessThan(600 * TIME_SCALE);
    expectSame(l.params(), before);
    l.dispose();
    opt.dispose();
  });
});

/**
 * JS source that compiles the TypeScript sources on the fly (no build step needed) and
 * defines `bt`, a D_RTRL learner `l` and a long sequence `xs`, `ys` (T = 200 000).
 * `root` is a JS expression giving the package root.
 */
function longGradScript(root: string): string {
  return `
      const { parentPort, workerData } = require('worker_threads');
      const fs = require('fs');
      const ts = require('typescript');
      require.extensions['.ts'] = (m, filename) => {
        const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
          fileName: filename,
        });
        m._compile(out.outputText, filename);
      };
      const bt = require(${root} + '/lib/index.ts');
      class RNN extends bt.Module {
        constructor() {
          super();
          this.w = new bt.ParamState(bt.init.xavierNormal(), [4, 32]);
          this.u = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [32]);
          this.ro = new bt.ParamState(bt.init.xavierNormal(), [32, 2]);
          this.h = new bt.HiddenState([32]);
        }
        update(x) {
          const h = this.h.value;
          this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w), bt.elementWise(this.u, (y) => bt.mul(y, h))));
          return bt.matmul(this.h.value, this.ro.value);
        }
      }
      const T = 200000, B = 8;
      const l = bt.compile(new RNN(), bt.D_RTRL, { inputShape: [4], batchSize: B, dtype: 'float64' });
      const xs = bt.tensor(new Float64Array(T * B * 4).fill(0.5), [T, B, 4], 'float64');
      const ys = bt.tensor(new Float64Array(T * B * 2), [T, B, 2], 'float64');`;
}

describe('worker threads and process exit', () => {
  test('worker.terminate() during a long etraceGrad returns within 100 ms', async () => {
    const root = path.join(__dirname, '..');
    const code = `${longGradScript('workerData.root')}
      l.etraceGrad(xs, ys, { onProgress: (p) => parentPort.postMessage(p) })
        .then(() => parentPort.postMessage('finished'), (e) => parentPort.postMessage('error ' + e.message));
    `;
    const worker = new Worker(code, { eval: true, workerData: { root } });
    const messages: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: unknown) => {
        messages.push(m);
        if (typeof m === 'object') resolve(); // a progress report: the native call is running
        else reject(new Error(`worker: ${String(m)}`));
      });
      worker.on('error', reject);
    });
    const t0 = performance.now();
    await worker.terminate();
    const ms = performance.now() - t0;
    expect(messages).not.toContain('finished');
    expect(ms).toBeLessThan(100 * TIME_SCALE);
  });

  test('process.exit() during a long etraceGrad exits at once and cleanly', async () => {
    const root = path.join(__dirname, '..');
    const code = `${longGradScript(JSON.stringify(root))}
      let first = true;
      l.etraceGrad(xs, ys, {
        onProgress: () => {
          if (!first) return;
          first = false;
          process.stdout.write('started\\n', () => process.exit(0));
        },
      }).then(() => process.stdout.write('finished\\n'));
    `;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let startedAt = 0;
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (startedAt === 0 && out.includes('started')) startedAt = performance.now();
      });
      child.on('exit', (c) => resolve(c));
    });
    const ms = performance.now() - startedAt;
    expect(err).toBe('');
    expect(out).toBe('started\n');
    expect(status).toBe(0);
    expect(startedAt).toBeGreaterThan(0);
    // Exit includes tearing down V8 and the process: the 100 ms contract, measured outside it.
    expect(ms).toBeLessThan(150 * TIME_SCALE);
  });
});
