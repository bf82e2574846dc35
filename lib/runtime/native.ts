/**
 * Loading the native addon and choosing between its two builds.
 *
 * braintrace ships (or builds) up to two binaries of the same sources, both
 * named `braintrace.node`:
 *
 * - the **CPU build** (node-gyp, `binding.gyp`): `build/Release/` or
 *   `prebuilds/<platform>-<arch>/`, found by `node-gyp-build`;
 * - the **CUDA build** (cmake-js, `CMakeLists.txt`, `npm run build:cuda`):
 *   `build-cuda/Release/`, or `cuda/prebuilds/<platform>-<arch>/`.
 *
 * The environment variable `BRAINTRACE_DEVICE` picks one:
 *
 * - `auto` (default): the CUDA build when one is installed **and** a CUDA device
 *   answers its probe; otherwise the CPU build, and {@link bindingInfo} records why
 *   ("no CUDA build installed", "CUDA build present but no device: ...").
 * - `cpu`: the CPU build, never touching the CUDA one.
 * - `cuda`: the CUDA build even when no device answers (its sessions then run on
 *   the CPU inside that binary, and `info()` says so); an error when it is absent.
 *
 * `BRAINTRACE_ADDON=/absolute/path/braintrace.node` overrides the search: that binary is
 * loaded and nothing else is looked at (used by `npm run test:asan` to run the suites against
 * the sanitizer build in `build-asan/`, and for trying any other build). Its
 * {@link BindingFacts.build} is 'cuda' when the binary contains CUDA kernels; a relative
 * path, a missing file or a failed load is an error.
 *
 * The choice is made once per process (per module instance) and cached.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { NativeBinding } from '../../types/binding';
import {
  AbortError,
  ArgumentError,
  BraintraceError,
  BusyError,
  DisposedError,
  NativeError,
  NonFiniteError,
  NotSupportedError,
} from './errors';

/** A value of `BRAINTRACE_DEVICE`. */
export type DevicePreference = 'auto' | 'cpu' | 'cuda';

/** Which binary was loaded, from where, and why. */
export interface BindingFacts {
  /** The build that was loaded: the node-gyp CPU build or the cmake-js CUDA build. */
  build: 'cpu' | 'cuda';
  /** Absolute path of the loaded `.node` file. */
  path: string;
  /** The preference it was chosen under (BRAINTRACE_DEVICE, default 'auto'). */
  preference: DevicePreference;
  /**
   * Why the loader did not use the CUDA build ('' when it did, or when the
   * preference was 'cpu' or 'cuda' and the loader made no fallback decision).
   */
  fallbackReason: string;
}

/** Package root: this file is lib/runtime/native.ts (tests) or dist/runtime/native.js. */
export const PACKAGE_ROOT = path.join(__dirname, '..', '..');

const BINARY_NAME = 'braintrace.node';

let cached: { binding: NativeBinding; facts: BindingFacts } | undefined;

/**
 * Reads `BRAINTRACE_DEVICE`: unset or empty means 'auto'.
 * @throws ArgumentError for any other value than 'auto', 'cpu' or 'cuda'.
 */
export function devicePreference(): DevicePreference {
  const raw = process.env.BRAINTRACE_DEVICE;
  if (raw === undefined || raw === '') return 'auto';
  if (raw === 'auto' || raw === 'cpu' || raw === 'cuda') return raw;
  throw new ArgumentError(`BRAINTRACE_DEVICE must be 'auto', 'cpu' or 'cuda' (got '${raw}')`);
}

// node-gyp-build has no type declarations; this is the part we use.
interface NodeGypBuild {
  (dir: string): unknown;
  resolve(dir: string): string;
}

function nodeGypBuild(): NodeGypBuild {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node-gyp-build') as NodeGypBuild;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface CudaCandidate {
  binding?: NativeBinding;
  path?: string;
  /** Paths looked at, for error messages. */
  tried: string[];
  /** Set when a CUDA build exists but could not be loaded. */
  loadError?: string;
}

