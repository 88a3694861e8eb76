// The audit log's benchmarks, run by `npm run bench` (MODELGATE_BENCH_ONLY=audit):
// - durable writes per second (versions pushed through the store), one writer and 16 concurrent
//   writers, on SQLite and PostgreSQL, against the same writes with the log turned off;
// - `modelgate audit verify` of a whole log of MODELGATE_BENCH_AUDIT_EVENTS events (default
//   1,000,000), against reading the same rows without checking anything;
// - inclusion proof generation (from the database) and verification.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Insertable, Kysely } from 'kysely';
import { AuditLog } from '../src/audit/audit-log.js';
import { canonicalize } from '../src/audit/canonical-json.js';
import { leafHash, nodeHash, verifyInclusion } from '../src/audit/merkle.js';
import { generateSignerKey, verifierKeyOf } from '../src/audit/signed-note.js';
import { integrateAudit } from '../src/storage/audit-append.js';
import { type Database, openDatabase } from '../src/storage/database.js';
import { KyselyAuditStore } from '../src/storage/kysely-audit-store.js';
import { KyselyRegistryStore } from '../src/storage/kysely-registry-store.js';
import { migrate } from '../src/storage/migrations.js';
import type { DB } from '../src/storage/schema.js';
import { createTemplate, dropDatabase, withDatabase } from '../src/storage/test-databases.js';

export interface AuditResult {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  ratio: number;
  note: string;
}

export const log = (s: string) => process.stderr.write(`${s}\n`);
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
export const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};
const ACTOR = { identity: 'bench', credentialId: 'tok_0000000000000000' };
const EVENTS = Number(process.env.MODELGATE_BENCH_AUDIT_EVENTS ?? 1_000_000);
/** Events per model in the verified log: its creation and the changes after it. */
const UPDATES_PER_MODEL = 10;

