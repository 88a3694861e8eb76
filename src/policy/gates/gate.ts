import { blocks, CEL_ENGINE, evaluatePolicy, factsDigest, type RuleResult } from './evaluate.js';
import type { Facts, SharedConversions } from './facts-schema.js';
import type { CompiledPolicy } from './policy-document.js';

/**
 * A failing deny rule whose reason is `Approvals` waits for people, not for evidence: when
 * every rule that blocks a promotion has this reason, the request stays pending instead of
 * being denied. A documented convention of policy documents.
 */
export const APPROVALS_REASON = 'Approvals';

/** One published policy version as a gate applies it. */
export interface GatePolicy {
  name: string;
  version: number;
  digest: string;
  compiled: CompiledPolicy;
}

/** What one policy said in a gate decision. */
export interface PolicyOutcome {
  name: string;
  version: number;
  digest: string;
  outcome: 'allow' | 'deny';
  results: RuleResult[];
}

/** The outcome of a gate: every bound policy evaluated on one facts snapshot. */
export interface GateOutcome {
  /** allow: the alias may move; pending: only approvals are missing; deny: anything else. */
  outcome: 'allow' | 'deny' | 'pending';
  engine: string;
  factsDigest: string;
  policies: PolicyOutcome[];
  /** The waivers the outcome relied on (finding and rule waivers), by id, sorted. */
  waivers: string[];
  /** Why it did not allow: each blocking rule as `policy/rule: message`; empty on allow. */
  reasons: string[];
}

/**
 * Applies every policy bound to a promotion to one facts snapshot. Pure, like evaluatePolicy:
 * replaying stored facts with the stored policy versions gives the same outcome. No bound
 * policy is a deny: a protected alias without a gate is a configuration error, not a free pass.
 */
export function decideGate(
  policies: readonly GatePolicy[],
  facts: Facts,
  /**
   * digest false: a dry run that records nothing need not hash the facts (factsDigest '').
   * compiled, shared: a what-if's batch evaluation (see evaluatePolicy).
   */
  opts: { digest?: boolean; compiled?: boolean; shared?: SharedConversions } = {},
): GateOutcome {
  const digest = opts.digest === false ? '' : factsDigest(facts);
  const outcomes: PolicyOutcome[] = policies.map((p) => {
    const r = evaluatePolicy(p.compiled, facts, digest, opts);
    return {
      name: p.name,
      version: p.version,
      digest: p.digest,
      outcome: r.outcome,
      results: r.results,
    };
  });
  // Loops rather than flatMap: a what-if runs this for every version of the portfolio.
  const blocking: { policy: string; rule: RuleResult }[] = [];
  for (const p of outcomes)
    for (const r of p.results) if (blocks(r)) blocking.push({ policy: p.name, rule: r });
  const reasons = blocking.map(({ policy, rule }) => `${policy}/${rule.name}: ${rule.message}`);
  if (policies.length === 0)
    reasons.push(
      `no gate policy binds alias ${facts.request.alias} for a ${facts.model.riskTier}-tier model; publish one (the shipped pack is in policies/)`,
    );
  const waivers = new Set<string>();
  for (const f of facts.findings) if (f.waived && f.waiverId) waivers.add(f.waiverId);
  for (const p of outcomes) for (const r of p.results) if (r.waiverId) waivers.add(r.waiverId);
  const outcome =
    reasons.length === 0
      ? 'allow'
      : policies.length > 0 && blocking.every(({ rule }) => rule.reason === APPROVALS_REASON)
        ? 'pending'
        : 'deny';
  return {
    outcome,
    engine: CEL_ENGINE,
    factsDigest: digest,
    policies: outcomes,
    waivers: [...waivers].sort(),
    reasons,
  };
}

/** How a replay compares with the stored decision. */
export interface ReplayReport {
  same: boolean;
  outcome: GateOutcome['outcome'];
  stored: GateOutcome['outcome'];
  /** Each difference: a digest, an engine, a rule's result. */
  differences: string[];
}

/**
 * Compares a re-evaluation of stored facts with the stored decision: outcome, facts digest,
 * and every rule's pass/fail and waiver.
 */
export function compareReplay(
  stored: {
    outcome: GateOutcome['outcome'];
    factsDigest: string;
    engine: string;
    policies: PolicyOutcome[];
  },
  again: GateOutcome,
): ReplayReport {
  const differences: string[] = [];
  if (again.factsDigest !== stored.factsDigest)
    differences.push(`facts digest ${again.factsDigest} differs from ${stored.factsDigest}`);
  if (again.engine !== stored.engine)
    differences.push(`engine ${again.engine} (the decision ran on ${stored.engine})`);
  for (const p of stored.policies) {
    const q = again.policies.find((x) => x.name === p.name && x.version === p.version);
    if (!q) {
      differences.push(`policy ${p.name}@${p.version} was not re-evaluated`);
      continue;
    }
    for (const r of p.results) {
      const s = q.results.find((x) => x.name === r.name);
      if (!s) differences.push(`${p.name}/${r.name}: missing from the replay`);
      else if (s.passed !== r.passed || s.waiverId !== r.waiverId)
        differences.push(
          `${p.name}/${r.name}: ${s.passed ? 'passed' : 'failed'} (stored: ${r.passed ? 'passed' : 'failed'})`,
        );
    }
  }
  if (again.outcome !== stored.outcome)
    differences.unshift(`outcome ${again.outcome} (stored: ${stored.outcome})`);
  // A newer engine alone is not a different decision; any other difference is.
  const same = differences.every((d) => d.startsWith('engine '));
  return { same, outcome: again.outcome, stored: stored.outcome, differences };
}
