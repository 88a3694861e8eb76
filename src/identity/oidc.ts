import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, decodeJwt, type JWTPayload, jwtVerify } from 'jose';
import { parse as parseYaml } from 'yaml';
import { ModelgateError } from '../core/errors.js';

/**
 * Workload identity federation: a CI job presents the OIDC token its platform issued (GitHub
 * Actions, GitLab, a cloud), and a trust rule that matches its issuer, audience and claims
 * (repository, branch, ...) maps it to a service account, which gets a short-lived Modelgate
 * token. No static secret lives in CI. Keys are fetched only from the JWKS URLs configured here.
 */

/** One trust rule. */
export interface WorkloadTrust {
  issuer: string;
  /** Where the issuer publishes its keys; only URLs named here are ever fetched. */
  jwksUrl: string;
  audience: string;
  /** Claims that must equal these values exactly, e.g. {repository: "acme/fraud", ref: "refs/heads/main"}. */
  claims: Record<string, string>;
  serviceAccount: string;
  /** Lifetime of the Modelgate token issued, in minutes (1-60, default 15). */
  tokenMinutes: number;
}

export interface OidcConfig {
  workloads: WorkloadTrust[];
}

const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
];
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** Parses and checks a trust configuration (JSON or YAML); errors name the bad field. */
export function parseOidcConfig(text: string, source: string): OidcConfig {
  const fail = (m: string): never => {
    throw new Error(`${source}: ${m}`);
  };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    return fail(`not valid YAML or JSON: ${(e as Error).message}`);
  }
  const list = (doc as { workloads?: unknown })?.workloads;
  if (!Array.isArray(list)) return fail('expected a list under "workloads"');
  const workloads = list.map((w: Record<string, unknown>, i): WorkloadTrust => {
    const at = `workloads[${i}]`;
    const str = (k: string) =>
      typeof w?.[k] === 'string' && w[k] !== '' ? (w[k] as string) : fail(`${at}.${k} is required`);
    const jwksUrl = str('jwksUrl');
    let url: URL;
    try {
      url = new URL(jwksUrl);
    } catch {
      return fail(`${at}.jwksUrl is not a URL`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname)))
      fail(`${at}.jwksUrl must be https (plain http only on loopback)`);
    const claims = w.claims ?? {};
    if (
      typeof claims !== 'object' ||
      Array.isArray(claims) ||
      Object.values(claims).some((v) => typeof v !== 'string')
    )
      fail(`${at}.claims must map claim names to strings`);
    if (Object.keys(claims as object).length === 0)
      fail(
        `${at}.claims must name at least one claim (say, repository): a rule matching every token of an issuer trusts too much`,
      );
    const minutes = w.tokenMinutes ?? 15;
    if (typeof minutes !== 'number' || !Number.isInteger(minutes) || minutes < 1 || minutes > 60)
      fail(`${at}.tokenMinutes must be a whole number from 1 to 60`);
    return {
      issuer: str('issuer'),
      jwksUrl,
      audience: str('audience'),
      claims: claims as Record<string, string>,
      serviceAccount: str('serviceAccount'),
      tokenMinutes: minutes as number,
    };
  });
  return { workloads };
}

export function loadOidcConfig(path: string): OidcConfig {
  return parseOidcConfig(readFileSync(path, 'utf8'), path);
}

const refuse = (why: string) => new ModelgateError('UNAUTHENTICATED', `OIDC token refused: ${why}`);

export class WorkloadFederation {
  private readonly keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  constructor(readonly config: OidcConfig) {
    for (const w of config.workloads)
      if (!this.keySets.has(w.jwksUrl))
        this.keySets.set(
          w.jwksUrl,
          createRemoteJWKSet(new URL(w.jwksUrl), { timeoutDuration: 5000 }),
        );
  }

  /**
   * Verifies a workload's OIDC token and finds the trust rule it satisfies. Throws
   * UNAUTHENTICATED for a token that does not verify (unknown issuer or key, wrong audience,
   * expired, unsigned) and FORBIDDEN for a valid token that no rule trusts.
   */
  async exchange(jwt: string): Promise<{ rule: WorkloadTrust; claims: JWTPayload }> {
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(jwt);
    } catch {
      throw refuse('not a JWT');
    }
    const rules = this.config.workloads.filter((w) => w.issuer === unverified.iss);
    if (rules.length === 0) throw refuse(`issuer ${JSON.stringify(unverified.iss)} is not trusted`);
    let lastError = 'no rule';
    const verified = new Map<string, JWTPayload>();
    for (const rule of rules) {
      const key = `${rule.jwksUrl}|${rule.audience}`;
      let claims = verified.get(key);
      if (!claims) {
        try {
          const keys = this.keySets.get(rule.jwksUrl);
          if (!keys) throw new Error('no key set');
          ({ payload: claims } = await jwtVerify(jwt, keys, {
            issuer: rule.issuer,
            audience: rule.audience,
            algorithms: ALGORITHMS,
            requiredClaims: ['exp', 'iat'],
            clockTolerance: 30,
          }));
          verified.set(key, claims);
        } catch (e) {
          lastError = (e as Error).message;
          continue;
        }
      }
      const c = claims;
      if (Object.entries(rule.claims).every(([k, v]) => c[k] === v)) return { rule, claims: c };
    }
    if (verified.size === 0) throw refuse(lastError);
    const seen = [...verified.values()][0] ?? {};
    throw new ModelgateError(
      'FORBIDDEN',
      `no trust rule matches this workload (issuer ${unverified.iss}, subject ${String(seen.sub)})`,
      { issuer: unverified.iss, subject: seen.sub },
    );
  }
}
