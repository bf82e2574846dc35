/**
 * Pieces shared by the training loops and checkpoints: the structural type of
 * an optimizer (matching lib/optim's `Optimizer`), applying gradients, a
 * per-learner lock, slicing sequences along time, and yielding to the event loop.
 */
import type { Learner } from '../algorithms/learner';
import { ArgumentError, ShapeError, fmtShape } from '../runtime/errors';
import { asDType, numel, type DType, type HostTensor, type TensorLike } from '../tensor';

/**
 * What the training loops need from an optimizer (structurally the `Optimizer`
 * of lib/optim, so any of its optimizers fits).
 */
export interface OptimizerLike {
  /** Updates `params` in place from `grads`; returns the learning rate used and the gradient norm. */
  step(params: Record<string, HostTensor>, grads: Record<string, HostTensor>): { lr: number; gradNorm: number };
  /** Number of steps taken. */
  readonly stepCount: number;
  /** Learning rate of the next step. */
  currentLr(): number;
  /** Plain JSON-able state (typed arrays allowed): kind, hyper-parameters, stepCount, per-path arrays. */
  state(): unknown;
  /** Restores a state returned by {@link state}. */
  loadState(s: unknown): void;
  dispose(): void;
}

/** The result of one optimizer update. */
export interface UpdateInfo {
  lr: number;
  gradNorm: number;
  /** True when the update was skipped as non-finite (learner policy `nonFinite: 'skipUpdate'`). */
  skipped?: boolean;
}

/** Throws ArgumentError unless `opt` looks like an optimizer. */
export function checkOptimizer(opt: unknown, what: string): OptimizerLike {
  const o = opt as Partial<OptimizerLike> | null;
  if (typeof o !== 'object' || o === null || typeof o.step !== 'function') {
    throw new ArgumentError(`${what}: optimizer must be an Optimizer (with step(params, grads)); got ${String(opt)}`);
  }
  return o as OptimizerLike;
}

/**
 * Applies `grads` to the learner's weights with `optimizer`: through
 * `learner.applyGradients` when the learner has it, else as
 * `p = params(); optimizer.step(p, grads); setParams(p)` (the same result).
 */
export function applyGradients(learner: Learner, grads: Record<string, HostTensor>, optimizer: OptimizerLike): UpdateInfo {
  const withApply = learner as Learner & {
    applyGradients?: (g: Record<string, HostTensor>, o: OptimizerLike) => UpdateInfo;
  };
  if (typeof withApply.applyGradients === 'function') return withApply.applyGradients(grads, optimizer);
  const p = learner.params();
  const info = optimizer.step(p, grads);
  learner.setParams(p);
  return info;
}

/**
 * Runs `fn` in `learner`'s call queue ({@link Learner.enqueue}): after every earlier
 * call of the learner has settled, in call order; at once when already inside one of
 * its calls. Training calls issued concurrently (e.g. two requests of a service calling
 * streamStep) therefore run one after the other instead of failing.
 */
export function withLearnerLock<R>(learner: Learner, fn: () => Promise<R> | R): Promise<R> {
  return learner.enqueue(fn);
}

/** Lets the event loop run (timers, I/O, other requests) before continuing. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Converts data to a host tensor of `dtype` (no copy when it already is one): {@link asDType}. */
export function asHost(what: string, x: TensorLike, dtype: DType): HostTensor {
  return asDType(what, x, dtype);
}

/** Steps [t0, t1) of a time-major tensor `(T, ...)`, copied. */
export function sliceTime(t: HostTensor, t0: number, t1: number): HostTensor {
  if (t.shape.length < 1) throw new ShapeError(`expected a time-major tensor (T, ...); got shape ${fmtShape(t.shape)}`);
  const stride = numel(t.shape.slice(1));
  return { data: t.data.slice(t0 * stride, t1 * stride), shape: [t1 - t0, ...t.shape.slice(1)], dtype: t.dtype };
}

/** A one-step sequence `(1, ...shape)` viewing the data of `x` (no copy). */
export function asOneStep(x: HostTensor): HostTensor {
  return { data: x.data, shape: [1, ...x.shape], dtype: x.dtype };
}

/** Mean of `losses` weighted by `mask` (plain mean without one; 0 when every weight is 0). */
export function meanLoss(losses: ArrayLike<number>, mask?: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < losses.length; i++) {
    const w = mask === undefined ? 1 : mask[i];
    if (w === 0) continue;
    num += w * losses[i];
    den += w;
  }
  return den === 0 ? 0 : num / den;
}
