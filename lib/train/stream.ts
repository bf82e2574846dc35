/**
 * `streamStep`: learns from one observation (x, y) as it arrives — the service
 * use case: the weights change with every observation and memory stays
 * constant (states and eligibility traces carry across calls; nothing grows).
 */
import type { GradResult, Learner, SyncGradResult } from '../algorithms/learner';
import { isBuiltinOptimizer } from '../optim/optimizers';
import { OnlineLearner } from '../algorithms/online';
import type { Loss } from '../algorithms/losses';
import { ShapeError, checkOptionKeys, fmtShape } from '../runtime/errors';
import type { HostTensor, TensorLike } from '../tensor';
import { applyGradients, asHost, asOneStep, checkOptimizer, withLearnerLock, type OptimizerLike } from './common';

/** Options of {@link streamStep}. */
export interface StreamStepOptions {
  /** The optimizer (its state persists across calls). */
  optimizer: OptimizerLike;
  /** Per-step loss (default 'mse'). */
  loss?: Loss;
  /**
   * Return the model's output for `x` (computed with the weights before this
   * update). Default true. When the learner's etraceGrad does not return
   * outputs, this costs one extra forward step plus a copy of the states (and
   * traces) to rewind; pass false to skip it.
   */
  output?: boolean;
}

/** Result of {@link streamStep}. */
export interface StreamStepResult {
  /** The output `(B, ...outputShape)` for `x` before the update (null with `output: false`). */
  output: HostTensor | null;
  /** The loss of this observation (before the update). */
  loss: number;
  /** Learning rate used by the update. */
  lr: number;
  /** Gradient norm reported by the optimizer. */
  gradNorm: number;
  /**
   * True when the update was skipped as non-finite (learner policy
   * `nonFinite: 'skipUpdate'`): the weights are unchanged.
   */
  skipped: boolean;
}

/** Learners whose etraceGrad was seen to return `outputs` (T, B, ...out). */
const givesOutputs = new WeakMap<Learner, boolean>();

/**
 * Forward output of one step without changing anything observable: runs
 * `update(x)` and rewinds states (and traces) to where they were.
 */
function peekOutput(learner: Learner, x: HostTensor): HostTensor {
  const states = learner.states();
  if (learner instanceof OnlineLearner) {
    const traces = learner.traces();
    const steps = learner.traceSteps();
    const out = learner.update(x);
    learner.setStates(states);
    learner.setTraces(traces, steps);
    return out;
  }
  const out = learner.update(x);
  learner.setStates(states);
  return out;
}

/**
 * Learns from one observation: `x` `(B, ...inputShape)`, `y` `(B, ...)` the
 * step's target. Runs etraceGrad on the one-step sequence (states and traces
 * advance by one step), then one optimizer update. Calls on the same learner
 * are queued and run in call order (a service may call this concurrently).
 * Native memory stays constant across calls.
 */
export function streamStep(
  learner: Learner,
  x: TensorLike,
  y: TensorLike,
  options: StreamStepOptions,
): Promise<StreamStepResult> {
  return withLearnerLock(learner, async () => {
    const c = checkStep(learner, x, y, options);
    // Until etraceGrad is known to return outputs for this learner, compute the output first.
    const peeked = c.wantOutput && givesOutputs.get(learner) !== true ? peekOutput(learner, c.xt) : null;
    const r = await learner.etraceGrad(asOneStep(c.xt), asOneStep(c.yt), { loss: c.loss });
    return finishStep(learner, c, peeked, r);
  });
}

/**
 * @internal {@link streamStep} run synchronously on the JS thread, for a learner whose
 * one-step etraceGrad is small enough (`learner.etraceGradSync`); the caller holds the
 * learner's queue. The same checks (thrown), native calls and result; undefined when the
 * step must run asynchronously (nothing observable happened then).
 */
export function streamStepSync(learner: Learner, x: TensorLike, y: TensorLike, options: StreamStepOptions): StreamStepResult | undefined {
  const c = checkStep(learner, x, y, options);
  // The gradients go straight into a built-in optimizer (which keeps no reference to them):
  // the learner may hand them back in its reused scratch arrays; the output only when wanted.
  // A learner may also run the optimizer's update in its native call (the result's `update`).
  const into = { scratch: isBuiltinOptimizer(c.optimizer), outputs: c.wantOutput, optimizer: c.optimizer };
  const grad = learner.etraceGradSync(asOneStep(c.xt), asOneStep(c.yt), { loss: c.loss }, into);
  if (grad === undefined) return undefined;
  const peeked = c.wantOutput && givesOutputs.get(learner) !== true ? peekOutput(learner, c.xt) : null;
  return finishStep(learner, c, peeked, grad());
}

/** The checked arguments of one stream step. */
interface CheckedStep {
  optimizer: OptimizerLike;
  xt: HostTensor;
  yt: HostTensor;
  loss: Loss;
  wantOutput: boolean;
}

/** The argument checks of {@link streamStep} (its typed errors). */
function checkStep(learner: Learner, x: TensorLike, y: TensorLike, options: StreamStepOptions): CheckedStep {
  checkOptionKeys('streamStep: options', options, STEP_OPTION_KEYS, true);
  const optimizer = checkOptimizer(options?.optimizer, 'streamStep');
  const xt = asHost('streamStep: x', x, learner.dtype);
  const want = learner.inputShape;
  const B = learner.batchSize;
  if (xt.shape.length !== want.length + 1 || xt.shape[0] !== B || want.some((d, i) => d !== xt.shape[i + 1])) {
    throw new ShapeError(`streamStep: x must have shape ${fmtShape([B, ...want])} (one step); got ${fmtShape(xt.shape)}`);
  }
  const yt = asHost('streamStep: y', y, learner.dtype);
  return { optimizer, xt, yt, loss: options.loss ?? 'mse', wantOutput: options.output !== false };
}

/** The output, then the optimizer update, of one stream step whose gradient is `r`. */
function finishStep(learner: Learner, c: CheckedStep, peeked: HostTensor | null, r: GradResult | SyncGradResult): StreamStepResult {
  const res = r as SyncGradResult;
  let output: HostTensor | null = peeked;
  if (res.outputs !== undefined) {
    givesOutputs.set(learner, true);
    if (c.wantOutput) output = { data: res.outputs.data, shape: res.outputs.shape.slice(1), dtype: res.outputs.dtype };
  }
  const info = res.update ?? applyGradients(learner, r.grads, c.optimizer);
  return { output, loss: r.losses[0], lr: info.lr, gradNorm: info.gradNorm, skipped: info.skipped === true };
}

/** The option keys of {@link StreamStepOptions}. */
const STEP_OPTION_KEYS = ['optimizer', 'loss', 'output'] as const;
