/**
 * Initialisers: host-side data generation for parameters and states.
 *
 * An {@link Initializer} is a function `(shape, rng, dtype) => typed array`
 * returning `numel(shape)` values in row-major order. Random initialisers
 * draw from the given {@link Rng}; a model gives each state its own stream
 * derived from `(seed, path)`.
 *
 * Weight layout and fans. Weights here are `(I, O)` and are applied as
 * `x · W` (x `(..., I)`), the transpose of PyTorch's `(out, in)` layout. Fans
 * follow PyTorch's `_calculate_fan_in_and_fan_out` translated to this layout
 * (the same convention as JAX's `variance_scaling` with `in_axis=-2,
 * out_axis=-1`):
 *   fanIn  = shape[-2] * receptive,  fanOut = shape[-1] * receptive,
 *   receptive = product of shape[:-2]   (1 for a 2-D weight).
 * So a 2-D weight `(I, O)` has fanIn = I, fanOut = O. Like PyTorch, fan-based
 * initialisers need rank >= 2 and throw ArgumentError otherwise.
 */
import type { DType } from '../graph/ir';
import { ArgumentError, fmtShape } from '../runtime/errors';
import { allocData, checkAllocatable, numel } from '../tensor';
import { Rng } from './random';

/**
 * Produces initial values: `numel(shape)` numbers, row-major, as a
 * Float32Array (dtype 'float32') or Float64Array (dtype 'float64').
 */
export type Initializer = ((shape: readonly number[], rng: Rng, dtype: DType) => Float32Array | Float64Array) & {
  /** Human-readable description, e.g. `normal(mean=0, std=1)`. */
  readonly description?: string;
};

function make(
  description: string,
  fn: (shape: readonly number[], rng: Rng, dtype: DType) => Float32Array | Float64Array,
): Initializer {
  return Object.assign(fn, { description });
}

function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ArgumentError(`${what} must be a finite number; got ${String(v)}`);
  }
  return v;
}

function positive(v: unknown, what: string): number {
  const x = finite(v, what);
  if (x <= 0) throw new ArgumentError(`${what} must be > 0; got ${x}`);
  return x;
}

/**
 * Fan-in and fan-out of a weight of shape `(..., I, O)`:
 * fanIn = I·r, fanOut = O·r with r = product of the leading dimensions.
 * @throws ArgumentError for rank < 2.
 */
export function computeFans(shape: readonly number[], what = 'computeFans'): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new ArgumentError(
      `${what}: fan-in/fan-out need a weight shape of rank >= 2, (..., I, O); got ${fmtShape(shape)}`,
    );
  }
  const receptive = numel(shape.slice(0, -2));
  return { fanIn: shape[shape.length - 2] * receptive, fanOut: shape[shape.length - 1] * receptive };
}

/** Nonlinearities known to {@link calculateGain}. */
export type Nonlinearity = 'linear' | 'identity' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/**
 * Recommended gain for a nonlinearity (PyTorch's `calculate_gain`):
 * linear/identity/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2 / (1 + a²))
 * with `a` = negative slope (default 0.01), selu 3/4.
 */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'identity':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const a = param === undefined ? 0.01 : finite(param, 'calculateGain: negative slope');
      return Math.sqrt(2 / (1 + a * a));
    }
    case 'selu':
      return 3 / 4;
    default:
      throw new ArgumentError(
        `calculateGain: unknown nonlinearity ${JSON.stringify(nonlinearity)}; expected one of linear, identity, sigmoid, tanh, relu, leaky_relu, selu`,
      );
  }
}

/** All zeros. */
export function zeros(): Initializer {
  return make('zeros()', (shape, _rng, dtype) => allocData(numel(shape), dtype));
}

/** All ones. */
export function ones(): Initializer {
  return constant(1);
}

/** Every element equal to `value`. */
export function constant(value: number): Initializer {
  const v = finite(value, 'init.constant: value');
  return make(`constant(${v})`, (shape, _rng, dtype) => allocData(numel(shape), dtype).fill(v));
}

/** Normal samples: w ~ N(mean, std²). Defaults mean 0, std 1. */
export function normal(opts: { mean?: number; std?: number } = {}): Initializer {
  const mean = finite(opts.mean ?? 0, 'init.normal: mean');
  const std = finite(opts.std ?? 1, 'init.normal: std');
  if (std < 0) throw new ArgumentError(`init.normal: std must be >= 0; got ${std}`);
  return make(`normal(mean=${mean}, std=${std})`, (shape, rng, dtype) =>
    rng.fillNormal(allocData(numel(shape), dtype), mean, std),
  );
}

