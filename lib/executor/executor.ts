/**
 * `ETraceVjpGraphExecutor`: runs a model step (or a window of steps) natively
 * and returns the eligibility-trace pieces of each step — the relations'
 * inputs x and tail derivatives df (hid2weight), the hidden groups' per-position
 * Jacobians D (hid2hid) and, with a loss, the learning signal.
 *
 * The executor is functional: it reads the model's weights and states (their
 * host values) and returns the new state values without writing them back;
 * the learners of the algorithms decide what to keep.
 */
import type { NativeArray, NativeJacobianRequest, NativeSession } from '../../types/binding';
import { lossCacheKey, prepareTargets, resolveLoss, type Loss, type Reduction } from '../algorithms/losses';
import { analyseEtraceGraph, type ETraceGraph, type HiddenGroup } from '../compiler/etrace';
import { encodePlan } from '../compiler/plan';
import type { Module } from '../dsl/module';
import { traceModel, type TracedModel } from '../dsl/trace';
import type { DType } from '../graph/ir';
import { ArgumentError, DisposedError, NotSupportedError, ShapeError, fmtShape } from '../runtime/errors';
import { loadBinding, wrapNativeError } from '../runtime/native';
import { allocData, isHostTensor, numel, tensor, toDType, type HostData, type HostTensor, type TensorLike } from '../tensor';
import { MultiStepData, SingleStepData, hasMultiStepData, type StepArg } from './data';

/** How the learning signal is obtained (see the reference's single-step vs multi-step VJP). */
export type VjpMethod = 'single-step' | 'multi-step';

/** Options of {@link ETraceVjpGraphExecutor}. */
export interface ExecutorOptions {
  /**
   * 'single-step' (default): the learning signal is dL^t/dh^t of each step.
   * 'multi-step': windows of steps; the signal is dL/dh at the window's entry,
   * and the exact within-window gradients of every weight are returned too.
   */
  vjpMethod?: VjpMethod;
  /** dtype when the model is not initialised yet (default: the model's, else 'float32'). */
  dtype?: DType;
}

/** The hidden-to-weight pieces of a step (or window: leading T axis). */
export interface Hid2Weight {
  /**
   * Per relation key (`<weightPath>@<k>`): the op input x, `(B, I)` for
   * `EtpMatMul` (`(T, B, I)` for a window). Element-wise relations have no x.
   */
  xs: Record<string, HostTensor>;
  /**
   * Per df key (`<relationKey>->hidden_group_<g>`): df[p, a] = d h_a^t[p] / d y[p],
   * shape `(B, *varshape, S)` (`(T, B, *varshape, S)` for a window).
   */
  dfs: Record<string, HostTensor>;
}

/** Result of {@link ETraceVjpGraphExecutor.solveH2wH2hJacobian}. */
export interface H2wH2hResult {
  /** Model outputs, each `(B, ...)` (`(T, B, ...)` for a window). */
  outputs: HostTensor[];
  /** New values of the hidden states (after the step / the window), by path, `(B, ...)`. */
  hiddenStates: Record<string, HostTensor>;
  /** New values of the other states, by path. */
  otherStates: Record<string, HostTensor>;
  hid2weight: Hid2Weight;
  /**
   * Per group key (`hidden_group_<g>`): D[p, a, b] = d h_a^t[p] / d h_b^{t-1}[p],
   * shape `(B, *varshape, S, S)` (`(T, ...)` for a window); zeros for a zero-recurrence group.
   */
  hid2hid: Record<string, HostTensor>;
}

/** Result of {@link ETraceVjpGraphExecutor.solveH2wH2hL2hJacobian}. */
export interface H2wH2hL2hResult extends H2wH2hResult {
  /**
   * Per group key: the learning signal, shape `(B, *varshape, S)`.
   * Single-step: ∂L^t/∂h^t, every same-step consumer of h^t counted (readouts, other
   * groups' updates) except the new values of the group's other members, which are held
   * fixed (a member computed from another member of the same step reaches the loss through
   * its own signal and the group's traces).
   * Multi-step: dL/dh at the window's entry (the state before its first step).
   */
  learningSignals: Record<string, HostTensor>;
  /** Per-step losses (length 1 for one step, T for a window). */
  losses: Float64Array;
  /**
   * Multi-step only: the exact gradient of the window's loss with respect to
   * every weight, through the window (truncated at its entry), by path.
   */
  windowGrads?: Record<string, HostTensor>;
}

