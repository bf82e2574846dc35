/**
 * The specialised trace loops of the CPU driver (issue 9: native/kernels/trace.h
 * vec_trace_row, pp_project_range, pp_input_run, pp_vec_cols; native/cpu/trace_cpu.cc with
 * its AVX2 and AVX-512 clones) equal the generic per-position bodies bit for bit, and the
 * jacobian_read copy loops (native/cpu/jacobian_read.h) write exactly what JacobianReadTask
 * defines: test/native/trace_check.cc, compiled at -O3 -ffp-contract=off like the addon (so
 * the loops vectorise and nothing is fused into a multiply-add) with the thread pool and GEMM
 * sources that cpu/trace_cpu.cc links, run on 1 and 2 threads with each clone
 * (BRAINTRACE_TRACE_ISA; a clone this CPU lacks falls back to a narrower one). Without
 * -ffp-contract=off the AVX-512 clones fuse multiply-adds and this check fails.
 * The check also runs two negative controls (a reordered contraction sum and a signed-zero
 * change of the S = 1 update) that must differ from the reference.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');

test('every specialised trace loop equals the generic body bit for bit (1 and 2 threads, each ISA)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-tracecheck-'));
  const exe = path.join(dir, 'check');
  try {
    const cxx = process.env.CXX ?? 'g++';
    const cpu = (f: string) => path.join(root, 'native', 'cpu', f);
    execFileSync(cxx, [
      '-std=c++17', '-O3', '-ffp-contract=off', '-Wall', '-Wextra', '-pthread',
      '-I', path.join(root, 'native', 'include'),
      '-I', path.join(root, 'native'),
      path.join(root, 'test', 'native', 'trace_check.cc'),
      cpu('trace_cpu.cc'), cpu('thread_pool.cc'), cpu('parallel_gemm.cc'),
      cpu('gemm_dispatch.cc'), cpu('gemm_x86.cc'), cpu('gemm_neon.cc'),
      '-o', exe,
    ]);
    for (const isa of ['portable', 'avx2', 'avx512'])
      for (const threads of ['1', '2']) {
        const env = { ...process.env, BRAINTRACE_NUM_THREADS: threads, BRAINTRACE_TRACE_ISA: isa };
        const out = execFileSync(exe, { encoding: 'utf8', env });
        expect(out.trim()).toMatch(/^ok \d+ checks$/);
      }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 240000);