/**
 * Uniform samples: w ~ U[low, high). Defaults low -1, high 1. Alternatively
 * `{ scale: s }` means U[-s, s).
 */
export function uniform(opts: { low?: number; high?: number; scale?: number } = {}): Initializer {
  let low: number;
  let high: number;
  if (opts.scale !== undefined) {
    if (opts.low !== undefined || opts.high !== undefined) {
      throw new ArgumentError('init.uniform: give either scale or low/high, not both');
    }
    const s = finite(opts.scale, 'init.uniform: scale');
    low = -Math.abs(s);
    high = Math.abs(s);
  } else {
    low = finite(opts.low ?? -1, 'init.uniform: low');
    high = finite(opts.high ?? 1, 'init.uniform: high');
  }
  if (high < low) throw new ArgumentError(`init.uniform: expected low <= high; got low=${low}, high=${high}`);
  return make(`uniform(low=${low}, high=${high})`, (shape, rng, dtype) =>
    rng.fillUniform(allocData(numel(shape), dtype), low, high),
  );
}

/** Glorot/Xavier normal: std = gain · √(2 / (fanIn + fanOut)). Default gain 1. */
export function xavierNormal(opts: { gain?: number } = {}): Initializer {
  const gain = finite(opts.gain ?? 1, 'init.xavierNormal: gain');
  return make(`xavierNormal(gain=${gain})`, (shape, rng, dtype) => {
    const { fanIn, fanOut } = computeFans(shape, 'init.xavierNormal');
    const std = gain * Math.sqrt(2 / (fanIn + fanOut));
    return rng.fillNormal(allocData(numel(shape), dtype), 0, std);
  });
}

/** Glorot/Xavier uniform: U[-a, a), a = gain · √(6 / (fanIn + fanOut)). Default gain 1. */
export function xavierUniform(opts: { gain?: number } = {}): Initializer {
  const gain = finite(opts.gain ?? 1, 'init.xavierUniform: gain');
  return make(`xavierUniform(gain=${gain})`, (shape, rng, dtype) => {
    const { fanIn, fanOut } = computeFans(shape, 'init.xavierUniform');
    const a = gain * Math.sqrt(6 / (fanIn + fanOut));
    return rng.fillUniform(allocData(numel(shape), dtype), -a, a);
  });
}

/** Options of the Kaiming (He) initialisers (PyTorch defaults). */
export interface KaimingOptions {
  /** Negative slope of the leaky ReLU after this layer (only for 'leaky_relu'); default 0. */
  a?: number;
  /** 'fanIn' (default; preserves forward variance) or 'fanOut' (backward variance). */
  mode?: 'fanIn' | 'fanOut';
  /** Nonlinearity for {@link calculateGain}; default 'leaky_relu'. */
  nonlinearity?: Nonlinearity;
}

function kaimingStd(opts: KaimingOptions, shape: readonly number[], what: string): number {
  const mode = opts.mode ?? 'fanIn';
  if (mode !== 'fanIn' && mode !== 'fanOut') {
    throw new ArgumentError(`${what}: mode must be 'fanIn' or 'fanOut'; got ${JSON.stringify(mode)}`);
  }
  const { fanIn, fanOut } = computeFans(shape, what);
  const fan = mode === 'fanIn' ? fanIn : fanOut;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return gain / Math.sqrt(fan);
}

/**
 * Kaiming/He normal: std = gain / √fan, fan = fanIn (mode 'fanIn') or fanOut,
 * gain = calculateGain(nonlinearity, a). Defaults a=0, 'fanIn', 'leaky_relu'
 * (so gain √2, as in PyTorch).
 */
export function kaimingNormal(opts: KaimingOptions = {}): Initializer {
  kaimingStd(opts, [1, 1], 'init.kaimingNormal'); // validate options eagerly
  return make(`kaimingNormal(${JSON.stringify(opts)})`, (shape, rng, dtype) =>
    rng.fillNormal(allocData(numel(shape), dtype), 0, kaimingStd(opts, shape, 'init.kaimingNormal')),
  );
}

/**
 * Kaiming/He uniform: U[-b, b), b = gain · √(3 / fan) (same fan and gain
 * rules as {@link kaimingNormal}).
 */
