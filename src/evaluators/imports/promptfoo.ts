import { SEVERITIES, type Severity } from '../../core/findings.js';
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
  oneLine,
  otherFormatHint,
  parseJsonDocument,
  referenceIds,
  title,
} from './common.js';
import type { ImportedEvaluation } from './import-format.js';

/** Longest plugin or strategy id: `asr.<plugin>` must fit in a metric name. */
const MAX_PLUGIN_ID = 100;

/** promptfoo's ResultFailureReason.ERROR: the provider or an assertion errored, nothing graded. */
const FAILURE_REASON_ERROR = 2;

/** Metadata fields where a result may name framework ids (OWASP LLM, ATLAS, CWE). */
const REFERENCE_FIELDS = [
  'references',
  'frameworks',
  'tags',
  'owasp',
  'mitreAtlas',
  'atlas',
  'cwe',
];

const REDTEAM_ASSERTION = 'promptfoo:redteam:';

/** The grader's reason is evidence; the title carries its start. */
const MAX_REASON_IN_TITLE = 120;

/** A result's metadata field: the result's own metadata first, then its test case's. */
type MetaLookup = (key: string) => { value: unknown; path: JsonPath } | undefined;

/**
 * The plugin a result tests when its metadata does not say: red-team graders are assertions
 * named `promptfoo:redteam:<plugin>`; a plain eval is named by its first failed assertion.
 */
function pluginFromAssertions(result: JsonObject): string | undefined {
  const grading = get(result, 'gradingResult');
  const components = isObject(grading) ? get(grading, 'componentResults') : undefined;
  const testCase = get(result, 'testCase');
  const asserts = isObject(testCase) ? get(testCase, 'assert') : undefined;
  const types: { type: string; failed: boolean }[] = [];
  if (Array.isArray(components))
    for (const c of components) {
      const a = isObject(c) ? get(c, 'assertion') : undefined;
      const t = isObject(a) ? get(a, 'type') : undefined;
      if (typeof t === 'string')
        types.push({ type: t, failed: isObject(c) && get(c, 'pass') === false });
    }
  if (Array.isArray(asserts))
    for (const a of asserts) {
      const t = isObject(a) ? get(a, 'type') : undefined;
      if (typeof t === 'string') types.push({ type: t, failed: false });
    }
  const redteam = types.find((t) => t.type.startsWith(REDTEAM_ASSERTION));
  if (redteam) return redteam.type.slice(REDTEAM_ASSERTION.length);
  return types.find((t) => t.failed)?.type;
}

// A Map, not an object: the key comes from the file, and `__proto__` must not find anything.
const SEVERITY_ALIASES = new Map<string, Severity>([
  ['informational', 'info'],
  ['information', 'info'],
]);

/**
 * Reads promptfoo's results JSON (`promptfoo eval -o results.json`, `promptfoo export`): one
 * finding per failed test, by plugin, rated by the test's severity (medium when it has none).
 */
