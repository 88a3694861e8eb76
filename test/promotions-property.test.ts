import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import type { Facts } from '../src/policy/gates/facts-schema.js';
import { decideGate } from '../src/policy/gates/gate.js';
import { compilePolicy } from '../src/policy/gates/policy-document.js';
import { apiOf, type TestApp, testApp, tokenFor, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';

const CORPUS = join(import.meta.dirname, 'corpus');
const BENIGN = join(
  CORPUS,
  'benign',
  readdirSync(join(CORPUS, 'benign')).find((f) => f.endsWith('.pkl')) ?? '',
);
const MALICIOUS = join(CORPUS, 'malicious', 'direct-os.system.pkl');
const PROTECTED = ['production', 'staging'] as const;
const SHIPPED = readFileSync(
  join(import.meta.dirname, '..', 'policies', 'production-gate.yaml'),
  'utf8',
);
// Policy versions the sequences publish: the shipped one, one that needs a single approval
// whatever the tier, and one that demotes a holder that stops passing.
const VARIANTS = [
  SHIPPED,
  SHIPPED.replace("model.riskTier == 'high'\n          ?", 'false\n          ?'),
  SHIPPED.replace('spec:\n', 'spec:\n  demoteOnFailure: true\n'),
];

type Op =
  | { t: 'push'; malicious: boolean }
  | { t: 'scan'; v: number }
  | { t: 'waive'; v: number; model: boolean }
  | { t: 'expire' }
  | { t: 'promote'; v: number; alias: (typeof PROTECTED)[number]; who: 'rik' | 'ann' }
  | { t: 'approve'; who: 'ada' | 'bob' | 'ann' | 'rik' }
  | { t: 'reject'; who: 'ada' | 'bob' }
  | { t: 'publish'; variant: number }
  | { t: 'plainSet'; v: number; alias: (typeof PROTECTED)[number] }
  | { t: 'concurrent'; v1: number; v2: number; alias: (typeof PROTECTED)[number] }
  | { t: 'recheck' };

const alias = fc.constantFrom(...PROTECTED);
const v = fc.nat({ max: 5 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('push' as const), malicious: fc.boolean() }),
  fc.record({ t: fc.constant('scan' as const), v }),
  fc.record({ t: fc.constant('waive' as const), v, model: fc.boolean() }),
  fc.record({ t: fc.constant('expire' as const) }),
  fc.record({
    t: fc.constant('promote' as const),
    v,
    alias,
    who: fc.constantFrom('rik' as const, 'ann' as const),
  }),
  fc.record({
    t: fc.constant('approve' as const),
    who: fc.constantFrom('ada' as const, 'bob' as const, 'ann' as const, 'rik' as const),
  }),
  fc.record({
    t: fc.constant('reject' as const),
    who: fc.constantFrom('ada' as const, 'bob' as const),
  }),
  fc.record({ t: fc.constant('publish' as const), variant: fc.nat({ max: VARIANTS.length - 1 }) }),
  fc.record({ t: fc.constant('plainSet' as const), v, alias }),
  fc.record({ t: fc.constant('concurrent' as const), v1: v, v2: v, alias }),
  fc.record({ t: fc.constant('recheck' as const) }),
);

/**
 * After every step: each protected alias points at the version of an allowing decision that
 * moved it (and that replays to allow), every move of a protected alias is such a decision,
 * and each of those has its decision event and its alias event in the audit log.
 */
