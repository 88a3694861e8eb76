import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ALIAS_PATTERN } from '../core/names.js';
import { EgressPolicy } from '../evaluators/redteam/egress.js';
import {
  bindSecret,
  type ServerSecret,
  secretEnvName,
} from '../evaluators/redteam/server-secrets.js';

/** Server settings, from flags, then environment, then defaults. */
export interface ServerConfig {
  dataDir: string;
  host: string;
  port: number;
  databaseUrl: string | undefined;
  maxUploadBytes: number;
  bootstrapToken: string | undefined;
  logLevel: string;
  /** Queue the artifact scan for every pushed version. */
  autoScan: boolean;
  jobLeaseMs: number;
  jobPollMs: number;
  /** Evidence exports one identity may make per hour on this server (each is logged and signed). */
  exportsPerHour: number;
  /** Wall time a gate dry run may take before it stops and denies. */
  gateBudgetMs: number;
  /** A file of workload trust rules (JSON or YAML); unset: no OIDC token exchange. */
  oidcConfig: string | undefined;
  /** A folder of operators' Cedar policies (`*.cedar`), added to the built-in roles. */
  authzPolicies: string | undefined;
  /** The audit log's signing key; unset: `<dataDir>/audit-log.key`, created on first start. */
  auditKeyFile: string | undefined;
  /** The audit log's origin (the first line of its checkpoints; the key's name). */
  auditOrigin: string;
  /** Witnesses' verifier keys (C2SP vkeys) whose cosignatures the log accepts. */
  witnessKeys: string[];
  /** How often a new checkpoint is signed when events were appended. */
  checkpointIntervalMs: number;
  /** Aliases only a promotion through a gate may move. */
  protectedAliases: string[];
  /** How often the holder of every protected alias is re-checked against its gate; 0: never. */
  gateRecheckMs: number;
  /** A folder of external evaluators' public keys (`<name>.pem`). */
  evaluatorKeys: string | undefined;
  /** An operator's control catalog (JSON) merged into the shipped one. */
  controlCatalog: string | undefined;
  /** The attestation signing key; unset: `<dataDir>/attestation.key`, created on first start. */
  attestationKeyFile: string | undefined;
  /** Publish the shipped gate policies (policies/) on first start: `shipped` or `none`. */
  gatePolicyPack: 'shipped' | 'none';
  /** URL prefixes outbound requests (red-team targets, judges) may go to; empty: none. */
  allowedEndpoints: string[];
  /**
   * Reverse proxies (IPs, CIDRs, or loopback/linklocal/uniquelocal) whose X-Forwarded-For is
   * believed (MODELGATE_TRUSTED_PROXIES, else the config file's `trustedProxies`); empty: none.
   */
  trustedProxies: string[];
  /**
   * Server-side secrets by name (header values of red-team targets): MODELGATE_SECRET_<NAME>,
   * else the server config file's `secrets`. A function, so that no value sits in an object
   * that could be logged or serialized.
   */
  secret: (name: string) => ServerSecret | undefined;
}

/** The server config file (`--config` / MODELGATE_SERVER_CONFIG): settings that are lists or secrets. */
interface ServerConfigFile {
  allowedEndpoints?: string[] | string;
  trustedProxies?: string[] | string;
  secrets?: Record<string, { value: string; endpoints: string[]; headers?: string[] }>;
}

