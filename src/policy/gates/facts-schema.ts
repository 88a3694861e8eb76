import { Environment } from '@marcbachmann/cel-js';
import { ModelgateError } from '../../core/errors.js';
import { RE2_MATCHES, re2Matches } from './re2.js';

/*
 * Gate facts schema, version 1: what a gate policy's CEL expressions can see.
 *
 *   version      Version           model, number (int), digest, author, createdAt, tags
 *                                  (list<string>), card (map<string, dyn>: the card's JSON fields),
 *                                  sourceUri?
 *   model        Model             name, ownerTeam, riskTier (minimal|limited|high|unacceptable),
 *                                  tags
 *   evaluations  list<Evaluation>  id, evaluator (e.g. 'artifact-scan'), evaluatorVersion,
 *                                  status (queued|running|succeeded|failed), digest (of the version
 *                                  it ran on), ranBy, finishedAt?, metrics (map<string, double>)
 *   findings     list<Finding>     id, ruleId, severity (critical|high|medium|low|info), title,
 *                                  evaluator, evaluationId, waived (bool), waiverId?
 *   lineage      list<LineageEdge> relation (trainedOn, fineTunedFrom, ...), kind
 *                                  (dataset|version|run|code), target ('imagenet', 'fraud@3', a URI)
 *   request      PromotionRequest  alias, requestedBy, requestedAt
 *   approvals    list<Approval>    approver, roles, teams (list<string>), decision
 *                                  (approve|reject), at
 *   waivers      list<Waiver>      waivers in force: id, scope (version|model), findingRule?,
 *                                  rule? (`policy/validation`), expiresAt, approvedBy; a failed deny rule
 *                                  a rule waiver names is reported waived and does not deny
 *   now          timestamp         the evaluation instant; rules never read a clock
 *   variables    (per policy)      the policy's named variables, `variables.<name>`
 *
 * Times are google.protobuf.Timestamp (compare with `now - x < duration('720h')`); `number` is an
 * int, metrics are doubles, and JSON numbers inside `card` are doubles. A field marked `?` is
 * absent when unknown: test it with `has(f.waiverId)`, since reading an absent field is an
 * error (which fails the rule). Map keys iterate in sorted order; list order is the facts'.
 */

/** Version of the gate facts schema; stored in every facts snapshot as `schemaVersion`. */
export const FACTS_SCHEMA_VERSION = 1;

// The schema as data, so that the CEL types, the conversion of JSON facts and the checks on
// them cannot drift apart. A trailing `?` marks a field that may be null or absent.
const TIMESTAMP = 'google.protobuf.Timestamp';
const MESSAGE_TYPES: Record<string, Record<string, string>> = {
  Version: {
    model: 'string',
    number: 'int',
    digest: 'string',
    author: 'string',
    createdAt: TIMESTAMP,
    tags: 'list<string>',
    card: 'map<string, dyn>',
    sourceUri: 'string?',
  },
  Model: { name: 'string', ownerTeam: 'string', riskTier: 'string', tags: 'list<string>' },
  Evaluation: {
    id: 'string',
    evaluator: 'string',
    evaluatorVersion: 'string',
    status: 'string',
    digest: 'string',
    ranBy: 'string',
    finishedAt: `${TIMESTAMP}?`,
    metrics: 'map<string, double>',
  },
  Finding: {
    id: 'string',
    ruleId: 'string',
    severity: 'string',
    title: 'string',
    evaluator: 'string',
    evaluationId: 'string',
    waived: 'bool',
    waiverId: 'string?',
  },
  LineageEdge: { relation: 'string', kind: 'string', target: 'string' },
  PromotionRequest: { alias: 'string', requestedBy: 'string', requestedAt: TIMESTAMP },
  Approval: {
    approver: 'string',
    roles: 'list<string>',
    teams: 'list<string>',
    decision: 'string',
    at: TIMESTAMP,
  },
  Waiver: {
    id: 'string',
    scope: 'string',
    findingRule: 'string?',
    rule: 'string?',
    expiresAt: TIMESTAMP,
    approvedBy: 'string',
  },
};
/** The facts' message types: fields are properties of one class instance per message. */
export const FACT_MESSAGE_TYPES: ReadonlySet<string> = new Set(Object.keys(MESSAGE_TYPES));

