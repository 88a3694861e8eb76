import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { expect, it } from 'vitest';
import { apiOf, testApp, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI } from './helpers/server-process.js';
import { CORPUS, waitForScans } from './helpers/versions.js';

// The CycloneDX 1.6 JSON schema as the CycloneDX library ships it, with the two schemas it
// references registered under the names its $refs resolve to.
function cyclonedx16() {
  const dir = join(
    dirname(createRequire(import.meta.url).resolve('@cyclonedx/cyclonedx-library/package.json')),
    'res',
    'schema',
  );
  const read = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const ajv = new Ajv.default({ strict: false, allErrors: true });
  addFormats.default(ajv);
  for (const f of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    const { $id: _id, ...schema } = read(f);
    ajv.addSchema(schema, `http://cyclonedx.org/schema/${f}`);
  }
  return ajv.compile(read('bom-1.6.SNAPSHOT.schema.json'));
}

describeEachEngine('ML-BOM', (db) => {
  it('describes a version as a CycloneDX 1.6 machine-learning-model that validates', async () => {
    const t = await testApp(db(), { worker: true });
    const api = apiOf(t);
    await api('POST', '/models', { name: 'bom-base', intendedUse: 'fraud scoring' });
    await api('POST', '/models', { name: 'bommed', riskTier: 'high', ownerTeam: 'fraud' });
    await api('POST', '/datasets', {
      name: 'tx-2025',
      uri: 's3://data/tx-2025',
      licence: 'CC-BY-4.0',
      description: 'card transactions, 2025',
    });
    const file = join(
      CORPUS,
      'benign',
      readdirSync(join(CORPUS, 'benign')).find((f) => f.endsWith('.pkl')) ?? '',
    );
    const bytes = readFileSync(file);
    const digest = await uploadBlob(t, bytes);
    const files = [{ path: 'model.pkl', size: bytes.length, digest }];
    expect((await api('POST', '/models/bom-base/versions', { files })).statusCode).toBe(201);
    const r = await api('POST', '/models/bommed/versions', {
      files,
      card: {
        markdown: '',
        fields: { intendedUse: 'scoring card payments', limitations: 'EU cards only' },
      },
      description: 'retrained on 2025 data',
      lineage: [
        { target: { kind: 'dataset', dataset: 'tx-2025' } },
        { target: { kind: 'version', model: 'bom-base', version: 1 } },
        { target: { kind: 'code', uri: 'https://git.example.com/fraud@4f2a' } },
      ],
    });
    expect(r.statusCode, r.body).toBe(201);
    const v = r.json() as { number: number; digest: string };
    await waitForScans(t, 'bommed', v.number);

    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'mg-bom-'));
    const out = join(dir, 'bom.json');
    const res = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile(
        process.execPath,
        [CLI, 'evidence', 'bom', `bommed@${v.number}`, '-o', out],
        {
          env: {
            ...process.env,
            MODELGATE_SERVER: url,
            MODELGATE_TOKEN: t.token,
            MODELGATE_CONFIG: join(dir, 'none.json'),
          },
        },
        (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            text: stdout + stderr,
          }),
      ),
    );
    expect(res.code, res.text).toBe(0);
    const bom = JSON.parse(readFileSync(out, 'utf8'));

    const validate = cyclonedx16();
    expect(validate(bom), JSON.stringify(validate.errors, null, 2)).toBe(true);
    // The validator does refuse: an unknown component type is not CycloneDX.
    expect(validate({ ...bom, components: [{ type: 'model', name: 'x' }] })).toBe(false);

    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1 });
    const model = bom.metadata.component;
    expect(model).toMatchObject({
      type: 'machine-learning-model',
      name: 'bommed',
      version: '1',
      description: 'retrained on 2025 data',
      hashes: [{ alg: 'SHA-256', content: v.digest.slice(7) }],
      externalReferences: [{ type: 'vcs', url: 'https://git.example.com/fraud@4f2a' }],
    });
    expect(model.properties).toContainEqual({ name: 'modelgate:riskTier', value: 'high' });
    expect(model.components).toEqual([
      expect.objectContaining({
        type: 'file',
        name: 'model.pkl',
        hashes: [{ alg: 'SHA-256', content: digest.slice(7) }],
      }),
    ]);
    expect(model.modelCard.modelParameters.datasets).toEqual([{ ref: 'dataset:tx-2025' }]);
    expect(model.modelCard.considerations).toEqual({
      useCases: ['scoring card payments'],
      technicalLimitations: ['EU cards only'],
    });
    const metrics = model.modelCard.quantitativeAnalysis.performanceMetrics as {
      type: string;
      value: string;
    }[];
    expect(metrics).toContainEqual(
      expect.objectContaining({ type: 'artifact-scan/findings', value: '0' }),
    );
    expect(bom.components).toEqual([
      expect.objectContaining({
        type: 'data',
        'bom-ref': 'dataset:tx-2025',
        licenses: [{ license: { name: 'CC-BY-4.0' } }],
        externalReferences: [{ type: 'distribution', url: 's3://data/tx-2025' }],
      }),
      expect.objectContaining({ type: 'machine-learning-model', name: 'bom-base', version: '1' }),
    ]);
    expect(bom.dependencies).toEqual([
      { ref: 'model:bommed@1', dependsOn: ['dataset:tx-2025', 'model:bom-base@1'] },
    ]);
    // The same lineage, signed at registration as SLSA provenance.
    const [prov] = (await api('GET', `/models/bommed/versions/${v.number}/attestations`)).json()
      .items as { kind: string; envelope: { payload: string } }[];
    expect(prov?.kind).toBe('provenance');
    const base = (await api('GET', '/models/bom-base/versions/1')).json() as { digest: string };
    expect(
      JSON.parse(Buffer.from(prov!.envelope.payload, 'base64').toString()).predicate.buildDefinition
        .resolvedDependencies,
    ).toEqual([
      { name: 'dataset:tx-2025', uri: 's3://data/tx-2025', annotations: { relation: 'trainedOn' } },
      {
        name: 'model:bom-base@1',
        digest: { sha256: base.digest.slice(7) },
        annotations: { relation: 'fineTunedFrom' },
      },
      { uri: 'https://git.example.com/fraud@4f2a', annotations: { relation: expect.any(String) } },
    ]);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
