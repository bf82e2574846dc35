/**
 * Checkpoints: parameters, optimizer state, hidden states and eligibility
 * traces of a learner in one versioned, checksummed binary file, written
 * atomically. Layout (all integers little-endian):
 *
 * | offset        | size | content                                                   |
 * |---------------|------|-----------------------------------------------------------|
 * | 0             | 4    | magic `BTCK`                                              |
 * | 4             | 4    | u32 format version (1)                                    |
 * | 8             | 8    | u64 H, byte length of the header (a multiple of 8)        |
 * | 16            | 8    | u64 P, byte length of the payload                         |
 * | 24            | H    | header: UTF-8 JSON, padded with spaces                    |
 * | 24 + H        | P    | payload: the arrays, little-endian, each 8-byte aligned   |
 * | 24 + H + P    | 32   | SHA-256 of bytes [0, 24 + H + P)                           |
 * | 24 + H + P+32 | 32   | version 2 only: HMAC-SHA-256 of bytes [0, 24 + H + P)      |
 *
 * Version 1 is written without a key (integrity against accidents); version 2
 * when `save(path, { key })` is given a key (authenticity against someone who can
 * write the file but has no key). See docs/training.md for the header fields, the
 * limits ({@link CHECKPOINT_LIMITS}) and the threat model.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'crypto';
import * as fs from 'fs';
import { endianness } from 'os';
import * as path from 'path';

import type { Learner } from '../algorithms/learner';
import { BPTT } from '../algorithms/bptt';
import { IODimVjpAlgorithm, OnlineLearner, ParamDimVjpAlgorithm } from '../algorithms/online';
import type { VjpMethod } from '../executor/executor';
import { checkFiniteData } from '../runtime/control';
import { ArgumentError, BraintraceError, argumentError, checkOptionKeys, describeValue, fmtShape } from '../runtime/errors';
import { cloneHost, numel, type DType, type HostTensor } from '../tensor';
import { withLearnerLock, type OptimizerLike } from './common';

/** The magic bytes at the start of every checkpoint. */
export const CHECKPOINT_MAGIC = 'BTCK';
/** The format version this braintrace writes without a key (SHA-256 trailer). */
export const CHECKPOINT_VERSION = 1;
/** The format version written with a key: the version 1 layout plus an HMAC-SHA-256 trailer. */
export const CHECKPOINT_VERSION_AUTHENTICATED = 2;

/**
 * Limits that a checkpoint's JSON values (`meta` and the optimizer state) and its
 * header must respect, checked on save (ArgumentError) and on load (CheckpointError
 * 'corrupt') before anything deeper is read. Typed arrays are stored in the payload
 * and count as one leaf, so large numeric data belongs in typed arrays.
 */
export const CHECKPOINT_LIMITS = Object.freeze({
  /** Nesting depth of objects and arrays in one value (`{ a: [1] }` has depth 2). */
  maxDepth: 32,
  /** Object keys plus array elements, summed over one value. */
  maxEntries: 1_000_000,
  /** UTF-8 bytes of one value's JSON encoding (typed arrays excluded: they are in the payload). */
  maxValueBytes: 16 * 1024 * 1024,
  /** Bytes of the whole JSON header. */
  maxHeaderBytes: 64 * 1024 * 1024,
  /** Minimum length in bytes of an HMAC key (Buffer, Uint8Array or the UTF-8 of a string). */
  minKeyBytes: 16,
  /**
   * Age (ms, by modification time) after which a save removes another writer's
   * leftover temporary file of the same target even if a process with its pid runs.
   */
  staleTempAgeMs: 60 * 60 * 1000,
});

const PREAMBLE = 24;
const DIGEST = 32;
/** Header nesting allowed by the limits: the root object, a value of maxDepth, and a 2-level `$array` tag. */
const MAX_HEADER_DEPTH = CHECKPOINT_LIMITS.maxDepth + 3;
/** Keys that must never appear in decoded JSON (they could replace or shadow a prototype). */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
/** BigInts are stored as decimal text of at most this many digits (parsing longer text is slow). */
const MAX_BIGINT_DIGITS = 4096;
const BIGINT_TEXT = new RegExp(`^-?[0-9]{1,${MAX_BIGINT_DIGITS}}$`);
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** Why a checkpoint could not be read or restored. */
export type CheckpointErrorReason =
  | 'not-a-checkpoint'
  | 'unsupported-version'
  | 'truncated'
  | 'checksum-mismatch'
  | 'corrupt'
  | 'key-required'
  | 'authentication-failed'
  | 'unauthenticated'
  | 'mismatch';

/**
 * A checkpoint file could not be read ('not-a-checkpoint', 'unsupported-version',
 * 'truncated', 'checksum-mismatch', 'corrupt'), could not be authenticated
 * ('key-required': an authenticated file read without a key; 'authentication-failed':
 * the HMAC does not match the key, i.e. a wrong key or a file rewritten without the
 * key; 'unauthenticated': a key was given but the file carries no HMAC), or does not
 * fit the learner it is restored into ('mismatch': `field`, `expected` (the
 * learner's) and `actual` (the checkpoint's) say what differs). The message names
 * the file.
 */
export class CheckpointError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_CHECKPOINT';
  readonly reason: CheckpointErrorReason;
  /** The file (or '<memory>' for a buffer). */
  readonly file: string;
  /** For 'mismatch': the field that differs, e.g. 'dtype', 'params.w.shape'. */
  readonly field?: string;
  /** For 'mismatch': the learner's value. */
  declare readonly expected?: unknown;
  /** For 'mismatch': the checkpoint's value. */
  declare readonly actual?: unknown;
  constructor(
    reason: CheckpointErrorReason,
    file: string,
    message: string,
    detail: { field?: string; expected?: unknown; actual?: unknown } = {},
  ) {
    super(`checkpoint '${file}': ${message}`);
    this.reason = reason;
    this.file = file;
    if (detail.field !== undefined) {
      this.field = detail.field;
      this.expected = detail.expected;
      this.actual = detail.actual;
    }
  }
}

/** The algorithm names a checkpoint records. */
export type CheckpointAlgorithm = 'BPTT' | 'D_RTRL' | 'pp_prop';

