import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isModelgateError } from '../../core/errors.js';
import {
  compilePolicy,
  type PolicyDocument,
  type PolicyProblem,
  parsePolicyDocument,
  policyBinds,
  validatePolicyDocument,
} from './policy-document.js';

const VALID = `
apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata:
  name: prod-gate
  description: A test gate.
spec:
  bindings:
    aliases: [production]
    riskTiers: [limited, high]
  variables:
    - name: blocking
      expression: findings.filter(f, f.severity == 'critical' && !f.waived)
  validations:
    - name: no-critical
      expression: size(variables.blocking) == 0
      messageExpression: "'critical: ' + variables.blocking.map(f, f.id).join(', ')"
      reason: SecurityFindings
      action: deny
    - name: has-source
      expression: has(version.sourceUri)
      message: the version has no source URI
      reason: Provenance
      action: warn
`;

// The problems of a refused policy: parse or compile, whichever refuses it.
function problems(text: string): PolicyProblem[] {
  try {
    compilePolicy(parsePolicyDocument(text));
  } catch (e) {
    expect(isModelgateError(e, 'GATE_POLICY_INVALID')).toBe(true);
    return (e as { details: { problems: PolicyProblem[] } }).details.problems;
  }
  throw new Error('policy was accepted');
}

// VALID with the first validation replaced.
const withRule = (rule: string) =>
  VALID.replace(/ {4}- name: no-critical[\s\S]*?action: deny\n/, rule);

