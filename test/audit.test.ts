import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { canonicalize } from '../src/audit/canonical-json.js';
import { parseCheckpoint } from '../src/audit/checkpoint.js';
import { leafHash, MemoryTree, verifyConsistency, verifyInclusion } from '../src/audit/merkle.js';
import {
  generateSignerKey,
  noteSigner,
  noteVerifier,
  openNote,
  parseNote,
  signNote,
  verifierKeyOf,
} from '../src/audit/signed-note.js';
import { issueToken } from '../src/identity/tokens.js';
import { apiOf, type TestApp, testApp, uploadBlob } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI, startServer } from './helpers/server-process.js';

interface Event {
  index: number;
  actor: string;
  credential: string;
  action: string;
  subject: string;
  digest: string;
  content: unknown;
  leaf: string;
}

const b = (s: string) => Buffer.from(s, 'base64');

async function allEvents(t: TestApp): Promise<Event[]> {
  const api = apiOf(t);
  const out: Event[] = [];
  for (;;) {
    const r = (await api('GET', `/audit/events?from=${out.length}&limit=1000`)).json() as {
      items: Event[];
    };
    if (r.items.length === 0) return out;
    out.push(...r.items);
  }
}

/** Rebuilds the tree from the events' leaves, checking each leaf against its record. */
function rebuild(events: Event[]): MemoryTree {
  const tree = new MemoryTree();
  events.forEach((e, i) => {
    expect(e.index).toBe(i);
    const leaf = JSON.parse(e.leaf) as Record<string, unknown>;
    expect(leaf).toMatchObject({ seq: i, action: e.action, subject: e.subject, digest: e.digest });
    // The digest in the leaf is the digest of the content the event carries.
    const digest = `sha256:${createHash('sha256').update(canonicalize(e.content)).digest('hex')}`;
    expect(digest, `event ${i}`).toBe(e.digest);
    tree.append(Buffer.from(e.leaf, 'utf8'));
  });
  return tree;
}

