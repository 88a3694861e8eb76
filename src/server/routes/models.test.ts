import { expect, it } from 'vitest';
import { testApp } from '../../../test/helpers/app.js';
import { describeEachEngine } from '../../../test/helpers/engines.js';

describeEachEngine('models API', (db) => {
  it('creates, shows, lists with filters and pages, edits', async () => {
    const t = await testApp(db());
    const r = await t.call({
      method: 'POST',
      url: '/api/v1/models',
      payload: {
        name: 'fraud-detector',
        riskTier: 'high',
        ownerTeam: 'risk',
        tags: ['fraud', 'tabular'],
      },
    });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({
      name: 'fraud-detector',
      riskTier: 'high',
      ownerTeam: 'risk',
      createdBy: 'admin',
    });
    for (const n of ['a-model', 'b-model', 'c-model']) {
      expect(
        (await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: n } })).statusCode,
      ).toBe(201);
    }
    const dup = await t.call({
      method: 'POST',
      url: '/api/v1/models',
      payload: { name: 'a-model' },
    });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().code).toBe('MODEL_EXISTS');

    const show = await t.call({ method: 'GET', url: '/api/v1/models/fraud-detector' });
    expect(show.json().tags).toEqual(['fraud', 'tabular']);

    const p1 = await t.call({ method: 'GET', url: '/api/v1/models?limit=2' });
    expect(p1.json().items.map((m: { name: string }) => m.name)).toEqual(['a-model', 'b-model']);
    const p2 = await t.call({
      method: 'GET',
      url: `/api/v1/models?limit=2&cursor=${p1.json().nextCursor}`,
    });
    expect(p2.json().items.map((m: { name: string }) => m.name)).toEqual([
      'c-model',
      'fraud-detector',
    ]);
    expect(p2.json().nextCursor).toBeNull();

    const byTag = await t.call({ method: 'GET', url: '/api/v1/models?tag=fraud' });
    expect(byTag.json().items.map((m: { name: string }) => m.name)).toEqual(['fraud-detector']);
    // Tag match is exact and case-sensitive on both engines.
    expect((await t.call({ method: 'GET', url: '/api/v1/models?tag=Fraud' })).json().items).toEqual(
      [],
    );
    expect((await t.call({ method: 'GET', url: '/api/v1/models?tag=frau' })).json().items).toEqual(
      [],
    );
    const byTier = await t.call({ method: 'GET', url: '/api/v1/models?riskTier=high' });
    expect(byTier.json().items).toHaveLength(1);
    const byPrefix = await t.call({ method: 'GET', url: '/api/v1/models?prefix=b-' });
    expect(byPrefix.json().items.map((m: { name: string }) => m.name)).toEqual(['b-model']);

    const patch = await t.call({
      method: 'PATCH',
      url: '/api/v1/models/a-model',
      payload: { riskTier: 'limited', description: 'x' },
    });
    expect(patch.statusCode).toBe(200);
    expect(patch.json()).toMatchObject({ riskTier: 'limited', description: 'x' });
  });

  it('refuses bad names and unknown models with stable codes', async () => {
    const t = await testApp(db());
    for (const name of ['Upper', '-lead', 'trail-', 'a..b', 'a/b', '', 'x'.repeat(64), 'sp ace']) {
      const r = await t.call({ method: 'POST', url: '/api/v1/models', payload: { name } });
      expect(r.statusCode, name).toBe(400);
      expect(r.json().code, name).toBe('INVALID_NAME');
    }
    const r = await t.call({ method: 'GET', url: '/api/v1/models/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json().code).toBe('MODEL_NOT_FOUND');
  });
});
