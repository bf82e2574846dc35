/**
 * The native binding: the one contract between TypeScript and C++.
 *
 * Everything here is implemented by `native/binding/*.cc` over the plain C++ API
 * in `native/include/braintrace/api.h`. Argument checks that users can trigger are
 * done in TypeScript first (with typed errors); the binding checks again and
 * throws `TypeError`/`RangeError` (with `code` `'ERR_BRAINTRACE_INVALID_ARGUMENT'`)
 * or an `Error` whose `code` is one of {@link NativeErrorCode}, so a wrong call
 * never crashes the process.
 *
 * Every entry point reads all of its arguments before it takes a pointer into any
 * typed array (docs/hardening.md, "The native boundary"): a getter that detaches or
 * resizes an array passed earlier in the same call gives a `TypeError` / `RangeError`
 * and the call does nothing; one that disposes the object or starts an async call on
 * it gives `ERR_BRAINTRACE_DISPOSED` / `ERR_BRAINTRACE_BUSY`.
 *
 * All typed arrays passed to a session must be of the session's dtype
 * (`Float32Array` for `'float32'`, `Float64Array` for `'float64'`) and of the exact
 * length of the slot they fill. Results are fresh JS-owned typed arrays
 * (no external buffers, so Electron's memory cage is respected).
 */

/** Element type of a plan and of every array of its session. */
export type NativeDType = 'float32' | 'float64';

/** A typed array in a session's dtype. */
export type NativeArray = Float32Array | Float64Array;

/** Stable error codes carried by `err.code` on errors thrown by the binding. */
export type NativeErrorCode =
  | 'ERR_BRAINTRACE_INVALID_ARGUMENT'
  | 'ERR_BRAINTRACE_INVALID_PLAN'
  | 'ERR_BRAINTRACE_OUT_OF_MEMORY'
  | 'ERR_BRAINTRACE_CUDA'
  | 'ERR_BRAINTRACE_BUSY'
  | 'ERR_BRAINTRACE_INTERNAL'
  | 'ERR_BRAINTRACE_DISPOSED'
  | 'ERR_BRAINTRACE_NON_FINITE'
  | 'ERR_BRAINTRACE_ABORTED';

/**
 * Extra properties of binding errors:
 * - code 'ERR_BRAINTRACE_NON_FINITE': `tensor` (native names: 'inputs[i]', 'params[i]',
 *   'states[i]', 'traces[i]', 'loss', 'grads[i]'; slots, renamed to paths by TypeScript),
 *   `step` (within the call; -1: no time axis) and `index` (first bad element within that
 *   step's slice; -1: not applicable);
 * - code 'ERR_BRAINTRACE_ABORTED' (and NON_FINITE from a sequence call): `stepsDone`, the
 *   steps whose effect on the stored states and traces was kept (see
 *   {@link NativeSession.runSequenceAsync} and {@link NativeSession.runOnlineAsync}).
 */
export interface NativeErrorFields {
  tensor?: string;
  step?: number;
  index?: number;
  stepsDone?: number;
}

/**
 * Optional per-call control of the async session calls. `onProgress(done, total)` is called
 * on the JS thread while the call runs, at most every 50 ms, with `done` growing and a final
 * call `(total, total)` when the call succeeds. Units: steps (T) for forward-only and online
 * calls; T forward plus T reverse steps (total 2T) for runSequenceAsync with computeGrads.
 * A throwing onProgress cancels the call, which then rejects with that exception.
 * Cancel with {@link NativeSession.cancelRun}. Unknown keys throw TypeError.
 */
export interface NativeCallControl {
  onProgress?: (done: number, total: number) => void;
}