async function checkInvariants(t: TestApp, model: string, replayed: Set<number>) {
  const db = t.composed.database.db;
  const m = await db
    .selectFrom('models')
    .select('id')
    .where('name', '=', model)
    .executeTakeFirstOrThrow();
  const aliases = await db
    .selectFrom('aliases')
    .innerJoin('versions', 'versions.id', 'aliases.version_id')
    .select(['aliases.name', 'aliases.decision_id', 'versions.number'])
    .where('aliases.model_id', '=', m.id)
    .where('aliases.name', 'in', [...PROTECTED])
    .execute();
  const moves = await db
    .selectFrom('gate_decisions')
    .selectAll()
    .where('model_id', '=', m.id)
    .where('moved', '=', 1)
    .orderBy('id')
    .execute();
  for (const a of aliases) {
    expect(a.decision_id, `${model}@${a.name} has no decision`).not.toBeNull();
    const d = moves.find((x) => Number(x.id) === Number(a.decision_id));
    expect(d, `${model}@${a.name}: decision ${a.decision_id} did not move it`).toBeDefined();
    expect(d).toMatchObject({ outcome: 'allow', alias: a.name });
    expect(Number(d?.version)).toBe(Number(a.number));
  }
  for (const name of PROTECTED) {
    const events = await db
      .selectFrom('alias_events')
      .select('to_version')
      .where('model_id', '=', m.id)
      .where('alias', '=', name)
      .orderBy('id')
      .execute();
    // No move of a protected alias without a decision that moved it, in the same order.
    expect(events.map((e) => Number(e.to_version))).toEqual(
      moves.filter((d) => d.alias === name).map((d) => Number(d.version)),
    );
  }
  const policies = await db.selectFrom('gate_policies').selectAll().execute();
  for (const d of moves) {
    expect(d.outcome).toBe('allow');
    for (const [action, subject, needle] of [
      ['alias.%', `alias:${model}:${d.alias}`, `%"decision":${d.id},%`],
      ['gate.decision', `decision:${model}:${d.alias}/${d.id}`, '%'],
    ]) {
      const found = await sql<{ n: number }>`
        SELECT count(*) AS n FROM (
          SELECT action, subject, content FROM audit_pending
          UNION ALL SELECT action, subject, content FROM audit_events) e
        WHERE e.action LIKE ${action} AND e.subject = ${subject} AND e.content LIKE ${needle}`.execute(
        db,
      );
      expect(Number(found.rows[0]?.n), `${action} ${subject} for decision ${d.id}`).toBe(1);
    }
    if (replayed.has(Number(d.id))) continue;
    // The stored facts and stored policy versions give the same allow again.
    const used = JSON.parse(d.policies) as { name: string; version: number; digest: string }[];
    const again = decideGate(
      used.map((p) => {
        const row = policies.find((x) => x.name === p.name && Number(x.version) === p.version);
        return { ...p, compiled: compilePolicy(JSON.parse(row?.document ?? 'null')) };
      }),
      JSON.parse(d.facts) as Facts,
    );
    expect(again.outcome, `decision ${d.id} replays`).toBe('allow');
    expect(again.factsDigest).toBe(d.facts_digest);
    replayed.add(Number(d.id));
  }
}

