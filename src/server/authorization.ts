import type { FastifyRequest } from 'fastify';
import { ModelgateError } from '../core/errors.js';
import type { Model, Version } from '../core/types.js';
import type { Authorizer, AuthzRequest, Principal, Resource } from '../policy/authz/authorizer.js';
import type { Action } from '../policy/authz/schema.js';
import type { RegistryService } from '../registry/registry-service.js';

/**
 * What a route does, for authorization: the action, and which resource it acts on, loaded
 * from the route's path parameters before the check. Every authenticated route declares one
 * (the server refuses to start otherwise).
 */
export interface RouteAuthz {
  action: Action;
  resource: 'registry' | 'model' | 'version' | 'alias';
  /** The context attributes the action declares (approvePromotion: versionAuthor). */
  context?: (request: FastifyRequest) => Promise<Record<string, string>>;
}

const modelOf = (m: Model) => ({ name: m.name, team: m.ownerTeam, tier: m.riskTier });

/** The records a request's resource was built from, kept so the handler need not read them again. */
export interface Loaded {
  model?: Model;
  version?: Version;
}

/** Loads the resource a request acts on from its path parameters (and the records behind it). */
export async function loadResource(
  registry: RegistryService,
  kind: RouteAuthz['resource'],
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
  const resource = await loadResource(
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