const FACT_VARIABLES: Record<string, string> = {
  version: 'Version',
  model: 'Model',
  evaluations: 'list<Evaluation>',
  findings: 'list<Finding>',
  lineage: 'list<LineageEdge>',
  request: 'PromotionRequest',
  approvals: 'list<Approval>',
  waivers: 'list<Waiver>',
  now: TIMESTAMP,
};

/** The version being gated, as JSON. */
export interface VersionFacts {
  model: string;
  number: number;
  digest: string;
  author: string;
  createdAt: string;
  tags: string[];
  card: Record<string, unknown>;
  sourceUri?: string | null;
}
/** The version's model, as JSON. */
export interface ModelFacts {
  name: string;
  ownerTeam: string;
  riskTier: string;
  tags: string[];
}
/** One evaluation of the version, as JSON. */
export interface EvaluationFacts {
  id: string;
  evaluator: string;
  evaluatorVersion: string;
  status: string;
  digest: string;
  ranBy: string;
  finishedAt?: string | null;
  metrics: Record<string, number>;
}
/** One finding on the version with waivers applied, as JSON. */
export interface FindingFacts {
  id: string;
  ruleId: string;
  severity: string;
  title: string;
  evaluator: string;
  evaluationId: string;
  waived: boolean;
  waiverId?: string | null;
}
/** One lineage edge from the version, as JSON. */
export interface LineageFacts {
  relation: string;
  kind: string;
  target: string;
}
/** The promotion request being gated, as JSON. */
export interface RequestFacts {
  alias: string;
  requestedBy: string;
  requestedAt: string;
}
/** One recorded approval or rejection of the request, as JSON. */
export interface ApprovalFacts {
  approver: string;
  roles: string[];
  teams: string[];
  decision: 'approve' | 'reject';
  at: string;
}
/** One waiver in force for the version or its model, as JSON. */
export interface WaiverFacts {
  id: string;
  scope: string;
  findingRule?: string | null;
  rule?: string | null;
  expiresAt: string;
  approvedBy: string;
}
/** The JSON facts snapshot a gate sees (times as RFC 3339 strings); stored with each decision. */
export interface Facts {
  schemaVersion: number;
  version: VersionFacts;
  model: ModelFacts;
  evaluations: EvaluationFacts[];
  findings: FindingFacts[];
  lineage: LineageFacts[];
  request: RequestFacts;
  approvals: ApprovalFacts[];
  waivers: WaiverFacts[];
  now: string;
}

// One class per message type: cel-js tells types apart by constructor, and index access on a
// list<Finding> (`findings[0]`) refuses plain objects, which only its macros convert.
// Instances are filled field by field by the converters; CEL cannot change them.
const CTORS = new Map<string, new () => object>(
  Object.keys(MESSAGE_TYPES).map((name) => [name, { [name]: class {} }[name] as new () => object]),
);

const celType = (t: string) => (t.endsWith('?') ? t.slice(0, -1) : t);

/**
 * A new CEL environment with the facts schema's types and variables registered (not
 * `variables`, which each policy adds to a clone). Building one is slow: build once, clone.
 */
