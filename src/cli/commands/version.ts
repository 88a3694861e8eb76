import type { Command } from 'commander';
import type { Page, Version } from '../../core/types.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { bytes, fields, table } from '../output.js';

/** `modelgate version list|show`. */
export function registerVersion(program: Command, ctx: CliContext): void {
  const version = program.command('version').description('list and show the versions of a model');

  version
    .command('list <model>')
    .description('list versions, newest first')
    .option('--tag <tag>', 'only versions with this tag')
    .option('--limit <n>', 'page size (1-500)', '50')
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(async (model: string, o: Record<string, string | undefined>, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.tag) q.set('tag', o.tag);
      if (o.limit) q.set('limit', o.limit);
      if (o.cursor) q.set('cursor', o.cursor);
      const page = await ctx
        .client()
        .request<Page<Version>>('GET', `/api/v1/models/${seg(model)}/versions?${q}`);
      ctx.print(cmd, page, () => {
        const t = table(
          ['VERSION', 'DIGEST', 'FILES', 'SIZE', 'AUTHOR', 'CREATED'],
          page.items.map((v) => [
            v.number,
            v.digest,
            v.fileCount,
            bytes(v.size),
            v.author,
            v.createdAt,
          ]),
        );
        return page.nextCursor ? `${t}\n(more: --cursor ${page.nextCursor})` : t;
      });
    });

  version
    .command('show <ref>')
    .description('show a version with its files: NAME@N or NAME@ALIAS')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const { model, ref: r } = splitRef(ref);
      const client = ctx.client();
      const v = await client.request<Version>(
        'GET',
        `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}`,
      );
      const f = await client.request<{ summary: Record<string, number> }>(
        'GET',
        `/api/v1/models/${seg(model)}/versions/${v.number}/findings`,
      );
      const evals = await client.request<{ items: { status: string }[] }>(
        'GET',
        `/api/v1/models/${seg(model)}/versions/${v.number}/evaluations`,
      );
      const count = (...st: string[]) => evals.items.filter((e) => st.includes(e.status)).length;
      const evaluations = {
        total: evals.items.length,
        succeeded: count('succeeded'),
        failed: count('failed'),
        pending: count('queued', 'running'),
      };
      const counts = Object.entries(f.summary)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ');
      // A failed evaluation found nothing out: it is never shown as zero findings.
      const findingsLine =
        evaluations.total === 0
          ? 'not evaluated yet'
          : evaluations.succeeded === 0 && evaluations.pending === 0
            ? `unknown: ${evaluations.failed} evaluation(s) FAILED, none succeeded (see modelgate eval list)`
            : `${counts} (${evaluations.total} evaluation(s)${evaluations.pending ? `, ${evaluations.pending} pending` : ''}${evaluations.failed ? `, ${evaluations.failed} FAILED` : ''})`;
      ctx.print(cmd, { ...v, findings: f.summary, evaluations }, () => {
        const head = fields([
          ['version', `${v.model}@${v.number}`],
          ['digest', v.digest],
          ['layout', v.layoutDigest],
          ['size', `${bytes(v.size)} in ${v.fileCount} file(s)`],
          ['author', v.author],
          ['source', v.sourceUri],
          ['created', v.createdAt],
          ['tags', v.tags.join(', ')],
          ['description', v.description],
          ['findings', findingsLine],
        ]);
        const files = table(
          ['PATH', 'SIZE', 'DIGEST'],
          (v.files ?? []).map((f) => [f.path, f.size, f.digest]),
        );
        return `${head}\n\n${files}`;
      });
    });
}
