/**
 * Modules: user models are classes with states as properties and one
 * `update()` method describing a single time step.
 *
 * ```ts
 * class LeakyRNN extends Module {
 *   w = new ParamState(init.xavierNormal(), [3, 8]);
 *   h = new HiddenState([8]);
 *   update(x: Tensor) {
 *     this.h.value = this.h.value.mul(0.9).add(matmul(x, this.w));
 *     return this.h.value;
 *   }
 * }
 * ```
 *
 * States are found from the instance's own enumerable properties in
 * definition order, recursing into child Modules, arrays (path component =
 * index) and plain objects, which gives dotted paths ('rnn.w', 'layers.0.h').
 * Other containers (Map, Set, class instances that are not Modules) are not
 * searched.
 */
import type { DType } from '../graph/ir';
import { ArgumentError } from '../runtime/errors';
import { checkDType } from '../tensor';
import { BaseState, HiddenGroupState, HiddenState, ParamState, State, type InitContext } from './state';
import type { Tensor } from './tensor';

/** Options of {@link Module.initStates}. */
export interface InitStatesOptions {
  /** Batch size B of batched states (default 1). */
  batchSize?: number;
  /** Element type of every value (default 'float32'). */
  dtype?: DType;
  /** Root seed (non-negative integer, default 0); each state draws from the stream (seed, path). */
  seed?: number;
}

/** Initialisation settings remembered per module (kept off the instance's enumerable properties). */
const initInfo = new WeakMap<Module, InitContext>();

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkInitOptions(opts: InitStatesOptions, what: string): InitContext {
  const batchSize = opts.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ArgumentError(`${what}: batchSize must be an integer >= 1; got ${String(batchSize)}`);
  }
  const dtype = checkDType(opts.dtype ?? 'float32', `${what}: dtype`);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new ArgumentError(`${what}: seed must be a non-negative safe integer; got ${String(seed)}`);
  }
  return { batchSize, dtype, seed };
}

/** Base class of models and layers. Subclasses declare states as properties and implement `update`. */
export abstract class Module {
  /**
   * One time step: reads inputs (symbolic tensors `(B, ...)`) and states,
   * assigns new state values, returns the step's output(s).
   */
  abstract update(...inputs: Tensor[]): Tensor | Tensor[];

  /**
   * Every state reachable from this module, keyed by dotted path, in
   * definition order (depth first). A state reachable twice keeps its first
   * path. Sets each state's `path`.
   */
  states(): Map<string, BaseState> {
    const out = new Map<string, BaseState>();
    const seenStates = new Set<BaseState>();
    const seenContainers = new Set<object>();
    const visit = (v: unknown, path: string): void => {
      if (v instanceof BaseState) {
        if (seenStates.has(v)) return;
        seenStates.add(v);
        v._path = path;
        out.set(path, v);
        return;
      }
      if (typeof v !== 'object' || v === null) return;
      if (seenContainers.has(v)) return;
      const prefix = path === '' ? '' : `${path}.`;
      if (v instanceof Module) {
        seenContainers.add(v);
        for (const key of Object.keys(v)) visit((v as unknown as Record<string, unknown>)[key], prefix + key);
      } else if (Array.isArray(v)) {
        seenContainers.add(v);
        v.forEach((item, i) => visit(item, prefix + String(i)));
      } else if (isPlainObject(v)) {
        seenContainers.add(v);
        for (const key of Object.keys(v)) visit(v[key], prefix + key);
      }
    };
    visit(this, '');
    return out;
  }

  /** The trainable weights (ParamState), by path. */
  paramStates(): Map<string, ParamState> {
    return filterMap(this.states(), (s): s is ParamState => s instanceof ParamState);
  }

  /** The hidden states (HiddenState and HiddenGroupState), by path. */
  hiddenStates(): Map<string, HiddenState | HiddenGroupState> {
    return filterMap(this.states(), (s): s is HiddenState | HiddenGroupState => s instanceof HiddenState || s instanceof HiddenGroupState);
  }

  /** The other short-term states (State), by path. */
  otherStates(): Map<string, State> {
    return filterMap(this.states(), (s): s is State => s instanceof State);
  }

  /**
   * Creates every state's host value: weights from their initialisers with the
   * random stream (seed, path) (so a weight's value depends only on the seed
   * and its path), short-term states with shape `(B, ...)`. Calling it again
   * re-initialises everything, weights included.
   */
  initStates(opts: InitStatesOptions = {}): this {
    const ctx = checkInitOptions(opts, 'initStates');
    for (const s of this.states().values()) s._initialize(ctx);
    initInfo.set(this, ctx);
    return this;
  }

  /**
   * Re-initialises the hidden and other states only (weights are kept), with
   * the settings of the last `initStates` call unless overridden here.
   */
  resetState(opts: InitStatesOptions = {}): this {
    const prev = initInfo.get(this);
    const ctx = checkInitOptions(
      {
        batchSize: opts.batchSize ?? prev?.batchSize,
        dtype: opts.dtype ?? prev?.dtype,
        seed: opts.seed ?? prev?.seed,
      },
      'resetState',
    );
    for (const s of this.states().values()) if (!(s instanceof ParamState)) s._initialize(ctx);
    initInfo.set(this, ctx);
    return this;
  }

  /** Settings of the last initStates/resetState call, or undefined. */
  get initSettings(): Readonly<InitContext> | undefined {
    return initInfo.get(this);
  }
}

function filterMap<T extends BaseState>(m: Map<string, BaseState>, pred: (s: BaseState) => s is T): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of m) if (pred(v)) out.set(k, v);
  return out;
}
