import { execFile } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { issueToken } from '../src/identity/tokens.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI, type ServerProcess, startServer } from './helpers/server-process.js';

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** A protocol-2 pickle of a long list of small ints, batched as Python writes it. */
function bigNumericPickle(path: string, mib: number) {
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('\x80\x02]q\x00', 'latin1'));
  const batch = Buffer.alloc(2002);
  batch[0] = 0x28;
  for (let i = 1; i <= 2000; i += 2) {
    batch[i] = 0x4b;
    batch[i + 1] = 7;
  }
  batch[2001] = 0x65;
  const block = Buffer.concat(Array(512).fill(batch));
  for (let written = 0; written < mib * 1024 * 1024; written += block.length) writeSync(fd, block);
  writeSync(fd, Buffer.from('.', 'latin1'));
  closeSync(fd);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describeEachEngine('evaluations through a served registry', (db) => {
  it('scans every push, shows findings in version show, and resumes a scan whose server was killed', async () => {
    const token = issueToken().secret;
    const work = mkdtempSync(join(tmpdir(), 'modelgate-eval-'));
    const serverEnv = { MODELGATE_JOB_LEASE_MS: '1500', MODELGATE_JOB_POLL_MS: '100' };
    const start = () =>
      startServer({ dataDir: db().dataDir, databaseUrl: db().url, token, env: serverEnv });
    let s: ServerProcess = await start();
    const env = () => ({
      MODELGATE_SERVER: s.url,
      MODELGATE_TOKEN: token,
      MODELGATE_CONFIG: join(work, 'cfg.json'),
    });
    const api = async (path: string) =>
      (
        await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
      ).json() as Promise<{
        items: { id: string; status: string; attempts: number }[];
      }>;
    try {
      expect((await cli(['model', 'create', 'scanned'], env())).code).toBe(0);
      const evil = join(work, 'model.pt');
      copyFileSync(
        join(import.meta.dirname, 'corpus', 'malicious', 'torch-zip-hidden-member.pt'),
        evil,
      );
      expect((await cli(['push', evil, '--model', 'scanned'], env())).code).toBe(0);
      await until('the automatic scan', async () => {
        const e = (await api('/api/v1/models/scanned/versions/1/evaluations')).items[0];
        return e?.status === 'succeeded' ? e : undefined;
      });
      const shown = await cli(['version', 'show', 'scanned@1'], env());
      expect(shown.stdout).toMatch(
        /findings:\s+1 critical, 0 high, 0 medium, 0 low, 0 info \(1 evaluation\(s\)\)/,
      );
      const json = JSON.parse(
        (await cli(['version', 'show', 'scanned@1', '--json'], env())).stdout,
      );
      expect(json.findings).toMatchObject({ critical: 1 });

      // A scan long enough to kill its server in the middle.
      const big = join(work, 'weights.pkl');
      bigNumericPickle(big, 160);
      expect((await cli(['push', big, '--model', 'scanned'], env())).code).toBe(0);
      const running = await until('the scan to start', async () => {
        const e = (await api('/api/v1/models/scanned/versions/2/evaluations')).items[0];
        return e?.status === 'running' ? e : undefined;
      });
      await s.kill();
      s = await start();
      const done = await until('the scan to be taken up again', async () => {
        const e = (await api('/api/v1/models/scanned/versions/2/evaluations')).items[0];
        return e?.status === 'succeeded' || e?.status === 'failed' ? e : undefined;
      });
      expect(done.id).toBe(running.id);
      expect(done.status).toBe('succeeded');
      expect(done.attempts).toBe(2);
      // Exactly one evaluation per version: the restart did not queue a second one.
      expect((await api('/api/v1/models/scanned/versions/2/evaluations')).items).toHaveLength(1);
    } finally {
      await s.stop();
    }
  });
});
