import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { type Kysely, sql } from 'kysely';
import { expect, it } from 'vitest';
import { ERROR_CATALOG } from '../src/core/errors.js';
import type { DB } from '../src/storage/schema.js';
import { testApp, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';

// A valid body for every route that takes one. The test fails if a route with a body is
// missing here, so new routes cannot escape the walk.
const VALID_BODIES: Record<string, unknown> = {
  'POST /api/v1/models': { name: 'walk-new-model' },
  'PATCH /api/v1/models/{model}': { description: 'changed' },
  'POST /api/v1/models/{model}/versions': { files: [] /* filled in with a real blob */ },
  'PATCH /api/v1/models/{model}/versions/{ref}': { description: 'changed' },
  'PUT /api/v1/models/{model}/aliases/{alias}': { version: 1 },
  'POST /api/v1/datasets': { name: 'walk-new-data', uri: 's3://x/y' },
  'POST /api/v1/models/{model}/versions/{ref}/evaluations': { evaluator: 'artifact-scan' },
  'POST /api/v1/identities': { name: 'walk-new-user', kind: 'user' },
  'PATCH /api/v1/identities/{identity}': { roles: ['viewer'] },
  'POST /api/v1/identities/{identity}/tokens': { name: 'walk' },
  'POST /api/v1/tokens/{token}/rotate': { overlapSeconds: 60 },
  'PUT /api/v1/identities/{identity}/password': { password: 'a long enough password' },
  'POST /api/v1/password': { current: 'not the password', password: 'a long enough password' },
  // Valid in shape; refused by the validator (no such action), so nothing is stored.
  'PUT /api/v1/authz/policies/{policy}': {
    text: 'permit (principal, action == Action::"nope", resource);',
  },
  'POST /api/v1/login': { name: 'seed-user', password: 'wrong password' },
  'POST /api/v1/oidc/token': { token: 'not-a-jwt' },
  'POST /api/v1/audit/cosignatures': { note: 'not a checkpoint' },
  // Valid in shape; refused by the type checker (no such fact), so nothing is stored.
  'POST /api/v1/gate-policies': {
    document:
      'apiVersion: modelgate.dev/v1\nkind: GatePolicy\nmetadata: {name: walk}\nspec:\n  bindings: {aliases: [production]}\n  validations:\n    - {name: x, expression: version.nope == 1, message: m, reason: R, action: deny}\n',
  },
  'POST /api/v1/authz/explain': { action: 'read', resource: 'model:seed-model' },
  'POST /api/v1/gate-policies/what-if': {
    document:
      'apiVersion: modelgate.dev/v1\nkind: GatePolicy\nmetadata: {name: walk}\nspec:\n  bindings: {aliases: [production]}\n  validations:\n    - {name: x, expression: version.nope == 1, message: m, reason: R, action: deny}\n',
  },
  'POST /api/v1/models/{model}/aliases/{alias}/promotions': { version: '1' },
  'POST /api/v1/models/{model}/aliases/{alias}/promotion-requests/{request}/rejection-withdrawals':
    { comment: 'withdrawn' },
  'POST /api/v1/models/{model}/aliases/{alias}/promotion-requests/{request}/reviews': {
    decision: 'approve',
    comment: 'walk',
  },
  'POST /api/v1/models/{model}/versions/{ref}/waivers': {
    findingRule: 'WALK',
    justification: 'walk',
    expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
  },
  'POST /api/v1/models/{model}/versions/{ref}/attestations': {
    envelope: {
      payload: 'e30=',
      payloadType: 'application/vnd.in-toto+json',
      signatures: [{ sig: 'AA==' }],
    },
  },
  // Valid in shape; refused by the parser (not a garak report), so nothing is stored.
  'POST /api/v1/models/{model}/versions/{ref}/evaluation-imports': {
    format: 'garak',
    content: 'not json',
  },
  'POST /api/v1/models/{model}/waivers': {
    findingRule: 'WALK',
    justification: 'walk',
    expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
  },
};

const BAD_PARAMS: Record<string, string[]> = {
  model: ['Bad%20Name', '..', '%2e%2e%2fetc', 'a%00b', 'x'.repeat(300), 'no-such-model', '-x'],
  ref: ['999999', '0', '-1', 'Bad%20Alias', '99999999999999999999', 'no-such-alias', '1.5'],
  alias: ['Bad_Alias', '1abc', 'x'.repeat(300), 'no-such-alias', '%00'],
  dataset: ['Bad%20Name', '..', 'no-such-data', 'x'.repeat(300)],
  evaluation: ['ev_0000000000000000', 'nope', '..', 'x'.repeat(300)],
  digest: ['sha256:xyz', 'md5:abc', `sha256:${'0'.repeat(64)}`, '..%2f..%2fetc%2fpasswd'],
  // No '..' here: the router resolves …/identities/../tokens (even encoded) to GET /tokens, a
  // route of its own.
  identity: ['Bad%20Name', 'no-such-user', 'x'.repeat(300), '%00'],
  token: ['tok_0000000000000000', 'tok_x', '..', 'x'.repeat(300)],
  role: ['Admin', 'no-such-role', '..', 'x'.repeat(300), '%00'],
  team: ['Bad%20Name', '..', 'x'.repeat(300), '%00'],
  policy: ['Bad%20Name', 'admin-all', '..', 'x'.repeat(300), 'no-such-policy'],
  index: ['-1', '99999999', '1.5', 'x', '%00', '9'.repeat(30)],
  version: ['0', '-1', 'x', '9'.repeat(30)],
  request: ['0', '-1', 'x', '9'.repeat(30), '%00', '424242'],
  decision: ['0', '-1', 'x', '9'.repeat(30), '%00', '424242'],
  waiver: ['0', '-1', 'x', '9'.repeat(30), '%00', '424242'],
};

/** Everything a request could have changed: every table (but token bookkeeping) and the blob folder. */
async function snapshot(db: Kysely<DB>, dataDir: string): Promise<string> {
  const h = createHash('sha256');
  for (const table of [
    'models',
    'versions',
    'version_files',
    'aliases',
    'alias_events',
    'datasets',
    'lineage_edges',
    'evaluations',
    'findings',
    'identities',
    'identity_roles',
    'team_members',
    'authz_policies',
    // A refused request appends nothing to the audit log.
    'audit_head',
    'audit_events',
    'audit_nodes',
    'audit_checkpoints',
    'audit_cosignatures',
    'gate_policies',
    'gate_decisions',
    'promotion_requests',
    'promotion_reviews',
    'waivers',
    'attestations',
  ]) {
    const rows = await sql.raw(`SELECT * FROM ${table} ORDER BY 1, 2`).execute(db);
    h.update(table).update(JSON.stringify(rows.rows));
  }
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    );
  h.update(walk(join(dataDir, 'blobs')).sort().join('\n'));
  return h.digest('hex');
}

