/**
 * The fourth per-call pass (issue 9): `runOnlineStep` (one online step with positional
 * arguments) equals `runOnline` with the same arguments, with the same typed errors and
 * names; `into.outputsOut` receives the outputs; an update consumes the gradients (no
 * `paramGrads`); `update` of an online learner returns a fresh output per call; the result
 * buffers a session keeps between calls do not leak one call's values into the next.
 */
import * as bt from '../lib/index';
import { CallsRNN, CALLS_B, callsX, callsY } from './helpers/models';
import type { NativeArray, NativeSession } from '../types/binding';

const B = CALLS_B;
const x = callsX;
const y = callsY;
const make = () => bt.compile(new CallsRNN(), bt.D_RTRL, { inputShape: [2], batchSize: B, dtype: 'float64', seed: 7 });

/** The learner's session with the loss (created by one queued etraceGrad) and the plain one (by update). */
async function sessionsOf(l: bt.Learner): Promise<{ loss: NativeSession; plain: NativeSession }> {
  await l.etraceGrad({ data: x(0).data, shape: [1, B, 2], dtype: 'float64' }, { data: y(0).data, shape: [1, B, 1], dtype: 'float64' });
  l.update(x(0));
  const all = [...(l as unknown as { sessions: Map<string, { session: NativeSession }> }).sessions.values()].map((e) => e.session);
  return { loss: all.find((s) => s.hasLoss)!, plain: all.find((s) => !s.hasLoss)! };
}

const code = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
const typeErr = (re: RegExp) => expect.objectContaining({ name: 'TypeError', code, message: expect.stringMatching(re) });
const rangeErr = (re: RegExp) => expect.objectContaining({ name: 'RangeError', code, message: expect.stringMatching(re) });

test('runOnlineStep equals runOnline: outputs, losses, gradients, states and traces over several steps', async () => {
  const a = make();
  const b = make();
  const sa = (await sessionsOf(a)).loss;
  const sb = (await sessionsOf(b)).loss;
  const n = sa.numParams;
  const gradsOut = Array.from({ length: n }, (_, i) => new Float64Array(sa.getParam(i).length));
  const lossesOut = new Float64Array(1);
  for (let t = 1; t <= 5; t++) {
    const inputs = [x(t).data, y(t).data];
    const ra = sa.runOnline({ steps: 1, inputs, computeGrads: true });
    const rb = sb.runOnlineStep(inputs[0], inputs[1], true, undefined, gradsOut, lossesOut, true, undefined);
    expect(rb.losses).toBeUndefined();
    expect(rb.paramGrads).toBeUndefined();
    expect(Array.from(lossesOut)).toEqual(Array.from(ra.losses));
    gradsOut.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(ra.paramGrads![i])));
    expect(rb.outputs!.map((o) => Array.from(o))).toEqual(ra.outputs.map((o) => Array.from(o)));
    // Fresh arrays in the result (the second call's lossless form): losses and gradients as runOnline's.
    const rc = sa.runOnline({ steps: 1, inputs, computeGrads: false });
    const rd = sb.runOnlineStep(inputs[0], inputs[1], false, undefined, undefined, undefined, false, undefined);
    expect(rd.outputs).toBeUndefined();
    expect(Array.from(rd.losses!)).toEqual(Array.from(rc.losses));
    expect(rd.paramGrads).toBeUndefined();
  }
  for (let i = 0; i < sa.numStates; i++) expect(Array.from(sb.getState(i))).toEqual(Array.from(sa.getState(i)));
  expect(sb.traceSteps()).toBe(sa.traceSteps());
  sa.traceInfo().forEach((_, i) => expect(Array.from(sb.getTrace(i))).toEqual(Array.from(sa.getTrace(i))));
  a.dispose();
  b.dispose();
});

