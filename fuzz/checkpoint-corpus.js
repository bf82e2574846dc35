#!/usr/bin/env node
// Writes the seed corpus of the checkpoint fuzzer: real small checkpoints of each
// learner configuration of fuzz/checkpoint-models.js, unkeyed (format version 1) and
// keyed (version 2, FUZZ_KEY), with optimizer state and meta exercising every tag
// ($array of each typed-array kind, $number, $bigint, '$'-escaped keys).
// Run: npm run build:ts && node fuzz/checkpoint-corpus.js   (rewrites the seeds it names; the
// fixture drtrl64-v1-fa2b2ca.btck, written by the code before issue 8, is kept as it is)
'use strict';
const fs = require('fs');
const path = require('path');
const { bt, train, FUZZ_KEY, CONFIGS } = require('./checkpoint-models');

const out = path.join(__dirname, 'corpus', 'checkpoint');

async function main() {
  fs.mkdirSync(out, { recursive: true });
  const written = [];
  for (const [name, make] of Object.entries(CONFIGS)) {
    const learner = make();
    const optimizer = name === 'pp32' ? new bt.optim.Adam({ lr: 0.01 }) : new bt.optim.SGD({ lr: 0.05, momentum: 0.9 });
    // One real update so that the optimizer state and traces are not all zeros.
    const T = 2;
    const xs = { data: new Float64Array(T * learner.batchSize * 2).map((_, i) => Math.sin(i + 1)), shape: [T, learner.batchSize, 2], dtype: 'float64' };
    const ys = { data: new Float64Array(T * learner.batchSize).map((_, i) => Math.cos(i)), shape: [T, learner.batchSize, 1], dtype: 'float64' };
    await train.fit(learner, [{ xs, ys }], { optimizer, updateEvery: 'sequence' });
    const meta = {
      run: name,
      $dollar: 'escaped key',
      numbers: [0, -0, 1.5, NaN, Infinity, -Infinity, 2 ** 53],
      big: 12345678901234567890n,
      arrays: { f32: new Float32Array([1, 2]), i8: new Int8Array([-1]), u16: new Uint16Array([7, 8, 9]), b64: new BigInt64Array([-5n]) },
      nested: { a: [{ b: [true, false, null, 'x'] }] },
    };
    for (const keyed of [false, true]) {
      const file = path.join(out, `${name}${keyed ? '-keyed' : ''}.btck`);
      await learner.save(file, { optimizer, meta, ...(keyed ? { key: FUZZ_KEY } : {}) });
      written.push(file);
    }
    // A minimal one: no optimizer, no meta.
    const bare = path.join(out, `${name}-bare.btck`);
    await learner.save(bare);
    written.push(bare);
    learner.dispose();
  }
  for (const f of written) console.log(`${path.relative(process.cwd(), f)}  ${fs.statSync(f).size} bytes`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
