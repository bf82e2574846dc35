/**
 * Checkpoint hardening (issue 8, item 8): limits on meta / optimizer state (depth,
 * entries, encoded size) on save and on load without stack overflows; forbidden
 * `__proto__` / `constructor` / `prototype` keys; sizes validated before any
 * allocation; authenticated checkpoints (HMAC-SHA-256) with distinct reasons;
 * unknown options rejected; temporary files of crashed saves cleaned up by the next
 * save; file and directory fsync.
 */
import { spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as bt from '../lib/index';
import type { Tensor } from '../lib/dsl/tensor';
import {
  CHECKPOINT_LIMITS,
  CheckpointError,
  cleanStaleTempFiles,
  decodeCheckpoint,
  encodeCheckpoint,
  captureCheckpoint,
  loadCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  writeFileAtomic,
} from '../lib/train/index';
import { DiagRNN, rejected, thrown } from './helpers/models';


const make = (seed = 3): bt.Learner => bt.compile(new DiagRNN(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed });

let dir: string;
let learner: bt.Learner;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-ckh-'));
  learner = make();
});
afterAll(() => {
  learner.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});



/** A chain of `n` nested objects (or arrays), built without recursion. */
function deep(n: number, arrays = false): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = arrays ? [v] : { a: v };
  return v;
}

/** The sections of a valid file. */
function sections(buf: Buffer): { version: number; header: string; payload: Buffer } {
  const H = Number(buf.readBigUInt64LE(8));
  const P = Number(buf.readBigUInt64LE(16));
  return { version: buf.readUInt32LE(4), header: buf.subarray(24, 24 + H).toString('utf8'), payload: buf.subarray(24 + H, 24 + H + P) };
}

/** Builds a well-formed file (lengths, SHA-256, and the HMAC for version 2) around any header text. */
function craft(header: string, payload: Buffer, opts: { version?: number; key?: Buffer | string; H?: bigint; P?: bigint } = {}): Buffer {
  let text = Buffer.from(header, 'utf8');
  text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
  const pre = Buffer.alloc(24);
  pre.write('BTCK', 0, 'latin1');
  pre.writeUInt32LE(opts.version ?? (opts.key === undefined ? 1 : 2), 4);
  pre.writeBigUInt64LE(opts.H ?? BigInt(text.length), 8);
  pre.writeBigUInt64LE(opts.P ?? BigInt(payload.length), 16);
  const body = Buffer.concat([pre, text, payload]);
  const parts = [body, crypto.createHash('sha256').update(body).digest()];
  if (opts.key !== undefined) parts.push(crypto.createHmac('sha256', opts.key).update(body).digest());
  return Buffer.concat(parts);
}

let good: Buffer;
beforeAll(() => {
  good = encodeCheckpoint(captureCheckpoint(learner, { meta: { note: 'x' } }));
});

/** `good` with its header edited by `edit` (on the parsed JSON) or replaced by text. */
function withHeader(edit: ((h: Record<string, unknown>) => void) | string, opts: Parameters<typeof craft>[2] = {}): Buffer {
  const { header, payload } = sections(good);
  let text: string;
  if (typeof edit === 'string') text = edit;
  else {
    const h = JSON.parse(header);
    edit(h);
    text = JSON.stringify(h);
  }
  return craft(text, payload, opts);
}

/** The header of `good` with `"meta": <metaText>` spliced in as raw text. */
function withMetaText(metaText: string, opts: Parameters<typeof craft>[2] = {}): Buffer {
  const { header, payload } = sections(good);
  const h = JSON.parse(header);
  h.meta = '@@META@@';
  return craft(JSON.stringify(h).replace('"@@META@@"', () => metaText), payload, opts);
}

function corrupt(buf: Buffer): CheckpointError {
  const e = thrown(() => decodeCheckpoint(buf, 'crafted.btck'), CheckpointError);
  expect(e.reason).toBe('corrupt');
  expect(e.code).toBe('ERR_BRAINTRACE_CHECKPOINT');
  return e;
}

// ------------------------------------------------------------------ limits on save

