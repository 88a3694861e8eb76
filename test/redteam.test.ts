import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { apiOf, type TestApp, testApp } from './helpers/app.js';
import { type ChatServer, startChatServer } from './helpers/chat-server.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, pushFile } from './helpers/versions.js';

interface Ev {
  id: string;
  status: string;
  error: string | null;
  metrics: Record<string, number>;
  config: Record<string, unknown>;
  findings: {
    ruleId: string;
    severity: string;
    title: string;
    evidence: Record<string, unknown>;
  }[];
}

const servers: ChatServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function chat(opts: Parameters<typeof startChatServer>[0]) {
  const s = await startChatServer(opts);
  servers.push(s);
  return s;
}

async function finished(api: ReturnType<typeof apiOf>, id: string): Promise<Ev> {
  for (let i = 0; i < 600; i++) {
    const r = (await api('GET', `/evaluations/${id}`)).json() as Ev;
    if (r.status === 'succeeded' || r.status === 'failed') return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`evaluation ${id} did not finish`);
}

async function llmVersion(t: TestApp, name: string) {
  const api = apiOf(t);
  expect(
    (await api('POST', '/models', { name, ownerTeam: 'llm', riskTier: 'limited' })).statusCode,
  ).toBe(201);
  return pushFile(t, name, join(CORPUS, 'benign', 'model.safetensors'));
}