/** Options of the L2H solve. */
export interface L2hOptions {
  /** Per-step loss on the model's first output (default 'mse'). */
  loss?: Loss;
  /** Window objective: per-step losses summed ('sum', default) or averaged ('mean'). */
  reduction?: Reduction;
}

interface Compiled {
  traced: TracedModel;
  etg: ETraceGraph;
  session: NativeSession;
  requests: NativeJacobianRequest[];
  /** Which key each request fills and its per-step shape. */
  requestOut: { kind: 'hid2hid' | 'df'; key: string; shape: number[] }[];
  /** Relations with an x: node and key. */
  xFetch: { key: string; node: number; shape: number[] }[];
}

/** Per-step shapes `(B, ...)` of example inputs; checks a batch axis and a common B. */
function exampleShapes(args: readonly StepArg[], what: string): number[][] {
  if (args.length === 0) throw new ArgumentError(`${what}: give one example input per model input`);
  const shapes = args.map((a, i) => {
    const raw = a instanceof SingleStepData || a instanceof MultiStepData ? a.data : a;
    const t = isHostTensor(raw) ? raw : tensor(raw, undefined, 'float64');
    const s = a instanceof MultiStepData ? t.shape.slice(1) : t.shape.slice();
    if (s.length < 1) throw new ShapeError(`${what}: args[${i}] must have a batch axis; got shape ${fmtShape(t.shape)}`);
    return s;
  });
  const B = shapes[0][0];
  shapes.forEach((s, i) => {
    if (s[0] !== B) throw new ShapeError(`${what}: args[${i}] has batch ${s[0]}; args[0] has ${B}`);
  });
  return shapes;
}

/** Options of {@link compileEtraceGraph}. */
export interface CompileEtraceGraphOptions {
  /** dtype used to trace when the model is not initialised (default 'float32'). */
  dtype?: DType;
}

function isOptionsObject(v: unknown): v is CompileEtraceGraphOptions {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !isHostTensor(v) &&
    !(v instanceof SingleStepData) && !(v instanceof MultiStepData)
  );
}

/**
 * Compiles the eligibility-trace graph of `model` for example inputs `(B, ...)`
 * (one per model input; MultiStepData `(T, B, ...)` uses its first step),
 * optionally followed by an options object. Pure analysis: nothing runs natively.
 * Initialises the model's states for batch B when they are not initialised.
 * @returns the ETraceGraph (groups, relations, diagnostics, explain()).
 * @throws CompilationError when the model has no relation; NotSupportedError for
 *   hidden states of different shapes that would form one group.
 */
export function compileEtraceGraph(model: Module, ...rest: (StepArg | CompileEtraceGraphOptions)[]): ETraceGraph {
  let opts: CompileEtraceGraphOptions = {};
  if (rest.length > 0 && isOptionsObject(rest[rest.length - 1])) opts = rest.pop() as CompileEtraceGraphOptions;
  const shapes = exampleShapes(rest as StepArg[], 'compileEtraceGraph');
  const B = shapes[0][0];
  if (model.initSettings === undefined) model.initStates({ batchSize: B, dtype: opts.dtype ?? 'float32' });
  const traced = traceModel(model, { inputShapes: shapes.map((s) => s.slice(1)), batchSize: B });
  return analyseEtraceGraph(traced.graph, { batchSize: B });
}

/**
 * Runs the eligibility-trace graph of a model: see the module doc.
 * Create it with the model, call {@link compileGraph} once with example
 * inputs `(B, ...)`, then the solve methods per step or window.
 */
export class ETraceVjpGraphExecutor {
  /** The model whose step is executed. */
  readonly model: Module;
  /** The VJP method (fixed at construction). */
  readonly vjpMethod: VjpMethod;
  private readonly dtypeOption: DType | undefined;
  private plain: Compiled | null = null;
  private readonly withLoss = new Map<string, Compiled>();
  private inputShapes: number[][] = [];
  private batchSize = 0;
  private dtype: DType = 'float32';
  private disposed = false;

