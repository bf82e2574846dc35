/**
 * `bt.compile`: the entry point that turns a model and an algorithm into a learner.
 */
import type { CompileOptions, Learner } from './algorithms/learner';
import type { Module } from './dsl/module';
import { ArgumentError } from './runtime/errors';

/** A learning algorithm: a Learner class constructed as `new Algorithm(model, options)`. */
export type AlgorithmClass<L extends Learner = Learner, O extends CompileOptions = CompileOptions> = new (
  model: Module,
  options: O,
) => L;

/**
 * Compiles `model` for `algorithm` (e.g. `bt.BPTT`): initialises the model's
 * weights from `options.seed` and its states for `options.batchSize`, traces
 * one step, and returns the learner (which owns native memory: call
 * `dispose()` when done).
 *
 * @param model a Module whose `update(x)` describes one time step.
 * @param algorithm the learner class, e.g. `bt.BPTT`.
 * @param options `{ inputShape, batchSize?, dtype?, seed? }` plus the algorithm's own options.
 */
export function compile<L extends Learner, O extends CompileOptions>(
  model: Module,
  algorithm: AlgorithmClass<L, O>,
  options: O,
): L {
  if (typeof algorithm !== 'function') {
    throw new ArgumentError(`compile: algorithm must be a learner class such as bt.BPTT; got ${String(algorithm)}`);
  }
  return new algorithm(model, options);
}
