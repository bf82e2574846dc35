/**
 * The tape arena and small synchronous calls (issue 9, item 5).
 *
 * - A session keeps its BPTT tape between calls: repeated calls of the same T allocate
 *   nothing (memoryStats flat), a longer T grows the arena by exactly the extra step blocks,
 *   a shorter one reuses it, and dispose frees it. run_online's window tape stays per call.
 * - BPTT tapes only what it cannot cheaply recompute: a step block on the tape is smaller
 *   than all of the step's values.
 * - Results are bit-identical across repeated calls on the reused arena, to a fresh
 *   session's, and between the synchronous path small calls take and the async worker.
 * - Small calls that run synchronously still return Promises that settle in queue order,
 *   honour an already-aborted signal and make synchronous methods throw BusyError while
 *   they are pending.
 */
import * as bt from '../lib/index';
import { SYNC_WORK_LIMIT, stepWork, type Learner } from '../lib/algorithms/learner';
import { loadBinding } from '../lib/runtime/native';
import type { HostTensor } from '../lib/tensor';
import type { NativeSession } from '../types/binding';
import { DiagRNN, rejected, thrown } from './helpers/models';
import { prng } from './helpers/native';

const B = 3;
const I = 2;

function seq(T: number, width: number, seed: number): HostTensor {
  const rnd = prng(seed);
  return { data: Float64Array.from({ length: T * B * width }, () => rnd() - 0.5), shape: [T, B, width], dtype: 'float64' };
}

function make(algorithm: bt.AlgorithmClass = bt.BPTT, options: Record<string, unknown> = {}): Learner {
  return bt.compile(new DiagRNN(I, 4, 1), algorithm, { inputShape: [I], batchSize: B, dtype: 'float64', seed: 3, ...options });
}

const live = () => loadBinding().memoryStats().liveBytes;

/** The gradients and losses of `r` as plain arrays (bit patterns compared by toEqual). */
function flat(r: bt.GradResult): number[][] {
  return [...Object.keys(r.grads).sort().map((k) => Array.from(r.grads[k].data)), Array.from(r.losses), Array.from(r.outputs.data)];
}

describe('BPTT tape arena', () => {
  test('memory is flat over repeated calls of the same T, grows by the extra step blocks for a longer T, and is freed by dispose', async () => {
    const before = live();
    const l = make();
    const xs = (T: number) => seq(T, I, 10 + T);
    const ys = (T: number) => seq(T, 1, 20 + T);
    const grad = async (T: number) => {
      l.resetState();
      return l.etraceGrad(xs(T), ys(T));
    };
    const first = await grad(20);
    const at20 = live();
    for (let k = 0; k < 3; k++) {
      expect(flat(await grad(20))).toEqual(flat(first)); // identical on the reused arena
      expect(live()).toBe(at20);
    }
    await grad(40);
    const at40 = live();
    const block20 = at40 - at20; // 20 more step blocks
    expect(block20).toBeGreaterThan(0);
    await grad(80);
    expect(live() - at40).toBe(2 * block20); // 40 more: linear in the extra steps
    // One tape block holds the taped nodes only (the rule of native/core/session_impl.h):
    // values no VJP reads are dropped, cheap values of kept inputs are recomputed, a
    // state's new value is always taped.
    const entry = [...(l as unknown as { sessions: Map<string, { traced: { graph: bt.Graph } }> }).sessions.entries()].find(
      ([k]) => k !== '',
    )![1];
    const { nodes, outputs } = entry.traced.graph;
    const cheap = new Set(['Neg', 'Square', 'Abs', 'Relu', 'LeakyRelu', 'Clamp', 'Spike', 'StopGradient', 'EtpElementWise',
      'Add', 'Sub', 'Mul', 'Minimum', 'Maximum', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'Equal', 'NotEqual', 'Where',
      'Reshape', 'BroadcastTo', 'Transpose', 'Slice', 'Concat']);
    // What each VJP of this model reads: [inputs read, reads its output].
    const reads: Record<string, [(k: number) => boolean, boolean]> = {
      Tanh: [() => false, true],
      Add: [() => false, false],
      Sub: [() => false, false],
      Mul: [() => true, false],
      Square: [() => true, false],
      BroadcastTo: [() => false, false],
      Reshape: [() => false, false],
      EtpElementWise: [() => false, false],
      EtpMatMul: [(k) => k < 2, false],
      MatMul: [(k) => k < 2, false],
    };
    const needed = new Array<boolean>(nodes.length).fill(false);
    for (const n of nodes) {
      if (['Input', 'Param', 'State', 'Const'].includes(n.op)) continue;
      const [inputs, self] = reads[n.op] ?? [() => true, true];
      n.inputs.forEach((j, k) => {
        if (inputs(k)) needed[j] = true;
      });
      if (self) needed[n.id] = true;
    }
    const stateNew = new Set(outputs.filter((o) => o.kind === 'stateNew').map((o) => o.nodeId));
    const persistent = (op: string) => op === 'Param' || op === 'Const';
    const numelOf = (id: number) => nodes[id].shape.reduce((a, d) => a * d, 1);
    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i];
      if (persistent(n.op) || !needed[i] || stateNew.has(i) || !cheap.has(n.op)) continue;
      const extra = n.inputs.filter((j) => !persistent(nodes[j].op) && !needed[j]).reduce((a, j) => a + numelOf(j), 0);
      if (extra <= numelOf(i)) n.inputs.forEach((j) => (needed[j] = true));
    }
    const taped = new Array<boolean>(nodes.length).fill(false);
    const recomputed = new Array<boolean>(nodes.length).fill(false);
    let all = 0;
    let tapedValues = 0;
    for (const n of nodes) {
      if (persistent(n.op)) continue;
      const size = n.shape.reduce((a, d) => a * d, 1);
      all += size;
      if (!needed[n.id] && !stateNew.has(n.id)) continue;
      const recompute =
        cheap.has(n.op) && !stateNew.has(n.id) && n.inputs.every((j) => persistent(nodes[j].op) || taped[j] || recomputed[j]);
      taped[n.id] = !recompute;
      recomputed[n.id] = recompute;
      if (!recompute) tapedValues += size;
    }
    expect(tapedValues).toBeLessThan(all);
    expect(block20).toBe(20 * 8 * tapedValues);
    const at80 = live();
    await grad(30); // shorter: reuses the arena, never shrinks
    await grad(5);
    expect(live()).toBe(at80);
    // The same gradients as a fresh learner (a fresh arena) gives.
    const fresh = make();
    const ref = await fresh.etraceGrad(xs(20), ys(20));
    fresh.dispose();
    expect(flat(await grad(20))).toEqual(flat(ref));
    expect(flat(ref)).toEqual(flat(first));
    l.dispose();
    expect(live()).toBe(before);
  });

  test('online windows keep no tape between calls (chunkSize k), with identical results', async () => {
    const before = live();
    const l = make(bt.D_RTRL, { vjpMethod: 'multi-step' }) as bt.OnlineLearner;
    const xs = seq(12, I, 31);
    const ys = seq(12, 1, 32);
    const first = await l.etraceGrad(xs, ys, { chunkSize: 4 });
    const after = live();
    for (let k = 0; k < 3; k++) {
      await l.etraceGrad(xs, ys, { chunkSize: 4 });
      expect(live()).toBe(after);
    }
    await l.etraceGrad(xs, ys, { chunkSize: 2 });
    expect(live()).toBe(after);
    // The same window gradients from the same states and traces on a fresh learner.
    const fresh = make(bt.D_RTRL, { vjpMethod: 'multi-step' }) as bt.OnlineLearner;
    expect(flat(await fresh.etraceGrad(xs, ys, { chunkSize: 4 }))).toEqual(flat(first));
    fresh.dispose();
    l.dispose();
    expect(live()).toBe(before);
  });
});

