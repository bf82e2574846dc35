/**
 * The native runtime: build selection, info(), the binding's error contract,
 * dispose/busy semantics, async sequences and worker_threads safety.
 *
 * The CI runs this file twice: with BRAINTRACE_DEVICE unset (auto) and with
 * BRAINTRACE_DEVICE=cuda when the CUDA build exists (on the GPU-less CI machine
 * that build falls back to running its sessions on the CPU).
 */
import * as path from 'path';
import { Worker } from 'worker_threads';

import type { NativeArray, NativeBinding, NativeSession } from '../types/binding';
import { OP_NAMES } from '../lib/graph/ops';
import { DisposedError, NativeError } from '../lib/runtime/errors';
import { info } from '../lib/runtime/info';
import { bindingInfo, loadBinding, wrapNativeError } from '../lib/runtime/native';
import { encodeNodes, op } from './helpers/native';

// ---- a hand-written plan encoder (the encoding of native/include/braintrace/ops.h) ----------

const encode = encodeNodes;

/** y = tanh(x), x: Input slot 0 of shape [2, 3], float64. */
const tanhPlan = () =>
  encode(
    1,
    [
      { op: op('Input'), shape: [2, 3], ints: [0] },
      { op: op('Tanh'), inputs: [0], shape: [2, 3] },
    ],
    [[0, 1, 0]],
  );

/** A recurrent cell h' = tanh(x + w * h), output h' and new state h'; float64, shape [2, 3]. */
const cellPlan = () =>
  encode(
    1,
    [
      { op: op('Input'), shape: [2, 3], ints: [0] }, // 0 x
      { op: op('State'), shape: [2, 3], ints: [0] }, // 1 h
      { op: op('Param'), shape: [2, 3], ints: [0] }, // 2 w
      { op: op('Mul'), inputs: [2, 1], shape: [2, 3] }, // 3 w * h
      { op: op('Add'), inputs: [0, 3], shape: [2, 3] }, // 4 x + w h
      { op: op('Tanh'), inputs: [4], shape: [2, 3] }, // 5 h'
    ],
    [
      [0, 5, 0],
      [1, 5, 0],
    ],
  );

function cellReference(xs: Float64Array, w: Float64Array, h0: Float64Array, steps: number) {
  const n = h0.length;
  const h = Float64Array.from(h0);
  const out = new Float64Array(steps * n);
  for (let t = 0; t < steps; t++) {
    for (let i = 0; i < n; i++) h[i] = Math.tanh(xs[t * n + i] + w[i] * h[i]);
    out.set(h, t * n);
  }
  return { out, h };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}


// Objects made by the addon belong to the V8 context that first loaded it, while jest
// runs each test file in its own context (vm realm). loadBinding() detects that and
// adapts results into the caller's realm; these helpers check by name and tag so
// they hold either way.
const tag = (x: unknown): string => Object.prototype.toString.call(x).slice(8, -1);
const isError = (x: unknown): x is Error => tag(x) === 'Error';

function expectThrows(fn: () => unknown, name: 'TypeError' | 'RangeError' | 'Error', message?: string | RegExp) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isError(err)).toBe(true);
  expect((err as Error).name).toBe(name);
  if (typeof message === 'string') expect((err as Error).message).toBe(message);
  else if (message) expect((err as Error).message).toMatch(message);
}

const ramp = (n: number, scale = 0.1, offset = 0) => Float64Array.from({ length: n }, (_, i) => offset + scale * i);

let binding: NativeBinding;
const sessions: NativeSession[] = [];
const track = (s: NativeSession) => (sessions.push(s), s);

beforeAll(() => {
  binding = loadBinding();
});

afterAll(() => {
  for (const s of sessions) s.dispose();
});

// ---- info() and build selection ------------------------------------------------------------

