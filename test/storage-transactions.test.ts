import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { describeEachEngine } from './helpers/engines.js';

// A query on the outer handle made inside a transaction waits for a connection the transaction
// holds (SQLite has one) or for its row locks: the server stalled on it once, under load, when a
// policy cache expired mid-request. Such a query now fails at once, naming the mistake, while
// other work that merely runs at the same time still waits its turn.
describeEachEngine('queries beside a transaction', (db) => {
  it('set up', async () => {
    await sql`create table beside (id integer primary key, n integer not null)`.execute(
      db().database.db,
    );
  });

  it('a query on the outer handle inside a transaction fails at once and rolls the transaction back', async () => {
    const outer = db().database.db;
    const attempt = outer.transaction().execute(async (trx) => {
      await trx
        .insertInto('beside' as never)
        .values({ id: 1, n: 1 } as never)
        .execute();
      await sql`select count(*) as c from beside`.execute(outer);
    });
    await expect(attempt).rejects.toThrow(
      /a query outside the open transaction was made inside it/,
    );
    const { rows } = await sql<{ c: number }>`select count(*) as c from beside`.execute(outer);
    expect(Number(rows[0]?.c)).toBe(0);
  });

  it('work that only runs alongside a transaction waits for it and succeeds', async () => {
    const outer = db().database.db;
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const trx = outer.transaction().execute(async (t) => {
      await t
        .insertInto('beside' as never)
        .values({ id: 2, n: 2 } as never)
        .execute();
      await held;
    });
    // Started outside the transaction's callback: not refused.
    const beside = sql<{ c: number }>`select count(*) as c from beside`.execute(outer);
    release();
    await trx;
    const { rows } = await beside;
    expect([0, 1]).toContain(Number(rows[0]?.c));
    // After the transaction the outer handle is free again, also from code it started.
    const after = await sql<{ c: number }>`select count(*) as c from beside`.execute(outer);
    expect(Number(after.rows[0]?.c)).toBe(1);
  });

  it('code a transaction started may query once the transaction is over', async () => {
    const outer = db().database.db;
    let over!: () => void;
    const ended = new Promise<void>((r) => {
      over = r;
    });
    let later: Promise<number> | undefined;
    await outer.transaction().execute(async (t) => {
      await t
        .insertInto('beside' as never)
        .values({ id: 3, n: 3 } as never)
        .execute();
      later = ended.then(async () => {
        const { rows } = await sql<{ c: number }>`select count(*) as c from beside`.execute(outer);
        return Number(rows[0]?.c);
      });
    });
    over();
    expect(await later).toBe(2);
  });
});
