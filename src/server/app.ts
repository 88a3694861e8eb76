import type { KeyObject } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { AuditLog, AuditStore } from '../audit/audit-log.js';
import { ERROR_CATALOG, type ErrorCode, ModelgateError } from '../core/errors.js';
import { assertJsonDepth, MAX_JSON_DEPTH } from '../core/json-depth.js';
import type { Actor } from '../core/types.js';
import type { EvaluationRunner } from '../evaluators/evaluation-runner.js';
import type { EvaluationStore } from '../evaluators/evaluation-store.js';
import type { AttestationStore } from '../evidence/attestation-store.js';
import type { Attestor } from '../evidence/attestor.js';
import type { ControlCatalog } from '../evidence/compliance.js';
import type { EvaluatorKey } from '../evidence/evaluator-keys.js';
import { AuthThrottle } from '../identity/auth-throttle.js';
import type { IdentityStore } from '../identity/identity-store.js';
import type { OidcFederation } from '../identity/oidc.js';
import { TokenCache } from '../identity/token-cache.js';
import { hashToken, looksLikeToken } from '../identity/tokens.js';
import { Authorizer, type Principal, type Resource } from '../policy/authz/authorizer.js';
import { BUILTIN_POLICIES } from '../policy/authz/builtin-policies.js';
import { PolicySet } from '../policy/authz/policy-set.js';
import type { Action } from '../policy/authz/schema.js';
import type { GatePolicyStore } from '../policy/gates/gate-policy-store.js';
import type { GateSandbox } from '../policy/gates/sandbox.js';
import type { BlobStore } from '../registry/blob-store.js';
import type { RegistryService } from '../registry/registry-service.js';
import type { RegistryStore } from '../registry/registry-store.js';
import type { GateStore } from '../workflow/gate-store.js';
import type { GateRechecker } from '../workflow/rechecker.js';
import {
  authorizeAction,
  authorizeRequest,
  type Loaded,
  type RouteAuthz,
} from './authorization.js';
import { accessRoutes } from './routes/access.js';
import { attestationRoutes } from './routes/attestations.js';
import { auditRoutes } from './routes/audit.js';
import { blobRoutes } from './routes/blobs.js';
import { datasetRoutes } from './routes/datasets.js';
import { evaluationRoutes } from './routes/evaluations.js';
import { gatePolicyRoutes } from './routes/gate-policies.js';
import { healthRoutes } from './routes/health.js';
import { explainRoute, identityRoutes } from './routes/identities.js';
import { loginRoutes } from './routes/login.js';
import { modelRoutes } from './routes/models.js';
import { promotionRoutes } from './routes/promotions.js';
import { versionRoutes } from './routes/versions.js';
import { errorResponses } from './schemas.js';
import { registerSignedCursors } from './signed-cursors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the auth hook on every non-public route. */
    actor: Actor;
    /** The caller as authorization sees it: kind, name, roles and teams. */
    principal: Principal;
    /** Actions the presented token is limited to; undefined: no limit beyond the identity's. */
    tokenScopes: string[] | undefined;
    /** When the presented credential stops working (token or service account); undefined: never. */
    tokenExpiresAt: string | undefined;
    /** The model and version authorization loaded for this request (handlers reuse them). */
    loaded: Loaded;
    /**
     * Authorizes one more action the body reveals (scopes and policies as for a route's), at
     * once and without I/O: safe inside a store's transaction.
     */
    authorize: (
      action: Action,
      resource: Resource,
      context?: Record<string, string | boolean>,
    ) => void;
  }
  interface FastifyContextConfig {
    /** Routes that need no token: health, readiness and the API description. */
    public?: boolean;
    /** What the route does, for authorization; required on every route that is not public. */
    authz?: RouteAuthz;
    /**
     * The route acts on the caller's own identity or tokens (whoami, own tokens): any
     * authenticated caller may use it, and the handler checks ownership.
     */
    self?: boolean;
  }
}