/** A checkpoint in memory (what {@link loadCheckpoint} returns). */
export interface Checkpoint {
  /** Format version of the file it was read from (CHECKPOINT_VERSION for a new one). */
  formatVersion: number;
  /** The learner's algorithm. */
  algorithm: CheckpointAlgorithm;
  /** pp_prop's decay α (null for the others). */
  decay: number | null;
  /** The online learners' VJP method (null for BPTT). */
  vjpMethod: VjpMethod | null;
  dtype: DType;
  batchSize: number;
  inputShape: number[];
  outputShape: number[];
  /** Weights by path. */
  params: Record<string, HostTensor>;
  /** Non-weight states by path, each (B, ...). */
  states: Record<string, HostTensor>;
  /** Eligibility traces by name (online learners), null for BPTT. */
  traces: Record<string, HostTensor> | null;
  /** Trace steps (pp_prop's bias-correction counter), null for BPTT. */
  traceSteps: number | null;
  /** The optimizer's state() (typed arrays restored), null when saved without one. */
  optimizer: unknown;
  /** User data given to saveCheckpoint (JSON plus typed arrays), null when none. */
  meta: unknown;
  /** Where it was read from ('<memory>' when not from a file). */
  source: string;
}

/**
 * An HMAC-SHA-256 key: a Buffer / Uint8Array of at least 16 bytes, or a string
 * whose UTF-8 encoding has at least 16 bytes.
 */
export type CheckpointKey = Uint8Array | string;

/** Options of {@link saveCheckpoint} and {@link captureCheckpoint}. */
export interface SaveCheckpointOptions {
  /** Saves this optimizer's state too. */
  optimizer?: OptimizerLike;
  /**
   * User data stored with the checkpoint: JSON values and typed arrays, within
   * {@link CHECKPOINT_LIMITS}; keys `__proto__`, `constructor` and `prototype` are refused.
   */
  meta?: unknown;
  /** Writes an authenticated (version 2) file: HMAC-SHA-256 with this key. See docs/training.md. */
  key?: CheckpointKey;
  /**
   * Testing hooks (not for normal use): `beforeRename(tmpPath)` runs after the
   * temporary file is written and fsynced, before it replaces the target; a
   * throw simulates a crash at that point (the temporary file is removed and
   * the target left untouched).
   * @internal
   */
  hooks?: { beforeRename?: (tmpPath: string) => void | Promise<void> };
}

/** Options of {@link restoreCheckpoint}. */
export interface RestoreCheckpointOptions {
  /** Loads the checkpoint's optimizer state into this optimizer (the checkpoint must have one). */
  optimizer?: OptimizerLike;
}

/** Options of {@link loadCheckpoint}, {@link readCheckpoint}, {@link decodeCheckpoint} and `bt.load`. */
export interface ReadCheckpointOptions {
  /**
   * Requires an authenticated (version 2) file whose HMAC-SHA-256 matches this key.
   * Without it, an authenticated file is refused ('key-required').
   */
  key?: CheckpointKey;
}

/** Options of `learner.load(pathOrCheckpoint, options)`: restore options, plus `key` with a path. */
export interface LoadCheckpointOptions extends RestoreCheckpointOptions, ReadCheckpointOptions {}

/** Options of {@link encodeCheckpoint}. */
export interface EncodeCheckpointOptions {
  /** Encodes an authenticated (version 2) file with this HMAC-SHA-256 key. */
  key?: CheckpointKey;
}

const SAVE_KEYS = ['optimizer', 'meta', 'key', 'hooks'] as const;
const READ_KEYS = ['key'] as const;
const RESTORE_KEYS = ['optimizer'] as const;

/**
 * Validates an HMAC key option and returns its bytes (null when absent).
 * @throws ArgumentError naming `argument` for anything but a Uint8Array or string of at least 16 bytes.
 */
function keyBytes(key: unknown, argument: string): Buffer | null {
  if (key === undefined) return null;
  const expected = `a Buffer/Uint8Array or string of at least ${CHECKPOINT_LIMITS.minKeyBytes} bytes`;
  let bytes: Buffer;
  if (typeof key === 'string') bytes = Buffer.from(key, 'utf8');
  else if (key instanceof Uint8Array) bytes = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  else throw argumentError(argument, expected, describeValue(key));
  if (bytes.length < CHECKPOINT_LIMITS.minKeyBytes) {
    throw argumentError(argument, expected, `${typeof key === 'string' ? 'a string' : describeValue(key)} of ${bytes.length} bytes`);
  }
  return Buffer.from(bytes); // a copy: later changes to the caller's array do not change the key
}

// ---------------------------------------------------------------------- capture

function algorithmOf(learner: Learner): { algorithm: CheckpointAlgorithm; decay: number | null; vjpMethod: VjpMethod | null } {
  if (learner instanceof IODimVjpAlgorithm) return { algorithm: 'pp_prop', decay: learner.decay, vjpMethod: learner.vjpMethod };
  if (learner instanceof ParamDimVjpAlgorithm) return { algorithm: 'D_RTRL', decay: null, vjpMethod: learner.vjpMethod };
  if (learner instanceof BPTT) return { algorithm: 'BPTT', decay: null, vjpMethod: null };
  throw new ArgumentError(
    `checkpoint: unsupported learner ${learner?.constructor?.name ?? String(learner)}; expected a BPTT, D_RTRL or pp_prop learner`,
  );
}

/**
 * A consistent in-memory snapshot of `learner` (weights, states, traces and
 * the optimizer's state), taken synchronously. Arrays are copies.
 */
export function captureCheckpoint(learner: Learner, options: SaveCheckpointOptions = {}): Checkpoint {
  checkOptionKeys('captureCheckpoint: options', options, SAVE_KEYS);
  const algo = algorithmOf(learner);
  const params = learner.params();
  const states = learner.states();
  let traces: Record<string, HostTensor> | null = null;
  let traceSteps: number | null = null;
  if (learner instanceof OnlineLearner) {
    traces = learner.traces();
    traceSteps = learner.traceSteps();
  }
  return {
    formatVersion: CHECKPOINT_VERSION,
    ...algo,
    dtype: learner.dtype,
    batchSize: learner.batchSize,
    inputShape: learner.inputShape.slice(),
    outputShape: learner.outputShape.slice(),
    params,
    states,
    traces,
    traceSteps,
    optimizer: options.optimizer === undefined ? null : options.optimizer.state(),
    meta: options.meta ?? null,
    source: '<memory>',
  };
}

