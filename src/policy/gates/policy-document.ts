import { createHash } from 'node:crypto';
import { type ASTNode, type Environment, serialize } from '@marcbachmann/cel-js';
import { parseDocument } from 'yaml';
import { canonicalize } from '../../audit/canonical-json.js';
import { ModelgateError } from '../../core/errors.js';
import { ALIAS_PATTERN, isValidName, TAG_PATTERN } from '../../core/names.js';
import { RISK_TIERS } from '../../core/types.js';
import { createFactsEnvironment } from './facts-schema.js';
import { compileRe2, RE2_MATCHES } from './re2.js';

/** What a failing validation does to the gate: deny it, or only report (warn, audit). */
export type GateAction = 'deny' | 'warn' | 'audit';

/** A named CEL expression, visible to later expressions as `variables.<name>`. */
export interface PolicyVariable {
  name: string;
  expression: string;
}

/** One rule: a bool CEL expression that must hold, and what to say and do when it does not. */
export interface PolicyValidation {
  name: string;
  expression: string;
  message?: string;
  messageExpression?: string;
  reason: string;
  action: GateAction;
  /**
   * Whether a waiver may accept this rule's failure (default true). Rules that carry the
   * gate's meaning (approvals, prohibited risk) say false.
   */
  waivable?: boolean;
}

/** Which promotions a policy gates: target aliases, optionally narrowed by tier and model tag. */
export interface PolicyBindings {
  aliases: string[];
  riskTiers?: string[];
  modelTags?: string[];
}

/** A gate policy document as written (YAML or JSON). */
export interface PolicyDocument {
  apiVersion: 'modelgate.dev/v1';
  kind: 'GatePolicy';
  metadata: { name: string; description?: string };
  spec: {
    bindings: PolicyBindings;
    variables?: PolicyVariable[];
    validations: PolicyValidation[];
    /**
     * When a periodic re-check finds that the current holder of a bound alias no longer
     * passes, move the alias back to the last earlier holder that still passes (default false:
     * the holder is only flagged).
     */
    demoteOnFailure?: boolean;
  };
}

/** Size bounds on a policy document. */
export const POLICY_LIMITS = {
  documentBytes: 64 * 1024,
  variables: 100,
  validations: 100,
  expressionBytes: 4 * 1024,
  textBytes: 4 * 1024,
  listEntries: 64,
} as const;

/** Where a policy error is: the document path and, for an expression, the offending position. */
export interface PolicyProblem {
  path: string;
  message: string;
  position?: { offset: number; line: number; column: number };
}

// A compiled expression: the parse result of cel-js, callable with the CEL facts.
type Program = (context: Record<string, unknown>) => unknown;

/** A policy's variables at evaluation time: each computed on first read, at most once. */
export class PolicyVariables extends Map<string, unknown> {
  readonly #resolve: (name: string) => unknown;
  readonly #failed = new Map<string, unknown>();

  constructor(resolve: (name: string) => unknown) {
    super();
    this.#resolve = resolve;
  }

  // cel-js reads fields of a Map-based message through get(); computing lazily means a
  // variable only a short-circuited branch needs cannot fail a rule.
  override get(name: string): unknown {
    if (super.has(name)) return super.get(name);
    if (this.#failed.has(name)) throw this.#failed.get(name);
    try {
      const v = this.#resolve(name);
      super.set(name, v);
      return v;
    } catch (e) {
      this.#failed.set(name, e);
      throw e;
    }
  }
}

/** A policy ready to evaluate: the document, its digest and its type-checked expressions. */
export interface CompiledPolicy {
  readonly document: PolicyDocument;
  readonly name: string;
  /** `sha256:<hex>` of the RFC 8785 canonical JSON of the document. */
  readonly digest: string;
  readonly variables: readonly { name: string; program: Program }[];
  readonly validations: readonly {
    spec: PolicyValidation;
    program: Program;
    messageProgram?: Program;
  }[];
}

export function refuse(problems: PolicyProblem[]): never {
  const text = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  throw new ModelgateError('GATE_POLICY_INVALID', `gate policy refused: ${text}`, { problems });
}

const VALIDATION_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const REASON = /^[A-Za-z][A-Za-z0-9]{0,62}$/;
// CEL's reserved words cannot follow `variables.`.
const CEL_RESERVED = new Set(
  'true false null in as break const continue else for function if import let loop package namespace return var void while'.split(
    ' ',
  ),
);
const ALIAS_RE = new RegExp(ALIAS_PATTERN);
const TAG_RE = new RegExp(TAG_PATTERN);

// A small path-tracking reader for the document's shape: every problem is collected with its
// path, so one publish attempt reports all of them.
class Reader {
  readonly problems: PolicyProblem[] = [];

