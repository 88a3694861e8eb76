import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from 'vitest';
import { evaluatorContract } from '../evaluator-contract.js';
import { ArtifactScanEvaluator } from './artifact-scan-evaluator.js';

const CORPUS = join(import.meta.dirname, '..', '..', '..', 'test', 'corpus');
const file = (kind: string, name: string, as: string) => {
  const path = join(CORPUS, kind, name);
  return { name: as, path, size: statSync(path).size };
};

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
