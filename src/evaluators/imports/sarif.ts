import type { Severity } from '../../core/findings.js';
import {
  clip,
  FindingList,
  finish,
  formatOfValue,
  get,
  isObject,
  isoTime,
  JsonChecker,
  type JsonObject,
  type JsonPath,
  MAX_EVIDENCE,
  MAX_TOOL_FIELD,
  oneLine,
  otherFormatHint,
  parseJsonDocument,
  referenceIds,
  severityFromScore,
  title,
} from './common.js';
import type { ImportedEvaluation } from './import-format.js';

const LEVELS = ['none', 'note', 'warning', 'error'] as const;
type Level = (typeof LEVELS)[number];

const LEVEL_SEVERITY: Record<Level, Severity> = {
  error: 'high',
  warning: 'medium',
  note: 'low',
  none: 'info',
};

const KINDS = ['fail', 'pass', 'open', 'review', 'informational', 'notApplicable'];

/** Longest SARIF rule id kept (hierarchical ids like `CA2000/1` included). */
const MAX_RULE_ID = 256;
/** Longest location kept: URIs can be long, a finding's location need not be. */
const MAX_LOCATION = 2048;

interface Rule {
  id: string;
  name: string | undefined;
  level: Level | undefined;
  score: number | undefined;
  /** Tags and CWE relationships, for references. */
  refs: unknown[];
  messageStrings: JsonObject | undefined;
  description: string | undefined;
}

function level(c: JsonChecker, v: unknown, path: JsonPath): Level | undefined {
  const s = c.optString(v, path);
  if (s === undefined) return undefined;
  const l = LEVELS.find((x) => x === s);
  if (!l) c.fail(path, `is "${clip(s, 40)}", expected one of ${LEVELS.join(', ')}`);
  return l;
}

/** A `security-severity` property: a number from 0 to 10, which SARIF writers give as a string. */
function securitySeverity(c: JsonChecker, v: unknown, path: JsonPath): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n =
    typeof v === 'number'
      ? v
      : typeof v === 'string' && /^\s*\d{1,2}(\.\d{1,6})?\s*$/.test(v)
        ? Number(v)
        : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > 10)
    c.fail(
      path,
      `is ${typeof v === 'string' ? `"${clip(v, 40)}"` : typeof v === 'number' ? v : `${Array.isArray(v) ? 'an array' : `a ${typeof v}`}`}, expected a score from 0.0 to 10.0`,
    );
  return n;
}

/** `Acme ModelGuard` -> `acme-modelguard`: the driver's part of a rule id. */
function driverSlug(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return slug === '' ? 'tool' : slug.slice(0, 64);
}

/**
 * CWE ids from references into the CWE taxonomy: a rule's relationships
 * (`{target: {id: "79", toolComponent: {name: "CWE"}}}`) or a result's taxa (`{id, toolComponent}`).
 */
function cweReferences(v: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(v)) return out;
  for (const rel of v) {
    const target = isObject(rel) ? (get(rel, 'target') ?? rel) : undefined;
    const component = isObject(target) ? get(target, 'toolComponent') : undefined;
    const name = isObject(component) ? get(component, 'name') : undefined;
    const id = isObject(target) ? get(target, 'id') : undefined;
    if (typeof name === 'string' && name.toUpperCase() === 'CWE' && typeof id === 'string')
      out.push(`CWE-${id}`);
  }
  return out;
}

function readRule(c: JsonChecker, v: unknown, path: JsonPath): Rule {
  const rule = c.object(v, path);
  const id = c.name(get(rule, 'id'), [...path, 'id'], MAX_RULE_ID);
  const config = c.optObject(get(rule, 'defaultConfiguration'), [...path, 'defaultConfiguration']);
  const props = c.optObject(get(rule, 'properties'), [...path, 'properties']);
  const short = get(rule, 'shortDescription');
  const text = isObject(short) ? get(short, 'text') : undefined;
  return {
    id,
    name: c.optString(get(rule, 'name'), [...path, 'name']),
    level: level(c, get(config, 'level'), [...path, 'defaultConfiguration', 'level']),
    score: securitySeverity(c, get(props, 'security-severity'), [
      ...path,
      'properties',
      'security-severity',
    ]),
    refs: [get(props, 'tags'), ...cweReferences(get(rule, 'relationships'))],
    messageStrings: c.optObject(get(rule, 'messageStrings'), [...path, 'messageStrings']),
    description: typeof text === 'string' ? text : undefined,
  };
}

