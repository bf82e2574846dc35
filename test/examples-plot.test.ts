/**
 * Issue 8 item 9: every example in examples/ takes `--plot FILE` and ends with a plain
 * `target reached: ...` line (or `target missed: ...` on stderr and exit code 1).
 * The two examples without a --quick test elsewhere run here with --quick --plot; a
 * source check covers every example file, so a new one cannot skip the shared CLI.
 * The examples load dist/ (npm run build:ts).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-examples-plot-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(name: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'examples', `${name}.js`), ...args], { cwd: root, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('every example parses the shared options and ends with checkTarget', () => {
  const files = fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.js'));
  expect(files.length).toBeGreaterThanOrEqual(6);
  for (const f of files) {
    const src = fs.readFileSync(path.join(root, 'examples', f), 'utf8');
    expect([f, /require\('\.\/lib\/cli'\)/.test(src)]).toEqual([f, true]);
    expect([f, /parseArgs\(/.test(src)]).toEqual([f, true]);
    expect([f, /args\.plot/.test(src) && /writePlot\(/.test(src)]).toEqual([f, true]);
    expect([f, /checkTarget\(/.test(src)]).toEqual([f, true]);
  }
});

test.each(['gru-bptt', 'online-integrator'])('%s.js --quick --plot writes an SVG and reports its target', (name) => {
  const svg = path.join(tmp, `${name}.svg`);
  const r = run(name, ['--quick', '--plot', svg]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[lines.length - 1]).toMatch(/^target reached: /);
  expect(r.stdout).toContain(`plot written to ${svg}`);
  const text = fs.readFileSync(svg, 'utf8');
  expect(text.startsWith('<svg')).toBe(true);
  expect(text.trim().endsWith('</svg>')).toBe(true);
  expect((text.match(/<polyline /g) ?? []).length).toBeGreaterThanOrEqual(1);
});

test('a missed target exits 1 with a target line; an option the example does not take exits 2', () => {
  const r = run('gru-bptt', ['--iters', '1']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/^target missed: final loss/m);
  const o = run('online-integrator', ['--online']);
  expect(o.status).toBe(2);
  expect(o.stderr).toMatch(/unknown option --online/);
});
