/**
 * The layer library (lib/nn): for every layer
 *  (1) BPTT gradients against central finite differences of the sequence loss
 *      (float64, non-zero initial state, relative error < 1e-6);
 *  (2) a D_RTRL run (finite losses, a gradient for every weight path, non-zero
 *      gradients for relation weights; equality with BPTT where the model is
 *      diagonal; transformed Linear weights (mask, sign, weightFn) included);
 *  (3) option and shape errors that name the argument.
 *
 * Spiking layers: the spike is H(u) in the forward pass, so a finite-difference
 * step that does not flip a spike sees zero derivative through it. The FD
 * checks therefore use a zero surrogate (the exact derivative of H away from
 * 0; the model is then piecewise smooth) or `detachReset` with an output that
 * does not read the spike, check that spikes occur, and check that no spike
 * argument lies within 1e-4 of 0 over the sequence. The surrogate derivatives
 * themselves are checked in the op table (test/ops.test.ts); the D_RTRL runs
 * use real surrogates.
 */
import * as bt from '../lib/index';
import * as nn from '../lib/nn/index';
import type { Tensor } from '../lib/dsl/tensor';
import { prng } from './helpers/native';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/** H(u) with zero derivative: the exact derivative of the Heaviside step away from 0. */
const ZERO_SURROGATE: bt.Surrogate = { kind: 'reluGrad', params: [0, 1], derivative: () => 0 };

function rand(shape: number[], rnd: () => number, scale = 1, offset = 0): bt.HostTensor {
  return { data: Float64Array.from({ length: bt.numel(shape) }, () => offset + scale * (2 * rnd() - 1)), shape, dtype: 'float64' };
}

function stepOf(h: bt.HostTensor, t: number): bt.HostTensor {
  const n = h.data.length / h.shape[0];
  return { data: h.data.slice(t * n, (t + 1) * n), shape: h.shape.slice(1), dtype: 'float64' };
}

type Objective = { loss: bt.GradOptions['loss']; reduction?: 'mean' | 'sum' };

async function objective(learner: bt.Learner, h0: Record<string, bt.HostTensor>, xs: bt.HostTensor, ys: bt.HostTensor, o: Objective): Promise<number> {
  learner.setStates(h0);
  const { losses } = await learner.etraceGrad(xs, ys, o);
  const s = losses.reduce((a, v) => a + v, 0);
  return o.reduction === 'mean' ? s / losses.length : s;
}

/** Central finite differences of the sequence objective for every weight element. */
async function fdGrads(learner: bt.Learner, h0: Record<string, bt.HostTensor>, xs: bt.HostTensor, ys: bt.HostTensor, o: Objective) {
  const base = learner.params();
  const out: Record<string, Float64Array> = {};
  for (const [path, p] of Object.entries(base)) {
    const g = new Float64Array(p.data.length);
    for (let i = 0; i < p.data.length; i++) {
      const h = 1e-5 * Math.max(1, Math.abs(p.data[i]));
      const shifted = (d: number) => {
        const data = Float64Array.from(p.data);
        data[i] += d;
        return { [path]: { data, shape: p.shape, dtype: p.dtype } };
      };
      learner.setParams(shifted(h));
      const up = await objective(learner, h0, xs, ys, o);
      learner.setParams(shifted(-h));
      const down = await objective(learner, h0, xs, ys, o);
      learner.setParams({ [path]: p });
      g[i] = (up - down) / (2 * h);
    }
    out[path] = g;
  }
  return out;
}

function relErr(a: Record<string, bt.HostTensor>, b: Record<string, ArrayLike<number> | bt.HostTensor>): number {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  let num = 0;
  let den = 0;
  for (const [path, gb] of Object.entries(b)) {
    const data = 'data' in gb ? (gb as bt.HostTensor).data : (gb as ArrayLike<number>);
    for (let i = 0; i < data.length; i++) {
      num = Math.max(num, Math.abs(a[path].data[i] - data[i]));
      den = Math.max(den, Math.abs(data[i]));
    }
  }
  expect(den).toBeGreaterThan(1e-3); // not vacuous
  return num / den;
}

interface Case {
  /** The model (the learner's output is the model's output). */
  make: () => bt.Module;
  nIn: number;
  T?: number;
  B?: number;
  /** Input scale/offset: x ~ U(offset − scale, offset + scale). */
  xScale?: number;
  xOffset?: number;
  /** Initial value of the states, by path (default U(−0.6, 0.6) + 0.2 for every hidden state). */
  h0?: (states: Record<string, bt.HostTensor>, rnd: () => number) => Record<string, bt.HostTensor>;
  /** Spike arguments of the states (spiking models): returns every u whose sign decides a spike. */
  spikeArgs?: (states: Record<string, bt.HostTensor>) => number[];
  seed?: number;
}

interface Data {
  h0: Record<string, bt.HostTensor>;
  xs: bt.HostTensor;
  ys: bt.HostTensor;
}

function makeData(c: Case, learner: bt.Learner, seed: number): Data {
  const rnd = prng(seed);
  const B = c.B ?? 2;
  const T = c.T ?? 6;
  const states = learner.states();
  const h0: Record<string, bt.HostTensor> = c.h0
    ? c.h0(states, rnd)
    : Object.fromEntries(Object.entries(states).map(([p, s]) => [p, rand(s.shape, rnd, 0.6, 0.2)]));
  const xs = rand([T, B, c.nIn], rnd, c.xScale ?? 1, c.xOffset ?? 0);
  const y0 = learner.update(stepOf(xs, 0)); // (only for the output shape)
  learner.resetState(); // states and eligibility traces back to the start
  const ys = rand([T, ...y0.shape], rnd);
  return { h0, xs, ys };
}

