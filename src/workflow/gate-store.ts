import type { Actor, Model } from '../core/types.js';
import type { Facts } from '../policy/gates/facts-schema.js';
import type { GateOutcome, PolicyOutcome } from '../policy/gates/gate.js';
import type { PolicyDocument } from '../policy/gates/policy-document.js';
import type { ModelPatch } from '../registry/registry-store.js';

/** Why a gate was evaluated: a promotion request (or a review of one), a re-check, a demotion. */
export type DecisionKind = 'promotion' | 'recheck' | 'demotion';

/** A stored gate decision: exactly what the gate saw and said. */
export interface Decision {
  id: number;
  model: string;
  version: number;
  digest: string;
  alias: string;
  kind: DecisionKind;
  requestId: number | null;
  policies: PolicyOutcome[];
  engine: string;
  factsDigest: string;
  outcome: GateOutcome['outcome'];
  waivers: string[];
  /** Each blocking rule as `policy/rule: message`. */
  reasons: string[];
  /** Whether the alias moved to this version because of this decision. */
  moved: boolean;
  decidedBy: string;
  at: string;
  /** The facts snapshot (only when one decision is read). */
  facts?: Facts;
}

/** One approval or rejection of a promotion request. */
export interface Review {
  reviewer: string;
  roles: string[];
  teams: string[];
  decision: 'approve' | 'reject';
  comment: string;
  at: string;
  /** A withdrawn rejection no longer stands: who withdrew it, when and why. */
  withdrawn?: { by: string; at: string; comment: string; override: boolean };
}

export type RequestState = 'pending' | 'promoted' | 'denied' | 'rejected' | 'superseded';

/** A request to move a protected alias to a version, and what became of it. */
export interface PromotionRequest {
  id: number;
  model: string;
  version: number;
  alias: string;
  requestedBy: string;
  requestedAt: string;
  state: RequestState;
  closedAt: string | null;
  /** The latest decision taken on it. */
  decisionId: number | null;
  reviews: Review[];
}

/** A waiver: accepts findings of one rule, or the failure of one gate rule, until it expires. */
export interface Waiver {
  id: number;
  model: string;
  /** null: every version of the model. */
  version: number | null;
  findingRule: string | null;
  /** `policy/validation`. */
  rule: string | null;
  justification: string;
  approvedBy: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
  state: 'active' | 'expired' | 'revoked';
}

export interface NewWaiver {
  model: string;
  version: number | null;
  findingRule: string | null;
  rule: string | null;
  justification: string;
  expiresAt: string;
}

/** What a promotion or a review came to. */
export interface PromotionResult {
  /** current: the alias already pointed at the version; nothing was evaluated. */
  status: 'promoted' | 'pending' | 'denied' | 'rejected' | 'current';
  request: PromotionRequest | null;
  decision: Decision | null;
}

/** What a model edit changes, for its authorization. */
export interface ModelChange {
  /** The model as it is before the edit. */
  model: Model;
  /** Governed attributes it changes, as `field old -> new`; empty for a plain edit. */
  governed: string[];
  /** Whether it also changes plain fields (description, intended use, unbound tags). */
  plain: boolean;
}

/** A person or workload acting on a gate, with what separation of duties needs to know. */
export interface Reviewer {
  actor: Actor;
  roles: string[];
  teams: string[];
}

/** The answer a serving runtime gets before loading a model. */
export interface VerifyAnswer {
  approved: boolean;
  model: string;
  alias: string;
  /** The version the alias points at now, and its digest (null when it points nowhere). */
  version: number | null;
  digest: string | null;
  /** Its layout digest (paths and file digests); `digest=` may name either. */
  layoutDigest: string | null;
  /** The decision that moved the alias there (null for a plain alias or none). */
  decisionId: number | null;
  /** A re-check found the holder no longer passing (a decision id), else null. */
  flaggedBy: number | null;
  reason: string;
}

/** One version a draft policy would refuse, and why. */
export interface WhatIfFailure {
  model: string;
  version: number;
  digest: string;
  alias: string;
  /** Whether the version holds the alias now. */
  current: boolean;
  outcome: 'deny' | 'pending';
  failed: { rule: string; action: string; message: string }[];
}

export interface WhatIfReport {
  policy: { name: string; digest: string };
  evaluated: number;
  passing: number;
  failing: WhatIfFailure[];
}

/** What a re-check of every protected alias found. */
export interface RecheckReport {
  checked: number;
  flagged: { model: string; alias: string; version: number; decisionId: number }[];
  demoted: { model: string; alias: string; from: number; to: number; decisionId: number }[];
  cleared: { model: string; alias: string; version: number; decisionId: number }[];
}

/** Promotions, reviews, waivers, decisions: every change of a protected alias goes through here. */
export interface GateStore {
  readonly protectedAliases: ReadonlySet<string>;
  /** The facts a gate would see now for a version and alias (no approvals: a dry run). */
  factsFor(
    target: { model: string; version: number; alias: string },
    requestedBy: string,
  ): Promise<Facts>;
  promote(
    target: { model: string; version: number; alias: string },
    by: Reviewer,
  ): Promise<PromotionResult>;
  review(
    target: { model: string; alias: string; request: number },
    decision: 'approve' | 'reject',
    comment: string,
    by: Reviewer,
  ): Promise<PromotionResult>;
  getRequest(id: number): Promise<PromotionRequest | undefined>;
  listRequests(filter: {
    state?: RequestState;
    model?: string;
    limit: number;
  }): Promise<PromotionRequest[]>;
  getDecision(id: number): Promise<Decision | undefined>;
  listDecisions(filter: { model: string; alias?: string; limit: number }): Promise<Decision[]>;
  createWaiver(w: NewWaiver, by: Actor): Promise<Waiver>;
  revokeWaiver(model: string, id: number, by: Actor): Promise<Waiver>;
  listWaivers(filter: { model?: string; includeInactive: boolean }): Promise<Waiver[]>;
  verify(model: string, alias: string, digest: string): Promise<VerifyAnswer>;
  whatIf(doc: PolicyDocument, allVersions: boolean): Promise<WhatIfReport>;
  /** Re-evaluates the holder of every protected alias (of one model); flags, clears and demotes. */
  recheck(by: Actor, filter?: { model?: string }): Promise<RecheckReport>;
  /**
   * Edits a model in one transaction on its locked row. `authorize` is told what the edit
   * governs (risk tier, owner team, tags a gate policy binds on or may read) and whether it
   * also changes plain fields, and throws to refuse; it is synchronous because it runs inside the
   * transaction, where I/O could wait on the transaction's own connection (SQLite has one).
   * A governed change is refused to anyone who,
   * by person, authored, evaluated or requested any version of the model; it is logged as
   * model.classify, every open request is evaluated again and the holders of the model's
   * protected aliases re-checked (recheck null for a plain edit).
   */
  editModel(
    model: string,
    patch: ModelPatch,
    by: Reviewer,
    authorize: (change: ModelChange) => void,
  ): Promise<{ model: Model; requests: PromotionResult[]; recheck: RecheckReport | null }>;
  /**
   * Withdraws the rejection of a promotion request: by the approver who gave it, or by an
   * admin overriding it (`override`, logged). Until then the rejection stands for every later
   * request of the same version and alias.
   */
  withdrawRejection(
    target: { model: string; alias: string; request: number },
    comment: string,
    by: Reviewer,
    override: boolean,
  ): Promise<PromotionRequest>;
}
