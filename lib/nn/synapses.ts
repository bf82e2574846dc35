/**
 * Synapse models.
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { checkOptionKeys } from '../runtime/errors';
import { checkBatched, checkInit, checkNum, checkPosInt, eulerDecay, operand, perUnit, type PerUnit } from './util';

/** Options of {@link Expon}. */
export interface ExponOptions {
  /** Synaptic time constant τ (default 5), a number or one per unit; must be >= dt. */
  tau?: PerUnit;
  /** Time step (default 1). */
  dt?: number;
  /** Initial conductance g (default zeros). */
  gInit?: bt.Initializer | number;
}

/**
 * Exponential synapse: g' = (1 − dt/τ) ⊙ g + input (input added as a jump,
 * forward-Euler decay). `update(input)` returns g' `(B, n)`.
 * Outputs: {@link currentOutput} (CUBA, I = g) and {@link conductanceOutput}
 * (COBA, I = g (E_rev − v)).
 *
 * State variables: `g` (HiddenState `(n,)`). Eligibility traces: a weight
 * whose product is the input is a relation to g's group. Feeding a neuron, g
 * and the neuron's V form one group (V' depends on g' element-wise): S = 2 for
 * an LIF, 3 for an ALIF, 4 for a GIF (members in property order; observed in a
 * RecurrentSpikingLayer: `[syn.g, neuron.v, neuron.a]`).
 */
export class Expon extends bt.Module {
  /** Number of synapses (post-synaptic units) n. */
  readonly size: number;
  /** g `(B, n)`. */
  g: bt.HiddenState;
  private readonly decay: number | number[];

  constructor(n: number, options: ExponOptions = {}) {
    super();
    const o = checkOptionKeys('Expon', options, ['tau', 'dt', 'gInit']);
    this.size = checkPosInt(n, 'Expon: n');
    const dt = o.dt === undefined ? 1 : checkNum(o.dt, 'Expon: dt', 'positive');
    const tau = perUnit(o.tau ?? 5, n, 'Expon: tau', 'positive');
    this.decay = operand(eulerDecay(tau, dt, 'Expon: tau'));
    this.g = new bt.HiddenState([n], checkInit(o.gInit, 'Expon: gInit'));
  }

  /** g' = (1 − dt/τ) g + input; returns g'. */
  update(input: Tensor): Tensor {
    checkBatched(input, this.size, 'Expon.update: input');
    const g = bt.add(bt.mul(this.g.value, this.decay), input);
    this.g.value = g;
    return g;
  }

  /** The current-based output I = g (the current value of the state). */
  currentOutput(): Tensor {
    return this.g.value;
  }

  /** The conductance-based output I = g (E_rev − v); E_rev a number or one per unit. */
  conductanceOutput(v: Tensor, eRev: PerUnit): Tensor {
    checkBatched(v, this.size, 'Expon.conductanceOutput: v');
    return bt.mul(this.g.value, bt.sub(operand(perUnit(eRev, this.size, 'Expon.conductanceOutput: eRev')), v));
  }
}
