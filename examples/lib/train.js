'use strict';
// The training loop shared by the classification examples (copy, DMS, evidence): one
// etraceGrad over a fresh batch per iteration (crossEntropy masked to the response window,
// mean over its steps), an optimizer update, a periodic accuracy on held-out data, and a
// progress bar.
const { Progress } = require('./progress');
const { applyGradients } = require('./adam');

/**
 * @param {object} o
 * @param {object} o.learner   a braintrace learner
 * @param {(rng) => {xs, ys}} o.batch  draws a batch of sequences
 * @param {object} o.rng       the data stream
 * @param {number} o.iters     iterations
 * @param {string} o.label     progress-bar label
 * @param {number[]} o.mask    per-step loss weights (1 on the response window)
 * @param {object} o.opt       the optimizer (examples/lib/adam.js makeAdam)
 * @param {number} o.evalEvery iterations between accuracy checks
 * @param {(learner, data) => Promise<number>} o.accuracy
 * @param {object} o.evalData  a fixed held-out batch for the curve
 * @returns {Promise<{ losses: number[], accX: number[], accY: number[], secs: number }>}
 */
async function trainMasked(o) {
  const losses = [];
  const accX = [];
  const accY = [];
  const weight = o.mask.reduce((s, v) => s + v, 0);
  const bar = new Progress(o.iters, { label: o.label });
  const t0 = Date.now();
  let acc = NaN;
  for (let it = 0; it < o.iters; it++) {
    const { xs, ys } = o.batch(o.rng);
    o.learner.resetState();
    const r = await o.learner.etraceGrad(xs, ys, { loss: 'crossEntropy', mask: o.mask, reduction: 'mean' });
    let s = 0;
    for (let t = 0; t < o.mask.length; t++) s += o.mask[t] * r.losses[t];
    losses.push(s / weight);
    applyGradients(o.learner, r.grads, o.opt);
    if ((it + 1) % o.evalEvery === 0 || it === o.iters - 1) {
      acc = await o.accuracy(o.learner, o.evalData);
      accX.push(it + 1);
      accY.push(acc);
    }
    bar.tick(it + 1, Number.isNaN(acc) ? { loss: losses[it] } : { loss: losses[it], acc });
  }
  bar.done();
  return { losses, accX, accY, secs: (Date.now() - t0) / 1000 };
}

/** Mean accuracy over `n` fresh batches drawn from `rng`. */
async function heldOutAccuracy(learner, accuracy, batch, rng, n) {
  let total = 0;
  for (let i = 0; i < n; i++) total += (await accuracy(learner, batch(rng))) / n;
  return total;
}

/**
 * Accuracy of a two-class decision read out over the response window [r0, T): the class whose
 * logit is larger on average over the window, against the label at the last step (ys (T, B)).
 */
function windowDecisionAccuracy(r0) {
  return async (learner, data) => {
    const [T, B] = data.ys.shape;
    learner.resetState();
    const out = await learner.run(data.xs); // (T, B, 2)
    let ok = 0;
    for (let b = 0; b < B; b++) {
      let d = 0;
      for (let t = r0; t < T; t++) d += out.data[(t * B + b) * 2 + 1] - out.data[(t * B + b) * 2];
      ok += (d > 0 ? 1 : 0) === data.ys.data[(T - 1) * B + b] ? 1 : 0;
    }
    return ok / B;
  };
}

module.exports = { trainMasked, heldOutAccuracy, windowDecisionAccuracy };