describe('meta and optimizer state limits on save', () => {
  test('a meta nested 100 000 levels deep is an ArgumentError naming the limit and the depth (no stack overflow)', () => {
    for (const arrays of [false, true]) {
      const e = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { meta: deep(100_000, arrays) })), bt.ArgumentError);
      expect(e.message).toMatch(/meta is nested 100000 levels deep; the limit is 32/);
      expect(e.argument).toBe('encodeCheckpoint: options.meta');
      expect(e.expected).toBe('nesting depth <= 32');
      expect(e.actual).toBe(100_000);
    }
  });

  test('saveCheckpoint rejects a too deep meta before writing anything', async () => {
    const f = path.join(dir, 'deep-save.btck');
    const e = await rejected(saveCheckpoint(learner, f, { meta: deep(33) }), bt.ArgumentError);
    expect(e.argument).toBe('saveCheckpoint: options.meta');
    expect(e.actual).toBe(33);
    expect(fs.existsSync(f)).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('deep-save'))).toEqual([]);
  });

  test('depth 32 exactly is stored and read back', async () => {
    const f = path.join(dir, 'depth32.btck');
    const meta = deep(32);
    await saveCheckpoint(learner, f, { meta });
    expect(loadCheckpoint(f).meta).toEqual(meta);
    // A typed array at the bottom is a leaf, not a level.
    let v: unknown = new Float32Array([1, 2]);
    for (let i = 0; i < 32; i++) v = [v];
    expect(decodeCheckpoint(encodeCheckpoint(captureCheckpoint(learner, { meta: v }))).meta).toEqual(v);
  });

  test('more than maxEntries keys and elements, or more than maxValueBytes of JSON, are refused', () => {
    const many = new Array(CHECKPOINT_LIMITS.maxEntries + 1).fill(0);
    const e = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { meta: { many } })), bt.ArgumentError);
    expect(e.message).toMatch(/has at least 1000002 keys and array elements; the limit is 1000000/);
    expect(e.actual).toBe(CHECKPOINT_LIMITS.maxEntries + 2);
    // A sparse array of 2^32 - 1 holes is refused at once, without walking its holes.
    const t0 = Date.now();
    const sparse = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { meta: new Array(2 ** 32 - 1) })), bt.ArgumentError);
    expect(sparse.actual).toBe(2 ** 32 - 1);
    expect(Date.now() - t0).toBeLessThan(2000);
    const big = 'x'.repeat(CHECKPOINT_LIMITS.maxValueBytes);
    const s = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { meta: big })), bt.ArgumentError);
    expect(s.message).toMatch(/encodes to 16777218 bytes of JSON; the limit is 16777216/);
    expect(s.actual).toBe(CHECKPOINT_LIMITS.maxValueBytes + 2);
    // The same data as a typed array goes to the payload and is fine.
    const ok = decodeCheckpoint(encodeCheckpoint(captureCheckpoint(learner, { meta: { many: new Float64Array(many.length) } })));
    expect((ok.meta as { many: Float64Array }).many.length).toBe(many.length);
  });

  test("keys '__proto__', 'constructor' and 'prototype' are refused anywhere in meta", () => {
    const cases: unknown[] = [
      JSON.parse('{"__proto__": {"polluted": true}}'),
      { a: [{ b: JSON.parse('{"__proto__": 1}') }] },
      { constructor: 'x' },
      { deep: { prototype: {} } },
    ];
    for (const meta of cases) {
      const e = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { meta })), bt.ArgumentError);
      expect(e.message).toMatch(/has the key '(__proto__|constructor|prototype)'/);
      expect(['__proto__', 'constructor', 'prototype']).toContain(e.actual);
    }
    // '$'-prefixed look-alikes are ordinary keys.
    const meta = { $__proto__: 1, $constructor: { $$x: 2 } };
    expect(decodeCheckpoint(encodeCheckpoint(captureCheckpoint(learner, { meta }))).meta).toEqual(meta);
  });

  test('the optimizer state is held to the same limits; cycles are still named', () => {
    const opt = new bt.optim.SGD({ lr: 0.1 });
    const bad = Object.assign(Object.create(opt) as typeof opt, { state: () => ({ kind: 'sgd', x: deep(40) }) });
    const e = thrown(() => encodeCheckpoint(captureCheckpoint(learner, { optimizer: bad })), bt.ArgumentError);
    expect(e.argument).toBe('encodeCheckpoint: options.optimizer');
    expect(e.actual).toBe(41);
    const cyc: Record<string, unknown> = { a: { b: {} } };
    (cyc.a as { b: Record<string, unknown> }).b.c = cyc;
    expect(() => encodeCheckpoint(captureCheckpoint(learner, { meta: cyc }))).toThrow(/meta\.a\.b\.c is a circular reference/);
  });
});

