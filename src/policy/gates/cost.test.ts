import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isModelgateError } from '../../core/errors.js';
import { FACT_BOUNDS, MAX_POLICY_COST, outsideBounds, policyCost, refuseCostly } from './cost.js';
import { evaluatePolicy } from './evaluate.js';
import type { Facts } from './facts-schema.js';
import { compilePolicy, type PolicyDocument, parsePolicyDocument } from './policy-document.js';

const doc = (
  validations: { name: string; expression: string }[],
  variables: { name: string; expression: string }[] = [],
): PolicyDocument =>
  ({
    apiVersion: 'modelgate.dev/v1',
    kind: 'GatePolicy',
    metadata: { name: 'costly' },
    spec: {
      bindings: { aliases: ['production'] },
      variables,
      validations: validations.map((v) => ({
        ...v,
        message: 'm',
        reason: 'Test',
        action: 'deny' as const,
      })),
    },
  }) as PolicyDocument;

const thousand = `[${Array.from({ length: 1000 }, (_, i) => i).join(', ')}]`;

/** The first policy: three nested comprehensions over a 1,000-element list. */
const NESTED = doc(
  [
    {
      name: 'cubic',
      expression: 'variables.xs.all(a, variables.xs.all(b, variables.xs.all(c, a + b + c >= 0)))',
    },
  ],
  [{ name: 'xs', expression: thousand }],
);

/** The second policy: forty variables, each twice the one before. */
const DOUBLING = doc(
  [{ name: 'huge', expression: 'size(variables.v40) > 0' }],
  [
    { name: 'v0', expression: '[1]' },
    ...Array.from({ length: 40 }, (_, i) => ({
      name: `v${i + 1}`,
      expression: `variables.v${i} + variables.v${i}`,
    })),
  ],
);

const file = (path: string) =>
  parsePolicyDocument(readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8'));

describe('the cost of a policy', () => {
  it('keeps the shipped pack and the docs example well inside the limit', () => {
    for (const path of [
      'policies/production-gate.yaml',
      'policies/staging-gate.yaml',
      'docs/examples/redteam-gate.yaml',
    ]) {
      const { cost, problems } = policyCost(file(path));
      expect(problems, path).toEqual([]);
      expect(cost, path).toBeLessThan(MAX_POLICY_COST / 2);
    }
  });

  it('refuses nested comprehensions that multiply past the limit, naming the expression', () => {
    const { cost, problems } = policyCost(NESTED);
    expect(cost).toBeGreaterThanOrEqual(1e9);
    expect(problems).toEqual([
      expect.objectContaining({
        path: 'spec.validations[0].expression (cubic)',
        message: expect.stringMatching(/^may take \d\.\de\+\d+ steps on facts within/),
      }),
    ]);
    // Two levels are fine.
    expect(
      policyCost(
        doc(
          [{ name: 'square', expression: 'variables.xs.all(a, variables.xs.all(b, a + b >= 0))' }],
          [{ name: 'xs', expression: thousand }],
        ),
      ).problems,
    ).toEqual([]);
  });

  it('refuses a list that doubles in every variable', () => {
    const { problems } = policyCost(DOUBLING);
    expect(problems.map((p) => p.path)).toContain('spec.variables[24].expression');
    expect(problems[0]?.message).toMatch(/build a value of .* items/);
    let refused: unknown;
    try {
      refuseCostly(DOUBLING);
    } catch (e) {
      refused = e;
    }
    expect(isModelgateError(refused, 'GATE_POLICY_INVALID')).toBe(true);
  });

  it('counts comprehensions over the facts at their bounds', () => {
    const nested = policyCost(
      doc([
        {
          name: 'pairs',
          expression: 'findings.all(f, findings.exists(g, g.id == f.id))',
        },
      ]),
    );
    expect(nested.cost).toBeGreaterThan(FACT_BOUNDS.findings ** 2);
    expect(nested.problems).toHaveLength(1);
  });
});

describe('facts outside the bounds', () => {
  const base = (): Facts => ({
    schemaVersion: 1,
    version: {
      model: 'm',
      number: 1,
      digest: `sha256:${'0'.repeat(64)}`,
      author: 'a',
      createdAt: '2026-12-01T00:00:00Z',
      tags: [],
      card: {},
    },
    model: { name: 'm', ownerTeam: 't', riskTier: 'minimal', tags: [] },
    evaluations: [],
    findings: [],
    lineage: [],
    request: { alias: 'production', requestedBy: 'r', requestedAt: '2026-12-01T00:00:00Z' },
    approvals: [],
    waivers: [],
    now: '2026-12-02T00:00:00Z',
  });

  it('are not evaluated: every rule fails naming the bound, and the gate denies', () => {
    const f = base();
    expect(outsideBounds(f)).toBeUndefined();
    f.findings = Array.from({ length: FACT_BOUNDS.findings + 1 }, (_, i) => ({
      id: `f${i}`,
      ruleId: 'r',
      severity: 'info',
      title: 't',
      evaluator: 'e',
      evaluationId: 'ev',
      waived: false,
    }));
    expect(outsideBounds(f)).toBe(
      `findings: ${FACT_BOUNDS.findings + 1} > ${FACT_BOUNDS.findings}`,
    );
    const p = compilePolicy(doc([{ name: 'always', expression: 'true' }]));
    const r = evaluatePolicy(p, f);
    expect(r.outcome).toBe('deny');
    expect(r.results[0]).toMatchObject({
      passed: false,
      error: expect.stringMatching(/outside the bounds policies are costed for \(findings: /),
    });
    const card = base();
    card.version.card = { big: Array.from({ length: FACT_BOUNDS.cardValues + 1 }, () => 0) };
    expect(outsideBounds(card)).toMatch(/^values in the card: /);
  });
});
