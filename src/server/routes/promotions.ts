import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { ModelgateError } from '../../core/errors.js';
import { refuseCostly } from '../../policy/gates/cost.js';
import {
  compilePolicy,
  POLICY_LIMITS,
  parsePolicyDocument,
} from '../../policy/gates/policy-document.js';
import {
  AliasName,
  Digest,
  errorResponses,
  isoTime,
  Name,
  NullableInteger,
  NullableString,
  Text,
  Time,
  VersionRef,
} from '../schemas.js';
import { type Api, type RouteOpts, reviewerOf } from './common.js';

const Id = Type.String({ pattern: '^[1-9][0-9]{0,9}$' });
const Limit = Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' }));

const RuleResult = Type.Object({
  name: Type.String(),
  passed: Type.Boolean(),
  action: Type.String(),
  reason: Type.String(),
  message: NullableString,
  error: Type.Optional(Type.String()),
  waiverId: Type.Optional(Type.String()),
});
const DecisionSchema = Type.Object({
  id: Type.Integer(),
  model: Type.String(),
  version: Type.Integer(),
  digest: Type.String(),
  alias: Type.String(),
  kind: Type.String(),
  requestId: NullableInteger,
  policies: Type.Array(
    Type.Object({
      name: Type.String(),
      version: Type.Integer(),
      digest: Type.String(),
      outcome: Type.String(),
      results: Type.Array(RuleResult),
    }),
  ),
  engine: Type.String(),
  factsDigest: Type.String(),
  outcome: Type.String(),
  waivers: Type.Array(Type.String()),
  reasons: Type.Array(Type.String()),
  moved: Type.Boolean(),
  decidedBy: Type.String(),
  at: Type.String(),
  facts: Type.Optional(Type.Unknown()),
});
const RequestSchema = Type.Object({
  id: Type.Integer(),
  model: Type.String(),
  version: Type.Integer(),
  alias: Type.String(),
  requestedBy: Type.String(),
  requestedAt: Type.String(),
  state: Type.String(),
  closedAt: NullableString,
  decisionId: NullableInteger,
  reviews: Type.Array(
    Type.Object({
      reviewer: Type.String(),
      roles: Type.Array(Type.String()),
      teams: Type.Array(Type.String()),
      decision: Type.String(),
      comment: Type.String(),
      at: Type.String(),
      withdrawn: Type.Optional(
        Type.Object({
          by: Type.String(),
          at: Type.String(),
          comment: Type.String(),
          override: Type.Boolean(),
        }),
      ),
    }),
  ),
});
const ResultSchema = Type.Object({
  status: Type.String(),
  request: Type.Union([RequestSchema, Type.Null()]),
  decision: Type.Union([DecisionSchema, Type.Null()]),
});
const WaiverSchema = Type.Object({
  id: Type.Integer(),
  model: Type.String(),
  version: NullableInteger,
  findingRule: NullableString,
  rule: NullableString,
  justification: Type.String(),
  approvedBy: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.String(),
  revokedAt: NullableString,
  revokedBy: NullableString,
  state: Type.String(),
});
const WaiverBody = Type.Object(
  {
    findingRule: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    rule: Type.Optional(Type.String({ minLength: 3, maxLength: 127 })),
    justification: Type.String({ minLength: 1, maxLength: 4096 }),
    expiresAt: Time,
  },
  { additionalProperties: false },
);
const AliasParams = Type.Object({ model: Name, alias: AliasName });