  constructor(model: Module, options: ExecutorOptions = {}) {
    if (typeof model !== 'object' || model === null || typeof (model as Module).update !== 'function') {
      throw new ArgumentError(`ETraceVjpGraphExecutor: model must be a Module; got ${String(model)}`);
    }
    const m = options.vjpMethod ?? 'single-step';
    if (m !== 'single-step' && m !== 'multi-step') {
      throw new ArgumentError(`ETraceVjpGraphExecutor: vjpMethod must be 'single-step' or 'multi-step'; got ${JSON.stringify(m)}`);
    }
    this.model = model;
    this.vjpMethod = m;
    this.dtypeOption = options.dtype;
  }

  /** True for the single-step VJP method. */
  get isSingleStepVjp(): boolean {
    return this.vjpMethod === 'single-step';
  }

  /** True for the multi-step VJP method. */
  get isMultiStepVjp(): boolean {
    return this.vjpMethod === 'multi-step';
  }

  /** True once {@link compileGraph} ran. */
  get isCompiled(): boolean {
    return this.plain !== null;
  }

  /** The compiled eligibility-trace graph. @throws ArgumentError before compileGraph. */
  get graph(): ETraceGraph {
    if (this.plain === null) throw new ArgumentError('ETraceVjpGraphExecutor.graph: call compileGraph(...exampleInputs) first');
    return this.plain.etg;
  }

  /**
   * Traces and analyses the model step. Arguments are example inputs, one per
   * model input: `(B, ...)` tensors or SingleStepData, or MultiStepData
   * `(T, B, ...)` (its first step is used). Initialises the model's states for
   * batch B when the model has not been initialised.
   */
  compileGraph(...args: StepArg[]): ETraceGraph {
    this.checkUsable('compileGraph');
    const shapes = exampleShapes(args, 'compileGraph');
    const B = shapes[0][0];
    const settings = this.model.initSettings;
    if (settings === undefined) {
      this.model.initStates({ batchSize: B, dtype: this.dtypeOption ?? 'float32' });
    } else if (settings.batchSize !== B) {
      throw new ShapeError(
        `compileGraph: the model's states were initialised for batch ${settings.batchSize}; the example inputs have batch ${B}`,
      );
    }
    this.dtype = this.model.initSettings!.dtype;
    this.batchSize = B;
    this.inputShapes = shapes.map((s) => s.slice(1));
    this.disposeSessions();
    this.plain = this.build(undefined);
    return this.plain.etg;
  }

  /**
   * Runs one step (plain / SingleStepData arguments) or a window
   * (MultiStepData arguments) and returns outputs, new states, hid2weight and hid2hid.
   * Works with both VJP methods. The model's stored states are not changed.
   */
  solveH2wH2hJacobian(...args: StepArg[]): H2wH2hResult {
    const c = this.requireCompiled('solveH2wH2hJacobian');
    const { inputs, steps, multi } = this.inputsOf(args, 'solveH2wH2hJacobian');
    if (!multi) {
      const r = this.native(() =>
        c.session.evaluate({
          inputs,
          params: this.paramArrays(c),
          states: this.stateArrays(c),
          fetchValues: c.xFetch.map((f) => f.node),
          jacobians: c.requests,
        }),
      );
      return this.assemble(c, r.outputs, r.fetchedValues ?? [], r.jacobians ?? [], null);
    }
    this.pushStored(c);
    const r = this.native(() =>
      c.session.runSequence({ steps, inputs, fetchValues: c.xFetch.map((f) => f.node), jacobians: c.requests }),
    );
    return this.assemble(c, r.outputs, r.fetchedValues ?? [], r.jacobians ?? [], steps);
  }

