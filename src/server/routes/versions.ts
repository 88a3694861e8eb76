import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import { modelSigningManifest } from '../../core/manifest.js';
import type { LineageTarget } from '../../core/types.js';
import {
  AliasEventSchema,
  AliasSchema,
  Digest,
  errorResponses,
  isoTime,
  LineageEdgeSchema,
  LineageTargetSchema,
  NullableInteger,
  NullableString,
  PageOf,
  PageQuery,
  Tag,
  Tags,
  Text,
  Uri,
  VersionFileSchema,
  VersionSchema,
} from '../schemas.js';
import { type Api, pageRequest, type RouteOpts } from './common.js';

const ModelParams = Type.Object({ model: Type.String({ maxLength: 256 }) });
const VersionParams = Type.Object({
  model: Type.String({ maxLength: 256 }),
  ref: Type.String({ maxLength: 64, description: 'a version number or an alias name' }),
});
const AliasParams = Type.Object({
  model: Type.String({ maxLength: 256 }),
  alias: Type.String({ maxLength: 256 }),
});

// Fields of a version that exist but can never change after registration.
const IMMUTABLE_FIELDS = [
  'files',
  'digest',
  'size',
  'fileCount',
  'sourceUri',
  'author',
  'card',
  'createdAt',
  'number',
  'model',
];

const LineageQuery = Type.Object(
  {
    direction: Type.Optional(Type.Union([Type.Literal('upstream'), Type.Literal('downstream')])),
    depth: Type.Optional(Type.String({ pattern: '^[0-9]{1,2}$' })),
  },
  { additionalProperties: false },
);
const LineageResult = Type.Object({
  start: Type.Unknown(),
  direction: Type.String(),
  depth: Type.Integer(),
  edges: Type.Array(LineageEdgeSchema),
});

