import { ModelgateError } from './errors.js';

/**
 * At most `limit` uses per key in each fixed window of `windowMs`, counted in this process.
 * Bounded: at most `maxKeys` counters are kept, the oldest dropped first.
 */
export class WindowLimit {
  private readonly windows = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly what: string,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one use by `key`; throws RATE_LIMITED (with the wait) when it is over the limit. */
  take(key: string): void {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || w.until <= t) {
      this.windows.delete(key);
      if (this.windows.size >= this.maxKeys)
        this.windows.delete(this.windows.keys().next().value as string);
      w = { count: 0, until: t + this.windowMs };
      this.windows.set(key, w);
    }
    if (w.count >= this.limit) {
      const wait = Math.max(1, Math.ceil((w.until - t) / 1000));
      throw new ModelgateError(
        'RATE_LIMITED',
        `${this.what}: at most ${this.limit} per ${Math.round(this.windowMs / 60_000)} min for ${key}; try again in ${wait} s`,
        { retryAfter: wait },
      );
    }
    w.count++;
  }
}
