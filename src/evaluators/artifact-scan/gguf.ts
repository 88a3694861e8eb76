import { Template } from '@huggingface/jinja';
import { FileReader, TruncatedError } from './byte-reader.js';

/** A problem found in a GGUF file. */
export interface GgufIssue {
  ruleId: string;
  severity: 'high' | 'medium' | 'low';
  title: string;
  detail: string;
}

const MAX_KV = 1_000_000;
const MAX_TENSORS = 1_000_000;
const MAX_STRING = 64 * 1024 * 1024;
const MAX_ARRAY = 100_000_000;
const MAX_DIMS = 8;
// Names that lead from a template to Python internals (the classic Jinja escapes).
// Only identifiers count ('system' as a string is an ordinary role name); dunders count anywhere.
const ESCAPE_NAMES = new Set([
  'os',
  'popen',
  'subprocess',
  'eval',
  'exec',
  'builtins',
  'globals',
  'getattr',
  'lipsum',
  'cycler',
  'joiner',
  'mro',
  'subclasses',
  'func_globals',
  'read_text',
  'import_module',
]);

/** True when the file starts with the GGUF magic. */
export function isGguf(head: Buffer): boolean {
  return head.length >= 4 && head.toString('latin1', 0, 4) === 'GGUF';
}

/** Identifiers and string literals anywhere in a parsed template. */
function templateNames(
  node: unknown,
  out: { ids: Set<string>; strings: Set<string> },
  depth = 0,
): void {
  if (depth > 200 || node === null || typeof node !== 'object') return;
  const n = node as { type?: string; value?: unknown };
  if (n.type === 'Identifier' && typeof n.value === 'string') out.ids.add(n.value);
  if (n.type === 'StringLiteral' && typeof n.value === 'string') out.strings.add(n.value);
  for (const v of Object.values(node)) {
    if (Array.isArray(v)) for (const x of v) templateNames(x, out, depth + 1);
    else if (typeof v === 'object') templateNames(v, out, depth + 1);
  }
}

const dunder = (n: string) =>
  /^__\w+__$/.test(n) ||
  /__(class|mro|subclasses|globals|builtins|import|init|base|bases|dict|code|func)__/.test(n);

/** Parses a chat template (never renders it) and reports sandbox-escape markers. */
export function checkChatTemplate(key: string, source: string): GgufIssue[] {
  let parsed: unknown;
  try {
    parsed = new Template(source).parsed;
  } catch (e) {
    return [
      {
        ruleId: 'gguf.chat-template/unparseable',
        severity: 'medium',
        title: `${key} is not a template this scanner can parse`,
        detail: (e as Error).message.slice(0, 200),
      },
    ];
  }
  const names = { ids: new Set<string>(), strings: new Set<string>() };
  templateNames(parsed, names);
  const hits = [
    ...[...names.ids].filter((n) => dunder(n) || ESCAPE_NAMES.has(n)),
    ...[...names.strings].filter(dunder),
  ];
  return hits.length > 0
    ? [
        {
          ruleId: 'gguf.chat-template/ssti',
          severity: 'high',
          title: `${key} reaches Python internals (${hits.slice(0, 5).join(', ')}): a template-injection payload`,
          detail: hits.join(','),
        },
      ]
    : [];
}

/**
 * Reads a GGUF header, metadata and tensor table (never the tensor data) and checks them:
 * counts and lengths within bounds, keys without path tricks, alignment a power of two,
 * tensor offsets aligned, increasing and inside the file, and every chat template parsed
 * and checked for template injection (CVE-2024-34359).
 */
