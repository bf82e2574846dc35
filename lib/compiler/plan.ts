/**
 * Lowering of a {@link Graph} to the native plan encoding (an `Int32Array` of
 * records plus a `Float64Array` of float attributes). The format is specified in
 * `native/include/braintrace/ops.h`; the native side re-validates every field.
 */
import type { Graph } from '../graph/ir';
import { OP_TABLE, OUTPUT_KIND } from '../graph/ops';
import { ArgumentError } from '../runtime/errors';

/** Magic number at the head of every plan ("BTP1"). */
export const PLAN_MAGIC = 0x42545031;
/** Version of the plan encoding understood by this build. */
export const PLAN_VERSION = 1;

/** A plan as handed to the native `createSession`. */
export interface EncodedPlan {
  /** Header, node records and output table (see ops.h). */
  code: Int32Array;
  /** Float attributes of all nodes, concatenated. */
  fattr: Float64Array;
}

/** Encodes a graph as a native plan. Pure; throws ArgumentError on a malformed graph. */
export function encodePlan(graph: Graph): EncodedPlan {
  const code: number[] = [PLAN_MAGIC, PLAN_VERSION, graph.dtype === 'float64' ? 1 : 0, graph.nodes.length];
  const fattr: number[] = [];
  graph.nodes.forEach((node, i) => {
    if (node.id !== i) {
      throw new ArgumentError(`encodePlan: node at position ${i} has id ${node.id} (expected ${i})`);
    }
    const info = OP_TABLE[node.op];
    if (info === undefined) throw new ArgumentError(`encodePlan: node ${i} has unknown op '${node.op}'`);
    code.push(info.code, node.inputs.length, ...node.inputs, node.shape.length, ...node.shape);
    code.push(node.ints.length, ...node.ints, node.floats.length, fattr.length);
    for (const f of node.floats) fattr.push(f);
  });
  code.push(graph.outputs.length);
  for (const out of graph.outputs) code.push(OUTPUT_KIND[out.kind], out.nodeId, out.index);
  for (const v of code) {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      throw new ArgumentError(`encodePlan: value ${v} does not fit an int32 plan field`);
    }
  }
  return { code: Int32Array.from(code), fattr: Float64Array.from(fattr) };
}
