import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelgateError } from '../../core/errors.js';
import { SEVERITIES } from '../../core/findings.js';
import {
  CATEGORIES,
  DETECTORS,
  ENCODINGS,
  type Encoding,
  type Probe,
  type ProbePack,
} from './types.js';

/** OWASP Top 10 for LLM Applications 2025 entries. */
const OWASP_IDS = new Set([
  'LLM01',
  'LLM02',
  'LLM03',
  'LLM04',
  'LLM05',
  'LLM06',
  'LLM07',
  'LLM08',
  'LLM09',
  'LLM10',
]);
/** MITRE ATLAS technique or sub-technique ids. */
const ATLAS_ID = /^AML\.T\d{4}(?:\.\d{3})?$/;
/** The twelve risks of NIST AI 600-1 (Generative AI Profile), section 2. */
const NIST_RISKS = new Set([
  'CBRN Information or Capabilities',
  'Confabulation',
  'Dangerous, Violent, or Hateful Content',
  'Data Privacy',
  'Environmental Impacts',
  'Harmful Bias or Homogenization',
  'Human-AI Configuration',
  'Information Integrity',
  'Information Security',
  'Intellectual Property',
  'Obscene, Degrading, and/or Abusive Content',
  'Value Chain and Component Integration',
]);

const PACK_KEYS = new Set(['apiVersion', 'kind', 'name', 'version', 'description', 'probes']);
const PROBE_KEYS = new Set([
  'id',
  'category',
  'title',
  'prompt',
  'document',
  'payload',
  'encoding',
  'trigger',
  'detectors',
  'severity',
  'tags',
]);
const TAG_KEYS = ['owasp', 'atlas', 'nist'] as const;
const PACK_NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
// A family prefix and a dot (`spe.repeat-above`): metric names put probe ids beside category
// names, which have no dot.
const PROBE_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)+$/;
const SEMVER = /^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$/;
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const KNOWN_PLACEHOLDERS = new Set(['trigger', 'payload', 'document']);
// Tag characters mirror printable ASCII (and the usual whitespace) only.
const PRINTABLE_ASCII = /^[\x20-\x7e\t\n\r]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function placeholders(s: string): string[] {
  return [...s.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/**
 * Checks a parsed probe pack strictly and returns it typed. Every problem is reported, each
 * naming the file, the probe (id, or index when the id is unusable) and the field; throws
 * PROBE_PACK_INVALID.
 */
export function validateProbePack(value: unknown, file: string): ProbePack {
  const errors: string[] = [];
  const err = (where: string, msg: string) => errors.push(`${file}: ${where}: ${msg}`);
  if (!isObject(value)) {
    throw new ModelgateError('PROBE_PACK_INVALID', `${file}: a probe pack must be a JSON object`, {
      file,
      errors: [`${file}: a probe pack must be a JSON object`],
    });
  }
  for (const k of Object.keys(value)) if (!PACK_KEYS.has(k)) err(`field "${k}"`, 'unknown field');
  if (value.apiVersion !== 'modelgate.dev/v1') {
    err('field "apiVersion"', 'must be "modelgate.dev/v1"');
  }
  if (value.kind !== 'ProbePack') err('field "kind"', 'must be "ProbePack"');
  if (typeof value.name !== 'string' || !PACK_NAME.test(value.name)) {
    err('field "name"', 'must be lowercase letters, digits and dashes');
  }
  if (typeof value.version !== 'string' || !SEMVER.test(value.version)) {
    err('field "version"', 'must be a semantic version such as "1.0.0"');
  }
  if (typeof value.description !== 'string' || value.description.trim() === '') {
    err('field "description"', 'must be a non-empty string');
  }
  if (!Array.isArray(value.probes) || value.probes.length === 0) {
    err('field "probes"', 'must be a non-empty array');
  } else {
    const ids = new Map<string, number>();
    value.probes.forEach((p: unknown, i: number) => {
      const label = isObject(p) && typeof p.id === 'string' && p.id !== '' ? `"${p.id}"` : '';
      const where = (field: string) => `probe ${label ? `${label} ` : ''}(#${i}) field "${field}"`;
      if (!isObject(p)) {
        err(`probe #${i}`, 'must be an object');
        return;
      }
      checkProbe(p, where, err);
      if (typeof p.id === 'string' && p.id !== '') {
        const prev = ids.get(p.id);
        if (prev !== undefined) err(where('id'), `duplicate id "${p.id}" (also probe #${prev})`);
        else ids.set(p.id, i);
      }
    });
  }
  if (errors.length > 0) {
    throw new ModelgateError('PROBE_PACK_INVALID', errors.join('\n'), { file, errors });
  }
  return value as unknown as ProbePack;
}

function checkProbe(
  p: Record<string, unknown>,
  where: (field: string) => string,
  err: (where: string, msg: string) => void,
): void {
  for (const k of Object.keys(p)) if (!PROBE_KEYS.has(k)) err(where(k), 'unknown field');
  if (typeof p.id !== 'string' || !PROBE_ID.test(p.id)) {
    err(
      where('id'),
      'must be a family prefix, a dot and a name in lowercase letters, digits and dashes, e.g. "pi.ignore-previous"',
    );
  }
  if (typeof p.category !== 'string' || !(CATEGORIES as readonly string[]).includes(p.category)) {
    err(
      where('category'),
      `unknown category ${JSON.stringify(p.category)} (known: ${CATEGORIES.join(', ')})`,
    );
  }
  if (typeof p.title !== 'string' || p.title.trim() === '' || p.title.length > 200) {
    err(where('title'), 'must be a non-empty string of at most 200 characters');
  }
  for (const f of ['prompt', 'document', 'payload', 'trigger'] as const) {
    const v = p[f];
    if (f !== 'prompt' && v === undefined) continue;
    if (typeof v !== 'string' || v.trim() === '') err(where(f), 'must be a non-empty string');
  }
  if (typeof p.trigger === 'string' && (p.trigger.length > 200 || /[{}\n]/.test(p.trigger))) {
    err(where('trigger'), 'must be one line of at most 200 characters without braces');
  }
  if (p.encoding !== undefined) {
    if (typeof p.encoding !== 'string' || !(ENCODINGS as readonly string[]).includes(p.encoding)) {
      err(
        where('encoding'),
        `unknown encoding ${JSON.stringify(p.encoding)} (known: ${ENCODINGS.join(', ')})`,
      );
    } else if (p.payload === undefined) {
      err(where('encoding'), 'an encoding needs a payload to encode');
    } else if (
      p.encoding === 'unicode-tags' &&
      typeof p.payload === 'string' &&
      !PRINTABLE_ASCII.test(p.payload)
    ) {
      err(where('payload'), 'unicode-tags can only carry printable ASCII');
    }
  }
  // Placeholders: each must be known, have its value, and each value must be used somewhere.
  const used = new Map<string, string>();
  for (const f of ['prompt', 'document', 'payload'] as const) {
    const v = p[f];
    if (typeof v !== 'string') continue;
    for (const name of placeholders(v)) {
      if (!KNOWN_PLACEHOLDERS.has(name)) {
        err(
          where(f),
          `unknown placeholder "{{${name}}}" (known: {{trigger}}, {{payload}}, {{document}})`,
        );
        continue;
      }
      if (name === 'document' && f !== 'prompt') {
        err(where(f), '"{{document}}" can only be used in the prompt');
      }
      if (name === 'payload' && f === 'payload') err(where(f), 'the payload cannot contain itself');
      if (!used.has(name)) used.set(name, f);
    }
  }
  for (const name of ['trigger', 'payload', 'document'] as const) {
    const at = used.get(name);
    if (at !== undefined && p[name] === undefined) {
      err(where(at), `uses "{{${name}}}" but the probe has no ${name}`);
    }
  }
  if (p.payload !== undefined && !used.has('payload')) {
    err(where('payload'), 'is never used: put "{{payload}}" in the prompt or the document');
  }
  if (p.document !== undefined && !used.has('document')) {
    err(where('document'), 'is never used: put "{{document}}" in the prompt');
  }
  if (!Array.isArray(p.detectors) || p.detectors.length === 0) {
    err(where('detectors'), 'must be a non-empty array');
  } else {
    const seen = new Set<unknown>();
    p.detectors.forEach((d: unknown, j: number) => {
      if (typeof d !== 'string' || !(DETECTORS as readonly string[]).includes(d)) {
        err(
          where(`detectors[${j}]`),
          `unknown detector ${JSON.stringify(d)} (known: ${DETECTORS.join(', ')})`,
        );
      } else if (seen.has(d)) err(where(`detectors[${j}]`), `duplicate detector "${d}"`);
      seen.add(d);
    });
    if (seen.has('trigger') && p.trigger === undefined) {
      err(where('detectors'), 'the "trigger" detector needs a trigger');
    }
  }
  if (typeof p.severity !== 'string' || !(SEVERITIES as readonly string[]).includes(p.severity)) {
    err(
      where('severity'),
      `unknown severity ${JSON.stringify(p.severity)} (known: ${SEVERITIES.join(', ')})`,
    );
  }
  const tags = p.tags;
  if (!isObject(tags)) {
    err(where('tags'), 'must be an object with owasp, atlas and nist lists');
    return;
  }
  for (const k of Object.keys(tags)) {
    if (!(TAG_KEYS as readonly string[]).includes(k)) err(where(`tags.${k}`), 'unknown field');
  }
  for (const k of TAG_KEYS) {
    const list = tags[k];
    if (!Array.isArray(list) || list.length === 0) {
      err(where(`tags.${k}`), 'must be a non-empty array of strings');
      continue;
    }
    list.forEach((t: unknown, j: number) => {
      const ok =
        typeof t === 'string' &&
        (k === 'owasp' ? OWASP_IDS.has(t) : k === 'atlas' ? ATLAS_ID.test(t) : NIST_RISKS.has(t));
      if (!ok) {
        const want =
          k === 'owasp'
            ? 'an OWASP LLM Top 10 (2025) id LLM01..LLM10'
            : k === 'atlas'
              ? 'a MITRE ATLAS technique id such as AML.T0051.000'
              : 'a NIST AI 600-1 risk name such as "Information Security"';
        err(where(`tags.${k}[${j}]`), `${JSON.stringify(t)} is not ${want}`);
      }
    });
  }
}

/** The shipped packs: `probes/` at the package root, beside `dist/` and `src/`. */
function defaultDir(): string {
  // src/evaluators/redteam and dist/evaluators/redteam are both three levels below the root.
  return fileURLToPath(new URL('../../../probes/', import.meta.url));
}

/**
 * Loads and validates every `*.json` probe pack of `dir` (the shipped `probes/` by default),
 * sorted by file name. A pack's name must match its file name, and probe ids must be unique
 * across all packs.
 */
export function loadProbePacks(dir?: string): ProbePack[] {
  const root = dir ?? defaultDir();
  let files: string[];
  try {
    files = readdirSync(root)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch (e) {
    throw new ModelgateError(
      'PROBE_PACK_INVALID',
      `cannot read the probe pack folder ${root}: ${(e as Error).message}`,
    );
  }
  const packs: ProbePack[] = [];
  const owners = new Map<string, string>();
  for (const f of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(join(root, f), 'utf8'));
    } catch (e) {
      throw new ModelgateError(
        'PROBE_PACK_INVALID',
        `${f}: not valid JSON: ${(e as Error).message}`,
        {
          file: f,
        },
      );
    }
    const pack = validateProbePack(parsed, f);
    const stem = basename(f, '.json');
    if (pack.name !== stem) {
      throw new ModelgateError(
        'PROBE_PACK_INVALID',
        `${f}: field "name": "${pack.name}" must match the file name "${stem}"`,
        { file: f },
      );
    }
    pack.probes.forEach((p, i) => {
      const other = owners.get(p.id);
      if (other !== undefined) {
        throw new ModelgateError(
          'PROBE_PACK_INVALID',
          `${f}: probe "${p.id}" (#${i}) field "id": duplicate id, already used in ${other}`,
          { file: f, probe: p.id },
        );
      }
      owners.set(p.id, f);
    });
    packs.push(pack);
  }
  return packs;
}

const ROT13_A = 'A'.charCodeAt(0);
const ROT13_LOWER_A = 'a'.charCodeAt(0);

function rot13(s: string): string {
  return s.replace(/[A-Za-z]/g, (ch) => {
    const c = ch.charCodeAt(0);
    const base = c >= ROT13_LOWER_A ? ROT13_LOWER_A : ROT13_A;
    return String.fromCharCode(((c - base + 13) % 26) + base);
  });
}

/** Each ASCII character c becomes the invisible Unicode tag character U+E0000 + c. */
function unicodeTags(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    out += c < 0x80 ? String.fromCodePoint(0xe0000 + c) : ch;
  }
  return out;
}

