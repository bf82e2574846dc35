/**
 * The traced ops: every function appends one or a few nodes of the closed op
 * set (lib/graph/ops.ts) to the active trace, with its output shape inferred
 * and checked now, at trace time.
 *
 * Operands. Wherever an op takes a tensor it also takes a number, a
 * HostTensor or nested number arrays (they become Const nodes, converted to
 * the graph dtype), or a state (its current symbolic value). Element-wise ops
 * follow numpy broadcasting; the native element-wise kernels want equal
 * shapes, so explicit BroadcastTo nodes are inserted for every operand whose
 * shape differs from the result's.
 *
 * Errors name the op, the expected and the actual shapes, e.g.
 * `add: shapes (2, 3) and (4,) cannot be broadcast`.
 */
import { type SurrogateKind, SURROGATE_NAMES } from '../graph/ops';
import { ArgumentError, NotSupportedError, ShapeError, fmtShape } from '../runtime/errors';
import { describe, isHostTensor, tensor as hostTensor, type HostTensor, type NestedArray } from '../tensor';
import { activeBuilder, type GraphBuilder } from './builder';
import { BaseState, ParamState } from './state';
import { SURROGATE_PARAM_COUNT, defaultSurrogate, type Surrogate } from './surrogate';
import { Tensor } from './tensor';

/**
 * Anything an op accepts as a tensor operand: a symbolic Tensor, a number
 * (a scalar constant), a HostTensor or nested arrays (a constant), or a
 * state (its current symbolic value during tracing).
 */
export type Operand = Tensor | number | HostTensor | readonly NestedArray[] | BaseState;

/** A single axis or a list of axes; negative values count from the end. */
export type Axes = number | readonly number[];

// ---------------------------------------------------------------------------
// operand handling
// ---------------------------------------------------------------------------

/** Finds the trace that an op with these operands runs in, checking they agree. */
function builderOf(name: string, operands: readonly unknown[]): GraphBuilder {
  const active = activeBuilder();
  for (const x of operands) {
    if (x instanceof Tensor) {
      if (active === null || x.builder !== active || x.builder.isClosed) {
        throw new ArgumentError(
          `${name}: tensor #${x.id} ${fmtShape(x.shape)} belongs to ${
            active === null ? 'a trace that has ended (no trace is active now)' : 'another trace (or one that has ended)'
          }; symbolic tensors only live inside the trace that created them`,
        );
      }
    }
  }
  if (active === null) {
    throw new NotSupportedError(
      `${name}: no trace is active; ops on tensors only run while tracing (inside traceModel/traceFunction), ` +
        'host-side arithmetic on HostTensors is not provided',
    );
  }
  return active;
}

/** Converts one operand to a Tensor of `b` (constants become Const nodes). */
function asTensor(b: GraphBuilder, x: unknown, name: string, arg: string): Tensor {
  if (x instanceof Tensor) {
    b.check(x, name);
    return x;
  }
  if (x instanceof BaseState) {
    const v = x.value;
    if (!(v instanceof Tensor)) {
      throw new ArgumentError(`${name}: argument ${arg} is a state that is not part of this trace`);
    }
    b.check(v, name);
    return v;
  }
  const round = b.dtype === 'float32' ? Math.fround : (v: number) => v;
  if (typeof x === 'number') return b.addConst([round(x)], []);
  if (isHostTensor(x)) return b.addConst(Array.from(x.data, round), x.shape);
  if (Array.isArray(x)) {
    const h = hostTensor(x as NestedArray[], undefined, 'float64');
    return b.addConst(Array.from(h.data, round), h.shape);
  }
  throw new ArgumentError(
    `${name}: argument ${arg} must be a Tensor, a number, a HostTensor, nested number arrays or a state; got ${describe(x)}`,
  );
}

function checkInt(v: unknown, name: string, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new ArgumentError(`${name}: ${what} must be an integer; got ${describe(v)}`);
  }
  return v;
}