/** Steps the model forward and returns every spike argument seen (initial state included) and the spike count. */
function spikeStats(c: Case, learner: bt.Learner, d: Data): { args: number[]; spikes: number } {
  learner.setStates(d.h0);
  const args = [...c.spikeArgs!(learner.states())];
  for (let t = 0; t < d.xs.shape[0]; t++) {
    learner.update(stepOf(d.xs, t));
    args.push(...c.spikeArgs!(learner.states()));
  }
  return { args, spikes: args.filter((u) => u > 0).length };
}

async function checkBpttAgainstFd(c: Case, o: Objective = { loss: 'mse', reduction: 'mean' }): Promise<number> {
  const learner = bt.compile(c.make(), bt.BPTT, { inputShape: [c.nIn], batchSize: c.B ?? 2, dtype: 'float64', seed: c.seed ?? 1 });
  try {
    const d = makeData(c, learner, 100 + (c.seed ?? 1));
    if (c.spikeArgs) {
      const { args, spikes } = spikeStats(c, learner, d);
      expect(spikes).toBeGreaterThan(0); // spikes occur: the reset and spike-triggered paths run
      expect(spikes).toBeLessThan(args.length); // and not everywhere
      expect(Math.min(...args.map(Math.abs))).toBeGreaterThan(1e-4); // no FD step flips a spike
    }
    learner.setStates(d.h0);
    const { grads, losses } = await learner.etraceGrad(d.xs, d.ys, o);
    expect(losses).toHaveLength(d.xs.shape[0]);
    return relErr(grads, await fdGrads(learner, d.h0, d.xs, d.ys, o));
  } finally {
    learner.dispose();
  }
}

/** A D_RTRL run: finite losses, a finite gradient for every weight path, non-zero gradients for relation weights. */
async function checkDrtrl(c: Case): Promise<{ grads: Record<string, bt.HostTensor>; graph: bt.ETraceGraph; d: Data }> {
  const learner = bt.compile(c.make(), bt.D_RTRL, { inputShape: [c.nIn], batchSize: c.B ?? 2, dtype: 'float64', seed: c.seed ?? 1 });
  try {
    const d = makeData(c, learner, 200 + (c.seed ?? 1));
    learner.setStates(d.h0);
    const { grads, losses } = await learner.etraceGrad(d.xs, d.ys, { loss: 'mse' });
    expect(losses).toHaveLength(d.xs.shape[0]);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(Object.keys(grads).sort()).toEqual(Object.keys(learner.params()).sort());
    for (const g of Object.values(grads)) expect(Array.from(g.data).every(Number.isFinite)).toBe(true);
    const relationWeights = new Set(learner.graph.relations.flatMap((r) => [r.weightPath, ...(r.biasPath ? [r.biasPath] : [])]));
    expect(relationWeights.size).toBeGreaterThan(0);
    for (const w of relationWeights) {
      const norm = Math.sqrt(Array.from(grads[w].data).reduce((s, v) => s + v * v, 0));
      expect({ w, nonZero: norm > 1e-10 }).toEqual({ w, nonZero: true });
    }
    return { grads, graph: learner.graph, d };
  } finally {
    learner.dispose();
  }
}

async function bpttGrads(c: Case, d: Data): Promise<Record<string, bt.HostTensor>> {
  const learner = bt.compile(c.make(), bt.BPTT, { inputShape: [c.nIn], batchSize: c.B ?? 2, dtype: 'float64', seed: c.seed ?? 1 });
  try {
    learner.setStates(d.h0);
    return (await learner.etraceGrad(d.xs, d.ys, { loss: 'mse' })).grads;
  } finally {
    learner.dispose();
  }
}

// ---------------------------------------------------------------------------
// probe models
// ---------------------------------------------------------------------------

/** A Linear driving a leaky state: h' = 0.5 h + fc(x) (gives the Linear a relation). */
class LeakyLinear extends bt.Module {
  fc: nn.Linear;
  h: bt.HiddenState;
  constructor(nIn: number, nOut: number, opts: nn.LinearOptions = {}) {
    super();
    this.fc = new nn.Linear(nIn, nOut, opts);
    this.h = new bt.HiddenState([nOut]);
  }
  update(x: Tensor): Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), this.fc.forward(x));
    return this.h.value;
  }
}

/** Linear → neuron (current input); output [V', spikes] or V' only. */
class Driven extends bt.Module {
  fc: nn.Linear;
  neuron: nn.LIF | nn.ALIF | nn.GIF;
  constructor(nIn: number, neuron: nn.LIF | nn.ALIF | nn.GIF, private readonly withSpikes = true, wMean = 2) {
    super();
    this.fc = new nn.Linear(nIn, neuron.size, { wInit: bt.init.normal({ mean: wMean, std: 1 }), bInit: bt.init.normal({ std: 0.3 }) });
    this.neuron = neuron;
  }
  update(x: Tensor): Tensor {
    const s = this.neuron.update(this.fc.forward(x));
    return this.withSpikes ? bt.concat([this.neuron.v.value, s], -1) : this.neuron.v.value;
  }
}

