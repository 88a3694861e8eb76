import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { constants, createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { access, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { ModelgateError } from '../core/errors.js';
import { parseDigest } from '../core/manifest.js';
import type { BlobStore, PutResult } from './blob-store.js';

const WRITE_BUFFER = 8 * 1024 * 1024;

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Blobs as files under `<root>/sha256/<first two hex>/<remaining hex>`. Uploads are written to
 * `<root>/tmp/` while hashed, synced, then renamed into place, so a blob path only ever holds
 * complete bytes whose hash is its name; a crash leaves at most a temporary file, removed on
 * the next start.
 */
export class FsBlobStore implements BlobStore {
  private readonly tmpDir: string;

  constructor(private readonly root: string) {
    this.tmpDir = join(root, 'tmp');
    // Leftovers of uploads interrupted by a crash: never visible under a digest, safe to drop.
    rmSync(this.tmpDir, { recursive: true, force: true });
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
    opts: { maxBytes: number; expectedDigest?: string },
  ): Promise<PutResult> {
    if (opts.expectedDigest !== undefined) parseDigest(opts.expectedDigest);
    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: WRITE_BUFFER });
    const hash = createHash('sha256');
    let size = 0;
    let done = false;
    try {
      const opened = once(out, 'open');
      const failed = once(out, 'error').then(([e]) => {
        throw e;
      });
      failed.catch(() => {});
      await Promise.race([opened, failed]);
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
        if (!out.write(chunk)) await Promise.race([once(out, 'drain'), failed]);
      }
      out.end();
      await Promise.race([once(out, 'close'), failed]);
      const digest = `sha256:${hash.digest('hex')}`;
      if (opts.expectedDigest !== undefined && opts.expectedDigest !== digest) {
        throw new ModelgateError(
          'BLOB_MISMATCH',
          `uploaded bytes hash to ${digest}, not the declared ${opts.expectedDigest}`,
          { expected: opts.expectedDigest, actual: digest },
        );
      }
      const final = this.pathOf(digest);
      const existing = await stat(final).catch(() => undefined);
      if (existing) {
        await unlink(tmp);
        done = true;
        return { digest, size, created: false };
      }
      // Durable before visible: the bytes reach the disk before the name points at them.
      const fh = await open(tmp, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await mkdir(dirname(final), { recursive: true });
      await rename(tmp, final);
      await fsyncDir(dirname(final));
      done = true;
      return { digest, size, created: true };
    } finally {
      if (!done) {
        out.destroy();
        await unlink(tmp).catch(() => {});
      }
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

  async ready(): Promise<boolean> {
    try {
      await access(this.tmpDir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
}