function checkNumber(v: unknown, name: string, what: string): number {
  if (typeof v !== 'number' || Number.isNaN(v)) {
    throw new ArgumentError(`${name}: ${what} must be a number; got ${describe(v)}`);
  }
  return v;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Normalises one axis for a tensor of rank `rank` (negative counts from the
 * end). @throws ShapeError when out of range.
 */
export function normalizeAxis(axis: number, rank: number, name: string, shape?: readonly number[]): number {
  checkInt(axis, name, 'axis');
  if (axis < -rank || axis >= rank) {
    throw new ShapeError(
      `${name}: axis ${axis} is out of range for ${shape ? `shape ${fmtShape(shape)}` : `rank ${rank}`} (expected ${-rank} <= axis < ${rank})`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * The numpy broadcast of several shapes (right-aligned; each dimension equal
 * or 1). @throws ShapeError `name: shapes (..) and (..) cannot be broadcast`.
 */
export function broadcastShapes(name: string, ...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = new Array(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) {
        out[o] = d;
        continue;
      }
      const list = shapes.map(fmtShape);
      const joined = list.length === 2 ? list.join(' and ') : `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
      throw new ShapeError(`${name}: shapes ${joined} cannot be broadcast`);
    }
  }
  return out;
}

/** True when `from` broadcasts to `to` under numpy rules. */
function broadcastsTo(from: readonly number[], to: readonly number[]): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  return from.every((d, i) => d === 1 || d === to[off + i]);
}

function bcast(b: GraphBuilder, t: Tensor, shape: readonly number[], name: string): Tensor {
  if (sameShape(t.shape, shape)) return t;
  if (!broadcastsTo(t.shape, shape)) {
    throw new ShapeError(`${name}: shape ${fmtShape(t.shape)} cannot be broadcast to ${fmtShape(shape)}`);
  }
  return b.addNode('BroadcastTo', [t], shape);
}

/** Broadcasts `x` to `shape` (numpy rules); a BroadcastTo node unless the shape already matches. */
export function broadcastTo(x: Operand, shape: readonly number[]): Tensor {
  const b = builderOf('broadcastTo', [x]);
  const t = asTensor(b, x, 'broadcastTo', 'x');
  for (const d of shape) checkInt(d, 'broadcastTo', 'shape entry');
  return bcast(b, t, shape, 'broadcastTo');
}

// ---------------------------------------------------------------------------
// element-wise ops
// ---------------------------------------------------------------------------

type UnaryOp =
  | 'Neg' | 'Square' | 'Sqrt' | 'Abs' | 'Exp' | 'Log' | 'Log1p' | 'Tanh' | 'Sigmoid' | 'Relu'
  | 'Softplus' | 'Gelu' | 'Sin' | 'Cos' | 'StopGradient';

function unary(op: UnaryOp | 'LeakyRelu' | 'Elu' | 'Clamp' | 'Spike', name: string, x: Operand, ints: number[] = [], floats: number[] = []): Tensor {
  const b = builderOf(name, [x]);
  const t = asTensor(b, x, name, 'x');
  return b.addNode(op, [t], t.shape, ints, floats);
}

type BinaryOp =
  | 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow' | 'Minimum' | 'Maximum'
  | 'Less' | 'LessEqual' | 'Greater' | 'GreaterEqual' | 'Equal' | 'NotEqual';

function binary(op: BinaryOp, name: string, a: Operand, c: Operand): Tensor {
  const b = builderOf(name, [a, c]);
  const ta = asTensor(b, a, name, 'a');
  const tc = asTensor(b, c, name, 'b');
  const shape = broadcastShapes(name, ta.shape, tc.shape);
  return b.addNode(op, [bcast(b, ta, shape, name), bcast(b, tc, shape, name)], shape);
}

/** a + b (broadcast). */
export function add(a: Operand, b: Operand): Tensor { return binary('Add', 'add', a, b); }
/** a − b (broadcast). */
export function sub(a: Operand, b: Operand): Tensor { return binary('Sub', 'sub', a, b); }
/** a · b element-wise (broadcast). */
export function mul(a: Operand, b: Operand): Tensor { return binary('Mul', 'mul', a, b); }
/** a / b (broadcast). */
export function div(a: Operand, b: Operand): Tensor { return binary('Div', 'div', a, b); }
/** a ^ b (broadcast); d/db = a^b·ln a, taken as 0 where a <= 0. */
export function pow(a: Operand, b: Operand): Tensor { return binary('Pow', 'pow', a, b); }
/** Element-wise minimum (broadcast); ties split the derivative ½/½. */
export function minimum(a: Operand, b: Operand): Tensor { return binary('Minimum', 'minimum', a, b); }
/** Element-wise maximum (broadcast); ties split the derivative ½/½. */
export function maximum(a: Operand, b: Operand): Tensor { return binary('Maximum', 'maximum', a, b); }
/** a < b as 0/1 (broadcast; zero derivative). */
export function lt(a: Operand, b: Operand): Tensor { return binary('Less', 'lt', a, b); }
/** a <= b as 0/1. */
export function le(a: Operand, b: Operand): Tensor { return binary('LessEqual', 'le', a, b); }
/** a > b as 0/1. */
export function gt(a: Operand, b: Operand): Tensor { return binary('Greater', 'gt', a, b); }
/** a >= b as 0/1. */
export function ge(a: Operand, b: Operand): Tensor { return binary('GreaterEqual', 'ge', a, b); }
/** a == b as 0/1. */
export function eq(a: Operand, b: Operand): Tensor { return binary('Equal', 'eq', a, b); }
/** a != b as 0/1. */
export function ne(a: Operand, b: Operand): Tensor { return binary('NotEqual', 'ne', a, b); }

/** −x. */
export function neg(x: Operand): Tensor { return unary('Neg', 'neg', x); }
/** x². */
export function square(x: Operand): Tensor { return unary('Square', 'square', x); }
/** √x. */
export function sqrt(x: Operand): Tensor { return unary('Sqrt', 'sqrt', x); }
/** |x| (derivative sign(x), 0 at 0). */
export function abs(x: Operand): Tensor { return unary('Abs', 'abs', x); }
/** e^x. */
export function exp(x: Operand): Tensor { return unary('Exp', 'exp', x); }
/** Natural logarithm. */
export function log(x: Operand): Tensor { return unary('Log', 'log', x); }
/** ln(1 + x), accurate for small x. */
export function log1p(x: Operand): Tensor { return unary('Log1p', 'log1p', x); }
/** tanh(x). */
export function tanh(x: Operand): Tensor { return unary('Tanh', 'tanh', x); }
/** Logistic sigmoid 1 / (1 + e^−x). */
export function sigmoid(x: Operand): Tensor { return unary('Sigmoid', 'sigmoid', x); }
/** max(x, 0) (derivative 1 if x > 0 else 0). */
export function relu(x: Operand): Tensor { return unary('Relu', 'relu', x); }
/** ln(1 + e^x), computed stably. */
export function softplus(x: Operand): Tensor { return unary('Softplus', 'softplus', x); }
/** Exact GELU: x·Φ(x), Φ the standard normal CDF. */
export function gelu(x: Operand): Tensor { return unary('Gelu', 'gelu', x); }
/** sin(x). */
export function sin(x: Operand): Tensor { return unary('Sin', 'sin', x); }
/** cos(x). */
export function cos(x: Operand): Tensor { return unary('Cos', 'cos', x); }
/** Identity in the forward pass, zero JVP/VJP. */
export function stopGradient(x: Operand): Tensor { return unary('StopGradient', 'stopGradient', x); }

/** Leaky ReLU: x if x > 0 else slope·x. Default slope 0.01 (floats [slope]). */
export function leakyRelu(x: Operand, slope = 0.01): Tensor {
  return unary('LeakyRelu', 'leakyRelu', x, [], [checkNumber(slope, 'leakyRelu', 'slope')]);
}

/** ELU: x if x > 0 else α(e^x − 1). Default α = 1 (floats [alpha]). */
export function elu(x: Operand, alpha = 1): Tensor {
  return unary('Elu', 'elu', x, [], [checkNumber(alpha, 'elu', 'alpha')]);
}

/**
 * Clamps to [lo, hi] (±Infinity allowed for a one-sided clamp); derivative 1
 * inside [lo, hi], 0 outside. @throws ArgumentError when lo > hi.
 */
export function clamp(x: Operand, lo: number, hi: number): Tensor {
  checkNumber(lo, 'clamp', 'lo');
  checkNumber(hi, 'clamp', 'hi');
  if (lo > hi) throw new ArgumentError(`clamp: expected lo <= hi; got lo=${lo}, hi=${hi}`);
  return unary('Clamp', 'clamp', x, [], [lo, hi]);
}

/**
 * A spike: H(u) = 1 if u > 0 else 0 forward, the surrogate's g'(u) as the
 * derivative. Default surrogate: `surrogate.sigmoid({ alpha: 4 })`.
 * Records `Spike` with ints [surrogate code], floats = surrogate params.
 */
export function spike(u: Operand, surrogate: Surrogate = defaultSurrogate()): Tensor {
  if (typeof surrogate !== 'object' || surrogate === null) {
    throw new ArgumentError(`spike: surrogate must be a Surrogate object (e.g. surrogate.sigmoid()); got ${describe(surrogate)}`);
  }
  const code = SURROGATE_NAMES.indexOf(surrogate.kind as SurrogateKind);
  if (code < 0) {
    throw new ArgumentError(`spike: unknown surrogate kind ${JSON.stringify(surrogate.kind)}; expected one of ${SURROGATE_NAMES.join(', ')}`);
  }
  const want = SURROGATE_PARAM_COUNT[surrogate.kind];
  if (!Array.isArray(surrogate.params) || surrogate.params.length !== want) {
    throw new ArgumentError(
      `spike: surrogate ${surrogate.kind} needs ${want} parameters; got ${Array.isArray(surrogate.params) ? surrogate.params.length : describe(surrogate.params)}`,
    );
  }
  surrogate.params.forEach((p, i) => checkNumber(p, 'spike', `surrogate parameter ${i}`));
  return unary('Spike', 'spike', u, [code], surrogate.params.slice());
}

/** Element-wise `cond != 0 ? a : b` (all three broadcast together; no derivative to cond). */
export function where(cond: Operand, a: Operand, b: Operand): Tensor {
  const bl = builderOf('where', [cond, a, b]);
  const tc = asTensor(bl, cond, 'where', 'cond');
  const ta = asTensor(bl, a, 'where', 'a');
  const tb = asTensor(bl, b, 'where', 'b');
  const shape = broadcastShapes('where', tc.shape, ta.shape, tb.shape);
  return bl.addNode('Where', [bcast(bl, tc, shape, 'where'), bcast(bl, ta, shape, 'where'), bcast(bl, tb, shape, 'where')], shape);
}

// ---------------------------------------------------------------------------
// reductions and normalisers
// ---------------------------------------------------------------------------

/** Sorted unique axes of a reduction (undefined = all axes). */
function reduceAxes(name: string, shape: readonly number[], axis: Axes | undefined): number[] {
  const rank = shape.length;
  if (axis === undefined) return shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : Array.from(axis);
  const seen = new Set<number>();
  for (const a of list) {
    const n = normalizeAxis(a, rank, name, shape);
    if (seen.has(n)) {
      throw new ArgumentError(`${name}: axis ${a} is repeated in [${list.join(', ')}] for shape ${fmtShape(shape)}`);
    }
    seen.add(n);
  }
  return [...seen].sort((x, y) => x - y);
}

function reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax', name: string, x: Operand, axis: Axes | undefined, keepdims: boolean): Tensor {
  const b = builderOf(name, [x]);
  const t = asTensor(b, x, name, 'x');
  const axes = reduceAxes(name, t.shape, axis);
  if (axes.length === 0) return t;
  if (op === 'ReduceMax') {
    for (const a of axes) {
      if (t.shape[a] === 0) throw new ShapeError(`${name}: cannot take the max over axis ${a} of size 0 in shape ${fmtShape(t.shape)}`);
    }
  }
  const shape: number[] = [];
  t.shape.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return b.addNode(op, [t], shape, axes);
}

/**
 * Sum over `axis` (a number or a list; negative counts from the end;
 * undefined = every axis). `keepdims` keeps reduced axes as size 1.
 */
export function sum(x: Operand, axis?: Axes, keepdims = false): Tensor { return reduce('ReduceSum', 'sum', x, axis, keepdims); }
/** Mean over `axis` (same axis rules as {@link sum}). */
export function mean(x: Operand, axis?: Axes, keepdims = false): Tensor { return reduce('ReduceMean', 'mean', x, axis, keepdims); }
/** Maximum over `axis` (same axis rules as {@link sum}); ties split the derivative equally. */
export function max(x: Operand, axis?: Axes, keepdims = false): Tensor { return reduce('ReduceMax', 'max', x, axis, keepdims); }

function normaliser(op: 'Softmax' | 'LogSoftmax', name: string, x: Operand, axis: number): Tensor {
  const b = builderOf(name, [x]);
  const t = asTensor(b, x, name, 'x');
  if (t.ndim === 0) throw new ShapeError(`${name}: needs a tensor of rank >= 1; got shape ${fmtShape(t.shape)}`);
  const a = normalizeAxis(axis, t.ndim, name, t.shape);
  return b.addNode(op, [t], t.shape, [a]);
}

/** softmax over `axis` (default −1): e^x / Σ e^x. */
export function softmax(x: Operand, axis = -1): Tensor { return normaliser('Softmax', 'softmax', x, axis); }
/** log-softmax over `axis` (default −1): x − log Σ e^x. */
export function logSoftmax(x: Operand, axis = -1): Tensor { return normaliser('LogSoftmax', 'logSoftmax', x, axis); }

// ---------------------------------------------------------------------------
// layout
// ---------------------------------------------------------------------------

/**
 * Reshape to `shape` (same number of elements). One entry may be −1: it is
 * inferred. Returns `x` itself when the shape is unchanged.
 */
export function reshape(x: Operand, shape: readonly number[]): Tensor {
  const b = builderOf('reshape', [x]);
  const t = asTensor(b, x, 'reshape', 'x');
  if (!Array.isArray(shape)) throw new ArgumentError(`reshape: shape must be an array; got ${describe(shape)}`);
  const n = t.size;
  let infer = -1;
  let known = 1;
  shape.forEach((d, i) => {
    checkInt(d, 'reshape', 'shape entry');
    if (d === -1) {
      if (infer >= 0) throw new ArgumentError(`reshape: only one dimension can be -1; got ${fmtShape(shape)}`);
      infer = i;
    } else if (d < 0) {
      throw new ArgumentError(`reshape: dimensions must be >= 0 or -1; got ${fmtShape(shape)}`);
    } else known *= d;
  });
  const out = shape.slice();
  if (infer >= 0) {
    if (known === 0 || n % known !== 0) {
      throw new ShapeError(`reshape: cannot reshape ${fmtShape(t.shape)} (${n} elements) to ${fmtShape(shape)}`);
    }
    out[infer] = n / known;
  } else if (known !== n) {
    throw new ShapeError(`reshape: cannot reshape ${fmtShape(t.shape)} (${n} elements) to ${fmtShape(shape)} (${known} elements)`);
  }
  if (sameShape(out, t.shape)) return t;
  return b.addNode('Reshape', [t], out);
}

/** Inserts a size-1 axis at `axis` (−rank−1 <= axis <= rank); a Reshape. */
export function expandDims(x: Operand, axis: number): Tensor {
  const b = builderOf('expandDims', [x]);
  const t = asTensor(b, x, 'expandDims', 'x');
  const a = normalizeAxis(axis, t.ndim + 1, 'expandDims', t.shape);
  const shape = t.shape.slice();
  shape.splice(a, 0, 1);
  return b.addNode('Reshape', [t], shape);
}

/**
 * Removes size-1 axes: all of them (axis undefined) or those listed (each must
 * have size 1, else ShapeError). A Reshape.
 */
export function squeeze(x: Operand, axis?: Axes): Tensor {
  const b = builderOf('squeeze', [x]);
  const t = asTensor(b, x, 'squeeze', 'x');
  let axes: number[];
  if (axis === undefined) {
    axes = t.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  } else {
    axes = reduceAxes('squeeze', t.shape, axis);
    for (const a of axes) {
      if (t.shape[a] !== 1) {
        throw new ShapeError(`squeeze: axis ${a} has size ${t.shape[a]}, expected 1, in shape ${fmtShape(t.shape)}`);
      }
    }
  }
  if (axes.length === 0) return t;
  return b.addNode('Reshape', [t], t.shape.filter((_, i) => !axes.includes(i)));
}

/**
 * Permutes axes: output axis i is input axis perm[i] (negative entries allowed).
 * Default: reverse the axes. Returns `x` for the identity permutation.
 */
export function transpose(x: Operand, perm?: readonly number[]): Tensor {
  const b = builderOf('transpose', [x]);
  const t = asTensor(b, x, 'transpose', 'x');
  const r = t.ndim;
  const p = perm === undefined ? t.shape.map((_, i) => r - 1 - i) : Array.from(perm);
  const bad = () =>
    new ShapeError(`transpose: perm [${p.join(', ')}] is not a permutation of the ${r} axes of shape ${fmtShape(t.shape)}`);
  if (p.length !== r) throw bad();
  const norm = p.map((a) => {
    checkInt(a, 'transpose', 'perm entry');
    if (a < -r || a >= r) throw bad();
    return a < 0 ? a + r : a;
  });
  if (new Set(norm).size !== r) throw bad();
  if (norm.every((a, i) => a === i)) return t;
  return b.addNode('Transpose', [t], norm.map((a) => t.shape[a]), norm);
}

/**
 * Box slice: `begin[i]` (0 <= begin <= dim) and `size[i]` (−1 = to the end)
 * per axis; out shape = sizes. Returns `x` when the box is the whole tensor.
 */
export function slice(x: Operand, begin: readonly number[], size: readonly number[]): Tensor {
  const b = builderOf('slice', [x]);
  const t = asTensor(b, x, 'slice', 'x');
  const r = t.ndim;
  if (!Array.isArray(begin) || !Array.isArray(size) || begin.length !== r || size.length !== r) {
    throw new ShapeError(
      `slice: begin and size need one entry per axis of shape ${fmtShape(t.shape)} (${r}); got begin [${String(begin)}] and size [${String(size)}]`,
    );
  }
  const sizes = t.shape.map((d, i) => {
    const s0 = checkInt(begin[i], 'slice', 'begin entry');
    const n0 = checkInt(size[i], 'slice', 'size entry');
    const n = n0 === -1 ? d - s0 : n0;
    if (s0 < 0 || n < 0 || s0 + n > d) {
      throw new ShapeError(
        `slice: axis ${i}: begin ${s0} and size ${n0} do not fit in dimension ${d} of shape ${fmtShape(t.shape)}`,
      );
    }
    return n;
  });
  if (sameShape(sizes, t.shape)) return t;
  return b.addNode('Slice', [t], sizes, begin.slice());
}

/**
 * The range [start, stop) of one axis (negative indices count from the end;
 * stop defaults to the end). @throws ShapeError when out of range.
 */
export function sliceAxis(x: Operand, axis: number, start: number, stop?: number): Tensor {
  const b = builderOf('sliceAxis', [x]);
  const t = asTensor(b, x, 'sliceAxis', 'x');
  const a = normalizeAxis(axis, t.ndim, 'sliceAxis', t.shape);
  const d = t.shape[a];
  checkInt(start, 'sliceAxis', 'start');
  const s = start < 0 ? start + d : start;
  const e0 = stop === undefined ? d : checkInt(stop, 'sliceAxis', 'stop');
  const e = e0 < 0 ? e0 + d : e0;
  if (s < 0 || e > d || s > e) {
    throw new ShapeError(
      `sliceAxis: range [${start}, ${stop ?? d}) does not fit axis ${a} of size ${d} in shape ${fmtShape(t.shape)}`,
    );
  }
  const begin = t.shape.map((_, i) => (i === a ? s : 0));
  const size = t.shape.map((dd, i) => (i === a ? e - s : dd));
  return slice(t, begin, size);
}

/**
 * Index `index` of axis `axis` with that axis removed (negative index counts
 * from the end): e.g. state `k` of a hidden group `(B, N, S)` is
 * `select(h, -1, k)` → `(B, N)`. A Slice plus a Reshape.
 */
export function select(x: Operand, axis: number, index: number): Tensor {
  const b = builderOf('select', [x]);
  const t = asTensor(b, x, 'select', 'x');
  const a = normalizeAxis(axis, t.ndim, 'select', t.shape);
  const d = t.shape[a];
  checkInt(index, 'select', 'index');
  const i = index < 0 ? index + d : index;
  if (i < 0 || i >= d) {
    throw new ShapeError(`select: index ${index} is out of range for axis ${a} of size ${d} in shape ${fmtShape(t.shape)}`);
  }
  const s = sliceAxis(t, a, i, i + 1);
  return reshape(s, t.shape.filter((_, k) => k !== a));
}

/**
 * Concatenates along `axis` (default −1). All operands need the same rank
 * (>= 1) and equal dimensions except along `axis`. One operand is returned as is.
 */
export function concat(tensors: readonly Operand[], axis = -1): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new ArgumentError(`concat: expected a non-empty array of tensors; got ${describe(tensors)}`);
  }
  const b = builderOf('concat', tensors);
  const ts = tensors.map((x, i) => asTensor(b, x, 'concat', `tensors[${i}]`));
  const r = ts[0].ndim;
  if (r === 0) throw new ShapeError(`concat: tensors must have rank >= 1; tensors[0] has shape ()`);
  const a = normalizeAxis(axis, r, 'concat', ts[0].shape);
  let total = 0;
  ts.forEach((t, i) => {
    const ok = t.ndim === r && t.shape.every((d, k) => k === a || d === ts[0].shape[k]);
    if (!ok) {
      throw new ShapeError(
        `concat: tensors[${i}] has shape ${fmtShape(t.shape)}, which does not match tensors[0] ${fmtShape(ts[0].shape)} on every axis but ${a}`,
      );
    }
    total += t.shape[a];
  });
  if (ts.length === 1) return ts[0];
  const shape = ts[0].shape.slice();
  shape[a] = total;
  return b.addNode('Concat', ts, shape, [a]);
}

/**
 * Stacks equal-shaped tensors along a new axis `axis` (default 0; −1 = a new
 * last axis, e.g. to rebuild a hidden group's value `(B, N, S)` from S
 * tensors `(B, N)`). expandDims + Concat.
 */
export function stack(tensors: readonly Operand[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new ArgumentError(`stack: expected a non-empty array of tensors; got ${describe(tensors)}`);
  }
  const b = builderOf('stack', tensors);
  const ts = tensors.map((x, i) => asTensor(b, x, 'stack', `tensors[${i}]`));
  ts.forEach((t, i) => {
    if (!sameShape(t.shape, ts[0].shape)) {
      throw new ShapeError(`stack: tensors[${i}] has shape ${fmtShape(t.shape)}; expected ${fmtShape(ts[0].shape)} like tensors[0]`);
    }
  });
  const a = normalizeAxis(axis, ts[0].ndim + 1, 'stack', ts[0].shape);
  return concat(ts.map((t) => expandDims(t, a)), a);
}

// ---------------------------------------------------------------------------
// products
// ---------------------------------------------------------------------------

/**
 * If `w` designates a trainable weight, returns its tensor: a ParamState's
 * value (the Param leaf), or a tensor computed from exactly one Param and
 * constants only (a weight transform such as `abs(W)` or `W · mask`).
 */
function weightTensor(b: GraphBuilder, w: unknown, name: string, arg: string): Tensor | null {
  if (w instanceof ParamState) return asTensor(b, w, name, arg);
  if (w instanceof Tensor) {
    b.check(w, name);
    if (b.paramDeps(w).length === 1 && !b.isDynamic(w)) return w;
  }
  return null;
}

function weightLabel(b: GraphBuilder, w: Tensor): string {
  const deps = b.paramDeps(w);
  return deps.length === 1 ? `weight '${b.paramPath(deps[0])}'` : 'weight';
}

/**
 * Matrix product.
 *
 * ETP form (a trainable-weight op, recorded as `EtpMatMul`): when `w` is a
 * ParamState — or a tensor computed from exactly one ParamState and constants
 * (its value, or a transform of it) — the result is `x · W (+ bias)` with
 * x `(..., I)`, W `(I, O)` → `(..., O)`. A `bias` that is a ParamState (or
 * computed from one ParamState) with O elements becomes the op's third input
 * (reshaped to `(O,)`); any other bias is added afterwards with broadcasting.
 *
 * Plain form (`MatMul`, not trained by eligibility traces): otherwise, with
 * `a (..., M, K) × b (K, N) → (..., M, N)`, or batched `a (G..., M, K) ×
 * b (G..., K, N)` with equal leading dims. A 1-D `a (K,)` or `b (K,)` is
 * treated as a row / column vector and that axis is dropped from the result.
 * A `bias` is added with broadcasting.
 */
export function matmul(x: Operand, w: Operand | ParamState, bias?: Operand | ParamState): Tensor {
  const b = builderOf('matmul', bias === undefined ? [x, w] : [x, w, bias]);
  const W = weightTensor(b, w, 'matmul', 'w');
  if (W !== null) {
    const tx = asTensor(b, x, 'matmul', 'x');
    if (W.ndim !== 2) {
      throw new ShapeError(`matmul: the ETP ${weightLabel(b, W)} must be 2-D (I, O); got ${fmtShape(W.shape)}`);
    }
    const [I, O] = W.shape;
    if (tx.ndim < 1 || tx.shape[tx.ndim - 1] !== I) {
      throw new ShapeError(
        `matmul: x ${fmtShape(tx.shape)} and ${weightLabel(b, W)} ${fmtShape(W.shape)}: the last dimension of x must equal I = ${I}`,
      );
    }
    const outShape = [...tx.shape.slice(0, -1), O];
    if (bias !== undefined) {
      const tb = weightTensor(b, bias, 'matmul', 'bias');
      if (tb !== null) {
        if (tb.size !== O) {
          throw new ShapeError(`matmul: the ETP bias ${fmtShape(tb.shape)} must have O = ${O} elements, shape (${O},)`);
        }
        return b.addNode('EtpMatMul', [tx, W, reshape(tb, [O])], outShape);
      }
      return add(b.addNode('EtpMatMul', [tx, W], outShape), bias as Operand);
    }
    return b.addNode('EtpMatMul', [tx, W], outShape);
  }
  const ta = asTensor(b, x, 'matmul', 'a');
  const tb = asTensor(b, w, 'matmul', 'b');
  let y = plainMatmul(b, ta, tb);
  if (bias !== undefined) y = add(y, bias as Operand);
  return y;
}

function plainMatmul(b: GraphBuilder, a: Tensor, c: Tensor): Tensor {
  if (a.ndim === 0 || c.ndim === 0) {
    throw new ShapeError(`matmul: operands must have rank >= 1; got ${fmtShape(a.shape)} and ${fmtShape(c.shape)}`);
  }
  if (a.ndim === 1) {
    const y = plainMatmul(b, expandDims(a, 0), c);
    return squeeze(y, -2);
  }
  if (c.ndim === 1) {
    const y = plainMatmul(b, a, expandDims(c, 1));
    return squeeze(y, -1);
  }
  const K = a.shape[a.ndim - 1];
  const [K2, N] = c.shape.slice(-2);
  const mismatch = () =>
    new ShapeError(
      `matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(c.shape)} do not fit: expected a (..., M, K) x b (K, N), or equal leading dims (G..., M, K) x (G..., K, N)`,
    );
  if (K !== K2) throw mismatch();
  if (c.ndim > 2 && (c.ndim !== a.ndim || !sameShape(a.shape.slice(0, -2), c.shape.slice(0, -2)))) throw mismatch();
  return b.addNode('MatMul', [a, c], [...a.shape.slice(0, -1), N]);
}

/**
 * An element-wise trainable weight (ETP): records `EtpElementWise` (an
 * identity marker) on the weight's value and then applies `fn` to it. The
 * ETP op output is the EtpElementWise node; what `fn` does (e.g. multiply by
 * x) is the op's non-parametric tail. Example: `h = λ·h + x · elementWise(w)`.
 * @param w a ParamState (or a tensor computed from exactly one ParamState and constants).
 * @returns `fn(y)` where `y` has the weight's shape (or `y` when fn is omitted).
 */
export function elementWise(w: ParamState | Tensor, fn?: (y: Tensor) => Tensor): Tensor {
  const b = builderOf('elementWise', [w]);
  const W = weightTensor(b, w, 'elementWise', 'w');
  if (W === null) {
    throw new ArgumentError(
      `elementWise: w must be a ParamState (or a tensor computed from exactly one ParamState and constants); got ${
        w instanceof Tensor ? `a tensor depending on ${b.isDynamic(w) ? 'inputs/states' : `${b.paramDeps(w).length} params`}` : describe(w)
      }`,
    );
  }
  const y = b.addNode('EtpElementWise', [W], W.shape);
  if (fn === undefined) return y;
  const out = fn(y);
  if (!(out instanceof Tensor)) throw new ArgumentError(`elementWise: fn must return a Tensor; got ${describe(out)}`);
  return out;
}
