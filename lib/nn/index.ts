/**
 * `bt.nn`: layers and neuron models on top of the DSL (the reference's
 * `braintrace.nn` plus the brainpy.state neurons its examples use).
 *
 * - Linear family: {@link Linear} (mask / weightFn / Dale sign), {@link LeakyRateReadout}.
 * - Rate cells: {@link VanillaRNNCell}, {@link GRUCell}, {@link MGUCell}, {@link LSTMCell},
 *   {@link MiniGRU}, {@link MiniLSTM}.
 * - Spiking: {@link LIF}, {@link ALIF}, {@link GIF}, synapse {@link Expon}.
 * - Wiring: {@link DeltaProj}, {@link AlignPostProj}, {@link RecurrentSpikingLayer}, {@link RSNN}.
 *
 * See docs/nn.md for the equations and what the eligibility-trace compiler makes of each layer.
 */
export { Linear, LeakyRateReadout, type LinearOptions, type LeakyRateReadoutOptions } from './linear';
export {
  VanillaRNNCell,
  GRUCell,
  MGUCell,
  LSTMCell,
  MiniGRU,
  MiniLSTM,
  type CellOptions,
  type MiniCellOptions,
} from './rnn';
export { LIF, ALIF, GIF, type NeuronOptions, type LIFOptions, type ALIFOptions, type GIFOptions } from './neurons';
export { Expon, type ExponOptions } from './synapses';
export {
  DeltaProj,
  AlignPostProj,
  RecurrentSpikingLayer,
  RSNN,
  type SynapseOutput,
  type RecurrentSpikingLayerOptions,
  type RSNNOptions,
} from './projections';
export { ACTIVATIONS, type Activation, type PerUnit } from './util';