/** Everything the HTTP layer needs, wired by the composition root. */
export interface AppDeps {
  registry: RegistryService;
  store: RegistryStore;
  evaluations: EvaluationStore;
  runner: EvaluationRunner;
  blobs: BlobStore;
  maxUploadBytes: number;
  /** Evidence exports one identity may make per hour (default 60). */
  exportsPerHour?: number;
  /** Where gate dry runs are evaluated: a worker thread within a time and memory budget. */
  gateSandbox?: GateSandbox;
  identities: IdentityStore;
  /** OIDC trust (workloads and SSO), when trust rules are configured (MODELGATE_OIDC_CONFIG). */
  federation?: OidcFederation;
  /** Failed authentications per address per minute before answers become 429 (default 20). */
  authFailureLimit?: number;
  /**
   * How long a token lookup is cached (default and at most 1 s): revocations and grants changed
   * by another process apply within it.
   */
  tokenCacheMs?: number;
  /**
   * Reverse proxies (IPs or CIDRs, MODELGATE_TRUSTED_PROXIES) whose X-Forwarded-For names the
   * client; from any other peer the header is ignored. Empty: the peer is the client.
   */
  trustedProxies?: string[];
  /** Signs list cursors (shared by the servers on one database); unset: a key per process. */
  cursorKey?: Buffer;
  /** Published gate policies. */
  gatePolicies: GatePolicyStore;
  /** Promotions, reviews, waivers and gate decisions. */
  gates: GateStore;
  /** Re-checks of protected aliases (periodic, and after every policy publish). */
  rechecker: GateRechecker;
  /** Signs statements about versions; its key verifies them. */
  attestor: Attestor;
  attestationKey: KeyObject;
  attestations: AttestationStore;
  /** External evaluators' public keys (MODELGATE_EVALUATOR_KEYS). */
  evaluatorKeys: EvaluatorKey[];
  /** Control frameworks evidence is mapped to (shipped catalog plus the operator's). */
  catalog: ControlCatalog;
  /** The tamper-evident audit log the stores append to. */
  audit: AuditLog;
  auditStore: AuditStore;
  /** The policies that decide every request; the built-in role policies when not given. */
  policies?: PolicySet;
  logger?: FastifyServerOptions['logger'];
  version?: string;
}

/** The Fastify instance type with TypeBox schemas as the type provider. */
export type App = FastifyInstance & { withTypeProvider: () => unknown };

function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>) {
  return details === undefined ? { code, message } : { code, message, details };
}

/** The path of the first string (or key) containing U+0000, or undefined. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The first place in the input that JSON cannot carry exactly: a NUL (PostgreSQL text refuses
 * it), an unpaired surrogate, or a number beyond double range (`1e400` parses as Infinity).
 * Such input could not be recorded in the audit log's canonical JSON either, so it is refused
 * before any route sees it.
 */
function findUnrepresentable(
  v: unknown,
  path = '',
  depth = 0,
): { path: string; what: string } | undefined {
  const here = path || 'input';
  if (typeof v === 'string') {
    if (v.includes('\u0000')) return { path: here, what: 'contains a NUL character' };
    if (LONE_SURROGATE.test(v))
      return { path: here, what: 'contains an unpaired UTF-16 surrogate' };
    return undefined;
  }
  if (typeof v === 'number')
    return Number.isFinite(v) ? undefined : { path: here, what: 'is a number out of range' };
  // The body's depth is bounded before this walk (assertJsonDepth), so it sees every string.
  if (depth > MAX_JSON_DEPTH + 1 || v === null || typeof v !== 'object') return undefined;
  // Parsed input only: an upload's body is a stream (or bytes), whose internals are not input.
  // (Query objects have a prototype of their own, so a plain-object test would skip them.)
  if (Buffer.isBuffer(v) || typeof (v as { pipe?: unknown }).pipe === 'function') return undefined;
  for (const [k, x] of Object.entries(v)) {
    const p = path ? `${path}.${k}` : k;
    const key = findUnrepresentable(k, p, depth + 1);
    if (key) return key;
    const hit = findUnrepresentable(x, p, depth + 1);
    if (hit) return hit;
  }
  return undefined;
}