  static key(path: string, k: string): string {
    return path === '$' ? k : `${path}.${k}`;
  }

  fail(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  object(v: unknown, path: string, required: string[], optional: string[] = []) {
    // Absent: the parent has already reported it as required.
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      return this.fail(path, 'must be an object');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!required.includes(k) && !optional.includes(k))
        this.fail(Reader.key(path, k), 'is not a known field');
    for (const k of required) if (o[k] === undefined) this.fail(Reader.key(path, k), 'is required');
    return o;
  }

  string(
    v: unknown,
    path: string,
    opts: { pattern?: RegExp; max?: number; oneOf?: readonly string[] } = {},
  ) {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') return this.fail(path, 'must be a string');
    const max = opts.max ?? 63;
    if (Buffer.byteLength(v) > max) return this.fail(path, `is longer than ${max} bytes`);
    if (v.trim() === '') return this.fail(path, 'must not be empty');
    if (opts.pattern && !opts.pattern.test(v))
      return this.fail(path, `must match ${opts.pattern.source}`);
    if (opts.oneOf && !opts.oneOf.includes(v))
      return this.fail(path, `must be one of ${opts.oneOf.join(', ')}`);
    return v;
  }

  boolean(v: unknown, path: string): boolean | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') return this.fail(path, 'must be true or false');
    return v;
  }

  list<T>(
    v: unknown,
    path: string,
    max: number,
    each: (x: unknown, path: string) => T | undefined,
  ) {
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) return this.fail(path, 'must be a list');
    if (v.length > max) return this.fail(path, `has more than ${max} entries`);
    return v.map((x, i) => each(x, `${path}[${i}]`));
  }

  unique(values: (string | undefined)[] | undefined, path: (i: number) => string, what: string) {
    const seen = new Set<string>();
    values?.forEach((x, i) => {
      if (x === undefined) return;
      if (seen.has(x)) this.fail(path(i), `${what} ${JSON.stringify(x)} is used twice`);
      seen.add(x);
    });
  }
}

/**
 * Checks that a parsed value is a well-formed gate policy document: known fields only, names
 * valid and unique, sizes bounded. Throws GATE_POLICY_INVALID listing every problem with its path
 * (e.g. `spec.validations[2].action`); returns a copy holding only the document's fields.
 */
