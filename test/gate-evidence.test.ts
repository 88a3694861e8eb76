import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { policyDigest } from '../src/policy/gates/policy-document.js';
import { apiOf, type TestApp, testApp, tokenFor } from './helpers/app.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, FULL_CARD, pushFile, waitForScans } from './helpers/versions.js';

// Regression tests for the second insider review (issue 17): gates that say "allow" on evidence
// that is not there, and rules a contributor's text can turn against the server.

const BENIGN = join(CORPUS, 'benign', 'numpy-array-protocol2.pkl');

type Gate = {
  outcome: string;
  results: { name: string; passed: boolean; message: string | null; error?: string }[];
};

const policyDoc = (name: string, validation: string) =>
  [
    'apiVersion: modelgate.dev/v1',
    'kind: GatePolicy',
    `metadata: {name: ${name}}`,
    'spec:',
    '  bindings: {aliases: [production]}',
    '  validations:',
    `    - ${validation}`,
  ].join('\n');

const thousand = `[${Array(1000).fill(0).join(', ')}]`;
const json = (
  name: string,
  variables: { name: string; expression: string }[],
  expression: string,
) =>
  JSON.stringify({
    apiVersion: 'modelgate.dev/v1',
    kind: 'GatePolicy',
    metadata: { name },
    spec: {
      bindings: { aliases: ['production'] },
      variables,
      validations: [{ name: 'r', expression, message: 'm', reason: 'Test', action: 'deny' }],
    },
  });
/** Three comprehensions nested over a 1,000-element list: 49 s of a viewer's dry run. */
const NESTED = json(
  'nested',
  [{ name: 'xs', expression: thousand }],
  'variables.xs.all(a, variables.xs.all(b, variables.xs.all(c, a + b + c >= 0)))',
);
/** Forty variables each doubling a list: the process ran out of memory. */
const DOUBLING = json(
  'doubling',
  [
    { name: 'v0', expression: '[1]' },
    ...Array.from({ length: 40 }, (_, i) => ({
      name: `v${i + 1}`,
      expression: `variables.v${i} + variables.v${i}`,
    })),
  ],
  'size(variables.v40) > 0',
);

/**
 * Awaits `request` while probing `/healthz` every 10 ms, as a load balancer would, and asserts
 * that every probe answered within 1 s. (Back-to-back in-process probes would complete without
 * the event loop turning and starve the request's own database I/O.)
 */
async function whileProbing<T>(t: TestApp, request: Promise<T>): Promise<T> {
  let done = false;
  const settled = request.finally(() => {
    done = true;
  });
  let slowest = 0;
  do {
    await new Promise((r) => setTimeout(r, 10));
    const start = performance.now();
    const h = await t.composed.app.inject({ method: 'GET', url: '/healthz' });
    expect(h.statusCode).toBe(200);
    slowest = Math.max(slowest, performance.now() - start);
  } while (!done);
  expect(slowest).toBeLessThan(1000);
  return settled;
}

