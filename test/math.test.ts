/**
 * The float32 math of the shared kernels and the AVX2 element-wise loops (issue 9).
 *  - km::exp_, expm1_, tanh_ and sigmoid in float32 (kernels/scalar_math.h: our own
 *    branch-free polynomials) are within 2 ulp of the float64 libm value and give libm's
 *    special values (test/native/math_check.cc). The sweep here takes every 127th float32
 *    bit pattern plus the special values; BT_MATH_EXHAUSTIVE=1 sweeps all 2^32 inputs
 *    (minutes on 2 cores).
 *  - the check rejects deliberately wrong variants (3 ulp off, the cancelling textbook
 *    tanh, an expm1 that loses -0): it can fail.
 *  - BRAINTRACE_EW_ISA=sse2 (the portable loops) and the default (the AVX2 loops where the
 *    CPU has AVX2) give byte-identical results on the models of test/helpers/fusion-run.js
 *    (forward, BPTT, D_RTRL, pp_prop of a spiking model, a GRU and every element-wise op
 *    family; float64 and float32), at two sizes.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const stride = process.env.BT_MATH_EXHAUSTIVE === '1' ? '1' : '127';

let dir = '';
let exe = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-math-'));
  exe = path.join(dir, 'math_check');
  const cxx = process.env.CXX ?? 'g++';
  execFileSync(cxx, [
    '-std=c++17', '-O2', '-Wall', '-Wextra', '-pthread',
    '-I', path.join(root, 'native', 'include'),
    '-I', path.join(root, 'native'),
    path.join(root, 'test', 'native', 'math_check.cc'),
    '-o', exe,
  ]);
}, 120000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function runCheck(fn: string): { status: number | null; lines: string[] } {
  const r = spawnSync(exe, [fn, stride, '2'], { encoding: 'utf8' });
  return { status: r.status, lines: r.stdout.trim().split('\n') };
}

test('float32 exp, expm1, tanh and sigmoid are within 2 ulp of float64 libm, with its special values', () => {
  const r = runCheck('all');
  expect(r.lines.map((l) => l.split(' ')[0])).toEqual(['exp', 'expm1', 'tanh', 'sigmoid']);
  for (const line of r.lines) {
    const m = /^(\w+) max_ulp ([\d.]+) .* (ok|FAIL)/.exec(line);
    expect(m).not.toBeNull();
    expect(`${m![1]} ${m![3]}`).toBe(`${m![1]} ok`);
    expect(Number(m![2])).toBeLessThanOrEqual(2);
  }
  expect(r.status).toBe(0);
}, 600000);

test('the math check rejects a 3 ulp error, a cancelling tanh and a lost -0 (negative controls)', () => {
  const bad = { bad_exp: /max_ulp [3-9]/, bad_tanh: /special_fail|max_ulp \d{2,}/, bad_expm1: /special_fail \d+ first 0x80000000/ };
  for (const [fn, why] of Object.entries(bad)) {
    const r = runCheck(fn);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(/FAIL/);
    expect(r.lines[0]).toMatch(why);
  }
}, 600000);

const script = path.join(root, 'test', 'helpers', 'fusion-run.js');
// fusion-run.js in a child process (the variable must reach the addon's getenv) with
// BRAINTRACE_EW_ISA set to `isa` or unset.
function child(isa: string | undefined, args: string[] = []): Record<string, Record<string, string>> {
  const env = { ...process.env };
  delete env.BRAINTRACE_FUSE;
  if (isa === undefined) delete env.BRAINTRACE_EW_ISA;
  else env.BRAINTRACE_EW_ISA = isa;
  return JSON.parse(execFileSync(process.execPath, [script, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 26 }));
}

test('the portable and the AVX2 element-wise loops give byte-identical model results (float64 and float32)', () => {
  const portable = child('sse2');
  const dflt = child(undefined);
  const avx2 = child('avx2');
  const keys = Object.keys(portable);
  expect(keys.length).toBe(18);  // 2 dtypes x 3 models x 3 algorithms, GRU BPTT among them
  expect(keys.some((k) => /gru/i.test(k) && /bptt/i.test(k))).toBe(true);
  expect(Object.keys(dflt)).toEqual(keys);
  for (const k of keys) {
    expect(Object.keys(portable[k]).length).toBeGreaterThan(8);
    expect(dflt[k]).toEqual(portable[k]);
    expect(avx2[k]).toEqual(portable[k]);
  }
  // Tensors of 200 elements: several 8-wide vector iterations and an epilogue per loop.
  const wideP = child('sse2', ['wide']);
  const wideA = child('avx2', ['wide']);
  expect(Object.keys(wideA)).toEqual(keys);
  for (const k of keys) expect(wideA[k]).toEqual(wideP[k]);
  expect(wideP['float32/gru/bptt']).not.toEqual(portable['float32/gru/bptt']);  // really other sizes
}, 300000);
