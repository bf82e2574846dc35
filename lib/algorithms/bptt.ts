/**
 * Backpropagation through time: the exact baseline every online algorithm is
 * measured against.
 */
import type { Module } from '../dsl/module';
import type { TensorLike } from '../tensor';
import { Learner, signalOf, type CompileOptions, type GradOptions, type GradResult, type SyncGradInto, type SyncGradResult } from './learner';

/**
 * Exact gradients by reverse mode through the whole `(T, B, ...)` sequence.
 *
 * `etraceGrad(xs, ys)` runs the T steps forward and back in one native call,
 * keeping every intermediate value of every step (memory O(T · graph size));
 * the objective is Σ_t w_t · loss_t with w_t = 1 ('sum') or 1/T ('mean').
 * Its gradients are the reference for the online algorithms. Use:
 * `bt.compile(model, bt.BPTT, { inputShape, batchSize, dtype, seed })`.
 */
export class BPTT extends Learner {
  /** Creates a BPTT learner (prefer `bt.compile(model, bt.BPTT, options)`). */
  constructor(model: Module, options: CompileOptions) {
    super(model, options);
  }

  /**
   * Exact gradients of the sequence loss with respect to every weight.
   * @param xs inputs `(T, B, ...inputShape)`.
   * @param ys targets `(T, B, ...)`: the output's shape per step for 'mse' and
   *   'sumSquares', one-hot `(T, B, C)` or class indices `(T, B)` for
   *   'crossEntropy', anything the custom loss function reads otherwise.
   * @param options `loss`, `reduction`, `mask`; `signal` cancels the native call in flight
   *   (forward or reverse sweep): it rejects with AbortError (`stepsDone` 0) and the
   *   states are unchanged, as before the call (BPTT writes nothing back until its reverse
   *   sweep has finished); `onProgress({ done, total })` counts T forward then T reverse
   *   steps (total 2T). Under `nonFinite: 'error'` a non-finite value in `xs` / `ys`, a
   *   non-finite loss (its step) or gradient (the step of the reverse sweep that made it
   *   non-finite) rejects with NonFiniteError; the states are then unchanged too.
   * @returns `{ grads, losses }`: a gradient per weight path, and the T per-step losses.
   */
  etraceGrad(xs: TensorLike, ys: TensorLike, options: GradOptions = {}): Promise<GradResult> {
    return this.enqueue('etraceGrad', () => this.bpttGrad(xs, ys, options), signalOf(options));
  }

  /** @internal The synchronous form of {@link etraceGrad} for small calls (see `Learner.etraceGradSync`). */
  override etraceGradSync(xs: TensorLike, ys: TensorLike, options: GradOptions = {}, _into?: SyncGradInto): (() => SyncGradResult) | undefined {
    return this.bpttGradSync(xs, ys, options); // fresh arrays, outputs included (`_into` allows both)
  }
}
