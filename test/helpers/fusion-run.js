// Child process of test/fusion.test.ts: runs a few models (spiking, GRU, a mix of every
// element-wise op family) forward, with BPTT and online (D_RTRL, pp_prop) in float64 and
// float32, and prints every result's bytes as JSON. The test runs it with
// BRAINTRACE_FUSE=0 and without, and compares the two outputs byte for byte. With the
// argument `info` it prints the fusionInfo() of a LIF3 session instead. test/math.test.ts
// runs it with BRAINTRACE_EW_ISA=sse2 and without (and `wide`) to compare the loop tables.
'use strict';
const bt = require('../..');
const { runAll, runMain } = require('./byte-runs');

// With the argument `wide`, tensors of 200 elements (B 5, H 40) instead of 24, so that
// 8-wide vector loops run several iterations and an epilogue (test/math.test.ts).
const WIDE = process.argv.includes('wide');
const B = WIDE ? 5 : 3;
const IN = 5;
const H = WIDE ? 40 : 8;

class LIFLayer extends bt.Module {
  constructor(nIn, n, sg) {
    super();
    this.sg = sg;
    this.w = new bt.ParamState(bt.init.kaimingNormal(), [nIn, n]);
    this.i = new bt.HiddenState([n]);
    this.v = new bt.HiddenState([n]);
  }
  step(x) {
    const s = bt.spike(bt.sub(this.v.value, 0.3), this.sg);
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w));
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.mul(this.v.value, 0.9), bt.mul(iNew, 0.5)), bt.mul(s, 0.3));
    return bt.spike(bt.sub(this.v.value, 0.3), this.sg);
  }
}

class LIF3 extends bt.Module {
  constructor() {
    super();
    this.layers = [
      new LIFLayer(IN, H, bt.surrogate.arctan()),
      new LIFLayer(H, H, bt.surrogate.sigmoid({ alpha: 2 })),
      new LIFLayer(H, H, bt.surrogate.gaussianGrad()),
    ];
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
  }
  update(x) {
    let s = x;
    for (const l of this.layers) s = l.step(s);
    return bt.matmul(bt.add(this.layers[2].v.value, s), this.ro.value);
  }
}

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

// Long element-wise chains over many op kinds (unary, binary, comparison, Where).
class Mix extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [IN, H]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    const u = bt.add(bt.matmul(x, this.w), bt.mul(this.wd, h));
    const a = bt.add(bt.softplus(u), bt.mul(bt.gelu(u), bt.elu(u, 0.7)));
    const b = bt.sub(bt.leakyRelu(u, 0.1), bt.div(bt.sin(u), bt.add(bt.exp(bt.neg(bt.square(u))), 1.5)));
    const c = bt.where(bt.gt(u, 0), bt.maximum(a, b), bt.minimum(a, bt.cos(b)));
    const d = bt.mul(bt.clamp(c, -2, 2), bt.log1p(bt.abs(bt.tanh(c))));
    const e = bt.add(d, bt.mul(bt.sqrt(bt.add(bt.square(h), 0.5)), bt.relu(bt.sub(h, 0.1))));
    this.h.value = bt.tanh(bt.add(bt.pow(bt.add(bt.sigmoid(e), 0.5), bt.log(bt.add(bt.abs(u), 1))), bt.stopGradient(e)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

// `node fusion-run.js info`: the fusion decided for a traced LIF3 session.
function info() {
  const { encodePlan } = require('../../dist/compiler/plan');
  const { loadBinding } = require('../../dist/runtime/native');
  const { graph } = bt.traceModel(new LIF3(), { dtype: 'float64', inputShapes: [[IN]], batchSize: B });
  const plan = encodePlan(graph);
  const session = loadBinding().createSession(plan.code, plan.fattr);
  const f = session.fusionInfo();
  session.dispose();
  return { nodes: graph.nodes.length, ...f };
}

async function main() {
  if (process.argv[2] === 'info') {
    process.stdout.write(JSON.stringify(info()));
    return;
  }
  const models = [
    ['lif3', () => new LIF3()],
    ['gru', () => new GRU()],
    ['mix', () => new Mix()],
  ];
  process.stdout.write(JSON.stringify(await runAll(models, { B, IN, T: 6, runT: 4 })));
}

runMain(main);