/** Version, alias and version-lineage routes. */
export async function versionRoutes(app: Api, { deps }: RouteOpts) {
  const { registry } = deps;

  app.post(
    '/models/:model/versions',
    {
      config: { authz: { action: 'pushVersion', resource: 'model' } },
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        tags: ['versions'],
        summary: 'Register a version from uploaded blobs',
        description:
          'Upload each file with POST /api/v1/blobs first, then register the version with the digests returned. The version digest is computed by the server (OpenSSF model-signing layout).',
        params: ModelParams,
        body: Type.Object(
          {
            files: Type.Array(VersionFileSchema, { minItems: 1, maxItems: 10_000 }),
            sourceUri: Type.Optional(Type.Union([Uri, Type.Null()])),
            card: Type.Optional(
              Type.Object(
                {
                  markdown: Type.Optional(Text(256 * 1024)),
                  fields: Type.Optional(
                    Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
                      maxProperties: 200,
                    }),
                  ),
                },
                { additionalProperties: false },
              ),
            ),
            tags: Type.Optional(Tags),
            description: Type.Optional(Text(10_000)),
            lineage: Type.Optional(
              Type.Array(
                Type.Object(
                  {
                    relation: Type.Optional(Type.String({ maxLength: 64 })),
                    target: LineageTargetSchema,
                  },
                  { additionalProperties: false },
                ),
                { maxItems: 100 },
              ),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: VersionSchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const v = await registry.registerVersion(
        req.params.model,
        {
          files: b.files,
          sourceUri: b.sourceUri ?? null,
          card: { markdown: b.card?.markdown ?? '', fields: b.card?.fields ?? {} },
          tags: b.tags ?? [],
          description: b.description ?? '',
          lineage: (b.lineage ?? []).map((l) => ({
            relation: l.relation ?? '',
            target: l.target as LineageTarget,
          })),
        },
        req.actor,
      );
      // Every new version is scanned: let the worker look for it now rather than at its next poll.
      deps.runner.poke();
      return reply.status(201).send(v);
    },
  );

  app.get(
    '/models/:model/versions',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['versions'],
        summary: 'List versions, newest first',
        params: ModelParams,
        querystring: Type.Object(
          {
            tag: Type.Optional(Tag),
            author: Type.Optional(Type.String({ maxLength: 256 })),
            digest: Type.Optional(Digest),
            ...PageQuery,
          },
          { additionalProperties: false },
        ),
        response: { 200: PageOf(VersionSchema), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const q = req.query;
      return registry.listVersions(
        req.params.model,
        {
          ...(q.tag && { tag: q.tag }),
          ...(q.author && { author: q.author }),
          ...(q.digest && { digest: q.digest }),
        },
        pageRequest(q),
      );
    },
  );

  app.get(
    '/models/:model/versions/:ref',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['versions'],
        summary: 'Show a version (by number or alias) with its files',
        params: VersionParams,
        response: { 200: VersionSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => req.loaded.version ?? registry.getVersion(req.params.model, req.params.ref),
  );

  app.get(
    '/models/:model/versions/:ref/manifest',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['versions'],
        summary: 'The OpenSSF model-signing manifest (in-toto statement body) of a version',
        params: VersionParams,
        response: { 200: Type.Unknown(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      return modelSigningManifest(
        `${v.model}@${v.number}`,
        (v.files ?? []).map((f) => ({ path: f.path, size: f.size, sha256: f.digest.slice(7) })),
      );
    },
  );

  app.patch(
    '/models/:model/versions/:ref',
    {
      config: { authz: { action: 'updateModel', resource: 'model' } },
      schema: {
        tags: ['versions'],
        summary: 'Edit the tags or description of a version',
        description: `Only tags and description are editable. Sending any of ${IMMUTABLE_FIELDS.join(', ')} is refused with 409 VERSION_IMMUTABLE.`,
        params: VersionParams,
        body: Type.Object(
          {
            tags: Type.Optional(Tags),
            description: Type.Optional(Text(10_000)),
            ...Object.fromEntries(IMMUTABLE_FIELDS.map((f) => [f, Type.Optional(Type.Unknown())])),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: VersionSchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req) => {
      const body = req.body as Record<string, unknown> & { tags?: string[]; description?: string };
      const touched = IMMUTABLE_FIELDS.filter((f) => f in body);
      // Resolve first so an unknown model or version is reported as such.
      const number = await registry.resolveRef(req.params.model, req.params.ref);
      if (touched.length > 0) {
        throw new ModelgateError(
          'VERSION_IMMUTABLE',
          `version ${req.params.model}@${number} is immutable: ${touched.join(', ')} cannot change; register a new version instead`,
          { fields: touched },
        );
      }
      return registry.updateVersion(
        req.params.model,
        String(number),
        {
          ...(body.tags && { tags: body.tags }),
          ...(body.description !== undefined && { description: body.description }),
        },
        req.actor,
      );
    },
  );

  app.delete(
    '/models/:model/versions/:ref',
    {
      config: { authz: { action: 'updateModel', resource: 'model' } },
      schema: {
        tags: ['versions'],
        summary: 'Versions cannot be deleted',
        description:
          'Always refused with 409 VERSION_IMMUTABLE for an existing version: the record is kept as evidence.',
        params: VersionParams,
        response: errorResponses(400, 401, 404, 409),
      },
    },
    async (req) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      throw new ModelgateError(
        'VERSION_IMMUTABLE',
        `version ${v.model}@${v.number} is immutable and cannot be deleted`,
        {},
      );
    },
  );

  app.get(
    '/models/:model/versions/:ref/lineage',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['lineage'],
        summary:
          'Lineage of a version: upstream (what went into it) or downstream (what was built from it)',
        params: VersionParams,
        querystring: LineageQuery,
        response: { 200: LineageResult, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const number = await registry.resolveRef(req.params.model, req.params.ref);
      return registry.lineage(
        { kind: 'version', model: req.params.model, version: number },
        req.query.direction ?? 'upstream',
        req.query.depth ? Number(req.query.depth) : 3,
      );
    },
  );

  app.get(
    '/models/:model/aliases',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['aliases'],
        summary: 'List aliases; with ?at=TIME, the aliases as they were at that time',
        params: ModelParams,
        querystring: Type.Object(
          { at: Type.Optional(Type.String({ maxLength: 64 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            at: NullableString,
            items: Type.Array(
              Type.Object({
                model: Type.String(),
                name: Type.String(),
                version: NullableInteger,
                updatedAt: Type.String(),
                updatedBy: Type.String(),
              }),
            ),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const { model } = req.params;
      if (req.query.at === undefined) return { at: null, items: await registry.listAliases(model) };
      const at = isoTime(req.query.at, 'at');
      const state = await registry.aliasesAt(model, at);
      return {
        at,
        items: state.map((s) => ({
          model,
          name: s.alias,
          version: s.version,
          updatedAt: s.event.at,
          updatedBy: s.event.actor,
        })),
      };
    },
  );

  app.get(
    '/models/:model/aliases/:alias',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['aliases'],
        summary: 'Show an alias',
        params: AliasParams,
        response: { 200: AliasSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => registry.getAlias(req.params.model, req.params.alias),
  );

  app.put(
    '/models/:model/aliases/:alias',
    {
      config: { authz: { action: 'setAlias', resource: 'alias' } },
      schema: {
        tags: ['aliases'],
        summary: 'Set or move an alias to a version',
        params: AliasParams,
        body: Type.Object(
          { version: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 }) },
          { additionalProperties: false },
        ),
        response: { 200: AliasSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) =>
      registry.setAlias(req.params.model, req.params.alias, String(req.body.version), req.actor),
  );

  app.delete(
    '/models/:model/aliases/:alias',
    {
      config: { authz: { action: 'setAlias', resource: 'alias' } },
      schema: {
        tags: ['aliases'],
        summary: 'Delete an alias (kept in the history)',
        params: AliasParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      await registry.deleteAlias(req.params.model, req.params.alias, req.actor);
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/models/:model/alias-history',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['aliases'],
        summary: 'Every change of the aliases of a model, newest first',
        params: ModelParams,
        querystring: Type.Object(
          { alias: Type.Optional(Type.String({ maxLength: 256 })), ...PageQuery },
          { additionalProperties: false },
        ),
        response: { 200: PageOf(AliasEventSchema), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => registry.aliasHistory(req.params.model, req.query.alias, pageRequest(req.query)),
  );
}
