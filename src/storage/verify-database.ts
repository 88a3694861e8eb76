import type { Worker } from 'node:worker_threads';
import { type Kysely, sql } from 'kysely';
import { noteWithCosignatures } from '../audit/audit-log.js';
import { StateChecker, type StateViolation } from '../audit/state-check.js';
import { eventFields, LogVerifier, type VerifyInput, type VerifyReport } from '../audit/verify.js';
import { spawnThread } from '../core/threads.js';
import { governedTables, readGovernedRows } from './governed-tables.js';
import { readLogPages } from './log-pages.js';
import type { DB } from './schema.js';

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
    /**
     * Where the database is, for a second connection: the Merkle checks then run in a worker
     * thread beside the row comparison (not for a transaction, whose changes another
     * connection would not see).
     */
    parallel?: { dataDir: string; url?: string };
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
  const input = {
    checkpoints,
    logKey: opts.logKey,
    witnessKeys: opts.witnessKeys ?? [],
    ...(opts.since && { since: opts.since }),
  };
  // Key errors throw here, before any thread starts.
  const verifier = new LogVerifier(input);
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
  const same = sql<unknown>`CASE WHEN leaf = ${asLeaf} THEN 1 ELSE 0 END`;
  // With a database to open, the Merkle checks run in a worker thread on their own connection
  // while this thread compares the rows: the two halves take about as long each.
  const merkle = opts.parallel ? new MerkleThread(input, opts.parallel) : undefined;
  await readLogPages(
    db,
    size,
    { content: true, hashes: !merkle, same },
    async (page, stored, from) => {
      await merkle?.send(from, page);
      for (const e of page) {
        const seq = Number(e.seq);
        const h = stored.get(seq);
        const leaf = merkle
          ? eventFields(e.leaf)
          : verifier.add({ index: seq, text: e.leaf, ...(h && { storedLeafHash: h }) });
        // An event the verifier refuses fails the log; the rows are then not compared.
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
          content: e.content as string,
        });
      }
      read += page.length;
      opts.onProgress?.(read, size);
    },
  );
  const pending = await db.selectFrom('audit_pending').selectAll().orderBy('id').execute();
  for (const { id: _id, ...p } of pending) checker.add(p);
  const report = merkle ? await merkle.finish() : verifier.finish();
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

/**
 * Young-generation size of the verification threads. Reading a million events allocates
 * short-lived rows by the gigabyte; with V8's default nursery, collecting them took a third of
 * the time.
 */
const YOUNG_GENERATION_MB = 192;

/**
 * `verifyDatabase` on a database opened by path or URL, in worker threads with a larger young
 * generation (the row comparison in one, the Merkle checks in another): what the CLI runs.
 */
export function verifyDatabaseInThread(
  open: { dataDir: string; url?: string },
  opts: Omit<Parameters<typeof verifyDatabase>[1], 'parallel' | 'onProgress' | 'engine'>,
  onProgress?: (read: number, size: number) => void,
): Promise<DatabaseVerification> {
  const worker = spawnThread('verify-database-thread', import.meta.url, {
    workerData: { open, opts },
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  return new Promise((resolve, reject) => {
    worker.on(
      'message',
      (
        m:
          | { progress: [number, number] }
          | { ok: true; result: DatabaseVerification }
          | { ok: false; error: string },
      ) => {
        if ('progress' in m) onProgress?.(...m.progress);
        else if (m.ok) resolve(m.result);
        else reject(new Error(m.error));
      },
    );
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`audit verification thread exited (code ${code})`));
    });
  });
}

/** Pages the row thread may be ahead of the Merkle thread (bounds the leaves held in memory). */
const PAGES_IN_FLIGHT = 8;

/**
 * The log verifier in a worker thread: it is sent the leaves this thread reads, reads their
 * stored hashes on its own connection, and answers its report at the end.
 */
class MerkleThread {
  private readonly worker: Worker;
  private readonly result: Promise<VerifyReport>;
  private inFlight = 0;
  private wake: (() => void) | undefined;
  private failed: Error | undefined;

  constructor(input: Omit<VerifyInput, 'leaves'>, open: { dataDir: string; url?: string }) {
    this.worker = spawnThread('verify-log-thread', import.meta.url, {
      workerData: { input, open },
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    this.result = new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        this.failed = e;
        this.wake?.();
        reject(e);
      };
      this.worker.on(
        'message',
        (
          m: { ack: number } | { ok: true; report: VerifyReport } | { ok: false; error: string },
        ) => {
          if ('ack' in m) {
            this.inFlight--;
            this.wake?.();
          } else if (m.ok) resolve(m.report);
          else fail(new Error(`audit log verification failed: ${m.error}`));
        },
      );
      this.worker.once('error', fail);
      this.worker.once('exit', (code) => {
        if (code !== 0) fail(new Error(`audit log verification thread exited (code ${code})`));
      });
    });
    // Awaited at the end; a failure meanwhile must not surface as an unhandled rejection.
    this.result.catch(() => {});
  }

  /** Sends a page of leaves, waiting while the thread is PAGES_IN_FLIGHT pages behind. */
  async send(from: number, page: { seq: number; leaf: string }[]): Promise<void> {
    while (this.inFlight >= PAGES_IN_FLIGHT && !this.failed)
      await new Promise<void>((r) => {
        this.wake = r;
      });
    if (this.failed) throw this.failed;
    this.inFlight++;
    this.worker.postMessage({
      from,
      seqs: page.map((e) => Number(e.seq)),
      leaves: page.map((e) => e.leaf),
    });
  }

  finish(): Promise<VerifyReport> {
    this.worker.postMessage({ done: true });
    return this.result;
  }
}
