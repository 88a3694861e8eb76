import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileCel, Fallback } from './compiled-cel.js';
import { evaluatePolicy } from './evaluate.js';
import {
  createFactsEnvironment,
  FACT_MESSAGE_TYPES,
  type Facts,
  toCelFacts,
} from './facts-schema.js';
import { compilePolicy, PolicyVariables, parsePolicyDocument } from './policy-document.js';

// Differential tests: a compiled expression either returns exactly what cel-js returns on the
// same facts, or throws Fallback; it never returns a value where cel-js fails.

const POLICIES = join(import.meta.dirname, '..', '..', '..', 'policies');
const shipped = ['production-gate.yaml', 'staging-gate.yaml'].map((f) =>
  compilePolicy(parsePolicyDocument(readFileSync(join(POLICIES, f), 'utf8'))),
);

const NOW = Date.parse('2026-11-26T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const DIGESTS = [`sha256:${'ab'.repeat(32)}`, `sha256:${'cd'.repeat(32)}`];
const PEOPLE = ['alice', 'bob', 'carol', 'ci-bot', ''];
const word = fc.constantFrom('', 'a', 'asr', 'intendedUse', 'limitations', 'é', '💥', 'x y');

// JSON values as cards hold them: doubles that are integers too, nested lists and objects.
const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -3, max: 3 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }),
    word,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(word, tie('value'), { maxKeys: 3 }),
  ),
})).value;

const arbFacts: fc.Arbitrary<Facts> = fc
  .record({
    digest: fc.constantFrom(...DIGESTS),
    number: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(Number.MAX_SAFE_INTEGER)),
    author: fc.constantFrom(...PEOPLE),
    tier: fc.constantFrom('minimal', 'limited', 'high', 'unacceptable'),
    tags: fc.array(word, { maxLength: 3 }),
    card: fc.dictionary(word, jsonValue, { maxKeys: 4 }),
    evaluations: fc.array(
      fc.record({
        evaluator: fc.constantFrom('artifact-scan', 'llm-redteam', 'import/garak'),
        status: fc.constantFrom('queued', 'running', 'succeeded', 'failed'),
        digest: fc.constantFrom(...DIGESTS),
        ranBy: fc.constantFrom(...PEOPLE),
        ageHours: fc.option(fc.integer({ min: -10, max: 2000 })),
        metrics: fc.dictionary(word, fc.double({ noNaN: true, noDefaultInfinity: true }), {
          maxKeys: 3,
        }),
      }),
      { maxLength: 3 },
    ),
    findings: fc.array(
      fc.record({
        severity: fc.constantFrom('critical', 'high', 'medium', 'low', 'info'),
        waived: fc.boolean(),
        title: word,
      }),
      { maxLength: 3 },
    ),
    approvals: fc.array(
      fc.record({
        approver: fc.constantFrom(...PEOPLE),
        decision: fc.constantFrom('approve' as const, 'reject' as const),
        roles: fc.array(word, { maxLength: 2 }),
      }),
      { maxLength: 3 },
    ),
    requester: fc.constantFrom(...PEOPLE),
  })
  .map(
    (g): Facts => ({
      schemaVersion: 1,
      version: {
        model: 'fraud',
        number: g.number,
        digest: g.digest,
        author: g.author,
        createdAt: iso(NOW - 86_400_000),
        tags: g.tags,
        card: g.card,
      },
      model: { name: 'fraud', ownerTeam: 'risk', riskTier: g.tier, tags: ['payments'] },
      evaluations: g.evaluations.map((e, i) => ({
        id: `ev-${i}`,
        evaluator: e.evaluator,
        evaluatorVersion: '1',
        status: e.status,
        digest: e.digest,
        ranBy: e.ranBy,
        ...(e.ageHours !== null && { finishedAt: iso(NOW - e.ageHours * 3_600_000) }),
        metrics: e.metrics,
      })),
      findings: g.findings.map((f, i) => ({
        id: `fd-${i}`,
        ruleId: `rule.${i}`,
        severity: f.severity,
        title: f.title,
        evaluator: 'artifact-scan',
        evaluationId: 'ev-0',
        waived: f.waived,
        ...(f.waived && { waiverId: `wv-${i}` }),
      })),
      lineage: [],
      request: { alias: 'production', requestedBy: g.requester, requestedAt: iso(NOW - 60_000) },
      approvals: g.approvals.map((a) => ({
        approver: a.approver,
        roles: a.roles,
        teams: [],
        decision: a.decision,
        at: iso(NOW - 30_000),
      })),
      waivers: [],
      now: iso(NOW),
    }),
  );

