// Text that one engine stores and another refuses: PostgreSQL rejects NUL in `text` columns
// ("invalid byte sequence for encoding UTF8: 0x00"), and a lone UTF-16 surrogate has no UTF-8
// form (the driver would silently write U+FFFD, so the row would differ from what was logged
// and signed). Scanner findings quote hostile bytes, so their text is made storable once,
// here, before it is logged, attested and written, and all three agree.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding the NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `s` with each NUL and unpaired surrogate written as the six characters `\uXXXX`. */
export function storableText(s: string): string {
  return s.replace(
    UNSTORABLE,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

/** A JSON-like value with every string (and object key) passed through `storableText`. */
export function storable<T>(value: T): T {
  if (typeof value === 'string') return storableText(value) as T;
  if (Array.isArray(value)) return value.map((v) => storable(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[storableText(k)] = storable(v);
    return out as T;
  }
  return value;
}
