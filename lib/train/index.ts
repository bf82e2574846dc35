/**
 * Training loops and checkpoints: `fit` (batches of sequences), `streamStep`
 * (one observation at a time), and `saveCheckpoint` / `loadCheckpoint` /
 * `restoreCheckpoint`. See docs/training.md.
 */
export { fit, type FitBatch, type FitData, type FitOptions, type FitProgress, type FitResult, type UpdateEvery } from './fit';
export { streamStep, type StreamStepOptions, type StreamStepResult } from './stream';
export {
  CHECKPOINT_MAGIC,
  CHECKPOINT_VERSION,
  CHECKPOINT_VERSION_AUTHENTICATED,
  CHECKPOINT_LIMITS,
  CheckpointError,
  cleanStaleTempFiles,
  captureCheckpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  loadCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  writeFileAtomic,
  type Checkpoint,
  type CheckpointAlgorithm,
  type CheckpointErrorReason,
  type CheckpointKey,
  type EncodeCheckpointOptions,
  type LoadCheckpointOptions,
  type ReadCheckpointOptions,
  type RestoreCheckpointOptions,
  type SaveCheckpointOptions,
} from './checkpoint';
export { applyGradients, withLearnerLock, type OptimizerLike, type UpdateInfo } from './common';