/**
 * A result's message: its text, else the rule's message string it names with the arguments
 * put in. Embedded links `[text](1)` keep only their text.
 */
function messageText(
  c: JsonChecker,
  v: unknown,
  path: JsonPath,
  rule: Rule | undefined,
): string | undefined {
  const msg = c.object(v, path);
  let text = c.optString(get(msg, 'text'), [...path, 'text']);
  if (text === undefined) {
    const id = c.optString(get(msg, 'id'), [...path, 'id']);
    const template = id === undefined ? undefined : get(rule?.messageStrings, id);
    const t = isObject(template) ? get(template, 'text') : undefined;
    if (typeof t === 'string') {
      const args = c.optArray(get(msg, 'arguments'), [...path, 'arguments']) ?? [];
      // Clipped before and while filling in: a title is short, and a huge template shared by
      // 100,000 results must not be expanded in full for each.
      let out = '';
      for (const part of t.slice(0, MESSAGE_CHARS).split(/(\{\d{1,3}\})/)) {
        const n = /^\{(\d{1,3})\}$/.exec(part);
        const a = n ? args[Number(n[1])] : undefined;
        out += n && typeof a === 'string' ? a.slice(0, MESSAGE_CHARS) : part;
        if (out.length >= MESSAGE_CHARS) break;
      }
      text = out;
    }
  }
  // Links `[text](1)`: a linear scan (a `[` without its `](n)` costs nothing extra).
  return text === undefined ? undefined : unlink(text.slice(0, MESSAGE_CHARS));
}

/** Most characters of a message kept: it becomes a title and evidence, both clipped shorter. */
const MESSAGE_CHARS = 4096;

function unlink(text: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const open = text.indexOf('[', i);
    if (open < 0) return out + text.slice(i);
    const close = text.indexOf('](', open + 1);
    const end = close < 0 ? -1 : text.indexOf(')', close + 2);
    if (
      close < 0 ||
      end < 0 ||
      close - open > 501 ||
      !/^\d{1,9}$/.test(text.slice(close + 2, end))
    ) {
      out += text.slice(i, open + 1);
      i = open + 1;
      continue;
    }
    out += text.slice(i, open) + text.slice(open + 1, close);
    i = end + 1;
  }
}

/**
 * Reads a SARIF 2.1.0 log: every result is a finding (`pass`, `notApplicable` and baseline
 * `absent` results are not), rated by `security-severity` when the result or its rule has one,
 * else by its level.
 */
