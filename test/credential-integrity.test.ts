import { expect, it } from 'vitest';
import { loadConfig } from '../src/server/config.js';
import { apiOf, type TestApp, testApp, tokenFor } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';

// Invariant 3 of DESIGN.md: a credential never grows; expiry and revocation hold from the next
// request. Issue 16, findings 1, 9 and 10, through the HTTP surface on both engines.

interface Issued {
  secret: string;
  token: { id: string; scopes: string[] | null; expiresAt: string | null; identity: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();

/** Issues a token for `identity` as the admin (unscoped, never expiring) through the API. */
async function issue(t: TestApp, identity: string, body: object = {}): Promise<Issued> {
  const r = await apiOf(t)('POST', `/identities/${identity}/tokens`, { name: 'x', ...body });
  expect(r.statusCode, r.body).toBe(201);
  return r.json() as Issued;
}

describeEachEngine('credential integrity', (db) => {
  it('a read-scoped token cannot rotate or revoke another token of its identity (finding 1)', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'rita', kind: 'user', roles: ['contributor'] });
    const wide = await issue(t, 'rita');
    const narrow = await issue(t, 'rita', { scopes: ['read'] });
    expect(narrow.token.scopes).toEqual(['read']);

    const rotated = await api('POST', `/tokens/${wide.token.id}/rotate`, {}, narrow.secret);
    expect([403, 404]).toContain(rotated.statusCode);
    expect(rotated.json()).not.toHaveProperty('secret');
    const revoked = await api('DELETE', `/tokens/${wide.token.id}`, undefined, narrow.secret);
    expect([403, 404]).toContain(revoked.statusCode);
    // Nothing happened to the other token: it works and has no successor.
    expect((await api('GET', '/whoami', undefined, wide.secret)).statusCode).toBe(200);
    const mine = (await api('GET', '/tokens', undefined, wide.secret)).json().items as {
      id: string;
      rotatedFrom: string | null;
      revokedAt: string | null;
      expiresAt: string | null;
    }[];
    expect(mine).toHaveLength(2);
    expect(mine.every((x) => x.rotatedFrom === null && x.revokedAt === null)).toBe(true);
    expect(mine.find((x) => x.id === wide.token.id)?.expiresAt).toBeNull();

    // It may still revoke itself (giving up power never widens anything).
    const self = await api('DELETE', `/tokens/${narrow.token.id}`, undefined, narrow.secret);
    expect(self.statusCode).toBe(200);
    expect((await api('GET', '/whoami', undefined, narrow.secret)).statusCode).toBe(401);
  });

