import { ModelgateError } from '../../core/errors.js';
import { sniffFormat } from './common.js';
import { parseGarakReport } from './garak.js';
import { IMPORT_FORMATS, type ImportedEvaluation, type ImportFormat } from './import-format.js';
import { parseModelgateResult } from './modelgate.js';
import { parsePromptfooResults } from './promptfoo.js';
import { parseSarifLog } from './sarif.js';

export { parseGarakReport, parseModelgateResult, parsePromptfooResults, parseSarifLog };

/**
 * Turns another tool's result file into a Modelgate evaluation. Pure: reads only `text`, runs
 * nothing it reads. A malformed file is refused with IMPORT_INVALID and a message naming the
 * line or JSON path at fault (docs/imports.md describes each mapping).
 */
export function parseImport(format: ImportFormat, text: string): ImportedEvaluation {
  switch (format) {
    case 'garak':
      return parseGarakReport(text);
    case 'promptfoo':
      return parsePromptfooResults(text);
    case 'sarif':
      return parseSarifLog(text);
    case 'modelgate':
      return parseModelgateResult(text);
    default:
      // Reachable from untyped callers (a CLI flag, a request body).
      throw new ModelgateError(
        'IMPORT_INVALID',
        `unknown import format ${JSON.stringify(String(format)).slice(0, 80)}; expected one of ${IMPORT_FORMATS.join(', ')}`,
      );
  }
}

/** The import format a text recognisably is, or undefined: for a `--format` left out. */
export function detectImportFormat(text: string): ImportFormat | undefined {
  return sniffFormat(text);
}