describe('parsePolicyDocument', () => {
  it('parses a valid YAML document, and the same document as JSON', () => {
    const doc = parsePolicyDocument(VALID);
    expect(doc.metadata).toEqual({ name: 'prod-gate', description: 'A test gate.' });
    expect(doc.spec.bindings).toEqual({ aliases: ['production'], riskTiers: ['limited', 'high'] });
    expect(doc.spec.variables?.[0]?.name).toBe('blocking');
    expect(doc.spec.validations.map((v) => [v.name, v.action])).toEqual([
      ['no-critical', 'deny'],
      ['has-source', 'warn'],
    ]);
    expect(parsePolicyDocument(JSON.stringify(doc))).toEqual(doc);
  });

  // biome-ignore lint/suspicious/noExplicitAny: each case breaks the document somewhere else
  type Loose = Record<string, any>;
  const doc = () => parsePolicyDocument(VALID) as unknown as Loose;
  it.each<[string, (d: Loose) => void, string, RegExp]>([
    ['unknown top-level field', (d) => (d.status = {}), 'status', /not a known field/],
    ['wrong apiVersion', (d) => (d.apiVersion = 'v1'), 'apiVersion', /modelgate.dev\/v1/],
    ['wrong kind', (d) => (d.kind = 'Policy'), 'kind', /GatePolicy/],
    ['missing metadata', (d) => delete d.metadata, 'metadata', /is required/],
    ['bad policy name', (d) => (d.metadata.name = 'Prod Gate'), 'metadata.name', /lowercase/],
    [
      'unknown validation field',
      (d) => (d.spec.validations[1].severity = 'high'),
      'spec.validations[1].severity',
      /not a known field/,
    ],
    [
      'missing reason',
      (d) => delete d.spec.validations[0].reason,
      'spec.validations[0].reason',
      /required/,
    ],
    [
      'bad action',
      (d) => (d.spec.validations[1].action = 'Deny'),
      'spec.validations[1].action',
      /deny, warn, audit/,
    ],
    [
      'no message at all',
      (d) => delete d.spec.validations[1].message,
      'spec.validations[1]',
      /message or a messageExpression/,
    ],
    [
      'duplicate validation name',
      (d) => (d.spec.validations[1].name = 'no-critical'),
      'spec.validations[1].name',
      /used twice/,
    ],
    [
      'duplicate variable name',
      (d) => d.spec.variables.push({ ...d.spec.variables[0] }),
      'spec.variables[1].name',
      /used twice/,
    ],
    [
      'reserved variable name',
      (d) => (d.spec.variables[0].name = 'in'),
      'spec.variables[0].name',
      /reserved/,
    ],
    [
      'bad alias',
      (d) => (d.spec.bindings.aliases = ['Prod']),
      'spec.bindings.aliases[0]',
      /must match/,
    ],
    ['no alias', (d) => (d.spec.bindings.aliases = []), 'spec.bindings.aliases', /at least one/],
    [
      'unknown risk tier',
      (d) => (d.spec.bindings.riskTiers = ['extreme']),
      'spec.bindings.riskTiers[0]',
      /minimal, limited, high, unacceptable/,
    ],
    ['no validations', (d) => (d.spec.validations = []), 'spec.validations', /at least one/],
    [
      'too many validations',
      (d) => {
        d.spec.validations = Array.from({ length: 101 }, (_, i) => ({
          ...d.spec.validations[1],
          name: `r${i}`,
        }));
      },
      'spec.validations',
      /more than 100/,
    ],
    [
      'too long an expression',
      (d) => (d.spec.validations[1].expression = `true${' && true'.repeat(600)}`),
      'spec.validations[1].expression',
      /longer than 4096 bytes/,
    ],
    [
      'empty expression',
      (d) => (d.spec.validations[1].expression = '  '),
      'spec.validations[1].expression',
      /empty/,
    ],
    [
      'non-string name',
      (d) => (d.spec.validations[1].name = 7),
      'spec.validations[1].name',
      /string/,
    ],
  ])('refuses a policy with: %s', (_what, patch, path, message) => {
    const d = doc();
    patch(d);
    const found = problems(JSON.stringify(d));
    expect(found).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it.each([
    ['a document over 64 KiB', `${VALID}\n#${'x'.repeat(64 * 1024)}`, /at most 65536/],
    [
      'a duplicate key',
      VALID.replace('kind: GatePolicy', 'kind: GatePolicy\nkind: GatePolicy'),
      /unique/i,
    ],
    ['two documents', `${VALID}\n---\n${VALID}`, /multiple documents/i],
    [
      'an alias',
      VALID.replace('aliases: [production]', 'aliases: &a [production]\n    modelTags: *a'),
      /alias/i,
    ],
    ['a list instead of a document', '- a', /must be an object/],
    ['bad YAML', 'spec: [', /line 1/],
  ])('refuses %s', (_what, text, message) => {
    const found = problems(text);
    expect(found.map((p) => `${p.path}: ${p.message}`).join('\n')).toMatch(message);
  });

  it('returns only the fields of the document', () => {
    const d = validatePolicyDocument(JSON.parse(JSON.stringify(parsePolicyDocument(VALID))));
    expect(Object.keys(d.spec)).toEqual(['bindings', 'variables', 'validations']);
  });
});

describe('compilePolicy', () => {
  it('refuses a misspelled fact, naming the validation, the expression and the position', () => {
    const found = problems(
      withRule(`    - name: author-set
      expression: "version.autor != ''"
      message: m
      reason: Test
      action: deny
`),
    );
    expect(found).toEqual([
      {
        path: 'spec.validations[0].expression (author-set)',
        message: 'No such key: autor in "version.autor != \'\'" at line 1, column 9',
        position: { offset: 8, line: 1, column: 9 },
      },
    ]);
  });

  it('gives the line and column inside a multi-line expression', () => {
    const [p] = problems(
      withRule(`    - name: multi
      expression: |-
        size(findings) == 0
          && approvals.exists(a, a.approvr == 'x')
      message: m
      reason: Test
      action: deny
`),
    );
    expect(p?.position).toEqual({ offset: 47, line: 2, column: 28 });
    expect(p?.message).toMatch(/No such key: approvr/);
  });

  it('refuses comparing an int with a string', () => {
    const [p] = problems(
      withRule(
        `    - { name: n, expression: "version.number == '7'", message: m, reason: Test, action: deny }\n`,
      ),
    );
    expect(p?.message).toMatch(/no such overload: int == string/);
  });

  it('refuses a validation that is not bool and a messageExpression that is not string', () => {
    const found = problems(
      withRule(
        `    - { name: n, expression: "size(findings)", messageExpression: "size(approvals)", reason: Test, action: deny }\n`,
      ),
    );
    expect(found.map((p) => [p.path, p.message])).toEqual([
      ['spec.validations[0].expression (n)', 'must be of type bool, is int in "size(findings)"'],
      [
        'spec.validations[0].messageExpression (n)',
        'must be of type string, is int in "size(approvals)"',
      ],
    ]);
  });

  it('refuses a syntax error with its position', () => {
    const [p] = problems(
      withRule(
        `    - { name: n, expression: "findings.exists(f, ", message: m, reason: Test, action: deny }\n`,
      ),
    );
    expect(p?.path).toBe('spec.validations[0].expression (n)');
    expect(p?.position?.line).toBe(1);
  });

  it('shows each variable to later ones only, in order', () => {
    const vars = (a: string, b: string) =>
      VALID.replace(
        / {2}variables:\n[\s\S]*? {2}validations:/,
        `  variables:\n    - { name: a, expression: "${a}" }\n    - { name: b, expression: "${b}" }\n    - { name: blocking, expression: "findings" }\n  validations:`,
      );
    expect(() => compilePolicy(parsePolicyDocument(vars('1', 'variables.a + 1')))).not.toThrow();
    const [p] = problems(vars('variables.b', '1'));
    expect(p?.path).toBe('spec.variables[0].expression');
    expect(p?.message).toMatch(/No such key: b/);
    // A variable that does not check is not reported again where it is used.
    const found = problems(vars('version.autor', 'variables.a'));
    expect(found.map((x) => x.path)).toEqual(['spec.variables[0].expression']);
  });

  it('gives the same digest for the same document whatever its key order and layout', () => {
    const reordered = `
kind: GatePolicy
spec:
  validations:
    - { action: deny, reason: SecurityFindings, name: no-critical,
        messageExpression: "'critical: ' + variables.blocking.map(f, f.id).join(', ')",
        expression: "size(variables.blocking) == 0" }
    - action: warn
      reason: Provenance
      message: the version has no source URI
      expression: has(version.sourceUri)
      name: has-source
  variables: [{ expression: "findings.filter(f, f.severity == 'critical' && !f.waived)", name: blocking }]
  bindings: { riskTiers: [limited, high], aliases: [production] }
metadata: { description: A test gate., name: prod-gate }
apiVersion: modelgate.dev/v1
`;
    const a = compilePolicy(parsePolicyDocument(VALID));
    const b = compilePolicy(parsePolicyDocument(reordered));
    expect(b.digest).toBe(a.digest);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const changed = compilePolicy(parsePolicyDocument(VALID.replace('== 0', '< 1')));
    expect(changed.digest).not.toBe(a.digest);
  });

  it('compiles every policy of the shipped pack', () => {
    const dir = new URL('../../../policies/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(['production-gate.yaml', 'staging-gate.yaml']);
    for (const f of files) {
      const compiled = compilePolicy(parsePolicyDocument(readFileSync(new URL(f, dir), 'utf8')));
      expect(`${compiled.name}.yaml`).toBe(f);
    }
  });
});

describe('policyBinds', () => {
  const doc: PolicyDocument = parsePolicyDocument(VALID);
  it('binds by alias, then narrows by risk tier and model tag', () => {
    const t = { alias: 'production', riskTier: 'high', modelTags: [] };
    expect(policyBinds(doc, t)).toBe(true);
    expect(policyBinds(doc, { ...t, alias: 'staging' })).toBe(false);
    expect(policyBinds(doc, { ...t, riskTier: 'minimal' })).toBe(false);
    const tagged = {
      ...doc,
      spec: { ...doc.spec, bindings: { aliases: ['production'], modelTags: ['llm'] } },
    };
    expect(policyBinds(tagged, t)).toBe(false);
    expect(policyBinds(tagged, { ...t, modelTags: ['llm', 'x'] })).toBe(true);
  });
});
