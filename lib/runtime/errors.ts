/**
 * Typed errors of braintrace. Every error thrown for bad user input names the
 * argument (or op), the expected value and the actual value.
 */

/** Base class of all braintrace errors. */
export class BraintraceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A shape (or length) does not fit: the message names both shapes. */
export class ShapeError extends BraintraceError {}

/** A dtype does not fit (e.g. mixing float32 and float64 tensors). */
export class DTypeError extends BraintraceError {}

/** An argument has a wrong type or value (not a shape problem). */
export class ArgumentError extends BraintraceError {}

/** The requested combination is not supported (the message says what to do instead). */
export class NotSupportedError extends BraintraceError {}

/** One diagnostic record of the eligibility-trace compiler. */
export interface DiagnosticRecord {
  kind: string;
  level: 'info' | 'warning' | 'error';
  message: string;
  weightPath?: string;
  hiddenPaths?: string[];
}

/** Compilation failed; `diagnostics` says why. */
export class CompilationError extends BraintraceError {
  readonly diagnostics: DiagnosticRecord[];
  constructor(message: string, diagnostics: DiagnosticRecord[] = []) {
    super(message);
    this.diagnostics = diagnostics;
  }
}

/** An error reported by the native core, with its stable code (ERR_BRAINTRACE_*). */
export class NativeError extends BraintraceError {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

/** Formats a shape for messages: `(2, 3)`, `()` for a scalar. */
export function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`;
}
