import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { issueToken } from '../src/identity/tokens.js';
import { type ChatServer, startChatServer } from './helpers/chat-server.js';
import { describeEachEngine } from './helpers/engines.js';
import { startServer } from './helpers/server-process.js';

// Its own file: the server process bootstraps this file's fresh database with its token.
const servers: ChatServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describeEachEngine('LLM red-team run after a crash', (db) => {
  it('resumes a run killed mid-way without sending finished attempts again', async () => {
    const slow = await startChatServer({ variant: 'vulnerable', delayMs: 25 });
    servers.push(slow);
    const d = db();
    const token = issueToken().secret;
    const dataDir = mkdtempSync(join(tmpdir(), 'mg-rt-'));
    const env = {
      MODELGATE_ALLOWED_ENDPOINTS: slow.url,
      MODELGATE_JOB_LEASE_MS: '1500',
      MODELGATE_JOB_POLL_MS: '100',
      MODELGATE_AUTO_SCAN: 'false',
      MODELGATE_GATE_POLICY_PACK: 'none',
    };
    let server = await startServer({ dataDir, databaseUrl: d.url, token, env });
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${server.url}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    try {
      const name = `rt-resume-${Date.now()}`;
      expect(
        (await call('POST', '/models', { name, ownerTeam: 'llm', riskTier: 'limited' })).status,
      ).toBe(201);
      const blob = await fetch(`${server.url}/api/v1/blobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
        body: Buffer.from('weights'),
      });
      const digest = ((await blob.json()) as { digest: string }).digest;
      const pushed = await call('POST', `/models/${name}/versions`, {
        files: [{ path: 'model.bin', size: 7, digest }],
        card: { markdown: '', fields: {} },
      });
      expect(pushed.status, JSON.stringify(pushed.json)).toBe(201);
      const started = await call('POST', `/models/${name}/versions/1/evaluations`, {
        evaluator: 'llm-redteam',
        config: { endpoint: slow.url, model: 'bot', generations: 3, concurrency: 2 },
      });
      expect(started.status, JSON.stringify(started.json)).toBe(202);
      const id = started.json.id as string;
      const saved = async () =>
        ((await call('GET', `/evaluations/${id}/attempts?limit=1000`)).json.items as unknown[])
          .length;
      for (let i = 0; i < 300 && (await saved()) < 20; i++)
        await new Promise((res) => setTimeout(res, 50));
      await server.kill();
      const sentBeforeKill = slow.requests();
      server = await startServer({ dataDir, databaseUrl: d.url, token, env });
      const before = await saved();
      expect(before).toBeGreaterThanOrEqual(20);
      let e: Record<string, unknown> = {};
      for (let i = 0; i < 600; i++) {
        e = (await call('GET', `/evaluations/${id}`)).json;
        if (e.status === 'succeeded' || e.status === 'failed') break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(e.status, String(e.error)).toBe('succeeded');
      const total = (e.metrics as Record<string, number>).attempts!;
      expect(before).toBeLessThan(total);
      expect(await saved()).toBe(total);
      // Only what was in flight when the server died is sent twice: at most `concurrency`.
      expect(sentBeforeKill).toBeGreaterThanOrEqual(before);
      expect(slow.requests()).toBeLessThanOrEqual(total + 2);
      expect(slow.requests()).toBeGreaterThanOrEqual(total);
    } finally {
      await server.stop();
    }
  });
});
