// Child process of test/trace-isa.test.ts: runs models whose hidden groups have 1, 2, 3 and
// 5 states (the trace loops' S = 1, compile-time S = 2..4 and run-time S paths), with a
// dense and an element-wise ETP weight, under BPTT, D_RTRL and pp_prop, in float64 and
// float32, and prints every result's bytes as JSON, with the trace ISA this process used
// (info().cpuKernels.trace). The test runs it with BRAINTRACE_TRACE_ISA=portable, avx2,
// avx512 and unset, and compares the outputs byte for byte. Widths of 40 (B 5): the 16-wide
// AVX-512 loops run full vectors and an epilogue.
'use strict';
const bt = require('../..');
const { runAll, runMain } = require('./byte-runs');

const B = 5;
const IN = 5;
const H = 40;

/** A chain of `S` coupled states per neuron: one hidden group of width S. */
class Chain extends bt.Module {
  constructor(S) {
    super();
    this.S = S;
    this.w = new bt.ParamState(bt.init.kaimingNormal(), [IN, H]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.s = Array.from({ length: S }, () => new bt.HiddenState([H]));
  }
  update(x) {
    const old = this.s.map((s) => s.value);
    // s0' = tanh(x W + wd * s0 + 0.3 s_{S-1}); s_k' = 0.8 s_k + 0.5 tanh(s_{k-1}')
    let prev = bt.tanh(bt.add(bt.add(bt.matmul(x, this.w), bt.elementWise(this.wd, (y) => bt.mul(y, old[0]))), bt.mul(old[this.S - 1], 0.3)));
    this.s[0].value = prev;
    for (let k = 1; k < this.S; k++) {
      prev = bt.add(bt.mul(old[k], 0.8), bt.mul(bt.tanh(prev), 0.5));
      this.s[k].value = prev;
    }
    return bt.matmul(prev, this.ro.value);
  }
}

/** A leaky integrator with bias: one state per neuron (S = 1), a dense and a bias trace. */
class Leaky extends bt.Module {
  constructor() {
    super();
    this.w = new bt.ParamState(bt.init.kaimingNormal(), [IN, H]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [H]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [H, 2]);
    this.h = new bt.HiddenState([H]);
  }
  update(x) {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.tanh(bt.matmul(x, this.w, this.b)));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

async function main() {
  const models = [
    ['s1', () => new Leaky()],
    ['s2', () => new Chain(2)],
    ['s3', () => new Chain(3)],
    ['s5', () => new Chain(5)],
  ];
  const runs = await runAll(models, { B, IN, T: 5, runT: 3 });
  process.stdout.write(JSON.stringify({ isa: bt.info().cpuKernels.trace, runs }));
}

runMain(main);
