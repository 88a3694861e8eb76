import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';

function readSecret(file: string, what: string): string {
  const mode = statSync(file).mode;
  if ((mode & 0o077) !== 0)
    throw new Error(
      `${what} ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`,
    );
  return readFileSync(file, 'utf8').trim();
}

/**
 * Reads a secret from a file only its owner can read, or creates it (mode 0600) when `create`
 * is true. Refuses a file that group or others can read: a signing key anyone on the machine
 * can copy signs nothing. Creation is written whole to a temporary file and linked into place,
 * which fails if the file appeared meanwhile: two servers starting at once on one data folder
 * both end up with the one secret that won, never a half-written or a second one.
 */
export function readOrCreateSecretFile(
  file: string,
  what: string,
  create: boolean,
  generate: () => string,
): string {
  if (existsSync(file)) return readSecret(file, what);
  if (!create) throw new Error(`${what} ${file} does not exist`);
  const secret = generate();
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, file);
    return secret;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return readSecret(file, what);
  } finally {
    unlinkSync(tmp);
  }
}
