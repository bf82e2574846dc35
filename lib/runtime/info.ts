/**
 * `braintrace.info()`: which native build and backend this process uses, and why.
 */
import * as fs from 'fs';
import * as path from 'path';

import { bindingInfo, loadBinding, PACKAGE_ROOT } from './native';

/** Runtime facts about braintrace in this process. */
export interface BraintraceInfo {
  /** Version of the braintrace package (from its package.json). */
  version: string;
  /** Backend that new sessions use: 'cuda' only with the CUDA build and a device that answered. */
  backend: 'cpu' | 'cuda';
  /** True when the loaded binary contains CUDA kernels (the cmake-js build with nvcc). */
  cudaCompiled: boolean;
  /** CUDA devices that answered the probe (0 without the CUDA build, a driver or a GPU). */
  deviceCount: number;
  /**
   * Why the backend is 'cpu' ('' when it is 'cuda'), e.g. "no CUDA build installed",
   * "CUDA build present but no device: cudaErrorInsufficientDriver: ...", or, for
   * the CUDA build forced with BRAINTRACE_DEVICE=cuda, the probe's own reason.
   */
  fallbackReason: string;
  /** Size of the native CPU thread pool (BRAINTRACE_NUM_THREADS overrides it). */
  threads: number;
  /** The binary that was loaded: the node-gyp CPU build or the cmake-js CUDA build. */
  build: 'cpu' | 'cuda';
  /**
   * The CPU kernels chosen at run time for this CPU, each the widest instruction set it runs
   * unless an environment variable caps it: `gemm` the matrix-product kernel ('avx512',
   * 'avx2', 'neon' or 'portable'; BRAINTRACE_GEMM_KERNEL), `elementWise` the element-wise
   * loops ('avx2' or 'portable'; BRAINTRACE_EW_ISA), `trace` the eligibility-trace loops
   * ('avx512', 'avx2' or 'portable'; BRAINTRACE_TRACE_ISA). Results do not depend on them.
   */
  cpuKernels: CpuKernels;
}

/** See `BraintraceInfo.cpuKernels`. */
export interface CpuKernels {
  gemm: 'avx512' | 'avx2' | 'neon' | 'portable';
  elementWise: 'avx2' | 'portable';
  trace: 'avx512' | 'avx2' | 'portable';
}

let version: string | undefined;

function packageVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
        version?: unknown;
      };
      version = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      version = '0.0.0';
    }
  }
  return version;
}

/**
 * Reports the package version, the loaded build, the backend of new sessions and
 * the reason for a CPU fallback. Loads the native addon on first use (see
 * `BRAINTRACE_DEVICE` in lib/runtime/native.ts).
 */
export function info(): BraintraceInfo {
  const binding = loadBinding();
  const facts = bindingInfo();
  const n = binding.info(facts.preference);
  const backend = n.backend;
  return {
    version: packageVersion(),
    backend,
    cudaCompiled: n.cudaCompiled,
    deviceCount: n.deviceCount,
    fallbackReason: backend === 'cuda' ? '' : facts.fallbackReason || n.fallbackReason,
    threads: n.threads,
    build: facts.build,
    cpuKernels: n.cpuKernels,
  };
}
