/**
 * The CPU GEMM (native/cpu/parallel_gemm.cc, kernels/gemm.h) through the binding's `gemm`
 * test hook: every usable kernel (avx512, avx2, neon, portable) against a naive float64
 * triple loop, on odd sizes, the four transpose combinations, alpha / beta in {0, 1, 2.5},
 * leading dimensions wider than the matrices (the padding must stay untouched), NaN in C
 * with beta = 0, float32 and float64, on 1 and 2 threads (which must agree bit for bit).
 * Tolerance: |got - ref| <= tol * sum |terms| with tol 1e-12 (float64) and 1e-5 (float32).
 */
import type { NativeBinding } from '../types/binding';
import { loadBinding } from '../lib/runtime/native';

const binding: NativeBinding = loadBinding();
const kernels = binding.gemmKernels();

type Arr = Float32Array | Float64Array;
// Module-scope aliases: a global lookup per element is slow in jest's vm context.
const same = Object.is;
const abs = Math.abs;

// A small deterministic generator (values in [-1, 1)).
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  pad: number;
}

// alpha op(A) op(B) + beta C0 in float64, and the sum of the terms' magnitudes (the error
// scale), from op(A) (M x K) and op(B)^T (N x K) stored densely.
function reference(opA: Float64Array, opBt: Float64Array, c: Case, c0: Arr, ldc: number) {
  const { M, N, K, alpha, beta } = c;
  const ref = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let i = 0; i < M; ++i)
    for (let j = 0; j < N; ++j) {
      let r = 0;
      let m = 0;
      const ai = i * K;
      const bj = j * K;
      for (let k = 0; k < K; ++k) {
        const t = opA[ai + k] * opBt[bj + k];
        r += t;
        m += abs(t);
      }
      const cv = beta === 0 ? 0 : c0[i * ldc + j];
      ref[i * N + j] = alpha * r + beta * cv;
      mag[i * N + j] = abs(alpha) * m + abs(beta * cv);
    }
  return { ref, mag };
}

// One case: random operands, the float64 reference and its error scale computed once,
// then every kernel on 1 and 2 threads (which must agree bit for bit).
function check(c: Case, f64: boolean, seed: number): void {
  const Ctor = f64 ? Float64Array : Float32Array;
  const next = rng(seed);
  const lda = Math.max(1, (c.transA ? c.M : c.K) + c.pad);
  const ldb = Math.max(1, (c.transB ? c.K : c.N) + c.pad);
  const ldc = Math.max(1, c.N + c.pad);
  const a: Arr = new Ctor(Math.max(1, (c.transA ? c.K : c.M) * lda)).map(() => next());
  const b: Arr = new Ctor(Math.max(1, (c.transB ? c.N : c.K) * ldb)).map(() => next());
  const c0: Arr = new Ctor(Math.max(1, c.M * ldc)).map(() => (c.beta === 0 ? NaN : next()));
  // Reference: op(A) and op(B) copied to dense float64 (row i of op(A), column j of op(B)).
  const opA = new Float64Array(c.M * c.K);
  const opBt = new Float64Array(c.N * c.K);
  for (let i = 0; i < c.M; ++i)
    for (let k = 0; k < c.K; ++k) opA[i * c.K + k] = c.transA ? a[k * lda + i] : a[i * lda + k];
  for (let j = 0; j < c.N; ++j)
    for (let k = 0; k < c.K; ++k) opBt[j * c.K + k] = c.transB ? b[j * ldb + k] : b[k * ldb + j];
  const { ref, mag } = reference(opA, opBt, c, c0, ldc);
  const tol = f64 ? 1e-12 : 1e-5;
  for (const kernel of kernels.available) {
    const outs: Arr[] = [];
    for (const threads of [1, 2]) {
      const out: Arr = c0.slice();
      binding.gemm({ ...c, a, b, c: out, lda, ldb, ldc, kernel, threads });
      outs.push(out);
    }
    const [out, out2] = outs;
    let bad = '';
    for (let i = 0; i < c.M && !bad; ++i)
      for (let j = 0; j < ldc && !bad; ++j) {
        const got = out[i * ldc + j];
        if (!same(got, out2[i * ldc + j])) bad = `1 vs 2 threads differ at (${i},${j})`;
        else if (j >= c.N) {
          if (!same(got, c0[i * ldc + j])) bad = `padding written at (${i},${j})`;
        } else {
          const want = ref[i * c.N + j];
          const m = mag[i * c.N + j];
          if (!(abs(got - want) <= tol * m) && !(m === 0 && got === 0)) bad = `(${i},${j}): got ${got}, want ${want}`;
        }
      }
    if (bad) throw new Error(`${kernel} ${f64 ? 'f64' : 'f32'} ${JSON.stringify(c)}: ${bad}`);
  }
}

