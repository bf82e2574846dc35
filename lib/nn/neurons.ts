/**
 * Spiking neuron models (the reference's brainpy.state LIF / ALIF and the GIF
 * of its examples). Per-sample shape `(n,)`; every numeric parameter is a
 * number or one value per neuron (heterogeneous time constants, thresholds).
 *
 * Step order (as in brainpy.state): the spike of the *previous* step is read
 * from the state, s = H((V − V_th)/(V_th − V_reset)); the spike-triggered
 * resets are applied; then the membrane (and the other internal variables)
 * integrate one exponential-Euler step with decay α = exp(−dt/τ):
 *
 *   V' = α V_r + (1 − α)(V_rest + R·I) + Δ
 *
 * where I is the current input and Δ an optional delta (instant voltage jump)
 * input. The layer returns the spike of the new membrane, H((V' − V_th)/(V_th − V_reset)),
 * computed with the surrogate derivative.
 *
 * Reset: 'soft' V_r = V − (V_th − V_reset)·s (subtract the threshold when
 * V_reset = 0); 'hard' V_r = V·(1 − s) + V_reset·s. The reference's hard reset
 * detaches V in the product, V − (sg(V) − V_reset)·s, which makes ∂V_r/∂V = 1
 * after a spike; ours is the exact derivative of the piecewise-smooth map.
 * `detachReset` applies `stopGradient` to the reset spike (all spike-triggered
 * updates), so no surrogate derivative flows through the reset.
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { ArgumentError, checkOptionKeys } from '../runtime/errors';
import {
  checkBatched,
  checkBool,
  checkChoice,
  checkInit,
  checkNum,
  checkPosInt,
  checkSurrogate,
  expDecay,
  operand,
  perUnit,
  type PerUnit,
} from './util';

/** Options shared by the neuron models. */
export interface NeuronOptions {
  /** Membrane time constant τ (default 10; GIF 20). */
  tauMem?: PerUnit;
  /** Threshold V_th (default 1). */
  vTh?: PerUnit;
  /** Reset potential V_reset (default 0); must be < V_th. */
  vReset?: PerUnit;
  /** Resting potential V_rest (default 0). */
  vRest?: PerUnit;
  /** Membrane resistance R (default 1). */
  R?: PerUnit;
  /** 'soft' (default): subtract V_th − V_reset; 'hard': set to V_reset. */
  reset?: 'soft' | 'hard';
  /** Surrogate gradient of the spike (default `surrogate.sigmoid()`). */
  surrogate?: bt.Surrogate;
  /** stopGradient on the reset spike (default false). */
  detachReset?: boolean;
  /** Time step (default 1). */
  dt?: number;
  /** Initial membrane potential (default zeros). */
  vInit?: bt.Initializer | number;
}

const NEURON_KEYS = ['tauMem', 'vTh', 'vReset', 'vRest', 'R', 'reset', 'surrogate', 'detachReset', 'dt', 'vInit'];

/** @internal Parsed common neuron parameters. */
interface Common {
  alpha: number | number[];
  oneMinusAlpha: number | number[];
  vTh: number | number[];
  vReset: number | number[];
  vRest: number | number[];
  R: number | number[];
  scale: number | number[];
  hard: boolean;
  surrogate: bt.Surrogate;
  detachReset: boolean;
  dt: number;
  vInit: bt.Initializer | number | undefined;
}

function parseCommon(n: number, o: Record<string, unknown>, who: string, tauDefault: number): Common {
  const dt = o.dt === undefined ? 1 : checkNum(o.dt, `${who}: dt`, 'positive');
  const tau = perUnit(o.tauMem ?? tauDefault, n, `${who}: tauMem`, 'positive');
  const vTh = perUnit(o.vTh ?? 1, n, `${who}: vTh`);
  const vReset = perUnit(o.vReset ?? 0, n, `${who}: vReset`);
  vTh.forEach((t, i) => {
    if (!(t > vReset[i])) throw new ArgumentError(`${who}: vTh must be > vReset (unit ${i}: vTh ${t}, vReset ${vReset[i]})`);
  });
  const alpha = expDecay(tau, dt);
  return {
    alpha: operand(alpha),
    oneMinusAlpha: operand(alpha.map((a) => 1 - a)),
    vTh: operand(vTh),
    vReset: operand(vReset),
    vRest: operand(perUnit(o.vRest ?? 0, n, `${who}: vRest`)),
    R: operand(perUnit(o.R ?? 1, n, `${who}: R`)),
    scale: operand(vTh.map((t, i) => 1 / (t - vReset[i]))),
    hard: checkChoice(o.reset ?? 'soft', ['soft', 'hard'] as const, `${who}: reset`) === 'hard',
    surrogate: checkSurrogate(o.surrogate ?? bt.surrogate.sigmoid(), `${who}: surrogate`),
    detachReset: o.detachReset === undefined ? false : checkBool(o.detachReset, `${who}: detachReset`),
    dt,
    vInit: checkInit(o.vInit, `${who}: vInit`),
  };
}