/** Finds and loads the CUDA build, if any. Never throws. */
function loadCudaBuild(root: string): CudaCandidate {
  const dev = path.join(root, 'build-cuda', 'Release', BINARY_NAME);
  const cudaDir = path.join(root, 'cuda');
  const prebuildDir = path.join(cudaDir, 'prebuilds', `${process.platform}-${process.arch}`);
  const tried = [dev, prebuildDir];
  let file: string | undefined;
  if (fs.existsSync(dev)) {
    file = dev;
  } else if (fs.existsSync(cudaDir)) {
    try {
      file = nodeGypBuild().resolve(cudaDir);
    } catch {
      file = undefined;
    }
  }
  if (file === undefined) return { tried };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { binding: require(file) as NativeBinding, path: file, tried };
  } catch (e) {
    return { path: file, tried, loadError: `${file}: ${errorMessage(e)}` };
  }
}

/** Loads the CPU build through node-gyp-build (build/Release, then prebuilds/). */
function loadCpuBuild(root: string): { binding: NativeBinding; path: string } {
  let file: string;
  try {
    file = nodeGypBuild().resolve(root);
  } catch (e) {
    throw new NotSupportedError(
      `no braintrace native build was found for ${process.platform}-${process.arch} ` +
        `(looked in ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds')}): ` +
        `${errorMessage(e).trim()}. Run \`npm rebuild braintrace\` (or \`npm run build:cpu\` in a checkout) ` +
        `to compile it; this needs a C++17 compiler and Python for node-gyp.`,
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { binding: require(file) as NativeBinding, path: file };
  } catch (e) {
    throw new NotSupportedError(`the braintrace native build ${file} failed to load: ${errorMessage(e)}`);
  }
}

/** Loads the binary that BRAINTRACE_ADDON names (see the module comment). */
function loadExplicit(file: string, preference: DevicePreference): { binding: NativeBinding; facts: BindingFacts } {
  if (!path.isAbsolute(file)) {
    throw new ArgumentError(`BRAINTRACE_ADDON must be an absolute path to a braintrace.node (got '${file}')`);
  }
  let binding: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(file) as NativeBinding;
  } catch (e) {
    throw new NotSupportedError(`BRAINTRACE_ADDON names ${file}, which failed to load: ${errorMessage(e)}`);
  }
  const build = binding.info('cpu').cudaCompiled ? 'cuda' : 'cpu';
  const fallbackReason = build === 'cpu' && preference === 'auto' ? `BRAINTRACE_ADDON names a CPU-only build (${file})` : '';
  return { binding, facts: { build, path: file, preference, fallbackReason } };
}

function select(): { binding: NativeBinding; facts: BindingFacts } {
  const preference = devicePreference();
  const root = PACKAGE_ROOT;
  const explicit = process.env.BRAINTRACE_ADDON;
  if (explicit !== undefined && explicit !== '') return loadExplicit(explicit, preference);

  if (preference === 'cpu') {
    const cpu = loadCpuBuild(root);
    return { binding: cpu.binding, facts: { build: 'cpu', path: cpu.path, preference, fallbackReason: '' } };
  }

  const cuda = loadCudaBuild(root);

  if (preference === 'cuda') {
    if (!cuda.binding || !cuda.path) {
      const why = cuda.loadError
        ? `the CUDA build failed to load (${cuda.loadError})`
        : `no CUDA build was found (tried ${cuda.tried.join(' and ')})`;
      throw new NotSupportedError(
        `BRAINTRACE_DEVICE is 'cuda' but ${why}. Run \`npm run build:cuda\` (needs nvcc and cmake), ` +
          `or set BRAINTRACE_DEVICE to 'auto' or 'cpu'.`,
      );
    }
    return { binding: cuda.binding, facts: { build: 'cuda', path: cuda.path, preference, fallbackReason: '' } };
  }

  // auto
  let reason: string;
  if (cuda.binding && cuda.path) {
    let deviceCount = 0;
    let probeReason = '';
    try {
      const i = cuda.binding.info('auto');
      deviceCount = i.deviceCount;
      probeReason = i.fallbackReason;
    } catch (e) {
      probeReason = `CUDA probe failed: ${errorMessage(e)}`;
    }
    if (deviceCount > 0) {
      return { binding: cuda.binding, facts: { build: 'cuda', path: cuda.path, preference, fallbackReason: '' } };
    }
    reason = `CUDA build present but no device: ${probeReason || 'no CUDA device found'}`;
    try {
      const cpu = loadCpuBuild(root);
      return { binding: cpu.binding, facts: { build: 'cpu', path: cpu.path, preference, fallbackReason: reason } };
    } catch {
      // No CPU build: the CUDA binary runs its sessions on the CPU just as well.
      return {
        binding: cuda.binding,
        facts: { build: 'cuda', path: cuda.path, preference, fallbackReason: `${reason} (no CPU build installed)` },
      };
    }
  }
  reason = cuda.loadError ? `CUDA build present but failed to load: ${cuda.loadError}` : 'no CUDA build installed';
  const cpu = loadCpuBuild(root);
  return { binding: cpu.binding, facts: { build: 'cpu', path: cpu.path, preference, fallbackReason: reason } };
}

