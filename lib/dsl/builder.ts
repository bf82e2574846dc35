/**
 * The graph builder behind tracing, and the (single) active trace.
 *
 * A {@link GraphBuilder} appends {@link GraphNode}s in topological order
 * (a node only reads smaller ids), with shapes computed and checked by the op
 * functions in `ops.ts`. Exactly one builder can be active at a time; tracing
 * is not re-entrant. `beginTrace` / `endTrace` are always paired in
 * try/finally by `traceFunction` / `traceModel`, so no global state survives
 * an exception.
 */
import type { DType, Graph, GraphNode, GraphOutput, InputSlot, ParamSlot, StateKind, StateSlot } from '../graph/ir';
import { OP_TABLE, type OpKind } from '../graph/ops';
import { ArgumentError, NotSupportedError, ShapeError, fmtShape } from '../runtime/errors';
import { numel } from '../tensor';
import { Tensor } from './tensor';

/** What a node's value depends on (used to recognise ETP weights). */
interface NodeDeps {
  /** Param slots the value depends on (sorted, unique). */
  params: number[];
  /** True when the value depends on an Input or State leaf (i.e. it changes per step). */
  dynamic: boolean;
}

function mergeDeps(list: NodeDeps[]): NodeDeps {
  if (list.length === 0) return { params: [], dynamic: false };
  if (list.length === 1) return list[0];
  const set = new Set<number>();
  let dynamic = false;
  for (const d of list) {
    for (const p of d.params) set.add(p);
    dynamic ||= d.dynamic;
  }
  return { params: [...set].sort((a, b) => a - b), dynamic };
}

/** Builds one Graph. Created by the tracing entry points; not used directly by models. */
export class GraphBuilder {
  /** Element type of every tensor of the graph. */
  readonly dtype: DType;
  /** Name of the entry point that created the builder (for messages). */
  readonly origin: string;
  private readonly nodes: GraphNode[] = [];
  private readonly deps: NodeDeps[] = [];
  private readonly inputs: InputSlot[] = [];
  private readonly params: ParamSlot[] = [];
  private readonly states: StateSlot[] = [];
  private readonly outputs: GraphOutput[] = [];
  private closed = false;

  constructor(dtype: DType, origin: string) {
    this.dtype = dtype;
    this.origin = origin;
  }

  /** True once {@link finish} ran (or the trace was aborted). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Number of nodes so far. */
  get size(): number {
    return this.nodes.length;
  }

  /** The node behind a tensor of this builder (read-only view). */
  node(id: number): Readonly<GraphNode> {
    return this.nodes[id];
  }

