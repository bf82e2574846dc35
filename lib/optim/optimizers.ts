/**
 * Optimizers: SGD (momentum, Nesterov), Adam, AdamW, RMSProp, with optional clipping
 * by global norm and learning-rate schedules.
 *
 * The update runs natively (native/kernels/optim.h, one body per optimizer, PyTorch
 * semantics) on the CPU thread pool, in place on the parameters' typed arrays. This
 * module only validates, keeps the parameter paths in a fixed (sorted) order and
 * evaluates the learning-rate schedule, a host scalar.
 *
 * ```ts
 * const opt = new bt.optim.Adam({ lr: bt.optim.cosineLR({ lr: 1e-3, tMax: 1000 }), clipNorm: 1 });
 * const { grads } = await learner.etraceGrad(xs, ys);
 * learner.applyGradients(grads, opt);
 * ```
 */
import type { NativeArray, NativeOptimizer, NativeOptimizerHyper, NativeOptimizerKind } from '../../types/binding';
import type { DType } from '../graph/ir';
import { ArgumentError, DisposedError, DTypeError, ShapeError, checkOptionKeys, fmtShape } from '../runtime/errors';
import { checkNonFinitePolicy, renameNonFinite, type NonFinitePolicy } from '../runtime/control';
import { wrapNativeError } from '../runtime/native';
import { createNativeOptimizer } from './native';
import { describe, numel, type HostData, type HostTensor } from '../tensor';
import { checkRate, type Schedule } from './schedules';

/** A learning rate: a constant, or a {@link Schedule} of the step count. */
export type LearningRate = number | Schedule;

/** The optimizer kinds (`OptimizerState.kind`). */
export type OptimizerKind = NativeOptimizerKind;

/** Result of {@link Optimizer.step}. */
export interface StepResult {
  /** The learning rate the step used (the schedule's value at the step count before the step). */
  lr: number;
  /** Global L2 norm of all gradients, before clipping (NaN / Infinity for a non-finite gradient). */
  gradNorm: number;
  /**
   * True when the step was skipped under `nonFinite: 'skipUpdate'` (a non-finite gradient,
   * or an update that would write a non-finite value): params, state and stepCount unchanged.
   */
  skipped: boolean;
}

/** Options of {@link Optimizer.step}. */
export interface StepOptions {
  /**
   * 'error' (default): a non-finite gradient or an update that would write a non-finite
   * parameter or state value (e.g. a learning rate so large that it overflows) throws
   * NonFiniteError (`tensor` `grads.<path>` / `params.<path>`, the first bad index) and
   * changes nothing; 'skipUpdate': changes nothing and returns `skipped: true`; 'allow':
   * writes whatever the update computes. Checked natively: the norm pass reads every
   * gradient, and a dry run of the update bodies runs before anything is written.
   */
  nonFinite?: NonFinitePolicy;
}

/**
 * A snapshot of an optimizer (for checkpoints): plain data, JSON-able (`JSON.stringify`
 * round-trips it exactly: the arrays are numbers, and float32 values are exact doubles).
 */
export interface OptimizerState {
  kind: OptimizerKind;
  /**
   * The hyper-parameters in use when saved (for the record: {@link Optimizer.loadState}
   * keeps the loading optimizer's own). `lr` is null when it is a schedule; `clipNorm`
   * null when there is no clipping.
   */
  hyper: Record<string, number | boolean | null>;
  /** dtype of the parameters (null before the first step). */
  dtype: DType | null;
  /** Steps taken. */
  stepCount: number;
  /** The parameter paths, sorted (empty before the first step). */
  paths: string[];
  /** The shape of each path, in `paths` order. */
  shapes: number[][];
  /** Names of the per-path state arrays (e.g. `['m', 'v']` for Adam). */
  stateNames: string[];
  /**
   * `state[path][name]`: the state array of that path, row-major, numel(shape) values
   * (`number[]` from {@link Optimizer.state}; typed arrays are accepted by loadState).
   */
  state: Record<string, Record<string, number[] | Float32Array | Float64Array>>;
}

