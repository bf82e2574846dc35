/**
 * Projections and spiking networks: how presynaptic activity reaches a neuron
 * population (brainpy.state's `DeltaProj` / `AlignPostProj`), a recurrent
 * spiking layer built from them, and a recurrent spiking network with a leaky
 * rate readout (the reference examples' `LIF_Delta_Net` / `GifNet` shape).
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { ArgumentError } from '../runtime/errors';
import { LeakyRateReadout, Linear, type LinearOptions } from './linear';
import { ALIF, GIF, LIF, type ALIFOptions, type GIFOptions, type LIFOptions } from './neurons';
import { Expon } from './synapses';
import { checkOptionKeys } from '../runtime/errors';
import { checkBool, checkChoice, checkPosInt, operand, perUnit, type PerUnit } from './util';

/**
 * Delta projection: the communication layer's output is an instant voltage
 * jump of the postsynaptic neurons, `Δ = comm(x)` (pass it as the neuron's
 * `update(current, delta)` second argument). No state of its own.
 */
export class DeltaProj extends bt.Module {
  constructor(readonly comm: Linear) {
    super();
    if (!(comm instanceof Linear)) throw new ArgumentError('DeltaProj: comm must be a Linear');
  }
  /** Δ = comm(x) `(B, out)`. */
  update(x: Tensor): Tensor {
    return this.comm.forward(x);
  }
}

/** Output of a synapse: current-based, or conductance-based with a reversal potential. */
export type SynapseOutput = 'current' | { eRev: PerUnit };

/**
 * Post-aligned projection: comm → exponential synapse (one per postsynaptic
 * unit) → output. `update(x, vPost?)` advances g' = (1 − dt/τ) g + comm(x) and
 * returns the current g' (CUBA) or g' (E_rev − vPost) (COBA; `vPost` required:
 * the postsynaptic membrane before the step).
 */
export class AlignPostProj extends bt.Module {
  private readonly out: SynapseOutput;
  constructor(
    readonly comm: Linear,
    readonly syn: Expon,
    out: SynapseOutput = 'current',
  ) {
    super();
    if (!(comm instanceof Linear)) throw new ArgumentError('AlignPostProj: comm must be a Linear');
    if (!(syn instanceof Expon)) throw new ArgumentError('AlignPostProj: syn must be an Expon');
    if (comm.outFeatures !== syn.size) {
      throw new ArgumentError(`AlignPostProj: comm.outFeatures (${comm.outFeatures}) must equal syn.size (${syn.size})`);
    }
    if (out !== 'current' && (typeof out !== 'object' || out === null || !('eRev' in out))) {
      throw new ArgumentError("AlignPostProj: out must be 'current' or { eRev }");
    }
    if (out !== 'current') perUnit(out.eRev, syn.size, 'AlignPostProj: out.eRev');
    this.out = out;
  }
  /** The synaptic current into the postsynaptic population `(B, n)`. */
  update(x: Tensor, vPost?: Tensor): Tensor {
    const g = this.syn.update(this.comm.forward(x));
    if (this.out === 'current') return g;
    if (vPost === undefined) throw new ArgumentError('AlignPostProj.update: vPost is required for a conductance output');
    return bt.mul(g, bt.sub(operand(perUnit(this.out.eRev, this.syn.size, 'AlignPostProj: out.eRev')), vPost));
  }
}

/** Options of {@link RecurrentSpikingLayer}. */
export interface RecurrentSpikingLayerOptions {
  /** Neuron model (default 'lif'). */
  neuron?: 'lif' | 'alif' | 'gif';
  /** Options of the neuron model. */
  neuronOptions?: LIFOptions | ALIFOptions | GIFOptions;
  /** 'expon': currents pass an exponential synapse (AlignPost); omitted: delta (voltage-jump) input. */
  synapse?: 'expon';
  /** Synaptic time constant (default 5). */
  tauSyn?: PerUnit;
  /** Synapse output (default 'current'); `{ eRev }` for conductance-based input. */
  synapseOutput?: SynapseOutput;
  /** Recurrent connections from the previous step's spikes (default true). */
  recurrent?: boolean;
  /** Options of the input Linear `inp` (default no bias). */
  inputOptions?: LinearOptions;
  /** Options of the recurrent Linear `rec` (default no bias); `sign`/`mask` make it a transformed weight (trained through the transform by every learner). */
  recurrentOptions?: LinearOptions;
  /** Time step of the synapse (default 1; the neuron's dt is in neuronOptions). */
  dt?: number;
}

