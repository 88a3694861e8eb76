import { type Kysely, type Selectable, type SqlBool, sql } from 'kysely';
import type { AuditStore, StoredCheckpoint, StoredEvent } from '../audit/audit-log.js';
import type { NodeId } from '../audit/merkle.js';
import { integrateAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { AuditCheckpointsTable, AuditEventsTable, DB } from './schema.js';

/**
 * An event as stored. What it says (time, actor, action, ...) is read from its leaf, the bytes
 * the tree and the proofs cover; the columns beside it only index it.
 */
function event(r: Selectable<AuditEventsTable>): StoredEvent {
  let leaf: Partial<Record<keyof StoredEvent, unknown>> = {};
  try {
    leaf = JSON.parse(r.leaf) as typeof leaf;
  } catch {
    // A damaged leaf: audit verify reports it; the columns stand in meanwhile.
  }
  const str = (v: unknown, fallback: string) => (typeof v === 'string' ? v : fallback);
  return {
    seq: Number(r.seq),
    time: str(leaf.time, r.time),
    actor: str(leaf.actor, r.actor),
    credential: str(leaf.credential, r.credential),
    action: str(leaf.action, r.action),
    subject: str(leaf.subject, r.subject),
    digest: str(leaf.digest, r.digest),
    content: r.content,
    leaf: r.leaf,
  };
}

const checkpoint = (r: Selectable<AuditCheckpointsTable>): StoredCheckpoint => ({
  size: Number(r.size),
  root: r.root,
  note: r.note,
  createdAt: r.created_at,
});

/** Largest number of node ids asked for in one query. */
const NODE_CHUNK = 200;

/** AuditStore on SQLite or PostgreSQL. Appends happen in the stores' own transactions (appendAudit). */
export class KyselyAuditStore implements AuditStore {
  private readonly db: Kysely<DB>;
  private readonly engine: string;

  constructor(database: Database) {
    this.db = database.db;
    this.engine = database.caps.engine;
  }

  integrate(): Promise<number> {
    return integrateAudit(this.db);
  }

  async pending(): Promise<Omit<StoredEvent, 'seq' | 'leaf'>[]> {
    const rows = await this.db.selectFrom('audit_pending').selectAll().orderBy('id').execute();
    return rows.map(({ id: _id, ...r }) => r);
  }

  async size(): Promise<number> {
    const r = await this.db
      .selectFrom('audit_head')
      .select('size')
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return Number(r.size);
  }

  async events(from: number, to: number): Promise<StoredEvent[]> {
    const rows = await this.db
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>=', from)
      .where('seq', '<', to)
      .orderBy('seq')
      .execute();
    return rows.map(event);
  }

  async rawEvents(
    from: number,
    to: number,
  ): Promise<{ seq: number; leaf: string; content: string }[]> {
    const rows = await this.db
      .selectFrom('audit_events')
      .select(['seq', 'leaf', 'content'])
      .where('seq', '>=', from)
      .where('seq', '<', to)
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({ seq: Number(r.seq), leaf: r.leaf, content: r.content }));
  }

  async eventsAbout(
    match: { equals: string[]; prefixes: string[] },
    opts: { from?: string; to?: string; limit: number; newestFirst?: boolean },
  ): Promise<StoredEvent[]> {
    // Matched on the leaf, the bytes the tree covers, not on the subject and time columns
    // beside it, which whoever owns the database can edit (audit verify reports such an edit):
    // an event moved to another model's subject column stays in its own model's history. The
    // leaf is canonical JSON, so `,"subject":"<subject>` occurs in it exactly where its subject
    // is; the candidates are then checked on the parsed leaf.
    const quoted = (s: string) => JSON.stringify(s);
    const needles = [
      ...match.equals.map((e) => `,"subject":${quoted(e)},`),
      ...match.prefixes.map((p) => `,"subject":${quoted(p).slice(0, -1)}`),
    ];
    const contains = (n: string) =>
      this.engine === 'postgres'
        ? sql<SqlBool>`strpos(leaf, ${n}) > 0`
        : sql<SqlBool>`instr(leaf, ${n}) > 0`;
    const rows = await this.db
      .selectFrom('audit_events')
      .selectAll()
      .where((eb) => eb.or(needles.map(contains)))
      .orderBy('seq', opts.newestFirst ? 'desc' : 'asc')
      .execute();
    const out: StoredEvent[] = [];
    for (const r of rows) {
      const e = event(r);
      const about =
        match.equals.includes(e.subject) || match.prefixes.some((p) => e.subject.startsWith(p));
      if (!about) continue;
      if (opts.from && e.time < opts.from) continue;
      if (opts.to && e.time > opts.to) continue;
      out.push(e);
      if (out.length >= opts.limit) break;
    }
    return out;
  }

  async leafHashes(from: number, to: number): Promise<Map<number, string>> {
    const rows = await this.db
      .selectFrom('audit_nodes')
      .select(['idx', 'hash'])
      .where('level', '=', 0)
      .where('idx', '>=', from)
      .where('idx', '<', to)
      .execute();
    return new Map(rows.map((r) => [Number(r.idx), r.hash]));
  }

  async nodes(ids: readonly NodeId[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (let i = 0; i < ids.length; i += NODE_CHUNK) {
      const chunk = ids.slice(i, i + NODE_CHUNK);
      const rows = await this.db
        .selectFrom('audit_nodes')
        .select(['level', 'idx', 'hash'])
        .where((eb) =>
          eb.or(chunk.map((n) => eb.and([eb('level', '=', n.level), eb('idx', '=', n.index)]))),
        )
        .execute();
      for (const r of rows) out.set(`${r.level}/${Number(r.idx)}`, Buffer.from(r.hash, 'hex'));
    }
    return out;
  }

  async checkpoints(opts: { fromSize?: number; limit?: number } = {}): Promise<StoredCheckpoint[]> {
    let q = this.db.selectFrom('audit_checkpoints').selectAll();
    if (opts.fromSize !== undefined) q = q.where('size', '>=', opts.fromSize);
    const rows = await q
      .orderBy('size')
      .limit(opts.limit ?? 1_000_000)
      .execute();
    return rows.map(checkpoint);
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const r = await this.db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .orderBy('size', 'desc')
      .limit(1)
      .executeTakeFirst();
    return r ? checkpoint(r) : undefined;
  }

  async addCheckpoint(c: Omit<StoredCheckpoint, 'createdAt'>, at: string): Promise<void> {
    await this.db
      .insertInto('audit_checkpoints')
      .values({ size: c.size, root: c.root, note: c.note, created_at: at })
      .onConflict((oc) => oc.column('size').doNothing())
      .execute();
  }

  async cosignatures(size: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('audit_cosignatures')
      .select('line')
      .where('size', '=', size)
      .orderBy('witness')
      .execute();
    return rows.map((r) => r.line);
  }

  async addCosignature(size: number, witness: string, line: string, at: string): Promise<void> {
    await this.db
      .insertInto('audit_cosignatures')
      .values({ size, witness, line, created_at: at })
      .onConflict((oc) => oc.columns(['size', 'witness']).doNothing())
      .execute();
  }
}
