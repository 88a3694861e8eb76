import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import type { Database } from '../../src/storage/database.js';
import { migrate } from '../../src/storage/migrations.js';
import { cloneTemplate, dropDatabase, openTestDatabase } from '../../src/storage/test-databases.js';

/** One engine's fresh, migrated database for a test file, and a scratch data folder. */
export interface TestDb {
  engine: 'sqlite' | 'postgres';
  database: Database;
  dataDir: string;
  /** PostgreSQL URL of this database (for a server started as a process); undefined on SQLite. */
  url: string | undefined;
}

/** The engines this run tests: SQLite always, PostgreSQL when MODELGATE_TEST_DATABASE_URL is set. */
export function engines(): ('sqlite' | 'postgres')[] {
  return inject('pgTemplate') ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** Makes a fresh database of `engine` for one test file. */
export async function makeTestDb(
  engine: 'sqlite' | 'postgres',
): Promise<TestDb & { cleanup(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), `modelgate-test-${engine}-`));
  let url: string | undefined;
  let pgName: string | undefined;
  if (engine === 'postgres') {
    const c = await cloneTemplate(inject('pgAdminUrl'), inject('pgTemplate'));
    url = c.url;
    pgName = c.name;
  }
  const database = openTestDatabase(engine, { dataDir, ...(url && { url }) });
  await migrate(database);
  return {
    engine,
    database,
    dataDir,
    url,
    cleanup: async () => {
      await database.close().catch(() => {});
      if (pgName) await dropDatabase(inject('pgAdminUrl'), pgName);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs the same test body once per engine, each with its own fresh database. */
export function describeEachEngine(title: string, body: (db: () => TestDb) => void): void {
  for (const engine of engines()) {
    describe(`${title} [${engine}]`, () => {
      let db: (TestDb & { cleanup(): Promise<void> }) | undefined;
      beforeAll(async () => {
        db = await makeTestDb(engine);
      });
      afterAll(async () => {
        await db?.cleanup();
      });
      body(() => {
        if (!db) throw new Error('test database not ready');
        return db;
      });
    });
  }
}
