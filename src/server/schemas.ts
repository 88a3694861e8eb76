import { type TSchema, Type } from '@sinclair/typebox';
import { ModelgateError } from '../core/errors.js';
import { DIGEST_PATTERN } from '../core/manifest.js';
import { ALIAS_PATTERN, NAME_PATTERN, TAG_PATTERN } from '../core/names.js';
import { RISK_TIERS } from '../core/types.js';

// Request and response schemas. Strings carry limits so no field can be used to push
// unbounded data into the database; objects refuse unknown fields.
const strict = { additionalProperties: false } as const;

// `type: [T, 'null']` rather than anyOf: the response serializer handles a type list
// directly, while anyOf makes it validate each value at run time to pick a branch.
export const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });
export const NullableInteger = Type.Unsafe<number | null>({ type: ['integer', 'null'] });

export const Name = Type.String({ pattern: NAME_PATTERN, maxLength: 63 });
export const AliasName = Type.String({ pattern: ALIAS_PATTERN, maxLength: 63 });
export const Digest = Type.String({ pattern: DIGEST_PATTERN });
export const Tag = Type.String({ pattern: TAG_PATTERN, maxLength: 128 });
export const Tags = Type.Array(Tag, { maxItems: 64 });
export const RiskTier = Type.Union(RISK_TIERS.map((t) => Type.Literal(t)));
export const Text = (max: number) => Type.String({ maxLength: max });
export const Uri = Type.String({ minLength: 1, maxLength: 2048 });
export const Time = Type.String({ format: 'date-time' });
// Version refs: a number (1, 2, ...) or an alias name.
export const VersionRef = Type.String({
  pattern: `^(?:[1-9][0-9]{0,9}|${ALIAS_PATTERN.slice(1, -1)})$`,
});

export const ErrorBody = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const ModelSchema = Type.Object({
  name: Type.String(),
  ownerTeam: Type.String(),
  riskTier: RiskTier,
  description: Type.String(),
  intendedUse: Type.String(),
  tags: Type.Array(Type.String()),
  createdAt: Type.String(),
  createdBy: Type.String(),
  updatedAt: Type.String(),
});

export const VersionFileSchema = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 1024 }),
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    digest: Digest,
  },
  strict,
);

export const ModelCardSchema = Type.Object({
  markdown: Type.String(),
  fields: Type.Record(Type.String(), Type.Unknown()),
});

export const VersionSchema = Type.Object({
  model: Type.String(),
  number: Type.Integer(),
  digest: Type.String({
    description: 'the OpenSSF model-signing subject digest: file bytes in path order',
  }),
  layoutDigest: Type.String({
    description: 'SHA-256 of the sha256sum manifest: every path bound to its file digest',
  }),
  size: Type.Integer(),
  fileCount: Type.Integer(),
  sourceUri: NullableString,
  author: Type.String(),
  card: ModelCardSchema,
  tags: Type.Array(Type.String()),
  description: Type.String(),
  createdAt: Type.String(),
  files: Type.Optional(
    Type.Array(Type.Object({ path: Type.String(), size: Type.Integer(), digest: Type.String() })),
  ),
});

export const AliasSchema = Type.Object({
  model: Type.String(),
  name: Type.String(),
  version: Type.Integer(),
  updatedAt: Type.String(),
  updatedBy: Type.String(),
});

export const AliasEventSchema = Type.Object({
  id: Type.Integer(),
  model: Type.String(),
  alias: Type.String(),
  fromVersion: NullableInteger,
  toVersion: NullableInteger,
  actor: Type.String(),
  credentialId: Type.String(),
  at: Type.String(),
});

export const DatasetSchema = Type.Object({
  name: Type.String(),
  uri: Type.String(),
  digest: NullableString,
  licence: NullableString,
  description: Type.String(),
  createdAt: Type.String(),
  createdBy: Type.String(),
});

export const LineageTargetSchema = Type.Union([
  Type.Object({ kind: Type.Literal('dataset'), dataset: Name }, strict),
  Type.Object(
    {
      kind: Type.Literal('version'),
      model: Name,
      version: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 }),
    },
    strict,
  ),
  Type.Object({ kind: Type.Literal('run'), uri: Uri }, strict),
  Type.Object({ kind: Type.Literal('code'), uri: Uri }, strict),
]);

export const LineageEdgeSchema = Type.Object({
  from: Type.Object({ model: Type.String(), version: Type.Integer() }),
  relation: Type.String(),
  target: Type.Unknown(),
  depth: Type.Integer(),
});

/** A page of items with the next cursor. */
export const PageOf = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: NullableString });

export const PageQuery = {
  limit: Type.Optional(
    Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: '1-500, default 50' }),
  ),
  cursor: Type.Optional(
    Type.String({ maxLength: 512, description: 'nextCursor of the previous page' }),
  ),
};

/** Standard error responses added to every route's OpenAPI entry. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, ErrorBody]));

/**
 * An RFC 3339 time from input as an ISO string; throws VALIDATION_FAILED for one the format
 * check lets through but a Date cannot hold (a leap second, 23:59:60).
 */
export function isoTime(value: string, field: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new ModelgateError(
      'VALIDATION_FAILED',
      `${field} ${JSON.stringify(value)} is not a time this server can use`,
    );
  return new Date(t).toISOString();
}
