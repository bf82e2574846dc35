/**
 * A small, seedable, host-side pseudo-random number generator for parameter
 * and state initialisation.
 *
 * Generator: xoshiro128** (Blackman & Vigna, 2018) on four 32-bit words, run
 * with `Math.imul` (no BigInt in the hot loop). Streams are seeded from a
 * `(seed, key)` pair: the key string is hashed with 64-bit FNV-1a, mixed with
 * the seed through splitmix64 (BigInt, only at seeding), and the 128-bit
 * state is taken from two further splitmix64 outputs. A parameter's initial
 * value therefore depends only on the seed and its path, never on the order
 * in which parameters are created or initialised.
 *
 * Normals use the Box–Muller transform (both values of a pair are used).
 */
import { ArgumentError } from '../runtime/errors';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 finaliser (Steele, Lea & Flood 2014), on BigInt. */
function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** 64-bit FNV-1a over the UTF-16 code units of `s`. */
function fnv1a64(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & MASK64;
  }
  return h;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Validates a seed: a safe non-negative integer. */
function checkSeed(seed: unknown, what: string): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw new ArgumentError(`${what}: seed must be a non-negative safe integer; got ${String(seed)}`);
  }
  return seed;
}

/**
 * A seedable random stream (xoshiro128**).
 *
 * `new Rng(seed, key)` gives a stream that depends only on `(seed, key)`;
 * `rng.derive(key)` gives an independent child stream that depends only on
 * the parent's `(seed, key)` and the child key (not on how much of the parent
 * was consumed).
 */
export class Rng {
  /** The seed this stream (or its root) was created with. */
  readonly seed: number;
  /** The key path of this stream ('' for a root stream, 'a/b' for derived ones). */
  readonly key: string;
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /**
   * @param seed non-negative safe integer (default 0).
   * @param key  stream name, e.g. a parameter path ('rnn.w'); default ''.
   */
  constructor(seed = 0, key = '') {
    this.seed = checkSeed(seed, 'Rng');
    if (typeof key !== 'string') throw new ArgumentError(`Rng: key must be a string; got ${typeof key}`);
    this.key = key;
    const a = splitmix64(BigInt(seed));
    const b = splitmix64(a ^ fnv1a64(key));
    const c = splitmix64(b);
    const words: number[] = [Number(b & 0xffffffffn), Number(b >> 32n), Number(c & 0xffffffffn), Number(c >> 32n)];
    if (!words.some((w) => w !== 0)) words[0] = 1; // the all-zero state is a fixed point
    [this.s0, this.s1, this.s2, this.s3] = words.map((w) => w | 0);
  }

  /** An independent stream for `(this.seed, this.key + '/' + key)`. */
  derive(key: string): Rng {
    return new Rng(this.seed, this.key === '' ? key : `${this.key}/${key}`);
  }

  /** Next uniform 32-bit unsigned integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Next uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform double in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** Standard normal N(0, 1) sample (Box–Muller; pairs are cached). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.next(); // (0, 1]: log is finite
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fills `out` with uniform samples in [low, high) and returns it. */
  fillUniform<T extends Float32Array | Float64Array>(out: T, low = 0, high = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(low, high);
    return out;
  }

  /** Fills `out` with normal samples N(mean, std²) and returns it. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}