describe('info()', () => {
  test('reports every field with its type', () => {
    const i = info();
    expect(typeof i.version).toBe('string');
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(['cpu', 'cuda']).toContain(i.backend);
    expect(['cpu', 'cuda']).toContain(i.build);
    expect(typeof i.cudaCompiled).toBe('boolean');
    expect(Number.isInteger(i.deviceCount)).toBe(true);
    expect(i.deviceCount).toBeGreaterThanOrEqual(0);
    expect(typeof i.fallbackReason).toBe('string');
    expect(Number.isInteger(i.threads)).toBe(true);
    expect(i.threads).toBeGreaterThanOrEqual(1);
    if (i.backend === 'cuda') expect(i.fallbackReason).toBe('');
    else expect(i.fallbackReason.length).toBeGreaterThan(0);
  });

  test('the native info() has the contract fields', () => {
    const n = binding.info();
    expect(Object.keys(n).sort()).toEqual(
      ['backend', 'cpuKernels', 'cudaCompiled', 'cudaRuntimeVersion', 'deviceCount', 'fallbackReason', 'threads'].sort(),
    );
    expect(typeof n.cudaRuntimeVersion).toBe('number');
    // The CPU kernels' run-time choices; the GEMM one is the kernel gemmKernels() reports.
    expect(Object.keys(n.cpuKernels).sort()).toEqual(['elementWise', 'gemm', 'trace']);
    expect(n.cpuKernels.gemm).toBe(binding.gemmKernels().active);
    expect(['avx2', 'portable']).toContain(n.cpuKernels.elementWise);
    expect(['avx512', 'avx2', 'portable']).toContain(n.cpuKernels.trace);
    expect(info().cpuKernels).toEqual(n.cpuKernels);
    if (!n.cudaCompiled) {
      expect(n.cudaRuntimeVersion).toBe(0);
      expect(n.deviceCount).toBe(0);
    }
    expect(binding.info('cpu').backend).toBe('cpu');
  });

  if (process.env.BRAINTRACE_DEVICE === 'cuda') {
    test('BRAINTRACE_DEVICE=cuda loads the CUDA build', () => {
      const i = info();
      expect(i.build).toBe('cuda');
      expect(i.cudaCompiled).toBe(true);
      expect(bindingInfo().path).toMatch(/braintrace\.node$/);
      if (i.deviceCount > 0) {
        expect(i.backend).toBe('cuda');
      } else {
        // No GPU or driver (the CI machine): sessions run on the CPU inside the CUDA binary.
        expect(i.backend).toBe('cpu');
        expect(i.deviceCount).toBe(0);
        expect(i.fallbackReason.length).toBeGreaterThan(0);
        expect(binding.info('cuda').backend).toBe('cpu');
      }
    });
  } else {
    test('auto/cpu selection uses the CPU build unless a CUDA device answers', () => {
      const i = info();
      const facts = bindingInfo();
      if (i.build === 'cpu') {
        expect(i.cudaCompiled).toBe(false);
        expect(i.backend).toBe('cpu');
        expect(i.deviceCount).toBe(0);
        if (facts.preference === 'auto') {
          // Either no CUDA build exists, or it exists and reported why it cannot be used, or
          // BRAINTRACE_ADDON chose a CPU-only binary (npm run test:asan).
          expect(i.fallbackReason).toMatch(/no CUDA build installed|CUDA build present but|BRAINTRACE_ADDON names a CPU-only build/);
        }
      } else {
        // auto chose the CUDA build: only with a device, or without any CPU build.
        expect(facts.preference).toBe('auto');
        expect(i.deviceCount > 0 || /no CPU build/.test(i.fallbackReason)).toBe(true);
      }
    });
  }

  test('a bad BRAINTRACE_DEVICE is an ArgumentError naming the variable', () => {
    const saved = process.env.BRAINTRACE_DEVICE;
    process.env.BRAINTRACE_DEVICE = 'gpu';
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const fresh = require('../lib/runtime/native') as typeof import('../lib/runtime/native');
        let err: Error | undefined;
        try {
          fresh.loadBinding();
        } catch (e) {
          err = e as Error;
        }
        expect(err).toBeDefined();
        expect(err!.name).toBe('ArgumentError');
        expect(err!.message).toContain('BRAINTRACE_DEVICE');
        expect(err!.message).toContain("'gpu'");
      });
    } finally {
      if (saved === undefined) delete process.env.BRAINTRACE_DEVICE;
      else process.env.BRAINTRACE_DEVICE = saved;
    }
  });

  test('memoryStats and resetPeakMemory', () => {
    const m = binding.memoryStats();
    for (const k of ['liveBytes', 'peakBytes', 'allocations'] as const) {
      expect(typeof m[k]).toBe('number');
      expect(m[k]).toBeGreaterThanOrEqual(0);
    }
    expect(m.peakBytes).toBeGreaterThanOrEqual(m.liveBytes);
    binding.resetPeakMemory();
    const after = binding.memoryStats();
    expect(after.peakBytes).toBeGreaterThanOrEqual(after.liveBytes);
  });
});

