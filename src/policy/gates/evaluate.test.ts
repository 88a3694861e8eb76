import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../audit/canonical-json.js';
import { isModelgateError } from '../../core/errors.js';
import { CEL_ENGINE, evaluatePolicy, factsDigest, replay } from './evaluate.js';
import { type Facts, toCelFacts } from './facts-schema.js';
import { compilePolicy, parsePolicyDocument } from './policy-document.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

// A version that passes the shipped production gate: limited tier, fresh clean scan, complete
// card, one approval from someone who is neither author, requester nor evaluator.
function facts(patch?: (f: Facts) => void): Facts {
  const f: Facts = {
    schemaVersion: 1,
    version: {
      model: 'fraud',
      number: 7,
      digest: DIGEST,
      author: 'alice',
      createdAt: '2026-11-01T00:00:00Z',
      tags: ['candidate'],
      card: { intendedUse: 'fraud scoring', limitations: 'EU cards only', trainingData: 'tx-2025' },
      sourceUri: 's3://models/fraud/7',
    },
    model: { name: 'fraud', ownerTeam: 'risk-ml', riskTier: 'limited', tags: ['payments'] },
    evaluations: [
      {
        id: 'ev-1',
        evaluator: 'artifact-scan',
        evaluatorVersion: '0.1.0',
        status: 'succeeded',
        digest: DIGEST,
        ranBy: 'scanner-bot',
        finishedAt: '2026-11-20T00:00:00Z',
        metrics: { filesScanned: 3, seconds: 0.25 },
      },
    ],
    findings: [],
    lineage: [{ relation: 'trainedOn', kind: 'dataset', target: 'tx-2025' }],
    request: { alias: 'production', requestedBy: 'ci-bot', requestedAt: '2026-11-25T12:00:00Z' },
    approvals: [
      {
        approver: 'carol',
        roles: ['risk-officer'],
        teams: ['risk'],
        decision: 'approve',
        at: '2026-11-25T13:00:00Z',
      },
    ],
    waivers: [],
    now: '2026-11-26T00:00:00Z',
  };
  patch?.(f);
  return f;
}

const approval = (approver: string): Facts['approvals'][number] => ({
  approver,
  roles: ['risk-officer'],
  teams: ['risk'],
  decision: 'approve',
  at: '2026-11-25T13:00:00Z',
});

const pack = (file: string) =>
  compilePolicy(
    parsePolicyDocument(
      readFileSync(new URL(`../../../policies/${file}`, import.meta.url), 'utf8'),
    ),
  );
const production = pack('production-gate.yaml');
const staging = pack('staging-gate.yaml');

const failed = (r: ReturnType<typeof evaluatePolicy>) =>
  r.results.filter((x) => !x.passed).map((x) => x.name);

const policy = (validations: string, variables = '') =>
  compilePolicy(
    parsePolicyDocument(`
apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata: { name: test }
spec:
  bindings: { aliases: [production] }
${variables}
  validations:
${validations}`),
  );

