import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { contractVersion, evaluatorContract } from '../evaluator-contract.js';
import { ArtifactScanEvaluator } from './artifact-scan-evaluator.js';

const CORPUS = join(import.meta.dirname, '..', '..', '..', 'test', 'corpus');
const file = (kind: string, name: string, as: string) => {
  const path = join(CORPUS, kind, name);
  return { name: as, path, size: statSync(path).size };
};

describe('artifact-scan evaluator', () => {
  it('reports progress by bytes, ending at 1', async () => {
    const files = [
      file('benign', 'sklearn-pipeline.pkl', 'a.pkl'),
      file('malicious', 'torch-zip-hidden-member.pt', 'b.pt'),
    ];
    const seen: number[] = [];
    await new ArtifactScanEvaluator().run({
      version: contractVersion(files),
      files,
      config: {},
      progress: (p) => seen.push(p),
      signal: new AbortController().signal,
    });
    expect(seen[0]).toBe(0);
    expect(seen.at(-1)).toBe(1);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });
});

describe('artifact-scan evaluator contract', () => {
  evaluatorContract(
    () => new ArtifactScanEvaluator(),
    [
      file('malicious', 'torch-zip-hidden-member.pt', 'model.pt'),
      file('benign', 'sklearn-pipeline.pkl', 'extra/pipeline.pkl'),
      file('malicious', 'nested-base64-string.pkl', 'extra/blob.pkl'),
    ],
  );
});
