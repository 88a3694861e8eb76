import { Type } from '@sinclair/typebox';
import { ModelgateError } from '../../core/errors.js';
import { absenceWarnings } from '../../policy/gates/absence-lint.js';
import { refuseCostly } from '../../policy/gates/cost.js';
import { evaluatePolicy } from '../../policy/gates/evaluate.js';
import type { GatePolicyStore, PublishedPolicy } from '../../policy/gates/gate-policy-store.js';
import {
  type CompiledPolicy,
  compilePolicy,
  POLICY_LIMITS,
  parsePolicyDocument,
} from '../../policy/gates/policy-document.js';
import { AliasName, errorResponses, Name } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

const Published = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  digest: Type.String(),
  document: Type.Unknown(),
  source: Type.String(),
  publishedBy: Type.String(),
  publishedAt: Type.String(),
});
// What publishing answers: the stored policy and, when a rule passes on missing evidence
// (absence-lint.ts), warnings with their positions; it is published all the same.
const PublishedWithWarnings = Type.Composite([
  Published,
  Type.Object({
    warnings: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String(),
          message: Type.String(),
          position: Type.Optional(
            Type.Object({ offset: Type.Integer(), line: Type.Integer(), column: Type.Integer() }),
          ),
        }),
      ),
    ),
  }),
]);
const read = { authz: { action: 'read', resource: 'registry' } } as const;

export interface GatePolicyRouteOpts extends RouteOpts {
  gatePolicies: GatePolicyStore;
}

const RuleResultSchema = Type.Object({
  name: Type.String(),
  passed: Type.Boolean(),
  action: Type.String(),
  reason: Type.String(),
  message: Type.Union([Type.String(), Type.Null()]),
  error: Type.Optional(Type.String()),
});

/** Gate policies: publish (type-checked against the facts schema first), list, read. */
export async function gatePolicyRoutes(app: Api, opts: GatePolicyRouteOpts) {
  const { gatePolicies } = opts;
  // Compiling a policy takes milliseconds; published versions never change, so by digest.
  const compiled = new Map<string, CompiledPolicy>();
  const compiledOf = (p: PublishedPolicy) => {
    let c = compiled.get(p.digest);
    if (!c) {
      c = compilePolicy(p.document);
      if (compiled.size >= 256) compiled.clear();
      compiled.set(p.digest, c);
    }
    return c;
  };
  const versionsOf = async (name: string): Promise<PublishedPolicy[]> => {
    const all = await gatePolicies.versions(name);
    if (all.length === 0)
      throw new ModelgateError('GATE_POLICY_NOT_FOUND', `no gate policy named ${name}`);
    return all;
  };

  app.post(
    '/gate-policies',
    {
      config: { authz: { action: 'publishPolicy', resource: 'registry' } },
      schema: {
        tags: ['gates'],
        summary:
          'Publish a gate policy (YAML or JSON text): type-checked against the facts schema, given an immutable version and digest, and logged; the same text again returns the existing version',
        body: Type.Object(
          { document: Type.String({ minLength: 1, maxLength: POLICY_LIMITS.documentBytes }) },
          { additionalProperties: false },
        ),
        response: {
          200: PublishedWithWarnings,
          201: PublishedWithWarnings,
          ...errorResponses(400, 401),
        },
      },
    },
    async (req, reply) => {
      const compiled = compilePolicy(parsePolicyDocument(req.body.document));
      refuseCostly(compiled.document);
      const { created, ...p } = await gatePolicies.publish(
        {
          name: compiled.name,
          digest: compiled.digest,
          document: compiled.document,
          source: req.body.document,
        },
        req.actor,
      );
      // A new policy may change what the current holders of its aliases pass: re-check them.
      if (created)
        opts.deps.rechecker
          .run()
          .catch((err: unknown) => req.log.error({ err }, 'gate re-check failed'));
      const warnings = absenceWarnings(compiled.document);
      return reply
        .status(created ? 201 : 200)
        .send({ ...p, ...(warnings.length > 0 && { warnings }) });
    },
  );

  app.get(
    '/gate-policies',
    {
      config: read,
      schema: {
        tags: ['gates'],
        summary: 'The latest version of every gate policy',
        response: { 200: Type.Object({ items: Type.Array(Published) }), ...errorResponses(401) },
      },
    },
    async () => ({ items: await gatePolicies.list() }),
  );

  app.get(
    '/gate-policies/:policy',
    {
      config: read,
      schema: {
        tags: ['gates'],
        summary: 'Every version of one gate policy, oldest first',
        params: Type.Object({ policy: Name }),
        response: {
          200: Type.Object({ items: Type.Array(Published) }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => ({ items: await versionsOf(req.params.policy) }),
  );

  app.get(
    '/gate-policies/:policy/versions/:version',
    {
      config: read,
      schema: {
        tags: ['gates'],
        summary: 'One version of a gate policy',
        params: Type.Object({
          policy: Name,
          version: Type.String({ pattern: '^[1-9][0-9]{0,8}$' }),
        }),
        response: { 200: Published, ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const v = (await versionsOf(req.params.policy)).find(
        (p) => p.version === Number(req.params.version),
      );
      if (!v)
        throw new ModelgateError(
          'GATE_POLICY_NOT_FOUND',
          `gate policy ${req.params.policy} has no version ${req.params.version}`,
        );
      return v;
    },
  );

  app.get(
    '/models/:model/versions/:ref/gate',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['gates'],
        summary:
          'What a gate policy says about a version now, for an alias (a dry run: nothing is recorded, the alias does not move); the latest version of the policy unless one is named',
        params: Type.Object({ model: Name, ref: Type.String({ maxLength: 63 }) }),
        querystring: Type.Object(
          {
            policy: Name,
            policyVersion: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}$' })),
            alias: AliasName,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            policy: Type.Object({
              name: Type.String(),
              version: Type.Integer(),
              digest: Type.String(),
            }),
            engine: Type.String(),
            factsDigest: Type.String(),
            facts: Type.Unknown(),
            results: Type.Array(RuleResultSchema),
            outcome: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const all = await versionsOf(req.query.policy);
      const wanted = req.query.policyVersion;
      const p = wanted ? all.find((x) => x.version === Number(wanted)) : all[all.length - 1];
      if (!p)
        throw new ModelgateError(
          'GATE_POLICY_NOT_FOUND',
          `gate policy ${req.query.policy} has no version ${wanted}`,
        );
      const version =
        req.loaded.version ??
        (await opts.deps.registry.getVersion(req.params.model, req.params.ref));
      const facts = await opts.deps.gates.factsFor(
        { model: req.params.model, version: version.number, alias: req.query.alias },
        req.actor.identity,
      );
      // Off the event loop, within a budget: any reader of the version can ask for this.
      const compiled = compiledOf(p);
      const r = opts.deps.gateSandbox
        ? await opts.deps.gateSandbox.evaluate(compiled, facts)
        : evaluatePolicy(compiled, facts);
      return { ...r, policy: { name: p.name, version: p.version, digest: p.digest }, facts };
    },
  );
}
