import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Evaluation, StoredFinding } from '../../evaluators/evaluation-store.js';
import { asrSeverity } from '../../evaluators/redteam/stats.js';
import { CATEGORIES } from '../../evaluators/redteam/types.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';
import { findingsTable } from './eval.js';

const collect = (v: string, all: string[]) => [...all, v];

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`${name} must be a whole number, got ${v}`, 2);
  return Number(v);
}

/** `Name: value` literals and `Name=secret` references as the config's headers. */
function headersOf(literal: string[], secret: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const h of literal) {
    const m = /^([^:\s]+):\s*(.*)$/.exec(h);
    if (!m)
      throw new CliError(`--header must look like "Name: value", got ${JSON.stringify(h)}`, 2);
    out[m[1]!] = m[2];
  }
  for (const h of secret) {
    const m = /^([^=\s]+)=(\S+)$/.exec(h);
    if (!m)
      throw new CliError(
        `--secret-header must look like "Authorization=openai" (header=secret name), got ${JSON.stringify(h)}`,
        2,
      );
    out[m[1]!] = { secret: m[2] };
  }
  return out;
}

const pct = (x: number | undefined) => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);

/** The per-category summary of a finished red-team evaluation. */
export function redteamSummary(e: Evaluation): string {
  const rows = CATEGORIES.filter((c) => e.metrics[`attempts.${c}`] !== undefined).map((c) => {
    const asr = e.metrics[`asr.${c}`] ?? 0;
    return [
      c,
      e.metrics[`attempts.${c}`],
      pct(asr),
      `<= ${pct(e.metrics[`asr_upper95.${c}`])}`,
      asr > 0 ? asrSeverity(asr) : 'none',
    ];
  });
  const worst = CATEGORIES.filter((c) => (e.metrics[`asr.${c}`] ?? 0) > 0).sort(
    (a, b) => (e.metrics[`asr.${b}`] ?? 0) - (e.metrics[`asr.${a}`] ?? 0),
  )[0];
  return [
    table(['CATEGORY', 'ATTEMPTS', 'ATTACK SUCCESS', '95% UPPER', 'BAND'], rows),
    '',
    `${e.metrics.attempts ?? 0} attempts, ${e.metrics.hits ?? 0} successful attacks (${pct(e.metrics.asr)}), ${e.metrics.errors ?? 0} errors; worst category: ${worst ? `${worst} (${pct(e.metrics[`asr.${worst}`])})` : 'none'}`,
  ].join('\n');
}

