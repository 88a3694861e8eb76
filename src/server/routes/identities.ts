import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { ModelgateError } from '../../core/errors.js';
import type { AuthThrottle } from '../../identity/auth-throttle.js';
import type { IdentityStore, TokenInfo } from '../../identity/identity-store.js';
import {
  hashPassword,
  PASSWORD_MAX,
  passwordProblem,
  verifyPassword,
} from '../../identity/passwords.js';
import type { TokenCache } from '../../identity/token-cache.js';
import { issueToken } from '../../identity/tokens.js';
import type { AuthzDecision } from '../../policy/authz/authorizer.js';
import type { PolicySet } from '../../policy/authz/policy-set.js';
import { ACTIONS } from '../../policy/authz/schema.js';
import { loadResource } from '../authorization.js';
import { errorResponses, isoTime, Name } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

export const Role = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' });
const Roles = Type.Array(Role, { maxItems: 32, uniqueItems: true });
const Teams = Type.Array(Name, { maxItems: 64, uniqueItems: true });
export const IdentitySchema = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('user'), Type.Literal('service-account')]),
  roles: Type.Array(Type.String()),
  teams: Type.Array(Type.String()),
  owner: Type.Union([Type.String(), Type.Null()]),
  purpose: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  hasPassword: Type.Boolean(),
  sso: Type.Union([Type.Object({ issuer: Type.String(), subject: Type.String() }), Type.Null()]),
  createdAt: Type.String(),
  createdBy: Type.Union([Type.String(), Type.Null()]),
});
const Nullable = Type.Union([Type.String(), Type.Null()]);
const TokenSchema = Type.Object({
  id: Type.String(),
  identity: Type.String(),
  name: Type.String(),
  createdAt: Type.String(),
  lastUsedAt: Nullable,
  lastUsedFrom: Nullable,
  expiresAt: Nullable,
  revokedAt: Nullable,
  rotatedFrom: Nullable,
  scopes: Type.Union([Type.Array(Type.String()), Type.Null()]),
  createdBy: Nullable,
  revokedBy: Nullable,
});
const IssuedSchema = Type.Object({
  token: TokenSchema,
  secret: Type.String({ description: 'shown once; store it now' }),
});
const IdentityParams = Type.Object({ identity: Name });
const TokenParams = Type.Object({ token: Type.String({ pattern: '^tok_[0-9a-f]{16}$' }) });
const DAY_MS = 86_400_000;
/** Longest a rotated token keeps working beside its successor. */
const MAX_OVERLAP_S = 7 * 86_400;

export interface IdentityRouteOpts extends RouteOpts {
  identities: IdentityStore;
  policies: PolicySet;
  tokenCache: TokenCache;
  /** Failed authentications per address: a wrong current password counts as one. */
  throttle: AuthThrottle;
}

const Password = Type.String({ minLength: 1, maxLength: PASSWORD_MAX });

/** Hashes a new password after checking it is long enough; throws VALIDATION_FAILED. */
export async function newPasswordHash(password: string): Promise<string> {
  const problem = passwordProblem(password);
  if (problem) throw new ModelgateError('VALIDATION_FAILED', problem);
  return hashPassword(password);
}

/** Refuses roles no policy in force mentions: granting one is almost surely a typo. */
export function assertKnownRoles(policies: PolicySet, roles: readonly string[] = []): void {
  const known = policies.current().roles();
  const unknown = roles.filter((r) => !known.includes(r));
  if (unknown.length > 0)
    throw new ModelgateError(
      'VALIDATION_FAILED',
      `no policy mentions the role ${unknown.join(', ')}; known roles: ${known.join(', ')}`,
      { unknown, known },
    );
}

