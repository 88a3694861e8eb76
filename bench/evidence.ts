// Evidence benchmarks, run by `npm run bench` (MODELGATE_BENCH_ONLY=evidence): export and
// offline verification of the bundle of a version with 100 evaluations and 1,000 findings, each
// against a baseline in the same process (reading the same attestations without proofs; checking
// only their signatures).
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finding } from '../src/core/findings.js';
import { attestorFor } from '../src/evidence/attestor.js';
import { type EvidenceBundle, verifyBundle } from '../src/evidence/bundle.js';
import { loadCatalog, portfolioMarkdown, portfolioReport } from '../src/evidence/compliance.js';
import { verifyEnvelope } from '../src/evidence/dsse.js';
import { issueToken } from '../src/identity/tokens.js';
import { compose } from '../src/server/composition.js';
import { loadConfig } from '../src/server/config.js';
import { KyselyAttestationStore } from '../src/storage/kysely-attestation-store.js';
import { seedPortfolio } from '../test/helpers/portfolio.js';
import { log, median, openEngine, type AuditResult as Result } from './audit.js';

/** Report generation for a portfolio of 1,000 models, each with signed evidence. */
async function benchPortfolio(results: Result[]): Promise<void> {
  const e = await openEngine('sqlite', undefined, 'portfolio');
  if (!e) return;
  try {
    await seedPortfolio(e.database, 1000, 1, 'p');
    const attestor = attestorFor(generateKeyPairSync('ed25519').privateKey);
    const models = await e.database.db
      .selectFrom('versions')
      .innerJoin('models', 'models.id', 'versions.model_id')
      .select([
        'models.id as modelId',
        'versions.id as versionId',
        'models.name',
        'versions.number',
        'versions.digest',
      ])
      .execute();
    const at = new Date().toISOString();
    const rows = models.flatMap((m) =>
      (['evaluation', 'decision', 'approval'] as const).map((kind, i) => {
        const signed = attestor.about(
          { model: m.name, version: Number(m.number), digest: m.digest },
          'https://example.com/p',
          kind === 'approval'
            ? { decision: 'approve', reviewer: 'ada' }
            : kind === 'decision'
              ? { modelgate: { outcome: 'allow' } }
              : { result: 'PASSED' },
        );
        return {
          model_id: m.modelId,
          version: Number(m.number),
          kind,
          ref:
            kind === 'evaluation'
              ? `ev_${Number(m.versionId).toString(16).padStart(16, '0')}`
              : String(i),
          predicate_type: 'https://example.com/p',
          envelope: JSON.stringify(signed.envelope),
          envelope_digest: signed.digest,
          created_at: at,
        };
      }),
    );
    for (let i = 0; i < rows.length; i += 500)
      await e.database.db
        .insertInto('attestations')
        .values(rows.slice(i, i + 500))
        .execute();
    const store = new KyselyAttestationStore(e.database);
    const catalog = loadCatalog();
    const runs: number[] = [];
    const reads: number[] = [];
    for (let i = 0; i < 3; i++) {
      let t = performance.now();
      await e.database.db.selectFrom('attestations').selectAll().execute();
      reads.push(performance.now() - t);
      t = performance.now();
      const inputs = await store.portfolio('production');
      const r = portfolioReport(
        catalog,
        inputs.map((x) => ({ ...x, checkpoint: { size: 1 } })),
        { alias: 'production', now: new Date() },
      );
      portfolioMarkdown(r);
      runs.push(performance.now() - t);
    }
    log(`  portfolio of 1000 models: ${median(runs).toFixed(0)} ms`);
    results.push({
      name: 'portfolio evidence report over 1,000 models (4 frameworks, 176 controls each)',
      value: median(runs),
      unit: 'ms',
      baseline: median(reads),
      ratio: median(runs) / median(reads),
      note: '3 signed attestations per model, JSON and Markdown; baseline: SELECT * of the same attestation rows; SQLite, median of 3',
    });
  } finally {
    await e.close();
  }
}