/** A fresh migrated database on one engine (undefined for PostgreSQL without a URL). */
export async function openEngine(
  engine: 'sqlite' | 'postgres',
  pgUrl: string | undefined,
  label = 'audit',
) {
  const dataDir = mkdtempSync(join(tmpdir(), `modelgate-bench-${label}-${engine}-`));
  let pgName: string | undefined;
  let url: string | undefined;
  if (engine === 'postgres') {
    if (!pgUrl) return undefined;
    pgName = await createTemplate(pgUrl);
    url = withDatabase(pgUrl, pgName);
  }
  const database = openDatabase({ dataDir, ...(url && { url }) });
  await migrate(database);
  return {
    database,
    dataDir,
    url,
    close: async () => {
      await database.close();
      if (pgName && pgUrl) await dropDatabase(pgUrl, pgName);
      // MODELGATE_BENCH_KEEP=1 keeps the data folder (to profile a command on it afterwards).
      if (process.env.MODELGATE_BENCH_KEEP) log(`  kept ${dataDir}`);
      else rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The registry's most common write: a version of three files with a lineage edge, through the store. */
async function pushVersion(store: KyselyRegistryStore, model: string): Promise<void> {
  await store.createVersion(
    model,
    {
      digest: `sha256:${'ab'.repeat(32)}`,
      files: ['config.json', 'model.safetensors', 'tokenizer.json'].map((path, i) => ({
        path,
        size: 1000 + i,
        digest: `sha256:${String(i).repeat(64)}`,
      })),
      author: ACTOR.identity,
      sourceUri: 'git+https://example.com/repo@abc',
      card: { markdown: '# bench', fields: {} },
      tags: [],
      description: '',
      lineage: [{ relation: 'trainedOn', target: { kind: 'dataset', dataset: 'bench-data' } }],
    },
    ACTOR,
  );
}

async function writesPerSecond(
  store: KyselyRegistryStore,
  db: Kysely<DB>,
  n: number,
  writers: number,
  audited: boolean,
): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    // One model per writer: pushes to one model are serialised by its row lock by design.
    Array.from({ length: writers }, async (_, w) => {
      for (let i = next++; i < n; i = next++) await pushVersion(store, `bench-${w}`);
    }),
  );
  // Counted until the events are in the tree, as the server's integrator leaves them.
  if (audited) await integrateAudit(db);
  return n / ((performance.now() - t) / 1000);
}

async function benchAppends(
  results: AuditResult[],
  engine: 'sqlite' | 'postgres',
  pgUrl: string | undefined,
): Promise<void> {
  const e = await openEngine(engine, pgUrl);
  if (!e) {
    log(
      `  ${engine} appends skipped: set MODELGATE_BENCH_DATABASE_URL or MODELGATE_TEST_DATABASE_URL`,
    );
    return;
  }
  try {
    const n = 1000;
    const logged = new KyselyRegistryStore(e.database);
    const bare = new KyselyRegistryStore(e.database, { recordAudit: false });
    await logged.createDataset(
      { name: 'bench-data', uri: 's3://bench', digest: null, licence: null, description: '' },
      ACTOR,
    );
    for (let w = 0; w < 16; w++)
      await logged.createModel(
        {
          name: `bench-${w}`,
          ownerTeam: 'bench',
          riskTier: 'limited',
          description: '',
          intendedUse: '',
          tags: [],
        },
        ACTOR,
      );
    for (const writers of [1, 16]) {
      const withLog: number[] = [];
      const without: number[] = [];
      for (let round = 0; round < 3; round++) {
        // Alternate which goes first, so neither always meets a warmer or fuller database.
        const order = round % 2 === 0 ? [false, true] : [true, false];
        for (const audited of order) {
          const rate = await writesPerSecond(
            audited ? logged : bare,
            e.database.db,
            n,
            writers,
            audited,
          );
          (audited ? withLog : without).push(rate);
        }
        log(
          `  ${engine}, ${writers} writer(s), round ${round + 1}/3: ${withLog.at(-1)?.toFixed(0)} versions/s with the log, ${without.at(-1)?.toFixed(0)} without`,
        );
      }
      results.push({
        name: `versions pushed per second with audit events (${engine}, ${writers} writer${writers > 1 ? 's' : ''})`,
        value: median(withLog),
        unit: 'pushes/s',
        baseline: median(without),
        ratio: median(withLog) / median(without),
        note: `baseline: the same store writes (a version of 3 files and a lineage edge, in one transaction) with the log turned off, same database and durability; with the log, timed until the events are integrated into the tree; ${n} per round, median of 3`,
      });
    }
  } finally {
    await e.close();
  }
}

/**
 * Writes a log of `count` events straight into the tables, as appendAudit would leave them
 * (leaves, contents, every complete-subtree hash), in large batches: building a million-event
 * log through a million transactions would take the benchmark longer than it measures.
 */
export async function buildLog(database: Database, count: number): Promise<void> {
  const db = database.db;
  // The right edge of the tree: the hash of the last complete subtree at each level.
  const edge: Buffer[] = [];
  const BATCH = 5000;
  for (let start = 0; start < count; start += BATCH) {
    const events: Insertable<DB['audit_events']>[] = [];
    const nodes: Insertable<DB['audit_nodes']>[] = [];
    const models: Insertable<DB['models']>[] = [];
    for (let seq = start; seq < Math.min(count, start + BATCH); seq++) {
      const time = new Date(1_700_000_000_000 + seq * 1000).toISOString();
      // A registry's shape: each model created, then changed (UPDATES_PER_MODEL - 1) times,
      // and its row what the last change left, so that the full state check compares every
      // row and reads every event's content.
      const i = Math.floor(seq / UPDATES_PER_MODEL);
      const first = i * UPDATES_PER_MODEL;
      const name = `m${i}`;
      const created = new Date(1_700_000_000_000 + first * 1000).toISOString();
      const model = {
        name,
        ownerTeam: 'bench',
        riskTier: 'limited',
        description: `change ${seq - first}`,
        intendedUse: '',
        tags: [],
        createdAt: created,
        createdBy: ACTOR.identity,
        updatedAt: time,
      };
      const action = seq === first ? 'model.create' : 'model.update';
      const content = canonicalize(
        action === 'model.create'
          ? { model }
          : { model, patch: { description: model.description } },
      );
      const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
      const leaf = canonicalize({
        seq,
        time,
        actor: ACTOR.identity,
        credential: ACTOR.credentialId,
        action,
        subject: `model:${name}`,
        digest,
      });
      events.push({
        seq,
        time,
        actor: ACTOR.identity,
        credential: ACTOR.credentialId,
        action,
        subject: `model:${name}`,
        digest,
        content,
        leaf,
      });
      if (seq === count - 1 || (seq + 1) % UPDATES_PER_MODEL === 0)
        models.push({
          name,
          owner_team: model.ownerTeam,
          risk_tier: model.riskTier,
          description: model.description,
          intended_use: '',
          tags: '[]',
          created_at: created,
          created_by: ACTOR.identity,
          created_credential: ACTOR.credentialId,
          updated_at: time,
          updated_by: ACTOR.identity,
        });
      let hash = leafHash(Buffer.from(leaf, 'utf8'));
      nodes.push({ level: 0, idx: seq, hash: hash.toString('hex') });
      let level = 0;
      let idx = seq;
      while (idx % 2 === 1) {
        const left = edge[level];
        if (!left) throw new Error('tree edge missing');
        hash = nodeHash(left, hash);
        idx = (idx - 1) / 2;
        level++;
        nodes.push({ level, idx, hash: hash.toString('hex') });
      }
      edge[level] = hash;
    }
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < events.length; i += 500)
        await trx
          .insertInto('audit_events')
          .values(events.slice(i, i + 500))
          .execute();
      for (let i = 0; i < nodes.length; i += 500)
        await trx
          .insertInto('audit_nodes')
          .values(nodes.slice(i, i + 500))
          .execute();
      for (let i = 0; i < models.length; i += 500)
        await trx
          .insertInto('models')
          .values(models.slice(i, i + 500))
          .execute();
      await trx
        .updateTable('audit_head')
        .set({ size: start + events.length })
        .execute();
    });
    if ((start / BATCH) % 20 === 0) log(`  building the log: ${start + events.length}/${count}`);
  }
}