const sizes = [1, 2, 3, 5, 7, 13, 17, 31, 33, 63, 65, 127, 129, 255, 257];
const scalars = [0, 1, 2.5];
const dtypes: [string, boolean][] = [['float32', false], ['float64', true]];

describe('gemmKernels', () => {
  test('lists the usable kernels and the active one', () => {
    expect(kernels.available.length).toBeGreaterThanOrEqual(1);
    expect(kernels.available[kernels.available.length - 1]).toBe('portable');
    expect(kernels.available).toContain(kernels.active);
    expect(typeof kernels.requested).toBe('string');
    const env = process.env.BRAINTRACE_GEMM_KERNEL ?? '';
    expect(kernels.requested).toBe(env);
    if (kernels.available.includes(env)) expect(kernels.active).toBe(env);
    else expect(kernels.active).toBe(kernels.available[0]);
  });
});

describe.each(dtypes)('every kernel against a float64 loop, %s', (_name, f64) => {
  test('square odd sizes, all four transpose combinations', () => {
    let n = 0;
    for (const s of sizes)
      for (let t = 0; t < 4; ++t) {
        const c: Case = {
          M: s, N: s, K: s, transA: (t & 1) !== 0, transB: (t & 2) !== 0,
          alpha: scalars[(n + 1) % 3], beta: scalars[n % 3], pad: n % 2 ? 3 : 0,
        };
        check(c, f64, 17 + n++);
      }
  });

  test('mixed shapes (K = 0 included), every alpha / beta pair, wide leading dimensions', () => {
    let n = 0;
    for (const M of [1, 7, 33, 129])
      for (const N of [2, 17, 65, 257])
        for (const K of [0, 5, 63, 300]) {
          const t = n % 4;
          const c: Case = {
            M, N, K, transA: (t & 1) !== 0, transB: (t & 2) !== 0,
            alpha: scalars[(n + 2) % 3], beta: scalars[(n >> 2) % 3], pad: n % 3,
          };
          check(c, f64, 1000 + n++);
        }
    for (const alpha of scalars)
      for (const beta of scalars)
        for (let t = 0; t < 4; ++t)
          check({ M: 37, N: 41, K: 19, transA: (t & 1) !== 0, transB: (t & 2) !== 0, alpha, beta, pad: 2 }, f64, 5 + t);
  });

  test("the models' shapes: a GRU gate product and its two VJPs", () => {
    check({ M: 64, N: 768, K: 320, transA: false, transB: false, alpha: 1, beta: 0, pad: 0 }, f64, 1);
    check({ M: 64, N: 320, K: 768, transA: false, transB: true, alpha: 1, beta: 1, pad: 0 }, f64, 2);
    check({ M: 320, N: 768, K: 64, transA: true, transB: false, alpha: 1, beta: 1, pad: 0 }, f64, 3);
  });
});

describe('gemm hook arguments', () => {
  const f = (n: number) => new Float32Array(n);
  const base = { M: 2, N: 2, K: 2, a: f(4), b: f(4), c: f(4), alpha: 1, beta: 0 };
  test('bad arguments throw TypeError / RangeError naming the argument', () => {
    const call = (o: unknown) => () => (binding.gemm as (x: unknown) => void)(o);
    expect(call(undefined)).toThrow(TypeError);
    expect(call({ ...base, M: '2' })).toThrow(/opts\.M/);
    expect(call({ ...base, M: -1 })).toThrow(RangeError);
    expect(call({ ...base, a: f(3) })).toThrow(RangeError);
    expect(call({ ...base, a: f(3) })).toThrow(/opts\.a/);
    expect(call({ ...base, b: new Float64Array(4) })).toThrow(TypeError);
    expect(call({ ...base, lda: 1 })).toThrow(/opts\.lda/);
    expect(call({ ...base, alpha: NaN })).toThrow(RangeError);
    expect(call({ ...base, kernel: 'no-such-kernel' })).toThrow(RangeError);
    expect(call({ ...base, kernel: 'no-such-kernel' })).toThrow(/not available/);
    expect(call({ ...base, threads: 0 })).toThrow(RangeError);
    expect(call({ ...base, transA: 1 })).toThrow(TypeError);
  });

  test('benchmarkGemm returns a positive time and 2 M N K flops', () => {
    const r = binding.benchmarkGemm({ M: 33, N: 17, K: 9, dtype: 'float64', reps: 2, transB: true });
    expect(r.secondsPerRep).toBeGreaterThan(0);
    expect(r.flops).toBe(2 * 33 * 17 * 9);
    expect(r.kernel).toBe(kernels.active);
    expect(() => binding.benchmarkGemm({ M: 0, N: 1, K: 1, dtype: 'float32', reps: 1 })).toThrow(RangeError);
    expect(() => binding.benchmarkGemm({ M: 1, N: 1, K: 1, dtype: 'float32', reps: 1, kernel: 'x' })).toThrow(RangeError);
  });
});
