import { ModelgateError } from '../../core/errors.js';
import type { Finding, Severity } from '../../core/findings.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../core/json-depth.js';
import { asrBand, wilson as wilsonInterval } from '../redteam/stats.js';
import {
  EVALUATION_RESULT_SCHEMA,
  type ImportedEvaluation,
  type ImportFormat,
  MAX_IMPORT_BYTES,
  MAX_IMPORT_FINDINGS,
  MAX_IMPORT_METRICS,
  MAX_METRIC_NAME,
} from './import-format.js';

/** How each format is named in messages. */
export const FORMAT_LABEL: Record<ImportFormat, string> = {
  garak: 'garak report',
  promptfoo: 'promptfoo results',
  sarif: 'SARIF log',
  modelgate: 'Modelgate evaluation result',
};

const LOOKS_LIKE: Record<ImportFormat, string> = {
  garak: 'a garak report',
  promptfoo: 'promptfoo results',
  sarif: 'a SARIF log',
  modelgate: 'a Modelgate evaluation result',
};

/** Longest finding title an importer writes. */
export const MAX_TITLE = 200;
/** Longest evidence string an importer writes. */
export const MAX_EVIDENCE = 500;
/** Longest tool name or version kept. */
export const MAX_TOOL_FIELD = 128;
/** Most references kept on one finding. */
export const MAX_REFERENCES = 50;

/** The rule id shape every imported finding has: a lowercase tool prefix, then anything. */
export const RULE_ID = /^[a-z][\w.-]*(\/.+)?$/;

/** A JSON path: object keys and array indexes from the document root. */
export type JsonPath = readonly (string | number)[];
/** A parsed JSON object. */
export type JsonObject = Record<string, unknown>;

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** `['runs', 0, 'properties', 'security-severity']` -> `runs[0].properties["security-severity"]`. */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === '' ? seg : `.${seg}`;
    // Keys come from the file: quote them, and keep a hostile one from flooding the message.
    else out += `[${JSON.stringify(clip(seg, 64))}]`;
  }
  return out;
}

/** What a JSON value is, for messages: `a string`, `null`, `an array`... */
export function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** The refusal every importer throws: always IMPORT_INVALID, with the format in the details. */
export function importError(
  format: ImportFormat,
  message: string,
  details: Record<string, unknown> = {},
): ModelgateError {
  return new ModelgateError('IMPORT_INVALID', message, { format, ...details });
}

/** True for a JSON object (not null, not an array). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A field of a parsed object, never one inherited from Object.prototype (`constructor`...). */
export function get(o: JsonObject | undefined, key: string): unknown {
  return o !== undefined && Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Cuts `s` to at most `max` UTF-16 units, ending with `…` when cut, never mid surrogate pair. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max - 1;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return `${s.slice(0, end).trimEnd()}…`;
}

/** One line of text: runs of whitespace and control characters become one space. */
export function oneLine(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
  return s.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
}

/** A finding title: one line, clipped. */
export function title(s: string): string {
  return clip(oneLine(s), MAX_TITLE);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/;

/** True for a name fit for a rule id or metric name: no control characters or line breaks. */
export function isCleanName(s: string, max: number): boolean {
  return s.length > 0 && s.length <= max && !CONTROL.test(s) && s.trim() === s;
}

/** Wilson score interval for `fails` successes in `n` trials (95 % with the default z). */
export function wilson(fails: number, n: number, z = 1.96): { lower: number; upper: number } {
  const [lower, upper] = wilsonInterval(fails, n, z);
  return { lower, upper };
}

/** Severity of an attack success rate by garak's absolute DEFCON bands (see asrBand). */
export const severityFromAsr = asrBand;

/** Severity of a CVSS-like `security-severity` score (GitHub code scanning's bands). */
export function severityFromScore(score: number): Severity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  if (score > 0) return 'low';
  return 'info';
}

