import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { apiOf, testApp } from './helpers/app.js';
import { type ChatServer, startChatServer } from './helpers/chat-server.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, pushFile } from './helpers/versions.js';

// Issue 17, finding 10: an endpoint spelled so that the allow-list check and the server read
// different paths (`/v1/..%2F..%2Fadmin` is under `/v1/` to a prefix check, `/admin` to a
// server that decodes it) is refused before anything is sent, and so is user@host.

const servers: ChatServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describeEachEngine('red-team endpoint spelling', (db) => {
  it('refuses encoded separators, dot segments and credentials with ENDPOINT_NOT_ALLOWED, sending nothing', async () => {
    const s = await startChatServer({ variant: 'vulnerable' });
    servers.push(s);
    const t = await testApp(db(), { worker: true, allowedEndpoints: [`${s.url}/`] });
    const api = apiOf(t);
    expect(
      (await api('POST', '/models', { name: 'rt-url', ownerTeam: 'llm', riskTier: 'limited' }))
        .statusCode,
    ).toBe(201);
    await pushFile(t, 'rt-url', join(CORPUS, 'benign', 'model.safetensors'));
    const start = (endpoint: string) =>
      api('POST', '/models/rt-url/versions/1/evaluations', {
        evaluator: 'llm-redteam',
        config: { endpoint, model: 'bot', packs: ['system-prompt-extraction'], generations: 1 },
      });
    const host = s.url.slice('http://'.length, -'/v1'.length);
    for (const endpoint of [
      `${s.url}/..%2F..%2Fadmin`,
      `${s.url}/..%2f..%2fadmin`,
      `${s.url}/%2e%2e%2fadmin`,
      `${s.url}/%2E%2E/admin`,
      `${s.url}/.%2e/admin`,
      `${s.url}/..%5Cadmin`,
      `${s.url}/%5c..%5cadmin`,
      `${s.url}/%252e%252e%252fadmin`,
      `${s.url}/x/../../admin`,
      `${s.url}/x/..`,
      `${s.url}/./chat/completions`,
      `${s.url}/..;/admin`,
      `${s.url}\\..\\admin`,
      `http://user@${host}/v1`,
      `http://user:pw@${host}/v1`,
      `http://evil.example@${host}/v1`,
    ]) {
      const r = await start(endpoint);
      expect(r.statusCode, `${endpoint}: ${r.body}`).toBe(403);
      expect(r.json().code, endpoint).toBe('ENDPOINT_NOT_ALLOWED');
      expect(r.body, endpoint).not.toContain(':pw@');
    }
    const evaluations = await api('GET', '/models/rt-url/versions/1/evaluations');
    expect(evaluations.statusCode).toBe(200);
    const items = (evaluations.json() as { items: { evaluator: string }[] }).items;
    expect(items.filter((e) => e.evaluator === 'llm-redteam')).toHaveLength(0);
    expect(s.requests()).toBe(0);

    // The same server, spelled plainly (a default port written out is the same endpoint).
    const ok = await start(`${s.url}/`);
    expect(ok.statusCode, ok.body).toBe(202);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
