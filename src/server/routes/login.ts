import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import type { AuthThrottle } from '../../identity/auth-throttle.js';
import type { IdentityInfo, IdentityStore } from '../../identity/identity-store.js';
import type { OidcFederation } from '../../identity/oidc.js';
import { PASSWORD_MAX, verifyPassword } from '../../identity/passwords.js';
import { issueToken } from '../../identity/tokens.js';
import { errorResponses, Name } from '../schemas.js';
import type { Api } from './common.js';

const Issued = Type.Object({
  identity: Type.String(),
  kind: Type.Union([Type.Literal('user'), Type.Literal('service-account')]),
  tokenId: Type.String(),
  secret: Type.String({ description: 'shown once; store it now' }),
  expiresAt: Type.String(),
});

/**
 * The routes that turn another credential into a short-lived Modelgate token: an OIDC token
 * (a CI workload, or a person's SSO ID token) and a local password. No bearer token is needed
 * for them (so no caller token whose limits the new one could exceed); failures count towards
 * the authentication limit, per address and, for passwords, per user name.
 */
export async function loginRoutes(
  app: Api,
  opts: {
    federation: OidcFederation | undefined;
    identities: IdentityStore;
    throttle: AuthThrottle;
  },
) {
  const { federation, identities, throttle } = opts;
  /**
   * Runs a credential check. A password can be guessed, so it is refused before it is checked
   * while its address or its user name is over the limit (`name` given); a signed OIDC token
   * cannot, so it is checked first and only a failure is answered 429 over the limit: a valid
   * workload is never locked out by the failures of others behind the same address.
   */
  const guarded = async <T>(ip: string, name: string | undefined, work: () => Promise<T>) => {
    if (name !== undefined) throttle.refuseIfBlocked(ip, name);
    try {
      return await work();
    } catch (e) {
      if (name === undefined) throttle.refuseIfBlocked(ip);
      throttle.failed(ip, name);
      throw e;
    }
  };
  const issue = async (who: IdentityInfo, name: string, minutes: number, credential: string) => {
    const t = issueToken();
    const expiresAt = new Date(Date.now() + minutes * 60_000).toISOString();
    await identities.addToken(
      who.name,
      { id: t.id, hash: t.hash, name: name.slice(0, 200), expiresAt },
      { identity: who.name, credentialId: credential },
    );
    return { identity: who.name, kind: who.kind, tokenId: t.id, secret: t.secret, expiresAt };
  };

  app.post(
    '/oidc/token',
    {
      config: { public: true },
      schema: {
        tags: ['identities'],
        summary:
          "Exchange an OIDC token for a short-lived Modelgate token: a CI workload's token for its service account, or a person's SSO ID token for their user (teams from the token's groups)",
        security: [],
        body: Type.Object(
          { token: Type.String({ minLength: 1, maxLength: 16_384 }) },
          { additionalProperties: false },
        ),
        response: { 201: Issued, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (req, reply) => {
      const match = await guarded(req.ip, undefined, async () => {
        if (!federation)
          throw new ModelgateError(
            'UNAUTHENTICATED',
            'OIDC token refused: this server trusts no OIDC issuer (its operator sets MODELGATE_OIDC_CONFIG to a trust-rule file)',
          );
        return federation.exchange(req.body.token);
      });
      const via = `oidc ${match.issuer}`;
      let who: IdentityInfo;
      if (match.kind === 'service-account') {
        who = await identities.getIdentity(match.name);
        if (who.kind !== 'service-account')
          throw new ModelgateError(
            'FORBIDDEN',
            `trust rule names ${who.name}, which is not a service account`,
          );
      } else {
        who = await personFor(identities, match, via);
      }
      if (who.expiresAt && who.expiresAt <= new Date().toISOString())
        throw new ModelgateError('FORBIDDEN', `${who.name} expired at ${who.expiresAt}`);
      const issued = await issue(who, `${via} ${match.subject}`, match.minutes, via);
      return reply.status(201).send(issued);
    },
  );

  app.post(
    '/login',
    {
      config: { public: true },
      schema: {
        tags: ['identities'],
        summary:
          'Log in with a local password (for users that have one): a Modelgate token valid for some hours',
        security: [],
        body: Type.Object(
          {
            name: Name,
            password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX }),
            hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Issued, ...errorResponses(400, 401, 429) },
      },
    },
    async (req, reply) => {
      // Failures count against the name whether or not such a user exists, so that a 429 does
      // not tell which names are real.
      const who = await guarded(req.ip, req.body.name, async () => {
        const b = req.body;
        // The same answer, after the same work, for an unknown name and a wrong password.
        const ok = await verifyPassword(b.password, await identities.passwordHashOf(b.name));
        const i = ok ? await identities.getIdentity(b.name) : undefined;
        if (i?.kind !== 'user')
          throw new ModelgateError('UNAUTHENTICATED', 'wrong user name or password');
        return i;
      });
      const issued = await issue(who, 'password login', (req.body.hours ?? 12) * 60, 'password');
      return reply.status(201).send(issued);
    },
  );
}

/** The user an SSO login maps to: created on first login when the rule provisions, teams synced. */
async function personFor(
  identities: IdentityStore,
  match: Extract<Awaited<ReturnType<OidcFederation['exchange']>>, { kind: 'user' }>,
  via: string,
): Promise<IdentityInfo> {
  const by = { identity: match.name, credentialId: via };
  let who: IdentityInfo;
  try {
    who = await identities.getIdentity(match.name);
  } catch (e) {
    if (!(e instanceof ModelgateError) || e.code !== 'IDENTITY_NOT_FOUND') throw e;
    if (!match.rule.provision)
      throw new ModelgateError(
        'FORBIDDEN',
        `no user named ${match.name}: an admin creates it first (modelgate user create ${match.name}), or the trust rule sets provision: true`,
      );
    try {
      return await identities.createIdentity(
        {
          name: match.name,
          kind: 'user',
          roles: match.rule.defaultRoles,
          teams: match.teams ?? [],
          sso: { issuer: match.issuer, subject: match.subject },
        },
        by,
      );
    } catch (e2) {
      // Two first logins at once: the other one created it.
      if (!(e2 instanceof ModelgateError) || e2.code !== 'IDENTITY_EXISTS') throw e2;
      who = await identities.getIdentity(match.name);
    }
  }
  if (who.kind !== 'user')
    throw new ModelgateError('FORBIDDEN', `${who.name} is a service account, not a person`);
  // A name in a token is only a claim: the identity must be bound to this issuer's subject,
  // or anyone the provider lets choose that name (admin, say) would become it.
  if (who.sso?.issuer !== match.issuer || who.sso.subject !== match.subject)
    throw new ModelgateError(
      'FORBIDDEN',
      who.sso
        ? `user ${who.name} is bound to another SSO login; this token's subject is not it`
        : `user ${who.name} is not bound to an SSO login: an admin binds it (modelgate user create ${who.name} --sso-issuer ISSUER --sso-subject SUBJECT), or provisioning creates SSO users`,
    );
  // The identity provider owns team membership for the users it logs in.
  if (match.teams && match.teams.join('\n') !== who.teams.join('\n'))
    who = await identities.changeGrants(who.name, { teams: match.teams }, by);
  return who;
}
