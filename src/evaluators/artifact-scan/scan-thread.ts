import { parentPort } from 'node:worker_threads';
import { scanNamedFiles } from './scanner.js';

// Runs scans off the server's event loop (the scanner reads synchronously), one at a time, as
// the evaluator sends them: starting a thread per scan cost more than scanning a small file.
parentPort?.on('message', (job: { id: number; files: { name: string; path: string }[] }) => {
  try {
    const report = scanNamedFiles(job.files, undefined, (progress) =>
      parentPort?.postMessage({ id: job.id, progress }),
    );
    parentPort?.postMessage({ id: job.id, ok: true, report });
  } catch (e) {
    parentPort?.postMessage({ id: job.id, ok: false, error: (e as Error).message });
  }
});
