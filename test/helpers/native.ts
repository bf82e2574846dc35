/**
 * Test helpers: run a traced graph natively with explicit leaf values, and
 * finite-difference oracles. Numbers here are test oracles, not library math.
 */
import type { NativeArray, NativeEvalResult, NativeOnlineConfig, NativeSession } from '../../types/binding';
import type { ETraceGraph } from '../../lib/compiler/etrace';
import { PLAN_MAGIC, PLAN_VERSION, encodePlan } from '../../lib/compiler/plan';
import { OP_NAMES } from '../../lib/graph/ops';
import type { Graph } from '../../lib/graph/ir';
import { loadBinding } from '../../lib/runtime/native';

/** Leaf values of a graph, by kind and slot. */
export interface Leaves {
  inputs: Float64Array[];
  params: Float64Array[];
  states: Float64Array[];
}

/** A graph loaded into a native session, evaluated with leaves given as float64 arrays. */
export class GraphRunner {
  readonly session: NativeSession;
  constructor(readonly graph: Graph) {
    const plan = encodePlan(graph);
    this.session = loadBinding().createSession(plan.code, plan.fattr);
  }

  private cast(a: Float64Array | null): NativeArray | null {
    if (a === null) return null;
    return this.graph.dtype === 'float64' ? a : Float32Array.from(a);
  }

  private castAll(list: (Float64Array | null)[]): (NativeArray | null)[] {
    return list.map((a) => this.cast(a));
  }

  /** Forward values of every output row, as float64. */
  forward(leaves: Leaves): Float64Array[] {
    const r = this.session.evaluate({
      inputs: this.castAll(leaves.inputs) as NativeArray[],
      params: this.castAll(leaves.params),
      states: this.castAll(leaves.states),
    });
    return r.outputs.map((o) => Float64Array.from(o));
  }

  /** Output tangents for the given leaf tangents. */
  jvp(leaves: Leaves, tangents: Leaves): Float64Array[] {
    const r = this.session.evaluate({
      inputs: this.castAll(leaves.inputs) as NativeArray[],
      params: this.castAll(leaves.params),
      states: this.castAll(leaves.states),
      inputTangents: this.castAll(tangents.inputs),
      paramTangents: this.castAll(tangents.params),
      stateTangents: this.castAll(tangents.states),
    });
    return (r.outputTangents ?? []).map((o) => Float64Array.from(o));
  }

  /** Leaf cotangents for the given output cotangents. */
  vjp(leaves: Leaves, cotangents: Float64Array[]): Leaves {
    const r: NativeEvalResult = this.session.evaluate({
      inputs: this.castAll(leaves.inputs) as NativeArray[],
      params: this.castAll(leaves.params),
      states: this.castAll(leaves.states),
      outputCotangents: this.castAll(cotangents),
    });
    const f = (l?: NativeArray[]) => (l ?? []).map((a) => Float64Array.from(a));
    return { inputs: f(r.inputCotangents), params: f(r.paramCotangents), states: f(r.stateCotangents) };
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** Flattens leaves into one list of arrays (inputs, params, states). */
export function leafList(l: Leaves): Float64Array[] {
  return [...l.inputs, ...l.params, ...l.states];
}

/** Leaves with the same sizes, filled by `fill(leafIndex, elementIndex)`. */
export function mapLeaves(l: Leaves, fill: (leaf: number, i: number, v: number) => number): Leaves {
  let k = 0;
  const m = (arr: Float64Array[]) =>
    arr.map((a) => {
      const leaf = k++;
      return Float64Array.from(a, (v, i) => fill(leaf, i, v));
    });
  return { inputs: m(l.inputs), params: m(l.params), states: m(l.states) };
}

/** A small deterministic PRNG for test data (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Max |a - b| / max(1, |b|) over two arrays of the same length. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** Dot product of two lists of arrays. */
export function dotLists(a: Float64Array[], b: Float64Array[]): number {
  let s = 0;
  a.forEach((x, k) => x.forEach((v, i) => (s += v * b[k][i])));
  return s;
}

/** Error function (series / continued fraction), accurate to ~1e-15 for the test's reference of gelu. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc at large |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

// ---- hand-written plans (the encoding of native/include/braintrace/ops.h) --------------------

/** The op code of an op name. */
export const op = (name: (typeof OP_NAMES)[number]): number => OP_NAMES.indexOf(name);

/** One node of a hand-written plan. */
export interface NodeSpec {
  op: number;
  inputs?: number[];
  shape: number[];
  ints?: number[];
  floats?: number[];
}

/** Encodes nodes and an output table `[kind, node, index]` as a plan (dtype 0 = f32, 1 = f64). */
export function encodeNodes(dtype: 0 | 1, nodes: NodeSpec[], outputs: [kind: number, node: number, index: number][]) {
  const code: number[] = [PLAN_MAGIC, PLAN_VERSION, dtype, nodes.length];
  const fattr: number[] = [];
  for (const n of nodes) {
    const inputs = n.inputs ?? [];
    const ints = n.ints ?? [];
    const floats = n.floats ?? [];
    code.push(n.op, inputs.length, ...inputs, n.shape.length, ...n.shape, ints.length, ...ints);
    code.push(floats.length, fattr.length);
    for (const f of floats) fattr.push(f);
  }
  code.push(outputs.length);
  for (const o of outputs) code.push(...o);
  return { code: Int32Array.from(code), fattr: Float64Array.from(fattr) };
}

/**
 * The native online configuration of an analysed graph, built independently of the learners
 * (raw weights only; every param that no relation trains is non-temporal).
 */
export function rawOnlineConfig(
  graph: Graph,
  etg: ETraceGraph,
  algorithm: 'd_rtrl' | 'pp_prop' = 'd_rtrl',
  decay: [number, number] = [0, 0],
): NativeOnlineConfig {
  const relationSlots = new Set<number>();
  etg.relations.forEach((r) => {
    relationSlots.add(r.weightSlot);
    if (r.biasSlot !== null) relationSlots.add(r.biasSlot);
  });
  return {
    algorithm,
    decayX: decay[0],
    decayF: decay[1],
    groups: etg.groups.map((g) => ({
      members: g.members.map((m) => ({ leafNode: m.leafNode, newNode: m.newNode, width: m.width })),
      positions: g.positions,
      zeroRecurrence: g.zeroRecurrence,
      probePositions: g.coupled,
    })),
    relations: etg.relations.map((r) => ({
      kind: r.op === 'EtpMatMul' ? ('dense' as const) : ('elementWise' as const),
      xNode: r.xNode ?? undefined,
      yNode: r.yNode,
      weightSlot: r.weightSlot,
      biasSlot: r.biasSlot ?? -1,
      groups: r.groups.slice(),
      tailProbe: r.groups.map((gi) => r.tailCoupled[gi]),
    })),
    blockedTransition: graph.nodes.filter((n) => n.op === 'EtpMatMul' || n.op === 'MatMul').map((n) => n.id),
    etpNodes: graph.nodes.filter((n) => n.op === 'EtpMatMul').map((n) => n.id),
    nonTemporalSlots: graph.params.map((_, i) => i).filter((i) => !relationSlots.has(i)),
  };
}
