// `npm run fuzz`: every scanner fuzz target for FUZZ_RUNS inputs (default 100,000) each.
// Fails on a crash, an input taking over 1 s, or heap growth over the bound.
import { loadHdf5 } from '../src/evaluators/artifact-scan/scanner.js';
import { targets } from '../test/fuzz/harness.js';

const runs = Number(process.env.FUZZ_RUNS ?? 100_000);
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const MAX_HEAP_GROWTH_MIB = 256;
loadHdf5();
const { list, cleanup } = targets();
let failed = false;
try {
  for (const t of list) {
    const started = performance.now();
    try {
      const r = t.run(runs, seed);
      const ok = r.heapGrowthMiB < MAX_HEAP_GROWTH_MIB;
      if (!ok) failed = true;
      console.log(
        `${ok ? 'ok  ' : 'FAIL'} ${t.name}: ${r.runs} inputs in ${((performance.now() - started) / 1000).toFixed(1)} s, slowest ${r.slowest.toFixed(1)} ms, heap growth ${r.heapGrowthMiB.toFixed(1)} MiB`,
      );
    } catch (e) {
      failed = true;
      console.log(`FAIL ${t.name}: ${(e as Error).message}`);
    }
  }
} finally {
  cleanup();
}
process.exitCode = failed ? 1 : 0;
