import type { Severity } from '../../core/findings.js';
import type { ScanReport } from './scanner.js';

const LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = {
  critical: 'error',
  high: 'error',
  medium: 'warning',
  low: 'note',
  info: 'note',
};

// GitHub code scanning reads `security-severity` as a CVSS-like number.
const SECURITY_SEVERITY: Record<Severity, string> = {
  critical: '9.5',
  high: '8.0',
  medium: '5.5',
  low: '2.0',
  info: '0.0',
};

/** The rule family of a rule id: `pickle.unsafe-global/os.system` -> `pickle.unsafe-global`. */
const family = (ruleId: string) => ruleId.split('/')[0] ?? ruleId;

/**
 * Renders a scan report as SARIF 2.1.0: one rule per rule family (with the full rule id on
 * each result), artifacts with SHA-256 hashes, archive members as child artifacts, byte
 * offsets as regions, and partial fingerprints so re-scans de-duplicate.
 */
export function toSarif(report: ScanReport): object {
  const artifacts: {
    location: { uri: string };
    hashes?: Record<string, string>;
    length?: number;
    parentIndex?: number;
  }[] = [];
  const index = new Map<string, number>();
  for (const f of report.files) {
    index.set(f.path, artifacts.length);
    artifacts.push({ location: { uri: f.path }, length: f.size, hashes: { 'sha-256': f.sha256 } });
  }
  const artifactOf = (file: string, member?: string): number => {
    if (!index.has(file)) {
      index.set(file, artifacts.length);
      artifacts.push({ location: { uri: file } });
    }
    if (member === undefined) return index.get(file) ?? 0;
    const key = `${file}\u0000${member}`;
    if (!index.has(key)) {
      index.set(key, artifacts.length);
      artifacts.push({ location: { uri: `${file}/${member}` }, parentIndex: index.get(file) ?? 0 });
    }
    return index.get(key) ?? 0;
  };
  const rules = new Map<string, { id: string; severity: Severity; name: string }>();
  for (const f of report.findings) {
    const id = family(f.ruleId);
    const prior = rules.get(id);
    const rank = ['info', 'low', 'medium', 'high', 'critical'];
    if (!prior || rank.indexOf(f.severity) > rank.indexOf(prior.severity)) {
      rules.set(id, {
        id,
        severity: f.severity,
        name: id.replace(/[.-](\w)/g, (_, c: string) => c.toUpperCase()),
      });
    }
  }
  const ruleList = [...rules.values()];
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: report.scanner.id,
            version: report.scanner.version,
            rules: ruleList.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.id },
              defaultConfiguration: { level: LEVEL[r.severity] },
              properties: {
                'security-severity': SECURITY_SEVERITY[r.severity],
                tags: ['security', 'model-artifact'],
              },
            })),
          },
        },
        artifacts,
        results: report.findings.map((f) => {
          const artifactIndex = artifactOf(f.location.file, f.location.member);
          const uri = f.location.member
            ? `${f.location.file}/${f.location.member}`
            : f.location.file;
          return {
            ruleId: family(f.ruleId),
            ruleIndex: ruleList.findIndex((r) => r.id === family(f.ruleId)),
            level: LEVEL[f.severity],
            message: { text: f.title },
            locations: [
              {
                physicalLocation: {
                  artifactLocation: { uri, index: artifactIndex },
                  ...(f.location.offset !== undefined && {
                    region: { byteOffset: f.location.offset, byteLength: 1 },
                  }),
                },
                logicalLocations: [{ fullyQualifiedName: uri, kind: 'module' }],
              },
            ],
            partialFingerprints: { modelgateFinding: `${f.ruleId}|${uri}` },
            properties: {
              'security-severity': SECURITY_SEVERITY[f.severity],
              severity: f.severity,
              fullRuleId: f.ruleId,
              evidence: f.evidence,
              references: f.references,
            },
          };
        }),
      },
    ],
  };
}
