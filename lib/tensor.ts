/**
 * Host tensors: dense, row-major arrays held by JavaScript (parameter values,
 * state values, inputs and results copied back from the native core).
 *
 * A host tensor is plain data (`{ data, shape, dtype }`); no arithmetic is
 * provided here: all training-time math runs natively. This module only
 * builds, validates and converts host tensors.
 */
import type { DType } from './graph/ir';
import { ArgumentError, ShapeError, fmtShape } from './runtime/errors';

export type { DType } from './graph/ir';

/** Typed array backing a host tensor (Float32Array for float32, Float64Array for float64). */
export type HostData = Float32Array | Float64Array;

/** A dense, row-major host array. `data.length === numel(shape)`; `[]` is a scalar. */
export interface HostTensor {
  /** Values in row-major (C) order; the array type matches `dtype`. */
  data: HostData;
  /** Dimensions, outermost first; `[]` for a scalar. */
  shape: number[];
  /** Element type. */
  dtype: DType;
}

/** A number, or arbitrarily nested arrays of numbers (a rectangular nested list). */
export type NestedArray = number | readonly NestedArray[];

/** Anything {@link tensor} accepts as data. */
export type TensorLike = NestedArray | ArrayLike<number> | HostTensor;

/** The two supported dtypes. */
export const DTYPES: readonly DType[] = ['float32', 'float64'];

/** Throws ArgumentError unless `dtype` is 'float32' or 'float64'; returns it. */
export function checkDType(dtype: unknown, what = 'dtype'): DType {
  if (dtype !== 'float32' && dtype !== 'float64') {
    throw new ArgumentError(`${what}: expected 'float32' or 'float64'; got ${JSON.stringify(dtype)}`);
  }
  return dtype;
}

/**
 * Validates a shape (every dimension a non-negative integer) and returns a copy.
 * @param what name used in the error message (argument or op).
 */
export function checkShape(shape: unknown, what = 'shape'): number[] {
  if (!Array.isArray(shape)) {
    throw new ArgumentError(`${what}: expected an array of non-negative integers; got ${describe(shape)}`);
  }
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new ArgumentError(
        `${what}: dimension ${i} must be a non-negative integer; got ${describe(d)} in [${shape.join(', ')}]`,
      );
    }
  }
  return shape.slice();
}

/** Number of elements of a shape (product of its dimensions; 1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Most elements one host tensor may hold (V8's typed-array length limit is 2^32). */
export const MAX_TENSOR_ELEMENTS = 2 ** 32 - 1;

/**
 * Checks that a tensor of `shape` can exist before anything is allocated.
 * @throws ShapeError naming `what`, the shape and its element count when it exceeds
 *   {@link MAX_TENSOR_ELEMENTS}.
 */
export function checkAllocatable(shape: readonly number[], what: string): number {
  const n = numel(shape);
  if (!(n <= MAX_TENSOR_ELEMENTS)) {
    throw new ShapeError(
      `${what}: shape ${fmtShape(shape)} has ${n} elements; expected at most ${MAX_TENSOR_ELEMENTS} (2^32 - 1) per tensor`,
      { argument: what, expected: `at most ${MAX_TENSOR_ELEMENTS} elements`, actual: `${n} elements, shape ${fmtShape(shape)}` },
    );
  }
  return n;
}

/**
 * Allocates a zero-filled typed array of `n` elements of `dtype`.
 * @throws ShapeError for more than {@link MAX_TENSOR_ELEMENTS} elements, ArgumentError when
 *   the memory cannot be allocated (instead of V8's bare RangeError).
 */
