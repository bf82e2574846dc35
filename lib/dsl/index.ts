/**
 * The model-description layer of braintrace: symbolic tensors and traced ops,
 * states and modules, initialisers, surrogate gradients, and the tracing entry
 * points that turn one step of a model into the graph IR.
 *
 * Free ops are exported flat (`add`, `tanh`, `matmul`, ...); initialisers and
 * surrogates are namespaces (`init.xavierNormal()`, `surrogate.arctan()`).
 */
export { Tensor } from './tensor';
export {
  type Operand,
  type Axes,
  normalizeAxis,
  broadcastShapes,
  broadcastTo,
  add,
  sub,
  mul,
  div,
  pow,
  minimum,
  maximum,
  lt,
  le,
  gt,
  ge,
  eq,
  ne,
  neg,
  square,
  sqrt,
  abs,
  exp,
  log,
  log1p,
  tanh,
  sigmoid,
  relu,
  leakyRelu,
  softplus,
  elu,
  gelu,
  sin,
  cos,
  clamp,
  stopGradient,
  spike,
  where,
  sum,
  mean,
  max,
  softmax,
  logSoftmax,
  reshape,
  expandDims,
  squeeze,
  transpose,
  slice,
  sliceAxis,
  select,
  concat,
  stack,
  matmul,
  elementWise,
} from './ops';
export {
  BaseState,
  ParamState,
  HiddenState,
  HiddenGroupState,
  State,
  type AnyStateKind,
  type InitContext,
  type StateValueInput,
} from './state';
export { Module, type InitStatesOptions } from './module';
export {
  traceFunction,
  traceModel,
  type InputSpec,
  type TraceLoss,
  type TraceModelOptions,
  type TracedModel,
} from './trace';
export { GraphBuilder, isTracing } from './builder';
export { Rng } from './random';
export * as init from './init';
export type { Initializer, KaimingOptions, Nonlinearity } from './init';
export * as surrogate from './surrogate';
export type { Surrogate } from './surrogate';
