/**
 * States: the values a model keeps between steps.
 *
 * | class              | role                                  | value shape                  |
 * |--------------------|---------------------------------------|------------------------------|
 * | ParamState         | trainable weight (never written)      | `shape`                      |
 * | HiddenState        | recurrent state, one per position     | `(B, ...shape)`              |
 * | HiddenGroupState   | S states stacked on a trailing axis   | `(B, ...shape, S)`           |
 * | State              | other short-term state (counters, …) | `(B, ...shape)` or `shape`   |
 *
 * `state.value` has two lives. While the owning model is traced
 * (`traceModel`), it is a symbolic {@link Tensor}: reading gives the current
 * value (the State/Param leaf until assigned), assigning records the new value
 * (its shape must equal the state's, batch axis included). Outside tracing it
 * is a {@link HostTensor} (set after `model.initStates()`); assigning copies a
 * host value in, checking its shape. `hostValue` is the typed host accessor.
 */
import type { DType, StateKind } from '../graph/ir';
import { ArgumentError, DTypeError, NotSupportedError, ShapeError, fmtShape } from '../runtime/errors';
import {
  checkShape,
  cloneHost,
  describe,
  isHostTensor,
  tensor as hostTensor,
  type HostTensor,
  type TensorLike,
} from '../tensor';
import type { GraphBuilder } from './builder';
import { activeBuilder } from './builder';
import { runInitializer, zeros as zerosInit, constant as constantInit, type Initializer } from './init';
import { broadcastTo } from './ops';
import { Rng } from './random';
import { Tensor } from './tensor';

/** Binding of a state to the trace in progress. */
interface TraceBinding {
  builder: GraphBuilder;
  leaf: Tensor;
  current: Tensor;
}

/** What a value may be assigned from: a symbolic Tensor (tracing) or host data. */
export type StateValueInput = Tensor | TensorLike;

/** How states are initialised (see Module.initStates). */
export interface InitContext {
  /** Batch size B of batched states. */
  batchSize: number;
  /** Element type of every value. */
  dtype: DType;
  /** Root seed; each state draws from the stream `(seed, path)`. */
  seed: number;
}

/** Kind of a state: 'param' for weights, else the StateSlot kind. */
export type AnyStateKind = 'param' | StateKind;

function resolveInit(init: Initializer | number | undefined, what: string): Initializer {
  if (init === undefined) return zerosInit();
  if (typeof init === 'number') return constantInit(init);
  if (typeof init === 'function') return init;
  throw new ArgumentError(`${what}: init must be an Initializer (e.g. init.zeros()) or a number; got ${describe(init)}`);
}

/** Base class of every state. Not constructed directly. */
export abstract class BaseState {
  /** Kind of state ('param', 'hidden', 'hiddenGroup', 'other'). */
  abstract readonly kind: AnyStateKind;
  /**
   * Declared shape: the full shape for a ParamState, the per-sample shape
   * (without batch or group axes) for the others.
   */
  readonly shape: readonly number[];
  /** @internal host value (null before initialisation). */
  protected _value: HostTensor | null = null;
  /** @internal dotted path, set when a Module enumerates its states. */
  _path: string | null = null;
  /** @internal binding to the trace in progress. */
  _trace: TraceBinding | null = null;

  protected constructor(shape: readonly number[], what: string) {
    this.shape = Object.freeze(checkShape(shape as number[], `${what}: shape`));
  }

  /** Dotted path in the owning model ('rnn.h'), or `<unnamed Kind>` before the model enumerated it. */
  get path(): string {
    return this._path ?? `<unnamed ${this.constructor.name}>`;
  }

  /** Number of stacked states S (1 except for HiddenGroupState). */
  get numState(): number {
    return 1;
  }

  /** Full value shape for batch size `batchSize` (batch and group axes included). */
  abstract fullShape(batchSize: number): number[];

  /** dtype of the host value, or null before initialisation. */
  get dtype(): DType | null {
    return this._value?.dtype ?? null;
  }

  /** True once the host value exists. */
  get initialized(): boolean {
    return this._value !== null;
  }

  /**
   * The value. During a trace of the owning model: the current symbolic
   * Tensor. Outside tracing: the HostTensor at runtime (typed as Tensor for
   * the benefit of update() code; use {@link hostValue} for typed host access).
   */
  get value(): Tensor {
    const active = activeBuilder();
    if (active !== null) {
      if (this._trace === null || this._trace.builder !== active) {
        throw new ArgumentError(
          `state '${this.path}' is read while tracing, but it is not a state of the traced model ` +
            '(states are symbolic only inside traceModel of a model that holds them as properties)',
        );
      }
      return this._trace.current;
    }
    return this.hostValue as unknown as Tensor;
  }

