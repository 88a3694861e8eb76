import { hash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { canonicalize } from '../audit/canonical-json.js';
import { leafHashOfText, nodeHash } from '../audit/merkle.js';
import type { Actor } from '../core/types.js';
import type { DB } from './schema.js';

/** One state change to record: who, what, about which subject, and the change's content. */
export interface AuditEventInput {
  actor: Actor;
  /** Dotted verb, e.g. `version.create`, `alias.set`, `token.revoke`. */
  action: string;
  /** What it is about: `model:NAME`, `version:NAME@N`, `alias:NAME:ALIAS`, `identity:NAME`, ... */
  subject: string;
  /** The change's content: its canonical JSON's digest goes into the leaf. Never a secret. */
  content: unknown;
}

/**
 * Records an audit event inside the caller's transaction, so the change and its record commit
 * or roll back together. One insert into the queue, no lock: the integrator gives it its place
 * in the log shortly after (integrateAudit), and before any read of the log.
 */
export async function appendAudit(trx: Kysely<DB>, e: AuditEventInput, at: string): Promise<void> {
  const content = canonicalize(e.content ?? null);
  const digest = `sha256:${hash('sha256', content, 'hex')}`;
  // A raw statement: it runs in every writing transaction, and the query builder's per-call
  // compilation costs about as much as SQLite's insert itself.
  await sql`INSERT INTO audit_pending (time, actor, credential, action, subject, digest, content)
            VALUES (${at}, ${e.actor.identity}, ${e.actor.credentialId}, ${e.action}, ${e.subject}, ${digest}, ${content})`.execute(
    trx,
  );
}

/** Most events moved into the log per integration transaction. */
const BATCH = 5000;
const ROWS_PER_INSERT = 500;

/**
 * Moves queued events into the log, in queue order: each gets the next index, its leaf (the
 * canonical JSON the tree hashes), and the complete-subtree hashes it closes are stored. Runs
 * in one transaction that first takes the head row, so integrators in several processes take
 * turns. Returns the log's size afterwards.
 */
export async function integrateAudit(db: Kysely<DB>): Promise<number> {
  for (;;) {
    const { size, more } = await db.transaction().execute(async (trx) => {
      // A write first: the row lock on PostgreSQL, the write lock on SQLite.
      const head = await trx
        .updateTable('audit_head')
        .set((eb) => ({ size: eb.ref('size') }))
        .where('id', '=', 1)
        .returning('size')
        .executeTakeFirstOrThrow();
      let n = Number(head.size);
      const pending = await trx
        .selectFrom('audit_pending')
        .selectAll()
        .orderBy('id')
        .limit(BATCH)
        .execute();
      if (pending.length === 0) return { size: n, more: false };
      // The right edge of the tree: the complete subtrees that new leaves pair up with.
      const edgeIds: { level: number; idx: number }[] = [];
      for (let level = 0, m = n; m > 0; level++, m = Math.floor(m / 2))
        if (m % 2 === 1) edgeIds.push({ level, idx: m - 1 });
      const edge = new Map<number, Buffer>();
      if (edgeIds.length > 0) {
        const rows = await trx
          .selectFrom('audit_nodes')
          .select(['level', 'hash'])
          .where((eb) =>
            eb.or(edgeIds.map((x) => eb.and([eb('level', '=', x.level), eb('idx', '=', x.idx)]))),
          )
          .execute();
        for (const r of rows) edge.set(r.level, Buffer.from(r.hash, 'hex'));
        if (edge.size !== edgeIds.length) throw new Error('audit log: a subtree hash is missing');
      }
      const events = [];
      const nodes = [];
      for (const p of pending) {
        const seq = n++;
        const leaf = canonicalize({
          seq,
          time: p.time,
          actor: p.actor,
          credential: p.credential,
          action: p.action,
          subject: p.subject,
          digest: p.digest,
        });
        events.push({
          seq,
          time: p.time,
          actor: p.actor,
          credential: p.credential,
          action: p.action,
          subject: p.subject,
          digest: p.digest,
          content: p.content,
          leaf,
        });
        let h = leafHashOfText(leaf);
        nodes.push({ level: 0, idx: seq, hash: h.toString('hex') });
        let level = 0;
        for (let idx = seq; idx % 2 === 1; idx = (idx - 1) / 2) {
          const left = edge.get(level);
          if (!left) throw new Error('audit log: the tree edge is incomplete');
          h = nodeHash(left, h);
          level++;
          nodes.push({ level, idx: (idx - 1) / 2, hash: h.toString('hex') });
        }
        edge.set(level, h);
      }
      for (let i = 0; i < events.length; i += ROWS_PER_INSERT)
        await trx
          .insertInto('audit_events')
          .values(events.slice(i, i + ROWS_PER_INSERT))
          .execute();
      for (let i = 0; i < nodes.length; i += ROWS_PER_INSERT)
        await trx
          .insertInto('audit_nodes')
          .values(nodes.slice(i, i + ROWS_PER_INSERT))
          .execute();
      // Exactly the rows read: one with a lower id may commit meanwhile, and waits its turn.
      const ids = pending.map((p) => p.id);
      for (let i = 0; i < ids.length; i += ROWS_PER_INSERT)
        await trx
          .deleteFrom('audit_pending')
          .where('id', 'in', ids.slice(i, i + ROWS_PER_INSERT))
          .execute();
      await trx.updateTable('audit_head').set({ size: n }).where('id', '=', 1).execute();
      return { size: n, more: pending.length === BATCH };
    });
    if (!more) return size;
  }
}
