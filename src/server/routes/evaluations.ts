import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import { SEVERITIES } from '../../core/findings.js';
import { errorResponses } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

const VersionParams = Type.Object({
  model: Type.String({ maxLength: 256 }),
  ref: Type.String({ maxLength: 64, description: 'a version number or an alias name' }),
});

const EvaluationSchema = Type.Object({
  id: Type.String(),
  model: Type.String(),
  version: Type.Integer(),
  evaluator: Type.Object({ id: Type.String(), version: Type.String() }),
  config: Type.Record(Type.String(), Type.Unknown()),
  status: Type.String(),
  requestedBy: Type.String(),
  credentialId: Type.String(),
  createdAt: Type.String(),
  startedAt: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
  finishedAt: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
  progress: Type.Number(),
  metrics: Type.Record(Type.String(), Type.Number()),
  error: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
  attempts: Type.Integer(),
});

const FindingSchema = Type.Object({
  id: Type.Integer(),
  evaluationId: Type.String(),
  ruleId: Type.String(),
  severity: Type.String(),
  title: Type.String(),
  location: Type.Object({
    file: Type.String(),
    member: Type.Optional(Type.String()),
    offset: Type.Optional(Type.Integer()),
  }),
  evidence: Type.Record(Type.String(), Type.Unknown()),
  references: Type.Array(Type.String()),
  status: Type.String(),
  createdAt: Type.String(),
});

const Summary = Type.Object(Object.fromEntries(SEVERITIES.map((s) => [s, Type.Integer()])));

/** Evaluations of versions and the findings they wrote back. */
export async function evaluationRoutes(app: Api, { deps }: RouteOpts) {
  const { registry, evaluations, runner } = deps;

  app.get(
    '/evaluators',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['evaluations'],
        summary: 'The evaluators this server can run',
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.String(),
                version: Type.String(),
                description: Type.String(),
              }),
            ),
          }),
          ...errorResponses(401),
        },
      },
    },
    async () => ({
      items: ['artifact-scan'].flatMap((id) => {
        const e = runner.evaluator(id);
        return e ? [{ id: e.id, version: e.version, description: e.description }] : [];
      }),
    }),
  );

  app.post(
    '/models/:model/versions/:ref/evaluations',
    {
      config: { authz: { action: 'runEvaluation', resource: 'version' } },
      schema: {
        tags: ['evaluations'],
        summary: 'Queue an evaluation of a version; a worker in the server runs it',
        params: VersionParams,
        body: Type.Object(
          {
            evaluator: Type.String({ maxLength: 64 }),
            config: Type.Optional(
              Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), { maxProperties: 50 }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 202: EvaluationSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const evaluator = runner.evaluator(req.body.evaluator);
      if (!evaluator) {
        throw new ModelgateError(
          'EVALUATOR_NOT_FOUND',
          `no evaluator ${req.body.evaluator}; GET /api/v1/evaluators lists them`,
          {
            evaluator: req.body.evaluator,
          },
        );
      }
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const e = await evaluations.enqueue(
        { model: v.model, version: v.number },
        { id: evaluator.id, version: evaluator.version },
        req.body.config ?? {},
        req.actor,
      );
      runner.poke();
      return reply.status(202).send(e);
    },
  );

  app.get(
    '/models/:model/versions/:ref/evaluations',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evaluations'],
        summary: 'Evaluations of a version, newest first',
        params: VersionParams,
        response: {
          200: Type.Object({ items: Type.Array(EvaluationSchema) }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      return { items: await evaluations.listForVersion(v.model, v.number) };
    },
  );

  app.get(
    '/models/:model/versions/:ref/findings',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evaluations'],
        summary: 'Findings on a version from every evaluation, with counts by severity',
        params: VersionParams,
        response: {
          200: Type.Object({ summary: Summary, items: Type.Array(FindingSchema) }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const items = await evaluations.findings({ model: v.model, version: v.number });
      const summary = Object.fromEntries(
        SEVERITIES.map((s) => [s, items.filter((f) => f.severity === s).length]),
      );
      return { summary: summary as Record<(typeof SEVERITIES)[number], number>, items };
    },
  );

  app.get(
    '/evaluations/:evaluation',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['evaluations'],
        summary: 'One evaluation with its findings',
        params: Type.Object({ evaluation: Type.String({ maxLength: 64 }) }),
        response: {
          200: Type.Composite([
            EvaluationSchema,
            Type.Object({ findings: Type.Array(FindingSchema) }),
          ]),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      if (!/^ev_[0-9a-f]{16}$/.test(req.params.evaluation)) {
        throw new ModelgateError(
          'EVALUATION_NOT_FOUND',
          `no evaluation ${req.params.evaluation}`,
          {},
        );
      }
      const e = await evaluations.get(req.params.evaluation);
      if (!e)
        throw new ModelgateError(
          'EVALUATION_NOT_FOUND',
          `no evaluation ${req.params.evaluation}`,
          {},
        );
      return { ...e, findings: await evaluations.findings({ evaluationId: e.id }) };
    },
  );
}
