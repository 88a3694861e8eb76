import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Action } from './schema.js';
import { AUTHZ_SCHEMA } from './schema.js';

/**
 * Authorization decisions with Cedar. The policy set is validated against the schema in strict
 * mode before it is used; every request is validated against the schema too; and a decision
 * is `allow` only when Cedar allows it with no evaluation error. Cedar skips a policy whose
 * evaluation fails, which can turn a failed `forbid` into an allow: here any error is a deny.
 */

/** Who is asking: a person or a non-human identity, with its teams and roles. */
export interface Principal {
  kind: 'user' | 'service-account';
  name: string;
  teams: string[];
  roles: string[];
}

/** What is acted on, with the attributes rules read. */
export type Resource =
  | { kind: 'registry' }
  | { kind: 'model'; name: string; team: string; tier: string }
  | {
      kind: 'version';
      model: { name: string; team: string; tier: string };
      number: number;
      author: string;
    }
  | {
      kind: 'alias';
      model: { name: string; team: string; tier: string };
      name: string;
      protected: boolean;
    };

export interface AuthzRequest {
  principal: Principal;
  action: Action;
  resource: Resource;
  /** Context attributes the action declares (approvePromotion: versionAuthor). */
  context?: Record<string, string | number | boolean>;
}

export interface AuthzDecision {
  allowed: boolean;
  /**
   * The policies that decided: for an allow the permits, for a deny every matching forbid;
   * empty for a default deny (no policy permits the request).
   */
  policies: { id: string; reason: string }[];
  /** Evaluation or request errors, each of which turned the decision into a deny. */
  errors: string[];
  /** One line a person can read. */
  explanation: string;
}

/** A policy set that does not validate against the schema; nothing of it took effect. */
export class PolicyValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`the policies do not validate against the schema:\n  ${problems.join('\n  ')}`);
  }
}

let nextSetId = 0;
const SCHEMA_NAME = 'modelgate-authz-schema';
let schemaParsed = false;

type Uid = { type: string; id: string };
type EntityJson = { uid: Uid; attrs: Record<string, unknown>; parents: Uid[] };

function principalEntity(p: Principal): { uid: Uid; entities: EntityJson[] } {
  const uid = { type: p.kind === 'user' ? 'User' : 'ServiceAccount', id: p.name };
  const parents = [
    ...p.teams.map((t) => ({ type: 'Team', id: t })),
    ...p.roles.map((r) => ({ type: 'Role', id: r })),
  ];
  return { uid, entities: [{ uid, attrs: { name: p.name }, parents }] };
}

function modelEntity(m: { name: string; team: string; tier: string }): EntityJson {
  return {
    uid: { type: 'Model', id: m.name },
    attrs: { team: { __entity: { type: 'Team', id: m.team } }, tier: m.tier },
    parents: [],
  };
}

function resourceEntity(r: Resource): { uid: Uid; entities: EntityJson[] } {
  switch (r.kind) {
    case 'registry': {
      const uid = { type: 'Registry', id: 'modelgate' };
      return { uid, entities: [{ uid, attrs: {}, parents: [] }] };
    }
    case 'model': {
      const e = modelEntity(r);
      return { uid: e.uid, entities: [e] };
    }
    case 'version': {
      const m = modelEntity(r.model);
      const uid = { type: 'ModelVersion', id: `${r.model.name}@${r.number}` };
      const attrs = { model: { __entity: m.uid }, author: r.author };
      return { uid, entities: [m, { uid, attrs, parents: [m.uid] }] };
    }
    case 'alias': {
      const m = modelEntity(r.model);
      const uid = { type: 'Alias', id: `${r.model.name}:${r.name}` };
      const attrs = { model: { __entity: m.uid }, name: r.name, protected: r.protected };
      return { uid, entities: [m, { uid, attrs, parents: [m.uid] }] };
    }
  }
}

const describe = (r: Resource): string =>
  r.kind === 'registry'
    ? 'the registry'
    : r.kind === 'model'
      ? `model ${r.name}`
      : r.kind === 'version'
        ? `version ${r.model.name}@${r.number}`
        : `alias ${r.name} of ${r.model.name}`;

const messages = (errors: { message: string }[]) => errors.map((e) => e.message);

/** Decisions remembered per Authorizer: a decision depends only on its policies and request. */
const MAX_REMEMBERED = 10_000;

