/**
 * Input wrappers that decide between one step and a window of steps, as in
 * the reference: a {@link MultiStepData} argument makes a call run over its
 * leading time axis; {@link SingleStepData} (or a plain tensor) is one step.
 */
import type { TensorLike } from '../tensor';

/** One step's input, shape `(B, ...)`. A plain tensor argument means the same. */
export class SingleStepData {
  /** @param data the step's input `(B, ...)`. */
  constructor(readonly data: TensorLike) {}
}

/** A window of steps, time-major `(T, B, ...)`; every MultiStepData of one call shares T. */
export class MultiStepData {
  /** @param data the inputs of T steps `(T, B, ...)`. */
  constructor(readonly data: TensorLike) {}
}

/** An argument of the executor: a plain tensor (one step) or a wrapper. */
export type StepArg = TensorLike | SingleStepData | MultiStepData;

/** True when any argument is a {@link MultiStepData}. */
export function hasMultiStepData(args: readonly StepArg[]): boolean {
  return args.some((a) => a instanceof MultiStepData);
}
