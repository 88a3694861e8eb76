import type { Command } from 'commander';
import type { Alias, AliasEvent, Page } from '../../core/types.js';
import type { CliContext } from '../context.js';
import { seg } from '../context.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';

interface AliasState {
  at: string | null;
  items: {
    model: string;
    name: string;
    version: number | null;
    updatedAt: string;
    updatedBy: string;
  }[];
}

/** `modelgate alias set|list|history|delete`. */
export function registerAlias(program: Command, ctx: CliContext): void {
  const alias = program
    .command('alias')
    .description('point movable names (staging, champion, ...) at versions');

  alias
    .command('set <model> <alias> <version>')
    .description('set or move an alias to a version number')
    .action(async (model: string, name: string, version: string, _o: unknown, cmd: Command) => {
      if (!/^[1-9][0-9]*$/.test(version))
        throw new CliError(`version must be a number, got ${JSON.stringify(version)}`, 2);
      const a = await ctx
        .client()
        .request<Alias>('PUT', `/api/v1/models/${seg(model)}/aliases/${seg(name)}`, {
          version: Number(version),
        });
      ctx.print(cmd, a, () => `${a.model}@${a.name} -> ${a.version}`);
    });

  alias
    .command('delete <model> <alias>')
    .description('remove an alias (the history keeps it)')
    .action(async (model: string, name: string, _o: unknown, cmd: Command) => {
      await ctx.client().request('DELETE', `/api/v1/models/${seg(model)}/aliases/${seg(name)}`);
      ctx.print(cmd, { deleted: `${model}@${name}` }, () => `deleted ${model}@${name}`);
    });

  alias
    .command('list <model>')
    .description('list the aliases of a model')
    .action(async (model: string, _o: unknown, cmd: Command) => {
      const s = await ctx
        .client()
        .request<AliasState>('GET', `/api/v1/models/${seg(model)}/aliases`);
      ctx.print(cmd, s.items, () =>
        table(
          ['ALIAS', 'VERSION', 'SINCE', 'BY'],
          s.items.map((a) => [a.name, a.version, a.updatedAt, a.updatedBy]),
        ),
      );
    });

  alias
    .command('history <model>')
    .description('every alias change, newest first; with --at, what each alias pointed at then')
    .option('--alias <name>', 'only this alias')
    .option('--at <time>', 'ISO 8601 time, e.g. 2026-03-03T12:00:00Z')
    .option('--limit <n>', 'page size (1-500)', '50')
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(async (model: string, o: Record<string, string | undefined>, cmd: Command) => {
      const client = ctx.client();
      if (o.at) {
        const q = new URLSearchParams({ at: o.at });
        const s = await client.request<AliasState>(
          'GET',
          `/api/v1/models/${seg(model)}/aliases?${q}`,
        );
        const items = o.alias ? s.items.filter((a) => a.name === o.alias) : s.items;
        ctx.print(cmd, { at: s.at, items }, () =>
          items.length === 0
            ? `no alias of ${model}${o.alias ? ` named ${o.alias}` : ''} existed at ${s.at}`
            : table(
                ['ALIAS', `VERSION AT ${s.at}`, 'SINCE', 'BY'],
                items.map((a) => [a.name, a.version ?? '(deleted)', a.updatedAt, a.updatedBy]),
              ),
        );
        return;
      }
      const q = new URLSearchParams();
      if (o.alias) q.set('alias', o.alias);
      if (o.limit) q.set('limit', o.limit);
      if (o.cursor) q.set('cursor', o.cursor);
      const page = await client.request<Page<AliasEvent>>(
        'GET',
        `/api/v1/models/${seg(model)}/alias-history?${q}`,
      );
      ctx.print(cmd, page, () => {
        const t = table(
          ['AT', 'ALIAS', 'FROM', 'TO', 'BY', 'CREDENTIAL'],
          page.items.map((e) => [
            e.at,
            e.alias,
            e.fromVersion,
            e.toVersion ?? '(deleted)',
            e.actor,
            e.credentialId,
          ]),
        );
        return page.nextCursor ? `${t}\n(more: --cursor ${page.nextCursor})` : t;
      });
    });
}
