import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kysely, sql } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { openDatabase } from '../src/storage/database.js';
import {
  type GovernedTableReader,
  governedTables,
  UNGOVERNED_TABLES,
} from '../src/storage/governed-tables.js';
import { migrate } from '../src/storage/migrations.js';
import type { DB } from '../src/storage/schema.js';
import { verifyDatabase } from '../src/storage/verify-database.js';
import { apiOf, type TestApp, testApp, tokenFor, uploadBlob } from './helpers/app.js';
import { describeEachEngine, type TestDb } from './helpers/engines.js';
import { CLI } from './helpers/server-process.js';
import { CORPUS, FULL_CARD, waitForScans } from './helpers/versions.js';

// Acceptance 2 of issue 16: for every governed table, an update of each compared column, a
// deleted row and an inserted row are each caught by `audit verify`, naming the table and the
// row; so is an edit of each column of an event row. The cells come from the declarations in
// src/storage/governed-tables.ts and the schema the migrations build, so a new table or column
// that is neither declared governed nor declared ungoverned fails here.

/** Column types of the schema (`table.column` → SQLite type). */
const types = new Map<string, string>();
/** The schema as the migrations build it: table name → column names. */
const schema = await (async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-tamper-schema-'));
  const database = openDatabase({ dataDir: dir });
  try {
    await migrate(database);
    const tables = await database.db.introspection.getTables();
    for (const t of tables)
      for (const c of t.columns) types.set(`${t.name}.${c.name}`, c.dataType.toLowerCase());
    return new Map(tables.map((t) => [t.name, t.columns.map((c) => c.name)]));
  } finally {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  }
})();
const declared = new Map(governedTables().map((t) => [t.table, t]));

it('every table of the schema is declared governed or ungoverned (with a reason), every column of a governed table checked or excused', () => {
  for (const [table, columns] of schema) {
    if (table in UNGOVERNED_TABLES) {
      expect(UNGOVERNED_TABLES[table]?.length, table).toBeGreaterThan(10);
      continue;
    }
    const t = declared.get(table);
    expect(t, `table ${table} is neither governed nor declared ungoverned`).toBeDefined();
    for (const c of columns)
      expect(
        t?.checked.includes(c) || c in (t?.unchecked ?? {}),
        `column ${table}.${c} is neither checked nor declared unchecked`,
      ).toBe(true);
  }
});

it('docs/audit-verify.md names every governed table and every column left unchecked', () => {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'audit-verify.md'), 'utf8');
  for (const t of declared.values()) {
    expect(doc, t.table).toContain(`| \`${t.table}\` |`);
    for (const c of Object.keys(t.unchecked)) expect(doc).toContain(`\`${t.table}.${c}\``);
  }
  for (const t of Object.keys(UNGOVERNED_TABLES)) expect(doc).toContain(`| \`${t}\` |`);
});

type Row = Record<string, unknown>;
type Tamper = 'update' | 'delete' | 'insert';

/** Rolled back after each cell, so that the cells are independent. */
class Rollback extends Error {}

/** Switches off what a database owner can switch off: triggers, and foreign keys until commit. */
async function asOwner(trx: Kysely<DB>, engine: string): Promise<void> {
  if (engine === 'postgres') {
    await sql`SET LOCAL session_replication_role = replica`.execute(trx);
    return;
  }
  await sql`PRAGMA defer_foreign_keys = ON`.execute(trx);
  const triggers = await sql<{
    name: string;
  }>`SELECT name FROM sqlite_master WHERE type = 'trigger'`.execute(trx);
  for (const t of triggers.rows) await sql.raw(`DROP TRIGGER ${t.name}`).execute(trx);
}

/** A WHERE clause matching exactly this row's values. */
function matching(row: Row) {
  return sql.join(
    Object.entries(row).map(([k, v]) =>
      v === null ? sql`${sql.ref(k)} IS NULL` : sql`${sql.ref(k)} = ${v}`,
    ),
    sql` AND `,
  );
}

const changed = (v: unknown): unknown =>
  v === null ? null : typeof v === 'string' ? `${v}x` : Number(v) + 1000;

