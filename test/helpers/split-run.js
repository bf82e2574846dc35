// Child process of test/split-concat.test.ts: runs models whose matrix products read a
// Concat ([x, h] W: a GRU, three recurrent LIF layers, a concat that repeats an input)
// forward, with BPTT and online (D_RTRL, pp_prop) in float64 and float32, and prints every
// result's bytes as JSON (test/helpers/byte-runs.js). The test runs it with
// BRAINTRACE_SPLIT_CONCAT=0 and without and compares the outputs byte for byte. Sizes (B 16,
// H 64) make the products large enough for the packed GEMM kernels while some blocks (x's:
// 16 x 16 x 64) stay in the direct loop, so every path of the split runs. With the argument
// `info` it prints each model's splitConcats() instead.
'use strict';
const bt = require('../..');
const { GRU, LIF3 } = require('../../scripts/lib/bench-models');
const { hex, runAll, runMain, seq } = require('./byte-runs');

const B = 16;
const IN = 16;
const H = 64;

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

// Two stacked GRU cells: layer 2's [h1', h2] reads layer 1's new state directly, so in the
// online group sweeps that concat is a frontier node of layer 1's group (its products keep
// the plain VJP there, core/online.cc).
class Cell extends bt.Module {
  constructor(nIn, n) {
    super();
    this.wz = new bt.ParamState(bt.init.xavierNormal(), [nIn + n, n]);
    this.wh = new bt.ParamState(bt.init.xavierNormal(), [nIn + n, n]);
    this.h = new bt.HiddenState([n]);
  }
  step(x) {
    const h = this.h.value;
    const xh = bt.concat([x, h], -1);
    const z = bt.sigmoid(bt.matmul(xh, this.wz));
    const c = bt.tanh(bt.matmul(xh, this.wh));
    this.h.value = bt.add(bt.mul(bt.sub(1, z), h), bt.mul(z, c));
    return this.h.value;
  }
}
class GRU2 extends bt.Module {
  constructor() {
    super();
    this.l1 = new Cell(IN, H);
    this.l2 = new Cell(H, H);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
  }
  update(x) {
    return bt.matmul(this.l2.step(this.l1.step(x)), this.ro.value);
  }
}

// h is read by the concat, by the product u (between the concat and its own product in the
// step, so between them in the reverse sweep) and after the product: its cotangent sums three
// terms, and a split would add the concat's block before u's (another rounding), so the
// concat is only trimmed (plan_split_concats' order rule; with the rule off BPTT's bytes
// differ).
class Order extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [H + IN, H]);
    this.wu = new bt.ParamState(bt.init.xavierNormal(), [H, H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    const h = this.h.value;
    const c = bt.concat([h, x], -1);
    const u = bt.matmul(h, this.wu);
    const m = bt.matmul(c, this.w);
    this.h.value = bt.add(bt.tanh(bt.add(m, u)), bt.mul(h, 0.1));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

const models = [
  ['gru', () => new GRU(IN, H, 2)],
  ['rlif3', () => new LIF3(IN, H, 2, { recurrent: true })],
  ['repeat', () => new Repeat()],
  ['gru2', () => new GRU2()],
  ['order', () => new Order()],
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

// `node split-run.js evaluate`: one raw session step of each model (float64, given params
// and states) with a VJP that fetches every Concat's cotangent, and one that also stops at
// the first concat: the fetched and leaf cotangents' bytes. A fetched or stopping concat
// takes the plain VJP (core/interpreter.cc), so these must not depend on the split either.
function evaluate() {
  const { encodePlan } = require('../../dist/compiler/plan');
  const { loadBinding } = require('../../dist/runtime/native');
  const out = {};
  for (const [name, make] of models) {
    const { graph } = bt.traceModel(make(), { dtype: 'float64', inputShapes: [[IN]], batchSize: B });
    const plan = encodePlan(graph);
    const session = loadBinding().createSession(plan.code, plan.fattr);
    const numel = (id) => graph.nodes[id].shape.reduce((a, b) => a * b, 1);
    const arr = (id, seed) => seq(1, 1, numel(id), seed, 'float64').data;
    const concats = graph.nodes.filter((n) => n.op === 'Concat').map((n) => n.id);
    const base = {
      inputs: graph.inputs.map((x, k) => arr(x.nodeId, 41 + k)),
      params: graph.params.map((x, k) => arr(x.nodeId, 51 + k).map((v) => v * 0.2)),
      states: graph.states.map((x, k) => arr(x.nodeId, 61 + k)),
      outputCotangents: graph.outputs.map((o, k) => arr(o.nodeId, 71 + k)),
      fetchCotangents: concats,
    };
    for (const [mode, extra] of [['fetch', {}], ['stop', { stopCotangents: concats.slice(0, 1) }]]) {
      const r = session.evaluate({ ...base, ...extra });
      const rec = {};
      r.fetchedCotangents.forEach((t, k) => (rec[`fetched${k}`] = hex({ data: t })));
      for (const key of ['inputCotangents', 'paramCotangents', 'stateCotangents'])
        r[key].forEach((t, k) => (rec[`${key}${k}`] = hex({ data: t })));
      out[`${name}/${mode}`] = rec;
    }
    session.dispose();
  }
  return out;
}

async function main() {
  if (process.argv[2] === 'info') {
    process.stdout.write(JSON.stringify(info()));
    return;
  }
  if (process.argv[2] === 'evaluate') {
    process.stdout.write(JSON.stringify(evaluate()));
    return;
  }
  process.stdout.write(JSON.stringify(await runAll(models, { B, IN, T: 5, runT: 3 })));
}

runMain(main);