describe('evaluatePolicy with the shipped production gate', () => {
  it('allows a version with a fresh clean scan, a complete card and an independent approval', () => {
    const r = evaluatePolicy(production, facts());
    expect(failed(r)).toEqual([]);
    expect(r.outcome).toBe('allow');
    expect(r.policy).toEqual({ name: 'production-gate', digest: production.digest });
    expect(r.factsDigest).toBe(factsDigest(facts()));
    expect(r.results.every((x) => x.message === null && x.error === undefined)).toBe(true);
  });

  it('denies a malicious finding and names it in the message', () => {
    const r = evaluatePolicy(
      production,
      facts((f) => {
        f.findings.push({
          id: 'fd-42',
          ruleId: 'pickle.unsafe-global/posix.system',
          severity: 'critical',
          title: 'pickle calls posix.system',
          evaluator: 'artifact-scan',
          evaluationId: 'ev-1',
          waived: false,
        });
      }),
    );
    expect(r.outcome).toBe('deny');
    expect(failed(r)).toEqual(['no-unwaived-critical-high']);
    const rule = r.results.find((x) => x.name === 'no-unwaived-critical-high')!;
    expect(rule).toMatchObject({ action: 'deny', reason: 'SecurityFindings' });
    expect(rule.message).toBe(
      '1 unwaived critical/high finding(s): critical pickle.unsafe-global/posix.system "pickle calls posix.system" (finding fd-42)',
    );
  });

  it('allows a waived finding', () => {
    const r = evaluatePolicy(
      production,
      facts((f) => {
        f.findings.push({
          id: 'fd-43',
          ruleId: 'keras.lambda',
          severity: 'high',
          title: 'Lambda layer',
          evaluator: 'artifact-scan',
          evaluationId: 'ev-1',
          waived: true,
          waiverId: 'wv-1',
        });
      }),
    );
    expect(r.outcome).toBe('allow');
  });

  it('does not count the author approving their own version', () => {
    const r = evaluatePolicy(
      production,
      facts((f) => {
        f.approvals = [approval('alice')];
      }),
    );
    expect(r.outcome).toBe('deny');
    expect(failed(r)).toEqual(['independent-approvals']);
    expect(r.results.find((x) => !x.passed)?.message).toMatch(/needs 1 approval .* have: none$/);
  });

  it('does not count the requester or an evaluator either', () => {
    const r = evaluatePolicy(
      production,
      facts((f) => {
        f.approvals = [approval('ci-bot'), approval('scanner-bot')];
      }),
    );
    expect(failed(r)).toEqual(['independent-approvals']);
  });

  it('needs two distinct approvers for the high tier', () => {
    const high = (...approvers: string[]) =>
      evaluatePolicy(
        production,
        facts((f) => {
          f.model.riskTier = 'high';
          f.approvals = approvers.map(approval);
        }),
      );
    expect(high('carol').outcome).toBe('deny');
    expect(high('carol', 'carol').outcome).toBe('deny');
    expect(high('carol', 'alice').outcome).toBe('deny');
    expect(high('carol', 'dave').outcome).toBe('allow');
    expect(high('carol').results.find((x) => !x.passed)?.message).toMatch(
      /^a high-risk model needs 2 approvals from distinct people .* have: carol$/,
    );
  });

  it('denies stale evidence, a scan of another digest, a rejection and the unacceptable tier', () => {
    const stale = facts((f) => {
      f.evaluations[0]!.finishedAt = '2026-10-01T00:00:00Z';
    });
    expect(failed(evaluatePolicy(production, stale))).toEqual(['artifact-scan-fresh']);
    const other = facts((f) => {
      f.evaluations[0]!.digest = `sha256:${'cd'.repeat(32)}`;
    });
    const r = evaluatePolicy(production, other);
    expect(failed(r)).toEqual(['artifact-scan-succeeded', 'artifact-scan-fresh']);
    expect(r.results[1]?.message).toBe(`no successful artifact scan of ${DIGEST} (none ran)`);
    const rejected = facts((f) => {
      f.approvals.push({ ...approval('erin'), decision: 'reject' });
    });
    expect(failed(evaluatePolicy(production, rejected))).toEqual(['no-rejections']);
    const banned = facts((f) => {
      f.model.riskTier = 'unacceptable';
    });
    expect(failed(evaluatePolicy(production, banned))).toEqual(['tier-promotable']);
  });

  it('denies an incomplete model card, naming the missing fields', () => {
    const r = evaluatePolicy(
      production,
      facts((f) => {
        f.version.card = { intendedUse: 'x', limitations: '' };
      }),
    );
    expect(r.results.find((x) => !x.passed)?.message).toBe(
      'model card lacks required field(s) (each a non-empty text): limitations, trainingData',
    );
  });

  it('counts a field that is present but not text with something in it as missing', () => {
    // Issue 17, finding 5: {}, [], false and the like were any value that is not '' or null.
    const junk: Record<string, unknown>[] = [
      { intendedUse: {}, limitations: [], trainingData: false },
      { intendedUse: 0, limitations: null, trainingData: ' \n\t' },
      { intendedUse: ['fraud'], limitations: { text: 'x' }, trainingData: true },
    ];
    for (const card of junk)
      for (const compiled of [false, true]) {
        const r = evaluatePolicy(
          production,
          facts((f) => {
            f.version.card = card;
          }),
          undefined,
          { compiled },
        );
        const rule = r.results.find((x) => x.name === 'model-card-complete');
        expect(rule, JSON.stringify(card)).toMatchObject({
          passed: false,
          message:
            'model card lacks required field(s) (each a non-empty text): intendedUse, limitations, trainingData',
        });
      }
    const ok = evaluatePolicy(
      production,
      facts((f) => {
        f.version.card = { intendedUse: 'scoring', limitations: ' EU only', trainingData: 'x' };
      }),
    );
    expect(ok.results.find((x) => x.name === 'model-card-complete')?.passed).toBe(true);
  });
});

