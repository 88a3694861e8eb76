import { Type } from '@sinclair/typebox';
import {
  errorResponses,
  ModelSchema,
  PageOf,
  PageQuery,
  RiskTier,
  Tag,
  Tags,
  Text,
} from '../schemas.js';
import { type Api, pageRequest, type RouteOpts, reviewerOf } from './common.js';

const TIER_RANK: Record<string, number> = { minimal: 0, limited: 1, high: 2, unacceptable: 3 };

const ModelParams = Type.Object({ model: Type.String({ maxLength: 256 }) });

/** Model routes: create, list, show, edit. */
export async function modelRoutes(app: Api, { deps }: RouteOpts) {
  const { registry, gates } = deps;

  app.post(
    '/models',
    {
      config: { authz: { action: 'createModel', resource: 'newModel' } },
      schema: {
        tags: ['models'],
        summary: 'Create a model',
        body: Type.Object(
          {
            name: Type.String({ maxLength: 256, description: 'see docs/names.md' }),
            ownerTeam: Type.Optional(Type.String({ maxLength: 256 })),
            riskTier: Type.Optional(RiskTier),
            description: Type.Optional(Text(10_000)),
            intendedUse: Type.Optional(Text(10_000)),
            tags: Type.Optional(Tags),
          },
          { additionalProperties: false },
        ),
        response: { 201: ModelSchema, ...errorResponses(400, 401, 409) },
      },
    },
    async (req, reply) => {
      const m = await registry.createModel(req.body, req.actor);
      return reply.status(201).send(m);
    },
  );

  app.get(
    '/models',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['models'],
        summary: 'List models',
        querystring: Type.Object(
          {
            ownerTeam: Type.Optional(Type.String({ maxLength: 63 })),
            riskTier: Type.Optional(RiskTier),
            tag: Type.Optional(Tag),
            prefix: Type.Optional(Type.String({ maxLength: 63 })),
            ...PageQuery,
          },
          { additionalProperties: false },
        ),
        response: { 200: PageOf(ModelSchema), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const q = req.query;
      return registry.listModels(
        {
          ...(q.ownerTeam && { ownerTeam: q.ownerTeam }),
          ...(q.riskTier && { riskTier: q.riskTier }),
          ...(q.tag && { tag: q.tag }),
          ...(q.prefix && { namePrefix: q.prefix }),
        },
        pageRequest(q),
      );
    },
  );

  app.get(
    '/models/:model',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['models'],
        summary: 'Show a model',
        params: ModelParams,
        response: { 200: ModelSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => req.loaded.model ?? registry.getModel(req.params.model),
  );

  app.patch(
    '/models/:model',
    {
      // What the edit needs depends on what it changes (updateModel, classifyModel or both):
      // the handler authorizes each, with the model loaded here.
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['models'],
        summary:
          "Edit a model (owner team, risk tier, description, intended use, tags). Changing the risk tier, the owner team or a tag a gate policy binds on or reads is a classification: it needs classifyModel (approvers; lowering a high or unacceptable tier needs the risk team), is refused to anyone who authored, evaluated or asked to promote a version of the model (403 SEPARATION_OF_DUTIES), and re-evaluates the model's open promotion requests and re-checks its protected aliases",
        params: ModelParams,
        body: Type.Object(
          {
            ownerTeam: Type.Optional(Type.String({ maxLength: 256 })),
            riskTier: Type.Optional(RiskTier),
            description: Type.Optional(Text(10_000)),
            intendedUse: Type.Optional(Text(10_000)),
            tags: Type.Optional(Tags),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: ModelSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      if (req.body.ownerTeam !== undefined) registry.checkTeamName(req.body.ownerTeam);
      if (req.body.tags !== undefined) registry.checkTags(req.body.tags);
      const patch = { ...req.body, ...(req.body.tags && { tags: [...new Set(req.body.tags)] }) };
      const done = await gates.editModel(req.params.model, patch, reviewerOf(req), (c) => {
        const m = c.model;
        const resource = {
          kind: 'model',
          name: m.name,
          team: m.ownerTeam,
          tier: m.riskTier,
        } as const;
        if (c.plain) req.authorize('updateModel', resource);
        if (c.governed.length === 0) return;
        const tierTo = req.body.riskTier ?? m.riskTier;
        req.authorize('classifyModel', resource, {
          tierTo,
          lowersTier: (TIER_RANK[tierTo] ?? 0) < (TIER_RANK[m.riskTier] ?? 0),
          teamTo: req.body.ownerTeam ?? m.ownerTeam,
        });
      });
      return done.model;
    },
  );
}
