/**
 * The learner: a model compiled with an algorithm, owning native sessions.
 *
 * A learner keeps the model's weights and states as host tensors (the model's
 * ParamState / HiddenState values) and one native session per traced graph
 * (the plain step, and one per loss). Values move between host and sessions
 * only when they changed (a version counter for weights, an owner for states),
 * so per-call overhead does not grow with the sequence length.
 */
import { AsyncLocalStorage } from 'async_hooks';

import type { NativeArray, NativeCallControl, NativeSequenceResult, NativeSession } from '../../types/binding';
import { encodePlan } from '../compiler/plan';
import type { Module } from '../dsl/module';
import type { BaseState, ParamState } from '../dsl/state';
import { traceModel, type TracedModel } from '../dsl/trace';
import type { DType } from '../graph/ir';
import type { Optimizer, StepResult } from '../optim/optimizers';
import { ArgumentError, BusyError, DisposedError, ShapeError, checkOptionKeys, fmtShape } from '../runtime/errors';
import {
  abortedBeforeStart,
  CALL_OPTION_KEYS,
  checkCallOptions,
  checkFiniteData,
  checkNonFinitePolicy,
  renameNonFinite,
  runControlled,
  type CallOptions,
  type NonFinitePolicy,
} from '../runtime/control';
import { loadBinding, wrapNativeError } from '../runtime/native';
import { asDType, checkDType, checkShape, cloneHost, isHostTensor, numel, tensor, type HostTensor, type TensorLike } from '../tensor';
import type { FitData, FitOptions, FitResult } from '../train/fit';
import type { StreamStepOptions, StreamStepResult } from '../train/stream';
import type { Checkpoint, LoadCheckpointOptions, SaveCheckpointOptions } from '../train/checkpoint';
import { lossCacheKey, lossScaleArg, prepareTargets, resolveLoss, type Loss, type Reduction } from './losses';

/** Options of {@link compile} shared by every algorithm. */
export interface CompileOptions {
  /** Per-sample shape of the model input (the step input is `(B, ...inputShape)`). */
  inputShape: readonly number[];
  /** Batch size B (default 1). */
  batchSize?: number;
  /** Element type of weights, states and data (default 'float32'). */
  dtype?: DType;
  /** Seed of the weight initialisation (default 0): same seed, same weights. */
  seed?: number;
  /**
   * What NaN and infinity do (default 'error'): see {@link NonFinitePolicy} and
   * docs/hardening.md. 'error' rejects non-finite data, parameters, states, traces, losses
   * and gradients with NonFiniteError; 'skipUpdate' skips optimizer updates that would be
   * non-finite (reported by applyGradients, step and fit); 'allow' checks nothing.
   */
  nonFinite?: NonFinitePolicy;
}

/** The option keys of {@link GradOptions}. */
export const GRAD_OPTION_KEYS = ['loss', 'reduction', 'mask', ...CALL_OPTION_KEYS] as const;

/** Options of {@link Learner.run}: cancellation and progress. */
export type RunOptions = CallOptions;

/**
 * Options of {@link Learner.etraceGrad}. `signal` / `onProgress`: see {@link CallOptions};
 * an aborted call rejects with AbortError (`stepsDone` and the state it leaves: the
 * algorithm's etraceGrad docs).
 */
export interface GradOptions extends CallOptions {
  /** Per-step loss: 'mse' | 'sumSquares' | 'crossEntropy' or a traced function (default 'mse'). */
  loss?: Loss;
  /** Per-step losses summed over time ('sum', default) or averaged over the (masked) steps ('mean'). */
  reduction?: Reduction;
  /** Per-step weights of the loss, length T (0 drops a step's loss); the model still advances. */
  mask?: ArrayLike<number>;
}

/** Result of {@link Learner.etraceGrad}. */
export interface GradResult {
  /** Gradient of the objective per weight path, each of the weight's shape. */
  grads: Record<string, HostTensor>;
  /** The T per-step loss values (before the time reduction). */
  losses: Float64Array;
  /** The model's first output at every step, `(T, B, ...outputShape)`. */
  outputs: HostTensor;
}

/** A compiled native session and what it was built from (for subclasses). */
export interface SessionEntry {
  session: NativeSession;
  traced: TracedModel;
  /** Weight version last pushed into the session (-1: never). */
  paramVersion: number;
  /** Estimated work of one step (see {@link stepWork}), computed on first use. */
  stepWork?: number;
  /** Gradient arrays reused by {@link SyncGradInto} `scratch` calls on this session (subclasses). */
  scratch?: { grads: Record<string, HostTensor>; data: NativeArray[]; losses: Float64Array; stats: Float64Array };
  /** The param slots of an optimizer's bound paths (runOnline's `into.update.slots`), per paths array. */
  updateSlots?: { paths: readonly string[]; slots: number[] };
  /** The one-step output array per model output that an online `update` has the native call write (runOnline's `into.outputsOut`). */
  outputsOut?: NativeArray[];
}

/**
 * @internal How the learner's own synchronous gradient call ({@link Learner.etraceGradSync},
 * used by `step`) hands back its result. `scratch`: the gradients (and the losses of a
 * one-step call) are written into arrays the learner keeps per session and reuses at the
 * next such call, so the caller must consume them before that (the stream step passes them
 * to a built-in optimizer, which copies nothing out and keeps nothing); `outputs: false`
 * leaves `outputs` out of the result. Learners may ignore it (fresh arrays, outputs included).
 */
