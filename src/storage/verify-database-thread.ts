import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './database.js';
import { verifyDatabase } from './verify-database.js';

// `audit verify` of a database, off the CLI's main thread so that it can have a larger young
// generation (see verifyDatabaseInThread); the Merkle half runs in a thread of its own.
const data = workerData as {
  open: { dataDir: string; url?: string };
  opts: Omit<Parameters<typeof verifyDatabase>[1], 'parallel' | 'onProgress' | 'engine'>;
};
const database = openDatabase(data.open);
try {
  const result = await verifyDatabase(database.db, {
    ...data.opts,
    engine: database.caps.engine,
    parallel: data.open,
    onProgress: (read, size) => parentPort?.postMessage({ progress: [read, size] }),
  });
  parentPort?.postMessage({ ok: true, result });
} catch (e) {
  parentPort?.postMessage({ ok: false, error: (e as Error).message });
} finally {
  await database.close();
}