  it('rotation keeps the scopes and the expiry of the rotated token', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'rob', kind: 'user', roles: ['contributor'] });
    const old = await issue(t, 'rob', { scopes: ['read', 'pushVersion'], expiresInDays: 3 });
    const r = await api('POST', `/tokens/${old.token.id}/rotate`, {}, old.secret);
    expect(r.statusCode, r.body).toBe(201);
    const fresh = r.json() as Issued;
    expect(fresh.token.scopes).toEqual(['read', 'pushVersion']);
    expect(fresh.token.expiresAt).toBe(old.token.expiresAt);
    // The new token is as limited as the old one: a write outside its scopes is refused.
    await api('POST', '/models', { name: 'scoped-m' });
    const patch = await api('PATCH', '/models/scoped-m', { description: 'x' }, fresh.secret);
    expect(patch.statusCode).toBe(403);

    // An unscoped token that expires cannot rotate a never-expiring sibling into a fresh secret
    // that outlives itself.
    const forever = await issue(t, 'rob');
    const brief = await tokenFor(t, { name: 'rob', kind: 'user' }, { expiresAt: inSeconds(600) });
    const longer = await api('POST', `/tokens/${forever.token.id}/rotate`, {}, brief);
    expect(longer.statusCode).toBe(403);
    expect(longer.json().code).toBe('TOKEN_WIDENING');
    expect(longer.json()).not.toHaveProperty('secret');
  });

  it('a scoped or expiring token cannot mint a wider or longer-lived token', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'sam', kind: 'user', roles: ['viewer'] });
    // An admin's token limited to managing identities and reading, expiring in 10 minutes.
    const until = inSeconds(600);
    const limited = await tokenFor(
      t,
      { name: 'admin', kind: 'user' },
      { scopes: ['manageIdentities', 'read'], expiresAt: until },
    );
    // Omitted limits default to the caller's own.
    const defaulted = await api('POST', '/identities/sam/tokens', { name: 'd' }, limited);
    expect(defaulted.statusCode, defaulted.body).toBe(201);
    expect((defaulted.json() as Issued).token.scopes?.sort()).toEqual(['manageIdentities', 'read']);
    expect((defaulted.json() as Issued).token.expiresAt).toBe(until);
    // A subset is fine.
    const sub = await api(
      'POST',
      '/identities/sam/tokens',
      { name: 's', scopes: ['read'] },
      limited,
    );
    expect(sub.statusCode, sub.body).toBe(201);
    expect((sub.json() as Issued).token.scopes).toEqual(['read']);
    // Asking for more is refused, with a code saying why.
    const wider = await api(
      'POST',
      '/identities/sam/tokens',
      { name: 'w', scopes: ['read', 'approvePromotion'] },
      limited,
    );
    expect(wider.statusCode).toBe(403);
    expect(wider.json().code).toBe('TOKEN_WIDENING');
    const longer = await api(
      'POST',
      '/identities/sam/tokens',
      { name: 'l', expiresInDays: 30 },
      limited,
    );
    expect(longer.statusCode).toBe(403);
    expect(longer.json().code).toBe('TOKEN_WIDENING');
    const tokens = (await api('GET', '/identities/sam/tokens')).json().items as unknown[];
    expect(tokens).toHaveLength(2);

    // An unscoped but expiring token: the minted token's expiry defaults to the caller's.
    const expiring = await tokenFor(t, { name: 'admin', kind: 'user' }, { expiresAt: until });
    const minted = await api('POST', '/identities/sam/tokens', { name: 'e' }, expiring);
    expect(minted.statusCode, minted.body).toBe(201);
    expect((minted.json() as Issued).token.expiresAt).toBe(until);
    expect((minted.json() as Issued).token.scopes).toBeNull();
  });

  it('refuses to rotate an expired token (finding 10)', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'eve', kind: 'user' });
    await tokenFor(t, { name: 'eve', kind: 'user' }, { expiresAt: '2020-01-01T00:00:00.000Z' });
    const expired = (
      (await api('GET', '/identities/eve/tokens')).json().items as { id: string }[]
    )[0];
    const r = await api('POST', `/tokens/${expired?.id}/rotate`, {});
    expect(r.statusCode).toBe(409);
    expect(r.json().code).toBe('TOKEN_EXPIRED');
    expect(r.json()).not.toHaveProperty('secret');
    expect((await api('GET', '/identities/eve/tokens')).json().items).toHaveLength(1);
  });

  it('a cached token is refused from the first request after it expires (finding 10)', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const ends = Date.now() + 2000;
    const soon = await tokenFor(
      t,
      { name: 'fay', kind: 'user' },
      { expiresAt: new Date(ends).toISOString() },
    );
    // Used again and again across its expiry, so a lookup (cached for up to a second) is always
    // in the cache when the expiry passes. No assertion on speed: each answer is judged by
    // whether its request began after the expiry or ended before it.
    const seen: { start: number; end: number; status: number }[] = [];
    while (Date.now() < ends + 400) {
      const start = Date.now();
      const { statusCode } = await api('GET', '/whoami', undefined, soon);
      seen.push({ start, end: Date.now(), status: statusCode });
      await sleep(50);
    }
    const before = seen.filter((x) => x.end < ends);
    const after = seen.filter((x) => x.start > ends);
    expect(before.length).toBeGreaterThan(0);
    expect(after.length).toBeGreaterThan(0);
    expect(before.map((x) => x.status)).toEqual(before.map(() => 200));
    expect(after.map((x) => x.status)).toEqual(after.map(() => 401));
  });

  it('a token revoked or rotated out through another server process stops within a second', async () => {
    const a = await testApp(db());
    const b = await testApp(db());
    const apiA = apiOf(a);
    const apiB = apiOf(b);
    await apiB('POST', '/identities', { name: 'gus', kind: 'user' });
    const one = await issue(b, 'gus');
    const two = await issue(b, 'gus');
    // Both are used (and cached) on process A.
    expect((await apiA('GET', '/whoami', undefined, one.secret)).statusCode).toBe(200);
    expect((await apiA('GET', '/whoami', undefined, two.secret)).statusCode).toBe(200);
    // Process B revokes one and rotates the other out without overlap.
    expect((await apiB('DELETE', `/tokens/${one.token.id}`)).statusCode).toBe(200);
    const rotated = await apiB('POST', `/tokens/${two.token.id}/rotate`, { overlapSeconds: 0 });
    expect(rotated.statusCode).toBe(201);
    await sleep(1100);
    expect((await apiA('GET', '/whoami', undefined, one.secret)).statusCode).toBe(401);
    expect((await apiA('GET', '/whoami', undefined, two.secret)).statusCode).toBe(401);
    const successor = (rotated.json() as Issued).secret;
    expect((await apiA('GET', '/whoami', undefined, successor)).statusCode).toBe(200);
  });

  it('a read-scoped token cannot change its identity password (self routes obey scopes)', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const pw = 'a long enough password';
    await api('POST', '/identities', { name: 'pia', kind: 'user', password: pw });
    const reader = await tokenFor(t, { name: 'pia', kind: 'user' }, { scopes: ['read'] });
    const r = await api(
      'POST',
      '/password',
      { current: pw, password: 'another long one!' },
      reader,
    );
    expect(r.statusCode).toBe(403);
    expect((await api('POST', '/login', { name: 'pia', password: pw }, null)).statusCode).toBe(201);
    // whoami and the token list stay open to it: they only read the caller's own record.
    expect((await api('GET', '/whoami', undefined, reader)).statusCode).toBe(200);
    expect((await api('GET', '/tokens', undefined, reader)).statusCode).toBe(200);
  });

  it('a scoped or expiring token cannot set a password, which would log in without its limits', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'root2', kind: 'user', roles: ['admin'] });
    const narrow = await issue(t, 'admin', { scopes: ['manageIdentities'], expiresInDays: 1 });
    const short = await issue(t, 'admin', { expiresInDays: 1 });
    const password = 'a long enough password';
    for (const who of [narrow.secret, short.secret]) {
      const set = await api('PUT', '/identities/root2/password', { password }, who);
      expect(set.statusCode, set.body).toBe(403);
      expect(set.json().code).toBe('TOKEN_WIDENING');
      const created = await api(
        'POST',
        '/identities',
        {
          name: `new-${who
            .slice(-6)
            .toLowerCase()
            .replace(/[^a-z0-9]/g, 'x')}`,
          kind: 'user',
          roles: ['admin'],
          password,
        },
        who,
      );
      expect(created.statusCode, created.body).toBe(403);
    }
    // Nothing was set: root2 cannot log in with that password.
    const login = await t.composed.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      payload: { name: 'root2', password },
    });
    expect(login.statusCode).toBe(401);
    // The full admin token may.
    expect((await api('PUT', '/identities/root2/password', { password })).statusCode).toBe(204);
  });

  it('bad tokens from an address never lock out a valid token from it (finding 9)', async () => {
    const t = await testApp(db(), { authFailureLimit: 3 });
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'hal', kind: 'user' });
    const hal = (await issue(t, 'hal')).secret;
    const whoami = (authorization?: string) =>
      t.composed.app.inject({
        method: 'GET',
        url: '/api/v1/whoami',
        headers: authorization ? { authorization } : {},
      });
    const bad = `Bearer mgt_${'A'.repeat(43)}`;
    for (let i = 0; i < 25; i++) await whoami(bad);
    expect((await whoami(bad)).statusCode).toBe(429);
    expect((await whoami()).statusCode).toBe(429);
    // hal's token was never used before, so it is not cached: it is looked up, and it works.
    const ok = await whoami(`Bearer ${hal}`);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().identity.name).toBe('hal');
  });

  it('counts wrong passwords per identity as well as per address', async () => {
    const t = await testApp(db(), { authFailureLimit: 3 });
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'ivy', kind: 'user', password: 'ivy long password' });
    await api('POST', '/identities', { name: 'jon', kind: 'user', password: 'jon long password' });
    const login = (name: string, password: string, remoteAddress: string) =>
      t.composed.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        remoteAddress,
        payload: { name, password },
      });
    // A distributed guess at ivy's password: every attempt from a new address.
    const codes: number[] = [];
    for (let i = 0; i < 5; i++)
      codes.push((await login('ivy', 'guess guess', `10.9.0.${i}`)).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    // jon, from yet another address, is not affected.
    expect((await login('jon', 'jon long password', '10.9.1.1')).statusCode).toBe(201);
  });

  it('honours X-Forwarded-For only from a trusted proxy (MODELGATE_TRUSTED_PROXIES)', async () => {
    const bad = `Bearer mgt_${'B'.repeat(43)}`;
    const from = (t: TestApp, remoteAddress: string, forwarded: string, authorization: string) =>
      t.composed.app.inject({
        method: 'GET',
        url: '/api/v1/whoami',
        remoteAddress,
        headers: { authorization, 'x-forwarded-for': forwarded },
      });

    // No trusted proxy: the header is ignored, the peer is the client.
    const plain = await testApp(db(), { authFailureLimit: 3 });
    await apiOf(plain)('POST', '/identities', { name: 'kai', kind: 'user' });
    for (let i = 0; i < 3; i++) await from(plain, '10.1.0.1', `203.0.113.${i}`, bad);
    // A spoofed header does not escape the peer's block...
    expect((await from(plain, '10.1.0.1', '198.51.100.7', bad)).statusCode).toBe(429);
    // ...and the token's last use is recorded from the peer, not from the header.
    const kai = (await issue(plain, 'kai')).secret;
    expect((await from(plain, '10.1.0.9', '198.51.100.8', `Bearer ${kai}`)).statusCode).toBe(200);
    const seen = (await apiOf(plain)('GET', '/tokens', undefined, kai)).json().items as {
      lastUsedFrom: string | null;
    }[];
    expect(seen.map((x) => x.lastUsedFrom)).toContain('10.1.0.9');

    // Behind a trusted proxy: each client behind it is counted on its own.
    const proxied = await testApp(db(), { authFailureLimit: 3, trustedProxies: ['10.2.0.0/16'] });
    await apiOf(proxied)('POST', '/identities', { name: 'lou', kind: 'user' });
    for (let i = 0; i < 4; i++) await from(proxied, '10.2.0.1', '203.0.113.50', bad);
    expect((await from(proxied, '10.2.0.1', '203.0.113.50', bad)).statusCode).toBe(429);
    expect((await from(proxied, '10.2.0.1', '203.0.113.51', bad)).statusCode).toBe(401);
    const lou = (await issue(proxied, 'lou')).secret;
    expect((await from(proxied, '10.2.0.1', '203.0.113.52', `Bearer ${lou}`)).statusCode).toBe(200);
    const used = (await apiOf(proxied)('GET', '/tokens', undefined, lou)).json().items as {
      lastUsedFrom: string | null;
    }[];
    expect(used.map((x) => x.lastUsedFrom)).toContain('203.0.113.52');
    // An untrusted peer's header is still ignored on that server.
    for (let i = 0; i < 3; i++) await from(proxied, '10.3.0.1', `203.0.113.${60 + i}`, bad);
    expect((await from(proxied, '10.3.0.1', '203.0.113.70', bad)).statusCode).toBe(429);
  });

  it('reads MODELGATE_TRUSTED_PROXIES and refuses a malformed entry', () => {
    const env = { MODELGATE_TRUSTED_PROXIES: '10.0.0.1, 192.168.0.0/16 ::1' };
    expect(loadConfig({}, env).trustedProxies).toEqual(['10.0.0.1', '192.168.0.0/16', '::1']);
    expect(loadConfig({}, {}).trustedProxies).toEqual([]);
    expect(() => loadConfig({}, { MODELGATE_TRUSTED_PROXIES: 'proxy.example' })).toThrow(
      /MODELGATE_TRUSTED_PROXIES/,
    );
  });
});
