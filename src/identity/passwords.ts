import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Local passwords, for teams without SSO. Stored as scrypt hashes (memory-hard: each guess
 * costs 32 MiB and tens of milliseconds), in the self-describing form
 * `scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>` so the cost can be raised later without
 * invalidating stored hashes.
 */

const LOG_N = 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
/** Shortest and longest password accepted. */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 1024;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number) {
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(
      password.normalize('NFC'),
      salt,
      KEY_BYTES,
      // maxmem above 128·N·r, which the defaults (32 MiB) would just miss.
      { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** Why a password is not acceptable, or null when it is. */
export function passwordProblem(password: string): string | null {
  if ([...password].length < PASSWORD_MIN)
    return `a password needs at least ${PASSWORD_MIN} characters (a passphrase of a few words is easiest)`;
  if (password.length > PASSWORD_MAX) return `a password has at most ${PASSWORD_MAX} characters`;
  return null;
}

/** Hashes a password with a fresh salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, LOG_N, R, P);
  return `scrypt$${LOG_N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const FORMAT =
  /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]{8,})\$([A-Za-z0-9+/=]{8,})$/;
/** Checked when the identity has no password, so a missing account takes as long as a wrong password. */
let decoy: Promise<string> | undefined;

/** Whether the password matches the stored hash (null: no password set, always false). */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  const m = FORMAT.exec(stored ?? (await decoy));
  if (!m) return false;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 4) return false;
  const want = Buffer.from(m[5] ?? '', 'base64');
  const got = await derive(password, Buffer.from(m[4] ?? '', 'base64'), logN, r, p);
  return stored !== null && want.length === got.length && timingSafeEqual(want, got);
}
