import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { StoredAttestation } from '../../evidence/attestation-store.js';
import { verifyBundle } from '../../evidence/bundle.js';
import { type AliasEvent, showEvidence } from '../../evidence/show.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { requireDuration } from '../durations.js';
import { CliError } from '../errors.js';

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${(e as Error).message}`, 2);
  }
}

/** Writes a file whole or not at all: a half-written report must not look like one. */
function writeWhole(file: string, text: string) {
  const tmp = `${file}.partial`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** To stdout, or whole to a file. */
function emit(text: string, output: string | undefined) {
  if (!output) {
    process.stdout.write(text);
    return;
  }
  writeWhole(output, text);
  process.stdout.write(`wrote ${output}\n`);
}

/** `modelgate evidence`: export a version's evidence bundle and verify one offline. */
export function registerEvidence(program: Command, ctx: CliContext): void {
  const evidence = program
    .command('evidence')
    .description("a version's signed evidence: export a bundle, verify it offline");
  evidence
    .command('export <ref>')
    .description(
      'write the evidence bundle of NAME@VERSION: manifest, attestations with audit log proofs, checkpoint, keys',
    )
    .requiredOption('-o, --output <file>', 'where to write the bundle (JSON)')
    .action(async (ref: string, o: { output: string }, cmd: Command) => {
      const { model, ref: v } = splitRef(ref);
      const bundle = await ctx
        .client()
        .request<{ attestations: unknown[] }>(
          'POST',
          `/api/v1/models/${seg(model)}/versions/${seg(v ?? '')}/evidence-bundles`,
        );
      // Compact, so that every byte of the file is significant (no whitespace whose change
      // would not matter).
      writeWhole(o.output, JSON.stringify(bundle));
      ctx.print(
        cmd,
        { file: o.output, attestations: bundle.attestations.length },
        () => `wrote ${o.output}: ${bundle.attestations.length} attestations`,
      );
    });
  evidence
    .command('report <ref>')
    .description(
      "NAME@VERSION's evidence mapped to control frameworks: each control with its evidence (linked to attestations) or what is missing; coverage and gaps, never 'compliant'",
    )
    .option(
      '--framework <ids>',
      'comma-separated: nist-ai-rmf@1.0, iso42001@2023, eu-ai-act, nist-csf@2.0 (default all)',
    )
    .option('--format <format>', 'json, markdown, html or oscal (assessment-results)', 'markdown')
    .option('-o, --output <file>', 'write it here instead of stdout')
    .action(async (ref: string, o: { framework?: string; format: string; output?: string }) => {
      if (!['json', 'markdown', 'html', 'oscal'].includes(o.format))
        throw new CliError(`--format must be json, markdown, html or oscal, not ${o.format}`, 2);
      const { model, ref: v } = splitRef(ref);
      const q = new URLSearchParams({ format: o.format });
      if (o.framework) q.set('framework', o.framework);
      const body = await ctx
        .client()
        .text(`/api/v1/models/${seg(model)}/versions/${seg(v ?? '')}/compliance-report?${q}`);
      const text =
        o.format === 'json' || o.format === 'oscal'
          ? `${JSON.stringify(JSON.parse(body), null, 2)}\n`
          : body;
      emit(text, o.output);
    });
  evidence
    .command('portfolio')
    .description(
      'evidence coverage of every model (its version under --alias, else its latest) per framework, with totals',
    )
    .option('--alias <alias>', 'which version of each model to report on', 'production')
    .option('--framework <ids>', 'comma-separated framework ids (default all)')
    .option('--format <format>', 'json or markdown', 'markdown')
    .action(async (o: { alias: string; framework?: string; format: string }) => {
      if (!['json', 'markdown'].includes(o.format))
        throw new CliError(`--format must be json or markdown, not ${o.format}`, 2);
      const q = new URLSearchParams({ alias: o.alias, format: o.format });
      if (o.framework) q.set('framework', o.framework);
      const body = await ctx.client().text(`/api/v1/compliance/portfolio?${q}`);
      process.stdout.write(
        o.format === 'json' ? `${JSON.stringify(JSON.parse(body), null, 2)}\n` : body,
      );
    });
  evidence
    .command('annex-iv <ref>')
    .description(
      'a draft of the EU AI Act Annex IV technical documentation for NAME@VERSION (Markdown), with the parts the record cannot supply marked',
    )
    .option('-o, --output <file>', 'write it here instead of stdout')
    .action(async (ref: string, o: { output?: string }) => {
      const { model, ref: v } = splitRef(ref);
      const text = await ctx
        .client()
        .text(`/api/v1/models/${seg(model)}/versions/${seg(v ?? '')}/annex-iv`);
      emit(text, o.output);
    });
  evidence
    .command('bom <ref>')
    .description("NAME@VERSION's CycloneDX 1.6 ML-BOM (JSON), to stdout or a file")
    .option('-o, --output <file>', 'write it here instead of stdout')
    .action(async (ref: string, o: { output?: string }) => {
      const { model, ref: v } = splitRef(ref);
      const bom = await ctx
        .client()
        .request<unknown>('GET', `/api/v1/models/${seg(model)}/versions/${seg(v ?? '')}/ml-bom`);
      const json = `${JSON.stringify(bom, null, 2)}\n`;
      emit(json, o.output);
    });
  evidence
    .command('show <ref>')
    .description(
      'what the record says about NAME@VERSION: who registered it, each evaluation and result, each gate decision with its failed rules, who approved and when, waivers, alias history; each line names the signed attestation (checked here) or audit event behind it',
    )
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const { model, ref: r } = splitRef(ref);
      const client = ctx.client();
      const base = `/api/v1/models/${seg(model)}`;
      const v = await client.request<{
        number: number;
        digest: string;
        author: string;
        createdAt: string;
      }>('GET', `${base}/versions/${seg(r ?? '')}`);
      const key = await client.request<{
        publicKey: string;
        evaluators: { name: string; publicKey: string }[];
      }>('GET', '/api/v1/attestations/key');
      const { items } = await client.request<{ items: StoredAttestation[] }>(
        'GET',
        `${base}/versions/${v.number}/attestations`,
      );
      const history: AliasEvent[] = [];
      for (let cursor: string | null | undefined; ; ) {
        const page = await client.request<{ items: AliasEvent[]; nextCursor: string | null }>(
          'GET',
          `${base}/alias-history?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        history.push(...page.items);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      const shown = showEvidence(
        { model, ...v },
        items,
        history
          .filter((e) => e.toVersion === v.number || e.fromVersion === v.number)
          .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)),
        createPublicKey(key.publicKey),
        key.evaluators.map((e) => ({ name: e.name, key: createPublicKey(e.publicKey) })),
      );
      ctx.print(cmd, shown, () => shown.lines.join('\n'));
      if (shown.unverified > 0) process.exitCode = 1;
    });
  evidence
    .command('verify <file>')
    .description(
      'verify a bundle with no server: manifest, checkpoint signed by the log key, each attestation signature and inclusion proof, the export list (exit 0 only when everything holds)',
    )
    .requiredOption(
      '--log-key <vkey>',
      "the audit log's verifier key (C2SP vkey, or a file holding it): the trust root",
    )
    .option('--attestation-key <file>', "the server's attestation public key (PEM) to require")
    .option(
      '--witness-key <vkey>',
      'a witness whose cosignature the checkpoint must carry (vkey or a file; repeat for several)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option(
      '--max-age <duration>',
      'fail when the bundle was exported longer ago than this (30d, 12h, 90m), or carries no signed export time',
    )
    .action(
      (
        file: string,
        o: { logKey: string; attestationKey?: string; witnessKey: string[]; maxAge?: string },
        cmd: Command,
      ) => {
        const maxAgeMs =
          o.maxAge === undefined ? undefined : requireDuration(o.maxAge, '--max-age');
        let bundle: unknown;
        try {
          bundle = JSON.parse(readText(file, 'bundle'));
        } catch (e) {
          if (e instanceof CliError) throw e;
          throw new CliError(`${file} is not JSON: ${(e as Error).message}`, 1);
        }
        const logKey = existsSync(o.logKey) ? readText(o.logKey, 'log key').trim() : o.logKey;
        let attestationKey: ReturnType<typeof createPublicKey> | undefined;
        if (o.attestationKey) {
          try {
            attestationKey = createPublicKey(readText(o.attestationKey, 'attestation key'));
          } catch (e) {
            if (e instanceof CliError) throw e;
            throw new CliError(`${o.attestationKey} is not a PEM public key`, 2);
          }
        }
        let report: ReturnType<typeof verifyBundle>;
        try {
          report = verifyBundle(bundle, {
            logKey,
            ...(attestationKey && { attestationKey }),
            witnessKeys: o.witnessKey.map((k) =>
              existsSync(k) ? readText(k, 'witness key').trim() : k,
            ),
            ...(maxAgeMs !== undefined && { maxAgeMs }),
          });
        } catch (e) {
          throw new CliError(`cannot verify: ${(e as Error).message}`, 2);
        }
        ctx.print(cmd, report, () =>
          [
            ...report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
            report.ok ? `verified: ${file}` : `NOT verified: ${file}`,
          ].join('\n'),
        );
        if (!report.ok) process.exitCode = 1;
      },
    );
}