function timeCli(cli: string, args: string[]): Promise<{ secs: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(
      process.execPath,
      [cli, ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${args.join(' ')} failed: ${stdout}${stderr}`));
        else resolve({ secs: (performance.now() - t) / 1000, out: stdout });
      },
    );
  });
}

async function benchVerifyAndProofs(results: AuditResult[], cli: string): Promise<void> {
  const e = await openEngine('sqlite', undefined);
  if (!e) return;
  try {
    const t0 = performance.now();
    await buildLog(e.database, EVENTS);
    log(`  built ${EVENTS} events in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const skey = generateSignerKey('bench.example/audit/v1');
    writeFileSync(join(e.dataDir, 'audit-log.key'), `${skey}\n`, { mode: 0o600 });
    const store = new KyselyAuditStore(e.database);
    const audit = new AuditLog(store, skey);
    await audit.checkpoint();
    await e.database.close();

    const vkey = verifierKeyOf(skey);
    // The gigabyte just written is still being flushed by the kernel: let it finish, so the
    // rounds time the verifier and not the builder's writeback.
    execFileSync('sync');
    // A first run to warm the page cache, not counted.
    await timeCli(cli, ['audit', 'verify', '--data-dir', e.dataDir, '--log-key', vkey, '--json']);
    const verify: number[] = [];
    const baseline: number[] = [];
    for (let round = 0; round < 3; round++) {
      const v = await timeCli(cli, ['audit', 'verify', '--data-dir', e.dataDir, '--log-key', vkey]);
      if (!/ok: \d+ events/.test(v.out) || !/ok +state/.test(v.out))
        throw new Error(`verify did not pass:\n${v.out}`);
      verify.push(v.secs);
      // Baseline: reading the same rows (events and leaf hashes) and doing nothing with them.
      const reopened = openDatabase({ dataDir: e.dataDir });
      const rs = new KyselyAuditStore(reopened);
      const t = performance.now();
      for (let from = 0; from < EVENTS; from += 20_000) {
        await rs.rawEvents(from, from + 20_000);
        await rs.leafHashes(from, from + 20_000);
      }
      baseline.push((performance.now() - t) / 1000);
      await reopened.close();
      log(
        `  verify round ${round + 1}/3: ${verify.at(-1)?.toFixed(2)} s; reading alone ${baseline.at(-1)?.toFixed(2)} s`,
      );
    }
    results.push({
      name: `audit verify of a ${EVENTS.toLocaleString('en')}-event log with the full state check (SQLite, whole CLI)`,
      value: median(verify),
      unit: 's',
      baseline: median(baseline),
      ratio: median(verify) / median(baseline),
      note: `every event against its leaf and the tree, and every governed table both ways against the log (${(EVENTS / UPDATES_PER_MODEL).toLocaleString('en')} model rows, each created and changed ${UPDATES_PER_MODEL - 1} times); baseline: reading the same events and leaf hashes in-process without checking them; median of 3`,
    });

    const reopened = openDatabase({ dataDir: e.dataDir });
    try {
      const a = new AuditLog(new KyselyAuditStore(reopened), skey);
      const cp = await a.signLatest();
      if (!cp) throw new Error('no checkpoint');
      const root = Buffer.from(cp.root, 'base64');
      const gen: number[] = [];
      const ver: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const index = Math.floor(Math.random() * cp.size);
        let t = performance.now();
        const p = await a.inclusionProof(index, cp.size);
        gen.push((performance.now() - t) * 1000);
        t = performance.now();
        const ok = verifyInclusion(index, cp.size, p.leafHash, p.proof, root);
        ver.push((performance.now() - t) * 1000);
        if (!ok) throw new Error(`proof for ${index} did not verify`);
      }
      results.push({
        name: `inclusion proof generation, ${EVENTS.toLocaleString('en')}-event log (SQLite)`,
        value: median(gen),
        unit: 'µs',
        baseline: quantile(gen, 0.99),
        ratio: median(gen) / quantile(gen, 0.99),
        note: 'baseline column: the p99 of the same 1000 random proofs (reads O(log n) stored subtree hashes)',
      });
      results.push({
        name: 'inclusion proof verification',
        value: median(ver),
        unit: 'µs',
        baseline: quantile(ver, 0.99),
        ratio: median(ver) / quantile(ver, 0.99),
        note: 'baseline column: the p99 of the same 1000 verifications',
      });
    } finally {
      await reopened.close();
    }
  } finally {
    await e.close().catch(() => {});
  }
}

/** All audit benchmarks. */
export async function benchAudit(
  results: AuditResult[],
  opts: { pgUrl: string | undefined; cli: string },
): Promise<void> {
  // Verification first: after the PostgreSQL rounds that server is still writing back and
  // vacuuming on the same two cores, and the verifier's rounds would time that too.
  await benchVerifyAndProofs(results, opts.cli);
  await benchAppends(results, 'sqlite', opts.pgUrl);
  await benchAppends(results, 'postgres', opts.pgUrl);
}
