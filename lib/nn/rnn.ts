/**
 * Recurrent rate cells (the reference's `braintrace/nn/_rnn.py`). Every
 * weight is a {@link Linear} sub-layer, i.e. an ETP matmul; gates use separate
 * weights (not one fused `(in + H, k·H)` matrix) because a relation's output
 * must have the hidden state's positions `(B, H)` to become an eligibility
 * trace (a slice of a fused product would be `RELATION_EXCLUDED_SHAPE_MISMATCH`).
 *
 * Notation: xh = [x, h] (concatenated on the feature axis), σ the logistic
 * sigmoid, `act` the cell activation.
 */
import * as bt from '../dsl/index';
import type { Tensor } from '../dsl/tensor';
import { checkOptionKeys } from '../runtime/errors';
import { Linear } from './linear';
import { checkBool, checkFeatures, checkInit, checkPosInt, resolveActivation, type Activation } from './util';

/** Options shared by the cells. */
export interface CellOptions {
  /** Initialiser of the input-and-recurrent weights (default `init.xavierNormal()`). */
  wInit?: bt.Initializer | number;
  /** Initialiser of the biases (default zeros). */
  bInit?: bt.Initializer | number;
  /** Learnable biases (default true). */
  bias?: boolean;
  /** Initial value of the hidden state(s) (default zeros). */
  hInit?: bt.Initializer | number;
}

const CELL_KEYS = ['wInit', 'bInit', 'bias', 'hInit'];

function linearOpts(o: Record<string, unknown>, who: string): { wInit: bt.Initializer | number; bInit?: bt.Initializer | number; bias: boolean } {
  const bias = o.bias === undefined ? true : checkBool(o.bias, `${who}: bias`);
  const wInit = checkInit(o.wInit, `${who}: wInit`) ?? bt.init.xavierNormal();
  const bInit = bias ? checkInit(o.bInit, `${who}: bInit`) : undefined;
  return bias ? { wInit, bInit, bias } : { wInit, bias };
}

/** Base of the cells: sizes and the input check. */
abstract class Cell extends bt.Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Hidden units H. */
  readonly hiddenSize: number;
  protected constructor(inFeatures: number, hiddenSize: number, who: string) {
    super();
    this.inFeatures = checkPosInt(inFeatures, `${who}: inFeatures`);
    this.hiddenSize = checkPosInt(hiddenSize, `${who}: hiddenSize`);
  }
  protected checkX(x: Tensor, who: string): void {
    checkFeatures(x, this.inFeatures, `${who}.update: x`);
  }
  /** One step: returns the new hidden output `(B, H)`. */
  abstract override update(x: Tensor): Tensor;
}

/**
 * Elman cell: h' = act([x, h] · W + b), W `(in + H, H)`. State: `h`
 * (HiddenState `(H,)`); weights `W.weight`, `W.bias`.
 *
 * Eligibility traces: h reaches h' only through the weight, so h forms a
 * zero-recurrence group (D = 0, `ZERO_RECURRENCE_GROUP`); `W.weight@0` (+ bias)
 * is a relation to it. D_RTRL keeps only the instantaneous term (x ⊗ df).
 */
export class VanillaRNNCell extends Cell {
  /** W `(in + H, H)` with bias. */
  W: Linear;
  /** h `(B, H)`. */
  h: bt.HiddenState;
  private readonly act: (x: Tensor) => Tensor;
  constructor(inFeatures: number, hiddenSize: number, options: CellOptions & { activation?: Activation } = {}) {
    super(inFeatures, hiddenSize, 'VanillaRNNCell');
    const o = checkOptionKeys('VanillaRNNCell', options, [...CELL_KEYS, 'activation']);
    this.act = resolveActivation(o.activation ?? 'tanh', 'VanillaRNNCell: activation');
    this.W = new Linear(inFeatures + hiddenSize, hiddenSize, linearOpts(o, 'VanillaRNNCell'));
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'VanillaRNNCell: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'VanillaRNNCell');
    const h = this.act(this.W.forward(bt.concat([x, this.h.value], -1)));
    this.h.value = h;
    return h;
  }
}

/**
 * Gated recurrent unit (Cho et al. 2014):
 *   z = σ(xh Wz + bz), r = σ(xh Wr + br), ĥ = act([x, r ∘ h] Wh + bh), h' = (1 − z) ∘ h + z ∘ ĥ.
 * State: `h`. Weights: `Wz`, `Wr`, `Wh` (each `(in + H, H)` with bias).
 *
 * Eligibility traces: `Wz` and `Wh` are relations to h's group (S = 1, D the
 * diagonal of ∂h'/∂h with the weight outputs held fixed); `Wr` reaches h only
 * through `Wh`'s input, so it is `RELATION_EXCLUDED_WEIGHT_TO_WEIGHT` — a
 * non-temporal parameter trained by its instantaneous gradient (as in the
 * reference, which records only W_z and W_h).
 */
