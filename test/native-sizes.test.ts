/**
 * Overflow-checked sizes in the native core (issue 8, item 1; docs/hardening.md, "Sizes,
 * sanitizers and fuzzing"). Hostile plans, Jacobian requests, sequence lengths and online
 * configurations whose sizes overflow int64 / size_t, or pass the size limit
 * (kMaxTotalBytes = 2^42 bytes, braintrace/api.h), through the raw binding: each must be a
 * typed error (ERR_BRAINTRACE_INVALID_PLAN / ERR_BRAINTRACE_INVALID_ARGUMENT) whose message
 * names the node or argument and the sizes, never an allocation of a short buffer.
 *
 * None of these tests allocates more than a few tens of MB: every refusal happens before the
 * big allocation. Also run under ASan+UBSan by `npm run test:asan`.
 */
import type { NativeArray, NativeSession } from '../types/binding';
import { PLAN_MAGIC, PLAN_VERSION } from '../lib/compiler/plan';
import { loadBinding } from '../lib/runtime/native';
import { encodeNodes, op } from './helpers/native';

const binding = loadBinding();
const encode = encodeNodes;

interface NativeErr {
  code?: string;
  message: string;
}

/** Runs fn, expects a native error with `code`, returns it. */
function nativeError(fn: () => unknown, code: string): NativeErr {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Error);
  // Compared with the message so that a failure shows it.
  expect([(err as NativeErr).code, (err as NativeErr).message]).toEqual([code, expect.any(String)]);
  return err as NativeErr;
}

const sessions: NativeSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.dispose();
});
function create(p: { code: Int32Array; fattr: Float64Array }): NativeSession {
  const s = binding.createSession(p.code, p.fattr);
  sessions.push(s);
  return s;
}

