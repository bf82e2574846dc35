/**
 * The two smallest examples run as written and reach their targets (each exits non-zero
 * when it misses). The README's main-job command, examples/integrator-rnn.js, is run by
 * test/examples-issue5.test.ts.
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

test('examples/online-integrator.js trains online and reaches its target', () => {
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
