import { Type } from '@sinclair/typebox';
import type { Api, RouteOpts } from './common.js';

/** Liveness and readiness probes; public, no token. */
export async function healthRoutes(app: Api, { deps }: RouteOpts) {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: { tags: ['health'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        response: {
          200: Type.Object({
            status: Type.String(),
            database: Type.String(),
            blobs: Type.String(),
          }),
          503: Type.Object({
            status: Type.String(),
            database: Type.String(),
            blobs: Type.String(),
          }),
        },
      },
    },
    async (_req, reply) => {
      const database = await deps.store.ping().then(
        () => 'ok',
        () => 'unreachable',
      );
      const blobs = (await deps.blobs.ready()) ? 'ok' : 'not writable';
      const ok = database === 'ok' && blobs === 'ok';
      return reply
        .status(ok ? 200 : 503)
        .send({ status: ok ? 'ready' : 'not ready', database, blobs });
    },
  );
}
