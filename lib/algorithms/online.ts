/**
 * Online learning by eligibility traces: D_RTRL (`ParamDimVjpAlgorithm`) and
 * ES_D_RTRL / pp_prop (`IODimVjpAlgorithm`). The learners compile the model's
 * eligibility-trace graph, hand its groups and relations to the native session,
 * and run whole sequences (or windows) forward in time in one native call; the
 * traces (whose size does not depend on the sequence length) live in native
 * memory. Equations: native/include/braintrace/online.h and docs/online.md.
 */
import type { NativeArray, NativeOnlineArgs, NativeOnlineConfig, NativeOnlineInto, NativeOnlineResult } from '../../types/binding';
import { analyseEtraceGraph, type ETraceGraph, type Relation } from '../compiler/etrace';
import type { Module } from '../dsl/module';
import type { VjpMethod } from '../executor/executor';
import { CALL_OPTION_KEYS, checkCallOptions, checkFiniteData, type CallOptions } from '../runtime/control';
import { ArgumentError, NotSupportedError, ShapeError, checkOptionKeys, fmtShape } from '../runtime/errors';
import { asDType, isHostTensor, numel, tensor, type HostTensor, type TensorLike } from '../tensor';
import { fusedStepOf, type StepResult } from '../optim/optimizers';
import { nativeObject } from '../runtime/native';
import {
  GRAD_OPTION_KEYS,
  Learner,
  signalOf,
  type CompileOptions,
  type GradOptions,
  type GradResult,
  type RunOptions,
  type SessionEntry,
  type SyncGradInto,
  type SyncGradResult,
} from './learner';
import { lossCacheKey, lossScaleArg, prepareTargets, resolveLoss } from './losses';

/** Options of the online algorithms (in `bt.compile(model, Algorithm, options)`). */
export interface OnlineOptions extends CompileOptions {
  /**
   * 'single-step' (default): the learning signal of step t is dL^t/dh^t, contracted with
   * the trace after step t. 'multi-step': windows of `chunkSize` steps, exact inside
   * the window, traces carried between windows.
   */
  vjpMethod?: VjpMethod;
}

/** Options of {@link OnlineLearner.etraceGrad}. */
export interface OnlineGradOptions extends GradOptions {
  /** 1 (default): step by step. k >= 2: windows of k steps (needs vjpMethod 'multi-step', T % k == 0). */
  chunkSize?: number;
}

/** Options of {@link OnlineLearner.etraceEvolve} (`signal` / `onProgress`: see {@link CallOptions}). */
export interface EvolveOptions extends CallOptions {
  /** Window length (only changes how the call is split; states and traces advance the same). */
  chunkSize?: number;
}

/** The `into.lossesOut` of a call without losses (computeGrads false): nothing is written to it. */
const NO_LOSSES = new Float64Array(0);

/** The option keys of {@link OnlineGradOptions}. */
const ONLINE_GRAD_OPTION_KEYS = [...GRAD_OPTION_KEYS, 'chunkSize'] as const;

/** The algorithm-specific part of the native configuration. */
interface TraceAlgorithmConfig {
  algorithm: NativeOnlineConfig['algorithm'];
  decayX?: number;
  decayF?: number;
}

/** Host copy of traces while no session holds them. */
interface TraceSnapshot {
  data: NativeArray[];
  steps: number;
}

/**
 * Base of the online learners. Gradients of `etraceGrad` are sums over the
 * steps (or windows) of the per-step (per-window) online gradients; the model's
 * states and the traces advance through the sequence and persist across calls.
 */
export abstract class OnlineLearner extends Learner {
  /** The VJP method (see {@link OnlineOptions}). */
  readonly vjpMethod: VjpMethod;
  /** The compiled eligibility-trace graph of the model step (groups, relations, diagnostics). */
  readonly graph: ETraceGraph;
  private snapshot: TraceSnapshot | null = null;

  /** Compile option keys: the base ones plus `vjpMethod`. */
  static override optionKeys(): readonly string[] {
    return [...Learner.optionKeys(), 'vjpMethod'];
  }

