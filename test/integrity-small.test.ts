import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../src/core/json-depth.js';
import { verifyBundle } from '../src/evidence/bundle.js';
import { apiOf, type TestApp, testApp, uploadBlob } from './helpers/app.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI, startServer } from './helpers/server-process.js';

const sha256hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A pickle importing `os<NUL>evil.system` and calling it: the scanner's finding quotes the NUL. */
const NUL_PICKLE = Buffer.concat([
  Buffer.from([0x80, 0x02]),
  Buffer.from('cos\u0000evil\nsystem\n)R.', 'latin1'),
]);

/** Pushes files (path -> bytes) as a new version of `model`. */
async function push(t: TestApp, model: string, files: Record<string, Buffer>) {
  const list = [];
  for (const [path, bytes] of Object.entries(files))
    list.push({ path, size: bytes.length, digest: await uploadBlob(t, bytes) });
  return apiOf(t)('POST', `/models/${model}/versions`, { files: list });
}

async function scansDone(t: TestApp, model: string, n: number) {
  for (let i = 0; i < 600; i++) {
    const r = await apiOf(t)('GET', `/models/${model}/versions/${n}/evaluations`);
    const items = r.json().items as { status: string }[];
    if (items.length > 0 && items.every((e) => e.status === 'succeeded' || e.status === 'failed'))
      return items;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the scan of ${model}@${n} did not finish`);
}

describeEachEngine(
  'scans never fail on their findings, and a failed one never reads clean',
  (db) => {
    let t: TestApp;
    beforeAll(async () => {
      t = await testApp(db(), { worker: true });
      await apiOf(t)('POST', '/models', { name: 'nul' });
      await apiOf(t)('POST', '/models', { name: 'broken' });
    });
    afterAll(async () => {
      await t.composed.close();
    });

    it('stores a finding whose text holds a NUL (escaped) and the scan succeeds', async () => {
      expect((await push(t, 'nul', { 'model.pkl': NUL_PICKLE })).statusCode).toBe(201);
      const [ev] = await scansDone(t, 'nul', 1);
      expect(ev).toMatchObject({ status: 'succeeded' });
      const f = (await apiOf(t)('GET', '/models/nul/versions/1/findings')).json();
      expect(f.evaluations).toEqual({ total: 1, succeeded: 1, failed: 0, pending: 0 });
      const hit = f.items.find((x: { ruleId: string }) => x.ruleId.includes('evil'));
      expect(hit.ruleId).toBe('pickle.unknown-global-called/os\\u0000evil.system');
      expect(hit.title).toContain('os\\u0000evil.system');
      expect(hit.evidence.global).toBe('os\\u0000evil.system');
    });

    it('shows a failed evaluation as failed in the findings summary and the CLI', async () => {
      // The blob vanishes before the scan runs: the scan fails (not for what it found). A
      // second app without a worker registers it; its worker starts once the blob is gone.
      await t.composed.deps.runner.stop();
      const idle = await testApp(db());
      const bytes = Buffer.from('not a model at all');
      expect((await push(idle, 'broken', { 'weights.bin': bytes })).statusCode).toBe(201);
      rmSync(await idle.composed.deps.blobs.localPath(`sha256:${sha256hex(bytes)}`));
      idle.composed.deps.runner.start();
      const [ev] = await scansDone(idle, 'broken', 1);
      await idle.composed.deps.runner.stop(); // (closing it would close the shared database)
      expect(ev).toMatchObject({ status: 'failed' });
      const f = (await apiOf(t)('GET', '/models/broken/versions/1/findings')).json();
      expect(f.evaluations, JSON.stringify(f)).toEqual({
        total: 1,
        succeeded: 0,
        failed: 1,
        pending: 0,
      });

      const s = await startServer({ dataDir: db().dataDir, databaseUrl: db().url, token: t.token });
      try {
        const cli = cliOf(s.url, t.token);
        const shown = await cli('version', 'show', 'broken@1');
        expect(shown.code).toBe(0);
        expect(shown.out).toMatch(/findings:\s+unknown: 1 evaluation\(s\) FAILED, none succeeded/);
        expect(shown.out).not.toMatch(/0 critical/);
        const json = JSON.parse((await cli('--json', 'version', 'show', 'broken@1')).out);
        expect(json.evaluations).toMatchObject({ failed: 1, succeeded: 0 });
        const list = await cli('eval', 'list', 'broken@1');
        expect(list.out).toMatch(/failed\s+- \(failed\)/);
        // The layout digest is on every version the CLI shows.
        const nul = await cli('version', 'show', 'broken@1');
        expect(nul.out).toMatch(/layout:\s+sha256:[0-9a-f]{64}/);
      } finally {
        await s.stop();
      }
    });
  },
);

describeEachEngine('a digest names the layout; paths have one spelling', (db) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp(db());
    await apiOf(t)('POST', '/models', { name: 'layout' });
  });
  afterAll(async () => {
    await t.composed.close();
  });

  it('gives the same bytes under other names another layout digest, accepted by /verify', async () => {
    const a = Buffer.from('weights A');
    const b = Buffer.from('weights B');
    const v1 = (await push(t, 'layout', { 'a.bin': a, 'b.bin': b })).json();
    // The same bytes under other names: the OpenSSF digest cannot tell them apart.
    const v3 = (await push(t, 'layout', { 'x.bin': a, 'y.bin': b })).json();
    expect(v3.digest).toBe(v1.digest);
    expect(v3.layoutDigest).not.toBe(v1.layoutDigest);
    // What `sha256sum a.bin b.bin | sha256sum` prints.
    const manifest = `${sha256hex(a)}  a.bin\n${sha256hex(b)}  b.bin\n`;
    expect(v1.layoutDigest).toBe(`sha256:${sha256hex(manifest)}`);
    const shown = (await apiOf(t)('GET', '/models/layout/versions/1')).json();
    expect(shown.layoutDigest).toBe(v1.layoutDigest);

    expect(
      (await apiOf(t)('PUT', '/models/layout/aliases/champion', { version: 2 })).statusCode,
    ).toBe(200);
    const verify = async (digest: string) =>
      (
        await apiOf(t)(
          'GET',
          `/verify?model=layout&alias=champion&digest=${encodeURIComponent(digest)}`,
        )
      ).json();
    const byLayout = await verify(v3.layoutDigest);
    expect(byLayout).toMatchObject({ version: 2, layoutDigest: v3.layoutDigest });
    // Recognised as the holder (refused only because champion is not a protected alias).
    expect(byLayout.reason).toMatch(/not a protected alias/);
    // v1's layout digest names other paths: not the holder, although its bytes are.
    expect((await verify(v1.layoutDigest)).reason).toMatch(/is version 2 .*, not sha256:/);
  });

  it('signs the layout digest into the evidence bundle, and its verifier checks the paths', async () => {
    const r = await apiOf(t)('POST', '/models/layout/versions/2/evidence-bundles');
    expect(r.statusCode, r.body).toBe(200);
    const bundle = r.json();
    const v3 = (await apiOf(t)('GET', '/models/layout/versions/2')).json();
    expect(bundle.version.layoutDigest).toBe(v3.layoutDigest);
    const trust = { logKey: bundle.keys.log };
    expect(verifyBundle(bundle, trust).ok).toBe(true);
    const renamed = structuredClone(bundle);
    renamed.version.files[0].path = 'renamed.bin';
    const report = verifyBundle(renamed, trust);
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.name === 'version manifest')?.detail).toMatch(/layout/);
    // The provenance statement records it; its subject stays the OpenSSF digest.
    const items = (await apiOf(t)('GET', '/models/layout/versions/2/attestations')).json()
      .items as { kind: string; envelope: { payload: string } }[];
    const prov = items.find((i) => i.kind === 'provenance');
    const statement = JSON.parse(Buffer.from(prov?.envelope.payload ?? '', 'base64').toString());
    expect(statement.predicate.buildDefinition.externalParameters.layoutDigest).toBe(
      v3.layoutDigest,
    );
    expect(statement.subject[0].digest.sha256).toBe(v3.digest.slice(7));
  });

  it('refuses paths not in NFC, with bidi controls, or differing only in case', async () => {
    const bytes = Buffer.from('x');
    const nfd = await push(t, 'layout', { 'cafe\u0301.bin': bytes });
    expect(nfd.statusCode).toBe(400);
    expect(nfd.json()).toMatchObject({ code: 'INVALID_PATH' });
    expect(nfd.json().message).toContain('cafe\u0301.bin');
    expect(nfd.json().message).toMatch(/NFC/);
    // Both spellings of café in one version: refused, the decomposed one named.
    const twins = await push(t, 'layout', { 'caf\u00e9': bytes, 'cafe\u0301': bytes });
    expect(twins.statusCode).toBe(400);
    expect(twins.json().message).toContain('cafe\u0301');
    for (const c of ['\u202e', '\u2066', '\u200f', '\u061c']) {
      const bidi = await push(t, 'layout', { [`evil${c}gpj.exe`]: bytes });
      expect(bidi.statusCode).toBe(400);
      expect(bidi.json()).toMatchObject({ code: 'INVALID_PATH' });
      expect(bidi.json().message).toMatch(/bidirectional/);
    }
    const cased = await push(t, 'layout', { 'Model.bin': bytes, 'model.bin': bytes });
    expect(cased.statusCode).toBe(409);
    expect(cased.json()).toMatchObject({ code: 'DUPLICATE_PATH' });
    expect(cased.json().message).toContain('Model.bin');
  });
});

describeEachEngine('small ones: JSON depth, private data folder, signed cursors', (db) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp(db());
  });
  afterAll(async () => {
    await t.composed.close();
  });

  it('answers a 5,000-deep JSON body with 400 naming the limit', async () => {
    await apiOf(t)('POST', '/models', { name: 'deep' });
    const digest = await uploadBlob(t, Buffer.from('w'));
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const body = `{"files":[{"path":"w","size":1,"digest":"${digest}"}],"card":{"markdown":"","fields":{"x":${deep}}}}`;
    const r = await t.call({
      method: 'POST',
      url: '/api/v1/models/deep/versions',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(r.json().message).toContain(String(MAX_JSON_DEPTH));
    // At the limit it is fine.
    const ok = `${'['.repeat(MAX_JSON_DEPTH - 4)}${']'.repeat(MAX_JSON_DEPTH - 4)}`;
    const r2 = await t.call({
      method: 'POST',
      url: '/api/v1/models/deep/versions',
      headers: { 'content-type': 'application/json' },
      payload: body.replace(deep, ok),
    });
    expect(r2.statusCode, r2.body).toBe(201);
  });

  it('refuses forged and changed list cursors', async () => {
    for (const name of ['cur-a', 'cur-b', 'cur-c'])
      await apiOf(t)('POST', '/models', { name, ownerTeam: 'default' });
    const p1 = (await apiOf(t)('GET', '/models?limit=1')).json();
    expect(p1.nextCursor).toEqual(expect.any(String));
    const p2 = await apiOf(t)('GET', `/models?limit=1&cursor=${p1.nextCursor}`);
    expect(p2.statusCode).toBe(200);
    // A cursor written by hand, as the unsigned ones could be.
    const forged = Buffer.from(JSON.stringify({ l: 'models', k: 'cur-b' })).toString('base64url');
    const bad = await apiOf(t)('GET', `/models?limit=1&cursor=${forged}`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'INVALID_CURSOR' });
    expect(bad.json().message).toMatch(/not signed by this registry/);
    // The signature of one position on another.
    const [, mac] = String(p1.nextCursor).split('.');
    const moved = await apiOf(t)('GET', `/models?limit=1&cursor=${forged}.${mac}`);
    expect(moved.statusCode).toBe(400);
    expect(moved.json()).toMatchObject({ code: 'INVALID_CURSOR' });
  });

  it('keeps the data folder 0700 and the database 0600, tightening looser ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-modes-'));
    const dataDir = join(dir, 'data');
    const s = await startServer({ dataDir, databaseUrl: db().url, token: t.token });
    await s.stop();
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    if (db().engine === 'sqlite') {
      expect(statSync(join(dataDir, 'modelgate.db')).mode & 0o777).toBe(0o600);
      chmodSync(join(dataDir, 'modelgate.db'), 0o644);
    }
    chmodSync(dataDir, 0o755);
    const again = await startServer({ dataDir, databaseUrl: db().url, token: t.token });
    await again.stop();
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    if (db().engine === 'sqlite') {
      for (const f of ['modelgate.db', 'modelgate.db-wal', 'modelgate.db-shm']) {
        const st = statSync(join(dataDir, f), { throwIfNoEntry: false });
        if (st) expect(st.mode & 0o777, f).toBe(0o600);
      }
    }
    expect(again.output()).toMatch(/tightened the permissions of the data folder/);
    rmSync(dir, { recursive: true, force: true });
  });
});

it('stops quietly when the reader of its output goes away (modelgate --help | head)', async () => {
  const run = () =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'identity', '--help'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // The reader is gone before the first byte: every write gets EPIPE.
      p.stdout.destroy();
      let stderr = '';
      p.stderr.on('data', (d) => {
        stderr += d;
      });
      p.on('close', (code) => resolve({ code, stderr }));
    });
  for (let i = 0; i < 3; i++) {
    const r = await run();
    expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
    expect(r.code).toBe(0);
  }
});

it('refuses a deeply nested card file in the CLI before sending it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-card-'));
  mkdirSync(join(dir, 'm'));
  writeFileSync(join(dir, 'm', 'w.bin'), 'w');
  writeFileSync(join(dir, 'card.json'), `{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  const out = await cliOf('http://127.0.0.1:9', 'mgt_x')(
    'push',
    join(dir, 'm'),
    '--model',
    'x',
    '--card',
    join(dir, 'card.json'),
  );
  expect(out.code).toBe(2);
  expect(out.out).toMatch(new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`));
  rmSync(dir, { recursive: true, force: true });
});
