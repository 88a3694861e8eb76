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
      5000,
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
    now += 4999;
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