export function createFactsEnvironment(): Environment {
  const env = new Environment();
  for (const [name, fields] of Object.entries(MESSAGE_TYPES)) {
    const types = Object.fromEntries(Object.entries(fields).map(([k, t]) => [k, celType(t)]));
    env.registerType(name, { ctor: CTORS.get(name)!, fields: types });
  }
  for (const [name, type] of Object.entries(FACT_VARIABLES)) env.registerVariable(name, type);
  // `matches` with RE2 semantics: policies' `matches` calls are rewritten to it (re2.ts).
  env.registerFunction(`string.${RE2_MATCHES}(string): bool`, (text: string, pattern: string) =>
    re2Matches(text, pattern),
  );
  return env;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

// Where a converter is, as a stack of keys and indexes that converters push and pop. Paths
// are only spelled out for an error: facts are converted once per version a what-if
// evaluates, and building a path string for every field was a third of the conversion.
type Path = (string | number)[];

function spell(path: Path): string {
  if (path.length === 0) return '$';
  let out = String(path[0]);
  for (let i = 1; i < path.length; i++) {
    const k = path[i]!;
    out += typeof k === 'number' ? `[${k}]` : `.${k}`;
  }
  return out;
}

const digit = (s: string, i: number) => s.charCodeAt(i) - 48;
const two = (s: string, i: number) => digit(s, i) * 10 + digit(s, i + 1);

// The form the registry writes (`toISOString()`: UTC, milliseconds), character by character:
// 0 stands for a digit.
const CANONICAL = [...'0000-00-00T00:00:00.000Z'].map((c) => (c === '0' ? 0 : c.charCodeAt(0)));

/**
 * Date.parse of a string RFC3339 accepts, NaN for anything else. Strings of the canonical form
 * whose fields are in the ranges where Date.UTC and Date.parse agree take a fast path (no
 * regular expression, no Date.parse); everything else takes the regular expression and
 * Date.parse.
 */
function parseRfc3339(v: string): number {
  let canonical = v.length === CANONICAL.length;
  for (let i = 0; canonical && i < CANONICAL.length; i++) {
    const c = v.charCodeAt(i);
    const want = CANONICAL[i]!;
    canonical = want === 0 ? c >= 48 && c <= 57 : c === want;
  }
  if (canonical) {
    const month = two(v, 5);
    const day = two(v, 8);
    const hour = two(v, 11);
    const minute = two(v, 14);
    const second = two(v, 17);
    const year = two(v, 0) * 100 + two(v, 2);
    // Date.UTC maps years 0-99 to 1900-1999; Date.parse does not.
    if (
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= 28 &&
      hour <= 23 &&
      minute <= 59 &&
      second <= 59 &&
      year >= 100
    )
      return Date.UTC(year, month - 1, day, hour, minute, second, digit(v, 20) * 100 + two(v, 21));
  }
  return RFC3339.test(v) ? Date.parse(v) : Number.NaN;
}

function invalid(path: Path, message: string, key?: string): never {
  const at = spell(key === undefined ? path : [...path, key]);
  throw new ModelgateError('VALIDATION_FAILED', `facts ${at}: ${message}`, { path: at });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// A Map with sorted keys: a `__proto__` key stays a key, the iteration order CEL sees
// (`card.map(k, k)`) does not depend on the order of the JSON text, and cel-js answers `in`
// on a Map in half the time it takes on a plain object.
function sortedMap(v: Record<string, unknown>, path: Path, each: Converter): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const k of Object.keys(v).sort()) {
    path.push(k);
    out.set(k, each(v[k], path));
    path.pop();
  }
  return out;
}

function toDyn(v: unknown, path: Path): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      path.push(i);
      out[i] = toDyn(v[i], path);
      path.pop();
    }
    return out;
  }
  if (isRecord(v)) return sortedMap(v, path, toDyn);
  return invalid(path, 'is not a JSON value');
}

type Converter = (v: unknown, path: Path) => unknown;

const converters = new Map<string, Converter>();

function converterOf(type: string): Converter {
  let c = converters.get(type);
  if (!c) {
    c = buildConverter(type);
    converters.set(type, c);
  }
  return c;
}

