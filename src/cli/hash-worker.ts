import { parentPort, workerData } from 'node:worker_threads';
import { sha256FileSync } from '../core/hash.js';

// Hashes one file on its own thread, so the upload and the client's own digest of the same
// bytes proceed side by side.
parentPort?.postMessage(`sha256:${sha256FileSync(workerData as string)}`);
