import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { PageRequest } from '../../registry/registry-store.js';
import type { Reviewer } from '../../workflow/gate-store.js';
import type { AppDeps } from '../app.js';

/** A Fastify instance typed with TypeBox, as route plugins receive it. */
export type Api = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Options every route plugin receives. */
export interface RouteOpts {
  deps: AppDeps;
}

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

/** Turns `limit`/`cursor` query strings into a page request (limit capped at MAX_PAGE). */
export function pageRequest(q: { limit?: string; cursor?: string }): PageRequest {
  const limit = Math.min(q.limit ? Number(q.limit) : DEFAULT_PAGE, MAX_PAGE);
  return q.cursor ? { limit, cursor: q.cursor } : { limit };
}

/** The caller as a gate sees it: the actor, and the roles and teams reviews record. */
export const reviewerOf = (req: FastifyRequest): Reviewer => ({
  actor: req.actor,
  roles: req.principal.roles,
  teams: req.principal.teams,
});
