import { closeSync, openSync, readSync } from 'node:fs';

/** Bytes per element of each safetensors dtype. */
const DTYPE_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
  C64: 8,
};

// The reference implementation refuses headers over 100 MB.
export const MAX_SAFETENSORS_HEADER = 100 * 1000 * 1000;
const SUSPICIOUS_TEXT =
  /(__import__|\beval\s*\(|\bexec\s*\(|\bos\.system|\bsubprocess\b|<script|https?:\/\/|\$\(|`)/i;

/** A structural problem in a safetensors file, with a stable rule id. */
export interface SafetensorsIssue {
  ruleId: string;
  severity: 'medium' | 'low';
  title: string;
  detail: string;
}

/** True when the first bytes look like a safetensors header (u64 length, then `{`). */
export function looksLikeSafetensors(head: Buffer, size: number): boolean {
  if (head.length < 9 || head[8] !== 0x7b) return false;
  const n = head.readBigUInt64LE(0);
  return n > 1n && n < BigInt(size);
}

/**
 * Checks a safetensors file against the format's rules: header length within the file and
 * the 100 MB cap, a JSON object of tensors plus an optional string map `__metadata__`,
 * known dtypes, sizes that match shapes, and data offsets that tile the data section with
 * no gap or overlap. Nothing in the file is executed: the format has no code paths, so what
 * is reported are the ways a reader could be confused.
 */
export function checkSafetensors(path: string, size: number): SafetensorsIssue[] {
  const issues: SafetensorsIssue[] = [];
  const add = (ruleId: string, severity: 'medium' | 'low', title: string, detail: string) =>
    issues.push({ ruleId, severity, title, detail });
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) < 8) {
      add(
        'safetensors.malformed',
        'medium',
        'safetensors file shorter than its length prefix',
        'under 8 bytes',
      );
      return issues;
    }
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(MAX_SAFETENSORS_HEADER) || n + 8n > BigInt(size)) {
      add(
        'safetensors.header-size',
        'medium',
        'safetensors header length is past the file end or over 100 MB',
        `header length ${n}, file ${size} bytes`,
      );
      return issues;
    }
    const headerLen = Number(n);
    const header = Buffer.alloc(headerLen);
    readSync(fd, header, 0, headerLen, 8);
    let parsed: unknown;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch (e) {
      add(
        'safetensors.malformed',
        'medium',
        'safetensors header is not valid JSON',
        (e as Error).message,
      );
      return issues;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      add(
        'safetensors.malformed',
        'medium',
        'safetensors header is not a JSON object',
        typeof parsed,
      );
      return issues;
    }
    const dataLen = size - 8 - headerLen;
    const spans: [number, number, string][] = [];
    for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
          add('safetensors.metadata', 'medium', '__metadata__ is not a string map', typeof entry);
          continue;
        }
        for (const [k, v] of Object.entries(entry)) {
          if (typeof v !== 'string')
            add(
              'safetensors.metadata',
              'medium',
              `__metadata__ value ${k} is not a string`,
              typeof v,
            );
          else if (v.length > 65_536)
            add(
              'safetensors.metadata',
              'low',
              `__metadata__ value ${k} is unusually large`,
              `${v.length} characters`,
            );
          else if (SUSPICIOUS_TEXT.test(v))
            add(
              'safetensors.metadata-suspicious',
              'low',
              `__metadata__ value ${k} looks like code or a URL`,
              v.slice(0, 200),
            );
        }
        continue;
      }
      const t = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const itemSize = typeof t.dtype === 'string' ? DTYPE_SIZE[t.dtype] : undefined;
      const shapeOk =
        Array.isArray(t.shape) && t.shape.every((d) => Number.isSafeInteger(d) && d >= 0);
      const offs = t.data_offsets;
      const offsOk =
        Array.isArray(offs) &&
        offs.length === 2 &&
        offs.every((o) => Number.isSafeInteger(o) && o >= 0) &&
        offs[0] <= offs[1];
      if (itemSize === undefined || !shapeOk || !offsOk) {
        add(
          'safetensors.tensor-entry',
          'medium',
          `tensor ${name}: bad dtype, shape or data_offsets`,
          JSON.stringify(entry).slice(0, 200),
        );
        continue;
      }
      const [begin, end] = offs as [number, number];
      const elements = (t.shape as number[]).reduce((a, b) => a * b, 1);
      if (end - begin !== elements * itemSize) {
        add(
          'safetensors.tensor-size',
          'medium',
          `tensor ${name}: byte range does not match shape x dtype`,
          `${end - begin} bytes for ${elements} x ${itemSize}`,
        );
      }
      if (end > dataLen)
        add(
          'safetensors.tensor-bounds',
          'medium',
          `tensor ${name}: data past the end of the file`,
          `${end} > ${dataLen}`,
        );
      spans.push([begin, end, name]);
    }
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cursor = 0;
    for (const [b, e, name] of spans) {
      if (b < cursor)
        add(
          'safetensors.overlap',
          'medium',
          `tensor ${name} overlaps the previous tensor`,
          `starts at ${b}, previous ends at ${cursor}`,
        );
      else if (b > cursor)
        add('safetensors.gap', 'low', `unused bytes before tensor ${name}`, `${b - cursor} bytes`);
      cursor = Math.max(cursor, e);
    }
    if (cursor < dataLen)
      add(
        'safetensors.trailing-data',
        'low',
        'bytes after the last tensor',
        `${dataLen - cursor} bytes`,
      );
    return issues;
  } finally {
    closeSync(fd);
  }
}
