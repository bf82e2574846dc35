/**
 * `fit`: trains a learner on batches of sequences with an optimizer, updating
 * the weights once per sequence, once per step (online learning), or every k
 * steps; Promise-based, yielding to the event loop between updates, reporting
 * progress and stopping cleanly on an AbortSignal. See docs/training.md.
 */
import type { GradOptions, Learner } from '../algorithms/learner';
import type { Loss, Reduction } from '../algorithms/losses';
import { AbortError, ArgumentError, ShapeError, checkOptionKeys, fmtShape } from '../runtime/errors';
import type { TensorLike } from '../tensor';
import {
  applyGradients,
  asHost,
  checkOptimizer,
  meanLoss,
  sliceTime,
  withLearnerLock,
  yieldToEventLoop,
  type OptimizerLike,
} from './common';

/** One batch of sequences: inputs `(T, B, ...inputShape)` and targets `(T, B, ...)`. */
export interface FitBatch {
  xs: TensorLike;
  ys: TensorLike;
  /** Per-step loss weights of this batch, length T (overrides `options.mask`). */
  mask?: ArrayLike<number>;
}

/**
 * The data of {@link fit}: an array or any (async) iterable of batches, or a
 * function returning a fresh one per epoch. A one-shot iterator (a generator
 * object) can only be used with `epochs: 1`.
 */
export type FitData =
  | readonly FitBatch[]
  | Iterable<FitBatch>
  | AsyncIterable<FitBatch>
  | ((epoch: number) => Iterable<FitBatch> | AsyncIterable<FitBatch>);

/** When the weights are updated: after each sequence, after each step, or every k steps. */
export type UpdateEvery = 'sequence' | 'step' | number;

/** Progress reported after every optimizer update. */
export interface FitProgress {
  /** Epoch index (0-based). */
  epoch: number;
  /** Batch index within the epoch (0-based). */
  batch: number;
  /** Optimizer steps made by this fit call so far, applied or skipped (1 after the first). */
  step: number;
  /**
   * Updates skipped so far because they were non-finite (learner policy
   * `nonFinite: 'skipUpdate'`; always 0 otherwise).
   */
  skipped: number;
  /** Mean per-step loss of the chunk just learned from (masked mean with a mask). */
  loss: number;
  /** Learning rate used by the update. */
  lr: number;
  /** Gradient norm reported by the optimizer. */
  gradNorm: number;
  /** Steps of the current sequence consumed so far. */
  t: number;
  /** Length T of the current sequence. */
  steps: number;
}

/** Options of {@link fit}. */
export interface FitOptions {
  /** The optimizer that turns gradients into weight updates (its state persists across calls). */
  optimizer: OptimizerLike;
  /** Passes over the data (default 1). */
  epochs?: number;
  /**
   * 'sequence' (default): one etraceGrad over the whole sequence, then one update.
   * 'step': the sequence is learned step by step (etraceGrad on xs[t:t+1], then an
   * update): true online learning for D_RTRL / pp_prop, states and traces carrying
   * across steps. k (integer >= 1): chunks of k steps (the last may be shorter).
   * For BPTT, 'step' and k are truncated BPTT on the chunks (states carry, gradients
   * do not cross a chunk boundary).
   */
  updateEvery?: UpdateEvery;
  /** Per-step loss (default 'mse'). */
  loss?: Loss;
  /** How the per-step losses of a chunk combine: 'sum' (default) or 'mean'. */
  reduction?: Reduction;
  /** Per-step loss weights, length T (sliced with the chunks). */
  mask?: ArrayLike<number>;
  /** Window length passed to an online learner's etraceGrad (vjpMethod 'multi-step'); must divide each chunk. */
  chunkSize?: number;
  /** Reset hidden states (and traces) before each sequence (default true). */
  resetState?: boolean;
  /** Called after every optimizer update (awaited when it returns a Promise). */
  onProgress?: (p: FitProgress) => void | Promise<void>;
  /**
   * Stops training: the native call in flight is cancelled (within milliseconds, not at the
   * end of the chunk), its chunk's update is not applied, and fit resolves with
   * `aborted: true`. The learner's states are those the cancelled call kept (see
   * etraceGrad); the learner stays usable.
   */
  signal?: AbortSignal;
}

