import { ModelgateError } from '../core/errors.js';

/**
 * Counts failed authentications in fixed windows, per client address and, where a failure
 * can be attributed (a wrong password for a user name), per identity. Bounded: at most
 * `maxKeys` counters are kept, the oldest dropped first.
 *
 * Callers decide when to ask: an unguessable credential (a Modelgate token, a signed OIDC token)
 * is checked first and only refused when it is invalid, so a valid one is never locked out by
 * its neighbours' failures (behind a NAT or a proxy they share its address); a guessable one (a
 * password) is refused before it is checked while its address or its identity is over the limit.
 */
export class AuthThrottle {
  private readonly failures = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly limit = 20,
    private readonly windowMs = 60_000,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  private wait(key: string): number {
    const f = this.failures.get(key);
    if (!f) return 0;
    const t = this.now();
    if (f.until <= t) {
      this.failures.delete(key);
      return 0;
    }
    return f.count >= this.limit ? Math.ceil((f.until - t) / 1000) : 0;
  }

  /** Seconds until the address may try again, or 0 when it may try now. */
  blockedFor(address: string, identity?: string): number {
    return Math.max(
      this.wait(`ip ${address}`),
      identity === undefined ? 0 : this.wait(`id ${identity}`),
    );
  }

  /**
   * Throws RATE_LIMITED (with the wait, for Retry-After) while the address, or the identity
   * when one is named, is over the limit.
   */
  refuseIfBlocked(address: string, identity?: string): void {
    const byAddress = this.wait(`ip ${address}`);
    const byIdentity = identity === undefined ? 0 : this.wait(`id ${identity}`);
    const wait = Math.max(byAddress, byIdentity);
    if (wait > 0)
      throw new ModelgateError(
        'RATE_LIMITED',
        `too many failed authentication attempts ${byAddress >= byIdentity ? 'from this address' : 'for this identity'}: try again in ${wait} s`,
        { retryAfter: wait },
      );
  }

  /** Counts one failure against the address, and against the identity when one is named. */
  failed(address: string, identity?: string): void {
    this.count(`ip ${address}`);
    if (identity !== undefined) this.count(`id ${identity}`);
  }

  private count(key: string): void {
    const t = this.now();
    const f = this.failures.get(key);
    if (f && f.until > t) {
      f.count++;
      return;
    }
    this.failures.delete(key);
    if (this.failures.size >= this.maxKeys) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(key, { count: 1, until: t + this.windowMs });
  }
}
