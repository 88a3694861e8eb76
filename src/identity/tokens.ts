import { createHash, randomBytes } from 'node:crypto';

/** Every Modelgate API token starts with this, so secret scanners can recognise a leaked one. */
export const TOKEN_PREFIX = 'mgt_';
const TOKEN_RE = /^mgt_[A-Za-z0-9_-]{43}$/;

/** A new token: the secret (shown once), its id (safe to log) and the hash that is stored. */
export interface IssuedToken {
  secret: string;
  id: string;
  hash: string;
}

/** SHA-256 of the token. Tokens carry 256 random bits, so a fast hash is enough to store them. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** True when the string has the shape of a Modelgate token. */
export function looksLikeToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/** Issues a token, or wraps a given secret (the bootstrap token) after checking its shape. */
export function issueToken(secret?: string): IssuedToken {
  const s = secret ?? `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  if (!looksLikeToken(s)) {
    throw new Error(
      `a Modelgate token is '${TOKEN_PREFIX}' followed by 43 base64url characters (32 random bytes); generate one with: node -e "console.log('mgt_'+require('crypto').randomBytes(32).toString('base64url'))"`,
    );
  }
  return { secret: s, id: `tok_${randomBytes(8).toString('hex')}`, hash: hashToken(s) };
}