describe('plan sizes (decode_plan, session init)', () => {
  test('the issue case: per-node sizes pass but the byte sum wraps size_t to 64 bytes', () => {
    // 2^22 float32 nodes of [2^20, 2^20] (2^40 values, 4 TiB each, at the per-node limit):
    // node 0 an Input, then a chain of Neg; plus one Input of 16 values. Unchecked, the step
    // total is 2^62 + 16 values: 4 * that = 2^64 + 64 bytes wraps to a 64-byte buffer that an
    // evaluate overruns with 2^40 writes. The code array is 151 MB; decoding stops at node 1.
    const nBig = 2 ** 22;
    const D = 2 ** 20;
    const rec = 9; // ints per node record below
    const code = new Int32Array(4 + nBig * rec + (rec - 1) + 1 + 3);
    code.set([PLAN_MAGIC, PLAN_VERSION, 0, nBig + 1], 0);
    let p = 4;
    code.set([op('Input'), 0, 2, D, D, 1, 0, 0, 0], p);
    p += rec;
    const neg = op('Neg');
    for (let i = 1; i < nBig; i++, p += rec) {
      code[p] = neg;
      code[p + 1] = 1;
      code[p + 2] = i - 1;
      code[p + 3] = 2;
      code[p + 4] = D;
      code[p + 5] = D;
      // ints count, float count, float offset: 0
    }
    code.set([op('Input'), 0, 1, 16, 1, 1, 0, 0], p);
    p += rec - 1;
    code.set([1, 0, nBig, 0], p);
    p += 4;
    expect(p).toBe(code.length);
    const err = nativeError(() => create({ code, fattr: new Float64Array(0) }), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/node 1 \(Neg\) \[1048576, 1048576\]/);
    expect(err.message).toMatch(/1099511627776 values of 4 bytes/);
    expect(err.message).toMatch(/size limit of 2\^42 bytes/);
  });

  test('a sum of node sizes past the limit (no overflow) names the node that passes it', () => {
    const plan = encode(
      0,
      [
        { op: op('Input'), shape: [2 ** 20, 2 ** 20], ints: [0] },
        { op: op('Input'), shape: [2, 3], ints: [1] },
        { op: op('Tanh'), inputs: [1], shape: [2, 3] },
      ],
      [[0, 2, 0]],
    );
    const err = nativeError(() => create(plan), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/node 1 \(Input\) \[2, 3\] \(6 values of 4 bytes\) brings the total past/);
    expect(err.message).toMatch(/4398046511104 bytes before it/);
  });

  test('one node past the limit (float64 [2^20, 2^20] is 8 TiB)', () => {
    const plan = encode(1, [{ op: op('Input'), shape: [2 ** 20, 2 ** 20], ints: [0] }], [[0, 0, 0]]);
    const err = nativeError(() => create(plan), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/node 0 \(Input\)/);
    expect(err.message).toMatch(/size limit of 2\^42 bytes/);
  });

  test('a zero dim does not hide the other dims: [0, 2^31-1, 2^31-1, 2^31-1] is refused', () => {
    // numel 0, but strides and reduced extents multiply the non-zero dims (2^93).
    const big = 2 ** 31 - 1;
    const plan = encode(0, [{ op: op('Input'), shape: [0, big, big, big], ints: [0] }], [[0, 0, 0]]);
    const err = nativeError(() => create(plan), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/node 0 \(Input\): shape \[0, 2147483647, 2147483647, 2147483647\]/);
  });

  test('numel is never multiplied past int64 before the size check (fuzzer find)', () => {
    // plan_fuzzer found numel * dim overflowing int64 (UB) one dim before the extent check
    // refused the shape (fuzz/regressions/plan_fuzzer/); UBSan flags it under test:asan.
    const big = 2 ** 31 - 1;
    // [2^31-1, 8, 2^31-1]: numel 2^34 passes at dim 1, then 2^34 * 2^31 overflows at dim 2.
    const plan = encode(0, [{ op: op('Input'), shape: [big, 8, big], ints: [0] }], [[0, 0, 0]]);
    const err = nativeError(() => create(plan), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/node 0 \(Input\): shape \[2147483647, 8, 2147483647\]/);
  });

  test("a plan within the limit whose session buffers together pass it (session init)", () => {
    // 2 TiB of float32 values: the plan passes, but init also needs the step block and
    // the tangent and cotangent slots of the same size.
    const plan = encode(
      0,
      [
        { op: op('Input'), shape: [2 ** 20, 2 ** 19], ints: [0] },
        { op: op('Tanh'), inputs: [0], shape: [2 ** 20, 2 ** 19] },
      ],
      [[0, 1, 0]],
    );
    const err = nativeError(() => create(plan), 'ERR_BRAINTRACE_INVALID_PLAN');
    expect(err.message).toMatch(/^session init: the session's buffers together: the (tangents|cotangents)/);
  });

  test('just below the limits still works (a small plan is unaffected)', () => {
    const plan = encode(
      1,
      [
        { op: op('Input'), shape: [0, 2 ** 20, 2 ** 10], ints: [0] }, // 0 values, extent 2^30
        { op: op('Input'), shape: [2, 3], ints: [1] },
        { op: op('Tanh'), inputs: [1], shape: [2, 3] },
      ],
      [[0, 2, 0]],
    );
    const s = create(plan);
    const r = s.evaluate({ inputs: [new Float64Array(0), new Float64Array([0, 1, 2, 3, 4, 5])] });
    expect(Array.from(r.outputs[0])).toEqual([0, 1, 2, 3, 4, 5].map(Math.tanh));
  });
});

// A recurrent plan with one State of shape [1, W], float32: h' = tanh(h), output h'.
function statePlan(width: number) {
  return encode(
    0,
    [
      { op: op('State'), shape: [1, width], ints: [0] },
      { op: op('Tanh'), inputs: [0], shape: [1, width] },
    ],
    [
      [0, 1, 0],
      [1, 1, 0],
    ],
  );
}

describe('request sizes (Jacobians, sequence lengths)', () => {
  test('a Jacobian request with P * S * S past the limit', () => {
    const W = 2 ** 21; // one member of width 2^21: S * S = 2^42 values of 4 bytes
    const s = create(statePlan(W));
    const jac = { kind: 'hid2hid' as const, positions: 1, members: [{ leafNode: 0, newNode: 1, width: W }] };
    let err = nativeError(() => s.evaluate({ inputs: [], jacobians: [jac] }), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^evaluate: jacobians\[0\]: the result \(positions \* S \* S\): 1 \* 2097152 \* 2097152 values of 4 bytes exceed the size limit/);
    err = nativeError(() => s.runSequence({ steps: 1, inputs: [], jacobians: [jac] }), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^run_sequence: jacobians\[0\]/);
  });

  test('a Jacobian request within the limit per step but not times T', () => {
    const W = 2 ** 10; // S * S = 2^20 values per step; 2^21 steps: 2^41 values of 4 bytes
    const s = create(statePlan(W));
    const jac = { kind: 'hid2hid' as const, positions: 1, members: [{ leafNode: 0, newNode: 1, width: W }] };
    const err = nativeError(
      () => s.runSequence({ steps: 2 ** 21, inputs: [], jacobians: [jac] }),
      'ERR_BRAINTRACE_INVALID_ARGUMENT',
    );
    expect(err.message).toMatch(/^run_sequence: jacobians\[0\] \(steps \* values per step\): 2097152 \* 1048576 values/);
  });

  test('run_sequence: T * step values past the limit, and T results summed past it', () => {
    const W = 2 ** 20;
    const s = create(statePlan(W));
    // 2^21 * 2^20 values * 4 bytes = 2^43: one output past the limit.
    let err = nativeError(() => s.runSequence({ steps: 2 ** 21, inputs: [] }), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/outputs\[0\] \(steps \* values per step\): 2097152 \* 1048576 values of 4 bytes/);
    // 2^19 steps with BPTT: the tape (2^19 * 2^21 values) is exactly 4 TiB; with the
    // outputs the total passes the limit.
    err = nativeError(
      () => s.runSequence({ steps: 2 ** 19, inputs: [], computeGrads: true }),
      'ERR_BRAINTRACE_INVALID_ARGUMENT',
    );
    expect(err.message).toMatch(/^run_sequence: the results of 524288 steps: outputs\[0\]/);
    expect(err.message).toMatch(/brings the total past the size limit/);
    // The async form checks the same sizes in its worker.
    return expect(s.runSequenceAsync({ steps: 2 ** 21, inputs: [] })).rejects.toMatchObject({
      code: 'ERR_BRAINTRACE_INVALID_ARGUMENT',
    });
  });

  test('the session still works after every refusal', () => {
    const s = create(statePlan(4));
    expect(() => s.runSequence({ steps: 2 ** 45, inputs: [] })).toThrow();
    s.setState(0, new Float32Array([0.1, 0.2, 0.3, 0.4]));
    const r = s.runSequence({ steps: 2, inputs: [] });
    expect(r.outputs[0].length).toBe(8);
    expect(r.outputs[0][4]).toBeCloseTo(Math.tanh(Math.tanh(0.1)), 6);
  });
});

// An online plan (float32): x Const (1, I), W Param (I, 1), y = EtpMatMul(x, W) (1, 1),
// h State (1, S), h' = tanh(h + broadcast(y)). One Dense relation, one group of width S:
// its D_RTRL weight trace is (B, I, O, S) = (1, I, 1, S) and its Jacobian is P * S * S.
function onlinePlan(I: number, S: number) {
  return encode(
    0,
    [
      { op: op('Const'), shape: [1, I], floats: new Array(I).fill(0.5) },
      { op: op('Param'), shape: [I, 1], ints: [0] },
      { op: op('EtpMatMul'), inputs: [0, 1], shape: [1, 1] },
      { op: op('State'), shape: [1, S], ints: [0] },
      { op: op('BroadcastTo'), inputs: [2], shape: [1, S] },
      { op: op('Add'), inputs: [3, 4], shape: [1, S] },
      { op: op('Tanh'), inputs: [5], shape: [1, S] },
    ],
    [
      [0, 6, 0],
      [1, 6, 0],
    ],
  );
}
function onlineConfig(S: number, zeroRecurrence: boolean) {
  return {
    algorithm: 'd_rtrl' as const,
    groups: [{ members: [{ leafNode: 3, newNode: 6, width: S }], positions: 1, zeroRecurrence, probePositions: false }],
    relations: [{ kind: 'dense' as const, xNode: 0, yNode: 2, weightSlot: 0, groups: [0], tailProbe: [] }],
    blockedTransition: [],
    etpNodes: [2],
    nonTemporalSlots: [],
  };
}

describe('online configuration sizes (configure_online, run_online)', () => {
  test('a small configuration runs (the fixture is valid)', () => {
    const s = create(onlinePlan(3, 2));
    s.configureOnline(onlineConfig(2, false));
    expect(s.traceInfo()).toEqual([{ name: 'r0/g0/weight', shape: [1, 3, 1, 2] }]);
    const r = s.runOnline({ steps: 2, inputs: [], computeGrads: true });
    expect(r.outputs[0].length).toBe(4);
  });

  test('a D_RTRL weight trace B * I * O * S past the limit', () => {
    // I = 2^21, S = 2^20 (zero recurrence: no S * S Jacobian): the trace has 2^41 values.
    const I = 2 ** 21;
    const S = 2 ** 20;
    const s = create(onlinePlan(I, S));
    const err = nativeError(() => s.configureOnline(onlineConfig(S, true)), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^configure_online: the configuration's buffers together: the trace r0\/g0\/weight \[1, 2097152, 1, 1048576\]/);
    expect(err.message).toMatch(/\(2199023255552 values of 4 bytes\)/);
    // No configuration was installed.
    expect(s.traceInfo()).toEqual([]);
  });

  test("the configuration's buffers together past the limit (Jacobian + trace)", () => {
    // S = 2^20 with recurrence: the group Jacobian alone is P * S * S = 2^40 values (4 TiB).
    const S = 2 ** 20;
    const s = create(onlinePlan(4, S));
    const err = nativeError(() => s.configureOnline(onlineConfig(S, false)), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^configure_online: the configuration's buffers together: /);
    expect(err.message).toMatch(/brings the total past the size limit of 2\^42 bytes/);
  });

  test('run_online: T * output values past the limit', () => {
    const s = create(onlinePlan(3, 2 ** 10));
    s.configureOnline(onlineConfig(2 ** 10, false));
    const err = nativeError(() => s.runOnline({ steps: 2 ** 32, inputs: [] }), 'ERR_BRAINTRACE_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^run_online: outputs\[0\] \(steps \* values per step\): 4294967296 \* 1024 values/);
  });

  test('trace restore checks the length against the trace size', () => {
    const s = create(onlinePlan(3, 2));
    s.configureOnline(onlineConfig(2, false));
    expect(() => s.setTrace(0, new Float32Array(7))).toThrow(/6/);
    s.setTrace(0, new Float32Array(6).fill(0.25));
    expect(Array.from(s.getTrace(0) as NativeArray)).toEqual(new Array(6).fill(0.25));
  });
});
