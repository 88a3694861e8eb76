import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { issueToken } from '../src/identity/tokens.js';
import { describeEachEngine } from './helpers/engines.js';
import { type ServerProcess, startServer } from './helpers/server-process.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function api(s: ServerProcess, token: string, method: string, path: string, body?: unknown) {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  return { status: r.status, body: (await r.json().catch(() => undefined)) as any };
}

/** Streams `total` bytes to POST /blobs and calls `onSent` after every MiB; resolves with the response status or the socket error. */
function slowUpload(
  s: ServerProcess,
  token: string,
  total: number,
  onSent: (n: number) => void,
): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(`${s.url}/api/v1/blobs`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/octet-stream',
        'content-length': String(total),
      },
    });
    req.on('response', (res) => resolve(`status ${res.statusCode}`));
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    const chunk = randomBytes(1024 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        onSent(sent);
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'blobs', 'sha256');
  return readdirSync(root).flatMap((d) => readdirSync(join(root, d)).map((f) => join(root, d, f)));
}

/** Files under blobs/tmp, in any server's upload folder. */
function tmpFiles(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'blobs', 'tmp'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describeEachEngine('crash safety under SIGKILL', (db) => {
  it('leaves no partial version or half-written blob, and keeps every acknowledged version', async () => {
    const token = issueToken().secret;
    const { dataDir, url: databaseUrl } = db();
    // The test's own connection is not needed while servers run on this database.
    let s = await startServer({ dataDir, databaseUrl, token });
    expect((await api(s, token, 'POST', '/api/v1/models', { name: 'crashy' })).status).toBe(201);
    const seed = Buffer.from('acknowledged weights');
    const up = await fetch(`${s.url}/api/v1/blobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: seed,
    });
    const seedDigest = ((await up.json()) as { digest: string }).digest;
    const v1 = await api(s, token, 'POST', '/api/v1/models/crashy/versions', {
      files: [{ path: 'model.bin', size: seed.length, digest: seedDigest }],
    });
    expect(v1.status).toBe(201);
    const acknowledged = new Map<number, string>([[1, v1.body.digest]]);

    // 1. Kill in the middle of a large upload (256 MiB declared, killed after 48 MiB).
    const killed = slowUpload(s, token, 256 * 1024 * 1024, (n) => {
      if (n === 48 * 1024 * 1024) void s.kill();
    });
    expect(await killed).toMatch(/^error /);
    expect(tmpFiles(dataDir).length).toBeGreaterThan(0); // the partial upload

    // 2. Kill during version registrations with many files, at several points in time.
    const manyFiles = Array.from({ length: 5000 }, (_, i) => ({
      path: `shard-${i}.bin`,
      size: seed.length,
      digest: seedDigest,
    }));
    // First time one registration from request to response, then kill at points across it.
    s = await startServer({ dataDir, databaseUrl, token });
    const t0 = performance.now();
    const timed = await api(s, token, 'POST', '/api/v1/models/crashy/versions', {
      files: manyFiles,
    });
    const duration = performance.now() - t0;
    expect(timed.status).toBe(201);
    acknowledged.set(timed.body.number, timed.body.digest);
    await s.kill();
    const outcomes: string[] = [];
    for (const fraction of [0.1, 0.3, 0.5, 0.7, 0.85, 1, 1.3]) {
      s = await startServer({ dataDir, databaseUrl, token });
      let response: Awaited<ReturnType<typeof api>> | undefined;
      const pending = api(s, token, 'POST', '/api/v1/models/crashy/versions', {
        files: manyFiles,
      }).then(
        (r) => {
          response = r;
        },
        () => {},
      );
      await new Promise((r) => setTimeout(r, duration * fraction));
      await s.kill();
      await pending;
      outcomes.push(response ? String(response.status) : 'killed');
      if (response?.status === 201) acknowledged.set(response.body.number, response.body.digest);
    }
    // The kills landed both before and after some registrations completed.
    expect(outcomes).toContain('killed');

    // 3. Restart and check the invariants.
    s = await startServer({ dataDir, databaseUrl, token });
    try {
      // The killed servers' upload folders are gone (the new server has an empty one).
      expect(tmpFiles(dataDir)).toEqual([]);
      for (const f of blobFiles(dataDir)) {
        const name = f.split('/').slice(-2).join('');
        expect(sha(readFileSync(f)), f).toBe(name);
      }
      const list = await api(s, token, 'GET', '/api/v1/models/crashy/versions?limit=500');
      const numbers = list.body.items
        .map((v: { number: number }) => v.number)
        .sort((a: number, b: number) => a - b);
      expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
      for (const n of numbers) {
        const v = (await api(s, token, 'GET', `/api/v1/models/crashy/versions/${n}`)).body;
        expect(v.files).toHaveLength(v.fileCount);
        const recomputed = sha(
          Buffer.concat(
            [...v.files]
              .sort((a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : 1))
              .map((f: { digest: string }) => Buffer.from(f.digest.slice(7), 'hex')),
          ),
        );
        // Files of one version here share no path prefixes, so plain sort equals PurePosixPath order.
        expect(v.digest).toBe(`sha256:${recomputed}`);
      }
      for (const [n, digest] of acknowledged) {
        const v = await api(s, token, 'GET', `/api/v1/models/crashy/versions/${n}`);
        expect(v.status).toBe(200);
        expect(v.body.digest).toBe(digest);
      }
      // The store still works after the crashes.
      const after = await api(s, token, 'POST', '/api/v1/models/crashy/versions', {
        files: [{ path: 'model.bin', size: seed.length, digest: seedDigest }],
      });
      expect(after.status).toBe(201);
      expect(after.body.number).toBe(numbers.length + 1);
    } finally {
      await s.stop();
    }
  });
});
