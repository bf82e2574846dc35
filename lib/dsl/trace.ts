/**
 * Tracing entry points: turn a model's `update()` (or a plain function of
 * tensors) into a {@link Graph}.
 *
 * Both entry points run the user code exactly once with symbolic tensors;
 * every op records a node with its shape checked. Tracing is not re-entrant
 * (a trace started inside a trace throws NotSupportedError) and all global
 * state is released in `finally`, also when the user code throws.
 */
import type { DType, Graph } from '../graph/ir';
import { ArgumentError, ShapeError, fmtShape } from '../runtime/errors';
import { checkDType, checkShape, describe } from '../tensor';
import { beginTrace, endTrace, type GraphBuilder } from './builder';
import type { Module } from './module';
import { reshape } from './ops';
import { BaseState, ParamState } from './state';
import { Tensor } from './tensor';

/** One input of {@link traceFunction}. */
export interface InputSpec {
  /** Full shape of the input (no batch axis is added). */
  shape: readonly number[];
  /** Input name (default 'x', 'x1', 'x2', ...). */
  name?: string;
}

/** Default name of input `i`: 'x', 'x1', 'x2', ... */
function defaultInputName(i: number): string {
  return i === 0 ? 'x' : `x${i}`;
}

/** Collects the Tensor(s) a traced function returned. */
function collectOutputs(b: GraphBuilder, result: unknown, what: string): Tensor[] {
  const list = result instanceof Tensor ? [result] : Array.isArray(result) ? result : null;
  if (list === null) {
    throw new ArgumentError(`${what} must return a Tensor or an array of Tensors; got ${describe(result)}`);
  }
  list.forEach((t, i) => {
    if (!(t instanceof Tensor)) {
      throw new ArgumentError(`${what} must return Tensors; output ${i} is ${describe(t)}`);
    }
    b.check(t, `${what}: output ${i}`);
  });
  return list as Tensor[];
}

/**
 * Traces a plain function of tensors into a Graph: each spec becomes an Input
 * leaf of exactly that shape (slot order = spec order), `fn` is called once
 * with the symbolic inputs, and the returned Tensor (or each Tensor of the
 * returned array) becomes an 'output' row. The graph has no params or states.
 *
 * @param fn function of symbolic tensors returning a Tensor or Tensor[].
 * @param inputSpecs one `{ shape, name? }` per argument of `fn`.
 * @param opts.dtype graph dtype (default 'float32').
 */
export function traceFunction(
  fn: (...inputs: Tensor[]) => Tensor | Tensor[],
  inputSpecs: readonly InputSpec[],
  opts: { dtype?: DType } = {},
): Graph {
  if (typeof fn !== 'function') throw new ArgumentError(`traceFunction: fn must be a function; got ${describe(fn)}`);
  if (!Array.isArray(inputSpecs)) {
    throw new ArgumentError(`traceFunction: inputSpecs must be an array of { shape, name? }; got ${describe(inputSpecs)}`);
  }
  const dtype = checkDType(opts.dtype ?? 'float32', 'traceFunction: dtype');
  const specs = inputSpecs.map((s, i) => ({
    shape: checkShape(s?.shape as number[], `traceFunction: inputSpecs[${i}].shape`),
    name: s.name ?? defaultInputName(i),
  }));
  const b = beginTrace(dtype, 'traceFunction');
  try {
    const xs = specs.map((s) => b.addInput(s.name, s.shape));
    const outs = collectOutputs(b, fn(...xs), 'traceFunction: fn');
    outs.forEach((t, i) => b.addOutput('output', t, i));
    return b.finish();
  } finally {
    endTrace(b);
  }
}

/** A loss appended to a traced model. */
export interface TraceLoss {
  /** loss(y, target) → scalar, with y the model's first output. */
  fn: (y: Tensor, target: Tensor) => Tensor;
  /** Per-sample target shape (the target input is `(B, ...targetShape)`). */
  targetShape: readonly number[];
}

/** Options of {@link traceModel}. */
export interface TraceModelOptions {
  /** Per-sample shape of each model input (the Input leaves are `(B, ...shape)`). */
  inputShapes: readonly (readonly number[])[];
  /** Names of the inputs (default 'x', 'x1', ...). */
  inputNames?: readonly string[];
  /** Batch size B (default: the model's last initStates batch size, else 1). */
  batchSize?: number;
  /** Graph dtype (default: the model's last initStates dtype, else 'float32'). */
  dtype?: DType;
  /** Optional loss: adds an Input 'target' after the model inputs and a 'loss' output row. */
  loss?: TraceLoss;
}