/** What every optimizer does. */
export interface Optimizer {
  readonly kind: OptimizerKind;
  /**
   * One update of `params` in place (their `data` arrays are overwritten) from `grads`
   * (same paths, same shapes and dtype; not modified). The first step fixes the paths
   * (sorted), shapes and dtype; later steps must pass the same.
   * @throws ArgumentError (paths, non-tensors, options), ShapeError (shapes), DTypeError
   *   (dtypes), NonFiniteError (see {@link StepOptions.nonFinite}).
   */
  step(params: Record<string, HostTensor>, grads: Record<string, HostTensor>, options?: StepOptions): StepResult;
  /** Steps taken. */
  readonly stepCount: number;
  /** The learning rate the next step will use. */
  currentLr(): number;
  /** A snapshot for checkpoints (copies). */
  state(): OptimizerState;
  /**
   * Restores a snapshot of an optimizer of the same kind (and the same state layout, e.g.
   * both with or both without momentum); stepping then continues bit-for-bit. The
   * hyper-parameters and learning rate stay this optimizer's own.
   */
  loadState(s: OptimizerState): void;
  /** Frees the native state. The optimizer cannot be used afterwards. Idempotent. */
  dispose(): void;
}

/** Options shared by every optimizer. */
export interface CommonOptions {
  /** Learning rate: a finite number >= 0 or a schedule (see schedules.ts). */
  lr?: LearningRate;
  /** L2 penalty added to the gradient (AdamW: decoupled decay p -= lr·wd·p). Finite, >= 0. */
  weightDecay?: number;
  /**
   * Clip by global norm: when given (finite > 0), all gradients are scaled by
   * min(1, clipNorm / (norm + 1e-6)) before the update (torch.nn.utils.clip_grad_norm_).
   */
  clipNorm?: number;
}

/** Options of {@link SGD}. */
export interface SGDOptions extends CommonOptions {
  /** Required. */
  lr: LearningRate;
  /** Momentum μ >= 0 (default 0). */
  momentum?: number;
  /** Dampening in [0, 1] (default 0). */
  dampening?: number;
  /** Nesterov momentum (default false; requires momentum > 0 and dampening 0). */
  nesterov?: boolean;
}

/** Options of {@link Adam} and {@link AdamW}. */
export interface AdamOptions extends CommonOptions {
  /** [β1, β2], each in [0, 1) (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** ε added outside the square root (default 1e-8; >= 0). */
  eps?: number;
}

/** Options of {@link RMSProp}. */
export interface RMSPropOptions extends CommonOptions {
  /** Smoothing constant α in [0, 1] (default 0.99). */
  alpha?: number;
  /** ε added outside the square root (default 1e-8; >= 0). */
  eps?: number;
  /** Momentum μ >= 0 (default 0). */
  momentum?: number;
  /** Normalise by the centred second moment (default false). */
  centered?: boolean;
}

// ------------------------------------------------------------------------------ helpers

/** dtype of a typed array, realm-safe (arrays made by the addon may come from another context). */
function arrayDType(d: unknown): DType | null {
  // Fast path for this realm's arrays (the tag lookup below costs about a microsecond per call).
  if (ArrayBuffer.isView(d)) {
    if (d instanceof Float32Array) return 'float32';
    if (d instanceof Float64Array) return 'float64';
  }
  const tag = Object.prototype.toString.call(d);
  if (tag === '[object Float64Array]') return 'float64';
  if (tag === '[object Float32Array]') return 'float32';
  return null;
}

function checkTensor(what: string, t: unknown): HostTensor & { dtype: DType } {
  if (typeof t !== 'object' || t === null) {
    throw new ArgumentError(`${what}: expected a host tensor { data, shape, dtype }; got ${describe(t)}`);
  }
  const x = t as Partial<HostTensor>;
  const dt = arrayDType(x.data);
  if (dt === null || !Array.isArray(x.shape)) {
    throw new ArgumentError(
      `${what}: expected a host tensor with Float32Array or Float64Array data and a shape array; got ${describe(t)}`,
    );
  }
  if (x.dtype !== dt) {
    throw new DTypeError(`${what}: dtype '${String(x.dtype)}' does not match its data (a ${dt} array)`);
  }
  const n = numel(x.shape);
  if ((x.data as HostData).length !== n) {
    throw new ShapeError(`${what}: shape ${fmtShape(x.shape)} needs ${n} values; data has ${(x.data as HostData).length}`);
  }
  return x as HostTensor & { dtype: DType };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkRecord(what: string, r: unknown): Record<string, unknown> {
  if (typeof r !== 'object' || r === null || Array.isArray(r) || ArrayBuffer.isView(r)) {
    throw new ArgumentError(`${what}: expected a record of path -> host tensor; got ${describe(r)}`);
  }
  return r as Record<string, unknown>;
}

function checkNumber(what: string, v: unknown, lo: number, hi: number, hiOpen: boolean): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= lo && (hiOpen ? v < hi : v <= hi);
  if (!ok) {
    const range = hi === Infinity ? `a finite number >= ${lo}` : `a number in [${lo}, ${hi}${hiOpen ? ')' : ']'}`;
    throw new ArgumentError(`${what}: expected ${range}; got ${describe(v)}`);
  }
  return v as number;
}

