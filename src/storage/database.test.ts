import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { type Kysely, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from './database.js';

// SQLite reader statements run in raw mode and their rows become objects in JavaScript: the
// rows must be exactly what better-sqlite3 itself builds.
describe('SQLite rows read as arrays', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-rows-'));
  const database = openDatabase({ dataDir: dir });
  afterAll(async () => {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const queries = [
    "select 1 as a, 'x' as b, null as c, 2.5 as d, x'00ff' as e",
    'select 1 as a, 2 as a, 3 as b', // a later duplicate name wins
    'select * from t order by id',
    'select id, name as "weird name", count(*) over () as n from t order by id desc',
    'select * from t where id > 99', // no rows
  ];

  it('are the objects better-sqlite3 builds, through all, stream and returning', async () => {
    const db = database.db;
    await sql`create table t (id integer primary key, name text, score real, data blob)`.execute(
      db,
    );
    await sql`insert into t (name, score, data) values ('a', 1.5, x'01'), (null, null, null), ('c', -0.0, x'')`.execute(
      db,
    );
    const native = new SqliteDatabase(join(dir, 'modelgate.db'), { readonly: true });
    try {
      for (const text of queries) {
        const expected = native.prepare(text).all();
        const { rows } = await sql.raw(text).execute(db);
        expect(rows, text).toEqual(expected);
        expect(
          rows.map((r) => Object.keys(r as object)),
          text,
        ).toEqual(expected.map((r) => Object.keys(r as object)));
      }
      // Kysely streams through the same statement, one row at a time.
      const loose = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      const streamed: unknown[] = [];
      for await (const r of loose.selectFrom('t').selectAll().orderBy('id').stream())
        streamed.push(r);
      expect(streamed).toEqual(native.prepare('select * from t order by id').all());
      const { rows } = await sql`insert into t (name) values ('d') returning id, name`.execute(db);
      expect(rows).toEqual([{ id: 4, name: 'd' }]);
      // A column called __proto__ keeps better-sqlite3's own objects.
      const proto = await sql.raw('select 1 as "__proto__"').execute(db);
      expect(proto.rows).toEqual(native.prepare('select 1 as "__proto__"').all());
    } finally {
      native.close();
    }
  });
});
