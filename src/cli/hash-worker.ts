import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

// Hashes one file on its own thread, so the upload and the client's own digest of the same
// bytes proceed side by side. One buffer is reused for every read: a fresh buffer per chunk
// costs a page fault per 4 KiB, which on a VM is more than the hashing.
const fd = openSync(workerData as string, 'r');
const buf = Buffer.allocUnsafe(1024 * 1024);
const hash = createHash('sha256');
try {
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
  }
} finally {
  closeSync(fd);
}
parentPort?.postMessage(`sha256:${hash.digest('hex')}`);