  /**
   * Like {@link solveH2wH2hJacobian}, plus the learning signal of the loss
   * `loss(y, target)` on the model's first output. Single-step method: one step,
   * signal dL^t/dh^t. Multi-step method: a window (MultiStepData) or one step,
   * signal dL/dh at the window's entry, plus `windowGrads`.
   * @param args the model inputs, one array entry per model input.
   * @param target the step's target `(B, ...)`, or `(T, B, ...)` for a window.
   * @throws NotSupportedError for window data under the single-step method.
   */
  solveH2wH2hL2hJacobian(args: StepArg[], target: TensorLike, options: L2hOptions = {}): H2wH2hL2hResult {
    this.requireCompiled('solveH2wH2hL2hJacobian');
    if (!Array.isArray(args)) {
      throw new ArgumentError('solveH2wH2hL2hJacobian: args must be an array with one entry per model input, e.g. [x]');
    }
    const list = args;
    const multi = hasMultiStepData(list);
    if (multi && this.isSingleStepVjp) {
      throw new NotSupportedError(
        "solveH2wH2hL2hJacobian: the 'single-step' VJP method takes one step at a time, but MultiStepData was given; " +
          "call it once per step, or create the executor with { vjpMethod: 'multi-step' } to differentiate through windows",
      );
    }
    const loss = options.loss ?? 'mse';
    const fn = resolveLoss(loss);
    const reduction = options.reduction ?? 'sum';
    if (reduction !== 'sum' && reduction !== 'mean') {
      throw new ArgumentError(`solveH2wH2hL2hJacobian: reduction must be 'sum' or 'mean'; got ${JSON.stringify(reduction)}`);
    }
    const { inputs, steps } = this.inputsOf(list, 'solveH2wH2hL2hJacobian');
    const outShape = this.plain!.traced.outputShapes[0];
    const rawTarget = this.toHost(target, 'target');
    const tgt = prepareTargets(loss, multi ? rawTarget : { ...rawTarget, shape: [1, ...rawTarget.shape] }, steps, outShape);
    const targetShape = tgt.shape.slice(2);
    const key = lossCacheKey(loss, targetShape);
    let c = this.withLoss.get(key);
    if (c === undefined) {
      c = this.build({ fn, targetShape });
      this.withLoss.set(key, c);
    }
    const lossEntry = this.lossEntryIndex(c);
    if (!multi) {
      const base = this.native(() =>
        c!.session.evaluate({
          inputs: [...inputs, tgt.data as NativeArray],
          params: this.paramArrays(c!),
          states: this.stateArrays(c!),
          fetchValues: c!.xFetch.map((f) => f.node),
          jacobians: c!.requests,
        }),
      );
      const result = this.assemble(c, base.outputs, base.fetchedValues ?? [], base.jacobians ?? [], null);
      // One reverse pass per group: the sweep stops at the group's own members' new values
      // (they are held fixed), but runs through other groups' new values (stacked layers).
      const cot = c.session.outputEntries().map((_, i) => (i === lossEntry ? this.array([1]) : null));
      const learningSignals: Record<string, HostTensor> = {};
      for (const g of c.etg.groups) {
        const members = g.members.map((m) => m.newNode);
        const r = this.native(() =>
          c!.session.evaluate({
            inputs: [...inputs, tgt.data as NativeArray],
            params: this.paramArrays(c!),
            states: this.stateArrays(c!),
            outputCotangents: cot,
            fetchCotangents: members,
            stopCotangents: members,
          }),
        );
        learningSignals[g.key] = this.stackMembers(g, r.fetchedCotangents ?? []);
      }
      const lossValue = Number(base.outputs[lossEntry][0]);
      return { ...result, learningSignals, losses: Float64Array.of(lossValue) };
    }
    this.pushStored(c);
    const lossScale = new Float64Array(steps).fill(reduction === 'mean' ? 1 / steps : 1);
    const r = this.native(() =>
      c!.session.runSequence({
        steps,
        inputs: [...inputs, tgt.data as NativeArray],
        lossScale,
        computeGrads: true,
        fetchValues: c!.xFetch.map((f) => f.node),
        jacobians: c!.requests,
      }),
    );
    const base = this.assemble(c, r.outputs, r.fetchedValues ?? [], r.jacobians ?? [], steps);
    const learningSignals: Record<string, HostTensor> = {};
    for (const g of c.etg.groups) {
      learningSignals[g.key] = this.stackMembers(
        g,
        g.members.map((m) => r.initialStateGrads![m.stateSlot]),
      );
    }
    const windowGrads: Record<string, HostTensor> = {};
    c.traced.params.forEach((p, i) => {
      windowGrads[p.path] = { data: r.paramGrads![i], shape: p.shape.slice(), dtype: this.dtype };
    });
    return { ...base, learningSignals, losses: r.losses, windowGrads };
  }

  /** Frees the native sessions. Idempotent. */
  dispose(): void {
    this.disposeSessions();
    this.plain = null;
    this.disposed = true;
  }

