import type { Command } from 'commander';
import type { Model, Page } from '../../core/types.js';
import type { CliContext } from '../context.js';
import { seg } from '../context.js';
import { fields, table } from '../output.js';

/** `modelgate model create|update|list|show`. */
export function registerModel(program: Command, ctx: CliContext): void {
  const model = program.command('model').description('create, update, list and show models');

  model
    .command('create <name>')
    .description('create a model (names: lowercase letters, digits, - and ., see docs/names.md)')
    .option('--risk-tier <tier>', 'minimal | limited | high | unacceptable', 'minimal')
    .option('--owner <team>', 'owning team', 'default')
    .option('--description <text>', 'what the model is')
    .option('--intended-use <text>', 'what it is for, and not for')
    .option('--tag <tag...>', 'tags (repeatable)')
    .action(
      async (name: string, o: Record<string, string | string[] | undefined>, cmd: Command) => {
        const m = await ctx.client().request<Model>('POST', '/api/v1/models', {
          name,
          riskTier: o.riskTier,
          ownerTeam: o.owner,
          ...(o.description !== undefined && { description: o.description }),
          ...(o.intendedUse !== undefined && { intendedUse: o.intendedUse }),
          ...(o.tag !== undefined && { tags: o.tag }),
        });
        ctx.print(
          cmd,
          m,
          () => `created model ${m.name} (risk tier ${m.riskTier}, owner ${m.ownerTeam})`,
        );
      },
    );

  model
    .command('update <name>')
    .description(
      'edit a model; changing its risk tier, owner team or a tag a gate policy binds on is a classification (approvers; lowering high needs the risk team; never by anyone who authored, evaluated or asked to promote a version of it) and re-evaluates its open promotion requests',
    )
    .option('--risk-tier <tier>', 'minimal | limited | high | unacceptable')
    .option('--owner <team>', 'owning team')
    .option('--description <text>', 'what the model is')
    .option('--intended-use <text>', 'what it is for, and not for')
    .option('--tag <tag...>', 'the complete new list of tags (repeatable)')
    .action(
      async (name: string, o: Record<string, string | string[] | undefined>, cmd: Command) => {
        const patch = {
          ...(o.riskTier !== undefined && { riskTier: o.riskTier }),
          ...(o.owner !== undefined && { ownerTeam: o.owner }),
          ...(o.description !== undefined && { description: o.description }),
          ...(o.intendedUse !== undefined && { intendedUse: o.intendedUse }),
          ...(o.tag !== undefined && { tags: o.tag }),
        };
        if (Object.keys(patch).length === 0) {
          cmd.error(
            'nothing to change: give --risk-tier, --owner, --description, --intended-use or --tag',
            { exitCode: 2 },
          );
        }
        const m = await ctx.client().request<Model>('PATCH', `/api/v1/models/${seg(name)}`, patch);
        ctx.print(
          cmd,
          m,
          () => `updated model ${m.name} (risk tier ${m.riskTier}, owner ${m.ownerTeam})`,
        );
      },
    );

  model
    .command('list')
    .description('list models, by name')
    .option('--owner <team>', 'only this owner team')
    .option('--risk-tier <tier>', 'only this risk tier')
    .option('--tag <tag>', 'only models with this tag')
    .option('--limit <n>', 'page size (1-500)', '50')
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.owner) q.set('ownerTeam', o.owner);
      if (o.riskTier) q.set('riskTier', o.riskTier);
      if (o.tag) q.set('tag', o.tag);
      if (o.limit) q.set('limit', o.limit);
      if (o.cursor) q.set('cursor', o.cursor);
      const page = await ctx.client().request<Page<Model>>('GET', `/api/v1/models?${q}`);
      ctx.print(cmd, page, () => {
        const t = table(
          ['NAME', 'RISK TIER', 'OWNER', 'TAGS', 'CREATED'],
          page.items.map((m) => [
            m.name,
            m.riskTier,
            m.ownerTeam,
            m.tags.join(',') || '-',
            m.createdAt,
          ]),
        );
        return page.nextCursor ? `${t}\n(more: --cursor ${page.nextCursor})` : t;
      });
    });

  model
    .command('show <name>')
    .description('show one model')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const m = await ctx.client().request<Model>('GET', `/api/v1/models/${seg(name)}`);
      ctx.print(cmd, m, () =>
        fields([
          ['name', m.name],
          ['risk tier', m.riskTier],
          ['owner', m.ownerTeam],
          ['description', m.description],
          ['intended use', m.intendedUse],
          ['tags', m.tags.join(', ')],
          ['created', `${m.createdAt} by ${m.createdBy}`],
        ]),
      );
    });
}
