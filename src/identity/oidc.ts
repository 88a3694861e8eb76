import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, decodeJwt, type JWTPayload, jwtVerify } from 'jose';
import { parse as parseYaml } from 'yaml';
import { ModelgateError } from '../core/errors.js';
import { isValidName } from '../core/names.js';

/**
 * Trust in external OIDC issuers, for two kinds of callers:
 * - workloads (identity federation): a CI job presents the OIDC token its platform issued
 *   (GitHub Actions, GitLab, a cloud), and a rule that matches its issuer, audience and claims
 *   (repository, branch, ...) maps it to a service account. No static secret lives in CI.
 * - people (SSO): an ID token from the company's identity provider maps, by one claim, to a
 *   user, and by another (groups) to the user's teams.
 * Either way the caller gets a short-lived Modelgate token. Keys are fetched only from the JWKS
 * URLs configured here.
 */

/** What every rule has: whom it trusts, where the keys are, and claims that must match exactly. */
interface TrustBase {
  issuer: string;
  /** Where the issuer publishes its keys; only URLs named here are ever fetched. */
  jwksUrl: string;
  audience: string;
  /** Claims that must equal these values exactly, e.g. {repository: "acme/fraud", ref: "refs/heads/main"}. */
  claims: Record<string, string>;
  /** Oldest token accepted, by its `iat`, in minutes (1-10080, default 1440: a day). */
  maxTokenAgeMinutes: number;
}

/** A rule mapping a workload's OIDC token to a service account. */
export interface WorkloadTrust extends TrustBase {
  serviceAccount: string;
  /** Lifetime of the Modelgate token issued, in minutes (1-60, default 15). */
  tokenMinutes: number;
}

/** A rule mapping a person's ID token to a user and teams. */
export interface PersonTrust extends TrustBase {
  /** The claim holding the user name (default `preferred_username`). */
  usernameClaim: string;
  /**
   * When set, a user name of the form `someone@<emailDomain>` maps to `someone`; an address in
   * any other domain is refused. With the `email` claim, `email_verified` must be true.
   */
  emailDomain: string | null;
  /** The claim listing the person's groups; absent: teams are managed in Modelgate. */
  teamsClaim: string | null;
  /** Group → team; absent: a group whose name is a valid team name is that team. */
  teamMap: Record<string, string> | null;
  /** Whether a first login creates the user (with `defaultRoles`); else the user must exist. */
  provision: boolean;
  defaultRoles: string[];
  /** Lifetime of the Modelgate token issued, in hours (1-24, default 8). */
  tokenHours: number;
}

export interface OidcConfig {
  workloads: WorkloadTrust[];
  people: PersonTrust[];
}

/** The outcome of an exchange: who the token is for, and for how long. */
export type OidcMatch =
  | { kind: 'service-account'; name: string; issuer: string; subject: string; minutes: number }
  | {
      kind: 'user';
      name: string;
      issuer: string;
      subject: string;
      minutes: number;
      /** The teams the token's groups map to; null when the rule does not manage teams. */
      teams: string[] | null;
      rule: PersonTrust;
    };

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
  const d = (doc ?? {}) as { workloads?: unknown; people?: unknown };
  if (d.workloads === undefined && d.people === undefined)
    return fail('expected a list under "workloads" or "people"');
  const listOf = (key: 'workloads' | 'people') => {
    const v = d[key] ?? [];
    return Array.isArray(v)
      ? (v as Record<string, unknown>[])
      : fail(`expected a list under "${key}"`);
  };

  const base = (w: Record<string, unknown>, at: string, needClaims: boolean) => {
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
    if (needClaims && Object.keys(claims as object).length === 0)
      fail(
        `${at}.claims must name at least one claim (say, repository): a rule matching every token of an issuer trusts too much`,
      );
    return {
      str,
      rule: {
        issuer: str('issuer'),
        jwksUrl,
        audience: str('audience'),
        claims: claims as Record<string, string>,
        maxTokenAgeMinutes: whole(w, at, 'maxTokenAgeMinutes', 24 * 60, 7 * 24 * 60),
      },
    };
  };
  function whole(w: Record<string, unknown>, at: string, k: string, dflt: number, max: number) {
    const v = w[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      fail(`${at}.${k} must be a whole number from 1 to ${max}`);
    return v as number;
  }
  const optString = (w: Record<string, unknown>, at: string, k: string) => {
    const v = w[k];
    if (v === undefined || v === null) return null;
    return typeof v === 'string' && v !== '' ? v : fail(`${at}.${k} must be a string`);
  };

  const workloads = listOf('workloads').map((w, i): WorkloadTrust => {
    const at = `workloads[${i}]`;
    const { str, rule } = base(w, at, true);
    return {
      ...rule,
      serviceAccount: str('serviceAccount'),
      tokenMinutes: whole(w, at, 'tokenMinutes', 15, 60),
    };
  });
  const people = listOf('people').map((w, i): PersonTrust => {
    const at = `people[${i}]`;
    const { rule } = base(w, at, false);
    const teamMap = w.teamMap ?? null;
    if (
      teamMap !== null &&
      (typeof teamMap !== 'object' ||
        Array.isArray(teamMap) ||
        Object.values(teamMap).some((v) => typeof v !== 'string' || !isValidName(v)))
    )
      fail(`${at}.teamMap must map group names to team names`);
    const roles = w.defaultRoles ?? [];
    if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string'))
      fail(`${at}.defaultRoles must be a list of role names`);
    if (w.provision !== undefined && typeof w.provision !== 'boolean')
      fail(`${at}.provision must be true or false`);
    return {
      ...rule,
      usernameClaim: optString(w, at, 'usernameClaim') ?? 'preferred_username',
      emailDomain: optString(w, at, 'emailDomain')?.toLowerCase() ?? null,
      teamsClaim: optString(w, at, 'teamsClaim'),
      teamMap: teamMap as Record<string, string> | null,
      provision: (w.provision as boolean | undefined) ?? false,
      defaultRoles: roles as string[],
      tokenHours: whole(w, at, 'tokenHours', 8, 24),
    };
  });
  // A rule's kind is what the file declares, and a token reaches rules of one kind only, by
  // its audience: were a workload and a people rule of one issuer to share an audience, a
  // person's ID token carrying a workload's claims (repository, ref) would log in as a CI
  // service account.
  workloads.forEach((w, i) => {
    const j = people.findIndex((p) => p.issuer === w.issuer && p.audience === w.audience);
    if (j >= 0)
      fail(
        `workloads[${i}] and people[${j}] trust issuer ${w.issuer} with the same audience ${JSON.stringify(w.audience)}: give the workload rules of this issuer an audience of their own (the one CI requests its token for, e.g. "modelgate-ci"; \`modelgate login --oidc --audience\`), so that a person's ID token can never match a workload rule`,
      );
  });
  return { workloads, people };
}

