import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';

/**
 * Reads a secret from a file only its owner can read, or creates it (mode 0600, never
 * overwriting a file that appeared meanwhile) when `create` is true. Refuses a file that group
 * or others can read: a signing key anyone on the machine can copy signs nothing.
 */
export function readOrCreateSecretFile(
  file: string,
  what: string,
  create: boolean,
  generate: () => string,
): string {
  if (existsSync(file)) {
    const mode = statSync(file).mode;
    if ((mode & 0o077) !== 0)
      throw new Error(
        `${what} ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`,
      );
    return readFileSync(file, 'utf8').trim();
  }
  if (!create) throw new Error(`${what} ${file} does not exist`);
  const secret = generate();
  writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return secret;
}