  set value(v: StateValueInput) {
    const active = activeBuilder();
    if (active !== null) {
      this.assignSymbolic(active, v);
    } else {
      this.hostValue = v as TensorLike;
    }
  }

  /** The host value (outside tracing). @throws ArgumentError before initialisation. */
  get hostValue(): HostTensor {
    if (this._value === null) {
      throw new ArgumentError(`state '${this.path}' has no value yet: call model.initStates() first`);
    }
    return this._value;
  }

  /**
   * Sets the host value (a copy, converted to the state's dtype). The shape
   * must equal the current value's shape (or, before initialisation, the
   * declared shape with any batch size). @throws ShapeError naming both shapes.
   */
  set hostValue(v: TensorLike) {
    if (v instanceof Tensor) {
      throw new ArgumentError(`state '${this.path}': a symbolic Tensor can only be assigned while the model is traced`);
    }
    const dtype = this._value?.dtype ?? (isHostTensor(v) ? v.dtype : 'float32');
    const h = isHostTensor(v) ? cloneHost(v, dtype) : hostTensor(v, undefined, dtype);
    const expected = this._value?.shape ?? this.fullShape(this.batchedAxis() && h.shape.length > 0 ? h.shape[0] : 0);
    if (h.shape.length !== expected.length || h.shape.some((d, i) => d !== expected[i])) {
      throw new ShapeError(
        `state '${this.path}': value of shape ${fmtShape(h.shape)} does not match the state's shape ${fmtShape(expected)}`,
      );
    }
    this._value = h;
  }

  /** True when the value carries a leading batch axis. */
  protected batchedAxis(): boolean {
    return true;
  }

  /** @internal records a new value during tracing. */
  protected assignSymbolic(active: GraphBuilder, v: StateValueInput): void {
    if (this._trace === null || this._trace.builder !== active) {
      throw new ArgumentError(
        `state '${this.path}' is written while tracing, but it is not a state of the traced model`,
      );
    }
    const leaf = this._trace.leaf;
    let t: Tensor;
    if (v instanceof Tensor) {
      active.check(v, `state '${this.path}'`);
      t = v;
    } else if (typeof v === 'number') {
      t = broadcastTo(v, leaf.shape);
    } else if (isHostTensor(v) || Array.isArray(v)) {
      t = broadcastTo(v as HostTensor, leaf.shape);
    } else {
      throw new ArgumentError(`state '${this.path}': cannot assign ${describe(v)}; expected a Tensor`);
    }
    if (t.dtype !== leaf.dtype) {
      throw new DTypeError(`state '${this.path}': new value has dtype ${t.dtype}; expected ${leaf.dtype}`);
    }
    if (t.shape.length !== leaf.shape.length || t.shape.some((d, i) => d !== leaf.shape[i])) {
      throw new ShapeError(
        `state '${this.path}': new value has shape ${fmtShape(t.shape)}; expected ${fmtShape(leaf.shape)} ` +
          '(the state\'s shape, batch axis included)',
      );
    }
    this._trace.current = t;
  }

  /** @internal creates the host value for `ctx` (path must be set). */
  abstract _initialize(ctx: InitContext): void;

  /** @internal binds the state to a trace with its leaf tensor. */
  _bind(builder: GraphBuilder, leaf: Tensor): void {
    this._trace = { builder, leaf, current: leaf };
  }

  /** @internal ends the binding. */
  _unbind(): void {
    this._trace = null;
  }

  /** @internal the value recorded for the end of the step (the leaf if never assigned). */
  _traceResult(): Tensor {
    if (this._trace === null) throw new ArgumentError(`state '${this.path}' is not bound to a trace`);
    return this._trace.current;
  }
}

/**
 * A trainable weight. Its value never changes inside a step (assigning it
 * during tracing throws NotSupportedError); optimisers update it between steps.
 *
 * `new ParamState(init.xavierNormal(), [I, O])`: drawn at `initStates()` from
 * the stream `(seed, path)`. `new ParamState([[1, 2], [3, 4]])` or
 * `new ParamState(hostTensor)`: fixed initial data (copied; converted to the
 * model dtype at `initStates()`). `new ParamState(0.5, [O])`: a constant.
 */
export class ParamState extends BaseState {
  /** Always 'param'. */
  readonly kind = 'param' as const;
  private readonly init: Initializer | null;
  private readonly source: HostTensor | null;

