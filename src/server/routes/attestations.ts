import { createPublicKey } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { errorResponses, Name, VersionRef } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

/** The attestation key and the signed statements about a version. */
export async function attestationRoutes(app: Api, opts: RouteOpts) {
  const { attestations, attestationKey } = opts.deps;
  const publicKey = createPublicKey(attestationKey)
    .export({ type: 'spki', format: 'pem' })
    .toString();

  app.get(
    '/attestations/key',
    {
      config: { public: true },
      schema: {
        tags: ['evidence'],
        summary:
          "The server's attestation public key (Ed25519, PEM) and its key id: what verifies the DSSE envelopes it signs",
        response: {
          200: Type.Object({
            keyid: Type.String(),
            algorithm: Type.String(),
            publicKey: Type.String(),
          }),
        },
      },
    },
    async () => ({ keyid: opts.deps.attestor.keyid, algorithm: 'ed25519', publicKey }),
  );

  app.get(
    '/models/:model/versions/:ref/attestations',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          'Every signed in-toto statement about a version (evaluations as test-result, gate decisions as SLSA verification summaries, approvals and waivers), each a DSSE envelope, oldest first',
        params: Type.Object({ model: Name, ref: VersionRef }),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.Integer(),
                model: Type.String(),
                version: Type.Integer(),
                kind: Type.String(),
                ref: Type.String(),
                predicateType: Type.String(),
                envelope: Type.Object({
                  payload: Type.String(),
                  payloadType: Type.String(),
                  signatures: Type.Array(
                    Type.Object({ keyid: Type.Optional(Type.String()), sig: Type.String() }),
                  ),
                }),
                envelopeDigest: Type.String(),
                createdAt: Type.String(),
              }),
            ),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const v =
        req.loaded.version ??
        (await opts.deps.registry.getVersion(req.params.model, req.params.ref));
      return { items: await attestations.forVersion(req.params.model, v.number) };
    },
  );
}
