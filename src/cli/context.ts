import type { Command } from 'commander';
import { ApiClient } from './client.js';
import { resolveTarget } from './config.js';
import { CliError } from './errors.js';

/** Shared helpers handed to every command. */
export interface CliContext {
  client(): ApiClient;
  /** Prints `data` as JSON with --json, else the human text. */
  print(cmd: Command, data: unknown, human: () => string): void;
}

export const context: CliContext = {
  client() {
    const t = resolveTarget();
    return new ApiClient(t.server, t.token);
  },
  print(cmd, data, human) {
    const json = Boolean(cmd.optsWithGlobals().json);
    process.stdout.write(`${json ? JSON.stringify(data, null, 2) : human()}\n`);
  },
};

/** Splits `NAME@REF` into model and ref; REF is a number or an alias. */
export function splitRef(s: string, requireRef = true): { model: string; ref: string | undefined } {
  const at = s.indexOf('@');
  if (at < 0) {
    if (requireRef)
      throw new CliError(`expected NAME@VERSION or NAME@ALIAS, got ${JSON.stringify(s)}`, 2);
    return { model: s, ref: undefined };
  }
  const model = s.slice(0, at);
  const ref = s.slice(at + 1);
  if (!model || !ref)
    throw new CliError(`expected NAME@VERSION or NAME@ALIAS, got ${JSON.stringify(s)}`, 2);
  return { model, ref };
}

/** URL path segment. */
export const seg = (s: string) => encodeURIComponent(s);