test('opNames() equals OP_NAMES', () => {
  expect(binding.opNames()).toEqual([...OP_NAMES]);
});

// ---- plans ---------------------------------------------------------------------------------

describe('createSession', () => {
  test('a valid plan gives a session with the plan metadata', () => {
    const { code, fattr } = cellPlan();
    const s = track(binding.createSession(code, fattr));
    expect(s.dtype).toBe('float64');
    expect(['cpu', 'cuda']).toContain(s.backend);
    expect(s.backend).toBe(info().backend);
    expect([s.numInputs, s.numParams, s.numStates, s.numOutputs]).toEqual([1, 1, 1, 1]);
    expect(s.hasLoss).toBe(false);
    expect(s.inputShape(0)).toEqual([2, 3]);
    expect(s.paramShape(0)).toEqual([2, 3]);
    expect(s.stateShape(0)).toEqual([2, 3]);
    expect(s.outputShape(0)).toEqual([2, 3]);
    expect(s.outputEntries()).toEqual([
      { kind: 0, index: 0, shape: [2, 3] },
      { kind: 1, index: 0, shape: [2, 3] },
    ]);
    expect(s.disposed).toBe(false);
  });

  test('wrong JS types for the plan arrays are TypeErrors naming the argument', () => {
    const { code, fattr } = tanhPlan();
    expectThrows(
      () => binding.createSession(Array.from(code) as unknown as Int32Array, fattr),
      'TypeError',
      /^code must be an Int32Array \(got Array of length \d+\)$/,
    );
    expectThrows(
      () => binding.createSession(code, new Float32Array(0) as unknown as Float64Array),
      'TypeError',
      'fattr must be a Float64Array (got Float32Array of length 0)',
    );
    expectThrows(() => binding.createSession(code, fattr, 42 as unknown as string), 'TypeError');
  });

  const malformed: [string, () => { code: Int32Array; fattr: Float64Array }][] = [
    ['empty', () => ({ code: new Int32Array(0), fattr: new Float64Array(0) })],
    ['truncated', () => {
      const p = tanhPlan();
      return { code: p.code.slice(0, p.code.length - 3), fattr: p.fattr };
    }],
    ['bad magic', () => {
      const p = tanhPlan();
      p.code[0] = 0x12345678;
      return p;
    }],
    ['bad version', () => {
      const p = tanhPlan();
      p.code[1] = 99;
      return p;
    }],
    ['bad opcode', () => {
      const p = tanhPlan();
      p.code[4 + 9] = 999; // opcode of node 1 (node 0 is 9 ints long)
      return p;
    }],
    ['negative opcode', () => {
      const p = tanhPlan();
      p.code[4 + 9] = -1;
      return p;
    }],
    ['input id >= node id', () =>
      encode(1, [
        { op: op('Input'), shape: [2, 3], ints: [0] },
        { op: op('Tanh'), inputs: [1], shape: [2, 3] },
      ], [[0, 1, 0]])],
    ['output of a missing node', () =>
      encode(1, [{ op: op('Input'), shape: [2, 3], ints: [0] }], [[0, 7, 0]])],
    ['huge node count', () => {
      const p = tanhPlan();
      p.code[3] = 0x7fffffff;
      return p;
    }],
  ];

  test.each(malformed)('a malformed plan (%s) throws ERR_BRAINTRACE_INVALID_PLAN', (_name, make) => {
    const { code, fattr } = make();
    let err: unknown;
    try {
      track(binding.createSession(code, fattr));
    } catch (e) {
      err = e;
    }
    expect(isError(err)).toBe(true);
    expect((err as { code?: string }).code).toBe('ERR_BRAINTRACE_INVALID_PLAN');
    expect((err as Error).message.length).toBeGreaterThan(0);
    const wrapped = wrapNativeError(err);
    expect(wrapped).toBeInstanceOf(NativeError);
    expect((wrapped as NativeError).code).toBe('ERR_BRAINTRACE_INVALID_PLAN');
    expect(wrapped.message).toBe((err as Error).message);
  });

  test('every truncation of a valid plan is rejected, never a crash', () => {
    const { code, fattr } = cellPlan();
    for (let len = 0; len < code.length; len++) {
      expect(codeOf(() => track(binding.createSession(code.slice(0, len), fattr)))).toBe(
        'ERR_BRAINTRACE_INVALID_PLAN',
      );
    }
  });

  test('wrapNativeError passes other errors through', () => {
    const t = new TypeError('x');
    expect(wrapNativeError(t)).toBe(t);
    const other = Object.assign(new Error('y'), { code: 'ENOENT' });
    expect(wrapNativeError(other)).toBe(other);
    expect(wrapNativeError('z')).toBeInstanceOf(Error);
  });
});

