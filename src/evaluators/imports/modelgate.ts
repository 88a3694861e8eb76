import { type Finding, type FindingLocation, SEVERITIES } from '../../core/findings.js';
import {
  clip,
  FindingList,
  finish,
  formatOfValue,
  get,
  isCleanName,
  isObject,
  isoTime,
  JsonChecker,
  type JsonObject,
  type JsonPath,
  MAX_EVIDENCE,
  MAX_REFERENCES,
  MAX_TOOL_FIELD,
  otherFormatHint,
  parseJsonDocument,
  RULE_ID,
} from './common.js';
import {
  EVALUATION_RESULT_SCHEMA,
  type ImportedEvaluation,
  MAX_IMPORT_FINDINGS,
  MAX_IMPORT_METRICS,
  MAX_METRIC_NAME,
} from './import-format.js';

// The limits below are the ones docs/evaluation-result.schema.json states.
const MAX_RULE_ID = 256;
const MAX_RESULT_TITLE = 500;
const MAX_LOCATION = 4096;
const MAX_EVIDENCE_KEYS = 50;
const MAX_EVIDENCE_KEY = 64;
const MAX_REFERENCE = 200;

/** Refuses any field of `o` not in `allowed`, naming it by its path. */
function onlyFields(c: JsonChecker, o: JsonObject, path: JsonPath, allowed: readonly string[]) {
  for (const key of Object.keys(o))
    if (!allowed.includes(key))
      c.fail([...path, key], `is an unknown field (allowed here: ${allowed.join(', ')})`);
}

function text(c: JsonChecker, v: unknown, path: JsonPath, max: number): string {
  const s = c.string(v, path);
  if (s.length === 0 || s.length > max) c.fail(path, `must be 1 to ${max} characters long`);
  return s;
}

function location(c: JsonChecker, v: unknown, path: JsonPath): FindingLocation {
  const o = c.object(v, path);
  onlyFields(c, o, path, ['file', 'member', 'offset']);
  const loc: FindingLocation = { file: text(c, get(o, 'file'), [...path, 'file'], MAX_LOCATION) };
  if (get(o, 'member') !== undefined)
    loc.member = text(c, get(o, 'member'), [...path, 'member'], MAX_LOCATION);
  const offset = get(o, 'offset');
  if (offset !== undefined) {
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
      c.fail([...path, 'offset'], 'must be an integer >= 0');
    loc.offset = offset;
  }
  return loc;
}

function evidence(
  c: JsonChecker,
  v: unknown,
  path: JsonPath,
): Record<string, string | number | boolean> {
  if (v === undefined) return {};
  const o = c.object(v, path);
  const entries = Object.entries(o);
  if (entries.length > MAX_EVIDENCE_KEYS)
    c.fail(path, `has ${entries.length} fields, more than ${MAX_EVIDENCE_KEYS}`);
  for (const [key, value] of entries) {
    if (!isCleanName(key, MAX_EVIDENCE_KEY))
      c.fail(
        [...path, key],
        `is not a usable evidence name (1 to ${MAX_EVIDENCE_KEY} characters, no control characters)`,
      );
    if (typeof value === 'string') {
      if (value.length > MAX_EVIDENCE)
        c.fail([...path, key], `is longer than ${MAX_EVIDENCE} characters`);
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) c.fail([...path, key], 'is not a finite number');
    } else if (typeof value !== 'boolean') {
      c.fail(
        [...path, key],
        `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, expected a string, number or boolean`,
      );
    }
  }
  // fromEntries defines own properties: an `__proto__` key stays a key.
  return Object.fromEntries(entries) as Record<string, string | number | boolean>;
}

function references(c: JsonChecker, v: unknown, path: JsonPath): string[] {
  if (v === undefined) return [];
  const list = c.array(v, path);
  if (list.length > MAX_REFERENCES)
    c.fail(path, `has ${list.length} entries, more than ${MAX_REFERENCES}`);
  return list.map((r, i) => text(c, r, [...path, i], MAX_REFERENCE));
}