export function kaimingUniform(opts: KaimingOptions = {}): Initializer {
  kaimingStd(opts, [1, 1], 'init.kaimingUniform');
  return make(`kaimingUniform(${JSON.stringify(opts)})`, (shape, rng, dtype) => {
    const b = Math.sqrt(3) * kaimingStd(opts, shape, 'init.kaimingUniform');
    return rng.fillUniform(allocData(numel(shape), dtype), -b, b);
  });
}

/**
 * LeCun normal: std = √(1 / fanIn) (plain normal, not truncated; JAX's
 * `lecun_normal` truncates at 2σ and rescales).
 */
export function lecunNormal(): Initializer {
  return make('lecunNormal()', (shape, rng, dtype) => {
    const { fanIn } = computeFans(shape, 'init.lecunNormal');
    return rng.fillNormal(allocData(numel(shape), dtype), 0, Math.sqrt(1 / fanIn));
  });
}

/**
 * (Semi-)orthogonal matrix times `gain` (Saxe et al. 2014; PyTorch's
 * `orthogonal_` with the layout of JAX's `orthogonal(column_axis=-1)`).
 *
 * The shape is viewed as a matrix `(rows, cols)`, rows = numel / shape[-1],
 * cols = shape[-1]. A normal matrix A of shape (max, min) is drawn, its QR
 * decomposition A = QR taken with the signs fixed so that diag(R) > 0 (which
 * makes Q Haar-distributed), and W = Q (tall: WᵀW = I) or Qᵀ (wide: WWᵀ = I).
 * The QR is Gram–Schmidt with re-orthogonalisation ("twice is enough").
 */
export function orthogonal(opts: { gain?: number } = {}): Initializer {
  const gain = finite(opts.gain ?? 1, 'init.orthogonal: gain');
  return make(`orthogonal(gain=${gain})`, (shape, rng, dtype) => {
    if (shape.length < 2) {
      throw new ArgumentError(`init.orthogonal: needs a shape of rank >= 2; got ${fmtShape(shape)}`);
    }
    const cols = shape[shape.length - 1];
    const n = numel(shape);
    const rows = cols === 0 ? 0 : n / cols;
    const out = allocData(n, dtype);
    if (n === 0) return out;
    const tall = rows >= cols;
    const m = tall ? rows : cols; // length of each basis vector
    const k = tall ? cols : rows; // number of basis vectors
    // q[j] is the j-th column of Q (length m); Gram–Schmidt on normal columns.
    const q: Float64Array[] = [];
    for (let j = 0; j < k; j++) {
      const v = rng.fillNormal(new Float64Array(m));
      let norm0 = 0;
      for (let i = 0; i < m; i++) norm0 += v[i] * v[i];
      norm0 = Math.sqrt(norm0);
      for (let pass = 0; pass < 2; pass++) {
        for (let p = 0; p < j; p++) {
          const qp = q[p];
          let dot = 0;
          for (let i = 0; i < m; i++) dot += qp[i] * v[i];
          for (let i = 0; i < m; i++) v[i] -= dot * qp[i];
        }
      }
      let nrm = 0;
      for (let i = 0; i < m; i++) nrm += v[i] * v[i];
      nrm = Math.sqrt(nrm);
      if (!(nrm > 1e-10 * norm0)) {
        throw new ArgumentError('init.orthogonal: degenerate random matrix (retry with another seed)');
      }
      for (let i = 0; i < m; i++) v[i] /= nrm;
      q.push(v);
    }
    if (tall) {
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = gain * q[j][i];
    } else {
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = gain * q[i][j];
    }
    return out;
  });
}

/**
 * Resolves an initialiser by calling it and checking its result length.
 * @throws ArgumentError when the initialiser returns the wrong number of values.
 */
export function runInitializer(
  init: Initializer,
  shape: readonly number[],
  rng: Rng,
  dtype: DType,
  what: string,
): Float32Array | Float64Array {
  const n = checkAllocatable(shape, what);
  const raw = init(shape, rng, dtype);
  if (!(raw instanceof Float32Array || raw instanceof Float64Array) || raw.length !== n) {
    throw new ArgumentError(
      `${what}: initializer ${init.description ?? init.name ?? ''} must return a Float32Array/Float64Array of ${n} values for shape ${fmtShape(shape)}; got ${
        raw && typeof (raw as { length?: unknown }).length === 'number' ? `${(raw as { length: number }).length} values` : String(raw)
      }`,
    );
  }
  if (dtype === 'float64' && !(raw instanceof Float64Array)) return Float64Array.from(raw);
  if (dtype === 'float32' && !(raw instanceof Float32Array)) return Float32Array.from(raw);
  return raw;
}
