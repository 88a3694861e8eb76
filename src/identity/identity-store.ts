import type { NewIdentity } from '../registry/registry-store.js';

/** A user or service account with its grants. */
export interface IdentityInfo {
  name: string;
  kind: 'user' | 'service-account';
  roles: string[];
  teams: string[];
  /** Service accounts: the person answerable for it, and what it is for. */
  owner: string | null;
  purpose: string | null;
  createdAt: string;
}

/** A token's record; never its secret, and its hash stays inside the store. */
export interface TokenInfo {
  id: string;
  identity: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  lastUsedFrom: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  /** The token this one replaced by rotation. */
  rotatedFrom: string | null;
  /** Actions the token may be used for; null: whatever its identity may do. */
  scopes: string[] | null;
}

/** A token as it is stored: its id, the hash of its secret, and its limits. */
export interface NewToken {
  id: string;
  hash: string;
  name: string;
  expiresAt?: string;
  rotatedFrom?: string;
  /** Actions the token may be used for; absent: whatever its identity may do. */
  scopes?: string[];
}

/** Persistence of identities, their roles and teams, and their tokens. */
export interface IdentityStore {
  /** Throws IDENTITY_EXISTS. */
  createIdentity(
    identity: NewIdentity & { owner?: string; purpose?: string },
  ): Promise<IdentityInfo>;
  /** Throws IDENTITY_NOT_FOUND. */
  getIdentity(name: string): Promise<IdentityInfo>;
  listIdentities(): Promise<IdentityInfo[]>;
  /** Replaces the identity's roles and teams (either may be omitted). */
  setGrants(name: string, grants: { roles?: string[]; teams?: string[] }): Promise<IdentityInfo>;
  addToken(identity: string, token: NewToken): Promise<TokenInfo>;
  listTokens(identity: string): Promise<TokenInfo[]>;
  /** Throws TOKEN_NOT_FOUND. */
  getToken(id: string): Promise<TokenInfo>;
  /** Marks the token revoked (once) and returns its hash, so caches can drop it. */
  revokeToken(id: string): Promise<string>;
  /** Ends the token's life at `at` unless it ends sooner; returns its hash. */
  expireTokenBy(id: string, at: string): Promise<string>;
}
