import type { Actor } from '../core/types.js';
import type { GateStore, RecheckReport } from './gate-store.js';

/**
 * Runs re-checks of every protected alias: periodically, and on demand (after each policy
 * publish). Requests that arrive while one runs are folded into one more run after it, so a
 * burst of publishes costs two passes, not one per publish.
 */
export class GateRechecker {
  private running: Promise<RecheckReport> | undefined;
  private again: Promise<RecheckReport> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly gates: GateStore,
    private readonly actor: Actor,
    private readonly onError: (err: unknown) => void,
    private readonly onReport: (r: RecheckReport) => void = () => {},
  ) {}

  /** Re-checks now (or right after the pass in progress); resolves with that pass's report. */
  run(): Promise<RecheckReport> {
    if (!this.running) {
      this.running = this.gates.recheck(this.actor).finally(() => {
        this.running = undefined;
      });
      this.running.then(this.onReport, () => {});
      return this.running;
    }
    this.again ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.again = undefined;
        return this.run();
      });
    return this.again;
  }

  /** Starts the periodic pass; 0 turns it off. */
  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => {
      this.run().catch(this.onError);
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([this.running, this.again]);
  }
}