/** Promotions through gates, reviews, decisions, waivers, verification, what-if, re-checks. */
export async function promotionRoutes(app: Api, opts: RouteOpts) {
  const { gates, registry } = opts.deps;

  app.post(
    '/models/:model/aliases/:alias/promotions',
    {
      config: { authz: { action: 'requestPromotion', resource: 'alias' } },
      schema: {
        tags: ['gates'],
        summary:
          'Promote a version to a protected alias: every bound gate policy is evaluated and the decision recorded; 201 when the alias moved (in the same transaction), 202 when the request waits for approvals, 409 GATE_DENIED with each failed rule otherwise',
        params: AliasParams,
        body: Type.Object({ version: VersionRef }, { additionalProperties: false }),
        response: {
          200: ResultSchema,
          201: ResultSchema,
          202: ResultSchema,
          ...errorResponses(400, 401, 404, 409),
        },
      },
    },
    async (req, reply) => {
      const v =
        req.loaded.version ?? (await registry.getVersion(req.params.model, req.body.version));
      const r = await gates.promote(
        { model: req.params.model, version: v.number, alias: req.params.alias },
        reviewerOf(req),
      );
      if (r.status === 'denied')
        throw new ModelgateError(
          'GATE_DENIED',
          `the gate denied ${req.params.model}@${v.number} for ${req.params.alias} (decision ${r.decision?.id}): ${r.decision?.reasons.join('; ')}`,
          { result: r },
        );
      return reply
        .status(r.status === 'promoted' ? 201 : r.status === 'pending' ? 202 : 200)
        .send(r);
    },
  );

  app.get(
    '/promotion-requests',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary: 'Promotion requests, newest first (filter by state and model)',
        querystring: Type.Object(
          {
            state: Type.Optional(
              Type.Union(
                ['pending', 'promoted', 'denied', 'rejected', 'superseded'].map((s) =>
                  Type.Literal(s),
                ),
              ),
            ),
            model: Type.Optional(Name),
            limit: Limit,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(RequestSchema) }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => ({
      items: await gates.listRequests({
        ...(req.query.state && { state: req.query.state as 'pending' }),
        ...(req.query.model && { model: req.query.model }),
        limit: Number(req.query.limit ?? 100),
      }),
    }),
  );

  app.get(
    '/promotion-requests/:request',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary: 'One promotion request with its reviews',
        params: Type.Object({ request: Id }),
        response: { 200: RequestSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const r = await gates.getRequest(Number(req.params.request));
      if (!r)
        throw new ModelgateError('REQUEST_NOT_FOUND', `no promotion request ${req.params.request}`);
      return r;
    },
  );

  /** The promotion request a review path names, if it is one of that model's alias. */
  const requestOfPath = async (req: FastifyRequest) => {
    const p = req.params as { request: string; model: string; alias: string };
    const r = await gates.getRequest(Number(p.request));
    if (!r || r.model !== p.model || r.alias !== p.alias)
      throw new ModelgateError(
        'REQUEST_NOT_FOUND',
        `no promotion request ${p.request} for ${p.model}@${p.alias}`,
      );
    return r;
  };

  app.post(
    '/models/:model/aliases/:alias/promotion-requests/:request/reviews',
    {
      config: {
        authz: {
          action: 'approvePromotion',
          resource: 'alias',
          // The rule `no-self-approval` compares the version's author with the reviewer.
          context: async (req) => {
            const r = await requestOfPath(req);
            const v = await registry.getVersion(r.model, String(r.version));
            return { versionAuthor: v.author };
          },
        },
      },
      schema: {
        tags: ['gates'],
        summary:
          "Approve or reject a pending promotion request, with a comment. The version's author, the requester and its evaluators cannot approve (403 SEPARATION_OF_DUTIES). An approval re-evaluates the gate: the alias moves when it now passes",
        params: Type.Object({ model: Name, alias: AliasName, request: Id }),
        body: Type.Object(
          {
            decision: Type.Union([Type.Literal('approve'), Type.Literal('reject')]),
            comment: Type.String({ minLength: 1, maxLength: 4096 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: ResultSchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req) =>
      gates.review(
        { model: req.params.model, alias: req.params.alias, request: Number(req.params.request) },
        req.body.decision,
        req.body.comment,
        reviewerOf(req),
      ),
  );

  app.post(
    '/models/:model/aliases/:alias/promotion-requests/:request/rejection-withdrawals',
    {
      config: {
        authz: {
          action: 'withdrawRejection',
          resource: 'alias',
          context: async (req) => {
            const r = await requestOfPath(req);
            const rejection = r.reviews.find((x) => x.decision === 'reject');
            return { reviewer: rejection?.reviewer ?? '' };
          },
        },
      },
      schema: {
        tags: ['gates'],
        summary:
          "Withdraw a rejection. A rejection stands for the version and alias (every later request for them carries it, and the shipped policy denies) until the approver who gave it withdraws it; an admin may override another approver's rejection with override: true and a justification. Logged",
        params: Type.Object({ model: Name, alias: AliasName, request: Id }),
        body: Type.Object(
          {
            comment: Type.String({ minLength: 1, maxLength: 4096 }),
            override: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: RequestSchema, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (req) =>
      gates.withdrawRejection(
        { model: req.params.model, alias: req.params.alias, request: Number(req.params.request) },
        req.body.comment,
        reviewerOf(req),
        req.body.override === true,
      ),
  );

  app.get(
    '/decisions/:decision',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary:
          'One gate decision: policy versions and digests, engine, the facts it saw and their digest, every rule result, the outcome, the waivers it relied on',
        params: Type.Object({ decision: Id }),
        response: { 200: DecisionSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const d = await gates.getDecision(Number(req.params.decision));
      if (!d) throw new ModelgateError('DECISION_NOT_FOUND', `no decision ${req.params.decision}`);
      return d;
    },
  );

  app.get(
    '/models/:model/decisions',
    {
      config: { authz: { action: 'read', resource: 'model' } },
      schema: {
        tags: ['gates'],
        summary: "A model's gate decisions, newest first (without their facts)",
        params: Type.Object({ model: Name }),
        querystring: Type.Object(
          { alias: Type.Optional(AliasName), limit: Limit },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(DecisionSchema) }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => ({
      items: await gates.listDecisions({
        model: req.params.model,
        ...(req.query.alias && { alias: req.query.alias }),
        limit: Number(req.query.limit ?? 100),
      }),
    }),
  );

  const createWaiver = async (
    req: FastifyRequest,
    model: string,
    version: number | null,
    body: { findingRule?: string; rule?: string; justification: string; expiresAt: string },
  ) =>
    gates.createWaiver(
      {
        model,
        version,
        findingRule: body.findingRule ?? null,
        rule: body.rule ?? null,
        justification: body.justification,
        expiresAt: isoTime(body.expiresAt, 'expiresAt'),
      },
      req.actor,
    );

  app.post(
    '/models/:model/versions/:ref/waivers',
    {
      config: { authz: { action: 'waiveFinding', resource: 'version' } },
      schema: {
        tags: ['gates'],
        summary:
          'Waive, for one version until it expires, the findings of one rule (findingRule) or the failure of one gate rule (rule: policy/validation), with a justification',
        params: Type.Object({ model: Name, ref: VersionRef }),
        body: WaiverBody,
        response: { 201: WaiverSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      return reply.status(201).send(await createWaiver(req, req.params.model, v.number, req.body));
    },
  );

  app.post(
    '/models/:model/waivers',
    {
      config: { authz: { action: 'waiveFinding', resource: 'model' } },
      schema: {
        tags: ['gates'],
        summary:
          'Waive a finding rule or a gate rule for every version of a model, until it expires',
        params: Type.Object({ model: Name }),
        body: WaiverBody,
        response: { 201: WaiverSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) =>
      reply.status(201).send(await createWaiver(req, req.params.model, null, req.body)),
  );

  app.post(
    '/models/:model/waivers/:waiver/revoke',
    {
      config: { authz: { action: 'waiveFinding', resource: 'model' } },
      schema: {
        tags: ['gates'],
        summary:
          'Revoke a waiver: it stops counting at once (decisions that used it keep saying so)',
        params: Type.Object({ model: Name, waiver: Id }),
        response: { 200: WaiverSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => gates.revokeWaiver(req.params.model, Number(req.params.waiver), req.actor),
  );

  app.get(
    '/waivers',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary: 'Waivers in force (all=true: expired and revoked too), optionally of one model',
        querystring: Type.Object(
          {
            model: Type.Optional(Name),
            all: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(WaiverSchema) }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => ({
      items: await gates.listWaivers({
        ...(req.query.model && { model: req.query.model }),
        includeInactive: req.query.all === 'true',
      }),
    }),
  );

  app.get(
    '/verify',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary:
          'For serving runtimes: is the version with this digest (the version digest or its layout digest, which also pins the file paths) the one currently approved under this alias? Answers with the decision that moved it (approved is false for another digest, a plain alias, or a holder a re-check flagged)',
        querystring: Type.Object(
          { model: Name, alias: AliasName, digest: Digest },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            approved: Type.Boolean(),
            model: Type.String(),
            alias: Type.String(),
            version: NullableInteger,
            digest: NullableString,
            layoutDigest: NullableString,
            decisionId: NullableInteger,
            flaggedBy: NullableInteger,
            reason: Type.String(),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => gates.verify(req.query.model, req.query.alias, req.query.digest),
  );

  app.post(
    '/gate-policies/what-if',
    {
      config: { authz: { action: 'publishPolicy', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary:
          'Evaluate a draft gate policy against every version currently under a bound alias (allVersions: every version of every bound model) without changing anything; lists what would fail and why',
        body: Type.Object(
          {
            document: Type.String({ minLength: 1, maxLength: POLICY_LIMITS.documentBytes }),
            allVersions: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            policy: Type.Object({ name: Type.String(), digest: Type.String() }),
            evaluated: Type.Integer(),
            passing: Type.Integer(),
            failing: Type.Array(
              Type.Object({
                model: Type.String(),
                version: Type.Integer(),
                digest: Type.String(),
                alias: Type.String(),
                current: Type.Boolean(),
                outcome: Type.String(),
                failed: Type.Array(
                  Type.Object({ rule: Type.String(), action: Type.String(), message: Text(65536) }),
                ),
              }),
            ),
          }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      const doc = parsePolicyDocument(req.body.document);
      // What-if runs the draft over the whole portfolio: a draft publishing would refuse for
      // its cost is refused here too.
      refuseCostly(compilePolicy(doc).document);
      return gates.whatIf(doc, req.body.allVersions ?? false);
    },
  );

  app.post(
    '/gate-rechecks',
    {
      config: { authz: { action: 'publishPolicy', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary:
          'Re-check the holder of every protected alias now (the server also does so periodically and after each publish): flags holders that no longer pass, clears flags, demotes where the policy says so',
        response: {
          200: Type.Object({
            checked: Type.Integer(),
            flagged: Type.Array(Type.Unknown()),
            demoted: Type.Array(Type.Unknown()),
            cleared: Type.Array(Type.Unknown()),
          }),
          ...errorResponses(401),
        },
      },
    },
    async () => opts.deps.rechecker.run(),
  );
}