export function allocData(n: number, dtype: DType): HostData {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_TENSOR_ELEMENTS) {
    throw new ShapeError(`allocData: ${n} elements; expected an integer in [0, ${MAX_TENSOR_ELEMENTS}]`, {
      argument: 'allocData',
      expected: `at most ${MAX_TENSOR_ELEMENTS} elements`,
      actual: String(n),
    });
  }
  try {
    return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  } catch (e) {
    const bytes = n * (dtype === 'float64' ? 8 : 4);
    throw new ArgumentError(`allocData: cannot allocate ${n} ${dtype} elements (${(bytes / 2 ** 30).toFixed(1)} GiB): ${(e as Error).message}`, {
      argument: 'allocData',
      expected: 'an allocatable size',
      actual: `${bytes} bytes`,
      cause: e,
    });
  }
}

/** A host tensor of zeros with the given shape and dtype (default float32). */
export function zeros(shape: readonly number[], dtype: DType = 'float32'): HostTensor {
  const s = checkShape(shape as number[], 'zeros: shape');
  checkDType(dtype, 'zeros: dtype');
  return { data: allocData(numel(s), dtype), shape: s, dtype };
}

/** A host tensor filled with `value` (default float32). */
export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): HostTensor {
  const t = zeros(shape, dtype);
  t.data.fill(value);
  return t;
}

/** True when `x` is a {@link HostTensor} (typed data, a shape array and a dtype that agree). */
export function isHostTensor(x: unknown): x is HostTensor {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Partial<HostTensor>;
  if (!Array.isArray(t.shape)) return false;
  if (t.dtype === 'float32') return t.data instanceof Float32Array;
  if (t.dtype === 'float64') return t.data instanceof Float64Array;
  return false;
}

/**
 * Converts a host tensor to `dtype`. Returns `t` itself when it already has
 * that dtype, else a new tensor with converted (rounded for float32) data.
 */
export function toDType(t: HostTensor, dtype: DType): HostTensor {
  checkDType(dtype, 'toDType: dtype');
  if (t.dtype === dtype) return t;
  const data = dtype === 'float64' ? Float64Array.from(t.data) : Float32Array.from(t.data);
  return { data, shape: t.shape.slice(), dtype };
}

/**
 * Converts data given to a learner (any {@link TensorLike}) to a host tensor of `dtype`,
 * the one dtype rule of every entry point: either float dtype (or plain numbers) is
 * accepted and converted (float64 to float32 rounds); a tensor already of `dtype` is not
 * copied. A host tensor's shape is validated and its data length must equal the shape's
 * element count, before anything is allocated (a declared `(2^28, B, I)` over a short
 * array is a ShapeError, not a 2 GB allocation).
 * @param what the argument's name for messages and the error's `argument` field (e.g. 'xs').
 * @throws ShapeError / ArgumentError naming `what`.
 */
export function asDType(what: string, v: TensorLike, dtype: DType): HostTensor {
  if (isHostTensor(v)) {
    // The common case first, without building a message: a valid tensor already of `dtype`
    // (the result then is `v` itself, as below); anything else takes the checks below.
    if (v.dtype === dtype && (dtype === 'float32' || dtype === 'float64')) {
      const shape = v.shape as unknown[];
      let n = 1;
      let ok = true;
      for (let i = 0; i < shape.length; i++) {
        const d = shape[i];
        if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
          ok = false;
          break;
        }
        n *= d;
      }
      if (ok && n === v.data.length) return v;
    }
    const shape = checkShape(v.shape, `${what}: shape`);
    const n = numel(shape);
    if (n !== v.data.length) {
      throw new ShapeError(
        `${what}: shape ${fmtShape(shape)} needs ${n} values; got a ${v.dtype} array of length ${v.data.length}`,
        { argument: what, expected: `${n} values for shape ${fmtShape(shape)}`, actual: `${v.data.length} values` },
      );
    }
    return toDType(v, dtype);
  }
  try {
    return tensor(v, undefined, dtype);
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(`${what}:`)) e.message = `${what}: ${e.message}`;
    throw e;
  }
}

/** A deep copy of a host tensor (optionally converted to `dtype`). */
export function cloneHost(t: HostTensor, dtype: DType = t.dtype): HostTensor {
  const data = dtype === 'float64' ? Float64Array.from(t.data) : Float32Array.from(t.data);
  return { data, shape: t.shape.slice(), dtype };
}