/** Linear → Expon; output the conductance output g'(E − x) (x doubles as the "membrane"). */
class ExponProbe extends bt.Module {
  fc: nn.Linear;
  syn: nn.Expon;
  constructor(private readonly conductance: boolean) {
    super();
    this.fc = new nn.Linear(2, 2);
    this.syn = new nn.Expon(2, { tau: [2, 6] });
  }
  update(x: Tensor): Tensor {
    this.syn.update(this.fc.forward(x));
    return this.conductance ? this.syn.conductanceOutput(x, [1, 2]) : this.syn.currentOutput();
  }
}

/** Recurrent spiking layer with its membrane exposed: output [V', spikes]. */
class LayerProbe extends bt.Module {
  layer: nn.RecurrentSpikingLayer;
  constructor(nIn: number, n: number, opts: nn.RecurrentSpikingLayerOptions) {
    super();
    this.layer = new nn.RecurrentSpikingLayer(nIn, n, opts);
  }
  update(x: Tensor): Tensor {
    const s = this.layer.update(x);
    return bt.concat([this.layer.neuron.v.value, s], -1);
  }
}

// spike arguments u (spike = u > 0), from the state values
const lifArgs = (vTh = 1, vReset = 0, prefix = 'neuron.') => (s: Record<string, bt.HostTensor>) =>
  Array.from(s[`${prefix}v`].data, (v) => (v - vTh) / (vTh - vReset));
const alifArgs = (beta: number[], prefix = 'neuron.') => (s: Record<string, bt.HostTensor>) => {
  const n = beta.length;
  return Array.from(s[`${prefix}v`].data, (v, i) => v - 1 - beta[i % n] * s[`${prefix}a`].data[i]);
};

/** Membranes near the threshold region, other states small. */
function neuronH0(prefix = 'neuron.') {
  return (states: Record<string, bt.HostTensor>, rnd: () => number) =>
    Object.fromEntries(
      Object.entries(states).map(([p, s]) => {
        if (p === `${prefix}v`) return [p, rand(s.shape, rnd, 0.7, 0.6)];
        if (p.endsWith('refCount')) return [p, { data: Float64Array.from(s.data, (_, i) => i % 3), shape: s.shape, dtype: 'float64' as const }];
        return [p, rand(s.shape, rnd, 0.3, 0.1)];
      }),
    );
}

// ---------------------------------------------------------------------------
// (1) BPTT against finite differences
// ---------------------------------------------------------------------------

const MASK = [
  [1, 0, 1, 1],
  [0, 1, 1, 0],
  [1, 1, 0, 1],
];

const RATE_CASES: [string, Case][] = [
  ['Linear (plain, bias)', { make: () => new LeakyLinear(3, 4), nIn: 3 }],
  ['Linear with mask', { make: () => new LeakyLinear(3, 4, { mask: MASK }), nIn: 3 }],
  ['Linear with Dale sign', { make: () => new LeakyLinear(3, 4, { sign: [1, -1, 1] }), nIn: 3 }],
  ['Linear with weightFn', { make: () => new LeakyLinear(3, 4, { weightFn: (w) => bt.mul(bt.tanh(w), 2), bias: false }), nIn: 3 }],
  ['Linear with weightFn + sign + mask', { make: () => new LeakyLinear(3, 4, { weightFn: (w) => bt.square(w), sign: [-1, 1, 1], mask: MASK }), nIn: 3 }],
  ['LeakyRateReadout (heterogeneous tau)', { make: () => new nn.LeakyRateReadout(3, 2, { tau: [2, 7] }), nIn: 3 }],
  ['VanillaRNNCell (tanh)', { make: () => new nn.VanillaRNNCell(2, 3), nIn: 2 }],
  ['VanillaRNNCell (softplus, no bias)', { make: () => new nn.VanillaRNNCell(2, 3, { activation: 'softplus', bias: false }), nIn: 2 }],
  ['GRUCell', { make: () => new nn.GRUCell(2, 3, { bInit: bt.init.normal({ std: 0.2 }) }), nIn: 2 }],
  ['MGUCell', { make: () => new nn.MGUCell(2, 3, { bInit: bt.init.normal({ std: 0.2 }) }), nIn: 2 }],
  ['LSTMCell', { make: () => new nn.LSTMCell(2, 3, { bInit: bt.init.normal({ std: 0.2 }) }), nIn: 2 }],
  ['MiniGRU', { make: () => new nn.MiniGRU(2, 3), nIn: 2 }],
  ['MiniGRU (gates from [x, h])', { make: () => new nn.MiniGRU(2, 3, { gateFromHidden: true }), nIn: 2 }],
  ['MiniLSTM (normalised)', { make: () => new nn.MiniLSTM(2, 3, { normalize: true }), nIn: 2 }],
  ['MiniLSTM (gates from [x, h])', { make: () => new nn.MiniLSTM(2, 3, { gateFromHidden: true }), nIn: 2 }],
  ['Expon, current output', { make: () => new ExponProbe(false), nIn: 2 }],
  ['Expon, conductance output', { make: () => new ExponProbe(true), nIn: 2 }],
];

const TAU4 = [2, 3, 5, 8];
const BETA4 = [0.3, 0.5, 0.2, 0.4];

