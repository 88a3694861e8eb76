import { RE2JS } from 're2js';

/**
 * CEL's `matches` with RE2 semantics, as the CEL specification says: linear time in the text,
 * whatever the pattern. JavaScript's own engine backtracks, so a pattern such as
 * `^(\w+\s?)*$` over a 33-character model card took 19 s and stopped the server; RE2 refuses
 * backreferences and lookaround instead of running them. Policies are rewritten at compile
 * time so that every `x.matches(p)` calls this function (see policy-document.ts).
 */
export const RE2_MATCHES = 'matches_re2';

// Compiled patterns by text: policies use few, and compiling is most of a short match.
const cache = new Map<string, RE2JS>();
const CACHE_MAX = 256;

/** Compiles a pattern with RE2's syntax; throws naming the problem when RE2 refuses it. */
export function compileRe2(pattern: string): RE2JS {
  let re = cache.get(pattern);
  if (re) return re;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    throw new Error(
      `${JSON.stringify(pattern)} is not an RE2 regular expression: ${(e as Error).message}`,
    );
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(pattern, re);
  return re;
}

/** Whether `pattern` matches anywhere in `text` (CEL `matches` is a partial match). */
export function re2Matches(text: string, pattern: string): boolean {
  return compileRe2(pattern).matcher(text).find();
}