export function validatePolicyDocument(value: unknown): PolicyDocument {
  const r = new Reader();
  const top = r.object(value, '$', ['apiVersion', 'kind', 'metadata', 'spec']);
  if (!top) refuse(r.problems);
  r.string(top.apiVersion, 'apiVersion', { oneOf: ['modelgate.dev/v1'] });
  r.string(top.kind, 'kind', { oneOf: ['GatePolicy'] });
  const meta = r.object(top.metadata, 'metadata', ['name'], ['description']);
  const name = r.string(meta?.name, 'metadata.name');
  if (name !== undefined && !isValidName(name))
    r.fail('metadata.name', 'must be 1-63 lowercase letters, digits, - or .');
  const description = r.string(meta?.description, 'metadata.description', {
    max: POLICY_LIMITS.textBytes,
  });
  const spec = r.object(
    top.spec,
    'spec',
    ['bindings', 'validations'],
    ['variables', 'demoteOnFailure'],
  );
  const demote = r.boolean(spec?.demoteOnFailure, 'spec.demoteOnFailure');
  const b = r.object(spec?.bindings, 'spec.bindings', ['aliases'], ['riskTiers', 'modelTags']);
  const n = POLICY_LIMITS.listEntries;
  const aliases = r.list(b?.aliases, 'spec.bindings.aliases', n, (x, p) =>
    r.string(x, p, { pattern: ALIAS_RE }),
  );
  if (aliases?.length === 0) r.fail('spec.bindings.aliases', 'must name at least one alias');
  const riskTiers = r.list(b?.riskTiers, 'spec.bindings.riskTiers', n, (x, p) =>
    r.string(x, p, { oneOf: RISK_TIERS }),
  );
  const modelTags = r.list(b?.modelTags, 'spec.bindings.modelTags', n, (x, p) =>
    r.string(x, p, { pattern: TAG_RE, max: 128 }),
  );
  for (const [list, key] of [
    [aliases, 'aliases'],
    [riskTiers, 'riskTiers'],
    [modelTags, 'modelTags'],
  ] as const)
    r.unique(list, (i) => `spec.bindings.${key}[${i}]`, 'entry');
  const expr = { max: POLICY_LIMITS.expressionBytes };
  const variables = r.list(spec?.variables, 'spec.variables', POLICY_LIMITS.variables, (x, p) => {
    const v = r.object(x, p, ['name', 'expression']);
    const vname = r.string(v?.name, `${p}.name`, { pattern: VARIABLE_NAME });
    if (vname !== undefined && CEL_RESERVED.has(vname))
      r.fail(`${p}.name`, `${vname} is a CEL reserved word`);
    const expression = r.string(v?.expression, `${p}.expression`, expr);
    return vname === undefined || expression === undefined
      ? undefined
      : { name: vname, expression };
  });
  r.unique(
    variables?.map((v) => v?.name),
    (i) => `spec.variables[${i}].name`,
    'variable',
  );
  const validations = r.list(
    spec?.validations,
    'spec.validations',
    POLICY_LIMITS.validations,
    (x, p) => {
      const v = r.object(
        x,
        p,
        ['name', 'expression', 'reason', 'action'],
        ['message', 'messageExpression', 'waivable'],
      );
      if (v && v.message === undefined && v.messageExpression === undefined)
        r.fail(p, 'needs a message or a messageExpression');
      const out: PolicyValidation = {
        name: r.string(v?.name, `${p}.name`, { pattern: VALIDATION_NAME }) as string,
        expression: r.string(v?.expression, `${p}.expression`, expr) as string,
        reason: r.string(v?.reason, `${p}.reason`, { pattern: REASON }) as string,
        action: r.string(v?.action, `${p}.action`, {
          oneOf: ['deny', 'warn', 'audit'],
        }) as GateAction,
      };
      const message = r.string(v?.message, `${p}.message`, { max: POLICY_LIMITS.textBytes });
      if (message !== undefined) out.message = message;
      const messageExpression = r.string(v?.messageExpression, `${p}.messageExpression`, expr);
      if (messageExpression !== undefined) out.messageExpression = messageExpression;
      const waivable = r.boolean(v?.waivable, `${p}.waivable`);
      if (waivable !== undefined) out.waivable = waivable;
      return out;
    },
  );
  if (validations?.length === 0) r.fail('spec.validations', 'must hold at least one validation');
  r.unique(
    validations?.map((v) => v?.name),
    (i) => `spec.validations[${i}].name`,
    'validation',
  );
  if (r.problems.length > 0) refuse(r.problems);
  const bindings: PolicyBindings = { aliases: aliases as string[] };
  if (riskTiers) bindings.riskTiers = riskTiers as string[];
  if (modelTags) bindings.modelTags = modelTags as string[];
  return {
    apiVersion: 'modelgate.dev/v1',
    kind: 'GatePolicy',
    metadata: { name: name as string, ...(description !== undefined && { description }) },
    spec: {
      bindings,
      ...(variables && { variables: variables as PolicyVariable[] }),
      validations: validations as PolicyValidation[],
      ...(demote !== undefined && { demoteOnFailure: demote }),
    },
  };
}

