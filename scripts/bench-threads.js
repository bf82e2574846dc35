#!/usr/bin/env node
// Thread scaling: wall time of a few mid-size and large cases on 1 and 2 threads of the native
// pool (BRAINTRACE_NUM_THREADS, fixed at load, so one worker process per thread count), for
// one or more builds of the addon side by side (BRAINTRACE_ADDON per worker: e.g. an old and
// a new braintrace.node). Rounds are interleaved (every case on every worker once per round,
// the starting worker rotating) and each time is the median of its rounds, so a noisy
// neighbour hurts all columns alike. Workers are scripts/compare/ours_cases.js.
// Cases: GEMM 1024^3 and 128x512x512 (the benchmarkGemm hook, best of reps), GRU BPTT B64 I64
// H256 T100 (per call), pp_prop 3xLIF(512) B128 T10 (per step).
// Run: npm run build:ts && node scripts/bench-threads.js [--rounds 5] [--threads 1,2]
//        [--addon label=/abs/path/braintrace.node ...] (default: this checkout's build)
//        [--spin 50,100,200] (BRAINTRACE_SPIN_US values, each its own worker; default: unset)
'use strict';
const os = require('os');
const path = require('path');
const { JsonChild } = require('./lib/line-child');

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const rounds = Number(opt('--rounds', '5'));
const threadsList = opt('--threads', '1,2').split(',').map(Number);
const spins = opt('--spin', '').split(',').filter(Boolean);
const addons = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] !== '--addon') continue;
  const v = argv[i + 1] ?? '';
  const eq = v.indexOf('=');
  if (eq <= 0 || !path.isAbsolute(v.slice(eq + 1))) throw new Error(`--addon wants label=/absolute/path; got '${v}'`);
  addons.push({ label: v.slice(0, eq), file: v.slice(eq + 1) });
}
if (addons.length === 0) addons.push({ label: 'this', file: null });
if (!Number.isInteger(rounds) || rounds < 1 || threadsList.some((t) => !Number.isInteger(t) || t < 1))
  throw new Error('--rounds and --threads want positive integers');

const cases = [
  { id: 'gemm 1024^3', unit: 'ms/product', req: { op: 'gemmHook', m: 1024, n: 1024, k: 1024, reps: 3 } },
  { id: 'gemm 128x512x512', unit: 'ms/product', req: { op: 'gemmHook', m: 128, n: 512, k: 512, reps: 20 } },
  { id: 'GRU BPTT B64 I64 H256 T100', unit: 'ms/call', req: { op: 'gruBptt', B: 64, I: 64, H: 256, O: 4, T: 100, reps: 1 } },
  { id: 'pp_prop 3xLIF(512) B128 T10', unit: 'ms/step', req: { op: 'lif3', algo: 'pp_prop', B: 128, I: 512, H: 512, O: 4, T: 10, reps: 1 } },
];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const workers = [];
  for (const a0 of addons)
    for (const spin of spins.length ? spins : [null])
      for (const t of threadsList) {
        const a = spin === null ? a0 : { ...a0, label: `${a0.label} spin ${spin}` };
        const env = { BRAINTRACE_NUM_THREADS: String(t) };
        if (a.file) env.BRAINTRACE_ADDON = a.file;
        if (spin !== null) env.BRAINTRACE_SPIN_US = spin;
        const w = new JsonChild(`${a.label}/t${t}`, process.execPath, [path.join(__dirname, 'compare', 'ours_cases.js')], env);
        workers.push({ addon: a.label, threads: t, w, times: new Map() });
      }
  const load0 = os.loadavg();
  for (const x of workers) await x.w.call({ op: 'info' });
  for (const c of cases) for (const x of workers) await x.w.call(c.req); // warm-up: build, compile
  for (let r = 0; r < rounds; r++)
    for (const c of cases)
      for (let j = 0; j < workers.length; j++) {
        const x = workers[(j + r) % workers.length];
        const res = await x.w.call(c.req);
        if (!x.times.has(c.id)) x.times.set(c.id, []);
        x.times.get(c.id).push(res.seconds * 1e3);
      }
  const load1 = os.loadavg();
  for (const x of workers) await x.w.close();
  const fmt = (v) => v.toFixed(v < 10 ? 3 : 1);
  console.log(`${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${rounds} rounds, wall time: median (best)`);
  console.log(`load average (1 min): ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after`);
  const head = ['case', ...workers.map((x) => `${x.addon} t${x.threads}`)];
  const labels = [...new Set(workers.map((x) => x.addon))];
  for (const a of labels) if (threadsList.length > 1) head.push(`${a} t${threadsList[0]}/t${threadsList[threadsList.length - 1]}`);
  console.log(head.join(' | '));
  for (const c of cases) {
    const meds = workers.map((x) => median(x.times.get(c.id)));
    const mins = workers.map((x) => Math.min(...x.times.get(c.id)));
    const row = [`${c.id} (${c.unit})`, ...meds.map((m, i) => `${fmt(m)} (${fmt(mins[i])})`)];
    for (const a of labels)
      if (threadsList.length > 1) {
        const lo = workers.findIndex((x) => x.addon === a && x.threads === threadsList[0]);
        const hi = workers.findIndex((x) => x.addon === a && x.threads === threadsList[threadsList.length - 1]);
        row.push(`${(meds[lo] / meds[hi]).toFixed(2)}x (${(mins[lo] / mins[hi]).toFixed(2)}x)`);
      }
    console.log(row.join(' | '));
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
