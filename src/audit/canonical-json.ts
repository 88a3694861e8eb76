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
  write(value, '$', out, new Set());
  return out.join('');
}

function write(value: unknown, path: string, out: string[], open: Set<object>): void {
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new CanonicalJsonError(`${path}: ${value} is not a JSON number`);
      // JSON.stringify applies ECMAScript Number::toString, which RFC 8785 adopts (and -0 → "0").
      out.push(JSON.stringify(value));
      return;
    case 'string':
      out.push(quote(value, path));
      return;
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${path}: a ${typeof value} has no JSON form`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (open.has(value)) throw new CanonicalJsonError(`${path}: cyclic structure`);
  open.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      // A hole reads as undefined and is refused below, like an explicit undefined.
      write(value[i], `${path}[${i}]`, out, open);
    }
    out.push(']');
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object';
      throw new CanonicalJsonError(`${path}: a ${kind} is not a plain JSON object`);
    }
    const record = value as Record<string, unknown>;
    // Default sort compares UTF-16 code units, exactly the order RFC 8785 §3.2.3 prescribes.
    const keys = Object.keys(record).sort();
    out.push('{');
    keys.forEach((key, i) => {
      if (i > 0) out.push(',');
      out.push(quote(key, path), ':');
      write(record[key], `${path}.${key}`, out, open);
    });
    out.push('}');
  }
  open.delete(value);
}

function quote(s: string, path: string): string {
  if (LONE_SURROGATE.test(s))
    throw new CanonicalJsonError(`${path}: string has an unpaired surrogate`);
  // JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 does: " \ and U+0000-U+001F, using
  // \b \t \n \f \r where they exist and lowercase \u00xx otherwise.
  return JSON.stringify(s);
}
