import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { formatCheckpoint, parseCheckpoint } from '../src/audit/checkpoint.js';
import { noteSigner, parseNote, signNote, verifierKeyOf } from '../src/audit/signed-note.js';
import { issueToken } from '../src/identity/tokens.js';
import { apiOf, type TestApp, testApp, uploadBlob } from './helpers/app.js';
import { describeEachEngine, type TestDb } from './helpers/engines.js';
import { CLI, startServer } from './helpers/server-process.js';

function cli(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout + stderr }),
    ),
  );
}

/** `modelgate audit verify` on this engine's database, offline. */
function verify(db: TestDb, vkey: string, dataDir = db.dataDir) {
  return cli([
    'audit',
    'verify',
    '--data-dir',
    dataDir,
    ...(db.url ? ['--database-url', db.url] : []),
    '--log-key',
    vkey,
  ]);
}

/** Whoever owns the database can switch the append-only triggers off: the log must still tell. */
async function becomeDatabaseOwner(t: TestApp, engine: string): Promise<void> {
  const db = t.composed.database.db;
  for (const table of ['audit_events', 'audit_nodes', 'audit_checkpoints', 'audit_cosignatures']) {
    if (engine === 'sqlite') {
      await sql.raw(`DROP TRIGGER IF EXISTS ${table}_append_only`).execute(db);
      await sql.raw(`DROP TRIGGER IF EXISTS ${table}_no_delete`).execute(db);
    } else {
      await sql.raw(`ALTER TABLE ${table} DISABLE TRIGGER USER`).execute(db);
    }
  }
}