// ------------------------------------------------------------------ limits on load

describe('crafted files: limits, forbidden keys and sizes on load', () => {
  test('a meta nested 200 000 levels deep in the file is corrupt (no stack overflow), naming the limit and depth', () => {
    const n = 200_000;
    const e = corrupt(withMetaText('['.repeat(n) + ']'.repeat(n)));
    expect(e.message).toMatch(/the header nests 200001 levels deep; the limit is 35/);
    expect(e.field).toBe('header');
    expect(e.actual).toBe(n + 1);
    // Brackets inside strings do not count.
    const s = JSON.stringify('[{'.repeat(1000));
    expect(decodeCheckpoint(withMetaText(`{"s": ${s}}`)).meta).toEqual({ s: JSON.parse(s) });
  });

  test('meta of depth 33 (inside the header limit) is corrupt naming meta; depth 32 reads', () => {
    const e = corrupt(withMetaText('['.repeat(33) + ']'.repeat(33)));
    expect(e.message).toMatch(/meta is nested 33 levels deep; the limit is 32/);
    expect(e.field).toBe('meta');
    expect(e.actual).toBe(33);
    expect(decodeCheckpoint(withMetaText('['.repeat(32) + ']'.repeat(32))).meta).toEqual(JSON.parse('['.repeat(32) + ']'.repeat(32)));
  });

  test('too many entries or too many bytes in a file meta are corrupt', () => {
    const e = corrupt(withMetaText(`[${new Array(CHECKPOINT_LIMITS.maxEntries + 1).fill('0').join(',')}]`));
    expect(e.message).toMatch(/meta has 1000001 keys and array elements; the limit is 1000000/);
    expect(e.actual).toBe(CHECKPOINT_LIMITS.maxEntries + 1);
    const s = corrupt(withMetaText(JSON.stringify('y'.repeat(CHECKPOINT_LIMITS.maxValueBytes))));
    expect(s.message).toMatch(/meta has 16777218 bytes of JSON; the limit is 16777216/);
  });

  test('JSON.parse-style {"__proto__": {...}} in meta or the header is corrupt, and nothing gets a new prototype', () => {
    const bads = [
      withMetaText('{"__proto__": {"polluted": true}}'),
      withMetaText('{"a": [{"b": {"__proto__": {"polluted": true}}}]}'),
      withMetaText('{"constructor": {"prototype": {"polluted": true}}}'),
      withMetaText('{"$$__proto__": 1, "prototype": 2}'),
      withHeader('{"__proto__": {"algorithm": "BPTT"}}'),
      withHeader((h) => {
        (h.params as { name: string }[])[0].name = '__proto__';
      }),
      withHeader((h) => {
        h.optimizer = JSON.parse('{"kind": "sgd", "__proto__": {"lr": 1}}');
      }),
    ];
    // The last two builds go through JSON.stringify, which writes "__proto__" as an own key.
    for (const b of bads) {
      const e = corrupt(b);
      expect(e.message).toMatch(/the key '(__proto__|constructor|prototype)' is refused/);
      expect(['__proto__', 'constructor', 'prototype']).toContain(e.actual);
    }
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
    // A '$$'-escaped key decodes to a '$' key, which is fine.
    const ok = decodeCheckpoint(withMetaText('{"$$__proto__": 1}')).meta as Record<string, unknown>;
    expect(Object.getPrototypeOf(ok)).toBe(Object.prototype);
    expect(ok.$__proto__).toBe(1);
  });

  test('a header claiming 2^40 elements gives a typed error, not an allocation', () => {
    // (An attempt to allocate 2^43 bytes would throw a RangeError, not a CheckpointError.)
    {
      const huge = corrupt(
        withHeader((h) => {
          (h.params as { shape: number[] }[])[0].shape = [2 ** 40];
        }),
      );
      expect(huge.message).toMatch(/outside the payload/);
      // A product that is not even a safe integer.
      corrupt(
        withHeader((h) => {
          (h.states as { shape: number[] }[])[0].shape = [2 ** 30, 2 ** 30, 2 ** 30];
        }),
      );
      // An array in meta claiming 2^40 elements, and a negative / fractional length.
      for (const length of [2 ** 40, -1, 1.5, '8']) {
        corrupt(withMetaText(`{"$array": {"dtype": "float64", "offset": 0, "length": ${JSON.stringify(length)}}}`));
      }
    }
    // Section lengths: a header of 2^40 bytes, a payload of 2^40 bytes, 2^60.
    const { header, payload } = sections(good);
    expect(corrupt(craft(header, payload, { H: 2n ** 40n })).message).toMatch(/the header announces 1099511627776 bytes; the limit is 67108864/);
    const p = thrown(() => decodeCheckpoint(craft(header, payload, { P: 2n ** 40n })), CheckpointError);
    expect(p.reason).toBe('truncated');
    expect(corrupt(craft(header, payload, { P: 2n ** 60n })).message).toMatch(/bad section lengths/);
  });

  test("an array type naming an Object.prototype member ('__proto__', 'toString') is corrupt (found by the fuzzer)", () => {
    for (const dtype of ['__proto__', 'toString', 'constructor', 'hasOwnProperty']) {
      const e = corrupt(withMetaText(`{"x": {"$array": {"dtype": "${dtype}", "offset": 0, "length": 1}}}`));
      expect(e.message).toMatch(/unknown array type/);
    }
  });

  test('bad tags and bigints are corrupt', () => {
    corrupt(withMetaText('{"$bigint": "12x"}'));
    corrupt(withMetaText(`{"$bigint": "${'9'.repeat(5000)}"}`));
    corrupt(withMetaText('{"$weird": 1}'));
    corrupt(withMetaText('{"$number": "nan"}'));
    expect(decodeCheckpoint(withMetaText('{"$bigint": "-123"}')).meta).toBe(-123n);
  });

  test('non-bytes input is an ArgumentError', () => {
    expect(() => decodeCheckpoint('BTCK' as unknown as Uint8Array)).toThrow(bt.ArgumentError);
  });
});

