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

/** The `schema` of Modelgate's own result format (`docs/evaluation-result.schema.json`). */
export const EVALUATION_RESULT_SCHEMA = 'modelgate.dev/evaluation-result/v1';

/** Most findings one import may hold. */
export const MAX_IMPORT_FINDINGS = 10_000;

/** Most metrics one import may hold. */
export const MAX_IMPORT_METRICS = 1000;

/** Longest metric name an import may hold. */
export const MAX_METRIC_NAME = 128;
