import type { Command } from 'commander';
import { SEVERITIES, type Severity, severityRank } from '../../core/findings.js';
import { toSarif } from '../../evaluators/artifact-scan/sarif.js';
import { ScanInputError, scanPaths } from '../../evaluators/artifact-scan/scanner.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';

/** `modelgate scan`: the artefact scanner, offline, no server needed. */
export function registerScan(program: Command): void {
  program
    .command('scan <paths...>')
    .description('scan model files for malicious content, offline; nothing is loaded or executed')
    .option('--format <format>', 'table | json | sarif', 'table')
    .option(
      '--fail-on <severity>',
      'exit 1 when a finding is at or above: critical | high | medium | low',
      'high',
    )
    .addHelpText(
      'after',
      `
Reads pickles (protocols 0-5, several per file, embedded and base64/hex-encoded ones too),
PyTorch zip and legacy checkpoints, joblib files, NumPy .npy/.npz, and zip/tar archives
(every member, pickles found by content, path-traversal names reported).

Exit codes: 0 no finding at or above --fail-on; 1 at least one; 2 cannot scan (bad path or usage).

Examples:
  modelgate scan model.pt
  modelgate scan ./checkpoint --format sarif > scan.sarif
  modelgate scan weights.pkl --fail-on medium`,
    )
    .action((paths: string[], o: { format: string; failOn: string }) => {
      if (!['table', 'json', 'sarif'].includes(o.format)) {
        throw new CliError(
          `--format must be table, json or sarif, got ${JSON.stringify(o.format)}`,
          2,
        );
      }
      if (!SEVERITIES.includes(o.failOn as Severity) || o.failOn === 'info') {
        throw new CliError(
          `--fail-on must be critical, high, medium or low, got ${JSON.stringify(o.failOn)}`,
          2,
        );
      }
      let report: ReturnType<typeof scanPaths>;
      try {
        report = scanPaths(paths);
      } catch (e) {
        if (e instanceof ScanInputError) throw new CliError(e.message, 2);
        throw e;
      }
      const threshold = severityRank(o.failOn as Severity);
      const failing = report.findings.filter((f) => severityRank(f.severity) >= threshold);
      if (o.format === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else if (o.format === 'sarif')
        process.stdout.write(`${JSON.stringify(toSarif(report), null, 2)}\n`);
      else {
        const counts = SEVERITIES.map(
          (s) => `${report.findings.filter((f) => f.severity === s).length} ${s}`,
        ).join(', ');
        const rows = report.findings.map((f) => [
          f.severity.toUpperCase(),
          f.ruleId,
          `${f.location.file}${f.location.member ? `:${f.location.member}` : ''}${f.location.offset !== undefined ? `@${f.location.offset}` : ''}`,
          f.title,
        ]);
        process.stdout.write(
          `${rows.length > 0 ? `${table(['SEVERITY', 'RULE', 'WHERE', 'FINDING'], rows)}\n\n` : ''}scanned ${report.files.length} file(s): ${counts}\n`,
        );
      }
      if (failing.length > 0) process.exitCode = 1;
    });
}