/**
 * Recurrent spiking layer:
 *
 *   s_prev = neuron.getSpike()  (the previous step's spikes, read from the state),
 *   I = x · W_in (+ s_prev · W_rec),
 *   delta input:    spikes = neuron.update(0, I)            (V jumps by I),
 *   'expon' synapse: g' = (1 − dt/τ_syn) g + I, spikes = neuron.update(g' or g'(E_rev − V)).
 *
 * State variables: the neuron's (`neuron.v`, `neuron.a` / `neuron.i1`,
 * `neuron.i2`), with a synapse `syn.g`. Weights: `inp.weight`, `rec.weight`
 * (+ biases when enabled).
 *
 * Eligibility traces: `inp.weight` and `rec.weight` are EtpMatMuls whose
 * outputs reach V (through g) element-wise, so both are relations to the
 * neuron's group (which, with a synapse, also holds g). The recurrent input
 * s_prev depends on V, but through a weight product, so D stays per-neuron
 * (diagonal); D_RTRL drops the cross-neuron recurrent Jacobian (it is not
 * equal to BPTT when `recurrent` is true, and equal when false).
 */
export class RecurrentSpikingLayer extends bt.Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Neurons n. */
  readonly size: number;
  /** Input projection `(in, n)`. */
  inp: Linear;
  /** Recurrent projection `(n, n)` (absent with `recurrent: false`). */
  rec?: Linear;
  /** Exponential synapse (with `synapse: 'expon'`). */
  syn?: Expon;
  /** The neuron population. */
  neuron: LIF | ALIF | GIF;
  private readonly synOut: SynapseOutput;

  constructor(nIn: number, n: number, options: RecurrentSpikingLayerOptions = {}) {
    super();
    const o = checkOptionKeys('RecurrentSpikingLayer', options, ['neuron', 'neuronOptions', 'synapse', 'tauSyn', 'synapseOutput', 'recurrent', 'inputOptions', 'recurrentOptions', 'dt']);
    this.inFeatures = checkPosInt(nIn, 'RecurrentSpikingLayer: nIn');
    this.size = checkPosInt(n, 'RecurrentSpikingLayer: n');
    const kind = checkChoice(o.neuron ?? 'lif', ['lif', 'alif', 'gif'] as const, 'RecurrentSpikingLayer: neuron');
    const recurrent = o.recurrent === undefined ? true : checkBool(o.recurrent, 'RecurrentSpikingLayer: recurrent');
    const synapse = o.synapse === undefined ? undefined : checkChoice(o.synapse, ['expon'] as const, 'RecurrentSpikingLayer: synapse');
    this.synOut = (o.synapseOutput as SynapseOutput | undefined) ?? 'current';
    if (this.synOut !== 'current') {
      if (typeof this.synOut !== 'object' || this.synOut === null || !('eRev' in this.synOut)) {
        throw new ArgumentError("RecurrentSpikingLayer: synapseOutput must be 'current' or { eRev }");
      }
      if (synapse === undefined) throw new ArgumentError("RecurrentSpikingLayer: synapseOutput { eRev } needs synapse: 'expon'");
      perUnit(this.synOut.eRev, n, 'RecurrentSpikingLayer: synapseOutput.eRev');
    }
    this.inp = new Linear(nIn, n, { bias: false, ...((o.inputOptions as LinearOptions | undefined) ?? {}) });
    if (recurrent) this.rec = new Linear(n, n, { bias: false, ...((o.recurrentOptions as LinearOptions | undefined) ?? {}) });
    else if (o.recurrentOptions !== undefined) throw new ArgumentError('RecurrentSpikingLayer: recurrentOptions given but recurrent is false');
    if (synapse === 'expon') {
      this.syn = new Expon(n, { tau: (o.tauSyn as PerUnit | undefined) ?? 5, dt: (o.dt as number | undefined) ?? 1 });
    }
    const no = (o.neuronOptions ?? {}) as Record<string, unknown>;
    this.neuron = kind === 'lif' ? new LIF(n, no) : kind === 'alif' ? new ALIF(n, no) : new GIF(n, no);
  }

  /** One step: x `(B, nIn)` → spikes `(B, n)`. */
  update(x: Tensor): Tensor {
    let I = this.inp.forward(x);
    if (this.rec !== undefined) I = bt.add(I, this.rec.forward(this.neuron.getSpike()));
    if (this.syn === undefined) return this.neuron.update(0, I);
    const vOld = this.neuron.v.value;
    const g = this.syn.update(I);
    const drive = this.synOut === 'current' ? g : this.syn.conductanceOutput(vOld, this.synOut.eRev);
    return this.neuron.update(drive);
  }
}