/** The keys {@link FitOptions} may have (anything else is an ArgumentError). */
const FIT_OPTION_KEYS = [
  'optimizer',
  'epochs',
  'updateEvery',
  'loss',
  'reduction',
  'mask',
  'chunkSize',
  'resetState',
  'onProgress',
  'signal',
] as const;

/** Result of {@link fit}. */
export interface FitResult {
  /** Epochs completed. */
  epochs: number;
  /** Batches processed (an interrupted batch counts). */
  batches: number;
  /** Mean per-step loss of each processed batch, over the steps it learned from. */
  losses: number[];
  /** Optimizer updates applied. */
  updates: number;
  /** Updates skipped as non-finite (learner policy `nonFinite: 'skipUpdate'`). */
  skipped: number;
  /** True when the signal stopped training before the end. */
  aborted: boolean;
}

function chunkLength(updateEvery: UpdateEvery | undefined): number {
  const u = updateEvery ?? 'sequence';
  if (u === 'sequence') return Infinity;
  if (u === 'step') return 1;
  if (typeof u === 'number' && Number.isInteger(u) && u >= 1) return u;
  throw new ArgumentError(`fit: updateEvery must be 'sequence', 'step' or an integer >= 1; got ${JSON.stringify(u)}`);
}

function isIterator(x: unknown): boolean {
  const it = x as { [Symbol.iterator]?: () => unknown; [Symbol.asyncIterator]?: () => unknown };
  if (typeof it[Symbol.asyncIterator] === 'function') return it[Symbol.asyncIterator]!() === x;
  if (typeof it[Symbol.iterator] === 'function') return it[Symbol.iterator]!() === x;
  return false;
}

function epochData(data: FitData, epoch: number): Iterable<FitBatch> | AsyncIterable<FitBatch> {
  const d = typeof data === 'function' ? data(epoch) : data;
  const it = d as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown } | null;
  if (
    typeof it !== 'object' ||
    it === null ||
    (typeof it[Symbol.iterator] !== 'function' && typeof it[Symbol.asyncIterator] !== 'function')
  ) {
    throw new ArgumentError(
      `fit: data must be an array or (async) iterable of { xs, ys }, or a function returning one; got ${String(d)}`,
    );
  }
  return d;
}

/**
 * Trains `learner` on `data` with `options.optimizer`.
 *
 * Each batch `{ xs (T, B, ...in), ys (T, B, ...) }` is cut into chunks of
 * `updateEvery` steps; per chunk: `etraceGrad` (states and traces advance),
 * the optimizer update, `onProgress`, a yield to the event loop, and a check
 * of `signal`. Hidden states (and traces) are reset before each batch unless
 * `resetState: false`.
 *
 * Abort: when `signal` is aborted, the native call in flight stops at its next
 * step (its chunk's update is not applied; an abort between chunks stops before
 * the next one) and fit resolves with `aborted: true`; it never rejects for an
 * abort, and the learner stays usable. Errors (bad shapes, a disposed learner,
 * an optimizer error, a NonFiniteError under the learner's `nonFinite: 'error'`)
 * reject the Promise; under `'skipUpdate'` a non-finite update is skipped and
 * counted in `skipped`.
 */