// ---------------------------------------------------------------------- encoding

type ArrayKind = 'float32' | 'float64' | 'int8' | 'uint8' | 'uint8c' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'bigint64' | 'biguint64';
type AnyTyped =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

const KINDS: Record<ArrayKind, { ctor: { new (b: ArrayBuffer): AnyTyped; BYTES_PER_ELEMENT: number } }> = {
  float32: { ctor: Float32Array },
  float64: { ctor: Float64Array },
  int8: { ctor: Int8Array },
  uint8: { ctor: Uint8Array },
  uint8c: { ctor: Uint8ClampedArray },
  int16: { ctor: Int16Array },
  uint16: { ctor: Uint16Array },
  int32: { ctor: Int32Array },
  uint32: { ctor: Uint32Array },
  bigint64: { ctor: BigInt64Array },
  biguint64: { ctor: BigUint64Array },
};

function kindOf(a: ArrayBufferView): ArrayKind | null {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8ClampedArray) return 'uint8c';
  if (a instanceof Uint8Array) return 'uint8'; // Buffer included
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof BigInt64Array) return 'bigint64';
  if (a instanceof BigUint64Array) return 'biguint64';
  return null;
}

/** Collects arrays into the payload (8-byte aligned) while the header is built. */
class PayloadWriter {
  readonly parts: { offset: number; bytes: Uint8Array; width: number }[] = [];
  size = 0;
  add(a: ArrayBufferView & { BYTES_PER_ELEMENT?: number }): number {
    const offset = this.size;
    // Copy now: the snapshot must not change if the caller mutates its arrays later.
    const bytes = new Uint8Array(a.byteLength);
    bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this.parts.push({ offset, bytes, width: a.BYTES_PER_ELEMENT ?? 1 });
    this.size = offset + Math.ceil(a.byteLength / 8) * 8;
    return offset;
  }
}

function swapInPlace(b: Buffer, width: number): void {
  if (width === 2) b.swap16();
  else if (width === 4) b.swap32();
  else if (width === 8) b.swap64();
}

/** A node of the iterative walk of {@link checkValueLimits} (parents give the path for messages). */
interface WalkFrame {
  v: unknown;
  depth: number;
  parent: WalkFrame | null;
  key: string | number;
}

function framePath(f: WalkFrame, root: string): string {
  const parts: string[] = [];
  for (let g: WalkFrame | null = f; g !== null && g.parent !== null; g = g.parent) {
    parts.push(typeof g.key === 'number' ? `[${g.key}]` : `.${g.key}`);
  }
  return root + parts.reverse().join('');
}

/**
 * Checks a JSON-like value to be saved against {@link CHECKPOINT_LIMITS} (depth,
 * entries), forbidden keys and cycles, without recursion (so a value nested a million
 * levels deep gives an ArgumentError, not a stack overflow).
 * @param where the value's name in messages ('meta', 'optimizer state').
 * @param argument the option it came from ('saveCheckpoint: options.meta').
 */
function checkValueLimits(v: unknown, where: string, argument: string): void {
  const L = CHECKPOINT_LIMITS;
  const onPath = new Set<object>();
  const stack: (WalkFrame | { exit: object })[] = [{ v, depth: 0, parent: null, key: '' }];
  let maxDepth = 0;
  let entries = 0;
  while (stack.length > 0) {
    const f = stack.pop()!;
    if ('exit' in f) {
      onPath.delete(f.exit);
      continue;
    }
    const x = f.v;
    if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x)) continue;
    if (onPath.has(x)) {
      throw new ArgumentError(`saveCheckpoint: ${framePath(f, where)} is a circular reference`, { argument });
    }
    const depth = f.depth + 1;
    if (depth > maxDepth) maxDepth = depth;
    onPath.add(x);
    stack.push({ exit: x });
    // Counted before the children are pushed: a sparse `new Array(1e9)` must not fill the stack.
    const n = Array.isArray(x) ? x.length : Object.keys(x).length;
    entries += n;
    if (entries > L.maxEntries) {
      throw new ArgumentError(
        `saveCheckpoint: ${where} has at least ${entries} keys and array elements; the limit is ${L.maxEntries} (store long numeric arrays as typed arrays)`,
        { argument, expected: `<= ${L.maxEntries} entries`, actual: entries },
      );
    }
    if (Array.isArray(x)) {
      for (let i = x.length - 1; i >= 0; i--) stack.push({ v: x[i], depth, parent: f, key: i });
    } else {
      const keys = Object.keys(x);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i];
        if (FORBIDDEN_KEYS.has(k)) {
          throw new ArgumentError(
            `saveCheckpoint: ${framePath(f, where)} has the key '${k}', which a checkpoint refuses ('__proto__', 'constructor' and 'prototype' are not stored)`,
            { argument, expected: "no key '__proto__', 'constructor' or 'prototype'", actual: k },
          );
        }
        stack.push({ v: (x as Record<string, unknown>)[k], depth, parent: f, key: k });
      }
    }
  }
  if (maxDepth > L.maxDepth) {
    throw new ArgumentError(`saveCheckpoint: ${where} is nested ${maxDepth} levels deep; the limit is ${L.maxDepth}`, {
      argument,
      expected: `nesting depth <= ${L.maxDepth}`,
      actual: maxDepth,
    });
  }
}

/**
 * JSON encoding of optimizer state and meta: typed arrays go to the payload. Run
 * {@link checkValueLimits} first (it bounds the recursion depth and rules out cycles).
 */
function encodeValue(v: unknown, w: PayloadWriter, where: string): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $number: 'NaN' };
    if (v === Infinity) return { $number: 'Infinity' };
    if (v === -Infinity) return { $number: '-Infinity' };
    if (Object.is(v, -0)) return { $number: '-0' };
    return v;
  }
  if (typeof v === 'bigint') {
    const t = v.toString();
    if (!BIGINT_TEXT.test(t)) throw new ArgumentError(`saveCheckpoint: ${where} is a BigInt of ${t.length} digits; the limit is ${MAX_BIGINT_DIGITS}`);
    return { $bigint: t };
  }
  if (typeof v !== 'object') {
    throw new ArgumentError(`saveCheckpoint: ${where} holds a ${typeof v}, which a checkpoint cannot store`);
  }
  if (ArrayBuffer.isView(v)) {
    const kind = kindOf(v);
    if (kind === null) throw new ArgumentError(`saveCheckpoint: ${where} is a DataView; store a typed array instead`);
    const length = (v as AnyTyped).length;
    return { $array: { dtype: kind, offset: w.add(v), length } };
  }
  if (Array.isArray(v)) return v.map((x, i) => (x === undefined ? null : encodeValue(x, w, `${where}[${i}]`)));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    throw new ArgumentError(
      `saveCheckpoint: ${where} is a ${proto?.constructor?.name ?? 'non-plain object'}; only plain objects, arrays, numbers, strings, booleans, null and typed arrays are stored`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    out[k.startsWith('$') ? `$${k}` : k] = encodeValue(x, w, `${where}.${k}`);
  }
  return out;
}

