import { createHash } from 'node:crypto';
import type { ComplianceReport, ControlRow, EvidenceRef } from './compliance.js';

/** The OSCAL version Modelgate's assessment results declare. */
export const OSCAL_VERSION = '1.1.2';

// A fixed namespace for Modelgate's name-based UUIDs (a v4 UUID generated once for this).
const NAMESPACE = 'b3a1d8f4-6c2e-4f0a-9d57-2e8c41f7a9b1';

/** An RFC 4122 version 5 UUID: the same name always gives the same id, so re-exports diff cleanly. */
export function uuidv5(name: string, namespace = NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A catalog control id as an OSCAL token: `GOVERN 1.1` -> `govern-1.1`, `annex-iv(2)` -> `annex-iv-2`. */
export function oscalControlId(id: string): string {
  const t = id
    .replace(/\s+/g, '-')
    .replace(/[()]/g, (c) => (c === '(' ? '-' : ''))
    .replace(/[^\p{L}\p{N}._-]/gu, '-');
  return /^[\p{L}_]/u.test(t) ? (/^[A-Z]+-\d/.test(t) ? t.toLowerCase() : t) : `c-${t}`;
}

const STATE: Record<ControlRow['status'], 'satisfied' | 'not-satisfied'> = {
  // Only the registry's share is judged: evidence present for every mapped evidence type.
  'evidence-present': 'satisfied',
  partial: 'not-satisfied',
  missing: 'not-satisfied',
  // Never satisfied: only the organisation can evidence these.
  organisational: 'not-satisfied',
};

const REMARK: Record<ControlRow['status'], string> = {
  'evidence-present':
    'Registry evidence is present for every evidence type mapped to this control; this does not mean the control is met.',
  partial: 'Registry evidence is present for some of the evidence types mapped to this control.',
  missing: 'No registry evidence for the evidence types mapped to this control.',
  organisational: 'Organisational evidence required: the registry cannot evidence this control.',
};

/**
 * The report as an OSCAL assessment-results document: one result per framework, one
 * observation per evidence type found (its relevant evidence links to the attestations, listed
 * as back-matter resources with their digests), one finding per control.
 */
export function reportOscal(
  r: ComplianceReport,
  opts: { attestationDigests: Record<string, string>; tool: string },
): Record<string, unknown> {
  const subject = `${r.subject.model}@${r.subject.version}`;
  const versionResource = uuidv5(`version:${r.subject.digest}`);
  const resourceOf = (ref: EvidenceRef) => uuidv5(`${ref.kind}:${subject}:${ref.id}`);
  const resources = new Map<string, Record<string, unknown>>();
  resources.set(versionResource, {
    uuid: versionResource,
    title: `Model version ${subject}`,
    rlinks: [
      {
        href: `modelgate:models/${r.subject.model}/versions/${r.subject.version}`,
        hashes: [{ algorithm: 'SHA-256', value: r.subject.digest.replace(/^sha256:/, '') }],
      },
    ],
  });
  const observationOf = new Map<string, string>();
  const observations = r.evidence
    .filter((e) => e.present)
    .map((e) => {
      const uuid = uuidv5(`observation:${subject}:${e.code}`);
      observationOf.set(e.code, uuid);
      return {
        uuid,
        title: `${e.code} evidence for ${subject}`,
        description: e.detail,
        methods: ['AUTOMATED'],
        types: ['control-objective'],
        subjects: [{ 'subject-uuid': versionResource, type: 'resource' }],
        'relevant-evidence': e.refs.map((ref) => {
          const uuid = resourceOf(ref);
          if (!resources.has(uuid)) {
            const digest = ref.kind === 'attestation' ? opts.attestationDigests[ref.id] : undefined;
            resources.set(uuid, {
              uuid,
              title: `${ref.kind} ${ref.id}: ${ref.label}`,
              rlinks: [
                {
                  href:
                    ref.kind === 'attestation'
                      ? `modelgate:attestations/${ref.id}`
                      : `modelgate:${ref.id}`,
                  ...(digest && {
                    hashes: [{ algorithm: 'SHA-256', value: digest.replace(/^sha256:/, '') }],
                  }),
                },
              ],
            });
          }
          return { href: `#${uuid}`, description: `${ref.kind} ${ref.id}: ${ref.label}` };
        }),
        collected: r.generatedAt,
      };
    });
  const results = r.frameworks.map((f) => ({
    uuid: uuidv5(`result:${subject}:${f.id}:${r.generatedAt}`),
    title: `${f.title}: evidence for ${subject}`,
    description: `Registry evidence for ${subject} (${r.subject.digest}) mapped to ${f.title}. ${r.note}`,
    start: r.generatedAt,
    end: r.generatedAt,
    props: [{ name: 'framework', ns: 'https://modelgate.dev/ns/oscal', value: f.id }],
    'reviewed-controls': {
      'control-selections': [
        { 'include-controls': f.rows.map((row) => ({ 'control-id': oscalControlId(row.id) })) },
      ],
    },
    observations,
    findings: f.rows.map((row) => {
      const related = row.evidence
        .filter((e) => e.present)
        .map((e) => observationOf.get(e.code))
        .filter((x): x is string => x !== undefined);
      return {
        uuid: uuidv5(`finding:${subject}:${f.id}:${row.id}`),
        title: `${row.id} ${row.title}`,
        description: REMARK[row.status],
        props: [
          { name: 'evidence-status', ns: 'https://modelgate.dev/ns/oscal', value: row.status },
          { name: 'support', ns: 'https://modelgate.dev/ns/oscal', value: row.support },
        ],
        target: {
          type: 'objective-id',
          'target-id': oscalControlId(row.id),
          status: { state: STATE[row.status], remarks: REMARK[row.status] },
        },
        ...(related.length > 0 && {
          'related-observations': related.map((u) => ({ 'observation-uuid': u })),
        }),
      };
    }),
  }));
  return {
    'assessment-results': {
      uuid: uuidv5(`assessment-results:${subject}:${r.generatedAt}`),
      metadata: {
        title: `Modelgate evidence for ${subject}`,
        'last-modified': r.generatedAt,
        version: r.generatedAt,
        'oscal-version': OSCAL_VERSION,
        props: [{ name: 'tool', ns: 'https://modelgate.dev/ns/oscal', value: opts.tool }],
      },
      'import-ap': { href: `modelgate:models/${r.subject.model}/assessment-plan` },
      results,
      'back-matter': { resources: [...resources.values()] },
    },
  };
}
