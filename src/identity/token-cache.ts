import type { TokenRecord } from '../registry/registry-store.js';

/**
 * A short-lived cache of token lookups, keyed by the token's hash, so that a burst of
 * requests with one token costs one database read. Entries live `ttlMs`: a token revoked
 * through another server process stops working within that time (in this process,
 * `forget` drops it at once). Negative answers are not cached.
 */
export class TokenCache {
  private readonly entries = new Map<string, { rec: TokenRecord; until: number }>();

  constructor(
    private readonly lookup: (hash: string, ip: string | null) => Promise<TokenRecord | undefined>,
    private readonly ttlMs = 5_000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async find(hash: string, ip: string | null): Promise<TokenRecord | undefined> {
    const hit = this.entries.get(hash);
    const t = this.now();
    if (hit && hit.until > t) return hit.rec;
    const rec = await this.lookup(hash, ip);
    if (!rec) {
      this.entries.delete(hash);
      return undefined;
    }
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(hash, { rec, until: t + this.ttlMs });
    return rec;
  }

  /** True when a lookup of this hash is cached and still fresh. */
  has(hash: string): boolean {
    const hit = this.entries.get(hash);
    return hit !== undefined && hit.until > this.now();
  }

  forget(hash: string): void {
    this.entries.delete(hash);
  }

  /** Drops the entry of a token by its id (after its identity's grants changed). */
  forgetId(tokenId: string): void {
    for (const [hash, e] of this.entries) if (e.rec.tokenId === tokenId) this.entries.delete(hash);
  }
}