describeEachEngine('audit verify tamper matrix', (db) => {
  let t: TestApp;
  let vkey: string;

  beforeAll(async () => {
    t = await testApp(db(), { gatePack: true, worker: true, checkpointIntervalMs: 3_600_000 });
    vkey = await buildRegistry(t);
  }, 120_000);

  /** Runs `tamper` as a database owner inside a transaction, verifies there, and rolls back. */
  async function tampered(tamper: (trx: Kysely<DB>) => Promise<void>) {
    let result: Awaited<ReturnType<typeof verifyDatabase>> | undefined;
    await t.composed.database.db
      .transaction()
      .execute(async (trx) => {
        await asOwner(trx, db().engine);
        await tamper(trx);
        result = await verifyDatabase(trx, { engine: db().engine, logKey: vkey });
        throw new Rollback();
      })
      .catch((e) => {
        if (!(e instanceof Rollback)) throw e;
      });
    if (!result) throw new Error('no result');
    return result;
  }

  it('a clean registry verifies, with a row in every governed table', async () => {
    const r = await verifyDatabase(t.composed.database.db, { engine: db().engine, logKey: vkey });
    expect(r.report.ok, JSON.stringify(r.report.violation)).toBe(true);
    expect(r.stateViolations.map((v) => v.message)).toEqual([]);
    for (const table of declared.keys()) {
      const n = await sql<{
        n: number;
      }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(t.composed.database.db);
      expect(Number(n.rows[0]?.n), `no row in ${table}`).toBeGreaterThan(0);
    }
  });

  for (const table of schema.keys()) {
    const decl = declared.get(table);
    if (!decl) continue;
    for (const op of ['update', 'delete', 'insert'] as Tamper[])
      it(`${table}: ${op} is caught, naming the table and row`, async () => {
        await tamperCell(decl, op);
      });
  }

  async function tamperCell(decl: GovernedTableReader, op: Tamper) {
    const k = t.composed.database.db;
    const first = (await sql<Row>`SELECT * FROM ${sql.table(decl.table)}`.execute(k)).rows[0];
    if (!first) throw new Error(`no row in ${decl.table}`);
    const columns = schema.get(decl.table) ?? [];
    // An update: each compared column of the table on its own.
    const targets = op === 'update' ? columns.filter((c) => decl.checked.includes(c)) : [undefined];
    expect(targets.length).toBeGreaterThan(0);
    for (const column of targets) {
      let keys: string[] = [];
      const r = await tampered(async (trx) => {
        const before = await decl.read(trx);
        if (op === 'update') {
          const col = column as string;
          const numeric = /int|real|num/.test(types.get(`${decl.table}.${col}`) ?? '');
          const value = first[col] === null ? (numeric ? 1 : 'x') : changed(first[col]);
          await sql`UPDATE ${sql.table(decl.table)} SET ${sql.ref(col)} = ${value} WHERE ${matching(first)}`.execute(
            trx,
          );
        } else if (op === 'delete') {
          await sql`DELETE FROM ${sql.table(decl.table)} WHERE ${matching(first)}`.execute(trx);
        } else {
          // A new row like the first: a fresh surrogate id, natural keys changed to be unique.
          const copy: Row = {};
          for (const [c, v] of Object.entries(first)) {
            if (c === 'id' && typeof v !== 'string') continue;
            copy[c] = c.endsWith('_id') && typeof v !== 'string' ? v : changed(v);
          }
          const insert = (row: Row) =>
            sql`INSERT INTO ${sql.table(decl.table)} (${sql.join(Object.keys(row).map((c) => sql.ref(c)))})
                VALUES (${sql.join(Object.values(row))})`.execute(trx);
          await sql`SAVEPOINT tamper`.execute(trx);
          try {
            await insert(copy);
          } catch {
            // A reference that must be unique (one withdrawal per review): the next record.
            await sql`ROLLBACK TO SAVEPOINT tamper`.execute(trx);
            for (const [c, v] of Object.entries(copy))
              if (c.endsWith('_id') && typeof v === 'number') copy[c] = v + 1;
            await insert(copy);
          }
        }
        const after = await decl.read(trx);
        keys = [...new Set([...before.keys(), ...after.keys()])].filter(
          (key) => JSON.stringify(before.get(key)) !== JSON.stringify(after.get(key)),
        );
      });
      const what = `${decl.table} ${op}${column ? ` ${column}` : ''}`;
      expect(keys.length, `${what}: the tamper changed no row as read`).toBeGreaterThan(0);
      expect(r.report.ok, `${what}: ${JSON.stringify(r.report.violation)}`).toBe(true);
      const named = r.stateViolations.filter(
        (v) => v.table === decl.table && keys.includes(v.row ?? ''),
      );
      expect(
        named.length,
        `${what}: no violation names ${keys.join(', ')}; got ${r.stateViolations.map((v) => v.message).join(' | ') || 'none'}`,
      ).toBeGreaterThan(0);
      expect(named[0]?.message).toContain(decl.table);
    }
  }

  for (const column of [
    'seq',
    'time',
    'actor',
    'credential',
    'action',
    'subject',
    'digest',
    'content',
    'leaf',
  ])
    it(`audit_events: an edit of ${column} is caught, naming the event`, async () => {
      const k = t.composed.database.db;
      const ev = (
        await sql<Row>`SELECT * FROM audit_events WHERE action = 'waiver.create' ORDER BY seq LIMIT 1`.execute(
          k,
        )
      ).rows[0];
      if (!ev) throw new Error('no waiver event');
      const seq = Number(ev.seq);
      // The leaf stays JSON (the index on its subject refuses anything else): another actor.
      const value =
        column === 'seq'
          ? seq + 1_000_000
          : column === 'leaf'
            ? String(ev.leaf).replace('"actor":"', '"actor":"x')
            : `${String(ev[column])}x`;
      const r = await tampered(async (trx) => {
        await sql`UPDATE audit_events SET ${sql.ref(column)} = ${value} WHERE seq = ${seq}`.execute(
          trx,
        );
      });
      if (r.report.ok) {
        expect(r.stateViolation?.table).toBe('audit_events');
        expect(r.stateViolation?.message).toContain(`audit_events row seq ${seq}`);
      } else {
        expect(r.report.violation?.index ?? r.report.violation?.checkpointSize).toBeDefined();
        expect(r.report.violation?.message).toMatch(new RegExp(`event ${seq}\\b`));
      }
    });

  it('an evidence bundle is not exported without an attestation the log records', async () => {
    const k = t.composed.database.db;
    const api = apiOf(t);
    const url = '/models/fraud/versions/1/evidence-bundles';
    const row = (
      await sql<Row>`SELECT * FROM attestations WHERE kind = 'waiver' ORDER BY id LIMIT 1`.execute(
        k,
      )
    ).rows[0];
    if (!row) throw new Error('no waiver attestation');
    if (db().engine === 'postgres')
      await sql.raw('ALTER TABLE attestations DISABLE TRIGGER USER').execute(k);
    else {
      await sql.raw('DROP TRIGGER IF EXISTS attestations_immutable').execute(k);
      await sql.raw('DROP TRIGGER IF EXISTS attestations_no_delete').execute(k);
    }
    try {
      await sql`DELETE FROM attestations WHERE id = ${row.id}`.execute(k);
      const r = await api('POST', url);
      expect(r.statusCode, r.body).toBe(409);
      expect(r.json().code).toBe('EVIDENCE_INCOMPLETE');
      expect(r.json().message).toMatch(
        new RegExp(
          `attestation ${Number(row.id)} \\(waiver .*\\) about fraud@1 is in the audit log \\(event \\d+\\) but missing from the database`,
        ),
      );
    } finally {
      await k
        .insertInto('attestations')
        .values(row as never)
        .execute();
      if (db().engine === 'postgres')
        await sql.raw('ALTER TABLE attestations ENABLE TRIGGER USER').execute(k);
    }
    expect((await api('POST', url)).statusCode).toBe(200);
  });

  it('the CLI exits 1 naming the table and row (a deleted waiver, an event moved to another model)', async () => {
    const k = t.composed.database.db;
    const waiver = (await sql<Row>`SELECT * FROM waivers ORDER BY id LIMIT 1`.execute(k)).rows[0];
    const ev = (
      await sql<Row>`SELECT * FROM audit_events WHERE action = 'model.update' ORDER BY seq LIMIT 1`.execute(
        k,
      )
    ).rows[0];
    if (!waiver || !ev) throw new Error('fixture missing');
    const owner = async (on: boolean) => {
      if (db().engine === 'postgres')
        for (const table of ['waivers', 'audit_events'])
          await sql
            .raw(`ALTER TABLE ${table} ${on ? 'DISABLE' : 'ENABLE'} TRIGGER USER`)
            .execute(k);
      else if (on) {
        await sql.raw('DROP TRIGGER IF EXISTS audit_events_append_only').execute(k);
      }
    };
    await owner(true);
    try {
      await sql`DELETE FROM waivers WHERE id = ${waiver.id}`.execute(k);
      const deleted = await cliVerify(db(), vkey);
      expect(deleted.code, deleted.out).toBe(1);
      expect(deleted.out).toMatch(/waivers row fraud\/\d+ \(waiver\) is missing from the database/);
      await k
        .insertInto('waivers')
        .values(waiver as never)
        .execute();

      await sql`UPDATE audit_events SET subject = 'model:other' WHERE seq = ${ev.seq}`.execute(k);
      const moved = await cliVerify(db(), vkey);
      expect(moved.code, moved.out).toBe(1);
      expect(moved.out).toContain(`audit_events row seq ${Number(ev.seq)}: column subject`);
      // The history answers from the leaf: the event stays in fraud's history, not other's.
      const api = apiOf(t);
      const history = (await api('GET', '/audit/history?model=fraud')).json() as {
        items: { event: { index: number; subject: string } }[];
      };
      expect(history.items.map((i) => i.event.index)).toContain(Number(ev.seq));
      const other = (await api('GET', '/audit/history?model=other')).json() as {
        items: unknown[];
      };
      expect(other.items).toEqual([]);
      await sql`UPDATE audit_events SET subject = ${ev.subject} WHERE seq = ${ev.seq}`.execute(k);
      expect((await cliVerify(db(), vkey)).code).toBe(0);
    } finally {
      await owner(false);
    }
  });
});

