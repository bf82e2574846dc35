// Seeded pseudo-random numbers for the examples' data (deterministic per seed).
'use strict';

/** mulberry32: a small 32-bit PRNG; returns a function giving uniforms in [0, 1). */
function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded generator with uniform, normal, integer and Bernoulli draws. */
class Rng {
  constructor(seed) {
    this.u = mulberry32(seed);
    this.spare = null;
  }
  uniform(low = 0, high = 1) {
    return low + (high - low) * this.u();
  }
  /** Standard normal (Box-Muller). */
  normal(mean = 0, std = 1) {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u1 = this.u();
    while (u1 <= 1e-12) u1 = this.u();
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * this.u();
    this.spare = r * Math.sin(th);
    return mean + std * r * Math.cos(th);
  }
  /** Integer in [0, n). */
  int(n) {
    return Math.floor(this.u() * n);
  }
  /** true with probability p. */
  bernoulli(p) {
    return this.u() < p;
  }
}

module.exports = { mulberry32, Rng };