const facts = (patch: (f: Facts) => void): Facts => {
  const f = fc.sample(arbFacts, { numRuns: 1, seed: 1 })[0]!;
  patch(f);
  return f;
};

// Values made comparable: ints, doubles (-0 kept apart from 0), timestamps, durations, lists,
// maps and messages each tagged, so that toEqual cannot confuse them.
function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return { int: v.toString() };
  if (typeof v === 'number') return { double: Object.is(v, -0) ? '-0' : v };
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Date) return { timestamp: v.getTime() };
  if (Array.isArray(v)) return { list: v.map(normalize) };
  if (v instanceof Map) return { map: [...v].map(([k, x]) => [normalize(k), normalize(x)]) };
  const name = v.constructor?.name;
  if (name === 'Duration') return { duration: String(v) };
  return {
    message: name,
    fields: Object.entries(v).map(([k, x]) => [k, normalize(x)]),
  };
}

type Outcome = { value: unknown } | { error: true };

function outcomes(
  cel: (ctx: Record<string, unknown>) => unknown,
  fast: ReturnType<typeof compileCel>,
  ctx: Record<string, unknown>,
  variable: (name: string) => unknown = () => {
    throw new Fallback('no variables here');
  },
): { reference: Outcome; compiled: Outcome | 'fallback' } {
  let reference: Outcome;
  try {
    reference = { value: normalize(cel(ctx)) };
  } catch {
    reference = { error: true };
  }
  let compiled: Outcome | 'fallback';
  try {
    compiled = { value: normalize(fast!({ ctx, variable, locals: [] })) };
  } catch (e) {
    if (!(e instanceof Fallback)) throw e;
    compiled = 'fallback';
  }
  return { reference, compiled };
}

