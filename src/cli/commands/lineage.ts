import type { Command } from 'commander';
import type { LineageEdge, LineageTarget } from '../../core/types.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';

/** Renders a lineage target as `dataset:NAME`, `version:MODEL@N`, `run:URI` or `code:URI`. */
export function targetText(t: LineageTarget): string {
  switch (t.kind) {
    case 'dataset':
      return `dataset:${t.dataset}`;
    case 'version':
      return `version:${t.model}@${t.version}`;
    default:
      return `${t.kind}:${t.uri}`;
  }
}

/** `modelgate lineage`. */
export function registerLineage(program: Command, ctx: CliContext): void {
  program
    .command('lineage <ref>')
    .description(
      'what went into a version (upstream, default) or what was built from it (downstream); NAME@N, NAME@ALIAS or dataset:NAME',
    )
    .option('--upstream', 'follow inputs: datasets, base versions, runs, code (default)')
    .option('--downstream', 'follow outputs: versions built from this one')
    .option('--depth <d>', 'how many hops (1-10)', '3')
    .action(
      async (
        ref: string,
        o: { upstream?: boolean; downstream?: boolean; depth: string },
        cmd: Command,
      ) => {
        if (o.upstream && o.downstream)
          throw new CliError('choose one of --upstream and --downstream', 2);
        if (!/^[0-9]{1,2}$/.test(o.depth))
          throw new CliError(`--depth must be 1-10, got ${o.depth}`, 2);
        const direction = o.downstream ? 'downstream' : 'upstream';
        let url: string;
        if (ref.startsWith('dataset:')) {
          if (o.upstream)
            throw new CliError('a dataset has no upstream in the registry; use --downstream', 2);
          url = `/api/v1/datasets/${seg(ref.slice(8))}/lineage?depth=${o.depth}`;
        } else {
          const { model, ref: r } = splitRef(ref);
          url = `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}/lineage?direction=${direction}&depth=${o.depth}`;
        }
        const res = await ctx.client().request<{ edges: LineageEdge[] }>('GET', url);
        ctx.print(cmd, res, () =>
          res.edges.length === 0
            ? `no ${direction} lineage for ${ref}`
            : table(
                ['DEPTH', 'VERSION', 'RELATION', 'TARGET'],
                res.edges.map((e) => [
                  e.depth,
                  `${e.from.model}@${e.from.version}`,
                  e.relation,
                  targetText(e.target),
                ]),
              ),
        );
      },
    );
}