export class GRUCell extends Cell {
  Wz: Linear;
  Wr: Linear;
  Wh: Linear;
  h: bt.HiddenState;
  private readonly act: (x: Tensor) => Tensor;
  constructor(inFeatures: number, hiddenSize: number, options: CellOptions & { activation?: Activation } = {}) {
    super(inFeatures, hiddenSize, 'GRUCell');
    const o = checkOptionKeys('GRUCell', options, [...CELL_KEYS, 'activation']);
    this.act = resolveActivation(o.activation ?? 'tanh', 'GRUCell: activation');
    const lo = linearOpts(o, 'GRUCell');
    const n = inFeatures + hiddenSize;
    this.Wz = new Linear(n, hiddenSize, lo);
    this.Wr = new Linear(n, hiddenSize, lo);
    this.Wh = new Linear(n, hiddenSize, lo);
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'GRUCell: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'GRUCell');
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(this.Wz.forward(xh));
    const r = bt.sigmoid(this.Wr.forward(xh));
    const cand = this.act(this.Wh.forward(bt.concat([x, bt.mul(r, h)], -1)));
    const hNew = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, cand));
    this.h.value = hNew;
    return hNew;
  }
}

/**
 * Minimal gated unit (Zhou et al. 2016):
 *   f = σ(xh Wf + bf), ĥ = act([x, f ∘ h] Wh + bh), h' = (1 − f) ∘ h + f ∘ ĥ.
 * State: `h`. Weights: `Wf`, `Wh`.
 *
 * Eligibility traces: both are relations to h's group. `Wf` also feeds `Wh`'s
 * input, so its relation is marked `RELATION_PARTIAL_PATH` (the path through
 * `Wh` is not in its df; the direct (1 − f)h + fĥ path is).
 */
export class MGUCell extends Cell {
  Wf: Linear;
  Wh: Linear;
  h: bt.HiddenState;
  private readonly act: (x: Tensor) => Tensor;
  constructor(inFeatures: number, hiddenSize: number, options: CellOptions & { activation?: Activation } = {}) {
    super(inFeatures, hiddenSize, 'MGUCell');
    const o = checkOptionKeys('MGUCell', options, [...CELL_KEYS, 'activation']);
    this.act = resolveActivation(o.activation ?? 'tanh', 'MGUCell: activation');
    const lo = linearOpts(o, 'MGUCell');
    const n = inFeatures + hiddenSize;
    this.Wf = new Linear(n, hiddenSize, lo);
    this.Wh = new Linear(n, hiddenSize, lo);
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'MGUCell: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'MGUCell');
    const h = this.h.value;
    const f = bt.sigmoid(this.Wf.forward(bt.concat([x, h], -1)));
    const cand = this.act(this.Wh.forward(bt.concat([x, bt.mul(f, h)], -1)));
    const hNew = bt.add(bt.mul(bt.sub(1, f), h), bt.mul(f, cand));
    this.h.value = hNew;
    return hNew;
  }
}

/**
 * Long short-term memory (the reference's form, forget-gate bias +1):
 *   i = xh Wi, g = xh Wg, f = xh Wf, o = xh Wo (each + bias),
 *   c' = σ(f + 1) ∘ c + σ(i) ∘ act(g),   h' = σ(o) ∘ act(c').
 * States: `c` and `h` (one HiddenState each, `(H,)`). Weights `Wi`, `Wg`,
 * `Wf`, `Wo`.
 *
 * Eligibility traces: h' depends on the old c through c' (element-wise), and
 * the old h reaches c', h' only through the weights; the compiler puts c and h
 * in one group (S = 2, members in property order [c, h]) and all four weights
 * are relations to it.
 */
export class LSTMCell extends Cell {
  Wi: Linear;
  Wg: Linear;
  Wf: Linear;
  Wo: Linear;
  c: bt.HiddenState;
  h: bt.HiddenState;
  private readonly act: (x: Tensor) => Tensor;
  constructor(inFeatures: number, hiddenSize: number, options: CellOptions & { activation?: Activation; cInit?: bt.Initializer | number } = {}) {
    super(inFeatures, hiddenSize, 'LSTMCell');
    const o = checkOptionKeys('LSTMCell', options, [...CELL_KEYS, 'activation', 'cInit']);
    this.act = resolveActivation(o.activation ?? 'tanh', 'LSTMCell: activation');
    const lo = linearOpts(o, 'LSTMCell');
    const n = inFeatures + hiddenSize;
    this.Wi = new Linear(n, hiddenSize, lo);
    this.Wg = new Linear(n, hiddenSize, lo);
    this.Wf = new Linear(n, hiddenSize, lo);
    this.Wo = new Linear(n, hiddenSize, lo);
    this.c = new bt.HiddenState([hiddenSize], checkInit(o.cInit, 'LSTMCell: cInit'));
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'LSTMCell: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'LSTMCell');
    const xh = bt.concat([x, this.h.value], -1);
    const i = this.Wi.forward(xh);
    const g = this.Wg.forward(xh);
    const f = this.Wf.forward(xh);
    const o = this.Wo.forward(xh);
    const c = bt.add(bt.mul(bt.sigmoid(bt.add(f, 1)), this.c.value), bt.mul(bt.sigmoid(i), this.act(g)));
    const h = bt.mul(bt.sigmoid(o), this.act(c));
    this.c.value = c;
    this.h.value = h;
    return h;
  }
}