export function loadOidcConfig(path: string): OidcConfig {
  return parseOidcConfig(readFileSync(path, 'utf8'), path);
}

/** Clock difference tolerated on `exp`, `nbf` and `iat`, in seconds. */
const CLOCK_SKEW_SECONDS = 30;

/** Why jose refused a token, said in the words of the rule it was checked against. */
function whyRefused(e: unknown, rule: TrustBase): string {
  const err = e as { message?: string; claim?: string; reason?: string; payload?: JWTPayload };
  if (
    err.claim === 'iat' &&
    err.reason === 'check_failed' &&
    typeof err.payload?.iat === 'number'
  ) {
    const at = new Date(err.payload.iat * 1000).toISOString();
    return err.payload.iat * 1000 > Date.now()
      ? `issued in the future (iat ${at})`
      : `issued at ${at}, longer ago than its trust rule accepts (maxTokenAgeMinutes ${rule.maxTokenAgeMinutes})`;
  }
  return err.message ?? String(e);
}

const refuse = (why: string) => new ModelgateError('UNAUTHENTICATED', `OIDC token refused: ${why}`);
const forbid = (why: string) => new ModelgateError('FORBIDDEN', `OIDC token not accepted: ${why}`);

/** The Modelgate user name an ID token names under a rule; throws FORBIDDEN when it names none. */
function userName(rule: PersonTrust, c: JWTPayload): string {
  const raw = c[rule.usernameClaim];
  if (typeof raw !== 'string' || raw === '')
    throw forbid(`the token has no ${rule.usernameClaim} claim to name a user`);
  if (rule.usernameClaim === 'email' && c.email_verified !== true)
    throw forbid('the email address in the token is not verified (email_verified)');
  // Lowercasing beyond ASCII folds different names together (the Kelvin sign becomes k).
  if (!/^[\x21-\x7e]+$/.test(raw))
    throw forbid(
      `${JSON.stringify(raw)} has characters outside printable ASCII; it names no Modelgate user`,
    );
  let name = raw.toLowerCase();
  if (rule.emailDomain) {
    const at = name.lastIndexOf('@');
    if (at < 0 || name.slice(at + 1) !== rule.emailDomain)
      throw forbid(`${raw} is not an address in ${rule.emailDomain}`);
    name = name.slice(0, at);
  }
  if (!isValidName(name))
    throw forbid(
      `${JSON.stringify(raw)} is not a valid Modelgate user name (lowercase letters, digits, dots and dashes); map another claim with usernameClaim or set emailDomain`,
    );
  return name;
}

/** The teams an ID token's groups map to under a rule. */
function teamsOf(rule: PersonTrust, c: JWTPayload): string[] | null {
  if (!rule.teamsClaim) return null;
  const groups = c[rule.teamsClaim];
  // Absent: the person is in no group. Anything but a list of strings is refused, never
  // coerced: a string, or a list holding a number or a list, names no group reliably.
  if (groups === undefined) return [];
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string'))
    throw forbid(`the token's ${rule.teamsClaim} claim is not a list of strings`);
  const teams = new Set<string>();
  for (const g of groups as string[]) {
    const team = rule.teamMap ? rule.teamMap[g] : g;
    if (team !== undefined && isValidName(team)) teams.add(team);
  }
  return [...teams].sort();
}

