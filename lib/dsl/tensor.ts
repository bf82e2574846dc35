/**
 * Symbolic tensors: the values a model manipulates while it is traced.
 *
 * A {@link Tensor} is a handle on one node of the graph being built: it knows
 * its static shape, its dtype (the graph's) and its node id. Tensors exist
 * only during a trace (`traceModel` / `traceFunction`); they hold no numbers.
 * Every method is the same as the free function of the same name in
 * `ops.ts` (`x.add(y)` ≡ `add(x, y)`).
 */
import type { DType } from '../graph/ir';
import type { OpKind } from '../graph/ops';
import { fmtShape } from '../runtime/errors';
import { numel } from '../tensor';
import type { GraphBuilder } from './builder';
import * as ops from './ops';
import type { Operand } from './ops';
import type { Surrogate } from './surrogate';

/** A symbolic tensor: one node of the graph being traced. */
export class Tensor {
  /** The builder (trace) that owns this tensor. */
  readonly builder: GraphBuilder;
  /** Id of the node producing this tensor. */
  readonly id: number;
  /** Static shape ([] for a scalar). */
  readonly shape: readonly number[];
  /** Element type (the graph's dtype). */
  readonly dtype: DType;

  /** @internal Created by GraphBuilder only. */
  constructor(builder: GraphBuilder, id: number, shape: number[], dtype: DType) {
    this.builder = builder;
    this.id = id;
    this.shape = Object.freeze(shape);
    this.dtype = dtype;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** The op that produced this tensor. */
  get op(): OpKind {
    return this.builder.node(this.id).op;
  }

  /** `Tensor#12 Tanh (2, 3) float32`. */
  toString(): string {
    return `Tensor#${this.id} ${this.op} ${fmtShape(this.shape)} ${this.dtype}`;
  }

  // ---- element-wise arithmetic (numpy broadcasting) ----
  /** this + b. */
  add(b: Operand): Tensor { return ops.add(this, b); }
  /** this − b. */
  sub(b: Operand): Tensor { return ops.sub(this, b); }
  /** this · b (element-wise). */
  mul(b: Operand): Tensor { return ops.mul(this, b); }
  /** this / b. */
  div(b: Operand): Tensor { return ops.div(this, b); }
  /** this ^ b. */
  pow(b: Operand): Tensor { return ops.pow(this, b); }
  /** min(this, b) element-wise. */
  minimum(b: Operand): Tensor { return ops.minimum(this, b); }
  /** max(this, b) element-wise. */
  maximum(b: Operand): Tensor { return ops.maximum(this, b); }
  /** −this. */
  neg(): Tensor { return ops.neg(this); }
  /** this². */
  square(): Tensor { return ops.square(this); }
  /** √this. */
  sqrt(): Tensor { return ops.sqrt(this); }
  /** |this|. */
  abs(): Tensor { return ops.abs(this); }
  /** e^this. */
  exp(): Tensor { return ops.exp(this); }
  /** ln(this). */
  log(): Tensor { return ops.log(this); }
  /** ln(1 + this). */
  log1p(): Tensor { return ops.log1p(this); }
  /** tanh(this). */
  tanh(): Tensor { return ops.tanh(this); }
  /** 1 / (1 + e^−this). */
  sigmoid(): Tensor { return ops.sigmoid(this); }
  /** max(this, 0). */
  relu(): Tensor { return ops.relu(this); }
  /** this if > 0 else slope·this. */
  leakyRelu(slope?: number): Tensor { return ops.leakyRelu(this, slope); }
  /** ln(1 + e^this). */
  softplus(): Tensor { return ops.softplus(this); }
  /** this if > 0 else α(e^this − 1). */
  elu(alpha?: number): Tensor { return ops.elu(this, alpha); }
  /** this·Φ(this) (exact GELU). */
  gelu(): Tensor { return ops.gelu(this); }
  /** sin(this). */
  sin(): Tensor { return ops.sin(this); }
  /** cos(this). */
  cos(): Tensor { return ops.cos(this); }
  /** Clamp to [lo, hi]. */
  clamp(lo: number, hi: number): Tensor { return ops.clamp(this, lo, hi); }
  /** Heaviside spike H(this) with a surrogate gradient (default sigmoid(α=4)). */
  spike(surrogate?: Surrogate): Tensor { return ops.spike(this, surrogate); }
  /** Identity forward, zero derivative. */
  stopGradient(): Tensor { return ops.stopGradient(this); }

  // ---- comparisons (0/1 in the graph dtype) ----
  /** this < b. */
  lt(b: Operand): Tensor { return ops.lt(this, b); }
  /** this <= b. */
  le(b: Operand): Tensor { return ops.le(this, b); }
  /** this > b. */
  gt(b: Operand): Tensor { return ops.gt(this, b); }
  /** this >= b. */
  ge(b: Operand): Tensor { return ops.ge(this, b); }
  /** this == b. */
  eq(b: Operand): Tensor { return ops.eq(this, b); }
  /** this != b. */
  ne(b: Operand): Tensor { return ops.ne(this, b); }

  // ---- reductions ----
  /** Sum over `axis` (all axes when undefined). */
  sum(axis?: number | readonly number[], keepdims = false): Tensor { return ops.sum(this, axis, keepdims); }
  /** Mean over `axis` (all axes when undefined). */
  mean(axis?: number | readonly number[], keepdims = false): Tensor { return ops.mean(this, axis, keepdims); }
  /** Maximum over `axis` (all axes when undefined). */
  max(axis?: number | readonly number[], keepdims = false): Tensor { return ops.max(this, axis, keepdims); }

  // ---- layout ----
  /** Reshape (one dimension may be −1). */
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  /** Broadcast to `shape` (numpy rules). */
  broadcastTo(shape: readonly number[]): Tensor { return ops.broadcastTo(this, shape); }
  /** Permute axes (default: reverse them). */
  transpose(perm?: readonly number[]): Tensor { return ops.transpose(this, perm); }
  /** Insert a size-1 axis at `axis`. */
  expandDims(axis: number): Tensor { return ops.expandDims(this, axis); }
  /** Remove size-1 axes (all of them, or those listed). */
  squeeze(axis?: number | readonly number[]): Tensor { return ops.squeeze(this, axis); }
  /** Box slice: `begin` per axis, `size` per axis (−1 = to the end). */
  slice(begin: readonly number[], size: readonly number[]): Tensor { return ops.slice(this, begin, size); }
  /** Range [start, stop) on one axis (negative indices count from the end). */
  sliceAxis(axis: number, start: number, stop?: number): Tensor { return ops.sliceAxis(this, axis, start, stop); }
  /** Index `index` of axis `axis`, the axis removed. */
  select(axis: number, index: number): Tensor { return ops.select(this, axis, index); }

  // ---- products and normalisers ----
  /** Matrix product (ETP when `b` is a ParamState); see {@link ops.matmul}. */
  matmul(b: Parameters<typeof ops.matmul>[1], bias?: Parameters<typeof ops.matmul>[2]): Tensor {
    return ops.matmul(this, b, bias);
  }
  /** Softmax over `axis` (default −1). */
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  /** Log-softmax over `axis` (default −1). */
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
}