describeEachEngine('audit verify', (db) => {
  it('detects every kind of tampering, naming the event or checkpoint', async () => {
    // Checkpoints only when the test asks: on a loaded machine a batch can outlast the
    // periodic interval, and a fourth checkpoint would change what is counted below.
    const t = await testApp(db(), { checkpointIntervalMs: 3_600_000 });
    const api = apiOf(t);
    const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();
    const digest = await uploadBlob(t, Buffer.from('weights'));
    // Three batches, each closed by a checkpoint.
    for (const batch of [0, 1, 2]) {
      for (let i = 0; i < 4; i++) {
        const name = `m${batch}-${i}`;
        await api('POST', '/models', { name });
        await api('POST', `/models/${name}/versions`, { files: [{ path: 'w', size: 7, digest }] });
      }
      await api('PUT', `/models/m${batch}-0/aliases/candidate`, { version: 1 });
      await api('GET', '/audit/checkpoint');
    }
    const clean = await verify(db(), vkey);
    expect(clean.code, clean.out).toBe(0);
    expect(clean.out).toMatch(/ok: \d+ events and 3 checkpoints verified/);
    expect(clean.out).toMatch(
      /ok +state +\d+ rows in \d+ governed tables match their last logged state/,
    );

    await becomeDatabaseOwner(t, db().engine);
    const k = t.composed.database.db;
    const rows = (await k.selectFrom('audit_events').selectAll().orderBy('seq').execute()).map(
      (r) => ({ ...r, seq: Number(r.seq) }),
    );
    const size = rows.length;
    const cps = (
      await sql<{
        size: number;
        note: string;
      }>`SELECT size, note FROM audit_checkpoints ORDER BY size`.execute(k)
    ).rows.map((r) => ({ ...r, size: Number(r.size) }));
    const [first, , latest] = cps;
    if (!first || !latest) throw new Error('checkpoints missing');
    const target = rows[7];
    if (!target) throw new Error('event missing');
    const setLeaf = (seq: number, leaf: string) =>
      sql`UPDATE audit_events SET leaf = ${leaf} WHERE seq = ${seq}`.execute(k);
    const expectCaught = async (pattern: RegExp) => {
      const r = await verify(db(), vkey);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(pattern);
      return r.out;
    };
    const expectClean = async () => expect((await verify(db(), vkey)).code).toBe(0);

    // One byte of a stored event.
    await setLeaf(7, target.leaf.replace('"seq":7', '"seq":8'));
    await expectCaught(/event 7\b/);
    await setLeaf(
      7,
      target.leaf.replace(/"time":"(\d)/, (_, d) => `"time":"${(Number(d) + 1) % 10}`),
    );
    await expectCaught(/event 7\b/);
    await setLeaf(7, target.leaf);
    await expectClean();

    // An event deleted.
    await sql`DELETE FROM audit_events WHERE seq = 7`.execute(k);
    await expectCaught(/event 7 is missing/);
    await k.insertInto('audit_events').values(target).execute();
    await expectClean();

    // Two events swapped.
    const other = rows[9];
    if (!other) throw new Error('event missing');
    await setLeaf(7, other.leaf);
    await setLeaf(9, target.leaf);
    await expectCaught(/event 7\b/);
    await setLeaf(7, target.leaf);
    await setLeaf(9, other.leaf);

    // The log truncated below its latest checkpoint.
    const cut = size - 3;
    const tail = rows.slice(cut);
    await sql`DELETE FROM audit_events WHERE seq >= ${cut}`.execute(k);
    await expectCaught(new RegExp(`checkpoint ${latest.size}|${cut}`));
    await k.insertInto('audit_events').values(tail).execute();
    await expectClean();

    // The latest checkpoint replaced by an older one.
    const setNote = (s: number, note: string) =>
      sql`UPDATE audit_checkpoints SET note = ${note} WHERE size = ${s}`.execute(k);
    await setNote(latest.size, first.note);
    await expectCaught(new RegExp(`checkpoint ${first.size}|${latest.size}`));
    await setNote(latest.size, latest.note);

    // A different root signed, with the log's real key, at an existing size.
    const skey = readFileSync(join(db().dataDir, 'audit-log.key'), 'utf8').trim();
    expect(verifierKeyOf(skey)).toBe(vkey);
    const body = parseCheckpoint(parseNote(first.note).text);
    const forged = signNote(formatCheckpoint({ ...body, root: Buffer.alloc(32, 7) }), [
      noteSigner(skey),
    ]);
    await setNote(first.size, forged);
    await expectCaught(new RegExp(`checkpoint ${first.size}`));
    await setNote(first.size, first.note);
    await expectClean();

    // An event's content changed, its leaf left alone.
    await sql`UPDATE audit_events SET content = ${JSON.stringify({ ...JSON.parse(target.content), injected: true })} WHERE seq = 7`.execute(
      k,
    );
    await expectCaught(/audit_events row seq 7 .*does not hash to the digest/);
    await sql`UPDATE audit_events SET content = ${target.content} WHERE seq = 7`.execute(k);

    // An alias deleted directly in the database: the log still says where it points.
    const aliasRow = await k
      .selectFrom('aliases')
      .selectAll()
      .where('name', '=', 'candidate')
      .where('model_id', '=', (eb) =>
        eb.selectFrom('models').select('id').where('name', '=', 'm2-0'),
      )
      .executeTakeFirstOrThrow();
    await k
      .deleteFrom('aliases')
      .where('name', '=', 'candidate')
      .where('model_id', '=', aliasRow.model_id)
      .execute();
    await expectCaught(
      /aliases row m2-0:candidate \(alias\) is missing from the database, but the log records it \(event \d+\)/,
    );
    await k.insertInto('aliases').values(aliasRow).execute();
    await expectClean();

    // A version row edited directly in the database, without going through the log.
    await sql`UPDATE versions SET description = 'nothing to see' WHERE number = 1 AND model_id = (SELECT id FROM models WHERE name = 'm1-2')`.execute(
      k,
    );
    const edited = await expectCaught(
      /versions row m1-2@1 \(version\) differs from its last logged state \(event \d+, version.create\): description/,
    );
    expect(edited).toMatch(/FAIL/);
    await sql`UPDATE versions SET description = '' WHERE number = 1 AND model_id = (SELECT id FROM models WHERE name = 'm1-2')`.execute(
      k,
    );
    await expectClean();
  });

  it('keeps every acknowledged write through a SIGKILL in a burst of concurrent writes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mg-audit-crash-'));
    // SQLite: a fresh database in its own folder, whose first admin token this is. PostgreSQL:
    // this file's database, which already has an admin: use a token of it.
    const token = db().url ? (await testApp(db())).token : issueToken().secret;
    // On PostgreSQL the log is this test file's database, signed with its key.
    const env: Record<string, string> = db().url
      ? { MODELGATE_AUDIT_KEY_FILE: join(db().dataDir, 'audit-log.key') }
      : {};
    const start = () => startServer({ dataDir, databaseUrl: db().url, token, env });
    const s = await start();
    const acknowledged: string[] = [];
    let killed = false;
    const write = async (i: number) => {
      try {
        const r = await fetch(`${s.url}/api/v1/models`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: `crash-${i}` }),
        });
        if (r.status === 201) acknowledged.push(`model:crash-${i}`);
      } catch {
        // The server died under this request: it was never acknowledged.
      }
    };
    const burst = Array.from({ length: 400 }, (_, i) => i);
    const workers = Array.from({ length: 16 }, async () => {
      for (let i = burst.shift(); i !== undefined; i = burst.shift()) {
        await write(i);
        if (acknowledged.length >= 100 && !killed) {
          killed = true;
          await s.kill();
        }
      }
    });
    await Promise.all(workers);
    expect(killed).toBe(true);
    const again = await start();
    try {
      const r = await fetch(`${again.url}/api/v1/audit/events?limit=1000`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const logged = new Set(
        ((await r.json()) as { items: { subject: string }[] }).items.map((e) => e.subject),
      );
      for (const a of acknowledged) expect(logged.has(a), a).toBe(true);
      const vkey = (await (await fetch(`${again.url}/api/v1/audit/key`)).text()).trim();
      // A checkpoint covering everything, then the offline check.
      await fetch(`${again.url}/api/v1/audit/checkpoint`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const v = await verify({ ...db(), dataDir }, vkey, dataDir);
      expect(v.code, v.out).toBe(0);
    } finally {
      await again.stop();
    }
  });

  it('verifies one log of 5,000 concurrent writes (two server processes on PostgreSQL), and catches a rollback from a saved checkpoint', async () => {
    // PostgreSQL: two server processes on this file's database, sharing its log key. SQLite
    // (one writer process by design): one server process on a database of its own.
    const pg = db().url !== undefined;
    const dataDir = pg ? db().dataDir : mkdtempSync(join(tmpdir(), 'mg-audit-5k-'));
    const token = pg ? (await testApp(db())).token : issueToken().secret;
    const keyFile = join(dataDir, 'audit-log.key');
    const servers = await Promise.all(
      (pg ? [0, 1] : [0]).map(() =>
        startServer({
          dataDir: pg ? mkdtempSync(join(tmpdir(), 'mg-audit-5k-')) : dataDir,
          databaseUrl: db().url,
          token,
          env: pg ? { MODELGATE_AUDIT_KEY_FILE: keyFile } : {},
        }),
      ),
    );
    const url = servers[0]?.url ?? '';
    const auth = { authorization: `Bearer ${token}` };
    try {
      const todo = Array.from({ length: 5000 }, (_, i) => i);
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = todo.shift(); i !== undefined; i = todo.shift()) {
            const r = await fetch(`${servers[w % servers.length]?.url}/api/v1/models`, {
              method: 'POST',
              headers: { ...auth, 'content-type': 'application/json' },
              body: JSON.stringify({ name: `w${i}` }),
            });
            expect(r.status).toBe(201);
          }
        }),
      );
      const vkey = (await (await fetch(`${url}/api/v1/audit/key`)).text()).trim();
      await fetch(`${url}/api/v1/audit/checkpoint`, { headers: auth });
      const v = await verify({ ...db(), dataDir }, vkey, dataDir);
      expect(v.code, v.out).toBe(0);
      expect(Number(/ok: (\d+) events/.exec(v.out)?.[1])).toBeGreaterThanOrEqual(5000);

      // Online, against a checkpoint saved earlier: fine while the log only grows...
      const saved = join(mkdtempSync(join(tmpdir(), 'mg-since-')), 'last.checkpoint');
      const env = { MODELGATE_TOKEN: token, MODELGATE_CONFIG: join(tmpdir(), 'none.json') };
      const online = (...extra: string[]) =>
        cli(['audit', 'verify', '--server', url, '--log-key', vkey, ...extra], env);
      const first = await online('--save', saved);
      expect(first.code, first.out).toBe(0);
      await fetch(`${url}/api/v1/models`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'after-save' }),
      });
      const grown = await online('--since', saved);
      expect(grown.code, grown.out).toBe(0);
      // ...and a rollback when the server shows less than the saved checkpoint.
      const bigger = parseCheckpoint(parseNote(readFileSync(saved, 'utf8')).text);
      const skey = readFileSync(keyFile, 'utf8').trim();
      writeFileSync(
        saved,
        signNote(formatCheckpoint({ ...bigger, size: bigger.size + 100_000 }), [noteSigner(skey)]),
      );
      const rolled = await online('--since', saved);
      expect(rolled.code, rolled.out).toBe(1);
      expect(rolled.out).toMatch(/rollback/i);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }, 300_000);

  it('runs a witness process that cosigns consistent checkpoints and refuses a rollback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-witness-'));
    const keyFile = join(dir, 'w1.key');
    const keygen = await cli(['witness', 'keygen', 'witness.test/w1', '--out', keyFile]);
    expect(keygen.code, keygen.out).toBe(0);
    const wvkey = keygen.out.trim();
    expect((await cli(['witness', 'keygen', 'witness.test/w1', '--out', keyFile])).code).toBe(2);
    const t = await testApp(db(), { witnessKeys: [wvkey] });
    const api = apiOf(t);
    await api('POST', '/identities', {
      name: 'w1',
      kind: 'service-account',
      owner: 'admin',
      purpose: 'witness',
      roles: ['witness'],
    });
    const wtoken = (
      (await api('POST', '/identities/w1/tokens', { name: 'w' })).json() as { secret: string }
    ).secret;
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();
    const state = join(dir, 'w1.state.json');
    const run = () =>
      cli(
        [
          'witness',
          'run',
          '--once',
          '--log',
          url,
          '--key',
          keyFile,
          '--log-key',
          vkey,
          '--state',
          state,
        ],
        { MODELGATE_TOKEN: wtoken },
      );
    await api('POST', '/models', { name: 'witnessed-1' });
    const first = await run();
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/cosigned checkpoint \d+/);
    await api('POST', '/models', { name: 'witnessed-2' });
    const second = await run();
    expect(second.code, second.out).toBe(0);
    expect(second.out).toMatch(/cosigned/);
    // The log's checkpoint carries the cosignature, and verify counts it.
    const checked = await cli([
      'audit',
      'verify',
      '--data-dir',
      db().dataDir,
      ...(db().url ? ['--database-url', db().url ?? ''] : []),
      '--log-key',
      vkey,
      '--witness-key',
      wvkey,
    ]);
    expect(checked.code, checked.out).toBe(0);
    expect(checked.out).toMatch(/cosigned by witness.test\/w1/);
    // A witness that saw a bigger tree refuses the log's smaller one, and keeps its state.
    const saved = JSON.parse(readFileSync(state, 'utf8')) as { size: number };
    writeFileSync(state, JSON.stringify({ ...saved, size: saved.size + 10 }), { mode: 0o600 });
    const refused = await run();
    expect(refused.code, refused.out).toBe(1);
    expect(refused.out).toMatch(/rollback/);
    expect(JSON.parse(readFileSync(state, 'utf8')).size).toBe(saved.size + 10);
    await t.composed.app.close();
  });
});
