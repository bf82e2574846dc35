/**
 * The CUDA probe's fallback reason (info().fallbackReason) says what is missing and what
 * to do: "no NVIDIA driver found ... install the NVIDIA driver", "driver too old (driver
 * version X, needs Y)", "driver present but no CUDA device".
 *
 *  - Every wording on the host: test/native/cuda_probe_reason.cc compiles
 *    native/cuda/probe_reason.h (the text the probe in native/cuda/executor.cu uses) and
 *    prints the reason for each situation (no GPU or CUDA needed).
 *  - The real probe: when the CUDA build exists (build-cuda/, `npm run build:cuda`) and
 *    this machine has no NVIDIA driver (no libcuda.so.1 known to the dynamic loader, the
 *    CI and development machines), its info() says "no NVIDIA driver found". Without the
 *    CUDA build, or on a machine with a driver, only that check's setup is absent.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import type { NativeBinding } from '../types/binding';

const root = path.join(__dirname, '..');

test('every probe situation gets its own reason naming what to install or check', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-probe-'));
  const exe = path.join(dir, 'probe');
  try {
    execFileSync(process.env.CXX ?? 'g++', [
      '-std=c++17', '-O0', '-Wall', '-Wextra', '-Werror',
      '-I', path.join(root, 'native'),
      path.join(root, 'test', 'native', 'cuda_probe_reason.cc'),
      '-o', exe,
    ]);
    const lines = execFileSync(exe, { encoding: 'utf8' }).trim().split('\n');
    const reason = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
    expect(reason['no-driver']).toBe(
      'no NVIDIA driver found (libcuda.so.1 could not be loaded: libcuda.so.1: cannot open shared object file: ' +
        'No such file or directory); to use a GPU, install the NVIDIA driver for CUDA 13.0 or newer (e.g. the ' +
        'nvidia-driver package of your distribution, or the driver from https://www.nvidia.com/drivers); running on the CPU',
    );
    expect(reason['old-driver']).toBe(
      'the NVIDIA driver is too old for this CUDA runtime (driver version for CUDA 12.4, needs CUDA 13.0); ' +
        'update the NVIDIA driver to one for CUDA 13.0 or newer; running on the CPU',
    );
    const noDevice =
      'NVIDIA driver present (for CUDA 13.0) but no CUDA device found; check that a GPU is installed and visible ' +
      'to this process (nvidia-smi, CUDA_VISIBLE_DEVICES); running on the CPU';
    expect(reason['no-device']).toBe(noDevice);
    expect(reason['zero-devices']).toBe(noDevice);
    expect(reason['other']).toBe(
      'CUDA initialisation failed (cudaErrorDevicesUnavailable: CUDA-capable device(s) is/are busy or unavailable) ' +
        'with the NVIDIA driver for CUDA 13.0; running on the CPU',
    );
    expect(reason['ok']).toBe('');
    // None of them repeats the runtime's misleading "driver version is insufficient" alone.
    expect(lines.join('\n')).not.toMatch(/CUDA driver version is insufficient/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120000);

/** Whether the dynamic loader knows a libcuda.so.1 (an installed NVIDIA driver). */
function loaderHasLibcuda(): boolean {
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      return execFileSync(ldconfig, ['-p'], { encoding: 'utf8' }).includes('libcuda.so.1');
    } catch {
      // try the next location
    }
  }
  return fs.existsSync('/usr/lib/x86_64-linux-gnu/libcuda.so.1') || fs.existsSync('/usr/lib64/libcuda.so.1');
}

const cudaBuild = path.join(root, 'build-cuda', 'Release', 'braintrace.node');
const noDriverMachine = fs.existsSync(cudaBuild) && process.platform === 'linux' && !loaderHasLibcuda();

(noDriverMachine ? test : test.skip)('the CUDA build on a machine without an NVIDIA driver says so and names what to install', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cuda = require(cudaBuild) as NativeBinding;
  const i = cuda.info('cuda');
  expect(i.cudaCompiled).toBe(true);
  expect(i.deviceCount).toBe(0);
  expect(i.backend).toBe('cpu');
  expect(i.fallbackReason).toMatch(/^no NVIDIA driver found \(libcuda\.so\.1 could not be loaded: .+\); to use a GPU, install the NVIDIA driver for CUDA \d+\.\d+ or newer/);
  expect(i.fallbackReason).not.toMatch(/driver version is insufficient/);
});
