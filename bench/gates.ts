// Release gate benchmarks, run by `npm run bench` (MODELGATE_BENCH_ONLY=gates):
// - one gate decision for a version with its evidence (facts loaded from the database, the
//   shipped production policy evaluated), against evaluating the same facts already in memory;
// - what-if of the shipped production policy over MODELGATE_BENCH_WHATIF_VERSIONS versions
//   (default 100,000), against reading the same version rows;
// - promotions per second (alias moved with decision and audit events) on SQLite and PostgreSQL,
//   against plain alias sets of the same aliases.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { outsideBounds } from '../src/policy/gates/cost.js';
import { evaluatePolicy } from '../src/policy/gates/evaluate.js';
import { decideGate, type GatePolicy } from '../src/policy/gates/gate.js';
import { compilePolicy, parsePolicyDocument } from '../src/policy/gates/policy-document.js';
import type { Database } from '../src/storage/database.js';
import { KyselyGatePolicyStore } from '../src/storage/kysely-gate-policy-store.js';
import { KyselyGateStore } from '../src/storage/kysely-gate-store.js';
import { KyselyRegistryStore } from '../src/storage/kysely-registry-store.js';
import { insertMany, seedPortfolio } from '../test/helpers/portfolio.js';
import { log, median, openEngine, quantile, type AuditResult as Result } from './audit.js';

const ACTOR = { identity: 'bench', credentialId: 'tok_0000000000000000' };
const REVIEWER = {
  actor: { identity: 'rik', credentialId: 'tok_0000000000000001' },
  roles: ['approver'],
  teams: ['risk'],
};
const WHATIF_VERSIONS = Number(process.env.MODELGATE_BENCH_WHATIF_VERSIONS ?? 100_000);
const POLICY_DIR = join(import.meta.dirname, '..', 'policies');
async function publish(database: Database, file: string, edit = (t: string) => t) {
  const text = edit(readFileSync(join(POLICY_DIR, file), 'utf8'));
  const c = compilePolicy(parsePolicyDocument(text));
  const p = await new KyselyGatePolicyStore(database).publish(
    { name: c.name, digest: c.digest, document: c.document, source: text },
    ACTOR,
  );
  return { name: p.name, version: p.version, digest: p.digest, compiled: c } satisfies GatePolicy;
}

async function benchDecision(results: Result[]) {
  const e = await openEngine('sqlite', undefined, 'gates');
  if (!e) return;
  try {
    const policy = await publish(e.database, 'production-gate.yaml');
    await seedPortfolio(e.database, 1, 1);
    // A version with a realistic amount of evidence: 5 evaluations, 200 findings.
    const db = e.database.db;
    const v = await db.selectFrom('versions').select('id').executeTakeFirstOrThrow();
    const at = new Date().toISOString();
    for (let i = 0; i < 4; i++)
      await db
        .insertInto('evaluations')
        .values({
          id: `ev_extra${i}`,
          version_id: v.id,
          evaluator_id: `imported-${i}`,
          evaluator_version: '1',
          config: '{}',
          status: 'succeeded',
          requested_by: 'ci',
          credential_id: 'tok',
          created_at: at,
          started_at: at,
          finished_at: at,
          progress: 1,
          metrics: '{"asr":0.1}',
          error: null,
          attempts: 1,
          lease_owner: null,
          lease_expires_at: null,
        })
        .execute();
    await insertMany(
      db,
      'findings',
      Array.from({ length: 200 }, (_, i) => ({
        evaluation_id: `ev_extra${i % 4}`,
        version_id: v.id,
        rule_id: `RULE-${i % 20}`,
        severity: i % 3 ? 'low' : 'medium',
        title: `finding ${i}`,
        file: 'model.pkl',
        member: null,
        byte_offset: i,
        evidence: '',
        refs: '[]',
        status: 'open',
        created_at: at,
      })),
    );
    const gates = new KyselyGateStore(e.database, { protectedAliases: new Set(['production']) });
    const target = { model: 'm0', version: 1, alias: 'production' };
    const facts = await gates.factsFor(target, 'ann');
    for (let i = 0; i < 200; i++) decideGate([policy], await gates.factsFor(target, 'ann'));
    const full: number[] = [];
    const evalOnly: number[] = [];
    for (let i = 0; i < 2000; i++) {
      let t = performance.now();
      decideGate([policy], await gates.factsFor(target, 'ann'));
      full.push((performance.now() - t) * 1000);
      t = performance.now();
      decideGate([policy], facts);
      evalOnly.push((performance.now() - t) * 1000);
    }
    log(
      `  decision: median ${median(full).toFixed(0)} µs, p99 ${quantile(full, 0.99).toFixed(0)} µs`,
    );
    results.push({
      name: 'one gate decision (facts loaded from SQLite + shipped production policy), median',
      value: median(full),
      unit: 'µs',
      baseline: median(evalOnly),
      ratio: median(full) / median(evalOnly),
      note: `version with 5 evaluations and ${200 + 1} findings; p99 ${quantile(full, 0.99).toFixed(0)} µs; baseline: evaluating the same facts already in memory (p99 ${quantile(evalOnly, 0.99).toFixed(0)} µs); 2,000 decisions in process`,
    });
    // What bounding costs each evaluation: the facts' bounds checked (the policy's cost is
    // worked out once per compiled policy), against the whole evaluation that includes it.
    const check: number[] = [];
    const whole: number[] = [];
    for (let i = 0; i < 5000; i++) {
      let t = performance.now();
      outsideBounds(facts);
      check.push((performance.now() - t) * 1000);
      t = performance.now();
      evaluatePolicy(policy.compiled, facts);
      whole.push((performance.now() - t) * 1000);
    }
    results.push({
      name: "bounds check of a decision's facts (issue 17), median",
      value: median(check),
      unit: 'µs',
      baseline: median(whole),
      ratio: median(check) / median(whole),
      note: 'the facts of the decision above checked against the bounds policies are costed for; baseline: evaluating the shipped production policy on them, check included; 5,000 alternating runs in process',
    });
  } finally {
    await e.close();
  }
}