export function parsePromptfooResults(text: string): ImportedEvaluation {
  const doc = parseJsonDocument('promptfoo', text);
  const c: JsonChecker = new JsonChecker('promptfoo');
  const hint = () => otherFormatHint('promptfoo', formatOfValue(doc));
  if (!isObject(doc))
    c.fail(
      [],
      `is ${Array.isArray(doc) ? 'an array' : 'not an object'}, expected promptfoo's results object${hint()}`,
    );
  // The output file wraps the eval summary in `results`; the summary alone is accepted too.
  const wrapped = get(doc, 'results');
  let summary: JsonObject;
  let base: JsonPath;
  if (isObject(wrapped)) {
    summary = wrapped;
    base = ['results'];
  } else if (Array.isArray(wrapped)) {
    summary = doc;
    base = [];
  } else {
    c.fail(
      ['results'],
      wrapped === undefined
        ? 'is missing'
        : `is ${wrapped === null ? 'null' : `a ${typeof wrapped}`}, expected an object`,
      hint(),
    );
  }
  const items = c.array(get(summary, 'results'), [...base, 'results']);
  if (items.length === 0) c.fail([...base, 'results'], 'is empty: the file holds no test results');

  const findings = new FindingList('promptfoo');
  const perPlugin = new Map<string, { tests: number; failures: number }>();
  let successes = 0;
  let failures = 0;
  let errors = 0;
  for (let i = 0; i < items.length; i++) {
    const path: JsonPath = [...base, 'results', i];
    const r = c.object(items[i], path);
    const success = c.boolean(get(r, 'success'), [...path, 'success']);
    const error = c.optString(get(r, 'error'), [...path, 'error']);
    const failureReason = c.optInteger(get(r, 'failureReason'), [...path, 'failureReason'], 0);
    const metadata = c.optObject(get(r, 'metadata'), [...path, 'metadata']);
    const testCase = c.optObject(get(r, 'testCase'), [...path, 'testCase']);
    const testMeta = c.optObject(get(testCase, 'metadata'), [...path, 'testCase', 'metadata']);
    const meta: MetaLookup = (key) => {
      const own = get(metadata, key);
      if (own !== undefined && own !== null)
        return { value: own, path: [...path, 'metadata', key] };
      const t = get(testMeta, key);
      if (t !== undefined && t !== null)
        return { value: t, path: [...path, 'testCase', 'metadata', key] };
      return undefined;
    };
    const pluginField = meta('pluginId');
    const plugin = pluginField
      ? c.name(pluginField.value, pluginField.path, MAX_PLUGIN_ID)
      : (() => {
          const p = pluginFromAssertions(r);
          // A derived name is only a label: fall back rather than refuse an odd one.
          return p !== undefined && /^[\w.:/-]{1,100}$/.test(p) ? p : 'eval';
        })();
    const strategyField = meta('strategyId');
    const strategy = strategyField
      ? c.name(strategyField.value, strategyField.path, MAX_PLUGIN_ID)
      : undefined;
    const severityField = meta('severity');
    let severity: Severity = 'medium';
    if (severityField) {
      const s = c.string(severityField.value, severityField.path).toLowerCase();
      const known = SEVERITY_ALIASES.get(s) ?? SEVERITIES.find((x) => x === s);
      if (!known)
        c.fail(severityField.path, `is "${clip(s, 40)}", expected one of ${SEVERITIES.join(', ')}`);
      severity = known;
    }
    const grading = c.optObject(get(r, 'gradingResult'), [...path, 'gradingResult']);
    const reason = c.optString(get(grading, 'reason'), [...path, 'gradingResult', 'reason']);
    const response = c.optObject(get(r, 'response'), [...path, 'response']);
    const output = get(response, 'output');
    const prompt = c.optObject(get(r, 'prompt'), [...path, 'prompt']);
    const raw = get(prompt, 'raw');
    const score = c.optNumber(get(r, 'score'), [...path, 'score']);
    const goal = meta('goal')?.value;

    // An errored test was never graded: neither a pass nor an attack that worked. promptfoo
    // also puts a failed assertion's reason in `error`, so `error` alone only counts when the
    // file predates failureReason and nothing was graded.
    const isError =
      !success &&
      (failureReason !== undefined
        ? failureReason === FAILURE_REASON_ERROR
        : error !== undefined && error !== '' && grading === undefined);
    if (isError) {
      errors++;
      continue;
    }
    const stats = perPlugin.get(plugin) ?? { tests: 0, failures: 0 };
    stats.tests++;
    perPlugin.set(plugin, stats);
    if (success) {
      successes++;
      continue;
    }
    failures++;
    stats.failures++;
    const refs: unknown[] = [];
    for (const key of REFERENCE_FIELDS) refs.push(get(metadata, key), get(testMeta, key));
    const evidence: Record<string, string | number | boolean> = { plugin, test: i };
    if (strategy !== undefined) evidence.strategy = strategy;
    if (reason !== undefined && reason !== '') evidence.reason = clip(reason, MAX_EVIDENCE);
    if (typeof goal === 'string' && goal !== '') evidence.goal = clip(goal, MAX_EVIDENCE);
    if (typeof raw === 'string' && raw !== '') evidence.prompt = clip(raw, MAX_EVIDENCE);
    if (typeof output === 'string') evidence.output = clip(output, MAX_EVIDENCE);
    if (score !== undefined) evidence.score = score;
    const how = strategy !== undefined && strategy !== 'basic' ? ` (strategy ${strategy})` : '';
    findings.push({
      ruleId: `promptfoo/${plugin}`,
      severity,
      title: title(
        `${plugin}${how} failed: ${reason?.trim() ? clip(oneLine(reason), MAX_REASON_IN_TITLE) : 'the grader failed the response'}`,
      ),
      location: { file: plugin },
      evidence,
      references: referenceIds(refs),
    });
  }

  const tests = items.length;
  const metrics: [string, number][] = [
    ['tests', tests],
    ['failures', failures],
    ['errors', errors],
    ['pass_rate', successes / tests],
  ];
  for (const [plugin, s] of perPlugin) metrics.push([`asr.${plugin}`, s.failures / s.tests]);

  const outputMeta = get(doc, 'metadata');
  const version = isObject(outputMeta) ? get(outputMeta, 'promptfooVersion') : undefined;
  return finish('promptfoo', {
    tool: { name: 'promptfoo', version: typeof version === 'string' ? version : 'unknown' },
    findings: findings.items,
    metrics,
    ranAt:
      isoTime(get(summary, 'timestamp'), true) ??
      (isObject(outputMeta) ? isoTime(get(outputMeta, 'evaluationCreatedAt'), true) : undefined),
  });
}
