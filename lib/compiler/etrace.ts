/**
 * The eligibility-trace compiler: from a traced one-step graph to the
 * {@link ETraceGraph} — hidden groups, relations (one per trainable-weight
 * call) and diagnostics. Pure graph analysis; the numbers are computed natively
 * by the executor (`lib/executor`).
 *
 * Definitions (our IR; cf. the reference's hidden groups and relations):
 *
 * - **Positions.** A hidden state of per-sample shape `varshape` and batch B
 *   has P = B·prod(varshape) positions, flat over `(B, *varshape)`.
 * - **Transition.** The part of the step that maps old hidden values to new
 *   ones *without* passing through a weight product: trainable-weight matmuls
 *   (`EtpMatMul`) and plain `MatMul`s are cut (their outputs count as
 *   constants), and so is `stopGradient`.
 * - **Hidden groups.** Two hidden states belong to one group when the old
 *   value of one reaches the new value of the other through the transition.
 *   Members are ordered by state slot (definition order); groups by their first
 *   member, then the zero-recurrence groups (states whose only recurrence
 *   runs through a weight: D ≡ 0), also by slot. A group's state vector at a
 *   position is its members' values concatenated (S = Σ widths).
 * - **Relations.** One per `EtpMatMul` / `EtpElementWise` call: the op's input
 *   x, its output y, the groups that y feeds directly (not through another
 *   hidden state or another weight product) and every hidden state of those
 *   groups that y reaches.
 *
 * Exactness (where we do better than the reference, which uses column sums):
 * D is the exact per-position S×S block dh^t[p]/dh^{t-1}[p] and df the exact
 * dh^t[p]/dy[p]. When a transition or a y→h tail couples positions
 * (reductions, softmax, transposes or slices over position axes, plain
 * matmuls in a tail), the compiler reports it and the executor probes one
 * position at a time, which keeps the diagonal blocks exact and drops the
 * cross-position terms (documented in docs/etrace.md).
 */
import type { Graph, GraphNode } from '../graph/ir';
import type { OpKind } from '../graph/ops';
import { OP_TABLE } from '../graph/ops';
import { CompilationError, NotSupportedError, fmtShape, type DiagnosticRecord } from '../runtime/errors';
import { numel } from '../tensor';

/** Diagnostic kinds emitted by the compiler. */
export type DiagnosticKind =
  | 'RELATION_INCLUDED'
  | 'RELATION_EXCLUDED_NO_PARAMSTATE'
  | 'RELATION_EXCLUDED_NON_TEMPORAL'
  | 'RELATION_EXCLUDED_SHAPE_MISMATCH'
  | 'RELATION_EXCLUDED_WEIGHT_TO_WEIGHT'
  | 'RELATION_PARTIAL_PATH'
  | 'HIDDEN_GROUP_MERGED'
  | 'ZERO_RECURRENCE_GROUP'
  | 'TRANSITION_COUPLES_POSITIONS'
  | 'TAIL_COUPLES_POSITIONS'
  | 'NON_TEMPORAL_PARAMETER';

/** One compiler diagnostic. */
export interface Diagnostic extends DiagnosticRecord {
  kind: DiagnosticKind;
}

/** A member state of a hidden group. */
export interface GroupMember {
  /** Dotted path of the state ('rnn.h'). */
  path: string;
  /** State slot in the traced graph. */
  stateSlot: number;
  /** Node id of the State leaf (old value). */
  leafNode: number;
  /** Node id of the new value (the state's stateNew row). */
  newNode: number;
  /** 1 for a HiddenState, S_m for a HiddenGroupState. */
  width: number;
  /** Offset of the member's first state in the group's state axis. */
  offset: number;
}