/**
 * The native binding, loaded on first use and cached.
 * @throws ArgumentError for a bad BRAINTRACE_DEVICE; NotSupportedError when the
 *   requested build is not installed or does not load.
 */
export function loadBinding(): NativeBinding {
  if (!cached) {
    const chosen = select();
    // Under jest (a vm context per test file) or node:vm, objects made by the addon
    // belong to the context that first loaded it, so `instanceof Float64Array` and
    // `instanceof Error` are false here. Detect that once and adapt the results.
    const names = chosen.binding.opNames();
    const binding = names instanceof Array ? chosen.binding : adaptRealm(chosen.binding);
    cached = { binding, facts: chosen.facts };
    // process.exit() joins the native thread pool right after the 'exit' handlers: cancel
    // the calls in flight first, so the exit does not wait for them (docs/hardening.md).
    process.once('exit', () => {
      try {
        binding.cancelAll();
      } catch {
        // exiting: nothing to report to
      }
    });
  }
  return cached.binding;
}

// ---- cross-realm adaptation ------------------------------------------------------------------

const toStringTag = (v: unknown): string => Object.prototype.toString.call(v).slice(8, -1);

/** Copies a value made by the addon in another realm into this realm (typed arrays are copied). */
function localize(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    switch (toStringTag(v)) {
      case 'Float32Array':
        return v instanceof Float32Array ? v : new Float32Array(v as unknown as Float32Array);
      case 'Float64Array':
        return v instanceof Float64Array ? v : new Float64Array(v as unknown as Float64Array);
      case 'Int32Array':
        return v instanceof Int32Array ? v : new Int32Array(v as unknown as Int32Array);
      default:
        return v;
    }
  }
  if (Array.isArray(v)) return Array.from(v as unknown[], localize);
  if (typeof (v as { then?: unknown }).then === 'function') {
    const p = v as PromiseLike<unknown>;
    return new Promise((resolve, reject) => {
      p.then(
        (r) => resolve(localize(r)),
        (e) => reject(localizeError(e)),
      );
    });
  }
  // Instances of the addon's classes (sessions, optimizers) all have dispose(): proxy them.
  if (typeof (v as { dispose?: unknown }).dispose === 'function') return adaptObject(v as object);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = localize((v as Record<string, unknown>)[k]);
  return out;
}

/** Re-creates an error of another realm as an error of this realm (name, message, code, stack kept). */
function localizeError(e: unknown): unknown {
  if (e instanceof Error || toStringTag(e) !== 'Error') return e;
  const src = e as Error & Record<string, unknown>;
  const Ctor = src.name === 'TypeError' ? TypeError : src.name === 'RangeError' ? RangeError : Error;
  const err = new Ctor(src.message) as Error & Record<string, unknown>;
  // The code and the structured fields of NON_FINITE / ABORTED errors (types/binding.d.ts).
  for (const k of ['code', 'tensor', 'step', 'index', 'stepsDone', 'stage']) if (src[k] !== undefined) err[k] = src[k];
  if (typeof src.stack === 'string') err.stack = src.stack;
  return err;
}

/** The addon object behind each proxy of {@link adaptObject}. */
const proxyTargets = new WeakMap<object, object>();