/** What the native runtime reports about itself. */
export interface NativeInfo {
  /** True when this binary contains CUDA kernels (the cmake-js build with nvcc). */
  cudaCompiled: boolean;
  /** CUDA devices that answered the probe (0 when not compiled or no driver). */
  deviceCount: number;
  /** CUDA runtime version (e.g. 13000), 0 when not compiled. */
  cudaRuntimeVersion: number;
  /** Backend that new sessions use. */
  backend: 'cpu' | 'cuda';
  /** Why the backend is 'cpu' ('' when it is 'cuda'). */
  fallbackReason: string;
  /** Size of the native CPU thread pool. */
  threads: number;
  /**
   * The CPU kernels' run-time choices: the widest instruction set this CPU runs for each
   * family, unless BRAINTRACE_GEMM_KERNEL, BRAINTRACE_EW_ISA or BRAINTRACE_TRACE_ISA caps it.
   */
  cpuKernels: {
    gemm: 'avx512' | 'avx2' | 'neon' | 'portable';
    elementWise: 'avx2' | 'portable';
    trace: 'avx512' | 'avx2' | 'portable';
  };
}

/** Native allocation counters (bytes held by sessions' buffers). */
export interface NativeMemoryStats {
  liveBytes: number;
  peakBytes: number;
  allocations: number;
}

/** One row of a plan's output table. */
export interface NativeOutputEntry {
  /** 0 model output, 1 new state value, 2 loss. */
  kind: 0 | 1 | 2;
  /** Output slot (kind 0), state slot (kind 1) or 0 (kind 2). */
  index: number;
  shape: number[];
}

/** A member of a hidden group: its State leaf, the node of its new value, its width. */
export interface NativeGroupMember {
  leafNode: number;
  newNode: number;
  /** 1 for a HiddenState, S_m for a HiddenGroupState. */
  width: number;
}

/**
 * A per-position Jacobian of one step (see JacobianRequest in api.h).
 * kind 'hid2hid': D (P, S, S), D[p, a, b] = d h_a^t[p] / d h_b^{t-1}[p].
 * kind 'df': df (P, S), df[p, a] = d h_a^t[p] / d y[p] for the ETP output `yNode`.
 */
export interface NativeJacobianRequest {
  kind: 'hid2hid' | 'df';
  members: NativeGroupMember[];
  yNode?: number;
  /** Nodes whose tangent is forced to zero. */
  blocked?: number[];
  /** Probe one position at a time (exact blocks when positions couple). */
  probePositions?: boolean;
  /** P = B * prod(varshape). */
  positions: number;
}

/** Arguments of {@link NativeSession.evaluate}: one step with explicit values. */
export interface NativeEvalArgs {
  /** One array per input slot (required). */
  inputs: NativeArray[];
  /** One entry per param slot; null (or a missing array) = the stored value. */
  params?: (NativeArray | null)[];
  /** One entry per state slot; null = the stored value. */
  states?: (NativeArray | null)[];
  /** Forward mode: tangents per slot (null = zero). Give any of the three to request a JVP. */
  inputTangents?: (NativeArray | null)[];
  paramTangents?: (NativeArray | null)[];
  stateTangents?: (NativeArray | null)[];
  /** Reverse mode: one cotangent per output-table entry (null = zero). */
  outputCotangents?: (NativeArray | null)[];
  /** Node ids whose forward values are returned in `fetchedValues`. */
  fetchValues?: number[];
  /** With a VJP: node ids whose complete cotangents are returned in `fetchedCotangents`. */
  fetchCotangents?: number[];
  /** With a VJP: nodes the reverse sweep does not propagate through (their cotangent is still fetchable). */
  stopCotangents?: number[];
  /** Per-position Jacobians of this step, returned in `jacobians`. */
  jacobians?: NativeJacobianRequest[];
}

/** Result of {@link NativeSession.evaluate}. */
export interface NativeEvalResult {
  /** Values of every output-table entry, in table order. */
  outputs: NativeArray[];
  /** Present when a JVP was requested: tangents of every output-table entry. */
  outputTangents?: NativeArray[];
  /** Present when a VJP was requested: cotangents of every leaf slot. */
  inputCotangents?: NativeArray[];
  paramCotangents?: NativeArray[];
  stateCotangents?: NativeArray[];
  /** Per fetchValues entry. */
  fetchedValues?: NativeArray[];
  /** Per fetchCotangents entry (VJP only). */
  fetchedCotangents?: NativeArray[];
  /** Per jacobians entry: P*S*S ('hid2hid') or P*S ('df') values. */
  jacobians?: NativeArray[];
}

