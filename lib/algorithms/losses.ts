/**
 * Per-step loss functions of the learners. A loss is traced into the same graph
 * as the model step (so its derivative is computed natively with the model's);
 * the per-step losses of a sequence are then summed or averaged over time.
 */
import * as ops from '../dsl/ops';
import type { Tensor } from '../dsl/tensor';
import { ArgumentError, ShapeError, fmtShape } from '../runtime/errors';
import { numel, type HostTensor } from '../tensor';

/**
 * A loss traced like the model: `(y, target) => scalar Tensor`, where `y` is the
 * model output of one step, shape (B, ...out), and `target` that step's target,
 * shape (B, ...targetShape) as given to the learner.
 */
export type LossFunction = (y: Tensor, target: Tensor) => Tensor;

/** Names of the built-in losses. */
export type LossName = 'mse' | 'sumSquares' | 'crossEntropy';

/** A built-in loss name or a traced loss function. */
export type Loss = LossName | LossFunction;

/** How per-step losses combine into the objective: summed over time or averaged over the T steps. */
export type Reduction = 'sum' | 'mean';

/**
 * Built-in losses, each for one step:
 * - `mse`: mean over batch and features of (y − target)².
 * - `sumSquares`: sum over batch and features of (y − target)².
 * - `crossEntropy`: y are logits (B, C); target is one-hot (B, C) (class
 *   indices are converted to one-hot by {@link prepareTargets}); the loss is
 *   the batch mean of −Σ_c target_c · logSoftmax(y)_c.
 */
export const BUILTIN_LOSSES: Readonly<Record<LossName, LossFunction>> = {
  mse: (y, t) => ops.mean(ops.square(ops.sub(y, t))),
  sumSquares: (y, t) => ops.sum(ops.square(ops.sub(y, t))),
  crossEntropy: (y, t) => ops.neg(ops.mean(ops.sum(ops.mul(t, ops.logSoftmax(y, -1)), -1))),
};

/** Resolves a loss argument to its function; throws ArgumentError naming `loss` for unknown names. */
export function resolveLoss(loss: Loss): LossFunction {
  if (typeof loss === 'function') return loss;
  const fn = (BUILTIN_LOSSES as Record<string, LossFunction | undefined>)[loss];
  if (fn === undefined) {
    throw new ArgumentError(
      `loss must be one of 'mse', 'sumSquares', 'crossEntropy' or a function (y, target) => Tensor; got ${JSON.stringify(loss)}`,
    );
  }
  return fn;
}

/**
 * Checks a sequence of targets against the model output and returns the target
 * tensor the traced loss reads, time-major (T, B, ...targetShape).
 *
 * For `crossEntropy`, targets may be class indices of shape (T, B) (integers in
 * [0, C), C = last axis of the output), which become one-hot (T, B, C) here: a
 * data conversion on the host, no math of the model. For the other built-in
 * losses the target shape must equal the output shape (T, B, ...out).
 */
export function prepareTargets(
  loss: Loss,
  ys: HostTensor,
  steps: number,
  outputShape: readonly number[],
): HostTensor {
  if (ys.shape[0] !== steps) {
    throw new ShapeError(
      `ys: expected ${steps} steps on axis 0 (as xs), got shape ${fmtShape(ys.shape)}`,
    );
  }
  if (typeof loss === 'function') return ys;
  const full = [steps, ...outputShape];
  if (loss === 'crossEntropy' && ys.shape.length === full.length - 1) {
    const idxShape = full.slice(0, -1);
    if (ys.shape.some((d, i) => d !== idxShape[i])) {
      throw new ShapeError(
        `ys: class indices for crossEntropy must have shape ${fmtShape(idxShape)} (or one-hot ${fmtShape(full)}); got ${fmtShape(ys.shape)}`,
      );
    }
    const classes = full[full.length - 1];
    const n = numel(idxShape);
    const data = ys.dtype === 'float64' ? new Float64Array(n * classes) : new Float32Array(n * classes);
    for (let i = 0; i < n; i++) {
      const c = ys.data[i];
      if (!Number.isInteger(c) || c < 0 || c >= classes) {
        throw new ArgumentError(`ys: class index at flat position ${i} must be an integer in [0, ${classes}); got ${c}`);
      }
      data[i * classes + c] = 1;
    }
    return { data, shape: full, dtype: ys.dtype };
  }
  if (ys.shape.length !== full.length || ys.shape.some((d, i) => d !== full[i])) {
    throw new ShapeError(
      `ys: loss '${loss}' needs targets of the output's shape per step ${fmtShape(full)}; got ${fmtShape(ys.shape)}`,
    );
  }
  return ys;
}

/** Per-function ids of custom losses (for cache keys). */
const lossIds = new WeakMap<object, number>();
let nextLossId = 1;

/**
 * A cache key for a traced (model + loss) graph: the loss name, or an id unique
 * to the function object, and the per-sample target shape.
 */
export function lossCacheKey(loss: Loss, targetShape: readonly number[]): string {
  let name: string;
  if (typeof loss === 'function') {
    let id = lossIds.get(loss);
    if (id === undefined) {
      id = nextLossId++;
      lossIds.set(loss, id);
    }
    name = `fn#${id}`;
  } else {
    name = loss;
  }
  return `${name}|${targetShape.join(',')}`;
}

/**
 * Per-step weights of the objective Σ_t w_t · loss_t: `mask[t]` (default 1; 0 drops a
 * step's loss), divided by the (masked) number of steps, at least 1, for 'mean'.
 * @throws ShapeError when the mask does not have T entries; ArgumentError for a
 *   negative or non-finite entry or an unknown reduction.
 */
export function lossScaleOf(steps: number, mask: ArrayLike<number> | undefined, reduction: Reduction, what: string): Float64Array {
  if (reduction !== 'sum' && reduction !== 'mean') {
    throw new ArgumentError(`${what}: reduction must be 'sum' or 'mean'; got ${JSON.stringify(reduction)}`);
  }
  const scale = new Float64Array(steps).fill(1);
  if (mask !== undefined) {
    if (mask.length !== steps) throw new ShapeError(`${what}: mask must have T = ${steps} entries; got ${mask.length}`);
    for (let t = 0; t < steps; t++) {
      if (!Number.isFinite(mask[t]) || mask[t] < 0) {
        throw new ArgumentError(`${what}: mask[${t}] must be a finite number >= 0; got ${mask[t]}`);
      }
      scale[t] = mask[t];
    }
  }
  if (reduction === 'mean') {
    const div = Math.max(scale.reduce((s, v) => s + v, 0), 1);
    for (let t = 0; t < steps; t++) scale[t] /= div;
  }
  return scale;
}

/**
 * The `lossScale` argument of a native call: {@link lossScaleOf}, or undefined when every
 * weight is 1 (no mask, reduction 'sum'), which the native calls read as weight 1 at every
 * step (native/include/braintrace/api.h): the same objective, bit for bit, without a
 * T-long array per call. Checks `reduction` as lossScaleOf does.
 */
export function lossScaleArg(
  steps: number,
  mask: ArrayLike<number> | undefined,
  reduction: Reduction,
  what: string,
): Float64Array | undefined {
  if (mask === undefined && reduction === 'sum') return undefined;
  return lossScaleOf(steps, mask, reduction, what);
}
