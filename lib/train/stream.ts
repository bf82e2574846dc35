/**
 * `streamStep`: learns from one observation (x, y) as it arrives — the service
 * use case: the weights change with every observation and memory stays
 * constant (states and eligibility traces carry across calls; nothing grows).
 */
import type { Learner } from '../algorithms/learner';
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
    checkOptionKeys('streamStep: options', options, ['optimizer', 'loss', 'output'], true);
    const optimizer = checkOptimizer(options?.optimizer, 'streamStep');
    const xt = asHost('streamStep: x', x, learner.dtype);
    const want = [learner.batchSize, ...learner.inputShape];
    if (xt.shape.length !== want.length || xt.shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(`streamStep: x must have shape ${fmtShape(want)} (one step); got ${fmtShape(xt.shape)}`);
    }
    const yt = asHost('streamStep: y', y, learner.dtype);
    const wantOutput = options.output !== false;
    // Until etraceGrad is known to return outputs for this learner, compute the output first.
    const peeked = wantOutput && givesOutputs.get(learner) !== true ? peekOutput(learner, xt) : null;
    const r = (await learner.etraceGrad(
      asOneStep(xt),
      asOneStep(yt),
      { loss: options.loss ?? 'mse' },
    )) as Awaited<ReturnType<Learner['etraceGrad']>> & { outputs?: HostTensor };
    let output: HostTensor | null = peeked;
    if (r.outputs !== undefined) {
      givesOutputs.set(learner, true);
      if (wantOutput) output = { data: r.outputs.data, shape: r.outputs.shape.slice(1), dtype: r.outputs.dtype };
    }
    const info = applyGradients(learner, r.grads, optimizer);
    return { output, loss: r.losses[0], lr: info.lr, gradNorm: info.gradNorm, skipped: info.skipped === true };
  });
}