/** Base of the neuron models: the shared membrane equation and reset. */
abstract class Neuron extends bt.Module {
  /** Number of neurons n (per-sample shape `(n,)`). */
  readonly size: number;
  /** @internal */
  protected readonly p: Common;
  /** Membrane potential V `(B, n)`. */
  v: bt.HiddenState;

  protected constructor(n: number, o: Record<string, unknown>, who: string, tauDefault: number) {
    super();
    this.size = checkPosInt(n, `${who}: n`);
    this.p = parseCommon(n, o, who, tauDefault);
    this.v = new bt.HiddenState([n], this.p.vInit);
  }

  /** The effective threshold (V_th, plus adaptation in ALIF) for the given state values. */
  protected threshold(): Tensor | number | number[] {
    return this.p.vTh;
  }

  /**
   * The spike H((v − θ)/(V_th − V_reset)) with the surrogate derivative.
   * Without arguments: the spike of the current state (the previous step's
   * output), read from V (and a for ALIF).
   */
  getSpike(v?: Tensor, threshold?: Tensor | number | number[]): Tensor {
    const vv = v ?? this.v.value;
    const th = threshold ?? this.threshold();
    return bt.spike(bt.mul(bt.sub(vv, th), this.p.scale), this.p.surrogate);
  }

  /** @internal the reset spike (detached with `detachReset`). */
  protected resetSpike(): Tensor {
    const s = this.getSpike();
    return this.p.detachReset ? bt.stopGradient(s) : s;
  }

  /** @internal V after the reset by spike s. */
  protected resetV(v: Tensor, s: Tensor): Tensor {
    if (this.p.hard) return bt.add(bt.mul(v, bt.sub(1, s)), bt.mul(s, this.p.vReset));
    return bt.sub(v, bt.mul(s, bt.sub(this.p.vTh, this.p.vReset)));
  }

  /** @internal one exponential-Euler step of V from vR with input current `current` and delta input. */
  protected integrate(vR: Tensor, current: Tensor | number, delta?: Tensor): Tensor {
    const drive = bt.add(this.p.vRest, bt.mul(current, this.p.R));
    let v = bt.add(bt.mul(vR, this.p.alpha), bt.mul(drive, this.p.oneMinusAlpha));
    if (delta !== undefined) v = bt.add(v, delta);
    return v;
  }

  /** @internal input checks. */
  protected checkInputs(current: Tensor | number, delta: Tensor | undefined, who: string): void {
    if (typeof current !== 'number') {
      if (!(current instanceof bt.Tensor)) throw new ArgumentError(`${who}.update: current must be a Tensor (B, ${this.size}) or a number`);
      checkBatched(current, this.size, `${who}.update: current`);
    } else {
      checkNum(current, `${who}.update: current`);
    }
    if (delta !== undefined) checkBatched(delta, this.size, `${who}.update: delta`);
  }

  /**
   * One step with input current `(B, n)` (and an optional delta input `(B, n)`
   * added to V after integration); returns the spikes `(B, n)`.
   */
  abstract override update(current?: Tensor | number, delta?: Tensor): Tensor;
}

/** Options of {@link LIF}. */
export interface LIFOptions extends NeuronOptions {
  /**
   * Refractory period in steps (integer >= 1). Adds a State `refCount`
   * (steps left): while it is > 0 the membrane is held at its reset value and
   * the neuron cannot spike.
   */
  refractory?: number;
}

