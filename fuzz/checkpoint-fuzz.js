#!/usr/bin/env node
// Mutation fuzzer for the checkpoint decoder (lib/train/checkpoint.ts, built into dist/).
//
// Seeds: the real checkpoints in fuzz/corpus/checkpoint/ (written by
// fuzz/checkpoint-corpus.js). Each input is a seed with 1-4 mutations: bit flips,
// interesting bytes, truncation, extension, splices from another seed, deleted or
// duplicated ranges, edits of the version and length fields, and structured edits of
// the JSON header (values replaced by hostile ones: huge or negative sizes, deep
// nesting, '__proto__' / 'constructor' / 'prototype' keys, bad tags), most of them
// resealed (lengths, SHA-256 and, for version 2, the HMAC recomputed) so that the
// decoder gets past its checksum. Every input is decoded without a key and with the
// seeds' key; a decoded checkpoint is checked for consistency and restored into the
// matching learner. Each must succeed or throw a BraintraceError; anything else (a
// TypeError, RangeError, stack overflow, out-of-memory) or a decode that does not
// return within --hang-ms is a failure: the input is written to --out and the
// fuzzer exits with status 1 (default --out: fuzz/checkpoint-failures/, git-ignored).
//
// Run: npm run fuzz:checkpoint -- --minutes N      (default: about one minute)
// Options: --minutes N | --seconds N, --seed S (printed at the start; the same seed replays the
// same inputs), --hang-ms MS, --out DIR, --corpus DIR
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const MAX_INPUT = 1 << 20; // inputs are capped at 1 MiB (the shared buffer holds the current one)

function parseArgs(argv) {
  const o = {
    seconds: 60,
    seed: Date.now() % 2 ** 31,
    hangMs: 10_000,
    out: path.join(__dirname, 'checkpoint-failures'),
    corpus: path.join(__dirname, 'corpus', 'checkpoint'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const num = (s) => {
      const n = Number(s);
      if (!Number.isFinite(n) || n < 0) usage(`${a} must be a non-negative number; got ${s}`);
      return n;
    };
    if (a === '--minutes') o.seconds = 60 * num(val());
    else if (a === '--seconds') o.seconds = num(val());
    else if (a === '--seed') o.seed = Math.floor(num(val()));
    else if (a === '--hang-ms') o.hangMs = num(val());
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--corpus') o.corpus = path.resolve(val());
    else if (a === '--help' || a === '-h') usage(null);
    else usage(`unknown option ${a}`);
  }
  return o;
}

function usage(err) {
  const msg = 'usage: node fuzz/checkpoint-fuzz.js [--minutes N | --seconds N] [--seed S] [--hang-ms MS] [--out DIR] [--corpus DIR]';
  if (err) {
    console.error(`${err}\n${msg}`);
    process.exit(2);
  }
  console.log(msg);
  process.exit(0);
}

// ------------------------------------------------------------------ main thread: watchdog

function writeFailure(out, kind, input, text) {
  fs.mkdirSync(out, { recursive: true });
  // Failing inputs are for the engineer to look at, not for git.
  if (!fs.existsSync(path.join(out, '.gitignore'))) fs.writeFileSync(path.join(out, '.gitignore'), '*\n');
  const hash = crypto.createHash('sha256').update(input).digest('hex').slice(0, 16);
  const file = path.join(out, `${kind}-${hash}.btck`);
  fs.writeFileSync(file, input);
  fs.writeFileSync(`${file}.txt`, `${text}\n`);
  return file;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const seeds = fs
    .readdirSync(opts.corpus)
    .filter((f) => f.endsWith('.btck'))
    .sort();
  if (seeds.length === 0) {
    console.error(`no seeds in ${opts.corpus}; run node fuzz/checkpoint-corpus.js`);
    process.exit(2);
  }
  // [0]: iterations done, [1]: length of the current input; then the input's bytes.
  const shared = new SharedArrayBuffer(8 + MAX_INPUT);
  const counters = new Int32Array(shared, 0, 2);
  const current = () => Buffer.from(new Uint8Array(shared, 8, Atomics.load(counters, 1)));
  const started = Date.now();
  console.log(`checkpoint fuzz: ${seeds.length} seeds from ${path.relative(process.cwd(), opts.corpus) || '.'}, ${opts.seconds} s, seed ${opts.seed}`);
  const worker = new Worker(__filename, {
    workerData: { ...opts, seeds: seeds.map((f) => path.join(opts.corpus, f)), shared },
    resourceLimits: { maxOldGenerationSizeMb: 2048 },
  });
  let last = -1;
  let lastChange = Date.now();
  let ready = false; // the watchdog starts once the worker has loaded the library and its learners
  let done = false;
  const finish = (code) => {
    done = true;
    clearInterval(timer);
    process.exitCode = code;
  };
  const timer = setInterval(() => {
    if (!ready) return;
    const n = Atomics.load(counters, 0);
    if (n !== last) {
      last = n;
      lastChange = Date.now();
      return;
    }
    if (Date.now() - lastChange > opts.hangMs) {
      const file = writeFailure(opts.out, 'hang', current(), `no decode finished for ${opts.hangMs} ms (iteration ${n})`);
      console.error(`FAIL: hang: a decode did not return within ${opts.hangMs} ms; input written to ${file}`);
      finish(1);
      worker.terminate();
    }
  }, 250);
  worker.on('message', (m) => {
    if (m.type === 'ready') {
      ready = true;
      lastChange = Date.now();
    } else if (m.type === 'failure') {
      const file = writeFailure(opts.out, m.kind, Buffer.from(m.input), `${m.mode}\n${m.stack}`);
      console.error(`FAIL: ${m.kind} (${m.mode}): ${m.message}\ninput written to ${file}\n${m.stack}`);
      finish(1);
      worker.terminate();
    } else if (m.type === 'done') {
      const s = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`checkpoint fuzz: ${m.iterations} inputs (${m.decodes} decodes, ${m.restores} restores) in ${s} s, slowest decode ${m.slowestMs.toFixed(1)} ms, no failure`);
      console.log(`outcomes: ${Object.entries(m.outcomes)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`);
      finish(0);
      worker.terminate();
    }
  });
  worker.on('error', (e) => {
    if (done) return;
    const file = writeFailure(opts.out, 'crash', current(), String(e && e.stack));
    console.error(`FAIL: the fuzz worker died (${e && e.code ? `${e.code}: ` : ''}${e && e.message}); input written to ${file}`);
    finish(1);
  });
  worker.on('exit', (code) => {
    if (done) return;
    const file = writeFailure(opts.out, 'crash', current(), `worker exited with code ${code}`);
    console.error(`FAIL: the fuzz worker exited with code ${code}; input written to ${file}`);
    finish(1);
  });
}

