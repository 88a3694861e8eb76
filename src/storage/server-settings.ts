import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { DB } from './schema.js';

type Db = Kysely<DB> | Transaction<DB>;

/**
 * Claims the one-time `name` (insert if absent): true for exactly one caller, however many
 * servers try at once; the primary key serialises them and the others insert nothing.
 */
export async function claimOnce(db: Db, name: string, at: string): Promise<boolean> {
  const r = await db
    .insertInto('server_settings')
    .values({ name, value: at, created_at: at })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
}

/**
 * A random secret of 32 bytes that every server on this database shares: created by the
 * first server that asks, read by the others.
 */
export async function sharedSecret(db: Db, name: string): Promise<Buffer> {
  await db
    .insertInto('server_settings')
    .values({
      name,
      value: randomBytes(32).toString('base64url'),
      created_at: new Date().toISOString(),
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db
    .selectFrom('server_settings')
    .select('value')
    .where('name', '=', name)
    .executeTakeFirstOrThrow();
  return Buffer.from(row.value, 'base64url');
}
