/**
 * Linear layers: the dense ETP projection (with optional fixed connectivity
 * mask, weight function and Dale's-law sign constraint) and the leaky rate
 * readout.
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { checkOptionKeys } from '../runtime/errors';
import { ArgumentError, ShapeError, fmtShape } from '../runtime/errors';
import { isHostTensor, type HostTensor } from '../tensor';
import { checkBool, checkFeatures, checkInit, checkPosInt, eulerDecay, operand, perUnit, type PerUnit } from './util';

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Learnable bias `b (out,)` (default true); it is the ETP op's bias input. */
  bias?: boolean;
  /** Weight initialiser (default `init.kaimingNormal()`), or a constant. */
  wInit?: bt.Initializer | number;
  /** Bias initialiser (default zeros), or a constant. */
  bInit?: bt.Initializer | number;
  /** Fixed 0/1 connectivity `(in, out)`: W_eff = W ∘ mask. */
  mask?: readonly (readonly number[])[] | HostTensor;
  /** A function of the weight tensor (traced), W_eff = weightFn(W); must keep the shape (in, out). */
  weightFn?: (w: Tensor) => Tensor;
  /** Per input unit +1 (excitatory) / −1 (inhibitory): Dale's law, W_eff[i, :] = |W[i, :]| · sign[i]. */
  sign?: readonly number[];
}

const LINEAR_KEYS = ['bias', 'wInit', 'bInit', 'mask', 'weightFn', 'sign'];

/**
 * Dense projection `y = x · W_eff + b`, x `(..., in)` → y `(..., out)`.
 *
 * State variables: `weight (in, out)` and, with `bias`, `bias (out,)` — both
 * ParamState; no short-term state.
 *
 * The matmul is an ETP op (`EtpMatMul`): when its output reaches a hidden state
 * without passing through another weight op, the eligibility-trace compiler
 * records a relation `<path>.weight@k` (+ bias `<path>.bias`) with trace
 * `(B, in, out, S)` under D_RTRL. Used as a readout of hidden states only it is
 * a non-temporal parameter (`RELATION_EXCLUDED_NON_TEMPORAL`).
 *
 * Transformed weights: with `weightFn`, `sign` or `mask` the weight given to
 * `bt.matmul` is W_eff = mask ∘ (sign ⊙ |weightFn(W)|) (applied in that order:
 * weightFn, then sign, then mask), a tensor computed from exactly one
 * ParamState. The compiler records it as an EtpMatMul with a *transformed*
 * weight (`explain()` prints `EtpMatMul(fc.weight transformed + bias fc.bias)`).
 * BPTT differentiates through the transform; the online learners (D_RTRL,
 * pp_prop) currently reject it at compile time with NotSupportedError naming
 * the relation and the weight path (the native trace rule does not yet chain
 * the gradient through the transform).
 */
export class Linear extends bt.Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** The weight W `(in, out)`. */
  weight: bt.ParamState;
  /** The bias b `(out,)` (absent with `bias: false`). */
  bias?: bt.ParamState;
  private readonly maskData: HostTensor | null;
  private readonly signData: number[] | null;
  private readonly weightFn: ((w: Tensor) => Tensor) | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    const o = checkOptionKeys('Linear', options, LINEAR_KEYS);
    this.inFeatures = checkPosInt(inFeatures, 'Linear: inFeatures');
    this.outFeatures = checkPosInt(outFeatures, 'Linear: outFeatures');
    const wInit = checkInit(o.wInit, 'Linear: wInit') ?? bt.init.kaimingNormal();
    this.weight =
      typeof wInit === 'number' ? new bt.ParamState(wInit, [inFeatures, outFeatures]) : new bt.ParamState(wInit, [inFeatures, outFeatures]);
    const useBias = o.bias === undefined ? true : checkBool(o.bias, 'Linear: bias');
    if (useBias) {
      const bInit = checkInit(o.bInit, 'Linear: bInit') ?? bt.init.zeros();
      this.bias = typeof bInit === 'number' ? new bt.ParamState(bInit, [outFeatures]) : new bt.ParamState(bInit, [outFeatures]);
    } else if (o.bInit !== undefined) {
      throw new ArgumentError('Linear: bInit is given but bias is false');
    }
    this.maskData = o.mask === undefined ? null : checkMask(o.mask, inFeatures, outFeatures);
    if (o.sign !== undefined) {
      const s = perUnit(o.sign, inFeatures, 'Linear: sign');
      if (!Array.isArray(o.sign)) throw new ArgumentError('Linear: sign must be an array of +1 / -1 (one per input unit)');
      s.forEach((v, i) => {
        if (v !== 1 && v !== -1) throw new ArgumentError(`Linear: sign[${i}] must be +1 or -1; got ${v}`);
      });
      this.signData = s;
    } else {
      this.signData = null;
    }
    if (o.weightFn !== undefined && typeof o.weightFn !== 'function') {
      throw new ArgumentError('Linear: weightFn must be a function (w: Tensor) => Tensor');
    }
    this.weightFn = (o.weightFn as ((w: Tensor) => Tensor) | undefined) ?? null;
  }

  /** True when the weight given to matmul is a transform of the ParamState (mask, sign or weightFn). */
  get transformed(): boolean {
    return this.maskData !== null || this.signData !== null || this.weightFn !== null;
  }

  /** The effective weight: the ParamState itself, or its transform (traced). */
  effectiveWeight(): bt.ParamState | Tensor {
    if (!this.transformed) return this.weight;
    let w: Tensor = this.weight.value;
    if (this.weightFn !== null) {
      const r = this.weightFn(w);
      if (!(r instanceof bt.Tensor)) throw new ArgumentError('Linear: weightFn must return a Tensor');
      if (r.ndim !== 2 || r.shape[0] !== this.inFeatures || r.shape[1] !== this.outFeatures) {
        throw new ShapeError(
          `Linear: weightFn must keep the weight's shape (${this.inFeatures}, ${this.outFeatures}); got ${fmtShape(r.shape)}`,
        );
      }
      w = r;
    }
    if (this.signData !== null) w = bt.mul(bt.abs(w), this.signData.map((s) => [s]));
    if (this.maskData !== null) w = bt.mul(w, this.maskData);
    return w;
  }

  /** y = x · W_eff + b; x `(..., in)` → `(..., out)`. */
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inFeatures, 'Linear.forward: x');
    return this.bias === undefined ? bt.matmul(x, this.effectiveWeight()) : bt.matmul(x, this.effectiveWeight(), this.bias);
  }

  /** Same as {@link forward} (a Linear can be compiled on its own). */
  update(x: Tensor): Tensor {
    return this.forward(x);
  }
}

