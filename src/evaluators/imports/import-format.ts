import type { Finding } from '../../core/findings.js';

/** The result formats `modelgate evaluation import` reads. */
export const IMPORT_FORMATS = ['garak', 'promptfoo', 'sarif', 'modelgate'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** Largest result file an import accepts. */
export const MAX_IMPORT_BYTES = 16 * 1024 * 1024;

/** An evaluation result read from another tool's output file. */
export interface ImportedEvaluation {
  /** The tool named in the file (`garak`, `promptfoo`, a SARIF driver name...) and its version. */
  tool: { name: string; version: string };
  findings: Finding[];
  /** Finite numbers only, e.g. `attempts`, `asr`, `asr.<category>`, `findings.high`. */
  metrics: Record<string, number>;
  /** When the tool ran, as an ISO time, when the file says. */
  ranAt?: string;
}
