import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import { SEVERITIES } from '../../core/findings.js';
import { IMPORT_FORMATS, MAX_IMPORT_BYTES } from '../../evaluators/imports/import-format.js';
import { parseImport } from '../../evaluators/imports/parse-import.js';
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

// Counts by severity say nothing of a scan that failed: the evaluations that produced (or
// failed to produce) them are counted beside, so no client mistakes a failed scan for a clean one.
const EvaluationCounts = Type.Object(
  {
    total: Type.Integer(),
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    pending: Type.Integer(),
  },
  {
    description: 'the evaluations of the version by status; findings come only from succeeded ones',
  },
);

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
      items: runner.evaluators().map((e) => ({
        id: e.id,
        version: e.version,
        description: e.description,
      })),
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
      // An evaluator that checks its settings does so now: a run that would be refused (an
      // endpoint not allowed, a missing secret) is refused before it is queued.
      const config = evaluator.validate
        ? evaluator.validate(req.body.config ?? {})
        : (req.body.config ?? {});
      const e = await evaluations.enqueue(
        { model: v.model, version: v.number },
        { id: evaluator.id, version: evaluator.version },
        config as Record<string, unknown>,
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
          200: Type.Object({
            summary: Summary,
            evaluations: EvaluationCounts,
            items: Type.Array(FindingSchema),
          }),
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
      const evals = await evaluations.listForVersion(v.model, v.number);
      const count = (...st: string[]) => evals.filter((e) => st.includes(e.status)).length;
      return {
        summary: summary as Record<(typeof SEVERITIES)[number], number>,
        evaluations: {
          total: evals.length,
          succeeded: count('succeeded'),
          failed: count('failed'),
          pending: count('queued', 'running'),
        },
        items,
      };
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

  app.get(
    '/evaluations/:evaluation/attempts',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['evaluations'],
        summary:
          "The units of work an evaluation saved as it went (a red-team run's attempts: probe, generation, each detector's verdict, and the transcript of every successful attack), in key order",
        params: Type.Object({ evaluation: Type.String({ maxLength: 64 }) }),
        querystring: Type.Object(
          {
            hits: Type.Optional(
              Type.Union([Type.Literal('true'), Type.Literal('false')], {
                description: 'true: only successful attacks',
              }),
            ),
            after: Type.Optional(
              Type.String({ maxLength: 256, description: 'key to start after' }),
            ),
            limit: Type.Optional(
              Type.String({
                pattern: '^[1-9][0-9]{0,3}$',
                description: 'at most 1000; default 200',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                key: Type.String(),
                data: Type.Record(Type.String(), Type.Unknown()),
                createdAt: Type.String(),
              }),
            ),
            next: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const id = req.params.evaluation;
      if (!/^ev_[0-9a-f]{16}$/.test(id) || !(await evaluations.get(id)))
        throw new ModelgateError('EVALUATION_NOT_FOUND', `no evaluation ${id}`, {});
      const limit = Math.min(Number(req.query.limit ?? 200), 1000);
      const onlyHits = req.query.hits === 'true';
      const items: { key: string; data: Record<string, unknown>; createdAt: string }[] = [];
      let after = req.query.after;
      let next: string | null = null;
      // Filtering by hits happens here, so a page may need several reads.
      for (;;) {
        const page = await evaluations.checkpoints(id, {
          limit,
          ...(after !== undefined && { after }),
        });
        for (const r of page) {
          after = r.key;
          // The run's own bookkeeping (its canaries) is not an attempt.
          if (r.key.startsWith('run:')) continue;
          if (onlyHits && r.data.hit !== true) continue;
          items.push(r);
          if (items.length === limit) break;
        }
        if (items.length === limit) {
          next = after ?? null;
          break;
        }
        if (page.length < limit) break;
      }
      return { items, next };
    },
  );

  app.post(
    '/models/:model/versions/:ref/evaluation-imports',
    {
      config: { authz: { action: 'runEvaluation', resource: 'version' } },
      bodyLimit: MAX_IMPORT_BYTES * 2 + 64 * 1024,
      schema: {
        tags: ['evaluations'],
        summary:
          "Import another tool's result (a garak report.jsonl, a promptfoo results JSON, a SARIF 2.1.0 log, or Modelgate's evaluation result JSON) as a finished evaluation of the version, attributed to the importing identity and to the tool the file names",
        params: VersionParams,
        body: Type.Object(
          {
            format: Type.Union(IMPORT_FORMATS.map((f) => Type.Literal(f))),
            content: Type.String({ minLength: 1, maxLength: MAX_IMPORT_BYTES }),
            filename: Type.Optional(Type.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: EvaluationSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const imported = parseImport(req.body.format, req.body.content);
      const e = await evaluations.importResult(
        { model: v.model, version: v.number },
        { id: evaluatorIdOf(imported.tool.name), version: imported.tool.version.slice(0, 64) },
        {
          imported: {
            format: req.body.format,
            tool: imported.tool.name.slice(0, 128),
            sha256: createHash('sha256').update(req.body.content).digest('hex'),
            ...(req.body.filename !== undefined && { filename: req.body.filename }),
            ...(imported.ranAt !== undefined && { ranAt: imported.ranAt }),
          },
        },
        imported.findings,
        imported.metrics,
        req.actor,
      );
      return reply.status(201).send(e);
    },
  );
}

/**
 * The evaluator id of an imported result: `import/` and the tool's name in lower case and
 * dashes. Never a bare name: a file naming its tool `artifact-scan` must not pass for this
 * server's own scan (gates filter evaluations by evaluator).
 */
function evaluatorIdOf(tool: string): string {
  const slug = tool
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+|-+$/g, '')
    .slice(0, 56);
  return `import/${slug || 'unknown'}`;
}