function checkMask(m: unknown, I: number, O: number): HostTensor {
  let data: number[];
  let shape: number[];
  if (isHostTensor(m)) {
    data = Array.from(m.data);
    shape = m.shape.slice();
  } else if (Array.isArray(m) && m.every((r) => Array.isArray(r))) {
    shape = [m.length, m.length > 0 ? (m[0] as unknown[]).length : 0];
    if ((m as unknown[][]).some((r) => r.length !== shape[1])) {
      throw new ShapeError('Linear: mask rows must all have the same length');
    }
    data = (m as unknown[][]).flat() as number[];
  } else {
    throw new ArgumentError('Linear: mask must be a number[][] or a HostTensor of shape (inFeatures, outFeatures)');
  }
  if (shape.length !== 2 || shape[0] !== I || shape[1] !== O) {
    throw new ShapeError(`Linear: mask must have shape (${I}, ${O}) = (inFeatures, outFeatures); got ${fmtShape(shape)}`);
  }
  data.forEach((v, i) => {
    if (v !== 0 && v !== 1) throw new ArgumentError(`Linear: mask must hold only 0 and 1; got ${String(v)} at flat index ${i}`);
  });
  return { data: Float64Array.from(data), shape, dtype: 'float64' };
}

/** Options of {@link LeakyRateReadout}. */
export interface LeakyRateReadoutOptions {
  /** Time constant τ (default 5), a number or one per output unit; must be >= dt. */
  tau?: PerUnit;
  /** Time step (default 1). */
  dt?: number;
  /** Weight initialiser (default `init.kaimingNormal()`). */
  wInit?: bt.Initializer | number;
  /** Initial value of r (default zeros). */
  rInit?: bt.Initializer | number;
}

/**
 * Leaky rate readout (the reference's `LeakyRateReadout`):
 *
 *   r' = (1 − dt/τ) ⊙ r + x · W,   x `(B, in)`, W `(in, out)`, returns r' `(B, out)`.
 *
 * State variables: `r` (HiddenState `(out,)`), `weight` (ParamState). The
 * decay is forward Euler (the reference uses exp(−dt/τ)); τ may differ per unit.
 *
 * Eligibility traces: `weight` is an EtpMatMul whose output enters r' through
 * an element-wise tail, so it is a relation to r's group (`weight@0 -> [r]`,
 * S = 1, D = diag(1 − dt/τ)): D_RTRL is exact for this layer. Alone it is its
 * own group; behind a spiking layer it stays a separate group (connected to the
 * neurons only through its weight).
 */
export class LeakyRateReadout extends bt.Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output units. */
  readonly outFeatures: number;
  /** W `(in, out)`. */
  weight: bt.ParamState;
  /** r `(B, out)`. */
  r: bt.HiddenState;
  private readonly decay: number | number[];

  constructor(inFeatures: number, outFeatures: number, options: LeakyRateReadoutOptions = {}) {
    super();
    const o = checkOptionKeys('LeakyRateReadout', options, ['tau', 'dt', 'wInit', 'rInit']);
    this.inFeatures = checkPosInt(inFeatures, 'LeakyRateReadout: inFeatures');
    this.outFeatures = checkPosInt(outFeatures, 'LeakyRateReadout: outFeatures');
    const dt = o.dt === undefined ? 1 : (checkPositive(o.dt, 'LeakyRateReadout: dt') as number);
    const tau = perUnit(o.tau ?? 5, outFeatures, 'LeakyRateReadout: tau', 'positive');
    this.decay = operand(eulerDecay(tau, dt, 'LeakyRateReadout: tau'));
    const wInit = checkInit(o.wInit, 'LeakyRateReadout: wInit') ?? bt.init.kaimingNormal();
    this.weight = new bt.ParamState(wInit as bt.Initializer, [inFeatures, outFeatures]);
    this.r = new bt.HiddenState([outFeatures], checkInit(o.rInit, 'LeakyRateReadout: rInit'));
  }

  /** r' = (1 − dt/τ) r + x W; returns r' `(B, out)`. */
  update(x: Tensor): Tensor {
    checkFeatures(x, this.inFeatures, 'LeakyRateReadout.update: x');
    const r = bt.add(bt.mul(this.r.value, this.decay), bt.matmul(x, this.weight));
    this.r.value = r;
    return r;
  }
}

function checkPositive(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ArgumentError(`${what} must be a finite number > 0; got ${String(v)}`);
  }
  return v;
}
