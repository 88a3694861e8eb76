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

/** Largest number of node ids asked for in one query. */
const NODE_CHUNK = 200;

/** AuditStore on SQLite or PostgreSQL. Appends happen in the stores' own transactions (appendAudit). */
export class KyselyAuditStore implements AuditStore {
  private readonly db: Kysely<DB>;

  constructor(database: Database) {
    this.db = database.db;
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
    let q = this.db
      .selectFrom('audit_events')
      .selectAll()
      .where((eb) =>
        eb.or([
          ...match.equals.map((e) => eb('subject', '=', e)),
          // substr rather than LIKE: exact and case-sensitive on both engines.
          ...match.prefixes.map((p) => eb(sql<string>`substr(subject, 1, ${p.length})`, '=', p)),
        ]),
      );
    if (opts.from) q = q.where('time', '>=', opts.from);
    if (opts.to) q = q.where('time', '<=', opts.to);
    const rows = await q
      .orderBy('seq', opts.newestFirst ? 'desc' : 'asc')
      .limit(opts.limit)
      .execute();
    return rows.map(event);
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