/** A hidden group: states updated together through the non-weight part of the step. */
export interface HiddenGroup {
  /** Position in {@link ETraceGraph.groups}. */
  index: number;
  /** Stable identifier: `hidden_group_<index>`. */
  key: string;
  /** Member paths, in member order. */
  hiddenPaths: string[];
  members: GroupMember[];
  /** Per-sample shape shared by all members (without batch and state axes). */
  varshape: number[];
  /** S: the size of the group's state axis. */
  numState: number;
  /** P = batch · prod(varshape). */
  positions: number;
  /** True when the only recurrence runs through weight products: D ≡ 0. */
  zeroRecurrence: boolean;
  /** True when the transition couples positions (D is then probed per position). */
  coupled: boolean;
  /** Nodes of the transition (on a path from a member's old value to a member's new value). */
  transitionNodes: number[];
}

/** How the paths from a relation's y to a hidden state run. */
export type PathClass = 'allDirect' | 'mixed';

/** A relation: one trainable-weight op call and the hidden groups it feeds. */
export interface Relation {
  /** Position in {@link ETraceGraph.relations}. */
  index: number;
  /** Stable identifier: `<weightPath>@<k>`, k counting the calls of that weight in trace order. */
  key: string;
  op: 'EtpMatMul' | 'EtpElementWise';
  /** Node of the op output y. */
  yNode: number;
  /** Node of the op input x (EtpMatMul), null for EtpElementWise. */
  xNode: number | null;
  /** Path of the weight ParamState. */
  weightPath: string;
  /** Param slot of the weight. */
  weightSlot: number;
  /** True when W is a transform of the ParamState (mask, sign constraint, ...), not its raw value. */
  weightTransformed: boolean;
  /** Path and slot of the bias ParamState, when the op has one. */
  biasPath: string | null;
  biasSlot: number | null;
  /** Shapes of x (or null) and y. */
  xShape: number[] | null;
  yShape: number[];
  /** Indices of the target groups, ascending. */
  groups: number[];
  /** Per target hidden path: whether some path y→h also runs through another weight op. */
  pathClass: Record<string, PathClass>;
  /** Per target group index: whether the y→h tail couples positions (df is then probed). */
  tailCoupled: Record<number, boolean>;
  /** Stable identifier of df for group g: `<key>-><hidden_group_g>`. */
  dfKeys: Record<number, string>;
}

/** Options of {@link analyseEtraceGraph}. */
export interface EtraceCompileOptions {
  /** Batch size of the traced graph (its leading axis). */
  batchSize: number;
}

/** The compiled eligibility-trace graph of a model step. */
export class ETraceGraph {
  constructor(
    /** The traced step (plain data). */
    readonly graph: Graph,
    /** Hidden groups, in order. */
    readonly groups: HiddenGroup[],
    /** Relations, in order of the ETP calls in the trace. */
    readonly relations: Relation[],
    /** Every diagnostic record, in the order they were found. */
    readonly diagnostics: Diagnostic[],
    /** Weight paths with no relation (readouts, weight-to-weight): trained by their instantaneous gradient. */
    readonly nonTemporalParams: string[],
  ) {}

  /** The group of a hidden state path, or undefined. */
  groupOf(hiddenPath: string): HiddenGroup | undefined {
    return this.groups.find((g) => g.hiddenPaths.includes(hiddenPath));
  }

