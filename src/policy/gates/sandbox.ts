import type { Worker } from 'node:worker_threads';
import { spawnThread } from '../../core/threads.js';
import { CEL_ENGINE, factsDigest, type GateResult } from './evaluate.js';
import type { Facts } from './facts-schema.js';
import type { CompiledPolicy } from './policy-document.js';

/** What a sandboxed evaluation may use: wall time and heap. */
export interface GateBudget {
  ms: number;
  heapMb: number;
}

export const DEFAULT_GATE_BUDGET: GateBudget = { ms: 2000, heapMb: 256 };

type Reply = { id: number } & ({ ok: true; result: GateResult } | { ok: false; error: string });

/**
 * Evaluates a policy in a worker thread within a budget: past its time, or out of its heap,
 * the thread is ended, every rule fails naming the budget and the gate denies, while the
 * server's event loop keeps answering. Used where anyone who may read a version can make the
 * server evaluate (the gate dry run): a policy the publish-time cost check let through, or
 * one published before it, cannot stall or exhaust the server from there.
 */
export class GateSandbox {
  private worker: Worker | undefined;
  private nextId = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly budget: GateBudget = DEFAULT_GATE_BUDGET) {}

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = spawnThread('gate-thread', import.meta.url, {
      resourceLimits: { maxOldGenerationSizeMb: this.budget.heapMb },
    });
    w.unref();
    w.once('exit', () => {
      if (this.worker === w) this.worker = undefined;
    });
    this.worker = w;
    return w;
  }

  /** Ends the thread (the next evaluation starts another). */
  async close(): Promise<void> {
    await this.queue.catch(() => {});
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  evaluate(compiled: CompiledPolicy, facts: Facts): Promise<GateResult> {
    const run = this.queue.then(() => this.run(compiled, facts));
    this.queue = run.catch(() => {});
    return run;
  }

  private run(compiled: CompiledPolicy, facts: Facts): Promise<GateResult> {
    const w = this.thread();
    const id = ++this.nextId;
    return new Promise<GateResult>((resolve, reject) => {
      const stopped = (why: string) => {
        done();
        const error = `evaluation stopped: ${why}`;
        const results = compiled.validations.map(({ spec }) => ({
          name: spec.name,
          passed: false,
          action: spec.action,
          reason: spec.reason,
          message: spec.message ?? `${spec.name} failed`,
          error,
        }));
        resolve({
          policy: { name: compiled.name, digest: compiled.digest },
          engine: CEL_ENGINE,
          factsDigest: factsDigest(facts),
          results,
          // A bounded evaluation that stops is a deny, whatever the rules' actions.
          outcome: 'deny',
        });
      };
      const timer = setTimeout(() => {
        void w.terminate();
        if (this.worker === w) this.worker = undefined;
        stopped(`over its budget of ${this.budget.ms} ms`);
      }, this.budget.ms);
      const onMessage = (m: Reply) => {
        if (m.id !== id) return;
        done();
        if (m.ok) resolve(m.result);
        else reject(new Error(m.error));
      };
      const onError = (e: Error & { code?: string }) => {
        if (this.worker === w) this.worker = undefined;
        stopped(
          e.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `over its budget of ${this.budget.heapMb} MB of memory`
            : e.message,
        );
      };
      const onExit = () => {
        if (this.worker === w) this.worker = undefined;
        stopped('the evaluation thread ended');
      };
      const done = () => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
      };
      w.on('message', onMessage);
      w.on('error', onError);
      w.on('exit', onExit);
      w.postMessage({ id, doc: compiled.document, digest: compiled.digest, facts });
    });
  }
}
