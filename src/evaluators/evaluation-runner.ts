import { randomBytes } from 'node:crypto';
import type { Actor, Version } from '../core/types.js';
import type { Evaluation, EvaluationStore } from './evaluation-store.js';
import type { Evaluator } from './evaluator.js';

/** How the runner finds a version's files and where it logs. */
export interface RunnerDeps {
  store: EvaluationStore;
  evaluators: Evaluator[];
  getVersion(model: string, version: number): Promise<Version>;
  localPath(digest: string): Promise<string>;
  log: { info(o: object, msg: string): void; error(o: object, msg: string): void };
}

/** Runner settings. */
export interface RunnerOptions {
  /** A claimed job is taken back by another worker when its lease runs out (worker died). */
  leaseMs: number;
  pollMs: number;
  maxAttempts: number;
  /** Queue the artifact scan for every version that has none. */
  autoScan: boolean;
}

/** The identity under which the server itself queues evaluations. */
export const SYSTEM_ACTOR: Actor = { identity: 'modelgate', credentialId: 'system' };

/**
 * The in-process worker: claims queued evaluations from the database (one at a time per
 * process, never one evaluation in two places: the claim is a conditional update), runs the
 * evaluator while renewing its lease, and stores the findings with the result in one
 * transaction. A job whose worker died is claimed again once its lease expires.
 */
export class EvaluationRunner {
  readonly owner = `worker-${process.pid}-${randomBytes(4).toString('hex')}`;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private current: AbortController | undefined;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly opts: RunnerOptions,
  ) {}

  /** The evaluators this server runs. */
  evaluators(): readonly Evaluator[] {
    return this.deps.evaluators;
  }

  evaluator(id: string): Evaluator | undefined {
    return this.deps.evaluators.find((e) => e.id === id);
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** Asks the loop to look for work now (after a push or a new evaluation). */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.current?.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let worked = false;
      try {
        if (this.opts.autoScan && this.evaluator('artifact-scan')) {
          const scan = this.evaluator('artifact-scan');
          if (scan)
            await this.deps.store.enqueueMissing(
              { id: scan.id, version: scan.version },
              SYSTEM_ACTOR,
              100,
            );
        }
        const job = await this.deps.store.claim(
          this.owner,
          this.opts.leaseMs,
          this.opts.maxAttempts,
        );
        if (job) {
          worked = true;
          await this.execute(job);
        }
      } catch (e) {
        this.deps.log.error({ err: e }, 'evaluation runner error');
      }
      if (!worked && !this.stopping) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.opts.pollMs);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  private async execute(job: Evaluation): Promise<void> {
    const evaluator = this.evaluator(job.evaluator.id);
    if (!evaluator) {
      await this.deps.store.fail(
        job.id,
        this.owner,
        `no evaluator ${job.evaluator.id} in this server`,
      );
      return;
    }
    const abort = new AbortController();
    this.current = abort;
    let progress = 0;
    const beat = setInterval(
      () => {
        void this.deps.store
          .heartbeat(job.id, this.owner, this.opts.leaseMs, progress)
          .then((held) => {
            if (!held) abort.abort();
          });
      },
      Math.max(50, Math.floor(this.opts.leaseMs / 3)),
    );
    try {
      const version = await this.deps.getVersion(job.model, job.version);
      const files = [];
      for (const f of version.files ?? [])
        files.push({ name: f.path, path: await this.deps.localPath(f.digest) });
      this.deps.log.info(
        { evaluation: job.id, evaluator: evaluator.id, model: job.model, version: job.version },
        'evaluation started',
      );
      const result = await evaluator.run({
        version,
        files,
        config: job.config,
        progress: (p) => {
          progress = Math.min(1, Math.max(0, p));
        },
        signal: abort.signal,
        checkpoint: this.deps.store.checkpoint(job.id, this.owner),
      });
      const stored = await this.deps.store.complete(
        job.id,
        this.owner,
        result.findings,
        result.metrics,
      );
      this.deps.log.info(
        { evaluation: job.id, findings: result.findings.length, stored },
        'evaluation finished',
      );
    } catch (e) {
      if (this.stopping) {
        // A server shutting down hands the job back rather than failing it.
        await this.deps.store.release(job.id, this.owner);
        this.deps.log.info(
          { evaluation: job.id },
          'evaluation handed back to the queue at shutdown',
        );
        return;
      }
      await this.deps.store.fail(job.id, this.owner, (e as Error).message ?? String(e));
      this.deps.log.error({ evaluation: job.id, err: e }, 'evaluation failed');
    } finally {
      clearInterval(beat);
      this.current = undefined;
    }
  }
}
