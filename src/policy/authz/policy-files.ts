import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

/**
 * Operators' own Cedar policies: every `*.cedar` file in a folder, read at start and added to
 * the built-in ones. Each policy's id is its `@id("...")` annotation, else the file name (with
 * `#2`, `#3`, ... for further policies in one file). The set is validated before it takes
 * effect: a server with an invalid policy does not start.
 */
export function readPolicyFolder(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.cedar'))
    .sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    const parts = cedar.policySetTextToParts(text);
    if (parts.type !== 'success')
      throw new Error(`${file}: ${parts.errors.map((e) => e.message).join('; ')}`);
    parts.policies.forEach((policy, i) => {
      const json = cedar.policyToJson(policy);
      const annotated = json.type === 'success' ? json.json.annotations?.id : undefined;
      const id = annotated ?? `${basename(file, '.cedar')}${i === 0 ? '' : `#${i + 1}`}`;
      if (out[id] !== undefined) throw new Error(`${file}: policy id ${id} is used twice`);
      out[id] = policy;
    });
  }
  return out;
}
