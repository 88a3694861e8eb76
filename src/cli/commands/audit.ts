import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { StoredEvent } from '../../audit/audit-log.js';
import { verifierKeyOf } from '../../audit/signed-note.js';
import { type CurrentState, checkState } from '../../audit/state-check.js';
import { formatReport, type LogLeaf, type VerifyReport, verifyLog } from '../../audit/verify.js';
import type { Version } from '../../core/types.js';
import { openDatabase } from '../../storage/database.js';
import { KyselyAuditStore } from '../../storage/kysely-audit-store.js';
import { KyselyRegistryStore } from '../../storage/kysely-registry-store.js';
import { resolveTarget } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

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

const toLeaf = (e: { seq: number; leaf: string }): LogLeaf => ({
  index: e.seq,
  bytes: Buffer.from(e.leaf, 'utf8'),
});

/** Reads a whole log and the current state from a data folder's database. */
async function fromDatabase(o: VerifyOpts) {
  const dataDir = o.dataDir ?? '';
  if (!o.databaseUrl && !existsSync(join(dataDir, 'modelgate.db')))
    throw new CliError(
      `no Modelgate database in ${dataDir} (expected ${join(dataDir, 'modelgate.db')})`,
      2,
    );
  const database = openDatabase({ dataDir, ...(o.databaseUrl && { url: o.databaseUrl }) });
  try {
    const audit = new KyselyAuditStore(database);
    const size = await audit.size();
    const events: StoredEvent[] = [];
    for (let from = 0; ; from += PAGE) {
      const page = await audit.events(from, from + PAGE);
      events.push(...page);
      progress('reading events', events.length, size);
      if (page.length < PAGE) break;
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    const hashes = await audit.nodes(events.map((e) => ({ level: 0, index: e.seq })));
    const leaves = events.map((e) => {
      const stored = hashes.get(`0/${e.seq}`);
      return { ...toLeaf(e), ...(stored && { storedLeafHash: stored }) };
    });
    const checkpoints: string[] = [];
    for (const c of await audit.checkpoints()) {
      const lines = await audit.cosignatures(c.size);
      checkpoints.push(lines.length === 0 ? c.note : `${c.note}${lines.join('\n')}\n`);
    }
    const registry = new KyselyRegistryStore(database);
    const state: CurrentState = { models: [], versions: [], aliases: [] };
    for (let cursor: string | null = null; ; ) {
      const page = await registry.listModels({}, { limit: 500, ...(cursor && { cursor }) });
      state.models.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    for (const m of state.models) {
      for (let cursor: string | null = null; ; ) {
        const page = await registry.listVersions(
          m.name,
          {},
          { limit: 500, ...(cursor && { cursor }) },
        );
        for (const v of page.items)
          state.versions.push((await registry.getVersion(m.name, v.number)) as Version);
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      state.aliases.push(...(await registry.listAliases(m.name)));
    }
    // Without --log-key, the key beside the database: fine for a quick check, but an auditor
    // passes the key they were given, since whoever can edit the database can replace this file.
    let logKey = o.logKey ? keyArg(o.logKey, '--log-key') : undefined;
    let keyNote = '';
    if (!logKey) {
      const file = join(dataDir, 'audit-log.key');
      if (!existsSync(file)) throw new CliError(`give --log-key: ${file} does not exist`, 2);
      logKey = verifierKeyOf(readFileSync(file, 'utf8').trim());
      keyNote = `warning: checking against the key in ${file}; pass --log-key with a copy you trust`;
    }
    return { leaves, checkpoints, events, state, logKey, keyNote };
  } finally {
    await database.close();
  }
}

/** Reads a whole log from a server's API. */
async function fromServer(server: string) {
  const target = resolveTarget({ ...process.env, MODELGATE_SERVER: server });
  const get = async (path: string) => {
    let res: Response;
    try {
      res = await fetch(`${target.server}${path}`, {
        headers: { authorization: `Bearer ${target.token}` },
      });
    } catch (e) {
      throw new CliError(`cannot reach ${target.server}: ${(e as Error).message}`, 2);
    }
    if (!res.ok)
      throw new CliError(`${path}: the server answered ${res.status}: ${await res.text()}`, 1);
    return res;
  };
  const leaves: LogLeaf[] = [];
  for (;;) {
    const r = (await (
      await get(`/api/v1/audit/events?from=${leaves.length}&limit=${PAGE}`)
    ).json()) as {
      size: number;
      items: { index: number; leaf: string }[];
    };
    leaves.push(...r.items.map((e) => toLeaf({ seq: e.index, leaf: e.leaf })));
    progress('reading events', leaves.length, r.size);
    if (r.items.length < PAGE) break;
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  const checkpoints: string[] = [];
  for (let from = 0; ; ) {
    const r = (await (await get(`/api/v1/audit/checkpoints?from=${from}&limit=500`)).json()) as {
      items: { size: number; note: string }[];
    };
    checkpoints.push(...r.items.map((c) => c.note));
    const last = r.items[r.items.length - 1];
    if (r.items.length < 500 || !last) break;
    from = last.size + 1;
  }
  // The latest, signed now if the log grew since the last stored one.
  const latest = await (await get('/api/v1/audit/checkpoint')).text();
  if (!checkpoints.includes(latest)) checkpoints.push(latest);
  return { leaves, checkpoints };
}

/** `modelgate audit verify`: checks a whole audit log, offline or through a server. */
export function registerAudit(program: Command, ctx: CliContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
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
Offline, the rows of the database are also compared with the log: a model, version or alias
edited or inserted without going through the log is a violation, and so is an event whose
stored content no longer hashes to the digest in its leaf.

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
      let stateViolation: ReturnType<typeof checkState>;
      try {
        if (o.server) {
          const r = await fromServer(o.server);
          report = verifyLog({
            ...r,
            logKey: keyArg(o.logKey ?? '', '--log-key'),
            witnessKeys,
            ...(since && { since }),
          });
        } else {
          const r = await fromDatabase(o);
          keyNote = r.keyNote;
          report = verifyLog({
            leaves: r.leaves,
            checkpoints: r.checkpoints,
            logKey: r.logKey,
            witnessKeys,
            ...(since && { since }),
          });
          if (report.ok) {
            stateViolation = checkState(r.events, r.state);
            stateLine = stateViolation
              ? `FAIL  state        ${stateViolation.message}`
              : `ok    state        ${r.state.models.length} models, ${r.state.versions.length} versions and ${r.state.aliases.length} aliases match their last logged state`;
          }
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