  /** Same as {@link dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ------------------------------------------------------------------ internals

  private build(loss: { fn: ReturnType<typeof resolveLoss>; targetShape: readonly number[] } | undefined): Compiled {
    const traced = traceModel(this.model, {
      inputShapes: this.inputShapes,
      batchSize: this.batchSize,
      dtype: this.dtype,
      loss,
    });
    const etg = analyseEtraceGraph(traced.graph, { batchSize: this.batchSize });
    const blockedD = traced.graph.nodes.filter((n) => n.op === 'EtpMatMul' || n.op === 'MatMul').map((n) => n.id);
    const etpNodes = traced.graph.nodes.filter((n) => n.op === 'EtpMatMul').map((n) => n.id);
    const requests: NativeJacobianRequest[] = [];
    const requestOut: Compiled['requestOut'] = [];
    const members = (g: HiddenGroup) => g.members.map((m) => ({ leafNode: m.leafNode, newNode: m.newNode, width: m.width }));
    for (const g of etg.groups) {
      const shape = [this.batchSize, ...g.varshape, g.numState, g.numState];
      if (g.zeroRecurrence) {
        requestOut.push({ kind: 'hid2hid', key: g.key, shape });
        continue;
      }
      requests.push({ kind: 'hid2hid', members: members(g), blocked: blockedD, probePositions: g.coupled, positions: g.positions });
      requestOut.push({ kind: 'hid2hid', key: g.key, shape });
    }
    for (const r of etg.relations) {
      for (const gi of r.groups) {
        const g = etg.groups[gi];
        requests.push({
          kind: 'df',
          members: members(g),
          yNode: r.yNode,
          blocked: etpNodes.filter((id) => id !== r.yNode),
          probePositions: r.tailCoupled[gi],
          positions: g.positions,
        });
        requestOut.push({ kind: 'df', key: r.dfKeys[gi], shape: [this.batchSize, ...g.varshape, g.numState] });
      }
    }
    const xFetch = etg.relations
      .filter((r) => r.xNode !== null)
      .map((r) => ({ key: r.key, node: r.xNode!, shape: r.xShape! }));
    const plan = encodePlan(traced.graph);
    const session = this.native(() => loadBinding().createSession(plan.code, plan.fattr));
    return { traced, etg, session, requests, requestOut, xFetch };
  }

  private assemble(
    c: Compiled,
    outputRows: NativeArray[],
    fetched: NativeArray[],
    jacobians: NativeArray[],
    steps: number | null,
  ): H2wH2hResult {
    const lead = steps === null ? [] : [steps];
    const ht = (data: HostData, shape: number[]): HostTensor => ({ data, shape: [...lead, ...shape], dtype: this.dtype });
    const graph = c.traced.graph;
    const outputs: HostTensor[] = [];
    const hiddenStates: Record<string, HostTensor> = {};
    const otherStates: Record<string, HostTensor> = {};
    if (steps === null) {
      graph.outputs.forEach((o, i) => {
        if (o.kind === 'output') outputs.push(ht(outputRows[i], c.traced.outputShapes[o.index]));
        if (o.kind === 'stateNew') {
          const s = graph.states[o.index];
          const t: HostTensor = { data: outputRows[i], shape: s.shape.slice(), dtype: this.dtype };
          (s.kind === 'other' ? otherStates : hiddenStates)[s.path] = t;
        }
      });
    } else {
      c.traced.outputShapes.forEach((shape, i) => outputs.push(ht(outputRows[i], shape)));
      graph.states.forEach((s, i) => {
        const t: HostTensor = { data: this.native(() => c.session.getState(i)), shape: s.shape.slice(), dtype: this.dtype };
        (s.kind === 'other' ? otherStates : hiddenStates)[s.path] = t;
      });
    }
    const xs: Record<string, HostTensor> = {};
    c.xFetch.forEach((f, i) => (xs[f.key] = ht(fetched[i], f.shape)));
    const dfs: Record<string, HostTensor> = {};
    const hid2hid: Record<string, HostTensor> = {};
    let k = 0;
    for (const out of c.requestOut) {
      let data: HostData;
      if (out.kind === 'hid2hid' && c.etg.groups.find((g) => g.key === out.key)!.zeroRecurrence) {
        data = allocData(numel([...lead, ...out.shape]), this.dtype);
      } else {
        data = jacobians[k++];
      }
      (out.kind === 'hid2hid' ? hid2hid : dfs)[out.key] = ht(data, out.shape);
    }
    return { outputs, hiddenStates, otherStates, hid2weight: { xs, dfs }, hid2hid };
  }

  /** Concatenates members' per-position values on the state axis: (P, w_m)... -> (B, *varshape, S). */
  private stackMembers(g: HiddenGroup, parts: NativeArray[]): HostTensor {
    const shape = [this.batchSize, ...g.varshape, g.numState];
    if (g.members.length === 1) return { data: parts[0], shape, dtype: this.dtype };
    const out = allocData(g.positions * g.numState, this.dtype);
    g.members.forEach((m, k) => {
      const src = parts[k];
      for (let p = 0; p < g.positions; p++) {
        for (let w = 0; w < m.width; w++) out[p * g.numState + m.offset + w] = src[p * m.width + w];
      }
    });
    return { data: out, shape, dtype: this.dtype };
  }