export interface SyncGradInto {
  scratch: boolean;
  outputs: boolean;
  /**
   * The stream step's optimizer: a learner may run its update in the same native call (when
   * `fusedStepOf` accepts it, with `scratch`); the result then carries `update` (and its
   * `grads` are not written: nothing is left to apply).
   */
  optimizer?: unknown;
}

/** A {@link GradResult} whose `outputs` may be left out (see {@link SyncGradInto}). */
export type SyncGradResult = Omit<GradResult, 'outputs'> & { outputs?: HostTensor; update?: StepResult };

/**
 * Largest estimated work (in {@link stepWork} units, about one multiply-add or one value
 * touched each) of a call that runs synchronously on the JS thread instead of on the libuv
 * thread pool: at about 1 ns a unit such a call takes some tens of microseconds, less than
 * the hop to a worker thread and back costs (tens to hundreds of microseconds), so tiny
 * models stream fast; larger calls keep running off the event loop. Either way the call
 * returns a Promise that settles in queue order (see {@link Learner.enqueue}).
 */
export const SYNC_WORK_LIMIT = 2 ** 16;

/**
 * Estimated work of one step of `traced` (with `traceValues` eligibility-trace values
 * updated per step): every node's values, times the contraction length for matrix
 * products, plus three passes over the traces (read, write, contract). Only compared with
 * {@link SYNC_WORK_LIMIT}; never a measured time.
 */
export function stepWork(traced: TracedModel, traceValues = 0): number {
  let w = 0;
  for (const n of traced.graph.nodes) {
    const size = numel(n.shape);
    if (n.op === 'MatMul' || n.op === 'EtpMatMul') {
      const a = traced.graph.nodes[n.inputs[0]].shape;
      w += size * Math.max(1, a.length > 0 ? a[a.length - 1] : 1);
    } else {
      w += size;
    }
  }
  return w + 3 * traceValues;
}

/**
 * Base class of every learner (`bt.compile(model, Algorithm, options)`).
 * Subclasses implement {@link etraceGrad}.
 */
export abstract class Learner {
  /** The model being trained (its states hold the host values between calls). */
  readonly model: Module;
  /** Batch size B. */
  readonly batchSize: number;
  /** Element type of every value. */
  readonly dtype: DType;
  /** Per-sample input shape. */
  readonly inputShape: readonly number[];
  /** Per-sample shape of the model output (without the batch axis). */
  readonly outputShape: readonly number[];

  /** The traced plain step (no loss). */
  protected readonly stepTrace: TracedModel;
  private readonly sessions = new Map<string, SessionEntry>();
  private paramVersion = 0;
  /** The session holding the newest state values, or null when the host values are newest. */
  private stateOwner: SessionEntry | null = null;
  /** Tail of the call queue: settles when every call queued so far has settled. */
  private queueTail: Promise<void> = Promise.resolve();
  /** Names of the queued or running asynchronous calls, oldest first. */
  private readonly pendingCalls: string[] = [];
  /** True while a native asynchronous call of this learner is in flight. */
  private nativeInFlight = false;
  /** > 0 while a queued call runs synchronously on the JS thread (see {@link runNow}): it holds the queue. */
  private syncHeld = 0;
  private disposed = false;

  /**
   * The option keys `bt.compile` accepts for this learner class (an unknown key, such as a
   * misspelt one or `decayOrRank` for D_RTRL, is an ArgumentError). Subclasses add theirs.
   */
  static optionKeys(): readonly string[] {
    return ['inputShape', 'batchSize', 'dtype', 'seed', 'nonFinite'];
  }

  /** The non-finite policy of this learner (compile option `nonFinite`, default 'error'). */
  readonly nonFinite: NonFinitePolicy;