function checkBool(what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ArgumentError(`${what}: expected a boolean; got ${describe(v)}`);
  return v;
}

function checkLr(what: string, v: unknown): LearningRate {
  if (typeof v === 'function') return v as Schedule;
  if (typeof v === 'number') return checkRate(what, v);
  throw new ArgumentError(`${what}: expected a finite number >= 0 or a schedule (step) => number; got ${describe(v)}`);
}


function checkClip(name: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ArgumentError(`${name}: clipNorm: expected a finite number > 0 (or omit it for no clipping); got ${describe(v)}`);
  }
  return v;
}

/** What the first step (or loadState) bound an optimizer to, and the record layout last checked. */
interface Binding {
  paths: string[];
  shapes: number[][];
  dtype: DType;
  /** Object.keys of the params / grads records of the last fully checked step. */
  paramKeys?: string[];
  gradKeys?: string[];
  /** numel of each bound shape. */
  sizes?: number[];
}

/** True when `t` is a host tensor of `dtype` with the given shape and `size` values (what checkTensor accepts for it). */
function isBoundTensor(t: unknown, dtype: DType, shape: readonly number[], size: number): boolean {
  if (typeof t !== 'object' || t === null) return false;
  const x = t as Partial<HostTensor>;
  const d = x.data;
  if (dtype === 'float32' ? !(d instanceof Float32Array) : !(d instanceof Float64Array)) return false;
  return x.dtype === dtype && Array.isArray(x.shape) && sameShape(x.shape, shape) && (d as HostData).length === size;
}

/**
 * The data arrays (in bound path order) of a step's records when they have exactly the keys
 * (in order) of the last fully checked step and hold valid tensors of the bound shapes and
 * dtype: records the full checks of a step would accept unchanged. Null otherwise.
 */
function boundArrays(b: Binding, params: unknown, grads: unknown): { pdata: NativeArray[]; gdata: NativeArray[] } | null {
  const pk = b.paramKeys;
  const gk = b.gradKeys;
  const sizes = b.sizes;
  if (pk === undefined || gk === undefined || sizes === undefined) return null;
  if (typeof params !== 'object' || params === null || Array.isArray(params) || ArrayBuffer.isView(params)) return null;
  if (typeof grads !== 'object' || grads === null || Array.isArray(grads) || ArrayBuffer.isView(grads)) return null;
  const pkNow = Object.keys(params);
  const gkNow = Object.keys(grads);
  if (pkNow.length !== pk.length || gkNow.length !== gk.length) return null;
  for (let i = 0; i < pk.length; i++) if (pkNow[i] !== pk[i]) return null;
  for (let i = 0; i < gk.length; i++) if (gkNow[i] !== gk[i]) return null;
  const pr = params as Record<string, unknown>;
  const gr = grads as Record<string, unknown>;
  const pdata: NativeArray[] = [];
  const gdata: NativeArray[] = [];
  for (let i = 0; i < b.paths.length; i++) {
    const path = b.paths[i];
    const p = pr[path];
    const g = gr[path];
    if (!isBoundTensor(p, b.dtype, b.shapes[i], sizes[i]) || !isBoundTensor(g, b.dtype, b.shapes[i], sizes[i])) return null;
    pdata.push((p as HostTensor).data as NativeArray);
    gdata.push((g as HostTensor).data as NativeArray);
  }
  return { pdata, gdata };
}

// ------------------------------------------------------------------------------ base class

/** The shared machinery of the optimizers (native object, path binding, schedule, state). */
abstract class NativeBackedOptimizer implements Optimizer {
  readonly kind: OptimizerKind;
  /** The learning rate (constant or schedule). */
  readonly lr: LearningRate;
  /** Global-norm clip (0 = none). */
  readonly clipNorm: number;
  /** The hyper-parameters passed to the native optimizer. */
  protected readonly hyper: NativeOptimizerHyper;
  private native: NativeOptimizer | null = null;
  private bound: Binding | null = null;
  private pendingSteps = 0;
  private disposed = false;

  protected constructor(kind: OptimizerKind, lr: LearningRate, clipNorm: number, hyper: NativeOptimizerHyper) {
    this.kind = kind;
    this.lr = lr;
    this.clipNorm = clipNorm;
    this.hyper = hyper;
  }