function buildConverter(type: string): Converter {
  switch (type) {
    case 'string':
    case 'bool': {
      const js = type === 'bool' ? 'boolean' : 'string';
      return (v, path) => {
        if (typeof v !== js) invalid(path, `must be a ${type}`);
        return v;
      };
    }
    case 'int':
      // CEL ints are BigInts in cel-js; a plain number in an int field fails at evaluation.
      return (v, path) => {
        if (!Number.isSafeInteger(v)) invalid(path, 'must be an integer');
        return BigInt(v as number);
      };
    case 'double':
      return (v, path) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) invalid(path, 'must be a number');
        return v;
      };
    case TIMESTAMP:
      return (v, path) => {
        const ms = typeof v === 'string' ? parseRfc3339(v) : Number.NaN;
        if (Number.isNaN(ms)) invalid(path, 'must be an RFC 3339 timestamp');
        return new Date(ms);
      };
    case 'map<string, dyn>':
      return (v, path) => {
        if (!isRecord(v)) invalid(path, 'must be an object');
        return sortedMap(v, path, toDyn);
      };
    case 'map<string, double>': {
      const double = converterOf('double');
      return (v, path) => {
        if (!isRecord(v)) invalid(path, 'must be an object');
        return sortedMap(v, path, double);
      };
    }
  }
  const list = /^list<([\w.]+)>$/.exec(type);
  if (list) {
    const each = converterOf(list[1]!);
    return (v, path) => {
      if (!Array.isArray(v)) invalid(path, 'must be a list');
      const out = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        out[i] = each(v[i], path);
        path.pop();
      }
      return out;
    };
  }
  const fields = MESSAGE_TYPES[type];
  if (fields === undefined) throw new Error(`facts schema: no conversion for ${type}`);
  const Ctor = CTORS.get(type)!;
  const plan = Object.entries(fields).map(([k, t]) => ({
    k,
    optional: t.endsWith('?'),
    convert: converterOf(celType(t)),
  }));
  return (v, path) => {
    if (!isRecord(v)) invalid(path, 'must be an object');
    const out = new Ctor() as Record<string, unknown>;
    // Fields present (null counts: the key is there); compared with the object's own keys
    // below, so that an unknown key is refused without listing the keys of every message.
    let present = 0;
    for (const f of plan) {
      const x = v[f.k];
      if (x !== undefined) present++;
      if (x === undefined || x === null) {
        // Absent rather than null, so that `has()` answers and a read is an error, not a null.
        if (!f.optional) invalid(path, 'is required', f.k);
        continue;
      }
      path.push(f.k);
      out[f.k] = f.convert(x, path);
      path.pop();
    }
    // for-in also counts inherited enumerable keys: a count that differs only takes the slow
    // path, which looks at own keys.
    let keys = 0;
    for (const _ in v) keys++;
    if (keys !== present)
      for (const k of Object.keys(v))
        if (!Object.hasOwn(fields, k)) invalid(path, 'is not a known fact', k);
    return out;
  };
}

/**
 * Converts a JSON facts snapshot into the values cel-js evaluates: Dates for timestamps,
 * BigInts for ints, one class instance per message. Throws VALIDATION_FAILED, naming the path,
 * for facts that do not match schema version 1 (a missing or unknown field, a wrong type).
 */
// Facts that the snapshots of a batch share: a model's, a request's, and `now`.
const SHAREABLE = new Set(['model', 'request', 'now']);
const FACT_PLAN = Object.entries(FACT_VARIABLES).map(([name, type]) => ({
  name,
  convert: converterOf(type),
  shareable: SHAREABLE.has(name),
}));

/**
 * Conversions shared by the snapshots of one batch (a what-if slice): a source object that
 * several snapshots hold (a model's facts, one request) is converted once, and so is a `now`
 * they all have. Only for facts nobody changes while the batch lasts; CEL never changes the
 * converted values.
 */
export class SharedConversions {
  readonly objects = new WeakMap<object, unknown>();
  now: { text: string; value: unknown } | undefined;
}

export function toCelFacts(facts: Facts, shared?: SharedConversions): Record<string, unknown> {
  if (!isRecord(facts)) invalid([], 'must be an object');
  if (facts.schemaVersion !== FACTS_SCHEMA_VERSION)
    invalid(['schemaVersion'], `must be ${FACTS_SCHEMA_VERSION}`);
  const raw = facts as unknown as Record<string, unknown>;
  for (const k of Object.keys(raw))
    if (k !== 'schemaVersion' && !(k in FACT_VARIABLES)) invalid([k], 'is not a known fact');
  const out: Record<string, unknown> = {};
  const path: Path = [];
  for (const { name, convert, shareable } of FACT_PLAN) {
    const v = raw[name];
    if (shared && shareable) {
      const done =
        typeof v === 'object' && v !== null
          ? shared.objects.get(v)
          : shared.now?.text === v
            ? shared.now?.value
            : undefined;
      if (done !== undefined) {
        out[name] = done;
        continue;
      }
    }
    path.push(name);
    if (v === undefined || v === null) invalid(path, 'is required');
    const converted = convert(v, path);
    out[name] = converted;
    path.pop();
    if (shared && shareable) {
      if (typeof v === 'object' && v !== null) shared.objects.set(v, converted);
      else shared.now = { text: v as string, value: converted };
    }
  }
  return out;
}