  constructor(model: Module, options: CompileOptions) {
    if (typeof model !== 'object' || model === null || typeof (model as Module).update !== 'function') {
      throw new ArgumentError(`compile: model must be a Module with an update() method; got ${String(model)}`);
    }
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('compile: options { inputShape, batchSize?, dtype?, seed? } are required');
    }
    checkOptionKeys('compile: options', options, (new.target as unknown as typeof Learner).optionKeys());
    this.model = model;
    this.inputShape = checkShape(options.inputShape as number[], 'compile: inputShape');
    this.batchSize = options.batchSize ?? 1;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > MAX_BATCH) {
      throw new ArgumentError(
        `compile: batchSize must be an integer in [1, ${MAX_BATCH}]; got ${String(options.batchSize)}`,
        { argument: 'compile: options.batchSize', expected: `an integer in [1, ${MAX_BATCH}]`, actual: String(options.batchSize) },
      );
    }
    this.dtype = checkDType(options.dtype ?? 'float32', 'compile: dtype');
    this.nonFinite = checkNonFinitePolicy('compile: options.nonFinite', options.nonFinite);
    model.initStates({ batchSize: this.batchSize, dtype: this.dtype, seed: options.seed ?? 0 });
    this.stepTrace = this.trace();
    if (this.stepTrace.outputShapes.length === 0) {
      throw new ArgumentError('compile: update() must return at least one output tensor');
    }
    this.outputShape = this.stepTrace.outputShapes[0].slice(1);
  }

  /** Traces the model step, optionally with a loss on its first output. */
  protected trace(loss?: { fn: ReturnType<typeof resolveLoss>; targetShape: readonly number[] }): TracedModel {
    return traceModel(this.model, {
      inputShapes: [this.inputShape],
      batchSize: this.batchSize,
      dtype: this.dtype,
      loss,
    });
  }

  // ------------------------------------------------------------------ weights and states

  /** A copy of every weight, keyed by path (e.g. 'rnn.wz'). */
  params(): Record<string, HostTensor> {
    this.checkUsable('params');
    const out: Record<string, HostTensor> = {};
    for (const p of this.stepTrace.params) out[p.path] = cloneHost(p.hostValue);
    return out;
  }

  /**
   * Replaces weights. Keys must be weight paths of the model, values of the
   * weight's shape (any subset of the weights may be given).
   * @throws ArgumentError for an unknown path, ShapeError for a wrong shape,
   *   NonFiniteError (`params.<path>`, the first bad index) for a NaN or infinity unless
   *   the learner's policy is `nonFinite: 'allow'`; nothing is assigned then.
   */
  setParams(values: Record<string, TensorLike>): void {
    this.checkUsable('setParams');
    this.assignByPath('setParams', 'params', this.stepTrace.params, values);
    this.paramVersion++;
  }

  /**
   * Applies one optimizer step to the model's weights: `optimizer.step(weights, grads)`
   * on the learner's own weight tensors (updated in place, natively), then marks the
   * weights changed so every session receives them on its next call.
   *
   * `grads`: one gradient per weight path, of the weight's shape and the learner's dtype
   * (e.g. `(await learner.etraceGrad(xs, ys)).grads`). The optimizer binds to this
   * learner's paths at its first step; use one optimizer per learner.
   * @returns the learning rate used, the global gradient norm (before clipping) and
   *   `skipped` (true when the learner's `nonFinite: 'skipUpdate'` policy skipped a
   *   non-finite update: the weights are unchanged).
   * @throws ArgumentError / ShapeError / DTypeError from the optimizer (paths, shapes, dtypes);
   *   NonFiniteError (policy 'error') for a non-finite gradient (`grads.<path>`) or an update
   *   that would write a non-finite weight (`params.<path>`, e.g. a learning rate that
   *   overflows); the weights are then unchanged.
   */
  applyGradients(grads: Record<string, HostTensor>, optimizer: Optimizer): StepResult {
    this.checkUsable('applyGradients');
    if (typeof optimizer !== 'object' || optimizer === null || typeof optimizer.step !== 'function') {
      throw new ArgumentError(`applyGradients: optimizer must be a bt.optim optimizer; got ${String(optimizer)}`);
    }
    const weights = this.weightTensors();
    // The one dtype rule: gradients of the other float dtype are converted (as data is
    // everywhere else); anything that is not a host tensor is left for the optimizer to reject.
    let converted = grads;
    if (typeof grads === 'object' && grads !== null) {
      converted = {};
      for (const [k, g] of Object.entries(grads)) {
        converted[k] = isHostTensor(g) && g.dtype !== this.dtype ? asDType(`applyGradients: grads['${k}']`, g, this.dtype) : g;
      }
    }
    const result = optimizer.step(weights, converted, { nonFinite: this.nonFinite });
    if (!result.skipped) this.paramVersion++;
    return result;
  }

  /** The learner's own weight tensors by path (what {@link applyGradients} hands the optimizer). */
  protected weightTensors(): Record<string, HostTensor> {
    const weights: Record<string, HostTensor> = {};
    for (const p of this.stepTrace.params) weights[p.path] = p.hostValue;
    return weights;
  }

  /**
   * Records an optimizer update of the weights made in place by a native call on `holder`'s
   * session, which stored the updated weights too: every other session receives them on its
   * next call (as after {@link applyGradients}), `holder` already has them.
   */
  protected weightsUpdatedIn(holder: SessionEntry): void {
    this.paramVersion++;
    holder.paramVersion = this.paramVersion;
  }

  /**
   * Trains on batches of sequences: see `fit` in lib/train/fit.ts (updateEvery
   * 'sequence' | 'step' | k, progress, AbortSignal). Keeps the event loop free.
   */
  fit(data: FitData, options: FitOptions): Promise<FitResult> {
    return this.enqueue('fit', async () => {
      const { fit } = await import('../train/fit');
      return fit(this, data, options);
    });
  }

  /**
   * Streaming learning from one observation: `x` `(B, ...inputShape)`, `y` its
   * target; one online gradient step, then the optimizer's update (constant memory).
   * See `streamStep` in lib/train/stream.ts.
   */
  step(x: TensorLike, y: TensorLike, options: StreamStepOptions): Promise<StreamStepResult> {
    // A small step with nothing queued runs at once on the JS thread (no queue hop, no async
    // context): the same checks, the same native calls, the same Promise and queue contract.
    const stream = streamModule;
    if (stream !== undefined && this.pendingCalls.length === 0 && !this.disposed) {
      const now = this.runNow('step', () => stream.streamStepSync(this, x, y, options));
      if (now !== undefined) return now;
    }
    return this.enqueue('step', async () => {
      streamModule ??= await import('../train/stream'); // loaded once (a per-call import costs a module lookup)
      return streamModule.streamStep(this, x, y, options);
    });
  }

  /**
   * Writes a checkpoint (weights, states, traces, optimizer state when given) to
   * `path` atomically, in the versioned, checksummed format of docs/training.md;
   * with `{ key }` the file is authenticated (HMAC-SHA-256).
   */
  save(path: string, options: SaveCheckpointOptions = {}): Promise<void> {
    return this.enqueue('save', async () => {
      const { saveCheckpoint } = await import('../train/checkpoint');
      return saveCheckpoint(this, path, options);
    });
  }

  /**
   * Restores a checkpoint (a path, or what `bt.load(path)` returned) into this
   * learner and, when given, the optimizer; training then continues bit-for-bit.
   * `key` (with a path only) requires an authenticated file written with that key.
   * @throws CheckpointError for a damaged, unauthenticated or wrongly keyed file, or
   *   one that does not fit this learner; ArgumentError for a bad option.
   */
  load(checkpoint: string | Checkpoint, options: LoadCheckpointOptions = {}): Promise<void> {
    return this.enqueue('load', async () => {
      const { loadIntoLearner } = await import('../train/checkpoint');
      return loadIntoLearner(this, checkpoint, options);
    });
  }

  /** A copy of every non-weight state, keyed by path, each `(B, ...)`. */
  states(): Record<string, HostTensor> {
    this.checkUsable('states');
    this.pullStates();
    const out: Record<string, HostTensor> = {};
    for (const s of this.stepTrace.states) out[s.path] = cloneHost(s.hostValue);
    return out;
  }

  /** Replaces state values (any subset), e.g. a non-zero initial state. */
  setStates(values: Record<string, TensorLike>): void {
    this.checkUsable('setStates');
    this.pullStates();
    this.assignByPath('setStates', 'states', this.stepTrace.states, values);
  }

  /** Resets hidden and other states to their initial values (weights are kept). */
  resetState(): void {
    this.checkUsable('resetState');
    this.stateOwner = null;
    this.model.resetState();
    this.onReset();
  }

  /** Frees the native sessions. The learner cannot be used afterwards. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    if (!this.nativeInFlight) this.pullStates();
    for (const e of this.sessions.values()) e.session.dispose();
    this.sessions.clear();
    this.stateOwner = null;
    this.disposed = true;
  }

  /** Same as {@link dispose}, for `using learner = bt.compile(...)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ------------------------------------------------------------------ running

  /**
   * One step forward: `x` of shape `(B, ...inputShape)`; returns the output
   * `(B, ...outputShape)` and advances the states. Synchronous.
   */
  update(x: TensorLike): HostTensor {
    this.checkUsable('update');
    const xt = this.asData('x', x, [this.batchSize, ...this.inputShape]);
    const entry = this.session('', () => this.stepTrace);
    this.prepare(entry);
    const res = this.native(() => entry.session.runSequence({ steps: 1, inputs: [xt.data] }), entry);
    this.markOwner(entry);
    return { data: res.outputs[0], shape: [this.batchSize, ...this.outputShape], dtype: this.dtype };
  }

  /**
   * Runs a whole sequence `xs` of shape `(T, B, ...inputShape)` forward in one
   * native call; returns the outputs `(T, B, ...outputShape)` and advances the states.
   * `options.signal` cancels the native call in flight: it rejects with AbortError and the
   * states are those after `err.stepsDone` steps (as after `run(xs[0:stepsDone])`);
   * `options.onProgress({ done, total })` reports steps (total T).
   */
  run(xs: TensorLike, options: RunOptions = {}): Promise<HostTensor> {
    return this.enqueue('run', async () => {
      this.checkUsable('run');
      checkOptionKeys('run: options', options, CALL_OPTION_KEYS);
      checkCallOptions('run: options', options);
      const x = this.asSequence('xs', xs);
      const steps = x.shape[0];
      const entry = this.session('', () => this.stepTrace);
      const args = { steps, inputs: [x.data] };
      const res = await this.runExclusive(
        entry,
        (control) => entry.session.runSequenceAsync(args, control),
        { what: 'run', options },
        this.runsSynchronously(entry, steps, false) ? () => entry.session.runSequence(args) : undefined,
      );
      return { data: res.outputs[0], shape: [steps, this.batchSize, ...this.outputShape], dtype: this.dtype };
    }, signalOf(options));
  }

  // ------------------------------------------------------------------ the call queue

  /**
   * Runs `fn` after every earlier call of this learner has settled, in call order, and
   * returns its result. Every asynchronous method (`etraceGrad`, `run`, `etraceEvolve`,
   * `fit`, `step`, `save`, `load`) goes through this queue, so concurrent calls never
   * fail: they wait their turn. Inside `fn` (and in callbacks such as `fit`'s
   * `onProgress`, while the call runs) every method may be used, synchronous ones
   * included; outside, a synchronous method (`setParams`, `params`, `update`, ...)
   * called while asynchronous calls are pending throws {@link BusyError}. Use
   * `learner.enqueue(() => learner.setParams(p))` to queue one instead.
   *
   * Data passed to a queued call is read when the call starts: do not modify it until
   * the call's Promise settles.
   */
  enqueue<R>(fn: () => R | Promise<R>): Promise<R>;
  /**
   * @internal the same, naming the call (for BusyError messages); with `signal`, an abort
   * while the call still waits for its turn rejects it at once with AbortError (stepsDone 0)
   * and it never starts.
   */
  enqueue<R>(name: string, fn: () => R | Promise<R>, signal?: unknown): Promise<R>;
  enqueue<R>(a: string | (() => R | Promise<R>), b?: () => R | Promise<R>, signal?: unknown): Promise<R> {
    const name = typeof a === 'string' ? a : 'enqueue';
    const fn = (typeof a === 'string' ? b : a) as () => R | Promise<R>;
    if (typeof fn !== 'function') {
      return Promise.reject(new ArgumentError(`enqueue: expected a function; got ${typeof fn}`));
    }
    // A call made from inside this learner's running call runs at once (it already
    // holds the queue); waiting for the queue there would deadlock.
    if (this.holdsQueue()) {
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    this.pendingCalls.push(name);
    const token: QueueToken = { learner: this, active: false };
    const abortable = isAbortSignal(signal) ? signal : undefined;
    let abandoned = false; // rejected by an abort while still waiting: never starts
    const run = this.queueTail.then(() => {
      if (abandoned) return undefined as R;
      token.active = true;
      const held = queueContext.getStore();
      return queueContext.run(held ? [...held, token] : [token], fn);
    });
    const done = (): void => {
      token.active = false;
      const i = this.pendingCalls.indexOf(name);
      if (i >= 0) this.pendingCalls.splice(i, 1);
    };
    // Registered before the caller's own continuation, so a caller that awaits the
    // result may use synchronous methods right away.
    this.queueTail = run.then(done, done);
    if (abortable === undefined || abortable.aborted) return run; // an aborted one rejects when it starts
    return new Promise<R>((resolve, reject) => {
      const onAbort = (): void => {
        if (token.active) return; // running: the call itself stops and rejects (with stepsDone)
        abandoned = true;
        reject(abortedBeforeStart(name, abortable));
      };
      abortable.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => abortable.removeEventListener('abort', onAbort);
      run.then(
        (v) => {
          settle();
          if (!abandoned) resolve(v);
        },
        (e: unknown) => {
          settle();
          if (!abandoned) reject(e);
        },
      );
    });
  }

  /** Number of asynchronous calls of this learner that are queued or running. */
  get pending(): number {
    return this.pendingCalls.length;
  }

  /**
   * Runs `fn` at once as this learner's queued call, when the queue is empty: `fn` holds the
   * queue while it runs (synchronously, so nothing else can run meanwhile), the call counts
   * as pending until its Promise has settled (a synchronous method right after the call
   * still throws BusyError, as for a queued one), and a later call queues behind it.
   * Returns the settled Promise, or undefined when `fn` returned undefined: it could not run
   * synchronously and did nothing observable (the caller then queues the call as usual).
   */
  private runNow<R>(name: string, fn: () => R | undefined): Promise<R> | undefined {
    this.pendingCalls.push(name);
    this.syncHeld++;
    let result: R | undefined;
    let error: unknown;
    let failed = false;
    try {
      result = fn();
    } catch (e) {
      failed = true;
      error = e;
    } finally {
      this.syncHeld--;
    }
    const done = (): void => {
      const i = this.pendingCalls.indexOf(name);
      if (i >= 0) this.pendingCalls.splice(i, 1);
    };
    if (!failed && result === undefined) {
      done();
      return undefined;
    }
    const p = failed ? Promise.reject(error) : Promise.resolve(result as R);
    // Registered before the caller's own continuation (as in enqueue).
    this.queueTail = p.then(done, done);
    return p;
  }

  /** True when the code running now is inside one of this learner's queued calls. */
  private holdsQueue(): boolean {
    if (this.syncHeld > 0) return true;
    const held = queueContext.getStore();
    return held !== undefined && held.some((t) => t.learner === this && t.active);
  }

  /**
   * Gradients of the loss of a sequence with respect to every weight.
   * `xs`: `(T, B, ...inputShape)`; `ys`: targets `(T, B, ...)` (see the loss).
   * Advances the states through the sequence.
   */
  abstract etraceGrad(xs: TensorLike, ys: TensorLike, options?: GradOptions): Promise<GradResult>;

  // ------------------------------------------------------------------ helpers for subclasses

  /**
   * Runs the loss graph of `loss` over a sequence with reverse mode through all
   * T steps (exact BPTT) in one native call.
   */
  /** Called after a session is created (e.g. to configure traces). */
  protected onCreate(_entry: SessionEntry): void {}
  /** Called when `owner` hands the newest values back to the host (copy extras out). */
  protected onPull(_owner: SessionEntry): void {}
  /** Called when `entry` receives the newest values from the host (copy extras in). */
  protected onPush(_entry: SessionEntry): void {}
  /** Called by resetState() after the states were reset. */
  protected onReset(): void {}

  protected async bpttGrad(xs: TensorLike, ys: TensorLike, options: GradOptions = {}): Promise<GradResult> {
    const c = this.bpttCall(xs, ys, options);
    const res = await this.runExclusive(
      c.entry,
      (control) => c.entry.session.runSequenceAsync(c.args, control),
      { what: 'etraceGrad', options },
      c.sync ? () => c.entry.session.runSequence(c.args) : undefined,
    );
    return this.bpttResult(c.entry, res, c.steps);
  }

  /**
   * {@link bpttGrad} run synchronously on the JS thread: the same checks (thrown), then a
   * function making the native call; undefined when the call is too large for the JS thread
   * or asks for progress reports (nothing ran: use the asynchronous call).
   */
  protected bpttGradSync(xs: TensorLike, ys: TensorLike, options: GradOptions = {}): (() => GradResult) | undefined {
    const c = this.bpttCall(xs, ys, options);
    if (!c.sync || options.onProgress !== undefined) return undefined;
    return () => this.bpttResult(c.entry, this.runExclusiveSync(c.entry, () => c.entry.session.runSequence(c.args)), c.steps);
  }

  /** Checks the arguments of {@link bpttGrad}; returns its session, native arguments and whether it is small. */
  private bpttCall(xs: TensorLike, ys: TensorLike, options: GradOptions) {
    this.checkUsable('etraceGrad');
    checkOptionKeys('etraceGrad: options', options, GRAD_OPTION_KEYS);
    checkCallOptions('etraceGrad: options', options);
    const loss = options.loss ?? 'mse';
    const fn = resolveLoss(loss);
    const x = this.asSequence('xs', xs);
    const steps = x.shape[0];
    const yRaw = asDType('ys', ys, this.dtype);
    const y = prepareTargets(loss, yRaw, steps, [this.batchSize, ...this.outputShape]);
    if (y.shape[1] !== this.batchSize) {
      throw new ShapeError(`ys: expected batch size ${this.batchSize} on axis 1; got shape ${fmtShape(y.shape)}`);
    }
    const targetShape = y.shape.slice(2);
    const entry = this.session(lossCacheKey(loss, targetShape), () => this.trace({ fn, targetShape }));
    const lossScale = lossScaleArg(steps, options.mask, options.reduction ?? 'sum', 'etraceGrad');
    const args = { steps, inputs: [x.data, y.data], lossScale, computeGrads: true };
    return { entry, args, steps, sync: this.runsSynchronously(entry, steps, true) };
  }

  /** The GradResult of a native BPTT call on `entry`. */
  private bpttResult(entry: SessionEntry, res: NativeSequenceResult, steps: number): GradResult {
    const grads: Record<string, HostTensor> = {};
    entry.traced.params.forEach((p, i) => {
      const g = res.paramGrads?.[i];
      if (g === undefined) throw new ArgumentError(`etraceGrad: the native call returned no gradient for '${p.path}'`);
      grads[p.path] = { data: g, shape: p.shape.slice(), dtype: this.dtype };
    });
    return { grads, losses: res.losses, outputs: this.sequenceOutput(res.outputs[0], steps) };
  }

  /**
   * @internal The synchronous form of {@link etraceGrad} for a call small enough to run on
   * the JS thread (used by `step` when the queue is empty): checks the arguments as
   * etraceGrad does (throwing its errors) and returns a function that runs the call, or
   * undefined when it must run asynchronously (nothing ran then). Learners without one
   * (the default) always run asynchronously.
   */
  etraceGradSync(
    _xs: TensorLike,
    _ys: TensorLike,
    _options?: GradOptions,
    _into?: SyncGradInto,
  ): (() => SyncGradResult) | undefined {
    return undefined;
  }

  /** Wraps a native `(T, B, ...out)` output array as a host tensor. */
  protected sequenceOutput(data: NativeArray, steps: number): HostTensor {
    return { data, shape: [steps, this.batchSize, ...this.outputShape], dtype: this.dtype };
  }

  /** Checks and converts a sequence `(T, B, ...inputShape)`. */
  protected asSequence(what: string, xs: TensorLike): HostTensor {
    const t = asDType(what, xs, this.dtype);
    const want = [this.batchSize, ...this.inputShape];
    if (t.shape.length !== want.length + 1 || t.shape[0] < 1 || want.some((d, i) => t.shape[i + 1] !== d)) {
      throw new ShapeError(
        `${what}: expected a sequence of shape (T, ${want.join(', ')}) with T >= 1; got ${fmtShape(t.shape)}`,
        { argument: what, expected: `(T, ${want.join(', ')})`, actual: fmtShape(t.shape) },
      );
    }
    return t;
  }

  protected asData(what: string, x: TensorLike, shape: number[]): HostTensor {
    const t = asDType(what, x, this.dtype);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ShapeError(`${what}: expected shape ${fmtShape(shape)}; got ${fmtShape(t.shape)}`, {
        argument: what,
        expected: fmtShape(shape),
        actual: fmtShape(t.shape),
      });
    }
    return t;
  }

  /**
   * Throws DisposedError after dispose(), and BusyError when a synchronous method is
   * called from outside the learner's queue while asynchronous calls are pending.
   */
  protected checkUsable(what: string): void {
    if (this.disposed) {
      throw new DisposedError(`${what}: the learner has been disposed`, { argument: 'this' });
    }
    if (this.pendingCalls.length > 0 && !this.holdsQueue()) {
      const list = this.pendingCalls.join(', ');
      throw new BusyError(
        `${what}: ${this.pendingCalls.length} asynchronous call(s) of this learner are pending (${list}); ` +
          `await them first, or queue this call with learner.enqueue(() => ...)`,
        { argument: 'this', expected: 'no pending asynchronous call', actual: list },
      );
    }
  }

  private assignByPath(
    what: string,
    kind: 'params' | 'states',
    list: readonly BaseState[],
    values: Record<string, TensorLike>,
  ): void {
    if (typeof values !== 'object' || values === null) {
      throw new ArgumentError(`${what}: expected a record of path -> tensor; got ${String(values)}`);
    }
    const byPath = new Map(list.map((s) => [s.path, s] as const));
    // Check everything before assigning anything.
    const staged: [BaseState, HostTensor][] = [];
    for (const [path, v] of Object.entries(values)) {
      const s = byPath.get(path);
      if (s === undefined) {
        throw new ArgumentError(`${what}: unknown path '${path}'; expected one of ${[...byPath.keys()].join(', ')}`);
      }
      const t = isHostTensor(v) ? asDType(`${what}: '${path}'`, v, this.dtype) : tensor(v, s.hostValue.shape, this.dtype);
      const want = s.hostValue.shape;
      if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
        throw new ShapeError(`${what}: '${path}' expects shape ${fmtShape(want)}; got ${fmtShape(t.shape)}`);
      }
      if (this.nonFinite !== 'allow') checkFiniteData(what, `${kind}.${path}`, t.data as NativeArray);
      staged.push([s, t]);
    }
    for (const [s, t] of staged) s.hostValue = t;
  }

  protected session(key: string, traceFn: () => TracedModel): SessionEntry {
    let entry = this.sessions.get(key);
    if (entry === undefined) {
      const traced = traceFn();
      const plan = encodePlan(traced.graph);
      const session = this.native(() => loadBinding().createSession(plan.code, plan.fattr));
      const checks = this.nonFinite;
      this.native(() => session.setFiniteChecks(checks !== 'allow', checks === 'error'));
      entry = { session, traced, paramVersion: -1 };
      this.sessions.set(key, entry);
      this.onCreate(entry);
    }
    return entry;
  }

  /**
   * Brings weights and states of `entry`'s session up to date. With `deferParams`, stale
   * weights are not pushed: their arrays (slot order) are returned instead, for a native
   * call that stores them itself before it runs (`runOnline`'s `params`; see
   * {@link runExclusiveSyncWithParams}); undefined when the session has them already.
   */
  protected prepare(entry: SessionEntry, deferParams = false): NativeArray[] | undefined {
    let deferred: NativeArray[] | undefined;
    if (entry.paramVersion !== this.paramVersion) {
      // Every weight in one native call (slot i <- params[i]; e.g. after each optimizer update).
      const data = entry.traced.params.map((p: ParamState) => p.hostValue.data as NativeArray);
      if (deferParams) {
        deferred = data;
      } else {
        this.native(() => entry.session.setParams(data), entry);
        entry.paramVersion = this.paramVersion;
      }
    }
    if (this.stateOwner !== entry) {
      this.pullStates();
      entry.traced.states.forEach((s, i) => {
        this.native(() => entry.session.setState(i, s.hostValue.data as NativeArray), entry);
      });
      this.onPush(entry);
    }
    return deferred;
  }

  /** Records that `entry`'s session now holds the newest states (after a synchronous call). */
  protected markOwner(entry: SessionEntry): void {
    this.stateOwner = entry;
  }

  /** Copies the newest state values from the owning session into the host model. */
  protected pullStates(): void {
    const owner = this.stateOwner;
    if (owner === null) return;
    owner.traced.states.forEach((s, i) => {
      const data = this.native(() => owner.session.getState(i));
      s.hostValue = { data, shape: s.hostValue.shape, dtype: this.dtype };
    });
    this.onPull(owner);
    this.stateOwner = null;
  }

  /**
   * Runs an async native call with the learner marked busy; the session then owns the
   * states, also after a failed call (a cancelled or non-finite call keeps the states of
   * its finished steps in the session; any other failure leaves the values prepare()
   * pushed). With `control`, the call runs under its `{ signal, onProgress }`.
   */
  protected async runExclusive<R>(
    entry: SessionEntry,
    call: (control: NativeCallControl | undefined) => Promise<R>,
    control?: { what: string; options: CallOptions },
    syncCall?: () => R,
  ): Promise<R> {
    // An aborted signal rejects before any native work (and before prepare() moves a value).
    const signal = control?.options.signal;
    if (control !== undefined && signal?.aborted) throw abortedBeforeStart(control.what, signal);
    // A small call (syncCall, see runsSynchronously) runs here on the JS thread: nothing can
    // abort it while it runs, and a call that asks for progress reports takes the async path.
    if (syncCall !== undefined && control?.options.onProgress === undefined) return this.runExclusiveSync(entry, syncCall);
    this.prepare(entry);
    this.nativeInFlight = true;
    try {
      const r = control === undefined ? await call(undefined) : await runControlled(control.what, entry.session, control.options, call);
      return r;
    } catch (e) {
      throw this.nativeError(e, entry);
    } finally {
      this.stateOwner = entry;
      this.nativeInFlight = false;
    }
  }

  /**
   * The synchronous branch of {@link runExclusive}: prepares `entry`, runs `syncCall` on the
   * JS thread with its errors mapped; the session then owns the states (also after a failure).
   */
  protected runExclusiveSync<R>(entry: SessionEntry, syncCall: () => R): R {
    this.prepare(entry);
    this.nativeInFlight = true;
    try {
      return syncCall();
    } catch (e) {
      throw this.nativeError(e, entry);
    } finally {
      this.stateOwner = entry;
      this.nativeInFlight = false;
    }
  }

  /**
   * {@link native} for a synchronous call on `entry` that takes the stale weights itself:
   * prepares `entry` with deferred weights (see {@link prepare}) and hands them to `call`
   * (e.g. as `runOnline`'s `into.params`); the session counts as holding them once the call
   * has succeeded. The caller records the state owner (as after prepare + native).
   */
  protected nativeWithParams<R>(entry: SessionEntry, call: (params: NativeArray[] | undefined) => R): R {
    const version = this.paramVersion;
    const params = this.prepare(entry, true);
    const r = this.native(() => call(params), entry);
    if (params !== undefined) entry.paramVersion = version;
    return r;
  }

  /**
   * {@link runExclusiveSync} for a native call that takes the stale weights itself: `syncCall`
   * receives the weight arrays to store before it runs (or undefined when the session has
   * them), e.g. as `runOnline`'s `params`, which saves the separate setParams call. The
   * session counts as holding the weights once the call has succeeded.
   */
  protected runExclusiveSyncWithParams<R>(entry: SessionEntry, syncCall: (params: NativeArray[] | undefined) => R): R {
    const version = this.paramVersion;
    const params = this.prepare(entry, true);
    this.nativeInFlight = true;
    try {
      const r = syncCall(params);
      if (params !== undefined) entry.paramVersion = version;
      return r;
    } catch (e) {
      throw this.nativeError(e, entry);
    } finally {
      this.stateOwner = entry;
      this.nativeInFlight = false;
    }
  }

  /**
   * True when a call of `steps` steps on `entry` is small enough to run synchronously on
   * the JS thread (estimated work at most {@link SYNC_WORK_LIMIT}; `grads`: a reverse
   * sweep or learning signal too, counted as twice the forward work).
   */
  protected runsSynchronously(entry: SessionEntry, steps: number, grads: boolean): boolean {
    entry.stepWork ??= stepWork(entry.traced, this.traceValuesOf(entry));
    return steps * entry.stepWork * (grads ? 3 : 1) <= SYNC_WORK_LIMIT;
  }

  /** Number of eligibility-trace values `entry`'s session updates per step (0 here; online learners: their traces). */
  protected traceValuesOf(_entry: SessionEntry): number {
    return 0;
  }

  /** Runs a synchronous native call, mapping its errors (tensor names of `entry`'s slots). */
  protected native<R>(fn: () => R, entry?: SessionEntry): R {
    try {
      return fn();
    } catch (e) {
      throw this.nativeError(e, entry);
    }
  }

  /**
   * The typed error of a native failure; a NonFiniteError's native slot name becomes the
   * learner's: inputs[0] 'xs', inputs[1] 'ys', params[i] / grads[i] / states[i] by path.
   */
  protected nativeError(e: unknown, entry?: SessionEntry): unknown {
    const err = wrapNativeError(e);
    if (entry === undefined) return err;
    const { params, states } = entry.traced;
    return renameNonFinite(err, (name) => {
      const m = /^(inputs|params|grads|states)\[(\d+)\]$/.exec(name);
      if (m === null) return undefined;
      const i = Number(m[2]);
      if (m[1] === 'inputs') return i === 0 ? 'xs' : i === 1 ? 'ys' : undefined;
      const list = m[1] === 'states' ? states : params;
      return i < list.length ? `${m[1]}.${list[i].path}` : undefined;
    });
  }
}

/** A queued call of a learner, active while it runs (see {@link Learner.enqueue}). */
interface QueueToken {
  learner: Learner;
  active: boolean;
}

/** lib/train/stream, loaded by the first {@link Learner.step} (it imports this module). */
let streamModule: typeof import('../train/stream') | undefined;

/** The queued calls the running code is inside of (propagates across awaits and callbacks). */
const queueContext = new AsyncLocalStorage<QueueToken[]>();

/** The `signal` of a call's options, unvalidated (the call validates its options itself). */
export function signalOf(options: unknown): unknown {
  return typeof options === 'object' && options !== null ? (options as { signal?: unknown }).signal : undefined;
}

/** True for an AbortSignal (of this realm or another): what the queue can listen to. */
function isAbortSignal(v: unknown): v is AbortSignal {
  const s = v as Partial<AbortSignal> | null;
  return typeof s === 'object' && s !== null && typeof s.aborted === 'boolean' && typeof s.addEventListener === 'function';
}

/** Largest batch size (the native plan stores dimensions as int32). */
const MAX_BATCH = 2 ** 31 - 1;

/** Number of elements of a shape (re-exported for algorithm code). */
export { numel };
