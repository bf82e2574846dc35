/**
 * The standalone GEMM check (test/native/gemm_check.cc) built for this machine and run: every
 * kernel the CPU has (AVX-512, AVX2, portable here; NEON under qemu in scripts/test-gemm-arm64.sh)
 * against a float64 loop on odd shapes and transposes, tiled and prepacked products bit for bit
 * equal to the whole product, and a row of C equal bit for bit whatever rows surround it (the
 * row-edge kernels of kernels/gemm.h against full micro-kernel rows).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');

test('gemm_check: every kernel of this CPU passes, row edges bit for bit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-gemmcheck-'));
  const exe = path.join(dir, 'gemm_check');
  try {
    const cxx = process.env.CXX ?? 'g++';
    const src = ['test/native/gemm_check.cc', 'native/cpu/gemm_dispatch.cc', 'native/cpu/gemm_x86.cc', 'native/cpu/gemm_neon.cc'];
    execFileSync(cxx, ['-std=c++17', '-O2', '-Wall', '-Wextra', '-I', path.join(root, 'native'), ...src.map((s) => path.join(root, s)), '-o', exe]);
    const out = execFileSync(exe, { encoding: 'utf8' });
    expect(out).toMatch(/portable +ok/);
    expect(out.trim().split('\n').pop()).toMatch(/^\d+ checks, 0 failed$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 240000);
