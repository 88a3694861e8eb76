import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { absenceWarnings } from '../src/policy/gates/absence-lint.js';
import { evaluatePolicy } from '../src/policy/gates/evaluate.js';
import type { Facts } from '../src/policy/gates/facts-schema.js';
import {
  type CompiledPolicy,
  compilePolicy,
  type PolicyDocument,
  parsePolicyDocument,
} from '../src/policy/gates/policy-document.js';

// Governance invariant 7: absent evidence never passes. A rule about an evaluation, a card
// field or an approval that does not exist denies, and the shipped policies and every docs
// example are written that way (issue 17, finding 6).

const ROOT = join(import.meta.dirname, '..');
const DIGEST = `sha256:${'cd'.repeat(32)}`;

const policyFiles = [
  ...readdirSync(join(ROOT, 'policies')).map((f) => join(ROOT, 'policies', f)),
  ...readdirSync(join(ROOT, 'docs', 'examples')).map((f) => join(ROOT, 'docs', 'examples', f)),
].filter((f) => f.endsWith('.yaml'));

const load = (file: string) => compilePolicy(parsePolicyDocument(readFileSync(file, 'utf8')));

const run = (id: string, evaluator: string, metrics: Record<string, number>) => ({
  id,
  evaluator,
  evaluatorVersion: '1.0.0',
  status: 'succeeded' as const,
  digest: DIGEST,
  ranBy: `${evaluator}-bot`,
  finishedAt: '2026-12-01T00:00:00Z',
  metrics,
});

/** A version with every kind of evidence the shipped pack and the examples ask for. */
function complete(): Facts {
  return {
    schemaVersion: 1,
    version: {
      model: 'assistant',
      number: 3,
      digest: DIGEST,
      author: 'ann',
      createdAt: '2026-11-30T00:00:00Z',
      tags: [],
      card: { intendedUse: 'support chat', limitations: 'English only', trainingData: 'faq-2026' },
    },
    model: { name: 'assistant', ownerTeam: 'support', riskTier: 'high', tags: [] },
    evaluations: [
      run('ev-scan', 'artifact-scan', { files: 1 }),
      run('ev-rt', 'llm-redteam', {
        'asr.system-prompt-extraction': 0,
        'asr_upper95.jailbreak': 0.05,
      }),
    ],
    findings: [],
    lineage: [],
    request: { alias: 'production', requestedBy: 'ci', requestedAt: '2026-12-02T00:00:00Z' },
    approvals: ['rik', 'ada'].map((approver) => ({
      approver,
      roles: ['approver'],
      teams: ['risk'],
      decision: 'approve' as const,
      at: '2026-12-02T01:00:00Z',
    })),
    waivers: [],
    now: '2026-12-03T00:00:00Z',
  };
}

const outcomes = (p: CompiledPolicy, f: Facts) =>
  [false, true].map((compiled) => evaluatePolicy(p, f, undefined, { compiled }).outcome);

const texts = (doc: PolicyDocument) =>
  [
    ...(doc.spec.variables ?? []).map((v) => v.expression),
    ...doc.spec.validations.map((v) => v.expression),
  ].join('\n');