/** Arguments of {@link NativeSession.runSequence}. */
export interface NativeSequenceArgs {
  /** Number of steps T (>= 1). */
  steps: number;
  /** Per input slot: T * numel(slot) values, time-major. */
  inputs: NativeArray[];
  /** T weights of the per-step losses in the objective (default all 1). */
  lossScale?: Float64Array;
  /** Run reverse mode through all T steps (BPTT) and return gradients. */
  computeGrads?: boolean;
  /** Per step: node values, stacked (T * numel). */
  fetchValues?: number[];
  /** Per step: per-position Jacobians, stacked (T * P*S*S or T * P*S). */
  jacobians?: NativeJacobianRequest[];
}

/** Result of {@link NativeSession.runSequence}. */
export interface NativeSequenceResult {
  /** Per model-output slot: T * numel(slot) values, time-major. */
  outputs: NativeArray[];
  /** The T per-step losses (empty when the plan has no loss). */
  losses: Float64Array;
  /** Per param slot: d objective / d param (only with computeGrads). */
  paramGrads?: NativeArray[];
  /** Per state slot: d objective / d initial state (only with computeGrads). */
  initialStateGrads?: NativeArray[];
  /** Per fetchValues entry: T * numel(node). */
  fetchedValues?: NativeArray[];
  /** Per jacobians entry, stacked over the T steps. */
  jacobians?: NativeArray[];
}

/** A hidden group as configured for online learning (see native/include/braintrace/online.h). */
export interface NativeOnlineGroup {
  members: NativeGroupMember[];
  positions: number;
  zeroRecurrence: boolean;
  probePositions: boolean;
}

/** A relation as configured for online learning. */
export interface NativeOnlineRelation {
  kind: 'dense' | 'elementWise';
  /** Dense: the EtpMatMul's x input node; omitted for elementWise. */
  xNode?: number;
  yNode: number;
  weightSlot: number;
  /** Param slot of the bias, or -1 / omitted. */
  biasSlot?: number;
  /**
   * The op's weight input node when it is a transform of the weight ParamState (mask, sign
   * constraint, weight function; it must depend on that Param leaf and constants only);
   * -1 / omitted: the weight input is the Param leaf itself.
   */
  weightNode?: number;
  /** The op's bias input node when it is a transform of the bias ParamState; -1 / omitted: raw. */
  biasNode?: number;
  groups: number[];
  /** Per target group: probe df one position at a time. */
  tailProbe: boolean[];
}

/** Configuration of the eligibility traces of a session. */
export interface NativeOnlineConfig {
  algorithm: 'd_rtrl' | 'pp_prop';
  /** pp_prop decays in [0, 1). */
  decayX?: number;
  decayF?: number;
  groups: NativeOnlineGroup[];
  relations: NativeOnlineRelation[];
  blockedTransition: number[];
  etpNodes: number[];
  nonTemporalSlots: number[];
}

/** Arguments of {@link NativeSession.runOnline}. */
export interface NativeOnlineArgs {
  steps: number;
  /** Per input slot (targets included): T * numel, time-major. */
  inputs: NativeArray[];
  /** T loss weights (0 masks a step); default all 1. */
  lossScale?: Float64Array;
  /** false: evolve states and traces only. Default true. */
  computeGrads?: boolean;
  /** 1 (default) single-step; k >= 2 windows of k steps (T % k == 0). */
  chunk?: number;
}

/**
 * The optional second argument of {@link NativeSession.runOnline} (not of runOnlineAsync):
 * where a streaming step's results go, to save the per-call allocations.
 */
