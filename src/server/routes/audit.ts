import { Type } from '@sinclair/typebox';
import type { AuditLog, AuditStore, StoredEvent } from '../../audit/audit-log.js';
import { modelSubjects, subjects } from '../../audit/subjects.js';
import { ModelgateError } from '../../core/errors.js';
import { AliasName, errorResponses, isoTime, Name } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

const read = { authz: { action: 'readAudit', resource: 'registry' } } as const;
const Index = Type.String({ pattern: '^(0|[1-9][0-9]{0,15})$' });
const Time = Type.String({ format: 'date-time' });
const b64 = (b: Buffer) => b.toString('base64');

const EventSchema = Type.Object({
  index: Type.Integer(),
  time: Type.String(),
  actor: Type.String(),
  credential: Type.String(),
  action: Type.String(),
  subject: Type.String(),
  digest: Type.String(),
  content: Type.Unknown(),
  leaf: Type.String({ description: 'the exact canonical JSON hashed into the tree' }),
});
const ProofSchema = Type.Object({
  index: Type.Integer(),
  size: Type.Integer(),
  leafHash: Type.String(),
  proof: Type.Array(Type.String(), { description: 'RFC 6962 inclusion proof, base64 hashes' }),
});

const toEvent = (e: StoredEvent) => ({
  index: e.seq,
  time: e.time,
  actor: e.actor,
  credential: e.credential,
  action: e.action,
  subject: e.subject,
  digest: e.digest,
  content: JSON.parse(e.content) as unknown,
  leaf: e.leaf,
});

export interface AuditRouteOpts extends RouteOpts {
  audit: AuditLog;
  auditStore: AuditStore;
}

