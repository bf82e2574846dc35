/**
 * The closed op set of the graph IR, in native code order.
 *
 * This list is the TypeScript twin of `BT_OP_LIST` in
 * `native/include/braintrace/ops.h`: the index of a name here is its native
 * opcode, and a test checks that `binding.opNames()` equals {@link OP_NAMES}.
 * Attribute conventions (int and float attributes per op) are documented there.
 */

/** Every op of the IR, in native code order. */
export const OP_NAMES = [
  // leaves
  'Input', 'Param', 'State', 'Const',
  // unary element-wise
  'Neg', 'Square', 'Sqrt', 'Abs', 'Exp', 'Log', 'Log1p', 'Tanh', 'Sigmoid', 'Relu', 'LeakyRelu',
  'Softplus', 'Elu', 'Gelu', 'Sin', 'Cos', 'Clamp', 'Spike', 'StopGradient', 'EtpElementWise',
  // binary element-wise (equal shapes)
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Minimum', 'Maximum',
  'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'Equal', 'NotEqual',
  // ternary
  'Where',
  // layout
  'BroadcastTo', 'Reshape', 'Transpose', 'Slice', 'Concat',
  // reductions
  'ReduceSum', 'ReduceMean', 'ReduceMax',
  // normalisers
  'Softmax', 'LogSoftmax',
  // products
  'MatMul', 'EtpMatMul',
] as const;

/** Name of an op of the IR. */
export type OpKind = (typeof OP_NAMES)[number];

/** Coarse family of an op, used by the tracer and (later) the compiler. */
export type OpFamily =
  | 'leaf'
  | 'unary'
  | 'binary'
  | 'compare'
  | 'ternary'
  | 'layout'
  | 'reduce'
  | 'normalise'
  | 'product';

/** Static facts about one op. */
export interface OpInfo {
  /** Native opcode (index in {@link OP_NAMES}). */
  code: number;
  /** Number of inputs; -1 for variadic (Concat: >= 1, EtpMatMul: 2 or 3). */
  arity: number;
  family: OpFamily;
  /** True for trainable-weight (ETP) ops that the eligibility-trace compiler looks for. */
  etp: boolean;
  /** True when the op is linear in its (differentiable) inputs. */
  linear: boolean;
}

const fam = (family: OpFamily, arity: number, extra: Partial<OpInfo> = {}): Omit<OpInfo, 'code'> => ({
  family,
  arity,
  etp: false,
  linear: false,
  ...extra,
});

const TABLE: Record<OpKind, Omit<OpInfo, 'code'>> = {
  Input: fam('leaf', 0),
  Param: fam('leaf', 0),
  State: fam('leaf', 0),
  Const: fam('leaf', 0),
  Neg: fam('unary', 1, { linear: true }),
  Square: fam('unary', 1),
  Sqrt: fam('unary', 1),
  Abs: fam('unary', 1),
  Exp: fam('unary', 1),
  Log: fam('unary', 1),
  Log1p: fam('unary', 1),
  Tanh: fam('unary', 1),
  Sigmoid: fam('unary', 1),
  Relu: fam('unary', 1),
  LeakyRelu: fam('unary', 1),
  Softplus: fam('unary', 1),
  Elu: fam('unary', 1),
  Gelu: fam('unary', 1),
  Sin: fam('unary', 1),
  Cos: fam('unary', 1),
  Clamp: fam('unary', 1),
  Spike: fam('unary', 1),
  StopGradient: fam('unary', 1),
  EtpElementWise: fam('unary', 1, { etp: true, linear: true }),
  Add: fam('binary', 2, { linear: true }),
  Sub: fam('binary', 2, { linear: true }),
  Mul: fam('binary', 2),
  Div: fam('binary', 2),
  Pow: fam('binary', 2),
  Minimum: fam('binary', 2),
  Maximum: fam('binary', 2),
  Less: fam('compare', 2),
  LessEqual: fam('compare', 2),
  Greater: fam('compare', 2),
  GreaterEqual: fam('compare', 2),
  Equal: fam('compare', 2),
  NotEqual: fam('compare', 2),
  Where: fam('ternary', 3),
  BroadcastTo: fam('layout', 1, { linear: true }),
  Reshape: fam('layout', 1, { linear: true }),
  Transpose: fam('layout', 1, { linear: true }),
  Slice: fam('layout', 1, { linear: true }),
  Concat: fam('layout', -1, { linear: true }),
  ReduceSum: fam('reduce', 1, { linear: true }),
  ReduceMean: fam('reduce', 1, { linear: true }),
  ReduceMax: fam('reduce', 1),
  Softmax: fam('normalise', 1),
  LogSoftmax: fam('normalise', 1),
  MatMul: fam('product', 2),
  EtpMatMul: fam('product', -1, { etp: true }),
};

/** Facts about every op, keyed by name. */
export const OP_TABLE: Readonly<Record<OpKind, OpInfo>> = Object.fromEntries(
  OP_NAMES.map((name, code) => [name, { ...TABLE[name], code }]),
) as Record<OpKind, OpInfo>;

/** Surrogate-gradient functions of the Spike op, in native code order (ints[0] of a Spike node). */
export const SURROGATE_NAMES = [
  'sigmoid',
  'arctan',
  'reluGrad',
  'gaussianGrad',
  'piecewiseQuadratic',
  'multiGaussian',
] as const;

/** Name of a surrogate-gradient function. */
export type SurrogateKind = (typeof SURROGATE_NAMES)[number];

/** Kinds of rows in a plan's output table (native `OutputKind`). */
export const OUTPUT_KIND = { output: 0, stateNew: 1, loss: 2 } as const;
