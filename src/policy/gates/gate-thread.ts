import { parentPort } from 'node:worker_threads';
import { evaluatePolicy } from './evaluate.js';
import type { Facts } from './facts-schema.js';
import { type CompiledPolicy, compilePolicy, type PolicyDocument } from './policy-document.js';

// Evaluates gate policies for the server off its event loop (see sandbox.ts): a rule that runs
// long or grows a value ends this thread, not the server.
const compiled = new Map<string, CompiledPolicy>();
parentPort?.on(
  'message',
  (job: { id: number; doc: PolicyDocument; digest: string; facts: Facts }) => {
    try {
      let c = compiled.get(job.digest);
      if (!c) {
        c = compilePolicy(job.doc);
        if (compiled.size >= 64) compiled.clear();
        compiled.set(job.digest, c);
      }
      parentPort?.postMessage({
        id: job.id,
        ok: true,
        result: evaluatePolicy(c, job.facts, undefined, { compiled: true }),
      });
    } catch (e) {
      parentPort?.postMessage({ id: job.id, ok: false, error: (e as Error).message });
    }
  },
);