  /**
   * @param init an Initializer (then `shape` is required), a number (constant;
   *   shape defaults to `[]`), or initial data (nested arrays, a HostTensor, a
   *   typed array with `shape`).
   * @param shape the weight's full shape, e.g. `(I, O)` for a matmul weight.
   */
  constructor(init: Initializer | TensorLike, shape?: readonly number[]) {
    if (typeof init === 'function') {
      if (shape === undefined) throw new ArgumentError('ParamState: a shape is required with an Initializer');
      super(shape, 'ParamState');
      this.init = init;
      this.source = null;
    } else if (typeof init === 'number' && shape !== undefined) {
      super(shape, 'ParamState');
      this.init = constantInit(init);
      this.source = null;
    } else {
      const src = hostTensor(init, shape, 'float64');
      super(src.shape, 'ParamState');
      this.init = null;
      this.source = src;
      this._value = cloneHost(src, 'float32');
    }
  }

  /** The weight shape (no batch axis). */
  fullShape(_batchSize?: number): number[] {
    return this.shape.slice();
  }

  protected batchedAxis(): boolean {
    return false;
  }

  protected assignSymbolic(): void {
    throw new NotSupportedError(
      `ParamState '${this.path}' is written in update(): weights cannot be dynamical (a step may not change a ` +
        'trainable parameter); keep changing values in a HiddenState or State, and let the optimiser update weights',
    );
  }

  /** @internal */
  _initialize(ctx: InitContext): void {
    if (this.source !== null) {
      this._value = cloneHost(this.source, ctx.dtype);
      return;
    }
    const data = runInitializer(this.init!, this.shape, new Rng(ctx.seed, this.path), ctx.dtype, `ParamState '${this.path}'`);
    this._value = { data, shape: this.shape.slice(), dtype: ctx.dtype };
  }
}

/** Shared implementation of the non-parameter states. */
abstract class ShortTermState extends BaseState {
  /** @internal */
  protected readonly init: Initializer;

  protected constructor(shape: readonly number[], init: Initializer | number | undefined, what: string) {
    super(shape, what);
    this.init = resolveInit(init, what);
  }

  /** @internal */
  _initialize(ctx: InitContext): void {
    const full = this.fullShape(ctx.batchSize);
    const data = runInitializer(this.init, full, new Rng(ctx.seed, this.path), ctx.dtype, `${this.constructor.name} '${this.path}'`);
    this._value = { data, shape: full, dtype: ctx.dtype };
  }
}

/**
 * A recurrent hidden state with S = 1: value `(B, ...shape)`.
 * @param shape per-sample shape (varshape), e.g. `[N]`.
 * @param init initialiser of the full `(B, ...shape)` value (default zeros) or a constant.
 */
export class HiddenState extends ShortTermState {
  /** Always 'hidden'. */
  readonly kind = 'hidden' as const;
  constructor(shape: readonly number[], init?: Initializer | number) {
    super(shape, init, 'HiddenState');
  }
  /** `(B, ...shape)`. */
  fullShape(batchSize: number): number[] {
    return [batchSize, ...this.shape];
  }
}

/**
 * S hidden states of the same varshape stacked on a trailing axis: value
 * `(B, ...shape, S)` (the reference's HiddenGroupState). State k is
 * `select(value, -1, k)`; write back with `stack([...], -1)`.
 * @param shape per-sample varshape, e.g. `[N]`.
 * @param numState S >= 1.
 * @param init initialiser of the full `(B, ...shape, S)` value (default zeros) or a constant.
 */
export class HiddenGroupState extends ShortTermState {
  /** Always 'hiddenGroup'. */
  readonly kind = 'hiddenGroup' as const;
  private readonly S: number;
  constructor(shape: readonly number[], numState: number, init?: Initializer | number) {
    if (!Number.isInteger(numState) || numState < 1) {
      throw new ArgumentError(`HiddenGroupState: numState must be an integer >= 1; got ${describe(numState)}`);
    }
    super(shape, init, 'HiddenGroupState');
    this.S = numState;
  }
  /** S. */
  get numState(): number {
    return this.S;
  }
  /** `(B, ...shape, S)`. */
  fullShape(batchSize: number): number[] {
    return [batchSize, ...this.shape, this.S];
  }
}

/**
 * Any other short-term state (counters, refractory timers, spike buffers):
 * passed through the step, never traced by eligibility traces.
 * @param shape per-sample shape when `batched` (default), else the full shape.
 * @param init initialiser (default zeros) or a constant.
 */
export class State extends ShortTermState {
  /** Always 'other'. */
  readonly kind = 'other' as const;
  /** True when the value has a leading batch axis. */
  readonly batched: boolean;
  constructor(shape: readonly number[], init?: Initializer | number, opts: { batched?: boolean } = {}) {
    super(shape, init, 'State');
    this.batched = opts.batched ?? true;
  }
  /** `(B, ...shape)` when batched, else `shape`. */
  fullShape(batchSize: number): number[] {
    return this.batched ? [batchSize, ...this.shape] : this.shape.slice();
  }
  protected batchedAxis(): boolean {
    return this.batched;
  }
}
