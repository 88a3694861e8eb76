import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type Database, openDatabase } from './database.js';
import { migrate } from './migrations.js';

/**
 * PostgreSQL databases for tests: one migrated template per test run, cloned per test file
 * (CREATE DATABASE ... TEMPLATE copies files, which takes milliseconds), dropped afterwards.
 */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates and migrates a template database; returns its name. */
export async function createTemplate(adminUrl: string): Promise<string> {
  const name = `modelgate_tpl_${Date.now()}_${randomBytes(3).toString('hex')}`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const database = openDatabase({ url: withDatabase(adminUrl, name), dataDir: '' });
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
  return name;
}

/** Clones the template into a fresh database; returns its URL. Retries while the template is busy. */
export async function cloneTemplate(
  adminUrl: string,
  template: string,
): Promise<{ url: string; name: string }> {
  const name = `modelgate_test_${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
      return { url: withDatabase(adminUrl, name), name };
    } catch (e) {
      // Two clones of one template at the same moment: "source database is being accessed".
      if (attempt < 20 && String((e as Error).message).includes('being accessed')) {
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
        continue;
      }
      throw e;
    }
  }
}

/** Drops a test database, disconnecting anyone still on it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** Opens a test database of the given engine. */
export function openTestDatabase(
  engine: 'sqlite' | 'postgres',
  where: { dataDir: string; url?: string },
): Database {
  return engine === 'postgres'
    ? openDatabase({ url: where.url ?? '', dataDir: where.dataDir })
    : openDatabase({ dataDir: where.dataDir });
}
