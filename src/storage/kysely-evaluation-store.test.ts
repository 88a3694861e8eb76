import { expect, it } from 'vitest';
import { describeEachEngine } from '../../test/helpers/engines.js';
import type { Actor } from '../core/types.js';
import { KyselyEvaluationStore } from './kysely-evaluation-store.js';
import { KyselyRegistryStore } from './kysely-registry-store.js';

const actor: Actor = { identity: 'tester', credentialId: 'tok_test' };
const scanner = { id: 'artifact-scan', version: '0.1.0' };
const digest = `sha256:${'a'.repeat(64)}`;

describeEachEngine('evaluation store and job queue', (db) => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => new Date(clock);

  async function setup(model: string) {
    const registry = new KyselyRegistryStore(db().database);
    const store = new KyselyEvaluationStore(db().database, { now });
    await registry.createModel(
      {
        name: model,
        ownerTeam: 't',
        riskTier: 'minimal',
        description: '',
        intendedUse: '',
        tags: [],
      },
      actor,
    );
    await registry.createVersion(
      model,
      {
        files: [{ path: 'm.bin', size: 1, digest }],
        digest,
        sourceUri: null,
        author: 'tester',
        card: { markdown: '', fields: {} },
        tags: [],
        description: '',
        lineage: [],
      },
      actor,
    );
    return store;
  }

  it('hands a queued evaluation to exactly one of several concurrent claimants', async () => {
    const store = await setup('claims');
    const e = await store.enqueue({ model: 'claims', version: 1 }, scanner, {}, actor);
    expect(e).toMatchObject({
      status: 'queued',
      model: 'claims',
      version: 1,
      requestedBy: 'tester',
      attempts: 0,
    });
    const claims = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.claim(`w${i}`, 10_000, 3)),
    );
    const winners = claims.filter((c) => c?.id === e.id);
    expect(winners).toHaveLength(1);
    expect(winners[0]).toMatchObject({ status: 'running', attempts: 1 });
    expect(await store.claim('late', 10_000, 3)).toBeUndefined();
  });

  it('gives a job back after its lease expires, and fails it after the last attempt', async () => {
    const store = await setup('leases');
    const e = await store.enqueue({ model: 'leases', version: 1 }, scanner, {}, actor);
    expect((await store.claim('a', 1000, 2))?.id).toBe(e.id);
    expect(await store.heartbeat(e.id, 'a', 1000, 0.5)).toBe(true);
    clock += 500;
    expect(await store.claim('b', 1000, 2)).toBeUndefined(); // still leased
    clock += 2000;
    const again = await store.claim('b', 1000, 2);
    expect(again).toMatchObject({ id: e.id, attempts: 2 });
    // The first worker has lost it: its heartbeat and its result are refused.
    expect(await store.heartbeat(e.id, 'a', 1000, 0.9)).toBe(false);
    expect(await store.complete(e.id, 'a', [], {})).toBe(false);
    clock += 2000;
    expect(await store.claim('c', 1000, 2)).toBeUndefined();
    expect(await store.get(e.id)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/gave up after 2 attempts/),
    });
  });

  it('takes a released evaluation back into the queue', async () => {
    const store = await setup('release');
    const e = await store.enqueue({ model: 'release', version: 1 }, scanner, {}, actor);
    await store.claim('a', 10_000, 3);
    expect(await store.release(e.id, 'someone-else')).toBe(false);
    expect(await store.release(e.id, 'a')).toBe(true);
    expect(await store.get(e.id)).toMatchObject({ status: 'queued', attempts: 1 });
    expect((await store.claim('b', 10_000, 3))?.id).toBe(e.id);
  });

  it('stores findings with the result in one step and lists them per version', async () => {
    const store = await setup('results');
    const e = await store.enqueue(
      { model: 'results', version: 1 },
      scanner,
      { strict: true },
      actor,
    );
    await store.claim('w', 10_000, 3);
    const ok = await store.complete(
      e.id,
      'w',
      [
        {
          ruleId: 'pickle.unsafe-global/os.system',
          severity: 'critical',
          title: 'x',
          location: { file: 'm.bin', member: 'a/data.pkl', offset: 12 },
          evidence: { global: 'os.system' },
          references: ['CWE-502'],
        },
        {
          ruleId: 'pickle.parse-error',
          severity: 'medium',
          title: 'y',
          location: { file: 'm.bin' },
          evidence: {},
          references: [],
        },
      ],
      { files: 1 },
    );
    expect(ok).toBe(true);
    expect(await store.get(e.id)).toMatchObject({
      status: 'succeeded',
      progress: 1,
      metrics: { files: 1 },
      config: { strict: true },
    });
    const f = await store.findings({ model: 'results', version: 1 });
    expect(f.map((x) => [x.severity, x.location])).toEqual([
      ['critical', { file: 'm.bin', member: 'a/data.pkl', offset: 12 }],
      ['medium', { file: 'm.bin' }],
    ]);
    expect(f[0]).toMatchObject({
      status: 'open',
      evaluationId: e.id,
      references: ['CWE-502'],
      evidence: { global: 'os.system' },
    });
    expect(await store.enqueueMissing(scanner, actor, 10)).toBe(0);
  });

  it('queues the scanner for versions that have never been scanned', async () => {
    const store = await setup('sweep');
    const before = await store.listForVersion('sweep', 1);
    expect(before).toEqual([]);
    expect(await store.enqueueMissing(scanner, actor, 100)).toBeGreaterThanOrEqual(1);
    expect(await store.listForVersion('sweep', 1)).toMatchObject([
      { status: 'queued', evaluator: scanner },
    ]);
    expect(await store.enqueueMissing(scanner, actor, 100)).toBe(0);
  });
});
