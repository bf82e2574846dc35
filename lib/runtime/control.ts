/**
 * Cancellation, progress and the non-finite policy of long calls (docs/hardening.md,
 * "Cancellation, progress and non-finite values").
 *
 * A long call (`etraceGrad`, `run`, `etraceEvolve`) takes `{ signal, onProgress }`:
 * the signal's abort reaches the native call in flight (`session.cancelRun()`), which
 * stops between steps (or between the nodes of a step) and rejects with {@link AbortError};
 * progress comes from the native worker through a thread-safe function, throttled.
 */
import type { NativeCallControl, NativeSession } from '../../types/binding';
import { AbortError, ArgumentError, NonFiniteError, describeValue, wrapNonFinite } from './errors';
import { loadBinding } from './native';

/** Progress of a long native call. */
export interface CallProgress {
  /** Units of work finished (grows by 1 per step; monotone). */
  done: number;
  /**
   * Units of the whole call: the steps T, or 2T for BPTT gradients (T forward steps, then
   * T reverse steps). The last report of a successful call has `done === total`.
   */
  total: number;
}

/** Cancellation and progress of one long call. */
export interface CallOptions {
  /** Aborting it stops the native call in flight; the call rejects with {@link AbortError}. */
  signal?: AbortSignal;
  /** Called on the JS thread while the call runs, at most every 50 ms, plus a final report. */
  onProgress?: (p: CallProgress) => void;
}

/** The option keys of {@link CallOptions}. */
export const CALL_OPTION_KEYS = ['signal', 'onProgress'] as const;

/**
 * What a learner does with NaN and infinity (`bt.compile(..., { nonFinite })`):
 * - `'error'` (default): non-finite inputs, targets, parameters, states and traces given to
 *   the learner, and non-finite losses or gradients of a call, throw {@link NonFiniteError}
 *   naming the tensor, the step and the first bad index; the optimizer never writes a
 *   non-finite parameter (the update throws and changes nothing).
 * - `'skipUpdate'`: bad data is still an error, but a non-finite loss or gradient is
 *   returned as is and an optimizer update that would be non-finite is skipped (the
 *   parameters stay unchanged; `applyGradients`, `step` and `fit` report it).
 * - `'allow'`: no checks at all.
 */
export type NonFinitePolicy = 'error' | 'skipUpdate' | 'allow';

/** Checks a `nonFinite` option (undefined: 'error'). @throws ArgumentError naming it. */
export function checkNonFinitePolicy(what: string, v: unknown): NonFinitePolicy {
  if (v === undefined) return 'error';
  if (v === 'error' || v === 'skipUpdate' || v === 'allow') return v;
  throw new ArgumentError(`${what}: expected 'error', 'skipUpdate' or 'allow'; got ${describeValue(v)}`, {
    argument: what,
    expected: "'error' | 'skipUpdate' | 'allow'",
    actual: describeValue(v),
  });
}

/** Checks `{ signal?, onProgress? }` values (the keys are checked by the caller). */
export function checkCallOptions(what: string, o: CallOptions): void {
  const s = o.signal as unknown;
  if (
    s !== undefined &&
    (typeof s !== 'object' ||
      s === null ||
      typeof (s as AbortSignal).aborted !== 'boolean' ||
      typeof (s as AbortSignal).addEventListener !== 'function')
  ) {
    throw new ArgumentError(`${what}.signal: expected an AbortSignal; got ${describeValue(s)}`, {
      argument: `${what}.signal`,
      expected: 'an AbortSignal',
      actual: describeValue(s),
    });
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new ArgumentError(`${what}.onProgress: expected a function ({ done, total }) => void; got ${describeValue(o.onProgress)}`, {
      argument: `${what}.onProgress`,
      expected: 'a function',
      actual: describeValue(o.onProgress),
    });
  }
}

/** The AbortError of a call whose signal was aborted before any native work. */
export function abortedBeforeStart(what: string, signal: AbortSignal): AbortError {
  return new AbortError(`${what}: aborted before it started`, { stepsDone: 0, cause: signal.reason });
}

/**
 * Runs the async native call `start` on `session` under `options`: rejects at once when the
 * signal is already aborted (no native work), forwards an abort to `session.cancelRun()`
 * while the call is in flight, and adapts progress. The caller maps native errors.
 */
export async function runControlled<R>(
  what: string,
  session: NativeSession,
  options: CallOptions,
  start: (control: NativeCallControl | undefined) => Promise<R>,
): Promise<R> {
  const { signal, onProgress } = options;
  if (signal?.aborted) throw abortedBeforeStart(what, signal);
  const control: NativeCallControl | undefined =
    onProgress === undefined ? undefined : { onProgress: (done, total) => onProgress({ done, total }) };
  const onAbort = (): void => {
    session.cancelRun();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await start(control);
  } catch (e) {
    if (e instanceof AbortError || (e as { code?: unknown })?.code === AbortError.CODE) {
      const done = (e as { stepsDone?: unknown }).stepsDone;
      const stepsDone = typeof done === 'number' ? done : -1;
      throw new AbortError(`${what}: aborted after ${stepsDone} step(s) (the state kept is that after those steps)`, {
        stepsDone,
        cause: signal?.reason ?? e,
      });
    }
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * A {@link NonFiniteError} whose native tensor name (`inputs[0]`, `params[2]`, ...) is
 * replaced by `rename(name)` (in `tensor` and in the message); other errors unchanged.
 */
export function renameNonFinite(e: unknown, rename: (nativeName: string) => string | undefined): unknown {
  if (!(e instanceof NonFiniteError)) return e;
  const name = rename(e.tensor);
  if (name === undefined || name === e.tensor) return e;
  return wrapNonFinite(e, name);
}

/**
 * Throws {@link NonFiniteError} naming `tensor` (step -1, the first bad index) when `data`
 * holds a NaN or infinity: one native pass (`binding.checkFinite`), no JS loop.
 */
export function checkFiniteData(what: string, tensor: string, data: Float32Array | Float64Array): void {
  const bad = loadBinding().checkFinite(data);
  if (bad < 0) return;
  const v = data[bad];
  throw new NonFiniteError(`${what}: ${tensor} holds a non-finite value (${String(v)}), index ${bad}`, {
    tensor,
    step: -1,
    index: bad,
  });
}