/**
 * Leaky integrate-and-fire neuron:
 *
 *   s = H((V − V_th)/(V_th − V_reset)),  V_r = reset(V, s),
 *   V' = α V_r + (1 − α)(V_rest + R·I) + Δ,  α = exp(−dt/τ_mem),  returns H((V' − V_th)/(V_th − V_reset)).
 *
 * State variables: `v` (HiddenState `(n,)`); with `refractory` also
 * `refCount` (State `(n,)`, not traced by eligibility traces).
 *
 * Eligibility traces: V is a one-state group (S = 1) with
 * D = α·∂V_r/∂V (including the surrogate term of the reset unless detached);
 * a weight whose product drives I (or Δ) through element-wise ops is a
 * relation to it. With no recurrent weight D_RTRL equals BPTT.
 */
export class LIF extends Neuron {
  /** Refractory counter (steps left), present with `refractory`. */
  refCount?: bt.State;
  private readonly refractory: number;

  constructor(n: number, options: LIFOptions = {}) {
    const o = checkOptionKeys('LIF', options, [...NEURON_KEYS, 'refractory']);
    super(n, o, 'LIF', 10);
    if (o.refractory !== undefined) {
      this.refractory = checkPosInt(o.refractory, 'LIF: refractory');
      this.refCount = new bt.State([n]);
    } else {
      this.refractory = 0;
    }
  }

  update(current: Tensor | number = 0, delta?: Tensor): Tensor {
    this.checkInputs(current, delta, 'LIF');
    const s = this.resetSpike();
    const vR = this.resetV(this.v.value, s);
    let v = this.integrate(vR, current, delta);
    if (this.refCount !== undefined) {
      const count = this.refCount.value;
      const inRef = bt.gt(count, 0);
      v = bt.where(inRef, vR, v);
      const out = this.getSpike(v);
      this.refCount.value = bt.where(bt.gt(out, 0), this.refractory, bt.maximum(bt.sub(count, 1), 0));
      this.v.value = v;
      return out;
    }
    this.v.value = v;
    return this.getSpike(v);
  }
}

/** Options of {@link ALIF}. */
export interface ALIFOptions extends NeuronOptions {
  /** Adaptation time constant τ_a (default 100). */
  tauAdapt?: PerUnit;
  /** Adaptation strength β: threshold V_th + β·a (default 0.1). */
  beta?: PerUnit;
  /** Initial adaptation a (default zeros). */
  aInit?: bt.Initializer | number;
}

/**
 * Adaptive LIF (brainpy.state ALIF):
 *
 *   s = H((V − V_th − β a)/(V_th − V_reset)),  V_r = reset(V, s),  a_r = a + s,
 *   V' = α V_r + (1 − α)(V_rest + R·I) + Δ,  a' = ρ a_r,  ρ = exp(−dt/τ_a),
 *   returns H((V' − V_th − β a')/(V_th − V_reset)).
 *
 * (The soft reset subtracts V_th − V_reset, not the adapted threshold, as the reference.)
 * State variables: `v`, `a` (HiddenState `(n,)` each). Eligibility traces:
 * v and a are coupled through the spike, so they form one group (S = 2,
 * [v, a]; observed: `HIDDEN_GROUP_MERGED ... [neuron.v, neuron.a] (S = 2)`); with
 * `detachReset` a no longer reaches v' and the compiler splits them into two
 * S = 1 groups (the input weight is a relation to v's group only; a feeds the
 * output spike).
 */
export class ALIF extends Neuron {
  /** Adaptation variable a `(B, n)`. */
  a: bt.HiddenState;
  private readonly rho: number | number[];
  private readonly beta: number | number[];

  constructor(n: number, options: ALIFOptions = {}) {
    const o = checkOptionKeys('ALIF', options, [...NEURON_KEYS, 'tauAdapt', 'beta', 'aInit']);
    super(n, o, 'ALIF', 10);
    this.rho = operand(expDecay(perUnit(o.tauAdapt ?? 100, n, 'ALIF: tauAdapt', 'positive'), this.p.dt));
    this.beta = operand(perUnit(o.beta ?? 0.1, n, 'ALIF: beta'));
    this.a = new bt.HiddenState([n], checkInit(o.aInit, 'ALIF: aInit'));
  }

  protected override threshold(): Tensor {
    return bt.add(bt.mul(this.a.value, this.beta), this.p.vTh);
  }

