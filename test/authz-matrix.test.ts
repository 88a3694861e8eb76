import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { type TestApp, testApp, tokenFor, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';

// The expected outcome of every route for every kind of caller, kept in the repo and reviewed
// by hand. UPDATE_AUTHZ_MATRIX=1 rewrites it from a run (then read the diff before committing).
const TABLE = join(import.meta.dirname, 'fixtures', 'authz-matrix.json');
type Outcome = 'allow' | 'deny' | 'unauthenticated';

const CALLERS = [
  'no token',
  'expired token',
  'revoked token',
  'admin token scoped to read',
  'no role',
  'viewer',
  'contributor of the team',
  'contributor of another team',
  'evaluator',
  'approver',
  'witness',
  'admin',
] as const;

// A body for every route that takes one; the test fails if a route with a body is missing.
const BODIES: Record<string, (blobDigest: string) => unknown> = {
  'POST /api/v1/models': () => ({
    name: `m-${Math.random().toString(36).slice(2, 10)}`,
    ownerTeam: 'payments',
    riskTier: 'high',
  }),
  'PATCH /api/v1/models/{model}': () => ({ description: 'changed' }),
  'POST /api/v1/models/{model}/versions': (digest) => ({
    files: [{ path: 'w.bin', size: 4, digest }],
  }),
  'PATCH /api/v1/models/{model}/versions/{ref}': () => ({ description: 'changed' }),
  'PUT /api/v1/models/{model}/aliases/{alias}': () => ({ version: 1 }),
  'POST /api/v1/datasets': () => ({
    name: `d-${Math.random().toString(36).slice(2, 10)}`,
    uri: 's3://x/y',
  }),
  'POST /api/v1/models/{model}/versions/{ref}/evaluations': () => ({ evaluator: 'artifact-scan' }),
  'POST /api/v1/identities': () => ({
    name: `u-${Math.random().toString(36).slice(2, 10)}`,
    kind: 'user',
  }),
  'PATCH /api/v1/identities/{identity}': () => ({ teams: ['payments'] }),
  'POST /api/v1/identities/{identity}/tokens': () => ({ name: 'matrix' }),
  'POST /api/v1/tokens/{token}/rotate': () => ({ overlapSeconds: 60 }),
  'POST /api/v1/authz/explain': () => ({ action: 'setAlias', resource: 'alias:churn:production' }),
  'PUT /api/v1/identities/{identity}/password': () => ({ password: 'correct horse battery' }),
  'POST /api/v1/password': () => ({ current: 'not the password', password: 'a new long password' }),
  'PUT /api/v1/authz/policies/{policy}': () => ({
    text: 'permit (principal in Role::"auditor", action == Action::"read", resource);',
  }),
  'POST /api/v1/login': () => ({ name: 'target', password: 'wrong password here' }),
  'POST /api/v1/oidc/token': () => ({ token: 'not-a-jwt' }),
  'POST /api/v1/audit/cosignatures': () => ({ note: 'not a note' }),
  'POST /api/v1/gate-policies': () => ({ document: GATE }),
  'POST /api/v1/gate-policies/what-if': () => ({ document: GATE }),
  'POST /api/v1/models/{model}/aliases/{alias}/promotions': () => ({ version: '1' }),
  'POST /api/v1/models/{model}/aliases/{alias}/promotion-requests/{request}/rejection-withdrawals':
    () => ({ comment: 'withdrawn', override: true }),
  'POST /api/v1/models/{model}/aliases/{alias}/promotion-requests/{request}/reviews': () => ({
    decision: 'approve',
    comment: 'matrix',
  }),
  'POST /api/v1/models/{model}/versions/{ref}/waivers': () => WAIVER,
  'POST /api/v1/models/{model}/waivers': () => WAIVER,
  'POST /api/v1/models/{model}/versions/{ref}/attestations': () => ({ envelope: ENVELOPE }),
  'POST /api/v1/models/{model}/versions/{ref}/evaluation-imports': () => ({
    format: 'modelgate',
    content: JSON.stringify({
      schema: 'modelgate.dev/evaluation-result/v1',
      tool: { name: 'matrix', version: '1.0.0' },
      findings: [],
      metrics: {},
    }),
  }),
};
const ENVELOPE = {
  payload: 'e30=',
  payloadType: 'application/vnd.in-toto+json',
  signatures: [{ sig: 'AA==' }],
};
const WAIVER = {
  findingRule: 'pickle.matrix-rule',
  justification: 'matrix',
  expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
};

// Query strings for routes that require one (validation runs before authorization, so a
// missing query would be a 400 for every caller and say nothing about who may call).
const GATE = readFileSync(join(import.meta.dirname, '..', 'policies', 'staging-gate.yaml'), 'utf8');

const QUERIES: Record<string, string> = {
  'GET /api/v1/audit/consistency': '?from=0&to=1',
  'GET /api/v1/audit/history': '?model=churn',
  'GET /api/v1/audit/alias': '?model=churn&alias=candidate&at=2030-01-01T00:00:00Z',
  'GET /api/v1/models/{model}/versions/{ref}/gate': '?policy=staging-gate&alias=staging',
  'GET /api/v1/verify': `?model=churn&alias=staging&digest=sha256:${'0'.repeat(64)}`,
};

async function tokens(t: TestApp): Promise<Record<(typeof CALLERS)[number], string | undefined>> {
  const as = (name: string, roles: string[], teams: string[] = []) =>
    tokenFor(t, { name, kind: 'user', roles, teams });
  const revoked = await as('revoked-user', ['admin']);
  await sql`UPDATE tokens SET revoked_at = '2026-01-01T00:00:00.000Z' WHERE identity_id = (SELECT id FROM identities WHERE name = 'revoked-user')`.execute(
    t.composed.database.db,
  );
  return {
    'no token': undefined,
    'expired token': await tokenFor(
      t,
      { name: 'expired-user', kind: 'user', roles: ['admin'] },
      { expiresAt: '2020-01-01T00:00:00.000Z' },
    ),
    'revoked token': revoked,
    'admin token scoped to read': await tokenFor(
      t,
      { name: 'admin', kind: 'user' },
      { scopes: ['read'] },
    ),
    'no role': await as('nobody', []),
    viewer: await as('vic', ['viewer']),
    'contributor of the team': await as('ann', ['contributor'], ['payments']),
    'contributor of another team': await as('bob', ['contributor'], ['search']),
    evaluator: await tokenFor(t, {
      name: 'ci-eval',
      kind: 'service-account',
      roles: ['evaluator'],
    }),
    approver: await as('ada', ['approver'], ['payments']),
    witness: await tokenFor(t, { name: 'w1', kind: 'service-account', roles: ['witness'] }),
    admin: t.token,
  };
}

describeEachEngine('authorization on every route', (db) => {
  it('matches the reviewed table for every route and kind of caller', async () => {
    const t = await testApp(db());
    const { app } = t.composed;
    const post = (url: string, payload: object) => t.call({ method: 'POST', url, payload });
    // The version's work is a pipeline's, so that the admin has no part in it and may waive.
    const seeder = await tokenFor(t, {
      name: 'seeder',
      kind: 'service-account',
      roles: ['contributor', 'evaluator'],
      teams: ['payments'],
    });
    const seed = (url: string, payload: object) =>
      t.call({ method: 'POST', url, payload, headers: { authorization: `Bearer ${seeder}` } });
    await post('/api/v1/models', { name: 'churn', ownerTeam: 'payments', riskTier: 'limited' });
    await post('/api/v1/datasets', { name: 'tx', uri: 's3://tx' });
    const blob = { digest: await uploadBlob(t, Buffer.from('seed')) };
    await seed('/api/v1/models/churn/versions', {
      files: [{ path: 'w.bin', size: 4, digest: blob.digest }],
    });
    await post('/api/v1/identities', { name: 'target', kind: 'user' });
    const ev = (
      await seed('/api/v1/models/churn/versions/1/evaluations', { evaluator: 'artifact-scan' })
    ).json() as { id: string };
    // A gate, a promotion request (denied: no scan ran) with its decision, and a waiver.
    await post('/api/v1/gate-policies', { document: GATE });
    const promoted = (
      await seed('/api/v1/models/churn/aliases/staging/promotions', { version: '1' })
    ).json() as { details: { result: { request: { id: number }; decision: { id: number } } } };
    const waiver = (await post('/api/v1/models/churn/waivers', WAIVER)).json() as { id: number };
    const params: Record<string, string> = {
      model: 'churn',
      ref: '1',
      alias: 'candidate',
      dataset: 'tx',
      digest: blob.digest,
      evaluation: ev.id,
      identity: 'target',
      role: 'viewer',
      team: 'payments',
      policy: 'matrix-policy',
      index: '0',
      version: '1',
      request: String(promoted.details.result.request.id),
      decision: String(promoted.details.result.decision.id),
      waiver: String(waiver.id),
      // A token of another identity: only identity managers may see, revoke or rotate it.
      token: (
        (await post('/api/v1/identities/target/tokens', { name: 'target' })).json() as {
          token: { id: string };
        }
      ).token.id,
    };
    const callers = await tokens(t);
    const spec = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as {
      paths: Record<string, Record<string, { requestBody?: unknown }>>;
    };
    const seen: Record<string, Record<string, Outcome>> = {};
    for (const [path, methods] of Object.entries(spec.paths)) {
      if (path === '/healthz' || path === '/readyz') continue;
      for (const [m, op] of Object.entries(methods)) {
        const key = `${m.toUpperCase()} ${path}`;
        const body = BODIES[key];
        const upload = key === 'POST /api/v1/blobs';
        if (op.requestBody && !upload) expect(body, `BODIES lacks ${key}`).toBeDefined();
        const row: Record<string, Outcome> = {};
        for (const caller of CALLERS) {
          const token = callers[caller];
          const r = await app.inject({
            method: m.toUpperCase() as 'GET',
            url:
              path.replace(
                /\{(\w+)\}/g,
                // Promotions are for protected aliases.
                (_, p: string) =>
                  (p === 'alias' && path.includes('/promotion') ? 'staging' : params[p]) ?? 'x',
              ) + (QUERIES[key] ?? ''),
            headers: {
              ...(token && { authorization: `Bearer ${token}` }),
              ...(upload && { 'content-type': 'application/octet-stream' }),
            },
            ...(upload
              ? { payload: Buffer.from('data') }
              : body
                ? { payload: body(blob.digest) as object }
                : {}),
          });
          expect(r.statusCode, `${key} as ${caller}: ${r.body.slice(0, 200)}`).toBeLessThan(500);
          // Someone else's token is answered as absent (404) to a caller who may not manage
          // identities: for the matrix that is a denial.
          const hidden = r.statusCode === 404 && r.json().code === 'TOKEN_NOT_FOUND';
          // Separation of duties is a rule about the record, decided after authorization
          // allowed the call (an earlier route of this walk made the caller a requester): for
          // the matrix, like a validation error, that is an allow.
          const sod = r.statusCode === 403 && r.json().code === 'SEPARATION_OF_DUTIES';
          row[caller] =
            r.statusCode === 401
              ? 'unauthenticated'
              : (r.statusCode === 403 && !sod) || hidden
                ? 'deny'
                : 'allow';
          if (r.statusCode === 403 && !sod)
            expect((r.json() as { message: string }).message, key).toMatch(/^deny: /);
        }
        seen[key] = row;
      }
    }
    if (process.env.UPDATE_AUTHZ_MATRIX) writeFileSync(TABLE, `${JSON.stringify(seen, null, 2)}\n`);
    const expected = JSON.parse(readFileSync(TABLE, 'utf8')) as typeof seen;
    const unexpected: string[] = [];
    for (const key of new Set([...Object.keys(expected), ...Object.keys(seen)]))
      for (const caller of CALLERS) {
        const want = expected[key]?.[caller];
        const got = seen[key]?.[caller];
        if (want !== got) unexpected.push(`${key} as ${caller}: expected ${want}, got ${got}`);
      }
    expect(unexpected).toEqual([]);
  });

  it('keeps production to approvers, and high-tier production to the risk team', async () => {
    // Cedar's alias rules, on a deployment that protects no alias (plain sets reach them).
    const t = await testApp(db(), { protectedAliases: [] });
    const post = (url: string, payload: object) => t.call({ method: 'POST', url, payload });
    const blob = { digest: await uploadBlob(t, Buffer.from('seed')) };
    for (const [name, riskTier] of [
      ['fraud', 'high'],
      ['churn', 'limited'],
    ]) {
      await post('/api/v1/models', { name, ownerTeam: 'payments', riskTier });
      await post(`/api/v1/models/${name}/versions`, {
        files: [{ path: 'w.bin', size: 4, digest: blob.digest }],
      });
    }
    const ann = await tokenFor(t, {
      name: 'ann',
      kind: 'user',
      roles: ['contributor'],
      teams: ['payments'],
    });
    const ada = await tokenFor(t, {
      name: 'ada',
      kind: 'user',
      roles: ['approver'],
      teams: ['payments'],
    });
    const rik = await tokenFor(t, {
      name: 'rik',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const setAlias = (token: string, model: string, alias: string) =>
      t.composed.app.inject({
        method: 'PUT',
        url: `/api/v1/models/${model}/aliases/${alias}`,
        headers: { authorization: `Bearer ${token}` },
        payload: { version: 1 },
      });
    expect((await setAlias(ann, 'churn', 'staging')).statusCode).toBe(200);
    const denied = await setAlias(ann, 'churn', 'production');
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({
      code: 'FORBIDDEN',
      details: { policies: ['production-only-approvers'] },
    });
    expect((await setAlias(ada, 'churn', 'production')).statusCode).toBe(200);
    const high = await setAlias(ada, 'fraud', 'production');
    expect(high.statusCode).toBe(403);
    expect(high.json().message).toMatch(/needs an approver from the risk team/);
    expect((await setAlias(rik, 'fraud', 'production')).statusCode).toBe(200);
    // With nothing protected, a re-check has nothing to check (and does not fail).
    const recheck = await t.call({ method: 'POST', url: '/api/v1/gate-rechecks' });
    expect(recheck.json()).toEqual({ checked: 0, flagged: [], demoted: [], cleared: [] });
  });

  it('adds operator policies from a folder, and refuses to start with one that does not validate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-policies-'));
    writeFileSync(
      join(dir, 'freeze.cedar'),
      `@id("freeze-high-tier") @reason("high-tier models are frozen this quarter")
forbid (principal, action == Action::"pushVersion", resource is Model)
when { resource.tier == "high" };`,
    );
    const t = await testApp(db(), { authzPolicies: dir });
    await t.call({
      method: 'POST',
      url: '/api/v1/models',
      payload: { name: 'frozen', riskTier: 'high' },
    });
    const digest = await uploadBlob(t, Buffer.from('seed'));
    const push = await t.call({
      method: 'POST',
      url: '/api/v1/models/frozen/versions',
      payload: { files: [{ path: 'w.bin', size: 4, digest }] },
    });
    expect(push.statusCode).toBe(403);
    expect(push.json()).toMatchObject({ details: { policies: ['freeze-high-tier'] } });
    expect(push.json().message).toMatch(/frozen this quarter/);

    writeFileSync(
      join(dir, 'typo.cedar'),
      'permit (principal, action == Action::"pushVersion", resource is Model) when { resource.teir == "x" };',
    );
    await expect(testApp(db(), { authzPolicies: dir })).rejects.toThrow(/typo.*teir/s);
  });
});