const SPIKING_CASES: [string, Case][] = [
  [
    'LIF soft reset, heterogeneous tau (zero surrogate)',
    { make: () => new Driven(3, new nn.LIF(4, { tauMem: TAU4, surrogate: ZERO_SURROGATE })), nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: lifArgs() },
  ],
  [
    'LIF soft reset, real surrogate, detachReset, membrane output',
    {
      make: () => new Driven(3, new nn.LIF(4, { tauMem: TAU4, detachReset: true, surrogate: bt.surrogate.arctan() }), false),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: lifArgs(),
    },
  ],
  [
    'LIF hard reset, vReset −0.2, refractory 2 (zero surrogate)',
    {
      make: () => new Driven(3, new nn.LIF(4, { tauMem: 4, reset: 'hard', vReset: -0.2, refractory: 2, surrogate: ZERO_SURROGATE })),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: lifArgs(1, -0.2),
    },
  ],
  [
    'ALIF (zero surrogate)',
    {
      make: () => new Driven(3, new nn.ALIF(4, { tauMem: TAU4, tauAdapt: [10, 20, 30, 40], beta: BETA4, surrogate: ZERO_SURROGATE })),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: alifArgs(BETA4),
    },
  ],
  [
    'GIF with two internal currents (zero surrogate)',
    {
      make: () => new Driven(3, new nn.GIF(4, { tauMem: TAU4, tauI1: 3, tauI2: [10, 20, 15, 30], A1: 0.3, A2: -0.4, surrogate: ZERO_SURROGATE })),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: lifArgs(),
    },
  ],
  [
    'GIF hard reset, real surrogate, detachReset, membrane output',
    {
      make: () => new Driven(3, new nn.GIF(4, { tauMem: TAU4, A1: 0.2, A2: -0.3, reset: 'hard', detachReset: true }), false),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0(), spikeArgs: lifArgs(),
    },
  ],
  [
    'RecurrentSpikingLayer: LIF, delta input, recurrent (zero surrogate)',
    {
      make: () =>
        new LayerProbe(3, 4, {
          neuronOptions: { tauMem: TAU4, surrogate: ZERO_SURROGATE },
          inputOptions: { wInit: bt.init.normal({ mean: 0.6, std: 0.4 }) },
          recurrentOptions: { wInit: bt.init.normal({ std: 0.3 }) },
        }),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'), spikeArgs: lifArgs(1, 0, 'layer.neuron.'),
    },
  ],
  [
    'RecurrentSpikingLayer: ALIF, expon synapse (zero surrogate)',
    {
      make: () =>
        new LayerProbe(3, 4, {
          neuron: 'alif',
          synapse: 'expon',
          tauSyn: [2, 3, 4, 5],
          neuronOptions: { tauMem: TAU4, beta: BETA4, tauAdapt: 20, surrogate: ZERO_SURROGATE },
          inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.5 }) },
          recurrentOptions: { wInit: bt.init.normal({ std: 0.3 }), bias: true },
        }),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'), spikeArgs: alifArgs(BETA4, 'layer.neuron.'),
    },
  ],
  [
    'RecurrentSpikingLayer: GIF, conductance synapse (zero surrogate)',
    {
      make: () =>
        new LayerProbe(3, 4, {
          neuron: 'gif',
          synapse: 'expon',
          synapseOutput: { eRev: [2, 2.5, 3, 2] },
          neuronOptions: { tauMem: TAU4, A1: 0.2, A2: -0.2, surrogate: ZERO_SURROGATE },
          inputOptions: { wInit: bt.init.normal({ mean: 0.8, std: 0.4 }) },
          recurrentOptions: { wInit: bt.init.normal({ std: 0.3 }) },
        }),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'), spikeArgs: lifArgs(1, 0, 'layer.neuron.'),
    },
  ],
  [
    'RSNN: LIF + expon + leaky readout (zero surrogate)',
    {
      make: () =>
        new nn.RSNN(3, 4, 2, {
          synapse: 'expon',
          neuronOptions: { tauMem: TAU4, surrogate: ZERO_SURROGATE },
          inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.5 }) },
          recurrentOptions: { wInit: bt.init.normal({ std: 0.3 }) },
        }),
      nIn: 3, T: 8, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'), spikeArgs: lifArgs(1, 0, 'layer.neuron.'),
    },
  ],
];

describe('BPTT gradients against finite differences (float64)', () => {
  test.each(RATE_CASES)('%s', async (_name, c) => {
    expect(await checkBpttAgainstFd(c)).toBeLessThan(1e-6);
  });
  test.each(SPIKING_CASES)('%s', async (_name, c) => {
    expect(await checkBpttAgainstFd(c, { loss: 'sumSquares' })).toBeLessThan(1e-6);
  });
});

// ---------------------------------------------------------------------------
// (2) D_RTRL
// ---------------------------------------------------------------------------

/** Models on which D_RTRL is exact (diagonal transitions, no weight sees a hidden state): it must equal BPTT. */
const DIAGONAL_CASES: [string, Case][] = [
  ['Linear into a leaky state', { make: () => new LeakyLinear(3, 4), nIn: 3 }],
  ['LeakyRateReadout', { make: () => new nn.LeakyRateReadout(3, 2, { tau: [2, 7] }), nIn: 3 }],
  ['MiniGRU', { make: () => new nn.MiniGRU(2, 3), nIn: 2 }],
  ['MiniLSTM', { make: () => new nn.MiniLSTM(2, 3), nIn: 2 }],
  ['MiniLSTM (normalised)', { make: () => new nn.MiniLSTM(2, 3, { normalize: true }), nIn: 2 }],
  ['Expon (current)', { make: () => new ExponProbe(false), nIn: 2 }],
  ['LIF (sigmoid surrogate)', { make: () => new Driven(3, new nn.LIF(4, { tauMem: TAU4 })), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0() }],
  ['LIF refractory, hard reset', { make: () => new Driven(3, new nn.LIF(4, { tauMem: 4, reset: 'hard', refractory: 2 })), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0() }],
  ['ALIF (arctan surrogate)', { make: () => new Driven(3, new nn.ALIF(4, { tauMem: TAU4, beta: BETA4, surrogate: bt.surrogate.arctan() })), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0() }],
  ['ALIF detachReset (two groups)', { make: () => new Driven(3, new nn.ALIF(4, { tauMem: TAU4, beta: BETA4, detachReset: true })), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0() }],
  ['GIF (S = 3)', { make: () => new Driven(3, new nn.GIF(4, { tauMem: TAU4, A1: 0.3, A2: -0.4 })), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0() }],
  [
    'RecurrentSpikingLayer without recurrence, ALIF + expon',
    { make: () => new nn.RecurrentSpikingLayer(3, 4, { neuron: 'alif', synapse: 'expon', recurrent: false, inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.5 }) } }), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('neuron.') },
  ],
];

