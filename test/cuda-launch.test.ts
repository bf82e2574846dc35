/**
 * The CUDA executor's launch code on the CPU: test/native/cuda_launch_emulation.cc
 * compiles native/cuda/launch.h with the shared element-wise body and emulates every
 * (block, thread) of the grids it chooses (no GPU needed). Needs a C++17 compiler,
 * which building the addon already requires.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

test('grid-stride launches visit every element once and equal a plain loop over the same body', () => {
  const root = path.join(__dirname, '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-launch-'));
  const exe = path.join(dir, 'launch');
  try {
    const cxx = process.env.CXX ?? 'g++';
    execFileSync(cxx, [
      '-std=c++17', '-O1', '-Wall', '-Wextra',
      '-I', path.join(root, 'native', 'include'),
      '-I', path.join(root, 'native'),
      path.join(root, 'test', 'native', 'cuda_launch_emulation.cc'),
      '-o', exe,
    ]);
    const out = execFileSync(exe, { encoding: 'utf8' });
    expect(out.trim()).toBe('ok');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120000);