export class Authorizer {
  private readonly setId = `modelgate-policies-${nextSetId++}`;
  private readonly reasons = new Map<string, string>();
  private readonly remembered = new Map<string, AuthzDecision>();

  /** Validates `policies` (id → Cedar text) against the schema; throws PolicyValidationError. */
  constructor(readonly policies: Readonly<Record<string, string>>) {
    const problems = Authorizer.check(policies);
    if (problems.length > 0) throw new PolicyValidationError(problems);
    if (!schemaParsed) {
      const s = cedar.preparseSchema(SCHEMA_NAME, AUTHZ_SCHEMA);
      if (s.type !== 'success') throw new Error(messages(s.errors).join('; '));
      schemaParsed = true;
    }
    const p = cedar.preparsePolicySet(this.setId, { staticPolicies: { ...policies } });
    if (p.type !== 'success') throw new PolicyValidationError(messages(p.errors));
    for (const [id, text] of Object.entries(policies)) {
      const json = cedar.policyToJson(text);
      const reason = json.type === 'success' ? json.json.annotations?.reason : undefined;
      this.reasons.set(id, reason ?? id);
    }
  }

  /** Every role some policy names (`Role::"..."`), sorted. */
  roles(): string[] {
    const found = new Set<string>();
    for (const text of Object.values(this.policies))
      for (const m of text.matchAll(/Role::"([^"\\]+)"/g)) if (m[1]) found.add(m[1]);
    return [...found].sort();
  }

  /** Problems with a policy set (parse errors and strict-mode validation errors), by policy id. */
  static check(policies: Readonly<Record<string, string>>): string[] {
    const v = cedar.validate({
      schema: AUTHZ_SCHEMA,
      policies: { staticPolicies: { ...policies } },
      validationSettings: { mode: 'strict' },
    });
    if (v.type !== 'success') return messages(v.errors);
    return v.validationErrors.map((e) => `${e.policyId}: ${e.error.message}`);
  }

  /**
   * Decides a request. Cedar evaluation is pure (no clock, no I/O) and an Authorizer's policies
   * never change, so equal requests (same principal, grants, action, resource attributes and
   * context) get the remembered decision instead of another round trip into wasm.
   */
  decide(req: AuthzRequest): AuthzDecision {
    const key = JSON.stringify([req.principal, req.action, req.resource, req.context ?? null]);
    const known = this.remembered.get(key);
    if (known) return known;
    const d = this.evaluate(req);
    if (this.remembered.size >= MAX_REMEMBERED) {
      const oldest = this.remembered.keys().next().value;
      if (oldest !== undefined) this.remembered.delete(oldest);
    }
    this.remembered.set(key, d);
    return d;
  }

  private evaluate(req: AuthzRequest): AuthzDecision {
    const p = principalEntity(req.principal);
    const r = resourceEntity(req.resource);
    const answer = cedar.statefulIsAuthorized({
      principal: p.uid,
      action: { type: 'Action', id: req.action },
      resource: r.uid,
      context: req.context ?? {},
      preparsedSchemaName: SCHEMA_NAME,
      validateRequest: true,
      preparsedPolicySetId: this.setId,
      entities: [...p.entities, ...r.entities] as never,
    });
    const who = `${req.principal.kind} ${req.principal.name}`;
    const what = `${req.action} on ${describe(req.resource)}`;
    if (answer.type !== 'success') {
      const errors = messages(answer.errors);
      return {
        allowed: false,
        policies: [],
        errors,
        explanation: `deny: ${who} may not ${what}: the request is invalid (${errors.join('; ')})`,
      };
    }
    const { decision, diagnostics } = answer.response;
    const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
    const policies = diagnostics.reason.map((id) => ({ id, reason: this.reasons.get(id) ?? id }));
    const allowed = decision === 'allow' && errors.length === 0;
    let explanation: string;
    if (allowed)
      explanation = `allow: ${who} may ${what} (${policies.map((x) => x.id).join(', ')})`;
    else if (errors.length > 0)
      explanation = `deny: ${who} may not ${what}: a policy failed to evaluate, which denies (${errors.join('; ')})`;
    else if (policies.length > 0)
      explanation = `deny: ${who} may not ${what}: ${policies.map((x) => `${x.id} (${x.reason})`).join('; ')}`;
    else explanation = `deny: ${who} may not ${what}: no policy permits it`;
    return { allowed, policies, errors, explanation };
  }
}
