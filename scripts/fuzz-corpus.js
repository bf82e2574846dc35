#!/usr/bin/env node
// Writes the fuzz seed corpus (fuzz/corpus/<target>/) and the online target's fixed plan
// (fuzz/online_plan.inc) from real models: every plan and online configuration the library
// itself sends to the native binding while compiling and running a few small models.
//
//   npm run build:ts && node scripts/fuzz-corpus.js
//
// Byte layouts: fuzz/fuzz_input.h. Besides the real inputs it writes a few mutated ones
// (truncations, hostile sizes, bad ids) so that the error paths start covered. Deterministic:
// rerunning it rewrites the same files.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const bt = require(path.join(root, 'dist', 'index.js'));
const { loadBinding } = require(path.join(root, 'dist', 'runtime', 'native.js'));

// ---- recording what the library sends ---------------------------------------------------------
// The addon's methods are read-only, so the library is handed proxies: dist/runtime/native's
// loadBinding (called through its module exports) returns a binding whose createSession
// records the plan and returns a session proxy that records configureOnline / runOnline.
const nativeModule = require(path.join(root, 'dist', 'runtime', 'native.js'));
const recorded = { plans: [], configs: [], runs: [] };
let current = null; // name of the model being recorded
// A proxy over an empty object (the real one's read-only properties would bind a proxy over
// it to return them unchanged), forwarding to `target` with its methods bound to it.
const bound = (target, overrides) =>
  new Proxy(
    {},
    {
      get(_, k) {
        if (Object.prototype.hasOwnProperty.call(overrides, k)) return overrides[k];
        const v = Reflect.get(target, k);
        return typeof v === 'function' ? v.bind(target) : v;
      },
      has: (_, k) => k in target,
    },
  );
const realBinding = loadBinding();
const recordingBinding = bound(realBinding, {
  createSession(code, fattr, ...rest) {
    const s = realBinding.createSession(code, fattr, ...rest);
    const plan = { code: Int32Array.from(code), fattr: Float64Array.from(fattr) };
    recorded.plans.push({ name: current, plan });
    const run = (m) => (args) => {
      recorded.runs.push({ plan, steps: args.steps, chunk: args.chunk ?? 1, computeGrads: args.computeGrads ?? true });
      return s[m](args);
    };
    return bound(s, {
      configureOnline(config) {
        recorded.configs.push({ name: current, plan, config: JSON.parse(JSON.stringify(config)) });
        return s.configureOnline(config);
      },
      runOnline: run('runOnline'),
      runOnlineAsync: run('runOnlineAsync'),
    });
  },
});
nativeModule.loadBinding = () => recordingBinding;

// ---- models -----------------------------------------------------------------------------------
/** Two coupled hidden states (one group), a dense relation with bias, an element-wise one. */
class Coupled extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.normal({ std: 0.5 }), [3, 4]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [4]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.5, high: 0.5 }), [4]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [4, 2]);
    this.i = new bt.HiddenState([4]);
    this.v = new bt.HiddenState([4]);
  }
  update(x) {
    const v = this.v.value;
    const iNew = bt.add(bt.mul(this.i.value, 0.8), bt.matmul(x, this.w, this.b));
    const s = bt.spike(bt.sub(v, 1), bt.surrogate.arctan());
    this.i.value = iNew;
    this.v.value = bt.sub(bt.add(bt.add(bt.mul(v, 0.9), bt.mul(iNew, 0.2)), bt.elementWise(this.wd, (y) => bt.mul(y, v))), s);
    return bt.matmul(this.v.value, this.ro.value);
  }
}

const rand = (shape, seed) => {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[k] = s / 2 ** 32 - 0.5;
  }
  return bt.tensor(data, shape, 'float64');
};

async function record(name, make, algo, opts, T = 4) {
  current = name;
  const inF = opts.inputShape[0];
  const { outF, ...compileOpts } = opts;
  void outF;
  const learner = bt.compile(make(), algo, { batchSize: 2, dtype: 'float64', seed: 1, ...compileOpts });
  try {
    const xs = rand([T, 2, inF], 7);
    const ys = rand([T, 2, opts.outF], 9);
    await learner.etraceGrad(xs, ys, { loss: 'mse' });
  } catch (e) {
    console.error(`(${name}: ${e.message})`);
  } finally {
    learner.dispose();
  }
}

// ---- byte layouts (fuzz/fuzz_input.h) ---------------------------------------------------------
function planBytes(plan) {
  const b = Buffer.alloc(4 + plan.fattr.length * 8 + plan.code.length * 4);
  b.writeUInt32LE(plan.fattr.length, 0);
  Buffer.from(plan.fattr.buffer, plan.fattr.byteOffset, plan.fattr.byteLength).copy(b, 4);
  Buffer.from(plan.code.buffer, plan.code.byteOffset, plan.code.byteLength).copy(b, 4 + plan.fattr.length * 8);
  return b;
}

