import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { canonicalize } from '../../audit/canonical-json.js';
import { ModelgateError } from '../../core/errors.js';
import { type Compiled, compileCel, Fallback, type Frame } from './compiled-cel.js';
import { outsideBounds, policyCost } from './cost.js';
import {
  FACT_MESSAGE_TYPES,
  type Facts,
  type SharedConversions,
  toCelFacts,
} from './facts-schema.js';
import { type CompiledPolicy, type GateAction, PolicyVariables } from './policy-document.js';

/** The outcome of one validation of a policy on one facts snapshot. */
export interface RuleResult {
  name: string;
  passed: boolean;
  action: GateAction;
  reason: string;
  /** Why the rule failed; null when it passed. */
  message: string | null;
  /** The evaluation error, when the expression could not be evaluated (the rule then failed). */
  error?: string;
  /** The waiver (from the facts) that accepts this failure; a waived rule does not deny. */
  waiverId?: string;
}

/** The outcome of a policy on one facts snapshot: what a decision record stores. */
export interface GateResult {
  policy: { name: string; digest: string };
  /** The CEL engine and its version, e.g. `@marcbachmann/cel-js@8.0.0`. */
  engine: string;
  /** `sha256:<hex>` of the RFC 8785 canonical JSON of the facts. */
  factsDigest: string;
  results: RuleResult[];
  /**
   * deny when any failed rule has action deny and no waiver in the facts accepts it; warn and
   * audit rules never deny.
   */
  outcome: 'allow' | 'deny';
}

