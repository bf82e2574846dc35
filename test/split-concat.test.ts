/**
 * Split concats (issue 9, item 4: the reverse pass does only what it needs). A matrix
 * product whose operand is a Concat over its last axis ([x, h] W in a GRU, [x, s] W in a
 * recurrent spiking layer) writes each concat input's cotangent straight from its block of
 * G W^T and skips the blocks nobody wants (the data input x; in pp_prop's learning signal
 * also the previous step's spikes), instead of forming G W^T whole and slicing it (split);
 * a concat read by several products gets only its wanted columns computed (trimmed).
 *  - the sessions of such models split their concats (splitConcats), and
 *    BRAINTRACE_SPLIT_CONCAT=0 (read when a session is created) turns it off;
 *  - split and unsplit runs give byte-identical results: forward, BPTT, D_RTRL and pp_prop
 *    of a GRU, three recurrent LIF layers, a concat that repeats an input and two stacked GRU
 *    cells (layer 2's [h1', h2] is a frontier node of layer 1's online group sweep: without
 *    the plain VJP there its gradients are NaN), and a concat whose input has a reader
 *    between it and its product (only trimmed: a split would reorder that input's
 *    cotangent sum, and with the order rule off BPTT's bytes differ), in float64 and float32
 *    (test/helpers/split-run.js in two child processes, one with the switch off);
 *  - a VJP that fetches a concat's cotangent, or stops at it, gets the plain VJP: the same
 *    bytes with the switch on and off (without that exclusion they differ).
 * The gradients themselves are checked against finite differences and against BPTT by the
 * rest of the suite, which runs with the split on.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';

const script = path.join(__dirname, 'helpers', 'split-run.js');
// The script in a child process (the variable must reach the addon's getenv, which jest's
// process.env does not), with BRAINTRACE_SPLIT_CONCAT set to `split` or unset.
function child(split: string | undefined, args: string[] = []): unknown {
  const env = { ...process.env };
  if (split === undefined) delete env.BRAINTRACE_SPLIT_CONCAT;
  else env.BRAINTRACE_SPLIT_CONCAT = split;
  return JSON.parse(execFileSync(process.execPath, [script, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 26 }));
}

test('sessions split the concat operands of matrix products; BRAINTRACE_SPLIT_CONCAT=0 turns it off', () => {
  // GRU: [x, h] feeds two products (trimmed), [x, r h] one (split); RLIF3: one per layer;
  // Repeat: [h, u, h]; GRU2: two [x, h] per layer; Order: one, with a reader of h between
  // it and its product (trimmed, not split: the order of h's cotangent sum).
  const on = {
    gru: { split: 1, trimmed: 2 },
    rlif3: { split: 3, trimmed: 0 },
    repeat: { split: 1, trimmed: 0 },
    gru2: { split: 0, trimmed: 4 },
    order: { split: 0, trimmed: 1 },
  };
  const off = { split: 0, trimmed: 0 };
  expect(child(undefined, ['info'])).toEqual(on);
  expect(child('0', ['info'])).toEqual({ gru: off, rlif3: off, repeat: off, gru2: off, order: off });
  expect(child('1', ['info'])).toEqual(on);
}, 60000);

test('split and unsplit runs are byte-identical (forward, BPTT, D_RTRL, pp_prop; float64 and float32)', () => {
  type Results = Record<string, Record<string, string>>;
  const split = child(undefined) as Results;
  const plain = child('0') as Results;
  const keys = Object.keys(split);
  expect(keys.length).toBe(30); // 2 dtypes x 5 models x 3 algorithms
  expect(Object.keys(plain)).toEqual(keys);
  for (const k of keys) {
    expect(Object.keys(split[k]).length).toBeGreaterThan(8);
    expect(split[k]).toEqual(plain[k]);
  }
}, 120000);

test('a fetched or stopping concat cotangent is the plain one (evaluate with fetchCotangents / stopCotangents)', () => {
  type Results = Record<string, Record<string, string>>;
  const split = child(undefined, ['evaluate']) as Results;
  const plain = child('0', ['evaluate']) as Results;
  expect(Object.keys(split).length).toBe(10); // 5 models x (fetch, stop)
  expect(split).toEqual(plain);
  for (const k of Object.keys(split)) expect(Object.keys(split[k])).toContain('fetched0');
}, 60000);

