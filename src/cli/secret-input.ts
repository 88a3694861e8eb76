import { CliError } from './errors.js';

let piped: Promise<string[]> | undefined;

/** All of piped standard input, as lines (read once, shared by every prompt). */
function pipedLines(): Promise<string[]> {
  piped ??= (async () => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of process.stdin) {
      size += (c as Buffer).length;
      if (size > 64 * 1024) throw new CliError('standard input is too long for passwords', 2);
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  })();
  return piped;
}

/** Reads one line from a terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CliError('cancelled', 2));
        if (ch === '\u007f' || ch === '\b') line = [...line].slice(0, -1).join('');
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * Reads secrets (passwords) the way a careful CLI does: prompted without echo on a terminal,
 * else one per line from standard input (`--password-stdin`), never from the command line,
 * where they would land in shell history and the process list.
 */
export async function readSecrets(prompts: string[]): Promise<string[]> {
  const out: string[] = [];
  if (process.stdin.isTTY) {
    for (const p of prompts) out.push(await promptHidden(p));
  } else {
    const lines = await pipedLines();
    for (const [i, p] of prompts.entries()) {
      const line = lines[i];
      if (line === undefined || line === '')
        throw new CliError(
          `expected ${prompts.length} line(s) on standard input; line ${i + 1} (${p.replace(/:\s*$/, '')}) is missing`,
          2,
        );
      out.push(line);
    }
  }
  if (out.some((s) => s === '')) throw new CliError('an empty password is not a password', 2);
  return out;
}