/** The audit log: key, checkpoints, events, proofs, witness cosignatures, history queries. */
export async function auditRoutes(app: Api, opts: AuditRouteOpts) {
  const { audit, auditStore } = opts;

  /** Each event with an inclusion proof against the checkpoint just signed. */
  const withProofs = async (events: StoredEvent[]) => {
    const latest = await audit.signLatest();
    const size = latest?.size ?? 0;
    return {
      // The checkpoint the proofs were made for: signing again here could return a larger one.
      checkpoint: latest ? await audit.withCosignatures(latest) : await audit.checkpoint(),
      items: await Promise.all(
        events.map(async (e) => {
          if (e.seq >= size) return { event: toEvent(e), proof: null };
          const p = await audit.inclusionProof(e.seq, size);
          return {
            event: toEvent(e),
            proof: { index: e.seq, size, leafHash: b64(p.leafHash), proof: p.proof.map(b64) },
          };
        }),
      ),
    };
  };
  const Proved = Type.Object({
    checkpoint: Type.String({ description: 'the signed checkpoint the proofs lead to' }),
    items: Type.Array(
      Type.Object({ event: EventSchema, proof: Type.Union([ProofSchema, Type.Null()]) }),
    ),
  });

  app.get(
    '/audit/key',
    {
      config: { public: true },
      schema: {
        tags: ['audit'],
        summary: "The log's verifier key (C2SP vkey): checkpoints are checked with it",
        security: [],
        response: { 200: Type.String() },
      },
    },
    async (_req, reply) => reply.type('text/plain; charset=utf-8').send(`${audit.vkey}\n`),
  );

  app.get(
    '/audit/checkpoint',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary:
          'The latest checkpoint (C2SP tlog-checkpoint) as a signed note, with witness cosignatures',
        response: { 200: Type.String(), ...errorResponses(401) },
      },
    },
    async (_req, reply) => reply.type('text/plain; charset=utf-8').send(await audit.checkpoint()),
  );

  app.get(
    '/audit/checkpoints',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary: 'Stored checkpoints from a size on, oldest first',
        querystring: Type.Object(
          {
            from: Type.Optional(Index),
            limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(Type.Object({ size: Type.Integer(), note: Type.String() })),
          }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      await audit.signLatest();
      const rows = await auditStore.checkpoints({
        fromSize: Number(req.query.from ?? 0),
        limit: Math.min(Number(req.query.limit ?? 100), 500),
      });
      const items = [];
      for (const c of rows) items.push({ size: c.size, note: await audit.withCosignatures(c) });
      return { items };
    },
  );

  app.get(
    '/audit/events',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary: 'Events by index: from (default 0), at most limit (default 100, up to 1000)',
        querystring: Type.Object(
          {
            from: Type.Optional(Index),
            limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ size: Type.Integer(), items: Type.Array(EventSchema) }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      // Events recorded by committed changes join the log first.
      await audit.signLatest();
      const from = Number(req.query.from ?? 0);
      const limit = Math.min(Number(req.query.limit ?? 100), 1000);
      const size = await auditStore.size();
      return { size, items: (await auditStore.events(from, from + limit)).map(toEvent) };
    },
  );

  app.get(
    '/audit/events/:index/proof',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary:
          'An inclusion proof for one event in the tree of a size (default: the latest checkpoint)',
        params: Type.Object({ index: Index }),
        querystring: Type.Object({ size: Type.Optional(Index) }, { additionalProperties: false }),
        response: { 200: ProofSchema, ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const index = Number(req.params.index);
      const size =
        req.query.size !== undefined
          ? Number(req.query.size)
          : ((await audit.signLatest())?.size ?? 0);
      const p = await audit.inclusionProof(index, size);
      return { index, size, leafHash: b64(p.leafHash), proof: p.proof.map(b64) };
    },
  );

  app.get(
    '/audit/consistency',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary: 'A consistency proof between two tree sizes (RFC 6962)',
        querystring: Type.Object({ from: Index, to: Index }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            from: Type.Integer(),
            to: Type.Integer(),
            proof: Type.Array(Type.String()),
          }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      const from = Number(req.query.from);
      const to = Number(req.query.to);
      return { from, to, proof: (await audit.consistencyProof(from, to)).map(b64) };
    },
  );

  app.post(
    '/audit/cosignatures',
    {
      config: { authz: { action: 'witnessLog', resource: 'registry' } },
      schema: {
        tags: ['audit'],
        summary:
          'A witness hands back a checkpoint with its cosignature (C2SP cosignature/v1); stored when the witness key is configured',
        body: Type.Object(
          { note: Type.String({ minLength: 1, maxLength: 16_384 }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ accepted: Type.Array(Type.String()) }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => ({ accepted: await audit.addCosignatures(req.body.note) }),
  );

  app.get(
    '/audit/history',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary:
          'Every event about a model (itself, its versions, aliases and evaluations) between two times, each with an inclusion proof',
        querystring: Type.Object(
          {
            model: Name,
            from: Type.Optional(Time),
            to: Type.Optional(Time),
            limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Proved, ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const q = req.query;
      await audit.signLatest();
      const events = await auditStore.eventsAbout(modelSubjects(q.model), {
        ...(q.from && { from: isoTime(q.from, 'from') }),
        ...(q.to && { to: isoTime(q.to, 'to') }),
        limit: Math.min(Number(q.limit ?? 500), 1000),
      });
      return withProofs(events);
    },
  );

  app.get(
    '/audit/alias',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary:
          "An alias's state at a time, from the log: the last change at or before it, with its inclusion proof",
        querystring: Type.Object(
          { model: Name, alias: AliasName, at: Time },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            model: Type.String(),
            alias: Type.String(),
            at: Type.String(),
            version: Type.Union([Type.Integer(), Type.Null()]),
            ...Proved.properties,
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const { model, alias } = req.query;
      const at = isoTime(req.query.at, 'at');
      await audit.signLatest();
      const events = await auditStore.eventsAbout(
        { equals: [subjects.alias(model, alias)], prefixes: [] },
        { to: at, limit: 1, newestFirst: true },
      );
      const last = events[0];
      if (!last)
        throw new ModelgateError(
          'ALIAS_NOT_FOUND',
          `the log holds no change of alias ${alias} of ${model} at or before ${at}`,
        );
      const version = (JSON.parse(last.content) as { version: number | null }).version;
      return { model, alias, at, version, ...(await withProofs([last])) };
    },
  );
}
