/**
 * Surrogate-gradient functions for the Spike op.
 *
 * A spike is `s = H(u)` (Heaviside: 1 if u > 0 else 0) in the forward pass;
 * its derivative is replaced by a smooth surrogate g'(u) in every JVP/VJP.
 * Each factory returns a {@link Surrogate}: the kind (ints[0] of the Spike
 * node), its parameters in the order of `native/include/braintrace/ops.h`
 * (floats of the Spike node) and a TypeScript `derivative(u)` used by tests
 * as the oracle of the native implementation. N(u; m, sd) is the normal
 * density with mean m and standard deviation sd.
 */
import { SURROGATE_NAMES, type SurrogateKind } from '../graph/ops';
import { ArgumentError } from '../runtime/errors';

/** A surrogate gradient: its kind, its parameters (ops.h order) and its derivative. */
export interface Surrogate {
  /** Which surrogate (its index in SURROGATE_NAMES is the Spike node's ints[0]). */
  readonly kind: SurrogateKind;
  /** Parameters in ops.h order (the Spike node's floats). */
  readonly params: number[];
  /** g'(u): the surrogate derivative at membrane value `u` (host reference, for tests). */
  derivative(u: number): number;
}

function num(v: unknown, what: string, positive = true): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
    throw new ArgumentError(`surrogate.${what} must be a finite${positive ? ' positive' : ''} number; got ${String(v)}`);
  }
  return v;
}

/** Normal density N(u; m, sd). */
function gauss(u: number, m: number, sd: number): number {
  const z = (u - m) / sd;
  return Math.exp(-0.5 * z * z) / (sd * Math.sqrt(2 * Math.PI));
}

/** Index of a surrogate kind (the Spike node's ints[0]). */
export function surrogateCode(kind: SurrogateKind): number {
  const i = SURROGATE_NAMES.indexOf(kind);
  if (i < 0) throw new ArgumentError(`surrogate: unknown kind ${JSON.stringify(kind)}; expected one of ${SURROGATE_NAMES.join(', ')}`);
  return i;
}

/** Sigmoid surrogate: g'(u) = α·s·(1 − s), s = sigmoid(α u). Default α = 4. */
export function sigmoid(opts: { alpha?: number } = {}): Surrogate {
  const alpha = num(opts.alpha ?? 4, 'sigmoid: alpha');
  return {
    kind: 'sigmoid',
    params: [alpha],
    derivative(u) {
      const s = 1 / (1 + Math.exp(-alpha * u));
      return alpha * s * (1 - s);
    },
  };
}

/** Arctan surrogate: g'(u) = (α/2) / (1 + (π/2·α·u)²). Default α = 2. */
export function arctan(opts: { alpha?: number } = {}): Surrogate {
  const alpha = num(opts.alpha ?? 2, 'arctan: alpha');
  return {
    kind: 'arctan',
    params: [alpha],
    derivative(u) {
      const z = (Math.PI / 2) * alpha * u;
      return alpha / 2 / (1 + z * z);
    },
  };
}

/** ReLU-shaped (triangular) surrogate: g'(u) = α·max(width − |u|, 0). Defaults α = 0.3, width = 1. */
export function reluGrad(opts: { alpha?: number; width?: number } = {}): Surrogate {
  const alpha = num(opts.alpha ?? 0.3, 'reluGrad: alpha');
  const width = num(opts.width ?? 1, 'reluGrad: width');
  return {
    kind: 'reluGrad',
    params: [alpha, width],
    derivative: (u) => alpha * Math.max(width - Math.abs(u), 0),
  };
}

/** Gaussian surrogate: g'(u) = α·N(u; 0, σ). Defaults σ = 0.5, α = 0.5. */
export function gaussianGrad(opts: { sigma?: number; alpha?: number } = {}): Surrogate {
  const sigma = num(opts.sigma ?? 0.5, 'gaussianGrad: sigma');
  const alpha = num(opts.alpha ?? 0.5, 'gaussianGrad: alpha');
  return {
    kind: 'gaussianGrad',
    params: [sigma, alpha],
    derivative: (u) => alpha * gauss(u, 0, sigma),
  };
}

/**
 * Piecewise quadratic surrogate: g'(u) = α − α²|u| if |u| < 1/α, else 0.
 * Default α = 1.
 */
export function piecewiseQuadratic(opts: { alpha?: number } = {}): Surrogate {
  const alpha = num(opts.alpha ?? 1, 'piecewiseQuadratic: alpha');
  return {
    kind: 'piecewiseQuadratic',
    params: [alpha],
    derivative: (u) => (Math.abs(u) < 1 / alpha ? alpha - alpha * alpha * Math.abs(u) : 0),
  };
}

/**
 * Multi-Gaussian surrogate (Yin et al. 2021):
 * g'(u) = scale·((1 + h)·N(u; 0, σ) − h·N(u; σ, s·σ) − h·N(u; −σ, s·σ)).
 * Defaults h = 0.15, s = 6, σ = 0.5, scale = 0.5.
 */
export function multiGaussian(opts: { h?: number; s?: number; sigma?: number; scale?: number } = {}): Surrogate {
  const h = num(opts.h ?? 0.15, 'multiGaussian: h', false);
  const s = num(opts.s ?? 6, 'multiGaussian: s');
  const sigma = num(opts.sigma ?? 0.5, 'multiGaussian: sigma');
  const scale = num(opts.scale ?? 0.5, 'multiGaussian: scale');
  return {
    kind: 'multiGaussian',
    params: [h, s, sigma, scale],
    derivative: (u) =>
      scale * ((1 + h) * gauss(u, 0, sigma) - h * gauss(u, sigma, s * sigma) - h * gauss(u, -sigma, s * sigma)),
  };
}

/** The default surrogate of `spike()`: sigmoid with α = 4. */
export function defaultSurrogate(): Surrogate {
  return sigmoid();
}

/** Number of parameters of each surrogate kind (ops.h `kSurrogateParamCount`). */
export const SURROGATE_PARAM_COUNT: Readonly<Record<SurrogateKind, number>> = {
  sigmoid: 1,
  arctan: 1,
  reluGrad: 2,
  gaussianGrad: 2,
  piecewiseQuadratic: 1,
  multiGaussian: 4,
};