/** Disguises `text` with one of the probe encodings. */
export function encodePayload(text: string, encoding: Encoding): string {
  switch (encoding) {
    case 'base64':
      return Buffer.from(text, 'utf8').toString('base64');
    case 'rot13':
      return rot13(text);
    case 'unicode-tags':
      return unicodeTags(text);
  }
}

/**
 * The user message of a probe: `{{trigger}}` filled everywhere (also inside the payload and
 * the document), the payload encoded, then the payload and document put in. Inserted text is
 * not scanned again, so a document cannot smuggle in placeholders.
 */
export function renderProbe(probe: Probe): { user: string; trigger?: string } {
  const values: Record<string, string> = {};
  if (probe.trigger !== undefined) values.trigger = probe.trigger;
  const fill = (s: string) => s.replace(PLACEHOLDER, (all, name: string) => values[name] ?? all);
  if (probe.payload !== undefined) {
    const plain = fill(probe.payload);
    values.payload = probe.encoding ? encodePayload(plain, probe.encoding) : plain;
  }
  if (probe.document !== undefined) values.document = fill(probe.document);
  const user = fill(probe.prompt);
  return probe.trigger !== undefined ? { user, trigger: probe.trigger } : { user };
}

/**
 * The probes of the named packs in pack order (all packs when `names` is empty or absent).
 * An unknown name throws PROBE_PACK_INVALID listing the known packs.
 */
export function selectProbes(packs: readonly ProbePack[], names?: readonly string[]): Probe[] {
  if (!names || names.length === 0) return packs.flatMap((p) => p.probes);
  const byName = new Map(packs.map((p) => [p.name, p]));
  const unknown = names.filter((n) => !byName.has(n));
  if (unknown.length > 0) {
    throw new ModelgateError(
      'PROBE_PACK_INVALID',
      `unknown probe pack${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')} (known: ${[...byName.keys()].join(', ')})`,
      { unknown, known: [...byName.keys()] },
    );
  }
  const wanted = new Set(names);
  return packs.filter((p) => wanted.has(p.name)).flatMap((p) => p.probes);
}