describeEachEngine('gates and the evidence they read', (db) => {
  let t: TestApp;
  let api: ReturnType<typeof apiOf>;
  let ann: string;

  it('sets up a server with the shipped gate policies', async () => {
    t = await testApp(db(), { gatePack: true, worker: true });
    api = apiOf(t);
    ann = await tokenFor(t, {
      name: 'ann',
      kind: 'user',
      roles: ['contributor'],
      teams: ['fraud'],
    });
    const m = await api('POST', '/models', {
      name: 'scorer',
      ownerTeam: 'fraud',
      riskTier: 'high',
    });
    expect(m.statusCode, m.body).toBe(201);
  });

  it('the shipped production gate counts junk card fields as missing (finding 5)', async () => {
    const gate = async (card: Record<string, unknown>) => {
      const v = await pushFile(t, 'scorer', BENIGN, { token: ann, card });
      await waitForScans(t, 'scorer', v.number);
      const r = await api(
        'GET',
        `/models/scorer/versions/${v.number}/gate?policy=production-gate&alias=production`,
      );
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as Gate).results.find((x) => x.name === 'model-card-complete');
    };
    for (const card of [
      { intendedUse: {}, limitations: [], trainingData: false },
      { intendedUse: ' ', limitations: 0, trainingData: null },
    ])
      expect(await gate(card), JSON.stringify(card)).toMatchObject({
        passed: false,
        message: expect.stringMatching(/intendedUse, limitations, trainingData$/),
      });
    expect((await gate(FULL_CARD))?.passed).toBe(true);
  });

  it('regular expressions run in linear time on what a contributor writes (finding 3)', async () => {
    // RE2 has no backreferences or lookaround: such a pattern is refused when published, at
    // its position, rather than failing every evaluation later.
    for (const pattern of ['(a)\\\\1', 'x(?=y)']) {
      const r = await api('POST', '/gate-policies', {
        document: policyDoc(
          'refused-pattern',
          `{name: p, expression: "version.card.summary.matches(r'${pattern}')", message: m, reason: Documentation, action: deny}`,
        ),
      });
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().code).toBe('GATE_POLICY_INVALID');
      expect(r.json().message).toMatch(/not an RE2 regular expression.*line 1, column \d+/);
    }
    const published = await api('POST', '/gate-policies', {
      document: policyDoc(
        'summary-words',
        `{name: words, expression: "version.card.summary.matches('^(\\\\\\\\w+\\\\\\\\s?)*$')", message: summary is not plain words, reason: Documentation, action: deny}`,
      ),
    });
    expect(published.statusCode, published.body).toBe(201);
    // 33 characters that backtracking tries 2^32 ways to match: 19 s once, doubling per
    // character. The server must keep answering while it decides.
    const v = await pushFile(t, 'scorer', BENIGN, {
      token: ann,
      card: { ...FULL_CARD, summary: `${'a'.repeat(32)}!` },
    });
    const decided = await whileProbing(
      t,
      api('GET', `/models/scorer/versions/${v.number}/gate?policy=summary-words&alias=production`),
    );
    const r = decided.json() as Gate;
    expect(r.results[0]).toMatchObject({ name: 'words', passed: false });
    // And it still matches what it should.
    const fine = await pushFile(t, 'scorer', BENIGN, {
      token: ann,
      card: { ...FULL_CARD, summary: 'plain words only' },
    });
    const ok = (
      await api(
        'GET',
        `/models/scorer/versions/${fine.number}/gate?policy=summary-words&alias=production`,
      )
    ).json() as Gate;
    expect(ok.results[0]?.passed).toBe(true);
  });

  it('a rule of all() alone over evaluations is warned about, and the docs example denies a version never red-teamed (finding 6)', async () => {
    // The README's earlier example: true for a version with no red-team run at all.
    const old = policyDoc(
      'redteam-old',
      `{name: no-extraction, expression: "evaluations.filter(e, e.evaluator == 'llm-redteam').all(e, e.metrics['asr.system-prompt-extraction'] == 0.0)", message: m, reason: SecurityFindings, action: deny}`,
    );
    const published = await api('POST', '/gate-policies', { document: old });
    expect(published.statusCode, published.body).toBe(201);
    expect(published.json().warnings).toEqual([
      expect.objectContaining({
        path: 'spec.validations[0].expression (no-extraction)',
        message: expect.stringMatching(/is true when the list is empty/),
        position: { offset: 52, line: 1, column: 53 },
      }),
    ]);
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const cli = cliOf(url, t.token);
    const file = join(mkdtempSync(join(tmpdir(), 'mg-lint-')), 'old.yaml');
    writeFileSync(file, old);
    const checked = await cli('policy', 'check', file);
    expect(checked.code, checked.out).toBe(0);
    expect(checked.out).toMatch(
      /old\.yaml: spec\.validations\[0\]\.expression \(no-extraction\): warning: .*line 1, column 53/,
    );
    expect(checked.out).toMatch(/^ok: redteam-old sha256:\S+ \(1 warning\)$/m);
    // The docs example asks for the evidence: a version never red-teamed is denied.
    const example = readFileSync(
      join(import.meta.dirname, '..', 'docs', 'examples', 'redteam-gate.yaml'),
      'utf8',
    );
    const ex = await api('POST', '/gate-policies', { document: example });
    expect(ex.statusCode, ex.body).toBe(201);
    expect(ex.json().warnings).toBeUndefined();
    const v = await pushFile(t, 'scorer', BENIGN, { token: ann });
    const gate = (policy: string) =>
      api('GET', `/models/scorer/versions/${v.number}/gate?policy=${policy}&alias=production`);
    expect(((await gate('redteam-old')).json() as Gate).outcome).toBe('allow');
    const denied = (await gate('redteam-gate')).json() as Gate;
    expect(denied.outcome).toBe('deny');
    expect(denied.results.find((r) => r.name === 'redteamed')).toMatchObject({
      passed: false,
      message: `no successful llm-redteam run of ${v.digest}`,
    });
  });

  it('a policy that could freeze the server or exhaust its memory is refused at publish (findings 1 and 2)', async () => {
    for (const document of [NESTED, DOUBLING]) {
      const r = await api('POST', '/gate-policies', { document });
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().code).toBe('GATE_POLICY_INVALID');
      expect(r.json().message).toMatch(/may take .* steps.* on facts within the evaluation bounds/);
    }
    expect(
      (await api('GET', '/gate-policies')).json().items.map((p: { name: string }) => p.name),
    ).not.toContain('nested');
    // What-if would run the draft over every version: refused the same way.
    const whatIf = await api('POST', '/gate-policies/what-if', { document: NESTED });
    expect(whatIf.statusCode, whatIf.body).toBe(400);
    expect(whatIf.json().message).toMatch(/may take .* steps/);
    // The same offline: policy check needs no server.
    const url = 'http://127.0.0.1:9';
    const file = join(mkdtempSync(join(tmpdir(), 'mg-cost-')), 'nested.json');
    writeFileSync(file, NESTED);
    const checked = await cliOf(url, t.token)('policy', 'check', file);
    expect(checked.code, checked.out).toBe(1);
    expect(checked.out).toMatch(/spec\.validations\[0\]\.expression \(r\): may take/);
  });

  it('a costly policy stored before the cost check is denied without running, in dry runs and promotions, while the server keeps answering (findings 1 and 2)', async () => {
    const v = await pushFile(t, 'scorer', BENIGN, { token: ann });
    for (const [name, document] of [
      ['nested-old', NESTED],
      ['doubling-old', DOUBLING],
    ] as const) {
      const doc = JSON.parse(document.replace(/"(nested|doubling)"/, `"${name}"`));
      await t.composed.database.db
        .insertInto('gate_policies')
        .values({
          name,
          version: 1,
          digest: policyDigest(doc),
          document: JSON.stringify(doc),
          source: JSON.stringify(doc),
          published_by: 'admin',
          published_credential: 'before-the-cost-check',
          published_at: new Date().toISOString(),
        })
        .execute();
      const r = await whileProbing(
        t,
        api('GET', `/models/scorer/versions/${v.number}/gate?policy=${name}&alias=production`),
      );
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json().outcome).toBe('deny');
      // Denied without running: the stored policy is over the cost limit (and the dry run's
      // thread budget stands behind that).
      expect(r.json().results[0].error, name).toMatch(
        /^the policy is over the evaluation cost limit: spec\.(validations|variables)\[\d+\]\.expression.*: may take/,
      );
    }
    // A promotion to production, which both stored policies bind: denied at once, recorded.
    const promoted = await api('POST', '/models/scorer/aliases/production/promotions', {
      version: String(v.number),
    });
    expect(promoted.statusCode, promoted.body).toBe(409);
    expect(promoted.json().code).toBe('GATE_DENIED');
    expect(promoted.body).toMatch(/over the evaluation cost limit/);
    // The server, and the next dry run, are fine.
    const ok = await api(
      'GET',
      `/models/scorer/versions/${v.number}/gate?policy=production-gate&alias=production`,
    );
    expect(ok.statusCode, ok.body).toBe(200);
    expect(
      ok.json().results.find((x: { name: string }) => x.name === 'model-card-complete').passed,
    ).toBe(true);
  });

  it('closes', async () => {
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
