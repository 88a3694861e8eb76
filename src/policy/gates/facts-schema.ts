import { Environment } from '@marcbachmann/cel-js';
import { ModelgateError } from '../../core/errors.js';

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
const CTORS = new Map<string, new (fields: Record<string, unknown>) => object>(
  Object.keys(MESSAGE_TYPES).map((name) => [
    name,
    {
      [name]: class {
        constructor(fields: Record<string, unknown>) {
          Object.assign(this, fields);
          Object.freeze(this);
        }
      },
    }[name] as new (
      fields: Record<string, unknown>,
    ) => object,
  ]),
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
  return env;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function invalid(path: string, message: string): never {
  throw new ModelgateError('VALIDATION_FAILED', `facts ${path}: ${message}`, { path });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// A null-prototype object with sorted keys: a `__proto__` key stays a key, and the iteration
// order CEL sees (`card.map(k, k)`) does not depend on the order of the JSON text.
function sortedMap(v: Record<string, unknown>, each: (x: unknown, k: string) => unknown) {
  const out: Record<string, unknown> = Object.create(null);
  for (const k of Object.keys(v).sort()) out[k] = each(v[k], k);
  return out;
}

function toDyn(v: unknown, path: string): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  // JSON has one number type; CEL reads it as a double.
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (Array.isArray(v)) return v.map((x, i) => toDyn(x, `${path}[${i}]`));
  if (isRecord(v)) return sortedMap(v, (x, k) => toDyn(x, `${path}.${k}`));
  return invalid(path, 'is not a JSON value');
}

type Converter = (v: unknown, path: string) => unknown;

// One converter per type, built once from the schema: a what-if converts facts for every
// version of a portfolio, so the per-call work is only the checks and the copies.
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
        const ms = typeof v === 'string' && RFC3339.test(v) ? Date.parse(v) : Number.NaN;
        if (Number.isNaN(ms)) invalid(path, 'must be an RFC 3339 timestamp');
        return new Date(ms);
      };
    case 'map<string, dyn>':
      return (v, path) => {
        if (!isRecord(v)) invalid(path, 'must be an object');
        return sortedMap(v, (x, k) => toDyn(x, `${path}.${k}`));
      };
    case 'map<string, double>': {
      const double = converterOf('double');
      return (v, path) => {
        if (!isRecord(v)) invalid(path, 'must be an object');
        return sortedMap(v, (x, k) => double(x, `${path}.${k}`));
      };
    }
  }
  const list = /^list<([\w.]+)>$/.exec(type);
  if (list) {
    const each = converterOf(list[1]!);
    return (v, path) => {
      if (!Array.isArray(v)) invalid(path, 'must be a list');
      const out = new Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = each(v[i], `${path}[${i}]`);
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
    for (const k of Object.keys(v))
      if (!Object.hasOwn(fields, k)) invalid(`${path}.${k}`, 'is not a known fact');
    const out: Record<string, unknown> = {};
    for (const f of plan) {
      const x = v[f.k];
      if (x === undefined || x === null) {
        // Absent rather than null, so that `has()` answers and a read is an error, not a null.
        if (!f.optional) invalid(`${path}.${f.k}`, 'is required');
        continue;
      }
      out[f.k] = f.convert(x, `${path}.${f.k}`);
    }
    return new Ctor(out);
  };
}

/**
 * Converts a JSON facts snapshot into the values cel-js evaluates: Dates for timestamps,
 * BigInts for ints, one class instance per message. Throws VALIDATION_FAILED, naming the path,
 * for facts that do not match schema version 1 (a missing or unknown field, a wrong type).
 */
export function toCelFacts(facts: Facts): Record<string, unknown> {
  if (!isRecord(facts)) invalid('$', 'must be an object');
  if (facts.schemaVersion !== FACTS_SCHEMA_VERSION)
    invalid('schemaVersion', `must be ${FACTS_SCHEMA_VERSION}`);
  const raw = facts as unknown as Record<string, unknown>;
  for (const k of Object.keys(raw))
    if (k !== 'schemaVersion' && !(k in FACT_VARIABLES)) invalid(k, 'is not a known fact');
  const out: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(FACT_VARIABLES)) {
    if (raw[name] === undefined || raw[name] === null) invalid(name, 'is required');
    out[name] = converterOf(type)(raw[name], name);
  }
  return out;
}
