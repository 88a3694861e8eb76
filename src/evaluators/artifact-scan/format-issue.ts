import type { Severity } from '../../core/findings.js';

/** A problem one format checker found in one file, before the scanner adds its location. */
export interface FormatIssue {
  ruleId: string;
  severity: Severity;
  title: string;
  detail: string;
  /** CWE, CVE and MITRE ATLAS identifiers. */
  references?: string[];
  /** Where inside the file, when known (a byte offset or a member name). */
  offset?: number;
  member?: string;
}

/** A path (archive member name, external-data location) that would land outside its folder. */
export function escapesFolder(name: string): boolean {
  return (
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name) ||
    name.includes('\\') ||
    name.split('/').includes('..')
  );
}
