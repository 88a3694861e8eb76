import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { severityRank } from '../../core/findings.js';
import { scanPaths } from './scanner.js';

const CORPUS = join(import.meta.dirname, '..', '..', '..', 'test', 'corpus');
const HIGH = severityRank('high');

function scanFolder(kind: 'malicious' | 'benign') {
  const dir = join(CORPUS, kind);
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const report = scanPaths([join(dir, name)]);
      const worst = Math.max(-1, ...report.findings.map((f) => severityRank(f.severity)));
      return { name, format: report.files[0]?.format ?? '?', worst, report };
    });
}

function countsByFormat(rows: ReturnType<typeof scanFolder>, flagged: (worst: number) => boolean) {
  const counts: Record<string, { files: number; flagged: number }> = {};
  for (const r of rows) {
    counts[r.format] ??= { files: 0, flagged: 0 };
    const c = counts[r.format];
    if (!c) continue;
    c.files++;
    if (flagged(r.worst)) c.flagged++;
  }
  return counts;
}

describe('artifact scanner on the labelled corpus (test/corpus/make_corpus.py)', () => {
  it('flags every malicious file at high or above', () => {
    const rows = scanFolder('malicious');
    console.log(
      'malicious, flagged at >= high, per format:',
      JSON.stringify(countsByFormat(rows, (w) => w >= HIGH)),
    );
    const missed = rows
      .filter((r) => r.worst < HIGH)
      .map((r) => `${r.name}: ${JSON.stringify(r.report.findings)}`);
    expect(missed).toEqual([]);
    expect(rows.length).toBeGreaterThan(100);
  });

  it('flags no benign file at high or above', () => {
    const rows = scanFolder('benign');
    console.log(
      'benign, flagged at >= high, per format:',
      JSON.stringify(countsByFormat(rows, (w) => w >= HIGH)),
    );
    const wrong = rows
      .filter((r) => r.worst >= HIGH)
      .map((r) => `${r.name}: ${JSON.stringify(r.report.findings)}`);
    expect(wrong).toEqual([]);
    expect(rows.length).toBeGreaterThanOrEqual(10);
  });
});
