/** Error thrown for a value that has no RFC 8785 canonical JSON form. */
export class CanonicalJsonError extends Error {
  override name = 'CanonicalJsonError';
}

// I-JSON (RFC 7493), which RFC 8785 requires, forbids unpaired surrogates.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * RFC 8785 (JCS) canonical JSON text of a JSON value: object keys sorted by UTF-16 code units,
 * numbers in ECMAScript form, minimal string escapes, no whitespace. Throws CanonicalJsonError
 * for anything JSON cannot carry exactly (non-finite numbers, undefined, bigint, functions,
 * symbols, non-plain objects, cycles, unpaired surrogates) instead of dropping or coercing it.
 */
export function canonicalize(value: unknown): string {
  const out: string[] = [];
  write(value, [], out, new Set());
  return out.join('');
}

// The path to the value being written, as a stack of segments: joined only for an error
// message, since building it for every value would cost more than the writing.
const at = (path: readonly string[]) => `$${path.join('')}`;

function write(value: unknown, path: string[], out: string[], open: Set<object>): void {
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new CanonicalJsonError(`${at(path)}: ${value} is not a JSON number`);
      // JSON.stringify applies ECMAScript Number::toString, which RFC 8785 adopts (and -0 → "0").
      out.push(JSON.stringify(value));
      return;
    case 'string':
      out.push(quote(value, path));
      return;
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${at(path)}: a ${typeof value} has no JSON form`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (open.has(value)) throw new CanonicalJsonError(`${at(path)}: cyclic structure`);
  open.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      // A hole reads as undefined and is refused below, like an explicit undefined.
      path.push(`[${i}]`);
      write(value[i], path, out, open);
      path.pop();
    }
    out.push(']');
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object';
      throw new CanonicalJsonError(`${at(path)}: a ${kind} is not a plain JSON object`);
    }
    const record = value as Record<string, unknown>;
    // Default sort compares UTF-16 code units, exactly the order RFC 8785 §3.2.3 prescribes.
    const keys = Object.keys(record).sort();
    out.push('{');
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      if (i > 0) out.push(',');
      out.push(quoteKey(key, path), ':');
      path.push(`.${key}`);
      write(record[key], path, out, open);
      path.pop();
    }
    out.push('}');
  }
  open.delete(value);
}

const SURROGATE = /[\uD800-\uDFFF]/;
// Object keys repeat from record to record (a log's events all have the same seven): their
// quoted forms are kept, up to a bound, instead of escaping them again each time.
const quotedKeys = new Map<string, string>();

function quoteKey(key: string, path: readonly string[]): string {
  const known = quotedKeys.get(key);
  if (known !== undefined) return known;
  const q = quote(key, path);
  if (quotedKeys.size < 4096) quotedKeys.set(key, q);
  return q;
}

function quote(s: string, path: readonly string[]): string {
  // The precise (and slower) test only for strings with a surrogate at all.
  if (SURROGATE.test(s) && LONE_SURROGATE.test(s))
    throw new CanonicalJsonError(`${at(path)}: string has an unpaired surrogate`);
  // JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 does: " \ and U+0000-U+001F, using
  // \b \t \n \f \r where they exist and lowercase \u00xx otherwise.
  return JSON.stringify(s);
}
