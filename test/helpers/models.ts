/**
 * Small models and assertion helpers shared by the test files.
 */
import * as bt from '../../lib/index';
import type { Tensor } from '../../lib/dsl/tensor';

/**
 * Diagonal-recurrence tanh RNN, h = tanh(x W + b + wd ⊙ h), with a linear readout:
 * non-linear, so D_RTRL and pp_prop traces differ, and diagonal, so D_RTRL is exact.
 * Weights `w` (inputs, hidden), `b` (hidden), `wd` (hidden), `ro` (hidden, outputs); state `h`.
 */
export class DiagRNN extends bt.Module {
  w: bt.ParamState;
  b: bt.ParamState;
  wd: bt.ParamState;
  ro: bt.ParamState;
  h: bt.HiddenState;
  constructor(inputs = 2, hidden = 4, outputs = 1) {
    super();
    this.w = new bt.ParamState(bt.init.xavierNormal(), [inputs, hidden]);
    this.b = new bt.ParamState(bt.init.normal({ std: 0.2 }), [hidden]);
    this.wd = new bt.ParamState(bt.init.uniform({ low: -0.9, high: 0.9 }), [hidden]);
    this.ro = new bt.ParamState(bt.init.xavierNormal(), [hidden, outputs]);
    this.h = new bt.HiddenState([hidden]);
  }
  update(x: Tensor): Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro.value);
  }
}

/** Runs `f`, expects it to throw an instance of `cls`, returns the error. */
export function thrown<E>(f: () => unknown, cls: new (...a: never[]) => E): E {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(cls);
  return err as E;
}

/** Awaits `p`, expects it to reject with an instance of `cls`, returns the error. */
export async function rejected<E>(p: Promise<unknown>, cls: new (...a: never[]) => E): Promise<E> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(cls);
  return err as E;
}

/**
 * The per-call tests' model (test/calls.test.ts, test/calls-step.test.ts): a diagonal tanh RNN,
 * 2 inputs, 4 hidden, 1 output, zero bias and recurrences drawn in [0.5, 0.95].
 */
export class CallsRNN extends bt.Module {
  w = new bt.ParamState(bt.init.xavierNormal(), [2, 4]);
  b = new bt.ParamState(bt.init.zeros(), [4]);
  wd = new bt.ParamState(bt.init.uniform({ low: 0.5, high: 0.95 }), [4]);
  ro = new bt.ParamState(bt.init.xavierNormal(), [4, 1]);
  h = new bt.HiddenState([4]);
  update(x: bt.Tensor): bt.Tensor {
    const h = this.h.value;
    this.h.value = bt.tanh(bt.add(bt.matmul(x, this.w, this.b), bt.elementWise(this.wd, (y) => bt.mul(y, h))));
    return bt.matmul(this.h.value, this.ro);
  }
}

/** Batch of the CallsRNN fixtures. */
export const CALLS_B = 2;
/** Input of step i for CallsRNN: float64, shape [CALLS_B, 2]. */
export const callsX = (i: number) => ({ data: Float64Array.from([Math.sin(i), Math.cos(i), 0.5 * Math.sin(2 * i), -0.3]), shape: [CALLS_B, 2], dtype: 'float64' as const });
/** Target of step i for CallsRNN: float64, shape [CALLS_B, 1]. */
export const callsY = (i: number) => ({ data: Float64Array.from([Math.sin(0.5 * i), Math.cos(0.3 * i)]), shape: [CALLS_B, 1], dtype: 'float64' as const });

/** h = 0.5 h + x W, out = h ro: linear, so a large input overflows where we choose (float64 tests). */
export class Lin extends bt.Module {
  w = new bt.ParamState(bt.init.constant(1), [1, 1]);
  ro = new bt.ParamState(bt.init.constant(0.01), [1, 1]);
  h = new bt.HiddenState([1]);
  update(x: bt.Tensor): bt.Tensor {
    this.h.value = bt.add(bt.mul(this.h.value, 0.5), bt.matmul(x, this.w));
    return bt.matmul(this.h.value, this.ro.value);
  }
}
