/**
 * The binding's benchmark hooks (benchmarkCopy, benchmarkTraceStep) used by
 * scripts/bench.js: they return positive finite timings with the documented byte counts,
 * and reject bad arguments with TypeError / RangeError naming the argument, or with
 * ERR_BRAINTRACE_OUT_OF_MEMORY for sizes that cannot be allocated. No timing assertions.
 */
import type { NativeBinding } from '../types/binding';
import { loadBinding } from '../lib/runtime/native';

const binding: NativeBinding = loadBinding();

const positiveFinite = (x: number): void => {
  expect(typeof x).toBe('number');
  expect(Number.isFinite(x)).toBe(true);
  expect(x).toBeGreaterThan(0);
};

describe('benchmarkCopy', () => {
  test('returns the best time and 2 * bytes moved', () => {
    for (const bytes of [1, 100, 1 << 20, (1 << 20) + 13]) {
      const r = binding.benchmarkCopy(bytes, 3);
      positiveFinite(r.secondsPerRep);
      expect(r.bytesMoved).toBe(2 * bytes);
    }
  });

  test('rejects bad arguments', () => {
    const call = (...args: unknown[]) => () =>
      (binding.benchmarkCopy as unknown as (...a: unknown[]) => unknown)(...args);
    expect(call()).toThrow(TypeError);
    expect(call('1024', 1)).toThrow(TypeError);
    expect(call('1024', 1)).toThrow(/bytes/);
    expect(call(1024, null)).toThrow(TypeError);
    expect(call(1024, null)).toThrow(/reps/);
    expect(call(0, 1)).toThrow(RangeError);
    expect(call(-5, 1)).toThrow(/bytes/);
    expect(call(1.5, 1)).toThrow(RangeError);
    expect(call(NaN, 1)).toThrow(RangeError);
    expect(call(Infinity, 1)).toThrow(RangeError);
    expect(call(1024, 0)).toThrow(RangeError);
    expect(call(1024, 0)).toThrow(/reps/);
    expect(call(1024, 2.5)).toThrow(RangeError);
    expect(call(1024, 1e7)).toThrow(RangeError);
  });

  test('huge sizes give a coded out-of-memory error, not a crash', () => {
    for (const bytes of [2 ** 50, Number.MAX_SAFE_INTEGER]) {
      let err: unknown;
      try {
        binding.benchmarkCopy(bytes, 1);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: string }).code).toBe('ERR_BRAINTRACE_OUT_OF_MEMORY');
    }
  });
});

describe('benchmarkTraceStep', () => {
  const base = { batch: 4, inputs: 8, outputs: 16, states: 1, dtype: 'float32' as const, reps: 2 };

  test('returns the best step time and the trace bytes (read + write)', () => {
    const cases = [
      { ...base },
      { ...base, dtype: 'float64' as const },
      { ...base, states: 3 },
      { ...base, states: 3, dtype: 'float64' as const },
      { batch: 1, inputs: 1, outputs: 1, states: 1, dtype: 'float32' as const, reps: 1 },
      { batch: 64, inputs: 64, outputs: 64, states: 1, dtype: 'float32' as const, reps: 2 },
    ];
    for (const o of cases) {
      const r = binding.benchmarkTraceStep(o);
      positiveFinite(r.secondsPerStep);
      const size = o.dtype === 'float32' ? 4 : 8;
      expect(r.bytesMoved).toBe(2 * o.batch * o.inputs * o.outputs * o.states * size);
    }
  });

  test('rejects bad arguments, naming the field', () => {
    const call = (o: unknown) => () =>
      (binding.benchmarkTraceStep as unknown as (o: unknown) => unknown)(o);
    expect(call(undefined)).toThrow(TypeError);
    expect(call(null)).toThrow(/opts/);
    expect(call(5)).toThrow(TypeError);
    expect(call([1, 2])).toThrow(TypeError);
    for (const field of ['batch', 'inputs', 'outputs', 'states', 'reps'] as const) {
      expect(call({ ...base, [field]: undefined })).toThrow(TypeError);
      expect(call({ ...base, [field]: '4' })).toThrow(new RegExp(`opts\\.${field}`));
      expect(call({ ...base, [field]: 0 })).toThrow(RangeError);
      expect(call({ ...base, [field]: -1 })).toThrow(new RegExp(`opts\\.${field}`));
      expect(call({ ...base, [field]: 2.5 })).toThrow(RangeError);
      expect(call({ ...base, [field]: NaN })).toThrow(RangeError);
    }
    expect(call({ ...base, reps: 1e7 })).toThrow(RangeError);
    expect(call({ ...base, dtype: undefined })).toThrow(TypeError);
    expect(call({ ...base, dtype: 32 })).toThrow(/opts\.dtype/);
    expect(call({ ...base, dtype: 'float16' })).toThrow(RangeError);
    expect(call({ ...base, dtype: 'float16' })).toThrow(/opts\.dtype/);
  });

  test('huge sizes give a coded out-of-memory error, not a crash', () => {
    const huge = [
      { ...base, batch: 1e6, inputs: 1e6, outputs: 1e6 },
      { ...base, batch: Number.MAX_SAFE_INTEGER, inputs: Number.MAX_SAFE_INTEGER },
      { ...base, states: 1e6 },
    ];
    for (const o of huge) {
      let err: unknown;
      try {
        binding.benchmarkTraceStep(o);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: string }).code).toBe('ERR_BRAINTRACE_OUT_OF_MEMORY');
    }
  });
});
