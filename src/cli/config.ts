import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './errors.js';

/** What `modelgate login` stores. */
export interface CliConfig {
  server?: string;
  token?: string;
}

/** The config file: $MODELGATE_CONFIG, else $XDG_CONFIG_HOME/modelgate/config.json, else ~/.config/modelgate/config.json. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MODELGATE_CONFIG) return env.MODELGATE_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'modelgate', 'config.json');
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  try {
    return JSON.parse(readFileSync(configPath(env), 'utf8')) as CliConfig;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${configPath(env)}: ${(e as Error).message}`, 2);
  }
}

/** Writes the config with mode 0600 (it holds a token), atomically. */
export function writeConfig(cfg: CliConfig, env: NodeJS.ProcessEnv = process.env): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

/** Server and token to use: MODELGATE_SERVER / MODELGATE_TOKEN override the config file. */
export function resolveTarget(env: NodeJS.ProcessEnv = process.env): {
  server: string;
  token: string;
} {
  const cfg = readConfig(env);
  const server = env.MODELGATE_SERVER || cfg.server;
  const token = env.MODELGATE_TOKEN || cfg.token;
  if (!server || !token) {
    throw new CliError(
      'not logged in: run `modelgate login --server URL --token TOKEN`, or set MODELGATE_SERVER and MODELGATE_TOKEN',
      2,
    );
  }
  return { server: server.replace(/\/+$/, ''), token };
}
