// Models shared by the benchmarks (scripts/bench.js, scripts/compare/ours_cases.js): one
// definition of each, with its sizes as parameters.
'use strict';
const bt = require('../..');

/**
 * One LIF layer (synaptic current i, membrane v); outputs spikes. Feed-forward: weight w
 * (nIn, n), input current x w. Recurrent (`recurrent: true`): weight w (nIn + n, n), input
 * current [x, s] w with s the layer's own spikes of the previous step (the reset spikes).
 */
class LIFLayer extends bt.Module {
  constructor(nIn, n, { recurrent = false } = {}) {
    super();
    this.recurrent = recurrent;
    this.w = new bt.ParamState(bt.init.kaimingNormal(), [recurrent ? nIn + n : nIn, n]);
    this.i = new bt.HiddenState([n]);
    this.v = new bt.HiddenState([n]);
  }
  step(x) {
    const s = bt.spike(bt.sub(this.v.value, 1), bt.surrogate.arctan());
    const input = this.recurrent ? bt.concat([x, s], -1) : x;
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(input, this.w));
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.5)), s);
    return bt.spike(bt.sub(this.v.value, 1), bt.surrogate.arctan());
  }
}

/**
 * Three LIF layers (inputs → hidden → hidden → hidden) and a linear readout of the last v.
 * `recurrent: true` makes every layer recurrent (LIFLayer): 3 × RLIF, weights (in + hidden, hidden).
 */
class LIF3 extends bt.Module {
  constructor(inputs, hidden, outputs = 4, { recurrent = false } = {}) {
    super();
    const o = { recurrent };
    this.layers = [new LIFLayer(inputs, hidden, o), new LIFLayer(hidden, hidden, o), new LIFLayer(hidden, hidden, o)];
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, outputs]);
  }
  update(x) {
    let s = x;
    for (const l of this.layers) s = l.step(s);
    return bt.matmul(this.layers[2].v.value, this.ro.value);
  }
}

/** GRU cell written out (separate gate weights (inputs + hidden, hidden), no biases) with a readout. */
class GRU extends bt.Module {
  constructor(inputs, hidden, outputs = 4) {
    super();
    this.wz = new bt.ParamState(bt.init.xavierNormal(), [inputs + hidden, hidden]);
    this.wr = new bt.ParamState(bt.init.xavierNormal(), [inputs + hidden, hidden]);
    this.wh = new bt.ParamState(bt.init.xavierNormal(), [inputs + hidden, hidden]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, outputs]);
    this.h = new bt.HiddenState([hidden]);
  }
  update(x) {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz));
    const r = bt.sigmoid(bt.matmul(xh, this.wr));
    const c = bt.tanh(bt.matmul(bt.concat([x, bt.mul(r, h)], -1), this.wh));
    this.h.value = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, c));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/**
 * Diagonal-recurrence tanh RNN h = tanh(x W + b + wd ⊙ h) with a linear readout (the model of
 * test/helpers/models.ts DiagRNN, the D_RTRL exactness model: D_RTRL equals BPTT on it).
 * Weights `w` (inputs, hidden), `b` (hidden), `wd` (hidden), `ro` (hidden, outputs); state `h`.
 */
class DiagRNN extends bt.Module {
  constructor(inputs = 2, hidden = 4, outputs = 1) {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [inputs, hidden]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [hidden]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [hidden]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, outputs]);
    this.h = new bt.HiddenState([hidden]);
  }
  update(x) {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** A model whose step is one matmul y = x W (W (k, n), no bias): a GEMM through the real op. */
class MatMul extends bt.Module {
  constructor(k, n) {
    super();
    this.w = new bt.ParamState(bt.init.normal({ std: 1 / Math.sqrt(k) }), [k, n]);
  }
  update(x) {
    return bt.matmul(x, this.w);
  }
}

/** Deterministic uniform [0, 1) numbers (mulberry32), `n` of them, scaled by `scale`. */
function randomArray(n, seed, scale = 1, Ctor = Float32Array) {
  let a = seed >>> 0;
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * scale;
  }
  return out;
}

module.exports = { LIFLayer, LIF3, GRU, DiagRNN, MatMul, randomArray };