/** Maps anything thrown in a route to the catalog's status and `{code, message, details}`. */
function toHttpError(err: unknown): {
  status: number;
  body: ReturnType<typeof errorBody>;
  internal: boolean;
} {
  if (err instanceof ModelgateError) {
    return {
      status: err.status,
      body: errorBody(err.code, err.message, err.details),
      internal: err.status >= 500,
    };
  }
  const fe = err as FastifyError & {
    validation?: { instancePath: string; message?: string; params?: unknown }[];
  };
  if (fe.validation) {
    const where = fe.validationContext ?? 'request';
    const first = fe.validation[0];
    const field = first?.instancePath || '';
    const extra =
      first?.params && typeof first.params === 'object' && 'additionalProperty' in first.params
        ? ` '${String((first.params as { additionalProperty: unknown }).additionalProperty)}'`
        : '';
    return {
      status: 400,
      body: errorBody(
        'VALIDATION_FAILED',
        `${where}${field} ${first?.message ?? 'is invalid'}${extra}`,
        {
          errors: fe.validation.slice(0, 10).map((v) => ({
            path: `${where}${v.instancePath}`,
            message: v.message,
            params: v.params,
          })),
        },
      ),
      internal: false,
    };
  }
  switch (fe.code) {
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return {
        status: 400,
        body: errorBody('VALIDATION_FAILED', 'a path parameter is longer than 100 characters'),
        internal: false,
      };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: errorBody('PAYLOAD_TOO_LARGE', 'request body is larger than this route accepts'),
        internal: false,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        status: 415,
        body: errorBody(
          'UNSUPPORTED_MEDIA_TYPE',
          `${fe.message}; send application/json (or application/octet-stream to /blobs)`,
        ),
        internal: false,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: errorBody('INVALID_JSON', fe.message), internal: false };
  }
  if (err instanceof SyntaxError || fe.statusCode === 400) {
    return {
      status: 400,
      body: errorBody('INVALID_JSON', `request body is not valid JSON: ${fe.message}`),
      internal: false,
    };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code: ErrorCode =
      fe.statusCode === 413
        ? 'PAYLOAD_TOO_LARGE'
        : fe.statusCode === 415
          ? 'UNSUPPORTED_MEDIA_TYPE'
          : 'BAD_REQUEST';
    return {
      status: ERROR_CATALOG[code].status,
      body: errorBody(code, fe.message),
      internal: false,
    };
  }
  return {
    status: 500,
    body: errorBody('INTERNAL', 'internal error; see the server log for this request id'),
    internal: true,
  };
}

