import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { verifierKeyOf } from '../src/audit/signed-note.js';
import { outsideBounds, policyCost } from '../src/policy/gates/cost.js';
import type { Facts } from '../src/policy/gates/facts-schema.js';
import { decideGate } from '../src/policy/gates/gate.js';
import { compilePolicy } from '../src/policy/gates/policy-document.js';
import { verifyDatabase } from '../src/storage/verify-database.js';
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
// Sequences per engine: 2,000 in all when CI runs both (PostgreSQL takes about twice as long a
// step), or MODELGATE_PROPERTY_RUNS each. The whole log and every governed table are checked
// every AUDIT_EVERY sequences and at the end: a row that differs from the log stays different,
// so a later check finds what an earlier step broke.
const RUNS = (engine: 'sqlite' | 'postgres') =>
  Number(process.env.MODELGATE_PROPERTY_RUNS ?? (engine === 'sqlite' ? 1300 : 700));
const AUDIT_EVERY = Number(process.env.MODELGATE_PROPERTY_AUDIT_EVERY ?? 50);
const SHIPPED = readFileSync(
  join(import.meta.dirname, '..', 'policies', 'production-gate.yaml'),
  'utf8',
);
// Policy versions the sequences publish: the shipped one, one that needs a single approval
// whatever the tier, one that demotes a holder that stops passing, and one bound only to
// models tagged pii (so that dropping the tag would escape it).
const VARIANTS = [
  SHIPPED,
  SHIPPED.replace("model.riskTier == 'high'\n          ?", 'false\n          ?'),
  SHIPPED.replace('spec:\n', 'spec:\n  demoteOnFailure: true\n'),
  SHIPPED.replace('aliases: [production]', 'aliases: [production]\n    modelTags: [pii]'),
];

// The identities that act: people and pipelines. ann builds models and approves others' work;
// rik, ada and bob approve for the risk team, cat outside it; ci is ada's pipeline and bot is
// ci's (so ada owns both, through a chain); more service accounts appear as sequences run.
const PEOPLE = ['ann', 'rik', 'ada', 'bob', 'cat', 'ci', 'bot'] as const;
type Person = (typeof PEOPLE)[number];
const person = fc.constantFrom(...PEOPLE);
const SCOPES = ['read', 'manageIdentities', 'requestPromotion', 'approvePromotion'] as const;

type Op =
  | { t: 'push'; malicious: boolean; by: 'ann' | 'ci' | 'bot' }
  | { t: 'scan'; v: number; by: 'admin' | 'ci' }
  | { t: 'import'; v: number; by: 'admin' | 'ci' | 'rik'; critical: boolean }
  | { t: 'promote'; v: number; alias: (typeof PROTECTED)[number]; who: Person }
  | { t: 'approve'; who: Person }
  | { t: 'reject'; who: Person }
  | { t: 'withdraw'; who: Person | 'admin' }
  | { t: 'waive'; v: number; model: boolean; who: Person }
  | { t: 'revokeWaiver'; who: Person }
  | { t: 'expire' }
  | {
      t: 'classify';
      tier?: 'minimal' | 'limited' | 'high';
      owner?: 'p' | 'q';
      pii?: boolean;
      who: Person;
    }
  | { t: 'publish'; variant: number }
  | { t: 'serviceAccount'; owner: Person }
  | { t: 'tokenCreate'; caller: number; scopes: string[] | null; days: number | null }
  | { t: 'tokenRotate'; caller: number; target: number }
  | { t: 'tokenRevoke'; caller: number; target: number }
  | { t: 'plainSet'; v: number; alias: (typeof PROTECTED)[number] }
  | { t: 'concurrent'; v1: number; v2: number; alias: (typeof PROTECTED)[number] }
  | { t: 'recheck' };

