import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluatePolicy } from './evaluate.js';
import type { Facts } from './facts-schema.js';
import { compilePolicy, parsePolicyDocument } from './policy-document.js';
import { GateSandbox } from './sandbox.js';

const production = compilePolicy(
  parsePolicyDocument(
    readFileSync(new URL('../../../policies/production-gate.yaml', import.meta.url), 'utf8'),
  ),
);

const facts: Facts = {
  schemaVersion: 1,
  version: {
    model: 'm',
    number: 2,
    digest: `sha256:${'1'.repeat(64)}`,
    author: 'ann',
    createdAt: '2026-12-01T00:00:00Z',
    tags: [],
    card: { intendedUse: 'x', limitations: '', trainingData: 'y' },
  },
  model: { name: 'm', ownerTeam: 'fraud', riskTier: 'limited', tags: [] },
  evaluations: [],
  findings: [],
  lineage: [],
  request: { alias: 'production', requestedBy: 'ci', requestedAt: '2026-12-01T00:00:00Z' },
  approvals: [],
  waivers: [],
  now: '2026-12-02T00:00:00Z',
};

describe('the gate sandbox', () => {
  const sandboxes: GateSandbox[] = [];
  afterAll(async () => {
    for (const s of sandboxes) await s.close();
  });

  it('answers what evaluating in this thread answers', async () => {
    const s = new GateSandbox();
    sandboxes.push(s);
    const inline = evaluatePolicy(production, facts);
    expect(await s.evaluate(production, facts)).toEqual(inline);
    // The thread is kept: a second evaluation gives the same again.
    expect(await s.evaluate(production, facts)).toEqual(inline);
  });

  it('ends the thread past its time budget and denies naming it, rule by rule', async () => {
    // Starting a thread alone takes longer than a millisecond.
    const s = new GateSandbox({ ms: 1, heapMb: 256 });
    sandboxes.push(s);
    const r = await s.evaluate(production, facts);
    expect(r.outcome).toBe('deny');
    expect(
      r.results.every(
        (x) => !x.passed && x.error === 'evaluation stopped: over its budget of 1 ms',
      ),
    ).toBe(true);
    expect(r.results.map((x) => x.name)).toEqual(production.validations.map((v) => v.spec.name));
  });
});
