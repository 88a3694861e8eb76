import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { canonicalize } from '../audit/canonical-json.js';
import { leafHash, nodeHash } from '../audit/merkle.js';
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

/** `sha256:<hex>` of a value's canonical JSON (RFC 8785). */
export function contentDigest(content: unknown): string {
  return `sha256:${createHash('sha256').update(canonicalize(content)).digest('hex')}`;
}

/**
 * Appends an audit event inside the caller's transaction, so the change and its record commit
 * or roll back together. Call it last in the transaction: it takes the log's head row, which
 * serialises appends from every process until commit. Returns the event's index in the log.
 */
export async function appendAudit(
  trx: Kysely<DB>,
  e: AuditEventInput,
  at: string,
): Promise<number> {
  const head = await trx
    .updateTable('audit_head')
    .set((eb) => ({ size: eb('size', '+', 1) }))
    .where('id', '=', 1)
    .returning('size')
    .executeTakeFirstOrThrow();
  const seq = Number(head.size) - 1;
  const content = canonicalize(e.content ?? null);
  const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
  const leaf = canonicalize({
    seq,
    time: at,
    actor: e.actor.identity,
    credential: e.actor.credentialId,
    action: e.action,
    subject: e.subject,
    digest,
  });
  await trx
    .insertInto('audit_events')
    .values({
      seq,
      time: at,
      actor: e.actor.identity,
      credential: e.actor.credentialId,
      action: e.action,
      subject: e.subject,
      digest,
      content,
      leaf,
    })
    .execute();
  // The leaf and every complete subtree it closes: leaf n closes one at each level while the
  // index is odd there, whose left half is already stored.
  let hash = leafHash(Buffer.from(leaf, 'utf8'));
  const nodes = [{ level: 0, idx: seq, hash: hash.toString('hex') }];
  for (let level = 0, idx = seq; idx % 2 === 1; level++, idx = (idx - 1) / 2) {
    const left = await trx
      .selectFrom('audit_nodes')
      .select('hash')
      .where('level', '=', level)
      .where('idx', '=', idx - 1)
      .executeTakeFirstOrThrow();
    hash = nodeHash(Buffer.from(left.hash, 'hex'), hash);
    nodes.push({ level: level + 1, idx: (idx - 1) / 2, hash: hash.toString('hex') });
  }
  await trx.insertInto('audit_nodes').values(nodes).execute();
  return seq;
}
