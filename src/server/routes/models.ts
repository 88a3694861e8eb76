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
import { type Api, pageRequest, type RouteOpts } from './common.js';

const ModelParams = Type.Object({ model: Type.String({ maxLength: 256 }) });

/** Model routes: create, list, show, edit. */
export async function modelRoutes(app: Api, { deps }: RouteOpts) {
  const { registry } = deps;

  app.post(
    '/models',
    {
      config: { authz: { action: 'createModel', resource: 'registry' } },
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
      config: { authz: { action: 'updateModel', resource: 'model' } },
      schema: {
        tags: ['models'],
        summary: 'Edit a model (owner team, risk tier, description, intended use, tags)',
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
    async (req) => registry.updateModel(req.params.model, req.body, req.actor),
  );
}
