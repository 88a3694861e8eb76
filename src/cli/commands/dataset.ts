import type { Command } from 'commander';
import type { Dataset, Page } from '../../core/types.js';
import type { CliContext } from '../context.js';
import { seg } from '../context.js';
import { fields, table } from '../output.js';

/** `modelgate dataset create|list|show`. */
export function registerDataset(program: Command, ctx: CliContext): void {
  const dataset = program
    .command('dataset')
    .description('records of datasets that versions are trained or evaluated on');

  dataset
    .command('create <name>')
    .description('record a dataset')
    .requiredOption('--uri <uri>', 'where it lives, e.g. s3://bucket/path or https://...')
    .option('--digest <digest>', 'sha256:HEX of its content or manifest')
    .option('--licence <spdx>', 'SPDX licence id, e.g. CC-BY-4.0')
    .option('--description <text>', 'what it contains')
    .action(async (name: string, o: Record<string, string | undefined>, cmd: Command) => {
      const d = await ctx.client().request<Dataset>('POST', '/api/v1/datasets', {
        name,
        uri: o.uri,
        ...(o.digest && { digest: o.digest }),
        ...(o.licence && { licence: o.licence }),
        ...(o.description && { description: o.description }),
      });
      ctx.print(cmd, d, () => `created dataset ${d.name} (${d.uri})`);
    });

  dataset
    .command('list')
    .description('list datasets, by name')
    .option('--limit <n>', 'page size (1-500)', '50')
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.limit) q.set('limit', o.limit);
      if (o.cursor) q.set('cursor', o.cursor);
      const page = await ctx.client().request<Page<Dataset>>('GET', `/api/v1/datasets?${q}`);
      ctx.print(cmd, page, () =>
        table(
          ['NAME', 'URI', 'DIGEST', 'LICENCE'],
          page.items.map((d) => [d.name, d.uri, d.digest, d.licence]),
        ),
      );
    });

  dataset
    .command('show <name>')
    .description('show a dataset')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const d = await ctx.client().request<Dataset>('GET', `/api/v1/datasets/${seg(name)}`);
      ctx.print(cmd, d, () =>
        fields([
          ['name', d.name],
          ['uri', d.uri],
          ['digest', d.digest],
          ['licence', d.licence],
          ['description', d.description],
          ['created', `${d.createdAt} by ${d.createdBy}`],
        ]),
      );
    });
}