export interface NativeOnlineInto {
  /** One array per param slot, stored before the run with the checks of setParams (as a setParams call just before it would). */
  params?: NativeArray[];
  /** With computeGrads: one array per param slot (its numel) that receives the gradients; the result then has no `paramGrads`. */
  gradsOut?: NativeArray[];
  /** A Float64Array with one entry per loss of the call (T, or 0 without computeGrads or a loss) that receives them. */
  lossesOut?: Float64Array;
  /** false: no outputs (default true). */
  outputs?: boolean;
  /**
   * With outputs: one array per model-output slot (steps * its numel) that receives the
   * outputs; the result then has no `outputs` (a streaming step copies them out in JS, which
   * is cheaper than a fresh native array per call).
   */
  outputsOut?: NativeArray[];
  /**
   * With computeGrads: after the run, one step of `optimizer` (bound by an earlier step, of the
   * session's dtype) on `params` (its bound path order; updated in place) from the call's
   * gradients, `slots[k]` the param slot of its path k, as `optimizer.step(params, grads, lr,
   * maxNorm, nonFinite)` would; then, unless skipped, the updated params are stored into the
   * session. The result carries `gradNorm` and `skipped`, and no `paramGrads` (the update
   * consumed them; `gradsOut` still receives them). A failed step throws its error with
   * `stage: 'update'` (its names are the optimizer's: params[k] / grads[k]).
   */
  update?: {
    optimizer: NativeOptimizer;
    params: NativeArray[];
    slots: number[];
    lr: number;
    maxNorm?: number;
    nonFinite?: 'error' | 'skipUpdate' | 'allow';
  };
}

/**
 * Result of {@link NativeSession.runOnline} with `into`: only what the `into` arrays did not
 * take (`outputs` unless `outputs: false` or `outputsOut`, `losses` without `lossesOut`,
 * `paramGrads` with computeGrads and without `gradsOut` or `update`).
 */
export type NativeOnlineIntoResult = Partial<NativeOnlineResult> & { gradNorm?: number; skipped?: boolean };

/** Result of {@link NativeSession.runOnline}. */
export interface NativeOnlineResult {
  /** Per model-output slot: T * numel. */
  outputs: NativeArray[];
  /** T per-step losses (empty without computeGrads). */
  losses: Float64Array;
  /** Per param slot (computeGrads only). */
  paramGrads?: NativeArray[];
}

/** One trace buffer. */
export interface NativeTraceInfo {
  name: string;
  shape: number[];
}

/** A validated plan with its stored params and states, living in native memory. */
export interface NativeSession {
  readonly dtype: NativeDType;
  readonly backend: 'cpu' | 'cuda';
  readonly numInputs: number;
  readonly numParams: number;
  readonly numStates: number;
  readonly numOutputs: number;
  readonly hasLoss: boolean;
  inputShape(slot: number): number[];
  paramShape(slot: number): number[];
  stateShape(slot: number): number[];
  outputShape(slot: number): number[];
  outputEntries(): NativeOutputEntry[];

  setParam(slot: number, data: NativeArray): void;
  /**
   * `setParam(i, data[i])` for every slot i in order, in one native call (`data` has one array
   * per param slot); stops at the first failure as the calls one by one would.
   */
  setParams(data: NativeArray[]): void;
  getParam(slot: number): NativeArray;
  setState(slot: number, data: NativeArray): void;
  getState(slot: number): NativeArray;

  /** One step; stored values unchanged. Synchronous. */
  evaluate(args: NativeEvalArgs): NativeEvalResult;
  /** T steps in one call, synchronous; advances the stored states. */
  runSequence(args: NativeSequenceArgs): NativeSequenceResult;
  /**
   * The same on the native thread pool; the session is busy until it settles. `control`:
   * progress (see {@link NativeCallControl}). Cancelled by {@link cancelRun} (or worker /
   * process exit): rejects with code ERR_BRAINTRACE_ABORTED and `stepsDone`; without
   * computeGrads the stored states are those after `stepsDone` steps, with computeGrads
   * (BPTT) they are unchanged (`stepsDone` 0). Non-finite inputs (setFiniteChecks data) or
   * losses / gradients (results) reject with ERR_BRAINTRACE_NON_FINITE (same state rules).
   */
  runSequenceAsync(args: NativeSequenceArgs, control?: NativeCallControl): Promise<NativeSequenceResult>;

