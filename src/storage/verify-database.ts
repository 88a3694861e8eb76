import { type Kysely, sql } from 'kysely';
import { noteWithCosignatures } from '../audit/audit-log.js';
import { StateChecker, type StateViolation } from '../audit/state-check.js';
import { LogVerifier, type VerifyReport } from '../audit/verify.js';
import { governedTables, readGovernedRows } from './governed-tables.js';
import type { DB } from './schema.js';

/** Events read from the database per query. */
const PAGE = 20_000;
/** The columns of an event row that repeat a field of its leaf. */
const LEAF_COLUMNS = ['time', 'actor', 'credential', 'action', 'subject', 'digest'] as const;

/** What `audit verify` finds in a database: the log's report and the first state violation. */
export interface DatabaseVerification {
  report: VerifyReport;
  /** The first difference between the rows and the log (only looked for when the log verifies). */
  stateViolation: StateViolation | undefined;
  /** Every difference found, in table order. */
  stateViolations: StateViolation[];
  /** Whether the rows were compared (the log verified). */
  checked: boolean;
  /** Governed rows compared, e.g. `412 rows in 20 governed tables`. */
  counted: string;
  /** Events of committed changes still queued, not yet in the tree. */
  pending: number;
}

/**
 * Verifies the log stored in a database and compares every governed table with it: the Merkle
 * tree and checkpoints (LogVerifier), every event row's columns against its leaf, each event's
 * content against its digest, and every governed row both ways against its last logged state.
 * `db` may be a transaction (tests tamper inside one and roll back).
 */
export async function verifyDatabase(
  db: Kysely<DB>,
  opts: {
    /** The engine, for the SQL that spells a row's columns as its leaf. */
    engine: 'sqlite' | 'postgres';
    logKey: string;
    witnessKeys?: readonly string[];
    since?: string;
    onProgress?: (read: number, size: number) => void;
  },
): Promise<DatabaseVerification> {
  const checkpoints: string[] = [];
  const cps = await db.selectFrom('audit_checkpoints').selectAll().orderBy('size').execute();
  const cosigs = await db
    .selectFrom('audit_cosignatures')
    .select(['size', 'line'])
    .orderBy('witness')
    .execute();
  for (const c of cps)
    checkpoints.push(
      noteWithCosignatures(
        c.note,
        cosigs.filter((x) => Number(x.size) === Number(c.size)).map((x) => x.line),
      ),
    );
  const verifier = new LogVerifier({
    checkpoints,
    logKey: opts.logKey,
    witnessKeys: opts.witnessKeys ?? [],
    ...(opts.since && { since: opts.since }),
  });
  const tables = governedTables();
  const rows = await readGovernedRows(db, tables);
  let rowCount = 0;
  for (const r of rows.values()) rowCount += r.size;
  const checker = new StateChecker(tables, rows);
  const head = await db
    .selectFrom('audit_head')
    .select('size')
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  const size = Number(head.size);
  let read = 0;
  // Each row's columns, spelled as its leaf would spell them, compared with the leaf by the
  // engine: one flag per row instead of six strings. A row the engine flags (an edit, or only a
  // string the engine's JSON quoting spells differently) is compared field by field below.
  const q = (c: string) =>
    opts.engine === 'postgres' ? sql`to_json(${sql.ref(c)})::text` : sql`json_quote(${sql.ref(c)})`;
  const seqText = opts.engine === 'postgres' ? sql`seq::text` : sql`seq`;
  const asLeaf = sql`'{"action":' || ${q('action')} || ',"actor":' || ${q('actor')} || ',"credential":' || ${q('credential')} || ',"digest":' || ${q('digest')} || ',"seq":' || ${seqText} || ',"subject":' || ${q('subject')} || ',"time":' || ${q('time')} || '}'`;
  for (let from = 0; ; from += PAGE) {
    const page = await db
      .selectFrom('audit_events')
      .select(['seq', 'leaf', 'content'])
      .select(sql<unknown>`CASE WHEN leaf = ${asLeaf} THEN 1 ELSE 0 END`.as('same'))
      .where('seq', '>=', from)
      .where('seq', '<', from + PAGE)
      .orderBy('seq')
      .execute();
    const hashes = await db
      .selectFrom('audit_nodes')
      .select(['idx', 'hash'])
      .where('level', '=', 0)
      .where('idx', '>=', from)
      .where('idx', '<', from + PAGE)
      .execute();
    const stored = new Map(hashes.map((h) => [Number(h.idx), h.hash]));
    for (const e of page) {
      const seq = Number(e.seq);
      const h = stored.get(seq);
      const leaf = verifier.add({ index: seq, text: e.leaf, ...(h && { storedLeafHash: h }) });
      // After a violation the verifier stops; so does the comparison, which would not be shown.
      if (!leaf) continue;
      // The columns beside the leaf are copies the API could be served from: each must say
      // what the leaf says.
      if (Number(e.same) !== 1) {
        const row = await db
          .selectFrom('audit_events')
          .select(LEAF_COLUMNS)
          .where('seq', '=', e.seq)
          .executeTakeFirstOrThrow();
        for (const col of LEAF_COLUMNS)
          if (row[col] !== leaf[col])
            checker.report({
              kind: 'event-column',
              table: 'audit_events',
              row: `seq ${seq}`,
              index: seq,
              message: `audit_events row seq ${seq}: column ${col} is ${JSON.stringify(row[col])} but its leaf says ${JSON.stringify(leaf[col])}`,
            });
      }
      checker.add({
        seq,
        time: leaf.time as string,
        actor: leaf.actor as string,
        credential: leaf.credential as string,
        action: leaf.action as string,
        subject: leaf.subject as string,
        digest: leaf.digest as string,
        content: e.content,
      });
    }
    read += page.length;
    opts.onProgress?.(read, size);
    // By index range, not by page fullness: a deleted event must not end the reading early.
    if (page.length === 0 && from >= size) break;
  }
  const pending = await db.selectFrom('audit_pending').selectAll().orderBy('id').execute();
  for (const { id: _id, ...p } of pending) checker.add(p);
  const report = verifier.finish();
  const stateViolations = report.ok ? checker.finishAll() : [];
  return {
    report,
    stateViolation: stateViolations[0],
    stateViolations,
    checked: report.ok,
    counted: `${rowCount} rows in ${tables.length} governed tables`,
    pending: pending.length,
  };
}
