import { Type } from '@sinclair/typebox';
import {
  DatasetSchema,
  Digest,
  errorResponses,
  LineageEdgeSchema,
  PageOf,
  PageQuery,
  Text,
  Uri,
} from '../schemas.js';
import { type Api, pageRequest, type RouteOpts } from './common.js';

const DatasetParams = Type.Object({ dataset: Type.String({ maxLength: 256 }) });

/** Dataset records and dataset lineage. */
export async function datasetRoutes(app: Api, { deps }: RouteOpts) {
  const { registry } = deps;

  app.post(
    '/datasets',
    {
      config: { authz: { action: 'registerDataset', resource: 'registry' } },
      schema: {
        tags: ['datasets'],
        summary: 'Create a dataset record',
        body: Type.Object(
          {
            name: Type.String({ maxLength: 256 }),
            uri: Uri,
            digest: Type.Optional(Type.Union([Digest, Type.Null()])),
            licence: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Null()])),
            description: Type.Optional(Text(10_000)),
          },
          { additionalProperties: false },
        ),
        response: { 201: DatasetSchema, ...errorResponses(400, 401, 409) },
      },
    },
    async (req, reply) => reply.status(201).send(await registry.createDataset(req.body, req.actor)),
  );

  app.get(
    '/datasets',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['datasets'],
        summary: 'List datasets',
        querystring: Type.Object(
          { prefix: Type.Optional(Type.String({ maxLength: 63 })), ...PageQuery },
          { additionalProperties: false },
        ),
        response: { 200: PageOf(DatasetSchema), ...errorResponses(400, 401) },
      },
    },
    async (req) =>
      registry.listDatasets(
        req.query.prefix ? { namePrefix: req.query.prefix } : {},
        pageRequest(req.query),
      ),
  );

  app.get(
    '/datasets/:dataset',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['datasets'],
        summary: 'Show a dataset',
        params: DatasetParams,
        response: { 200: DatasetSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => registry.getDataset(req.params.dataset),
  );

  app.get(
    '/datasets/:dataset/lineage',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['lineage'],
        summary: 'Versions built from a dataset, and what was built from those (downstream)',
        params: DatasetParams,
        querystring: Type.Object(
          { depth: Type.Optional(Type.String({ pattern: '^[0-9]{1,2}$' })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            start: Type.Unknown(),
            direction: Type.String(),
            depth: Type.Integer(),
            edges: Type.Array(LineageEdgeSchema),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) =>
      registry.lineage(
        { kind: 'dataset', dataset: req.params.dataset },
        'downstream',
        req.query.depth ? Number(req.query.depth) : 3,
      ),
  );
}
