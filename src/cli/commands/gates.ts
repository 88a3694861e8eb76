import type { Command } from 'commander';
import type { Facts } from '../../policy/gates/facts-schema.js';
import { compareReplay, decideGate, type PolicyOutcome } from '../../policy/gates/gate.js';
import { compilePolicy, type PolicyDocument } from '../../policy/gates/policy-document.js';
import type { Decision, PromotionRequest, Waiver } from '../../workflow/gate-store.js';
import type { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { durationMs } from '../durations.js';
import { CliError } from '../errors.js';
import { fields, table } from '../output.js';

interface Result {
  status: 'promoted' | 'pending' | 'denied' | 'rejected' | 'current';
  request: PromotionRequest | null;
  decision: Decision | null;
}
interface ErrorBody {
  code: string;
  message: string;
  details?: { result?: Result };
}

/** Exit codes of `promote` and `request approve`: moved 0, pending 3, denied or rejected 1. */
export const PENDING_EXIT = 3;

function failedRules(d: Decision): string[] {
  return d.policies.flatMap((p) =>
    p.results
      .filter((r) => !r.passed)
      .map(
        (r) =>
          `  ${r.waiverId ? 'waived' : r.action === 'deny' ? 'FAIL' : r.action}  ${p.name}/${r.name}: ${r.message ?? ''}${r.waiverId ? ` (waiver ${r.waiverId})` : ''}`,
      ),
  );
}

function describeResult(r: Result, what: string): string {
  const d = r.decision;
  const req = r.request;
  switch (r.status) {
    case 'current':
      return `${what}: the alias already points at this version; nothing to do`;
    case 'promoted':
      return `promoted: ${req?.model}@${req?.version} -> ${req?.alias} (decision ${d?.id}, request ${req?.id})`;
    case 'pending':
      return [
        `pending: request ${req?.id} waits for approvals (decision ${d?.id})`,
        ...(d ? failedRules(d) : []),
        `approvers: modelgate request approve ${req?.id} --comment "..."`,
      ].join('\n');
    case 'rejected':
      return `rejected: request ${req?.id} is closed`;
    default:
      return [`denied: ${what} (decision ${d?.id})`, ...(d ? failedRules(d) : [])].join('\n');
  }
}

function exitFor(status: Result['status']) {
  if (status === 'pending') process.exitCode = PENDING_EXIT;
  else if (status === 'denied' || status === 'rejected') process.exitCode = 1;
}

/** Days, hours or minutes from now (`30d`, `12h`), or an RFC 3339 time, as an ISO string. */
export function expiryFrom(v: string, now = Date.now()): string {
  const ms = durationMs(v);
  if (ms !== undefined) return new Date(now + ms).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t) || !/^\d{4}-\d{2}-\d{2}/.test(v))
    throw new CliError(
      `--expires ${JSON.stringify(v)}: give a duration (30d, 12h) or a time (2027-01-31T00:00:00Z)`,
      2,
    );
  return new Date(t).toISOString();
}

async function review(
  ctx: CliContext,
  cmd: Command,
  id: string,
  decision: 'approve' | 'reject',
  comment: string,
) {
  const client = ctx.client();
  const req = await client.request<PromotionRequest>(
    'GET',
    `/api/v1/promotion-requests/${seg(id)}`,
  );
  const r = await client.request<Result>(
    'POST',
    `/api/v1/models/${seg(req.model)}/aliases/${seg(req.alias)}/promotion-requests/${req.id}/reviews`,
    { decision, comment },
  );
  ctx.print(cmd, r, () =>
    [
      `${decision === 'approve' ? 'approved' : 'rejected'} request ${req.id}`,
      describeResult(r, `${req.model}@${req.version} for ${req.alias}`),
    ].join('\n'),
  );
  exitFor(r.status);
}

/**
 * Re-evaluates a stored decision here, with this CLI's CEL engine, from the stored facts and
 * the policy versions the server says it used (their digests are checked).
 */
