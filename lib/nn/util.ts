/**
 * Shared helpers of the layer library: argument checks that name the argument,
 * activations, per-neuron parameters (a number or one value per unit).
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { ArgumentError, ShapeError, fmtShape } from '../runtime/errors';

/** A value given for every unit: one number (homogeneous) or one per unit (heterogeneous). */
export type PerUnit = number | readonly number[];

/** @internal a positive integer, else ArgumentError naming `what`. */
export function checkPosInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ArgumentError(`${what} must be an integer >= 1; got ${describeValue(v)}`);
  }
  return v;
}

/** @internal a finite number (optionally > 0 / >= 0), else ArgumentError naming `what`. */
export function checkNum(v: unknown, what: string, range: 'any' | 'positive' | 'nonNegative' = 'any'): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ArgumentError(`${what} must be a finite number; got ${describeValue(v)}`);
  }
  if (range === 'positive' && !(v > 0)) throw new ArgumentError(`${what} must be > 0; got ${v}`);
  if (range === 'nonNegative' && !(v >= 0)) throw new ArgumentError(`${what} must be >= 0; got ${v}`);
  return v;
}

/** @internal a boolean, else ArgumentError naming `what`. */
export function checkBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new ArgumentError(`${what} must be a boolean; got ${describeValue(v)}`);
  return v;
}

/** @internal one of `choices`, else ArgumentError naming `what`. */
export function checkChoice<T extends string>(v: unknown, choices: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    throw new ArgumentError(`${what} must be one of ${choices.map((c) => `'${c}'`).join(', ')}; got ${describeValue(v)}`);
  }
  return v as T;
}

/**
 * @internal A per-unit parameter as an array of n finite numbers (a number is
 * repeated). ArgumentError / ShapeError name `what`.
 */
export function perUnit(v: unknown, n: number, what: string, range: 'any' | 'positive' | 'nonNegative' = 'any'): number[] {
  if (typeof v === 'number') {
    checkNum(v, what, range);
    return new Array<number>(n).fill(v);
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = Array.from(v as ArrayLike<number>);
    if (a.length !== n) {
      throw new ShapeError(`${what} must be a number or an array of ${n} values (one per unit); got ${a.length} values`);
    }
    a.forEach((x, i) => checkNum(x, `${what}[${i}]`, range));
    return a;
  }
  throw new ArgumentError(`${what} must be a number or an array of ${n} numbers; got ${describeValue(v)}`);
}

/** @internal A per-unit constant as an operand: a number when homogeneous, else the array. */
export function operand(a: readonly number[]): number | number[] {
  return a.every((x) => x === a[0]) ? a[0] : a.slice();
}

/** @internal exp(-dt/tau) per unit. */
export function expDecay(tau: readonly number[], dt: number): number[] {
  return tau.map((t) => Math.exp(-dt / t));
}

/** @internal 1 - dt/tau per unit (forward Euler); requires tau >= dt. */
export function eulerDecay(tau: readonly number[], dt: number, what: string): number[] {
  return tau.map((t, i) => {
    if (t < dt) throw new ArgumentError(`${what} must be >= dt = ${dt} (decay 1 - dt/tau >= 0); got ${t}${tau.length > 1 ? ` (unit ${i})` : ''}`);
    return 1 - dt / t;
  });
}

/** @internal Checks that x ends in `n` features. */
export function checkFeatures(x: Tensor, n: number, what: string): void {
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== n) {
    throw new ShapeError(`${what} must have shape (..., ${n}) (last axis = ${n} features); got ${fmtShape(x.shape)}`);
  }
}

/** @internal Checks a (B, n) tensor. */
export function checkBatched(x: Tensor, n: number, what: string): void {
  if (x.ndim !== 2 || x.shape[1] !== n) {
    throw new ShapeError(`${what} must have shape (B, ${n}); got ${fmtShape(x.shape)}`);
  }
}

/** Names of the built-in activations. */
export const ACTIVATIONS = ['tanh', 'relu', 'sigmoid', 'identity', 'gelu', 'softplus', 'elu', 'leakyRelu'] as const;
/** An activation: a built-in name or a function of a tensor. */
export type Activation = (typeof ACTIVATIONS)[number] | ((x: Tensor) => Tensor);

/** @internal Resolves an activation (ArgumentError naming `what`). */
export function resolveActivation(a: unknown, what: string): (x: Tensor) => Tensor {
  if (typeof a === 'function') return a as (x: Tensor) => Tensor;
  const name = checkChoice(a, ACTIVATIONS, what);
  switch (name) {
    case 'tanh':
      return (x) => bt.tanh(x);
    case 'relu':
      return (x) => bt.relu(x);
    case 'sigmoid':
      return (x) => bt.sigmoid(x);
    case 'identity':
      return (x) => x;
    case 'gelu':
      return (x) => bt.gelu(x);
    case 'softplus':
      return (x) => bt.softplus(x);
    case 'elu':
      return (x) => bt.elu(x);
    case 'leakyRelu':
      return (x) => bt.leakyRelu(x);
  }
}

/** @internal Checks an optional initialiser option. */
export function checkInit(v: unknown, what: string): bt.Initializer | number | undefined {
  if (v === undefined || typeof v === 'function') return v as bt.Initializer | undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  throw new ArgumentError(`${what} must be an Initializer (e.g. bt.init.normal()) or a number; got ${describeValue(v)}`);
}


/** @internal A surrogate-like object check. */
export function checkSurrogate(v: unknown, what: string): bt.Surrogate {
  if (typeof v !== 'object' || v === null || typeof (v as bt.Surrogate).kind !== 'string' || !Array.isArray((v as bt.Surrogate).params)) {
    throw new ArgumentError(`${what} must be a Surrogate (e.g. bt.surrogate.sigmoid()); got ${describeValue(v)}`);
  }
  return v as bt.Surrogate;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object' && v !== null) return `an object (${v.constructor?.name ?? 'Object'})`;
  return String(v);
}