/** Checks, then encodes one JSON value (meta or optimizer state), and checks its encoded size. */
function encodeJsonValue(v: unknown, w: PayloadWriter, where: string, argument: string): unknown {
  if (v === null || v === undefined) return null;
  checkValueLimits(v, where, argument);
  const enc = encodeValue(v, w, where);
  const bytes = Buffer.byteLength(JSON.stringify(enc), 'utf8');
  if (bytes > CHECKPOINT_LIMITS.maxValueBytes) {
    throw new ArgumentError(
      `saveCheckpoint: ${where} encodes to ${bytes} bytes of JSON; the limit is ${CHECKPOINT_LIMITS.maxValueBytes} (store numeric data as typed arrays)`,
      { argument, expected: `<= ${CHECKPOINT_LIMITS.maxValueBytes} bytes`, actual: bytes },
    );
  }
  return enc;
}

interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
}

function tensorEntries(what: string, rec: Record<string, HostTensor>, dtype: DType, w: PayloadWriter): TensorEntry[] {
  return Object.keys(rec).map((name) => {
    const t = rec[name];
    const want = dtype === 'float64' ? Float64Array : Float32Array;
    if (!(t.data instanceof want) || t.data.length !== numel(t.shape)) {
      throw new ArgumentError(`saveCheckpoint: ${what} '${name}' must be a ${dtype} tensor of shape ${fmtShape(t.shape)}`);
    }
    return { name, shape: t.shape.slice(), offset: w.add(t.data) };
  });
}

/**
 * Encodes a checkpoint into the bytes of a file (see the module comment for the
 * layout): version 1, or version 2 (authenticated) when `options.key` is given.
 * @throws ArgumentError for a bad key, unknown option, or a meta / optimizer state
 *   outside {@link CHECKPOINT_LIMITS}.
 */
export function encodeCheckpoint(ck: Checkpoint, options: EncodeCheckpointOptions = {}): Buffer {
  checkOptionKeys('encodeCheckpoint: options', options, READ_KEYS);
  const key = keyBytes(options.key, 'encodeCheckpoint: options.key');
  return encodeWithKey(ck, key, 'encodeCheckpoint: options');
}

function encodeWithKey(ck: Checkpoint, key: Buffer | null, argument: string): Buffer {
  const w = new PayloadWriter();
  const header = {
    algorithm: ck.algorithm,
    decay: ck.decay,
    vjpMethod: ck.vjpMethod,
    dtype: ck.dtype,
    batchSize: ck.batchSize,
    inputShape: ck.inputShape,
    outputShape: ck.outputShape,
    params: tensorEntries('param', ck.params, ck.dtype, w),
    states: tensorEntries('state', ck.states, ck.dtype, w),
    traces: ck.traces === null ? null : tensorEntries('trace', ck.traces, ck.dtype, w),
    traceSteps: ck.traceSteps,
    optimizer: encodeJsonValue(ck.optimizer, w, 'optimizer state', `${argument}.optimizer`),
    meta: encodeJsonValue(ck.meta, w, 'meta', `${argument}.meta`),
  };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const H = json.length;
  if (H > CHECKPOINT_LIMITS.maxHeaderBytes) {
    throw new ArgumentError(`saveCheckpoint: the header would have ${H} bytes; the limit is ${CHECKPOINT_LIMITS.maxHeaderBytes}`, {
      argument,
      expected: `<= ${CHECKPOINT_LIMITS.maxHeaderBytes} bytes`,
      actual: H,
    });
  }
  const P = w.size;
  const total = PREAMBLE + H + P + DIGEST * (key === null ? 1 : 2);
  const out = Buffer.alloc(total);
  out.write(CHECKPOINT_MAGIC, 0, 'latin1');
  out.writeUInt32LE(key === null ? CHECKPOINT_VERSION : CHECKPOINT_VERSION_AUTHENTICATED, 4);
  out.writeBigUInt64LE(BigInt(H), 8);
  out.writeBigUInt64LE(BigInt(P), 16);
  json.copy(out, PREAMBLE);
  const base = PREAMBLE + H;
  for (const p of w.parts) {
    out.set(p.bytes, base + p.offset);
    if (!LITTLE_ENDIAN_HOST) swapInPlace(out.subarray(base + p.offset, base + p.offset + p.bytes.length), p.width);
  }
  const body = out.subarray(0, base + P);
  createHash('sha256').update(body).digest().copy(out, base + P);
  if (key !== null) createHmac('sha256', key).update(body).digest().copy(out, base + P + DIGEST);
  return out;
}

// ---------------------------------------------------------------------- decoding

function corrupt(file: string, message: string): CheckpointError {
  return new CheckpointError('corrupt', file, message);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isShape(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isSafeInteger(d) && d >= 0);
}

class PayloadReader {
  constructor(
    private readonly payload: Buffer,
    private readonly file: string,
  ) {}
  read(kind: ArrayKind, offset: unknown, length: unknown, what: string): AnyTyped {
    // Own keys only: 'toString' or '__proto__' must not find Object.prototype's members.
    if (typeof kind !== 'string' || !Object.hasOwn(KINDS, kind)) {
      throw corrupt(this.file, `${what}: unknown array type ${JSON.stringify(kind)}`);
    }
    const k = KINDS[kind];
    const width = k.ctor.BYTES_PER_ELEMENT;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || (offset as number) < 0 || (length as number) < 0) {
      throw corrupt(this.file, `${what}: bad array offset/length ${String(offset)}/${String(length)}`);
    }
    const off = offset as number;
    const n = (length as number) * width;
    if (off % 8 !== 0 || off + n > this.payload.length) {
      throw corrupt(this.file, `${what}: array [${off}, ${off + n}) lies outside the payload of ${this.payload.length} bytes or is misaligned`);
    }
    const ab = new ArrayBuffer(n);
    const bytes = Buffer.from(ab);
    this.payload.copy(bytes, 0, off, off + n);
    if (!LITTLE_ENDIAN_HOST) swapInPlace(bytes, width);
    return new k.ctor(ab);
  }
}