const alias = fc.constantFrom(...PROTECTED);
const v = fc.nat({ max: 5 });
const slot = fc.nat({ max: 7 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('push' as const),
      malicious: fc.boolean(),
      by: fc.constantFrom('ann' as const, 'ci' as const, 'bot' as const),
    }),
    weight: 2,
  },
  fc.record({
    t: fc.constant('scan' as const),
    v,
    by: fc.constantFrom('admin' as const, 'ci' as const),
  }),
  fc.record({
    t: fc.constant('import' as const),
    v,
    by: fc.constantFrom('admin' as const, 'ci' as const, 'rik' as const),
    critical: fc.boolean(),
  }),
  {
    arbitrary: fc.record({ t: fc.constant('promote' as const), v, alias, who: person }),
    weight: 2,
  },
  { arbitrary: fc.record({ t: fc.constant('approve' as const), who: person }), weight: 3 },
  fc.record({ t: fc.constant('reject' as const), who: person }),
  fc.record({
    t: fc.constant('withdraw' as const),
    who: fc.constantFrom<Person | 'admin'>(...PEOPLE, 'admin'),
  }),
  {
    arbitrary: fc.record({ t: fc.constant('waive' as const), v, model: fc.boolean(), who: person }),
    weight: 2,
  },
  fc.record({ t: fc.constant('revokeWaiver' as const), who: person }),
  fc.record({ t: fc.constant('expire' as const) }),
  fc.record(
    {
      t: fc.constant('classify' as const),
      tier: fc.constantFrom('minimal' as const, 'limited' as const, 'high' as const),
      owner: fc.constantFrom('p' as const, 'q' as const),
      pii: fc.boolean(),
      who: person,
    },
    { requiredKeys: ['t', 'who'] },
  ),
  fc.record({ t: fc.constant('publish' as const), variant: fc.nat({ max: VARIANTS.length - 1 }) }),
  fc.record({ t: fc.constant('serviceAccount' as const), owner: person }),
  fc.record({
    t: fc.constant('tokenCreate' as const),
    caller: slot,
    scopes: fc.option(fc.subarray([...SCOPES], { minLength: 1 }), { nil: null }),
    days: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
  }),
  fc.record({ t: fc.constant('tokenRotate' as const), caller: slot, target: slot }),
  fc.record({ t: fc.constant('tokenRevoke' as const), caller: slot, target: slot }),
  fc.record({ t: fc.constant('plainSet' as const), v, alias }),
  fc.record({ t: fc.constant('concurrent' as const), v1: v, v2: v, alias }),
  fc.record({ t: fc.constant('recheck' as const) }),
);

/**
 * After every step: each protected alias points at the version of an allowing decision that
 * moved it (and that replays to allow), every move of a protected alias is such a decision,
 * and each of those has its decision event and its alias event in the audit log.
 */