describeEachEngine('tamper-evident audit log', (db) => {
  it('appends every change in its own transaction, and nothing for a refused one', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const before = (await allEvents(t)).length;
    await api('POST', '/models', { name: 'churn', ownerTeam: 'payments', riskTier: 'limited' });
    await api('PATCH', '/models/churn', { description: 'churn model' });
    await api('POST', '/datasets', { name: 'tx', uri: 's3://tx' });
    const digest = await uploadBlob(t, Buffer.from('weights'));
    const pushed = await api('POST', '/models/churn/versions', {
      files: [{ path: 'w.bin', size: 7, digest }],
      lineage: [{ relation: 'trainedOn', target: { kind: 'dataset', dataset: 'tx' } }],
    });
    expect(pushed.statusCode, pushed.body).toBe(201);
    await api('PATCH', '/models/churn/versions/1', { tags: ['gold'] });
    await api('PUT', '/models/churn/aliases/candidate', { version: 1 });
    await api('DELETE', '/models/churn/aliases/candidate');
    await api('POST', '/identities', { name: 'ann', kind: 'user', password: 'a long password!' });
    await api('PUT', '/identities/ann/roles/viewer');
    const tok = (await api('POST', '/identities/ann/tokens', { name: 'laptop' })).json() as {
      token: { id: string };
      secret: string;
    };
    await api('DELETE', `/tokens/${tok.token.id}`);
    await api('PUT', '/authz/policies/auditors', {
      text: 'permit (principal in Role::"auditor", action == Action::"readAudit", resource);',
    });
    await api('POST', '/models/churn/versions/1/evaluations', { evaluator: 'artifact-scan' });
    // Refused changes leave no event: a duplicate, a rolled-back last-admin removal.
    expect((await api('POST', '/models', { name: 'churn' })).statusCode).toBe(409);
    expect((await api('DELETE', '/identities/admin/roles/admin')).statusCode).toBe(409);

    const events = await allEvents(t);
    const mine = events.slice(before);
    expect(mine.map((e) => `${e.action} ${e.subject}`)).toEqual([
      'model.create model:churn',
      'model.update model:churn',
      'dataset.create dataset:tx',
      'version.create version:churn@1',
      // The version's provenance, signed in the push's transaction.
      'attestation.create attestation:churn@1/1',
      'version.update version:churn@1',
      'alias.set alias:churn:candidate',
      'alias.delete alias:churn:candidate',
      'identity.create identity:ann',
      'identity.grants identity:ann',
      `token.create token:${tok.token.id}`,
      `token.revoke token:${tok.token.id}`,
      'authz.policy.put policy:auditors',
      expect.stringMatching(/^evaluation\.request evaluation:churn@1\/ev_[0-9a-f]{16}$/),
    ]);
    // Attributed to the acting identity and the credential it used.
    expect(new Set(mine.map((e) => e.actor))).toEqual(new Set(['admin']));
    expect(mine.every((e) => /^tok_[0-9a-f]{16}$/.test(e.credential))).toBe(true);
    // Secrets never reach the log: not the token, not the password, not their hashes.
    const all = JSON.stringify(events);
    expect(all).not.toContain(tok.secret);
    expect(all).not.toContain(createHash('sha256').update(tok.secret).digest('hex'));
    expect(all).not.toContain('a long password!');
    expect(all).not.toContain('scrypt$');
    rebuild(events);
  });

  it('signs checkpoints and serves inclusion and consistency proofs that verify', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();
    const first = (await api('GET', '/audit/checkpoint')).body;
    const c1 = parseCheckpoint(openNote(first, [noteVerifier(vkey)]).text);
    for (let i = 0; i < 9; i++) await api('POST', '/models', { name: `m${i}` });
    const second = (await api('GET', '/audit/checkpoint')).body;
    const c2 = parseCheckpoint(openNote(second, [noteVerifier(vkey)]).text);
    expect(c2.size).toBe(c1.size + 9);
    expect(c2.origin).toBe('modelgate.local/audit/v1');

    const events = await allEvents(t);
    const tree = rebuild(events);
    expect(tree.root(c2.size).equals(c2.root)).toBe(true);
    for (const index of [0, Math.floor(c2.size / 2), c2.size - 1]) {
      const p = (await api('GET', `/audit/events/${index}/proof?size=${c2.size}`)).json() as {
        leafHash: string;
        proof: string[];
      };
      const leaf = leafHash(Buffer.from(events[index]?.leaf ?? '', 'utf8'));
      expect(b(p.leafHash).equals(leaf)).toBe(true);
      expect(verifyInclusion(index, c2.size, leaf, p.proof.map(b), c2.root)).toBe(true);
    }
    const cons = (await api('GET', `/audit/consistency?from=${c1.size}&to=${c2.size}`)).json() as {
      proof: string[];
    };
    expect(verifyConsistency(c1.size, c2.size, cons.proof.map(b), c1.root, c2.root)).toBe(true);
    // Bad ranges are refused with the reason.
    const far = await api('GET', `/audit/consistency?from=1&to=${c2.size + 5}`);
    expect(far.statusCode).toBe(400);
    expect(far.json()).toMatchObject({ code: 'AUDIT_RANGE' });
    expect((await api('GET', `/audit/events/${c2.size}/proof?size=${c2.size}`)).statusCode).toBe(
      400,
    );
    // Stored checkpoints form a consistent chain.
    const stored = (await api('GET', '/audit/checkpoints')).json().items as { size: number }[];
    expect(stored.map((c) => c.size)).toContain(c2.size);
  });

  it('keeps the cosignatures of configured witnesses, and refuses others', async () => {
    const witnessKey = generateSignerKey('witness.example/w1', 0x04);
    const strangerKey = generateSignerKey('stranger.example/w', 0x04);
    const t = await testApp(db(), { witnessKeys: [verifierKeyOf(witnessKey)] });
    const api = apiOf(t);
    await api('POST', '/models', { name: 'wit' });
    const note = (await api('GET', '/audit/checkpoint')).body;
    const { text } = parseNote(note);
    const cosign = (skey: string) => {
      const sig = signNote(text, [noteSigner(skey)]);
      return `${note}${sig.slice(text.length + 1)}`;
    };
    const ok = await api('POST', '/audit/cosignatures', { note: cosign(witnessKey) });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toEqual({ accepted: ['witness.example/w1'] });
    const cosigned = (await api('GET', '/audit/checkpoint')).body;
    const opened = openNote(cosigned, [noteVerifier(verifierKeyOf(witnessKey))]);
    expect(opened.verified.map((s) => s.name)).toEqual(['witness.example/w1']);
    const stranger = await api('POST', '/audit/cosignatures', { note: cosign(strangerKey) });
    expect(stranger.json()).toMatchObject({ code: 'COSIGNATURE_REFUSED' });
    const forged = await api('POST', '/audit/cosignatures', {
      note: cosign(witnessKey).replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`),
    });
    expect(forged.json()).toMatchObject({ code: 'COSIGNATURE_REFUSED' });
  });

  it('answers what happened to a model between two times, and where an alias pointed, with proofs', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/models', { name: 'hist' });
    const digest = await uploadBlob(t, Buffer.from('v'));
    for (let i = 0; i < 2; i++)
      await api('POST', '/models/hist/versions', { files: [{ path: 'w', size: 1, digest }] });
    await api('PUT', '/models/hist/aliases/prod-candidate', { version: 1 });
    // Times have millisecond resolution: keep `between` strictly between the two moves.
    await new Promise((r) => setTimeout(r, 5));
    const between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    await api('PUT', '/models/hist/aliases/prod-candidate', { version: 2 });
    const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();

    const h = (await api('GET', '/audit/history?model=hist')).json() as {
      checkpoint: string;
      items: { event: Event; proof: { size: number; leafHash: string; proof: string[] } }[];
    };
    const cp = parseCheckpoint(openNote(h.checkpoint, [noteVerifier(vkey)]).text);
    expect(h.items.map((i) => i.event.action)).toEqual([
      'model.create',
      'version.create',
      'attestation.create',
      'version.create',
      'attestation.create',
      'alias.set',
      'alias.set',
    ]);
    for (const { event, proof } of h.items)
      expect(
        verifyInclusion(event.index, cp.size, b(proof.leafHash), proof.proof.map(b), cp.root),
      ).toBe(true);
    // A leap second passes the date-time format but no Date can hold it: a 400, not a 500.
    const leap = await api('GET', '/audit/history?model=hist&from=2026-06-30T23:59:60Z');
    expect(leap.statusCode).toBe(400);
    expect(leap.json().code).toBe('VALIDATION_FAILED');
    const later = (await api('GET', `/audit/history?model=hist&from=${between}`)).json();
    expect(later.items).toHaveLength(1);

    const at = (
      await api('GET', `/audit/alias?model=hist&alias=prod-candidate&at=${between}`)
    ).json();
    expect(at.version).toBe(1);
    const now = (
      await api(
        'GET',
        `/audit/alias?model=hist&alias=prod-candidate&at=${new Date().toISOString()}`,
      )
    ).json();
    expect(now.version).toBe(2);
    expect(
      (await api('GET', '/audit/alias?model=hist&alias=prod-candidate&at=2020-01-01T00:00:00Z'))
        .statusCode,
    ).toBe(404);

    // The same from the command line.
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const env = {
      ...process.env,
      MODELGATE_SERVER: url,
      MODELGATE_TOKEN: t.token,
      MODELGATE_CONFIG: join(tmpdir(), 'none.json'),
    };
    const cli = (...args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            out: stdout + stderr,
          }),
        ),
      );
    const hist = await cli('audit', 'history', 'hist');
    expect(hist.code, hist.out).toBe(0);
    expect(hist.out).toMatch(/alias\.set\s+alias:hist:prod-candidate\s+yes/);
    const then = await cli('audit', 'alias', 'hist', 'prod-candidate', '--at', between);
    expect(then.out).toMatch(/hist@prod-candidate at .*: version 1/);
    expect((await cli('audit', 'alias', 'hist', 'prod-candidate', '--at', 'yesterday')).code).toBe(
      2,
    );
    expect((await cli('audit', 'checkpoint')).out).toMatch(/^modelgate\.local\/audit\/v1\n\d+\n/);
    await t.composed.app.close();
  });

  it('stays one gap-free log under concurrent writers, two server processes included', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => api('POST', '/models', { name: `c${i}` })),
    );
    if (db().engine === 'postgres') {
      // Two `modelgate serve` processes on one database, sharing the log key.
      const keyFile = join(db().dataDir, 'audit-log.key');
      const token = issueToken().secret;
      const servers = await Promise.all(
        [0, 1].map(() =>
          startServer({
            dataDir: mkdtempSync(join(tmpdir(), 'mg-audit-proc-')),
            databaseUrl: db().url,
            token,
            env: { MODELGATE_AUDIT_KEY_FILE: keyFile },
          }),
        ),
      );
      try {
        const admin = await api('POST', '/identities/admin/tokens', { name: 'procs' });
        const secret = (admin.json() as { secret: string }).secret;
        await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            fetch(`${servers[i % 2]?.url}/api/v1/models`, {
              method: 'POST',
              headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
              body: JSON.stringify({ name: `p${i}` }),
            }).then((r) => expect(r.status).toBe(201)),
          ),
        );
      } finally {
        await Promise.all(servers.map((s) => s.stop()));
      }
    }
    const events = await allEvents(t);
    const tree = rebuild(events);
    const names = events.filter((e) => e.action === 'model.create').map((e) => e.subject);
    expect(names).toEqual(
      expect.arrayContaining(Array.from({ length: 20 }, (_, i) => `model:c${i}`)),
    );
    if (db().engine === 'postgres')
      expect(names).toEqual(
        expect.arrayContaining(Array.from({ length: 40 }, (_, i) => `model:p${i}`)),
      );
    const vkey = (await api('GET', '/audit/key', undefined, null)).body.trim();
    const cp = parseCheckpoint(
      openNote((await api('GET', '/audit/checkpoint')).body, [noteVerifier(vkey)]).text,
    );
    expect(cp.size).toBe(events.length);
    expect(tree.root(cp.size).equals(cp.root)).toBe(true);
  });
});