/** Limits bookkeeping of one decoded value (see {@link decodeJsonValue}). */
interface DecodeCount {
  maxDepth: number;
  entries: number;
}

/**
 * Decodes one tagged JSON value. Its recursion depth is bounded by the header's
 * nesting, which {@link headerDepth} checked before JSON.parse.
 */
function decodeValue(v: unknown, r: PayloadReader, where: string, file: string, depth: number, count: DecodeCount): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    count.maxDepth = Math.max(count.maxDepth, depth + 1);
    count.entries += v.length;
    return v.map((x, i) => decodeValue(x, r, `${where}[${i}]`, file, depth + 1, count));
  }
  const keys = Object.keys(v);
  const o = v as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === '$array') {
    const a = o.$array;
    if (!isRecord(a)) throw corrupt(file, `${where}: bad array reference`);
    return r.read(a.dtype as ArrayKind, a.offset, a.length, where);
  }
  if (keys.length === 1 && keys[0] === '$number') {
    const s = o.$number;
    if (s === 'NaN') return NaN;
    if (s === 'Infinity') return Infinity;
    if (s === '-Infinity') return -Infinity;
    if (s === '-0') return -0;
    throw corrupt(file, `${where}: bad number ${JSON.stringify(s)}`);
  }
  if (keys.length === 1 && keys[0] === '$bigint') {
    const t = o.$bigint;
    if (typeof t !== 'string' || !BIGINT_TEXT.test(t)) throw corrupt(file, `${where}: bad bigint ${JSON.stringify(t)}`);
    return BigInt(t);
  }
  count.maxDepth = Math.max(count.maxDepth, depth + 1);
  count.entries += keys.length;
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (k.startsWith('$') && !k.startsWith('$$')) throw corrupt(file, `${where}: unknown tag '${k}'`);
    const name = k.startsWith('$') ? k.slice(1) : k;
    if (FORBIDDEN_KEYS.has(name)) throw forbiddenKey(file, `${where}.${name}`, name);
    out[name] = decodeValue(o[k], r, `${where}.${name}`, file, depth + 1, count);
  }
  return out;
}

function forbiddenKey(file: string, where: string, key: string): CheckpointError {
  return new CheckpointError('corrupt', file, `${where}: the key '${key}' is refused ('__proto__', 'constructor' and 'prototype' never appear in a checkpoint)`, {
    field: where,
    expected: "no key '__proto__', 'constructor' or 'prototype'",
    actual: key,
  });
}

/** Decodes meta or the optimizer state of a header, enforcing {@link CHECKPOINT_LIMITS}. */
function decodeJsonValue(raw: unknown, r: PayloadReader, where: string, file: string): unknown {
  if (raw === null || raw === undefined) return null;
  const L = CHECKPOINT_LIMITS;
  const bytes = Buffer.byteLength(JSON.stringify(raw), 'utf8');
  if (bytes > L.maxValueBytes) {
    throw new CheckpointError('corrupt', file, `${where} has ${bytes} bytes of JSON; the limit is ${L.maxValueBytes}`, {
      field: where,
      expected: `<= ${L.maxValueBytes} bytes`,
      actual: bytes,
    });
  }
  const count: DecodeCount = { maxDepth: 0, entries: 0 };
  const out = decodeValue(raw, r, where, file, 0, count);
  if (count.maxDepth > L.maxDepth) {
    throw new CheckpointError('corrupt', file, `${where} is nested ${count.maxDepth} levels deep; the limit is ${L.maxDepth}`, {
      field: where,
      expected: `nesting depth <= ${L.maxDepth}`,
      actual: count.maxDepth,
    });
  }
  if (count.entries > L.maxEntries) {
    throw new CheckpointError('corrupt', file, `${where} has ${count.entries} keys and array elements; the limit is ${L.maxEntries}`, {
      field: where,
      expected: `<= ${L.maxEntries} entries`,
      actual: count.entries,
    });
  }
  return out;
}

/**
 * The maximum nesting of arrays and objects in JSON text, by a linear scan that
 * skips strings (no recursion, no allocation): bounds every recursive step after it.
 */
function headerDepth(text: Buffer): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

function readTensors(
  entries: unknown,
  what: string,
  dtype: DType,
  r: PayloadReader,
  file: string,
): Record<string, HostTensor> {
  if (!Array.isArray(entries)) throw corrupt(file, `header field '${what}' must be an array`);
  const out: Record<string, HostTensor> = {};
  entries.forEach((e, i) => {
    if (!isRecord(e) || typeof e.name !== 'string' || !isShape(e.shape) || Object.hasOwn(out, e.name)) {
      throw corrupt(file, `header ${what}[${i}] is not a { name, shape, offset } entry (or repeats a name)`);
    }
    if (FORBIDDEN_KEYS.has(e.name)) throw forbiddenKey(file, `${what}[${i}].name`, e.name);
    const data = r.read(dtype, e.offset, numel(e.shape), `${what} '${e.name}'`) as Float32Array | Float64Array;
    out[e.name] = { data, shape: e.shape.slice(), dtype };
  });
  return out;
}

/**
 * Decodes the bytes of a checkpoint file. Every size is checked before anything
 * is allocated or parsed: the section lengths against the buffer and
 * {@link CHECKPOINT_LIMITS}, then the SHA-256 (and, for version 2, the HMAC),
 * then the header's nesting depth, then each array against the payload.
 * @param source the file name used in error messages.
 * @param options `key`: require an authenticated file with this HMAC key.
 * @throws CheckpointError ('not-a-checkpoint' | 'unsupported-version' | 'truncated' |
 *   'checksum-mismatch' | 'corrupt' | 'key-required' | 'authentication-failed' | 'unauthenticated');
 *   ArgumentError for a bad option.
 */
export function decodeCheckpoint(buf: Uint8Array, source = '<memory>', options: ReadCheckpointOptions = {}): Checkpoint {
  checkOptionKeys('decodeCheckpoint: options', options, READ_KEYS);
  return decodeWithKey(buf, source, keyBytes(options.key, 'decodeCheckpoint: options.key'));
}

