import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  type Dialect,
  type Driver,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type SqliteDialectConfig,
  TransactionBuilder,
} from 'kysely';
import pg from 'pg';
import type { DB } from './schema.js';

/**
 * What differs between the engines, as capability flags, so that the stores never test
 * `engine === 'postgres'` themselves (the kysely `Dialect` idea).
 */
export interface EngineCaps {
  readonly engine: 'sqlite' | 'postgres';
  /** SQL type of an auto-incrementing integer primary key. */
  readonly serialType: 'integer' | 'serial';
  /** Whether `SELECT ... FOR UPDATE` exists (row locks); SQLite serialises writers instead. */
  readonly rowLocks: boolean;
  /** Whether the error is a unique-constraint violation. */
  isUniqueViolation(e: unknown): boolean;
  /** Whether the error is the database-level immutability guard firing. */
  isImmutableViolation(e: unknown): boolean;
}

/** An open database: the Kysely instance and its engine's capabilities. */
export interface Database {
  readonly db: Kysely<DB>;
  readonly caps: EngineCaps;
  /** Where it is, with any password removed, for logs. */
  readonly describe: string;
  close(): Promise<void>;
}

const errCode = (e: unknown): string | undefined =>
  typeof e === 'object' && e !== null && 'code' in e
    ? String((e as { code: unknown }).code)
    : undefined;
const errMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The transaction, if any, that the running code is inside (its callback's async context). */
const openTransaction = new AsyncLocalStorage<{ open: boolean }>();

/**
 * Code inside a transaction that queries through the outer handle instead of the transaction's
 * waits for a connection: on SQLite the transaction holds the only one, so the wait never ends
 * and the whole server stalls; on PostgreSQL it can wait on the transaction's own row locks.
 * Such a query fails at once here, naming the mistake, instead of hanging when timing makes it
 * happen (a cache that expires mid-request).
 */
function refuseQueriesBesideTransactions(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: (): Driver => {
      const driver = dialect.createDriver();
      const bound = <K extends keyof Driver>(k: K) =>
        (driver[k] as ((...a: unknown[]) => unknown) | undefined)?.bind(driver) as Driver[K];
      return {
        init: bound('init'),
        beginTransaction: bound('beginTransaction'),
        commitTransaction: bound('commitTransaction'),
        rollbackTransaction: bound('rollbackTransaction'),
        ...(driver.savepoint && { savepoint: bound('savepoint') }),
        ...(driver.rollbackToSavepoint && { rollbackToSavepoint: bound('rollbackToSavepoint') }),
        ...(driver.releaseSavepoint && { releaseSavepoint: bound('releaseSavepoint') }),
        releaseConnection: bound('releaseConnection'),
        destroy: bound('destroy'),
        acquireConnection: () => {
          if (openTransaction.getStore()?.open)
            return Promise.reject(
              new Error(
                "a query outside the open transaction was made inside it (it would wait for the transaction's own connection or locks): run it on the transaction, or before it",
              ),
            );
          return driver.acquireConnection();
        },
      };
    },
  };
}

/** A transaction builder whose callback runs marked as inside the transaction. */
function markedTransaction(builder: TransactionBuilder<DB>): TransactionBuilder<DB> {
  return new Proxy(builder, {
    get(target, prop) {
      if (prop === 'execute')
        return <T>(
          callback: (trx: Parameters<Parameters<typeof target.execute>[0]>[0]) => Promise<T>,
        ) =>
          target.execute((trx) => {
            const state = { open: true };
            return openTransaction
              .run(state, () => callback(trx))
              .finally(() => {
                state.open = false;
              });
          });
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out = value.apply(target, args);
        return out instanceof TransactionBuilder ? markedTransaction(out) : out;
      };
    },
  });
}

class GuardedKysely extends Kysely<DB> {
  override transaction(): TransactionBuilder<DB> {
    return markedTransaction(super.transaction());
  }
}

const sqliteCaps: EngineCaps = {
  engine: 'sqlite',
  serialType: 'integer',
  rowLocks: false,
  isUniqueViolation: (e) =>
    errCode(e) === 'SQLITE_CONSTRAINT_UNIQUE' || errCode(e) === 'SQLITE_CONSTRAINT_PRIMARYKEY',
  isImmutableViolation: (e) => errMessage(e).includes('VERSION_IMMUTABLE'),
};

