/**
 * Element-wise fusion and the specialised CPU loops (issue 9, item 3).
 *  - every loop ew_select picks (cpu/ew_dispatch.h) equals the generic per-element body
 *    ew_apply bit for bit, for every element-wise op, mode and pointer presence, in float32
 *    and float64 (test/native/ew_dispatch_check.cc, compiled at -O3 so the loops vectorise);
 *  - a session fuses a spiking model's element-wise nodes into groups (fusionInfo), and
 *    BRAINTRACE_FUSE=0 (read when a session is created) turns fusion off;
 *  - fused and unfused runs give byte-identical results: forward, BPTT, D_RTRL and pp_prop
 *    of a spiking model, a GRU and a model with every element-wise op family, in float64 and
 *    float32 (test/helpers/fusion-run.js in two child processes, one with BRAINTRACE_FUSE=0).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');

test('every specialised element-wise loop equals the generic body bit for bit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-ewdispatch-'));
  const exe = path.join(dir, 'check');
  try {
    const cxx = process.env.CXX ?? 'g++';
    execFileSync(cxx, [
      '-std=c++17', '-O3', '-Wall', '-Wextra',
      '-I', path.join(root, 'native', 'include'),
      '-I', path.join(root, 'native'),
      path.join(root, 'test', 'native', 'ew_dispatch_check.cc'),
      '-o', exe,
    ]);
    const out = execFileSync(exe, { encoding: 'utf8' });
    expect(out.trim()).toMatch(/^ok \d+ loops$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 240000);

const script = path.join(root, 'test', 'helpers', 'fusion-run.js');
// The script in a child process (the environment variable must reach the addon's getenv,
// which jest's process.env does not), with BRAINTRACE_FUSE set to `fuse` or unset.
function child(fuse: string | undefined, args: string[] = []): unknown {
  const env = { ...process.env };
  if (fuse === undefined) delete env.BRAINTRACE_FUSE;
  else env.BRAINTRACE_FUSE = fuse;
  return JSON.parse(execFileSync(process.execPath, [script, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 26 }));
}

test('a session fuses element-wise chains; BRAINTRACE_FUSE=0 turns fusion off', () => {
  const on = child(undefined, ['info']) as { nodes: number; enabled: boolean; groups: number; fusedNodes: number; items: number };
  expect(on.enabled).toBe(true);
  expect(on.groups).toBeGreaterThanOrEqual(3);  // at least one group per LIF layer
  expect(on.fusedNodes).toBeGreaterThanOrEqual(18);
  expect(on.items).toBeLessThan(on.nodes);
  const off = child('0', ['info']) as typeof on;
  expect(off).toEqual({ nodes: on.nodes, enabled: false, groups: 0, fusedNodes: 0, items: on.nodes });
  const other = child('1', ['info']) as typeof on;
  expect(other).toEqual(on);
}, 60000);

test('fused and unfused runs are byte-identical (forward, BPTT, D_RTRL, pp_prop; float64 and float32)', () => {
  type Results = Record<string, Record<string, string>>;
  const fused = child(undefined) as Results;
  const unfused = child('0') as Results;
  const keys = Object.keys(fused);
  expect(keys.length).toBe(18);  // 2 dtypes x 3 models x 3 algorithms
  expect(Object.keys(unfused)).toEqual(keys);
  for (const k of keys) {
    expect(Object.keys(fused[k]).length).toBeGreaterThan(8);
    expect(fused[k]).toEqual(unfused[k]);
  }
}, 120000);
