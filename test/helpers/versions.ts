import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { apiOf, type TestApp, uploadBlob } from './app.js';

/** The labelled scanner corpus (test/corpus). */
export const CORPUS = join(import.meta.dirname, '..', 'corpus');

/** A model card with the fields the shipped production gate requires. */
export const FULL_CARD = {
  intendedUse: 'fraud scoring',
  limitations: 'EU cards only',
  trainingData: 'tx-2025',
};

/** Uploads one file and registers it as a new version of `model`; returns its number and digest. */
export async function pushFile(
  t: TestApp,
  model: string,
  file: string,
  opts: { token?: string; card?: Record<string, unknown> } = {},
) {
  const bytes = readFileSync(file);
  const digest = await uploadBlob(t, bytes);
  const r = await apiOf(t)(
    'POST',
    `/models/${model}/versions`,
    {
      files: [{ path: 'model.pkl', size: bytes.length, digest }],
      card: { markdown: '', fields: opts.card ?? FULL_CARD },
    },
    opts.token,
  );
  expect(r.statusCode, r.body).toBe(201);
  return r.json() as { number: number; digest: string };
}

/** Waits until every evaluation of a version (the automatic scan) has finished. */
export async function waitForScans(t: TestApp, model: string, n: number): Promise<void> {
  const api = apiOf(t);
  for (let i = 0; i < 600; i++) {
    const evs = (await api('GET', `/models/${model}/versions/${n}/evaluations`)).json().items as {
      status: string;
    }[];
    if (evs.length > 0 && evs.every((e) => e.status === 'succeeded' || e.status === 'failed'))
      return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the scan of ${model}@${n} did not finish`);
}