describe('absent evidence never passes', () => {
  it('finds the shipped pack and the docs examples', () => {
    expect(policyFiles.map((f) => f.slice(ROOT.length + 1))).toEqual(
      expect.arrayContaining([
        'policies/production-gate.yaml',
        'policies/staging-gate.yaml',
        'docs/examples/redteam-gate.yaml',
      ]),
    );
  });

  for (const file of policyFiles) {
    const name = file.slice(ROOT.length + 1);
    it(`${name}: allows complete evidence, denies when any piece it reads is missing`, () => {
      const p = load(file);
      expect(absenceWarnings(p.document), name).toEqual([]);
      expect(outcomes(p, complete()), name).toEqual(['allow', 'allow']);
      const text = texts(p.document);
      const missing: [string, (f: Facts) => void][] = [];
      for (const m of text.matchAll(/evaluator == '([^']+)'/g)) {
        const evaluator = m[1]!;
        missing.push([
          `no ${evaluator} evaluation`,
          (f) => {
            f.evaluations = f.evaluations.filter((e) => e.evaluator !== evaluator);
          },
        ]);
        missing.push([
          `the ${evaluator} evaluation failed`,
          (f) => {
            for (const e of f.evaluations) if (e.evaluator === evaluator) e.status = 'failed';
          },
        ]);
        missing.push([
          `the ${evaluator} evaluation is of other bytes`,
          (f) => {
            for (const e of f.evaluations)
              if (e.evaluator === evaluator) e.digest = `sha256:${'ef'.repeat(32)}`;
          },
        ]);
      }
      for (const m of text.matchAll(/metrics\['([^']+)'\]/g)) {
        const metric = m[1]!;
        missing.push([
          `no ${metric} metric`,
          (f) => {
            for (const e of f.evaluations) delete e.metrics[metric];
          },
        ]);
      }
      if (/\bapprovals\b/.test(text))
        missing.push([
          'no approvals',
          (f) => {
            f.approvals = [];
          },
        ]);
      for (const field of ['intendedUse', 'limitations', 'trainingData'])
        if (text.includes(`'${field}'`))
          for (const junk of [undefined, '', {}, [], false])
            missing.push([
              `card ${field} = ${JSON.stringify(junk)}`,
              (f) => {
                if (junk === undefined) delete f.version.card[field];
                else f.version.card[field] = junk;
              },
            ]);
      for (const [what, patch] of missing) {
        const f = complete();
        patch(f);
        expect(outcomes(p, f), `${name} with ${what}`).toEqual(['deny', 'deny']);
      }
    });
  }

  it('no rule in the README or docs reads evidence with all() alone', () => {
    const docs = [
      join(ROOT, 'README.md'),
      ...readdirSync(join(ROOT, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => join(ROOT, 'docs', f)),
    ];
    let seen = 0;
    for (const file of docs) {
      const md = readFileSync(file, 'utf8');
      for (const m of md.matchAll(/`([^`\n]*\.all\([^`\n]*)`/g)) {
        seen++;
        const doc = {
          apiVersion: 'modelgate.dev/v1',
          kind: 'GatePolicy',
          metadata: { name: 'docs-example' },
          spec: {
            bindings: { aliases: ['production'] },
            variables: [
              {
                name: 'redteam',
                expression: "evaluations.filter(e, e.evaluator == 'llm-redteam')",
              },
            ],
            validations: [
              { name: 'example', expression: m[1]!, reason: 'Test', action: 'deny', message: 'x' },
            ],
          },
        } as PolicyDocument;
        expect(absenceWarnings(doc), `${file}: ${m[1]}`).toEqual([]);
      }
    }
    expect(seen).toBeGreaterThan(0);
  });
});

describe('the absence lint', () => {
  const doc = (expression: string, variables: { name: string; expression: string }[] = []) =>
    ({
      apiVersion: 'modelgate.dev/v1',
      kind: 'GatePolicy',
      metadata: { name: 'lint' },
      spec: {
        bindings: { aliases: ['production'] },
        variables,
        validations: [{ name: 'r', expression, reason: 'Test', action: 'deny', message: 'x' }],
      },
    }) as PolicyDocument;

  it('warns, with the position, on all() over evaluations or approvals alone', () => {
    const old =
      "evaluations.filter(e, e.evaluator == 'llm-redteam').all(e, e.metrics['asr.x'] == 0.0)";
    const [w] = absenceWarnings(doc(old));
    expect(w?.path).toBe('spec.validations[0].expression (r)');
    expect(w?.message).toMatch(/is true when the list is empty: a version with no such evaluation/);
    expect(w?.position).toEqual({ offset: 52, line: 1, column: 53 });
    expect(absenceWarnings(doc("approvals.all(a, a.decision == 'approve')"))).toHaveLength(1);
    // Through a variable, and nested in a larger rule.
    const runs = [{ name: 'runs', expression: "evaluations.filter(e, e.status == 'succeeded')" }];
    const [v] = absenceWarnings(
      doc("model.riskTier == 'high'\n  || variables.runs.all(e, true)", runs),
    );
    expect(v?.position).toMatchObject({ line: 2 });
  });

  it('is quiet when the rule asks for the evidence too, or reads findings', () => {
    const runs = [{ name: 'runs', expression: "evaluations.filter(e, e.status == 'succeeded')" }];
    for (const ok of [
      'size(variables.runs) > 0 && variables.runs.all(e, true)',
      'variables.runs.exists(e, true) && variables.runs.all(e, true)',
      "findings.all(f, f.severity != 'critical')",
      '[1, 2].all(x, x > 0)',
    ])
      expect(absenceWarnings(doc(ok, runs)), ok).toEqual([]);
  });
});
