import { describe, expect, it } from 'vitest';
import { TokenCache } from './token-cache.js';

describe('TokenCache', () => {
  it('answers repeated lookups from memory until the entry expires, never caching a miss', async () => {
    let now = 1000;
    const calls: string[] = [];
    const known = new Map([
      ['h1', { tokenId: 'tok_1', identity: 'admin', kind: 'user' as const, roles: [], teams: [] }],
    ]);
    const cache = new TokenCache(
      async (h) => {
        calls.push(h);
        return known.get(h);
      },
      1000,
      2,
      () => now,
    );
    expect(await cache.find('h1', null)).toMatchObject({ tokenId: 'tok_1' });
    expect(await cache.find('h1', null)).toMatchObject({ tokenId: 'tok_1' });
    expect(calls).toEqual(['h1']);
    expect(await cache.find('nope', null)).toBeUndefined();
    expect(await cache.find('nope', null)).toBeUndefined();
    expect(calls).toEqual(['h1', 'nope', 'nope']);
    // Revoked elsewhere: still served until the TTL passes, then looked up again.
    known.delete('h1');
    now += 999;
    expect(await cache.find('h1', null)).toBeDefined();
    now += 2;
    expect(await cache.find('h1', null)).toBeUndefined();
    // forget() drops an entry at once.
    known.set('h1', { tokenId: 'tok_1', identity: 'admin', kind: 'user', roles: [], teams: [] });
    await cache.find('h1', null);
    cache.forget('h1');
    known.delete('h1');
    expect(await cache.find('h1', null)).toBeUndefined();
  });

  it('never serves an entry past the credential expiry, and never trusts one past a second', async () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    let calls = 0;
    const rec = {
      tokenId: 'tok_1',
      identity: 'ann',
      kind: 'user' as const,
      roles: [],
      teams: [],
      expiresAt: '2030-01-01T00:00:00.500Z',
    };
    // The lookup still answers with the record (as a store whose clock lags might).
    const cache = new TokenCache(
      async () => {
        calls++;
        return rec;
      },
      60_000,
      10,
      () => now,
    );
    expect(await cache.find('h', null)).toBeDefined();
    now += 499;
    expect(await cache.find('h', null)).toBeDefined();
    expect(calls).toBe(1);
    now += 1;
    expect(await cache.find('h', null)).toBeUndefined();
    expect(cache.has('h')).toBe(false);
    // A TTL asked for beyond a second is held to a second: revocations elsewhere apply within it.
    const forever = {
      tokenId: 'tok_2',
      identity: 'ann',
      kind: 'user' as const,
      roles: [],
      teams: [],
    };
    let looked = 0;
    const capped = new TokenCache(
      async () => {
        looked++;
        return forever;
      },
      60_000,
      10,
      () => now,
    );
    await capped.find('h', null);
    now += 999;
    await capped.find('h', null);
    expect(looked).toBe(1);
    now += 1;
    await capped.find('h', null);
    expect(looked).toBe(2);
  });

  it('stays within its size bound', async () => {
    const calls: string[] = [];
    const cache = new TokenCache(
      async (h) => {
        calls.push(h);
        return { tokenId: h, identity: h, kind: 'user', roles: [], teams: [] };
      },
      60_000,
      2,
    );
    await cache.find('a', null);
    await cache.find('b', null);
    await cache.find('c', null); // evicts a
    await cache.find('a', null);
    expect(calls).toEqual(['a', 'b', 'c', 'a']);
  });
});
