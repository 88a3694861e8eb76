import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHdf5 } from '../../src/evaluators/artifact-scan/scanner.js';
import { targets } from './harness.js';

// A short run of every fuzz target on each `npm test`; `npm run fuzz` runs 100,000 inputs each.
const { list, cleanup } = targets();
beforeAll(() => loadHdf5());
afterAll(cleanup);

describe('parser and detector fuzzing (short run)', () => {
  for (const t of list) {
    it(`${t.name}: no crash, no input over 1 s`, () => {
      const r = t.run(1500);
      expect(r.slowest).toBeLessThan(1000);
    });
  }
});
