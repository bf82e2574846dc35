/**
 * The graph IR: plain data describing one step of a model (and, for learners,
 * its loss). Produced by the tracer in `lib/dsl`, analysed by `lib/compiler`,
 * lowered to a native plan by `lib/compiler/plan.ts`.
 *
 * Nodes are in topological order: a node only reads nodes with smaller ids.
 * Shapes are static; every value is dense and row-major.
 */
import type { OpKind } from './ops';

/** Element type of a graph and of every tensor in it. */
export type DType = 'float32' | 'float64';

/** One operation of the IR. */
export interface GraphNode {
  /** Position in {@link Graph.nodes}. */
  id: number;
  op: OpKind;
  /** Ids of the input nodes (all smaller than `id`). */
  inputs: number[];
  /** Static output shape ([] for a scalar). */
  shape: number[];
  /** Integer attributes (meaning per op: native/include/braintrace/ops.h). */
  ints: number[];
  /** Float attributes (meaning per op: native/include/braintrace/ops.h). */
  floats: number[];
}

/** A per-step data input of the graph (model input `x`, loss target, ...). */
export interface InputSlot {
  /** Node id of the Input leaf. */
  nodeId: number;
  /** Name of the input ('x', 'x1', 'target', ...). */
  name: string;
  /** Shape of one step's value, batch axis included. */
  shape: number[];
}

/** A trainable parameter read by the graph. */
export interface ParamSlot {
  nodeId: number;
  /** Dotted path of the ParamState in the model ('rnn.wz', 'out.weight'). */
  path: string;
  shape: number[];
}

/** Kinds of short-term state. */
export type StateKind = 'hidden' | 'hiddenGroup' | 'other';

/** A state read (and possibly written) by the step. */
export interface StateSlot {
  /** Node id of the State leaf holding the value at the start of the step. */
  nodeId: number;
  /** Dotted path of the state in the model ('rnn.h'). */
  path: string;
  kind: StateKind;
  /** Shape with the batch axis: (B, *varshape) or (B, *varshape, S) for a hidden group. */
  shape: number[];
  /** Number of stacked states S (1 for a plain HiddenState or other state). */
  numState: number;
}

/** A row of the graph's output table. */
export interface GraphOutput {
  kind: 'output' | 'stateNew' | 'loss';
  nodeId: number;
  /** Output slot (kind 'output'), state slot (kind 'stateNew') or 0 (kind 'loss'). */
  index: number;
}

/** A traced one-step computation. */
export interface Graph {
  dtype: DType;
  nodes: GraphNode[];
  inputs: InputSlot[];
  params: ParamSlot[];
  states: StateSlot[];
  /** Model outputs (slot order), then new state values (state order), then the loss if any. */
  outputs: GraphOutput[];
}