/**
 * Parses a gate policy from YAML or JSON text (JSON is YAML): at most 64 KiB, one document,
 * no duplicate keys, no anchors or aliases. Throws GATE_POLICY_INVALID naming the path or line.
 */
export function parsePolicyDocument(text: string): PolicyDocument {
  const bytes = Buffer.byteLength(text);
  if (bytes > POLICY_LIMITS.documentBytes)
    refuse([{ path: '$', message: `is ${bytes} bytes; at most ${POLICY_LIMITS.documentBytes}` }]);
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, version: '1.2' });
  // Warnings too (an unknown tag, say): a gate policy should mean exactly what it says.
  const errors = [...doc.errors, ...doc.warnings];
  if (errors.length > 0)
    refuse(
      errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '$',
        message: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:$/, ''),
      })),
    );
  let value: unknown;
  try {
    // No aliases: they could expand a small text into a huge document.
    value = doc.toJS({ maxAliasCount: 0 });
  } catch (e) {
    refuse([{ path: '$', message: (e as Error).message }]);
  }
  return validatePolicyDocument(value);
}

/** `sha256:<hex>` of the RFC 8785 canonical JSON of a policy document. */
export function policyDigest(doc: PolicyDocument): string {
  return `sha256:${createHash('sha256').update(canonicalize(doc)).digest('hex')}`;
}

// The facts environment is slow to build and never changes: build it once, clone per step.
let factsEnvironment: Environment | undefined;

// Placeholder type parameters (`list<T>` for `[]`) are not field types: read them as dyn.
const fieldType = (type: string) => type.replace(/\b[A-Z]\b/g, 'dyn');

