import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './server-process.js';

/** Runs the built CLI as a process against a server, with its own empty config file. */
export function cliOf(url: string, token: string) {
  const env = {
    ...process.env,
    MODELGATE_SERVER: url,
    MODELGATE_TOKEN: token,
    MODELGATE_CONFIG: join(mkdtempSync(join(tmpdir(), 'mg-cli-')), 'none.json'),
  };
  return (...args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        process.execPath,
        [CLI, ...args],
        { env, maxBuffer: 32 * 1024 * 1024 },
        (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            out: stdout + stderr,
          }),
      ),
    );
}