  /** Configures (and zeroes) the eligibility traces. */
  configureOnline(config: NativeOnlineConfig): void;
  /** T steps of online learning in one call, synchronous. */
  runOnline(args: NativeOnlineArgs): NativeOnlineResult;
  /** The same, with the results (and the weights to store first) in the caller's arrays: see {@link NativeOnlineInto}. */
  runOnline(args: NativeOnlineArgs, into: NativeOnlineInto | undefined): NativeOnlineIntoResult;
  /**
   * `runOnline({ steps: 1, inputs: y === undefined ? [x] : [x, y], computeGrads }, { params,
   * gradsOut, lossesOut, outputs, outputsOut, update })` with `update` made of the last six
   * arguments (`update` absent when `optimizer` is undefined): one step (chunk 1, no
   * lossScale) with its arguments positional, the per-call path of a streaming step (no
   * property reads). The same checks, error names, run and result as that runOnline call,
   * except that with an update `stats` (a Float64Array of 2), when given, receives
   * `[gradNorm, skipped ? 1 : 0]` and the result then carries neither.
   */
  runOnlineStep(
    x: NativeArray,
    y: NativeArray | undefined,
    computeGrads: boolean,
    params: NativeArray[] | undefined,
    gradsOut: NativeArray[] | undefined,
    lossesOut: Float64Array | undefined,
    outputs: boolean,
    outputsOut: NativeArray[] | undefined,
    optimizer?: NativeOptimizer,
    updateParams?: NativeArray[],
    slots?: number[],
    lr?: number,
    maxNorm?: number,
    nonFinite?: 'error' | 'skipUpdate' | 'allow',
    stats?: Float64Array,
  ): NativeOnlineIntoResult;
  /**
   * The same on the native thread pool, with optional progress (see {@link NativeCallControl}).
   * Cancelled by {@link cancelRun}: rejects with ERR_BRAINTRACE_ABORTED; the stored states,
   * traces and trace step counter are exactly those after `stepsDone` steps of the call
   * (window mode stops at a window boundary or inside a window's trace advance).
   */
  runOnlineAsync(args: NativeOnlineArgs, control?: NativeCallControl): Promise<NativeOnlineResult>;
  /**
   * Asks the in-flight async call of this session to stop (it checks between steps and
   * between the nodes of a step, so it stops within milliseconds). Returns whether a call
   * was in flight. Safe to call at any time (from an AbortSignal listener).
   */
  cancelRun(): boolean;
  /**
   * Which NaN / infinity checks the session makes (both true after createSession):
   * `data`: run inputs (per step, as they are copied) and setParam / setState / setTrace;
   * `results`: per-step losses and gradient accumulators of runs with gradients.
   */
  setFiniteChecks(data: boolean, results: boolean): void;
  /** Zeroes the traces and the trace step counter. */
  resetTraces(): void;
  /** Names and shapes of the trace buffers. */
  traceInfo(): NativeTraceInfo[];
  getTrace(index: number): NativeArray;
  setTrace(index: number, data: NativeArray): void;
  /** Trace steps taken since configuration / reset (pp_prop's bias-correction counter). */
  traceSteps(): number;
  setTraceSteps(n: number): void;
  /**
   * The element-wise fusion decided when the session was created: `enabled` (false when
   * the environment variable BRAINTRACE_FUSE was "0" then), `groups` of two or more
   * element-wise nodes run as one fused task per sweep, the `fusedNodes` in them, and the
   * `items` (groups and single nodes) of the sweep schedule. Results never depend on it.
   */
  fusionInfo(): { enabled: boolean; groups: number; fusedNodes: number; items: number };
  /**
   * Matrix products (MatMul / EtpMatMul nodes) with a last-axis Concat operand whose VJP
   * skips the blocks of G W^T no concat input wants (an RNN's [x, h] W never forms G W_x^T),
   * decided when the session was created: `split`, the product writes the inputs'
   * cotangents directly (the concat is read by nothing else); `trimmed`, it computes only the
   * wanted columns of the concat's cotangent (the concat has other readers, or a split would
   * reorder a cotangent's sum). Both 0 when the
   * environment variable BRAINTRACE_SPLIT_CONCAT was "0" then. Results never depend on
   * them, bit for bit.
   */
  splitConcats(): { split: number; trimmed: number };