export class OidcFederation {
  private readonly keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  private readonly rules: (
    | { kind: 'workload'; rule: WorkloadTrust }
    | { kind: 'person'; rule: PersonTrust }
  )[];

  constructor(readonly config: OidcConfig) {
    this.rules = [
      ...config.workloads.map((rule) => ({ kind: 'workload' as const, rule })),
      ...config.people.map((rule) => ({ kind: 'person' as const, rule })),
    ];
    for (const { rule } of this.rules)
      if (!this.keySets.has(rule.jwksUrl))
        this.keySets.set(
          rule.jwksUrl,
          createRemoteJWKSet(new URL(rule.jwksUrl), { timeoutDuration: 5000 }),
        );
  }

  /**
   * Verifies an OIDC token and finds the rule it satisfies. Throws UNAUTHENTICATED for a token
   * that does not verify (unknown issuer or key, wrong audience, expired, unsigned) and
   * FORBIDDEN for a valid token that no rule accepts.
   */
  async exchange(jwt: string): Promise<OidcMatch> {
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(jwt);
    } catch {
      throw refuse('not a JWT');
    }
    const ofIssuer = this.rules.filter((r) => r.rule.issuer === unverified.iss);
    if (ofIssuer.length === 0)
      throw refuse(`issuer ${JSON.stringify(unverified.iss)} is not trusted`);
    // The token's audience picks the kind of rule it may match (the configuration gives the
    // kinds of one issuer different audiences); its other claims never do. Signature and
    // audience are still checked per rule below: this only narrows the candidates.
    const auds = new Set(
      typeof unverified.aud === 'string'
        ? [unverified.aud]
        : Array.isArray(unverified.aud)
          ? unverified.aud
          : [],
    );
    const rules = ofIssuer.filter((r) => auds.has(r.rule.audience));
    if (new Set(rules.map((r) => r.kind)).size > 1)
      throw refuse(
        `its audience names both a workload rule (${rules.find((r) => r.kind === 'workload')?.rule.audience}) and a people rule (${rules.find((r) => r.kind === 'person')?.rule.audience}); a token is for one or the other`,
      );
    // No rule for its audience: verified against the issuer's rules anyway, so that the
    // answer says what jose says (wrong audience) rather than guessing.
    const candidates = rules.length > 0 ? rules : ofIssuer;
    let lastError = 'no rule';
    let refusal: ModelgateError | undefined;
    const verified = new Map<string, JWTPayload>();
    for (const { kind, rule } of candidates) {
      const key = `${rule.jwksUrl}|${rule.audience}|${rule.maxTokenAgeMinutes}`;
      let claims = verified.get(key);
      if (!claims) {
        try {
          const keys = this.keySets.get(rule.jwksUrl);
          if (!keys) throw new Error('no key set');
          ({ payload: claims } = await jwtVerify(jwt, keys, {
            issuer: rule.issuer,
            audience: rule.audience,
            algorithms: ALGORITHMS,
            requiredClaims: ['exp', 'iat', 'sub'],
            // Also refuses an `iat` in the future (beyond the tolerance), as `exp` and `nbf`.
            maxTokenAge: rule.maxTokenAgeMinutes * 60,
            clockTolerance: CLOCK_SKEW_SECONDS,
          }));
        } catch (e) {
          lastError = whyRefused(e, rule);
          continue;
        }
        // The subject is what an SSO binding and the audit trail name: a string, never a
        // number or a list turned into one, and never empty (all empty subjects are one user).
        if (typeof claims.sub !== 'string' || claims.sub === '')
          throw refuse(
            `its sub claim is ${claims.sub === '' ? 'empty' : claims.sub === null ? 'null' : `a ${Array.isArray(claims.sub) ? 'list' : typeof claims.sub}`}; it must be a non-empty string`,
          );
        verified.set(key, claims);
      }
      const c = claims;
      const mismatch = Object.keys(rule.claims).find((k) => c[k] !== rule.claims[k]);
      if (mismatch !== undefined) {
        // A claim a rule pins must be a string like the rule's value; a list or a number that
        // would print the same is a refusal, not a near match.
        if (c[mismatch] !== undefined && typeof c[mismatch] !== 'string')
          refusal ??= forbid(`its ${mismatch} claim is not a string`);
        continue;
      }
      const subject = c.sub as string;
      if (kind === 'workload')
        return {
          kind: 'service-account',
          name: rule.serviceAccount,
          issuer: rule.issuer,
          subject,
          minutes: rule.tokenMinutes,
        };
      try {
        return {
          kind: 'user',
          name: userName(rule, c),
          issuer: rule.issuer,
          subject,
          minutes: rule.tokenHours * 60,
          teams: teamsOf(rule, c),
          rule,
        };
      } catch (e) {
        refusal ??= e as ModelgateError;
      }
    }
    if (verified.size === 0) throw refuse(lastError);
    if (refusal) throw refusal;
    const seen = [...verified.values()][0] ?? {};
    throw new ModelgateError(
      'FORBIDDEN',
      `no trust rule matches this token (issuer ${unverified.iss}, subject ${String(seen.sub)})`,
      { issuer: unverified.iss, subject: seen.sub },
    );
  }
}