// ------------------------------------------------------------------ authenticated checkpoints

describe('authenticated checkpoints (HMAC-SHA-256)', () => {
  const key = crypto.randomBytes(32);
  let keyed: string;
  let plain: string;
  beforeAll(async () => {
    keyed = path.join(dir, 'keyed.btck');
    plain = path.join(dir, 'plain.btck');
    await learner.save(keyed, { key, meta: { run: 1 } });
    await learner.save(plain, { meta: { run: 1 } });
  });

  function reason(f: () => unknown): string {
    return thrown(f, CheckpointError).reason;
  }

  test('layout: version 2, SHA-256 then HMAC-SHA-256 of the same bytes', () => {
    const b = fs.readFileSync(keyed);
    expect(b.readUInt32LE(4)).toBe(2);
    const H = Number(b.readBigUInt64LE(8));
    const P = Number(b.readBigUInt64LE(16));
    expect(b.length).toBe(24 + H + P + 64);
    const body = b.subarray(0, 24 + H + P);
    expect(b.subarray(24 + H + P, 24 + H + P + 32).equals(crypto.createHash('sha256').update(body).digest())).toBe(true);
    expect(b.subarray(24 + H + P + 32).equals(crypto.createHmac('sha256', key).update(body).digest())).toBe(true);
    // Without a key the format is unchanged: version 1, SHA-256 only.
    const u = fs.readFileSync(plain);
    expect(u.readUInt32LE(4)).toBe(1);
    expect(u.length).toBe(24 + Number(u.readBigUInt64LE(8)) + Number(u.readBigUInt64LE(16)) + 32);
  });

  test('the right key reads and restores; the state round-trips', async () => {
    const ck = loadCheckpoint(keyed, { key });
    expect(ck.formatVersion).toBe(2);
    expect(ck.meta).toEqual({ run: 1 });
    expect((await readCheckpoint(keyed, { key })).meta).toEqual({ run: 1 });
    expect((await bt.load(keyed, { key })).meta).toEqual({ run: 1 });
    const other = make(9);
    await other.load(keyed, { key });
    expect(other.params()).toEqual(learner.params());
    other.dispose();
  });

  test('keyed without a key, wrong key, unkeyed with a key: three distinct reasons', async () => {
    expect(reason(() => loadCheckpoint(keyed))).toBe('key-required');
    expect(reason(() => loadCheckpoint(keyed, { key: crypto.randomBytes(32) }))).toBe('authentication-failed');
    expect(reason(() => loadCheckpoint(plain, { key }))).toBe('unauthenticated');
    expect((await rejected(bt.load(keyed), CheckpointError)).reason).toBe('key-required');
    expect((await rejected(learner.load(keyed), CheckpointError)).reason).toBe('key-required');
    expect((await rejected(learner.load(plain, { key }), CheckpointError)).reason).toBe('unauthenticated');
    expect((await rejected(readCheckpoint(keyed, { key: 'another key of 16+ bytes' }), CheckpointError)).reason).toBe(
      'authentication-failed',
    );
    // Without a key, an unkeyed file still reads (the v1 path is unchanged).
    expect(loadCheckpoint(plain).meta).toEqual({ run: 1 });
  });

  test('a file rewritten without the key fails authentication; a downgrade to version 1 is unauthenticated', () => {
    const b = fs.readFileSync(keyed);
    const { header, payload } = sections(b);
    const h = JSON.parse(header);
    h.meta = { run: 666 };
    // The attacker recomputes the SHA-256 but cannot compute the HMAC: they keep the old one.
    const forged = craft(JSON.stringify(h), payload, { version: 2, key: 'attacker-chosen-key!!' });
    expect(reason(() => decodeCheckpoint(forged, 'forged', { key }))).toBe('authentication-failed');
    const reused = Buffer.concat([forged.subarray(0, forged.length - 32), b.subarray(b.length - 32)]);
    expect(reason(() => decodeCheckpoint(reused, 'forged', { key }))).toBe('authentication-failed');
    const downgraded = craft(JSON.stringify(h), payload, { version: 1 });
    expect(reason(() => decodeCheckpoint(downgraded, 'downgraded', { key }))).toBe('unauthenticated');
    // Accidental damage is still reported as such (the SHA-256 is checked first).
    const flipped = Buffer.from(b);
    flipped[30] ^= 1;
    expect(reason(() => decodeCheckpoint(flipped, 'flipped', { key }))).toBe('checksum-mismatch');
  });

  test('the HMAC is compared with crypto.timingSafeEqual', () => {
    // The module object itself (the `import * as` namespace has non-configurable getters).
    const spy = jest.spyOn(require('crypto') as typeof crypto, 'timingSafeEqual');
    try {
      loadCheckpoint(keyed, { key });
      expect(reason(() => loadCheckpoint(keyed, { key: Buffer.alloc(16, 7) }))).toBe('authentication-failed');
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
  });

  test('string and Uint8Array keys; the caller mutating its key array later does not matter', async () => {
    const f = path.join(dir, 'strkey.btck');
    await saveCheckpoint(learner, f, { key: 'correct horse battery staple' });
    expect(loadCheckpoint(f, { key: Buffer.from('correct horse battery staple') }).formatVersion).toBe(2);
    const u = new Uint8Array(16).fill(3);
    const g = path.join(dir, 'u8key.btck');
    const p = saveCheckpoint(learner, g, { key: u });
    u.fill(4);
    await p;
    expect(loadCheckpoint(g, { key: new Uint8Array(16).fill(3) }).formatVersion).toBe(2);
  });

  test('bad keys are ArgumentErrors naming the option, for every entry point', async () => {
    const bads: unknown[] = [Buffer.alloc(15), 'short', '', 42, {}, [1, 2, 3], new Uint16Array(4), null];
    for (const k of bads) {
      const e = await rejected(saveCheckpoint(learner, path.join(dir, 'never.btck'), { key: k as string }), bt.ArgumentError);
      expect(e.argument).toBe('saveCheckpoint: options.key');
      expect(e.expected).toBe('a Buffer/Uint8Array or string of at least 16 bytes');
      expect(thrown(() => loadCheckpoint(keyed, { key: k as string }), bt.ArgumentError).argument).toBe('loadCheckpoint: options.key');
      expect((await rejected(readCheckpoint(keyed, { key: k as string }), bt.ArgumentError)).argument).toBe('readCheckpoint: options.key');
      expect((await rejected(bt.load(keyed, { key: k as string }), bt.ArgumentError)).argument).toBe('readCheckpoint: options.key');
      expect((await rejected(learner.load(keyed, { key: k as string }), bt.ArgumentError)).argument).toBe('readCheckpoint: options.key');
      expect(thrown(() => decodeCheckpoint(good, 'x', { key: k as string }), bt.ArgumentError).argument).toBe('decodeCheckpoint: options.key');
    }
    expect(fs.existsSync(path.join(dir, 'never.btck'))).toBe(false);
    // A 15-byte key names its length.
    expect(thrown(() => loadCheckpoint(keyed, { key: Buffer.alloc(15) }), bt.ArgumentError).actual).toMatch(/of 15 bytes/);
    // A key with a Checkpoint object (already verified) is refused rather than ignored.
    const ck = loadCheckpoint(keyed, { key });
    expect((await rejected(learner.load(ck, { key }), bt.ArgumentError)).argument).toBe('load: options.key');
  });
});

// ------------------------------------------------------------------ unknown options

describe('unknown option keys are rejected', () => {
  test('save, load, read, decode, encode, restore, learner.save / load, bt.load', async () => {
    const f = path.join(dir, 'opts.btck');
    await saveCheckpoint(learner, f);
    const ck = loadCheckpoint(f);
    const cases: [string, () => unknown][] = [
      ['saveCheckpoint: options.optimiser', () => saveCheckpoint(learner, f, { optimiser: 1 } as never)],
      ['loadCheckpoint: options.keys', () => loadCheckpoint(f, { keys: 1 } as never)],
      ['readCheckpoint: options.optimizer', () => readCheckpoint(f, { optimizer: 1 } as never)],
      ['decodeCheckpoint: options.kye', () => decodeCheckpoint(good, 'x', { kye: 1 } as never)],
      ['encodeCheckpoint: options.meta', () => encodeCheckpoint(ck, { meta: 1 } as never)],
      ['restoreCheckpoint: options.key', () => restoreCheckpoint(learner, ck, { key: 'x' } as never)],
      ['saveCheckpoint: options.metadata', () => learner.save(f, { metadata: 1 } as never)],
      ['load: options.optimzer', () => learner.load(f, { optimzer: 1 } as never)],
      ['readCheckpoint: options.verify', () => bt.load(f, { verify: true } as never)],
      ['captureCheckpoint: options.optimiser', () => captureCheckpoint(learner, { optimiser: 1 } as never)],
    ];
    for (const [argument, call] of cases) {
      let err: unknown;
      try {
        await call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(bt.ArgumentError);
      expect((err as bt.ArgumentError).argument).toBe(argument);
      expect((err as Error).message).toMatch(/unknown option/);
    }
    expect(thrown(() => loadCheckpoint('' as string), bt.ArgumentError).argument).toBe('loadCheckpoint: path');
  });
});

// ------------------------------------------------------------------ temp files and fsync

describe('temporary files of crashed saves', () => {
  /** A pid that no process has (a child that already exited). */
  function deadPid(): number {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const pid = Number(r.stdout.toString());
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    return pid;
  }

  test('the next save removes temp files of dead writers and old ones; a live fresh one and other targets stay', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'tmp-'));
    const target = path.join(sub, 'model.btck');
    const dead = `${target}.tmp-${deadPid()}-0123456789ab`;
    const liveFresh = `${target}.tmp-${process.pid}-aaaaaaaaaaaa`;
    const liveOld = `${target}.tmp-${process.ppid}-bbbbbbbbbbbb`;
    const otherTarget = path.join(sub, 'other.btck.tmp-1-cccccccccccc');
    const lookalike = `${target}.tmp-notapid`;
    const dirLike = `${target}.tmp-1-dddddddddddd`;
    for (const f of [dead, liveFresh, liveOld, otherTarget, lookalike]) fs.writeFileSync(f, 'partial');
    fs.mkdirSync(dirLike);
    const old = (Date.now() - CHECKPOINT_LIMITS.staleTempAgeMs - 60_000) / 1000;
    fs.utimesSync(liveOld, old, old);
    await saveCheckpoint(learner, target);
    const left = fs.readdirSync(sub).sort();
    expect(left).toEqual(
      [path.basename(target), path.basename(liveFresh), path.basename(otherTarget), path.basename(lookalike), path.basename(dirLike)].sort(),
    );
    expect(loadCheckpoint(target).algorithm).toBe('D_RTRL');
    // cleanStaleTempFiles on its own reports what it removed; the live one goes once it is old.
    fs.utimesSync(liveFresh, old, old);
    expect(await cleanStaleTempFiles(target)).toEqual([liveFresh]);
    expect(await cleanStaleTempFiles(path.join(sub, 'missing-dir', 'x.btck'))).toEqual([]);
  });

  test('a save killed with SIGKILL before its rename leaves a temp file that the next save removes', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'kill-'));
    const target = path.join(sub, 'model.btck');
    await saveCheckpoint(learner, target, { meta: 'old' });
    // A child process runs the real writeFileAtomic (TypeScript transpiled on the fly)
    // and kills itself with SIGKILL in the window between fsync and rename.
    const root = path.resolve(__dirname, '..');
    const script = `
      const ts = require(${JSON.stringify(require.resolve('typescript'))});
      const fs = require('fs');
      require.extensions['.ts'] = (m, file) => {
        const out = ts.transpileModule(fs.readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
        m._compile(out.outputText, file);
      };
      const { writeFileAtomic } = require(${JSON.stringify(path.join(root, 'lib/train/checkpoint.ts'))});
      writeFileAtomic(${JSON.stringify(target)}, Buffer.from('new data'), { beforeRename: () => process.kill(process.pid, 'SIGKILL') });
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    expect(stderr).toBe('');
    expect(signal).toBe('SIGKILL');
    const leftovers = fs.readdirSync(sub).filter((n) => n.includes('.tmp-'));
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]).toMatch(new RegExp(`^model\\.btck\\.tmp-${child.pid}-[0-9a-f]+$`));
    expect(fs.readFileSync(path.join(sub, leftovers[0]), 'utf8')).toBe('new data');
    expect(loadCheckpoint(target).meta).toBe('old'); // the target is untouched
    await saveCheckpoint(learner, target, { meta: 'next' });
    expect(fs.readdirSync(sub)).toEqual(['model.btck']);
    expect(loadCheckpoint(target).meta).toBe('next');
  });

  test('the file is fsynced before the rename and the directory after it', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'sync-'));
    const target = path.join(sub, 'model.btck');
    const events: string[] = [];
    const open = fs.promises.open;
    const openSpy = jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
      const fh = await open(...args);
      const name = String(args[0]) === sub ? 'dir' : path.basename(String(args[0])).includes('.tmp-') ? 'tmp' : String(args[0]);
      const sync = fh.sync.bind(fh);
      fh.sync = async () => {
        events.push(`sync ${name}`);
        return sync();
      };
      return fh;
    });
    const renameSpy = jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
      events.push('rename');
      return fs.renameSync(a, b);
    });
    try {
      await writeFileAtomic(target, Buffer.from('abc'));
    } finally {
      openSpy.mockRestore();
      renameSpy.mockRestore();
    }
    expect(events).toEqual(['sync tmp', 'rename', 'sync dir']);
    expect(fs.readFileSync(target, 'utf8')).toBe('abc');
  });
});

// ------------------------------------------------------------------ compatibility

describe('version 1 files of the code before issue 8', () => {
  // fuzz/corpus/checkpoint/drtrl64-v1-fa2b2ca.btck was written by commit fa2b2ca (before the
  // hardening): a D_RTRL DiagRNN(3), batch 2, seed 1, after one SGD-momentum update on a fixed
  // sequence (the learner and data below), with this meta.
  const fixture = path.join(__dirname, '..', 'fuzz', 'corpus', 'checkpoint', 'drtrl64-v1-fa2b2ca.btck');
  const meta = { writtenBy: 'fa2b2ca', $dollar: 1, n: [NaN, -0], big: 7n, f: new Float32Array([0.5]) };

  class Diag3 extends bt.Module {
    w = new bt.ParamState(bt.init.xavierNormal(), [2, 3]);
    b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [3]);
    wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [3]);
    ro = new bt.ParamState(bt.init.xavierNormal(), [3, 1]);
    h = new bt.HiddenState([3]);
    update(x: Tensor): Tensor {
      const h = this.h.value;
      this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
      return bt.matmul(this.h.value, this.ro.value);
    }
  }

  test('it reads, restores, and the same state saved now gives the same bytes', async () => {
    const ck = loadCheckpoint(fixture);
    expect(ck.formatVersion).toBe(1);
    expect(ck.meta).toEqual(meta);
    expect(Array.from(ck.params.w.data)).toEqual([
      -0.4818787164716536, -1.231117995043835, -0.8133790262171363, 0.2829738846980505, -0.7963853991646813, -0.26981602702274105,
    ]);
    const l = bt.compile(new Diag3(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 1 });
    const opt = new bt.optim.SGD({ lr: 0.05, momentum: 0.9 });
    const xs: bt.HostTensor = { data: new Float64Array(8).map((_, i) => Math.sin(i + 1)), shape: [2, 2, 2], dtype: 'float64' };
    const ys: bt.HostTensor = { data: new Float64Array(4).map((_, i) => Math.cos(i)), shape: [2, 2, 1], dtype: 'float64' };
    await bt.fit(l, [{ xs, ys }], { optimizer: opt, updateEvery: 'sequence' });
    const f = path.join(dir, 'now-v1.btck');
    await l.save(f, { optimizer: opt, meta });
    expect(fs.readFileSync(f).equals(fs.readFileSync(fixture))).toBe(true);
    const fresh = bt.compile(new Diag3(), bt.D_RTRL, { inputShape: [2], batchSize: 2, dtype: 'float64', seed: 9 });
    const opt2 = new bt.optim.SGD({ lr: 0.05, momentum: 0.9 });
    await fresh.load(fixture, { optimizer: opt2 });
    expect(fresh.params()).toEqual(l.params());
    expect(opt2.stepCount).toBe(1);
    l.dispose();
    fresh.dispose();
    opt.dispose();
    opt2.dispose();
  });

  test('every seed of the fuzz corpus decodes (keyed ones with the fuzz key)', () => {
    const corpus = path.join(__dirname, '..', 'fuzz', 'corpus', 'checkpoint');
    const key = Buffer.from('braintrace-fuzz-key-0123456789ab', 'utf8');
    const files = fs.readdirSync(corpus).filter((n) => n.endsWith('.btck'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const n of files) {
      const ck = loadCheckpoint(path.join(corpus, n), n.includes('-keyed') ? { key } : {});
      expect([n, ck.formatVersion]).toEqual([n, n.includes('-keyed') ? 2 : 1]);
    }
  });
});