const postgresCaps: EngineCaps = {
  engine: 'postgres',
  serialType: 'serial',
  rowLocks: true,
  isUniqueViolation: (e) => errCode(e) === '23505',
  isImmutableViolation: (e) => errMessage(e).includes('VERSION_IMMUTABLE'),
};

// int8 (COUNT, SUM, bigint sizes) arrives as a string by default; every value we store fits in
// a double exactly (sizes < 2^53), so parse it as a number.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

/** Removes the password from a database URL so it can be logged. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable database url>';
  }
}

const STATEMENT_CACHE = 500;

/** What Kysely's SQLite driver uses of a prepared statement. */
interface DriverStatement {
  readonly reader: boolean;
  all(parameters: readonly unknown[]): unknown[];
  run(parameters: readonly unknown[]): SqliteDatabase.RunResult;
  iterate(parameters: readonly unknown[]): IterableIterator<unknown>;
}

/**
 * A reader whose rows come from SQLite as arrays and become objects here: better-sqlite3
 * builds each row object through the engine's C++ API, which for wide reads (a what-if's
 * 100,000 versions) cost a third of the query; a plain loop builds the same objects (keys in
 * column order, a later duplicate name winning) for almost nothing.
 */
function arrayReader(stmt: SqliteDatabase.Statement): DriverStatement {
  const names = stmt.columns().map((c) => c.name);
  // A column named __proto__ would set the prototype, not a key: leave such reads alone.
  if (names.includes('__proto__')) return stmt as unknown as DriverStatement;
  stmt.raw(true);
  const n = names.length;
  const toObject = (row: unknown[]) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) o[names[i]!] = row[i];
    return o;
  };
  return {
    reader: true,
    all: (parameters) => {
      const rows = stmt.all(parameters) as unknown[][];
      const out = new Array<unknown>(rows.length);
      for (let i = 0; i < rows.length; i++) out[i] = toObject(rows[i]!);
      return out;
    },
    run: (parameters) => stmt.run(parameters),
    *iterate(parameters) {
      for (const row of stmt.iterate(parameters) as IterableIterator<unknown[]>)
        yield toObject(row);
    },
  };
}

/**
 * Kysely prepares every SQLite statement anew; preparing costs more than running a typical
 * registry query. The same SQL text gets the same prepared statement back (Kysely runs one
 * query at a time per connection, so a statement is never busy when reused).
 */
function withStatementCache(sqlite: SqliteDatabase.Database): SqliteDialectConfig['database'] {
  const cache = new Map<string, DriverStatement>();
  return {
    close: () => sqlite.close(),
    prepare: (text: string) => {
      let stmt = cache.get(text);
      if (!stmt) {
        const prepared = sqlite.prepare(text);
        stmt = prepared.reader ? arrayReader(prepared) : (prepared as unknown as DriverStatement);
        if (cache.size >= STATEMENT_CACHE) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        cache.set(text, stmt);
      }
      return stmt;
    },
  } as unknown as SqliteDialectConfig['database'];
}

/** Opens PostgreSQL when `url` is given, otherwise SQLite at `<dataDir>/modelgate.db`. */
export function openDatabase(opts: { url?: string; dataDir: string }): Database {
  if (opts.url) {
    if (!/^postgres(ql)?:\/\//.test(opts.url)) {
      throw new Error(
        `unsupported database URL ${redactUrl(opts.url)}: use postgres://user@host:port/db, or leave it unset for the embedded SQLite database`,
      );
    }
    const pool = new pg.Pool({ connectionString: opts.url, max: 10 });
    // An idle client that loses its server emits 'error'; without a listener that kills the
    // process. The next query reports the failure instead.
    pool.on('error', () => {});
    const db = new GuardedKysely({
      dialect: refuseQueriesBesideTransactions(new PostgresDialect({ pool })),
    });
    return { db, caps: postgresCaps, describe: redactUrl(opts.url), close: () => db.destroy() };
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const file = join(opts.dataDir, 'modelgate.db');
  // The database holds token and password hashes: created private, and SQLite gives its -wal
  // and -shm files the mode of the database file.
  closeSync(openSync(file, 'a', 0o600));
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a commit that was acknowledged survives power loss too, not only a process crash.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new GuardedKysely({
    dialect: refuseQueriesBesideTransactions(
      new SqliteDialect({ database: withStatementCache(sqlite) }),
    ),
  });
  return { db, caps: sqliteCaps, describe: `sqlite:${file}`, close: () => db.destroy() };
}