  update(current: Tensor | number = 0, delta?: Tensor): Tensor {
    this.checkInputs(current, delta, 'ALIF');
    const s = this.resetSpike();
    const vR = this.resetV(this.v.value, s);
    const aR = bt.add(this.a.value, s);
    const v = this.integrate(vR, current, delta);
    const a = bt.mul(aR, this.rho);
    this.v.value = v;
    this.a.value = a;
    return this.getSpike(v, bt.add(bt.mul(a, this.beta), this.p.vTh));
  }
}

/** Options of {@link GIF}. */
export interface GIFOptions extends NeuronOptions {
  /** Time constant of the internal current I1 (default 10). */
  tauI1?: PerUnit;
  /** Time constant of the internal current I2 (default 100). */
  tauI2?: PerUnit;
  /** Spike-triggered jump of I1: I1 ← I1 + A1·s (default 0). */
  A1?: PerUnit;
  /** Spike-triggered jump of I2: I2 ← I2 + A2·s (default −0.2: adaptation; the reference writes I2 − A2·s). */
  A2?: PerUnit;
  /** Initial I1 (default zeros). */
  i1Init?: bt.Initializer | number;
  /** Initial I2 (default zeros). */
  i2Init?: bt.Initializer | number;
}

/**
 * Generalised integrate-and-fire neuron with two internal currents
 * (Mihalas–Niebur form, fixed threshold, as in the reference examples' GIF
 * extended to both currents):
 *
 *   s = H((V − V_th)/(V_th − V_reset)),  V_r = reset(V, s),  I_k,r = I_k + A_k s  (k = 1, 2),
 *   V' = α V_r + (1 − α)(V_rest + R(I + I1,r + I2,r)) + Δ,  I_k' = exp(−dt/τ_Ik)·I_k,r,
 *   returns H((V' − V_th)/(V_th − V_reset)).
 *
 * (V integrates the reset currents before their decay, as the reference's
 * `exp_euler_step(dV, last_V, t, last_I2, x)`.) State variables: `v`, `i1`,
 * `i2` (HiddenState `(n,)` each). Eligibility traces: V depends on I1, I2
 * element-wise and they depend on V through the spike, so the three form one
 * group (S = 3, [v, i1, i2]); weights driving I become relations to it.
 */
export class GIF extends Neuron {
  /** Internal current I1 `(B, n)`. */
  i1: bt.HiddenState;
  /** Internal current I2 `(B, n)`. */
  i2: bt.HiddenState;
  private readonly k1: number | number[];
  private readonly k2: number | number[];
  private readonly A1: number | number[];
  private readonly A2: number | number[];

  constructor(n: number, options: GIFOptions = {}) {
    const o = checkOptionKeys('GIF', options, [...NEURON_KEYS, 'tauI1', 'tauI2', 'A1', 'A2', 'i1Init', 'i2Init']);
    super(n, o, 'GIF', 20);
    this.k1 = operand(expDecay(perUnit(o.tauI1 ?? 10, n, 'GIF: tauI1', 'positive'), this.p.dt));
    this.k2 = operand(expDecay(perUnit(o.tauI2 ?? 100, n, 'GIF: tauI2', 'positive'), this.p.dt));
    this.A1 = operand(perUnit(o.A1 ?? 0, n, 'GIF: A1'));
    this.A2 = operand(perUnit(o.A2 ?? -0.2, n, 'GIF: A2'));
    this.i1 = new bt.HiddenState([n], checkInit(o.i1Init, 'GIF: i1Init'));
    this.i2 = new bt.HiddenState([n], checkInit(o.i2Init, 'GIF: i2Init'));
  }

  update(current: Tensor | number = 0, delta?: Tensor): Tensor {
    this.checkInputs(current, delta, 'GIF');
    const s = this.resetSpike();
    const vR = this.resetV(this.v.value, s);
    const i1R = bt.add(this.i1.value, bt.mul(s, this.A1));
    const i2R = bt.add(this.i2.value, bt.mul(s, this.A2));
    const v = this.integrate(vR, bt.add(bt.add(current, i1R), i2R), delta);
    this.v.value = v;
    this.i1.value = bt.mul(i1R, this.k1);
    this.i2.value = bt.mul(i2R, this.k2);
    return this.getSpike(v);
  }
}