/** Users, service accounts, their roles and teams, and their tokens. */
export async function identityRoutes(app: Api, opts: IdentityRouteOpts) {
  const { identities, policies, tokenCache, throttle } = opts;
  const manage = { authz: { action: 'manageIdentities', resource: 'registry' } } as const;

  /**
   * Who may rotate or revoke a token: the token itself always; another token of the caller's
   * identity only a token without scopes or one scoped to manageIdentities (a read-only token
   * must not reach a sibling that can write); anyone else's only an identity manager.
   */
  const ownOrManager = (req: FastifyRequest, t: TokenInfo) => {
    if (t.id === req.actor.credentialId) return;
    if (t.identity === req.actor.identity) {
      const scopes = req.tokenScopes;
      if (scopes && !scopes.includes('manageIdentities'))
        throw new ModelgateError(
          'FORBIDDEN',
          `deny: token ${req.actor.credentialId} is limited to ${scopes.join(', ') || 'no actions'}; it may rotate or revoke only itself (other tokens need manageIdentities)`,
          { action: 'manageIdentities', scopes },
        );
      return;
    }
    // Someone else's token is as good as absent to a caller who may not manage identities.
    if (!mayManage(policies, req).allowed)
      throw new ModelgateError('TOKEN_NOT_FOUND', `no token with id ${t.id}`);
  };

  /**
   * Invariant 3 (a credential never grows): the limits of a token the caller issues or rotates
   * into, checked against the caller's own token. Scopes must be a subset of the caller's, and
   * the token must end no later than the caller's credential (both compared as they take effect:
   * a token also ends with its service account). Omitted limits default to the caller's when
   * `defaults` is set (issuing); otherwise (rotation keeps the rotated token's limits) a token
   * wider than the caller is refused.
   */
  const withinCaller = async (
    req: FastifyRequest,
    identity: string,
    asked: { scopes: string[] | undefined; expiresAt: string | undefined },
    defaults: boolean,
  ): Promise<{ scopes: string[] | undefined; expiresAt: string | undefined }> => {
    const mine = { scopes: req.tokenScopes, expiresAt: req.tokenExpiresAt };
    const scopes = asked.scopes ?? (defaults ? mine.scopes : undefined);
    const expiresAt = asked.expiresAt ?? (defaults ? mine.expiresAt : undefined);
    const who = `token ${req.actor.credentialId}`;
    if (mine.scopes) {
      const extra = scopes ? scopes.filter((x) => !mine.scopes?.includes(x)) : undefined;
      if (!scopes || (extra && extra.length > 0))
        throw new ModelgateError(
          'TOKEN_WIDENING',
          `${who} is limited to ${mine.scopes.join(', ') || 'no actions'}; it cannot issue a token for ${scopes ? extra?.join(', ') : 'every action'}`,
          { scopes: mine.scopes, asked: scopes ?? null },
        );
    }
    if (mine.expiresAt) {
      const ends = (x: string | null | undefined) => (x ? Date.parse(x) : Number.POSITIVE_INFINITY);
      const target = await identities.getIdentity(identity);
      const effective = Math.min(ends(expiresAt), ends(target.expiresAt));
      if (effective > ends(mine.expiresAt))
        throw new ModelgateError(
          'TOKEN_WIDENING',
          `${who} ends at ${mine.expiresAt}; it cannot issue a token that ends ${expiresAt ? `later (${expiresAt})` : 'never'}`,
          { expiresAt: mine.expiresAt, asked: expiresAt ?? null },
        );
    }
    return { scopes, expiresAt };
  };

  /**
   * A password is a credential with no scopes and no end: whoever holds it logs in for a full
   * token as often as they like. Setting one for someone else (or creating an identity with one)
   * is minting such a credential, so the caller's own token must be no narrower.
   */
  const refuseNarrowPasswordSetter = (req: FastifyRequest, target: string) => {
    if (req.tokenScopes || req.tokenExpiresAt)
      throw new ModelgateError(
        'TOKEN_WIDENING',
        `token ${req.actor.credentialId} is ${req.tokenScopes ? `limited to ${req.tokenScopes.join(', ') || 'no actions'}` : `valid until ${req.tokenExpiresAt}`}; a password for ${target} would log in without those limits: set it with a token that has no scopes and no expiry`,
        { scopes: req.tokenScopes ?? null, expiresAt: req.tokenExpiresAt ?? null },
      );
  };

  const issue = async (
    req: FastifyRequest,
    identity: string,
    name: string,
    expiresAt?: string,
    from?: string,
    scopes?: string[],
  ) => {
    const t = issueToken();
    const token = await identities.addToken(
      identity,
      {
        id: t.id,
        hash: t.hash,
        name,
        ...(expiresAt && { expiresAt }),
        ...(from && { rotatedFrom: from }),
        ...(scopes && { scopes }),
      },
      req.actor,
    );
    return { token, secret: t.secret };
  };

  app.get(
    '/whoami',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary: 'The calling identity, its roles and teams, and the token in use',
        response: {
          200: Type.Object({ identity: IdentitySchema, tokenId: Type.String() }),
          ...errorResponses(401),
        },
      },
    },
    async (req) => ({
      identity: await identities.getIdentity(req.actor.identity),
      tokenId: req.actor.credentialId,
    }),
  );

  app.get(
    '/identities',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: 'List users and service accounts',
        response: {
          200: Type.Object({ items: Type.Array(IdentitySchema) }),
          ...errorResponses(401),
        },
      },
    },
    async () => ({ items: await identities.listIdentities() }),
  );

  app.post(
    '/identities',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: 'Create a user or a service account (a non-human identity)',
        body: Type.Object(
          {
            name: Name,
            kind: Type.Union([Type.Literal('user'), Type.Literal('service-account')]),
            roles: Type.Optional(Roles),
            teams: Type.Optional(Teams),
            owner: Type.Optional(Name),
            purpose: Type.Optional(Type.String({ maxLength: 1000 })),
            expiresAt: Type.Optional(
              Type.String({ format: 'date-time', description: 'service accounts: when it ends' }),
            ),
            password: Type.Optional({
              ...Password,
              description: 'users: a local password (at least 12 characters); SSO needs none',
            }),
            sso: Type.Optional(
              Type.Object(
                {
                  issuer: Type.String({ minLength: 1, maxLength: 500 }),
                  subject: Type.String({ minLength: 1, maxLength: 255 }),
                },
                {
                  additionalProperties: false,
                  description:
                    "users: the SSO login (issuer and the token's sub) that logs in as this user",
                },
              ),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: IdentitySchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req, reply) => {
      const { password, ...b } = req.body;
      if (b.kind === 'service-account' && (!b.owner || !b.purpose))
        throw new ModelgateError(
          'VALIDATION_FAILED',
          'a service account needs an owner (the person answerable for it) and a purpose',
        );
      if (b.kind === 'user' && (b.owner || b.purpose || b.expiresAt))
        throw new ModelgateError(
          'VALIDATION_FAILED',
          'owner, purpose and expiresAt are for service accounts; a user has none',
        );
      if (b.kind === 'service-account' && b.sso)
        throw new ModelgateError(
          'VALIDATION_FAILED',
          'a service account logs in through workload trust rules, not an SSO binding',
        );
      if (b.kind === 'service-account' && password !== undefined)
        throw new ModelgateError(
          'VALIDATION_FAILED',
          'a service account has no password: it uses tokens or OIDC federation',
        );
      if (b.expiresAt && Date.parse(b.expiresAt) <= Date.now())
        throw new ModelgateError('VALIDATION_FAILED', `expiresAt ${b.expiresAt} is in the past`);
      assertKnownRoles(policies, b.roles);
      if (b.owner) await identities.getIdentity(b.owner);
      if (password !== undefined) refuseNarrowPasswordSetter(req, b.name);
      const created = await identities.createIdentity(
        {
          ...b,
          ...(b.expiresAt && { expiresAt: isoTime(b.expiresAt, 'expiresAt') }),
          ...(password !== undefined && { passwordHash: await newPasswordHash(password) }),
        },
        req.actor,
      );
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/identities/:identity',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: 'Show one identity',
        params: IdentityParams,
        response: { 200: IdentitySchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => identities.getIdentity(req.params.identity),
  );

  app.patch(
    '/identities/:identity',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: "Replace an identity's roles and/or teams",
        params: IdentityParams,
        body: Type.Object(
          { roles: Type.Optional(Roles), teams: Type.Optional(Teams) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: IdentitySchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      assertKnownRoles(policies, req.body.roles);
      const updated = await identities.changeGrants(req.params.identity, req.body, req.actor);
      await forgetTokensOf(identities, tokenCache, req.params.identity);
      return updated;
    },
  );

  app.put(
    '/identities/:identity/password',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: "Set a user's local password (at least 12 characters)",
        params: IdentityParams,
        body: Type.Object({ password: Password }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const i = await identities.getIdentity(req.params.identity);
      if (i.kind !== 'user')
        throw new ModelgateError(
          'VALIDATION_FAILED',
          `${i.name} is a service account: no password`,
        );
      refuseNarrowPasswordSetter(req, i.name);
      const ended = await identities.setPasswordHash(
        i.name,
        await newPasswordHash(req.body.password),
        req.actor,
      );
      for (const h of ended) tokenCache.forget(h);
      return reply.status(204).send(null);
    },
  );

  app.delete(
    '/identities/:identity/password',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: "Remove a user's local password (they log in with SSO or a token instead)",
        params: IdentityParams,
        response: { 204: Type.Null(), ...errorResponses(401, 404) },
      },
    },
    async (req, reply) => {
      await identities.getIdentity(req.params.identity);
      const ended = await identities.setPasswordHash(req.params.identity, null, req.actor);
      for (const h of ended) tokenCache.forget(h);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/password',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary: 'Change your own local password (the current one is required)',
        body: Type.Object(
          { current: Password, password: Password },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null(), ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const name = req.actor.identity;
      // A new password ends the identity's other password sessions and logs in unscoped: a
      // token limited to some actions (read, say) may not do it, unless managing identities.
      const scopes = req.tokenScopes;
      if (scopes && !scopes.includes('manageIdentities'))
        throw new ModelgateError(
          'FORBIDDEN',
          `deny: token ${req.actor.credentialId} is limited to ${scopes.join(', ') || 'no actions'}; changing the password needs a token without scopes`,
          { action: 'manageIdentities', scopes },
        );
      // Guessing the current password with a token is guessing a password: throttled alike,
      // per address and per identity.
      throttle.refuseIfBlocked(req.ip, name);
      if (!(await verifyPassword(req.body.current, await identities.passwordHashOf(name)))) {
        throttle.failed(req.ip, name);
        throw new ModelgateError(
          'VALIDATION_FAILED',
          'the current password is wrong (an admin can set one with modelgate user set-password)',
        );
      }
      // Other sessions from the old password end; the one making the change goes on.
      const ended = await identities.setPasswordHash(
        name,
        await newPasswordHash(req.body.password),
        req.actor,
        req.actor.credentialId,
      );
      for (const h of ended) tokenCache.forget(h);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/identities/:identity/tokens',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary:
          "Issue a token for an identity (the secret is in this answer only); a scoped or expiring caller's token bounds its scopes and expiry",
        params: IdentityParams,
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200 }),
            expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
            scopes: Type.Optional(
              Type.Array(Type.Union(ACTIONS.map((a) => Type.Literal(a))), {
                uniqueItems: true,
                maxItems: ACTIONS.length,
                description:
                  'the actions the token may be used for; default: all its identity may do',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: IssuedSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const days = req.body.expiresInDays;
      const limits = await withinCaller(
        req,
        req.params.identity,
        {
          scopes: req.body.scopes,
          expiresAt:
            days === undefined ? undefined : new Date(Date.now() + days * DAY_MS).toISOString(),
        },
        true,
      );
      return reply
        .status(201)
        .send(
          await issue(
            req,
            req.params.identity,
            req.body.name,
            limits.expiresAt,
            undefined,
            limits.scopes,
          ),
        );
    },
  );

  app.get(
    '/identities/:identity/tokens',
    {
      config: manage,
      schema: {
        tags: ['identities'],
        summary: "An identity's tokens (never their secrets)",
        params: IdentityParams,
        response: {
          200: Type.Object({ items: Type.Array(TokenSchema) }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => ({ items: await identities.listTokens(req.params.identity) }),
  );

  app.get(
    '/tokens',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary: "The caller's own tokens",
        response: { 200: Type.Object({ items: Type.Array(TokenSchema) }), ...errorResponses(401) },
      },
    },
    async (req) => ({ items: await identities.listTokens(req.actor.identity) }),
  );

  app.delete(
    '/tokens/:token',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary: 'Revoke a token: it is refused from its next use on',
        params: TokenParams,
        response: { 200: TokenSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      ownOrManager(req, await identities.getToken(req.params.token));
      tokenCache.forget(await identities.revokeToken(req.params.token, req.actor));
      return identities.getToken(req.params.token);
    },
  );

  app.post(
    '/tokens/:token/rotate',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary:
          'Rotate a token: a new one with the same identity, scopes and expiry; the old one keeps working for the overlap, then stops. A token rotates only itself unless it may manage identities, and never into one wider or longer-lived than itself',
        params: TokenParams,
        body: Type.Object(
          { overlapSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_OVERLAP_S })) },
          { additionalProperties: false },
        ),
        response: { 201: IssuedSchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req, reply) => {
      const old = await identities.getToken(req.params.token);
      ownOrManager(req, old);
      if (old.revokedAt)
        throw new ModelgateError(
          'TOKEN_REVOKED',
          `token ${old.id} is revoked and cannot be rotated: issue a new one instead`,
        );
      // Its successor would be born expired (or, were the expiry dropped, revive it).
      if (old.expiresAt && Date.parse(old.expiresAt) <= Date.now())
        throw new ModelgateError(
          'TOKEN_EXPIRED',
          `token ${old.id} expired at ${old.expiresAt} and cannot be rotated: issue a new one instead`,
        );
      // The successor has exactly the old token's limits, which must be within the caller's.
      const limits = await withinCaller(
        req,
        old.identity,
        { scopes: old.scopes ?? undefined, expiresAt: old.expiresAt ?? undefined },
        false,
      );
      const overlap = (req.body.overlapSeconds ?? 3600) * 1000;
      const issued = await issue(
        req,
        old.identity,
        old.name,
        limits.expiresAt,
        old.id,
        limits.scopes,
      );
      tokenCache.forget(
        await identities.expireTokenBy(
          old.id,
          new Date(Date.now() + overlap).toISOString(),
          req.actor,
        ),
      );
      return reply.status(201).send(issued);
    },
  );
}

/**
 * Whether the caller may manage identities: its identity must be allowed, and its token's
 * scopes (when it has any) must include the action; a read-only admin token is read-only here too.
 */
/** Drops the cached lookups of an identity's tokens: they carry its old grants. */
export async function forgetTokensOf(
  identities: IdentityStore,
  tokenCache: TokenCache,
  name: string,
): Promise<void> {
  for (const t of await identities.listTokens(name)) tokenCache.forgetId(t.id);
}

export function mayManage(policies: PolicySet, req: FastifyRequest): AuthzDecision {
  const scopes = req.tokenScopes;
  if (scopes && !scopes.includes('manageIdentities'))
    return {
      allowed: false,
      policies: [],
      errors: [],
      explanation: `deny: token ${req.actor.credentialId} is limited to ${scopes.join(', ')}`,
    };
  return policies.current().decide({
    principal: req.principal,
    action: 'manageIdentities',
    resource: { kind: 'registry' },
  });
}

const RESOURCE_RE = /^(registry|model:([^:@]+)|version:([^:@]+)@([^:@]+)|alias:([^:@]+):([^:@]+))$/;

/** `POST /authz/explain`: what the policies decide for an identity, an action and a resource. */
export async function explainRoute(app: Api, opts: IdentityRouteOpts) {
  const { identities, policies } = opts;
  app.post(
    '/authz/explain',
    {
      config: { self: true },
      schema: {
        tags: ['identities'],
        summary:
          'Explain an authorization decision: allowed or not, and which policy decided (explaining for another identity needs manageIdentities)',
        body: Type.Object(
          {
            as: Type.Optional(Name),
            action: Type.Union(ACTIONS.map((a) => Type.Literal(a))),
            resource: Type.String({
              maxLength: 300,
              description: 'registry | model:NAME | version:NAME@N | alias:NAME:ALIAS',
            }),
            versionAuthor: Type.Optional(Type.String({ maxLength: 63 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            allowed: Type.Boolean(),
            policies: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })),
            errors: Type.Array(Type.String()),
            explanation: Type.String(),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const b = req.body;
      const m = RESOURCE_RE.exec(b.resource);
      if (!m)
        throw new ModelgateError(
          'VALIDATION_FAILED',
          `resource must be registry, model:NAME, version:NAME@N or alias:NAME:ALIAS, got ${JSON.stringify(b.resource)}`,
        );
      const who = b.as ?? req.actor.identity;
      if (who !== req.actor.identity) {
        const may = mayManage(policies, req);
        if (!may.allowed) throw new ModelgateError('FORBIDDEN', may.explanation);
      }
      const i = await identities.getIdentity(who);
      const kind = m[1] === 'registry' ? 'registry' : m[2] ? 'model' : m[3] ? 'version' : 'alias';
      const params = {
        model: m[2] ?? m[3] ?? m[5] ?? '',
        ref: m[4] ?? '',
        alias: m[6] ?? '',
      };
      const resource = await loadResource(opts.deps.registry, kind, params);
      return policies.current().decide({
        principal: { kind: i.kind, name: i.name, roles: i.roles, teams: i.teams },
        action: b.action,
        resource,
        ...(b.action === 'approvePromotion' && {
          context: { versionAuthor: b.versionAuthor ?? '' },
        }),
      });
    },
  );
}