describeEachEngine('promotion invariants under random operation sequences', (db) => {
  it('keeps every protected alias on an allowing, logged decision', async () => {
    const t = await testApp(db(), { worker: true });
    const api = apiOf(t);
    expect(
      (await api('POST', '/gate-policies', { document: VARIANTS[0] })).statusCode,
    ).toBeLessThan(300);
    const staging = readFileSync(
      join(import.meta.dirname, '..', 'policies', 'staging-gate.yaml'),
      'utf8',
    );
    await api('POST', '/gate-policies', { document: staging });
    const tokens = {
      ann: await tokenFor(t, {
        name: 'p-ann',
        kind: 'user',
        roles: ['contributor', 'approver'],
        teams: ['p', 'risk'],
      }),
      rik: await tokenFor(t, { name: 'p-rik', kind: 'user', roles: ['approver'], teams: ['risk'] }),
      ada: await tokenFor(t, { name: 'p-ada', kind: 'user', roles: ['approver'], teams: ['risk'] }),
      bob: await tokenFor(t, { name: 'p-bob', kind: 'user', roles: ['approver'], teams: ['risk'] }),
    };
    const blobs = {
      benign: { bytes: readFileSync(BENIGN), digest: await uploadBlob(t, readFileSync(BENIGN)) },
      malicious: {
        bytes: readFileSync(MALICIOUS),
        digest: await uploadBlob(t, readFileSync(MALICIOUS)),
      },
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('limited', 'high'),
        fc.array(op, { minLength: 4, maxLength: 10 }),
        async (tier, ops) => {
          const model = `prop-${run++}`;
          const replayed = new Set<number>();
          const ok = (r: { statusCode: number; body: string }, what: string) =>
            expect(r.statusCode, `${what}: ${r.body}`).toBeLessThan(500);
          expect(
            (await api('POST', '/models', { name: model, ownerTeam: 'p', riskTier: tier }))
              .statusCode,
          ).toBe(201);
          let versions = 0;
          const scanned = async (n: number) => {
            for (let i = 0; i < 400; i++) {
              const evs = (await api('GET', `/models/${model}/versions/${n}/evaluations`)).json()
                .items as { status: string }[];
              if (evs.length > 0 && evs.every((e) => ['succeeded', 'failed'].includes(e.status)))
                return;
              await new Promise((r) => setTimeout(r, 20));
            }
          };
          const push = async (malicious: boolean) => {
            const b = malicious ? blobs.malicious : blobs.benign;
            const r = await api(
              'POST',
              `/models/${model}/versions`,
              {
                files: [{ path: 'model.pkl', size: b.bytes.length, digest: b.digest }],
                card: {
                  markdown: '',
                  fields: { intendedUse: 'a', limitations: 'b', trainingData: 'c' },
                },
                description: `v${versions + 1}`,
              },
              tokens.ann,
            );
            expect(r.statusCode, r.body).toBe(201);
            versions++;
            await scanned(versions);
          };
          const pick = (i: number) => (i % versions) + 1;
          const pending = async () =>
            (
              (await api('GET', `/promotion-requests?state=pending&model=${model}`)).json()
                .items as {
                id: number;
                alias: string;
              }[]
            )[0];
          await push(false);
          for (const o of ops) {
            switch (o.t) {
              case 'push':
                await push(o.malicious);
                break;
              case 'scan': {
                // Another scan of a version (by the admin, who then counts as its evaluator).
                const n = pick(o.v);
                ok(
                  await api('POST', `/models/${model}/versions/${n}/evaluations`, {
                    evaluator: 'artifact-scan',
                  }),
                  'scan',
                );
                await scanned(n);
                break;
              }
              case 'waive': {
                const n = pick(o.v);
                const fs = (await api('GET', `/models/${model}/versions/${n}/findings`)).json()
                  .items as {
                  ruleId: string;
                }[];
                for (const rule of new Set(fs.map((f) => f.ruleId))) {
                  const path = o.model
                    ? `/models/${model}/waivers`
                    : `/models/${model}/versions/${n}/waivers`;
                  const r = await api(
                    'POST',
                    path,
                    {
                      findingRule: rule,
                      justification: 'property test',
                      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
                    },
                    tokens.ada,
                  );
                  ok(r, 'waive');
                }
                break;
              }
              case 'expire':
                // Time passes for this model's waivers.
                await sql`UPDATE waivers SET expires_at = ${new Date(Date.now() - 1000).toISOString()}
                          WHERE model_id = (SELECT id FROM models WHERE name = ${model})`.execute(
                  t.composed.database.db,
                );
                break;
              case 'promote': {
                const r = await api(
                  'POST',
                  `/models/${model}/aliases/${o.alias}/promotions`,
                  { version: String(pick(o.v)) },
                  tokens[o.who],
                );
                ok(r, 'promote');
                break;
              }
              case 'approve':
              case 'reject': {
                const p = await pending();
                if (!p) break;
                const r = await api(
                  'POST',
                  `/models/${model}/aliases/${p.alias}/promotion-requests/${p.id}/reviews`,
                  { decision: o.t, comment: 'property test' },
                  tokens[o.who],
                );
                ok(r, o.t);
                break;
              }
              case 'publish':
                ok(
                  await api('POST', '/gate-policies', { document: VARIANTS[o.variant] }),
                  'publish',
                );
                break;
              case 'plainSet': {
                const r = await api('PUT', `/models/${model}/aliases/${o.alias}`, {
                  version: pick(o.v),
                });
                expect(r.statusCode).toBeGreaterThanOrEqual(400);
                expect(r.statusCode).toBeLessThan(500);
                break;
              }
              case 'concurrent': {
                const rs = await Promise.all(
                  [o.v1, o.v2].map((x, i) =>
                    api(
                      'POST',
                      `/models/${model}/aliases/${o.alias}/promotions`,
                      { version: String(pick(x)) },
                      i === 0 ? tokens.rik : tokens.ann,
                    ),
                  ),
                );
                for (const r of rs) ok(r, 'concurrent promote');
                break;
              }
              case 'recheck':
                ok(await api('POST', '/gate-rechecks'), 'recheck');
                break;
            }
            await checkInvariants(t, model, replayed);
          }
          // Background re-checks started by publishes must leave it consistent too.
          await t.composed.deps.rechecker.run();
          await checkInvariants(t, model, replayed);
        },
      ),
      { numRuns: Number(process.env.MODELGATE_PROPERTY_RUNS ?? 30), endOnFailure: true },
    );
    // The sequences must have exercised the gate, not only refusals: report what they did.
    const kinds = await sql<{ kind: string; outcome: string; moved: number; n: number }>`
      SELECT kind, outcome, moved, count(*) AS n FROM gate_decisions d
      JOIN models m ON m.id = d.model_id WHERE m.name LIKE 'prop-%'
      GROUP BY kind, outcome, moved ORDER BY kind, outcome, moved`.execute(t.composed.database.db);
    console.log(
      'decisions by kind/outcome/moved:',
      kinds.rows.map((r) => `${r.kind}/${r.outcome}/${r.moved}=${r.n}`).join(' '),
    );
    const count = (f: (r: (typeof kinds.rows)[number]) => boolean) =>
      kinds.rows.filter(f).reduce((a, r) => a + Number(r.n), 0);
    expect(count((r) => Number(r.moved) === 1)).toBeGreaterThan(0);
    expect(count((r) => r.outcome !== 'allow')).toBeGreaterThan(0);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  }, 600_000);
});
