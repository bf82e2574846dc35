/**
 * The addon's optimizer factory (through `loadBinding()`, which adapts results across
 * realms under jest / node:vm). Arrays received from the addon are still copied by the
 * optimizer classes before they are kept.
 */
import type { NativeOptimizer, NativeOptimizerHyper, NativeOptimizerKind } from '../../types/binding';
import type { DType } from '../graph/ir';
import { loadBinding } from '../runtime/native';

/** `createOptimizer` of the chosen native build. */
export function createNativeOptimizer(kind: NativeOptimizerKind, hyper: NativeOptimizerHyper, dtype: DType): NativeOptimizer {
  return loadBinding().createOptimizer(kind, hyper, dtype);
}