  private get name(): string {
    return this.constructor.name;
  }

  get stepCount(): number {
    return this.native !== null ? this.native.stepCount : this.pendingSteps;
  }

  currentLr(): number {
    this.checkUsable('currentLr');
    if (typeof this.lr === 'number') return this.lr;
    const t = this.stepCount;
    return checkRate(`${this.name}: the lr schedule at step ${t}`, this.lr(t));
  }

  step(params: Record<string, HostTensor>, grads: Record<string, HostTensor>, options?: StepOptions): StepResult {
    this.checkUsable('step');
    const what = `${this.name}.step`;
    const nonFinite = checkNonFinitePolicy(`${what}: options.nonFinite`, checkOptionKeys(`${what}: options`, options, ['nonFinite']).nonFinite);
    // A step with the records of the last step's layout (the same keys, valid tensors of the
    // bound shapes and dtype) skips the full checks below, which would accept it unchanged.
    const fast = this.bound !== null ? boundArrays(this.bound, params, grads) : null;
    let pdata: NativeArray[];
    let gdata: NativeArray[];
    let paths: string[];
    let shapes: number[][];
    let dtype: DType | null;
    if (fast !== null) {
      const bb = this.bound as Binding;
      ({ pdata, gdata } = fast);
      ({ paths, shapes, dtype } = bb);
    } else {
      ({ pdata, gdata, paths, shapes, dtype } = this.checkStepArgs(what, params, grads));
    }
    const lr = this.currentLr();
    const native = this.ensureNative(dtype as unknown as DType);
    let gradNorm: number;
    try {
      gradNorm = call(() => native.step(pdata, gdata, lr, this.clipNorm, nonFinite));
    } catch (e) {
      // The native names are slots of the sorted paths: params[i] / grads[i] -> params.<path>.
      throw renameNonFinite(e, (name) => {
        const m = /^(params|grads)\[(\d+)\]$/.exec(name);
        return m === null || Number(m[2]) >= paths.length ? undefined : `${m[1]}.${paths[Number(m[2])]}`;
      });
    }
    // Only the 'skipUpdate' policy skips a step (the native step never does otherwise): the
    // flag is read back then only (one native call less per step).
    const skipped = nonFinite === 'skipUpdate' ? call(() => native.lastStepSkipped) : false;
    if (this.bound === null) this.bound = { paths, shapes, dtype: dtype as unknown as DType };
    if (fast === null) {
      // The layout these records passed the full checks with (for the fast path of the next step).
      this.bound.paramKeys = Object.keys(params);
      this.bound.gradKeys = Object.keys(grads);
      this.bound.sizes = this.bound.shapes.map(numel);
    }
    return { lr, gradNorm, skipped };
  }

  /** @internal See {@link fusedStepOf}. */
  fusedStep(params: Record<string, HostTensor>, grads: Record<string, HostTensor>, nonFinite: NonFinitePolicy): FusedStep | null {
    const native = this.native;
    const b = this.bound;
    if (this.disposed || native === null || b === null) return null;
    const fast = boundArrays(b, params, grads);
    if (fast === null) return null;
    let lr: number;
    try {
      lr = this.currentLr();
    } catch {
      return null; // step() throws it (after the caller's gradient call, as before)
    }
    const paths = b.paths;
    const rename = (e: unknown): unknown =>
      renameNonFinite(wrapNativeError(e), (name) => {
        const m = /^(params|grads)\[(\d+)\]$/.exec(name);
        return m === null || Number(m[2]) >= paths.length ? undefined : `${m[1]}.${paths[Number(m[2])]}`;
      });
    return { native, params: fast.pdata, paths, lr, clipNorm: this.clipNorm, nonFinite, rename };
  }