  private lossEntryIndex(c: Compiled): number {
    const i = c.traced.graph.outputs.findIndex((o) => o.kind === 'loss');
    if (i < 0) throw new ArgumentError('internal: the loss graph has no loss row');
    return i;
  }

  private inputsOf(args: readonly StepArg[], what: string): { inputs: NativeArray[]; steps: number; multi: boolean } {
    if (args.length !== this.inputShapes.length) {
      throw new ArgumentError(`${what}: expected ${this.inputShapes.length} model input(s); got ${args.length}`);
    }
    const multi = hasMultiStepData(args);
    let steps = 1;
    const hosts = args.map((a, i) => {
      const t = this.toHost(a instanceof SingleStepData || a instanceof MultiStepData ? a.data : a, `args[${i}]`);
      const want = [this.batchSize, ...this.inputShapes[i]];
      const isMulti = a instanceof MultiStepData;
      const shape = isMulti ? t.shape.slice(1) : t.shape;
      if (shape.length !== want.length || shape.some((d, k) => d !== want[k])) {
        throw new ShapeError(
          `${what}: args[${i}] must have shape ${isMulti ? `(T, ${want.join(', ')})` : fmtShape(want)}; got ${fmtShape(t.shape)}`,
        );
      }
      return { t, isMulti };
    });
    if (multi) {
      const ts = hosts.filter((h) => h.isMulti).map((h) => h.t.shape[0]);
      steps = ts[0];
      if (ts.some((v) => v !== steps) || steps < 1) {
        throw new ShapeError(`${what}: every MultiStepData must have the same number of steps T >= 1; got ${ts.join(', ')}`);
      }
    }
    const inputs = hosts.map(({ t, isMulti }) => {
      if (!multi || isMulti) return t.data as NativeArray;
      // One step's data in a window: the same value at every step.
      const out = allocData(t.data.length * steps, this.dtype);
      for (let s = 0; s < steps; s++) out.set(t.data, s * t.data.length);
      return out as NativeArray;
    });
    return { inputs, steps, multi };
  }

  private paramArrays(c: Compiled): NativeArray[] {
    return c.traced.params.map((p) => p.hostValue.data as NativeArray);
  }

  private stateArrays(c: Compiled): NativeArray[] {
    return c.traced.states.map((s) => s.hostValue.data as NativeArray);
  }

  private pushStored(c: Compiled): void {
    this.paramArrays(c).forEach((a, i) => this.native(() => c.session.setParam(i, a)));
    this.stateArrays(c).forEach((a, i) => this.native(() => c.session.setState(i, a)));
  }

  private array(values: number[]): NativeArray {
    return this.dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values);
  }

  private toHost(x: TensorLike, what: string): HostTensor {
    try {
      const dtype = this.plain !== null ? this.dtype : this.model.initSettings?.dtype ?? this.dtypeOption ?? 'float32';
      return isHostTensor(x) ? toDType(x, dtype) : tensor(x, undefined, dtype);
    } catch (e) {
      if (e instanceof Error) e.message = `${what}: ${e.message}`;
      throw e;
    }
  }

  private requireCompiled(what: string): Compiled {
    this.checkUsable(what);
    if (this.plain === null) throw new ArgumentError(`${what}: call compileGraph(...exampleInputs) first`);
    return this.plain;
  }

  private checkUsable(what: string): void {
    if (this.disposed) throw new DisposedError(`${what}: the executor has been disposed`);
  }

  private disposeSessions(): void {
    this.plain?.session.dispose();
    for (const c of this.withLoss.values()) c.session.dispose();
    this.withLoss.clear();
  }

  private native<R>(fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      throw wrapNativeError(e);
    }
  }
}
