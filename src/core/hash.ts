import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * SHA-256 of a file, hex, read synchronously through one reused 1 MiB buffer: a fresh buffer
 * per chunk costs a page fault per 4 KiB, which on a VM is more than the hashing.
 */
export function sha256FileSync(path: string): string {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  const h = createHash('sha256');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}