  /** The full argument checks of {@link step} (its typed errors); the data arrays in sorted path order. */
  private checkStepArgs(what: string, params: Record<string, HostTensor>, grads: Record<string, HostTensor>) {
    const pr = checkRecord(`${what}: params`, params);
    const gr = checkRecord(`${what}: grads`, grads);
    const paths = Object.keys(pr).sort();
    const gpaths = Object.keys(gr).sort();
    const missing = paths.filter((p) => !(p in gr));
    const extra = gpaths.filter((p) => !(p in pr));
    if (missing.length > 0 || extra.length > 0) {
      throw new ArgumentError(
        `${what}: grads must have the paths of params [${paths.join(', ')}]; ` +
          (missing.length > 0 ? `missing [${missing.join(', ')}]` : '') +
          (missing.length > 0 && extra.length > 0 ? ', ' : '') +
          (extra.length > 0 ? `unexpected [${extra.join(', ')}]` : ''),
      );
    }
    if (paths.length === 0) throw new ArgumentError(`${what}: params: expected at least one path; got an empty record`);
    const b = this.bound;
    if (b !== null && (b.paths.length !== paths.length || b.paths.some((p, i) => p !== paths[i]))) {
      const miss = b.paths.filter((p) => !paths.includes(p));
      const unexp = paths.filter((p) => !b.paths.includes(p));
      throw new ArgumentError(
        `${what}: params must have the paths bound at the first step [${b.paths.join(', ')}]; got [${paths.join(', ')}]` +
          (miss.length > 0 ? ` (missing ${miss.join(', ')})` : '') +
          (unexp.length > 0 ? ` (unexpected ${unexp.join(', ')})` : ''),
      );
    }
    const pdata: NativeArray[] = [];
    const gdata: NativeArray[] = [];
    const shapes: number[][] = [];
    let dtype: DType | null = b?.dtype ?? null;
    paths.forEach((path, i) => {
      const p = checkTensor(`${what}: params['${path}']`, pr[path]);
      const g = checkTensor(`${what}: grads['${path}']`, gr[path]);
      if (dtype === null) dtype = p.dtype;
      if (p.dtype !== dtype) {
        throw new DTypeError(`${what}: params['${path}']: expected dtype '${dtype}'; got '${p.dtype}'`);
      }
      if (g.dtype !== dtype) {
        throw new DTypeError(`${what}: grads['${path}']: expected dtype '${dtype}'; got '${g.dtype}'`);
      }
      if (b !== null && !sameShape(p.shape, b.shapes[i])) {
        throw new ShapeError(
          `${what}: params['${path}']: expected shape ${fmtShape(b.shapes[i])} (bound at the first step); got ${fmtShape(p.shape)}`,
        );
      }
      if (!sameShape(g.shape, p.shape)) {
        throw new ShapeError(`${what}: grads['${path}']: expected shape ${fmtShape(p.shape)}; got ${fmtShape(g.shape)}`);
      }
      pdata.push(p.data);
      gdata.push(g.data);
      shapes.push(p.shape.slice());
    });
    return { pdata, gdata, paths, shapes, dtype };
  }

  state(): OptimizerState {
    this.checkUsable('state');
    const native = this.native;
    const stateNames = native !== null ? Array.from(native.stateNames) : [];
    const state: OptimizerState['state'] = {};
    const b = this.bound;
    if (native !== null && b !== null) {
      const bufs = call(() => native.stateBuffers());
      const K = stateNames.length;
      b.paths.forEach((path, i) => {
        const rec: Record<string, number[]> = {};
        stateNames.forEach((name, k) => {
          rec[name] = Array.from(bufs[i * K + k]);
        });
        state[path] = rec;
      });
    }
    return {
      kind: this.kind,
      hyper: this.hyperRecord(),
      dtype: b?.dtype ?? null,
      stepCount: this.stepCount,
      paths: b ? b.paths.slice() : [],
      shapes: b ? b.shapes.map((s) => s.slice()) : [],
      stateNames: b ? stateNames.slice() : [],
      state,
    };
  }

