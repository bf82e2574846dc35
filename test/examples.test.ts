/**
 * The README's main-job command runs as written and reaches its stated target
 * (the example exits non-zero when the loss does not halve).
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

test('examples/gru-bptt.js trains and its loss halves', () => {
  const root = path.join(__dirname, '..');
  const r = spawnSync(process.execPath, [path.join(root, 'examples', 'gru-bptt.js')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/loss 0\.\d+ -> 0\.\d+/);
});

test('examples/online-integrator.js (the README main job) trains online and reaches its target', () => {
  const root = path.join(__dirname, '..');
  const r = spawnSync(process.execPath, [path.join(root, 'examples', 'online-integrator.js')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/D_RTRL loss 0\.\d+ -> 0\.\d+; BPTT -> 0\.\d+/);
});
