// Evidence benchmarks, run by `npm run bench` (MODELGATE_BENCH_ONLY=evidence): export and
// offline verification of the bundle of a version with 100 evaluations and 1,000 findings, each
// against a baseline in the same process (reading the same attestations without proofs; checking
// only their signatures).
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finding } from '../src/core/findings.js';
import { type EvidenceBundle, verifyBundle } from '../src/evidence/bundle.js';
import { verifyEnvelope } from '../src/evidence/dsse.js';
import { issueToken } from '../src/identity/tokens.js';
import { compose } from '../src/server/composition.js';
import { loadConfig } from '../src/server/config.js';
import type { AuditResult as Result } from './audit.js';

const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export async function benchEvidence(results: Result[]): Promise<void> {
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
