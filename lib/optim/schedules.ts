/**
 * Learning-rate schedules: host scalars, not kernels. A schedule is a function of the
 * optimizer's step count `t` (steps taken so far: 0 for the first step) returning the
 * learning rate of the next step, as PyTorch's closed forms do with `last_epoch = t`.
 * Pass one as the `lr` option of any optimizer: `new Adam({ lr: cosineLR({ lr: 1e-3, tMax: 1000 }) })`.
 */
import { ArgumentError, checkOptionKeys } from '../runtime/errors';
import { describe } from '../tensor';

/** A learning-rate schedule: step count `t` (integer >= 0) → learning rate (finite, >= 0). */
export type Schedule = (step: number) => number;

/** Options of {@link stepLR}. */
export interface StepLROptions {
  /** Initial learning rate (finite, >= 0). */
  lr: number;
  /** Steps between decays (integer >= 1). */
  stepSize: number;
  /** Multiplicative decay per period (finite, >= 0; default 0.1 as in PyTorch). */
  gamma?: number;
}

/** Options of {@link exponentialLR}. */
export interface ExponentialLROptions {
  /** Initial learning rate (finite, >= 0). */
  lr: number;
  /** Multiplicative decay per step (finite, >= 0). */
  gamma: number;
}

/** Options of {@link cosineLR}. */
export interface CosineLROptions {
  /** Initial (maximum) learning rate (finite, >= 0). */
  lr: number;
  /** Steps of the half cosine (integer >= 1). */
  tMax: number;
  /** Final (minimum) learning rate (finite, >= 0, default 0). */
  minLr?: number;
}

/** Checks a finite number >= 0 (`what` names the option). */
export function checkRate(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ArgumentError(`${what}: expected a finite number >= 0; got ${describe(v)}`);
  }
  return v;
}

function checkPositiveInt(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ArgumentError(`${what}: expected an integer >= 1; got ${describe(v)}`);
  }
  return v;
}


function checkStep(what: string, t: unknown): number {
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) {
    throw new ArgumentError(`${what}: step must be an integer >= 0; got ${describe(t)}`);
  }
  return t;
}

/**
 * Step decay (PyTorch `StepLR`): `lr(t) = lr · gamma^floor(t / stepSize)`.
 * @throws ArgumentError naming the option (`stepLR: stepSize ...`).
 */
export function stepLR(options: StepLROptions): Schedule {
  const o = checkOptionKeys('stepLR', options, ['lr', 'stepSize', 'gamma'], true);
  const lr = checkRate('stepLR: lr', o.lr);
  const stepSize = checkPositiveInt('stepLR: stepSize', o.stepSize);
  const gamma = checkRate('stepLR: gamma', o.gamma ?? 0.1);
  return (t: number) => lr * gamma ** Math.floor(checkStep('stepLR', t) / stepSize);
}

/**
 * Exponential decay (PyTorch `ExponentialLR`): `lr(t) = lr · gamma^t`.
 * @throws ArgumentError naming the option.
 */
export function exponentialLR(options: ExponentialLROptions): Schedule {
  const o = checkOptionKeys('exponentialLR', options, ['lr', 'gamma'], true);
  const lr = checkRate('exponentialLR: lr', o.lr);
  const gamma = checkRate('exponentialLR: gamma', o.gamma);
  return (t: number) => lr * gamma ** checkStep('exponentialLR', t);
}

/**
 * Cosine annealing (PyTorch `CosineAnnealingLR`, closed form, no restarts):
 * `lr(t) = minLr + (lr − minLr) · (1 + cos(π · min(t, tMax) / tMax)) / 2`.
 * It starts at `lr`, reaches `minLr` at `t = tMax` and stays there (PyTorch's closed form
 * would rise again after tMax; holding the minimum is what a single annealing run wants).
 * @throws ArgumentError naming the option.
 */
export function cosineLR(options: CosineLROptions): Schedule {
  const o = checkOptionKeys('cosineLR', options, ['lr', 'tMax', 'minLr'], true);
  const lr = checkRate('cosineLR: lr', o.lr);
  const tMax = checkPositiveInt('cosineLR: tMax', o.tMax);
  const minLr = checkRate('cosineLR: minLr', o.minLr ?? 0);
  return (t: number) => {
    const tc = Math.min(checkStep('cosineLR', t), tMax);
    return minLr + ((lr - minLr) * (1 + Math.cos((Math.PI * tc) / tMax))) / 2;
  };
}