test('runOnlineStep: the typed errors and names of runOnline, nothing run on a failure', async () => {
  const l = make();
  const { loss: s, plain } = await sessionsOf(l);
  const steps0 = s.traceSteps();
  const xd = x(1).data;
  const yd = y(1).data;
  const np = s.numParams;
  expect(() => s.runOnlineStep(new Float64Array(3), yd, true, undefined, undefined, undefined, true, undefined)).toThrow(rangeErr(/^inputs\[0\] must be a Float64Array of length 4/));
  expect(() => s.runOnlineStep(xd, new Float32Array(2) as never, true, undefined, undefined, undefined, true, undefined)).toThrow(typeErr(/^inputs\[1\] must be a Float64Array/));
  expect(() => s.runOnlineStep(xd, undefined, true, undefined, undefined, undefined, true, undefined)).toThrow(typeErr(/^inputs\[1\]/));
  expect(() => plain.runOnlineStep(xd, yd, false, undefined, undefined, undefined, true, undefined)).toThrow(rangeErr(/^inputs\[1\] must be undefined/));
  expect(() => s.runOnlineStep(xd, yd, 1 as never, undefined, undefined, undefined, true, undefined)).toThrow(typeErr(/^computeGrads must be a boolean/));
  expect(() => s.runOnlineStep(xd, yd, true, undefined, undefined, new Float64Array(2), true, undefined)).toThrow(rangeErr(/^into\.lossesOut must be a Float64Array of length 1/));
  expect(() => s.runOnlineStep(xd, yd, true, [new Float64Array(1)], undefined, undefined, true, undefined)).toThrow(rangeErr(/^into\.params must be an Array of length 4/));
  const gOk = Array.from({ length: np }, (_, i) => new Float64Array(s.getParam(i).length));
  expect(() => s.runOnlineStep(xd, yd, true, undefined, [...gOk.slice(0, 3), new Float64Array(99)], undefined, true, undefined)).toThrow(rangeErr(/^into\.gradsOut\[3\]/));
  expect(() => s.runOnlineStep(xd, yd, false, undefined, gOk, undefined, true, undefined)).toThrow(typeErr(/^into\.gradsOut needs computeGrads/));
  expect(() => s.runOnlineStep(xd, yd, true, undefined, undefined, undefined, true, [new Float64Array(99)])).toThrow(rangeErr(/^into\.outputsOut\[0\] must be a Float64Array of length 2/));
  expect(() => s.runOnlineStep(xd, yd, true, undefined, undefined, undefined, false, [new Float64Array(2)])).toThrow(typeErr(/^into\.outputsOut needs outputs: true/));
  expect(() => s.runOnlineStep(xd, yd, false, undefined, undefined, undefined, true, undefined, {} as never)).toThrow(typeErr(/^into\.update needs computeGrads/));
  expect(() => s.runOnlineStep(xd, yd, true, undefined, undefined, undefined, true, undefined, {} as never)).toThrow(typeErr(/^into\.update\.optimizer/));
  // The same messages through runOnline (the object form).
  expect(() => s.runOnline({ steps: 1, inputs: [new Float64Array(3), yd] })).toThrow(rangeErr(/^inputs\[0\] must be a Float64Array of length 4/));
  expect(() => s.runOnline({ steps: 1, inputs: [xd, yd] }, { outputsOut: [new Float64Array(99)] })).toThrow(rangeErr(/^into\.outputsOut\[0\] must be a Float64Array of length 2/));
  expect(() => s.runOnline({ steps: 1.5, inputs: [xd, yd] })).toThrow(rangeErr(/^steps must be an integer >= 1/));
  expect(() => s.runOnline({ steps: 1, inputs: [xd, yd], chunk: 0 })).toThrow(rangeErr(/^chunk must be an integer >= 1/));
  expect(s.traceSteps()).toBe(steps0); // nothing ran
  l.dispose();
});

