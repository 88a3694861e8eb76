import { expect, it } from 'vitest';
import { SEVERITIES } from '../core/findings.js';
import type { Version } from '../core/types.js';
import type { Evaluator } from './evaluator.js';

/** A version record for contract runs. */
export function contractVersion(files: { name: string; size: number }[]): Version {
  return {
    model: 'contract-model',
    number: 1,
    digest: `sha256:${'0'.repeat(64)}`,
    layoutDigest: `sha256:${'1'.repeat(64)}`,
    size: files.reduce((s, f) => s + f.size, 0),
    fileCount: files.length,
    sourceUri: null,
    author: 'contract',
    card: { markdown: '', fields: {} },
    tags: [],
    description: '',
    createdAt: new Date(0).toISOString(),
    files: files.map((f) => ({ path: f.name, size: f.size, digest: `sha256:${'0'.repeat(64)}` })),
  };
}

/**
 * The behaviour every evaluator must have, as tests: a stable identity, findings that are
 * well formed and point at the files it was given, finite metrics, the same answer twice,
 * and a prompt stop when aborted. Call inside a describe block.
 */
export function evaluatorContract(
  make: () => Evaluator,
  files: { name: string; path: string; size: number }[],
): void {
  const input = (signal: AbortSignal) => ({
    version: contractVersion(files),
    files: files.map(({ name, path }) => ({ name, path })),
    config: {},
    progress: () => {},
    signal,
  });

  it('has a stable id, a version and a description', () => {
    const e = make();
    expect(e.id).toMatch(/^[a-z][a-z0-9-]{1,62}$/);
    expect(e.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(e.description.length).toBeGreaterThan(10);
    expect(e.accepts(contractVersion(files))).toBe(true);
  });

  it('returns well-formed findings about the given files and finite metrics, the same each time', async () => {
    const e = make();
    const a = await e.run(input(new AbortController().signal));
    const b = await e.run(input(new AbortController().signal));
    const names = new Set(files.map((f) => f.name));
    for (const f of a.findings) {
      expect(SEVERITIES).toContain(f.severity);
      expect(f.ruleId).toMatch(/^[a-z][\w.-]*(\/.+)?$/);
      expect(f.title.length).toBeGreaterThan(0);
      expect(names.has(f.location.file), f.location.file).toBe(true);
      expect(Array.isArray(f.references)).toBe(true);
    }
    for (const v of Object.values(a.metrics)) expect(Number.isFinite(v)).toBe(true);
    const strip = (r: typeof a) => r.findings.map((f) => JSON.stringify(f));
    expect(strip(b)).toEqual(strip(a));
  });

  it('stops when aborted', async () => {
    const e = make();
    const ac = new AbortController();
    const run = e.run(input(ac.signal));
    ac.abort();
    await expect(run).rejects.toThrow(/abort/i);
  });
}
