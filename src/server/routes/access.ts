import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import type { Authorizer } from '../../policy/authz/authorizer.js';
import { BUILTIN_ROLES } from '../../policy/authz/builtin-policies.js';
import { POLICY_ID_PATTERN } from '../../policy/authz/policy-set.js';
import { errorResponses, Name } from '../schemas.js';
import type { Api } from './common.js';
import {
  assertKnownRoles,
  forgetTokensOf,
  type IdentityRouteOpts,
  IdentitySchema,
  Role,
} from './identities.js';

const TeamSchema = Type.Object({ name: Type.String(), members: Type.Array(Type.String()) });
const PolicySchema = Type.Object({
  id: Type.String(),
  text: Type.String(),
  digest: Type.String(),
  createdAt: Type.String(),
  createdBy: Type.String(),
});
const PolicyParams = Type.Object({ policy: Type.String({ pattern: POLICY_ID_PATTERN }) });

/** Teams, roles, and the Cedar policies operators add through the API. */
export async function accessRoutes(app: Api, opts: IdentityRouteOpts) {
  const { identities, policies, tokenCache } = opts;
  // A policy change that leaves no admin able to manage identities would lock the registry out
  // (even from undoing the change): refused, like removing the last admin role.
  const keepsAnAdmin = async (next: Authorizer): Promise<string | undefined> => {
    const now = new Date().toISOString();
    const admins = (await identities.listIdentities()).filter(
      (i) => i.roles.includes('admin') && (i.expiresAt === null || i.expiresAt > now),
    );
    const able = admins.some(
      (i) =>
        next.decide({
          principal: { kind: i.kind, name: i.name, roles: i.roles, teams: i.teams },
          action: 'manageIdentities',
          resource: { kind: 'registry' },
        }).allowed,
    );
    return able
      ? undefined
      : 'with this change no admin could manage identities or policies any more (LAST_ADMIN): the registry would be locked out';
  };
  const manage = { authz: { action: 'manageIdentities', resource: 'registry' } } as const;

  app.get(
    '/roles',
    {
      config: { self: true },
      schema: {
        tags: ['access'],
        summary: 'The roles the policies in force name, with the policies that name each',
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                name: Type.String(),
                builtIn: Type.Boolean(),
                description: Type.String(),
                policies: Type.Array(Type.String()),
              }),
            ),
          }),
          ...errorResponses(401),
        },
      },
    },
    async () => {
      const authorizer = policies.current();
      return {
        items: authorizer.roles().map((name) => ({
          name,
          builtIn: name in BUILTIN_ROLES,
          description: BUILTIN_ROLES[name] ?? 'named by an operator policy',
          policies: Object.entries(authorizer.policies)
            .filter(([, text]) => text.includes(`Role::"${name}"`))
            .map(([id]) => id),
        })),
      };
    },
  );

  for (const [method, verb] of [
    ['put', 'Grant'],
    ['delete', 'Revoke'],
  ] as const)
    app[method](
      '/identities/:identity/roles/:role',
      {
        config: manage,
        schema: {
          tags: ['access'],
          summary: `${verb} one role${verb === 'Revoke' ? ' (the last admin cannot lose admin)' : ''}`,
          params: Type.Object({ identity: Name, role: Role }),
          response: { 200: IdentitySchema, ...errorResponses(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const { identity, role } = req.params;
        if (method === 'put') assertKnownRoles(policies, [role]);
        const change = method === 'put' ? { addRoles: [role] } : { removeRoles: [role] };
        const updated = await identities.changeGrants(identity, change, req.actor);
        await forgetTokensOf(identities, tokenCache, identity);
        return updated;
      },
    );

  app.get(
    '/teams',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: 'Teams and their members (a team exists while it has members)',
        response: { 200: Type.Object({ items: Type.Array(TeamSchema) }), ...errorResponses(401) },
      },
    },
    async () => ({ items: await identities.listTeams() }),
  );

  app.get(
    '/teams/:team',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: "A team's members",
        params: Type.Object({ team: Name }),
        response: { 200: TeamSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const team = (await identities.listTeams()).find((t) => t.name === req.params.team);
      if (!team)
        throw new ModelgateError(
          'TEAM_NOT_FOUND',
          `no team ${req.params.team}: a team exists while it has members`,
        );
      return team;
    },
  );

  for (const [method, verb] of [
    ['put', 'Add'],
    ['delete', 'Remove'],
  ] as const)
    app[method](
      '/teams/:team/members/:identity',
      {
        config: manage,
        schema: {
          tags: ['access'],
          summary: `${verb} a member of a team`,
          params: Type.Object({ team: Name, identity: Name }),
          response: { 200: IdentitySchema, ...errorResponses(400, 401, 404) },
        },
      },
      async (req) => {
        const { identity, team } = req.params;
        const change = method === 'put' ? { addTeams: [team] } : { removeTeams: [team] };
        const updated = await identities.changeGrants(identity, change, req.actor);
        await forgetTokensOf(identities, tokenCache, identity);
        return updated;
      },
    );

  app.get(
    '/authz/policies',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary:
          'The Cedar policies in force: built-in, from files, and added through the API (with who added them)',
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.String(),
                source: Type.Union([Type.Literal('base'), Type.Literal('api')]),
                text: Type.String(),
                createdBy: Type.Union([Type.String(), Type.Null()]),
              }),
            ),
          }),
          ...errorResponses(401),
        },
      },
    },
    async () => {
      const stored = await policies.list();
      const api = new Map(stored.map((p) => [p.id, p]));
      type Item = { id: string; source: 'base' | 'api'; text: string; createdBy: string | null };
      const base: Item[] = Object.entries(policies.current().policies)
        .filter(([id]) => !api.has(id))
        .map(([id, text]) => ({ id, source: 'base', text, createdBy: null }));
      const added: Item[] = stored.map((p) => ({
        id: p.id,
        source: 'api',
        text: p.text,
        createdBy: p.createdBy,
      }));
      return { items: [...base, ...added] };
    },
  );

  app.put(
    '/authz/policies/:policy',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary:
          'Add or replace an operator Cedar policy; it is validated with every policy in force first and takes effect only if all validate',
        params: PolicyParams,
        body: Type.Object(
          { text: Type.String({ minLength: 1, maxLength: 65_536 }) },
          { additionalProperties: false },
        ),
        response: { 200: PolicySchema, ...errorResponses(400, 401) },
      },
    },
    async (req) => policies.put(req.params.policy, req.body.text, req.actor, keepsAnAdmin),
  );

  app.delete(
    '/authz/policies/:policy',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: 'Remove an operator policy added through the API',
        params: PolicyParams,
        response: { 204: Type.Null(), ...errorResponses(401, 404) },
      },
    },
    async (req, reply) => {
      await policies.remove(req.params.policy, req.actor, keepsAnAdmin);
      return reply.status(204).send(null);
    },
  );
}