test('runOnlineStep with an update: the fused step, gradients only into gradsOut', async () => {
  const l = make();
  const opt = new bt.optim.SGD({ lr: 0.01 });
  await l.step(x(0), y(0), { optimizer: opt, output: false }); // binds opt (the queued path)
  const { loss: s } = await sessionsOf(l);
  const { nativeObject } = await import('../lib/runtime/native');
  const native = nativeObject((opt as unknown as { native: object }).native);
  const slots = [1, 3, 0, 2]; // the optimizer's sorted paths b, ro, w, wd -> param slots (w, b, wd, ro)
  const params = slots.map((slot) => s.getParam(slot).slice() as NativeArray);
  const r = s.runOnlineStep(x(1).data, y(1).data, true, undefined, undefined, new Float64Array(1), false, undefined, native as never, params, slots, 0.01);
  expect(r.paramGrads).toBeUndefined(); // consumed by the update
  expect(r.skipped).toBe(false);
  expect(r.gradNorm).toBeGreaterThan(0);
  slots.forEach((slot, k) => expect(Array.from(s.getParam(slot))).toEqual(Array.from(params[k])));
  expect(() => s.runOnlineStep(x(2).data, y(2).data, true, undefined, undefined, undefined, false, undefined, native as never, params, [1, 1, 0, 2], 0.01)).toThrow(
    rangeErr(/^into\.update\.slots\[1\] repeats param slot 1/),
  );
  expect(() => s.runOnlineStep(x(2).data, y(2).data, true, undefined, undefined, undefined, false, undefined, native as never, params, slots, -1)).toThrow(
    rangeErr(/^into\.update\.lr must be a finite number >= 0/),
  );
  // stats: [gradNorm, skipped] there instead of in the result.
  const stats = new Float64Array([-1, -1]);
  const rs = s.runOnlineStep(x(4).data, y(4).data, true, undefined, undefined, undefined, false, undefined, native as never, params, slots, 0.01, undefined, undefined, stats);
  expect(rs.gradNorm).toBeUndefined();
  expect(rs.skipped).toBeUndefined();
  expect(stats[0]).toBeGreaterThan(0);
  expect(stats[1]).toBe(0);
  expect(() => s.runOnlineStep(x(5).data, y(5).data, true, undefined, undefined, undefined, false, undefined, native as never, params, slots, 0.01, undefined, undefined, new Float64Array(3))).toThrow(
    rangeErr(/^stats must be a Float64Array of length 2/),
  );
  // runOnline's object form: no paramGrads with an update either, gradsOut still receives them.
  const gradsOut = Array.from({ length: s.numParams }, (_, i) => new Float64Array(s.getParam(i).length)); // slot order
  const r2 = s.runOnline({ steps: 1, inputs: [x(3).data, y(3).data] }, { gradsOut, update: { optimizer: native as never, params, slots, lr: 0 } });
  expect(r2.paramGrads).toBeUndefined();
  expect(gradsOut.some((g) => g.some((v) => v !== 0))).toBe(true);
  opt.dispose();
  l.dispose();
});

test('into.outputsOut receives the outputs of runOnline (several steps), the result has none', async () => {
  const a = make();
  const b = make();
  const sa = (await sessionsOf(a)).plain;
  const sb = (await sessionsOf(b)).plain;
  const xs = Float64Array.from({ length: 3 * B * 2 }, (_, i) => Math.sin(i));
  const ra = sa.runOnline({ steps: 3, inputs: [xs], computeGrads: false });
  const out = [new Float64Array(3 * B)];
  const rb = sb.runOnline({ steps: 3, inputs: [xs], computeGrads: false }, { outputsOut: out });
  expect(rb.outputs).toBeUndefined();
  expect(Array.from(out[0])).toEqual(Array.from(ra.outputs[0]));
  expect(out[0].some((v) => v !== 0)).toBe(true);
  a.dispose();
  b.dispose();
});

test('online update: a fresh output per call, equal to the output of a learner without the fast paths', async () => {
  const l = make();
  const ref = make();
  const outs: Float64Array[] = [];
  for (let t = 0; t < 6; t++) {
    const o = l.update(x(t));
    expect(o.shape).toEqual([B, 1]);
    outs.push(o.data as Float64Array);
    o.shape.push(99); // the caller owns the result: mutating it changes nothing later
    (o.data as Float64Array).fill(NaN);
  }
  // Distinct arrays per call (a kept array handed out twice would fail this).
  expect(new Set(outs).size).toBe(outs.length);
  // The reference: the same steps through etraceEvolve (the queued path, fresh native arrays).
  const xs = { data: Float64Array.from(Array.from({ length: 6 }, (_, t) => Array.from(x(t).data)).flat()), shape: [6, B, 2], dtype: 'float64' as const };
  const want = await ref.etraceEvolve(xs);
  const again = make();
  for (let t = 0; t < 6; t++) {
    const o = again.update(x(t));
    expect(Array.from(o.data)).toEqual(Array.from(want.data.slice(t * B, (t + 1) * B)));
  }
  l.dispose();
  ref.dispose();
  again.dispose();
});
