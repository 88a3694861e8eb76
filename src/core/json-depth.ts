import { ModelgateError } from './errors.js';

/**
 * How deeply JSON input may nest. Model cards, configurations and imported reports need a
 * handful of levels; thousands exhaust the stack of every recursive walk after parsing
 * (canonical JSON, schema checks), so input deeper than this is refused up front.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `value` nests arrays and objects deeper than `limit` (counted without recursion). */
export function jsonTooDeep(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth > limit) return true;
    // Parsed input only: a stream or a buffer is bytes, not nesting.
    if (Buffer.isBuffer(v) || typeof (v as { pipe?: unknown }).pipe === 'function') continue;
    for (const x of Object.values(v))
      if (x !== null && typeof x === 'object') stack.push([x, depth + 1]);
  }
  return false;
}

/** Throws VALIDATION_FAILED, naming `what` and the limit, when `value` nests too deeply. */
export function assertJsonDepth(value: unknown, what: string, limit = MAX_JSON_DEPTH): void {
  if (jsonTooDeep(value, limit))
    throw new ModelgateError(
      'VALIDATION_FAILED',
      `${what} nests arrays or objects deeper than ${limit} levels (the limit)`,
      { limit },
    );
}