/** Options of the minimal (parallelisable) cells. */
export interface MiniCellOptions extends CellOptions {
  /**
   * Gates see [x, h] as in the reference's MiniGRU/MiniLSTM (default false:
   * gates from x only, the parallelisable minGRU/minLSTM of Feng et al. 2024).
   */
  gateFromHidden?: boolean;
}

/**
 * Minimal GRU: z = σ(u Wz + bz), h' = (1 − z) ∘ h + z ∘ (x Wx + bx), with
 * u = x (default, parallelisable minGRU) or u = [x, h] (`gateFromHidden`, the
 * reference's MiniGRU). State `h`; weights `Wz`, `Wx`.
 *
 * Eligibility traces: both weights are relations to h's group (S = 1). With
 * gates from x only the recurrence is diagonal (D = 1 − z) and no weight sees
 * h, so D_RTRL equals BPTT exactly.
 */
export class MiniGRU extends Cell {
  Wz: Linear;
  Wx: Linear;
  h: bt.HiddenState;
  readonly gateFromHidden: boolean;
  constructor(inFeatures: number, hiddenSize: number, options: MiniCellOptions = {}) {
    super(inFeatures, hiddenSize, 'MiniGRU');
    const o = checkOptionKeys('MiniGRU', options, [...CELL_KEYS, 'gateFromHidden']);
    this.gateFromHidden = o.gateFromHidden === undefined ? false : checkBool(o.gateFromHidden, 'MiniGRU: gateFromHidden');
    const lo = linearOpts(o, 'MiniGRU');
    this.Wz = new Linear(inFeatures + (this.gateFromHidden ? hiddenSize : 0), hiddenSize, lo);
    this.Wx = new Linear(inFeatures, hiddenSize, lo);
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'MiniGRU: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'MiniGRU');
    const h = this.h.value;
    const z = bt.sigmoid(this.Wz.forward(this.gateFromHidden ? bt.concat([x, h], -1) : x));
    const hNew = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, this.Wx.forward(x)));
    this.h.value = hNew;
    return hNew;
  }
}

/**
 * Minimal LSTM: f = σ(u Wf + bf), i = σ(u Wi + bi), h' = f ∘ h + i ∘ (x Wx + bx),
 * u = x (default) or [x, h] (`gateFromHidden`). With `normalize` the gates are
 * f / (f + i) and i / (f + i) (minLSTM of Feng et al.; the reference does not
 * normalise). State `h`; weights `Wf`, `Wi`, `Wx`.
 *
 * Eligibility traces: the three weights are relations to h's group (S = 1);
 * with gates from x only D_RTRL equals BPTT.
 */
export class MiniLSTM extends Cell {
  Wf: Linear;
  Wi: Linear;
  Wx: Linear;
  h: bt.HiddenState;
  readonly gateFromHidden: boolean;
  readonly normalize: boolean;
  constructor(inFeatures: number, hiddenSize: number, options: MiniCellOptions & { normalize?: boolean } = {}) {
    super(inFeatures, hiddenSize, 'MiniLSTM');
    const o = checkOptionKeys('MiniLSTM', options, [...CELL_KEYS, 'gateFromHidden', 'normalize']);
    this.gateFromHidden = o.gateFromHidden === undefined ? false : checkBool(o.gateFromHidden, 'MiniLSTM: gateFromHidden');
    this.normalize = o.normalize === undefined ? false : checkBool(o.normalize, 'MiniLSTM: normalize');
    const lo = linearOpts(o, 'MiniLSTM');
    const n = inFeatures + (this.gateFromHidden ? hiddenSize : 0);
    this.Wf = new Linear(n, hiddenSize, lo);
    this.Wi = new Linear(n, hiddenSize, lo);
    this.Wx = new Linear(inFeatures, hiddenSize, lo);
    this.h = new bt.HiddenState([hiddenSize], checkInit(o.hInit, 'MiniLSTM: hInit'));
  }
  update(x: Tensor): Tensor {
    this.checkX(x, 'MiniLSTM');
    const h = this.h.value;
    const u = this.gateFromHidden ? bt.concat([x, h], -1) : x;
    let f = bt.sigmoid(this.Wf.forward(u));
    let i = bt.sigmoid(this.Wi.forward(u));
    if (this.normalize) {
      const s = bt.add(f, i);
      f = bt.div(f, s);
      i = bt.div(i, s);
    }
    const hNew = bt.add(bt.mul(f, h), bt.mul(i, this.Wx.forward(x)));
    this.h.value = hNew;
    return hNew;
  }
}