  loadState(s: OptimizerState): void {
    this.checkUsable('loadState');
    const what = `${this.name}.loadState`;
    if (typeof s !== 'object' || s === null) throw new ArgumentError(`${what}: expected an OptimizerState; got ${describe(s)}`);
    if (s.kind !== this.kind) throw new ArgumentError(`${what}: kind: expected '${this.kind}'; got ${describe(s.kind)}`);
    if (typeof s.stepCount !== 'number' || !Number.isSafeInteger(s.stepCount) || s.stepCount < 0) {
      throw new ArgumentError(`${what}: stepCount: expected an integer >= 0; got ${describe(s.stepCount)}`);
    }
    if (!Array.isArray(s.paths) || s.paths.some((p) => typeof p !== 'string')) {
      throw new ArgumentError(`${what}: paths: expected an array of strings; got ${describe(s.paths)}`);
    }
    const paths = s.paths.slice();
    const sorted = paths.slice().sort();
    if (sorted.some((p, i) => p !== paths[i] || (i > 0 && p === sorted[i - 1]))) {
      throw new ArgumentError(`${what}: paths: expected distinct paths in sorted order; got [${paths.join(', ')}]`);
    }
    if (!Array.isArray(s.shapes) || s.shapes.length !== paths.length) {
      throw new ArgumentError(`${what}: shapes: expected an array of ${paths.length} shapes; got ${describe(s.shapes)}`);
    }
    const shapes = s.shapes.map((sh, i) => {
      if (!Array.isArray(sh) || sh.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0)) {
        throw new ArgumentError(`${what}: shapes[${i}]: expected an array of non-negative integers; got ${describe(sh)}`);
      }
      return sh.slice();
    });
    let dtype: DType | null = s.dtype ?? null;
    if (dtype !== null && dtype !== 'float32' && dtype !== 'float64') {
      throw new ArgumentError(`${what}: dtype: expected 'float32', 'float64' or null; got ${describe(dtype)}`);
    }
    if (paths.length > 0 && dtype === null) {
      throw new ArgumentError(`${what}: dtype: expected 'float32' or 'float64' for a state with paths; got null`);
    }
    const b = this.bound;
    if (b !== null && paths.length > 0) {
      if (b.paths.length !== paths.length || b.paths.some((p, i) => p !== paths[i])) {
        throw new ArgumentError(`${what}: paths: expected [${b.paths.join(', ')}] (bound by this optimizer's steps); got [${paths.join(', ')}]`);
      }
      b.shapes.forEach((sh, i) => {
        if (!sameShape(sh, shapes[i])) {
          throw new ShapeError(`${what}: shapes[${i}] ('${paths[i]}'): expected ${fmtShape(sh)}; got ${fmtShape(shapes[i])}`);
        }
      });
      if (dtype !== b.dtype) throw new DTypeError(`${what}: dtype: expected '${b.dtype}'; got '${String(dtype)}'`);
    }
    if (b !== null && paths.length === 0) {
      throw new ArgumentError(`${what}: paths: expected [${b.paths.join(', ')}] (bound by this optimizer's steps); got []`);
    }
    if (dtype === null) {
      // A snapshot taken before any step: only the step count.
      if (this.native !== null) call(() => ((this.native as NativeOptimizer).stepCount = s.stepCount));
      else this.pendingSteps = s.stepCount;
      return;
    }
    // A fresh native object for the dtype (or the existing one) tells the state layout.
    const keep = this.native !== null && this.native.dtype === dtype ? this.native : null;
    const native = keep ?? this.makeNative(dtype);
    try {
      const names = Array.from(native.stateNames);
      if (!Array.isArray(s.stateNames) || s.stateNames.length !== names.length || names.some((n, k) => n !== s.stateNames[k])) {
        throw new ArgumentError(
          `${what}: stateNames: expected [${names.join(', ')}] for this ${this.name}; got ${describe(s.stateNames)}` +
            (Array.isArray(s.stateNames) ? ` [${s.stateNames.join(', ')}]` : ''),
        );
      }
      if (typeof s.state !== 'object' || s.state === null) {
        throw new ArgumentError(`${what}: state: expected a record of path -> state arrays; got ${describe(s.state)}`);
      }
      const list: NativeArray[] = [];
      paths.forEach((path, i) => {
        const n = numel(shapes[i]);
        const rec = names.length > 0 ? s.state[path] : undefined;
        if (names.length > 0 && (typeof rec !== 'object' || rec === null)) {
          throw new ArgumentError(`${what}: state['${path}']: expected a record { ${names.join(', ')} }; got ${describe(rec)}`);
        }
        names.forEach((name) => {
          const arr = (rec as Record<string, unknown>)[name];
          const ok = Array.isArray(arr) || arrayDType(arr) !== null;
          if (!ok) {
            throw new ArgumentError(`${what}: state['${path}'].${name}: expected a number[] or typed array; got ${describe(arr)}`);
          }
          const a = arr as ArrayLike<number>;
          if (a.length !== n) {
            throw new ShapeError(`${what}: state['${path}'].${name}: expected ${n} values (shape ${fmtShape(shapes[i])}); got ${a.length}`);
          }
          list.push(dtype === 'float64' ? Float64Array.from(a) : Float32Array.from(a));
        });
      });
      call(() => native.setStateBuffers(list));
      call(() => (native.stepCount = s.stepCount));
    } catch (e) {
      if (native !== keep) native.dispose();
      throw e;
    }
    if (native !== this.native) this.native?.dispose();
    this.native = native;
    this.bound = { paths, shapes, dtype };
  }

  dispose(): void {
    if (this.disposed) return;
    this.native?.dispose();
    this.native = null;
    this.disposed = true;
  }

  /** Same as {@link dispose}, for `using opt = new Adam(...)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** The hyper-parameters recorded in {@link state}. */
  protected abstract hyperRecord(): Record<string, number | boolean | null>;

  protected lrRecord(): { lr: number | null; clipNorm: number | null } {
    return { lr: typeof this.lr === 'number' ? this.lr : null, clipNorm: this.clipNorm > 0 ? this.clipNorm : null };
  }

  private makeNative(dtype: DType): NativeOptimizer {
    return call(() => createNativeOptimizer(this.kind, this.hyper, dtype));
  }

  private ensureNative(dtype: DType): NativeOptimizer {
    if (this.native === null) {
      const n = this.makeNative(dtype);
      if (this.pendingSteps !== 0) n.stepCount = this.pendingSteps;
      this.native = n;
    }
    return this.native;
  }

  private checkUsable(what: string): void {
    if (this.disposed) throw new DisposedError(`${this.name}.${what}: the optimizer has been disposed`);
  }
}

