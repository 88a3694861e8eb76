import { ModelgateError } from '../../core/errors.js';
import { completionsUrl } from './chat-client.js';
import type { EgressPolicy } from './egress.js';
import { type SecretResolver, secretFor } from './server-secrets.js';

/** A header value: a literal (not for credentials) or the name of a server-side secret. */
export type HeaderValue = string | { secret: string };

/** An OpenAI-compatible endpoint and model to call, with its headers. */
export interface ChatTarget {
  endpoint: string;
  model: string;
  headers: Record<string, HeaderValue>;
}

/** A red-team run's settings, as stored with the evaluation (secrets by name only). */
export interface RedteamConfig extends ChatTarget {
  /** Probe packs to run (names of `probes/*.json`); empty: all. */
  packs: string[];
  /** Requests per probe: stochastic failures surface only with several. */
  generations: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Requests per second at most; 0: no limit. */
  rateLimit: number;
  timeoutMs: number;
  retries: number;
  maxTokens: number;
  temperature: number;
  /** The deployment's real system prompt; the canaries are appended to it. */
  systemPrompt?: string;
  /** A second model that grades answers to harmful requests, recorded as such. */
  judge?: ChatTarget;
}

// Header names whose values are credentials: they must come from server-side secrets, so that
// a run request (and the evaluation record, the audit log, the attestation) never holds one.
const SENSITIVE = /authorization|api[-_]?key|token|secret|password|cookie|credential/i;
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const KEYS = new Set([
  'endpoint',
  'model',
  'headers',
  'packs',
  'generations',
  'concurrency',
  'rateLimit',
  'timeoutMs',
  'retries',
  'maxTokens',
  'temperature',
  'systemPrompt',
  'judge',
]);

function bad(path: string, message: string): never {
  throw new ModelgateError('VALIDATION_FAILED', `config.${path} ${message}`, { path });
}

function int(v: unknown, path: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    bad(path, `must be a whole number from ${min} to ${max}`);
  return v;
}

function str(v: unknown, path: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    bad(path, `must be a non-empty string of at most ${max} characters`);
  return v;
}

function headersOf(
  v: unknown,
  path: string,
  secrets: SecretResolver,
  url: string,
): Record<string, HeaderValue> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    bad(path, 'must be an object of header names to values');
  const out: Record<string, HeaderValue> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > 20) bad(path, 'may hold at most 20 headers');
  for (const [name, value] of entries) {
    if (!HEADER_NAME.test(name)) bad(`${path}.${name}`, 'is not a valid header name');
    if (/^(host|content-length|content-type|transfer-encoding|connection)$/i.test(name))
      bad(`${path}.${name}`, 'is set by Modelgate itself');
    if (typeof value === 'string') {
      if (SENSITIVE.test(name))
        bad(
          `${path}.${name}`,
          `carries a credential: give {"secret": "<name>"} and configure the value on the server (MODELGATE_SECRET_<NAME>), never in the request`,
        );
      if (value.length > 1024 || /[\r\n]/.test(value))
        bad(`${path}.${name}`, 'must be one line of at most 1024 characters');
      out[name] = value;
      continue;
    }
    const ref = value as { secret?: unknown } | null;
    if (
      typeof ref !== 'object' ||
      ref === null ||
      Object.keys(ref).length !== 1 ||
      typeof ref.secret !== 'string' ||
      !SECRET_NAME.test(ref.secret)
    )
      bad(`${path}.${name}`, 'must be a string or {"secret": "<name>"}');
    // Refused when the run is requested unless the secret is bound to this header and URL.
    secretFor(secrets, ref.secret, name, url);
    out[name] = { secret: ref.secret };
  }
  return out;
}

