import type { Actor } from '../core/types.js';
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
  /** Service accounts may end: no token of theirs works after this. */
  expiresAt: string | null;
  /** Whether a local password is set (the hash never leaves the store). */
  hasPassword: boolean;
  /** The SSO login this user is bound to, if any. */
  sso: { issuer: string; subject: string } | null;
  createdAt: string;
  /** Who created it; null for the first admin and identities from before this was recorded. */
  createdBy: string | null;
}

/** A team and its members (a team exists while it has members). */
export interface TeamInfo {
  name: string;
  members: string[];
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
  /** Who issued it and who revoked it (null: the server itself, or not recorded). */
  createdBy: string | null;
  revokedBy: string | null;
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

/** A new identity as the API creates it. */
export interface IdentityInput extends NewIdentity {
  owner?: string;
  purpose?: string;
  expiresAt?: string;
  passwordHash?: string;
  sso?: { issuer: string; subject: string };
}

/** Changes to an identity's roles and teams: whole lists replaced, or single grants added or removed. */
export interface GrantChange {
  roles?: string[];
  teams?: string[];
  addRoles?: string[];
  removeRoles?: string[];
  addTeams?: string[];
  removeTeams?: string[];
}

/**
 * Persistence of identities, their roles and teams, and their tokens. Every write names the
 * actor (identity and credential) that made it. A change that would leave no identity with the
 * `admin` role is refused with LAST_ADMIN, so the registry cannot lock itself out.
 */
export interface IdentityStore {
  /** Throws IDENTITY_EXISTS. */
  createIdentity(identity: IdentityInput, by: Actor): Promise<IdentityInfo>;
  /** Throws IDENTITY_NOT_FOUND. */
  getIdentity(name: string): Promise<IdentityInfo>;
  listIdentities(): Promise<IdentityInfo[]>;
  /** Applies a grant change in one transaction; throws LAST_ADMIN. */
  changeGrants(name: string, change: GrantChange, by: Actor): Promise<IdentityInfo>;
  /**
   * Sets (or, with null, removes) a user's password hash, and revokes the tokens password
   * logins gave it (but `keepToken`); returns their hashes, so caches can drop them.
   */
  setPasswordHash(
    name: string,
    hash: string | null,
    by: Actor,
    keepToken?: string,
  ): Promise<string[]>;
  /** The stored password hash, or null (also for an unknown name). */
  passwordHashOf(name: string): Promise<string | null>;
  listTeams(): Promise<TeamInfo[]>;
  addToken(identity: string, token: NewToken, by: Actor): Promise<TokenInfo>;
  listTokens(identity: string): Promise<TokenInfo[]>;
  /** Throws TOKEN_NOT_FOUND. */
  getToken(id: string): Promise<TokenInfo>;
  /** Marks the token revoked (once) and returns its hash, so caches can drop it. */
  revokeToken(id: string, by: Actor): Promise<string>;
  /** Ends the token's life at `at` unless it ends sooner; returns its hash. */
  expireTokenBy(id: string, at: string, by: Actor): Promise<string>;
}
