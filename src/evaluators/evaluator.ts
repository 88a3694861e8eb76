import type { Finding } from '../core/findings.js';
import type { Version } from '../core/types.js';

/** What an evaluator gets: the version, its files on local disk, its configuration. */
export interface EvaluatorInput {
  version: Version;
  /** Each file of the version: its path in the version and where its bytes are readable. */
  files: { name: string; path: string }[];
  config: Record<string, unknown>;
  /** Reports progress from 0 to 1. */
  progress(fraction: number): void;
  signal: AbortSignal;
  /**
   * The evaluation's checkpoint: what an earlier run of this same evaluation (a crash, a lost
   * lease) already finished. Evaluators whose work is many independent requests save each and
   * skip the saved ones when they run again.
   */
  checkpoint?: Checkpoint;
}

/** One finished unit of an evaluator's work, kept so that a resumed run does not repeat it. */
export interface CheckpointRecord {
  /** Unique within the evaluation, e.g. `<probe>#<generation>`. */
  key: string;
  /** What the evaluator needs to count it again without redoing it (JSON). */
  data: Record<string, unknown>;
}

/** Saved units of work of one evaluation. */
export interface Checkpoint {
  load(): Promise<Map<string, Record<string, unknown>>>;
  /** Saves records; a key saved before keeps its first record. */
  save(records: CheckpointRecord[]): Promise<void>;
}

/** What an evaluator returns: findings and numeric metrics. */
export interface EvaluatorResult {
  findings: Finding[];
  metrics: Record<string, number>;
}

/** A security, safety or quality check that runs on a version and writes findings back to it. */
export interface Evaluator {
  readonly id: string;
  readonly version: string;
  readonly description: string;
  /** Whether this evaluator applies to the version at all. */
  accepts(version: Version): boolean;
  /**
   * Checks a run's configuration when it is requested and returns it completed with defaults
   * (what is stored); throws a ModelgateError naming the bad setting. Optional.
   */
  validate?(config: Record<string, unknown>): object;
  run(input: EvaluatorInput): Promise<EvaluatorResult>;
}
