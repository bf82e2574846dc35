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