function configInts(c, run) {
  const v = [];
  const list = (a) => v.push(a.length, ...a);
  v.push(c.algorithm === 'pp_prop' ? 1 : 0, Math.round((c.decayX ?? 0) * 1e6), Math.round((c.decayF ?? 0) * 1e6));
  v.push(c.groups.length);
  for (const g of c.groups) {
    v.push(g.members.length);
    for (const m of g.members) v.push(m.leafNode, m.newNode, m.width);
    v.push(g.positions, g.zeroRecurrence ? 1 : 0, g.probePositions ? 1 : 0);
  }
  v.push(c.relations.length);
  for (const r of c.relations) {
    v.push(r.kind === 'dense' ? 0 : 1, r.xNode ?? -1, r.yNode, r.weightSlot, r.biasSlot ?? -1, r.weightNode ?? -1, r.biasNode ?? -1);
    list(r.groups);
    list(r.tailProbe.map((t) => (t ? 1 : 0)));
  }
  list(c.blockedTransition);
  list(c.etpNodes);
  list(c.nonTemporalSlots);
  v.push((run.steps - 1) % 8, run.chunk, run.computeGrads ? 1 : 0);
  const ts = BigInt(run.traceSteps ?? 0);
  v.push(Number(BigInt.asIntN(32, ts)), Number(BigInt.asIntN(32, ts >> 32n)));
  return v;
}
const intBytes = (v) => Buffer.from(Int32Array.from(v).buffer);

