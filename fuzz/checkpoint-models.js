// Small learners whose checkpoints seed the checkpoint fuzzer (fuzz/checkpoint-fuzz.js).
// Shared by the corpus writer (fuzz/checkpoint-corpus.js) and the fuzzer, which
// restores decoded checkpoints into the matching learner.
'use strict';
const path = require('path');

const dist = path.join(__dirname, '..', 'dist');
const bt = require(path.join(dist, 'index.js'));
const train = require(path.join(dist, 'train', 'index.js'));

/** The HMAC key of the authenticated seeds (a test key, not a secret). */
const FUZZ_KEY = Buffer.from('braintrace-fuzz-key-0123456789ab', 'utf8');

class DiagRNN extends bt.Module {
  constructor(hidden = 3) {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [2, hidden]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [hidden]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [hidden]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, 1]);
    this.h = new bt.HiddenState([hidden]);
  }
  update(x) {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** The learner configurations of the seeds, by name. */
const CONFIGS = {
  drtrl64: () => bt.compile(new DiagRNN(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 1 }),
  pp32: () => bt.compile(new DiagRNN(), bt.pp_prop, { inputShape: [2], batchSize: 1, dtype: 'float32', seed: 2, decayOrRank: 0.6 }),
  bptt64: () => bt.compile(new DiagRNN(2), bt.BPTT, { inputShape: [2], batchSize: 1, dtype: 'float64', seed: 3 }),
};

module.exports = { bt, train, FUZZ_KEY, CONFIGS };