export async function fit(learner: Learner, data: FitData, options: FitOptions): Promise<FitResult> {
  if (typeof options !== 'object' || options === null) {
    throw new ArgumentError('fit: options { optimizer, epochs?, updateEvery?, loss?, ... } are required');
  }
  checkOptionKeys('fit: options', options, FIT_OPTION_KEYS);
  const optimizer = checkOptimizer(options.optimizer, 'fit');
  const epochs = options.epochs ?? 1;
  if (!Number.isInteger(epochs) || epochs < 0) {
    throw new ArgumentError(`fit: epochs must be an integer >= 0; got ${String(options.epochs)}`);
  }
  const every = chunkLength(options.updateEvery);
  const resetState = options.resetState ?? true;
  const signal = options.signal;
  if (typeof data !== 'function' && epochs > 1 && isIterator(data)) {
    throw new ArgumentError(
      'fit: data is a one-shot iterator (e.g. a generator object) but epochs > 1; pass an array, a re-iterable, ' +
        'or a function (epoch) => iterable',
    );
  }
  const result: FitResult = { epochs: 0, batches: 0, losses: [], updates: 0, skipped: 0, aborted: false };
  if (signal?.aborted) return { ...result, aborted: true };

  for (let epoch = 0; epoch < epochs; epoch++) {
    let batch = 0;
    for await (const item of epochData(data, epoch)) {
      if (signal?.aborted) return { ...result, aborted: true };
      if (typeof item !== 'object' || item === null || !('xs' in item) || !('ys' in item)) {
        throw new ArgumentError(`fit: batch ${batch} of epoch ${epoch} must be an object { xs, ys }; got ${String(item)}`);
      }
      const xs = asHost(`fit: batch ${batch} xs`, item.xs, learner.dtype);
      const ys = asHost(`fit: batch ${batch} ys`, item.ys, learner.dtype);
      const T = xs.shape[0];
      if (xs.shape.length < 2 || T < 1) {
        throw new ShapeError(`fit: batch ${batch} xs must be a sequence (T, B, ...) with T >= 1; got ${fmtShape(xs.shape)}`);
      }
      if (ys.shape[0] !== T) {
        throw new ShapeError(`fit: batch ${batch} ys must have T = ${T} steps on axis 0 (as xs); got ${fmtShape(ys.shape)}`);
      }
      const mask = item.mask ?? options.mask;
      if (mask !== undefined && mask.length !== T) {
        throw new ShapeError(`fit: batch ${batch} mask must have length T = ${T}; got ${mask.length}`);
      }
      if (resetState) await withLearnerLock(learner, () => learner.resetState());

      result.batches++;
      let num = 0;
      let den = 0;
      for (let t0 = 0; t0 < T; t0 += Math.min(every, T)) {
        const t1 = Math.min(T, t0 + every);
        const whole = t0 === 0 && t1 === T;
        const cx = whole ? xs : sliceTime(xs, t0, t1);
        const cy = whole ? ys : sliceTime(ys, t0, t1);
        const cm = mask === undefined ? undefined : Array.from(mask).slice(t0, t1);
        const gradOptions: GradOptions & { chunkSize?: number } = {
          loss: options.loss,
          reduction: options.reduction,
          mask: cm,
        };
        if (options.chunkSize !== undefined) gradOptions.chunkSize = options.chunkSize;
        if (signal !== undefined) gradOptions.signal = signal;
        let chunk: { losses: Float64Array; info: ReturnType<typeof applyGradients> };
        try {
          chunk = await withLearnerLock(learner, async () => {
            const r = await learner.etraceGrad(cx, cy, gradOptions);
            return { losses: r.losses, info: applyGradients(learner, r.grads, optimizer) };
          });
        } catch (e) {
          // The signal cancelled the native call in flight: no update for this chunk.
          if (e instanceof AbortError && signal?.aborted) {
            result.losses.push(den === 0 ? 0 : num / den);
            return { ...result, aborted: true };
          }
          throw e;
        }
        const { losses, info } = chunk;
        if (info.skipped === true) result.skipped++;
        else result.updates++;
        for (let i = 0; i < losses.length; i++) {
          const w = cm === undefined ? 1 : cm[i];
          num += w * losses[i];
          den += w;
        }
        if (options.onProgress !== undefined) {
          await options.onProgress({
            epoch,
            batch,
            step: result.updates + result.skipped,
            skipped: result.skipped,
            loss: meanLoss(losses, cm),
            lr: info.lr,
            gradNorm: info.gradNorm,
            t: t1,
            steps: T,
          });
        }
        await yieldToEventLoop();
        if (signal?.aborted && t1 < T) {
          result.losses.push(den === 0 ? 0 : num / den);
          return { ...result, aborted: true };
        }
      }
      result.losses.push(den === 0 ? 0 : num / den);
      batch++;
    }
    result.epochs++;
  }
  return result;
}

