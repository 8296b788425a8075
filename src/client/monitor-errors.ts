/**
 * A log caught misbehaving by `ucanlog monitor` (src/client/monitor.ts): two checkpoints, both
 * signed by the log's pinned key (c2sp.org/signed-note) and cosigned per the pinned witness policy,
 * that no append-only log can have published — the evidence a third party can check.
 */

/** Exit status of `ucanlog monitor` when a log misbehaved (0 ok, 1 usage, 2 refused, 3 verification failed, 4 unreachable, 5 misbehaved). */
export const LOG_MISBEHAVED_EXIT_CODE = 5

/** One checkpoint of the evidence: where it was seen, its tree size (entries), root hash (base64) and the whole signed note. */
export interface CheckpointEvidence {
  /** Where it came from: a URL (`…/logs/<space>/checkpoint`), or `pinned <file>` for one saved earlier. */
  source: string
  size: number
  rootHash: string
  note: string
}

/**
 * What went wrong, as the error's `name`:
 * - `LogForked`: the later checkpoint's tree does not extend the earlier one's (RFC 6962 §2.1.2
 *   consistency proof, built from the larger tree's public tiles, authenticated against its root);
 * - `SplitView`: two checkpoints of the same size with different roots;
 * - `LogRolledBack`: the service now publishes a smaller tree than one it published before.
 */
export type MisbehaviorKind = 'LogForked' | 'SplitView' | 'LogRolledBack'

/** Two validly signed checkpoints of one log that contradict each other. CLI exit {@link LOG_MISBEHAVED_EXIT_CODE}. */
export class LogMisbehavedError extends Error {
  override name: MisbehaviorKind
  /** CLI exit status: 5 (the log misbehaved). */
  readonly exitCode = LOG_MISBEHAVED_EXIT_CODE
  /** The log (space DID). */
  readonly space: string
  /** The two contradicting checkpoints: the one seen first (or pinned), then the other. */
  readonly evidence: [CheckpointEvidence, CheckpointEvidence]
  constructor(kind: MisbehaviorKind, space: string, message: string, evidence: [CheckpointEvidence, CheckpointEvidence]) {
    super(message)
    this.name = kind
    this.space = space
    this.evidence = evidence
  }
}
