import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import { parseDigest } from '../../core/manifest.js';
import { Digest, errorResponses } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

/** Upload and download of content-addressed blobs (the bytes of version files). */
export async function blobRoutes(app: Api, { deps }: RouteOpts) {
  await app.register(async (scope) => {
    const raw = scope.withTypeProvider<TypeBoxTypeProvider>();
    // This scope takes raw bytes only: the body is streamed to the blob store, never buffered.
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));
    raw.post(
      '/blobs',
      {
        config: { authz: { action: 'uploadBlob', resource: 'registry' } },
        schema: {
          tags: ['blobs'],
          summary: 'Upload a blob (application/octet-stream), streamed and hashed',
          description:
            'Returns the SHA-256 digest and size. With ?digest=sha256:..., the upload is refused with 409 BLOB_MISMATCH if the bytes hash differently. 201 when stored, 200 when the blob already existed.',
          querystring: Type.Object(
            { digest: Type.Optional(Digest) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              digest: Type.String(),
              size: Type.Integer(),
              created: Type.Boolean(),
            }),
            201: Type.Object({
              digest: Type.String(),
              size: Type.Integer(),
              created: Type.Boolean(),
            }),
            ...errorResponses(400, 401, 409, 413, 415),
          },
        },
      },
      async (req, reply) => {
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > deps.maxUploadBytes) {
          // Refuse before reading a byte; closing the connection drops the unread rest.
          reply.header('connection', 'close');
          throw new ModelgateError(
            'PAYLOAD_TOO_LARGE',
            `upload of ${declared} bytes exceeds the limit of ${deps.maxUploadBytes} bytes (set MODELGATE_MAX_UPLOAD_BYTES to raise it)`,
            { limit: deps.maxUploadBytes },
          );
        }
        const r = await deps.blobs.put(req.raw, {
          maxBytes: deps.maxUploadBytes,
          ...(req.query.digest && { expectedDigest: req.query.digest }),
        });
        return reply.status(r.created ? 201 : 200).send(r);
      },
    );
  });

  app.get(
    '/blobs/:digest',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['blobs'],
        summary: 'Download a blob; the stream fails if the stored bytes no longer match the digest',
        params: Type.Object({ digest: Type.String({ maxLength: 80 }) }),
        response: errorResponses(400, 401, 404),
      },
    },
    async (req, reply) => {
      parseDigest(req.params.digest);
      const size = await deps.blobs.size(req.params.digest);
      const stream = await deps.blobs.read(req.params.digest, { verify: true });
      reply.header('content-type', 'application/octet-stream');
      reply.header(
        'digest',
        `sha-256=${Buffer.from(req.params.digest.slice(7), 'hex').toString('base64')}`,
      );
      if (size !== undefined) reply.header('content-length', size);
      return reply.send(stream as never);
    },
  );
}
