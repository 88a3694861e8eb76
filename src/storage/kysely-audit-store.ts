import { type Kysely, type Selectable, sql } from 'kysely';
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

/** The subject in an event's leaf, as the index of migration 0020 spells it (it must match). */
const LEAF_SUBJECT = {
  sqlite: `json_extract(leaf, '$.subject')`,
  postgres: `((leaf::jsonb) ->> 'subject') COLLATE "C"`,
} as const;

/** Largest number of node ids asked for in one query. */
const NODE_CHUNK = 200;

/** AuditStore on SQLite or PostgreSQL. Appends happen in the stores' own transactions (appendAudit). */
export class KyselyAuditStore implements AuditStore {
  private readonly db: Kysely<DB>;
  private readonly engine: 'sqlite' | 'postgres';

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
    // leaf's subject is indexed (migration 0020); a prefix is a range of it, in byte order.
    const subject = sql`${sql.raw(LEAF_SUBJECT[this.engine])}`;
    // One query per subject or prefix: each an index range (an OR of them the planner may scan).
    const terms = [
      ...match.equals.map((e) => [e, undefined] as const),
      ...match.prefixes.map((p) => [p, `${p}\u{10FFFF}`] as const),
    ];
    const bySeq = new Map<number, Selectable<AuditEventsTable>>();
    for (const [low, high] of terms)
      for (const r of await this.db
        .selectFrom('audit_events')
        .selectAll()
        .where((eb) =>
          high === undefined
            ? eb(subject, '=', low)
            : eb.and([eb(subject, '>=', low), eb(subject, '<', high)]),
        )
        .execute())
        bySeq.set(Number(r.seq), r);
    const rows = [...bySeq.values()];
    rows.sort((x, y) => (Number(x.seq) - Number(y.seq)) * (opts.newestFirst ? -1 : 1));
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