describe('small calls run synchronously', () => {
  test('the tiny model is below the limit, a large one above it', () => {
    const tiny = make();
    const big = bt.compile(new DiagRNN(64, 256, 1), bt.BPTT, { inputShape: [64], batchSize: 16 });
    const work = (l: Learner) => stepWork((l as unknown as { stepTrace: Parameters<typeof stepWork>[0] }).stepTrace);
    expect(work(tiny)).toBeLessThan(SYNC_WORK_LIMIT);
    expect(work(big)).toBeGreaterThan(SYNC_WORK_LIMIT);
    tiny.dispose();
    big.dispose();
  });

  test('the synchronous path gives bit-identical results to the async worker', async () => {
    const a = make();
    const b = make();
    const xs = seq(6, I, 41);
    const ys = seq(6, 1, 42);
    const viaLearner = await a.etraceGrad(xs, ys, { loss: 'mse' });
    // The same call through the async binding on b's loss session (created by one call).
    await b.etraceGrad(seq(1, I, 1), seq(1, 1, 2));
    b.resetState();
    const sessions = (b as unknown as { sessions: Map<string, { session: NativeSession; paramVersion: number }> }).sessions;
    const [entry] = [...sessions.entries()].filter(([k]) => k !== '').map(([, e]) => e);
    (b as unknown as { prepare(e: unknown): void }).prepare(entry);
    const r = await entry.session.runSequenceAsync({
      steps: 6,
      inputs: [xs.data, ys.data],
      lossScale: new Float64Array(6).fill(1),
      computeGrads: true,
    });
    expect(Array.from(r.losses)).toEqual(Array.from(viaLearner.losses));
    const paths = Object.keys(viaLearner.grads);
    paths.forEach((p, i) => expect(Array.from(r.paramGrads![i])).toEqual(Array.from(viaLearner.grads[p].data)));
    a.dispose();
    b.dispose();
  });

  test('they settle in queue order, keep BusyError for pending calls, and honour an aborted signal', async () => {
    const l = make();
    const order: string[] = [];
    const xs = seq(3, I, 51);
    const ys = seq(3, 1, 52);
    const states0 = l.states();
    const aborted = AbortSignal.abort();
    const p1 = l.etraceGrad(xs, ys).then(() => order.push('grad1'));
    const p2 = l.enqueue(() => order.push('enqueue'));
    const p3 = l.run(xs, { signal: aborted });
    const p4 = l.etraceGrad(xs, ys).then(() => order.push('grad2'));
    expect(l.pending).toBe(4);
    thrown(() => l.params(), bt.BusyError);
    const err = await rejected(p3, bt.AbortError);
    expect(err.stepsDone).toBe(0);
    await Promise.all([p1, p2, p4]);
    expect(order).toEqual(['grad1', 'enqueue', 'grad2']);
    expect(l.pending).toBe(0);
    // Two gradient calls advanced the states by 6 steps; the aborted run did nothing.
    const ref = make();
    ref.setStates(states0);
    await ref.etraceGrad(xs, ys);
    await ref.etraceGrad(xs, ys);
    expect(Array.from(l.states()['h'].data)).toEqual(Array.from(ref.states()['h'].data));
    ref.dispose();
    l.dispose();
  });
});
