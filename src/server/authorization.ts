import type { FastifyRequest } from 'fastify';
import { ModelgateError } from '../core/errors.js';
import type { Model, Version } from '../core/types.js';
import type { Authorizer, AuthzRequest, Principal, Resource } from '../policy/authz/authorizer.js';
import type { PolicySet } from '../policy/authz/policy-set.js';
import type { Action } from '../policy/authz/schema.js';
import { DEFAULT_TEAM, DEFAULT_TIER, type RegistryService } from '../registry/registry-service.js';

/**
 * What a route does, for authorization: the action, and which resource it acts on, loaded
 * from the route's path parameters before the check. Every authenticated route declares one
 * (the server refuses to start otherwise).
 */
export interface RouteAuthz {
  action: Action;
  /** `newModel`: the model a create request describes (name, owner team and tier from the body). */
  resource: 'registry' | 'model' | 'version' | 'alias' | 'newModel';
  /** The context attributes the action declares (approvePromotion: versionAuthor). */
  context?: (request: FastifyRequest) => Promise<Record<string, string | boolean>>;
}

const modelOf = (m: Model) => ({ name: m.name, team: m.ownerTeam, tier: m.riskTier });

/** The records a request's resource was built from, kept so the handler need not read them again. */
export interface Loaded {
  model?: Model;
  version?: Version;
}

/**
 * The model a create request would make, as authorization sees it: rules can then say who may
 * create a model for which team (contributors only for their own). The defaults are the ones
 * the registry applies.
 */
function newModelResource(body: unknown): Resource {
  const b = (body ?? {}) as { name?: unknown; ownerTeam?: unknown; riskTier?: unknown };
  return {
    kind: 'model',
    name: typeof b.name === 'string' ? b.name : '',
    team: typeof b.ownerTeam === 'string' ? b.ownerTeam : DEFAULT_TEAM,
    tier: typeof b.riskTier === 'string' ? b.riskTier : DEFAULT_TIER,
  };
}

/** Loads the resource a request acts on from its path parameters (and the records behind it). */
export async function loadResource(
  registry: RegistryService,
  kind: Exclude<RouteAuthz['resource'], 'newModel'>,
  params: Record<string, string>,
  loaded: Loaded = {},
): Promise<Resource> {
  if (kind === 'registry') return { kind: 'registry' };
  loaded.model = await registry.getModel(params.model ?? '');
  const model = modelOf(loaded.model);
  if (kind === 'model') return { kind: 'model', ...model };
  if (kind === 'alias') {
    const name = params.alias ?? '';
    return { kind: 'alias', model, name, protected: registry.protectedAliases.has(name) };
  }
  const v = await registry.getVersion(model.name, params.ref ?? '');
  loaded.version = v;
  return { kind: 'version', model, number: v.number, author: v.author };
}

/** Authorizes a request as its route declares; throws FORBIDDEN with the deciding rules. */
export async function authorizeRequest(
  authorizer: Authorizer,
  registry: RegistryService,
  request: FastifyRequest,
  principal: Principal,
  route: RouteAuthz,
): Promise<void> {
  const resource =
    route.resource === 'newModel'
      ? newModelResource(request.body)
      : await loadResource(
          registry,
          route.resource,
          request.params as Record<string, string>,
          request.loaded,
        );
  const req: AuthzRequest = {
    principal,
    action: route.action,
    resource,
    ...(route.context && { context: await route.context(request) }),
  };
  const d = authorizer.decide(req);
  if (!d.allowed)
    throw new ModelgateError('FORBIDDEN', d.explanation, {
      action: route.action,
      policies: d.policies.map((p) => p.id),
      ...(d.errors.length > 0 && { errors: d.errors }),
    });
}

/**
 * Authorizes a second action inside a handler, one that only the body reveals (a model edit
 * that changes its risk tier): the token's scopes must include it and the policies must allow
 * it, exactly as for a route's own action. It is decided against the policy set the request was
 * authorized with (the preHandler refreshed it) and does no I/O, so a store may call it inside
 * an open transaction: on SQLite that transaction holds the only connection, and a policy
 * reload there would wait for it forever.
 */
export function authorizeAction(
  policies: PolicySet,
  request: FastifyRequest,
  action: Action,
  resource: Resource,
  context?: Record<string, string | boolean>,
): void {
  const scopes = request.tokenScopes;
  if (scopes && !scopes.includes(action))
    throw new ModelgateError(
      'FORBIDDEN',
      `deny: token ${request.actor.credentialId} is limited to ${scopes.join(', ') || 'no actions'}; this change needs ${action}`,
      { action, scopes },
    );
  const d = policies.current().decide({
    principal: request.principal,
    action,
    resource,
    ...(context && { context }),
  });
  if (!d.allowed)
    throw new ModelgateError('FORBIDDEN', d.explanation, {
      action,
      policies: d.policies.map((p) => p.id),
      ...(d.errors.length > 0 && { errors: d.errors }),
    });
}
