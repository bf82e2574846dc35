// Child process of test/split-concat.test.ts: runs models whose matrix products read a
// Concat ([x, h] W: a GRU, recurrent LIF layers, a concat that repeats an input) forward,
// with BPTT and online (D_RTRL, pp_prop) in float64 and float32, and prints every result's
// bytes as JSON. The test runs it with BRAINTRACE_SPLIT_CONCAT=0 and without and compares
// the outputs byte for byte. Sizes (B 16, H 64) make the products large enough for the
// packed GEMM kernels while some blocks (x's: 16 x 16 x 64) stay in the direct loop, so
// both of the split's paths run. With the argument `info` it prints each model's
// splitConcats() instead.
'use strict';
const bt = require('../..');

const B = 16;
const IN = 16;
const H = 64;

class GRU extends bt.Module {
  constructor() {
    super();
    this.wz = new bt.ParamState(bt.init.xavierNormal(), [IN + H, H]);
    this.wr = new bt.ParamState(bt.init.xavierNormal(), [IN + H, H]);
    this.wh = new bt.ParamState(bt.init.xavierNormal(), [IN + H, H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
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

// A recurrent LIF layer: input current [x, s] W with s its own spikes of the last step.
class RLIF extends bt.Module {
  constructor(nIn, n) {
    super();
    this.w = new bt.ParamState(bt.init.kaimingNormal(), [nIn + n, n]);
    this.i = new bt.HiddenState([n]);
    this.v = new bt.HiddenState([n]);
  }
  step(x) {
    const s = bt.spike(bt.sub(this.v.value, 0.3), bt.surrogate.arctan());
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(bt.concat([x, s], -1), this.w));
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.5)), bt.mul(s, 0.3));
    return bt.spike(bt.sub(this.v.value, 0.3), bt.surrogate.arctan());
  }
}

class RLIF2 extends bt.Module {
  constructor() {
    super();
    this.layers = [new RLIF(IN, H), new RLIF(H, H)];
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
  }
  update(x) {
    let s = x;
    for (const l of this.layers) s = l.step(s);
    return bt.matmul(bt.add(this.layers[1].v.value, s), this.ro.value);
  }
}

// A concat that repeats its hidden input ([h, u, h] W with u = x W_in: the second block of
// h is added to the first; every block 64 wide, so the packed path) and a bias.
class Repeat extends bt.Module {
  constructor() {
    super();
    this.win = new bt.ParamState(bt.init.xavierNormal(), [IN, H]);
    this.w = new bt.ParamState(bt.init.xavierNormal(), [3 * H, H]);
    this.b = new bt.ParamState(bt.init.zeros(), [H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    const u = bt.matmul(x, this.win);
    this.h.value = bt.tanh(bt.add(bt.matmul(bt.concat([h, u, h], -1), this.w), this.b));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

function seq(T, width, seed, dtype) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const Ctor = dtype === 'float64' ? Float64Array : Float32Array;
  return { data: Ctor.from({ length: T * B * width }, () => rnd() * 2 - 0.5), shape: [T, B, width], dtype };
}

const hex = (t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

const models = [
  ['gru', () => new GRU()],
  ['rlif2', () => new RLIF2()],
  ['repeat', () => new Repeat()],
];

// `node split-run.js info`: splitConcats() of each model's session.
function info() {
  const { encodePlan } = require('../../dist/compiler/plan');
  const { loadBinding } = require('../../dist/runtime/native');
  const out = {};
  for (const [name, make] of models) {
    const { graph } = bt.traceModel(make(), { dtype: 'float64', inputShapes: [[IN]], batchSize: B });
    const plan = encodePlan(graph);
    const session = loadBinding().createSession(plan.code, plan.fattr);
    out[name] = session.splitConcats();
    session.dispose();
  }
  return out;
}

async function main() {
  if (process.argv[2] === 'info') {
    process.stdout.write(JSON.stringify(info()));
    return;
  }
  const out = {};
  const algos = [
    ['bptt', bt.BPTT, {}],
    ['d_rtrl', bt.D_RTRL, {}],
    ['pp_prop', bt.pp_prop, { decayOrRank: 0.9 }],
  ];
  for (const dtype of ['float64', 'float32']) {
    for (const [mname, make] of models) {
      for (const [aname, algo, opts] of algos) {
        const key = `${dtype}/${mname}/${aname}`;
        const learner = bt.compile(make(), algo, { inputShape: [IN], batchSize: B, dtype, seed: 7, ...opts });
        const rec = {};
        for (let call = 0; call < 2; call++) {
          const r = await learner.etraceGrad(seq(5, IN, 11 + call, dtype), seq(5, 2, 23 + call, dtype));
          rec[`losses${call}`] = Buffer.from(r.losses.buffer).toString('hex');
          rec[`outputs${call}`] = hex(r.outputs);
          for (const [p, g] of Object.entries(r.grads)) rec[`grad${call}.${p}`] = hex(g);
          for (const [p, s] of Object.entries(learner.states())) rec[`state${call}.${p}`] = hex(s);
        }
        rec.run = hex(await learner.run(seq(3, IN, 31, dtype)));
        out[key] = rec;
        learner.dispose();
      }
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