/** Models with a non-diagonal recurrence or weight-to-weight paths: D_RTRL is an approximation. */
const APPROX_CASES: [string, Case][] = [
  ['VanillaRNNCell', { make: () => new nn.VanillaRNNCell(2, 3), nIn: 2 }],
  ['GRUCell', { make: () => new nn.GRUCell(2, 3), nIn: 2 }],
  ['MGUCell', { make: () => new nn.MGUCell(2, 3), nIn: 2 }],
  ['LSTMCell', { make: () => new nn.LSTMCell(2, 3), nIn: 2 }],
  ['MiniGRU (gates from [x, h])', { make: () => new nn.MiniGRU(2, 3, { gateFromHidden: true }), nIn: 2 }],
  ['MiniLSTM (gates from [x, h])', { make: () => new nn.MiniLSTM(2, 3, { gateFromHidden: true }), nIn: 2 }],
  [
    'RecurrentSpikingLayer LIF delta',
    { make: () => new nn.RecurrentSpikingLayer(3, 4, { inputOptions: { wInit: bt.init.normal({ mean: 0.6, std: 0.4 }) } }), nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('neuron.') },
  ],
  [
    'RecurrentSpikingLayer GIF COBA',
    {
      make: () => new nn.RecurrentSpikingLayer(3, 4, { neuron: 'gif', synapse: 'expon', synapseOutput: { eRev: 2 }, inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.4 }) } }),
      nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('neuron.'),
    },
  ],
  [
    'RSNN (ALIF + expon + linear readout)',
    {
      make: () => new nn.RSNN(3, 4, 2, { neuron: 'alif', synapse: 'expon', readout: 'linear', inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.5 }) } }),
      nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'),
    },
  ],
];

const RSNN_LEAKY: Case = {
  make: () => new nn.RSNN(3, 4, 2, { neuron: 'alif', synapse: 'expon', inputOptions: { wInit: bt.init.normal({ mean: 1, std: 0.5 }) } }),
  nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('layer.neuron.'),
};

