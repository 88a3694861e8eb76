import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from './error-docs.js';
import { ERROR_CATALOG } from './errors.js';

describe('error catalog', () => {
  it('is documented in docs/errors.md exactly as generated (run npm run docs:errors)', () => {
    const onDisk = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    expect(onDisk).toBe(renderErrorDocs());
  });

  it('maps every code to a 4xx or 5xx status', () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOG)) {
      expect(spec.status, code).toBeGreaterThanOrEqual(400);
      expect(spec.status, code).toBeLessThan(600);
      expect(code).toMatch(/^[A-Z][A-Z_]+$/);
    }
  });
});
