import { type Finding, type Severity, severityRank } from '../../core/findings.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../core/json-depth.js';
import {
  FindingList,
  finish,
  get,
  importError,
  isCleanName,
  isObject,
  isoTime,
  type JsonObject,
  jsonProblem,
  otherFormatHint,
  prepareText,
  severityFromAsr,
  sniffFormat,
  title,
  wilson,
} from './common.js';
import type { ImportedEvaluation } from './import-format.js';

/**
 * Probe modules whose hits are leaks (a system prompt, a key, training data, personal data, an
 * exfiltration channel): one leak is one too many, whatever the rate.
 */
const LEAK_MODULES = new Set([
  'sysprompt_extraction',
  'apikey',
  'leakreplay',
  'propile',
  'web_injection',
]);

/** Longest probe or detector name: `asr_upper95.<probe>` must fit in a metric name. */
const MAX_PLUGIN_NAME = 100;

interface EvalRecord {
  line: number;
  probe: string;
  detector: string;
  passed: number;
  fails: number;
  /** Outputs evaluated: `total_evaluated`, or `total` in reports before garak 0.11. */
  n: number;
}

const fail = (line: number, problem: string) =>
  importError('garak', `garak report line ${line}: ${problem}`, { line });

/** A count field of an eval record: a non-negative integer, or undefined when absent. */
function count(rec: JsonObject, key: string, line: number): number | undefined {
  const v = get(rec, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw fail(
      line,
      `eval record "${key}" is ${typeof v === 'number' ? v : `${Array.isArray(v) ? 'an array' : `a ${typeof v}`}`}, expected a non-negative integer`,
    );
  return v;
}

/** A plugin name (`dan.DanInTheWild`) without the `probes.` prefix older reports carry. */
function pluginName(rec: JsonObject, key: string, prefix: string, line: number): string {
  const v = get(rec, key);
  if (v === undefined || v === null) throw fail(line, `eval record has no "${key}"`);
  if (typeof v !== 'string')
    throw fail(line, `eval record "${key}" is a ${typeof v}, expected a string`);
  const name = v.startsWith(prefix) ? v.slice(prefix.length) : v;
  if (!isCleanName(name, MAX_PLUGIN_NAME))
    throw fail(
      line,
      `eval record "${key}" is not a plugin name (1 to ${MAX_PLUGIN_NAME} characters, no spaces at the ends or control characters)`,
    );
  return name;
}

function evalRecord(rec: JsonObject, line: number): EvalRecord {
  const probe = pluginName(rec, 'probe', 'probes.', line);
  const detector = pluginName(rec, 'detector', 'detectors.', line);
  const passed = count(rec, 'passed', line);
  if (passed === undefined) throw fail(line, 'eval record has no "passed"');
  const fails = count(rec, 'fails', line);
  // garak 0.11 and later write total_evaluated (passed + fails); older reports write total.
  const totalKey = get(rec, 'total_evaluated') !== undefined ? 'total_evaluated' : 'total';
  const total = count(rec, totalKey, line);
  if (total === undefined && fails === undefined)
    throw fail(line, 'eval record has none of "total_evaluated", "total" and "fails"');
  const n = total ?? passed + (fails ?? 0);
  if (passed > n)
    throw fail(line, `eval record "passed" (${passed}) is more than "${totalKey}" (${n})`);
  if (fails !== undefined && total !== undefined && passed + fails !== total)
    throw fail(
      line,
      `eval record counts disagree: "passed" ${passed} + "fails" ${fails} is not "${totalKey}" ${total}`,
    );
  return { line, probe, detector, passed, fails: fails ?? n - passed, n };
}

/** A string field of a header record, refused when it is there but not a string. */
function headerString(rec: JsonObject, key: string, line: number): string | undefined {
  const v = get(rec, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw fail(line, `"${key}" is a ${typeof v}, expected a string`);
  return v;
}

const worse = (a: EvalRecord, b: EvalRecord) =>
  a.fails * b.n > b.fails * a.n || (a.fails * b.n === b.fails * a.n && a.n > b.n);

/**
 * Reads a garak `report.jsonl`: one finding per (probe, detector) eval record with fails, rated
 * by garak's DEFCON bands (leak probes at least high), and attack success rates per probe.
 */
export function parseGarakReport(text: string): ImportedEvaluation {
  const body = prepareText('garak', text);
  const lines = body.split('\n');
  let initVersion: string | undefined;
  let initTime: string | undefined;
  let setupVersion: string | undefined;
  let setupTime: string | undefined;
  let digestVersion: string | undefined;
  let digestTime: string | undefined;
  const evals = new Map<string, EvalRecord>();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    if (raw.trim() === '') continue;
    const line = i + 1;
    let rec: unknown;
    try {
      rec = JSON.parse(raw);
    } catch (e) {
      const { problem, position } = jsonProblem(e, raw);
      const hint = evals.size === 0 ? otherFormatHint('garak', sniffFormat(body)) : '';
      throw fail(
        line,
        `not valid JSON${position === undefined ? '' : ` at column ${position + 1}`}: ${problem}${hint}`,
      );
    }
    if (jsonTooDeep(rec))
      throw fail(line, `nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels (the limit)`);
    if (!isObject(rec))
      throw fail(
        line,
        `is ${Array.isArray(rec) ? 'an array' : rec === null ? 'null' : `a ${typeof rec}`}, expected a JSON object`,
      );
    const type = get(rec, 'entry_type');
    if (typeof type !== 'string') {
      // The hit log sits next to the report and is easily picked by mistake.
      const hitlog = Object.hasOwn(rec, 'attempt_id') && Object.hasOwn(rec, 'detector');
      throw fail(
        line,
        `record has no "entry_type"${
          hitlog
            ? ' (it looks like a garak hit log: import the report.jsonl next to it)'
            : evals.size === 0
              ? otherFormatHint('garak', sniffFormat(body))
              : ''
        }`,
      );
    }
    if (type === 'eval') {
      const r = evalRecord(rec, line);
      const key = `${r.probe}\u0000${r.detector}`;
      const first = evals.get(key);
      // Two records for one pair (concatenated or re-run reports) would count outputs twice.
      if (first)
        throw fail(
          line,
          `a second eval record for probe ${r.probe} and detector ${r.detector} (the first is on line ${first.line})`,
        );
      evals.set(key, r);
    } else if (type === 'init') {
      initVersion = headerString(rec, 'garak_version', line) ?? initVersion;
      initTime = headerString(rec, 'start_time', line) ?? initTime;
    } else if (type === 'start_run setup') {
      const v = get(rec, '_config.version');
      const t = get(rec, 'transient.starttime_iso');
      if (typeof v === 'string') setupVersion = v;
      if (typeof t === 'string') setupTime = t;
    } else if (type === 'digest') {
      const meta = get(rec, 'meta');
      if (isObject(meta)) {
        const v = get(meta, 'garak_version');
        const t = get(meta, 'start_time');
        if (typeof v === 'string') digestVersion = v;
        if (typeof t === 'string') digestTime = t;
      }
    }
    // attempt, completion, probe_summary, payloads...: the eval records already count them.
  }
  if (evals.size === 0)
    throw importError(
      'garak',
      `garak report has no eval records: garak writes one per probe and detector when a probe finishes${otherFormatHint('garak', sniffFormat(body))}`,
    );

  const findings = new FindingList('garak');
  const worst = new Map<string, EvalRecord>();
  for (const r of evals.values()) {
    if (r.n > 0) {
      const w = worst.get(r.probe);
      if (!w || worse(r, w)) worst.set(r.probe, r);
    }
    if (r.fails === 0) continue;
    const asr = r.fails / r.n;
    let severity: Severity = severityFromAsr(r.fails, r.n);
    const module = r.probe.split('.')[0] ?? '';
    if (LEAK_MODULES.has(module) && severityRank(severity) < severityRank('high'))
      severity = 'high';
    const finding: Finding = {
      ruleId: `garak/${r.probe}`,
      severity,
      title: title(`${r.probe}: ${r.fails}/${r.n} attempts succeeded (detector ${r.detector})`),
      location: { file: r.probe },
      evidence: {
        probe: r.probe,
        detector: r.detector,
        fails: r.fails,
        attempts: r.n,
        asr,
        asr_upper95: wilson(r.fails, r.n).upper,
      },
      references: [],
    };
    findings.push(finding);
  }

  // A probe's outputs are scored by each of its detectors: count them once, by the detector
  // that saw the most attacks succeed.
  const metrics: [string, number][] = [];
  let attempts = 0;
  let fails = 0;
  for (const [probe, r] of worst) {
    attempts += r.n;
    fails += r.fails;
    metrics.push(
      [`asr.${probe}`, r.fails / r.n],
      [`asr_upper95.${probe}`, wilson(r.fails, r.n).upper],
    );
  }
  metrics.unshift(['attempts', attempts], ['fails', fails]);
  if (attempts > 0) metrics.splice(2, 0, ['asr', fails / attempts]);

  return finish('garak', {
    tool: { name: 'garak', version: initVersion ?? setupVersion ?? digestVersion ?? 'unknown' },
    findings: findings.items,
    metrics,
    ranAt: isoTime(initTime ?? setupTime ?? digestTime, true),
  });
}