describe('D_RTRL', () => {
  test.each(DIAGONAL_CASES)('runs and equals BPTT on a diagonal model: %s', async (_name, c) => {
    const { grads, d } = await checkDrtrl(c);
    expect(relErr(grads, await bpttGrads(c, d))).toBeLessThan(1e-9);
  });

  test.each(APPROX_CASES)('runs (finite losses, every weight path, non-zero relation gradients): %s', async (_name, c) => {
    const { grads, d } = await checkDrtrl(c);
    // an approximation, but aligned with the exact gradient
    const exact = await bpttGrads(c, d);
    const flat = (g: Record<string, bt.HostTensor>) => Object.keys(g).sort().flatMap((k) => Array.from(g[k].data));
    const [a, b] = [flat(grads), flat(exact)];
    const dot = a.reduce((s, v, i) => s + v * b[i], 0);
    const cos = dot / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
    expect(cos).toBeGreaterThan(0.5);
  });

  test('RSNN with the leaky readout: the layer weights get a non-zero D_RTRL gradient through the readout state', async () => {
    const { grads, d } = await checkDrtrl(RSNN_LEAKY);
    expect(Array.from(grads['layer.inp.weight'].data).some((v) => v !== 0)).toBe(true);
    const exact = await bpttGrads(RSNN_LEAKY, d);
    const flat = (g: Record<string, bt.HostTensor>) => Object.keys(g).sort().flatMap((k) => Array.from(g[k].data));
    const [a, b] = [flat(grads), flat(exact)];
    const dot = a.reduce((acc, v, i) => acc + v * b[i], 0);
    const cos = dot / Math.sqrt(a.reduce((acc, v) => acc + v * v, 0) * b.reduce((acc, v) => acc + v * v, 0));
    expect(cos).toBeGreaterThan(0.5);
  });

  test('GRU: the reset-gate weights are non-temporal parameters and still get their instantaneous gradient', async () => {
    const { grads, graph } = await checkDrtrl({ make: () => new nn.GRUCell(2, 3), nIn: 2 });
    expect(graph.nonTemporalParams).toEqual(['Wr.weight', 'Wr.bias']);
    expect(graph.relations.map((r) => r.weightPath)).toEqual(['Wz.weight', 'Wh.weight']);
    expect(Array.from(grads['Wr.weight'].data).some((v) => v !== 0)).toBe(true);
  });

  test.each([
    ['mask', { mask: MASK }],
    ['sign', { sign: [1, -1, 1] }],
    ['weightFn', { weightFn: (w: Tensor) => bt.tanh(w) }],
    ['weightFn + sign + mask', { weightFn: (w: Tensor) => bt.square(w), sign: [-1, 1, 1], mask: MASK }],
  ] as [string, nn.LinearOptions][])('Linear with %s: D_RTRL traces W_eff and equals BPTT (diagonal model)', async (_name, opts) => {
    const c: Case = { make: () => new LeakyLinear(3, 4, opts), nIn: 3 };
    const { grads, graph, d } = await checkDrtrl(c);
    expect(graph.relations.map((r) => [r.weightPath, r.weightTransformed])).toEqual([['fc.weight', true]]);
    expect(relErr(grads, await bpttGrads(c, d))).toBeLessThan(1e-9);
    // the graph itself records the transformed EtpMatMul
    expect(bt.compileEtraceGraph(c.make(), bt.zeros([2, 3])).explain()).toMatch(/EtpMatMul\(fc\.weight transformed \+ bias fc\.bias\)/);
  });

  test('Linear with sign: pp_prop compiles and runs (finite, non-zero weight gradient)', async () => {
    const learner = bt.compile(new LeakyLinear(3, 4, { sign: [1, -1, 1] }), bt.pp_prop, { inputShape: [3], batchSize: 2, dtype: 'float64', decayOrRank: 0.5 });
    try {
      const rnd = prng(7);
      const { grads, losses } = await learner.etraceGrad(rand([5, 2, 3], rnd), rand([5, 2, 4], rnd), { loss: 'mse' });
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(Array.from(grads['fc.weight'].data).some((v) => v !== 0)).toBe(true);
    } finally {
      learner.dispose();
    }
  });

  test("a Dale's-law recurrent projection in a spiking layer trains online (D_RTRL, aligned with BPTT)", async () => {
    const c: Case = {
      make: () => new nn.RecurrentSpikingLayer(3, 4, { recurrentOptions: { sign: [1, 1, 1, -1] }, inputOptions: { wInit: bt.init.normal({ mean: 0.6, std: 0.4 }) } }),
      nIn: 3, xOffset: 0.5, xScale: 0.5, h0: neuronH0('neuron.'),
    };
    const { grads, graph, d } = await checkDrtrl(c);
    expect(graph.relations.some((r) => r.weightPath === 'rec.weight' && r.weightTransformed)).toBe(true);
    const exact = await bpttGrads(c, d);
    const flat = (g: Record<string, bt.HostTensor>) => Object.keys(g).sort().flatMap((k) => Array.from(g[k].data));
    const [a, b] = [flat(grads), flat(exact)];
    const dot = a.reduce((acc, v, i) => acc + v * b[i], 0);
    const cos = dot / Math.sqrt(a.reduce((acc, v) => acc + v * v, 0) * b.reduce((acc, v) => acc + v * v, 0));
    expect(cos).toBeGreaterThan(0.5);
  });
});

// ---------------------------------------------------------------------------
// what the compiler makes of each layer
// ---------------------------------------------------------------------------

describe('eligibility-trace graphs of the layers', () => {
  const explain = (m: bt.Module, nIn: number) => bt.compileEtraceGraph(m, bt.zeros([2, nIn], 'float64'), { dtype: 'float64' }).explain();
  test.each([
    ['VanillaRNNCell', () => new nn.VanillaRNNCell(3, 4), [/\[h\] .* S = 1 +zero recurrence/, /W\.weight@0: EtpMatMul\(W\.weight \+ bias W\.bias\)/]],
    ['GRUCell', () => new nn.GRUCell(3, 4), [/Relations \(2\)/, /RELATION_EXCLUDED_WEIGHT_TO_WEIGHT: Wr\.weight@0/]],
    ['MGUCell', () => new nn.MGUCell(3, 4), [/Relations \(2\)/, /RELATION_PARTIAL_PATH: Wf\.weight@0/]],
    ['LSTMCell', () => new nn.LSTMCell(3, 4), [/hidden_group_0: \[c, h\] .* S = 2/, /Relations \(4\)/]],
    ['MiniLSTM', () => new nn.MiniLSTM(3, 4), [/hidden_group_0: \[h\] .* S = 1\n/, /Relations \(3\)/]],
    ['LeakyRateReadout', () => new nn.LeakyRateReadout(3, 2), [/hidden_group_0: \[r\]/, /weight@0: EtpMatMul\(weight\)/]],
    ['ALIF', () => new Driven(3, new nn.ALIF(4)), [/\[neuron\.v, neuron\.a\] .* S = 2/]],
    ['ALIF detachReset', () => new Driven(3, new nn.ALIF(4, { detachReset: true })), [/hidden_group_0: \[neuron\.v\]/, /hidden_group_1: \[neuron\.a\]/]],
    ['GIF', () => new Driven(3, new nn.GIF(4)), [/\[neuron\.v, neuron\.i1, neuron\.i2\] .* S = 3/]],
    ['RSNN', () => new nn.RSNN(3, 4, 2, { synapse: 'expon' }), [/\[layer\.syn\.g, layer\.neuron\.v\] .* S = 2/, /hidden_group_1: \[out\.r\]/, /Relations \(3\)/]],
  ] as [string, () => bt.Module, RegExp[]][])('%s', (_name, make, patterns) => {
    const text = explain(make(), 3);
    for (const p of patterns) expect(text).toMatch(p);
  });
});

// ---------------------------------------------------------------------------
// forward semantics
// ---------------------------------------------------------------------------

