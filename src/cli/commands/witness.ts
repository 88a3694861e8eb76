import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { decodeBase64 } from '../../audit/base64.js';
import { NoteError } from '../../audit/signed-note.js';
import {
  generateWitnessKey,
  type LogClient,
  Witness,
  WitnessStateError,
  type WitnessStepResult,
} from '../../audit/witness.js';
import { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** A LogClient over the Modelgate HTTP API, authenticating as the witness's service account. */
export class HttpLogClient implements LogClient {
  private readonly api: ApiClient;

  constructor(
    readonly server: string,
    token: string,
    timeoutMs = 30_000,
  ) {
    this.api = new ApiClient(server, token, timeoutMs);
  }

  /** GET /api/v1/audit/checkpoint: the latest signed checkpoint note. */
  async checkpoint(): Promise<string> {
    return this.api.text('/api/v1/audit/checkpoint');
  }

  /** GET /api/v1/audit/consistency?from=A&to=B: the proof, decoded from standard base64. */
  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    const path = `/api/v1/audit/consistency?from=${from}&to=${to}`;
    const body = await this.api.request<{ proof?: unknown } | undefined>('GET', path);
    const proof = Array.isArray(body?.proof) ? body.proof : undefined;
    const decoded = proof?.map((p) => (typeof p === 'string' ? decodeBase64(p) : undefined));
    if (!decoded || decoded.some((p) => p === undefined)) {
      throw new Error(`GET ${path} did not answer {proof: [base64...]}`);
    }
    return decoded as Buffer[];
  }

  /** POST /api/v1/audit/cosignatures with the cosigned note. */
  async submitCosignature(note: string): Promise<void> {
    await this.api.request('POST', '/api/v1/audit/cosignatures', { note });
  }
}

/** Reads a small text file for an option, as a usage error if it cannot be read. */
function readOptionFile(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new CliError(`${option}: cannot read ${path}: ${(e as Error).message}`, 2);
  }
}

interface RunOpts {
  log: string;
  key: string;
  logKey: string;
  state: string;
  interval: string;
  once?: boolean;
}

/** One step's line: a timestamped human line, or one compact JSON object with --json. */
function stepLine(json: boolean, r: WitnessStepResult): string {
  const time = new Date().toISOString();
  if (json) return JSON.stringify({ time, ...r });
  const what = `${r.status === 'refused' ? 'REFUSED' : r.status} checkpoint ${r.size}`;
  return `${time} ${what}${r.reason ? `: ${r.reason}` : ''}`;
}

/** `modelgate witness keygen` and `modelgate witness run`: an independent cosigner of the audit log. */
export function registerWitness(program: Command, ctx: CliContext): void {
  const witness = program
    .command('witness')
    .description(
      'an independent witness of the audit log: cosigns checkpoints that extend the last one it saw',
    );

  witness
    .command('keygen <name>')
    .description('make a cosignature/v1 witness key; prints the verifier key to give the log')
    .requiredOption('--out <file>', 'where to write the private key (mode 0600, never overwritten)')
    .addHelpText(
      'after',
      `
NAME is the witness's key name, e.g. witness.example.com/w1 (no spaces, no '+').

Example:
  modelgate witness keygen witness.example.com/w1 --out w1.key > w1.vkey`,
    )
    .action((name: string, o: { out: string }, cmd: Command) => {
      let keys: { skey: string; vkey: string };
      try {
        keys = generateWitnessKey(name);
      } catch (e) {
        throw new CliError((e as Error).message, 2);
      }
      try {
        // 'wx' refuses an existing file: overwriting a witness key would orphan its cosignatures.
        writeFileSync(o.out, `${keys.skey}\n`, { flag: 'wx', mode: 0o600 });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError(
          code === 'EEXIST'
            ? `${o.out} already exists: refusing to overwrite a key`
            : `cannot write ${o.out}: ${(e as Error).message}`,
          2,
        );
      }
      ctx.print(cmd, { name, vkey: keys.vkey, keyFile: o.out }, () => keys.vkey);
    });

  witness
    .command('run')
    .description('watch the log and cosign each checkpoint that is consistent with the last one')
    .requiredOption('--log <url>', 'the Modelgate server, e.g. https://mg.example.com')
    .requiredOption('--key <file>', 'the witness private key file (from `witness keygen`)')
    .requiredOption('--log-key <vkey-or-file>', "the log's verifier key, or a file holding it")
    .requiredOption('--state <file>', 'state file: the last checkpoint cosigned (mode 0600)')
    .option('--interval <seconds>', 'seconds between steps', '10')
    .option('--once', 'one step, then exit: 0 cosigned or unchanged, 1 refused, 2 error')
    .addHelpText(
      'after',
      `
Environment:
  MODELGATE_TOKEN   the witness's service-account token, sent with every request

A refused checkpoint (bad signature, other origin, rollback, split view, failed consistency
proof) is never cosigned and leaves the state file as it was; in loop mode the witness reports
it and keeps watching. Keep the state file: deleting it lets a log roll the witness back.

Example:
  MODELGATE_TOKEN=mgt_... modelgate witness run --log https://mg.example.com \\
    --key w1.key --log-key log.vkey --state w1.state.json`,
    )
    .action(async (o: RunOpts, cmd: Command) => {
      const json = Boolean(cmd.optsWithGlobals().json);
      const interval = Number(o.interval);
      if (!Number.isFinite(interval) || interval <= 0) {
        throw new CliError(`--interval must be a positive number of seconds, got ${o.interval}`, 2);
      }
      let server: string;
      try {
        server = new URL(o.log).toString().replace(/\/+$/, '');
      } catch {
        throw new CliError(`--log ${JSON.stringify(o.log)} is not a URL`, 2);
      }
      const token = process.env.MODELGATE_TOKEN;
      if (!token) {
        throw new CliError("set MODELGATE_TOKEN to the witness's service-account token", 2);
      }
      const key = readOptionFile(o.key, '--key');
      try {
        // A private key others can read is a key others can cosign with.
        if ((statSync(o.key).mode & 0o077) !== 0) {
          process.stderr.write(`warning: ${o.key} is readable by others; chmod 600 it\n`);
        }
      } catch {
        // already read above; a failing stat only loses the warning
      }
      const logKey = existsSync(o.logKey)
        ? (readOptionFile(o.logKey, '--log-key').split('\n')[0] ?? '').trim()
        : o.logKey;
      let w: Witness;
      try {
        w = new Witness({ key, logKey, stateFile: o.state });
      } catch (e) {
        if (e instanceof NoteError) throw new CliError(`${e.message}`, 2);
        throw e;
      }
      const log = new HttpLogClient(server, token);

      if (o.once) {
        let r: WitnessStepResult;
        try {
          r = await w.step(log);
        } catch (e) {
          throw new CliError((e as Error).message, 2);
        }
        process.stdout.write(`${stepLine(json, r)}\n`);
        if (r.status === 'refused') process.exitCode = 1;
        return;
      }

      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        while (!stop.signal.aborted) {
          try {
            const r = await w.step(log);
            process.stdout.write(`${stepLine(json, r)}\n`);
          } catch (e) {
            // A broken state file will not mend by waiting; a log that is down may come back.
            if (e instanceof WitnessStateError) throw new CliError(e.message, 2);
            const message = `${(e as Error).message} (retrying in ${interval}s)`;
            process.stderr.write(
              json
                ? `${JSON.stringify({ time: new Date().toISOString(), status: 'error', error: message })}\n`
                : `${new Date().toISOString()} error: ${message}\n`,
            );
          }
          await sleep(interval * 1000, undefined, { signal: stop.signal }).catch(() => {});
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