/**
 * True for an optimizer of this module (SGD, Adam, AdamW, RMSProp): its `step` reads the
 * gradients once, natively, and keeps no reference to them (so a caller may pass arrays it
 * reuses afterwards). False for any other object, e.g. a user's own OptimizerLike.
 */
export function isBuiltinOptimizer(o: unknown): boolean {
  // A subclass (or an object) that overrides step() is not trusted with either promise.
  return o instanceof NativeBackedOptimizer && o.step === NativeBackedOptimizer.prototype.step;
}

/**
 * @internal One optimizer step run by another native call (runOnline's `into.update`, the
 * stream step): what that call needs, prepared by {@link fusedStepOf}.
 */
export interface FusedStep {
  /** The native optimizer (bound). */
  native: NativeOptimizer;
  /** The parameters' data arrays in the bound (sorted) path order, updated in place. */
  params: NativeArray[];
  /** The bound paths (sorted). */
  paths: readonly string[];
  lr: number;
  clipNorm: number;
  nonFinite: NonFinitePolicy;
  /** The error of a failed native step as step() throws it (params[k] / grads[k] named by path). */
  rename(e: unknown): unknown;
}

/**
 * @internal The native half of `opt.step(params, grads, { nonFinite })` for a call that runs it
 * itself, when that step would take the fast path: a built-in optimizer (see
 * {@link isBuiltinOptimizer}) already bound by a step, not disposed, `params` / `grads` records
 * its bound-layout check accepts, and a learning rate the schedule gives without throwing.
 * Null otherwise (then call step(), which throws what it throws). The caller must run the
 * native step exactly once with these values (its stepCount and state advance natively).
 */
export function fusedStepOf(
  opt: unknown,
  params: Record<string, HostTensor>,
  grads: Record<string, HostTensor>,
  nonFinite: NonFinitePolicy,
): FusedStep | null {
  if (!isBuiltinOptimizer(opt)) return null;
  return (opt as NativeBackedOptimizer).fusedStep(params, grads, nonFinite);
}

function call<R>(fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    throw wrapNativeError(e);
  }
}

// ------------------------------------------------------------------------------ optimizers

/**
 * Stochastic gradient descent (PyTorch `torch.optim.SGD`):
 * g += wd·p; with momentum μ > 0, b = μ·b + (1 − dampening)·g (b = g at the first step),
 * g = nesterov ? g + μ·b : b; then p -= lr·g.
 */
export class SGD extends NativeBackedOptimizer {
  constructor(options: SGDOptions) {
    const o = checkOptionKeys('SGD', options, ['lr', 'momentum', 'dampening', 'nesterov', 'weightDecay', 'clipNorm'], true);
    if (o.lr === undefined) throw new ArgumentError('SGD: lr: expected a finite number >= 0 or a schedule; got undefined (lr is required)');
    const lr = checkLr('SGD: lr', o.lr);
    const momentum = checkNumber('SGD: momentum', o.momentum ?? 0, 0, Infinity, true);
    const dampening = checkNumber('SGD: dampening', o.dampening ?? 0, 0, 1, false);
    const nesterov = checkBool('SGD: nesterov', o.nesterov ?? false);
    const weightDecay = checkNumber('SGD: weightDecay', o.weightDecay ?? 0, 0, Infinity, true);
    if (nesterov && !(momentum > 0 && dampening === 0)) {
      throw new ArgumentError(
        `SGD: nesterov: expected momentum > 0 and dampening 0 with nesterov; got momentum ${momentum}, dampening ${dampening}`,
      );
    }
    super('sgd', lr, checkClip('SGD', o.clipNorm), { momentum, dampening, nesterov, weightDecay });
  }

