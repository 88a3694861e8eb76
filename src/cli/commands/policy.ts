import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { isModelgateError } from '../../core/errors.js';
import { absenceWarnings } from '../../policy/gates/absence-lint.js';
import { refuseCostly } from '../../policy/gates/cost.js';
import { compilePolicy, parsePolicyDocument } from '../../policy/gates/policy-document.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { CliError } from '../errors.js';
import { fields, table } from '../output.js';

interface Published {
  name: string;
  version: number;
  digest: string;
  publishedBy: string;
  publishedAt: string;
  source: string;
}

function readPolicyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
  }
}

/** `modelgate policy`: gate policies (CEL), checked offline, published, listed. */
export function registerPolicy(program: Command, ctx: CliContext): void {
  const policy = program
    .command('policy')
    .description('gate policies: the CEL rules a promotion must pass (check, publish, list, show)');
  policy
    .command('check <file>')
    .description(
      'check a gate policy offline: its shape, and every expression type-checked against the facts schema (exit 0 valid, 1 not)',
    )
    .action((file: string, _o: unknown, cmd: Command) => {
      const text = readPolicyFile(file);
      try {
        const c = compilePolicy(parsePolicyDocument(text));
        refuseCostly(c.document);
        const warnings = absenceWarnings(c.document);
        ctx.print(cmd, { valid: true, name: c.name, digest: c.digest, warnings }, () =>
          [
            ...warnings.map((w) => `${file}: ${w.path}: warning: ${w.message}`),
            `ok: ${c.name} ${c.digest}${warnings.length > 0 ? ` (${warnings.length} warning${warnings.length > 1 ? 's' : ''})` : ''}`,
          ].join('\n'),
        );
      } catch (e) {
        if (!isModelgateError(e)) throw e;
        const problems =
          (e.details?.problems as { path: string; message: string }[] | undefined) ?? [];
        ctx.print(cmd, { valid: false, problems }, () =>
          problems.length > 0
            ? problems.map((p) => `${file}: ${p.path}: ${p.message}`).join('\n')
            : e.message,
        );
        process.exitCode = 1;
      }
    });
  policy
    .command('publish <file>')
    .description(
      'publish a gate policy: a new immutable version unless the same text is already published',
    )
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const p = await ctx
        .client()
        .request<Published & { warnings?: { path: string; message: string }[] }>(
          'POST',
          '/api/v1/gate-policies',
          { document: readPolicyFile(file) },
        );
      ctx.print(cmd, p, () =>
        [
          ...(p.warnings ?? []).map((w) => `${file}: ${w.path}: warning: ${w.message}`),
          `${p.name} version ${p.version} ${p.digest}`,
        ].join('\n'),
      );
    });
  policy
    .command('list')
    .description('the latest version of every gate policy')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await ctx.client().request<{ items: Published[] }>('GET', '/api/v1/gate-policies');
      ctx.print(cmd, r, () =>
        table(
          ['NAME', 'VERSION', 'DIGEST', 'PUBLISHED', 'BY'],
          r.items.map((p) => [
            p.name,
            p.version,
            p.digest.slice(0, 19),
            p.publishedAt,
            p.publishedBy,
          ]),
        ),
      );
    });
  policy
    .command('show <name>')
    .description('one gate policy: NAME (latest) or NAME@VERSION, with its text')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const [name = '', version] = ref.split('@');
      const path = version
        ? `/api/v1/gate-policies/${seg(name)}/versions/${seg(version)}`
        : `/api/v1/gate-policies/${seg(name)}`;
      const r = await ctx.client().request<Published | { items: Published[] }>('GET', path);
      const p = 'items' in r ? r.items[r.items.length - 1] : r;
      if (!p) throw new CliError(`no gate policy ${ref}`, 1);
      ctx.print(cmd, p, () =>
        [
          fields([
            ['name', p.name],
            ['version', p.version],
            ['digest', p.digest],
            ['published', `${p.publishedAt} by ${p.publishedBy}`],
          ]),
          '',
          p.source.replace(/\n$/, ''),
        ].join('\n'),
      );
    });

  policy
    .command('what-if <file>')
    .description(
      'evaluate a draft policy against every version under a bound alias (--all-versions: every version of every bound model) without changing anything; exit 0 when none would fail, 1 when some would',
    )
    .option('--all-versions', 'every version of the bound models, not only current holders')
    .action(async (file: string, o: { allVersions?: boolean }, cmd: Command) => {
      const r = await ctx.client().request<{
        policy: { name: string; digest: string };
        evaluated: number;
        passing: number;
        failing: {
          model: string;
          version: number;
          alias: string;
          current: boolean;
          outcome: string;
          failed: { rule: string; action: string; message: string }[];
        }[];
      }>('POST', '/api/v1/gate-policies/what-if', {
        document: readPolicyFile(file),
        allVersions: Boolean(o.allVersions),
      });
      ctx.print(cmd, r, () =>
        [
          ...r.failing.flatMap((f) => [
            `${f.outcome === 'pending' ? 'needs approval' : 'would FAIL'}: ${f.model}@${f.version} for ${f.alias}${f.current ? ' (current holder)' : ''}`,
            ...f.failed.map(
              (x) => `  ${x.action === 'deny' ? 'FAIL' : x.action} ${x.rule}: ${x.message}`,
            ),
          ]),
          `${r.policy.name} ${r.policy.digest}: ${r.evaluated} evaluated, ${r.passing} pass, ${r.failing.length} would not`,
        ].join('\n'),
      );
      if (r.failing.length > 0) process.exitCode = 1;
    });
  policy
    .command('recheck')
    .description(
      're-check the holder of every protected alias now: flag those that no longer pass, demote where the policy says so',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const r = await ctx.client().request<{
        checked: number;
        flagged: { model: string; alias: string; version: number; decisionId: number }[];
        demoted: { model: string; alias: string; from: number; to: number; decisionId: number }[];
        cleared: { model: string; alias: string; version: number; decisionId: number }[];
      }>('POST', '/api/v1/gate-rechecks');
      ctx.print(cmd, r, () =>
        [
          ...r.flagged.map(
            (f) => `flagged: ${f.model}@${f.version} under ${f.alias} (decision ${f.decisionId})`,
          ),
          ...r.demoted.map(
            (d) => `demoted: ${d.model}@${d.alias} ${d.from} -> ${d.to} (decision ${d.decisionId})`,
          ),
          ...r.cleared.map(
            (c) => `cleared: ${c.model}@${c.version} under ${c.alias} (decision ${c.decisionId})`,
          ),
          `${r.checked} protected aliases checked`,
        ].join('\n'),
      );
    });

  program
    .command('gate <ref>')
    .description(
      'what a gate policy says about NAME@VERSION (or NAME@ALIAS) now, for an alias: a dry run, nothing recorded (exit 0 allow, 1 deny)',
    )
    .requiredOption(
      '--policy <name>',
      'the gate policy, e.g. production-gate (NAME@VERSION for an older one)',
    )
    .requiredOption('--alias <alias>', 'the alias the version would move to, e.g. production')
    .action(async (ref: string, o: { policy: string; alias: string }, cmd: Command) => {
      const { model, ref: v } = splitRef(ref);
      const [policy = '', policyVersion] = o.policy.split('@');
      const q = new URLSearchParams({ policy, alias: o.alias });
      if (policyVersion) q.set('policyVersion', policyVersion);
      const r = await ctx.client().request<{
        outcome: string;
        policy: { name: string; version: number };
        results: { name: string; passed: boolean; action: string; message: string | null }[];
      }>('GET', `/api/v1/models/${seg(model)}/versions/${seg(v ?? '')}/gate?${q}`);
      ctx.print(cmd, r, () =>
        [
          ...r.results.map(
            (x) =>
              `${x.passed ? 'ok  ' : x.action === 'deny' ? 'FAIL' : 'warn'} ${x.name}${x.passed ? '' : `: ${x.message ?? ''}`}`,
          ),
          `${r.outcome}: ${ref} for ${o.alias} under ${r.policy.name}@${r.policy.version}`,
        ].join('\n'),
      );
      if (r.outcome !== 'allow') process.exitCode = 1;
    });
}