const REFERENCE_FORMS: [RegExp, (m: RegExpExecArray) => string][] = [
  // CodeQL tags CWEs as `external/cwe/cwe-079`.
  [/^(?:external\/cwe\/)?cwe[-_: ]?0*(\d{1,6})$/i, (m) => `CWE-${m[1]}`],
  [/^cve-(\d{4})-(\d{4,7})$/i, (m) => `CVE-${m[1]}-${m[2]}`],
  [/^ghsa(-[0-9a-z]{4}){3}$/i, (m) => `GHSA${m[0].slice(4).toLowerCase()}`],
  [/^aml\.t(\d{4})(\.\d{3})?$/i, (m) => `AML.T${m[1]}${m[2] ?? ''}`],
  // OWASP LLM Top 10: `LLM01`, `LLM01:2025`, or promptfoo's `owasp:llm:01`.
  [/^(?:owasp:llm:|llm)(\d{2})(?::(\d{4}))?$/i, (m) => `LLM${m[1]}${m[2] ? `:${m[2]}` : ''}`],
];

/**
 * The CWE, CVE, GHSA, MITRE ATLAS and OWASP LLM ids among `values` (strings, or arrays of
 * strings), in a normal spelling, each once. Everything else (`security`, `correctness`...)
 * is dropped.
 */
export function referenceIds(values: unknown[]): string[] {
  const out = new Set<string>();
  const take = (v: unknown) => {
    if (typeof v !== 'string' || v.length > 64 || out.size >= MAX_REFERENCES) return;
    const s = v.trim();
    for (const [re, norm] of REFERENCE_FORMS) {
      const m = re.exec(s);
      if (m) {
        out.add(norm(m));
        return;
      }
    }
  };
  for (const v of values) {
    if (Array.isArray(v)) for (const x of v) take(x);
    else take(v);
  }
  return [...out];
}

const TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:?\d{2})?$/;

/**
 * An ISO 8601 time as `YYYY-MM-DDTHH:MM:SS.sssZ`, or undefined when `v` is not one. With
 * `assumeUtc`, a time without a zone is taken as UTC (garak writes local time without a zone
 * and there is nothing better to go on) and seconds may be left out; without it, `v` must be
 * an RFC 3339 date-time.
 */