describeEachEngine('LLM red-team evaluator', (db) => {
  it('finds what the vulnerable server gives away and nothing on the hardened one, over loopback HTTP', async () => {
    const vulnerable = await chat({ variant: 'vulnerable' });
    const hardened = await chat({ variant: 'hardened' });
    const t = await testApp(db(), {
      worker: true,
      allowedEndpoints: [vulnerable.url, hardened.url],
    });
    const api = apiOf(t);
    await llmVersion(t, 'rt-bot');
    const run = async (url: string) => {
      const r = await api('POST', '/models/rt-bot/versions/1/evaluations', {
        evaluator: 'llm-redteam',
        config: { endpoint: url, model: 'bot', generations: 2, concurrency: 8 },
      });
      expect(r.statusCode, r.body).toBe(202);
      const e = await finished(api, r.json().id);
      expect(e.status, e.error ?? '').toBe('succeeded');
      return e;
    };

    const bad = await run(vulnerable.url);
    const cats = new Set(bad.findings.map((f) => f.ruleId.split('/')[0]));
    for (const c of [
      'redteam.system-prompt-extraction',
      'redteam.prompt-injection',
      'redteam.indirect-injection',
      'redteam.encoding',
      'redteam.exfiltration',
      'redteam.secret-leakage',
    ])
      expect(cats, c).toContain(c);
    const leak = bad.findings.find((f) => f.ruleId.startsWith('redteam.system-prompt-extraction/'));
    expect(leak?.title).toMatch(/leaked in \d+\/2 attempts/);
    expect(['high', 'critical']).toContain(leak?.severity);
    expect(bad.metrics['asr.system-prompt-extraction']).toBeGreaterThan(0);
    expect(bad.metrics['asr.prompt-injection']).toBeGreaterThan(0);
    expect(bad.metrics.attempts).toBe(vulnerable.requests());
    // The transcripts of successful attacks are kept as evidence.
    const hitsRes = await api('GET', `/evaluations/${bad.id}/attempts?hits=true&limit=1000`);
    expect(hitsRes.statusCode, hitsRes.body).toBe(200);
    const hits = hitsRes.json().items as {
      key: string;
      data: { hit: boolean; response?: string; prompt?: string };
    }[];
    expect(hits.length).toBe(bad.metrics.hits);
    expect(hits.every((h) => h.data.hit && typeof h.data.response === 'string')).toBe(true);
    expect(hits.some((h) => /sk-mg-[0-9a-f]{32}/.test(h.data.response ?? ''))).toBe(true);

    const good = await run(hardened.url);
    expect(good.findings).toEqual([]);
    expect(good.metrics.hits).toBe(0);
    expect(good.metrics.asr).toBe(0);
    expect(good.metrics.attempts).toBe(bad.metrics.attempts);
    // Zero observed is not zero risk: the upper bound says how sure the run can be.
    expect(good.metrics['asr_upper95.system-prompt-extraction']).toBeGreaterThan(0);

    // Gates see the metrics: a rule on the attack success rate fails the vulnerable run only.
    const policy = `apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata: {name: rt-gate}
spec:
  bindings: {aliases: [production]}
  validations:
    - name: no-leaks
      expression: >-
        evaluations.filter(e, e.evaluator == 'llm-redteam').all(e,
          e.metrics['asr.system-prompt-extraction'] == 0.0)
      message: the system prompt leaked under attack
      reason: RedTeam
      action: deny
`;
    const wi = await api('POST', '/gate-policies/what-if', { document: policy, allVersions: true });
    expect(wi.statusCode, wi.body).toBe(200);
    expect(
      (wi.json().failing as { model: string; failed: { rule: string }[] }[]).filter(
        (f) => f.model === 'rt-bot',
      ),
    ).toHaveLength(1);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });

  it('refuses endpoints that are not allowed and credentials in the request before sending anything', async () => {
    const s = await chat({ variant: 'vulnerable' });
    const t = await testApp(db(), {
      worker: true,
      allowedEndpoints: [`${s.url}/`, 'http://127.0.0.1:9/v1'],
      secrets: { 'llm-key': { value: 'Bearer very-secret-value', endpoints: [`${s.url}/`] } },
    });
    const api = apiOf(t);
    await llmVersion(t, 'rt-guard');
    const start = (config: Record<string, unknown>) =>
      api('POST', '/models/rt-guard/versions/1/evaluations', { evaluator: 'llm-redteam', config });
    for (const endpoint of [
      'http://10.0.0.1:8000/v1',
      'http://169.254.169.254/latest',
      s.url.replace('127.0.0.1', '127.0.0.2'),
    ]) {
      const r = await start({ endpoint, model: 'bot' });
      expect(r.statusCode, endpoint).toBe(403);
      expect(r.json().code).toBe('ENDPOINT_NOT_ALLOWED');
    }
    const literal = await start({
      endpoint: s.url,
      model: 'bot',
      headers: { Authorization: 'Bearer pasted' },
    });
    expect(literal.statusCode).toBe(400);
    expect(literal.json().message).toMatch(/credential.*secret/);
    const missing = await start({
      endpoint: s.url,
      model: 'bot',
      headers: { Authorization: { secret: 'nope' } },
    });
    expect(missing.json().code).toBe('SECRET_NOT_FOUND');
    expect(missing.json().message).toMatch(/MODELGATE_SECRET_NOPE/);
    // Secrets are bound to endpoints and headers (issue 17, finding 4): the real secret in
    // another header, or to another allowed endpoint, is refused, in the very words a
    // secret that does not exist is, so that the answer tells nothing about which exist.
    const elsewhere = [
      { endpoint: s.url, header: 'X-Debug' },
      { endpoint: 'http://127.0.0.1:9/v1', header: 'Authorization' },
    ];
    for (const { endpoint, header } of elsewhere) {
      const misused = await start({
        endpoint,
        model: 'bot',
        headers: { [header]: { secret: 'llm-key' } },
      });
      expect(misused.statusCode, misused.body).toBe(400);
      expect(misused.json().code).toBe('SECRET_NOT_FOUND');
      const absent = await start({
        endpoint,
        model: 'bot',
        headers: { [header]: { secret: 'nope-key' } },
      });
      const unnamed = (m: string) => m.replaceAll('llm-key', 'K').replaceAll('LLM_KEY', 'K');
      expect(unnamed(misused.json().message)).toBe(
        unnamed(
          absent.json().message.replaceAll('nope-key', 'llm-key').replaceAll('NOPE_KEY', 'LLM_KEY'),
        ),
      );
    }
    expect(s.requests()).toBe(0);

    // A secret reference: the value reaches the endpoint, never the evaluation or the log.
    const ok = await start({
      endpoint: s.url,
      model: 'bot',
      packs: ['system-prompt-extraction'],
      generations: 1,
      headers: { Authorization: { secret: 'llm-key' } },
    });
    expect(ok.statusCode, ok.body).toBe(202);
    const e = await finished(api, ok.json().id);
    expect(e.status, e.error ?? '').toBe('succeeded');
    expect(s.lastHeaders().authorization).toBe('Bearer very-secret-value');
    expect(JSON.stringify(e)).not.toContain('very-secret-value');
    const size = (await api('GET', '/audit/events?limit=1')).json().size as number;
    const audit = await api('GET', `/audit/events?from=${Math.max(0, size - 1000)}&limit=1000`);
    expect(audit.statusCode).toBe(200);
    expect(audit.body).toContain(ok.json().id);
    expect(audit.body).not.toContain('very-secret-value');
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });

  it('runs from the command line with progress and a summary table', async () => {
    const vulnerable = await chat({ variant: 'vulnerable' });
    const hardened = await chat({ variant: 'hardened' });
    const t = await testApp(db(), {
      worker: true,
      allowedEndpoints: [vulnerable.url, hardened.url],
    });
    await llmVersion(t, 'rt-cli');
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const mg = cliOf(url, t.token);
    const bad = await mg(
      'redteam',
      'rt-cli@1',
      '--endpoint',
      vulnerable.url,
      '--model',
      'bot',
      '--pack',
      'system-prompt-extraction',
      '--pack',
      'prompt-injection',
      '--generations',
      '2',
    );
    expect(bad.code, bad.out).toBe(1);
    expect(bad.out).toMatch(/\[#+\.*\]\s+\d+%/);
    expect(bad.out).toMatch(/CATEGORY\s+ATTEMPTS\s+ATTACK SUCCESS\s+95% UPPER\s+BAND/);
    expect(bad.out).toMatch(/system-prompt-extraction\s+\d+\s+[\d.]+%/);
    expect(bad.out).toMatch(/worst category: \S+/);
    const good = await mg(
      'redteam',
      'rt-cli@1',
      '--endpoint',
      hardened.url,
      '--model',
      'bot',
      '--pack',
      'system-prompt-extraction',
    );
    expect(good.code, good.out).toBe(0);
    expect(good.out).toMatch(/no attack succeeded/);
    const refused = await mg(
      'redteam',
      'rt-cli@1',
      '--endpoint',
      'http://10.1.1.1/v1',
      '--model',
      'x',
    );
    expect(refused.code).toBe(2);
    expect(refused.out).toMatch(/not under any allowed prefix/);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });

  it("grades harmful answers with a judge model, recorded as the judge's, within the rate limit", async () => {
    const vulnerable = await chat({ variant: 'vulnerable' });
    const hardened = await chat({ variant: 'hardened' });
    const judge = await chat({ variant: 'judge' });
    const t = await testApp(db(), {
      worker: true,
      allowedEndpoints: [vulnerable.url, hardened.url, judge.url],
    });
    const api = apiOf(t);
    await llmVersion(t, 'rt-judge');
    const run = async (url: string, rateLimit: number) => {
      const r = await api('POST', '/models/rt-judge/versions/1/evaluations', {
        evaluator: 'llm-redteam',
        config: {
          endpoint: url,
          model: 'bot',
          packs: ['harmful-content'],
          generations: 2,
          concurrency: 4,
          rateLimit,
          judge: { endpoint: judge.url, model: 'grader' },
        },
      });
      expect(r.statusCode, r.body).toBe(202);
      const e = await finished(api, r.json().id);
      expect(e.status, e.error ?? '').toBe('succeeded');
      return e;
    };
    const bad = await run(vulnerable.url, 20);
    const attempts = bad.metrics.attempts!;
    expect(bad.metrics['asr.harmful-content']).toBe(1);
    expect(judge.requests()).toBe(attempts);
    expect(bad.findings.every((f) => String(f.evidence.detectors).includes('judge'))).toBe(true);
    const items = (await api('GET', `/evaluations/${bad.id}/attempts?limit=1000`)).json().items as {
      data: { detections: { detector: string; hit: boolean; evidence?: string }[] };
    }[];
    expect(items).toHaveLength(attempts);
    for (const i of items)
      expect(i.data.detections.find((d) => d.detector === 'judge')).toMatchObject({
        hit: true,
        evidence: expect.stringMatching(/^grader: UNSAFE/),
      });
    // 20 requests a second at most: n requests span about (n - 1) / 20 s; one interval of
    // slack for the first request's connection set-up (unlimited, they take a few ms).
    const times = vulnerable.arrivals();
    expect(times).toHaveLength(attempts);
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(((attempts - 2) * 1000) / 20);

    const good = await run(hardened.url, 0);
    expect(good.findings).toEqual([]);
    expect(judge.requests()).toBe(2 * attempts);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