/** Options of {@link RSNN}. */
export interface RSNNOptions extends RecurrentSpikingLayerOptions {
  /** Readout time constant (default 5). */
  readoutTau?: PerUnit;
  /** Readout weight initialiser. */
  readoutInit?: bt.Initializer | number;
  /**
   * 'leaky' (default, the reference's LeakyRateReadout, a hidden state r) or
   * 'linear' (a plain Linear readout y = s W + b: a non-temporal parameter).
   * See the class doc for why this matters for the online learners.
   */
  readout?: 'leaky' | 'linear';
}

/**
 * Recurrent spiking network with a readout:
 * spikes = RecurrentSpikingLayer(x), then either (default 'leaky')
 * r' = (1 − dt/τ_out) r + spikes · W_out, returning r' `(B, nOut)`, or ('linear')
 * y = spikes · W_out + b.
 *
 * Eligibility traces: the layer's relations as above. With the leaky readout,
 * `out.weight` is a relation to the readout's own group `[out.r]` (a separate
 * group: it meets the neurons only through a weight product). CURRENT LIMIT of
 * the online learners: the learning signal of the layer's group holds the new
 * values of every hidden state fixed, and r' is one, so the loss's path
 * V' → s → out.weight → r' is not counted: under D_RTRL / pp_prop the layer's
 * weights get a zero gradient behind a leaky readout (BPTT is exact). With
 * `readout: 'linear'` the readout is a same-step consumer and the layer's
 * weights get their D_RTRL gradient.
 */
export class RSNN extends bt.Module {
  layer: RecurrentSpikingLayer;
  out: LeakyRateReadout | Linear;
  constructor(nIn: number, nRec: number, nOut: number, options: RSNNOptions = {}) {
    super();
    const { readoutTau, readoutInit, readout, ...rest } = options;
    this.layer = new RecurrentSpikingLayer(nIn, nRec, rest);
    checkPosInt(nOut, 'RSNN: nOut');
    const kind = checkChoice(readout ?? 'leaky', ['leaky', 'linear'] as const, 'RSNN: readout');
    if (kind === 'linear' && readoutTau !== undefined) throw new ArgumentError("RSNN: readoutTau is only used with readout: 'leaky'");
    this.out =
      kind === 'leaky'
        ? new LeakyRateReadout(nRec, nOut, {
            tau: readoutTau ?? 5,
            dt: rest.dt ?? 1,
            ...(readoutInit === undefined ? {} : { wInit: readoutInit }),
          })
        : new Linear(nRec, nOut, readoutInit === undefined ? {} : { wInit: readoutInit });
  }
  update(x: Tensor): Tensor {
    return this.out.update(this.layer.update(x));
  }
}
