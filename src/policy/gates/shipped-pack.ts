import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The shipped gate policies (`policies/*.yaml` at the package root, beside `dist/`), as text:
 * published on first start unless MODELGATE_GATE_POLICY_PACK=none.
 */
export function shippedPolicies(): { file: string; text: string }[] {
  // src/policy/gates and dist/policy/gates are both three levels below the package root.
  const dir = fileURLToPath(new URL('../../../policies/', import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, text: readFileSync(`${dir}${file}`, 'utf8') }));
}