function cliVerify(db: TestDb, vkey: string) {
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile(
      process.execPath,
      [
        CLI,
        'audit',
        'verify',
        '--data-dir',
        db.dataDir,
        ...(db.url ? ['--database-url', db.url] : []),
        '--log-key',
        vkey,
      ],
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout + stderr }),
    ),
  );
}

/** A registry with a row in every governed table, built through the HTTP API. */
async function buildRegistry(t: TestApp): Promise<string> {
  const api = apiOf(t);
  const ok = async (p: Promise<{ statusCode: number; body: string }>, status = 0) => {
    const r = await p;
    if (status ? r.statusCode !== status : r.statusCode >= 300)
      throw new Error(`${r.statusCode}: ${r.body}`);
    return r as unknown as { statusCode: number; body: string; json(): Record<string, unknown> };
  };
  const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();
  await ok(api('POST', '/models', { name: 'fraud', ownerTeam: 'fraud', riskTier: 'high' }));
  await ok(api('PATCH', '/models/fraud', { description: 'fraud scoring' }));
  const ann = await tokenFor(t, {
    name: 'ann',
    kind: 'user',
    roles: ['contributor', 'approver'],
    teams: ['fraud', 'risk'],
  });
  const rik = await tokenFor(t, {
    name: 'rik',
    kind: 'user',
    roles: ['approver'],
    teams: ['risk'],
  });
  const ada = await tokenFor(t, {
    name: 'ada',
    kind: 'user',
    roles: ['approver'],
    teams: ['risk'],
  });
  const bob = await tokenFor(t, {
    name: 'bob',
    kind: 'user',
    roles: ['approver'],
    teams: ['risk'],
  });
  await ok(
    api('POST', '/identities', { name: 'kim', kind: 'user', roles: ['viewer'], teams: ['fraud'] }),
  );
  const kimToken = (await ok(api('POST', '/identities/kim/tokens', { name: 'cli' }))).json();
  await ok(api('POST', '/identities/kim/tokens', { name: 'spare' }));
  await ok(api('DELETE', `/tokens/${String((kimToken.token as { id: string }).id)}`));
  await ok(
    api('PUT', '/authz/policies/kim-reads', {
      text: 'permit (principal == User::"kim", action == Action::"read", resource);',
    }),
  );
  await ok(api('POST', '/datasets', { name: 'transactions', uri: 's3://data/transactions' }));
  const bytes = readFileSync(join(CORPUS, 'malicious', 'direct-os.system.pkl'));
  const digest = await uploadBlob(t, bytes);
  await ok(
    api(
      'POST',
      '/models/fraud/versions',
      {
        files: [{ path: 'model.pkl', size: bytes.length, digest }],
        card: { markdown: '', fields: FULL_CARD },
        lineage: [{ target: { kind: 'dataset', dataset: 'transactions' } }],
      },
      ann,
    ),
  );
  await waitForScans(t, 'fraud', 1);
  await ok(api('PATCH', '/models/fraud/versions/1', { description: 'first' }));
  await ok(api('PUT', '/models/fraud/aliases/candidate', { version: 1 }));
  const findings = (await api('GET', '/models/fraud/versions/1/findings')).json().items as {
    ruleId: string;
    severity: string;
  }[];
  for (const rule of new Set(
    findings.filter((f) => ['critical', 'high'].includes(f.severity)).map((f) => f.ruleId),
  ))
    await ok(
      api(
        'POST',
        '/models/fraud/versions/1/waivers',
        {
          findingRule: rule,
          justification: 'sandboxed loader; reviewed by security',
          expiresAt: new Date(Date.now() + 7 * 86_400_000).toISOString(),
        },
        ada,
      ),
    );
  const request = async () =>
    (
      (
        await ok(api('POST', '/models/fraud/aliases/production/promotions', { version: '1' }, rik))
      ).json().request as { id: number }
    ).id;
  // A rejection, withdrawn by its approver, then a new request that two approve.
  const rejected = await request();
  const reviews = (id: number) => `/models/fraud/aliases/production/promotion-requests/${id}`;
  await ok(api('POST', `${reviews(rejected)}/reviews`, { decision: 'reject', comment: 'no' }, ada));
  await ok(api('POST', `${reviews(rejected)}/rejection-withdrawals`, { comment: 'fixed' }, ada));
  const requestId = await request();
  for (const who of [ada, bob])
    await ok(
      api(
        'POST',
        `/models/fraud/aliases/production/promotion-requests/${requestId}/reviews`,
        { decision: 'approve', comment: 'checked' },
        who,
      ),
    );
  await api('GET', '/audit/checkpoint');
  return vkey;
}
