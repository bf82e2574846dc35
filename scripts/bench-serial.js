#!/usr/bin/env node
// The serial fraction of the large cases on 2 threads, from per-thread CPU time (Linux only:
// /proc/self/task/*/stat). A measure that survives a loaded machine, unlike 2-thread wall
// times: run with BRAINTRACE_NUM_THREADS=2 and BRAINTRACE_SPIN_US=0 (a worker that does not
// spin uses CPU only for its share of the work). The pool's workers are the threads named
// "bt-pool" (thread_pool.cc); the caller is every other thread (the JS thread, which converts
// arguments and results, and the libuv threads that run the native calls, one call at a time). With c = the caller's CPU and w = the workers' CPU over the timed
// calls, the work is c + w, the part no worker shared is s = (c - w) / (c + w) (the caller does
// the serial part plus its half of the split part), and the Amdahl bound of the speed-up on 2
// threads is (c + w) / c = 1 / (s + (1 - s) / 2).
// Run: npx tsc -p tsconfig.build.json && BRAINTRACE_NUM_THREADS=2 BRAINTRACE_SPIN_US=0 \
//        node scripts/bench-serial.js [gemm|gru|drtrl|pp|bptt ...] [--iters N]
// (BT_ROOT=<checkout> measures another build; default: this checkout.)
'use strict';
const fs = require('fs');
const path = require('path');

const root = process.env.BT_ROOT || path.join(__dirname, '..');
const bt = require(root);
const { LIF3, DiagRNN, MatMul, randomArray } = require(path.join(root, 'scripts/lib/bench-models.js'));

const argv = process.argv.slice(2);
const itersAt = argv.indexOf('--iters');
const itersArg = itersAt >= 0 ? Number(argv[itersAt + 1]) : null;
const names = argv.filter((a, i) => !a.startsWith('--') && (itersAt < 0 || i !== itersAt + 1));
const clk = 100; // USER_HZ: /proc times are in clock ticks of 10 ms

/** Per-thread CPU ms (utime + stime) and name, by thread id. */
function threadTimes() {
  const out = new Map();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    out.set(tid, { comm, ms: ((Number(f[11]) + Number(f[12])) * 1000) / clk });
  }
  return out;
}

function seq(T, B, w, seed, scale = 1) {
  return { data: randomArray(T * B * w, seed, scale), shape: [T, B, w], dtype: 'float32' };
}

/** Each case: a learner, one call, its units (steps or products) per call, default iterations. */
const cases = {
  gemm: () => {
    const learner = bt.compile(new MatMul(1024, 1024), bt.BPTT, { inputShape: [1024], batchSize: 1024, seed: 1 });
    const x = { data: randomArray(1024 * 1024, 2, 1), shape: [1024, 1024], dtype: 'float32' };
    return { call: () => learner.update(x), units: 1, iters: 60, unit: 'product' };
  },
  gru: () => {
    class GRUModel extends bt.Module {
      constructor() {
        super();
        this.cell = new bt.nn.GRUCell(64, 256);
        this.ro = new bt.nn.Linear(256, 4, { bias: false });
      }
      update(x) {
        return this.ro.forward(this.cell.update(x));
      }
    }
    const learner = bt.compile(new GRUModel(), bt.BPTT, { inputShape: [64], batchSize: 64, seed: 3 });
    const xs = seq(100, 64, 64, 4);
    const ys = seq(100, 64, 4, 5);
    return { call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }), units: 1, iters: 12, unit: 'call' };
  },
  drtrl: () => {
    const learner = bt.compile(new DiagRNN(256, 256, 4), bt.D_RTRL, { inputShape: [256], batchSize: 64, seed: 6 });
    const xs = seq(20, 64, 256, 7);
    const ys = seq(20, 64, 4, 8);
    return { call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }), units: 20, iters: 25, unit: 'step' };
  },
  pp: () => lif('pp'),
  bptt: () => lif('bptt'),
};
function lif(which) {
  const Algo = which === 'pp' ? bt.pp_prop : bt.BPTT;
  const o = which === 'pp' ? { decayOrRank: 0.9 } : {};
  const learner = bt.compile(new LIF3(512, 512, 4), Algo, { inputShape: [512], batchSize: 128, seed: 9, ...o });
  const xs = seq(20, 128, 512, 10, 1.5);
  const ys = seq(20, 128, 4, 11);
  return { call: () => learner.etraceGrad(xs, ys, { loss: 'mse' }), units: 20, iters: 12, unit: 'step' };
}

(async () => {
  const list = names.length ? names : Object.keys(cases);
  console.log(`threads ${bt.info().threads}, BRAINTRACE_SPIN_US ${process.env.BRAINTRACE_SPIN_US ?? '(unset)'}, load ${require('os').loadavg()[0].toFixed(2)}`);
  for (const name of list) {
    if (!cases[name]) throw new Error(`unknown case '${name}' (${Object.keys(cases).join(', ')})`);
    const c = cases[name]();
    const iters = itersArg ?? c.iters;
    await c.call(); // warm-up
    await c.call();
    const before = threadTimes();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await c.call();
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    const after = threadTimes();
    const deltas = [...after].map(([tid, a]) => ({ tid, comm: a.comm, d: a.ms - (before.get(tid)?.ms ?? 0) }));
    deltas.sort((x, y) => y.d - x.d);
    if (bt.info().threads > 1 && !deltas.some((t) => t.comm.startsWith('bt-pool')))
      throw new Error('no thread named bt-pool: a build from before thread_pool.cc named its workers');
    const pool = deltas.filter((t) => t.comm.startsWith('bt-pool')).reduce((a, t) => a + t.d, 0);
    // Everything else ran while no worker could help: the JS thread (argument conversion) and
    // the libuv threads that ran the native calls (one at a time, each call on one of them).
    const caller = deltas.filter((t) => !t.comm.startsWith('bt-pool')).reduce((a, t) => a + t.d, 0);
    const per = iters * c.units;
    const s = (caller - pool) / (caller + pool);
    console.log(
      `${name}: wall ${(wall / per).toFixed(3)} ms/${c.unit}, caller ${(caller / per).toFixed(3)}, ` +
        `pool ${(pool / per).toFixed(3)} cpu ms/${c.unit}; ` +
        `serial ${(100 * s).toFixed(1)}%, Amdahl bound ${((caller + pool) / caller).toFixed(2)}x`,
    );
    if (process.env.BT_SERIAL_THREADS)
      for (const t of deltas.slice(0, 6)) console.log(`  ${t.comm}/${t.tid} ${(t.d / per).toFixed(3)} cpu ms/${c.unit}`);
  }
})();
