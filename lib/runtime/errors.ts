/**
 * Typed errors of braintrace. Every error thrown for bad user input names the
 * argument (or op), the expected value and the actual value.
 *
 * Every class has a stable, machine-readable `code` (`ERR_BRAINTRACE_*`, the table
 * in docs/errors.md) and, where it applies, `argument` (what was wrong: an argument
 * name, an option path such as `'etraceGrad: options.mask'`, a tensor name),
 * `expected` and `actual` (human-readable descriptions, e.g. `'(T, 32, 1)'` and
 * `'(20, 16, 1)'`). Check `err.code` (or `instanceof`) rather than the message.
 * Where a throw site gives no explicit fields, they are read from the message when it has
 * one of the library's standard forms, `<argument>: expected <expected>; got <actual>` or
 * `<argument> must be <expected>; got <actual>`.
 */

/** Structured fields of an error (all optional). */
export interface ErrorDetails {
  /** The argument, option or tensor that was wrong (e.g. 'xs', 'compile: options.batchSize'). */
  argument?: string;
  /** What was expected (a description: a shape, a type, a range). */
  expected?: unknown;
  /** What was given (a description of the actual value). */
  actual?: unknown;
  /** The underlying error, when this one wraps another. */
  cause?: unknown;
}

/** Base class of all braintrace errors. `code` is `ERR_BRAINTRACE` for the base class itself. */
export class BraintraceError extends Error {
  /** The stable error code of the class (or, for {@link NativeError}, of the native status). */
  readonly code: string;
  /** The argument, option or tensor that was wrong, when one was. */
  declare readonly argument?: string;
  /** What was expected, when it applies. */
  declare readonly expected?: unknown;
  /** What was given, when it applies. */
  declare readonly actual?: unknown;

  constructor(message: string, details: ErrorDetails = {}, code?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code ?? (new.target as unknown as { CODE?: string }).CODE ?? 'ERR_BRAINTRACE';
    const self = this as { argument?: string; expected?: unknown; actual?: unknown };
    // Without explicit fields, read them from the message's standard forms
    // "<argument>: expected <expected>; got <actual>" and "<argument> must be <expected>; got <actual>".
    const parsed = details.argument === undefined ? parseStandardMessage(message) : undefined;
    const argument = details.argument ?? parsed?.argument;
    const expected = details.expected ?? parsed?.expected;
    const actual = details.actual ?? parsed?.actual;
    if (argument !== undefined) self.argument = argument;
    if (expected !== undefined) self.expected = expected;
    if (actual !== undefined) self.actual = actual;
    if (details.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: details.cause, enumerable: false, writable: true, configurable: true });
    }
  }
}

const STANDARD_FORMS = [
  /^(.+?): expected (.+?); got (.+)$/s,
  /^(.+?) must (?:be|have|hold) (.+?)[;,] got (.+)$/s,
  /^(.+?) must (?:be|have|hold) (.+?) \(got (.+)\)$/s,
  /^(.+?): (.+? needs .+?); got (.+)$/s,
];

/** Splits a message of a standard form into argument / expected / actual (undefined otherwise). */
function parseStandardMessage(message: string): { argument: string; expected: string; actual: string } | undefined {
  for (const re of STANDARD_FORMS) {
    const m = re.exec(message);
    if (m) return { argument: m[1], expected: m[2], actual: m[3] };
  }
  return undefined;
}

/** A shape (or length) does not fit: the message names both shapes. Code `ERR_BRAINTRACE_SHAPE`. */
export class ShapeError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_SHAPE';
}

/** A dtype does not fit (e.g. mixing float32 and float64 tensors). Code `ERR_BRAINTRACE_DTYPE`. */
export class DTypeError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_DTYPE';
}

/** An argument has a wrong type or value (not a shape problem). Code `ERR_BRAINTRACE_INVALID_ARGUMENT`. */
export class ArgumentError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_INVALID_ARGUMENT';
}

/** The requested combination is not supported (the message says what to do instead). Code `ERR_BRAINTRACE_NOT_SUPPORTED`. */
export class NotSupportedError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_NOT_SUPPORTED';
}

/** The learner (or session) was disposed; it cannot be used any more. Code `ERR_BRAINTRACE_DISPOSED`. */
export class DisposedError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_DISPOSED';
}

/**
 * A synchronous method was called while asynchronous work of the same learner was
 * pending (async methods queue instead: see docs/errors.md). Code `ERR_BRAINTRACE_BUSY`.
 */
export class BusyError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_BUSY';
}

/** Where a non-finite value was found. */
export interface NonFiniteDetails extends ErrorDetails {
  /** The tensor that held it: 'xs', 'ys', 'params.rnn.w', 'loss', 'grads.rnn.w', 'lr', ... */
  tensor: string;
  /** The step (0-based, within the call) where it first appeared; -1 when the tensor has no time axis. */
  step: number;
  /** Flat index of the first bad element (within the step's slice for sequences); -1 when not applicable. */
  index: number;
}

