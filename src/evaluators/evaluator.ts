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
  run(input: EvaluatorInput): Promise<EvaluatorResult>;
}