function position(expression: string, offset: number) {
  const before = expression.slice(0, offset).split('\n');
  return { offset, line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

/** The `x.matches(p)` calls of an expression's syntax tree. */
function matchesCalls(root: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (Array.isArray(n)) {
      stack.push(...n);
      continue;
    }
    if (typeof n !== 'object' || n === null || !('op' in n)) continue;
    const node = n as ASTNode;
    if (node.op === 'rcall' && (node.args as unknown[])[0] === 'matches') out.push(node);
    if (Array.isArray(node.args)) stack.push(...node.args);
    else if (typeof node.args === 'object') stack.push(node.args);
  }
  return out;
}

/**
 * Type-checks every expression of a policy against the facts schema (variables in order, each
 * visible to later ones as `variables.<name>`; validations must be bool, message expressions
 * string) and returns the compiled policy. Throws GATE_POLICY_INVALID naming the validation, the
 * expression and the position of each problem.
 */
export function compilePolicy(input: PolicyDocument): CompiledPolicy {
  // Again, cheaply: a document read back from storage has not been through parsing.
  const doc = validatePolicyDocument(input);
  factsEnvironment ??= createFactsEnvironment();
  const base = factsEnvironment;
  const problems: PolicyProblem[] = [];
  const varTypes: Record<string, string> = {};
  // A clone of the facts environment whose `variables` holds the variables declared so far.
  const withVariables = () => {
    const env = base.clone();
    env.registerType('Variables', { ctor: PolicyVariables, fields: { ...varTypes } });
    env.registerVariable('variables', 'Variables');
    return env;
  };
  const check = (env: Environment, expression: string, path: string, want?: string) => {
    let program: ReturnType<Environment['parse']>;
    const fail = (e: unknown) => {
      const err = e as { summary?: string; message?: string; range?: { start: number } };
      const message = err.summary ?? err.message?.split('\n')[0] ?? String(e);
      const problem: PolicyProblem = {
        path,
        message: `${message} in ${JSON.stringify(expression)}`,
      };
      if (err.range) {
        problem.position = position(expression, err.range.start);
        problem.message += ` at line ${problem.position.line}, column ${problem.position.column}`;
      }
      problems.push(problem);
      return undefined;
    };
    try {
      program = env.parse(expression);
    } catch (e) {
      return fail(e);
    }
    const result = program.check();
    if (!result.valid) return fail(result.error);
    if (want !== undefined && result.type !== want)
      return fail(new Error(`must be of type ${want}, is ${result.type}`));
    // `matches` runs on RE2 (linear time): calls are renamed to the RE2 function, and a
    // constant pattern RE2 refuses is refused here rather than failing every evaluation.
    const calls = matchesCalls(program.ast as ASTNode);
    if (calls.length === 0) return { program: program as Program, type: result.type as string };
    for (const call of calls) {
      const pattern = (call.args as [string, ASTNode, ASTNode[]])[2][0];
      if (pattern?.op !== 'value' || typeof pattern.args !== 'string') continue;
      try {
        compileRe2(pattern.args);
      } catch (e) {
        return fail(Object.assign(new Error((e as Error).message), { range: pattern }));
      }
    }
    for (const call of calls) (call.args as unknown[])[0] = RE2_MATCHES;
    try {
      program = env.parse(serialize(program.ast as ASTNode));
    } catch (e) {
      return fail(e);
    }
    // Checked again: the checker annotates the tree the compiled closures are built from.
    const again = program.check();
    if (!again.valid) return fail(again.error);
    return { program: program as Program, type: result.type as string };
  };

  const variables: { name: string; program: Program }[] = [];
  (doc.spec.variables ?? []).forEach((v, i) => {
    const checked = check(withVariables(), v.expression, `spec.variables[${i}].expression`);
    // A variable that does not check reads as dyn, so its uses are not reported again.
    varTypes[v.name] = checked ? fieldType(checked.type) : 'dyn';
    if (!checked) return;
    variables.push({ name: v.name, program: checked.program });
  });
  const env = withVariables();
  const validations: CompiledPolicy['validations'][number][] = [];
  doc.spec.validations.forEach((v, i) => {
    const at = `spec.validations[${i}]`;
    const checked = check(env, v.expression, `${at}.expression (${v.name})`, 'bool');
    const message =
      v.messageExpression === undefined
        ? undefined
        : check(env, v.messageExpression, `${at}.messageExpression (${v.name})`, 'string');
    if (!checked) return;
    validations.push({
      spec: v,
      program: checked.program,
      ...(message && { messageProgram: message.program }),
    });
  });
  if (problems.length > 0) refuse(problems);
  return {
    document: doc,
    name: doc.metadata.name,
    digest: policyDigest(doc),
    variables,
    validations,
  };
}

/** Whether a policy gates a promotion to `alias` of a model with this tier and these tags. */
export function policyBinds(
  doc: PolicyDocument,
  target: { alias: string; riskTier: string; modelTags: readonly string[] },
): boolean {
  const b = doc.spec.bindings;
  return (
    b.aliases.includes(target.alias) &&
    (b.riskTiers === undefined || b.riskTiers.includes(target.riskTier)) &&
    (b.modelTags === undefined || b.modelTags.some((t) => target.modelTags.includes(t)))
  );
}

/**
 * Whether a policy's rules may read a model's tags: a conservative answer from the text of its
 * expressions (any mention of `tags`, or of `model` as a whole value rather than one of its
 * other fields), so that a tag edit that could steer it is treated as a classification.
 */
export function mayReadModelTags(doc: PolicyDocument): boolean {
  const texts = [
    ...(doc.spec.variables ?? []).map((v) => v.expression),
    ...doc.spec.validations.flatMap((v) => [v.expression, v.messageExpression ?? '']),
  ];
  // String literals say nothing about what is read ('a high-risk model needs ...').
  const code = texts.map((t) => t.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, "''"));
  return code.some(
    (t) => /\btags\b/.test(t) || /\bmodel\b(?!\s*\.\s*(name|ownerTeam|riskTier)\b)/.test(t),
  );
}
