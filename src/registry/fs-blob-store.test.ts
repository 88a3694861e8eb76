import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isModelgateError } from '../core/errors.js';
import { FsBlobStore } from './fs-blob-store.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const chunks = (b: Buffer, size = 1000) =>
  Readable.from(
    Array.from({ length: Math.ceil(b.length / size) }, (_, i) =>
      b.subarray(i * size, (i + 1) * size),
    ),
  );
const collect = async (r: Readable) => {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
};

/** Files left under `<root>/tmp`, in any process's folder. */
function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) walk(join(dir, e.name));
      else out.push(join(dir, e.name));
  };
  walk(join(root, 'tmp'));
  return out;
}

describe('FsBlobStore', () => {
  const fresh = () => {
    const root = mkdtempSync(join(tmpdir(), 'modelgate-blobs-'));
    return { root, store: new FsBlobStore(root) };
  };

  it('stores under sha256/ab/cdef..., once, and reads back', async () => {
    const { root, store } = fresh();
    const data = randomBytes(12_345);
    const digest = sha(data);
    const r = await store.put(chunks(data), { maxBytes: 1e6 });
    expect(r).toEqual({ digest, size: data.length, created: true });
    const hex = digest.slice(7);
    expect(readdirSync(join(root, 'sha256', hex.slice(0, 2)))).toEqual([hex.slice(2)]);
    expect((await store.put(chunks(data), { maxBytes: 1e6 })).created).toBe(false);
    expect(await store.size(digest)).toBe(data.length);
    expect(Buffer.compare(await collect(await store.read(digest, { verify: true })), data)).toBe(0);
    expect(leftovers(root)).toEqual([]);
  });

  it('refuses oversized and mismatching uploads and leaves nothing behind', async () => {
    const { root, store } = fresh();
    const data = randomBytes(5000);
    await expect(store.put(chunks(data), { maxBytes: 4999 })).rejects.toSatisfy((e) =>
      isModelgateError(e, 'PAYLOAD_TOO_LARGE'),
    );
    await expect(
      store.put(chunks(data), { maxBytes: 1e6, expectedDigest: sha(Buffer.from('other')) }),
    ).rejects.toSatisfy((e) => isModelgateError(e, 'BLOB_MISMATCH'));
    expect(await store.size(sha(data))).toBeUndefined();
    expect(leftovers(root)).toEqual([]);
    expect(readdirSync(join(root, 'sha256'))).toEqual([]);
  });

  it('leaves no trace when the source stream fails midway', async () => {
    const { root, store } = fresh();
    const failing = new Readable({
      read() {
        this.push(randomBytes(100));
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(store.put(failing, { maxBytes: 1e6 })).rejects.toThrow(/connection reset/);
    expect(leftovers(root)).toEqual([]);
    expect(readdirSync(join(root, 'sha256'))).toEqual([]);
  });

  it('detects a blob changed on disk behind its back', async () => {
    const { store } = fresh();
    const data = Buffer.from('original bytes');
    const { digest } = await store.put(chunks(data), { maxBytes: 1e6 });
    writeFileSync(store.pathOf(digest), 'tampered bytes');
    expect(await store.verify(digest)).toBe(false);
    await expect(collect(await store.read(digest, { verify: true }))).rejects.toSatisfy((e) =>
      isModelgateError(e, 'BLOB_CORRUPT'),
    );
  });

  it("clears leftovers of dead processes' uploads on start, never a live one's", () => {
    const root = mkdtempSync(join(tmpdir(), 'modelgate-blobs-'));
    new FsBlobStore(root);
    // A server of this host that died mid-upload (no process has this pid)...
    const dead = join(root, 'tmp', `999999999.0badc0de.${hostname()}`);
    mkdirSync(dead);
    writeFileSync(join(dead, 'half-written'), 'partial');
    // ...and an upload in flight in another live server's folder.
    const live = join(root, 'tmp', `${process.pid}.0000beef.${hostname()}`);
    mkdirSync(live);
    writeFileSync(join(live, 'in-flight'), 'partial');
    new FsBlobStore(root);
    expect(leftovers(root)).toEqual([join(live, 'in-flight')]);
  });
});
