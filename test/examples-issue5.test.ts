/**
 * The four task examples (issue 5) run as child processes with `--quick` (fewer
 * iterations, a weaker target that the script still checks: exit code 1 when
 * missed) and `--plot <tmp.svg>`; each must exit 0 and write a well-formed SVG
 * with its loss (and accuracy) curves. The examples load dist/ (npm run build:ts).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-examples-'));

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A small structural check that the SVG is well-formed: one root, balanced tags, polylines with points. */
function checkSvg(text: string, minPolylines: number): void {
  const t = text.trim();
  expect(t.startsWith('<svg')).toBe(true);
  expect(t.endsWith('</svg>')).toBe(true);
  expect(t).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  // balanced elements: every opening tag (not self-closing) has its closing tag, properly nested
  const stack: string[] = [];
  const tagRe = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<>]*")*)\s*(\/?)>/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = tagRe.exec(t)) !== null) {
    // text between tags must not contain a raw '<' or an unescaped '&'
    const between = t.slice(consumed, m.index);
    expect(between).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;|#\d+;)/);
    consumed = m.index + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (selfClosing) continue;
    if (closing) expect(stack.pop()).toBe(name);
    else stack.push(name);
  }
  expect(consumed).toBe(t.length);
  expect(stack).toEqual([]);
  const polylines = t.match(/<polyline [^>]*points="([^"]*)"/g) ?? [];
  expect(polylines.length).toBeGreaterThanOrEqual(minPolylines);
  for (const p of polylines) {
    const pts = /points="([^"]*)"/.exec(p)![1].trim().split(/\s+/);
    expect(pts.length).toBeGreaterThanOrEqual(2);
    for (const xy of pts) expect(xy).toMatch(/^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
  }
  expect(t).toMatch(/<text[^>]*>[^<]*iteration<\/text>/); // axis label
}

function runExample(name: string): { status: number | null; stdout: string; stderr: string; svg: string } {
  const svgFile = path.join(tmp, `${name}.svg`);
  const r = spawnSync(process.execPath, [path.join(root, 'examples', `${name}.js`), '--quick', '--plot', svgFile], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60000,
  });
  const svg = fs.existsSync(svgFile) ? fs.readFileSync(svgFile, 'utf8') : '';
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, svg };
}

describe('issue 5 task examples (--quick)', () => {
  test('integrator-rnn.js: D_RTRL vs BPTT on a vanilla RNN, both curves plotted', () => {
    const r = runExample('integrator-rnn');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/D_RTRL loss \d\.\d+ -> \d\.\d+ .*; BPTT \d\.\d+ -> \d\.\d+/);
    expect(r.stdout).toMatch(/target reached/);
    checkSvg(r.svg, 2);
    expect(r.svg).toContain('>D_RTRL</text>');
    expect(r.svg).toContain('>BPTT</text>');
  }, 90000);

  test('copy-gru.js: GRU copy task with D_RTRL reaches its quick accuracy target', () => {
    const r = runExample('copy-gru');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/recall accuracy \d+\.\d% on \d+ held-out symbols/);
    expect(r.stdout).toMatch(/target reached/);
    checkSvg(r.svg, 2);
    expect(r.svg).toContain('recall accuracy');
  }, 90000);

  test('dms-gif.js: GIF RSNN delayed match-to-sample with pp_prop reaches its quick target', () => {
    const r = runExample('dms-gif');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/accuracy \d+\.\d% on \d+ held-out trials/);
    expect(r.stdout).toMatch(/target reached/);
    checkSvg(r.svg, 2);
  }, 90000);

  test("evidence-ei.js: E/I (Dale's law) RSNN evidence accumulation with BPTT reaches its quick target", () => {
    const r = runExample('evidence-ei');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Dale's law holds/);
    expect(r.stdout).toMatch(/target reached/);
    checkSvg(r.svg, 2);
  }, 90000);

  test('an example exits 1 with a message when its target is missed', () => {
    // 1 iteration cannot reach the quick target of the copy task
    const r = spawnSync(process.execPath, [path.join(root, 'examples', 'copy-gru.js'), '--quick', '--iters', '1'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/target missed: recall accuracy/);
  }, 90000);
});
