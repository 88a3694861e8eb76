import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import {
  generateSignerKey,
  noteSigner,
  parseNote,
  signNote,
  verifierKeyOf,
} from '../src/audit/signed-note.js';
import { generateWitnessKey } from '../src/audit/witness.js';
import { verifyBundle } from '../src/evidence/bundle.js';
import { ed25519Signer, IN_TOTO_PAYLOAD_TYPE, signEnvelope } from '../src/evidence/dsse.js';
import { statement, versionSubject } from '../src/evidence/statement.js';
import { apiOf, testApp, tokenFor } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI } from './helpers/server-process.js';
import { CORPUS, pushFile, waitForScans } from './helpers/versions.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'evidence-bundle-v1.json');

function cli(env: Record<string, string>, ...args: string[]) {
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout + stderr }),
    ),
  );
}

describeEachEngine('evidence bundles', (db) => {
  it("exports a version's whole history and verifies it offline; any change is caught", async () => {
    // An external evaluator (say a red-team pipeline) whose public key the operator registered.
    const keyDir = mkdtempSync(join(tmpdir(), 'mg-evaluator-keys-'));
    const external = generateKeyPairSync('ed25519');
    writeFileSync(
      join(keyDir, 'redteam-ci.pem'),
      external.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    const t = await testApp(db(), { gatePack: true, worker: true, evaluatorKeys: keyDir });
    const api = apiOf(t);
    await api('POST', '/models', { name: 'bundled', ownerTeam: 'fraud', riskTier: 'limited' });
    const ann = await tokenFor(t, {
      name: 'eb-ann',
      kind: 'user',
      roles: ['contributor'],
      teams: ['fraud'],
    });
    const ada = await tokenFor(t, {
      name: 'eb-ada',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const v = await pushFile(t, 'bundled', join(CORPUS, 'malicious', 'direct-os.system.pkl'), {
      token: ann,
    });
    await waitForScans(t, 'bundled', v.number);
    // History: a denial, a waiver, a pending request, an approval, the promotion.
    await api('POST', '/models/bundled/aliases/production/promotions', { version: '1' }, ann);
    await api(
      'POST',
      '/models/bundled/versions/1/waivers',
      {
        findingRule: 'pickle.unsafe-global/os.system',
        justification: 'sandboxed loader',
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      },
      ada,
    );
    const pending = await api(
      'POST',
      '/models/bundled/aliases/production/promotions',
      { version: '1' },
      ann,
    );
    const done = await api(
      'POST',
      `/models/bundled/aliases/production/promotion-requests/${pending.json().request.id}/reviews`,
      { decision: 'approve', comment: 'ok' },
      ada,
    );
    expect(done.json().status).toBe('promoted');

    // The external evaluator's own signed result is kept with its signature.
    const externalResult = (digest: string, signer = external.privateKey) =>
      signEnvelope(
        IN_TOTO_PAYLOAD_TYPE,
        Buffer.from(
          JSON.stringify(
            statement(
              versionSubject('bundled', 1, digest),
              'https://in-toto.io/attestation/test-result/v0.1',
              {
                result: 'PASSED',
                configuration: [{ name: 'jailbreak-pack@3', digest: { sha256: 'ab'.repeat(32) } }],
              },
            ),
          ),
        ),
        [ed25519Signer(signer)],
      );
    const post = (envelope: unknown) =>
      api('POST', '/models/bundled/versions/1/attestations', { envelope });
    const stranger = await post(
      externalResult(v.digest, generateKeyPairSync('ed25519').privateKey),
    );
    expect(stranger.statusCode).toBe(400);
    expect(stranger.json().message).toMatch(/does not verify with a registered evaluator key/);
    const elsewhere = await post(externalResult(`sha256:${'00'.repeat(32)}`));
    expect(elsewhere.json().message).toMatch(/the statement is not about bundled@1/);
    const kept = await post(externalResult(v.digest));
    expect(kept.statusCode, kept.body).toBe(201);
    expect(kept.json()).toMatchObject({
      kind: 'external',
      ref: expect.stringMatching(/^redteam-ci\/sha256:/),
    });
    // An evaluator role is needed to submit one.
    expect(
      (
        await api(
          'POST',
          '/models/bundled/versions/1/attestations',
          { envelope: externalResult(v.digest) },
          ann,
        )
      ).statusCode,
    ).toBe(403);

    const logKey = (
      await t.composed.app.inject({ method: 'GET', url: '/api/v1/audit/key' })
    ).body.trim();
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'mg-bundle-'));
    const file = join(dir, 'bundle.json');
    const env = {
      MODELGATE_SERVER: url,
      MODELGATE_TOKEN: ann,
      MODELGATE_CONFIG: join(dir, 'none.json'),
    };
    // The one-command answer: what was tested, who approved, under which policy, where it went.
    const shown = await cli(env, 'evidence', 'show', 'bundled@1');
    expect(shown.code, shown.out).toBe(0);
    const lines = shown.out;
    expect(lines).toMatch(/^bundled@1 sha256:[0-9a-f]{64}$/m);
    expect(lines).toMatch(/^registered by eb-ann at \S+ \[attestation \d+\]$/m);
    expect(lines).toMatch(
      /^ {2}artifact-scan@\S+ ev_\w+: FAILED \(pickle\.unsafe-global\/os\.system\) \[attestation \d+\]$/m,
    );
    expect(lines).toMatch(
      /^ {2}decision \d+ \(promotion\) for production: deny under production-gate@1 at \S+ \[attestation \d+\]\n {6}FAIL production-gate\/no-unwaived-critical-high: /m,
    );
    expect(lines).toMatch(
      /^ {2}decision \d+ \(promotion\) for production: allow, alias moved under production-gate@1 at \S+, waivers \d+ \[attestation \d+\]$/m,
    );
    expect(lines).toMatch(
      /^ {2}approved by eb-ada at \S+ \(request \d+ for production, requested by eb-ann\): ok \[attestation \d+\]$/m,
    );
    expect(lines).toMatch(
      /^ {2}waiver \d+: pickle\.unsafe-global\/os\.system by eb-ada until \S+: sandboxed loader \[attestation \d+\]$/m,
    );
    expect(lines).toMatch(
      /^aliases:\n {2}\S+ production: - -> 1 by eb-ada \[audit event alias\.\*\]$/m,
    );
    expect(lines).toMatch(
      /^ {2}external \(redteam-ci\) https:\/\/in-toto\.io\/attestation\/test-result\/v0\.1: PASSED \[attestation \d+\]$/m,
    );
    // Evidence mapped to control frameworks: coverage and gaps, each row linked to its evidence.
    const rep = await cli(env, 'evidence', 'report', 'bundled@1', '--format', 'json');
    expect(rep.code, rep.out).toBe(0);
    const report = JSON.parse(rep.out) as {
      frameworks: {
        id: string;
        coverage: Record<string, number>;
        rows: {
          id: string;
          status: string;
          evidence: { code: string; present: boolean; refs: { kind: string; id: string }[] }[];
        }[];
      }[];
    };
    expect(report.frameworks.map((f) => f.id)).toEqual([
      'nist-ai-rmf@1.0',
      'iso42001@2023',
      'eu-ai-act',
      'nist-csf@2.0',
    ]);
    const row = (fw: string, id: string) =>
      report.frameworks.find((f) => f.id === fw)?.rows.find((r) => r.id === id);
    const art15 = row('eu-ai-act', 'art-15');
    expect(art15?.status).toBe('evidence-present');
    expect(art15?.evidence.map((e) => [e.code, e.refs.map((r) => r.kind)])).toEqual([
      ['SEC', ['attestation']],
      ['EVAL', ['attestation', 'attestation']],
    ]);
    expect(row('eu-ai-act', 'annex-iv(7)')?.status).toBe('organisational');
    expect(row('eu-ai-act', 'art-72')?.status).toBe('partial'); // DOC yes, MON no
    expect(row('eu-ai-act', 'art-10')?.status).toBe('partial'); // no lineage recorded
    expect(row('nist-csf@2.0', 'PR.AA-05')?.status).toBe('evidence-present');
    const eu = report.frameworks.find((f) => f.id === 'eu-ai-act')?.coverage ?? {};
    expect(Object.values(eu).reduce((a, b) => a + b, 0)).toBe(18);
    const html = join(dir, 'report.html');
    expect(
      (await cli(env, 'evidence', 'report', 'bundled@1', '--format', 'html', '-o', html)).code,
    ).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain('organisational evidence required');
    // Every link to evidence lands on an entry of the page's evidence list.
    const links = [...page.matchAll(/href="#([^"]+)"/g)].map((m) => m[1]);
    expect(links.length).toBeGreaterThan(50);
    for (const l of new Set(links)) expect(page).toContain(`id="${l}"`);
    const md = await cli(env, 'evidence', 'report', 'bundled@1', '--framework', 'eu-ai-act');
    expect(md.out).toMatch(
      /^\| art-15 \| .* \| evidence present \| SEC: attestation \d+; EVAL: attestation \d+, attestation \d+ \|$/m,
    );
    const oscal = await cli(env, 'evidence', 'report', 'bundled@1', '--format', 'oscal');
    expect(oscal.code, oscal.out).toBe(0);
    const ar = JSON.parse(oscal.out)['assessment-results'];
    expect(ar.results).toHaveLength(4);
    expect(
      ar['back-matter'].resources.map((r: { rlinks: { href: string }[] }) => r.rlinks[0]?.href),
    ).toContain(`modelgate:attestations/${art15?.evidence[0]?.refs[0]?.id}`);
    // The portfolio: every model's version under production (else its latest), per framework.
    const port = await cli(env, 'evidence', 'portfolio', '--format', 'json');
    expect(port.code, port.out).toBe(0);
    const portfolio = JSON.parse(port.out) as {
      frameworks: {
        id: string;
        totals: Record<string, number>;
        models: {
          model: string;
          version: number;
          coverage: Record<string, number>;
          missing: string[];
        }[];
      }[];
    };
    const euPort = portfolio.frameworks.find((f) => f.id === 'eu-ai-act');
    expect(euPort?.models).toEqual([
      { model: 'bundled', version: 1, digest: v.digest, coverage: eu, missing: [] },
    ]);
    expect(
      portfolio.frameworks.find((f) => f.id === 'nist-ai-rmf@1.0')?.models[0]?.missing,
    ).toContain('GOVERN 5.1');
    expect((await cli(env, 'evidence', 'portfolio')).out).toMatch(
      /^\| bundled \| 1 \| \d+ \| \d+ \| \d+ \| \d+ \|$/m,
    );
    // The Annex IV draft: what the record holds, each item traceable, the rest marked.
    const annex = await cli(env, 'evidence', 'annex-iv', 'bundled@1');
    expect(annex.code, annex.out).toBe(0);
    for (let n = 1; n <= 9; n++) expect(annex.out).toMatch(new RegExp(`^## ${n}\\. `, 'm'));
    expect(annex.out).toContain(`digest \`${v.digest}\``);
    expect(annex.out).toMatch(
      /^- Signed approval by eb-ada on \S+ for production: ok \[attestation \d+\]$/m,
    );
    expect(annex.out).toMatch(
      /^- Artifact scan ev_\w+: succeeded; findings critical 1, high 0, medium 0, low 0 \[attestation \d+\]$/m,
    );
    expect(annex.out).toMatch(
      /^- Accepted risk: waiver \d+ of pickle\.unsafe-global\/os\.system by eb-ada/m,
    );
    expect(annex.out).toMatch(/^- \S+: production - -> 1 by eb-ada \[audit log\]$/m);
    // Sections the record cannot supply say so.
    expect(
      annex.out.match(/^> \*\*To be supplied by the provider:\*\*/gm)?.length,
    ).toBeGreaterThanOrEqual(9);
    expect(annex.out).toMatch(
      /## 8\. EU declaration of conformity \(Art\. 47\)\n\n> \*\*To be supplied by the provider:\*\*/,
    );
    const unknown = await cli(env, 'evidence', 'report', 'bundled@1', '--framework', 'sox');
    expect(unknown.code).toBe(1);
    expect(unknown.out).toMatch(/unknown framework sox; the catalog has nist-ai-rmf@1\.0/);
    if (process.env.MODELGATE_REPORT_SAMPLE)
      writeFileSync(process.env.MODELGATE_REPORT_SAMPLE, page);

    const out = await cli(env, 'evidence', 'export', 'bundled@1', '-o', file);
    expect(out.code, out.out).toBe(0);
    expect(out.out).toMatch(/wrote .*bundle\.json: 8 attestations/);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();

    // Offline: no server is running any more.
    const keyFile = join(dir, 'log.vkey');
    writeFileSync(keyFile, `${logKey}\n`);
    const ok = await cli({}, 'evidence', 'verify', file, '--log-key', keyFile);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/^ok {3}version manifest: 1 file\(s\) hash to sha256:/m);
    expect(ok.out).toMatch(/^ok {3}checkpoint signature: modelgate\.local\/audit\/v1/m);
    expect(ok.out.match(/^ok {3}attestation \d+ /gm)).toHaveLength(8);
    expect(ok.out).toMatch(/^ok {3}export list: 8 attestations listed/m);
    // The export's signed time, and how old it is (issue 17, finding 9).
    expect(ok.out).toMatch(
      /^ok {3}export age: exported at \d{4}-\d\d-\d\dT[\d:.]+Z, \d+ (s|min) ago$/m,
    );
    expect(ok.out).toMatch(/verified: /);
    const verifyWithin = (age: string) =>
      cli({}, 'evidence', 'verify', file, '--log-key', keyFile, '--max-age', age);
    const fresh = await verifyWithin('1h');
    expect(fresh.code, fresh.out).toBe(0);
    const badAge = await verifyWithin('soon');
    expect(badAge.code).toBe(2);
    expect(badAge.out).toMatch(/--max-age "soon": give a duration such as 30d, 12h or 90m/);

    const text = readFileSync(file, 'utf8');
    const bundle = JSON.parse(text);
    const check = (b: unknown, key = logKey) => verifyBundle(b, { logKey: key });
    expect(check(bundle).ok).toBe(true);
    const exportedAt = check(bundle).exportedAt as string;
    expect(Date.parse(exportedAt)).toBeGreaterThan(Date.now() - 3_600_000);
    // Two days later, a reader who accepts one day refuses it; a time in the future is refused.
    const aged = (now: number) =>
      verifyBundle(bundle, { logKey, maxAgeMs: 86_400_000, now })
        .checks.filter((c) => !c.ok)
        .map((c) => `${c.name}: ${c.detail}`);
    expect(aged(Date.parse(exportedAt) + 2 * 86_400_000)).toEqual([
      `export age: exported at ${exportedAt}, 2 d 0 h ago: older than the 1 d 0 h allowed`,
    ]);
    expect(aged(Date.parse(exportedAt) - 3_600_000)).toEqual([
      `export age: exported at ${exportedAt}, in the future`,
    ]);
    const failed = (b: unknown, key = logKey) =>
      check(b, key)
        .checks.filter((c) => !c.ok)
        .map((c) => `${c.name}: ${c.detail}`);

    // A changed statement: its signature fails, and the check names the attestation.
    const changed = structuredClone(bundle);
    const env1 = changed.attestations[2].envelope;
    env1.payload = Buffer.from(
      Buffer.from(env1.payload, 'base64').toString().replace('"FAILED"', '"PASSED"'),
    ).toString('base64');
    expect(failed(changed)).toEqual([
      expect.stringMatching(/^attestation \d+ \(decision \d+\): no signature verifies/),
      expect.stringMatching(
        /^export list: attestation \d+ is listed by the export but missing or invalid/,
      ),
    ]);
    const bad = join(dir, 'changed.json');
    writeFileSync(bad, JSON.stringify(changed));
    const refused = await cli({}, 'evidence', 'verify', bad, '--log-key', logKey);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/^FAIL attestation \d+ \(decision/m);
    expect(refused.out).toMatch(/NOT verified/);

    // A dropped attestation: the signed export list says it is missing.
    const dropped = structuredClone(bundle);
    dropped.attestations.splice(2, 1);
    expect(failed(dropped)).toEqual([
      expect.stringMatching(/^export list: attestation \d+ is listed by the export but missing/),
    ]);

    // Witnesses: the checkpoint must carry a valid cosignature of each witness asked for.
    const witness = generateWitnessKey('witness.example/w1');
    expect(failed(bundle, logKey)).toEqual([]);
    expect(
      verifyBundle(bundle, { logKey, witnessKeys: [witness.vkey] }).checks.find(
        (c) => c.name === 'witnesses',
      ),
    ).toMatchObject({
      ok: false,
      detail: 'no valid cosignature by witness.example/w1',
    });
    const cosigned = structuredClone(bundle);
    const line = signNote(parseNote(bundle.checkpoint).text, [noteSigner(witness.skey)])
      .trimEnd()
      .split('\n')
      .at(-1);
    cosigned.checkpoint = `${bundle.checkpoint}${line}\n`;
    const witnessed = join(dir, 'witnessed.json');
    writeFileSync(witnessed, JSON.stringify(cosigned));
    const w = await cli(
      {},
      'evidence',
      'verify',
      witnessed,
      '--log-key',
      logKey,
      '--witness-key',
      witness.vkey,
    );
    expect(w.code, w.out).toBe(0);
    expect(w.out).toMatch(/^ok {3}witnesses: cosigned by 1 of 1 given witness\(es\)$/m);

    // A file's path or size changed: the manifest digest does not cover them, the export does.
    const resized = structuredClone(bundle);
    resized.version.files[0].size += 1;
    expect(failed(resized)).toEqual([
      'export list: the version in the bundle is not the version the export signed',
    ]);

    // Another log's checkpoint (same origin name, another key), or another log's key.
    const other = generateSignerKey('modelgate.local/audit/v1');
    const foreign = structuredClone(bundle);
    foreign.checkpoint = signNote(parseNote(bundle.checkpoint).text, [noteSigner(other)]);
    expect(failed(foreign)[0]).toMatch(
      /^checkpoint signature: the checkpoint is not signed by the log key/,
    );
    expect(failed(bundle, verifierKeyOf(other))[0]).toMatch(/^checkpoint signature: /);

    // Bundles from earlier releases keep verifying: freeze this one (UPDATE_EVIDENCE_FIXTURE=1).
    if (process.env.UPDATE_EVIDENCE_FIXTURE && db().engine === 'sqlite')
      writeFileSync(FIXTURE, `${JSON.stringify({ logKey, bundle })}\n`);

    // Any single byte changed anywhere in the file: never verifies.
    fc.assert(
      fc.property(
        fc.nat({ max: text.length - 1 }),
        fc.integer({ min: 1, max: 94 }),
        (pos, shift) => {
          const c = text.charCodeAt(pos);
          const next = String.fromCharCode(((c - 32 + shift) % 95) + 32);
          if (next === text[pos]) return true;
          const mutated = text.slice(0, pos) + next + text.slice(pos + 1);
          let parsed: unknown;
          try {
            parsed = JSON.parse(mutated);
          } catch {
            return true; // not even JSON: the CLI refuses it
          }
          return !check(parsed).ok;
        },
      ),
      { numRuns: 1000, seed: 42 },
    );
  });

  it('evidence show prints who registered a version from the signed provenance, and says when the row differs (finding 7)', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    expect((await api('POST', '/models', { name: 'shown', riskTier: 'high' })).statusCode).toBe(
      201,
    );
    await pushFile(t, 'shown', join(CORPUS, 'benign', 'numpy-array-protocol2.pkl'));
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'mg-show-'));
    const env = {
      MODELGATE_SERVER: url,
      MODELGATE_TOKEN: t.token,
      MODELGATE_CONFIG: join(dir, 'none.json'),
    };
    const before = await cli(env, 'evidence', 'show', 'shown@1');
    expect(before.code, before.out).toBe(0);
    expect(before.out).toMatch(/^registered by admin at \S+ \[attestation \d+\]$/m);
    // An insider edits the author in the database, behind the immutability trigger.
    const k = t.composed.database.db;
    if (db().engine === 'postgres')
      await sql.raw('ALTER TABLE versions DISABLE TRIGGER versions_immutable').execute(k);
    else await sql.raw('DROP TRIGGER versions_immutable').execute(k);
    await sql`UPDATE versions SET author = 'mallory'`.execute(k);
    const after = await cli(env, 'evidence', 'show', 'shown@1');
    expect(after.code, after.out).toBe(1);
    expect(after.out).toMatch(/^registered by admin at \S+ \[attestation \d+\]$/m);
    expect(after.out).not.toMatch(/^registered by mallory/m);
    expect(after.out).toMatch(
      /^MISMATCH the version record says registered by mallory at \S+; the signed provenance \(attestation \d+\) says admin at /m,
    );
    await t.composed.app.close();
  });

  it("refuses an identity's exports past the hourly limit, logging nothing for them (finding 9)", async () => {
    const t = await testApp(db(), { exportsPerHour: 2 });
    const api = apiOf(t);
    expect((await api('POST', '/models', { name: 'limited', riskTier: 'high' })).statusCode).toBe(
      201,
    );
    const v = await pushFile(t, 'limited', join(CORPUS, 'benign', 'numpy-array-protocol2.pkl'));
    const url = `/models/limited/versions/${v.number}/evidence-bundles`;
    const exports = async () =>
      Number(
        (
          await sql<{
            n: number;
          }>`SELECT count(*) AS n FROM (SELECT action, subject FROM audit_pending
            UNION ALL SELECT action, subject FROM audit_events) e
            WHERE e.action = 'evidence.export' AND e.subject = 'export:limited@1'`.execute(
            t.composed.database.db,
          )
        ).rows[0]?.n,
      );
    for (let i = 0; i < 2; i++) expect((await api('POST', url)).statusCode).toBe(200);
    const refused = await api('POST', url);
    expect(refused.statusCode, refused.body).toBe(429);
    expect(refused.json().code).toBe('RATE_LIMITED');
    expect(refused.json().message).toMatch(/evidence exports: at most 2 per 60 min for admin/);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(await exports()).toBe(2);
    // Another identity has its own allowance.
    const viewer = await tokenFor(t, { name: 'vic', kind: 'user', roles: ['viewer'] });
    expect((await api('POST', url, undefined, viewer)).statusCode).toBe(200);
    expect(await exports()).toBe(3);
    await t.composed.app.close();
  });
});

it('still verifies the bundle frozen from the first release of the format', () => {
  const { logKey, bundle } = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const report = verifyBundle(bundle, { logKey });
  expect(report.checks.filter((c) => !c.ok)).toEqual([]);
  expect(report.checks.length).toBeGreaterThanOrEqual(9);
  // It carries no signed export time: a reader who asks for a maximum age refuses it.
  expect(report.exportedAt).toBeUndefined();
  expect(
    verifyBundle(bundle, { logKey, maxAgeMs: 86_400_000 }).checks.filter((c) => !c.ok),
  ).toEqual([
    expect.objectContaining({
      name: 'export age',
      detail: expect.stringMatching(/carries no signed time/),
    }),
  ]);
});
