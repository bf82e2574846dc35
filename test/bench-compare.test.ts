/**
 * The comparison benchmark's plumbing (scripts/bench-compare.js): options, the case table with
 * its cost models, and the braintrace worker's JSON-lines protocol. No speed is asserted, and
 * neither torch nor OpenBLAS is needed.
 */
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const compare = require('../scripts/bench-compare.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { JsonChild } = require('../scripts/lib/line-child.js');

test('parseArgs: defaults, --quick, --cases and typed refusals', () => {
  const d = compare.parseArgs(['--compare']);
  expect(d.rounds).toBe(7);
  expect(d.metric).toBe('auto');
  expect(d.cases).toEqual(['gemm', 'gru', 'drtrl', 'trace', 'lif3', 'tiny']);
  const q = compare.parseArgs(['--compare', '--quick', '--cases', 'gemm,tiny', '--metric', 'wall']);
  expect(q).toMatchObject({ quick: true, rounds: 3, cases: ['gemm', 'tiny'], metric: 'wall' });
  expect(() => compare.parseArgs(['--cases', 'gemm,nope'])).toThrow(/--cases: unknown nope/);
  expect(() => compare.parseArgs(['--rounds', '0'])).toThrow(/--rounds must be a positive integer/);
  expect(() => compare.parseArgs(['--metric', 'fast'])).toThrow(/--metric must be/);
  expect(() => compare.parseArgs(['--frobnicate'])).toThrow(/unknown option --frobnicate/);
});

test('buildRows: unique ids, a GEMM-rate row per thread count, finite cost models', () => {
  const rows = compare.buildRows(compare.parseArgs(['--quick']));
  const ids = rows.map((r: { id: string }) => r.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const t of [1, 2]) expect(rows.some((r: { isRate?: boolean; threads: number }) => r.isRate && r.threads === t)).toBe(true);
  const fake = { residentBytes: 1e6, peakExtraBytes: 1e6, traceBytes: 1e6, stateBytes: 1e3, bytesMoved: 1e6 };
  for (const r of rows) {
    const m = r.model(fake);
    expect(Number.isFinite(m.flops) && m.flops >= 0).toBe(true);
    expect(Number.isFinite(m.bytes) && m.bytes >= 0).toBe(true);
  }
  // --cases without gemm still measures the rate (a hidden row).
  const only = compare.buildRows(compare.parseArgs(['--cases', 'tiny']));
  expect(only.filter((r: { hidden?: boolean }) => r.hidden).map((r: { id: string }) => r.id)).toEqual(['gemm-rate:t1']);
});

test('the braintrace worker answers JSON lines and reports errors as answers', async () => {
  const worker = new JsonChild('braintrace', process.execPath, [path.join(__dirname, '..', 'scripts', 'compare', 'ours_cases.js')], {
    BRAINTRACE_NUM_THREADS: '1',
  });
  try {
    const info = await worker.call({ op: 'info' });
    expect(info.threads).toBe(1);
    const g = await worker.call({ op: 'gemm', m: 2, n: 3, k: 4, steps: 1, reps: 2 });
    expect(g.seconds).toBeGreaterThan(0);
    expect(g.residentBytes).toBeGreaterThan(0);
    const s = await worker.call({ op: 'gemm', m: 2, n: 3, k: 4, steps: 3, reps: 1 });
    expect(s.seconds).toBeGreaterThan(0);
    await expect(worker.call({ op: 'nope' })).rejects.toThrow(/unknown op "nope"/);
    expect((await worker.call({ op: 'copy', bytes: 4096, reps: 2 })).gbPerSecond).toBeGreaterThan(0);
  } finally {
    await worker.close();
  }
});