// ---- main -------------------------------------------------------------------------------------
async function main() {
  const models = [
    ['coupled', () => new Coupled(), { inputShape: [3], outF: 2 }],
    ['gru', () => new bt.nn.GRUCell(3, 4), { inputShape: [3], outF: 4 }],
    ['vanilla', () => new bt.nn.VanillaRNNCell(3, 4), { inputShape: [3], outF: 4 }],
    ['lstm', () => new bt.nn.LSTMCell(2, 3), { inputShape: [2], outF: 3 }],
    ['rsnn', () => new bt.nn.RSNN(3, 5, 2), { inputShape: [3], outF: 2 }],
  ];
  const algos = [
    ['drtrl', bt.D_RTRL, {}],
    ['pp', bt.pp_prop, { decayOrRank: 0.9 }],
  ];
  for (const [mn, make, opts] of models) {
    for (const [an, algo, aopts] of algos) await record(`${mn}-${an}`, make, algo, { ...opts, ...aopts });
  }

  const dir = (t) => {
    const d = path.join(root, 'fuzz', 'corpus', t);
    fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
  // Plans: one file per distinct plan.
  const planDir = dir('plan_fuzzer');
  const seen = new Set();
  let nPlans = 0;
  for (const { name, plan } of recorded.plans) {
    const b = planBytes(plan);
    const key = b.toString('base64');
    if (seen.has(key)) continue;
    seen.add(key);
    fs.writeFileSync(path.join(planDir, `${name}.bin`), b);
    nPlans++;
  }
  // Mutations of the first plan: truncated, a huge dim, a bad input id, a 2^40-value node.
  const base = recorded.plans[0].plan;
  const mut = (name, f) => {
    const p = { code: Int32Array.from(base.code), fattr: Float64Array.from(base.fattr) };
    f(p);
    fs.writeFileSync(path.join(planDir, `mut-${name}.bin`), planBytes(p));
  };
  mut('truncated', (p) => (p.code = p.code.slice(0, Math.floor(p.code.length / 2))));
  mut('bigdim', (p) => (p.code[4 + 4] = 0x7fffffff)); // node 0's first dim (Input/Param: op, nin=0, rank, d0)
  mut('count', (p) => (p.code[3] = p.code[3] * 2));
  mut('big-nodes', (p) => {
    // Two [2^20, 2^20] float32 Inputs: each at the limit, their sum past it.
    p.code = Int32Array.from([0x42545031, 1, 0, 2, 0, 0, 2, 1 << 20, 1 << 20, 1, 0, 0, 0, 0, 0, 2, 1 << 20, 1 << 20, 1, 1, 0, 0, 1, 0, 1, 0]);
    p.fattr = new Float64Array(0);
  });

  // Online: the fixed plan is the 'coupled' model's; its configs and runs are the seeds.
  const fixed = recorded.configs.find((c) => c.name.startsWith('coupled-'));
  if (!fixed) throw new Error('no online configuration was recorded for the coupled model');
  const plan = fixed.plan;
  const inc = [
    '// Generated by scripts/fuzz-corpus.js: the plan of its "Coupled" model (float64, batch 2).',
    `const int32_t kPlanCode[] = {${Array.from(plan.code).join(', ')}};`,
    `const double kPlanFattr[] = {${plan.fattr.length ? Array.from(plan.fattr).map((x) => x.toPrecision(17)).join(', ') : '0'}};`,
    '',
  ];
  if (!plan.fattr.length) inc[2] = 'const double kPlanFattr[] = {0};  // the plan has no float attributes (length 1 is harmless)';
  fs.writeFileSync(path.join(root, 'fuzz', 'online_plan.inc'), inc.join('\n'));
  const onlineDir = dir('online_fuzzer');
  let nCfg = 0;
  const key = (p) => planBytes(p).toString('base64');
  const fixedKey = key(plan);
  for (const c of recorded.configs.filter((x) => key(x.plan) === fixedKey)) {
    const runs = recorded.runs.filter((r) => r.plan === c.plan);
    const run = runs[0] ?? { steps: 4, chunk: 1, computeGrads: true };
    const v = configInts(c.config, run);
    fs.writeFileSync(path.join(onlineDir, `${c.name}.bin`), intBytes(v));
    nCfg++;
    const m = (name, f) => {
      const cfg = JSON.parse(JSON.stringify(c.config));
      const r = { ...run };  // traceSteps may be a BigInt
      f(cfg, r);
      fs.writeFileSync(path.join(onlineDir, `mut-${c.name}-${name}.bin`), intBytes(configInts(cfg, r)));
    };
    m('chunk2', (_cfg, r) => Object.assign(r, { steps: 4, chunk: 2 }));
    m('nograds', (_cfg, r) => (r.computeGrads = false));
    m('tracesteps-2p53', (_cfg, r) => (r.traceSteps = 2n ** 53n));
    m('tracesteps-max', (_cfg, r) => (r.traceSteps = 2n ** 63n - 1n));
    m('hugewidth', (cfg) => (cfg.groups[0].members[0].width = 0x40000000));
    m('positions', (cfg) => (cfg.groups[0].positions = 0x7fffffff));
    m('badnode', (cfg) => (cfg.relations[0].yNode = 1 << 30));
    m('probe', (cfg) => {
      cfg.groups[0].probePositions = true;
      cfg.relations.forEach((r) => (r.tailProbe = r.groups.map(() => true)));
    });
  }
  // Requests on the fixed plan: the library's online configurations as Jacobian requests.
  const requestDir = dir('request_fuzzer');
  const requestInts = (jacs, fetch, steps, flags) => {
    const v = [jacs.length];
    const list = (a) => v.push(a.length, ...a);
    for (const q of jacs) {
      v.push(q.kind, q.members.length);
      for (const m of q.members) v.push(m.leafNode, m.newNode, m.width);
      v.push(q.yNode);
      list(q.blocked);
      v.push(q.probe ? 1 : 0, q.positions);
    }
    list(fetch.values);
    list(fetch.cotangents);
    list(fetch.stop);
    v.push(steps - 1, flags);
    return v;
  };
  let nReq = 0;
  for (const c of recorded.configs.filter((x) => key(x.plan) === fixedKey)) {
    const cfg = c.config;
    const jacs = cfg.groups.map((g) => ({ kind: 0, members: g.members, yNode: -1, blocked: cfg.blockedTransition, probe: g.probePositions, positions: g.positions }));
    for (const r of cfg.relations)
      r.groups.forEach((gi, k) => {
        const g = cfg.groups[gi];
        jacs.push({ kind: 1, members: g.members, yNode: r.yNode, blocked: cfg.etpNodes.filter((id) => id !== r.yNode), probe: r.tailProbe[k], positions: g.positions });
      });
    const news = cfg.groups.flatMap((g) => g.members.map((m) => m.newNode));
    const fetch = { values: news, cotangents: news, stop: news };
    const write = (name, j, f, steps, flags) => {
      fs.writeFileSync(path.join(requestDir, `${name}.bin`), intBytes(requestInts(j, f, steps, flags)));
      nReq++;
    };
    write(`${c.name}-all`, jacs, fetch, 3, 7);
    write(`${c.name}-forward`, jacs, { values: news, cotangents: [], stop: [] }, 2, 0);
    write(`mut-${c.name}-probe`, jacs.map((q) => ({ ...q, probe: true })), fetch, 2, 6);
    write(`mut-${c.name}-width`, jacs.map((q) => ({ ...q, members: q.members.map((m) => ({ ...m, width: m.width * 65536 })) })), fetch, 1, 1);
    write(`mut-${c.name}-positions`, jacs.map((q) => ({ ...q, positions: 0x7fffffff })), fetch, 4, 3);
    write(`mut-${c.name}-ids`, jacs.map((q) => ({ ...q, yNode: 1 << 30 })), { values: [-1], cotangents: [1 << 30], stop: [] }, 1, 2);
  }
  console.log(`fuzz corpus: ${nPlans} real plans + 4 mutated in fuzz/corpus/plan_fuzzer, ${nCfg} real configs + mutations in fuzz/corpus/online_fuzzer, ${nReq} request sets in fuzz/corpus/request_fuzzer`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