describe('forward values', () => {
  test('Linear: W_eff = mask ∘ (sign ⊙ |W|), plus bias', () => {
    const l = bt.compile(new nn.Linear(3, 4, { mask: MASK, sign: [1, -1, 1], bInit: bt.init.normal() }), bt.BPTT, { inputShape: [3], batchSize: 2, dtype: 'float64' });
    try {
      const p = l.params();
      const x = rand([2, 3], prng(5));
      const y = l.update(x);
      for (let b = 0; b < 2; b++) {
        for (let o = 0; o < 4; o++) {
          let s = p.bias.data[o];
          for (let i = 0; i < 3; i++) s += x.data[b * 3 + i] * MASK[i][o] * [1, -1, 1][i] * Math.abs(p.weight.data[i * 4 + o]);
          expect(y.data[b * 4 + o]).toBeCloseTo(s, 12);
        }
      }
    } finally {
      l.dispose();
    }
  });

  test('LIF with hard reset and a refractory period matches a host simulation', () => {
    const tau = [2, 3, 5, 8];
    const model = new Driven(3, new nn.LIF(4, { tauMem: tau, reset: 'hard', vReset: -0.2, refractory: 2 }), true);
    const l = bt.compile(model, bt.BPTT, { inputShape: [3], batchSize: 1, dtype: 'float64', seed: 4 });
    try {
      const p = l.params();
      const rnd = prng(9);
      let v = Array.from({ length: 4 }, () => 0.5 + 0.6 * rnd());
      let count = [0, 1, 0, 2];
      l.setStates({ 'neuron.v': { data: Float64Array.from(v), shape: [1, 4], dtype: 'float64' }, 'neuron.refCount': { data: Float64Array.from(count), shape: [1, 4], dtype: 'float64' } });
      let spikes = 0;
      let held = 0;
      for (let t = 0; t < 12; t++) {
        const x = rand([1, 3], rnd, 0.5, 0.5);
        const out = l.update(x);
        const I = [0, 1, 2, 3].map((o) => p['fc.bias'].data[o] + [0, 1, 2].reduce((s, i) => s + x.data[i] * p['fc.weight'].data[i * 4 + o], 0));
        const nv: number[] = [];
        const nc: number[] = [];
        for (let k = 0; k < 4; k++) {
          const s = v[k] > 1 ? 1 : 0;
          const vr = s ? -0.2 : v[k];
          const a = Math.exp(-1 / tau[k]);
          let vn = a * vr + (1 - a) * I[k];
          if (count[k] > 0) {
            vn = vr;
            held++;
          }
          const sp = vn > 1 ? 1 : 0;
          spikes += sp;
          nc.push(sp ? 2 : Math.max(count[k] - 1, 0));
          nv.push(vn);
          expect(out.data[k]).toBeCloseTo(vn, 12);
          expect(out.data[4 + k]).toBe(sp);
        }
        v = nv;
        count = nc;
        expect(Array.from(l.states()['neuron.refCount'].data)).toEqual(count);
      }
      expect(spikes).toBeGreaterThan(0);
      expect(held).toBeGreaterThan(0);
    } finally {
      l.dispose();
    }
  });

  test('Expon conductance output is g (E_rev − v)', () => {
    const l = bt.compile(new ExponProbe(true), bt.BPTT, { inputShape: [2], batchSize: 2, dtype: 'float64' });
    try {
      const x = rand([2, 2], prng(6));
      const y = l.update(x);
      const g = l.states()['syn.g'].data;
      for (let i = 0; i < 4; i++) expect(y.data[i]).toBeCloseTo(g[i] * ([1, 2][i % 2] - x.data[i]), 12);
    } finally {
      l.dispose();
    }
  });
});

// ---------------------------------------------------------------------------
// (3) errors name the argument
// ---------------------------------------------------------------------------

