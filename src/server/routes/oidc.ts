import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import type { AuthThrottle } from '../../identity/auth-throttle.js';
import type { IdentityStore } from '../../identity/identity-store.js';
import type { WorkloadFederation } from '../../identity/oidc.js';
import { issueToken } from '../../identity/tokens.js';
import { errorResponses } from '../schemas.js';
import type { Api } from './common.js';

/** `POST /oidc/token`: a workload's OIDC token in, a short-lived Modelgate token out. */
export async function oidcRoutes(
  app: Api,
  opts: { federation: WorkloadFederation; identities: IdentityStore; throttle: AuthThrottle },
) {
  const { federation, identities, throttle } = opts;
  app.post(
    '/oidc/token',
    {
      // No bearer token: the OIDC token in the body is the credential.
      config: { public: true },
      schema: {
        tags: ['identities'],
        summary:
          'Exchange a workload OIDC token (CI) for a short-lived Modelgate token of the service account a trust rule names',
        security: [],
        body: Type.Object(
          { token: Type.String({ minLength: 1, maxLength: 16_384 }) },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            serviceAccount: Type.String(),
            tokenId: Type.String(),
            secret: Type.String(),
            expiresAt: Type.String(),
          }),
          ...errorResponses(400, 401, 403, 429),
        },
      },
    },
    async (req, reply) => {
      const wait = throttle.blockedFor(req.ip);
      if (wait > 0)
        throw new ModelgateError(
          'RATE_LIMITED',
          `too many failed authentication attempts from this address: try again in ${wait} s`,
          { retryAfter: wait },
        );
      let match: Awaited<ReturnType<WorkloadFederation['exchange']>>;
      try {
        match = await federation.exchange(req.body.token);
      } catch (e) {
        throttle.failed(req.ip);
        throw e;
      }
      const account = await identities.getIdentity(match.rule.serviceAccount);
      if (account.kind !== 'service-account')
        throw new ModelgateError(
          'FORBIDDEN',
          `trust rule names ${account.name}, which is not a service account`,
        );
      const t = issueToken();
      const expiresAt = new Date(Date.now() + match.rule.tokenMinutes * 60_000).toISOString();
      await identities.addToken(account.name, {
        id: t.id,
        hash: t.hash,
        name: `oidc ${match.rule.issuer} ${String(match.claims.sub ?? '')}`.slice(0, 200),
        expiresAt,
      });
      return reply
        .status(201)
        .send({ serviceAccount: account.name, tokenId: t.id, secret: t.secret, expiresAt });
    },
  );
}