function expectCleanRefusal(r: LightMyRequestResponse, what: string) {
  expect(r.statusCode, `${what} -> ${r.statusCode} ${r.body.slice(0, 300)}`).toBeGreaterThanOrEqual(
    400,
  );
  expect(r.statusCode, `${what} -> ${r.body.slice(0, 300)}`).toBeLessThan(500);
  const body = r.json() as { code: string; message: string };
  expect(Object.keys(ERROR_CATALOG), what).toContain(body.code);
  expect(typeof body.message, what).toBe('string');
}

describeEachEngine('every route refuses bad input cleanly', (db) => {
  it('walks the OpenAPI document with bad tokens, bodies, params and queries: no 500, no state change', async () => {
    const t = await testApp(db(), { maxUploadBytes: 1024 });
    const { app } = t.composed;
    // Seed state the valid params point at.
    await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'seed-model' } });
    await t.call({
      method: 'POST',
      url: '/api/v1/datasets',
      payload: { name: 'seed-data', uri: 's3://seed' },
    });
    const blob = { digest: await uploadBlob(t, Buffer.from('seed')) };
    const files = [{ path: 'seed.bin', size: 4, digest: blob.digest }];
    VALID_BODIES['POST /api/v1/models/{model}/versions'] = { files };
    await t.call({ method: 'POST', url: '/api/v1/models/seed-model/versions', payload: { files } });
    await t.call({
      method: 'PUT',
      url: '/api/v1/models/seed-model/aliases/candidate',
      payload: { version: 1 },
    });
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: { name: 'seed-user', kind: 'user' },
    });
    const seedToken = (
      await t.call({
        method: 'POST',
        url: '/api/v1/identities/seed-user/tokens',
        payload: { name: 'seed' },
      })
    ).json() as { token: { id: string } };
    const valid: Record<string, string> = {
      role: 'viewer',
      index: '0',
      version: '1',
      team: 'seed-team',
      policy: 'seed-policy',
      model: 'seed-model',
      ref: '1',
      alias: 'candidate',
      dataset: 'seed-data',
      request: '1',
      decision: '1',
      waiver: '1',
      digest: blob.digest,
      identity: 'seed-user',
      token: seedToken.token.id,
    };

    const spec = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as {
      paths: Record<
        string,
        Record<string, { requestBody?: unknown; parameters?: { in: string; name: string }[] }>
      >;
    };
    // Sign the checkpoint for the seeded events now: reading it later would sign it then.
    await t.call({ method: 'GET', url: '/api/v1/audit/checkpoint' });
    const before = await snapshot(db().database.db, db().dataDir);
    const fill = (path: string, override: Record<string, string> = {}) =>
      path.replace(/\{(\w+)\}/g, (_, p: string) => override[p] ?? valid[p] ?? 'x');
    let operations = 0;
    let requests = 0;
    const send = async (o: InjectOptions, what: string, auth = true) => {
      requests++;
      const r = auth ? await t.call(o) : await app.inject(o);
      expectCleanRefusal(r, what);
      return r;
    };

    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [m, op] of Object.entries(methods)) {
        const method = m.toUpperCase();
        // Public and read-only, taking no input: nothing to refuse.
        if (
          path === '/healthz' ||
          path === '/readyz' ||
          path === '/api/v1/audit/key' ||
          path === '/api/v1/attestations/key'
        )
          continue;
        operations++;
        const key = `${method} ${path}`;
        const url = fill(path);
        const isBlobUpload = key === 'POST /api/v1/blobs';
        const validBody = VALID_BODIES[key];
        if (op.requestBody && !isBlobUpload)
          expect(validBody, `VALID_BODIES lacks ${key}`).toBeDefined();
        const json = validBody === undefined ? {} : { payload: validBody as object };

        // Missing and wrong tokens.
        for (const authorization of [
          undefined,
          'Bearer mgt_wrong',
          'Basic YWRtaW46YWRtaW4=',
          'Bearer ',
          `Bearer ${'x'.repeat(5000)}`,
        ]) {
          const r = await send(
            {
              method,
              url,
              headers: authorization ? { authorization } : {},
              ...json,
            } as InjectOptions,
            `${key} auth=${authorization?.slice(0, 20)}`,
            false,
          );
          expect(r.statusCode, key).toBe(401);
        }
        // Bad path parameters.
        for (const p of (op.parameters ?? []).filter((x) => x.in === 'path')) {
          // Setting an alias that does not exist yet is valid: it creates it.
          const bads = (BAD_PARAMS[p.name] ?? []).filter(
            (b) => !(method === 'PUT' && b === 'no-such-alias'),
          );
          for (const bad of bads) {
            await send(
              { method, url: fill(path, { [p.name]: bad }), ...json } as InjectOptions,
              `${key} ${p.name}=${bad.slice(0, 20)}`,
            );
          }
        }
        // Unknown and ill-typed query parameters.
        await send(
          { method, url: `${url}?unknownParam=1`, ...json } as InjectOptions,
          `${key} ?unknownParam`,
        );
        for (const q of (op.parameters ?? []).filter((x) => x.in === 'query')) {
          for (const bad of ['%00', 'x'.repeat(3000), '-1', '{}', '2026-06-30T23:59:60Z']) {
            const r = await t.call({
              method,
              url: `${url}?${q.name}=${bad}`,
              ...json,
            } as InjectOptions);
            requests++;
            // Some of these are acceptable values for free-text filters; none may fail the server.
            expect(
              r.statusCode,
              `${key} ?${q.name}=${bad.slice(0, 10)} ${r.body.slice(0, 200)}`,
            ).toBeLessThan(500);
          }
        }
        if (isBlobUpload) {
          await send(
            { method, url, headers: { 'content-type': 'application/json' }, payload: '{}' },
            `${key} json`,
          );
          await send(
            {
              method,
              url,
              headers: { 'content-type': 'application/octet-stream' },
              payload: Buffer.alloc(4096),
            },
            `${key} too large`,
          );
          await send(
            {
              method,
              url: `${url}?digest=sha256:${'0'.repeat(64)}`,
              headers: { 'content-type': 'application/octet-stream' },
              payload: Buffer.from('zz'),
            },
            `${key} wrong digest`,
          );
          continue;
        }
        if (!op.requestBody) continue;
        // Malformed JSON, wrong content type, oversized bodies, unknown fields, wrong types.
        for (const payload of [
          '{"a":',
          '',
          'null',
          '[]',
          '"str"',
          '{"name": "\u0000"}',
          '{}{}',
          // Beyond double range: JSON.parse gives Infinity, which has no JSON form to log.
          '{"name": 1e400, "description": 1e400}',
        ]) {
          await send(
            { method, url, headers: { 'content-type': 'application/json' }, payload },
            `${key} body=${payload}`,
          );
        }
        await send(
          { method, url, headers: { 'content-type': 'text/plain' }, payload: 'hello' },
          `${key} text/plain`,
        );
        await send(
          {
            method,
            url,
            headers: { 'content-type': 'application/json' },
            payload: JSON.stringify({ pad: 'x'.repeat(9 * 1024 * 1024) }),
          },
          `${key} 9 MiB`,
        );
        const body = validBody as Record<string, unknown>;
        await send({ method, url, payload: { ...body, unknownField: 1 } }, `${key} unknown field`);
        await send(
          {
            method,
            url,
            payload: { ...body, __proto__: { polluted: true }, constructor: { x: 1 } },
          },
          `${key} proto keys`,
        );
        for (const [field, value] of Object.entries(body)) {
          for (const wrong of [
            typeof value === 'string' ? 12345 : 'a-string',
            'nul\u0000inside',
            'lone\ud800surrogate',
            null,
            [],
            { nested: {} },
            true,
          ]) {
            // [] is the right type for an array field (files: covered by minItems).
            if (Array.isArray(value) && Array.isArray(wrong)) continue;
            await send(
              { method, url, payload: { ...body, [field]: wrong } },
              `${key} ${field}=${JSON.stringify(wrong)}`,
            );
          }
        }
      }
    }
    expect(operations).toBeGreaterThanOrEqual(17);
    expect(requests).toBeGreaterThan(400);
    expect(await snapshot(db().database.db, db().dataDir)).toBe(before);
  });
});