/**
 * Builds a host tensor.
 *
 * - `tensor(3)`: a scalar (shape `[]`).
 * - `tensor([[1, 2], [3, 4]])`: nested arrays; the shape `(2, 2)` is inferred.
 *   Ragged nesting throws a ShapeError naming the path and the two lengths.
 * - `tensor([1, 2, 3, 4], [2, 2])` or `tensor(new Float64Array(4), [2, 2])`:
 *   flat data with an explicit shape; a length that is not `numel(shape)`
 *   throws a ShapeError naming the shape, its numel and the actual length.
 *   Nested data with an explicit shape is flattened and reshaped the same way.
 * - `tensor(hostTensor, shape?, dtype)`: copies (and converts/reshapes) a host tensor.
 *
 * Data is always copied. Entries must be numbers (NaN/Infinity allowed).
 * @param dtype element type of the result (default 'float32').
 */
export function tensor(data: TensorLike, shape?: readonly number[], dtype: DType = 'float32'): HostTensor {
  checkDType(dtype, 'tensor: dtype');
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (isHostTensor(data)) {
    flat = data.data;
    inferred = data.shape.slice();
  } else if (typeof data === 'number') {
    flat = [data];
    inferred = [];
  } else if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    flat = data as unknown as ArrayLike<number>;
    inferred = [flat.length];
  } else if (Array.isArray(data)) {
    const res = flattenNested(data);
    flat = res.values;
    inferred = res.shape;
  } else {
    throw new ArgumentError(
      `tensor: data must be a number, a (nested) array of numbers, a typed array or a HostTensor; got ${describe(data)}`,
    );
  }
  let outShape = inferred;
  if (shape !== undefined) {
    outShape = checkShape(shape as number[], 'tensor: shape');
    if (numel(outShape) !== flat.length) {
      throw new ShapeError(
        `tensor: shape ${fmtShape(outShape)} needs ${numel(outShape)} values; got ${flat.length}` +
          (inferred.length > 1 ? ` (data of shape ${fmtShape(inferred)})` : ''),
      );
    }
  }
  const out = allocData(flat.length, dtype);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number') {
      throw new ArgumentError(`tensor: data[${i}] must be a number; got ${describe(v)}`);
    }
    out[i] = v;
  }
  return { data: out, shape: outShape, dtype };
}

/** Flattens rectangular nested arrays; throws on ragged nesting or non-numbers. */
function flattenNested(root: readonly NestedArray[]): { values: number[]; shape: number[] } {
  // Infer the shape from the first element along each level.
  const shape: number[] = [];
  let probe: NestedArray = root;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    if (probe.length === 0) break;
    probe = (probe as readonly NestedArray[])[0];
  }
  const values: number[] = [];
  const walk = (node: NestedArray, depth: number, path: number[]): void => {
    const where = `data${path.map((i) => `[${i}]`).join('')}`;
    if (depth === shape.length) {
      if (typeof node !== 'number') {
        throw new ShapeError(
          `tensor: ragged data: ${where} is ${Array.isArray(node) ? `an array of length ${node.length}` : describe(node)}; expected a number (depth ${depth} of shape ${fmtShape(shape)})`,
        );
      }
      values.push(node);
      return;
    }
    if (!Array.isArray(node)) {
      throw new ShapeError(
        `tensor: ragged data: ${where} is ${describe(node)}; expected an array of length ${shape[depth]}`,
      );
    }
    if (node.length !== shape[depth]) {
      throw new ShapeError(
        `tensor: ragged data: ${where} has length ${node.length}; expected ${shape[depth]} (as data${path
          .map(() => '[0]')
          .join('')})`,
      );
    }
    for (let i = 0; i < node.length; i++) walk(node[i], depth + 1, [...path, i]);
  };
  walk(root, 0, []);
  return { values, shape };
}

/** Short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') {
    const name = (v as object).constructor?.name;
    return name ? `a ${name}` : 'an object';
  }
  return typeof v;
}
