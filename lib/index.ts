/**
 * braintrace for Node: online training of recurrent and spiking neural
 * networks by eligibility traces, on a C++ core (CPU, and CUDA when a GPU is
 * present), from TypeScript.
 *
 * The public surface:
 * - the model DSL: `Module`, `ParamState`, `HiddenState`, `HiddenGroupState`,
 *   `State`, symbolic `Tensor` ops (`add`, `tanh`, `matmul`, `spike`, ...),
 *   `init.*` initialisers and `surrogate.*` surrogate gradients;
 * - host tensors: `tensor`, `zeros`, `HostTensor`;
 * - learners: `compile(model, BPTT, options)`;
 * - runtime: `info()`, typed errors.
 */
export * from './dsl/index';
export {
  tensor,
  zeros,
  full,
  numel,
  isHostTensor,
  toDType,
  cloneHost,
  type HostTensor,
  type HostData,
  type NestedArray,
  type TensorLike,
  type DType,
} from './tensor';
export {
  BraintraceError,
  ShapeError,
  DTypeError,
  ArgumentError,
  NotSupportedError,
  CompilationError,
  NativeError,
  DisposedError,
  BusyError,
  NonFiniteError,
  AbortError,
  type DiagnosticRecord,
  type ErrorDetails,
  type NonFiniteDetails,
} from './runtime/errors';
export { info, type BraintraceInfo, type CpuKernels } from './runtime/info';
export { compile, type AlgorithmClass } from './compile';
export { Learner, type CompileOptions, type GradOptions, type GradResult, type RunOptions } from './algorithms/learner';
export { type CallOptions, type CallProgress, type NonFinitePolicy } from './runtime/control';
export { BPTT } from './algorithms/bptt';
export {
  BUILTIN_LOSSES,
  type Loss,
  type LossFunction,
  type LossName,
  type Reduction,
} from './algorithms/losses';
export { OP_NAMES, SURROGATE_NAMES, type OpKind, type SurrogateKind } from './graph/ops';
export type { Graph, GraphNode, GraphOutput, InputSlot, ParamSlot, StateSlot, StateKind } from './graph/ir';
export { encodePlan, type EncodedPlan } from './compiler/plan';
export {
  ETraceGraph,
  analyseEtraceGraph,
  type HiddenGroup,
  type GroupMember,
  type Relation,
  type PathClass,
  type Diagnostic,
  type DiagnosticKind,
  type EtraceCompileOptions,
} from './compiler/etrace';
export {
  ETraceVjpGraphExecutor,
  compileEtraceGraph,
  type CompileEtraceGraphOptions,
  type ExecutorOptions,
  type VjpMethod,
  type Hid2Weight,
  type H2wH2hResult,
  type H2wH2hL2hResult,
  type L2hOptions,
} from './executor/executor';
export { SingleStepData, MultiStepData, hasMultiStepData, type StepArg } from './executor/data';
export {
  OnlineLearner,
  ParamDimVjpAlgorithm,
  IODimVjpAlgorithm,
  D_RTRL,
  ES_D_RTRL,
  pp_prop,
  decayOf,
  type OnlineOptions,
  type OnlineGradOptions,
  type EvolveOptions,
  type PpPropOptions,
} from './algorithms/online';
export * as nn from './nn/index';
export * as optim from './optim/index';
export type { Optimizer } from './optim/index';
export {
  fit,
  streamStep,
  saveCheckpoint,
  loadCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  CheckpointError,
  CHECKPOINT_LIMITS,
  type FitBatch,
  type FitData,
  type FitOptions,
  type FitProgress,
  type FitResult,
  type UpdateEvery,
  type StreamStepOptions,
  type StreamStepResult,
  type Checkpoint,
  type CheckpointErrorReason,
  type SaveCheckpointOptions,
  type RestoreCheckpointOptions,
  type ReadCheckpointOptions,
  type LoadCheckpointOptions,
  type CheckpointKey,
} from './train/index';
export { load } from './train/load';