  /**
   * A readable report of groups, relations and exclusions. Filters: only
   * records about `weightPath`, about `hiddenPath`, or of `kind`.
   */
  explain(filter: { weightPath?: string; hiddenPath?: string; kind?: DiagnosticKind } = {}): string {
    const lines: string[] = [];
    const all = filter.weightPath === undefined && filter.hiddenPath === undefined && filter.kind === undefined;
    if (all) {
      lines.push(`Hidden groups (${this.groups.length}):`);
      for (const g of this.groups) {
        const flags = [g.zeroRecurrence ? 'zero recurrence (D = 0)' : '', g.coupled ? 'couples positions (probed)' : '']
          .filter(Boolean)
          .join(', ');
        lines.push(
          `  ${g.key}: [${g.hiddenPaths.join(', ')}]  varshape ${fmtShape(g.varshape)}  S = ${g.numState}${flags ? `  ${flags}` : ''}`,
        );
      }
      lines.push(`Relations (${this.relations.length}):`);
      for (const r of this.relations) {
        const targets = r.groups.map((gi) => `${this.groups[gi].key}${r.tailCoupled[gi] ? ' (tail couples positions)' : ''}`);
        const bias = r.biasPath ? ` + bias ${r.biasPath}` : '';
        lines.push(
          `  ${r.key}: ${r.op}(${r.weightPath}${r.weightTransformed ? ' transformed' : ''}${bias})  x ${
            r.xShape ? fmtShape(r.xShape) : '-'
          }  y ${fmtShape(r.yShape)}  -> ${targets.join(', ')}`,
        );
      }
      if (this.nonTemporalParams.length > 0) {
        lines.push(`Non-temporal parameters: ${this.nonTemporalParams.join(', ')}`);
      }
      lines.push('Diagnostics:');
    }
    for (const d of this.diagnostics) {
      if (filter.kind !== undefined && d.kind !== filter.kind) continue;
      if (filter.weightPath !== undefined && d.weightPath !== filter.weightPath) continue;
      if (filter.hiddenPath !== undefined && !(d.hiddenPaths ?? []).includes(filter.hiddenPath)) continue;
      lines.push(`  [${d.level}] ${d.kind}: ${d.message}`);
    }
    return lines.join('\n');
  }
}

const CUT_FOR_TRANSITION: ReadonlySet<OpKind> = new Set<OpKind>(['EtpMatMul', 'MatMul', 'StopGradient']);
const ETP_OPS: ReadonlySet<OpKind> = new Set<OpKind>(['EtpMatMul', 'EtpElementWise']);

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Consumers of every node. */
function consumersOf(nodes: readonly GraphNode[]): number[][] {
  const out: number[][] = nodes.map(() => []);
  for (const n of nodes) for (const i of n.inputs) if (!out[i].includes(n.id)) out[i].push(n.id);
  return out;
}

/** Nodes reachable forward from `starts` (included), not entering nodes for which `stop(node)` is true, not expanding past `noExpand`. */
function reachForward(
  starts: readonly number[],
  consumers: readonly number[][],
  enter: (id: number) => boolean,
  expand: (id: number) => boolean = () => true,
): Set<number> {
  const seen = new Set<number>();
  const stack = [...starts];
  for (const s of starts) seen.add(s);
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (!expand(id) && !starts.includes(id)) continue;
    for (const c of consumers[id]) {
      if (seen.has(c) || !enter(c)) continue;
      seen.add(c);
      stack.push(c);
    }
  }
  return seen;
}

/** Nodes from which one of `targets` is reachable (backward), restricted to `within`. */
function reachBackward(targets: readonly number[], nodes: readonly GraphNode[], within: ReadonlySet<number>): Set<number> {
  const seen = new Set<number>();
  const stack = targets.filter((t) => within.has(t));
  for (const t of stack) seen.add(t);
  while (stack.length > 0) {
    const id = stack.pop()!;
    for (const i of nodes[id].inputs) {
      if (seen.has(i) || !within.has(i)) continue;
      seen.add(i);
      stack.push(i);
    }
  }
  return seen;
}

/**
 * Position alignment of a sub-graph: do the values derived from `sources` keep
 * positions apart? A value is aligned when its shape starts with the position
 * prefix `(B, *varshape)` (or, for an unbatched source, `(*varshape)`) and
 * element p of the prefix depends only on element p of its derived inputs.
 * Returns the first node that breaks this, or null.
 */
