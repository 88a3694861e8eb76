import { ModelgateError } from '../core/errors.js';

/** Encodes a keyset position as an opaque cursor bound to one list. */
export function encodeCursor(list: string, key: string | number): string {
  return Buffer.from(JSON.stringify({ l: list, k: key })).toString('base64url');
}

/** Decodes a cursor made by `encodeCursor` for the same list; INVALID_CURSOR otherwise. */
export function decodeCursor<K extends 'string' | 'number'>(
  list: string,
  cursor: string,
  kind: K,
): K extends 'string' ? string : number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const ok =
    typeof parsed === 'object' &&
    parsed !== null &&
    (parsed as { l?: unknown }).l === list &&
    typeof (parsed as { k?: unknown }).k === kind;
  if (!ok) {
    throw new ModelgateError(
      'INVALID_CURSOR',
      'invalid cursor: pass the nextCursor value from the previous page of the same list unchanged',
    );
  }
  return (parsed as { k: never }).k;
}
