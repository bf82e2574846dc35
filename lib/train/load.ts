/**
 * `bt.load(path)`: reads a checkpoint written by `learner.save(path)`.
 */
import { readCheckpoint, type Checkpoint } from './checkpoint';

/**
 * Reads and verifies a checkpoint file (magic, version, lengths, SHA-256) without
 * blocking the event loop. Apply it with `learner.load(checkpoint, { optimizer })`.
 * @throws CheckpointError (reason 'not-a-checkpoint' | 'unsupported-version' |
 *   'truncated' | 'checksum-mismatch' | 'corrupt') naming the file.
 */
export function load(path: string): Promise<Checkpoint> {
  return readCheckpoint(path);
}
