/**
 * The per-call fast paths of issue 9 item 5: a small `step` with nothing queued runs at once
 * on the JS thread (Learner.runNow) yet keeps the queue contract (pending until settled,
 * BusyError, call order, errors as rejections, the same results as the queued path); the
 * optimizer's unchanged-layout path still rejects anything its full checks reject; and the
 * binding's `setParams` equals `setParam` slot by slot, with typed argument errors.
 */
import * as bt from '../lib/index';
import type { NativeSession } from '../types/binding';

class DiagRNN extends bt.Module {
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

const B = 2;
const x = (i: number) => ({ data: Float64Array.from([Math.sin(i), Math.cos(i), 0.5 * Math.sin(2 * i), -0.3]), shape: [B, 2], dtype: 'float64' as const });
const y = (i: number) => ({ data: Float64Array.from([Math.sin(0.5 * i), Math.cos(0.3 * i)]), shape: [B, 1], dtype: 'float64' as const });
const make = (algo: 'D_RTRL' | 'BPTT') => bt.compile(new DiagRNN(), bt[algo], { inputShape: [2], batchSize: B, dtype: 'float64' });

describe.each(['D_RTRL', 'BPTT'] as const)('%s: synchronous step', (algo) => {
  test('pending until settled, BusyError, call order, rejections', async () => {
    const l = make(algo);
    const opt = new bt.optim.SGD({ lr: 0.01 });
    await l.step(x(0), y(0), { optimizer: opt }); // the first step takes the queued path
    const p = l.step(x(1), y(1), { optimizer: opt });
    expect(l.pending).toBe(1);
    expect(opt.stepCount).toBe(2); // it ran at once (the queued path would not have started yet)
    expect(() => l.params()).toThrow(bt.BusyError);
    const order: string[] = [];
    const xs = { data: x(2).data, shape: [1, B, 2], dtype: 'float64' as const };
    const ys = { data: y(2).data, shape: [1, B, 1], dtype: 'float64' as const };
    const later = [
      l.etraceGrad(xs, ys).then(() => order.push('grad')),
      l.step(x(3), y(3), { optimizer: opt }).then(() => order.push('step')),
    ];
    order.push('first:' + typeof (await p).loss);
    await Promise.all(later);
    expect(order).toEqual(['first:number', 'grad', 'step']);
    expect(l.pending).toBe(0);
    await expect(l.step(x(4), y(4), { optimizer: opt, bad: 1 } as never)).rejects.toBeInstanceOf(bt.ArgumentError);
    await expect(l.step({ data: new Float64Array(6), shape: [B, 3], dtype: 'float64' }, y(4), { optimizer: opt })).rejects.toBeInstanceOf(
      bt.ShapeError,
    );
    expect(l.pending).toBe(0);
    expect(opt.stepCount).toBe(3);
    opt.dispose();
    l.dispose();
  });

  test('the same results as the queued path (a step queued behind another call)', async () => {
    const run = async (queued: boolean) => {
      const l = make(algo);
      const opt = new bt.optim.Adam({ lr: 0.01, clipNorm: 1 });
      const seen: number[] = [];
      for (let i = 0; i < 40; i++) {
        // With a call in the queue, the step is queued (the asynchronous path).
        const gate = queued ? l.enqueue(() => undefined) : undefined;
        const r = await l.step(x(i), y(i), { optimizer: opt });
        await gate;
        seen.push(r.loss, r.gradNorm, ...Array.from(r.output!.data));
      }
      const w = l.params();
      opt.dispose();
      l.dispose();
      return { seen, w: Object.values(w).map((t) => Array.from(t.data)) };
    };
    expect(await run(false)).toEqual(await run(true));
  });
});

test('optimizer: a step with the bound layout still rejects what the full checks reject', () => {
  const opt = new bt.optim.SGD({ lr: 0.1 });
  const p = () => ({ a: { data: new Float32Array(2), shape: [2], dtype: 'float32' as const }, b: { data: new Float32Array(3), shape: [3], dtype: 'float32' as const } });
  const g = p();
  opt.step(p(), g);
  opt.step(p(), g); // the fast path
  expect(() => opt.step(p(), { ...g, a: { data: new Float32Array(3), shape: [3], dtype: 'float32' } })).toThrow(bt.ShapeError);
  expect(() => opt.step(p(), { a: g.a } as never)).toThrow(bt.ArgumentError);
  expect(() => opt.step(p(), { ...g, b: { data: new Float64Array(3), shape: [3], dtype: 'float64' } })).toThrow(bt.DTypeError);
  expect(() => opt.step(p(), { ...g, b: { data: new Float32Array(2), shape: [3], dtype: 'float32' } })).toThrow(bt.ShapeError);
  expect(opt.stepCount).toBe(2);
  opt.dispose();
});

test('binding: setParams equals setParam slot by slot; bad arguments are typed errors', () => {
  const l = make('BPTT');
  l.update(x(0));
  const entry = (l as unknown as { sessions: Map<string, { session: NativeSession }> }).sessions.get('')!;
  const s = entry.session;
  const n = s.numParams;
  const vals = Array.from({ length: n }, (_, i) => {
    const a = s.getParam(i).slice();
    for (let k = 0; k < a.length; k++) a[k] = 0.25 * (i + 1) + k;
    return a;
  });
  s.setParams(vals);
  for (let i = 0; i < n; i++) expect(Array.from(s.getParam(i))).toEqual(Array.from(vals[i]));
  const code = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
  expect(() => s.setParams(vals.slice(1))).toThrow(expect.objectContaining({ code }));
  expect(() => s.setParams(vals.map((v) => Float32Array.from(v)))).toThrow(TypeError);
  expect(() => s.setParams('x' as never)).toThrow(TypeError);
  l.dispose();
});
