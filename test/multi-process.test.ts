import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { issueToken } from '../src/identity/tokens.js';
import { compose } from '../src/server/composition.js';
import { loadConfig } from '../src/server/config.js';
import { describeEachEngine } from './helpers/engines.js';
import { type ServerProcess, startServer } from './helpers/server-process.js';

const MiB = 1024 * 1024;

/** Whether `token` authenticates at `url`. */
async function works(url: string, token: string): Promise<boolean> {
  const r = await fetch(`${url}/api/v1/models`, { headers: { authorization: `Bearer ${token}` } });
  return r.status === 200;
}

describeEachEngine('several servers on one data folder and one database', (db) => {
  // Set by the first test: the one token the registry was started with.
  let admin = '';

  it('mints exactly one initial admin token when two servers start at once on an empty database', async () => {
    const tokens = [issueToken().secret, issueToken().secret];
    const servers = await Promise.all(
      tokens.map((token) => startServer({ dataDir: db().dataDir, databaseUrl: db().url, token })),
    );
    try {
      const rows = await db().database.db.selectFrom('tokens').select('id').execute();
      expect(rows).toHaveLength(1);
      const accepted = [];
      for (const t of tokens) if (await works(servers[0]?.url ?? '', t)) accepted.push(t);
      expect(accepted).toHaveLength(1);
      admin = accepted[0] ?? '';
      // And the other server knows the same one token.
      expect(await works(servers[1]?.url ?? '', admin)).toBe(true);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });

  it('keeps an upload in flight when another server starts on the same data folder', async () => {
    // 500 MB on PostgreSQL (the deployment that runs several servers), less on SQLite.
    const total = (db().engine === 'postgres' ? 500 : 96) * MiB;
    const startAt = 32 * MiB;
    const a = await startServer({ dataDir: db().dataDir, databaseUrl: db().url, token: admin });
    let b: ServerProcess | undefined;
    try {
      // Generated as it is sent, never written to disk here: 1 MiB blocks, each made unique.
      const block = randomBytes(MiB);
      const hash = createHash('sha256');
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent >= total) {
            controller.close();
            return;
          }
          if (sent === startAt) {
            // Half-way through a request, with bytes already in the first server's temporary
            // file: the second server starts on the same data folder.
            expect(readdirSync(join(db().dataDir, 'blobs', 'tmp')).length).toBeGreaterThan(0);
            b = await startServer({ dataDir: db().dataDir, databaseUrl: db().url, token: admin });
          }
          const chunk = Buffer.from(block);
          chunk.writeUInt32BE(sent / MiB, 0);
          hash.update(chunk);
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const r = await fetch(`${a.url}/api/v1/blobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
        body,
        duplex: 'half',
      } as RequestInit);
      const text = await r.text();
      expect(r.status, text).toBe(201);
      expect(b).toBeDefined();
      expect(JSON.parse(text)).toMatchObject({
        digest: `sha256:${hash.digest('hex')}`,
        size: total,
      });
      // The second server serves what the first stored.
      const head = await fetch(`${b?.url}/api/v1/blobs/${JSON.parse(text).digest}`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(head.status).toBe(200);
    } finally {
      await a.stop();
      await b?.stop();
    }
  }, 120_000);
});

describeEachEngine('two servers composed at once on an empty database', (db) => {
  it('mint one initial admin token between them, however their steps interleave', async () => {
    // In one process the two starts interleave at every await, which two processes do only
    // by chance: both see no token before either writes one.
    const start = (token: string) =>
      compose(
        {
          ...loadConfig({ dataDir: db().dataDir }, {}),
          bootstrapToken: token,
          gatePolicyPack: 'none' as const,
          gateRecheckMs: 0,
        },
        { database: db().database, startWorker: false },
      );
    const tokens = [issueToken().secret, issueToken().secret];
    const both = await Promise.all(tokens.map(start));
    try {
      expect(both.filter((c) => c.bootstrapToken !== undefined)).toHaveLength(1);
      const rows = await db().database.db.selectFrom('tokens').select('id').execute();
      expect(rows).toHaveLength(1);
    } finally {
      // The database is this test's: close the apps only.
      await Promise.all(both.map((c) => c.app.close()));
    }
  });
});