// Random well-typed expressions over the facts, from a small typed grammar. Each generator
// takes the comprehension variables in scope.
type Scope = { name: string; type: string }[];
class Grammar {
  #n = 0;
  constructor(private readonly rnd: () => number) {}
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }
  fresh() {
    return `x${this.#n++}`;
  }
  of(scope: Scope, type: string) {
    return scope.filter((s) => s.type === type).map((s) => s.name);
  }
  str(d: number, s: Scope): string {
    const leaves = [
      "'a'",
      "''",
      "'💥é'",
      'version.digest',
      'version.author',
      'model.riskTier',
      'request.requestedBy',
      ...this.of(s, 'string'),
      ...this.of(s, 'Evaluation').flatMap((e) => [`${e}.id`, `${e}.status`, `${e}.ranBy`]),
      ...this.of(s, 'Finding').flatMap((f) => [`${f}.severity`, `${f}.title`]),
    ];
    if (d <= 0) return this.pick(leaves);
    return this.pick([
      () => this.pick(leaves),
      () => `${this.str(d - 1, s)} + ${this.str(d - 1, s)}`,
      () => `string(${this.int(d - 1, s)})`,
      () => `string(${this.bool(d - 1, s)})`,
      () => `(${this.bool(d - 1, s)} ? ${this.str(d - 1, s)} : ${this.str(d - 1, s)})`,
      () => `${this.strs(d - 1, s)}.join(', ')`,
      () => `${this.strs(d - 1, s)}.join()`,
      () => `${this.strs(d - 1, s)}[${this.int(d - 1, s)}]`,
    ])();
  }
  int(d: number, s: Scope): string {
    const leaves = [
      '0',
      '1',
      '-1',
      '3',
      '9223372036854775807',
      '-9223372036854775808',
      'version.number',
    ];
    if (d <= 0) return this.pick(leaves);
    return this.pick([
      () => this.pick(leaves),
      () => `size(${this.strs(d - 1, s)})`,
      () => `size(${this.str(d - 1, s)})`,
      () => `${this.str(d - 1, s)}.size()`,
      () => `size(version.card)`,
      () => `${this.int(d - 1, s)} ${this.pick(['+', '-', '*', '/', '%'])} ${this.int(d - 1, s)}`,
      () => `-${this.int(d - 1, s)}`,
    ])();
  }
  double(d: number, s: Scope): string {
    const leaves = [
      '0.5',
      '-0.0',
      '1e308',
      ...this.of(s, 'Evaluation').map((e) => `${e}.metrics['asr']`),
    ];
    if (d <= 0) return this.pick(leaves);
    return this.pick([
      () => this.pick(leaves),
      () => `${this.double(d - 1, s)} ${this.pick(['+', '-', '*'])} ${this.double(d - 1, s)}`,
      () => `-${this.double(d - 1, s)}`,
    ])();
  }
  timestamp(s: Scope): string {
    return this.pick([
      'now',
      'version.createdAt',
      'request.requestedAt',
      ...this.of(s, 'Evaluation').map((e) => `${e}.finishedAt`),
    ]);
  }
  strs(d: number, s: Scope): string {
    const leaves = ['[]', "['a', 'b']", 'version.tags', 'model.tags'];
    if (d <= 0) return this.pick(leaves);
    const x = this.fresh();
    return this.pick([
      () => this.pick(leaves),
      () => `[${this.str(d - 1, s)}, ${this.str(d - 1, s)}]`,
      () => `${this.strs(d - 1, s)} + ${this.strs(d - 1, s)}`,
      () =>
        `${this.strs(d - 1, s)}.filter(${x}, ${this.bool(d - 1, [...s, { name: x, type: 'string' }])})`,
      () =>
        `${this.strs(d - 1, s)}.map(${x}, ${this.str(d - 1, [...s, { name: x, type: 'string' }])})`,
      () => `evaluations.map(${x}, ${this.str(d - 1, [...s, { name: x, type: 'Evaluation' }])})`,
      () =>
        `findings.map(${x}, ${this.bool(d - 1, [...s, { name: x, type: 'Finding' }])}, ${this.str(d - 1, [...s, { name: x, type: 'Finding' }])})`,
      () => `approvals.map(${x}, ${x}.approver)`,
    ])();
  }
  dyn(d: number, s: Scope): string {
    return this.pick([
      `version.card[${this.str(d, s)}]`,
      `version.card.intendedUse`,
      `version.card['a']`,
    ]);
  }
  bool(d: number, s: Scope): string {
    const leaves = ['true', 'false', ...this.of(s, 'bool')];
    if (d <= 0) return this.pick(leaves);
    const x = this.fresh();
    const e = [...s, { name: x, type: 'Evaluation' }];
    const f = [...s, { name: x, type: 'Finding' }];
    const t = [...s, { name: x, type: 'string' }];
    return this.pick([
      () => this.pick(leaves),
      () =>
        `${this.str(d - 1, s)} ${this.pick(['==', '!=', '<', '>=', '>'])} ${this.str(d - 1, s)}`,
      () =>
        `${this.int(d - 1, s)} ${this.pick(['==', '!=', '<', '<=', '>'])} ${this.int(d - 1, s)}`,
      () => `${this.int(d - 1, s)} ${this.pick(['==', '<', '>='])} ${this.double(d - 1, s)}`,
      () => `${this.double(d - 1, s)} ${this.pick(['==', '!=', '>'])} ${this.int(d - 1, s)}`,
      () => `${this.double(d - 1, s)} ${this.pick(['==', '!=', '<='])} ${this.double(d - 1, s)}`,
      () => `${this.bool(d - 1, s)} ${this.pick(['&&', '||', '==', '!='])} ${this.bool(d - 1, s)}`,
      () => `!${this.bool(d - 1, s)}`,
      () => `(${this.bool(d - 1, s)} ? ${this.bool(d - 1, s)} : ${this.bool(d - 1, s)})`,
      () => `${this.str(d - 1, s)} in ${this.strs(d - 1, s)}`,
      () => `${this.str(d - 1, s)} in version.card`,
      () => `has(version.card.${this.pick(['a', 'intendedUse'])})`,
      () =>
        `${this.dyn(d - 1, s)} ${this.pick(['==', '!='])} ${this.pick(['null', "''", "'a'", '1', '1.0', 'true', `${this.str(d - 1, s)}`, `${this.dyn(d - 1, s)}`])}`,
      () => `${this.dyn(d - 1, s)} in ${this.pick(["['a', '']", '[1, 2]', '[null]'])}`,
      () => `${this.timestamp(s)} ${this.pick(['<', '<=', '>', '=='])} ${this.timestamp(s)}`,
      () =>
        `${this.timestamp(s)} - ${this.timestamp(s)} ${this.pick(['<=', '>', '<'])} duration('${this.pick(['720h', '1h30m', '0s', '-5m', '1.5s'])}')`,
      () =>
        `${this.str(d - 1, s)}.${this.pick(['startsWith', 'endsWith', 'contains'])}(${this.str(d - 1, s)})`,
      () =>
        `evaluations.${this.pick(['exists', 'all', 'exists_one'])}(${x}, ${this.evalBool(d - 1, e, x)})`,
      () => `findings.${this.pick(['exists', 'all'])}(${x}, ${this.findingBool(d - 1, f, x)})`,
      () => `size(evaluations.filter(${x}, ${this.evalBool(d - 1, e, x)})) > 0`,
      () => `${this.strs(d - 1, s)}.exists(${x}, ${this.bool(d - 1, t)})`,
      () => `approvals.exists(${x}, ${x}.decision == 'reject' && ${x}.approver != version.author)`,
    ])();
  }
  evalBool(d: number, s: Scope, e: string): string {
    return this.pick([
      () => `${e}.status == 'succeeded'`,
      () => `${e}.digest == version.digest`,
      () => `has(${e}.finishedAt)`,
      () => `now - ${e}.finishedAt <= duration('720h')`,
      () => `has(${e}.finishedAt) && now - ${e}.finishedAt <= duration('720h')`,
      () => `'asr' in ${e}.metrics`,
      () => `${e}.metrics['asr'] < 0.5`,
      () => `size(${e}.metrics) == 0`,
      () => this.bool(d, s),
    ])();
  }
  findingBool(d: number, s: Scope, f: string): string {
    return this.pick([
      () => `${f}.severity in ['critical', 'high'] && !${f}.waived`,
      () => `has(${f}.waiverId)`,
      () => `${f}.waiverId == 'wv-0'`,
      () => this.bool(d, s),
    ])();
  }
}

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('compiled CEL expressions', () => {
  const env = createFactsEnvironment();

  it('compile every expression of the shipped pack', () => {
    for (const p of shipped) {
      for (const v of p.variables) expect(compileCel(v.program, FACT_MESSAGE_TYPES)).not.toBeNull();
      for (const v of p.validations) {
        expect(compileCel(v.program, FACT_MESSAGE_TYPES)).not.toBeNull();
        if (v.messageProgram)
          expect(compileCel(v.messageProgram, FACT_MESSAGE_TYPES)).not.toBeNull();
      }
    }
  });

  it('leave what they do not handle to cel-js: null at compile time', () => {
    for (const text of [
      "version.card.map(k, k).join(',')", // a comprehension over a map
      "{'a': 1}['a'] == 1", // a map literal
      '1.0 / 2.0 == 0.5', // division of doubles
      "string(1.5) == '1.5'", // double formatting
      "version.card.a + 'x' == 'ax'", // arithmetic on dyn
      "'a'.matches('a')", // regular expressions
      'evaluations == evaluations', // equality of messages
    ]) {
      const p = env.parse(text);
      expect(p.check().valid, text).toBe(true);
      expect(compileCel(p, FACT_MESSAGE_TYPES), text).toBeNull();
    }
  });

  it('compare dyn values with literals as cel-js does, for every pair of scalar kinds', () => {
    // JSON values of a card against CEL literals: null, bools, ints, doubles (-0 too), strings,
    // and lists and maps, which equal no scalar.
    const values: unknown[] = [null, true, false, 0, -0, 1, 1.5, '', 'a', [], { a: 1 }];
    const literals = ['null', 'true', 'false', '0', '1', '0.0', '-0.0', '1.0', '1.5', "''", "'a'"];
    let decided = 0;
    for (const value of values)
      for (const lit of literals)
        for (const text of [
          `version.card.k == ${lit}`,
          `version.card.k != ${lit}`,
          `${lit} == version.card.k`,
          `version.card.k in [${lit}]`,
          `version.card.k in [${lit}, version.card.k]`,
          `${lit} in [version.card.k]`,
        ]) {
          const p = env.parse(text);
          if (!p.check().valid) continue;
          const fast = compileCel(p, FACT_MESSAGE_TYPES);
          expect(fast, text).not.toBeNull();
          const f = facts((x) => {
            x.version.card = { k: value };
          });
          const o = outcomes(p, fast, toCelFacts(f));
          if (o.compiled === 'fallback') continue;
          decided++;
          expect(o.compiled, `${text} with k = ${JSON.stringify(value)}`).toEqual(o.reference);
        }
    expect(decided).toBeGreaterThan(500);
  });

  it('tell the kinds of dyn values apart with type() as cel-js does', () => {
    // How a rule asks for a non-empty string rather than any value (issue 17, finding 5).
    const values: unknown[] = [null, true, 0, 1.5, '', 'a', [], ['a'], {}, { a: 1 }];
    const kinds = ['string', 'bool', 'int', 'double', 'null_type', 'list', 'map'];
    for (const value of values)
      for (const kind of kinds)
        for (const text of [
          `type(version.card.k) == ${kind}`,
          `${kind} != type(version.card.k)`,
          `['k'].exists(f, type(version.card[f]) != ${kind} || version.card[f] == '')`,
        ]) {
          const p = env.parse(text);
          expect(p.check().valid, text).toBe(true);
          const fast = compileCel(p, FACT_MESSAGE_TYPES);
          expect(fast, text).not.toBeNull();
          const f = facts((x) => {
            x.version.card = { k: value };
          });
          const o = outcomes(p, fast, toCelFacts(f));
          expect(o.compiled, `${text} with k = ${JSON.stringify(value)}`).toEqual(o.reference);
        }
  });

  it('answer has() on a message like cel-js for names every object inherits', () => {
    // Found in review: a plain property read saw Object.prototype's members as fields.
    const f = toCelFacts(facts(() => {}));
    for (const text of [
      'has(version.toString)',
      'has(version.constructor)',
      'has(version.__proto__)',
      'has(request.valueOf) || has(model.hasOwnProperty)',
      'evaluations.exists(e, has(e.isPrototypeOf))',
      'has(version.sourceUri)',
      'has(version.digest)',
    ]) {
      const p = env.parse(text);
      expect(p.check().valid, text).toBe(true);
      const fast = compileCel(p, FACT_MESSAGE_TYPES);
      expect(fast, text).not.toBeNull();
      const o = outcomes(p, fast, f);
      expect(o.compiled, text).toEqual(o.reference);
    }
  });

  it('leave an invalid duration literal to cel-js, which fails the rule that reads it', () => {
    // Found by the policy fuzz target: the literal is only checked when evaluated.
    const p = env.parse("now - version.createdAt < duration('soon')");
    expect(p.check().valid).toBe(true);
    const fast = compileCel(p, FACT_MESSAGE_TYPES);
    expect(fast).not.toBeNull();
    const o = outcomes(p, fast, toCelFacts(facts(() => {})));
    expect(o).toEqual({ reference: { error: true }, compiled: 'fallback' });
  });

  it('return what cel-js returns, or fall back, on random expressions and facts', () => {
    let decided = 0;
    let total = 0;
    let expressions = 0;
    fc.assert(
      fc.property(fc.integer(), fc.array(arbFacts, { minLength: 4, maxLength: 4 }), (seed, fs) => {
        const g = new Grammar(mulberry32(seed));
        const text = g.pick([
          () => g.bool(3, []),
          () => g.str(3, []),
          () => g.int(3, []),
          () => g.strs(3, []),
        ])();
        const p = env.parse(text);
        const checked = p.check();
        if (!checked.valid) return; // the grammar can write what the checker refuses
        const fast = compileCel(p, FACT_MESSAGE_TYPES);
        if (!fast) return;
        expressions++;
        for (const f of fs) {
          const { reference, compiled } = outcomes(p, fast, toCelFacts(f));
          total++;
          if (compiled === 'fallback') continue;
          decided++;
          expect(compiled, `${text} on ${JSON.stringify(f)}`).toEqual(reference);
        }
      }),
      { numRuns: 1500 },
    );
    // The comparison means something only if the compiled path mostly decides by itself.
    expect(expressions).toBeGreaterThan(700);
    expect(decided / total).toBeGreaterThan(0.6);
  });

  it('decide the shipped pack like cel-js, rule by rule and message by message', () => {
    let decided = 0;
    let total = 0;
    fc.assert(
      fc.property(arbFacts, (f) => {
        for (const p of shipped) {
          expect(evaluatePolicy(p, f, '', { compiled: true })).toEqual(evaluatePolicy(p, f, ''));
          // Expression by expression, both sides reading the variables cel-js computed.
          const context: Record<string, unknown> = toCelFacts(f);
          const variables = new PolicyVariables((name) =>
            p.variables.find((v) => v.name === name)!.program(context),
          );
          context.variables = variables;
          const variable = (name: string) => {
            try {
              return variables.get(name);
            } catch {
              throw new Fallback(`variables.${name} failed`);
            }
          };
          for (const v of p.validations)
            for (const program of [v.program, v.messageProgram]) {
              if (!program) continue;
              const o = outcomes(
                program,
                compileCel(program, FACT_MESSAGE_TYPES),
                context,
                variable,
              );
              total++;
              if (o.compiled === 'fallback') continue;
              decided++;
              expect(o.compiled).toEqual(o.reference);
            }
        }
      }),
      { numRuns: 400 },
    );
    expect(decided / total).toBeGreaterThan(0.8);
  });
});