  constructor(model: Module, options: OnlineOptions) {
    super(model, options);
    const m = options.vjpMethod ?? 'single-step';
    if (m !== 'single-step' && m !== 'multi-step') {
      throw new ArgumentError(`compile: vjpMethod must be 'single-step' or 'multi-step'; got ${JSON.stringify(m)}`);
    }
    this.vjpMethod = m;
    this.graph = analyseEtraceGraph(this.stepTrace.graph, { batchSize: this.batchSize });
    // Transformed weights W_eff = f(θ) (masks, sign constraints, weight functions) are traced
    // as W_eff and pulled back through f natively (the chain rule); f must depend on the one
    // ParamState and constants only.
    const { nodes, params } = this.stepTrace.graph;
    for (const r of this.graph.relations) {
      const { weightNode, biasNode } = relationInputs(r, nodes);
      const check = (node: number, slot: number | null, path: string | null) => {
        if (node < 0 || slot === null) return;
        const bad = transformProblem(nodes, node, params[slot].nodeId);
        if (bad !== null) {
          throw new NotSupportedError(
            `compile: relation ${r.key} uses a transformed weight of '${path}' that ${bad}; ` +
              'online algorithms need a weight computed from its ParamState and constants only',
          );
        }
      };
      check(weightNode, r.weightSlot, r.weightPath);
      check(biasNode, r.biasSlot, r.biasPath);
    }
  }

  /** The algorithm's native trace rule and its coefficients. */
  protected abstract traceAlgorithm(): TraceAlgorithmConfig;

  /**
   * One step forward in time: returns the output `(B, ...)` and advances the
   * states and the eligibility traces (no loss, no gradient).
   */
  override update(x: TensorLike): HostTensor {
    this.checkUsable('update');
    const shapes = (this.updateShapes ??= {
      input: [this.batchSize, ...this.inputShape],
      output: [this.batchSize, ...this.outputShape],
    });
    const xt = this.asData('x', x, shapes.input);
    const entry = this.session('', () => this.stepTrace);
    // One native call: stale weights stored first (into.params), no losses array (none), the
    // output written into an array kept per session (outputsOut) and copied out here: a fresh
    // array per call (the caller may keep it), cheaper than a native one.
    const out = (entry.outputsOut ??= this.stepTrace.outputShapes.map(
      (shape) => (this.dtype === 'float64' ? new Float64Array(numel(shape)) : new Float32Array(numel(shape))) as NativeArray,
    ));
    this.nativeWithParams(entry, (params) =>
      entry.session.runOnlineStep(xt.data as NativeArray, undefined, false, params, undefined, NO_LOSSES, true, out),
    );
    this.markOwner(entry);
    return { data: out[0].slice(), shape: shapes.output.slice(), dtype: this.dtype };
  }

  /** `update`'s input and output shapes `(B, ...)`, made once (copied into each result). */
  private updateShapes?: { input: number[]; output: number[] };