  protected hyperRecord(): Record<string, number | boolean | null> {
    const h = this.hyper;
    return { ...this.lrRecord(), momentum: h.momentum!, dampening: h.dampening!, nesterov: h.nesterov!, weightDecay: h.weightDecay! };
  }
}

function adamHyper(name: string, o: Record<string, unknown>, defaultWd: number): NativeOptimizerHyper {
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new ArgumentError(`${name}: betas: expected [beta1, beta2] with each in [0, 1); got ${describe(betas)}`);
  }
  const beta1 = checkNumber(`${name}: betas[0]`, betas[0], 0, 1, true);
  const beta2 = checkNumber(`${name}: betas[1]`, betas[1], 0, 1, true);
  const eps = checkNumber(`${name}: eps`, o.eps ?? 1e-8, 0, Infinity, true);
  const weightDecay = checkNumber(`${name}: weightDecay`, o.weightDecay ?? defaultWd, 0, Infinity, true);
  return { beta1, beta2, eps, weightDecay };
}

const ADAM_KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'clipNorm'] as const;

/**
 * Adam (Kingma & Ba; PyTorch `torch.optim.Adam`, amsgrad off) with L2 weight decay
 * g += wd·p: m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p -= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
 */
export class Adam extends NativeBackedOptimizer {
  constructor(options: AdamOptions = {}) {
    const o = checkOptionKeys('Adam', options, ADAM_KEYS, true);
    super('adam', checkLr('Adam: lr', o.lr ?? 1e-3), checkClip('Adam', o.clipNorm), adamHyper('Adam', o, 0));
  }

  protected hyperRecord(): Record<string, number | boolean | null> {
    const h = this.hyper;
    return { ...this.lrRecord(), beta1: h.beta1!, beta2: h.beta2!, eps: h.eps!, weightDecay: h.weightDecay! };
  }
}

/**
 * AdamW (Loshchilov & Hutter; PyTorch `torch.optim.AdamW`): Adam with decoupled weight
 * decay p -= lr·wd·p applied before the Adam update (default weightDecay 1e-2).
 */
export class AdamW extends NativeBackedOptimizer {
  constructor(options: AdamOptions = {}) {
    const o = checkOptionKeys('AdamW', options, ADAM_KEYS, true);
    super('adamw', checkLr('AdamW: lr', o.lr ?? 1e-3), checkClip('AdamW', o.clipNorm), adamHyper('AdamW', o, 1e-2));
  }

  protected hyperRecord(): Record<string, number | boolean | null> {
    const h = this.hyper;
    return { ...this.lrRecord(), beta1: h.beta1!, beta2: h.beta2!, eps: h.eps!, weightDecay: h.weightDecay! };
  }
}

/**
 * RMSProp (PyTorch `torch.optim.RMSprop`): g += wd·p; s = α·s + (1−α)·g²;
 * d = √s + ε, or centred d = √(s − a²) + ε with a = α·a + (1−α)·g; with momentum μ > 0,
 * b = μ·b + g/d and p -= lr·b, else p -= lr·g/d.
 */
export class RMSProp extends NativeBackedOptimizer {
  constructor(options: RMSPropOptions = {}) {
    const o = checkOptionKeys('RMSProp', options, ['lr', 'alpha', 'eps', 'momentum', 'centered', 'weightDecay', 'clipNorm'], true);
    const lr = checkLr('RMSProp: lr', o.lr ?? 1e-2);
    const alpha = checkNumber('RMSProp: alpha', o.alpha ?? 0.99, 0, 1, false);
    const eps = checkNumber('RMSProp: eps', o.eps ?? 1e-8, 0, Infinity, true);
    const momentum = checkNumber('RMSProp: momentum', o.momentum ?? 0, 0, Infinity, true);
    const centered = checkBool('RMSProp: centered', o.centered ?? false);
    const weightDecay = checkNumber('RMSProp: weightDecay', o.weightDecay ?? 0, 0, Infinity, true);
    super('rmsprop', lr, checkClip('RMSProp', o.clipNorm), { alpha, eps, momentum, centered, weightDecay });
  }

  protected hyperRecord(): Record<string, number | boolean | null> {
    const h = this.hyper;
    return { ...this.lrRecord(), alpha: h.alpha!, eps: h.eps!, momentum: h.momentum!, centered: h.centered!, weightDecay: h.weightDecay! };
  }
}
