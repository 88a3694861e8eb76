import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { testApp } from '../../../test/helpers/app.js';
import { describeEachEngine } from '../../../test/helpers/engines.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describeEachEngine('versions, aliases and lineage API', (db) => {
  async function setup() {
    const t = await testApp(db());
    const upload = async (bytes: Buffer | string) => {
      const r = await t.call({
        method: 'POST',
        url: '/api/v1/blobs',
        headers: { 'content-type': 'application/octet-stream' },
        payload: Buffer.from(bytes),
      });
      expect(r.statusCode, r.body).toBeLessThan(300);
      return r.json() as { digest: string; size: number; created: boolean };
    };
    return { t, upload };
  }

  it('registers a folder version whose digest follows the model-signing rule', async () => {
    const { t, upload } = await setup();
    await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'digest-model' } });
    // Paths chosen so that PurePosixPath order (a/b before a-b) differs from string order.
    const contents: Record<string, string> = { 'a-b': 'one', 'a/b': 'two', 'a/c/d.bin': 'three' };
    const files = [];
    for (const [path, body] of Object.entries(contents)) {
      const b = await upload(body);
      expect(b.digest).toBe(`sha256:${sha(body)}`);
      files.push({ path, size: body.length, digest: b.digest });
    }
    const r = await t.call({
      method: 'POST',
      url: '/api/v1/models/digest-model/versions',
      payload: { files },
    });
    expect(r.statusCode, r.body).toBe(201);
    const expected = sha(
      Buffer.concat(
        ['a/b', 'a/c/d.bin', 'a-b'].map((p) => Buffer.from(sha(contents[p] ?? ''), 'hex')),
      ),
    );
    expect(r.json()).toMatchObject({
      model: 'digest-model',
      number: 1,
      digest: `sha256:${expected}`,
      fileCount: 3,
      size: 11,
    });

    const m = await t.call({
      method: 'GET',
      url: '/api/v1/models/digest-model/versions/1/manifest',
    });
    expect(m.json().subject.digest.sha256).toBe(expected);
    expect(m.json().predicate.resources.map((x: { name: string }) => x.name)).toEqual([
      'a/b',
      'a/c/d.bin',
      'a-b',
    ]);

    // Uploading the same bytes again does not write a second blob.
    expect((await upload('one')).created).toBe(false);
  });

  it('keeps versions immutable: API edits of files or digests get 409, the database refuses too', async () => {
    const { t, upload } = await setup();
    await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'immutable-model' } });
    const b = await upload('weights');
    const v = (
      await t.call({
        method: 'POST',
        url: '/api/v1/models/immutable-model/versions',
        payload: { files: [{ path: 'w.bin', size: 7, digest: b.digest }], tags: ['a'] },
      })
    ).json();
    const other = await upload('other weights');
    for (const payload of [
      { files: [{ path: 'w.bin', size: 13, digest: other.digest }] },
      { digest: other.digest },
      { size: 1 },
      { card: { markdown: 'changed' } },
      { tags: ['b'], files: [] },
    ]) {
      const r = await t.call({
        method: 'PATCH',
        url: '/api/v1/models/immutable-model/versions/1',
        payload,
      });
      expect(r.statusCode, JSON.stringify(payload)).toBe(409);
      expect(r.json().code).toBe('VERSION_IMMUTABLE');
    }
    const del = await t.call({
      method: 'DELETE',
      url: '/api/v1/models/immutable-model/versions/1',
    });
    expect(del.statusCode).toBe(409);
    expect(del.json().code).toBe('VERSION_IMMUTABLE');
    // Tags and description can change.
    const ok = await t.call({
      method: 'PATCH',
      url: '/api/v1/models/immutable-model/versions/1',
      payload: { tags: ['b'], description: 'retagged' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ tags: ['b'], description: 'retagged', digest: v.digest });
    // Below the API: the database triggers refuse a direct change.
    const kdb = db().database.db;
    await expect(
      sql`UPDATE versions SET digest = 'sha256:00' WHERE number = 1`.execute(kdb),
    ).rejects.toThrow(/VERSION_IMMUTABLE/);
    await expect(sql`UPDATE version_files SET size = 0`.execute(kdb)).rejects.toThrow(
      /VERSION_IMMUTABLE/,
    );
    await expect(sql`DELETE FROM version_files`.execute(kdb)).rejects.toThrow(/VERSION_IMMUTABLE/);
    const after = (
      await t.call({ method: 'GET', url: '/api/v1/models/immutable-model/versions/1' })
    ).json();
    expect(after.digest).toBe(v.digest);
    expect(after.files).toEqual([{ path: 'w.bin', size: 7, digest: b.digest }]);
  });

  it('refuses versions whose files are missing, mis-sized, duplicated or badly named', async () => {
    const { t, upload } = await setup();
    await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'refusals' } });
    const b = await upload('abc');
    const post = (files: unknown) =>
      t.call({ method: 'POST', url: '/api/v1/models/refusals/versions', payload: { files } });
    const cases: [unknown, string][] = [
      [[{ path: 'x', size: 3, digest: `sha256:${'0'.repeat(64)}` }], 'BLOB_NOT_FOUND'],
      [[{ path: 'x', size: 4, digest: b.digest }], 'BLOB_MISMATCH'],
      [
        [
          { path: 'x', size: 3, digest: b.digest },
          { path: 'x', size: 3, digest: b.digest },
        ],
        'DUPLICATE_PATH',
      ],
      [
        [
          { path: 'x', size: 3, digest: b.digest },
          { path: 'x/y', size: 3, digest: b.digest },
        ],
        'INVALID_PATH',
      ],
      [[{ path: '../etc/passwd', size: 3, digest: b.digest }], 'INVALID_PATH'],
      [[{ path: '/abs', size: 3, digest: b.digest }], 'INVALID_PATH'],
      [[{ path: 'a/./b', size: 3, digest: b.digest }], 'INVALID_PATH'],
      [[{ path: 'nul\u0000byte', size: 3, digest: b.digest }], 'VALIDATION_FAILED'],
      [[{ path: 'back\\slash', size: 3, digest: b.digest }], 'INVALID_PATH'],
      [[{ path: 'x', size: 3, digest: 'sha256:XYZ' }], 'VALIDATION_FAILED'],
    ];
    for (const [files, code] of cases) {
      const r = await post(files);
      expect(r.json().code, JSON.stringify(files)).toBe(code);
    }
    const list = await t.call({ method: 'GET', url: '/api/v1/models/refusals/versions' });
    expect(list.json().items).toEqual([]);
    const mismatch = await t.call({
      method: 'POST',
      url: `/api/v1/blobs?digest=sha256:${'1'.repeat(64)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from('something'),
    });
    expect(mismatch.statusCode).toBe(409);
    expect(mismatch.json().code).toBe('BLOB_MISMATCH');
  });

  it('moves aliases, keeps the history and answers what an alias pointed at, at a time', async () => {
    const { t, upload } = await setup();
    await t.call({ method: 'POST', url: '/api/v1/models', payload: { name: 'aliased' } });
    for (const body of ['v1', 'v2', 'v3']) {
      const b = await upload(body);
      await t.call({
        method: 'POST',
        url: '/api/v1/models/aliased/versions',
        payload: { files: [{ path: 'm', size: 2, digest: b.digest }] },
      });
    }
    const set = (alias: string, version: number) =>
      t.call({
        method: 'PUT',
        url: `/api/v1/models/aliased/aliases/${alias}`,
        payload: { version },
      });
    expect((await set('candidate', 1)).json()).toMatchObject({
      name: 'candidate',
      version: 1,
      updatedBy: 'admin',
    });
    await new Promise((r) => setTimeout(r, 15));
    const between1 = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 15));
    await set('candidate', 2);
    await new Promise((r) => setTimeout(r, 15));
    const between2 = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 15));
    await set('candidate', 3);
    await t.call({ method: 'DELETE', url: '/api/v1/models/aliased/aliases/candidate' });

    const at = async (time: string) =>
      (
        await t.call({
          method: 'GET',
          url: `/api/v1/models/aliased/aliases?at=${encodeURIComponent(time)}`,
        })
      ).json();
    expect((await at(between1)).items).toMatchObject([{ name: 'candidate', version: 1 }]);
    expect((await at(between2)).items).toMatchObject([{ name: 'candidate', version: 2 }]);
    expect((await at(new Date().toISOString())).items).toMatchObject([
      { name: 'candidate', version: null },
    ]);
    expect((await at('2000-01-01T00:00:00Z')).items).toEqual([]);

    const h = (
      await t.call({ method: 'GET', url: '/api/v1/models/aliased/alias-history?limit=3' })
    ).json();
    expect(h.items.map((e: { toVersion: number | null }) => e.toVersion)).toEqual([null, 3, 2]);
    expect(h.items[1]).toMatchObject({ fromVersion: 2, toVersion: 3, actor: 'admin' });
    const h2 = (
      await t.call({
        method: 'GET',
        url: `/api/v1/models/aliased/alias-history?limit=3&cursor=${h.nextCursor}`,
      })
    ).json();
    expect(h2.items.map((e: { toVersion: number }) => e.toVersion)).toEqual([1]);

    expect((await set('canary', 9)).json().code).toBe('VERSION_NOT_FOUND');
    // Protected aliases move only through promotions, whatever the caller's roles.
    for (const alias of ['production', 'staging']) {
      const refused = await set(alias, 1);
      expect(refused.statusCode).toBe(409);
      expect(refused.json().code).toBe('ALIAS_PROTECTED');
      const del = await t.call({
        method: 'DELETE',
        url: `/api/v1/models/aliased/aliases/${alias}`,
      });
      expect(del.json().code).toBe('ALIAS_PROTECTED');
    }
    expect((await set('Bad_Alias', 1)).json().code).toBe('INVALID_NAME');
    const viaAlias = await set('champion', 2);
    expect(viaAlias.statusCode).toBe(200);
    const v = await t.call({ method: 'GET', url: '/api/v1/models/aliased/versions/champion' });
    expect(v.json().number).toBe(2);
    const missing = await t.call({
      method: 'DELETE',
      url: '/api/v1/models/aliased/aliases/candidate',
    });
    expect(missing.json().code).toBe('ALIAS_NOT_FOUND');
  });

  it('walks lineage upstream and downstream, depth-limited', async () => {
    const { t, upload } = await setup();
    const ds = await t.call({
      method: 'POST',
      url: '/api/v1/datasets',
      payload: { name: 'corpus', uri: 's3://b/corpus', licence: 'CC-BY-4.0' },
    });
    expect(ds.statusCode).toBe(201);
    for (const name of ['base-lm', 'chat-lm', 'chat-lm-small']) {
      await t.call({ method: 'POST', url: '/api/v1/models', payload: { name } });
    }
    const b = await upload('w');
    const file = [{ path: 'w', size: 1, digest: b.digest }];
    const reg = (model: string, lineage: unknown[]) =>
      t.call({
        method: 'POST',
        url: `/api/v1/models/${model}/versions`,
        payload: { files: file, lineage },
      });
    expect(
      (
        await reg('base-lm', [
          { target: { kind: 'dataset', dataset: 'corpus' } },
          { target: { kind: 'code', uri: 'git+https://example.com/r@abc' } },
        ])
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await reg('chat-lm', [
          { target: { kind: 'version', model: 'base-lm', version: 1 } },
          { relation: 'evaluatedOn', target: { kind: 'dataset', dataset: 'corpus' } },
        ])
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await reg('chat-lm-small', [
          { relation: 'distilledFrom', target: { kind: 'version', model: 'chat-lm', version: 1 } },
        ])
      ).statusCode,
    ).toBe(201);

    const up = (
      await t.call({
        method: 'GET',
        url: '/api/v1/models/chat-lm-small/versions/1/lineage?direction=upstream&depth=3',
      })
    ).json();
    const show = (e: {
      depth: number;
      from: { model: string };
      relation: string;
      target: Record<string, unknown>;
    }) =>
      `${e.depth} ${e.from.model} ${e.relation} ${e.target.kind}:${e.target.dataset ?? e.target.model ?? e.target.uri}`;
    expect(up.edges.map(show)).toEqual([
      '1 chat-lm-small distilledFrom version:chat-lm',
      '2 chat-lm fineTunedFrom version:base-lm',
      '2 chat-lm evaluatedOn dataset:corpus',
      '3 base-lm trainedOn dataset:corpus',
      '3 base-lm builtFrom code:git+https://example.com/r@abc',
    ]);
    const up1 = (
      await t.call({
        method: 'GET',
        url: '/api/v1/models/chat-lm-small/versions/1/lineage?depth=1',
      })
    ).json();
    expect(up1.edges).toHaveLength(1);

    const down = (
      await t.call({ method: 'GET', url: '/api/v1/datasets/corpus/lineage?depth=5' })
    ).json();
    expect(down.edges.map(show)).toEqual([
      '1 base-lm trainedOn dataset:corpus',
      '1 chat-lm evaluatedOn dataset:corpus',
      '2 chat-lm fineTunedFrom version:base-lm',
      '2 chat-lm-small distilledFrom version:chat-lm',
    ]);
    const downBase = (
      await t.call({
        method: 'GET',
        url: '/api/v1/models/base-lm/versions/1/lineage?direction=downstream&depth=1',
      })
    ).json();
    expect(downBase.edges.map(show)).toEqual(['1 chat-lm fineTunedFrom version:base-lm']);

    const bad = await reg('chat-lm', [{ target: { kind: 'dataset', dataset: 'no-such-data' } }]);
    expect(bad.json().code).toBe('DATASET_NOT_FOUND');
    expect(
      (await t.call({ method: 'GET', url: '/api/v1/models/chat-lm/versions' })).json().items,
    ).toHaveLength(1);
    expect(
      (await t.call({ method: 'GET', url: '/api/v1/models/chat-lm/versions/1/lineage?depth=11' }))
        .statusCode,
    ).toBe(400);
  });
});
