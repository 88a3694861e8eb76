import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { access, type FileHandle, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { ModelgateError } from '../core/errors.js';
import { parseDigest } from '../core/manifest.js';
import type { BlobStore, PutResult } from './blob-store.js';

const WRITE_BATCH = 4 * 1024 * 1024;
const SYNC_EVERY = 128 * 1024 * 1024;

/** Writes every buffer, looping over short writes. */
async function writeAll(fh: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    const total = rest.reduce((s, b) => s + b.length, 0);
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === total) return;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** How long a temporary upload file of another host may sit untouched before it is dropped. */
const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;

/** Whether process `pid` of this host is alive (EPERM: alive, another user's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The newest modification time of `path` and, for a folder, of what it holds. */
function newestMtime(path: string): number {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return Date.now();
  let newest = st.mtimeMs;
  if (st.isDirectory())
    for (const e of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, e)));
  return newest;
}

/**
 * Removes what interrupted uploads left in `tmp`, and only that: several servers may share the
 * data folder, each writing its uploads in a folder of its own (`<pid>.<random>.<host>`). A
 * folder of a dead process of this host goes at once; anything else (another host's folder, a
 * file of an older release) only once nothing in it changed for a day, which an upload in
 * flight, written to as it arrives, never is.
 */
function sweepTemporaries(tmp: string, host: string): void {
  for (const name of readdirSync(tmp)) {
    const path = join(tmp, name);
    const m = /^(\d+)\.[0-9a-f]+\.(.+)$/.exec(name);
    const deadHere = m !== null && m[2] === host && !alive(Number(m[1]));
    if (deadHere || Date.now() - newestMtime(path) > STALE_UPLOAD_MS)
      rmSync(path, { recursive: true, force: true });
  }
}

/**
 * Blobs as files under `<root>/sha256/<first two hex>/<remaining hex>`. Uploads are written to
 * a folder of this process under `<root>/tmp/` while hashed, synced, then renamed into place,
 * so a blob path only ever holds complete bytes whose hash is its name; a crash leaves at most
 * a temporary file, removed by the next start (never another live server's upload).
 */
export class FsBlobStore implements BlobStore {
  private readonly tmpDir: string;

  constructor(private readonly root: string) {
    const tmp = join(root, 'tmp');
    mkdirSync(tmp, { recursive: true });
    sweepTemporaries(tmp, hostname());
    this.tmpDir = join(tmp, `${process.pid}.${randomBytes(4).toString('hex')}.${hostname()}`);
    mkdirSync(this.tmpDir, { recursive: true });
    mkdirSync(join(root, 'sha256'), { recursive: true });
  }

  /** Where the blob with this digest lives (whether or not it exists). */
  pathOf(digest: string): string {
    const hex = parseDigest(digest);
    return join(this.root, 'sha256', hex.slice(0, 2), hex.slice(2));
  }

  async put(
    source: AsyncIterable<Buffer> | Readable,
    opts: { maxBytes: number; expectedDigest?: string | (() => string | undefined) },
  ): Promise<PutResult> {
    if (typeof opts.expectedDigest === 'string') parseDigest(opts.expectedDigest);
    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    // Another host's sweep may have removed this process's folder while it sat idle a day.
    await mkdir(this.tmpDir, { recursive: true });
    const fh = await open(tmp, 'wx', 0o644);
    const hash = createHash('sha256');
    let size = 0;
    let done = false;
    let closed = false;
    try {
      // Socket chunks are 64 KiB; one write syscall each costs more than the hashing. Chunks
      // are gathered and written with one writev per WRITE_BATCH bytes, one write in flight,
      // so hashing the next batch overlaps the disk write of the previous one.
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let inflight: Promise<unknown> = Promise.resolve();
      // Flushing to disk while the upload runs keeps the final datasync short: at most
      // SYNC_EVERY bytes are still dirty when the last byte arrives.
      let syncing: Promise<unknown> = Promise.resolve();
      let unsynced = 0;
      for await (const chunk of source) {
        size += chunk.length;
        if (size > opts.maxBytes) {
          throw new ModelgateError(
            'PAYLOAD_TOO_LARGE',
            `upload exceeds the limit of ${opts.maxBytes} bytes (set MODELGATE_MAX_UPLOAD_BYTES to raise it)`,
            { limit: opts.maxBytes },
          );
        }
        hash.update(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH) {
          const b = batch;
          batch = [];
          batchBytes = 0;
          await inflight;
          inflight = writeAll(fh, b);
          unsynced += WRITE_BATCH;
          if (unsynced >= SYNC_EVERY) {
            unsynced = 0;
            await syncing;
            const written = inflight;
            syncing = written.then(() => fh.datasync());
          }
        }
      }
      await inflight;
      await syncing;
      if (batch.length > 0) await writeAll(fh, batch);
      const digest = `sha256:${hash.digest('hex')}`;
      const expected =
        typeof opts.expectedDigest === 'function' ? opts.expectedDigest() : opts.expectedDigest;
      if (expected !== undefined && expected !== digest) {
        throw new ModelgateError(
          'BLOB_MISMATCH',
          `uploaded bytes hash to ${digest}, not the declared ${expected}`,
          {
            expected,
            actual: digest,
          },
        );
      }
      const final = this.pathOf(digest);
      const existing = await stat(final).catch(() => undefined);
      if (existing) {
        await fh.close();
        closed = true;
        await unlink(tmp);
        done = true;
        return { digest, size, created: false };
      }
      // Durable before visible: the bytes reach the disk before the name points at them.
      await fh.datasync();
      await fh.close();
      closed = true;
      await mkdir(dirname(final), { recursive: true });
      await rename(tmp, final);
      await fsyncDir(dirname(final));
      done = true;
      return { digest, size, created: true };
    } finally {
      if (!closed) await fh.close().catch(() => {});
      if (!done) await unlink(tmp).catch(() => {});
    }
  }

  async size(digest: string): Promise<number | undefined> {
    const s = await stat(this.pathOf(digest)).catch(() => undefined);
    return s?.isFile() ? s.size : undefined;
  }

  async read(digest: string, opts: { verify?: boolean } = {}): Promise<Readable> {
    const path = this.pathOf(digest);
    if ((await this.size(digest)) === undefined) {
      throw new ModelgateError('BLOB_NOT_FOUND', `blob ${digest} not found`, { digest });
    }
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    if (!opts.verify) return file;
    const hash = createHash('sha256');
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const actual = `sha256:${hash.digest('hex')}`;
        cb(
          actual === digest
            ? null
            : new ModelgateError('BLOB_CORRUPT', `stored blob ${digest} now hashes to ${actual}`, {
                digest,
                actual,
              }),
        );
      },
    });
    file.on('error', (e) => out.destroy(e));
    return file.pipe(out);
  }

  async verify(digest: string): Promise<boolean> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(this.pathOf(digest), {
      highWaterMark: 1024 * 1024,
    })) {
      hash.update(chunk as Buffer);
    }
    return `sha256:${hash.digest('hex')}` === digest;
  }

  async localPath(digest: string): Promise<string> {
    if ((await this.size(digest)) === undefined) {
      throw new ModelgateError('BLOB_NOT_FOUND', `blob ${digest} not found`, { digest });
    }
    return this.pathOf(digest);
  }

  async ready(): Promise<boolean> {
    try {
      await access(dirname(this.tmpDir), constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
}
