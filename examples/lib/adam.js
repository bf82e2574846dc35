// Optimizer for the examples: bt.optim.Adam when the library has it, else a small Adam
// written here with the same structural interface (step(params, grads) updates params in
// place and returns { lr, gradNorm }), applied through learner.applyGradients when the
// learner has it, else as params() -> step -> setParams().
'use strict';

/** A plain Adam (Kingma & Ba 2015) over a record of HostTensors. */
class Adam {
  constructor({ lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } = {}) {
    this.lr = lr;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.stepCount = 0;
    this.m = new Map();
    this.v = new Map();
  }
  currentLr() {
    return this.lr;
  }
  step(params, grads) {
    this.stepCount++;
    const { beta1: b1, beta2: b2, eps, lr } = this;
    const c1 = 1 - Math.pow(b1, this.stepCount);
    const c2 = 1 - Math.pow(b2, this.stepCount);
    let sq = 0;
    for (const [path, p] of Object.entries(params)) {
      const gt = grads[path];
      if (!gt) continue;
      const g = gt.data;
      let m = this.m.get(path);
      let v = this.v.get(path);
      if (!m) {
        m = new Float64Array(g.length);
        v = new Float64Array(g.length);
        this.m.set(path, m);
        this.v.set(path, v);
      }
      const d = p.data;
      for (let i = 0; i < d.length; i++) {
        const gi = g[i];
        sq += gi * gi;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        d[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    }
    return { lr, gradNorm: Math.sqrt(sq) };
  }
  state() {
    return { kind: 'adam', lr: this.lr, stepCount: this.stepCount };
  }
  loadState() {}
  dispose() {}
}

/** bt.optim.Adam({ lr }) when the library has optimizers, else the Adam above. */
function makeAdam(bt, opts) {
  if (bt.optim && typeof bt.optim.Adam === 'function') {
    try {
      return { opt: new bt.optim.Adam(opts), source: 'bt.optim.Adam' };
    } catch (e) {
      // a factory rather than a class
      if (e instanceof TypeError) return { opt: bt.optim.Adam(opts), source: 'bt.optim.Adam' };
      throw e;
    }
  }
  return { opt: new Adam(opts), source: 'examples/lib/adam.js' };
}

/** Scales every gradient so that their global L2 norm is at most maxNorm (in place); returns the norm. */
function clipGradNorm(grads, maxNorm) {
  let sq = 0;
  for (const g of Object.values(grads)) for (let i = 0; i < g.data.length; i++) sq += g.data[i] * g.data[i];
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && norm > 0) {
    const s = maxNorm / norm;
    for (const g of Object.values(grads)) for (let i = 0; i < g.data.length; i++) g.data[i] *= s;
  }
  return norm;
}

/** Applies grads with the optimizer: learner.applyGradients when present, else params -> step -> setParams. */
function applyGradients(learner, grads, opt) {
  if (typeof learner.applyGradients === 'function') return learner.applyGradients(grads, opt);
  const p = learner.params();
  const info = opt.step(p, grads);
  learner.setParams(p);
  return info;
}

module.exports = { Adam, makeAdam, clipGradNorm, applyGradients };
