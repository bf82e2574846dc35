/**
 * The trace loops' instruction-set clones (native/cpu/trace_cpu.cc: baseline, AVX2 and
 * AVX-512, chosen at run time; BRAINTRACE_TRACE_ISA caps the choice) compute bit for bit the
 * same results: every clone rounds every multiply and add on its own (no fused multiply-add:
 * the build's -ffp-contract=off). Byte-compared over BPTT, D_RTRL and pp_prop runs of models
 * whose groups have 1, 2, 3 and 5 states, float64 and float32 (test/helpers/isa-run.js in
 * child processes). Negative control, by hand: the same build without -ffp-contract=off gives
 * other AVX-512 bytes (docs/architecture.md, "Exactness across CPUs").
 */
import { execFileSync } from 'child_process';
import * as path from 'path';

const script = path.join(__dirname, 'helpers', 'isa-run.js');

interface IsaRun {
  isa: string;
  runs: Record<string, Record<string, string>>;
}

// The script in a child process (the variable must reach the addon's getenv) with
// BRAINTRACE_TRACE_ISA set to `isa` or unset.
function child(isa: string | undefined): IsaRun {
  const env = { ...process.env };
  if (isa === undefined) delete env.BRAINTRACE_TRACE_ISA;
  else env.BRAINTRACE_TRACE_ISA = isa;
  return JSON.parse(execFileSync(process.execPath, [script], { env, encoding: 'utf8', maxBuffer: 1 << 26 }));
}

test('the portable, AVX2 and AVX-512 trace loops give byte-identical results', () => {
  const dflt = child(undefined);
  const order = ['portable', 'avx2', 'avx512'];
  expect(order).toContain(dflt.isa);
  const keys = Object.keys(dflt.runs);
  expect(keys.length).toBe(24); // 2 dtypes x 4 models x 3 algorithms
  for (const cap of order) {
    const r = child(cap);
    // The cap is applied: the narrower of the cap and what this CPU runs.
    expect(r.isa).toBe(order[Math.min(order.indexOf(cap), order.indexOf(dflt.isa))]);
    expect(Object.keys(r.runs)).toEqual(keys);
    for (const k of keys) {
      expect(Object.keys(r.runs[k]).length).toBeGreaterThan(8);
      expect(r.runs[k]).toEqual(dflt.runs[k]);
    }
  }
}, 300000);

test('BRAINTRACE_TRACE_ISA with a value that names no ISA leaves the default', () => {
  expect(child('avx1024').isa).toBe(child(undefined).isa);
}, 120000);