  /**
   * Appends a node and returns its tensor. Inputs must be tensors of this
   * builder; the caller has already computed and checked `shape`.
   */
  addNode(op: OpKind, inputs: readonly Tensor[], shape: readonly number[], ints: number[] = [], floats: number[] = []): Tensor {
    if (this.closed) throw new ArgumentError(`${op}: the trace has ended; tensors of a finished trace cannot be used`);
    const info = OP_TABLE[op];
    if (info.arity >= 0 && inputs.length !== info.arity) {
      throw new ArgumentError(`${op}: expected ${info.arity} inputs; got ${inputs.length}`);
    }
    for (const t of inputs) this.check(t, op);
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid output shape ${fmtShape(shape)}`);
    }
    for (const v of ints) {
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
        throw new ArgumentError(`${op}: int attribute ${v} is not an int32`);
      }
    }
    const id = this.nodes.length;
    this.nodes.push({ id, op, inputs: inputs.map((t) => t.id), shape: shape.slice(), ints: ints.slice(), floats: floats.slice() });
    let dep: NodeDeps;
    if (op === 'Input' || op === 'State') dep = { params: [], dynamic: true };
    else if (op === 'Param') dep = { params: [ints[0]], dynamic: false };
    else dep = mergeDeps(inputs.map((t) => this.deps[t.id]));
    this.deps.push(dep);
    return new Tensor(this, id, shape.slice(), this.dtype);
  }

  /** Throws unless `t` is a live tensor of this builder. */
  check(t: Tensor, what: string): void {
    if (!(t instanceof Tensor)) {
      throw new ArgumentError(`${what}: expected a Tensor; got ${typeof t}`);
    }
    if (t.builder !== this) {
      throw new ArgumentError(
        `${what}: tensor #${t.id} ${fmtShape(t.shape)} belongs to another trace (or to a trace that has ended); ` +
          'symbolic tensors cannot be shared between traces',
      );
    }
    if (this.closed) {
      throw new ArgumentError(`${what}: tensor #${t.id} belongs to a trace that has ended`);
    }
  }

  /** Adds an Input leaf (slot = next input slot). */
  addInput(name: string, shape: readonly number[]): Tensor {
    const slot = this.inputs.length;
    const t = this.addNode('Input', [], shape, [slot]);
    this.inputs.push({ nodeId: t.id, name, shape: shape.slice() });
    return t;
  }

  /** Adds a Param leaf (slot = next param slot). */
  addParam(path: string, shape: readonly number[]): Tensor {
    const slot = this.params.length;
    const t = this.addNode('Param', [], shape, [slot]);
    this.params.push({ nodeId: t.id, path, shape: shape.slice() });
    return t;
  }

  /** Adds a State leaf (slot = next state slot). */
  addState(path: string, kind: StateKind, shape: readonly number[], numState: number): Tensor {
    const slot = this.states.length;
    const t = this.addNode('State', [], shape, [slot]);
    this.states.push({ nodeId: t.id, path, kind, shape: shape.slice(), numState });
    return t;
  }

  /** Adds a Const leaf holding `values` (row-major, numel(shape) of them). */
  addConst(values: ArrayLike<number>, shape: readonly number[]): Tensor {
    if (values.length !== numel(shape)) {
      throw new ShapeError(`Const: shape ${fmtShape(shape)} needs ${numel(shape)} values; got ${values.length}`);
    }
    return this.addNode('Const', [], shape, [], Array.from(values));
  }

  /** Appends a row to the output table. */
  addOutput(kind: GraphOutput['kind'], t: Tensor, index: number): void {
    this.check(t, `output ${kind}`);
    this.outputs.push({ kind, nodeId: t.id, index });
  }

  /** Param slots that `t`'s value depends on (sorted). */
  paramDeps(t: Tensor): readonly number[] {
    return this.deps[t.id].params;
  }

  /** True when `t` depends on an Input or State leaf (it varies from step to step). */
  isDynamic(t: Tensor): boolean {
    return this.deps[t.id].dynamic;
  }

  /** Path of a param slot. */
  paramPath(slot: number): string {
    return this.params[slot].path;
  }

  /** Current number of state slots. */
  get numStates(): number {
    return this.states.length;
  }

  /** Closes the builder and returns the Graph (plain data). */
  finish(): Graph {
    if (this.closed) throw new ArgumentError(`${this.origin}: the graph was already finished`);
    this.closed = true;
    return {
      dtype: this.dtype,
      nodes: this.nodes,
      inputs: this.inputs,
      params: this.params,
      states: this.states,
      outputs: this.outputs,
    };
  }

  /** Closes the builder without producing a graph (used on exceptions). */
  abort(): void {
    this.closed = true;
  }
}

let active: GraphBuilder | null = null;

/** The builder of the trace in progress, or null outside tracing. */
export function activeBuilder(): GraphBuilder | null {
  return active;
}

/** True while a trace (traceModel / traceFunction) is in progress. */
export function isTracing(): boolean {
  return active !== null;
}

/**
 * Starts a trace. Throws NotSupportedError when one is already in progress
 * (tracing is not re-entrant). Always pair with {@link endTrace} in finally.
 */
export function beginTrace(dtype: DType, origin: string): GraphBuilder {
  if (active !== null) {
    throw new NotSupportedError(
      `${origin}: a trace (${active.origin}) is already in progress; nested tracing is not supported ` +
        '(call the inner function directly on tensors instead of tracing it)',
    );
  }
  active = new GraphBuilder(dtype, origin);
  return active;
}

/** Ends the trace of `b` (closing it if it was not finished). */
export function endTrace(b: GraphBuilder): void {
  if (!b.isClosed) b.abort();
  if (active === b) active = null;
}
