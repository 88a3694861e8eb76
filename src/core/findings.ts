/** Finding severities, most severe first. */
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
/** How bad a finding is. */
export type Severity = (typeof SEVERITIES)[number];

/** Rank of a severity: higher is worse (critical 4 ... info 0). */
export function severityRank(s: Severity): number {
  return SEVERITIES.length - 1 - SEVERITIES.indexOf(s);
}

/** Where in an artefact a finding is: the file, an archive member inside it, a byte offset. */
export interface FindingLocation {
  file: string;
  member?: string;
  offset?: number;
}

/** One result of an evaluator, e.g. a dangerous global in a pickle. */
export interface Finding {
  ruleId: string;
  severity: Severity;
  title: string;
  location: FindingLocation;
  /** What was seen, e.g. `{global: "os.system"}`. */
  evidence: Record<string, string | number | boolean>;
  /** CWE, CVE, GHSA and MITRE ATLAS identifiers. */
  references: string[];
}