export async function benchEvidence(results: Result[]): Promise<void> {
  await benchPortfolio(results);
  const dataDir = mkdtempSync(join(tmpdir(), 'modelgate-bench-evidence-'));
  const token = issueToken().secret;
  const app = await compose({
    ...loadConfig({ dataDir }, {}),
    bootstrapToken: token,
    autoScan: false,
    gateRecheckMs: 0,
  });
  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    app.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${token}` },
      ...(payload && { payload }),
    });
  try {
    await call('POST', '/models', { name: 'evidenced' });
    const blob = await app.app.inject({
      method: 'POST',
      url: '/api/v1/blobs',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from('weights'),
    });
    const digest = blob.json().digest as string;
    await call('POST', '/models/evidenced/versions', {
      files: [{ path: 'model.bin', size: 7, digest }],
    });
    // 100 evaluations of 10 findings each, completed through the store as a worker would.
    const store = app.deps.evaluations;
    const finding = (i: number): Finding => ({
      ruleId: `bench.rule/${i % 40}`,
      severity: (['critical', 'high', 'medium', 'low', 'info'] as const)[i % 5]!,
      title: `finding ${i}`,
      location: { file: 'model.bin', offset: i },
      evidence: { note: 'bench' },
      references: [],
    });
    for (let e = 0; e < 100; e++) {
      await store.enqueue(
        { model: 'evidenced', version: 1 },
        { id: 'artifact-scan', version: '1' },
        { run: e },
        { identity: 'bench', credentialId: 'tok_0000000000000000' },
      );
      const job = await store.claim('bench', 60_000, 3);
      if (!job) throw new Error('no job to claim');
      await store.complete(
        job.id,
        'bench',
        Array.from({ length: 10 }, (_, i) => finding(e * 10 + i)),
        { findings: 10 },
      );
    }
    const exports: number[] = [];
    const lists: number[] = [];
    let bundle: EvidenceBundle | undefined;
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      const r = await call('GET', '/models/evidenced/versions/1/attestations');
      if (r.statusCode !== 200) throw new Error(r.body);
      lists.push((performance.now() - t) / 1000);
      t = performance.now();
      const x = await call('POST', '/models/evidenced/versions/1/evidence-bundles');
      if (x.statusCode !== 200) throw new Error(x.body);
      bundle = x.json() as EvidenceBundle;
      bytes = x.body.length;
      exports.push((performance.now() - t) / 1000);
    }
    if (!bundle) throw new Error('no bundle');
    const logKey = (await app.app.inject({ method: 'GET', url: '/api/v1/audit/key' })).body.trim();
    const key = createPublicKey(bundle.keys.attestation);
    const verifies: number[] = [];
    const sigs: number[] = [];
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      const report = verifyBundle(bundle, { logKey });
      if (!report.ok) throw new Error(JSON.stringify(report.checks.filter((c) => !c.ok)));
      verifies.push((performance.now() - t) / 1000);
      t = performance.now();
      for (const a of bundle.attestations) verifyEnvelope(a.envelope, [{ key }]);
      sigs.push((performance.now() - t) / 1000);
    }
    log(
      `  export ${median(exports).toFixed(3)} s, verify ${median(verifies).toFixed(3)} s, ${bundle.attestations.length} attestations, ${(bytes / 1024).toFixed(0)} KiB`,
    );
    results.push({
      name: 'export the evidence bundle of a version with 100 evaluations and 1,000 findings',
      value: median(exports) * 1000,
      unit: 'ms',
      baseline: median(lists) * 1000,
      ratio: median(exports) / median(lists),
      note: `${bundle.attestations.length} attestations, ${(bytes / 1024).toFixed(0)} KiB, each with an inclusion proof, checkpoint signed; baseline: GET the same attestations without proofs; SQLite, in process, median of 5`,
    });
    results.push({
      name: 'verify that bundle offline (every check)',
      value: median(verifies) * 1000,
      unit: 'ms',
      baseline: median(sigs) * 1000,
      ratio: median(verifies) / median(sigs),
      note: 'baseline: checking only the envelopes\u2019 Ed25519 signatures; median of 5',
    });
  } finally {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
