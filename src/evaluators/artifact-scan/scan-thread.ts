import { parentPort, workerData } from 'node:worker_threads';
import { scanNamedFiles } from './scanner.js';

// Runs one scan off the server's event loop: the scanner reads synchronously.
const entries = workerData as { name: string; path: string }[];
try {
  const report = scanNamedFiles(entries, undefined, (progress) =>
    parentPort?.postMessage({ progress }),
  );
  parentPort?.postMessage({ ok: true, report });
} catch (e) {
  parentPort?.postMessage({ ok: false, error: (e as Error).message });
}
