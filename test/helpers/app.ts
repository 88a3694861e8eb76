import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { bindSecret } from '../../src/evaluators/redteam/server-secrets.js';
import { issueToken } from '../../src/identity/tokens.js';
import type { NewIdentity } from '../../src/registry/registry-store.js';
import { type Composed, compose } from '../../src/server/composition.js';
import { loadConfig } from '../../src/server/config.js';
import type { TestDb } from './engines.js';

/** A composed server on a test database, with the admin token and an authenticated inject. */
export interface TestApp {
  composed: Composed;
  token: string;
  call(opts: InjectOptions): Promise<LightMyRequestResponse>;
}

/** Calls the API (paths after /api/v1) as the admin, or with another token. */
export const apiOf =
  (t: TestApp) =>
  (method: string, url: string, payload?: object, token: string | null = t.token) =>
    t.composed.app.inject({
      method: method as 'GET',
      url: `/api/v1${url}`,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
      ...(payload && { payload }),
    });

/** Uploads bytes as a blob with the app's admin token; returns its digest. */
export async function uploadBlob(app: TestApp, bytes: Buffer): Promise<string> {
  const r = await app.call({
    method: 'POST',
    url: '/api/v1/blobs',
    headers: { 'content-type': 'application/octet-stream' },
    payload: bytes,
  });
  return (r.json() as { digest: string }).digest;
}

/** Creates an identity with `roles` and `teams` (if new) and returns a fresh token for it. */
export async function tokenFor(
  app: TestApp,
  identity: NewIdentity,
  opts: { expiresAt?: string; scopes?: string[] } = {},
): Promise<string> {
  const t = issueToken();
  await app.composed.deps.store.createToken(identity, {
    id: t.id,
    hash: t.hash,
    name: 'test',
    ...(opts.expiresAt && { expiresAt: opts.expiresAt }),
    ...(opts.scopes && { scopes: opts.scopes }),
  });
  return t.secret;
}

/** Builds the app on `db` (no socket); requests go through `inject()`. */
export async function testApp(
  db: TestDb,
  opts: {
    maxUploadBytes?: number;
    worker?: boolean;
    authFailureLimit?: number;
    /** A workload trust-rule file (MODELGATE_OIDC_CONFIG). */
    oidcConfig?: string;
    /** A folder of operator Cedar policies (MODELGATE_AUTHZ_POLICIES). */
    authzPolicies?: string;
    /** How soon another process's changes apply here (token cache and policy refresh). */
    refreshMs?: number;
    /** Witness verifier keys the audit log accepts cosignatures from. */
    witnessKeys?: string[];
    /** Publish the shipped gate policies on first start (off: tests publish their own). */
    gatePack?: boolean;
    /** Aliases only promotions move (default production, staging). */
    protectedAliases?: string[];
    /** A folder of external evaluators' public keys (MODELGATE_EVALUATOR_KEYS). */
    evaluatorKeys?: string;
    /** URL prefixes red-team runs may call (MODELGATE_ALLOWED_ENDPOINTS). */
    allowedEndpoints?: string[];
    /** Server-side secrets by name, with the endpoints and headers they may go to. */
    secrets?: Record<string, { value: string; endpoints: string[]; headers?: string[] }>;
    /** How often the log signs a checkpoint on its own (MODELGATE_CHECKPOINT_INTERVAL_MS). */
    checkpointIntervalMs?: number;
    /** Reverse proxies whose X-Forwarded-For is believed (MODELGATE_TRUSTED_PROXIES). */
    trustedProxies?: string[];
    /** The clock promotions, reviews and waivers see. */
    gateClock?: () => Date;
    /** Evidence exports one identity may make per hour (MODELGATE_EXPORTS_PER_HOUR). */
    exportsPerHour?: number;
  } = {},
): Promise<TestApp> {
  const token = issueToken().secret;
  const config = {
    ...loadConfig({ dataDir: db.dataDir }, {}),
    bootstrapToken: token,
    ...(opts.maxUploadBytes !== undefined && { maxUploadBytes: opts.maxUploadBytes }),
    ...(opts.oidcConfig && { oidcConfig: opts.oidcConfig }),
    ...(opts.authzPolicies && { authzPolicies: opts.authzPolicies }),
    ...(opts.witnessKeys && { witnessKeys: opts.witnessKeys }),
    gatePolicyPack: opts.gatePack ? ('shipped' as const) : ('none' as const),
    ...(opts.protectedAliases && { protectedAliases: opts.protectedAliases }),
    ...(opts.evaluatorKeys && { evaluatorKeys: opts.evaluatorKeys }),
    // Tests re-check when they mean to (POST /gate-rechecks).
    gateRecheckMs: 0,
    allowedEndpoints: opts.allowedEndpoints ?? [],
    trustedProxies: opts.trustedProxies ?? [],
    ...(opts.checkpointIntervalMs !== undefined && {
      checkpointIntervalMs: opts.checkpointIntervalMs,
    }),
    secret: (name: string) => {
      const s = opts.secrets?.[name];
      return s && bindSecret(`secret ${name}`, s.value, s.endpoints, s.headers);
    },
    ...(opts.exportsPerHour !== undefined && { exportsPerHour: opts.exportsPerHour }),
  };
  const composed = await compose(
    { ...config, jobPollMs: 50, jobLeaseMs: 2000 },
    {
      database: db.database,
      startWorker: opts.worker ?? false,
      // Tests that walk routes with bad tokens would trip the throttle; its own test sets it.
      authFailureLimit: opts.authFailureLimit ?? 1_000_000,
      ...(opts.refreshMs !== undefined && { refreshMs: opts.refreshMs }),
      ...(opts.gateClock && { gateClock: opts.gateClock }),
    },
  );
  // A database shared between test apps keeps its first token; add this one for this app.
  if (!composed.bootstrapToken) {
    const t = issueToken(token);
    await composed.deps.store.createToken(
      { name: 'admin', kind: 'user', roles: ['admin', 'approver'] },
      { id: t.id, hash: t.hash, name: 'test' },
    );
  }
  return {
    composed,
    token,
    call: (o) =>
      composed.app.inject({
        ...o,
        headers: { authorization: `Bearer ${token}`, ...(o.headers ?? {}) },
      }),
  };
}
