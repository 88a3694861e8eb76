import type { Finding } from '../core/findings.js';
import type { Actor } from '../core/types.js';
import type { Checkpoint } from './evaluator.js';

/** Lifecycle of an evaluation. */
export type EvaluationStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** One run of one evaluator on one version. */
export interface Evaluation {
  id: string;
  model: string;
  version: number;
  evaluator: { id: string; version: string };
  config: Record<string, unknown>;
  status: EvaluationStatus;
  requestedBy: string;
  credentialId: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** 0 to 1 while running. */
  progress: number;
  metrics: Record<string, number>;
  error: string | null;
  attempts: number;
}

/** A finding as stored on a version. */
export interface StoredFinding extends Finding {
  id: number;
  evaluationId: string;
  status: 'open' | 'resolved' | 'waived';
  createdAt: string;
}

/** Persistence of evaluations and their findings; also the durable job queue. */
export interface EvaluationStore {
  enqueue(
    target: { model: string; version: number },
    evaluator: { id: string; version: string },
    config: Record<string, unknown>,
    actor: Actor,
  ): Promise<Evaluation>;
  /** Queues `evaluator` for every version that has no evaluation by it yet; returns how many. */
  enqueueMissing(
    evaluator: { id: string; version: string },
    actor: Actor,
    limit: number,
  ): Promise<number>;
  /**
   * Takes the oldest queued evaluation, or a running one whose lease expired (its worker
   * died), for `owner` with a lease of `leaseMs`. At most one owner holds an evaluation at a
   * time. Evaluations that already used `maxAttempts` are failed instead.
   */
  claim(owner: string, leaseMs: number, maxAttempts: number): Promise<Evaluation | undefined>;
  /** Extends the lease and records progress; false when the lease was lost. */
  heartbeat(id: string, owner: string, leaseMs: number, progress: number): Promise<boolean>;
  /** Stores the findings and marks success, in one transaction, if `owner` still holds it. */
  complete(
    id: string,
    owner: string,
    findings: Finding[],
    metrics: Record<string, number>,
  ): Promise<boolean>;
  fail(id: string, owner: string, error: string): Promise<boolean>;
  /** Gives a running evaluation back to the queue (its server is shutting down). */
  release(id: string, owner: string): Promise<boolean>;
  get(id: string): Promise<Evaluation | undefined>;
  listForVersion(model: string, version: number): Promise<Evaluation[]>;
  /** The checkpoint of an evaluation; only the worker holding it (`owner`) can save to it. */
  checkpoint(id: string, owner: string): Checkpoint;
  /** Saved units of an evaluation's work in key order (red-team attempts and transcripts). */
  checkpoints(
    id: string,
    opts: { after?: string; limit: number },
  ): Promise<{ key: string; data: Record<string, unknown>; createdAt: string }[]>;
  /**
   * Records an evaluation run elsewhere (an imported result): succeeded, with its findings and
   * metrics, attributed to the importing identity, audited and attested in one transaction.
   */
  importResult(
    target: { model: string; version: number },
    tool: { id: string; version: string },
    config: Record<string, unknown>,
    findings: Finding[],
    metrics: Record<string, number>,
    actor: Actor,
  ): Promise<Evaluation>;
  findings(filter: {
    evaluationId?: string;
    model?: string;
    version?: number;
  }): Promise<StoredFinding[]>;
}