// ---- sessions ------------------------------------------------------------------------------

describe('session', () => {
  test('evaluate computes tanh and returns fresh arrays', () => {
    const { code, fattr } = tanhPlan();
    const s = track(binding.createSession(code, fattr));
    const x = ramp(6, 0.5, -1.2);
    const r1 = s.evaluate({ inputs: [x] });
    expect(r1.outputs).toHaveLength(1);
    expect(tag(r1.outputs[0])).toBe('Float64Array');
    expectClose(r1.outputs[0], Array.from(x, Math.tanh));
    // Cross-realm adaptation (jest): results are instances of this realm's classes.
    expect(r1.outputs[0] instanceof Float64Array).toBe(true);
    expect(r1.outputs instanceof Array).toBe(true);
    const r2 = s.evaluate({ inputs: [x] });
    expect(r2.outputs[0]).not.toBe(r1.outputs[0]);
    expect(r2.outputs[0].buffer).not.toBe(r1.outputs[0].buffer);
  });

  test('wrong typed arrays are TypeError / RangeError naming the argument', () => {
    const { code, fattr } = cellPlan();
    const s = track(binding.createSession(code, fattr));
    expectThrows(
      () => s.setParam(0, new Float32Array(6) as unknown as NativeArray),
      'TypeError',
      'data must be a Float64Array of length 6 (got Float32Array of length 6)',
    );
    expectThrows(
      () => s.setParam(0, new Float64Array(4)),
      'RangeError',
      'data must be a Float64Array of length 6 (got Float64Array of length 4)',
    );
    expectThrows(() => s.setParam(0, [1, 2, 3, 4, 5, 6] as unknown as NativeArray), 'TypeError', /^data must be/);
    expect(() => s.setParam(0, new Float64Array(4))).toThrow(RangeError); // same-realm error class
    expectThrows(
      () => s.setParam(3, new Float64Array(6)),
      'RangeError',
      'slot must be an integer in [0, 1) (got number 3)',
    );
    expectThrows(() => s.setParam('0' as unknown as number, new Float64Array(6)), 'TypeError', /^slot must be/);
    expectThrows(() => s.setState(0, new Float64Array(5)), 'RangeError', /^data must be a Float64Array of length 6/);
    expectThrows(
      () => s.evaluate({ inputs: [new Float32Array(6)] } as never),
      'TypeError',
      'inputs[0] must be a Float64Array of length 6 (got Float32Array of length 6)',
    );
    expectThrows(() => s.evaluate({ inputs: [] }), 'RangeError', 'inputs must be an Array of length 1 (got Array of length 0)');
    expectThrows(() => s.evaluate(undefined as never), 'TypeError', /^args must be an object/);
    expectThrows(
      () => s.runSequence({ steps: 2, inputs: [new Float64Array(6)] }),
      'RangeError',
      'inputs[0] must be a Float64Array of length 12 (got Float64Array of length 6)',
    );
    expectThrows(() => s.runSequence({ steps: 0, inputs: [new Float64Array(0)] }), 'RangeError', /^steps must be/);
    expectThrows(() => s.runSequence({ steps: 1.5, inputs: [new Float64Array(6)] }), 'RangeError', /^steps must be/);
    expectThrows(
      () => s.runSequence({ steps: 1, inputs: [new Float64Array(6)], lossScale: new Float64Array(3) }),
      'RangeError',
      'lossScale must be a Float64Array of length 1 (got Float64Array of length 3)',
    );
  });

  test('set/get param and state round-trip into fresh arrays', () => {
    const { code, fattr } = cellPlan();
    const s = track(binding.createSession(code, fattr));
    const w = ramp(6, 0.05, 0.2);
    s.setParam(0, w);
    const got = s.getParam(0);
    expect(tag(got)).toBe('Float64Array');
    expect(Array.from(got)).toEqual(Array.from(w));
    w[0] = 123; // the session holds a copy
    expect(s.getParam(0)[0]).not.toBe(123);
    const h = ramp(6, -0.1, 0.3);
    s.setState(0, h);
    expect(Array.from(s.getState(0))).toEqual(Array.from(h));
  });

  test('runSequence matches a JS reference and advances the state', () => {
    const { code, fattr } = cellPlan();
    const s = track(binding.createSession(code, fattr));
    const w = ramp(6, 0.1, -0.2);
    const h0 = ramp(6, 0.05, -0.1);
    s.setParam(0, w);
    s.setState(0, h0);
    const T = 5;
    const xs = ramp(T * 6, 0.03, -0.4);
    const r = s.runSequence({ steps: T, inputs: [xs] });
    const ref = cellReference(xs, w, h0, T);
    expect(r.outputs).toHaveLength(1);
    expectClose(r.outputs[0], ref.out);
    expect(tag(r.losses)).toBe('Float64Array');
    expect(r.losses).toHaveLength(0);
    expect(r.paramGrads).toBeUndefined();
    expectClose(s.getState(0), ref.h);
  });

  test('dispose() frees the session; later calls throw ERR_BRAINTRACE_DISPOSED', () => {
    const { code, fattr } = cellPlan();
    const s = binding.createSession(code, fattr);
    s.dispose();
    expect(s.disposed).toBe(true);
    expect(() => s.dispose()).not.toThrow();
    expect(codeOf(() => s.getParam(0))).toBe('ERR_BRAINTRACE_DISPOSED');
    expect(codeOf(() => s.setParam(0, new Float64Array(6)))).toBe('ERR_BRAINTRACE_DISPOSED');
    expect(codeOf(() => s.evaluate({ inputs: [new Float64Array(6)] }))).toBe('ERR_BRAINTRACE_DISPOSED');
    expect(codeOf(() => s.numInputs)).toBe('ERR_BRAINTRACE_DISPOSED');
    expect(codeOf(() => s.inputShape(0))).toBe('ERR_BRAINTRACE_DISPOSED');
    const wrapped = wrapNativeError((() => {
      try {
        s.getState(0);
      } catch (e) {
        return e;
      }
    })());
    // Issue 8: a disposed session is its own error class (same stable code as before).
    expect(wrapped).toBeInstanceOf(DisposedError);
    expect((wrapped as DisposedError).code).toBe('ERR_BRAINTRACE_DISPOSED');
  });

  test('runSequenceAsync resolves with the same values as runSequence', async () => {
    const { code, fattr } = cellPlan();
    const a = track(binding.createSession(code, fattr));
    const b = track(binding.createSession(code, fattr));
    const w = ramp(6, 0.1, -0.3);
    const T = 7;
    const xs = ramp(T * 6, 0.02, -0.5);
    for (const s of [a, b]) s.setParam(0, w);
    const syncR = a.runSequence({ steps: T, inputs: [xs] });
    const p = b.runSequenceAsync({ steps: T, inputs: [xs] });
    xs.fill(0); // the worker copied its inputs at the call
    const asyncR = await p;
    expectClose(asyncR.outputs[0], syncR.outputs[0], 0);
    expectClose(b.getState(0), a.getState(0), 0);
  });

  test('a second call while runSequenceAsync is in flight fails with ERR_BRAINTRACE_BUSY', async () => {
    const { code, fattr } = cellPlan();
    const s = track(binding.createSession(code, fattr));
    const T = 200;
    const xs = ramp(T * 6, 0.001);
    const first = s.runSequenceAsync({ steps: T, inputs: [xs] });
    // The busy flag is set synchronously and cleared only when the first call settles
    // (on a later turn of the event loop), so these calls are guaranteed to see it.
    await expect(s.runSequenceAsync({ steps: T, inputs: [xs] })).rejects.toMatchObject({
      code: 'ERR_BRAINTRACE_BUSY',
    });
    expect(codeOf(() => s.getParam(0))).toBe('ERR_BRAINTRACE_BUSY');
    expect(s.inputShape(0)).toEqual([2, 3]); // metadata stays readable
    const r = await first;
    expect(r.outputs[0]).toHaveLength(T * 6);
    // Free again afterwards.
    await expect(s.runSequenceAsync({ steps: 1, inputs: [new Float64Array(6)] })).resolves.toBeDefined();
  });

  test('runSequenceAsync rejects (not throws) on bad arguments and after dispose', async () => {
    const { code, fattr } = cellPlan();
    const s = binding.createSession(code, fattr);
    await expect(s.runSequenceAsync({ steps: 1, inputs: [new Float32Array(6)] } as never)).rejects.toMatchObject({
      name: 'TypeError',
    });
    s.dispose();
    await expect(s.runSequenceAsync({ steps: 1, inputs: [new Float64Array(6)] })).rejects.toMatchObject({
      code: 'ERR_BRAINTRACE_DISPOSED',
    });
  });

  test('dispose() during runSequenceAsync: the run still settles, the session is disposed at once', async () => {
    const { code, fattr } = cellPlan();
    const s = binding.createSession(code, fattr);
    const T = 500;
    const p = s.runSequenceAsync({ steps: T, inputs: [ramp(T * 6, 0.001)] });
    s.dispose();
    expect(s.disposed).toBe(true);
    const r = await p;
    expect(r.outputs[0]).toHaveLength(T * 6);
    expect(codeOf(() => s.getState(0))).toBe('ERR_BRAINTRACE_DISPOSED');
  });
});