export function parseSarifLog(text: string): ImportedEvaluation {
  const doc = parseJsonDocument('sarif', text);
  const c: JsonChecker = new JsonChecker('sarif');
  const hint = () => otherFormatHint('sarif', formatOfValue(doc));
  const log = isObject(doc)
    ? doc
    : c.fail(
        [],
        `is ${Array.isArray(doc) ? 'an array' : 'not an object'}, expected a SARIF log object${hint()}`,
      );
  const version = get(log, 'version');
  if (version === undefined) c.fail(['version'], 'is missing (expected "2.1.0")', hint());
  if (version !== '2.1.0')
    c.fail(
      ['version'],
      `is ${typeof version === 'string' ? `"${clip(version, 40)}"` : 'not a string'}, expected "2.1.0": only SARIF 2.1.0 is read`,
    );
  const runs = c.array(get(log, 'runs'), ['runs']);
  if (runs.length === 0) c.fail(['runs'], 'is empty: the log names no tool');

  const findings = new FindingList('sarif');
  const drivers = new Map<string, string>();
  const counts: Record<Severity, number> = { critical: 0, high: 0, medium: 0, low: 0, info: 0 };
  let ranAt: string | undefined;
  for (let r = 0; r < runs.length; r++) {
    const runPath: JsonPath = ['runs', r];
    const run = c.object(runs[r], runPath);
    const tool = c.object(get(run, 'tool'), [...runPath, 'tool']);
    const driverPath: JsonPath = [...runPath, 'tool', 'driver'];
    const driver = c.object(get(tool, 'driver'), driverPath);
    const driverName = oneLine(c.string(get(driver, 'name'), [...driverPath, 'name']));
    if (driverName === '') c.fail([...driverPath, 'name'], 'is empty');
    const driverVersion =
      c.optString(get(driver, 'semanticVersion'), [...driverPath, 'semanticVersion']) ??
      c.optString(get(driver, 'version'), [...driverPath, 'version']) ??
      'unknown';
    if (!drivers.has(driverName)) drivers.set(driverName, driverVersion);
    const slug = driverSlug(driverName);

    const rules = (c.optArray(get(driver, 'rules'), [...driverPath, 'rules']) ?? []).map((v, k) =>
      readRule(c, v, [...driverPath, 'rules', k]),
    );
    const byId = new Map<string, Rule>();
    for (const rule of rules) if (!byId.has(rule.id)) byId.set(rule.id, rule);
    const artifacts = c.optArray(get(run, 'artifacts'), [...runPath, 'artifacts']) ?? [];
    if (ranAt === undefined) {
      const invocations = get(run, 'invocations');
      const first = Array.isArray(invocations) ? invocations[0] : undefined;
      ranAt = isObject(first) ? isoTime(get(first, 'startTimeUtc'), true) : undefined;
    }

    const results = c.optArray(get(run, 'results'), [...runPath, 'results']) ?? [];
    for (let j = 0; j < results.length; j++) {
      const path: JsonPath = [...runPath, 'results', j];
      const res = c.object(results[j], path);
      const kind = c.optString(get(res, 'kind'), [...path, 'kind']);
      if (kind !== undefined && !KINDS.includes(kind))
        c.fail([...path, 'kind'], `is "${clip(kind, 40)}", expected one of ${KINDS.join(', ')}`);
      // A check that passed, did not apply, or a result gone since the baseline: nothing found.
      if (kind === 'pass' || kind === 'notApplicable') continue;
      if (get(res, 'baselineState') === 'absent') continue;

      const ref = c.optObject(get(res, 'rule'), [...path, 'rule']);
      const ruleIndex =
        c.optInteger(get(res, 'ruleIndex'), [...path, 'ruleIndex'], -1) ??
        c.optInteger(get(ref, 'index'), [...path, 'rule', 'index'], -1);
      const statedId =
        get(res, 'ruleId') !== undefined
          ? c.name(get(res, 'ruleId'), [...path, 'ruleId'], MAX_RULE_ID)
          : get(ref, 'id') !== undefined
            ? c.name(get(ref, 'id'), [...path, 'rule', 'id'], MAX_RULE_ID)
            : undefined;
      let rule: Rule | undefined;
      if (ruleIndex !== undefined && ruleIndex >= 0) {
        rule = rules[ruleIndex];
        if (!rule)
          c.fail(
            [...path, 'ruleIndex'],
            `is ${ruleIndex}, but the driver has ${rules.length} rule${rules.length === 1 ? '' : 's'}`,
          );
      } else if (statedId !== undefined) {
        // A hierarchical id (`CA2000/1`) is described by its first component's rule.
        rule = byId.get(statedId) ?? byId.get(statedId.split('/')[0] ?? statedId);
      }
      const id = statedId ?? rule?.id;
      if (id === undefined)
        c.fail(
          [...path, 'ruleId'],
          'is missing, and the result has no ruleIndex or rule.id either',
        );

      const props = c.optObject(get(res, 'properties'), [...path, 'properties']);
      const score =
        securitySeverity(c, get(props, 'security-severity'), [
          ...path,
          'properties',
          'security-severity',
        ]) ?? rule?.score;
      // SARIF 3.27.10: a result that is not a failure (open, review...) has level none; a
      // failure without a level takes its rule's default, else warning.
      const lvl =
        level(c, get(res, 'level'), [...path, 'level']) ??
        (kind !== undefined && kind !== 'fail' ? 'none' : (rule?.level ?? 'warning'));
      const severity = score !== undefined ? severityFromScore(score) : LEVEL_SEVERITY[lvl];
      counts[severity]++;

      const message = messageText(c, get(res, 'message'), [...path, 'message'], rule);
      const locations = c.optArray(get(res, 'locations'), [...path, 'locations']);
      let file: string | undefined;
      let line: number | undefined;
      let column: number | undefined;
      let offset: number | undefined;
      if (locations !== undefined && locations.length > 0) {
        const locPath: JsonPath = [...path, 'locations', 0];
        const loc = c.object(locations[0], locPath);
        const phys = c.optObject(get(loc, 'physicalLocation'), [...locPath, 'physicalLocation']);
        const artPath: JsonPath = [...locPath, 'physicalLocation', 'artifactLocation'];
        const art = c.optObject(get(phys, 'artifactLocation'), artPath);
        // An empty uri names no file: fall back as if there were none.
        file = c.optString(get(art, 'uri'), [...artPath, 'uri']) || undefined;
        const index = c.optInteger(get(art, 'index'), [...artPath, 'index'], -1);
        if (file === undefined && index !== undefined && index >= 0) {
          const artifact = artifacts[index];
          if (artifact === undefined)
            c.fail(
              [...artPath, 'index'],
              `is ${index}, but the run has ${artifacts.length} artifacts`,
            );
          const a = c.object(artifact, [...runPath, 'artifacts', index]);
          const aLoc = c.optObject(get(a, 'location'), [
            ...runPath,
            'artifacts',
            index,
            'location',
          ]);
          file =
            c.optString(get(aLoc, 'uri'), [...runPath, 'artifacts', index, 'location', 'uri']) ||
            undefined;
        }
        const regionPath: JsonPath = [...locPath, 'physicalLocation', 'region'];
        const region = c.optObject(get(phys, 'region'), regionPath);
        line = c.optInteger(get(region, 'startLine'), [...regionPath, 'startLine'], 1);
        column = c.optInteger(get(region, 'startColumn'), [...regionPath, 'startColumn'], 1);
        offset = c.optInteger(get(region, 'byteOffset'), [...regionPath, 'byteOffset'], 0);
        if (file === undefined) {
          const logical = get(loc, 'logicalLocations');
          const l0 = Array.isArray(logical) ? logical[0] : undefined;
          const fqn = isObject(l0) ? (get(l0, 'fullyQualifiedName') ?? get(l0, 'name')) : undefined;
          if (typeof fqn === 'string' && fqn !== '') file = fqn;
        }
      }
      const suppressions = get(res, 'suppressions');
      const suppressed =
        Array.isArray(suppressions) &&
        suppressions.some((s) => isObject(s) && (get(s, 'status') ?? 'accepted') === 'accepted');

      const evidence: Record<string, string | number | boolean> = {
        tool: clip(driverName, MAX_TOOL_FIELD),
        level: lvl,
      };
      if (message !== undefined && message !== '') evidence.message = clip(message, MAX_EVIDENCE);
      if (line !== undefined) evidence.line = line;
      if (column !== undefined) evidence.column = column;
      if (score !== undefined) evidence.securitySeverity = score;
      if (rule?.name !== undefined) evidence.rule = clip(rule.name, MAX_EVIDENCE);
      if (suppressed) evidence.suppressed = true;
      findings.push({
        ruleId: `sarif/${slug}/${id}`,
        severity,
        title: title(message?.trim() ? message : (rule?.description ?? id)),
        location: {
          file: clip(file ?? id, MAX_LOCATION),
          ...(offset !== undefined && { offset }),
        },
        evidence,
        references: referenceIds([
          ...(rule?.refs ?? []),
          get(props, 'tags'),
          ...cweReferences(get(res, 'taxa')),
        ]),
      });
    }
  }

  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return finish('sarif', {
    tool: { name: [...drivers.keys()].join('+'), version: [...drivers.values()].join('+') },
    findings: findings.items,
    metrics: [
      ['findings', total],
      ...Object.entries(counts).map(([s, n]): [string, number] => [`findings.${s}`, n]),
    ],
    ranAt,
  });
}
