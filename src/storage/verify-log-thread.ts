import { parentPort, workerData } from 'node:worker_threads';
import { LogVerifier, type VerifyInput } from '../audit/verify.js';
import { openDatabase } from './database.js';
import { leafHashesOf } from './log-pages.js';

// The Merkle half of `audit verify`, on the second core. The thread that compares the rows
// sends it every page of leaves it read (so both halves check the very same bytes); this one
// reads the stored leaf hashes of the page through its own connection and runs the log
// verifier. It acknowledges each page, and answers the verifier's report after the last.
const data = workerData as {
  input: Omit<VerifyInput, 'leaves'>;
  open: { dataDir: string; url?: string };
};
const database = openDatabase(data.open);
const verifier = new LogVerifier(data.input);
let queue: Promise<void> = Promise.resolve();

type Message = { from: number; seqs: number[]; leaves: string[] } | { done: true };

async function onPage(from: number, seqs: number[], leaves: string[]): Promise<void> {
  const stored = await leafHashesOf(database.db, from);
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i] as number;
    const h = stored.get(seq);
    verifier.add({ index: seq, text: leaves[i] as string, ...(h && { storedLeafHash: h }) });
  }
}

parentPort?.on('message', (m: Message) => {
  queue = queue.then(async () => {
    try {
      if ('done' in m) {
        parentPort?.postMessage({ ok: true, report: verifier.finish() });
        await database.close();
        parentPort?.close();
        return;
      }
      await onPage(m.from, m.seqs, m.leaves);
      parentPort?.postMessage({ ack: m.from });
    } catch (e) {
      parentPort?.postMessage({ ok: false, error: (e as Error).message });
    }
  });
});
