// OpenBLAS SGEMM for the comparison benchmark: compiles scripts/compare/openblas_gemm.c with
// `cc -O2 ... -lopenblas` into a temporary directory (only where libopenblas and its headers
// are installed: Debian libopenblas-dev; OpenBLAS is never a dependency of braintrace) and runs
// it as a line-protocol child with OPENBLAS_NUM_THREADS set.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { LineChild } = require('./line-child');

const SOURCE = path.join(__dirname, '..', 'compare', 'openblas_gemm.c');

/**
 * Compiles the SGEMM timer once. Returns `{ binary }`, or `{ skip: reason }` when there is no
 * compiler or no OpenBLAS to link (the reason is the compiler's first error line).
 */
function buildOpenblasGemm() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'braintrace-bench-openblas-'));
  const binary = path.join(dir, 'openblas_gemm');
  const cc = process.env.CC || 'cc';
  try {
    execFileSync(cc, ['-O2', SOURCE, '-o', binary, '-lopenblas'], { stdio: 'pipe' });
    return { binary };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    const msg = String((e.stderr && e.stderr.toString()) || e.message).trim().split('\n').find((l) => /error|not found/i.test(l));
    return { skip: `OpenBLAS not available (\`${cc} -O2 openblas_gemm.c -lopenblas\` failed: ${msg || e.message})` };
  }
}

/** Removes the temporary directory of a binary built by buildOpenblasGemm. */
function removeOpenblasGemm(binary) {
  fs.rmSync(path.dirname(binary), { recursive: true, force: true });
}

/** A running SGEMM timer with `threads` OpenBLAS threads. */
class OpenblasGemm {
  constructor(binary, threads) {
    this.child = new LineChild(`openblas(${threads} threads)`, binary, [], { OPENBLAS_NUM_THREADS: String(threads) });
    this.config = null;
  }
  /** Reads the configuration line ({ config, corename, threads }). */
  async start() {
    this.config = JSON.parse(await this.child.nextLine());
    return this.config;
  }
  /** One round: `reps` sgemm calls C (m, n) = A (m, k) B (k, n); `{ seconds, cpuSeconds }` per call. */
  async gemm(m, n, k, reps) {
    const r = JSON.parse(await this.child.request(`${m} ${n} ${k} ${reps}`));
    if (r.error) throw new Error(`openblas_gemm: ${r.error}`);
    return r;
  }
  close() {
    return this.child.close();
  }
}

module.exports = { buildOpenblasGemm, removeOpenblasGemm, OpenblasGemm };