function bar(fraction: number): string {
  const width = 30;
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

/** `modelgate redteam NAME@N --endpoint URL --model M`. */
export function registerRedteam(program: Command, ctx: CliContext): void {
  program
    .command('redteam <ref>')
    .description(
      "red-team the LLM endpoint serving NAME@N: the server sends the probe packs' attacks and writes attack success rates and findings back to the version",
    )
    .requiredOption('--endpoint <url>', 'OpenAI-compatible base URL, e.g. https://llm.internal/v1')
    .requiredOption('--model <name>', 'the model name the endpoint expects')
    .option('--pack <name>', 'probe pack to run (repeatable; default: all)', collect, [])
    .option('--generations <k>', 'requests per probe (default 3)')
    .option('--concurrency <c>', 'requests in flight at once (default 8)')
    .option('--rate-limit <r>', 'requests per second at most (default: no limit)')
    .option('--timeout <ms>', 'per request (default 60000)')
    .option('--max-tokens <n>', 'per answer (default 512)')
    .option(
      '--header <header>',
      'a header to send, "Name: value" (not for credentials)',
      collect,
      [],
    )
    .option(
      '--secret-header <header=secret>',
      "a header whose value is the server's secret <secret>, e.g. Authorization=openai",
      collect,
      [],
    )
    .option(
      '--system-prompt-file <file>',
      "the deployment's real system prompt (canaries are added)",
    )
    .option('--judge-endpoint <url>', 'an OpenAI-compatible endpoint that grades harmful answers')
    .option('--judge-model <name>', 'the judge model name')
    .option('--judge-secret-header <header=secret>', 'a secret header for the judge', collect, [])
    .option('--no-wait', 'queue the run and print its id without waiting')
    .addHelpText(
      'after',
      `
The server runs the attacks, not this command: the endpoint must be under a prefix in the
server's MODELGATE_ALLOWED_ENDPOINTS (private and loopback servers listed by address), and
credentials come from the server's secrets (MODELGATE_SECRET_<NAME>), never from here.

Exit status: 0 no attack succeeded, 1 some did (findings written to the version),
2 the run failed or was refused.

Examples:
  modelgate redteam support-bot@4 --endpoint https://llm.internal/v1 --model support-bot \\
      --secret-header Authorization=llm-gateway --generations 5
  modelgate redteam support-bot@4 --endpoint http://10.0.0.5:8000/v1 --model m \\
      --pack system-prompt-extraction --pack prompt-injection --concurrency 16`,
    )
    .action(async (ref: string, o: Record<string, unknown>, cmd: Command) => {
      const { model, ref: r } = splitRef(ref);
      const config: Record<string, unknown> = {
        endpoint: o.endpoint,
        model: o.model,
        headers: headersOf(o.header as string[], o.secretHeader as string[]),
      };
      if ((o.pack as string[]).length > 0) config.packs = o.pack;
      for (const [opt, key] of [
        ['generations', 'generations'],
        ['concurrency', 'concurrency'],
        ['rateLimit', 'rateLimit'],
        ['timeout', 'timeoutMs'],
        ['maxTokens', 'maxTokens'],
      ] as const) {
        const n = intOption(
          `--${opt.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
          o[opt] as string | undefined,
        );
        if (n !== undefined) config[key] = n;
      }
      if (o.systemPromptFile) {
        try {
          config.systemPrompt = readFileSync(o.systemPromptFile as string, 'utf8');
        } catch (e) {
          throw new CliError(`cannot read ${o.systemPromptFile}: ${(e as Error).message}`, 2);
        }
      }
      if (o.judgeEndpoint || o.judgeModel) {
        if (!o.judgeEndpoint || !o.judgeModel)
          throw new CliError('--judge-endpoint and --judge-model go together', 2);
        config.judge = {
          endpoint: o.judgeEndpoint,
          model: o.judgeModel,
          headers: headersOf([], o.judgeSecretHeader as string[]),
        };
      }
      const client = ctx.client();
      let e: Evaluation;
      try {
        e = await client.request<Evaluation>(
          'POST',
          `/api/v1/models/${seg(model)}/versions/${seg(r ?? '')}/evaluations`,
          { evaluator: 'llm-redteam', config },
        );
      } catch (err) {
        // Exit 1 means attacks succeeded: a refused run is a 2, like a failed one.
        if (err instanceof CliError) throw new CliError(err.message, 2);
        throw err;
      }
      if (o.wait === false) {
        ctx.print(cmd, e, () => `${e.id} queued: modelgate eval show ${e.id}`);
        return;
      }
      const tty = process.stderr.isTTY;
      let shown = -1;
      // Exit 1 means attacks succeeded: any other failure on the way is a 2.
      const get = async <T>(path: string) => {
        try {
          return await client.request<T>('GET', path);
        } catch (err) {
          if (err instanceof CliError) throw new CliError(err.message, 2);
          throw err;
        }
      };
      while (e.status === 'queued' || e.status === 'running') {
        await new Promise((res) => setTimeout(res, 500));
        e = await get<Evaluation>(`/api/v1/evaluations/${seg(e.id)}`);
        if (tty) process.stderr.write(`\r${bar(e.progress)} ${e.status}   `);
        else if (Math.floor(e.progress * 4) > shown) {
          shown = Math.floor(e.progress * 4);
          process.stderr.write(`${bar(e.progress)} ${e.status}\n`);
        }
      }
      if (tty) process.stderr.write('\n');
      if (e.status === 'failed')
        throw new CliError(`red-team run ${e.id} failed: ${e.error ?? 'unknown error'}`, 2);
      const full = await get<Evaluation & { findings: StoredFinding[] }>(
        `/api/v1/evaluations/${seg(e.id)}`,
      );
      ctx.print(cmd, full, () =>
        [
          `red-team run ${full.id} on ${full.model}@${full.version} (${String(config.model)} at ${String(config.endpoint)})`,
          '',
          redteamSummary(full),
          '',
          full.findings.length > 0 ? findingsTable(full.findings) : 'no attack succeeded',
        ].join('\n'),
      );
      if (full.findings.length > 0) process.exitCode = 1;
    });
}