export function isoTime(v: unknown, assumeUtc: boolean): string | undefined {
  if (typeof v !== 'string' || v.length > 64) return undefined;
  const m = TIME.exec(v);
  if (!m) return undefined;
  const [, y = '', mo = '', d = '', h = '', mi = '', s = '00', frac = '', zone] = m;
  // Strictly, RFC 3339: seconds and a zone are not optional.
  if (!assumeUtc && (zone === undefined || m[6] === undefined)) return undefined;
  const [year, month, day] = [Number(y), Number(mo), Number(d)];
  // Date.parse would roll 2026-02-31 over to March: a day that does not exist is not a time.
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > days) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  let z = zone === undefined || zone === 'z' ? 'Z' : zone;
  if (z.length === 5) z = `${z.slice(0, 3)}:${z.slice(3)}`;
  const ms = `${frac}000`.slice(0, 3);
  const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}${z}`);
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

/** A size-checked text without a byte-order mark; refuses one over the limit or blank. */
export function prepareText(format: ImportFormat, text: unknown): string {
  if (typeof text !== 'string')
    throw importError(format, `${FORMAT_LABEL[format]}: the input is not text`);
  // A UTF-16 unit is at least one UTF-8 byte, so a long string is over the limit uncounted.
  const bytes = text.length > MAX_IMPORT_BYTES ? text.length : Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_IMPORT_BYTES)
    throw importError(
      format,
      `${FORMAT_LABEL[format]} is larger than the ${MAX_IMPORT_BYTES}-byte import limit`,
      { bytes },
    );
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw importError(format, `${FORMAT_LABEL[format]} is empty`);
  return body;
}

/** What went wrong in JSON.parse, without V8's quoting of the input, and where (0-based). */
export function jsonProblem(e: unknown, text: string): { problem: string; position?: number } {
  const msg = e instanceof Error ? e.message : String(e);
  const pos = /at position (\d+)/.exec(msg);
  const problem = msg
    .replace(/(?: in JSON)? at position \d+.*$/s, '')
    .replace(/, ".*" is not valid JSON$/s, '')
    .replace(/^Unexpected end of JSON input$/, 'the text ends too early');
  if (pos?.[1] !== undefined) return { problem, position: Number(pos[1]) };
  if (/end of JSON input/.test(msg)) return { problem, position: text.length };
  return { problem };
}

/** 1-based line and column of a 0-based position in `text`. */
export function lineColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(position, text.length);
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: end - start + 1 };
}

/** Which import format a parsed document looks like, when it is recognisably one. */
export function formatOfValue(v: unknown): ImportFormat | undefined {
  if (!isObject(v)) return undefined;
  if (get(v, 'schema') === EVALUATION_RESULT_SCHEMA) return 'modelgate';
  const schemaUri = get(v, '$schema');
  if (
    (get(v, 'version') === '2.1.0' && Array.isArray(get(v, 'runs'))) ||
    (typeof schemaUri === 'string' && /sarif/i.test(schemaUri))
  )
    return 'sarif';
  if (typeof get(v, 'entry_type') === 'string') return 'garak';
  const results = get(v, 'results');
  if (
    Object.hasOwn(v, 'evalId') ||
    (isObject(results) && Array.isArray(get(results, 'results'))) ||
    (Array.isArray(results) && isObject(get(v, 'stats')))
  )
    return 'promptfoo';
  return undefined;
}

/** Which import format a text looks like: its first line (JSON Lines), else the whole text. */
export function sniffFormat(text: string): ImportFormat | undefined {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const start = body.search(/\S/);
  if (start === -1 || body[start] !== '{') return undefined;
  const nl = body.indexOf('\n', start);
  const first = body.slice(start, nl === -1 ? undefined : nl);
  try {
    const f = formatOfValue(JSON.parse(first));
    if (f === 'garak') return f;
  } catch {
    // Not one JSON object per line: try the whole text below.
  }
  try {
    return formatOfValue(JSON.parse(body));
  } catch {
    return undefined;
  }
}

/** ` (it looks like a SARIF log: import it as format "sarif")` when it looks like another format. */
export function otherFormatHint(format: ImportFormat, seen: ImportFormat | undefined): string {
  return seen !== undefined && seen !== format
    ? ` (it looks like ${LOOKS_LIKE[seen]}: import it as format "${seen}")`
    : '';
}

/**
 * Parses a whole-file JSON format; a syntax error is refused with its line and column, and a
 * hint when the text is recognisably another format (garak's JSON Lines, typically).
 */
export function parseJsonDocument(format: ImportFormat, text: string): unknown {
  const body = prepareText(format, text);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    const { problem, position } = jsonProblem(e, body);
    const where =
      position === undefined
        ? ''
        : (() => {
            const { line, column } = lineColumn(body, position);
            return ` at line ${line}, column ${column}`;
          })();
    throw importError(
      format,
      `${FORMAT_LABEL[format]}: not valid JSON${where}: ${problem}${otherFormatHint(format, sniffFormat(body))}`,
      position === undefined ? {} : { position },
    );
  }
  // The checks and the evidence walk a document recursively: bound its depth first.
  if (jsonTooDeep(doc))
    throw importError(
      format,
      `${FORMAT_LABEL[format]}: nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels (the limit)`,
      { limit: MAX_JSON_DEPTH },
    );
  return doc;
}

/**
 * Type checks for one JSON document: each refusal names the JSON path, e.g.
 * `promptfoo results: results.results[3].success is a string, expected a boolean`.
 */
export class JsonChecker {
  constructor(readonly format: ImportFormat) {}

  /** Refuses the document: `problem` follows the path (`is missing`, `is ..., expected ...`). */
  fail(path: JsonPath, problem: string, hint = ''): never {
    const where = path.length === 0 ? 'the document' : formatPath(path);
    throw importError(this.format, `${FORMAT_LABEL[this.format]}: ${where} ${problem}${hint}`, {
      path: formatPath(path),
    });
  }

  private wrongType(v: unknown, path: JsonPath, expected: string): never {
    if (v === undefined) this.fail(path, `is missing (expected ${expected})`);
    this.fail(path, `is ${describe(v)}, expected ${expected}`);
  }

  object(v: unknown, path: JsonPath): JsonObject {
    if (!isObject(v)) this.wrongType(v, path, 'an object');
    return v;
  }

  /** An object, or undefined when absent or null. */
  optObject(v: unknown, path: JsonPath): JsonObject | undefined {
    return v === undefined || v === null ? undefined : this.object(v, path);
  }

  array(v: unknown, path: JsonPath): unknown[] {
    if (!Array.isArray(v)) this.wrongType(v, path, 'an array');
    return v;
  }

  /** An array, or undefined when absent or null. */
  optArray(v: unknown, path: JsonPath): unknown[] | undefined {
    return v === undefined || v === null ? undefined : this.array(v, path);
  }

  string(v: unknown, path: JsonPath): string {
    if (typeof v !== 'string') this.wrongType(v, path, 'a string');
    return v;
  }

  /** A string, or undefined when absent or null. */
  optString(v: unknown, path: JsonPath): string | undefined {
    return v === undefined || v === null ? undefined : this.string(v, path);
  }

  boolean(v: unknown, path: JsonPath): boolean {
    if (typeof v !== 'boolean') this.wrongType(v, path, 'a boolean');
    return v;
  }

  /** A finite number, or undefined when absent or null. */
  optNumber(v: unknown, path: JsonPath): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number') this.wrongType(v, path, 'a number');
    if (!Number.isFinite(v)) this.fail(path, 'is not a finite number');
    return v;
  }

  /** An integer at least `min`, or undefined when absent or null. */
  optInteger(v: unknown, path: JsonPath, min: number): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.fail(
        path,
        `is ${describe(v)}${typeof v === 'number' ? ` (${v})` : ''}, expected an integer >= ${min}`,
      );
    return v;
  }

  /** A name used in a rule id or metric name: a string without control characters. */
  name(v: unknown, path: JsonPath, max: number): string {
    const s = this.string(v, path);
    if (!isCleanName(s, max))
      this.fail(
        path,
        `is not a usable name: it must be 1 to ${max} characters without line breaks, control characters or surrounding spaces`,
      );
    return s;
  }
}

/** Collects findings, refusing more than MAX_IMPORT_FINDINGS. */
export class FindingList {
  readonly items: Finding[] = [];
  constructor(private readonly format: ImportFormat) {}

  push(f: Finding): void {
    if (this.items.length >= MAX_IMPORT_FINDINGS)
      throw importError(
        this.format,
        `${FORMAT_LABEL[this.format]} holds more than ${MAX_IMPORT_FINDINGS} findings, the import limit`,
      );
    this.items.push(f);
  }
}

/**
 * The imported evaluation, after the checks every format shares: rule ids of the common shape,
 * at most MAX_IMPORT_METRICS finite metrics with names of at most MAX_METRIC_NAME characters.
 */
export function finish(
  format: ImportFormat,
  ev: {
    tool: { name: string; version: string };
    findings: Finding[];
    metrics: [string, number][];
    ranAt?: string | undefined;
  },
): ImportedEvaluation {
  const label = FORMAT_LABEL[format];
  if (ev.metrics.length > MAX_IMPORT_METRICS)
    throw importError(
      format,
      `${label} gives ${ev.metrics.length} metrics, more than the import limit of ${MAX_IMPORT_METRICS}`,
    );
  for (const [name, value] of ev.metrics) {
    if (!isCleanName(name, MAX_METRIC_NAME))
      throw importError(
        format,
        `${label}: metric name ${JSON.stringify(clip(name, 160))} is longer than ${MAX_METRIC_NAME} characters or has control characters`,
      );
    if (!Number.isFinite(value))
      throw importError(format, `${label}: metric ${name} is not a finite number`);
  }
  for (const f of ev.findings)
    if (!RULE_ID.test(f.ruleId))
      throw importError(
        format,
        `${label}: rule id ${JSON.stringify(clip(f.ruleId, 160))} does not have the form tool/rule`,
      );
  return {
    tool: {
      name: clip(oneLine(ev.tool.name), MAX_TOOL_FIELD) || 'unknown',
      version: clip(oneLine(ev.tool.version), MAX_TOOL_FIELD) || 'unknown',
    },
    findings: ev.findings,
    // fromEntries defines own properties: a metric called `__proto__` stays a metric.
    metrics: Object.fromEntries(ev.metrics),
    ...(ev.ranAt !== undefined && { ranAt: ev.ranAt }),
  };
}