function findCoupling(
  nodes: readonly GraphNode[],
  sub: ReadonlySet<number>,
  sources: ReadonlySet<number>,
  prefix: readonly number[],
): GraphNode | null {
  const unbatched = prefix.slice(1);
  // tag: 'b' batched-aligned, 'u' unbatched-aligned (shape starts with varshape, from an unbatched y)
  const tag = new Map<number, 'b' | 'u'>();
  const startsWith = (s: readonly number[], p: readonly number[]) => s.length >= p.length && p.every((d, i) => s[i] === d);
  const prefixOf = (t: 'b' | 'u') => (t === 'b' ? prefix : unbatched);
  const ids = [...sub].sort((a, b) => a - b);
  for (const id of ids) {
    const n = nodes[id];
    if (sources.has(id)) {
      if (startsWith(n.shape, prefix)) tag.set(id, 'b');
      else if (startsWith(n.shape, unbatched)) tag.set(id, 'u');
      else return n;
      continue;
    }
    const derived = n.inputs.filter((i) => tag.has(i));
    if (derived.length === 0) continue;
    const tags = new Set(derived.map((i) => tag.get(i)!));
    const info = OP_TABLE[n.op];
    const p = prefixOf(tags.has('b') ? 'b' : 'u');
    const axesOk = (axes: readonly number[]) => axes.every((a) => a >= p.length);
    let ok = false;
    let outTag: 'b' | 'u' = tags.has('b') ? 'b' : 'u';
    switch (info.family) {
      case 'unary':
      case 'binary':
      case 'compare':
      case 'ternary':
        ok = tags.size === 1 && startsWith(n.shape, p);
        break;
      case 'layout':
        if (n.op === 'BroadcastTo') {
          const inShape = nodes[n.inputs[0]].shape;
          const t = tag.get(n.inputs[0])!;
          if (t === 'u' && startsWith(n.shape, prefix) && n.shape.length - inShape.length === 1) {
            ok = startsWith(inShape, unbatched); // (varshape, ...) -> (B, varshape, ...)
            outTag = 'b';
          } else {
            ok = n.shape.length === inShape.length && startsWith(inShape, p) && startsWith(n.shape, p);
          }
        } else if (n.op === 'Reshape') {
          ok = startsWith(nodes[n.inputs[0]].shape, p) && startsWith(n.shape, p);
        } else if (n.op === 'Transpose') {
          ok = n.ints.slice(0, p.length).every((v, i) => v === i) && startsWith(n.shape, p);
        } else if (n.op === 'Slice') {
          ok = n.ints.slice(0, p.length).every((v) => v === 0) && startsWith(n.shape, p);
        } else if (n.op === 'Concat') {
          ok = tags.size === 1 && n.ints[0] >= p.length && n.inputs.every((i) => startsWith(nodes[i].shape, p));
        }
        break;
      case 'reduce':
        ok = axesOk(n.ints) && startsWith(n.shape, p);
        break;
      case 'normalise':
        ok = axesOk([n.ints[0]]);
        break;
      default:
        ok = false; // products mix positions
    }
    if (!ok) return n;
    tag.set(id, outTag);
  }
  return null;
}

class DiagnosticLog {
  readonly records: Diagnostic[] = [];
  add(kind: DiagnosticKind, level: Diagnostic['level'], message: string, weightPath?: string, hiddenPaths?: string[]): void {
    const d: Diagnostic = { kind, level, message };
    if (weightPath !== undefined) d.weightPath = weightPath;
    if (hiddenPaths !== undefined) d.hiddenPaths = hiddenPaths;
    this.records.push(d);
  }
}

function describeNode(n: GraphNode): string {
  return `node ${n.id} (${n.op} ${fmtShape(n.shape)})`;
}

/**
 * Analyses a traced step: hidden groups, relations, diagnostics.
 * @throws NotSupportedError when states of different per-sample shapes would form one group.
 * @throws CompilationError (carrying the diagnostics) when no relation exists.
 */
