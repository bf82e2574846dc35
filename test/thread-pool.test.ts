/**
 * The native thread pool's waiting (native/cpu/thread_pool.h): after a parallel call the
 * workers spin for at most BRAINTRACE_SPIN_US and then really sleep, so an idle process
 * (an Electron app between calls) uses no CPU. Each case runs in a child process, since the
 * pool's size and spin window are fixed when the addon first uses it.
 */
import * as path from 'path';
import { spawnSync } from 'child_process';

interface IdleReport {
  threads: number;
  cpuMs: number;
  wallMs: number;
}

/** Runs parallel GEMMs in a fresh process, then measures its CPU time over `idleMs` of idling. */
function idleCpu(env: Record<string, string>, idleMs: number): IdleReport {
  const root = JSON.stringify(path.join(__dirname, '..'));
  const code = `
    const fs = require('fs');
    const ts = require('typescript');
    require.extensions['.ts'] = (m, filename) => {
      const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: filename,
      });
      m._compile(out.outputText, filename);
    };
    const { loadBinding } = require(${root} + '/lib/runtime/native.ts');
    const binding = loadBinding();
    // Products big enough to use every thread, several back to back.
    binding.benchmarkGemm({ M: 256, N: 256, K: 256, dtype: 'float32', reps: 5, threads: 1024 });
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      const c = process.cpuUsage(c0);
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      process.stdout.write(JSON.stringify({ threads: binding.info().threads, cpuMs: (c.user + c.system) / 1e3, wallMs }));
    }, ${idleMs});
  `;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`child failed (status ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as IdleReport;
}

describe('thread pool idling', () => {
  // A busy-looping worker would burn about the whole idle window (400 ms); the default spin
  // window (100 us) and the event loop's own wake-up cost a few ms at most.
  test.each([
    ['default spin window', {}],
    ['BRAINTRACE_SPIN_US=0 (no spinning)', { BRAINTRACE_SPIN_US: '0' }],
    ['BRAINTRACE_SPIN_US=20000', { BRAINTRACE_SPIN_US: '20000' }],
  ])('an idle process uses ~no CPU after a parallel call: %s', (_name, extra) => {
    const r = idleCpu({ BRAINTRACE_NUM_THREADS: '2', ...extra }, 400);
    expect(r.threads).toBe(2);
    expect(r.wallMs).toBeGreaterThanOrEqual(390);
    // The 20 ms window may spend up to 20 ms of one worker's CPU, then it must sleep.
    expect(r.cpuMs).toBeLessThan(100);
  });
});