export async function replayDecision(client: ApiClient, id: string) {
  const d = await client.request<Decision>('GET', `/api/v1/decisions/${seg(id)}`);
  if (!d.facts) throw new CliError(`decision ${id} came without its facts`, 2);
  const policies = await Promise.all(
    d.policies.map(async (p: PolicyOutcome) => {
      const doc = await client.request<{ document: PolicyDocument; digest: string }>(
        'GET',
        `/api/v1/gate-policies/${seg(p.name)}/versions/${p.version}`,
      );
      const compiled = compilePolicy(doc.document);
      if (compiled.digest !== p.digest)
        throw new CliError(
          `policy ${p.name}@${p.version} hashes to ${compiled.digest}, but decision ${id} used ${p.digest}`,
          1,
        );
      return { name: p.name, version: p.version, digest: p.digest, compiled };
    }),
  );
  const again = decideGate(policies, d.facts as Facts);
  return { decision: d, report: compareReplay(d, again) };
}

/** `modelgate promote|request|waiver|decision|verify`: moving protected aliases through gates. */
export function registerGates(program: Command, ctx: CliContext): void {
  program
    .command('promote <ref>')
    .description(
      'promote NAME@VERSION to a protected alias through its gate: exit 0 moved, 3 pending approval, 1 denied (each failed rule is printed)',
    )
    .requiredOption('--to <alias>', 'the protected alias, e.g. production')
    .action(async (ref: string, o: { to: string }, cmd: Command) => {
      const { model, ref: v } = splitRef(ref);
      const { status, body } = await ctx
        .client()
        .attempt<Result | ErrorBody>(
          'POST',
          `/api/v1/models/${seg(model)}/aliases/${seg(o.to)}/promotions`,
          { version: v },
        );
      const result =
        status < 300
          ? (body as Result)
          : (body as ErrorBody)?.code === 'GATE_DENIED'
            ? (body as ErrorBody).details?.result
            : undefined;
      if (!result) {
        const e = body as ErrorBody | undefined;
        throw new CliError(
          e?.code ? `${e.code}: ${e.message}` : `HTTP ${status}`,
          status < 500 ? 1 : 2,
        );
      }
      ctx.print(cmd, result, () => describeResult(result, `${ref} for ${o.to}`));
      exitFor(result.status);
    });

  const request = program
    .command('request')
    .description('promotion requests waiting for (or closed after) approvals');
  request
    .command('list')
    .description('promotion requests, newest first')
    .option('--state <state>', 'pending, promoted, denied, rejected or superseded')
    .option('--model <name>', 'only this model')
    .action(async (o: { state?: string; model?: string }, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.state) q.set('state', o.state);
      if (o.model) q.set('model', o.model);
      const r = await ctx
        .client()
        .request<{ items: PromotionRequest[] }>('GET', `/api/v1/promotion-requests?${q}`);
      ctx.print(cmd, r, () =>
        table(
          ['ID', 'VERSION', 'ALIAS', 'STATE', 'REQUESTED BY', 'AT', 'REVIEWS'],
          r.items.map((x) => [
            x.id,
            `${x.model}@${x.version}`,
            x.alias,
            x.state,
            x.requestedBy,
            x.requestedAt,
            x.reviews.map((v) => `${v.reviewer}:${v.decision}`).join(' '),
          ]),
        ),
      );
    });
  request
    .command('show <id>')
    .description('one promotion request with its reviews')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const r = await ctx
        .client()
        .request<PromotionRequest>('GET', `/api/v1/promotion-requests/${seg(id)}`);
      ctx.print(cmd, r, () =>
        [
          fields([
            ['request', r.id],
            ['version', `${r.model}@${r.version}`],
            ['alias', r.alias],
            ['state', r.state],
            ['requested', `${r.requestedAt} by ${r.requestedBy}`],
            ['closed', r.closedAt],
            ['decision', r.decisionId],
          ]),
          ...r.reviews.map(
            (v) =>
              `  ${v.decision} by ${v.reviewer} at ${v.at}: ${v.comment}${v.withdrawn ? ` (withdrawn by ${v.withdrawn.by}${v.withdrawn.override ? ', override' : ''} at ${v.withdrawn.at}: ${v.withdrawn.comment})` : ''}`,
          ),
        ].join('\n'),
      );
    });
  for (const verdict of ['approve', 'reject'] as const)
    request
      .command(`${verdict} <id>`)
      .description(
        verdict === 'approve'
          ? 'approve a pending request (not as its author, requester or evaluator); the alias moves when the gate now passes (exit 0 moved, 3 still pending, 1 denied)'
          : 'reject a pending request: it closes, and the rejection stands for that version and alias (later requests carry it) until you withdraw it',
      )
      .requiredOption('--comment <text>', 'why, for the record')
      .action((id: string, o: { comment: string }, cmd: Command) =>
        review(ctx, cmd, id, verdict, o.comment),
      );

  request
    .command('withdraw-rejection <id>')
    .description(
      "withdraw your rejection of request ID so that the version may be promoted again; an admin may withdraw another approver's with --override (logged)",
    )
    .requiredOption('--comment <text>', 'why, for the record')
    .option('--override', "as an admin: withdraw another approver's rejection")
    .action(async (id: string, o: { comment: string; override?: boolean }, cmd: Command) => {
      const client = ctx.client();
      const req = await client.request<PromotionRequest>(
        'GET',
        `/api/v1/promotion-requests/${seg(id)}`,
      );
      const r = await client.request<PromotionRequest>(
        'POST',
        `/api/v1/models/${seg(req.model)}/aliases/${seg(req.alias)}/promotion-requests/${req.id}/rejection-withdrawals`,
        { comment: o.comment, ...(o.override && { override: true }) },
      );
      const w = r.reviews.find((x) => x.withdrawn)?.withdrawn;
      ctx.print(
        cmd,
        r,
        () =>
          `rejection of request ${r.id} withdrawn by ${w?.by ?? '?'}${w?.override ? ' (override)' : ''}: ${req.model}@${req.version} may be requested for ${req.alias} again`,
      );
    });

  const waiver = program
    .command('waiver')
    .description('accept a finding or a gate rule failure for a while, with a justification');
  waiver
    .command('create <ref>')
    .description(
      'waive for NAME@VERSION (or every version of NAME) the findings of one rule or one gate rule',
    )
    .option('--finding-rule <id>', "a finding's rule id, e.g. pickle.unsafe-global/os.system")
    .option('--rule <policy/validation>', 'a gate rule, e.g. production-gate/artifact-scan-fresh')
    .requiredOption('--justification <text>', 'why this is acceptable')
    .requiredOption('--expires <when>', 'a duration (30d, 12h) or a time; at most 365 days')
    .action(
      async (
        ref: string,
        o: { findingRule?: string; rule?: string; justification: string; expires: string },
        cmd: Command,
      ) => {
        if (Boolean(o.findingRule) === Boolean(o.rule))
          throw new CliError('give exactly one of --finding-rule or --rule', 2);
        const { model, ref: v } = splitRef(ref, false);
        const path =
          v === undefined
            ? `/api/v1/models/${seg(model)}/waivers`
            : `/api/v1/models/${seg(model)}/versions/${seg(v)}/waivers`;
        const w = await ctx.client().request<Waiver>('POST', path, {
          ...(o.findingRule && { findingRule: o.findingRule }),
          ...(o.rule && { rule: o.rule }),
          justification: o.justification,
          expiresAt: expiryFrom(o.expires),
        });
        ctx.print(
          cmd,
          w,
          () =>
            `waiver ${w.id}: ${w.findingRule ?? w.rule} for ${w.model}${w.version === null ? ' (every version)' : `@${w.version}`} until ${w.expiresAt}`,
        );
      },
    );
  waiver
    .command('list')
    .description('waivers in force (--all: expired and revoked too)')
    .option('--model <name>', 'only this model')
    .option('--all', 'include expired and revoked waivers')
    .action(async (o: { model?: string; all?: boolean }, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.model) q.set('model', o.model);
      if (o.all) q.set('all', 'true');
      const r = await ctx.client().request<{ items: Waiver[] }>('GET', `/api/v1/waivers?${q}`);
      ctx.print(cmd, r, () =>
        table(
          ['ID', 'MODEL', 'VERSION', 'WAIVES', 'BY', 'EXPIRES', 'STATE'],
          r.items.map((w) => [
            w.id,
            w.model,
            w.version ?? 'all',
            w.findingRule ?? w.rule,
            w.approvedBy,
            w.expiresAt,
            w.state,
          ]),
        ),
      );
    });
  waiver
    .command('revoke <model> <id>')
    .description('revoke a waiver of a model: it stops counting at once')
    .action(async (model: string, id: string, _o: unknown, cmd: Command) => {
      const w = await ctx
        .client()
        .request<Waiver>('POST', `/api/v1/models/${seg(model)}/waivers/${seg(id)}/revoke`);
      ctx.print(cmd, w, () => `waiver ${w.id} revoked`);
    });

  const decision = program.command('decision').description('recorded gate decisions');
  decision
    .command('show <id>')
    .description('one decision: policies, engine, facts digest, every rule, the outcome')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const d = await ctx.client().request<Decision>('GET', `/api/v1/decisions/${seg(id)}`);
      ctx.print(cmd, d, () =>
        [
          fields([
            ['decision', d.id],
            ['version', `${d.model}@${d.version} ${d.digest}`],
            ['alias', d.alias],
            ['kind', d.kind],
            ['outcome', `${d.outcome}${d.moved ? ' (the alias moved)' : ''}`],
            ['policies', d.policies.map((p) => `${p.name}@${p.version} ${p.digest}`).join(', ')],
            ['engine', d.engine],
            ['facts', d.factsDigest],
            ['waivers', d.waivers.join(', ') || 'none'],
            ['by', `${d.decidedBy} at ${d.at}`],
          ]),
          ...d.policies.flatMap((p) =>
            p.results.map(
              (r) =>
                `  ${r.passed ? 'ok  ' : r.waiverId ? 'waived' : r.action === 'deny' ? 'FAIL' : r.action} ${p.name}/${r.name}${r.passed ? '' : `: ${r.message ?? ''}`}`,
            ),
          ),
        ].join('\n'),
      );
    });
  decision
    .command('replay <id>')
    .description(
      "re-evaluate a decision's stored facts with its stored policy versions, here; exit 0 when the outcome is the same, 1 when not",
    )
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { decision: d, report } = await replayDecision(ctx.client(), id);
      ctx.print(cmd, report, () =>
        [
          `${report.same ? 'same' : 'DIFFERENT'}: decision ${d.id} replays to ${report.outcome} (stored: ${report.stored}; ${d.policies.length} policies, facts ${d.factsDigest})`,
          ...report.differences.map((x) => `  ${x}`),
        ].join('\n'),
      );
      if (!report.same) process.exitCode = 1;
    });

  program
    .command('verify <ref>')
    .description(
      'ask whether DIGEST is the version currently approved under NAME@ALIAS (what a serving platform checks before loading a model): exit 0 approved, 1 not',
    )
    .requiredOption('--digest <digest>', 'the version digest the runtime is about to load')
    .action(async (ref: string, o: { digest: string }, cmd: Command) => {
      const { model, ref: alias } = splitRef(ref);
      const q = new URLSearchParams({ model, alias: alias ?? '', digest: o.digest });
      const r = await ctx
        .client()
        .request<{ approved: boolean; reason: string; decisionId: number | null }>(
          'GET',
          `/api/v1/verify?${q}`,
        );
      ctx.print(cmd, r, () => `${r.approved ? 'approved' : 'NOT approved'}: ${r.reason}`);
      if (!r.approved) process.exitCode = 1;
    });
}