// ------------------------------------------------------------------ worker: mutate and decode

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzWorker() {
  const { train, FUZZ_KEY, CONFIGS } = require('./checkpoint-models');
  const { BraintraceError } = require(path.join(__dirname, '..', 'dist', 'index.js'));
  const { decodeCheckpoint, restoreCheckpoint } = train;
  const opts = workerData;
  const counters = new Int32Array(opts.shared, 0, 2);
  const inputView = new Uint8Array(opts.shared, 8, MAX_INPUT);
  const rnd = mulberry32(opts.seed);
  const int = (n) => Math.floor(rnd() * n);
  const pick = (a) => a[int(a.length)];

  const seeds = opts.seeds.map((f) => ({ name: path.basename(f, '.btck'), bytes: fs.readFileSync(f) }));
  for (const s of seeds) {
    const H = Number(s.bytes.readBigUInt64LE(8));
    s.header = JSON.parse(s.bytes.subarray(24, 24 + H).toString('utf8'));
    s.config = s.name.split('-')[0];
  }
  const learners = {};
  for (const [name, make] of Object.entries(CONFIGS)) learners[name] = make();

  const INTERESTING_U64 = [0n, 1n, 7n, 8n, 24n, 2n ** 31n, 2n ** 32n - 8n, 2n ** 32n, 2n ** 40n, 2n ** 53n, 2n ** 53n + 8n, 2n ** 63n, 2n ** 64n - 1n];
  const INTERESTING_BYTES = [0, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x20, 0x30, 0x39, 0x2d, 0x24];
  const deepValue = (n, arrays) => {
    let v = 0;
    for (let i = 0; i < n; i++) v = arrays ? [v] : { a: v };
    return v;
  };
  const hostile = () =>
    pick([
      () => 2 ** 40,
      () => -1,
      () => 1.5,
      () => 2 ** 53 + 2,
      () => 1e308,
      () => -0,
      () => '',
      () => 'float64',
      () => 'x'.repeat(int(300)),
      () => null,
      () => true,
      () => [],
      () => {},
      () => [2 ** 40],
      () => [2 ** 30, 2 ** 30, 2 ** 30],
      () => [-1],
      () => new Array(int(64)).fill(1),
      () => deepValue(28 + int(12), rnd() < 0.5),
      () => JSON.parse('{"__proto__": {"polluted": 1}}'),
      () => ({ constructor: { prototype: 1 } }),
      () => ({ $array: { dtype: pick(['float32', 'float64', 'int8', 'bigint64', 'nope', '__proto__']), offset: pick([0, 8, -8, 2 ** 40, 3]), length: pick([0, 1, 2 ** 40, -1, 1e9]) } }),
      () => ({ $number: pick(['NaN', 'nan', 'Infinity', '-0', 5]) }),
      () => ({ $bigint: pick(['1', '-1', '12x', '9'.repeat(5000), 7]) }),
      () => ({ $weird: 1 }),
      () => ({ $$esc: 1 }),
      () => ({ name: '__proto__', shape: [1], offset: 0 }),
      () => ({ name: 'w', shape: [1], offset: 0 }),
    ])();

  /** Every (container, key) in a JSON value, iteratively. */
  function slots(root) {
    const out = [];
    const stack = [root];
    while (stack.length > 0) {
      const v = stack.pop();
      if (v === null || typeof v !== 'object') continue;
      for (const k of Object.keys(v)) {
        out.push([v, Array.isArray(v) ? Number(k) : k]);
        stack.push(v[k]);
      }
    }
    return out;
  }

  function withHeader(seed, header) {
    let text = Buffer.from(JSON.stringify(header), 'utf8');
    text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
    const H = Number(seed.bytes.readBigUInt64LE(8));
    const P = Number(seed.bytes.readBigUInt64LE(16));
    const pre = Buffer.from(seed.bytes.subarray(0, 24));
    pre.writeBigUInt64LE(BigInt(text.length), 8);
    const payload = seed.bytes.subarray(24 + H, 24 + H + P);
    const trailer = seed.bytes.subarray(24 + H + P);
    return Buffer.concat([pre, text, payload, trailer]);
  }

  function jsonEdit(seed) {
    const header = structuredClone(seed.header);
    const n = 1 + int(3);
    for (let i = 0; i < n; i++) {
      const all = slots(header);
      const [obj, key] = all.length > 0 ? pick(all) : [header, 'meta'];
      const r = rnd();
      if (r < 0.6) obj[key] = hostile();
      else if (r < 0.75 && !Array.isArray(obj)) delete obj[key];
      else if (r < 0.9 && !Array.isArray(obj)) obj[pick(['__proto__', 'constructor', 'prototype', '$array', '$x', 'extra', key])] = hostile();
      else if (Array.isArray(obj)) obj.push(structuredClone(obj[key]));
      else obj[key] = structuredClone(header);
    }
    return withHeader(seed, header);
  }

  function reseal(b) {
    if (b.length < 24) return b;
    const version = b.readUInt32LE(4);
    const trailer = version === 2 ? 64 : 32;
    const out = Buffer.from(b);
    if (rnd() < 0.8) {
      // Fix the payload length so that the lengths add up.
      const H = out.readBigUInt64LE(8);
      const P = BigInt(out.length - 24 - trailer) - H;
      if (P >= 0n) out.writeBigUInt64LE(P, 16);
    }
    if (out.length < 24 + trailer) return out;
    const body = out.subarray(0, out.length - trailer);
    crypto.createHash('sha256').update(body).digest().copy(out, out.length - trailer);
    if (version === 2) crypto.createHmac('sha256', FUZZ_KEY).update(body).digest().copy(out, out.length - 32);
    return out;
  }

  function mutate(seed) {
    let b = Buffer.from(seed.bytes);
    let structured = false;
    const n = 1 + int(4);
    for (let i = 0; i < n; i++) {
      const m = int(10);
      if (m === 0 && b.length > 0) {
        for (let k = 1 + int(8); k > 0; k--) b[int(b.length)] ^= 1 << int(8);
      } else if (m === 1 && b.length > 0) {
        for (let k = 1 + int(4); k > 0; k--) b[int(b.length)] = pick(INTERESTING_BYTES);
      } else if (m === 2) {
        b = b.subarray(0, int(b.length + 1));
      } else if (m === 3) {
        b = Buffer.concat([b, Buffer.from(Array.from({ length: int(64) }, () => int(256)))]); // from the seeded PRNG: a run is reproducible
      } else if (m === 4) {
        const other = pick(seeds).bytes;
        const from = int(other.length);
        const chunk = other.subarray(from, from + int(256));
        const at = int(b.length + 1);
        b = rnd() < 0.5 ? Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]) : Buffer.concat([b.subarray(0, at), chunk, b.subarray(at + chunk.length)]);
      } else if (m === 5 && b.length > 0) {
        const at = int(b.length);
        const len = int(Math.min(256, b.length - at) + 1);
        b = rnd() < 0.5 ? Buffer.concat([b.subarray(0, at), b.subarray(at + len)]) : Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
      } else if (m === 6 && b.length >= 24) {
        b = Buffer.from(b);
        const field = pick([8, 16]);
        const v = rnd() < 0.7 ? pick(INTERESTING_U64) : b.readBigUInt64LE(field) + BigInt(pick([-16, -8, -1, 1, 8, 16]));
        b.writeBigUInt64LE(BigInt.asUintN(64, v), field);
      } else if (m === 7 && b.length >= 8) {
        b = Buffer.from(b);
        b.writeUInt32LE(pick([0, 1, 2, 3, 0xffffffff]), 4);
      } else {
        b = jsonEdit(seed);
        structured = true;
      }
    }
    if (structured || rnd() < 0.6) b = reseal(b);
    return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
  }

  /** A decoded checkpoint must be self-consistent. */
  function checkDecoded(ck) {
    for (const group of [ck.params, ck.states, ck.traces ?? {}]) {
      if (Object.getPrototypeOf(group) !== Object.prototype) throw new Error('a tensor record has a replaced prototype');
      for (const [k, t] of Object.entries(group)) {
        const n = t.shape.reduce((a, d) => a * d, 1);
        if (t.data.length !== n) throw new Error(`tensor ${k}: ${t.data.length} elements for shape [${t.shape}]`);
        if (t.data.constructor !== (ck.dtype === 'float64' ? Float64Array : Float32Array)) throw new Error(`tensor ${k}: wrong array type`);
      }
    }
    const stack = [ck.meta, ck.optimizer];
    while (stack.length > 0) {
      const v = stack.pop();
      if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue;
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== Array.prototype) throw new Error('a decoded value has a replaced prototype');
      for (const k of Object.keys(v)) stack.push(v[k]);
    }
    if ({}.polluted !== undefined || Object.prototype.polluted !== undefined) throw new Error('Object.prototype was polluted');
  }

  parentPort.postMessage({ type: 'ready' });
  const outcomes = {};
  let iterations = 0;
  let decodes = 0;
  let restores = 0;
  let slowestMs = 0;
  const deadline = Date.now() + opts.seconds * 1000;
  const fail = (kind, mode, e, input) => {
    parentPort.postMessage({ type: 'failure', kind, mode, message: String(e && e.message), stack: String(e && e.stack), input });
  };
  while (Date.now() < deadline) {
    const seed = pick(seeds);
    const input = mutate(seed);
    inputView.set(input);
    Atomics.store(counters, 1, input.length);
    for (const mode of ['no key', 'key']) {
      const t0 = performance.now();
      let ck = null;
      try {
        ck = decodeCheckpoint(input, `fuzz:${seed.name}`, mode === 'key' ? { key: FUZZ_KEY } : {});
        outcomes.decoded = (outcomes.decoded ?? 0) + 1;
      } catch (e) {
        if (!(e instanceof BraintraceError)) return fail('exception', `decode, ${mode}`, e, input);
        const k = e.reason ?? e.code;
        outcomes[k] = (outcomes[k] ?? 0) + 1;
      }
      decodes++;
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      if (ck === null) continue;
      try {
        checkDecoded(ck);
      } catch (e) {
        return fail('invariant', `decode, ${mode}`, e, input);
      }
      try {
        restoreCheckpoint(learners[seed.config], ck);
        outcomes.restored = (outcomes.restored ?? 0) + 1;
      } catch (e) {
        if (!(e instanceof BraintraceError)) return fail('exception', `restore, ${mode}`, e, input);
        outcomes[`restore ${e.reason ?? e.code}`] = (outcomes[`restore ${e.reason ?? e.code}`] ?? 0) + 1;
      }
      restores++;
    }
    iterations++;
    Atomics.store(counters, 0, iterations);
  }
  parentPort.postMessage({ type: 'done', iterations, decodes, restores, slowestMs, outcomes });
}

if (isMainThread) main();
else fuzzWorker();