  /** Frees native memory now; later calls throw ERR_BRAINTRACE_DISPOSED. Idempotent. */
  dispose(): void;
  readonly disposed: boolean;
}

/** Kinds of {@link NativeBinding.createOptimizer}. */
export type NativeOptimizerKind = 'sgd' | 'adam' | 'adamw' | 'rmsprop';

/**
 * Hyper-parameters of {@link NativeBinding.createOptimizer} (PyTorch semantics; a kind
 * ignores the fields it does not use; unknown fields throw TypeError). Every number must
 * be finite; the binding throws RangeError naming the field otherwise.
 */
export interface NativeOptimizerHyper {
  /** SGD / RMSProp momentum μ >= 0 (default 0: no momentum buffer). */
  momentum?: number;
  /** SGD dampening in [0, 1] (default 0). */
  dampening?: number;
  /** L2 penalty >= 0 added to the gradient (SGD, Adam, RMSProp) or decoupled decay p -= lr·wd·p (AdamW). Default 0. */
  weightDecay?: number;
  /** SGD Nesterov momentum (requires momentum > 0 and dampening 0). Default false. */
  nesterov?: boolean;
  /** Adam/AdamW β1, β2 in [0, 1) (defaults 0.9, 0.999). */
  beta1?: number;
  beta2?: number;
  /** Adam/AdamW/RMSProp ε >= 0, added outside the square root (default 1e-8). */
  eps?: number;
  /** RMSProp smoothing α in [0, 1] (default 0.99). */
  alpha?: number;
  /** RMSProp: normalise by the centred second moment (an estimate of the variance). Default false. */
  centered?: boolean;
}

/**
 * A native optimizer (see native/core/optim.h). It owns per-parameter state buffers in
 * native memory (counted in {@link NativeBinding.memoryStats}), allocated zero-filled by
 * the first {@link NativeOptimizer.step} (which fixes the number of parameters and their
 * element counts) or by {@link NativeOptimizer.setStateBuffers}.
 */
export interface NativeOptimizer {
  readonly kind: NativeOptimizerKind;
  readonly dtype: NativeDType;
  /**
   * Names of the K state buffers kept per parameter, in order:
   * sgd `[]` or `['momentum']` (momentum > 0); adam / adamw `['m', 'v']`;
   * rmsprop `['squareAvg']`, then `'momentum'` (momentum > 0), then `'gradAvg'` (centered).
   */
  readonly stateNames: string[];
  /** Steps taken (Adam's bias-correction t; the next step uses t + 1). Settable (integer >= 0). */
  stepCount: number;
  /**
   * One update, synchronous and in place: `params[i]` (typed arrays of the dtype) are
   * overwritten with their new values from `grads[i]` (same length; not modified).
   * `lr`: finite >= 0. `maxNorm` > 0 clips by global norm: every gradient is scaled by
   * min(1, maxNorm / (norm + 1e-6)) before the update; 0 (or omitted) does not clip.
   * Returns the global L2 norm of all gradients before clipping (accumulated in double,
   * in a fixed order). The first call fixes the count and lengths; later calls must
   * match them. Wrong types throw TypeError, wrong lengths or values RangeError, naming
   * the argument (`params[1] must be a Float64Array of length 12 (got ...)`).
   */
  step(
    params: NativeArray[],
    grads: NativeArray[],
    lr: number,
    maxNorm?: number,
    nonFinite?: 'error' | 'skipUpdate' | 'allow',
  ): number;
  /**
   * `nonFinite` of {@link step} (default 'error'): a non-finite gradient (found by the norm
   * pass) or an update that would write a non-finite parameter or state value (found by a
   * dry run before anything is written, e.g. a learning rate so large that it overflows)
   * throws ERR_BRAINTRACE_NON_FINITE (`tensor` 'grads[i]' / 'params[i]', `index`) and
   * modifies nothing; 'skipUpdate' modifies nothing, does not count the step and sets
   * {@link lastStepSkipped}; 'allow' writes whatever the update computes.
   */
  readonly lastStepSkipped: boolean;
  /**
   * Copies of the state buffers, parameter-major: entry `i * K + k` is state
   * `stateNames[k]` of parameter i (K = stateNames.length). Empty before the first step.
   */
  stateBuffers(): NativeArray[];
  /**
   * Replaces the state buffers (same order as {@link stateBuffers}; values are copied).
   * After the first step the length and every buffer length must match; before it, the
   * list fixes the parameter sizes (for a kind with K = 0 it must be empty).
   */
  setStateBuffers(list: NativeArray[]): void;
  /** Frees the native state now; later calls throw ERR_BRAINTRACE_DISPOSED. Idempotent. */
  dispose(): void;
  readonly disposed: boolean;
}