/** Policy digests and decisions invariant 8 has already been checked for. */
const bounded = new Set<string>();

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
  // Invariant 8: evaluation is bounded. Every stored policy is within the cost limit, and no
  // alias moved on facts outside the bounds policies are costed for.
  // (Each policy digest and each decision is checked once: this runs after every step.)
  for (const p of policies) {
    if (bounded.has(p.digest)) continue;
    expect(policyCost(JSON.parse(p.document)).problems, `${p.name}@${p.version}`).toEqual([]);
    bounded.add(p.digest);
  }
  for (const d of moves) {
    const key = `${model}/${d.id}`;
    if (bounded.has(key)) continue;
    expect(outsideBounds(JSON.parse(d.facts) as Facts), `decision ${d.id}`).toBeUndefined();
    bounded.add(key);
  }
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
    // Invariant 7: absent evidence never passes. Whatever moved had a successful scan of its
    // own bytes; production also had an approval and a card whose required fields are text
    // (or a waiver of that one waivable rule).
    const f = JSON.parse(d.facts) as Facts;
    expect(
      f.evaluations.some(
        (e) =>
          e.evaluator === 'artifact-scan' &&
          e.status === 'succeeded' &&
          e.digest === f.version.digest,
      ),
      `decision ${d.id} moved ${d.alias} without a successful scan of ${f.version.digest}`,
    ).toBe(true);
    if (d.alias === 'production') {
      expect(
        f.approvals.some((a) => a.decision === 'approve'),
        `decision ${d.id}: no approval`,
      ).toBe(true);
      if (!(f.waivers ?? []).some((w) => w.rule?.endsWith('/model-card-complete')))
        for (const k of ['intendedUse', 'limitations', 'trainingData']) {
          const v = f.version.card[k];
          expect(typeof v === 'string' && /\S/.test(v), `decision ${d.id}: card ${k}`).toBe(true);
        }
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

/**
 * Invariant 2, by person: no approval and no waiver was ever given by someone who (or whose
 * owner chain) authored, requested or evaluated the versions it concerns, as they stood then.
 */
async function checkSeparation(t: TestApp, model: string, realOf: (gateTime: string) => string) {
  const db = t.composed.database.db;
  const owners = new Map(
    (await db.selectFrom('identities').select(['name', 'owner']).execute()).map((r) => [
      r.name,
      r.owner,
    ]),
  );
  const chain = (n: string) => {
    const out = [n];
    for (let o = owners.get(n); o && !out.includes(o); o = owners.get(o)) out.push(o);
    return out;
  };
  const same = (a: string, b: string) => chain(a).some((x) => chain(b).includes(x));
  const m = await db
    .selectFrom('models')
    .select('id')
    .where('name', '=', model)
    .executeTakeFirstOrThrow();
  const versions = await db
    .selectFrom('versions')
    .select(['id', 'number', 'author', 'created_at'])
    .where('model_id', '=', m.id)
    .execute();
  const evaluations = await db
    .selectFrom('evaluations')
    .select(['version_id', 'requested_by', 'created_at'])
    .where('version_id', 'in', [0, ...versions.map((v) => v.id)])
    .execute();
  const requests = await db
    .selectFrom('promotion_requests')
    .select(['id', 'version', 'requested_by', 'requested_at'])
    .where('model_id', '=', m.id)
    .execute();
  const partiesAt = (numbers: number[], at: string) =>
    versions
      .filter((v) => numbers.includes(Number(v.number)) && v.created_at <= at)
      .flatMap((v) => [
        v.author,
        ...evaluations
          .filter((e) => Number(e.version_id) === Number(v.id) && e.created_at <= at)
          .map((e) => e.requested_by),
        ...requests
          .filter((r) => Number(r.version) === Number(v.number) && realOf(r.requested_at) <= at)
          .map((r) => r.requested_by),
      ]);
  const approvals = await db
    .selectFrom('promotion_reviews as r')
    .innerJoin('promotion_requests as q', 'q.id', 'r.request_id')
    .select(['r.reviewer', 'r.at', 'q.version', 'q.requested_by'])
    .where('q.model_id', '=', m.id)
    .where('r.decision', '=', 'approve')
    .execute();
  for (const a of approvals) {
    const v = versions.find((x) => Number(x.number) === Number(a.version));
    const parties = [
      a.requested_by,
      v?.author ?? '',
      ...evaluations
        .filter((e) => Number(e.version_id) === Number(v?.id) && e.created_at <= realOf(a.at))
        .map((e) => e.requested_by),
    ];
    for (const p of parties)
      expect(same(a.reviewer, p), `${a.reviewer} approved ${model}@${a.version} (${p})`).toBe(
        false,
      );
  }
  const waivers = await db.selectFrom('waivers').selectAll().where('model_id', '=', m.id).execute();
  // No decision relied on a waiver given by a party of the version it decided on.
  const relied = await db
    .selectFrom('gate_decisions as d')
    .leftJoin('promotion_requests as q', 'q.id', 'd.request_id')
    .select(['d.id', 'd.version', 'd.waivers', 'd.at', 'q.requested_by'])
    .where('d.model_id', '=', m.id)
    .execute();
  for (const d of relied) {
    const v = versions.find((x) => Number(x.number) === Number(d.version));
    const parties = [
      v?.author ?? '',
      ...(d.requested_by ? [d.requested_by] : []),
      ...evaluations
        .filter((e) => Number(e.version_id) === Number(v?.id) && e.created_at <= realOf(d.at))
        .map((e) => e.requested_by),
    ];
    for (const id of JSON.parse(d.waivers) as string[]) {
      const w = waivers.find((x) => String(x.id) === id);
      for (const p of parties)
        expect(
          same(w?.approved_by ?? '', p),
          `decision ${d.id} relied on waiver ${id} by ${w?.approved_by} (${p})`,
        ).toBe(false);
    }
  }
  for (const w of waivers) {
    const numbers =
      w.version === null ? versions.map((v) => Number(v.number)) : [Number(w.version)];
    for (const p of partiesAt(numbers, realOf(w.created_at)))
      expect(same(w.approved_by, p), `${w.approved_by} waived on ${model} (${p})`).toBe(false);
  }
}

/**
 * Invariant 3: a credential never grows. Every token is within the limits of the token that
 * issued it (scopes a subset, expiry no later), a rotated token is within its predecessor's,
 * and every token the sequences hold answers as its row says: refused once revoked or expired.
 */
async function checkCredentials(
  t: TestApp,
  held: Map<string, string>,
  issuedExpiry: Map<string, string | null>,
) {
  const db = t.composed.database.db;
  const rows = await db
    .selectFrom('tokens')
    .select(['id', 'scopes', 'expires_at', 'revoked_at', 'created_credential', 'rotated_from'])
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const scopesOf = (x: { scopes: string | null }) =>
    x.scopes === null ? null : (JSON.parse(x.scopes) as string[]);
  // A parent's expiry as it was when it issued: a rotation shortens the old token's own.
  const within = (child: (typeof rows)[number], row: (typeof rows)[number], what: string) => {
    const parent = {
      ...row,
      expires_at: issuedExpiry.has(row.id) ? (issuedExpiry.get(row.id) ?? null) : row.expires_at,
    };
    const ps = scopesOf(parent);
    const cs = scopesOf(child);
    if (ps !== null) {
      expect(cs, `${what}: token ${child.id} has no scopes but ${parent.id} had`).not.toBeNull();
      for (const x of cs ?? [])
        expect(ps, `${what}: token ${child.id} gained ${x} over ${parent.id}`).toContain(x);
    }
    if (parent.expires_at !== null) {
      expect(child.expires_at, `${what}: token ${child.id} never expires`).not.toBeNull();
      expect(
        Date.parse(child.expires_at ?? ''),
        `${what}: ${child.id} outlives ${parent.id}`,
      ).toBeLessThanOrEqual(Date.parse(parent.expires_at));
    }
  };
  for (const r of rows) {
    const issuer = r.created_credential ? byId.get(r.created_credential) : undefined;
    if (issuer) within(r, issuer, 'issued');
    const before = r.rotated_from ? byId.get(r.rotated_from) : undefined;
    if (before) within(r, before, 'rotated');
  }
  const now = Date.now();
  for (const [id, secret] of held) {
    const r = byId.get(id);
    const live =
      r &&
      r.revoked_at === null &&
      (r.expires_at === null || Date.parse(r.expires_at) > now + 2000);
    const dead =
      !r || r.revoked_at !== null || (r.expires_at !== null && Date.parse(r.expires_at) < now);
    if (!live && !dead) continue; // about to expire: either answer is right
    const who = await t.composed.app.inject({
      method: 'GET',
      url: '/api/v1/whoami',
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(who.statusCode, `token ${id} (${live ? 'live' : 'revoked or expired'})`).toBe(
      live ? 200 : 401,
    );
  }
}

/** Invariant 4: the log verifies and every governed row equals its last logged state. */
async function checkAuditState(t: TestApp, logKey: string) {
  await t.composed.deps.audit.signLatest();
  const r = await verifyDatabase(t.composed.database.db, {
    engine: t.composed.database.caps.engine,
    logKey,
  });
  expect(r.report.ok, JSON.stringify(r.report.violation ?? r.report)).toBe(true);
  expect(r.stateViolations.map((x) => x.message)).toEqual([]);
}

/**
 * Invariants 5 and 6: a digest names one layout (the same version digest and layout digest
 * mean the same paths and bytes), and a failed evaluation is never shown as a clean one.
 */
async function checkDigestsAndFailures(t: TestApp, model: string) {
  const api = apiOf(t);
  const items = (await api('GET', `/models/${model}/versions?limit=500`)).json().items as {
    number: number;
    digest: string;
    layoutDigest: string;
  }[];
  for (const a of items) {
    const full = (await api('GET', `/models/${model}/versions/${a.number}`)).json() as {
      files: { path: string; digest: string }[];
    };
    const layout = full.files
      .map((f) => `${f.path}\0${f.digest}`)
      .sort()
      .join('\n');
    for (const b of items) {
      if (b.number >= a.number || b.layoutDigest !== a.layoutDigest) continue;
      const other = (await api('GET', `/models/${model}/versions/${b.number}`)).json() as {
        files: { path: string; digest: string }[];
      };
      expect(
        other.files
          .map((f) => `${f.path}\0${f.digest}`)
          .sort()
          .join('\n'),
      ).toBe(layout);
      expect(b.digest).toBe(a.digest);
    }
    const summary = (await api('GET', `/models/${model}/versions/${a.number}/findings`)).json()
      .evaluations as { failed: number; succeeded: number };
    const failed = await sql<{ n: number }>`SELECT count(*) AS n FROM evaluations e
      JOIN versions v ON v.id = e.version_id JOIN models m ON m.id = v.model_id
      WHERE m.name = ${model} AND v.number = ${a.number} AND e.status = 'failed'`.execute(
      t.composed.database.db,
    );
    expect(summary.failed).toBe(Number(failed.rows[0]?.n));
  }
}

describeEachEngine('governance invariants under random action sequences', (db) => {
  it('keeps invariants 1-8 after every step of every sequence', async () => {
    // Waivers expire as time passes for the gate: the 'expire' action moves its clock on. The
    // gate's times are then ahead of the others; realOf turns one back into the real time.
    let offsetMs = 0;
    const segments: { from: number; offset: number }[] = [{ from: 0, offset: 0 }];
    const realOf = (gateTime: string) => {
      const f = Date.parse(gateTime);
      for (let i = segments.length - 1; i >= 0; i--) {
        const seg = segments[i] as { from: number; offset: number };
        if (f - seg.offset >= seg.from) return new Date(f - seg.offset).toISOString();
      }
      return gateTime;
    };
    const t = await testApp(db(), {
      worker: true,
      gateClock: () => new Date(Date.now() + offsetMs),
    });
    const api = apiOf(t);
    const logKey = verifierKeyOf(readFileSync(join(db().dataDir, 'audit-log.key'), 'utf8').trim());
    expect(
      (await api('POST', '/gate-policies', { document: VARIANTS[0] })).statusCode,
    ).toBeLessThan(300);
    const staging = readFileSync(
      join(import.meta.dirname, '..', 'policies', 'staging-gate.yaml'),
      'utf8',
    );
    await api('POST', '/gate-policies', { document: staging });
    const user = (name: string, roles: string[], teams: string[]) =>
      tokenFor(t, { name: `p-${name}`, kind: 'user', roles, teams });
    const tokens: Record<string, string> = {
      ann: await user('ann', ['contributor', 'approver'], ['p', 'risk']),
      rik: await user('rik', ['approver', 'evaluator'], ['risk']),
      ada: await user('ada', ['approver'], ['risk']),
      bob: await user('bob', ['approver'], ['risk']),
      cat: await user('cat', ['approver'], ['p']),
      admin: t.token,
    };
    const account = async (name: string, owner: string, roles: string[]) => {
      const r = await api('POST', '/identities', {
        name,
        kind: 'service-account',
        roles,
        teams: ['p', 'risk'],
        owner,
        purpose: 'property test',
      });
      expect(r.statusCode, r.body).toBe(201);
      return (await api('POST', `/identities/${name}/tokens`, { name: 'main' })).json()
        .secret as string;
    };
    tokens.ci = await account('p-ci', 'p-ada', ['contributor', 'approver', 'evaluator']);
    tokens.bot = await account('p-bot', 'p-ci', ['contributor', 'approver']);
    let accounts = 0;
    const blobs = {
      benign: { bytes: readFileSync(BENIGN), digest: await uploadBlob(t, readFileSync(BENIGN)) },
      malicious: {
        bytes: readFileSync(MALICIOUS),
        digest: await uploadBlob(t, readFileSync(MALICIOUS)),
      },
    };
    // Admin tokens the token actions use and check: the first is the bootstrap admin's.
    const whoami = (await api('GET', '/whoami')).json() as { tokenId: string };
    const pool: { id: string; secret: string }[] = [{ id: whoami.tokenId, secret: t.token }];
    const held = new Map<string, string>();
    const issuedExpiry = new Map<string, string | null>([[whoami.tokenId, null]]);
    let run = 0;
    const steps = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('limited', 'high'),
        fc.boolean(),
        fc.array(op, { minLength: 3, maxLength: 8 }),
        async (tier, firstMalicious, ops) => {
          const model = `prop-${run++}`;
          const replayed = new Set<number>();
          const ok = (r: { statusCode: number; body: string }, what: string) =>
            expect(r.statusCode, `${what}: ${r.body}`).toBeLessThan(500);
          expect(
            (await api('POST', '/models', { name: model, ownerTeam: 'p', riskTier: tier }))
              .statusCode,
          ).toBe(201);
          let versions = 0;
          const later = () => new Date(Date.now() + offsetMs + 3_600_000).toISOString();
          const scanned = async (n: number) => {
            for (let i = 0; i < 400; i++) {
              const evs = (await api('GET', `/models/${model}/versions/${n}/evaluations`)).json()
                .items as { status: string }[];
              if (evs.length > 0 && evs.every((e) => ['succeeded', 'failed'].includes(e.status)))
                return;
              await new Promise((r) => setTimeout(r, 5));
            }
          };
          const push = async (malicious: boolean, by: string) => {
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
              tokens[by],
            );
            if (r.statusCode !== 201) {
              // A classification may have moved the model to a team the pusher is not in.
              expect(r.statusCode, r.body).toBe(403);
              return;
            }
            versions++;
            await scanned(versions);
          };
          const pick = (i: number) => (i % versions) + 1;
          const pending = async () =>
            (
              (await api('GET', `/promotion-requests?state=pending&model=${model}`)).json()
                .items as { id: number; alias: string }[]
            )[0];
          await push(firstMalicious, 'ann');
          for (const o of ops) {
            steps.set(o.t, (steps.get(o.t) ?? 0) + 1);
            switch (o.t) {
              case 'push':
                await push(o.malicious, o.by);
                break;
              case 'scan': {
                const n = pick(o.v);
                ok(
                  await api(
                    'POST',
                    `/models/${model}/versions/${n}/evaluations`,
                    { evaluator: 'artifact-scan' },
                    tokens[o.by],
                  ),
                  'scan',
                );
                await scanned(n);
                break;
              }
              case 'import': {
                const content = JSON.stringify({
                  schema: 'modelgate.dev/evaluation-result/v1',
                  tool: { name: 'prop-audit', version: '1' },
                  findings: o.critical
                    ? [
                        {
                          ruleId: 'prop-audit/leak',
                          severity: 'critical',
                          title: 'leaks',
                          location: { file: 'model.pkl' },
                        },
                      ]
                    : [],
                  metrics: { attempts: 10 },
                });
                ok(
                  await api(
                    'POST',
                    `/models/${model}/versions/${pick(o.v)}/evaluation-imports`,
                    { format: 'modelgate', content },
                    tokens[o.by],
                  ),
                  'import',
                );
                break;
              }
              case 'promote':
                ok(
                  await api(
                    'POST',
                    `/models/${model}/aliases/${o.alias}/promotions`,
                    { version: String(pick(o.v)) },
                    tokens[o.who],
                  ),
                  'promote',
                );
                break;
              case 'approve':
              case 'reject': {
                const p = await pending();
                if (!p) break;
                ok(
                  await api(
                    'POST',
                    `/models/${model}/aliases/${p.alias}/promotion-requests/${p.id}/reviews`,
                    { decision: o.t, comment: 'property test' },
                    tokens[o.who],
                  ),
                  o.t,
                );
                break;
              }
              case 'withdraw': {
                const r = (
                  (await api('GET', `/promotion-requests?state=rejected&model=${model}`)).json()
                    .items as { id: number; alias: string }[]
                )[0];
                if (!r) break;
                ok(
                  await api(
                    'POST',
                    `/models/${model}/aliases/${r.alias}/promotion-requests/${r.id}/rejection-withdrawals`,
                    { comment: 'property test', override: o.who === 'admin' },
                    tokens[o.who],
                  ),
                  'withdraw',
                );
                break;
              }
              case 'waive': {
                const n = pick(o.v);
                const fs = (await api('GET', `/models/${model}/versions/${n}/findings`)).json()
                  .items as { ruleId: string }[];
                for (const rule of new Set(fs.map((f) => f.ruleId)))
                  ok(
                    await api(
                      'POST',
                      o.model
                        ? `/models/${model}/waivers`
                        : `/models/${model}/versions/${n}/waivers`,
                      { findingRule: rule, justification: 'property test', expiresAt: later() },
                      tokens[o.who],
                    ),
                    'waive',
                  );
                break;
              }
              case 'revokeWaiver': {
                const ws = (await api('GET', `/waivers?model=${model}`)).json().items as {
                  id: number;
                }[];
                if (ws[0])
                  ok(
                    await api(
                      'POST',
                      `/models/${model}/waivers/${ws[0].id}/revoke`,
                      {},
                      tokens[o.who],
                    ),
                    'revoke waiver',
                  );
                break;
              }
              case 'expire':
                // Two hours pass for the gate: every waiver given so far has expired.
                offsetMs += 2 * 3_600_000;
                segments.push({ from: Date.now(), offset: offsetMs });
                break;
              case 'classify': {
                const tags = o.pii === undefined ? undefined : o.pii ? ['pii'] : [];
                const patch = {
                  ...(o.tier && { riskTier: o.tier }),
                  ...(o.owner && { ownerTeam: o.owner }),
                  ...(tags && { tags }),
                };
                if (Object.keys(patch).length === 0) break;
                ok(await api('PATCH', `/models/${model}`, patch, tokens[o.who]), 'classify');
                break;
              }
              case 'publish':
                ok(
                  await api('POST', '/gate-policies', { document: VARIANTS[o.variant] }),
                  'publish',
                );
                break;
              case 'serviceAccount': {
                // A pipeline someone owns, which then approves and waives as one of the people.
                const name = `p-sa${accounts++}`;
                const secret = await account(name, `p-${o.owner}`, ['approver', 'contributor']);
                tokens[PEOPLE[accounts % PEOPLE.length] as string] = secret;
                break;
              }
              case 'tokenCreate': {
                const caller = pool[o.caller % pool.length] as { secret: string };
                const r = await api(
                  'POST',
                  '/identities/admin/tokens',
                  {
                    name: 'prop',
                    ...(o.scopes && { scopes: o.scopes }),
                    ...(o.days && { expiresInDays: o.days }),
                  },
                  caller.secret,
                );
                ok(r, 'token create');
                if (r.statusCode === 201) {
                  const b = r.json() as {
                    token: { id: string; expiresAt: string | null };
                    secret: string;
                  };
                  pool.push({ id: b.token.id, secret: b.secret });
                  held.set(b.token.id, b.secret);
                  issuedExpiry.set(b.token.id, b.token.expiresAt ?? null);
                }
                break;
              }
              case 'tokenRotate': {
                const caller = pool[o.caller % pool.length] as { secret: string };
                const target = pool[o.target % pool.length] as { id: string };
                // The bootstrap token stays: the rest of the sequence acts with it.
                if (target.id === whoami.tokenId) break;
                const r = await api(
                  'POST',
                  `/tokens/${target.id}/rotate`,
                  { overlapSeconds: 0 },
                  caller.secret,
                );
                ok(r, 'token rotate');
                if (r.statusCode === 201) {
                  const b = r.json() as {
                    token: { id: string; expiresAt: string | null };
                    secret: string;
                  };
                  pool.push({ id: b.token.id, secret: b.secret });
                  held.set(b.token.id, b.secret);
                  issuedExpiry.set(b.token.id, b.token.expiresAt ?? null);
                }
                break;
              }
              case 'tokenRevoke': {
                const caller = pool[o.caller % pool.length] as { secret: string };
                const target = pool[o.target % pool.length] as { id: string };
                // The bootstrap token stays: the rest of the sequence acts with it.
                if (target.id === whoami.tokenId) break;
                ok(await api('DELETE', `/tokens/${target.id}`, undefined, caller.secret), 'revoke');
                break;
              }
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
            await checkSeparation(t, model, realOf);
            if (o.t.startsWith('token')) await checkCredentials(t, held, issuedExpiry);
          }
          // Background re-checks started by publishes must leave it consistent too.
          await t.composed.deps.rechecker.run();
          await checkInvariants(t, model, replayed);
          await checkDigestsAndFailures(t, model);
          // The whole log and every governed table, every few sequences (it reads them all).
          if (run % AUDIT_EVERY === 0) await checkAuditState(t, logKey);
        },
      ),
      { numRuns: RUNS(db().engine), endOnFailure: true },
    );
    await checkCredentials(t, held, issuedExpiry);
    await checkAuditState(t, logKey);
    // The sequences must have exercised the gate, not only refusals: report what they did.
    const kinds = await sql<{ kind: string; outcome: string; moved: number; n: number }>`
      SELECT kind, outcome, moved, count(*) AS n FROM gate_decisions d
      JOIN models m ON m.id = d.model_id WHERE m.name LIKE 'prop-%'
      GROUP BY kind, outcome, moved ORDER BY kind, outcome, moved`.execute(t.composed.database.db);
    console.log(
      `${run} sequences, ${[...steps.values()].reduce((a, b) => a + b, 0)} steps:`,
      [...steps].map(([k, n]) => `${k}=${n}`).join(' '),
    );
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
  }, 1_800_000);
});