/**
 * A NaN or infinity was found in an input, target, parameter, learning rate or
 * restored checkpoint, or a loss or gradient became non-finite during a call
 * (the optimizer then did not touch the parameters). Code `ERR_BRAINTRACE_NON_FINITE`.
 */
export class NonFiniteError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_NON_FINITE';
  /** See {@link NonFiniteDetails.tensor}. */
  readonly tensor: string;
  /** See {@link NonFiniteDetails.step}. */
  readonly step: number;
  /** See {@link NonFiniteDetails.index}. */
  readonly index: number;
  constructor(message: string, details: NonFiniteDetails) {
    super(message, { argument: details.tensor, expected: 'finite values', ...details });
    this.tensor = details.tensor;
    this.step = details.step;
    this.index = details.index;
  }
}

/**
 * A call was cancelled through its `AbortSignal` (or by process / worker exit).
 * `stepsDone` says how many steps finished before it stopped (see the call's docs for
 * the state it leaves). Code `ERR_BRAINTRACE_ABORTED`.
 */
export class AbortError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_ABORTED';
  /** Steps of the call that finished before it stopped (-1 when not known). */
  readonly stepsDone: number;
  constructor(message: string, details: ErrorDetails & { stepsDone?: number } = {}) {
    super(message, details);
    this.stepsDone = details.stepsDone ?? -1;
  }
}

/**
 * The same non-finite error with the tensor renamed (e.g. the native slot name `inputs[0]`
 * to `xs`, `params[1]` to `params.rnn.w`): `tensor`, `argument` and the message change,
 * `step` and `index` are kept, the original is the `cause`.
 */
export function wrapNonFinite(e: NonFiniteError, tensor: string): NonFiniteError {
  return new NonFiniteError(e.message.split(e.tensor).join(tensor), { tensor, step: e.step, index: e.index, cause: e });
}

/** One diagnostic record of the eligibility-trace compiler. */
export interface DiagnosticRecord {
  kind: string;
  level: 'info' | 'warning' | 'error';
  message: string;
  weightPath?: string;
  hiddenPaths?: string[];
}

/** Compilation failed; `diagnostics` says why. Code `ERR_BRAINTRACE_COMPILATION`. */
export class CompilationError extends BraintraceError {
  static readonly CODE = 'ERR_BRAINTRACE_COMPILATION';
  readonly diagnostics: DiagnosticRecord[];
  constructor(message: string, diagnostics: DiagnosticRecord[] = []) {
    super(message);
    this.diagnostics = diagnostics;
  }
}

/**
 * An error reported by the native core, with its stable code: `ERR_BRAINTRACE_INVALID_PLAN`,
 * `ERR_BRAINTRACE_INVALID_ARGUMENT`, `ERR_BRAINTRACE_OUT_OF_MEMORY`, `ERR_BRAINTRACE_CUDA`,
 * `ERR_BRAINTRACE_INTERNAL` (codes that have a class of their own, such as BUSY or
 * NON_FINITE, become that class instead).
 */
export class NativeError extends BraintraceError {
  constructor(message: string, code: string, details: ErrorDetails = {}) {
    super(message, details, code);
  }
}

/** Formats a shape for messages: `(2, 3)`, `()` for a scalar. */
export function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`;
}

/** A short description of a value for messages: `number 3`, `string 'x'`, `Float32Array(4)`, ... */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return `number ${String(v)}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (typeof v === 'function') return 'function';
  if (typeof v === 'symbol') return 'symbol';
  if (ArrayBuffer.isView(v)) {
    const n = (v as unknown as { length?: number }).length;
    return `${Object.prototype.toString.call(v).slice(8, -1)}(${n ?? '?'})`;
  }
  if (Array.isArray(v)) return `Array(${v.length})`;
  return 'object';
}

/**
 * An {@link ArgumentError} whose message reads `${argument}: expected ${expected}; got ${actual}`
 * and whose fields carry the three parts.
 */
export function argumentError(argument: string, expected: string, actual: string): ArgumentError {
  return new ArgumentError(`${argument}: expected ${expected}; got ${actual}`, { argument, expected, actual });
}

/**
 * Checks an options object and rejects keys that are not in `allowed` (a misspelt option
 * must not pass silently); returns it as a record. `what` names the options in messages,
 * e.g. `'Adam'` or `'compile: options'`. `undefined` gives `{}` unless `required`.
 * @throws ArgumentError naming the unknown key (`argument` is `${what}.${key}`) and listing
 *   the allowed ones, or for a value that is not a plain object.
 */
export function checkOptionKeys(
  what: string,
  options: unknown,
  allowed: readonly string[],
  required = false,
): Record<string, unknown> {
  if (options === undefined && !required) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ArgumentError(`${what}: expected an options object { ${allowed.join(', ')} }; got ${describeValue(options)}`, {
      argument: what,
      expected: 'an options object',
      actual: describeValue(options),
    });
  }
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) {
      throw new ArgumentError(`${what}: unknown option '${k}'; expected one of ${allowed.join(', ')}`, {
        argument: `${what}.${k}`,
        expected: `one of ${allowed.join(', ')}`,
        actual: k,
      });
    }
  }
  return options as Record<string, unknown>;
}
