import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { canonicalize } from '../src/audit/canonical-json.js';
import { type Envelope, verifyEnvelope } from '../src/evidence/dsse.js';
import { parseStatement } from '../src/evidence/statement.js';
import { apiOf, type TestApp, testApp, tokenFor } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, pushFile, waitForScans } from './helpers/versions.js';

async function pushAndScan(t: TestApp, model: string, file: string, token: string) {
  const v = await pushFile(t, model, file, { token });
  await waitForScans(t, model, v.number);
  return v;
}

interface Stored {
  id: number;
  kind: string;
  ref: string;
  predicateType: string;
  envelope: Envelope;
  envelopeDigest: string;
}

describeEachEngine('attestations', (db) => {
  it('signs every evaluation, decision, approval and waiver of a version as in-toto statements', async () => {
    const t = await testApp(db(), { gatePack: true, worker: true });
    const api = apiOf(t);
    await api('POST', '/models', { name: 'attested', ownerTeam: 'fraud', riskTier: 'limited' });
    const ann = await tokenFor(t, {
      name: 'at-ann',
      kind: 'user',
      roles: ['contributor'],
      teams: ['fraud'],
    });
    const ada = await tokenFor(t, {
      name: 'at-ada',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const v = await pushAndScan(
      t,
      'attested',
      join(CORPUS, 'malicious', 'direct-os.system.pkl'),
      ann,
    );

    // The key is public; every statement verifies with it and names the version's digest.
    const key = (
      await t.composed.app.inject({ method: 'GET', url: '/api/v1/attestations/key' })
    ).json();
    expect(key).toMatchObject({
      algorithm: 'ed25519',
      keyid: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    const publicKey = createPublicKey(key.publicKey);
    const list = async () =>
      (await api('GET', `/models/attested/versions/${v.number}/attestations`)).json()
        .items as Stored[];
    const open = (a: Stored) => {
      const verified = verifyEnvelope(a.envelope, [{ key: publicKey }]);
      expect(verified.payloadType).toBe('application/vnd.in-toto+json');
      expect(a.envelopeDigest).toBe(
        `sha256:${createHash('sha256').update(canonicalize(a.envelope)).digest('hex')}`,
      );
      const s = parseStatement(verified.payload);
      expect(s.subject).toEqual([
        { name: `attested@${v.number}`, digest: { sha256: v.digest.slice(7) } },
      ]);
      return s as { predicateType: string; predicate: Record<string, unknown> };
    };
    const [provenance, scan] = await list();
    // Registration: the version's lineage as SLSA provenance, signed when it was pushed.
    expect(provenance).toMatchObject({
      kind: 'provenance',
      predicateType: 'https://slsa.dev/provenance/v1',
    });
    expect(open(provenance!).predicate).toMatchObject({
      buildDefinition: {
        buildType: 'https://modelgate.dev/registration/v1',
        externalParameters: { model: 'attested', version: 1, files: 1 },
        resolvedDependencies: [],
      },
      runDetails: { builder: { id: 'https://modelgate.dev/registry' } },
    });
    expect(scan).toMatchObject({
      kind: 'evaluation',
      predicateType: 'https://in-toto.io/attestation/test-result/v0.1',
    });
    const scanStatement = open(scan!);
    expect(scanStatement.predicate).toMatchObject({
      result: 'FAILED',
      failedTests: ['pickle.unsafe-global/os.system'],
    });

    // A denied promotion, a waiver, a pending request, an approval, the promotion.
    const denied = await api(
      'POST',
      '/models/attested/aliases/production/promotions',
      { version: '1' },
      ann,
    );
    expect(denied.json().code).toBe('GATE_DENIED');
    const waiver = await api(
      'POST',
      '/models/attested/versions/1/waivers',
      {
        findingRule: 'pickle.unsafe-global/os.system',
        justification: 'sandboxed',
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      },
      ada,
    );
    expect(waiver.statusCode).toBe(201);
    const pending = await api(
      'POST',
      '/models/attested/aliases/production/promotions',
      { version: '1' },
      ann,
    );
    expect(pending.statusCode).toBe(202);
    const approved = await api(
      'POST',
      `/models/attested/aliases/production/promotion-requests/${pending.json().request.id}/reviews`,
      { decision: 'approve', comment: 'reviewed' },
      ada,
    );
    expect(approved.json().status).toBe('promoted');
    const all = await list();
    expect(all.map((a) => a.kind)).toEqual([
      'provenance',
      'evaluation',
      'decision',
      'waiver',
      'decision',
      'approval',
      'decision',
    ]);
    const statements = all.map(open);
    const [, , firstDecision, waived, , approval, promotion] = statements;
    expect(firstDecision?.predicate).toMatchObject({
      verificationResult: 'FAILED',
      resourceUri: 'modelgate:models/attested/versions/1',
      policy: { uri: 'modelgate:gate-policies/production-gate@1' },
    });
    expect(waived?.predicate).toMatchObject({
      findingRule: 'pickle.unsafe-global/os.system',
      approvedBy: 'at-ada',
    });
    expect(approval?.predicate).toMatchObject({
      reviewer: 'at-ada',
      decision: 'approve',
      comment: 'reviewed',
    });
    // Modelgate's own predicate types follow their published JSON Schemas.
    const ajv = new Ajv2020.default({ strict: true, allErrors: true });
    addFormats.default(ajv);
    for (const [file, predicate] of [
      ['approval-v1.schema.json', approval?.predicate],
      ['waiver-v1.schema.json', waived?.predicate],
    ] as const) {
      const schema = JSON.parse(
        readFileSync(join(import.meta.dirname, '..', 'docs', 'predicates', file), 'utf8'),
      );
      const validate = ajv.compile(schema);
      expect(validate(predicate), JSON.stringify(validate.errors)).toBe(true);
      expect(statements.find((x) => x.predicateType === schema.$id)).toBeDefined();
      // And the schema does refuse: a predicate without its reviewer or justification fails.
      expect(validate({ ...predicate, reviewer: undefined, justification: undefined })).toBe(false);
    }
    // The promotion's summary passes, lists the waiver, and links the scan's own attestation.
    expect(promotion?.predicate).toMatchObject({
      verificationResult: 'PASSED',
      inputAttestations: [
        {
          uri: `modelgate:attestations/${scan!.id}`,
          digest: { sha256: scan!.envelopeDigest.slice(7) },
        },
      ],
      modelgate: { moved: true, outcome: 'allow', waivers: [String(waiver.json().id)] },
    });

    // Each is in the audit log; a changed byte no longer verifies; the table refuses changes.
    const events = await sql<{ subject: string }>`
      SELECT subject FROM audit_pending WHERE action = 'attestation.create'
      UNION ALL SELECT subject FROM audit_events WHERE action = 'attestation.create'`.execute(
      t.composed.database.db,
    );
    for (const a of all)
      expect(events.rows.map((e) => e.subject)).toContain(`attestation:attested@1/${a.id}`);
    const forged = {
      ...scan!.envelope,
      payload: Buffer.from(
        Buffer.from(scan!.envelope.payload, 'base64').toString().replace('FAILED', 'PASSED'),
      ).toString('base64'),
    };
    expect(() => verifyEnvelope(forged, [{ key: publicKey }])).toThrow(/no signature verifies/);
    await expect(
      sql`UPDATE attestations SET kind = 'x' WHERE id = ${scan!.id}`.execute(
        t.composed.database.db,
      ),
    ).rejects.toThrow(/ATTESTATION_IMMUTABLE/);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