function targetOf(
  v: Record<string, unknown>,
  path: string,
  egress: EgressPolicy,
  secrets: SecretResolver,
): ChatTarget {
  const endpoint = str(v.endpoint, `${path}endpoint`, 2048);
  // Refused here, when the run is requested, before anything is queued or sent: the URL the
  // client will call, checked the same way it will be.
  const { url } = egress.check(completionsUrl(endpoint));
  return {
    endpoint,
    model: str(v.model, `${path}model`, 256),
    headers: headersOf(v.headers, `${path}headers`, secrets, url.href),
  };
}

/**
 * Validates a red-team run's configuration and fills in the defaults: what is stored with
 * the evaluation and what a resumed run reads back. The endpoints must be allowed and every
 * secret a header names must exist, so that a run is refused when it is requested.
 */
export function parseRedteamConfig(
  raw: Record<string, unknown>,
  egress: EgressPolicy,
  secrets: SecretResolver,
  knownPacks: readonly string[],
): RedteamConfig {
  for (const k of Object.keys(raw)) if (!KEYS.has(k)) bad(k, 'is not a red-team setting');
  const packs = raw.packs === undefined ? [] : raw.packs;
  if (!Array.isArray(packs) || packs.length > 50 || packs.some((p) => typeof p !== 'string'))
    bad('packs', 'must be a list of probe pack names');
  for (const p of packs as string[])
    if (!knownPacks.includes(p))
      throw new ModelgateError(
        'PROBE_PACK_INVALID',
        `no probe pack ${p}; the packs are: ${knownPacks.join(', ')}`,
        { pack: p },
      );
  const temperature = raw.temperature === undefined ? 0.7 : raw.temperature;
  if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= 2))
    bad('temperature', 'must be a number from 0 to 2');
  let systemPrompt: string | undefined;
  if (raw.systemPrompt !== undefined) systemPrompt = str(raw.systemPrompt, 'systemPrompt', 20_000);
  let judge: ChatTarget | undefined;
  if (raw.judge !== undefined) {
    if (typeof raw.judge !== 'object' || raw.judge === null || Array.isArray(raw.judge))
      bad('judge', 'must be an object with endpoint, model and headers');
    const j = raw.judge as Record<string, unknown>;
    for (const k of Object.keys(j))
      if (!['endpoint', 'model', 'headers'].includes(k))
        bad(`judge.${k}`, 'is not a judge setting');
    judge = targetOf(j, 'judge.', egress, secrets);
  }
  return {
    ...targetOf(raw, '', egress, secrets),
    packs: [...new Set(packs as string[])],
    generations: int(raw.generations, 'generations', 1, 50, 3),
    concurrency: int(raw.concurrency, 'concurrency', 1, 64, 8),
    rateLimit: int(raw.rateLimit, 'rateLimit', 0, 10_000, 0),
    timeoutMs: int(raw.timeoutMs, 'timeoutMs', 1000, 600_000, 60_000),
    retries: int(raw.retries, 'retries', 0, 10, 3),
    maxTokens: int(raw.maxTokens, 'maxTokens', 1, 32_768, 512),
    temperature,
    ...(systemPrompt !== undefined && { systemPrompt }),
    ...(judge && { judge }),
  };
}

/** Whether every secret among `headers` is bound to its header name and to `url`. */
export function secretsMayGo(
  headers: Record<string, HeaderValue>,
  secrets: SecretResolver,
): (url: string) => boolean {
  return (url) =>
    Object.entries(headers).every(([name, v]) => {
      if (typeof v === 'string') return true;
      try {
        secretFor(secrets, v.secret, name, url);
        return true;
      } catch {
        return false;
      }
    });
}

/**
 * The headers to send to `endpoint`, with each secret reference replaced by its value: checked
 * again against the secret's binding when the run starts or resumes (the operator may have
 * changed it since the run was requested).
 */
export function resolveHeaders(
  headers: Record<string, HeaderValue>,
  secrets: SecretResolver,
  endpoint: string,
  egress: EgressPolicy,
): Record<string, string> {
  const url = egress.check(completionsUrl(endpoint)).url.href;
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(headers))
    out[name] = typeof v === 'string' ? v : secretFor(secrets, v.secret, name, url);
  return out;
}