/** The module exported by the `.node` file. */
export interface NativeBinding {
  /** Runtime facts; `preference` is 'auto' | 'cpu' | 'cuda' (default: BRAINTRACE_DEVICE or 'auto'). */
  info(preference?: string): NativeInfo;
  /** Names of the ops in native code order (must equal lib/graph/ops.ts OP_NAMES). */
  opNames(): string[];
  /**
   * The executor task that runs each op, in opNames() order: 'leaf' | 'elementwise' |
   * 'layout' | 'reduce' | 'softmax' | 'matmul' (native/core/executor.h, op_task).
   */
  opTasks(): string[];
  /**
   * Process-wide calls so far of each executor task method (elementwise, layout, reduce,
   * softmax, matmul, axpy, copy, fill, jacobian_read, find_non_finite, drtrl_dense,
   * vec_trace, pp_input, pp_project, pp_vec_grad, pp_dense_grad, optim_step, sum_squares),
   * counted by the driver that ran them.
   */
  taskCounts(): Record<string, number>;
  memoryStats(): NativeMemoryStats;
  resetPeakMemory(): void;
  /** Validates and loads a plan; `preference` picks the backend like `info`. */
  createSession(code: Int32Array, fattr: Float64Array, preference?: string): NativeSession;
  /**
   * A native optimizer of `kind` with `hyper` for parameters of `dtype` (default
   * 'float32'); the update runs on the CPU thread pool. Bad kind / dtype / hyper types
   * throw TypeError, bad values RangeError (naming the field, e.g. `hyper.beta1`).
   */
  createOptimizer(kind: NativeOptimizerKind, hyper: NativeOptimizerHyper, dtype?: NativeDType): NativeOptimizer;
  /**
   * Index of the first NaN or infinity of `data` (a Float32Array or Float64Array), or -1:
   * one native pass (used by setParams / setStates / setTraces before they assign).
   */
  checkFinite(data: NativeArray): number;
  /**
   * Cancels every in-flight async call of this environment (sets their cancel flags; they
   * reject with ERR_BRAINTRACE_ABORTED). lib/runtime/native.ts calls it from
   * `process.on('exit')`: process.exit() joins the native thread pool right after the exit
   * handlers, so without it the exit would wait for every running call to finish.
   */
  cancelAll(): void;
  /**
   * STREAM-like copy benchmark: copies `bytes` bytes between two native buffers, split in
   * contiguous chunks over the native thread pool (the same `parallel_for` the kernels
   * use), `reps` times after one warm-up copy. Returns the best time of one copy and the
   * bytes it moves (`2 * bytes`: read + write), so the bandwidth is
   * `bytesMoved / secondsPerRep`. Runs synchronously on the calling thread.
   *
   * `bytes`: integer in [1, 2^53 - 1]; `reps`: integer in [1, 1e6]. A non-number throws
   * TypeError, an out-of-range value RangeError (naming the argument). Buffers that cannot
   * be allocated, or that together exceed half the physical memory, throw an Error with
   * code ERR_BRAINTRACE_OUT_OF_MEMORY.
   */
  benchmarkCopy(bytes: number, reps: number): { secondsPerRep: number; bytesMoved: number };
  /**
   * Times the fused dense D_RTRL trace step (eps <- D eps + x (x) df, then
   * dW += sum_b sum_a g eps with the new trace; the kernel `runOnline` uses on the CPU) on
   * synthetic D (B, O, S, S), df (B, O, S), x (B, I), g (B, O, S) and trace (B, I, O, S).
   * Returns the best of `reps` steps (after one warm-up step) and the trace bytes a step
   * moves, `2 * B*I*O*S * sizeof(dtype)` (read once, written once; the small D, df, x, g
   * and dW are not counted). Runs synchronously on the calling thread.
   *
   * `batch` (B), `inputs` (I), `outputs` (O), `states` (S): integers >= 1; `dtype`:
   * 'float32' | 'float64'; `reps`: integer in [1, 1e6]. Wrong types throw TypeError,
   * out-of-range values RangeError (naming the field, e.g. `opts.batch`); sizes that cannot
   * be allocated or exceed half the physical memory throw ERR_BRAINTRACE_OUT_OF_MEMORY.
   */
  benchmarkTraceStep(opts: {
    batch: number;
    inputs: number;
    outputs: number;
    states: number;
    dtype: 'float32' | 'float64';
    reps: number;
  }): { secondsPerStep: number; bytesMoved: number };
  /**
   * The CPU GEMM kernels: `available` lists the usable ones on this machine, fastest first
   * ('avx512', 'avx2', 'neon', 'portable'), `active` the one every matmul uses, chosen once
   * per process: the environment variable BRAINTRACE_GEMM_KERNEL when it names a usable
   * kernel, otherwise the first available. `requested` is that variable's value ('' when
   * unset); a refused request leaves `active` at the default.
   */
  gemmKernels(): {
    active: string;
    available: string[];
    requested: string;
    /**
     * The packed weight copies the CPU sessions keep (process-wide): `packs` made,
     * products served from one (`hits`), `bytes` held now. A matmul whose B operand is a
     * parameter packs it once per session call and reuses the panels for every step.
     */
    packCache: { packs: number; hits: number; bytes: number };
  };
  /**
   * Test hook: one CPU GEMM, in place on `c`, C = alpha op(A) op(B) + beta C (row-major;
   * op(A) is M x K, `a` stored K x M when `transA`; op(B) is K x N, `b` stored N x K when
   * `transB`; leading dimensions default to the stored widths and may be larger).
   * beta = 0 never reads `c`. `a`, `b`, `c` are all Float32Array or all Float64Array and
   * must hold `(rows - 1) * ld + cols` elements. `kernel` (default: the active one) must be
   * in gemmKernels().available; `threads` (default: the pool size) caps the threads used.
   * Products up to 2^14 multiply-adds run the plain-loop path whatever the kernel. Wrong
   * types throw TypeError; bad sizes, dimensions or kernel names RangeError. Synchronous.
   */
  gemm(opts: {
    M: number;
    N: number;
    K: number;
    a: Float32Array | Float64Array;
    b: Float32Array | Float64Array;
    c: Float32Array | Float64Array;
    alpha: number;
    beta: number;
    transA?: boolean;
    transB?: boolean;
    lda?: number;
    ldb?: number;
    ldc?: number;
    kernel?: string;
    threads?: number;
  }): void;
  /**
   * Times C = op(A) op(B) (alpha 1, beta 0, dense) on native buffers with one kernel
   * (default: the active one) on at most `threads` threads (default: the pool size):
   * the best of `reps` calls after one warm-up, and the flops of one call, 2 M N K.
   * Errors as benchmarkTraceStep (unknown kernel: RangeError). Synchronous.
   */
  benchmarkGemm(opts: {
    M: number;
    N: number;
    K: number;
    dtype: 'float32' | 'float64';
    reps: number;
    transA?: boolean;
    transB?: boolean;
    kernel?: string;
    threads?: number;
  }): { secondsPerRep: number; flops: number; kernel: string };
}