/**
 * The addon's own object for `v` when `v` is one of this module's realm proxies (see
 * adaptObject), else `v`: what a native call that receives an addon object as an argument
 * (runOnline's `into.update.optimizer`, checked by its native type tag) must be given.
 */
export function nativeObject<T>(v: T): T {
  return (typeof v === 'object' && v !== null ? (proxyTargets.get(v) as T | undefined) : undefined) ?? v;
}

/** A proxy whose methods and getters return values (and throw errors) of this realm. */
function adaptObject<T extends object>(target: T): T {
  const wrapped = new Map<PropertyKey, unknown>();
  const t = target;
  // The proxy's own target is a blank stand-in: the addon defines its exports as
  // non-configurable, and a proxy must return those unchanged from its target.
  const proxy = new Proxy({} as T, {
    has: (_s, prop) => Reflect.has(t, prop),
    set: (_s, prop, value) => {
      try {
        return Reflect.set(t, prop, value, t);
      } catch (e) {
        throw localizeError(e);
      }
    },
    ownKeys: () => Reflect.ownKeys(t).filter((k) => Reflect.getOwnPropertyDescriptor(t, k)?.configurable !== false),
    get(_s, prop) {
      let v: unknown;
      try {
        v = Reflect.get(t, prop, t);
      } catch (e) {
        throw localizeError(e);
      }
      if (typeof v !== 'function') return localize(v);
      let f = wrapped.get(prop);
      if (f === undefined) {
        const fn = v as (...a: unknown[]) => unknown;
        f = (...args: unknown[]) => {
          try {
            return localize(fn.apply(t, args));
          } catch (e) {
            throw localizeError(e);
          }
        };
        wrapped.set(prop, f);
      }
      return f;
    },
  });
  proxyTargets.set(proxy, t);
  return proxy;
}

function adaptRealm(b: NativeBinding): NativeBinding {
  return adaptObject(b);
}

/** Which build {@link loadBinding} chose, from where, and why (loads it if needed). */
export function bindingInfo(): BindingFacts {
  loadBinding();
  return { ...(cached as { facts: BindingFacts }).facts };
}

/**
 * Converts an error thrown by the binding into a typed braintrace error when it
 * carries a braintrace code (`ERR_BRAINTRACE_*`), keeping code and message (the
 * original error is kept as `cause`): BUSY becomes {@link BusyError}, DISPOSED
 * {@link DisposedError}, NON_FINITE {@link NonFiniteError} (with the native error's
 * `tensor`, `step` and `index`), ABORTED {@link AbortError} (with `stepsDone`), any
 * other code a {@link NativeError}. The binding's own argument errors
 * (TypeError / RangeError, which carry code `ERR_BRAINTRACE_INVALID_ARGUMENT`) and
 * errors without a braintrace code are returned unchanged, so their class is kept.
 */
export function wrapNativeError(e: unknown): Error {
  if (e instanceof BraintraceError) return e;
  if (typeof e === 'object' && e !== null) {
    const src = e as { code?: unknown; message?: unknown; tensor?: unknown; step?: unknown; index?: unknown; stepsDone?: unknown };
    const code = src.code;
    const name = (e as { name?: unknown }).name;
    if (name === 'TypeError' || name === 'RangeError') return e as Error;
    if (typeof code === 'string' && code.startsWith('ERR_BRAINTRACE_')) {
      const message = String(src.message ?? code);
      const num = (v: unknown) => (typeof v === 'number' ? v : -1);
      switch (code) {
        case BusyError.CODE:
          return new BusyError(message, { cause: e });
        case DisposedError.CODE:
          return new DisposedError(message, { cause: e });
        case NonFiniteError.CODE:
          return new NonFiniteError(message, {
            tensor: typeof src.tensor === 'string' ? src.tensor : 'unknown',
            step: num(src.step),
            index: num(src.index),
            cause: e,
          });
        case AbortError.CODE:
          return new AbortError(message, { stepsDone: num(src.stepsDone), cause: e });
        default:
          return new NativeError(message, code, { cause: e });
      }
    }
    // An error of this realm or of another one (the addon's context under jest/vm).
    if (e instanceof Error || toStringTag(e) === 'Error') return e as Error;
  }
  return new Error(String(e));
}