/** Builds the HTTP application. It owns no resources: closing it does not close the store. */
export async function buildApp(deps: AppDeps) {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: 1024 * 1024,
    // Refuse rather than silently drop unknown fields; never coerce a body's types.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    genReqId: () => crypto.randomUUID(),
    // request.ip is the client the nearest untrusted hop names: a peer that is not a listed
    // proxy cannot choose the address its failures are counted against.
    trustProxy: deps.trustedProxies?.length ? deps.trustedProxies : false,
    // Errors raised before routing (an over-long path parameter, say) get the same body shape.
    frameworkErrors: (err, _request, reply) => {
      const { status, body } = toHttpError(err);
      void (reply as unknown as FastifyReply).status(status).send(body);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorateRequest('actor', null as unknown as Actor);
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('tokenScopes', undefined);
  app.decorateRequest('tokenExpiresAt', undefined);
  app.decorateRequest('loaded', null as unknown as Loaded);
  // A fresh object per request: a decorator's default value would be shared by all requests.
  app.addHook('onRequest', async (request) => {
    request.loaded = {};
  });
  const policies = deps.policies ?? PolicySet.fixed(new Authorizer(BUILTIN_POLICIES));
  policies.onStale = (e) =>
    app.log.error(
      { problems: e.problems },
      'stored authorization policies do not validate here; deciding with the last set that did',
    );
  const tokens = new TokenCache((hash, ip) => deps.store.findToken(hash, ip), deps.tokenCacheMs);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Modelgate API',
        version: deps.version ?? '0.1.0',
        description:
          'Governed model registry. Every request except health and these docs needs `Authorization: Bearer <token>`. Errors are `{code, message, details}`; codes are listed in docs/errors.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/v1/docs', uiConfig: { deepLinking: false } });

  app.addHook('onClose', async () => {
    await deps.gateSandbox?.close();
  });
  app.decorateRequest(
    'authorize',
    function (
      this: FastifyRequest,
      action: Action,
      resource: Resource,
      context?: Record<string, string | boolean>,
    ) {
      authorizeAction(policies, this, action, resource, context);
    },
  );

  app.addHook('onRoute', (route) => {
    // The docs plugin's own routes are public documentation.
    if (route.url.startsWith('/api/v1/docs')) {
      route.config = { ...(route.config as object), public: true };
    } else if (route.url.startsWith('/api/v1/') && route.schema && !route.schema.querystring) {
      // A route that takes no query parameters refuses them instead of ignoring them.
      route.schema.querystring = Type.Object({}, { additionalProperties: false });
    }
    const config = route.config as
      | { public?: boolean; authz?: RouteAuthz; self?: boolean }
      | undefined;
    if (route.url.startsWith('/api/v1/') && !config?.public) {
      // Every route is authorized: one that forgets to say how cannot be registered.
      if (!config?.authz && !config?.self)
        throw new Error(`route ${String(route.method)} ${route.url} declares no authorization`);
      if (route.schema?.response)
        route.schema.response = { ...(route.schema.response as object), ...errorResponses(403) };
    }
  });

  const throttle = new AuthThrottle(deps.authFailureLimit ?? 20);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public) return;
    const header = request.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer ([^\s]{1,200})$/i.exec(header) : null;
    if (!m?.[1]) {
      throttle.refuseIfBlocked(request.ip);
      throttle.failed(request.ip);
      throw new ModelgateError(
        'UNAUTHENTICATED',
        'missing bearer token: send Authorization: Bearer <token> (modelgate login stores one)',
      );
    }
    // A valid token is never refused, whatever its address did: 256 random bits cannot be
    // guessed, so the limit protects nothing by blocking one, while behind a NAT or a proxy an
    // address is many people. So a well-formed token is looked up first (cached, or one indexed
    // query; a malformed one costs nothing) and only an invalid one is answered 429 when its
    // address is over the limit.
    const rec = looksLikeToken(m[1]) ? await tokens.find(hashToken(m[1]), request.ip) : undefined;
    if (!rec) {
      throttle.refuseIfBlocked(request.ip);
      throttle.failed(request.ip);
      throw new ModelgateError(
        'UNAUTHENTICATED',
        'token is not valid (unknown, expired, revoked or mistyped)',
      );
    }
    request.actor = { identity: rec.identity, credentialId: rec.tokenId };
    request.principal = { kind: rec.kind, name: rec.identity, roles: rec.roles, teams: rec.teams };
    request.tokenScopes = rec.scopes;
    request.tokenExpiresAt = rec.expiresAt;
  });

  // After validation, so the path parameters that name the resource are known to be well formed.
  app.addHook('preHandler', async (request) => {
    const route = request.routeOptions.config?.authz;
    const scopes = request.tokenScopes;
    if (route && scopes && !scopes.includes(route.action))
      throw new ModelgateError(
        'FORBIDDEN',
        `deny: token ${request.actor.credentialId} is limited to ${scopes.join(', ') || 'no actions'}; this route needs ${route.action}`,
        { action: route.action, scopes },
      );
    if (route && !request.routeOptions.config?.public) {
      await policies.refreshIfStale();
      await authorizeRequest(policies.current(), deps.registry, request, request.principal, route);
    }
  });

  // NUL cannot be stored in PostgreSQL text and has no business in names or descriptions;
  // unpaired surrogates and out-of-range numbers have no exact JSON form for the audit log:
  // refuse them anywhere in the input before a route sees it.
  app.addHook('preValidation', async (request) => {
    // Thousands of levels would overflow the stack of every walk below (RangeError, a 500).
    assertJsonDepth(request.body, 'the request body');
    const bad = findUnrepresentable({
      body: request.body,
      query: request.query,
      params: request.params,
    });
    if (bad)
      throw new ModelgateError('VALIDATION_FAILED', `${bad.path} ${bad.what}`, { path: bad.path });
  });
  registerSignedCursors(app as unknown as FastifyInstance, deps.cursorKey);

  app.setErrorHandler((err, request, reply) => {
    const { status, body, internal } = toHttpError(err);
    if (internal) request.log.error({ err }, 'request failed');
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="modelgate"');
    const retryAfter = err instanceof ModelgateError ? err.details?.retryAfter : undefined;
    if (status === 429 && typeof retryAfter === 'number')
      void reply.header('retry-after', String(retryAfter));
    return reply.status(status).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .status(404)
      .send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  await app.register(healthRoutes, { deps });
  await app.register(
    async (api) => {
      api.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () =>
        app.swagger(),
      );
      await api.register(modelRoutes, { deps });
      await api.register(versionRoutes, { deps });
      await api.register(datasetRoutes, { deps });
      await api.register(blobRoutes, { deps });
      await api.register(evaluationRoutes, { deps });
      const identityOpts = {
        deps,
        identities: deps.identities,
        policies,
        tokenCache: tokens,
        throttle,
      };
      await api.register(identityRoutes, identityOpts);
      await api.register(accessRoutes, identityOpts);
      await api.register(explainRoute, identityOpts);
      await api.register(auditRoutes, { deps, audit: deps.audit, auditStore: deps.auditStore });
      await api.register(gatePolicyRoutes, { deps, gatePolicies: deps.gatePolicies });
      await api.register(promotionRoutes, { deps });
      await api.register(attestationRoutes, { deps });
      await api.register(loginRoutes, {
        federation: deps.federation,
        identities: deps.identities,
        throttle,
      });
    },
    { prefix: '/api/v1' },
  );
  return app;
}