function decodeWithKey(buf: Uint8Array, source: string, key: Buffer | null): Checkpoint {
  if (!(buf instanceof Uint8Array)) throw argumentError('decodeCheckpoint: bytes', 'a Buffer or Uint8Array', describeValue(buf));
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = Buffer.from(CHECKPOINT_MAGIC, 'latin1');
  if (b.length < magic.length) {
    if (magic.subarray(0, b.length).equals(b)) {
      throw new CheckpointError('truncated', source, `the file has only ${b.length} bytes (no complete header)`);
    }
    throw new CheckpointError('not-a-checkpoint', source, `not a braintrace checkpoint (no '${CHECKPOINT_MAGIC}' magic)`);
  }
  if (!b.subarray(0, 4).equals(magic)) {
    throw new CheckpointError(
      'not-a-checkpoint',
      source,
      `not a braintrace checkpoint: starts with ${JSON.stringify(b.subarray(0, 4).toString('latin1'))}, expected '${CHECKPOINT_MAGIC}'`,
    );
  }
  if (b.length < 8) throw new CheckpointError('truncated', source, `the file ends inside the preamble (${b.length} bytes)`);
  const version = b.readUInt32LE(4);
  if (version !== CHECKPOINT_VERSION && version !== CHECKPOINT_VERSION_AUTHENTICATED) {
    throw new CheckpointError(
      'unsupported-version',
      source,
      `format version ${version} is not supported; this braintrace reads version ${CHECKPOINT_VERSION} (checksummed) and version ${CHECKPOINT_VERSION_AUTHENTICATED} (authenticated)` +
        (version > CHECKPOINT_VERSION_AUTHENTICATED ? ' (the file was written by a newer braintrace)' : ''),
    );
  }
  if (b.length < PREAMBLE) throw new CheckpointError('truncated', source, `the file ends inside the preamble (${b.length} bytes)`);
  const H64 = b.readBigUInt64LE(8);
  const P64 = b.readBigUInt64LE(16);
  if (H64 > BigInt(Number.MAX_SAFE_INTEGER) || P64 > BigInt(Number.MAX_SAFE_INTEGER) || H64 % 8n !== 0n) {
    throw corrupt(source, `bad section lengths (header ${H64}, payload ${P64})`);
  }
  const H = Number(H64);
  const P = Number(P64);
  if (H > CHECKPOINT_LIMITS.maxHeaderBytes) {
    throw new CheckpointError('corrupt', source, `the header announces ${H} bytes; the limit is ${CHECKPOINT_LIMITS.maxHeaderBytes}`, {
      field: 'header',
      expected: `<= ${CHECKPOINT_LIMITS.maxHeaderBytes} bytes`,
      actual: H,
    });
  }
  const authenticated = version === CHECKPOINT_VERSION_AUTHENTICATED;
  const trailer = DIGEST * (authenticated ? 2 : 1);
  const expected = PREAMBLE + H + P + trailer;
  if (b.length < expected) {
    throw new CheckpointError('truncated', source, `the file has ${b.length} bytes, its preamble announces ${expected}`);
  }
  if (b.length > expected) {
    throw corrupt(source, `${b.length - expected} unexpected bytes after the checksum (the file should have ${expected})`);
  }
  const end = PREAMBLE + H + P;
  const body = b.subarray(0, end);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(b.subarray(end, end + DIGEST))) {
    throw new CheckpointError('checksum-mismatch', source, 'SHA-256 checksum mismatch: the file is damaged');
  }
  if (authenticated && key === null) {
    throw new CheckpointError('key-required', source, 'the checkpoint is authenticated (HMAC-SHA-256): pass the key, e.g. load(path, { key })');
  }
  if (!authenticated && key !== null) {
    throw new CheckpointError(
      'unauthenticated',
      source,
      `a key was given but the checkpoint carries no HMAC (format version ${version}): it was saved without a key, or someone rewrote it without one`,
    );
  }
  if (key !== null) {
    const mac = createHmac('sha256', key).update(body).digest();
    if (!timingSafeEqual(mac, b.subarray(end + DIGEST, end + 2 * DIGEST))) {
      throw new CheckpointError(
        'authentication-failed',
        source,
        'HMAC-SHA-256 mismatch: the file was not written with this key (a wrong key, or the file was rewritten without it)',
      );
    }
  }
  const text = b.subarray(PREAMBLE, PREAMBLE + H);
  const depth = headerDepth(text);
  if (depth > MAX_HEADER_DEPTH) {
    throw new CheckpointError(
      'corrupt',
      source,
      `the header nests ${depth} levels deep; the limit is ${MAX_HEADER_DEPTH} (meta and optimizer state at most ${CHECKPOINT_LIMITS.maxDepth})`,
      { field: 'header', expected: `nesting depth <= ${MAX_HEADER_DEPTH}`, actual: depth },
    );
  }
  let header: unknown;
  try {
    // The reviver sees every key of every object (depth bounded above, so its recursion is safe).
    header = JSON.parse(text.toString('utf8'), (k, v) => {
      if (FORBIDDEN_KEYS.has(k)) throw forbiddenKey(source, 'header', k);
      return v;
    });
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw corrupt(source, `the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(header)) throw corrupt(source, 'the header is not a JSON object');
  const h = header;
  const algorithm = h.algorithm;
  if (algorithm !== 'BPTT' && algorithm !== 'D_RTRL' && algorithm !== 'pp_prop') {
    throw corrupt(source, `unknown algorithm ${JSON.stringify(algorithm)}`);
  }
  const dtype = h.dtype;
  if (dtype !== 'float32' && dtype !== 'float64') throw corrupt(source, `bad dtype ${JSON.stringify(dtype)}`);
  if (!Number.isSafeInteger(h.batchSize) || (h.batchSize as number) < 1) throw corrupt(source, 'bad batchSize');
  if (!isShape(h.inputShape) || !isShape(h.outputShape)) throw corrupt(source, 'bad inputShape or outputShape');
  if (h.decay !== null && typeof h.decay !== 'number') throw corrupt(source, 'bad decay');
  if (h.vjpMethod !== null && h.vjpMethod !== 'single-step' && h.vjpMethod !== 'multi-step') throw corrupt(source, 'bad vjpMethod');
  if (h.traceSteps !== null && !(Number.isSafeInteger(h.traceSteps) && (h.traceSteps as number) >= 0)) {
    throw corrupt(source, 'bad traceSteps');
  }
  if ((h.traces === null) !== (algorithm === 'BPTT')) throw corrupt(source, `traces do not fit the algorithm ${algorithm}`);
  const r = new PayloadReader(b.subarray(PREAMBLE + H, end), source);
  return {
    formatVersion: version,
    algorithm,
    decay: h.decay as number | null,
    vjpMethod: h.vjpMethod as VjpMethod | null,
    dtype,
    batchSize: h.batchSize as number,
    inputShape: h.inputShape.slice(),
    outputShape: h.outputShape.slice(),
    params: readTensors(h.params, 'params', dtype, r, source),
    states: readTensors(h.states, 'states', dtype, r, source),
    traces: h.traces === null ? null : readTensors(h.traces, 'traces', dtype, r, source),
    traceSteps: h.traceSteps as number | null,
    optimizer: decodeJsonValue(h.optimizer, r, 'optimizer', source),
    meta: decodeJsonValue(h.meta, r, 'meta', source),
    source,
  };
}

// ---------------------------------------------------------------------- files

async function fsyncDirectory(dir: string): Promise<void> {
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(dir, 'r');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Platforms (Windows) and file systems without directory fsync.
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF' && code !== 'EACCES') {
      throw e;
    }
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Whether a process with this pid runs (EPERM: it runs under another user). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes leftover temporary files of earlier saves to `target` (a crash or
 * `kill -9` between writing and renaming leaves `${target}.tmp-<pid>-<hex>`):
 * those whose writer process is gone, and those older than
 * {@link CHECKPOINT_LIMITS}.staleTempAgeMs whatever their pid (the pid may have been
 * reused, or belong to another machine sharing the directory). A concurrent live
 * save's file (running pid, recent) is left alone. Best effort: a file that
 * vanishes meanwhile, or cannot be removed, is skipped.
 * @returns the paths removed.
 */
export async function cleanStaleTempFiles(target: string, now = Date.now()): Promise<string[]> {
  const dir = path.dirname(path.resolve(target));
  const pattern = new RegExp(`^${escapeRegExp(path.basename(target))}\\.tmp-(\\d+)-[0-9a-f]+$`);
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return []; // a missing directory: the save itself reports it
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (m === null) continue;
    const file = path.join(dir, name);
    try {
      const st = await fs.promises.lstat(file);
      if (!st.isFile()) continue;
      const old = now - st.mtimeMs > CHECKPOINT_LIMITS.staleTempAgeMs;
      const pid = Number(m[1]);
      if (!old && Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) continue;
      await fs.promises.unlink(file);
      removed.push(file);
    } catch {
      // Removed by someone else meanwhile, or not ours to remove.
    }
  }
  return removed;
}

/**
 * Writes `data` to `target` atomically: a temporary file
 * `${target}.tmp-<pid>-<random>` in the same directory, fsynced, renamed over
 * the target, then the directory fsynced (where the platform allows). Leftover
 * temporary files of crashed earlier saves to the same target are removed first
 * (see {@link cleanStaleTempFiles}). On failure the temporary file is removed
 * and the target is untouched.
 */
export async function writeFileAtomic(
  target: string,
  data: Uint8Array,
  hooks: SaveCheckpointOptions['hooks'] = {},
): Promise<void> {
  await cleanStaleTempFiles(target);
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: fs.promises.FileHandle | undefined = await fs.promises.open(tmp, 'wx', 0o666);
  try {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off, off);
      if (bytesWritten <= 0) throw new Error(`saveCheckpoint: short write to ${tmp}`);
      off += bytesWritten;
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    if (hooks.beforeRename !== undefined) await hooks.beforeRename(tmp);
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDirectory(path.dirname(path.resolve(target)));
}

/**
 * Saves `learner` (weights, states, traces and trace steps, and the optimizer's
 * state when given) to `file`, atomically: a crash mid-write leaves the previous
 * file in place. The snapshot is taken when no other locked training call
 * (fit chunk, streamStep) is running on the learner, so it is consistent.
 * With `options.key` the file is authenticated (format version 2, HMAC-SHA-256).
 * @throws ArgumentError for a bad path, unknown option, bad key, or a meta /
 *   optimizer state outside {@link CHECKPOINT_LIMITS}; I/O errors as thrown by fs.
 */
export async function saveCheckpoint(learner: Learner, file: string, options: SaveCheckpointOptions = {}): Promise<void> {
  if (typeof file !== 'string' || file === '') throw argumentError('saveCheckpoint: path', 'a non-empty string', describeValue(file));
  checkOptionKeys('saveCheckpoint: options', options, SAVE_KEYS);
  const key = keyBytes(options.key, 'saveCheckpoint: options.key');
  const bytes = await withLearnerLock(learner, () => encodeWithKey(captureCheckpoint(learner, options), key, 'saveCheckpoint: options'));
  await writeFileAtomic(file, bytes, options.hooks);
}

function checkReadArgs(what: string, file: unknown, options: ReadCheckpointOptions): Buffer | null {
  if (typeof file !== 'string' || file === '') throw argumentError(`${what}: path`, 'a non-empty string', describeValue(file));
  checkOptionKeys(`${what}: options`, options, READ_KEYS);
  return keyBytes(options.key, `${what}: options.key`);
}

/**
 * Reads and verifies a checkpoint file (synchronously).
 * @param options `key`: require an authenticated file with this HMAC key.
 * @throws CheckpointError naming the file; ArgumentError for bad arguments;
 *   I/O errors (ENOENT, ...) as thrown by fs.
 */
export function loadCheckpoint(file: string, options: ReadCheckpointOptions = {}): Checkpoint {
  const key = checkReadArgs('loadCheckpoint', file, options);
  return decodeWithKey(fs.readFileSync(file), file, key);
}

/** {@link loadCheckpoint} without blocking the event loop while reading. */
export async function readCheckpoint(file: string, options: ReadCheckpointOptions = {}): Promise<Checkpoint> {
  const key = checkReadArgs('readCheckpoint', file, options);
  return decodeWithKey(await fs.promises.readFile(file), file, key);
}

// ---------------------------------------------------------------------- restore

function cloneAll(rec: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(rec)) out[k] = cloneHost(t);
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function mismatch(ck: Checkpoint, field: string, expected: unknown, actual: unknown, show = JSON.stringify): CheckpointError {
  return new CheckpointError(
    'mismatch',
    ck.source,
    `does not fit the learner: ${field} is ${show(actual)} in the checkpoint, the learner has ${show(expected)}`,
    { field, expected, actual },
  );
}

function checkTensors(ck: Checkpoint, what: string, learner: Record<string, HostTensor>, saved: Record<string, HostTensor>): void {
  const lk = Object.keys(learner).sort();
  const sk = Object.keys(saved).sort();
  if (lk.length !== sk.length || lk.some((k, i) => k !== sk[i])) throw mismatch(ck, what, lk, sk);
  for (const k of lk) {
    if (!sameShape(learner[k].shape, saved[k].shape)) {
      throw mismatch(ck, `${what}.${k}.shape`, learner[k].shape, saved[k].shape, (s) => fmtShape(s as number[]));
    }
    if (saved[k].dtype !== learner[k].dtype) throw mismatch(ck, `${what}.${k}.dtype`, learner[k].dtype, saved[k].dtype);
  }
}

/**
 * Restores a checkpoint into `learner` (and the optimizer state into
 * `options.optimizer`). Everything is checked first: algorithm (and pp_prop's
 * decay, the VJP method), dtype, batch size, input and output shapes, weight,
 * state and trace names and shapes; a difference throws CheckpointError
 * 'mismatch' naming the field, and nothing is changed. Then: the optimizer
 * state, the weights, the states, the traces and the trace step counter.
 * Training then continues exactly as it would have from the saved point.
 */
export function restoreCheckpoint(learner: Learner, ck: Checkpoint, options: RestoreCheckpointOptions = {}): void {
  checkOptionKeys('restoreCheckpoint: options', options, RESTORE_KEYS);
  if (typeof ck !== 'object' || ck === null || typeof ck.params !== 'object') {
    throw new ArgumentError(`restoreCheckpoint: expected a Checkpoint (from loadCheckpoint); got ${String(ck)}`);
  }
  const algo = algorithmOf(learner);
  if (algo.algorithm !== ck.algorithm) throw mismatch(ck, 'algorithm', algo.algorithm, ck.algorithm);
  if (algo.decay !== ck.decay) throw mismatch(ck, 'decay', algo.decay, ck.decay);
  if (algo.vjpMethod !== ck.vjpMethod) throw mismatch(ck, 'vjpMethod', algo.vjpMethod, ck.vjpMethod);
  if (learner.dtype !== ck.dtype) throw mismatch(ck, 'dtype', learner.dtype, ck.dtype);
  if (learner.batchSize !== ck.batchSize) throw mismatch(ck, 'batchSize', learner.batchSize, ck.batchSize);
  const fmt = (s: unknown): string => fmtShape(s as number[]);
  if (!sameShape(learner.inputShape, ck.inputShape)) throw mismatch(ck, 'inputShape', learner.inputShape.slice(), ck.inputShape, fmt);
  if (!sameShape(learner.outputShape, ck.outputShape)) throw mismatch(ck, 'outputShape', learner.outputShape.slice(), ck.outputShape, fmt);
  checkTensors(ck, 'params', learner.params(), ck.params);
  checkTensors(ck, 'states', learner.states(), ck.states);
  const online = learner instanceof OnlineLearner ? learner : null;
  if (online !== null) {
    if (ck.traces === null || ck.traceSteps === null) throw mismatch(ck, 'traces', 'traces', null);
    checkTensors(ck, 'traces', online.traces(), ck.traces);
  }
  // Non-finite weights, states or traces (learner policy nonFinite != 'allow'): refused before
  // anything (the optimizer state included) is changed; setParams / setStates / setTraces
  // would refuse them too, but only after the optimizer state was restored.
  if (learner.nonFinite !== 'allow') {
    const groups: [string, Record<string, { data: unknown }> | null][] = [
      ['params', ck.params],
      ['states', ck.states],
      ['traces', online !== null ? ck.traces : null],
    ];
    for (const [kind, rec] of groups) {
      if (rec === null) continue;
      for (const [name, t] of Object.entries(rec)) {
        const d = t.data;
        if (d instanceof Float32Array || d instanceof Float64Array) checkFiniteData('restoreCheckpoint', `${kind}.${name}`, d);
      }
    }
  }
  const opt = options.optimizer;
  if (opt !== undefined) {
    if (ck.optimizer === null || ck.optimizer === undefined) {
      throw mismatch(ck, 'optimizer', 'an optimizer state', null, String);
    }
    const have = (opt.state() as { kind?: unknown } | null)?.kind;
    const saved = (ck.optimizer as { kind?: unknown } | null)?.kind;
    if (typeof have === 'string' && typeof saved === 'string' && have !== saved) {
      throw mismatch(ck, 'optimizer.kind', have, saved);
    }
    // Copies, so that neither side aliases the other's arrays (the checkpoint can be restored again).
    opt.loadState(structuredClone(ck.optimizer));
  }
  learner.setParams(cloneAll(ck.params));
  learner.setStates(cloneAll(ck.states));
  if (online !== null) online.setTraces(cloneAll(ck.traces!), ck.traceSteps!);
}

/**
 * `learner.load(pathOrCheckpoint, { optimizer?, key? })`: reads (with `key`, an
 * authenticated file) and restores. `key` only applies to a path: a Checkpoint
 * object was verified when it was read.
 */
export async function loadIntoLearner(learner: Learner, checkpoint: string | Checkpoint, options: LoadCheckpointOptions = {}): Promise<void> {
  checkOptionKeys('load: options', options, [...RESTORE_KEYS, ...READ_KEYS]);
  const { key, ...restore } = options;
  if (typeof checkpoint !== 'string' && key !== undefined) {
    throw new ArgumentError(
      'load: options.key applies when loading from a path; a Checkpoint object was verified when it was read (use bt.load(path, { key }))',
      { argument: 'load: options.key', expected: 'a path as the first argument', actual: 'a Checkpoint object' },
    );
  }
  const ck = typeof checkpoint === 'string' ? await readCheckpoint(checkpoint, key === undefined ? {} : { key }) : checkpoint;
  restoreCheckpoint(learner, ck, restore);
}
