/**
 * `bt.load(path, { key? })`: reads a checkpoint written by `learner.save(path)`.
 */
import { readCheckpoint, type Checkpoint, type ReadCheckpointOptions } from './checkpoint';

/**
 * Reads and verifies a checkpoint file (magic, version, lengths, SHA-256, and with
 * `key` the HMAC-SHA-256) without blocking the event loop. Apply it with
 * `learner.load(checkpoint, { optimizer })`.
 * @throws CheckpointError (reason 'not-a-checkpoint' | 'unsupported-version' |
 *   'truncated' | 'checksum-mismatch' | 'corrupt' | 'key-required' |
 *   'authentication-failed' | 'unauthenticated') naming the file; ArgumentError for
 *   a bad path, key or unknown option.
 */
export function load(path: string, options: ReadCheckpointOptions = {}): Promise<Checkpoint> {
  return readCheckpoint(path, options);
}
