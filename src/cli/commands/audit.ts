import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseCheckpoint } from '../../audit/checkpoint.js';
import { parseNote, verifierKeyOf } from '../../audit/signed-note.js';
import type { StateViolation } from '../../audit/state-check.js';
import { formatReport, type LogLeaf, LogVerifier, type VerifyReport } from '../../audit/verify.js';
import { verifyDatabaseInThread } from '../../storage/verify-database.js';
import { ApiClient } from '../client.js';
import { resolveTarget } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';

interface VerifyOpts {
  dataDir?: string;
  databaseUrl?: string;
  server?: string;
  logKey?: string;
  witnessKey?: string[];
  since?: string;
  save?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const PAGE = 1000;

/** A key given as itself or as a file holding it (first line). */
function keyArg(v: string, what: string): string {
  if (!existsSync(v)) return v.trim();
  try {
    return (readFileSync(v, 'utf8').split('\n')[0] ?? '').trim();
  } catch (e) {
    throw new CliError(`cannot read ${what} ${v}: ${(e as Error).message}`, 2);
  }
}

/** Progress on a terminal while a long log is read. */
function progress(what: string, n: number, total: number): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${what} ${n}/${total}`);
}

const toLeaf = (e: { seq: number; leaf: string }): LogLeaf => ({ index: e.seq, text: e.leaf });

/**
 * Verifies the log in a data folder's database (or a PostgreSQL one), streaming the events
 * through the verifier, and compares every governed table with the log.
 */
async function verifyDatabaseAt(
  o: VerifyOpts,
  checks: { witnessKeys: string[]; since: string | undefined },
) {
  const dataDir = o.dataDir ?? '';
  if (!o.databaseUrl && !existsSync(join(dataDir, 'modelgate.db')))
    throw new CliError(
      `no Modelgate database in ${dataDir} (expected ${join(dataDir, 'modelgate.db')})`,
      2,
    );
  // Without --log-key, the key beside the database: fine for a quick check, but an auditor
  // passes the key they were given, since whoever can edit the database can replace this file.
  let logKey = o.logKey ? keyArg(o.logKey, '--log-key') : undefined;
  const notes: string[] = [];
  if (!logKey) {
    const file = join(dataDir, 'audit-log.key');
    if (!existsSync(file)) throw new CliError(`give --log-key: ${file} does not exist`, 2);
    logKey = verifierKeyOf(readFileSync(file, 'utf8').trim());
    notes.push(
      `warning: checking against the key in ${file}; pass --log-key with a copy you trust`,
    );
  }
  // A malformed key is the caller's mistake: said here, before any thread starts.
  new LogVerifier({ checkpoints: [], logKey, witnessKeys: checks.witnessKeys });
  const r = await verifyDatabaseInThread(
    { dataDir, ...(o.databaseUrl && { url: o.databaseUrl }) },
    { logKey, witnessKeys: checks.witnessKeys, ...(checks.since && { since: checks.since }) },
    (read, size) => progress('reading events', read, size),
  );
  if (process.stderr.isTTY) process.stderr.write('\n');
  if (r.pending > 0)
    notes.push(
      `warning: ${r.pending} events of committed changes are queued, not yet in the tree (the server adds them when it runs)`,
    );
  return { ...r, notes };
}

/** Verifies the log a server shows, streaming its events through the verifier. */
async function verifyServer(
  server: string,
  checks: { logKey: string; witnessKeys: string[]; since: string | undefined },
) {
  const target = resolveTarget({ ...process.env, MODELGATE_SERVER: server });
  const api = new ApiClient(target.server, target.token);
  // The latest (signed now if the log grew), then the stored ones; the latest is added only if
  // it is newer than the last stored, since the same checkpoint may have gained a witness's
  // cosignature in between (different text, same size and root).
  const latest = await api.text('/api/v1/audit/checkpoint');
  const checkpoints: string[] = [];
  for (let from = 0; ; ) {
    const r = await api.request<{ items: { size: number; note: string }[] }>(
      'GET',
      `/api/v1/audit/checkpoints?from=${from}&limit=500`,
    );
    checkpoints.push(...r.items.map((c) => c.note));
    const last = r.items[r.items.length - 1];
    if (r.items.length < 500 || !last) break;
    from = last.size + 1;
  }
  const sizeOf = (note: string | undefined) => {
    try {
      return note === undefined ? -1 : parseCheckpoint(parseNote(note).text).size;
    } catch {
      return -1;
    }
  };
  if (sizeOf(latest) > sizeOf(checkpoints.at(-1))) checkpoints.push(latest);
  const verifier = new LogVerifier({
    checkpoints,
    logKey: checks.logKey,
    witnessKeys: checks.witnessKeys,
    ...(checks.since && { since: checks.since }),
  });
  let read = 0;
  for (;;) {
    const r = await api.request<{ size: number; items: { index: number; leaf: string }[] }>(
      'GET',
      `/api/v1/audit/events?from=${read}&limit=${PAGE}`,
    );
    for (const e of r.items) verifier.add(toLeaf({ seq: e.index, leaf: e.leaf }));
    read += r.items.length;
    progress('reading events', read, r.size);
    if (r.items.length < PAGE) break;
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  return verifier.finish();
}

/** `modelgate audit verify`: checks a whole audit log, offline or through a server. */
export function registerAudit(program: Command, ctx: CliContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  type Proved = {
    checkpoint: string;
    items: {
      event: {
        index: number;
        time: string;
        actor: string;
        credential: string;
        action: string;
        subject: string;
      };
      proof: unknown;
    }[];
  };
  const eventRows = (r: Proved) =>
    table(
      ['#', 'TIME', 'ACTOR', 'CREDENTIAL', 'ACTION', 'SUBJECT', 'PROOF'],
      r.items.map(({ event: e, proof }) => [
        e.index,
        e.time,
        e.actor,
        e.credential,
        e.action,
        e.subject,
        proof ? 'yes' : 'pending',
      ]),
    );
  const when = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const t = Date.parse(v);
    if (Number.isNaN(t))
      throw new CliError(`${flag} ${v} is not a time (e.g. 2026-03-01T12:00:00Z)`, 2);
    return new Date(t).toISOString();
  };
  audit
    .command('checkpoint')
    .description("the log's latest signed checkpoint (save it for audit verify --since)")
    .action(async (_o: unknown, cmd: Command) => {
      const text = await ctx.client().text('/api/v1/audit/checkpoint');
      ctx.print(cmd, { note: text }, () => text.replace(/\n$/, ''));
    });
  audit
    .command('history <model>')
    .description(
      'every event about a model (itself, its versions, aliases, evaluations), each with an inclusion proof',
    )
    .option('--from <time>', 'only events at or after this time')
    .option('--to <time>', 'only events at or before this time')
    .action(async (model: string, o: { from?: string; to?: string }, cmd: Command) => {
      const q = new URLSearchParams({ model });
      const from = when(o.from, '--from');
      const to = when(o.to, '--to');
      if (from) q.set('from', from);
      if (to) q.set('to', to);
      const r = await ctx.client().request<Proved>('GET', `/api/v1/audit/history?${q}`);
      ctx.print(cmd, r, () => eventRows(r));
    });
  audit
    .command('alias <model> <alias>')
    .description('where an alias pointed at a time, from the log, with the proof of the event')
    .requiredOption('--at <time>', 'the time, e.g. 2026-03-03T09:00:00Z')
    .action(async (model: string, alias: string, o: { at: string }, cmd: Command) => {
      const q = new URLSearchParams({ model, alias, at: when(o.at, '--at') ?? '' });
      const r = await ctx
        .client()
        .request<Proved & { version: number | null; at: string }>(
          'GET',
          `/api/v1/audit/alias?${q}`,
        );
      ctx.print(cmd, r, () =>
        [
          `${model}@${alias} at ${r.at}: ${r.version === null ? 'not set (deleted)' : `version ${r.version}`}`,
          eventRows(r),
        ].join('\n'),
      );
    });
  audit
    .command('verify')
    .description(
      'check the whole audit log: every event against its leaf, the tree against the signed checkpoints, each checkpoint consistent with the next (exit 0 holds, 1 a violation)',
    )
    .option('--data-dir <dir>', "offline: the server's data folder (SQLite)")
    .option('--database-url <url>', 'offline: a PostgreSQL database (with --data-dir for the key)')
    .option(
      '--server <url>',
      'online: read the log through a server (needs a token with readAudit)',
    )
    .option(
      '--log-key <vkey-or-file>',
      "the log's verifier key (GET /api/v1/audit/key), or a file holding it",
    )
    .option(
      '--witness-key <vkey-or-file>',
      'a witness whose cosignature to check (repeatable)',
      collect,
    )
    .option(
      '--since <file>',
      'a checkpoint saved earlier (--save): the log must extend it (no rollback, no split view)',
    )
    .option('--save <file>', 'save the latest checkpoint here, for --since next time')
    .addHelpText(
      'after',
      `
Offline, every governed table is also compared with the log, both ways: a row that differs
from its last logged state, a row no event records, and a logged record whose row is gone are
violations; so are an event row whose columns differ from its leaf and an event whose stored
content no longer hashes to the digest in its leaf (docs/audit-verify.md lists what is covered).

Examples:
  modelgate audit verify --data-dir ./modelgate-data --log-key log.vkey
  modelgate audit verify --server https://mg.example.com --log-key log.vkey --since last.checkpoint --save last.checkpoint`,
    )
    .action(async (o: VerifyOpts, cmd: Command) => {
      if (Boolean(o.dataDir || o.databaseUrl) === Boolean(o.server))
        throw new CliError('give --data-dir (offline) or --server (online), not both', 2);
      if (o.server && !o.logKey)
        throw new CliError(
          "--server needs --log-key: the server's own word for its key proves nothing",
          2,
        );
      const since = o.since ? readFileSync(o.since, 'utf8') : undefined;
      const witnessKeys = (o.witnessKey ?? []).map((k) => keyArg(k, '--witness-key'));
      let report: VerifyReport;
      let stateLine = '';
      let keyNote = '';
      let stateViolation: StateViolation | undefined;
      try {
        if (o.server) {
          report = await verifyServer(o.server, {
            logKey: keyArg(o.logKey ?? '', '--log-key'),
            witnessKeys,
            since,
          });
        } else {
          const r = await verifyDatabaseAt(o, { witnessKeys, since });
          report = r.report;
          keyNote = r.notes.join('\n');
          stateViolation = r.stateViolation;
          if (r.checked)
            stateLine = stateViolation
              ? `FAIL  state        ${stateViolation.message}`
              : `ok    state        ${r.counted} match their last logged state, both ways`;
        }
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError((e as Error).message, 2);
      }
      const ok = report.ok && !stateViolation;
      if (ok && o.save && report.latestCheckpoint) writeFileSync(o.save, report.latestCheckpoint);
      ctx.print(cmd, { ...report, ok, ...(stateViolation && { stateViolation }) }, () => {
        const lines = formatReport(report).split('\n');
        const verdict = lines.pop() ?? '';
        if (stateLine) lines.push(stateLine);
        lines.push(stateViolation ? `FAIL: ${stateViolation.message}` : verdict);
        return [keyNote, ...lines].filter(Boolean).join('\n');
      });
      if (!ok) process.exitCode = 1;
    });
}