describe('evaluatePolicy semantics', () => {
  it('counts a runtime error as a failed rule and denies', () => {
    const p = policy(
      `    - { name: card-owner, expression: "version.card.owner == 'risk'", message: card has no owner, reason: Documentation, action: deny }
    - { name: first-finding, expression: "variables.first == 'x'", message: first, reason: Test, action: deny }`,
      `  variables:\n    - { name: first, expression: "findings[0].id" }`,
    );
    const r = evaluatePolicy(p, facts());
    expect(r.outcome).toBe('deny');
    expect(r.results[0]).toMatchObject({
      name: 'card-owner',
      passed: false,
      message: 'card has no owner',
      error: 'No such key: owner',
    });
    expect(r.results[1]?.passed).toBe(false);
    expect(r.results[1]?.error).toMatch(/^variables\.first: .*index out of bounds/);
  });

  it('reports warn and audit failures without denying', () => {
    const p =
      policy(`    - { name: w, expression: "false", message: warned, reason: Test, action: warn }
    - { name: a, expression: "false", message: audited, reason: Test, action: audit }`);
    const r = evaluatePolicy(p, facts());
    expect(r.outcome).toBe('allow');
    expect(r.results.map((x) => [x.passed, x.message])).toEqual([
      [false, 'warned'],
      [false, 'audited'],
    ]);
  });

  it('falls back to the static message when the messageExpression fails', () => {
    const p = policy(
      `    - { name: m, expression: "false", message: static, messageExpression: "findings[0].id", reason: Test, action: deny }`,
    );
    expect(evaluatePolicy(p, facts()).results[0]?.message).toMatch(
      /^static \(messageExpression failed: .*index out of bounds/,
    );
  });

  it('sees ints as ints, metrics as doubles and timestamps as timestamps', () => {
    const p = policy(`    - name: types
      expression: >-
        version.number == 7 && evaluations[0].metrics['seconds'] < 1.0
        && request.requestedAt < now && now - version.createdAt == duration('600h')
        && lineage.exists(l, l.kind == 'dataset') && has(version.sourceUri)
      message: m
      reason: Test
      action: deny`);
    expect(evaluatePolicy(p, facts()).results[0]).toMatchObject({ passed: true, message: null });
  });

  it('replays canonical facts to the same result', () => {
    const f = facts((x) => {
      x.approvals = [approval('alice')];
    });
    const first = evaluatePolicy(production, f);
    const again = replay(production, canonicalize(f));
    expect(again).toEqual(first);
    expect(again.outcome).toBe('deny');
  });

  it('names the installed engine and its version', () => {
    const pkg = JSON.parse(
      readFileSync(
        new URL('../../../node_modules/@marcbachmann/cel-js/package.json', import.meta.url),
        'utf8',
      ),
    );
    expect(CEL_ENGINE).toBe(`@marcbachmann/cel-js@${pkg.version}`);
    expect(evaluatePolicy(staging, facts()).engine).toBe(CEL_ENGINE);
  });

  it('is deterministic and independent of key order in the facts', () => {
    // Rebuilds every object with its keys in a shuffled order.
    const reorder = (v: unknown, seed: number): unknown => {
      if (Array.isArray(v)) return v.map((x) => reorder(x, seed));
      if (typeof v !== 'object' || v === null) return v;
      const keys = Object.keys(v);
      const shuffled = keys
        .map((k, i) => ({ k, r: (i * 7919 + seed) % (keys.length + 3) }))
        .sort((a, b) => a.r - b.r || a.k.localeCompare(b.k))
        .map((x) => x.k);
      return Object.fromEntries(
        shuffled.map((k) => [k, reorder((v as Record<string, unknown>)[k], seed)]),
      );
    };
    const person = fc.constantFrom('alice', 'bob', 'carol', 'ci-bot', 'scanner-bot');
    const arbFacts = fc
      .record({
        tier: fc.constantFrom('minimal', 'limited', 'high', 'unacceptable'),
        findings: fc.array(
          fc.record({
            severity: fc.constantFrom('critical', 'high', 'medium', 'low', 'info'),
            waived: fc.boolean(),
          }),
          { maxLength: 4 },
        ),
        approvals: fc.array(
          fc.record({ approver: person, reject: fc.boolean() }, { requiredKeys: ['approver'] }),
          { maxLength: 3 },
        ),
        scanAgeDays: fc.integer({ min: 0, max: 60 }),
        card: fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string(), fc.integer())),
      })
      .map((g) =>
        facts((f) => {
          f.model.riskTier = g.tier;
          f.findings = g.findings.map((x, i) => ({
            id: `fd-${i}`,
            ruleId: `rule.${i}`,
            severity: x.severity,
            title: `finding ${i}`,
            evaluator: 'artifact-scan',
            evaluationId: 'ev-1',
            waived: x.waived,
            ...(x.waived && { waiverId: `wv-${i}` }),
          }));
          f.approvals = g.approvals.map((a) => ({
            ...approval(a.approver),
            decision: a.reject ? 'reject' : 'approve',
          }));
          f.evaluations[0]!.finishedAt = new Date(
            Date.parse(f.now) - g.scanAgeDays * 86_400_000,
          ).toISOString();
          f.version.card = { ...g.card, ...f.version.card };
        }),
      );
    const cardKeys = policy(`    - name: keys
      expression: "false"
      messageExpression: "version.card.map(k, k).join(',')"
      reason: Test
      action: audit`);
    fc.assert(
      fc.property(arbFacts, fc.nat(1000), (f, seed) => {
        const shuffled = reorder(f, seed) as Facts;
        for (const p of [production, staging, cardKeys]) {
          const r = evaluatePolicy(p, f);
          expect(evaluatePolicy(p, f)).toEqual(r);
          expect(evaluatePolicy(p, shuffled)).toEqual(r);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('toCelFacts', () => {
  it('converts ints to BigInt, times to Date and drops absent optional fields', () => {
    const cel = toCelFacts(
      facts((f) => {
        f.version.sourceUri = null;
      }),
    ) as Record<string, Record<string, unknown>>;
    expect(cel.version?.number).toBe(7n);
    expect(cel.version?.createdAt).toEqual(new Date('2026-11-01T00:00:00Z'));
    expect(cel.now).toEqual(new Date('2026-11-26T00:00:00Z'));
    expect('sourceUri' in (cel.version ?? {})).toBe(false);
  });

  it('reads every RFC 3339 time as Date.parse does, including out-of-range fields', () => {
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    fc.assert(
      fc.property(
        fc.record({
          year: fc.integer({ min: 0, max: 9999 }),
          month: fc.integer({ min: 0, max: 13 }),
          day: fc.integer({ min: 0, max: 32 }),
          hour: fc.integer({ min: 0, max: 25 }),
          minute: fc.integer({ min: 0, max: 60 }),
          second: fc.integer({ min: 0, max: 60 }),
          ms: fc.integer({ min: 0, max: 999 }),
          zone: fc.constantFrom('Z', '+02:00', '-05:30'),
          fraction: fc.constantFrom(3, 0, 1, 6),
        }),
        (t) => {
          const frac =
            t.fraction === 0 ? '' : `.${pad(t.ms, 3).padEnd(t.fraction, '0').slice(0, t.fraction)}`;
          const s = `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)}T${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}${frac}${t.zone}`;
          const expected = Date.parse(s);
          if (Number.isNaN(expected)) {
            expect(() => toCelFacts(facts((f) => Object.assign(f, { now: s })))).toThrow(
              /RFC 3339/,
            );
            return;
          }
          const cel = toCelFacts(facts((f) => Object.assign(f, { now: s })));
          expect((cel.now as Date).getTime(), s).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps a __proto__ card key as a key', () => {
    const f = facts();
    f.version.card = JSON.parse('{"__proto__": {"polluted": true}}');
    const p = policy(
      `    - { name: k, expression: "'__proto__' in version.card", message: m, reason: Test, action: deny }`,
    );
    expect(evaluatePolicy(p, f).outcome).toBe('allow');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['version.number', (f: Facts) => Object.assign(f.version, { number: 7.5 }), /integer/],
    ['now', (f: Facts) => Object.assign(f, { now: '26 Nov 2026' }), /RFC 3339/],
    ['version.autor', (f: Facts) => Object.assign(f.version, { autor: 'x' }), /not a known/],
    // A name every object inherits is not a field either.
    ['model.toString', (f: Facts) => Object.assign(f.model, { toString: 'x' }), /not a known/],
    ['model.riskTier', (f: Facts) => Object.assign(f.model, { riskTier: undefined }), /required/],
    ['findings', (f: Facts) => Object.assign(f, { findings: {} }), /list/],
    [
      'evaluations[0].metrics.seconds',
      (f: Facts) => Object.assign(f.evaluations[0]!.metrics, { seconds: '1' }),
      /number/,
    ],
    ['schemaVersion', (f: Facts) => Object.assign(f, { schemaVersion: 2 }), /must be 1/],
  ])('refuses facts with a bad %s', (path, patch, message) => {
    try {
      toCelFacts(facts(patch));
      expect.unreachable();
    } catch (e) {
      expect(isModelgateError(e, 'VALIDATION_FAILED')).toBe(true);
      expect((e as Error).message).toMatch(
        new RegExp(`^facts ${path.replace(/[[\].]/g, '\\$&')}: `),
      );
      expect((e as Error).message).toMatch(message);
    }
  });

  it('digests facts independently of key order', () => {
    const f = facts();
    const reversed = JSON.parse(
      JSON.stringify(f, (_k, v) =>
        v && typeof v === 'object' && !Array.isArray(v)
          ? Object.fromEntries(Object.entries(v).reverse())
          : v,
      ),
    );
    expect(factsDigest(reversed)).toBe(factsDigest(f));
  });
});