export function checkGguf(path: string, size: number): GgufIssue[] {
  const issues: GgufIssue[] = [];
  const add = (ruleId: string, severity: GgufIssue['severity'], title: string, detail = '') =>
    issues.push({ ruleId, severity, title, detail });
  const r = FileReader.open(path, size);
  try {
    r.skip(4);
    const version = r.take(4).readUInt32LE(0);
    if (version < 1 || version > 3) {
      add('gguf.malformed', 'medium', `unsupported GGUF version ${version}`);
      return issues;
    }
    const count = () =>
      version === 1 ? BigInt(r.take(4).readUInt32LE(0)) : r.take(8).readBigUInt64LE(0);
    const tensorCount = count();
    const kvCount = count();
    if (tensorCount > BigInt(MAX_TENSORS) || kvCount > BigInt(MAX_KV)) {
      add(
        'gguf.limit',
        'medium',
        'GGUF tensor or metadata count beyond any real model',
        `${tensorCount} tensors, ${kvCount} keys`,
      );
      return issues;
    }
    const str = (): string => {
      const n = count();
      if (n > BigInt(MAX_STRING)) throw new TruncatedError(`a string of ${n} bytes`);
      return r.take(Number(n)).toString('utf8');
    };
    const scalarSize: Record<number, number> = {
      0: 1,
      1: 1,
      2: 2,
      3: 2,
      4: 4,
      5: 4,
      6: 4,
      7: 1,
      10: 8,
      11: 8,
      12: 8,
    };
    let alignment = 32;
    const value = (type: number, key: string, depth: number): unknown => {
      if (type === 8) return str();
      if (type === 9) {
        if (depth > 2) throw new TruncatedError('an array nested too deep');
        const itemType = r.take(4).readUInt32LE(0);
        const n = count();
        if (n > BigInt(MAX_ARRAY)) throw new TruncatedError(`an array of ${n} items`);
        const items = Number(n);
        const fixed = scalarSize[itemType];
        if (fixed !== undefined) r.skip(fixed * items);
        else for (let i = 0; i < items; i++) value(itemType, key, depth + 1);
        return undefined;
      }
      const sz = scalarSize[type];
      if (sz === undefined) throw new TruncatedError(`a value of unknown type ${type}`);
      const b = r.take(sz);
      return type === 4 ? b.readUInt32LE(0) : undefined;
    };
    for (let i = 0n; i < kvCount; i++) {
      const key = str();
      const type = r.take(4).readUInt32LE(0);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters in a key are what is refused
      if (/(^|[/\\])\.\.([/\\]|$)|^[/\\]|[\u0000-\u001f]/.test(key))
        add(
          'gguf.metadata-key',
          'medium',
          `metadata key with path or control characters: ${JSON.stringify(key).slice(0, 80)}`,
        );
      const v = value(type, key, 0);
      if (key === 'general.alignment' && typeof v === 'number') alignment = v;
      if (typeof v === 'string' && /chat_template/.test(key))
        issues.push(...checkChatTemplate(key, v));
    }
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      add('gguf.alignment', 'medium', `general.alignment ${alignment} is not a power of two`);
      alignment = 32;
    }
    let lastOffset = -1n;
    const offsets: bigint[] = [];
    for (let i = 0n; i < tensorCount; i++) {
      const name = str();
      const dims = r.take(4).readUInt32LE(0);
      if (dims > MAX_DIMS) {
        add('gguf.tensor', 'medium', `tensor ${name.slice(0, 60)} has ${dims} dimensions`);
        return issues;
      }
      for (let d = 0; d < dims; d++) r.skip(8);
      r.skip(4); // ggml type
      const off = r.take(8).readBigUInt64LE(0);
      if (off % BigInt(alignment) !== 0n)
        add(
          'gguf.tensor-offset',
          'low',
          `tensor ${name.slice(0, 60)} offset ${off} is not aligned to ${alignment}`,
        );
      if (off < lastOffset)
        add('gguf.tensor-offset', 'low', `tensor ${name.slice(0, 60)} offset goes backwards`);
      lastOffset = off;
      offsets.push(off);
    }
    const dataStart = BigInt(Math.ceil(r.pos / alignment) * alignment);
    for (const off of offsets) {
      if (dataStart + off > BigInt(size)) {
        add(
          'gguf.tensor-bounds',
          'medium',
          'a tensor starts past the end of the file',
          `${dataStart + off} > ${size}`,
        );
        break;
      }
    }
    return issues;
  } catch (e) {
    add('gguf.malformed', 'medium', 'GGUF header is truncated or malformed', (e as Error).message);
    return issues;
  } finally {
    r.close();
  }
}
