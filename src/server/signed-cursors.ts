import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ModelgateError } from '../core/errors.js';

const MAC_BYTES = 16;

function mac(key: Buffer, cursor: string): Buffer {
  return createHmac('sha256', key)
    .update(`modelgate-cursor\n${cursor}`)
    .digest()
    .subarray(0, MAC_BYTES);
}

/** `cursor.<HMAC>`: a list position that only a server holding `key` can have written. */
export function signCursor(key: Buffer, cursor: string): string {
  return `${cursor}.${mac(key, cursor).toString('base64url')}`;
}

/** The position inside a signed cursor; INVALID_CURSOR when it was forged or changed. */
export function openCursor(key: Buffer, signed: string): string {
  const dot = signed.lastIndexOf('.');
  const cursor = signed.slice(0, Math.max(dot, 0));
  const given = Buffer.from(signed.slice(dot + 1), 'base64url');
  const want = mac(key, cursor);
  if (dot <= 0 || given.length !== want.length || !timingSafeEqual(given, want))
    throw new ModelgateError(
      'INVALID_CURSOR',
      'invalid cursor: it is not signed by this registry (forged, changed or from another one); pass the nextCursor of the previous page unchanged',
    );
  return cursor;
}

/**
 * Signs every `nextCursor` a list returns and checks every `cursor` a request passes, so the
 * stores only ever see positions this registry handed out. The key is shared by the servers
 * on one database (the `cursor-key` server setting); without one, a key for this process.
 */
export function registerSignedCursors(app: FastifyInstance, key: Buffer = randomBytes(32)): void {
  app.addHook('preValidation', async (request) => {
    const q = request.query as Record<string, unknown> | undefined;
    if (q && typeof q.cursor === 'string') q.cursor = openCursor(key, q.cursor);
  });
  app.addHook('preSerialization', async (_request, _reply, payload: unknown) => {
    if (
      payload !== null &&
      typeof payload === 'object' &&
      typeof (payload as { nextCursor?: unknown }).nextCursor === 'string'
    ) {
      const p = payload as { nextCursor: string };
      return { ...p, nextCursor: signCursor(key, p.nextCursor) };
    }
    return payload;
  });
}