function finding(c: JsonChecker, v: unknown, path: JsonPath): Finding {
  const o = c.object(v, path);
  onlyFields(c, o, path, ['ruleId', 'severity', 'title', 'location', 'evidence', 'references']);
  const ruleId = c.string(get(o, 'ruleId'), [...path, 'ruleId']);
  if (ruleId.length > MAX_RULE_ID || !RULE_ID.test(ruleId))
    c.fail(
      [...path, 'ruleId'],
      `is "${clip(ruleId, 80)}", expected a lowercase tool name, then "/" and the tool's rule (e.g. acme-scan/secret-in-output), at most ${MAX_RULE_ID} characters`,
    );
  const sev = c.string(get(o, 'severity'), [...path, 'severity']);
  const severity = SEVERITIES.find((s) => s === sev);
  if (!severity)
    c.fail(
      [...path, 'severity'],
      `is "${clip(sev, 40)}", expected one of ${SEVERITIES.join(', ')}`,
    );
  return {
    ruleId,
    severity,
    title: text(c, get(o, 'title'), [...path, 'title'], MAX_RESULT_TITLE),
    location: location(c, get(o, 'location'), [...path, 'location']),
    evidence: evidence(c, get(o, 'evidence'), [...path, 'evidence']),
    references: references(c, get(o, 'references'), [...path, 'references']),
  };
}

/**
 * Reads Modelgate's own evaluation result format (docs/evaluation-result.schema.json),
 * strictly: an unknown field, a wrong type or a value out of range is refused with its path.
 */
export function parseModelgateResult(input: string): ImportedEvaluation {
  const doc = parseJsonDocument('modelgate', input);
  const c: JsonChecker = new JsonChecker('modelgate');
  const root = isObject(doc)
    ? doc
    : c.fail(
        [],
        `is ${Array.isArray(doc) ? 'an array' : 'not an object'}, expected an evaluation result object`,
      );
  const schema = get(root, 'schema');
  if (schema !== EVALUATION_RESULT_SCHEMA)
    c.fail(
      ['schema'],
      `is ${typeof schema === 'string' ? `"${clip(schema, 80)}"` : schema === undefined ? 'missing' : 'not a string'}, expected "${EVALUATION_RESULT_SCHEMA}"`,
      otherFormatHint('modelgate', formatOfValue(doc)),
    );
  onlyFields(c, root, [], ['schema', 'tool', 'ranAt', 'findings', 'metrics']);

  const tool = c.object(get(root, 'tool'), ['tool']);
  onlyFields(c, tool, ['tool'], ['name', 'version']);
  const name = text(c, get(tool, 'name'), ['tool', 'name'], MAX_TOOL_FIELD);
  const version = text(c, get(tool, 'version'), ['tool', 'version'], MAX_TOOL_FIELD);

  let ranAt: string | undefined;
  if (get(root, 'ranAt') !== undefined) {
    ranAt = isoTime(c.string(get(root, 'ranAt'), ['ranAt']), false);
    if (ranAt === undefined)
      c.fail(['ranAt'], 'is not a date-time with a time zone (e.g. 2026-11-20T09:14:03Z)');
  }

  const list = c.array(get(root, 'findings'), ['findings']);
  if (list.length > MAX_IMPORT_FINDINGS)
    c.fail(
      ['findings'],
      `has ${list.length} entries, more than the import limit of ${MAX_IMPORT_FINDINGS}`,
    );
  const findings = new FindingList('modelgate');
  for (let i = 0; i < list.length; i++) findings.push(finding(c, list[i], ['findings', i]));

  const m = c.object(get(root, 'metrics'), ['metrics']);
  const metrics = Object.entries(m);
  if (metrics.length > MAX_IMPORT_METRICS)
    c.fail(
      ['metrics'],
      `has ${metrics.length} entries, more than the import limit of ${MAX_IMPORT_METRICS}`,
    );
  for (const [key, value] of metrics) {
    if (!isCleanName(key, MAX_METRIC_NAME))
      c.fail(
        ['metrics', key],
        `is not a usable metric name (1 to ${MAX_METRIC_NAME} characters, no control characters)`,
      );
    if (typeof value !== 'number')
      c.fail(
        ['metrics', key],
        `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, expected a number`,
      );
    if (!Number.isFinite(value)) c.fail(['metrics', key], 'is not a finite number');
  }

  return finish('modelgate', {
    tool: { name, version },
    findings: findings.items,
    metrics: metrics as [string, number][],
    ranAt,
  });
}
