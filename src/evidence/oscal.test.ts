// biome-ignore-all lint/suspicious/noExplicitAny: the test walks an untyped OSCAL JSON document
import { describe, expect, it } from 'vitest';
import { complianceReport, type EvidenceInput, evidenceOf, loadCatalog } from './compliance.js';
import { OSCAL_VERSION, oscalControlId, reportOscal, uuidv5 } from './oscal.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// OSCAL's token datatype (control ids, prop names).
const TOKEN = /^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$/u;
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const input: EvidenceInput = {
  model: { name: 'fraud', ownerTeam: 'risk', riskTier: 'high' },
  version: {
    number: 3,
    digest: `sha256:${'ab'.repeat(32)}`,
    cardFields: { intendedUse: 'scoring', limitations: 'EU only' },
  },
  attestations: [
    { id: 7, kind: 'evaluation', ref: 'ev_1', predicateType: 'x', predicate: { result: 'PASSED' } },
    {
      id: 8,
      kind: 'decision',
      ref: '2',
      predicateType: 'x',
      predicate: { modelgate: { outcome: 'allow' } },
    },
  ],
  evaluators: { ev_1: 'artifact-scan' },
  lineageEdges: 0,
  checkpoint: { size: 40 },
};

describe('OSCAL assessment results', () => {
  it('derives name-based UUIDs as RFC 4122 version 5 does', () => {
    expect(uuidv5('python.org', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '886313e1-3b8a-5372-9b90-0c9aee199e5d',
    );
    expect(oscalControlId('GOVERN 1.1')).toBe('govern-1.1');
    expect(oscalControlId('annex-iv(2)')).toBe('annex-iv-2');
    expect(oscalControlId('GV.OC-01')).toBe('GV.OC-01');
    expect(oscalControlId('A.6.2.8')).toBe('A.6.2.8');
  });

  it('follows the assessment-results model field by field', () => {
    const report = complianceReport(
      loadCatalog(),
      { model: 'fraud', version: 3, digest: input.version.digest },
      evidenceOf(input),
      { now: new Date('2026-11-26T12:00:00Z') },
    );
    const doc = reportOscal(report, {
      attestationDigests: { '7': `sha256:${'cd'.repeat(32)}` },
      tool: 'modelgate test',
    }) as { 'assessment-results': Record<string, any> };
    expect(Object.keys(doc)).toEqual(['assessment-results']);
    const ar = doc['assessment-results'];
    // Required: uuid, metadata (title, last-modified, version, oscal-version), import-ap, results.
    expect(ar.uuid).toMatch(UUID);
    expect(ar.metadata).toMatchObject({
      title: 'Modelgate evidence for fraud@3',
      'oscal-version': OSCAL_VERSION,
      version: expect.any(String),
    });
    expect(ar.metadata['last-modified']).toMatch(DATETIME);
    expect(ar['import-ap'].href).toMatch(/^modelgate:/);
    expect(ar.results).toHaveLength(4);
    const resources = new Map<string, any>(
      ar['back-matter'].resources.map((r: any) => [r.uuid, r]),
    );
    for (const r of resources.values()) {
      expect(r.uuid).toMatch(UUID);
      expect(r.rlinks.length).toBeGreaterThan(0);
    }
    for (const result of ar.results) {
      // Required: uuid, title, description, start, reviewed-controls.
      expect(result.uuid).toMatch(UUID);
      expect(typeof result.title).toBe('string');
      expect(typeof result.description).toBe('string');
      expect(result.start).toMatch(DATETIME);
      const included = result['reviewed-controls']['control-selections'][0]['include-controls'];
      for (const c of included) expect(c['control-id']).toMatch(TOKEN);
      const observations = new Set(result.observations.map((o: any) => o.uuid));
      for (const o of result.observations) {
        expect(o.uuid).toMatch(UUID);
        expect(o.methods).toEqual(['AUTOMATED']);
        expect(o.collected).toMatch(DATETIME);
        for (const s of o.subjects) {
          expect(s.type).toBe('resource');
          expect(resources.has(s['subject-uuid'])).toBe(true);
        }
        for (const e of o['relevant-evidence']) expect(resources.has(e.href.slice(1))).toBe(true);
      }
      for (const f of result.findings) {
        expect(f.uuid).toMatch(UUID);
        expect(f.target.type).toBe('objective-id');
        expect(f.target['target-id']).toMatch(TOKEN);
        expect(['satisfied', 'not-satisfied']).toContain(f.target.status.state);
        for (const p of f.props) expect(p.name).toMatch(TOKEN);
        const status = f.props.find((p: any) => p.name === 'evidence-status').value;
        // Organisational controls are never satisfied; only full registry evidence is.
        expect(f.target.status.state).toBe(
          status === 'evidence-present' ? 'satisfied' : 'not-satisfied',
        );
        for (const ro of f['related-observations'] ?? [])
          expect(observations.has(ro['observation-uuid'])).toBe(true);
      }
    }
    // The scan's attestation is a back-matter resource carrying its envelope digest.
    const scan = [...resources.values()].find(
      (r) => r.rlinks[0].href === 'modelgate:attestations/7',
    );
    expect(scan.rlinks[0].hashes).toEqual([{ algorithm: 'SHA-256', value: 'cd'.repeat(32) }]);
    // Deterministic: the same report exports the same ids.
    expect(
      JSON.stringify(reportOscal(report, { attestationDigests: {}, tool: 't' })).length,
    ).toBeGreaterThan(0);
    expect(
      (reportOscal(report, { attestationDigests: {}, tool: 't' }) as any)['assessment-results']
        .uuid,
    ).toBe(ar.uuid);
  });
});
