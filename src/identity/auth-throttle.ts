import { ModelgateError } from '../core/errors.js';

/**
 * Counts failed authentications per client address in fixed windows; an address over the
 * limit is refused (without a token lookup) until its window ends. Bounded: at most
 * `maxAddresses` are tracked, the oldest dropped first.
 */
export class AuthThrottle {
  private readonly failures = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly limit = 20,
    private readonly windowMs = 60_000,
    private readonly maxAddresses = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the address may try again, or 0 when it may try now. */
  blockedFor(address: string): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    const t = this.now();
    if (f.until <= t) {
      this.failures.delete(address);
      return 0;
    }
    return f.count >= this.limit ? Math.ceil((f.until - t) / 1000) : 0;
  }

  /** Throws RATE_LIMITED (with the wait, for Retry-After) while the address is blocked. */
  refuseIfBlocked(address: string): void {
    const wait = this.blockedFor(address);
    if (wait > 0)
      throw new ModelgateError(
        'RATE_LIMITED',
        `too many failed authentication attempts from this address: try again in ${wait} s`,
        { retryAfter: wait },
      );
  }

  failed(address: string): void {
    const t = this.now();
    const f = this.failures.get(address);
    if (f && f.until > t) {
      f.count++;
      return;
    }
    if (this.failures.size >= this.maxAddresses) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(address, { count: 1, until: t + this.windowMs });
  }
}