describe('option and shape errors', () => {
  test.each([
    ['Linear inFeatures', () => new nn.Linear(0, 3), bt.ArgumentError, /Linear: inFeatures must be an integer >= 1; got 0/],
    ['Linear outFeatures', () => new nn.Linear(2, 1.5), bt.ArgumentError, /Linear: outFeatures/],
    ['Linear mask shape', () => new nn.Linear(3, 4, { mask: [[1, 0], [0, 1]] }), bt.ShapeError, /Linear: mask must have shape \(3, 4\)/],
    ['Linear mask values', () => new nn.Linear(2, 2, { mask: [[1, 0.5], [0, 1]] }), bt.ArgumentError, /Linear: mask must hold only 0 and 1; got 0.5/],
    ['Linear sign length', () => new nn.Linear(3, 4, { sign: [1, -1] }), bt.ShapeError, /Linear: sign must be .* array of 3 values/],
    ['Linear sign values', () => new nn.Linear(3, 4, { sign: [1, 2, 1] }), bt.ArgumentError, /Linear: sign\[1\] must be \+1 or -1; got 2/],
    ['Linear weightFn', () => new nn.Linear(3, 4, { weightFn: 3 as never }), bt.ArgumentError, /Linear: weightFn must be a function/],
    ['Linear unknown option', () => new nn.Linear(3, 4, { biass: true } as never), bt.ArgumentError, /Linear: unknown option 'biass'/],
    ['Linear wInit', () => new nn.Linear(3, 4, { wInit: 'xavier' as never }), bt.ArgumentError, /Linear: wInit must be an Initializer/],
    ['LeakyRateReadout tau < dt', () => new nn.LeakyRateReadout(3, 2, { tau: 0.5 }), bt.ArgumentError, /LeakyRateReadout: tau must be >= dt = 1 .*got 0.5/],
    ['LeakyRateReadout tau length', () => new nn.LeakyRateReadout(3, 2, { tau: [1, 2, 3] }), bt.ShapeError, /LeakyRateReadout: tau must be a number or an array of 2 values/],
    ['VanillaRNNCell activation', () => new nn.VanillaRNNCell(2, 3, { activation: 'swish' as never }), bt.ArgumentError, /VanillaRNNCell: activation must be one of 'tanh'/],
    ['GRUCell hiddenSize', () => new nn.GRUCell(2, 0), bt.ArgumentError, /GRUCell: hiddenSize must be an integer >= 1/],
    ['LSTMCell bias', () => new nn.LSTMCell(2, 3, { bias: 1 as never }), bt.ArgumentError, /LSTMCell: bias must be a boolean/],
    ['MiniGRU gateFromHidden', () => new nn.MiniGRU(2, 3, { gateFromHidden: 'yes' as never }), bt.ArgumentError, /MiniGRU: gateFromHidden must be a boolean/],
    ['LIF n', () => new nn.LIF(-1), bt.ArgumentError, /LIF: n must be an integer >= 1/],
    ['LIF tauMem length', () => new nn.LIF(3, { tauMem: [1, 2] }), bt.ShapeError, /LIF: tauMem must be a number or an array of 3 values/],
    ['LIF tauMem sign', () => new nn.LIF(3, { tauMem: [1, -2, 3] }), bt.ArgumentError, /LIF: tauMem\[1\] must be > 0/],
    ['LIF reset', () => new nn.LIF(3, { reset: 'medium' as never }), bt.ArgumentError, /LIF: reset must be one of 'soft', 'hard'; got "medium"/],
    ['LIF vTh <= vReset', () => new nn.LIF(3, { vTh: 0 }), bt.ArgumentError, /LIF: vTh must be > vReset/],
    ['LIF refractory', () => new nn.LIF(3, { refractory: 1.5 }), bt.ArgumentError, /LIF: refractory must be an integer >= 1/],
    ['LIF surrogate', () => new nn.LIF(3, { surrogate: 'sigmoid' as never }), bt.ArgumentError, /LIF: surrogate must be a Surrogate/],
    ['LIF dt', () => new nn.LIF(3, { dt: 0 }), bt.ArgumentError, /LIF: dt must be > 0/],
    ['ALIF tauAdapt', () => new nn.ALIF(3, { tauAdapt: -1 }), bt.ArgumentError, /ALIF: tauAdapt must be > 0/],
    ['ALIF unknown option', () => new nn.ALIF(3, { refractory: 2 } as never), bt.ArgumentError, /ALIF: unknown option 'refractory'/],
    ['GIF A2 length', () => new nn.GIF(3, { A2: [1, 2] }), bt.ShapeError, /GIF: A2 must be a number or an array of 3 values/],
    ['Expon tau', () => new nn.Expon(2, { tau: 0.2 }), bt.ArgumentError, /Expon: tau must be >= dt/],
    ['RecurrentSpikingLayer neuron', () => new nn.RecurrentSpikingLayer(2, 3, { neuron: 'hh' as never }), bt.ArgumentError, /RecurrentSpikingLayer: neuron must be one of 'lif', 'alif', 'gif'/],
    ['RecurrentSpikingLayer synapse', () => new nn.RecurrentSpikingLayer(2, 3, { synapse: 'alpha' as never }), bt.ArgumentError, /RecurrentSpikingLayer: synapse must be one of 'expon'/],
    ['RecurrentSpikingLayer COBA without synapse', () => new nn.RecurrentSpikingLayer(2, 3, { synapseOutput: { eRev: 1 } }), bt.ArgumentError, /synapseOutput \{ eRev \} needs synapse: 'expon'/],
    ['RecurrentSpikingLayer neuronOptions', () => new nn.RecurrentSpikingLayer(2, 3, { neuronOptions: { tauMem: [1, 2] } }), bt.ShapeError, /LIF: tauMem/],
    ['AlignPostProj sizes', () => new nn.AlignPostProj(new nn.Linear(2, 3), new nn.Expon(4)), bt.ArgumentError, /comm\.outFeatures \(3\) must equal syn\.size \(4\)/],
  ] as [string, () => unknown, typeof bt.BraintraceError, RegExp][])('%s', (_name, fn, cls, re) => {
    expect(fn).toThrow(cls);
    expect(fn).toThrow(re);
  });

  test('shape errors at trace time name the layer and the argument', () => {
    expect(() => bt.compile(new nn.GRUCell(3, 4), bt.BPTT, { inputShape: [2] })).toThrow(/GRUCell\.update: x must have shape \(\.\.\., 3\)/);
    expect(() => bt.compile(new nn.LeakyRateReadout(3, 2), bt.BPTT, { inputShape: [4] })).toThrow(bt.ShapeError);
    const mismatch = new Driven(3, new nn.LIF(4));
    mismatch.neuron = new nn.LIF(5);
    expect(() => bt.compile(mismatch, bt.BPTT, { inputShape: [3] })).toThrow(/LIF\.update: current must have shape \(B, 5\); got \(1, 4\)/);
    expect(() => bt.compile(new LeakyLinear(3, 4, { weightFn: (w) => bt.transpose(w) }), bt.BPTT, { inputShape: [3] })).toThrow(
      /Linear: weightFn must keep the weight's shape \(3, 4\); got \(4, 3\)/,
    );
  });
});
