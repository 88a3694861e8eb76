import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { testApp } from '../../../test/helpers/app.js';
import { describeEachEngine } from '../../../test/helpers/engines.js';

const CORPUS = join(import.meta.dirname, '..', '..', '..', 'test', 'corpus');

describeEachEngine('evaluations API', (db) => {
  it('scans a pushed version automatically and shows its findings', async () => {
    const t = await testApp(db(), { worker: true });
    try {
      const upload = async (bytes: Buffer) =>
        (
          await t.call({
            method: 'POST',
            url: '/api/v1/blobs',
            headers: { 'content-type': 'application/octet-stream' },
            payload: bytes,
          })
        ).json();
      await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'scanned' } });
      const evil = readFileSync(join(CORPUS, 'malicious', 'torch-zip-hidden-member.pt'));
      const good = readFileSync(join(CORPUS, 'benign', 'torch-state-dict.pt'));
      const e = await upload(evil);
      const g = await upload(good);
      const v = await t.call({
        method: 'POST',
        url: '/api/v1/models/scanned/versions',
        payload: {
          files: [
            { path: 'model.pt', size: evil.length, digest: e.digest },
            { path: 'clean/model.pt', size: good.length, digest: g.digest },
          ],
        },
      });
      expect(v.statusCode).toBe(201);
      let evals: { status: string; id: string; metrics: Record<string, number> }[] = [];
      for (let i = 0; i < 200; i++) {
        evals = (
          await t.call({ method: 'GET', url: '/api/v1/models/scanned/versions/1/evaluations' })
        ).json().items;
        if (evals[0]?.status === 'succeeded' || evals[0]?.status === 'failed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(evals).toHaveLength(1);
      expect(evals[0]).toMatchObject({
        status: 'succeeded',
        evaluator: { id: 'artifact-scan' },
        requestedBy: 'modelgate',
      });
      expect(evals[0]?.metrics).toMatchObject({ files: 2, critical: 1 });
      const f = (
        await t.call({ method: 'GET', url: '/api/v1/models/scanned/versions/1/findings' })
      ).json();
      expect(f.summary).toMatchObject({ critical: 1 });
      expect(f.items[0]).toMatchObject({
        ruleId: 'pickle.unsafe-global/os.system',
        severity: 'critical',
        location: { file: 'model.pt', member: 'archive/extra/.cache' },
        status: 'open',
      });
      expect(
        f.items.some((x: { location: { file: string } }) => x.location.file === 'clean/model.pt'),
      ).toBe(false);
      const one = (
        await t.call({ method: 'GET', url: `/api/v1/evaluations/${evals[0]?.id}` })
      ).json();
      expect(one.findings).toHaveLength(f.items.length);

      // Started by hand: queued, then run by the worker.
      const started = await t.call({
        method: 'POST',
        url: '/api/v1/models/scanned/versions/1/evaluations',
        payload: { evaluator: 'artifact-scan' },
      });
      expect(started.statusCode).toBe(202);
      expect(started.json()).toMatchObject({ status: 'queued', requestedBy: 'admin' });
      const unknown = await t.call({
        method: 'POST',
        url: '/api/v1/models/scanned/versions/1/evaluations',
        payload: { evaluator: 'nope' },
      });
      expect(unknown.json().code).toBe('EVALUATOR_NOT_FOUND');
      const list = (await t.call({ method: 'GET', url: '/api/v1/evaluators' })).json();
      expect(list.items.map((x: { id: string }) => x.id)).toEqual(['artifact-scan', 'llm-redteam']);
    } finally {
      await t.composed.deps.runner.stop();
    }
  });
});