async function benchWhatIf(results: Result[]) {
  const e = await openEngine('sqlite', undefined, 'gates');
  if (!e) return;
  try {
    const per = 100;
    const models = Math.max(1, Math.round(WHATIF_VERSIONS / per));
    const t0 = performance.now();
    await seedPortfolio(e.database, models, per);
    log(`  seeded ${models * per} versions in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const gates = new KyselyGateStore(e.database, { protectedAliases: new Set(['production']) });
    const doc = parsePolicyDocument(readFileSync(join(POLICY_DIR, 'production-gate.yaml'), 'utf8'));
    const runs: number[] = [];
    const reads: number[] = [];
    let failing = 0;
    for (let i = 0; i < 3; i++) {
      let t = performance.now();
      await e.database.db.selectFrom('versions').selectAll().execute();
      reads.push((performance.now() - t) / 1000);
      t = performance.now();
      const r = await gates.whatIf(doc, true);
      runs.push((performance.now() - t) / 1000);
      failing = r.failing.length;
      log(`  what-if round ${i + 1}/3: ${runs.at(-1)?.toFixed(2)} s, ${r.evaluated} evaluated`);
    }
    results.push({
      name: `what-if of the shipped production policy over ${models * per} versions (SQLite)`,
      value: median(runs),
      unit: 's',
      baseline: median(reads),
      ratio: median(runs) / median(reads),
      note: `--all-versions, ${models} models x ${per} versions, each with a scan, one in ten with a critical finding (${failing} would fail); baseline: SELECT * of the same version rows; median of 3`,
    });
  } finally {
    await e.close();
  }
}

async function benchPromotions(
  results: Result[],
  engine: 'sqlite' | 'postgres',
  pgUrl: string | undefined,
) {
  const e = await openEngine(engine, pgUrl, 'gates');
  if (!e) {
    log(`  ${engine}: skipped (no database URL)`);
    return;
  }
  try {
    const n = 400;
    await publish(e.database, 'staging-gate.yaml');
    // The same gate on a second protected alias, for the concurrent round.
    await publish(e.database, 'staging-gate.yaml', (t) =>
      t
        .replace('name: staging-gate', 'name: canary-gate')
        .replace('aliases: [staging]', 'aliases: [canary]'),
    );
    const { names } = await seedPortfolio(e.database, n, 2, 'p');
    // Version 1 of every other model has a critical finding seeded by `seed` (id % 10): pick
    // the version that passes for each model.
    const passing = await e.database.db
      .selectFrom('versions')
      .innerJoin('models', 'models.id', 'versions.model_id')
      .leftJoin('findings', 'findings.version_id', 'versions.id')
      .select(['models.name', 'versions.number'])
      .where('findings.id', 'is', null)
      .where('models.name', 'like', 'p%')
      .execute();
    const pick = new Map(passing.map((r) => [r.name, Number(r.number)]));
    const gates = new KyselyGateStore(e.database, {
      protectedAliases: new Set(['staging', 'canary']),
    });
    const store = new KyselyRegistryStore(e.database);
    const rate = async (
      label: string,
      concurrency: number,
      one: (name: string) => Promise<unknown>,
    ) => {
      const queue = names.filter((m) => pick.has(m));
      const t = performance.now();
      let done = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let m = queue.pop(); m !== undefined; m = queue.pop()) {
            await one(m);
            done++;
          }
        }),
      );
      const r = done / ((performance.now() - t) / 1000);
      log(`  ${engine} ${label}, ${concurrency} at once: ${r.toFixed(0)}/s`);
      return r;
    };
    for (const concurrency of [1, 16]) {
      const plain = await rate('plain alias sets', concurrency, (m) =>
        store.setAlias(m, `c${concurrency}`, pick.get(m)!, ACTOR),
      );
      const promoted = await rate('promotions', concurrency, async (m) => {
        const alias = concurrency === 1 ? 'staging' : 'canary';
        const r = await gates.promote({ model: m, version: pick.get(m)!, alias }, REVIEWER);
        if (r.status !== 'promoted')
          throw new Error(`${m}: ${r.status} ${r.decision?.reasons.join('; ')}`);
      });
      results.push({
        name: `promotions through the shipped staging gate, ${engine}, ${concurrency} at once`,
        value: promoted,
        unit: 'promotions/s',
        baseline: plain,
        ratio: promoted / plain,
        note: `each: lock, facts, shipped staging policy, decision, alias move, 3 audit events, one transaction; baseline: plain alias sets (alias row + history + 1 audit event) of the same models; ${pick.size} models`,
      });
    }
  } finally {
    await e.close();
  }
}

export async function benchGates(results: Result[], opts: { pgUrl: string | undefined }) {
  await benchDecision(results);
  await benchWhatIf(results);
  await benchPromotions(results, 'sqlite', undefined);
  await benchPromotions(results, 'postgres', opts.pgUrl);
}
