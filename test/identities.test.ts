import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { apiOf, testApp } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';

describeEachEngine('identities, roles and tokens', (db) => {
  it('creates people and service accounts, issues tokens shown once and stored as hashes', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const ann = await api('POST', '/identities', {
      name: 'ann',
      kind: 'user',
      roles: ['contributor'],
      teams: ['payments'],
    });
    expect(ann.statusCode).toBe(201);
    expect(ann.json()).toMatchObject({ name: 'ann', roles: ['contributor'], teams: ['payments'] });
    expect((await api('POST', '/identities', { name: 'ann', kind: 'user' })).json().code).toBe(
      'IDENTITY_EXISTS',
    );
    const noOwner = await api('POST', '/identities', { name: 'ci', kind: 'service-account' });
    expect(noOwner.statusCode).toBe(400);
    expect(noOwner.json().message).toMatch(/owner .* purpose/);
    const ci = await api('POST', '/identities', {
      name: 'ci',
      kind: 'service-account',
      roles: ['evaluator'],
      owner: 'ann',
      purpose: 'nightly scans',
    });
    expect(ci.json()).toMatchObject({ kind: 'service-account', owner: 'ann' });

    const issued = await api('POST', '/identities/ann/tokens', {
      name: 'laptop',
      expiresInDays: 30,
    });
    expect(issued.statusCode).toBe(201);
    const { secret, token } = issued.json() as { secret: string; token: { id: string } };
    expect(secret).toMatch(/^mgt_/);
    const me = await api('GET', '/whoami', undefined, secret);
    expect(me.json()).toMatchObject({ identity: { name: 'ann' }, tokenId: token.id });
    // Only the hash is stored: no column of any token row holds the secret.
    const rows = (await sql`SELECT * FROM tokens`.execute(t.composed.database.db)).rows;
    expect(JSON.stringify(rows)).not.toContain(secret);
    expect(JSON.stringify(rows)).toContain(createHash('sha256').update(secret).digest('hex'));
    // Listing never shows secrets either.
    expect(JSON.stringify((await api('GET', '/identities/ann/tokens')).json())).not.toContain(
      secret,
    );

    // A contributor may not manage identities, nor see or touch anyone else's tokens.
    expect((await api('GET', '/identities', undefined, secret)).statusCode).toBe(403);
    const adminTokens = (await api('GET', '/tokens')).json().items as { id: string }[];
    const adminToken = adminTokens[0]?.id ?? '';
    expect((await api('DELETE', `/tokens/${adminToken}`, undefined, secret)).statusCode).toBe(404);
    expect((await api('GET', '/tokens', undefined, secret)).json().items).toHaveLength(1);
  });

  it('revokes, rotates with an overlap, and applies changed roles at once', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/identities', { name: 'bob', kind: 'user', roles: ['contributor'] });
    const issue = async () =>
      (await api('POST', '/identities/bob/tokens', { name: 'cli' })).json() as {
        secret: string;
        token: { id: string };
      };
    const a = await issue();
    expect((await api('GET', '/whoami', undefined, a.secret)).statusCode).toBe(200);
    const revoked = await api('DELETE', `/tokens/${a.token.id}`, undefined, a.secret);
    expect(revoked.json().revokedAt).toBeTruthy();
    expect((await api('GET', '/whoami', undefined, a.secret)).statusCode).toBe(401);

    // Rotation: the new token works; the old one works for the overlap, then not at all.
    const b = await issue();
    const kept = await api(
      'POST',
      `/tokens/${b.token.id}/rotate`,
      { overlapSeconds: 3600 },
      b.secret,
    );
    expect(kept.statusCode).toBe(201);
    const b2 = kept.json() as { secret: string; token: { rotatedFrom: string } };
    expect(b2.token.rotatedFrom).toBe(b.token.id);
    expect((await api('GET', '/whoami', undefined, b2.secret)).statusCode).toBe(200);
    expect((await api('GET', '/whoami', undefined, b.secret)).statusCode).toBe(200);
    const c = await issue();
    const now = await api('POST', `/tokens/${c.token.id}/rotate`, { overlapSeconds: 0 }, c.secret);
    expect((await api('GET', '/whoami', undefined, now.json().secret)).statusCode).toBe(200);
    expect((await api('GET', '/whoami', undefined, c.secret)).statusCode).toBe(401);

    // Grants changed by an admin apply to the next request, cached lookups notwithstanding.
    await api('POST', '/models', { name: 'm', ownerTeam: 'payments' });
    const d = await issue();
    expect((await api('PATCH', '/models/m', { description: 'x' }, d.secret)).statusCode).toBe(403);
    await api('PATCH', '/identities/bob', { teams: ['payments'] });
    expect((await api('PATCH', '/models/m', { description: 'x' }, d.secret)).statusCode).toBe(200);
    await api('PATCH', '/identities/bob', { roles: ['viewer'] });
    expect((await api('PATCH', '/models/m', { description: 'y' }, d.secret)).statusCode).toBe(403);
  });

  it('rate limits repeated failed authentication from one address, but not valid tokens', async () => {
    const t = await testApp(db(), { authFailureLimit: 3 });
    const whoami = (authorization?: string) =>
      t.composed.app.inject({
        method: 'GET',
        url: '/api/v1/whoami',
        headers: authorization ? { authorization } : {},
      });
    expect((await whoami(`Bearer ${t.token}`)).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) expect((await whoami('Bearer mgt_wrong')).statusCode).toBe(401);
    const limited = await whoami('Bearer mgt_wrong');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().code).toBe('RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await whoami()).statusCode).toBe(429);
    expect((await whoami(`Bearer ${t.token}`)).statusCode).toBe(200);
  });
});