  /**
   * Runs a sequence forward (states and traces advance); returns the outputs `(T, B, ...)`.
   * The same as {@link etraceEvolve} (with its `signal` / `onProgress`).
   */
  override run(xs: TensorLike, options: RunOptions = {}): Promise<HostTensor> {
    try {
      checkOptionKeys('run: options', options, CALL_OPTION_KEYS);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.etraceEvolve(xs, options);
  }

  /**
   * Advances states and traces through `xs` `(T, B, ...inputShape)` without a
   * loss, in one native call; returns the outputs `(T, B, ...outputShape)`.
   *
   * `options.signal` cancels the native call in flight: the Promise rejects with
   * AbortError, and the states, traces and trace step counter are exactly those after
   * `err.stepsDone` steps (as after `etraceEvolve(xs[0:stepsDone])`); with windows
   * (`chunkSize` k) it stops at a window boundary or inside a window's trace advance.
   * `options.onProgress({ done, total })` reports steps (total T), at most every 50 ms
   * plus a final report. An already-aborted signal rejects before any native work.
   */
  etraceEvolve(xs: TensorLike, options: EvolveOptions = {}): Promise<HostTensor> {
    return this.enqueue('etraceEvolve', () => this.evolveNow(xs, options), signalOf(options));
  }

  private async evolveNow(xs: TensorLike, options: EvolveOptions): Promise<HostTensor> {
    this.checkUsable('etraceEvolve');
    checkOptionKeys('etraceEvolve: options', options, ['chunkSize', ...CALL_OPTION_KEYS]);
    checkCallOptions('etraceEvolve: options', options);
    const x = this.asSequence('xs', xs);
    const steps = x.shape[0];
    const chunk = this.chunkOf(options.chunkSize, steps, false);
    const entry = this.session('', () => this.stepTrace);
    const args = { steps, inputs: [x.data as NativeArray], computeGrads: false, chunk };
    const res = await this.runExclusive(
      entry,
      (control) => entry.session.runOnlineAsync(args, control),
      { what: 'etraceEvolve', options },
      this.runsSynchronously(entry, steps, false) ? () => entry.session.runOnline(args) : undefined,
    );
    return { data: res.outputs[0], shape: [steps, this.batchSize, ...this.outputShape], dtype: this.dtype };
  }

  /**
   * Online gradients of the loss over the sequence: `xs` `(T, B, ...inputShape)`,
   * `ys` targets `(T, B, ...)` (see the losses). Each step's (or window's)
   * gradient is computed forward in time from the traces and summed; with
   * `reduction: 'mean'` the sum is divided by the (masked) number of steps.
   * Advances states and traces.
   *
   * `options.signal` cancels the native call in flight: AbortError, with the states,
   * traces and trace step counter those after `err.stepsDone` steps (a step stopped before
   * its trace update does not count); the gradients of a cancelled call are discarded.
   * `options.onProgress({ done, total })` reports steps (total T).
   * Under the learner's `nonFinite: 'error'` a non-finite value in `xs` / `ys` (step t),
   * a non-finite loss (step t) or gradient (the step whose contribution made it
   * non-finite) rejects with NonFiniteError; the weights are never touched.
   * @returns `{ grads, losses }`: a gradient per weight path, and the T per-step losses.
   */
  etraceGrad(xs: TensorLike, ys: TensorLike, options: OnlineGradOptions = {}): Promise<GradResult> {
    return this.enqueue('etraceGrad', () => this.gradNow(xs, ys, options), signalOf(options));
  }

  private async gradNow(xs: TensorLike, ys: TensorLike, options: OnlineGradOptions): Promise<GradResult> {
    const c = this.gradCall(xs, ys, options);
    const res = await this.runExclusive(
      c.entry,
      (control) => c.entry.session.runOnlineAsync(c.args, control),
      { what: 'etraceGrad', options },
      c.sync ? () => c.entry.session.runOnline(c.args) : undefined,
    );
    return this.gradResult(c.entry, res, c.steps);
  }

  /**
   * @internal {@link etraceGrad} run synchronously on the JS thread (see
   * `Learner.etraceGradSync`): the same checks (thrown), then a function making the native
   * call; undefined when the call is too large for the JS thread or asks for progress.
   */
  override etraceGradSync(
    xs: TensorLike,
    ys: TensorLike,
    options: OnlineGradOptions = {},
    into?: SyncGradInto,
  ): (() => SyncGradResult) | undefined {
    const c = this.gradCall(xs, ys, options);
    if (!c.sync || options.onProgress !== undefined) return undefined;
    if (into === undefined) {
      return () => this.gradResult(c.entry, this.runExclusiveSync(c.entry, () => c.entry.session.runOnline(c.args)), c.steps);
    }
    return () => this.gradInto(c.entry, c.args, c.steps, into);
  }

  /**
   * The synchronous native call of {@link etraceGradSync} with `into` (see SyncGradInto): one
   * runOnline that also stores stale weights (its `into.params`), writes the gradients (and a
   * one-step call's loss) into the session's scratch arrays when `into.scratch` (`gradsOut`,
   * `lossesOut`), leaves the outputs out when `into.outputs` is false, and runs the update of
   * `into.optimizer` in the call when {@link fusedStepOf} accepts it (`into.update`: the
   * result's `update`; the gradients then stay native).
   */
  private gradInto(entry: SessionEntry, args: NativeOnlineArgs, steps: number, into: SyncGradInto): SyncGradResult {
    const scratch = into.scratch ? (entry.scratch ??= this.makeScratch(entry)) : undefined;
    // The optimizer's update in the same call (its fast path only; otherwise the caller applies
    // the gradients): checked and its learning rate taken before anything runs.
    const fused = scratch !== undefined && into.optimizer !== undefined
      ? fusedStepOf(into.optimizer, this.weightTensors(), scratch.grads, this.nonFinite)
      : null;
    const res = this.runExclusiveSyncWithParams(entry, (params) => {
      const where: NativeOnlineInto = {
        params,
        // With the update in the call the gradients stay native (the result has none either).
        gradsOut: fused === null ? scratch?.data : undefined,
        lossesOut: scratch !== undefined && steps === 1 ? scratch.losses : undefined,
        outputs: into.outputs,
        update: fused === null ? undefined : {
          optimizer: nativeObject(fused.native), // the addon's object (the native call checks its type tag)
          params: fused.params,
          slots: this.slotsOf(entry, fused.paths),
          lr: fused.lr,
          maxNorm: fused.clipNorm,
          nonFinite: fused.nonFinite,
        },
      };
      try {
        // One step without lossScale or windows (the stream step): the positional entry point.
        if (args.steps === 1 && args.lossScale === undefined && (args.chunk ?? 1) === 1 && args.inputs.length === 2) {
          const u = where.update;
          const stats = u === undefined ? undefined : (scratch as NonNullable<typeof scratch>).stats;
          const r = entry.session.runOnlineStep(
            args.inputs[0], args.inputs[1], args.computeGrads ?? true, where.params, where.gradsOut, where.lossesOut,
            where.outputs ?? true, undefined, u?.optimizer, u?.params, u?.slots, u?.lr, u?.maxNorm, u?.nonFinite, stats,
          );
          if (stats !== undefined) {
            r.gradNorm = stats[0];
            r.skipped = stats[1] !== 0;
          }
          return r;
        }
        return entry.session.runOnline(args, where);
      } catch (e) {
        // A failed update names the optimizer's slots (its path order): renamed as step() does.
        throw fused !== null && (e as { stage?: unknown } | null)?.stage === 'update' ? fused.rename(e) : e;
      }
    });
    let update: StepResult | undefined;
    if (fused !== null) {
      update = { lr: fused.lr, gradNorm: res.gradNorm as number, skipped: res.skipped === true };
      if (!update.skipped) this.weightsUpdatedIn(entry);
    }
    let grads: Record<string, HostTensor>;
    if (scratch !== undefined) {
      grads = scratch.grads;
    } else {
      grads = {};
      const fresh = res.paramGrads as NativeArray[];
      entry.traced.params.forEach((p, i) => {
        grads[p.path] = { data: fresh[i], shape: p.shape.slice(), dtype: this.dtype };
      });
    }
    const losses = res.losses ?? (scratch as NonNullable<typeof scratch>).losses; // absent: written into lossesOut
    return { grads, losses, outputs: res.outputs !== undefined ? this.sequenceOutput(res.outputs[0], steps) : undefined, update };
  }

  /** The param slot of each of `paths` (an optimizer's bound order) in `entry`'s session, cached per paths array. */
  private slotsOf(entry: SessionEntry, paths: readonly string[]): number[] {
    const c = entry.updateSlots;
    if (c !== undefined && c.paths === paths) return c.slots;
    const slots = paths.map((p) => entry.traced.params.findIndex((q) => q.path === p));
    entry.updateSlots = { paths, slots };
    return slots;
  }

  /** Gradient arrays (one per weight, slot order) and a one-step loss array for scratch calls on `entry`. */
  private makeScratch(entry: SessionEntry): NonNullable<SessionEntry['scratch']> {
    const grads: Record<string, HostTensor> = {};
    const data = entry.traced.params.map((p) => {
      const d = (this.dtype === 'float64' ? new Float64Array(numel(p.shape)) : new Float32Array(numel(p.shape))) as NativeArray;
      grads[p.path] = { data: d, shape: p.shape.slice(), dtype: this.dtype };
      return d;
    });
    return { grads, data, losses: new Float64Array(1), stats: new Float64Array(2) };
  }

  /** Checks the arguments of {@link etraceGrad}; returns its session, native arguments and whether it is small. */
  private gradCall(xs: TensorLike, ys: TensorLike, options: OnlineGradOptions) {
    this.checkUsable('etraceGrad');
    checkOptionKeys('etraceGrad: options', options, ONLINE_GRAD_OPTION_KEYS);
    checkCallOptions('etraceGrad: options', options);
    const loss = options.loss ?? 'mse';
    const fn = resolveLoss(loss);
    const x = this.asSequence('xs', xs);
    const steps = x.shape[0];
    const chunk = this.chunkOf(options.chunkSize, steps, true);
    const yRaw = asDType('ys', ys, this.dtype);
    const y = prepareTargets(loss, yRaw, steps, [this.batchSize, ...this.outputShape]);
    if (y.shape[1] !== this.batchSize) {
      throw new ShapeError(`ys: expected batch size ${this.batchSize} on axis 1; got shape ${fmtShape(y.shape)}`);
    }
    const lossScale = lossScaleArg(steps, options.mask, options.reduction ?? 'sum', 'etraceGrad');
    const targetShape = y.shape.slice(2);
    const entry = this.session(lossCacheKey(loss, targetShape), () => this.trace({ fn, targetShape }));
    const args = { steps, inputs: [x.data as NativeArray, y.data as NativeArray], lossScale, computeGrads: true, chunk };
    return { entry, args, steps, sync: this.runsSynchronously(entry, steps, true) };
  }

  /** The GradResult of a native online call on `entry`. */
  private gradResult(entry: SessionEntry, res: NativeOnlineResult, steps: number): GradResult {
    const grads: Record<string, HostTensor> = {};
    entry.traced.params.forEach((p, i) => {
      grads[p.path] = { data: res.paramGrads![i], shape: p.shape.slice(), dtype: this.dtype };
    });
    return { grads, losses: res.losses, outputs: this.sequenceOutput(res.outputs[0], steps) };
  }

  /**
   * A copy of every eligibility trace, by name (`r<k>/g<g>/weight` (B, I, O, S),
   * `r<k>/g<g>/bias` (B, O, S), `r<k>/g<g>/elementwise` (B, O, S) for D_RTRL;
   * `r<k>/xbar` (B, I) and `r<k>/g<g>/epsf` (B, O, S) for pp_prop), where k is
   * the relation's index in `graph.relations` and g the group's index.
   */
  traces(): Record<string, HostTensor> {
    this.checkUsable('traces');
    const entry = this.session('', () => this.stepTrace);
    this.prepare(entry);
    this.markOwner(entry);
    const out: Record<string, HostTensor> = {};
    this.native(() => entry.session.traceInfo()).forEach((info, i) => {
      out[info.name] = { data: this.native(() => entry.session.getTrace(i)), shape: info.shape, dtype: this.dtype };
    });
    return out;
  }

  /**
   * Replaces traces (any subset, by the names of {@link traces}, each of its shape) and,
   * when given, the trace step counter (pp_prop's bias correction). For checkpoints.
   * @throws ArgumentError for an unknown name, ShapeError for a wrong shape.
   */
  setTraces(values: Record<string, TensorLike>, steps?: number): void {
    this.checkUsable('setTraces');
    const entry = this.session('', () => this.stepTrace);
    this.prepare(entry);
    this.markOwner(entry);
    const info = this.native(() => entry.session.traceInfo());
    const byName = new Map(info.map((t, i) => [t.name, { ...t, index: i }] as const));
    const staged: [number, NativeArray][] = [];
    for (const [name, v] of Object.entries(values)) {
      const t = byName.get(name);
      if (t === undefined) {
        throw new ArgumentError(`setTraces: unknown trace '${name}'; expected one of ${[...byName.keys()].join(', ')}`);
      }
      const h = isHostTensor(v) ? asDType(`setTraces: '${name}'`, v, this.dtype) : tensor(v, t.shape, this.dtype);
      if (h.shape.length !== t.shape.length || h.shape.some((d, i) => d !== t.shape[i])) {
        throw new ShapeError(`setTraces: '${name}' expects shape ${fmtShape(t.shape)}; got ${fmtShape(h.shape)}`);
      }
      if (this.nonFinite !== 'allow') checkFiniteData('setTraces', `traces.${name}`, h.data as NativeArray);
      staged.push([t.index, h.data as NativeArray]);
    }
    if (steps !== undefined && (!Number.isSafeInteger(steps) || steps < 0)) {
      throw new ArgumentError(`setTraces: steps must be an integer >= 0; got ${String(steps)}`);
    }
    for (const [i, d] of staged) this.native(() => entry.session.setTrace(i, d));
    if (steps !== undefined) this.native(() => entry.session.setTraceSteps(steps));
  }

  /** Trace steps taken since the traces were last reset (pp_prop's n). */
  traceSteps(): number {
    this.checkUsable('traceSteps');
    const entry = this.session('', () => this.stepTrace);
    this.prepare(entry);
    this.markOwner(entry);
    return this.native(() => entry.session.traceSteps());
  }

  protected override onCreate(entry: SessionEntry): void {
    const g = analyseEtraceGraph(entry.traced.graph, { batchSize: this.batchSize });
    const nodes = entry.traced.graph.nodes;
    const nonTemporal = new Set(g.nonTemporalParams);
    const config: NativeOnlineConfig = {
      ...this.traceAlgorithm(),
      groups: g.groups.map((grp) => ({
        members: grp.members.map((m) => ({ leafNode: m.leafNode, newNode: m.newNode, width: m.width })),
        positions: grp.positions,
        zeroRecurrence: grp.zeroRecurrence,
        probePositions: grp.coupled,
      })),
      relations: g.relations.map((r) => ({
        kind: r.op === 'EtpMatMul' ? 'dense' : 'elementWise',
        ...(r.xNode !== null ? { xNode: r.xNode } : {}),
        yNode: r.yNode,
        weightSlot: r.weightSlot,
        biasSlot: r.biasSlot ?? -1,
        ...relationInputs(r, nodes),
        groups: r.groups,
        tailProbe: r.groups.map((gi) => r.tailCoupled[gi]),
      })),
      blockedTransition: nodes.filter((n) => n.op === 'EtpMatMul' || n.op === 'MatMul').map((n) => n.id),
      etpNodes: nodes.filter((n) => n.op === 'EtpMatMul').map((n) => n.id),
      nonTemporalSlots: entry.traced.graph.params.map((p, i) => (nonTemporal.has(p.path) ? i : -1)).filter((i) => i >= 0),
    };
    this.native(() => entry.session.configureOnline(config));
  }

  /** The values of every eligibility trace of `entry`'s session (updated at every step). */
  protected override traceValuesOf(entry: SessionEntry): number {
    return this.native(() => entry.session.traceInfo()).reduce((n, t) => n + numel(t.shape), 0);
  }

  protected override onPull(owner: SessionEntry): void {
    const n = this.native(() => owner.session.traceInfo()).length;
    this.snapshot = {
      data: Array.from({ length: n }, (_, i) => this.native(() => owner.session.getTrace(i))),
      steps: this.native(() => owner.session.traceSteps()),
    };
  }

  protected override onPush(entry: SessionEntry): void {
    const snap = this.snapshot;
    if (snap === null) {
      this.native(() => entry.session.resetTraces());
      return;
    }
    snap.data.forEach((d, i) => this.native(() => entry.session.setTrace(i, d)));
    this.native(() => entry.session.setTraceSteps(snap.steps));
  }

  protected override onReset(): void {
    this.snapshot = null; // the next session to run starts from zero traces
  }

  private chunkOf(chunkSize: number | undefined, steps: number, grads: boolean): number {
    const chunk = chunkSize ?? 1;
    if (!Number.isInteger(chunk) || chunk < 1) {
      throw new ArgumentError(`chunkSize must be an integer >= 1; got ${String(chunkSize)}`);
    }
    if (chunk >= 2 && grads && this.vjpMethod !== 'multi-step') {
      throw new NotSupportedError(
        `etraceGrad: chunkSize ${chunk} needs windows, but the learner uses the 'single-step' VJP method; ` +
          "compile with { vjpMethod: 'multi-step' } or use chunkSize 1",
      );
    }
    if (steps % chunk !== 0) {
      throw new ArgumentError(`chunkSize ${chunk} must divide the number of steps T = ${steps}`);
    }
    return chunk;
  }
}

interface GraphNodeLike {
  op: string;
  inputs: number[];
}

/**
 * The op's weight / bias input nodes of a relation when they are transforms of the
 * ParamState (W_eff = f(θ)); -1 where the input is the Param leaf itself (or absent).
 */
function relationInputs(r: Relation, nodes: readonly GraphNodeLike[]): { weightNode: number; biasNode: number } {
  const y = nodes[r.yNode];
  const w = r.op === 'EtpMatMul' ? y.inputs[1] : y.inputs[0];
  const b = r.op === 'EtpMatMul' && r.biasSlot !== null && y.inputs.length === 3 ? y.inputs[2] : -1;
  const transformed = (id: number) => id >= 0 && nodes[id].op !== 'Param';
  return { weightNode: transformed(w) ? w : -1, biasNode: transformed(b) ? b : -1 };
}

/** Why the transform `node` is not f(param leaf `leaf`, constants) (null when it is). */
function transformProblem(nodes: readonly GraphNodeLike[], node: number, leaf: number): string | null {
  const seen = new Set<number>([node]);
  const stack = [node];
  while (stack.length > 0) {
    const cur = stack.pop()!;
    const op = nodes[cur].op;
    if (op === 'Input' || op === 'State') return `depends on a${op === 'Input' ? 'n input' : ' state'} (node ${cur})`;
    if (op === 'Param' && cur !== leaf) return `depends on another ParamState (node ${cur})`;
    for (const i of nodes[cur].inputs) {
      if (!seen.has(i)) {
        seen.add(i);
        stack.push(i);
      }
    }
  }
  return null;
}

/**
 * D_RTRL: one eligibility trace per (relation, hidden group) and per weight
 * element, `eps = D·eps + df ⊗ x` for each batch element; the gradient of a
 * step is Σ over batch and state of the learning signal times the trace.
 * Exact (equal to BPTT) when every hidden group's Jacobian is exactly diagonal
 * and each weight feeds hidden states only through element-wise tails.
 * Memory O(B·Nθ·S). `bt.compile(model, bt.D_RTRL, { inputShape, ... })`.
 */
export class ParamDimVjpAlgorithm extends OnlineLearner {
  /** Creates a D_RTRL learner (prefer `bt.compile`). */
  constructor(model: Module, options: OnlineOptions) {
    super(model, options);
  }
  protected traceAlgorithm(): TraceAlgorithmConfig {
    return { algorithm: 'd_rtrl' };
  }
}

/** Options of {@link IODimVjpAlgorithm}. */
export interface PpPropOptions extends OnlineOptions {
  /**
   * A decay α in [0, 1), or an integer rank r >= 1 with α = (r − 1) / (r + 1)
   * (rank 1: α = 0, no smoothing). Required.
   */
  decayOrRank: number;
}

/** Resolves decayOrRank to α (see {@link PpPropOptions}). */
export function decayOf(decayOrRank: unknown): number {
  if (typeof decayOrRank !== 'number' || !Number.isFinite(decayOrRank)) {
    throw new ArgumentError(`compile: decayOrRank must be a decay in [0, 1) or an integer rank >= 1; got ${String(decayOrRank)}`);
  }
  if (decayOrRank >= 0 && decayOrRank < 1) return decayOrRank;
  if (Number.isInteger(decayOrRank) && decayOrRank >= 1) return (decayOrRank - 1) / (decayOrRank + 1);
  throw new ArgumentError(`compile: decayOrRank must be a decay in [0, 1) or an integer rank >= 1; got ${decayOrRank}`);
}

/**
 * ES_D_RTRL / pp_prop: traces factorised over the input and output dimensions,
 * `xbar = α·xbar + x`, `epsf = α·(D·epsf) + (1 − α)·df`, gradient
 * `xbar ⊗ (Σ_s g ⊙ epsf) / c` with `c = 1 − α^(n+1)` and n counting trace steps
 * (the reference counts calls, which is wrong for windows). Memory O(B·(I + O·S)).
 * `bt.compile(model, bt.pp_prop, { inputShape, decayOrRank, ... })`.
 */
export class IODimVjpAlgorithm extends OnlineLearner {
  /** The decay α. */
  readonly decay: number;
  /** Compile option keys: the online ones plus `decayOrRank`. */
  static override optionKeys(): readonly string[] {
    return [...OnlineLearner.optionKeys(), 'decayOrRank'];
  }
  /** Creates a pp_prop learner (prefer `bt.compile`). */
  constructor(model: Module, options: PpPropOptions) {
    const decay = decayOf(options?.decayOrRank);
    super(model, options);
    this.decay = decay;
  }
  protected traceAlgorithm(): TraceAlgorithmConfig {
    return { algorithm: 'pp_prop', decayX: this.decay, decayF: this.decay };
  }
}

/** Alias of {@link ParamDimVjpAlgorithm}. */
export const D_RTRL = ParamDimVjpAlgorithm;
/** Alias of {@link IODimVjpAlgorithm}. */
export const ES_D_RTRL = IODimVjpAlgorithm;
/** Alias of {@link IODimVjpAlgorithm}. */
export const pp_prop = IODimVjpAlgorithm;