function readConfigFile(file: string | undefined): ServerConfigFile {
  if (!file) return {};
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`server config file ${file}: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`server config file ${file}: must be a JSON object`);
  const v = value as Record<string, unknown>;
  for (const k of Object.keys(v))
    if (k !== 'allowedEndpoints' && k !== 'secrets' && k !== 'trustedProxies')
      throw new Error(
        `server config file ${file}: unknown setting ${JSON.stringify(k)} (allowedEndpoints, secrets, trustedProxies)`,
      );
  const tp = v.trustedProxies;
  if (
    tp !== undefined &&
    typeof tp !== 'string' &&
    !(Array.isArray(tp) && tp.every((x) => typeof x === 'string'))
  )
    throw new Error(`server config file ${file}: trustedProxies must be a list of IPs or CIDRs`);
  const ae = v.allowedEndpoints;
  if (
    ae !== undefined &&
    typeof ae !== 'string' &&
    !(Array.isArray(ae) && ae.every((x) => typeof x === 'string'))
  )
    throw new Error(`server config file ${file}: allowedEndpoints must be a list of URL prefixes`);
  const sec = v.secrets;
  if (sec !== undefined && (typeof sec !== 'object' || sec === null || Array.isArray(sec)))
    throw new Error(
      `server config file ${file}: secrets must map names to {"value", "endpoints", "headers"}`,
    );
  const strings = (x: unknown) => Array.isArray(x) && x.every((y) => typeof y === 'string');
  for (const [name, s] of Object.entries((sec ?? {}) as Record<string, unknown>)) {
    const o = s as Record<string, unknown> | null;
    if (
      typeof o !== 'object' ||
      o === null ||
      typeof o.value !== 'string' ||
      !strings(o.endpoints) ||
      (o.headers !== undefined && !strings(o.headers)) ||
      Object.keys(o).some((k) => !['value', 'endpoints', 'headers'].includes(k))
    )
      throw new Error(
        `server config file ${file}: secret ${JSON.stringify(name)} must be {"value": "...", "endpoints": ["https://gateway.example/v1"], "headers": ["Authorization"]}: a secret is sent only to the endpoints and in the headers it names (headers default to Authorization)`,
      );
  }
  return v as ServerConfigFile;
}

export const DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 ** 3;

function intFrom(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  if (!/^[0-9]+$/.test(v))
    throw new Error(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

const listFrom = (v: string | undefined) => (v ?? '').split(/[\s,]+/).filter(Boolean);

/**
 * Every server-side secret with its binding, by environment variable name, checked at start:
 * MODELGATE_SECRET_<NAME> with MODELGATE_SECRET_<NAME>_ENDPOINTS (required) and _HEADERS
 * (default Authorization), else the config file's `secrets`. The environment wins.
 */
function loadSecrets(file: ServerConfigFile, env: NodeJS.ProcessEnv): Map<string, ServerSecret> {
  const out = new Map<string, ServerSecret>();
  for (const [name, s] of Object.entries(file.secrets ?? {}))
    out.set(
      secretEnvName(name),
      bindSecret(`secret ${name} (server config file)`, s.value, s.endpoints, s.headers),
    );
  const binding = /_(ENDPOINTS|HEADERS)$/;
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('MODELGATE_SECRET_') || binding.test(key) || value === undefined) continue;
    const headers = listFrom(env[`${key}_HEADERS`]);
    out.set(
      key,
      bindSecret(
        `${key} (set ${key}_ENDPOINTS to the URL prefixes it may be sent to)`,
        value,
        listFrom(env[`${key}_ENDPOINTS`]),
        headers.length > 0 ? headers : undefined,
      ),
    );
  }
  return out;
}

function atLeastOne(name: string, n: number): number {
  if (n < 1) throw new Error(`${name} must be at least 1, got ${n}`);
  return n;
}

function boolFrom(name: string, v: string | undefined, fallback: boolean): boolean {
  if (v === undefined || v === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** The trusted proxies: IPs, CIDRs or proxy-addr's named ranges; throws naming a bad entry. */
function proxiesFrom(env: string | undefined, file: string[] | string | undefined): string[] {
  const list = (
    (env || undefined)?.split(/[\s,]+/) ??
    (Array.isArray(file) ? file : (file ?? '').split(/[\s,]+/))
  )
    .map((x) => x.trim())
    .filter(Boolean);
  for (const p of list) {
    const [addr = '', bits, ...rest] = p.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    const ok =
      PROXY_NAMES.has(p) ||
      (family !== 0 &&
        rest.length === 0 &&
        (bits === undefined || (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= max)));
    if (!ok)
      throw new Error(
        `MODELGATE_TRUSTED_PROXIES: ${JSON.stringify(p)} is not an IP address, a CIDR range (10.0.0.0/8) or one of loopback, linklocal, uniquelocal`,
      );
  }
  return list;
}

function protectedFrom(v: string | undefined): string[] {
  if (v === undefined) return ['production', 'staging'];
  const names = v.split(/[\s,]+/).filter(Boolean);
  const alias = new RegExp(ALIAS_PATTERN);
  for (const n of names)
    if (!alias.test(n))
      throw new Error(
        `MODELGATE_PROTECTED_ALIASES: ${JSON.stringify(n)} is not an alias name (docs/names.md)`,
      );
  return [...new Set(names)];
}

function packFrom(v: string | undefined): 'shipped' | 'none' {
  if (v === undefined || v === '' || v === 'shipped') return 'shipped';
  if (v === 'none') return 'none';
  throw new Error(`MODELGATE_GATE_POLICY_PACK must be shipped or none, got ${JSON.stringify(v)}`);
}

/** Builds the configuration; throws with a message naming the bad setting. */
export function loadConfig(
  flags: { dataDir?: string; host?: string; port?: string; databaseUrl?: string; config?: string },
  env: NodeJS.ProcessEnv = process.env,
): ServerConfig {
  const file = readConfigFile(flags.config ?? (env.MODELGATE_SERVER_CONFIG || undefined));
  const fileEndpoints = Array.isArray(file.allowedEndpoints)
    ? file.allowedEndpoints
    : (file.allowedEndpoints ?? '').split(/[\s,]+/);
  const allowedEndpoints = (
    (env.MODELGATE_ALLOWED_ENDPOINTS || undefined)?.split(/[\s,]+/) ?? fileEndpoints
  )
    .map((x) => x.trim())
    .filter(Boolean);
  // Fails at start for a malformed prefix rather than at the first red-team run.
  try {
    new EgressPolicy(allowedEndpoints);
  } catch (e) {
    throw new Error(`MODELGATE_ALLOWED_ENDPOINTS: ${(e as Error).message}`);
  }
  const secrets = loadSecrets(file, env);
  const port = intFrom('--port / MODELGATE_PORT', flags.port ?? env.MODELGATE_PORT, 7070);
  if (port > 65535) throw new Error(`--port must be 0-65535, got ${port}`);
  return {
    dataDir: resolve(flags.dataDir ?? env.MODELGATE_DATA_DIR ?? 'modelgate-data'),
    host: flags.host ?? env.MODELGATE_HOST ?? '127.0.0.1',
    port,
    databaseUrl: flags.databaseUrl ?? (env.MODELGATE_DATABASE_URL || undefined),
    maxUploadBytes: intFrom(
      'MODELGATE_MAX_UPLOAD_BYTES',
      env.MODELGATE_MAX_UPLOAD_BYTES,
      DEFAULT_MAX_UPLOAD_BYTES,
    ),
    bootstrapToken: env.MODELGATE_BOOTSTRAP_TOKEN || undefined,
    logLevel: env.MODELGATE_LOG_LEVEL ?? 'info',
    autoScan: boolFrom('MODELGATE_AUTO_SCAN', env.MODELGATE_AUTO_SCAN, true),
    jobLeaseMs: intFrom('MODELGATE_JOB_LEASE_MS', env.MODELGATE_JOB_LEASE_MS, 30_000),
    jobPollMs: intFrom('MODELGATE_JOB_POLL_MS', env.MODELGATE_JOB_POLL_MS, 1000),
    gateBudgetMs: atLeastOne(
      'MODELGATE_GATE_BUDGET_MS',
      intFrom('MODELGATE_GATE_BUDGET_MS', env.MODELGATE_GATE_BUDGET_MS, 2000),
    ),
    exportsPerHour: atLeastOne(
      'MODELGATE_EXPORTS_PER_HOUR',
      intFrom('MODELGATE_EXPORTS_PER_HOUR', env.MODELGATE_EXPORTS_PER_HOUR, 60),
    ),
    oidcConfig: env.MODELGATE_OIDC_CONFIG ? resolve(env.MODELGATE_OIDC_CONFIG) : undefined,
    authzPolicies: env.MODELGATE_AUTHZ_POLICIES ? resolve(env.MODELGATE_AUTHZ_POLICIES) : undefined,
    auditKeyFile: env.MODELGATE_AUDIT_KEY_FILE ? resolve(env.MODELGATE_AUDIT_KEY_FILE) : undefined,
    auditOrigin: env.MODELGATE_AUDIT_ORIGIN || 'modelgate.local/audit/v1',
    witnessKeys: (env.MODELGATE_WITNESS_KEYS ?? '').split(/[\s,]+/).filter(Boolean),
    checkpointIntervalMs: intFrom(
      'MODELGATE_CHECKPOINT_INTERVAL_MS',
      env.MODELGATE_CHECKPOINT_INTERVAL_MS,
      1000,
    ),
    protectedAliases: protectedFrom(env.MODELGATE_PROTECTED_ALIASES),
    gateRecheckMs: intFrom(
      'MODELGATE_GATE_RECHECK_INTERVAL_MS',
      env.MODELGATE_GATE_RECHECK_INTERVAL_MS,
      600_000,
    ),
    gatePolicyPack: packFrom(env.MODELGATE_GATE_POLICY_PACK),
    allowedEndpoints,
    trustedProxies: proxiesFrom(env.MODELGATE_TRUSTED_PROXIES, file.trustedProxies),
    secret: (name) => secrets.get(secretEnvName(name)),
    evaluatorKeys: env.MODELGATE_EVALUATOR_KEYS ? resolve(env.MODELGATE_EVALUATOR_KEYS) : undefined,
    controlCatalog: env.MODELGATE_CONTROL_CATALOG
      ? resolve(env.MODELGATE_CONTROL_CATALOG)
      : undefined,
    attestationKeyFile: env.MODELGATE_ATTESTATION_KEY_FILE
      ? resolve(env.MODELGATE_ATTESTATION_KEY_FILE)
      : undefined,
  };
}
