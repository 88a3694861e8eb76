import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { apiOf, testApp, tokenFor, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI } from './helpers/server-process.js';

const PACK = join(import.meta.dirname, '..', 'policies');
const production = readFileSync(join(PACK, 'production-gate.yaml'), 'utf8');

describeEachEngine('gate policies', (db) => {
  it('publishes type-checked policies as immutable versions, logged, and refuses mistakes precisely', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const first = await api('POST', '/gate-policies', { document: production });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({
      name: 'production-gate',
      version: 1,
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      publishedBy: 'admin',
    });
    // The same policy again (even reformatted): the existing version, no new one.
    const again = await api('POST', '/gate-policies', { document: `${production}\n# a comment\n` });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ version: 1, digest: first.json().digest });
    // A changed policy: version 2.
    const changed = production.replace(/720h/g, '360h');
    expect(changed).not.toBe(production);
    const second = await api('POST', '/gate-policies', { document: changed });
    expect(second.json()).toMatchObject({ version: 2 });
    expect((await api('GET', '/gate-policies/production-gate')).json().items).toHaveLength(2);
    expect((await api('GET', '/gate-policies')).json().items).toMatchObject([
      { name: 'production-gate', version: 2 },
    ]);
    expect((await api('GET', '/gate-policies/production-gate/versions/1')).json().digest).toBe(
      first.json().digest,
    );
    expect((await api('GET', '/gate-policies/production-gate/versions/9')).json().code).toBe(
      'GATE_POLICY_NOT_FOUND',
    );

    // A misspelled fact and a type error are refused with where they are.
    const typo = await api('POST', '/gate-policies', {
      document: production.replace('version.author', 'version.autor'),
    });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().code).toBe('GATE_POLICY_INVALID');
    expect(typo.json().message).toMatch(/autor/);
    expect(typo.json().details.problems[0].path).toMatch(/^spec\.(validations|variables)\[\d+\]/);
    const typeError = await api('POST', '/gate-policies', {
      document: production.replace(
        'expression: size(variables.blocking) == 0',
        "expression: size(variables.blocking) == 'zero'",
      ),
    });
    expect(typeError.json().code).toBe('GATE_POLICY_INVALID');
    expect(typeError.json().details.problems[0]).toMatchObject({
      path: expect.stringMatching(/no-unwaived-critical-high|validations\[3\]/),
    });

    // Published versions are in the log and cannot be edited, even by the database's owner
    // without switching triggers off.
    const events = (await api('GET', '/audit/events?limit=1000')).json().items as {
      action: string;
      subject: string;
    }[];
    expect(events.filter((e) => e.action === 'gate.policy.publish').map((e) => e.subject)).toEqual([
      'gate-policy:production-gate@1',
      'gate-policy:production-gate@2',
    ]);
    await expect(
      sql`UPDATE gate_policies SET source = 'x' WHERE name = 'production-gate'`.execute(
        t.composed.database.db,
      ),
    ).rejects.toThrow(/GATE_POLICY_IMMUTABLE/);

    // Publishing needs publishPolicy (admins); reading needs read.
    const viewer = await tokenFor(t, { name: 'vic', kind: 'user', roles: ['viewer'] });
    expect((await api('POST', '/gate-policies', { document: production }, viewer)).statusCode).toBe(
      403,
    );
    expect((await api('GET', '/gate-policies', undefined, viewer)).statusCode).toBe(200);
  });

  it('checks a policy file offline and publishes it from the command line', async () => {
    const t = await testApp(db());
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'mg-gate-cli-'));
    const env = {
      ...process.env,
      MODELGATE_SERVER: url,
      MODELGATE_TOKEN: t.token,
      MODELGATE_CONFIG: join(dir, 'none.json'),
    };
    const cli = (...args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            out: stdout + stderr,
          }),
        ),
      );
    const good = join(dir, 'gate.yaml');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(good, production);
    writeFileSync(bad, production.replace('version.author', 'version.autor'));
    const ok = await cli('policy', 'check', good);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/^ok: production-gate sha256:[0-9a-f]{64}/);
    const refused = await cli('policy', 'check', bad);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/bad\.yaml: spec\.\w+\[\d+\]\.expression.*autor/);
    expect((await cli('policy', 'check', join(dir, 'missing.yaml'))).code).toBe(2);
    const pub = await cli('policy', 'publish', good);
    expect(pub.code, pub.out).toBe(0);
    expect(pub.out).toMatch(/^production-gate version 1 sha256:/);
    expect((await cli('policy', 'list')).out).toMatch(/production-gate\s+\d+\s+sha256:/);
    expect((await cli('policy', 'show', 'production-gate@1')).out).toMatch(/kind: GatePolicy/);
    const badPub = await cli('policy', 'publish', bad);
    expect(badPub.code).toBe(1);
    expect(badPub.out).toMatch(/GATE_POLICY_INVALID/);
    await t.composed.app.close();
  });

  it("says what a gate would decide for a version now: the scanner's finding denies", async () => {
    const t = await testApp(db(), { worker: true });
    const api = apiOf(t);
    await api('POST', '/gate-policies', { document: production });
    await api('POST', '/models', { name: 'gated', ownerTeam: 'payments', riskTier: 'high' });
    const corpus = join(import.meta.dirname, 'corpus');
    const push = async (file: string) => {
      const bytes = readFileSync(file);
      const digest = await uploadBlob(t, bytes);
      const r = await api('POST', '/models/gated/versions', {
        files: [{ path: 'model.pkl', size: bytes.length, digest }],
        card: { markdown: '', fields: { intendedUse: 'x', limitations: 'y', trainingData: 'z' } },
      });
      return (r.json() as { number: number }).number;
    };
    const bad = await push(join(corpus, 'malicious', 'direct-os.system.pkl'));
    const good = await push(
      join(
        corpus,
        'benign',
        readdirSync(join(corpus, 'benign')).find((f) => f.endsWith('.pkl')) ?? '',
      ),
    );
    // The server scans every push; wait for both scans.
    for (const n of [bad, good]) {
      for (let i = 0; i < 400; i++) {
        const evs = (await api('GET', `/models/gated/versions/${n}/evaluations`)).json().items as {
          status: string;
        }[];
        if (evs.length > 0 && evs.every((e) => e.status === 'succeeded' || e.status === 'failed'))
          break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    type Gate = {
      outcome: string;
      results: { name: string; passed: boolean; message: string | null }[];
      policy: { version: number };
    };
    const gate = async (n: number) =>
      (
        await api('GET', `/models/gated/versions/${n}/gate?policy=production-gate&alias=production`)
      ).json() as Gate;
    const denied = await gate(bad);
    expect(denied.outcome).toBe('deny');
    const findingsRule = denied.results.find((r) => r.name === 'no-unwaived-critical-high');
    expect(findingsRule?.passed).toBe(false);
    expect(findingsRule?.message).toMatch(
      /unwaived critical\/high finding\(s\): (critical|high) \S+ .*os/i,
    );
    expect(denied.results.find((r) => r.name === 'artifact-scan-succeeded')?.passed).toBe(true);
    // The clean version passes the scan rules; without approvals it still may not go.
    const clean = await gate(good);
    expect(clean.results.find((r) => r.name === 'no-unwaived-critical-high')?.passed).toBe(true);
    expect(clean.results.find((r) => r.name === 'model-card-complete')?.passed).toBe(true);
    expect(clean.outcome).toBe('deny');
    expect(clean.results.filter((r) => !r.passed).map((r) => r.name)).toEqual([
      expect.stringMatching(/approv/),
    ]);
    // Nothing was recorded and no alias moved.
    expect((await api('GET', '/models/gated/aliases')).json().items).toEqual([]);
    // The same from the command line: exit 1 on a deny, the failing rules with their messages.
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const env = {
      ...process.env,
      MODELGATE_SERVER: url,
      MODELGATE_TOKEN: t.token,
      MODELGATE_CONFIG: join(tmpdir(), 'none.json'),
    };
    const out = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile(
        process.execPath,
        [CLI, 'gate', `gated@${bad}`, '--policy', 'production-gate', '--alias', 'production'],
        { env },
        (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            text: stdout + stderr,
          }),
      ),
    );
    expect(out.code, out.text).toBe(1);
    expect(out.text).toMatch(/FAIL no-unwaived-critical-high: 1 unwaived critical\/high finding/);
    expect(out.text).toMatch(/^ok {3}artifact-scan-succeeded$/m);
    expect(out.text).toMatch(/deny: gated@\d+ for production under production-gate@\d+/);
    const unknown = await api(
      'GET',
      `/models/gated/versions/${bad}/gate?policy=nope&alias=production`,
    );
    expect(unknown.json().code).toBe('GATE_POLICY_NOT_FOUND');
    await t.composed.app.close();
  });
});