/** The result of {@link traceModel}. */
export interface TracedModel {
  /** The traced step. */
  graph: Graph;
  /** ParamStates in param-slot order (`graph.params[i]` is `params[i]`). */
  params: ParamState[];
  /** Non-param states in state-slot order (`graph.states[i]` is `states[i]`). */
  states: BaseState[];
  /** Shapes of the model outputs, in output-slot order. */
  outputShapes: number[][];
  /** Batch size used. */
  batchSize: number;
  /** dtype used. */
  dtype: DType;
}

/**
 * Traces one step of `model` into a Graph.
 *
 * Leaves, in node order: one Input per model input `(B, ...inputShapes[i])`
 * (slots 0..), the Input 'target' `(B, ...targetShape)` when a loss is given
 * (next slot), one Param per ParamState (slots in path order), one State per
 * other state (slots in path order; kind 'hidden' | 'hiddenGroup' | 'other',
 * shape `(B, ...)` / `(B, ..., S)`). Then `model.update(...inputs)` is called
 * once. Output rows: the model outputs ('output', slot order), then one
 * 'stateNew' row per state slot (the assigned value, or the leaf itself when
 * the state was not written), then 'loss' when a loss is given (its value
 * must have one element: else ShapeError).
 *
 * The model does not need to be initialised: only declared shapes are used.
 */
export function traceModel(model: Module, opts: TraceModelOptions): TracedModel {
  if (typeof model !== 'object' || model === null || typeof (model as Module).update !== 'function') {
    throw new ArgumentError(`traceModel: model must be a Module with an update() method; got ${describe(model)}`);
  }
  if (typeof opts !== 'object' || opts === null || !Array.isArray(opts.inputShapes)) {
    throw new ArgumentError('traceModel: options.inputShapes (an array of per-sample shapes) is required');
  }
  const settings = model.initSettings;
  const batchSize = opts.batchSize ?? settings?.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ArgumentError(`traceModel: batchSize must be an integer >= 1; got ${String(batchSize)}`);
  }
  const dtype = checkDType(opts.dtype ?? settings?.dtype ?? 'float32', 'traceModel: dtype');
  const inputShapes = opts.inputShapes.map((s, i) => checkShape(s as number[], `traceModel: inputShapes[${i}]`));
  const names = opts.inputShapes.map((_, i) => opts.inputNames?.[i] ?? defaultInputName(i));
  if (opts.inputNames !== undefined && opts.inputNames.length !== inputShapes.length) {
    throw new ArgumentError(
      `traceModel: inputNames has ${opts.inputNames.length} names for ${inputShapes.length} inputs`,
    );
  }
  let targetShape: number[] | null = null;
  if (opts.loss !== undefined) {
    if (typeof opts.loss.fn !== 'function') throw new ArgumentError('traceModel: loss.fn must be a function (y, target) => Tensor');
    targetShape = checkShape(opts.loss.targetShape as number[], 'traceModel: loss.targetShape');
  }

  const all = [...model.states().values()];
  const params = all.filter((s): s is ParamState => s instanceof ParamState);
  const states = all.filter((s) => !(s instanceof ParamState));

  const b = beginTrace(dtype, 'traceModel');
  try {
    const xs = inputShapes.map((s, i) => b.addInput(names[i], [batchSize, ...s]));
    const target = targetShape === null ? null : b.addInput('target', [batchSize, ...targetShape]);
    for (const p of params) p._bind(b, b.addParam(p.path, p.shape));
    for (const s of states) {
      const kind = s.kind === 'param' ? 'other' : s.kind;
      s._bind(b, b.addState(s.path, kind, s.fullShape(batchSize), s.numState));
    }
    const outs = collectOutputs(b, model.update(...xs), 'traceModel: update()');
    outs.forEach((t, i) => b.addOutput('output', t, i));
    states.forEach((s, i) => b.addOutput('stateNew', s._traceResult(), i));
    if (opts.loss !== undefined && target !== null) {
      if (outs.length === 0) throw new ArgumentError('traceModel: a loss needs update() to return at least one output');
      const l = opts.loss.fn(outs[0], target);
      if (!(l instanceof Tensor)) throw new ArgumentError(`traceModel: loss.fn must return a Tensor; got ${describe(l)}`);
      b.check(l, 'traceModel: loss');
      if (l.size !== 1) {
        throw new ShapeError(`traceModel: the loss must be a scalar; got shape ${fmtShape(l.shape)}`);
      }
      b.addOutput('loss', l.ndim === 0 ? l : reshape(l, []), 0);
    }
    return {
      graph: b.finish(),
      params,
      states,
      outputShapes: outs.map((t) => t.shape.slice()),
      batchSize,
      dtype,
    };
  } finally {
    for (const s of all) s._unbind();
    endTrace(b);
  }
}
