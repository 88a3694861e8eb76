import { describe, expect, it } from 'vitest';
import {
  Authorizer,
  type AuthzRequest,
  PolicyValidationError,
  type Principal,
} from './authorizer.js';
import { BUILTIN_POLICIES } from './builtin-policies.js';

const authz = new Authorizer(BUILTIN_POLICIES);
const person = (name: string, roles: string[], teams: string[] = []): Principal => ({
  kind: 'user',
  name,
  roles,
  teams,
});
const fraud = { name: 'fraud', team: 'payments', tier: 'high' };
const churn = { name: 'churn', team: 'payments', tier: 'low' };
const alias = (model: typeof fraud, name: string) =>
  ({ kind: 'alias', model, name, protected: name === 'production' || name === 'staging' }) as const;
const decide = (r: AuthzRequest) => authz.decide(r);

describe('Cedar authorization with the built-in roles', () => {
  const ann = person('ann', ['contributor'], ['payments']);
  const bob = person('bob', ['contributor'], ['search']);
  const ada = person('ada', ['approver'], ['payments']);
  const rik = person('rik', ['approver'], ['risk']);

  it('lets contributors set staging on models of their own team only', () => {
    expect(
      decide({ principal: ann, action: 'setAlias', resource: alias(fraud, 'staging') }),
    ).toMatchObject({
      allowed: true,
      policies: [{ id: 'contributor-own-team-aliases' }],
    });
    const other = decide({ principal: bob, action: 'setAlias', resource: alias(fraud, 'staging') });
    expect(other.allowed).toBe(false);
    expect(other.explanation).toMatch(/no policy permits it/);
  });

  it('keeps production for approvers, and high tier for approvers of the risk team', () => {
    const contributor = decide({
      principal: ann,
      action: 'setAlias',
      resource: alias(churn, 'production'),
    });
    expect(contributor).toMatchObject({
      allowed: false,
      policies: [{ id: 'production-only-approvers' }],
    });
    expect(contributor.explanation).toMatch(/only approvers set or approve production/);
    expect(
      decide({ principal: ada, action: 'setAlias', resource: alias(churn, 'production') }).allowed,
    ).toBe(true);
    const high = decide({
      principal: ada,
      action: 'setAlias',
      resource: alias(fraud, 'production'),
    });
    expect(high).toMatchObject({
      allowed: false,
      policies: [{ id: 'high-tier-production-risk-team' }],
    });
    expect(
      decide({ principal: rik, action: 'setAlias', resource: alias(fraud, 'production') }).allowed,
    ).toBe(true);
  });

  it('forbids approving the promotion of a version one registered, even for admins', () => {
    const admin = person('root', ['admin', 'approver'], ['risk']);
    const own = decide({
      principal: admin,
      action: 'approvePromotion',
      resource: alias(churn, 'production'),
      context: { versionAuthor: 'root' },
    });
    expect(own).toMatchObject({ allowed: false, policies: [{ id: 'no-self-approval' }] });
    const other = decide({
      principal: admin,
      action: 'approvePromotion',
      resource: alias(churn, 'production'),
      context: { versionAuthor: 'ann' },
    });
    expect(other.allowed).toBe(true);
  });

  it('gives each role its actions and nothing else', () => {
    const version = { kind: 'version', model: churn, number: 3, author: 'ann' } as const;
    const viewer = person('vic', ['viewer']);
    expect(decide({ principal: viewer, action: 'read', resource: version }).allowed).toBe(true);
    expect(decide({ principal: viewer, action: 'runEvaluation', resource: version }).allowed).toBe(
      false,
    );
    const ev = { ...person('eve', ['evaluator']), kind: 'service-account' as const };
    expect(decide({ principal: ev, action: 'runEvaluation', resource: version }).allowed).toBe(
      true,
    );
    expect(
      decide({ principal: ev, action: 'pushVersion', resource: { kind: 'model', ...churn } })
        .allowed,
    ).toBe(false);
    const nobody = person('nobody', []);
    expect(
      decide({ principal: nobody, action: 'read', resource: { kind: 'registry' } }).allowed,
    ).toBe(false);
  });

  it('denies when the request does not fit the schema or a policy fails to evaluate', () => {
    // approvePromotion declares a context; leaving it out is an invalid request.
    const bad = decide({
      principal: rik,
      action: 'approvePromotion',
      resource: alias(churn, 'staging'),
    });
    expect(bad.allowed).toBe(false);
    expect(bad.errors.length).toBeGreaterThan(0);
    // A policy that errors at evaluation time (the fail-open hazard) must deny, not be skipped.
    const risky = new Authorizer({
      'allow-all': 'permit (principal, action, resource);',
      // Validates, but overflows when evaluated: Cedar would skip this forbid.
      'overflowing-forbid': `forbid (principal, action == Action::"read", resource is Model)
        when { 9223372036854775807 + 1 > 0 };`,
    });
    const d = risky.decide({
      principal: person('x', []),
      action: 'read',
      resource: { kind: 'model', ...fraud },
    });
    expect(d.allowed).toBe(false);
    expect(d.errors.join()).toMatch(/overflowing-forbid/);
    expect(d.explanation).toMatch(/failed to evaluate, which denies/);
  });

  it('refuses policies that do not validate, naming the problem', () => {
    expect(
      () =>
        new Authorizer({
          typo: 'permit (principal, action == Action::"setAlias", resource is Alias) when { resource.nmae == "x" };',
        }),
    ).toThrow(PolicyValidationError);
    expect(
      Authorizer.check({ typo: 'permit (principal, action == Action::"fly", resource);' }).join(),
    ).toMatch(/fly/);
  });
});