export function analyseEtraceGraph(graph: Graph, options: EtraceCompileOptions): ETraceGraph {
  const { nodes } = graph;
  const B = options.batchSize;
  const log = new DiagnosticLog();
  const consumers = consumersOf(nodes);

  // ---- hidden states: slot, leaf, new node, width, varshape
  const newNodeOfSlot = new Map<number, number>();
  for (const o of graph.outputs) if (o.kind === 'stateNew') newNodeOfSlot.set(o.index, o.nodeId);
  const hidden = graph.states
    .map((s, slot) => ({ s, slot }))
    .filter(({ s }) => s.kind === 'hidden' || s.kind === 'hiddenGroup')
    .map(({ s, slot }) => {
      const width = s.kind === 'hiddenGroup' ? s.numState : 1;
      const varshape = s.kind === 'hiddenGroup' ? s.shape.slice(1, -1) : s.shape.slice(1);
      const newNode = newNodeOfSlot.get(slot);
      if (newNode === undefined) throw new CompilationError(`state '${s.path}' has no stateNew row in the traced graph`);
      return { path: s.path, slot, leafNode: s.nodeId, newNode, width, varshape };
    });
  const newNodeToHidden = new Map<number, number[]>();
  hidden.forEach((h, k) => newNodeToHidden.set(h.newNode, [...(newNodeToHidden.get(h.newNode) ?? []), k]));

  // ---- hidden groups by union-find over "old value of i reaches new value of j through the transition"
  const parent = hidden.map((_, k) => k);
  const find = (k: number): number => (parent[k] === k ? k : (parent[k] = find(parent[k])));
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const enterTransition = (id: number) => !CUT_FOR_TRANSITION.has(nodes[id].op);
  const recurrent = hidden.map(() => false);
  const reach = hidden.map((h) => reachForward([h.leafNode], consumers, enterTransition));
  hidden.forEach((h, i) => {
    for (const [node, ks] of newNodeToHidden) {
      if (!reach[i].has(node)) continue;
      for (const j of ks) {
        if (!sameShape(hidden[j].varshape, h.varshape)) {
          throw new NotSupportedError(
            `hidden states '${h.path}' (per-sample shape ${fmtShape(h.varshape)}) and '${hidden[j].path}' ` +
              `(per-sample shape ${fmtShape(hidden[j].varshape)}) are updated together but have different shapes: ` +
              'members of one hidden group must share their per-sample shape (stack them with a HiddenGroupState, or reshape)',
          );
        }
        union(i, j);
        recurrent[i] = true;
        recurrent[j] = true;
      }
    }
  });
  const byRoot = new Map<number, number[]>();
  hidden.forEach((_, k) => byRoot.set(find(k), [...(byRoot.get(find(k)) ?? []), k]));
  const memberLists = [...byRoot.values()].map((ks) => ks.sort((a, b) => hidden[a].slot - hidden[b].slot));
  const regular = memberLists.filter((ks) => ks.some((k) => recurrent[k]));
  const zero = memberLists.filter((ks) => !ks.some((k) => recurrent[k]));
  const order = (a: number[], b: number[]) => hidden[a[0]].slot - hidden[b[0]].slot;
  const groupLists = [...regular.sort(order), ...zero.sort(order)];

  const groups: HiddenGroup[] = groupLists.map((ks, index) => {
    let offset = 0;
    const members: GroupMember[] = ks.map((k) => {
      const h = hidden[k];
      const m = { path: h.path, stateSlot: h.slot, leafNode: h.leafNode, newNode: h.newNode, width: h.width, offset };
      offset += h.width;
      return m;
    });
    const varshape = hidden[ks[0]].varshape.slice();
    const zeroRecurrence = !ks.some((k) => recurrent[k]);
    const key = `hidden_group_${index}`;
    const paths = members.map((m) => m.path);
    let transitionNodes: number[] = [];
    let coupled = false;
    if (!zeroRecurrence) {
      const fwd = new Set<number>();
      for (const k of ks) for (const id of reach[k]) fwd.add(id);
      const sub = reachBackward(members.map((m) => m.newNode), nodes, fwd);
      transitionNodes = [...sub].sort((a, b) => a - b);
      const bad = findCoupling(nodes, sub, new Set(members.map((m) => m.leafNode)), [B, ...varshape]);
      if (bad !== null) {
        coupled = true;
        log.add(
          'TRANSITION_COUPLES_POSITIONS',
          'warning',
          `the transition of ${key} [${paths.join(', ')}] couples positions at ${describeNode(bad)}: D keeps the exact ` +
            'per-position S×S blocks, probed one position at a time (cost: P·S forward passes per step); ' +
            'the cross-position terms are dropped',
          undefined,
          paths,
        );
      }
    }
    if (members.length > 1) {
      log.add('HIDDEN_GROUP_MERGED', 'info', `${key} merges [${paths.join(', ')}] (S = ${offset})`, undefined, paths);
    }
    if (zeroRecurrence) {
      log.add(
        'ZERO_RECURRENCE_GROUP',
        'info',
        `${key} [${paths.join(', ')}]: the only recurrence runs through weight products, so D = 0`,
        undefined,
        paths,
      );
    }
    return {
      index,
      key,
      hiddenPaths: paths,
      members,
      varshape,
      numState: offset,
      positions: B * numel(varshape),
      zeroRecurrence,
      coupled,
      transitionNodes,
    };
  });
  const groupOfNewNode = new Map<number, number>();
  for (const g of groups) for (const m of g.members) groupOfNewNode.set(m.newNode, g.index);

  // ---- relations
  const paramPathOfLeaf = new Map<number, { path: string; slot: number }>();
  graph.params.forEach((p, slot) => paramPathOfLeaf.set(p.nodeId, { path: p.path, slot }));
  const resolveParam = (id: number): { path: string; slot: number; transformed: boolean } | null => {
    const direct = paramPathOfLeaf.get(id);
    if (direct) return { ...direct, transformed: false };
    const seen = new Set<number>([id]);
    const stack = [id];
    let found: { path: string; slot: number } | null = null;
    while (stack.length > 0) {
      const cur = stack.pop()!;
      for (const i of nodes[cur].inputs) {
        if (seen.has(i)) continue;
        seen.add(i);
        const p = paramPathOfLeaf.get(i);
        if (p && (found === null || p.slot < found.slot)) found = p;
        stack.push(i);
      }
    }
    return found ? { ...found, transformed: true } : null;
  };

  const relations: Relation[] = [];
  const callsOfWeight = new Map<string, number>();
  const weightsWithRelation = new Set<string>();
  const etpNodes = nodes.filter((n) => ETP_OPS.has(n.op));
  for (const e of etpNodes) {
    const op = e.op as Relation['op'];
    const wInput = op === 'EtpMatMul' ? e.inputs[1] : e.inputs[0];
    const w = resolveParam(wInput);
    if (w === null) {
      log.add('RELATION_EXCLUDED_NO_PARAMSTATE', 'warning', `${describeNode(e)}: its weight comes from no ParamState`);
      continue;
    }
    const k = callsOfWeight.get(w.path) ?? 0;
    callsOfWeight.set(w.path, k + 1);
    const key = `${w.path}@${k}`;
    const bias = op === 'EtpMatMul' && e.inputs.length === 3 ? resolveParam(e.inputs[2]) : null;

    // Phase 1: groups fed directly (not through another weight op, not past a hidden new value).
    const direct1 = reachForward([e.id], consumers, (id) => !(ETP_OPS.has(nodes[id].op) && id !== e.id), (id) => !groupOfNewNode.has(id));
    const fed = new Set<number>();
    for (const id of direct1) {
      const g = groupOfNewNode.get(id);
      if (g !== undefined) fed.add(g);
    }
    // Phase 2: every hidden new value of those groups that y reaches (expanding through new values).
    const direct2 = reachForward([e.id], consumers, (id) => !(ETP_OPS.has(nodes[id].op) && id !== e.id));
    const crossing = reachForward([e.id], consumers, () => true);
    if (fed.size === 0) {
      const reachesHidden = [...crossing].some((id) => groupOfNewNode.has(id));
      if (reachesHidden) {
        log.add(
          'RELATION_EXCLUDED_WEIGHT_TO_WEIGHT',
          'warning',
          `${key}: ${op}(${w.path}) reaches hidden states only through another weight op; it gets no trace and is trained by its instantaneous gradient`,
          w.path,
        );
      } else {
        log.add(
          'RELATION_EXCLUDED_NON_TEMPORAL',
          'warning',
          `${key}: ${op}(${w.path}) reaches no hidden state (a readout); it is trained by its instantaneous gradient`,
          w.path,
        );
      }
      continue;
    }
    // Nodes reachable from the outputs of other weight ops that y reaches: paths through them are indirect.
    const otherEtpReached = [...crossing].filter((id) => id !== e.id && ETP_OPS.has(nodes[id].op));
    const viaOther = reachForward(otherEtpReached, consumers, () => true);
    const yShape = e.shape.slice();
    const targetGroups: number[] = [];
    const pathClass: Record<string, PathClass> = {};
    const tailCoupled: Record<number, boolean> = {};
    const dfKeys: Record<number, string> = {};
    for (const gi of [...fed].sort((a, b) => a - b)) {
      const g = groups[gi];
      const P = g.positions;
      const n = numel(yShape);
      const alignedShape = sameShape(yShape, [B, ...g.varshape]) || sameShape(yShape, g.varshape);
      if (!alignedShape || (n !== P && n * B !== P)) {
        log.add(
          'RELATION_EXCLUDED_SHAPE_MISMATCH',
          'warning',
          `${key}: y ${fmtShape(yShape)} does not match the positions of ${g.key} (expected ${fmtShape([B, ...g.varshape])} or ${fmtShape(
            g.varshape,
          )})`,
          w.path,
          g.hiddenPaths,
        );
        continue;
      }
      targetGroups.push(gi);
      dfKeys[gi] = `${key}->${g.key}`;
      for (const m of g.members) {
        if (!direct2.has(m.newNode)) continue;
        const cls: PathClass = viaOther.has(m.newNode) ? 'mixed' : 'allDirect';
        pathClass[m.path] = cls;
        if (cls === 'mixed') {
          log.add(
            'RELATION_PARTIAL_PATH',
            'warning',
            `${key}: some paths from ${op}(${w.path}) to '${m.path}' run through another weight op; their part of the gradient is not traced`,
            w.path,
            [m.path],
          );
        }
      }
      const tail = reachBackward(g.members.map((m) => m.newNode), nodes, direct2);
      const bad = findCoupling(nodes, tail, new Set([e.id]), [B, ...g.varshape]);
      tailCoupled[gi] = bad !== null;
      if (bad !== null) {
        log.add(
          'TAIL_COUPLES_POSITIONS',
          'warning',
          `${key}: the path from y to ${g.key} is not element-wise at ${describeNode(bad)}: df keeps the exact d h[p] / d y[p], ` +
            'probed one position at a time; cross-position terms are dropped',
          w.path,
          g.hiddenPaths,
        );
      }
    }
    if (targetGroups.length === 0) continue;
    weightsWithRelation.add(w.path);
    if (bias) weightsWithRelation.add(bias.path);
    const rel: Relation = {
      index: relations.length,
      key,
      op,
      yNode: e.id,
      xNode: op === 'EtpMatMul' ? e.inputs[0] : null,
      weightPath: w.path,
      weightSlot: w.slot,
      weightTransformed: w.transformed,
      biasPath: bias ? bias.path : null,
      biasSlot: bias ? bias.slot : null,
      xShape: op === 'EtpMatMul' ? nodes[e.inputs[0]].shape.slice() : null,
      yShape,
      groups: targetGroups,
      pathClass,
      tailCoupled,
      dfKeys,
    };
    relations.push(rel);
    log.add(
      'RELATION_INCLUDED',
      'info',
      `${key}: ${op}(${w.path}${bias ? ` + ${bias.path}` : ''}) -> ${targetGroups.map((gi) => groups[gi].key).join(', ')}`,
      w.path,
      targetGroups.flatMap((gi) => groups[gi].hiddenPaths),
    );
  }

  const nonTemporalParams = graph.params.map((p) => p.path).filter((p) => !weightsWithRelation.has(p));
  for (const p of nonTemporalParams) {
    log.add('NON_TEMPORAL_PARAMETER', 'info', `'${p}' has no relation: it is trained by its instantaneous gradient`, p);
  }
  if (relations.length === 0) {
    throw new CompilationError(
      'compileEtraceGraph: the model has no relation (no trainable-weight op feeds a hidden state); ' +
        'eligibility traces have nothing to trace. Diagnostics:\n' +
        log.records.map((d) => `  [${d.level}] ${d.kind}: ${d.message}`).join('\n'),
      log.records,
    );
  }
  return new ETraceGraph(graph, groups, relations, log.records, nonTemporalParams);
}