// The installed engine's version, read once: it is part of a decision's identity, so it must
// be what actually ran, not what a constant claims. The package does not export its
// package.json, so walk up from its resolved entry point.
function installedEngine(): string {
  const name = '@marcbachmann/cel-js';
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return `${name}@${pkg.version}`;
    } catch {
      // No package.json at this level: keep walking up.
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package.json of ${name}`);
    dir = up;
  }
}

/** The CEL engine gates run on, as `name@version` of the installed package. */
export const CEL_ENGINE = installedEngine();

/** `sha256:<hex>` of the RFC 8785 canonical JSON of a facts snapshot. */
export function factsDigest(facts: Facts): string {
  return `sha256:${createHash('sha256').update(canonicalize(facts)).digest('hex')}`;
}

function describe(e: unknown): string {
  const err = e as { summary?: unknown; message?: unknown };
  if (typeof err?.summary === 'string') return err.summary;
  if (typeof err?.message === 'string') return err.message.split('\n')[0] ?? err.message;
  return String(e);
}

// A policy's variable programs by name, built once per compiled policy rather than per evaluation.
const variablePrograms = new WeakMap<
  CompiledPolicy,
  Map<string, CompiledPolicy['variables'][number]['program']>
>();
function programsOf(compiled: CompiledPolicy) {
  let m = variablePrograms.get(compiled);
  if (!m) {
    m = new Map(compiled.variables.map((v) => [v.name, v.program]));
    variablePrograms.set(compiled, m);
  }
  return m;
}

// A policy's expressions compiled to closures (compiled-cel.ts), or null when any of them
// uses something the compiler leaves to cel-js.
interface FastPolicy {
  variables: Map<string, Compiled>;
  validations: { program: Compiled; message: Compiled | null }[];
}
const fastPolicies = new WeakMap<CompiledPolicy, FastPolicy | null>();
function fastOf(compiled: CompiledPolicy): FastPolicy | null {
  let fast = fastPolicies.get(compiled);
  if (fast !== undefined) return fast;
  const compile = (p: unknown) => compileCel(p, FACT_MESSAGE_TYPES);
  fast = { variables: new Map(), validations: [] };
  for (const v of compiled.variables) {
    const c = compile(v.program);
    if (!c) fast = null;
    else fast?.variables.set(v.name, c);
  }
  for (const v of compiled.validations) {
    const program = compile(v.program);
    const message = v.messageProgram ? compile(v.messageProgram) : null;
    if (!program || (v.messageProgram && !message)) fast = null;
    else fast?.validations.push({ program, message });
  }
  fastPolicies.set(compiled, fast);
  return fast;
}

// Whether a compiled policy is over the cost limit, worked out once per compiled policy.
const costProblems = new WeakMap<CompiledPolicy, string | null>();
function costProblem(compiled: CompiledPolicy): string | undefined {
  let p = costProblems.get(compiled);
  if (p === undefined) {
    const first = policyCost(compiled.document).problems[0];
    p = first ? `${first.path}: ${first.message}` : null;
    costProblems.set(compiled, p);
  }
  return p ?? undefined;
}

/** Whether a rule result denies the gate: a failed, unwaived deny rule. */
export const blocks = (r: RuleResult): boolean =>
  !r.passed && r.action === 'deny' && r.waiverId === undefined;

/**
 * Evaluates every validation of a compiled policy on a facts snapshot. Pure: `now` comes from
 * the facts, nothing is read or written. A rule whose expression errors (a missing field, a
 * failing variable) counts as failed, never as passed. Throws VALIDATION_FAILED for facts that
 * do not match the facts schema.
 */
export function evaluatePolicy(
  compiled: CompiledPolicy,
  facts: Facts,
  /** The facts' digest when the caller has it (computing it is a fifth of the cost). */
  known?: string,
  /**
   * compiled: evaluate with the policy's compiled closures where they can decide, and with
   * cel-js where they cannot (the result is the same; a what-if over a portfolio is faster).
   * shared: conversions shared with the other snapshots of a batch (see SharedConversions).
   */
  opts: { compiled?: boolean; shared?: SharedConversions } = {},
): GateResult {
  const digest = known ?? factsDigest(facts);
  // Policies are costed for facts within these bounds: beyond them nothing is evaluated and
  // every rule fails (a gate that cannot bound its work denies).
  const over = outsideBounds(facts);
  // A policy over the cost limit (stored before publishing checked it) is not evaluated
  // either: the same answer every time, so a replay gives what the gate gave.
  const tooCostly = costProblem(compiled);
  if (over !== undefined || tooCostly !== undefined) {
    const error =
      over !== undefined
        ? `the facts are outside the bounds policies are costed for (${over})`
        : `the policy is over the evaluation cost limit: ${tooCostly}`;
    const results = compiled.validations.map(({ spec }) =>
      failedRule(spec, spec.message ?? `${spec.name} failed`, error, undefined),
    );
    return {
      policy: { name: compiled.name, digest: compiled.digest },
      engine: CEL_ENGINE,
      factsDigest: digest,
      results,
      outcome: 'deny',
    };
  }
  const context: Record<string, unknown> = toCelFacts(facts, opts.shared);
  // Rule waivers name `<policy>/<validation>`; the facts hold only waivers in force, but `now`
  // is checked again so that replaying old facts cannot differ from what the gate saw.
  // (The converted `now` is Date.parse of the facts' text, without parsing it again.)
  const now = (context.now as Date).getTime();
  const ruleWaivers = new Map<string, string>();
  for (const w of facts.waivers ?? [])
    if (w.rule && Date.parse(w.expiresAt) > now && !ruleWaivers.has(w.rule))
      ruleWaivers.set(w.rule, w.id);
  const waiverOf: WaiverOf = { policy: compiled.name, ruleWaivers };
  const fast = opts.compiled ? fastOf(compiled) : null;
  let results: RuleResult[] | undefined;
  if (fast) {
    try {
      results = fastResults(compiled, fast, context, waiverOf);
    } catch {
      // Fallback, or anything the closures did not expect (the differential tests treat
      // the latter as a failure): cel-js decides the whole snapshot.
    }
  }
  results ??= celResults(compiled, context, waiverOf);
  return {
    policy: { name: compiled.name, digest: compiled.digest },
    engine: CEL_ENGINE,
    factsDigest: digest,
    results,
    outcome: results.some(blocks) ? 'deny' : 'allow',
  };
}

/** The rule waivers in force, by `<policy>/<validation>`. */
type WaiverOf = { policy: string; ruleWaivers: ReadonlyMap<string, string> };
const waiverFor = (w: WaiverOf, spec: CompiledPolicy['validations'][number]['spec']) =>
  spec.action === 'deny' && spec.waivable !== false && w.ruleWaivers.size > 0
    ? w.ruleWaivers.get(`${w.policy}/${spec.name}`)
    : undefined;

// Plain literals, not spreads of a shared base: this runs for every rule of every version a
// what-if evaluates, and V8 copies a spread far slower than it builds a literal.
function passedRule(spec: CompiledPolicy['validations'][number]['spec']): RuleResult {
  return { name: spec.name, passed: true, action: spec.action, reason: spec.reason, message: null };
}
function failedRule(
  spec: CompiledPolicy['validations'][number]['spec'],
  message: string,
  error: string | undefined,
  waiverId: string | undefined,
): RuleResult {
  return {
    name: spec.name,
    passed: false,
    action: spec.action,
    reason: spec.reason,
    message,
    ...(error !== undefined && { error }),
    ...(waiverId !== undefined && { waiverId }),
  };
}

/** Every rule evaluated by cel-js: the reference, and what every recorded decision runs. */
function celResults(
  compiled: CompiledPolicy,
  context: Record<string, unknown>,
  waiverOf: WaiverOf,
): RuleResult[] {
  const programs = programsOf(compiled);
  context.variables = new PolicyVariables((name) => {
    const program = programs.get(name);
    if (!program) throw new Error(`variables.${name} is not defined`);
    try {
      return program(context);
    } catch (e) {
      // Say which variable failed: the rule's own expression only shows `variables.x`.
      throw new Error(`variables.${name}: ${describe(e)}`);
    }
  });
  return compiled.validations.map(({ spec, program, messageProgram }): RuleResult => {
    let passed = false;
    let error: string | undefined;
    try {
      const value = program(context);
      if (typeof value === 'boolean') passed = value;
      else error = `expression returned ${typeof value}, not bool`;
    } catch (e) {
      error = describe(e);
    }
    if (passed) return passedRule(spec);
    let message = spec.message ?? `${spec.name} failed`;
    if (messageProgram) {
      try {
        const m = messageProgram(context);
        if (typeof m === 'string' && m.trim() !== '') message = m;
      } catch (e) {
        // Keep the static (or default) message; say why the dynamic one is missing.
        message += ` (messageExpression failed: ${describe(e)})`;
      }
    }
    return failedRule(spec, message, error, waiverFor(waiverOf, spec));
  });
}

/**
 * A frame whose `variable` computes a policy variable on first read. A class rather than
 * closures: this is built for every version a what-if evaluates.
 */
class VariableFrame implements Frame {
  readonly locals: unknown[] = [];
  #values: Map<string, unknown> | undefined;
  constructor(
    readonly ctx: Record<string, unknown>,
    readonly programs: ReadonlyMap<string, Compiled>,
    readonly root?: VariableFrame,
  ) {}

  variable(name: string): unknown {
    // Variables are shared by the whole snapshot, whichever frame reads them first.
    if (this.root) return this.root.variable(name);
    this.#values ??= new Map();
    let v = this.#values.get(name);
    if (v === undefined) {
      const program = this.programs.get(name);
      if (!program) throw new Fallback(`variables.${name} is not defined`);
      // Its own frame: a variable may first be read inside a comprehension, whose locals
      // its own comprehensions would overwrite.
      v = program(new VariableFrame(this.ctx, this.programs, this));
      this.#values.set(name, v);
    }
    return v;
  }
}

/**
 * Every rule evaluated by the compiled closures. Throws Fallback whenever they cannot decide
 * (an error anywhere, a non-bool rule): the caller then asks cel-js for the whole snapshot, so
 * error handling and messages stay cel-js's.
 */
function fastResults(
  compiled: CompiledPolicy,
  fast: FastPolicy,
  ctx: Record<string, unknown>,
  waiverOf: WaiverOf,
): RuleResult[] {
  const frame = new VariableFrame(ctx, fast.variables);
  const results = new Array<RuleResult>(fast.validations.length);
  for (let i = 0; i < results.length; i++) {
    const { spec, messageProgram } = compiled.validations[i]!;
    const { program, message } = fast.validations[i]!;
    const value = program(frame);
    if (value === true) {
      results[i] = passedRule(spec);
      continue;
    }
    if (value !== false) throw new Fallback('a rule that is not a bool');
    let text = spec.message ?? `${spec.name} failed`;
    if (message && messageProgram) {
      const m = message(frame);
      if (typeof m === 'string' && m.trim() !== '') text = m;
    }
    results[i] = failedRule(spec, text, undefined, waiverFor(waiverOf, spec));
  }
  return results;
}

/**
 * Re-evaluates a stored facts snapshot (its canonical JSON text) with a compiled policy; the
 * caller compares the outcome and digests with the stored decision's.
 */
export function replay(compiled: CompiledPolicy, factsJson: string): GateResult {
  let facts: Facts;
  try {
    facts = JSON.parse(factsJson) as Facts;
  } catch (e) {
    throw new ModelgateError('INVALID_JSON', `stored facts are not JSON: ${describe(e)}`);
  }
  return evaluatePolicy(compiled, facts);
}
