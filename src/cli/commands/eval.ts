import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { Evaluation, StoredFinding } from '../../evaluators/evaluation-store.js';
import { IMPORT_FORMATS, MAX_IMPORT_BYTES } from '../../evaluators/imports/import-format.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { CliError } from '../errors.js';
import { fields, table } from '../output.js';

const where = (f: StoredFinding) =>
  `${f.location.file}${f.location.member ? `:${f.location.member}` : ''}${f.location.offset !== undefined ? `@${f.location.offset}` : ''}`;

/** Renders findings as a table. */
export function findingsTable(items: StoredFinding[]): string {
  return table(
    ['SEVERITY', 'RULE', 'WHERE', 'FINDING'],
    items.map((f) => [f.severity.toUpperCase(), f.ruleId, where(f), f.title]),
  );
}

/** `modelgate eval start|list|show`. */
export function registerEval(program: Command, ctx: CliContext): void {
  const ev = program
    .command('eval')
    .alias('evaluation')
    .description("run evaluators on versions, import other tools' results, read them");

  ev.command('start <ref>')
    .description('queue an evaluation of NAME@N or NAME@ALIAS; the server runs it')
    .option(
      '--evaluator <id>',
      'which evaluator (GET /api/v1/evaluators lists them)',
      'artifact-scan',
    )
    .option('--wait', 'wait until it has finished, then print its findings')
    .action(async (ref: string, o: { evaluator: string; wait?: boolean }, cmd: Command) => {
      const { model, ref: r } = splitRef(ref);
      const client = ctx.client();
      let e = await client.request<Evaluation>(
        'POST',
        `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}/evaluations`,
        {
          evaluator: o.evaluator,
        },
      );
      if (o.wait) {
        const deadline = Date.now() + 30 * 60_000;
        while ((e.status === 'queued' || e.status === 'running') && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 500));
          e = await client.request<Evaluation>('GET', `/api/v1/evaluations/${seg(e.id)}`);
          if (process.stderr.isTTY)
            process.stderr.write(`\r${e.status} ${(e.progress * 100).toFixed(0)}%   `);
        }
        if (process.stderr.isTTY) process.stderr.write('\n');
      }
      ctx.print(
        cmd,
        e,
        () =>
          `${e.id} ${e.status} (${e.evaluator.id} ${e.evaluator.version} on ${e.model}@${e.version})`,
      );
      if (e.status === 'failed')
        throw new CliError(`evaluation ${e.id} failed: ${e.error ?? 'unknown error'}`, 2);
    });

  ev.command('list <ref>')
    .description('evaluations of NAME@N or NAME@ALIAS, newest first')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const { model, ref: r } = splitRef(ref);
      const res = await ctx
        .client()
        .request<{ items: Evaluation[] }>(
          'GET',
          `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}/evaluations`,
        );
      ctx.print(cmd, res, () =>
        table(
          ['ID', 'EVALUATOR', 'STATUS', 'FINDINGS', 'BY', 'CREATED'],
          res.items.map((e) => [
            e.id,
            `${e.evaluator.id} ${e.evaluator.version}`,
            e.status,
            // Only a finished scan has a count: a failed one found nothing out, not zero.
            e.status === 'succeeded' ? (e.metrics.findings ?? '-') : `- (${e.status})`,
            e.requestedBy,
            e.createdAt,
          ]),
        ),
      );
    });

  ev.command('show <id>')
    .description('one evaluation and its findings')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const e = await ctx
        .client()
        .request<Evaluation & { findings: StoredFinding[] }>(
          'GET',
          `/api/v1/evaluations/${seg(id)}`,
        );
      ctx.print(cmd, e, () => {
        const head = fields([
          ['evaluation', e.id],
          ['version', `${e.model}@${e.version}`],
          ['evaluator', `${e.evaluator.id} ${e.evaluator.version}`],
          [
            'status',
            `${e.status}${e.status === 'running' ? ` ${(e.progress * 100).toFixed(0)}%` : ''}`,
          ],
          ['requested', `${e.createdAt} by ${e.requestedBy} (${e.credentialId})`],
          [
            'ran',
            e.startedAt ? `${e.startedAt} - ${e.finishedAt ?? '...'} (attempt ${e.attempts})` : '-',
          ],
          [
            'metrics',
            Object.entries(e.metrics)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ],
          ['error', e.error],
        ]);
        return e.findings.length > 0
          ? `${head}\n\n${findingsTable(e.findings)}`
          : `${head}\n\nno findings`;
      });
    });

  ev.command('import <ref> <file>')
    .description("import another tool's result as a finished evaluation of NAME@N or NAME@ALIAS")
    .requiredOption('--format <format>', `what the file is: ${IMPORT_FORMATS.join(' | ')}`)
    .addHelpText(
      'after',
      `
Formats:
  garak      a garak report.jsonl (its eval records: attack success per probe and detector)
  promptfoo  a promptfoo results JSON (promptfoo eval -o results.json; red-team runs too)
  sarif      a SARIF 2.1.0 log from any scanner
  modelgate  Modelgate's evaluation result JSON (docs/evaluation-result.schema.json)

The evaluation is attributed to you and to the tool named in the file; its findings and
metrics are what gates see. A malformed file is refused with the line or path that is wrong.

Example:
  modelgate evaluation import fraud-llm@3 --format garak garak.2f1c.report.jsonl`,
    )
    .action(async (ref: string, file: string, o: { format: string }, cmd: Command) => {
      if (!(IMPORT_FORMATS as readonly string[]).includes(o.format))
        throw new CliError(
          `--format must be one of ${IMPORT_FORMATS.join(', ')}, got ${JSON.stringify(o.format)}`,
          2,
        );
      const { model, ref: r } = splitRef(ref);
      let content: string;
      try {
        const size = statSync(file).size;
        if (size > MAX_IMPORT_BYTES)
          throw new CliError(
            `${file} is ${size} bytes; an import takes at most ${MAX_IMPORT_BYTES}`,
            2,
          );
        content = readFileSync(file, 'utf8');
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
      }
      const e = await ctx
        .client()
        .request<Evaluation>(
          'POST',
          `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}/evaluation-imports`,
          { format: o.format, content, filename: basename(file) },
        );
      const found = await ctx
        .client()
        .request<Evaluation & { findings: StoredFinding[] }>(
          'GET',
          `/api/v1/evaluations/${seg(e.id)}`,
        );
      ctx.print(cmd, found, () => {
        const head = `imported ${found.id}: ${found.evaluator.id} ${found.evaluator.version} on ${found.model}@${found.version}, ${found.findings.length} finding(s)`;
        return found.findings.length > 0 ? `${head}\n\n${findingsTable(found.findings)}` : head;
      });
    });
}