// ---- worker_threads --------------------------------------------------------------------------

describe('worker_threads', () => {
  // Each worker loads the same .node file (a context-aware addon gets one instance
  // per environment), creates a session, and keeps a long runSequenceAsync in flight.
  const workerSource = `
    const { parentPort, workerData } = require('worker_threads');
    const b = require(workerData.file);
    const s = b.createSession(new Int32Array(workerData.code), new Float64Array(workerData.fattr));
    s.setParam(0, new Float64Array(6).fill(0.5));
    s.setState(0, new Float64Array(6));
    const small = s.runSequence({ steps: 3, inputs: [new Float64Array(18).fill(0.1)] });
    const T = workerData.steps;
    let runs = 0;
    const loop = () => {
      s.runSequenceAsync({ steps: T, inputs: [new Float64Array(T * 6).fill(0.01)] }).then(() => {
        runs++;
        if (workerData.finish && runs === 2) {
          parentPort.postMessage({ done: true, first: Array.from(small.outputs[0].slice(0, 6)) });
        } else {
          loop();
        }
      }, (e) => parentPort.postMessage({ error: String(e && e.message), code: e && e.code }));
      parentPort.postMessage({ queued: runs });
    };
    loop();
  `;

  function startWorker(finish: boolean, steps: number) {
    const { code, fattr } = cellPlan();
    return new Worker(workerSource, {
      eval: true,
      workerData: { file: bindingInfo().path, code: Array.from(code), fattr: Array.from(fattr), finish, steps },
    });
  }

  test('two workers run sessions; terminating one with work in flight leaves the process alive', async () => {
    const victim = startWorker(false, 20000);
    const survivor = startWorker(true, 200);

    const survivorDone = new Promise<{ first: number[] }>((resolve, reject) => {
      survivor.on('message', (m: { done?: boolean; error?: string; first: number[] }) => {
        if (m.error) reject(new Error(m.error));
        if (m.done) resolve(m);
      });
      survivor.on('error', reject);
    });
    const victimQueued = new Promise<void>((resolve, reject) => {
      victim.on('message', (m: { queued?: number; error?: string }) => {
        if (m.error) reject(new Error(m.error));
        if (m.queued !== undefined) resolve();
      });
      victim.on('error', reject);
    });

    await victimQueued; // a long runSequenceAsync is now in flight in the victim
    const exitCode = await victim.terminate();
    expect(typeof exitCode).toBe('number');

    const r = await survivorDone;
    // From h0 = 0 the first step's output is tanh(0.1 + 0.5 * 0).
    expect(r.first[0]).toBeCloseTo(Math.tanh(0.1), 12);
    await survivor.terminate();

    // The main thread's addon instance still works.
    const { code, fattr } = tanhPlan();
    const s = track(binding.createSession(code, fattr));
    expectClose(s.evaluate({ inputs: [ramp(6)] }).outputs[0], Array.from(ramp(6), Math.tanh));
  });

  test('the loader picks a file that exists under the package root', () => {
    const facts = bindingInfo();
    expect(path.isAbsolute(facts.path)).toBe(true);
    expect(facts.path.startsWith(path.resolve(__dirname, '..'))).toBe(true);
  });
});
