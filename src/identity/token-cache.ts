import type { TokenRecord } from '../registry/registry-store.js';

/**
 * The longest a cached token lookup is trusted. A token revoked (or rotated out, or its
 * grants changed) through another server process stops working here within this time.
 *
 * Why a short TTL rather than LISTEN/NOTIFY or a revocation-epoch query: it is correct on both
 * engines (SQLite has no notifications, and a dropped PostgreSQL listener connection would
 * silently stretch revocation to forever), it needs no extra connection or table, and it costs
 * at most one indexed lookup per token per second per process, whereas an epoch query would
 * cost a round trip on every request. A burst of requests with one token still costs one read.
 */
export const MAX_TOKEN_CACHE_MS = 1_000;

/**
 * A short-lived cache of token lookups, keyed by the token's hash, so that a burst of
 * requests with one token costs one database read. Entries live `ttlMs` (at most
 * MAX_TOKEN_CACHE_MS) and never past the credential's own expiry: an expired token is refused
 * from its first request after `expiresAt`, cached or not. In this process, `forget` drops an
 * entry at once. Negative answers are not cached.
 */
export class TokenCache {
  private readonly entries = new Map<string, { rec: TokenRecord; until: number }>();
  private readonly ttlMs: number;

  constructor(
    private readonly lookup: (hash: string, ip: string | null) => Promise<TokenRecord | undefined>,
    ttlMs = MAX_TOKEN_CACHE_MS,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.ttlMs = Math.min(ttlMs, MAX_TOKEN_CACHE_MS);
  }

  async find(hash: string, ip: string | null): Promise<TokenRecord | undefined> {
    const hit = this.entries.get(hash);
    const t = this.now();
    if (hit && hit.until > t) return hit.rec;
    const rec = await this.lookup(hash, ip);
    if (!rec || (rec.expiresAt !== undefined && Date.parse(rec.expiresAt) <= t)) {
      this.entries.delete(hash);
      return undefined;
    }
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    // The entry ends with the TTL or the credential, whichever is sooner.
    const ends = rec.expiresAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(rec.expiresAt);
    this.entries.set(hash, { rec, until: Math.min(t + this.ttlMs, ends) });
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
