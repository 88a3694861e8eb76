import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  complianceReport,
  type EvidenceInput,
  evidenceOf,
  loadCatalog,
  reportHtml,
} from './compliance.js';

const input: EvidenceInput = {
  model: { name: 'm', ownerTeam: 't', riskTier: 'high' },
  version: { number: 1, digest: `sha256:${'0'.repeat(64)}`, cardFields: { intendedUse: 'x' } },
  attestations: [],
  evaluators: {},
  lineageEdges: 0,
  checkpoint: undefined,
};

describe('control catalog', () => {
  it('ships the four frameworks with every control mapped to known evidence types', () => {
    const c = loadCatalog();
    expect(c.frameworks.map((f) => [f.id, f.controls.length])).toEqual([
      ['nist-ai-rmf@1.0', 72],
      ['iso42001@2023', 38],
      ['eu-ai-act', 18],
      ['nist-csf@2.0', 48],
    ]);
  });

  it("merges an operator's catalog, refuses a bad one, and escapes everything in HTML", () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-catalog-'));
    const extra = join(dir, 'extra.json');
    writeFileSync(
      extra,
      JSON.stringify({
        frameworks: [
          {
            id: 'acme-ai-policy',
            title: 'ACME <script>alert(1)</script> policy',
            controls: [
              {
                id: 'ACME-1',
                title: 'Scanned & approved',
                support: 'full',
                evidence: ['SEC', 'APR'],
              },
            ],
          },
          {
            id: 'eu-ai-act',
            title: 'x',
            controls: [{ id: 'art-15', title: 'changed', support: 'org', evidence: [] }],
          },
        ],
      }),
    );
    const c = loadCatalog(extra);
    expect(
      c.frameworks.find((f) => f.id === 'eu-ai-act')?.controls.find((x) => x.id === 'art-15')
        ?.support,
    ).toBe('org');
    const r = complianceReport(
      c,
      { model: 'm', version: 1, digest: input.version.digest },
      evidenceOf(input),
      {
        frameworks: ['acme-ai-policy'],
        now: new Date(0),
      },
    );
    expect(r.frameworks[0]?.rows[0]).toMatchObject({ id: 'ACME-1', status: 'missing' });
    const html = reportHtml(r);
    expect(html).not.toContain('<script');
    expect(html).toContain('ACME &lt;script&gt;alert(1)&lt;/script&gt; policy');
    expect(html).toContain('Scanned &amp; approved');
    writeFileSync(
      extra,
      JSON.stringify({
        frameworks: [
          {
            id: 'x',
            title: 'x',
            controls: [{ id: 'X', title: 'x', support: 'full', evidence: ['NOPE'] }],
          },
        ],
      }),
    );
    expect(() => loadCatalog(extra)).toThrow(/x X: evidence must list codes of INV/);
  });

  it('reads evidence off the record: what is there, and why the rest is missing', () => {
    const e = evidenceOf(input);
    expect(e.INV.present).toBe(true);
    expect(e.DOC).toMatchObject({ present: false, detail: 'the model card lacks limitations' });
    expect(e.LOG).toMatchObject({ present: false });
    expect(e.MON.present).toBe(false);
  });
});
