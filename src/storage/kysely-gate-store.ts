import { createHash } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { canonicalize } from '../audit/canonical-json.js';
import { subjects } from '../audit/subjects.js';
import { ModelgateError } from '../core/errors.js';
import type { Actor, Model } from '../core/types.js';
import { type Attestor, decisionPredicate, PREDICATE_TYPES } from '../evidence/attestor.js';
import { STATEMENT_TYPE, versionSubject } from '../evidence/statement.js';
import {
  type EvaluationFacts,
  FACTS_SCHEMA_VERSION,
  type Facts,
  type FindingFacts,
  type ModelFacts,
  type RequestFacts,
  SharedConversions,
  type VersionFacts,
  type WaiverFacts,
} from '../policy/gates/facts-schema.js';
import { decideGate, type GateOutcome, type GatePolicy } from '../policy/gates/gate.js';
import {
  type CompiledPolicy,
  compilePolicy,
  mayReadModelTags,
  type PolicyDocument,
  policyBinds,
} from '../policy/gates/policy-document.js';
import type { ModelPatch } from '../registry/registry-store.js';
import type {
  Decision,
  DecisionKind,
  GateStore,
  ModelChange,
  NewWaiver,
  PromotionRequest,
  PromotionResult,
  RecheckReport,
  RequestState,
  Review,
  Reviewer,
  VerifyAnswer,
  Waiver,
  WhatIfFailure,
  WhatIfReport,
} from '../workflow/gate-store.js';
import {
  conflictsOf,
  describeConflicts,
  MAX_OWNER_DEPTH,
  type OwnerOf,
  type Party,
} from '../workflow/separation-of-duties.js';
import { findingRuleProblem, isBuiltinFindingRule } from '../workflow/waiver-rules.js';
import { appendAttestation, storeAttestation } from './attestation-append.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import { latestPolicyRows } from './kysely-gate-policy-store.js';
import { toModel, writeModelPatch } from './model-rows.js';
import type {
  DB,
  GateDecisionsTable,
  ModelsTable,
  PromotionRequestsTable,
  VersionsTable,
  WaiversTable,
} from './schema.js';

type Db = Kysely<DB>;
type ModelRow = Selectable<ModelsTable>;
type VersionRow = Selectable<VersionsTable>;
/** The columns of a version that its facts are made of (a what-if reads 100,000s of them). */
const FACT_VERSION_COLUMNS = [
  'id',
  'model_id',
  'number',
  'digest',
  'author',
  'created_at',
  'tags',
  'card_fields',
  'source_uri',
] as const;
type FactVersionRow = Pick<VersionRow, (typeof FACT_VERSION_COLUMNS)[number]>;

/** One slice of a what-if: the versions of some models (ids) under one alias. */
interface WhatIfUnit {
  alias: string;
  modelIds: number[];
}

/** What one slice found. */
interface WhatIfPart {
  evaluated: number;
  passing: number;
  failing: WhatIfFailure[];
}

/** The request a gate sees, and the reviews it has gathered. */
interface GateRequestFacts {
  alias: string;
  requestedBy: string;
  requestedAt: string;
  requestId: number | null;
}

/** Most versions one model-wide waiver statement names. */
const MAX_WAIVER_SUBJECTS = 10_000;

/** Longest a waiver may run: a waiver is a decision to revisit, not a permanent exemption. */
export const MAX_WAIVER_DAYS = 365;
const PAGE = 500;
/**
 * Versions per what-if slice: one read of versions, a few batched fact queries, and a bounded
 * number of facts alive at once (fewer promoted to the old generation than with larger ones).
 */
const WHATIF_UNIT_VERSIONS = 500;

const parse = <T>(text: string): T => JSON.parse(text) as T;

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function reasonsOf(policies: Decision['policies'], alias: string): string[] {
  if (policies.length === 0) return [`no gate policy binds alias ${alias}`];
  return policies.flatMap((p) =>
    p.results
      .filter((r) => !r.passed && r.action === 'deny' && r.waiverId === undefined)
      .map((r) => `${p.name}/${r.name}: ${r.message}`),
  );
}

function toWaiver(r: Selectable<WaiversTable> & { model: string }, now: string): Waiver {
  return {
    id: Number(r.id),
    model: r.model,
    version: r.version === null ? null : Number(r.version),
    findingRule: r.finding_rule,
    rule: r.rule,
    justification: r.justification,
    approvedBy: r.approved_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    state: r.revoked_at !== null ? 'revoked' : r.expires_at <= now ? 'expired' : 'active',
  };
}

/**
 * Promotions, reviews, waivers and decisions on SQLite or PostgreSQL. Every change of a
 * protected alias happens here, in one transaction with its decision record and audit events,
 * under a lock on the model's row (PostgreSQL; SQLite runs one writer at a time), so that
 * concurrent promotions of one alias are serialized and each sees the other's result.
 */
export class KyselyGateStore implements GateStore {
  private readonly db: Db;
  private readonly now: () => Date;
  private readonly compiled = new Map<string, CompiledPolicy>();
  readonly protectedAliases: ReadonlySet<string>;

  constructor(
    private readonly database: Database,
    opts: {
      protectedAliases: ReadonlySet<string>;
      now?: () => Date;
      attestor?: Attestor;
    },
  ) {
    this.db = database.db;
    this.now = opts.now ?? (() => new Date());
    this.protectedAliases = opts.protectedAliases;
    this.attestor = opts.attestor;
  }

  private readonly attestor: Attestor | undefined;

  // ---------------------------------------------------------------- policies

  private compile(doc: PolicyDocument, digest: string): CompiledPolicy {
    let c = this.compiled.get(digest);
    if (!c) {
      c = compilePolicy(doc);
      if (this.compiled.size >= 256) this.compiled.clear();
      this.compiled.set(digest, c);
    }
    return c;
  }

  /** The latest version of every gate policy, compiled. */
  private async latestPolicies(db: Db): Promise<GatePolicy[]> {
    const rows = await latestPolicyRows(db);
    return rows.map((r) => ({
      name: r.name,
      version: Number(r.version),
      digest: r.digest,
      compiled: this.compile(parse<PolicyDocument>(r.document), r.digest),
    }));
  }

  private static bound(all: GatePolicy[], model: ModelRow, alias: string): GatePolicy[] {
    const target = { alias, riskTier: model.risk_tier, modelTags: parse<string[]>(model.tags) };
    return all.filter((p) => policyBinds(p.compiled.document, target));
  }

  // ---------------------------------------------------------------- facts

  /**
   * Facts (schema v1) for several versions at once: a handful of IN queries per page of
   * versions instead of several per version. What-if over a portfolio and a single
   * promotion use the same code, so they cannot disagree.
   */
  private async loadFacts(
    db: Db,
    items: { model: ModelRow; version: FactVersionRow; request: GateRequestFacts }[],
    now: Date,
  ): Promise<Facts[]> {
    const nowIso = now.toISOString();
    const out: Facts[] = [];
    for (const page of chunks(items, PAGE)) {
      const versionIds = [...new Set(page.map((i) => i.version.id))];
      const modelIds = [...new Set(page.map((i) => i.model.id))];
      const requestIds = [
        ...new Set(page.map((i) => i.request.requestId).filter((x): x is number => x !== null)),
      ];
      const [evaluations, findings, lineage, waivers, reviews, standing] = await Promise.all([
        db
          .selectFrom('evaluations')
          .select([
            'id',
            'version_id',
            'evaluator_id',
            'evaluator_version',
            'status',
            'requested_by',
            'finished_at',
            'metrics',
          ])
          .where('version_id', 'in', versionIds)
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
        db
          .selectFrom('findings')
          .innerJoin('evaluations', 'evaluations.id', 'findings.evaluation_id')
          .select([
            'findings.id',
            'findings.version_id',
            'findings.rule_id',
            'findings.severity',
            'findings.title',
            'findings.evaluation_id',
            'evaluations.evaluator_id',
          ])
          .where('findings.version_id', 'in', versionIds)
          .orderBy('findings.id')
          .execute(),
        db
          .selectFrom('lineage_edges as e')
          .leftJoin('datasets as d', 'd.id', 'e.target_dataset_id')
          .leftJoin('versions as tv', 'tv.id', 'e.target_version_id')
          .leftJoin('models as tm', 'tm.id', 'tv.model_id')
          .select([
            'e.version_id',
            'e.relation',
            'e.target_kind',
            'e.target_uri',
            'd.name as dataset',
            'tv.number as target_number',
            'tm.name as target_model',
          ])
          .where('e.version_id', 'in', versionIds)
          .orderBy('e.id')
          .execute(),
        db
          .selectFrom('waivers')
          .selectAll()
          .where('model_id', 'in', modelIds)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', nowIso)
          .orderBy('id')
          .execute(),
        requestIds.length === 0
          ? Promise.resolve([])
          : db
              .selectFrom('promotion_reviews')
              .selectAll()
              .where('request_id', 'in', requestIds)
              .orderBy('id')
              .execute(),
        // A rejection stands for its version's bytes and alias until withdrawn: an earlier
        // request's rejection is part of every later request's approvals, also for the same
        // bytes pushed again as another version or under another model.
        requestIds.length === 0
          ? Promise.resolve([])
          : db
              .selectFrom('promotion_reviews as r')
              .innerJoin('promotion_requests as q', 'q.id', 'r.request_id')
              .innerJoin('versions as qv', (j) =>
                j.onRef('qv.model_id', '=', 'q.model_id').onRef('qv.number', '=', 'q.version'),
              )
              .leftJoin('review_withdrawals as w', 'w.review_id', 'r.id')
              .select([
                'r.reviewer',
                'r.roles',
                'r.teams',
                'r.at',
                'r.request_id',
                'q.model_id',
                'qv.digest',
                'q.alias',
              ])
              .where('r.decision', '=', 'reject')
              .where('w.id', 'is', null)
              .where(
                'qv.digest',
                'in',
                page.filter((i) => i.request.requestId !== null).map((i) => i.version.digest),
              )
              .orderBy('r.id')
              .execute(),
      ]);
      const group = <T, K>(xs: T[], key: (x: T) => K) => {
        const m = new Map<K, T[]>();
        for (const x of xs) {
          const k = key(x);
          const list = m.get(k);
          if (list) list.push(x);
          else m.set(k, [x]);
        }
        return m;
      };
      const evalsBy = group(evaluations, (e) => Number(e.version_id));
      const findingsBy = group(findings, (f) => Number(f.version_id));
      const lineageBy = group(lineage, (e) => Number(e.version_id));
      const waiversBy = group(waivers, (w) => Number(w.model_id));
      const reviewsBy = group(reviews, (r) => Number(r.request_id));
      const standingBy = group(standing, (r) => `${r.digest}:${r.alias}`);
      // Owner chains, for waivers and approvals: only read when this page has any.
      const ownerOf: OwnerOf =
        waivers.length === 0 && reviews.length === 0 ? () => null : await this.ownerMap(db);
      // A model's facts are the same for each of its versions, and a request the same for the
      // versions that share it: build them once (a what-if converts them once too).
      const modelFacts = new Map<number, ModelFacts>();
      const requests = new Map<GateRequestFacts, RequestFacts>();
      const requestFacts = (r: GateRequestFacts) => {
        let x = requests.get(r);
        if (!x) {
          x = { alias: r.alias, requestedBy: r.requestedBy, requestedAt: r.requestedAt };
          requests.set(r, x);
        }
        return x;
      };
      for (const { model: m, version: v, request } of page) {
        const partiesOfVersion = [
          v.author,
          request.requestedBy,
          ...(evalsBy.get(Number(v.id)) ?? []).map((e) => e.requested_by),
        ];
        const versionWaivers = (waiversBy.get(Number(m.id)) ?? []).filter(
          (w) => w.version === null || Number(w.version) === Number(v.number),
        );
        // A waiver never clears its own approver's work: not a later version they pushed
        // under a model-wide waiver, nor one they evaluated or asked to promote since.
        const inForce =
          versionWaivers.length === 0
            ? versionWaivers
            : versionWaivers.filter(
                (w) =>
                  conflictsOf(
                    w.approved_by,
                    [{ role: 'party', identities: partiesOfVersion }],
                    ownerOf,
                  ).length === 0,
              );
        // Optional fields are set after the literal, not spread into it: this runs for every
        // version a what-if evaluates, and V8 builds literals far faster than it spreads.
        const waiverFacts: WaiverFacts[] = inForce.map((w) => {
          const x: WaiverFacts = {
            id: String(w.id),
            scope: w.version === null ? 'model' : 'version',
            expiresAt: w.expires_at,
            approvedBy: w.approved_by,
          };
          if (w.finding_rule !== null) x.findingRule = w.finding_rule;
          if (w.rule !== null) x.rule = w.rule;
          return x;
        });
        const findingFacts: FindingFacts[] = (findingsBy.get(Number(v.id)) ?? []).map((f) => {
          // A version-scoped waiver is more specific than a model-wide one: prefer it.
          const w =
            inForce.find((x) => x.finding_rule === f.rule_id && x.version !== null) ??
            inForce.find((x) => x.finding_rule === f.rule_id);
          const x: FindingFacts = {
            id: String(f.id),
            ruleId: f.rule_id,
            severity: f.severity,
            title: f.title,
            evaluator: f.evaluator_id,
            evaluationId: f.evaluation_id,
            waived: w !== undefined,
          };
          if (w) x.waiverId = String(w.id);
          return x;
        });
        const version: VersionFacts = {
          model: m.name,
          number: Number(v.number),
          digest: v.digest,
          author: v.author,
          createdAt: v.created_at,
          tags: parse<string[]>(v.tags),
          card: parse<Record<string, unknown>>(v.card_fields),
        };
        if (v.source_uri !== null) version.sourceUri = v.source_uri;
        let model = modelFacts.get(Number(m.id));
        if (!model) {
          model = {
            name: m.name,
            ownerTeam: m.owner_team,
            riskTier: m.risk_tier,
            tags: parse<string[]>(m.tags),
          };
          modelFacts.set(Number(m.id), model);
        }
        out.push({
          schemaVersion: FACTS_SCHEMA_VERSION,
          version,
          model,
          evaluations: (evalsBy.get(Number(v.id)) ?? []).map((e) => {
            const x: EvaluationFacts = {
              id: e.id,
              evaluator: e.evaluator_id,
              evaluatorVersion: e.evaluator_version,
              status: e.status,
              // An evaluation ran on this version, whose bytes never change.
              digest: v.digest,
              ranBy: e.requested_by,
              metrics: parse<Record<string, number>>(e.metrics),
            };
            if (e.finished_at !== null) x.finishedAt = e.finished_at;
            return x;
          }),
          findings: findingFacts,
          lineage: (lineageBy.get(Number(v.id)) ?? []).map((e) => ({
            relation: e.relation,
            kind: e.target_kind,
            target:
              e.target_kind === 'dataset'
                ? (e.dataset ?? '')
                : e.target_kind === 'version'
                  ? `${e.target_model}@${e.target_number}`
                  : (e.target_uri ?? ''),
          })),
          request: requestFacts(request),
          approvals:
            request.requestId === null
              ? []
              : [
                  ...(standingBy.get(`${v.digest}:${request.alias}`) ?? []).filter(
                    (r) => Number(r.request_id) !== request.requestId,
                  ),
                  // An approval counts only while its reviewer has no part in the version:
                  // one who evaluated it (or whose account did) since approving does not.
                  ...(reviewsBy.get(request.requestId) ?? []).filter(
                    (r) =>
                      r.decision !== 'approve' ||
                      conflictsOf(
                        r.reviewer,
                        [{ role: 'party', identities: partiesOfVersion }],
                        ownerOf,
                      ).length === 0,
                  ),
                ].map((r) => ({
                  approver: r.reviewer,
                  roles: parse<string[]>(r.roles),
                  teams: parse<string[]>(r.teams),
                  decision: ('decision' in r ? r.decision : 'reject') as 'approve' | 'reject',
                  at: r.at,
                })),
          waivers: waiverFacts,
          now: nowIso,
        });
      }
    }
    return out;
  }

  async factsFor(
    target: { model: string; version: number; alias: string },
    requestedBy: string,
  ): Promise<Facts> {
    const m = await this.modelRow(this.db, target.model, false);
    const v = await this.versionRow(this.db, m, target.version);
    const now = this.now();
    const request = {
      alias: target.alias,
      requestedBy,
      requestedAt: now.toISOString(),
      requestId: null,
    };
    const [facts] = await this.loadFacts(this.db, [{ model: m, version: v, request }], now);
    return facts!;
  }

  // ---------------------------------------------------------------- rows

  private async modelRow(db: Db, name: string, lock: boolean): Promise<ModelRow> {
    let q = db.selectFrom('models').selectAll().where('name', '=', name);
    if (lock && this.database.caps.rowLocks) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row)
      throw new ModelgateError('MODEL_NOT_FOUND', `model ${name} not found`, { model: name });
    return row;
  }

  private async versionRow(db: Db, m: ModelRow, number: number): Promise<VersionRow> {
    const row = await db
      .selectFrom('versions')
      .selectAll()
      .where('model_id', '=', m.id)
      .where('number', '=', number)
      .executeTakeFirst();
    if (!row)
      throw new ModelgateError('VERSION_NOT_FOUND', `model ${m.name} has no version ${number}`, {
        model: m.name,
        version: number,
      });
    return row;
  }

  private async aliasRow(db: Db, m: ModelRow, alias: string) {
    return db
      .selectFrom('aliases')
      .innerJoin('versions', 'versions.id', 'aliases.version_id')
      .select([
        'aliases.version_id',
        'aliases.decision_id',
        'versions.number',
        'versions.digest',
        'versions.layout_digest',
        'aliases.updated_by',
        'aliases.updated_at',
      ])
      .where('aliases.model_id', '=', m.id)
      .where('aliases.name', '=', alias)
      .executeTakeFirst();
  }

  private requireProtected(alias: string) {
    if (!this.protectedAliases.has(alias))
      throw new ModelgateError(
        'ALIAS_NOT_PROTECTED',
        `${alias} is not a protected alias (protected: ${[...this.protectedAliases].join(', ')}); set it with modelgate alias set`,
        { alias },
      );
  }

  // ---------------------------------------------------------------- separation of duties

  /**
   * Who took part in the work on some versions of a model (null: every version): their
   * authors, whoever ran or imported their evaluations, and (requests: 'all') whoever asked to
   * promote them.
   */
  private async partiesOf(
    db: Db,
    m: ModelRow,
    numbers: number[] | null,
    opts: { requests: 'none' | 'all' },
  ): Promise<Party[]> {
    if (numbers !== null && numbers.length === 0) return [];
    const what =
      numbers?.length === 1 ? `${m.name}@${numbers[0]}` : `a version of ${m.name} it covers`;
    const versions = await db
      .selectFrom('versions')
      .select(['id', 'author'])
      .where('model_id', '=', m.id)
      .$if(numbers !== null, (q) => q.where('number', 'in', numbers ?? []))
      .execute();
    const ids = versions.map((x) => x.id);
    const evaluators =
      ids.length === 0
        ? []
        : await db
            .selectFrom('evaluations')
            .select('requested_by')
            .distinct()
            .where('version_id', 'in', ids)
            .execute();
    const requesters =
      opts.requests === 'none'
        ? []
        : await db
            .selectFrom('promotion_requests')
            .select('requested_by')
            .distinct()
            .where('model_id', '=', m.id)
            .$if(numbers !== null, (q) => q.where('version', 'in', numbers ?? []))
            .execute();
    const one = numbers?.length === 1;
    return [
      {
        role: one ? `the author of ${what}` : `an author of ${what}`,
        identities: [...new Set(versions.map((x) => x.author))],
      },
      {
        role: `whoever ran or imported an evaluation of ${what}`,
        identities: evaluators.map((x) => x.requested_by),
      },
      {
        role: one
          ? `the requester of a promotion of ${what}`
          : `a requester of a promotion of ${what}`,
        identities: requesters.map((x) => x.requested_by),
      },
    ].filter((p) => p.identities.length > 0);
  }

  /** Every service account's owner (few rows): what a page of facts needs for its waivers. */
  private async ownerMap(db: Db): Promise<OwnerOf> {
    const rows = await db
      .selectFrom('identities')
      .select(['name', 'owner'])
      .where('owner', 'is not', null)
      .execute();
    const owners = new Map(rows.map((r) => [r.name, r.owner]));
    return (name) => owners.get(name) ?? null;
  }

  /** The owners of the identities named, and of their owners, as far as chains go. */
  private async ownerLookup(db: Db, names: Iterable<string>): Promise<OwnerOf> {
    const owners = new Map<string, string | null>();
    let wanted = [...new Set(names)];
    for (let depth = 0; depth <= MAX_OWNER_DEPTH && wanted.length > 0; depth++) {
      const rows = await db
        .selectFrom('identities')
        .select(['name', 'owner'])
        .where('name', 'in', wanted)
        .execute();
      for (const w of wanted) owners.set(w, null);
      for (const r of rows) owners.set(r.name, r.owner);
      wanted = rows.map((r) => r.owner).filter((o): o is string => o !== null && !owners.has(o));
    }
    return (name) => owners.get(name) ?? null;
  }

  /** Throws SEPARATION_OF_DUTIES when `who` (by person) is one of the parties. */
  private async refuseConflicts(
    db: Db,
    who: string,
    parties: Party[],
    what: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const ownerOf = await this.ownerLookup(db, [who, ...parties.flatMap((p) => p.identities)]);
    const conflicts = conflictsOf(who, parties, ownerOf);
    if (conflicts.length > 0)
      throw new ModelgateError(
        'SEPARATION_OF_DUTIES',
        `${what}: ${who} is ${describeConflicts(who, conflicts)}`,
        { ...details, identity: who, roles: conflicts.map((c) => c.role) },
      );
  }

  private toDecision(r: Selectable<GateDecisionsTable>, model: string, withFacts: boolean) {
    const policies = parse<Decision['policies']>(r.policies);
    const d: Decision = {
      id: Number(r.id),
      model,
      version: Number(r.version),
      digest: r.digest,
      alias: r.alias,
      kind: r.kind as DecisionKind,
      requestId: r.request_id === null ? null : Number(r.request_id),
      policies,
      engine: r.engine,
      factsDigest: r.facts_digest,
      outcome: r.outcome as Decision['outcome'],
      waivers: parse<string[]>(r.waivers),
      reasons: r.outcome === 'allow' ? [] : reasonsOf(policies, r.alias),
      moved: Number(r.moved) === 1,
      decidedBy: r.decided_by,
      at: r.at,
    };
    if (withFacts) d.facts = parse<Facts>(r.facts);
    return d;
  }

  private async requestOf(
    db: Db,
    r: Selectable<PromotionRequestsTable>,
    model: string,
  ): Promise<PromotionRequest> {
    const reviews = await db
      .selectFrom('promotion_reviews as r')
      .leftJoin('review_withdrawals as w', 'w.review_id', 'r.id')
      .selectAll('r')
      .select([
        'w.withdrawn_by',
        'w.at as withdrawn_at',
        'w.comment as withdrawn_comment',
        'w.override',
      ])
      .where('r.request_id', '=', r.id)
      .orderBy('r.id')
      .execute();
    return {
      id: Number(r.id),
      model,
      version: Number(r.version),
      alias: r.alias,
      requestedBy: r.requested_by,
      requestedAt: r.requested_at,
      state: r.state as RequestState,
      closedAt: r.closed_at,
      decisionId: r.decision_id === null ? null : Number(r.decision_id),
      reviews: reviews.map((x): Review => {
        const review: Review = {
          reviewer: x.reviewer,
          roles: parse<string[]>(x.roles),
          teams: parse<string[]>(x.teams),
          decision: x.decision as Review['decision'],
          comment: x.comment,
          at: x.at,
        };
        if (x.withdrawn_by !== null && x.withdrawn_at !== null)
          review.withdrawn = {
            by: x.withdrawn_by,
            at: x.withdrawn_at,
            comment: x.withdrawn_comment ?? '',
            override: Number(x.override) === 1,
          };
        return review;
      }),
    };
  }

  // ---------------------------------------------------------------- the gate

  /** Evaluates, records the decision and its audit event, and moves the alias on allow. */
  private async gate(
    trx: Db,
    m: ModelRow,
    v: VersionRow,
    request: GateRequestFacts,
    kind: DecisionKind,
    by: Actor,
    at: Date,
  ): Promise<{ decision: Decision; outcome: GateOutcome }> {
    const policies = KyselyGateStore.bound(await this.latestPolicies(trx), m, request.alias);
    const [facts] = await this.loadFacts(trx, [{ model: m, version: v, request }], at);
    const outcome = decideGate(policies, facts!);
    const moved = outcome.outcome === 'allow';
    const id = await this.record(trx, m, v, request, kind, outcome, facts!, by, at, moved);
    const row = await trx
      .selectFrom('gate_decisions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const decision = this.toDecision(row, m.name, false);
    if (moved) await this.moveAlias(trx, m, v, request.alias, id, kind, by, at.toISOString());
    return { decision, outcome };
  }

  private async moveAlias(
    trx: Db,
    m: ModelRow,
    v: VersionRow,
    alias: string,
    decisionId: number,
    kind: DecisionKind,
    by: Actor,
    at: string,
  ) {
    const prev = await this.aliasRow(trx, m, alias);
    await trx
      .insertInto('aliases')
      .values({
        model_id: m.id,
        name: alias,
        version_id: v.id,
        updated_at: at,
        updated_by: by.identity,
        decision_id: decisionId,
      })
      .onConflict((oc) =>
        oc.columns(['model_id', 'name']).doUpdateSet({
          version_id: v.id,
          updated_at: at,
          updated_by: by.identity,
          decision_id: decisionId,
        }),
      )
      .execute();
    await trx
      .insertInto('alias_events')
      .values({
        model_id: m.id,
        alias,
        from_version: prev ? Number(prev.number) : null,
        to_version: Number(v.number),
        actor: by.identity,
        credential_id: by.credentialId,
        at,
      })
      .execute();
    await appendAudit(
      trx,
      {
        actor: by,
        action: kind === 'demotion' ? 'alias.demote' : 'alias.promote',
        subject: subjects.alias(m.name, alias),
        content: {
          model: m.name,
          alias,
          version: Number(v.number),
          previous: prev ? Number(prev.number) : null,
          decision: decisionId,
        },
      },
      at,
    );
  }

  private async closeRequest(
    trx: Db,
    m: ModelRow,
    requestId: number,
    state: RequestState,
    decisionId: number | null,
    by: Actor,
    at: string,
  ) {
    await trx
      .updateTable('promotion_requests')
      .set({
        state,
        ...(state !== 'pending' && { closed_at: at }),
        ...(decisionId !== null && { decision_id: decisionId }),
      })
      .where('id', '=', requestId)
      .execute();
    if (state === 'pending') return;
    const r = await trx
      .selectFrom('promotion_requests')
      .select(['alias', 'version'])
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow();
    await appendAudit(
      trx,
      {
        actor: by,
        action: `promotion.${state}`,
        subject: subjects.request(m.name, r.alias, requestId),
        content: {
          id: requestId,
          model: m.name,
          version: Number(r.version),
          alias: r.alias,
          state,
          decisionId,
        },
      },
      at,
    );
    if (state !== 'promoted') return;
    // The alias moved: every other open request for it competes with a version no longer
    // current and must be asked again.
    const others = await trx
      .selectFrom('promotion_requests')
      .select(['id', 'version'])
      .where('model_id', '=', m.id)
      .where('alias', '=', r.alias)
      .where('state', '=', 'pending')
      .where('id', '!=', requestId)
      .execute();
    for (const o of others) {
      await trx
        .updateTable('promotion_requests')
        .set({ state: 'superseded', closed_at: at })
        .where('id', '=', o.id)
        .execute();
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'promotion.superseded',
          subject: subjects.request(m.name, r.alias, Number(o.id)),
          content: {
            id: Number(o.id),
            model: m.name,
            version: Number(o.version),
            alias: r.alias,
            state: 'superseded',
            by: requestId,
          },
        },
        at,
      );
    }
  }

  /** A request of a model's alias, with the model's row locked; REQUEST_NOT_FOUND otherwise. */
  private async lockedRequest(
    trx: Db,
    target: { model: string; alias: string; request: number },
  ): Promise<{ m: ModelRow; req: Selectable<PromotionRequestsTable> }> {
    const m = await this.modelRow(trx, target.model, true);
    const req = await trx
      .selectFrom('promotion_requests')
      .selectAll()
      .where('id', '=', target.request)
      .where('model_id', '=', m.id)
      .where('alias', '=', target.alias)
      .executeTakeFirst();
    if (!req)
      throw new ModelgateError(
        'REQUEST_NOT_FOUND',
        `no promotion request ${target.request} for ${target.model}@${target.alias}`,
        { request: target.request },
      );
    return { m, req };
  }

  private static stateOf(outcome: GateOutcome['outcome']): RequestState {
    return outcome === 'allow' ? 'promoted' : outcome === 'pending' ? 'pending' : 'denied';
  }

  async promote(
    target: { model: string; version: number; alias: string },
    by: Reviewer,
  ): Promise<PromotionResult> {
    this.requireProtected(target.alias);
    return this.db.transaction().execute(async (trx) => {
      const m = await this.modelRow(trx, target.model, true);
      const v = await this.versionRow(trx, m, target.version);
      const current = await this.aliasRow(trx, m, target.alias);
      if (current && Number(current.version_id) === Number(v.id))
        return { status: 'current', request: null, decision: null };
      const at = this.now();
      const iso = at.toISOString();
      // Asking again for a version with an open request re-evaluates that request, with its
      // reviews and its original requester.
      let req = await trx
        .selectFrom('promotion_requests')
        .selectAll()
        .where('model_id', '=', m.id)
        .where('alias', '=', target.alias)
        .where('version', '=', target.version)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if (!req) {
        req = await trx
          .insertInto('promotion_requests')
          .values({
            model_id: m.id,
            version: target.version,
            alias: target.alias,
            requested_by: by.actor.identity,
            credential: by.actor.credentialId,
            requested_at: iso,
            state: 'pending',
            closed_at: null,
            decision_id: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await appendAudit(
          trx,
          {
            actor: by.actor,
            action: 'promotion.request',
            subject: subjects.request(m.name, target.alias, Number(req.id)),
            content: {
              id: Number(req.id),
              model: m.name,
              version: target.version,
              digest: v.digest,
              alias: target.alias,
            },
          },
          iso,
        );
      }
      const requestId = Number(req.id);
      const { decision, outcome } = await this.gate(
        trx,
        m,
        v,
        {
          alias: target.alias,
          requestedBy: req.requested_by,
          requestedAt: req.requested_at,
          requestId,
        },
        'promotion',
        by.actor,
        at,
      );
      const state = KyselyGateStore.stateOf(outcome.outcome);
      await this.closeRequest(trx, m, requestId, state, decision.id, by.actor, iso);
      const fresh = await trx
        .selectFrom('promotion_requests')
        .selectAll()
        .where('id', '=', requestId)
        .executeTakeFirstOrThrow();
      return {
        status: state === 'promoted' ? 'promoted' : state === 'pending' ? 'pending' : 'denied',
        request: await this.requestOf(trx, fresh, m.name),
        decision,
      };
    });
  }

  async review(
    target: { model: string; alias: string; request: number },
    verdict: 'approve' | 'reject',
    comment: string,
    by: Reviewer,
  ): Promise<PromotionResult> {
    return this.db.transaction().execute(async (trx) => {
      const { m, req } = await this.lockedRequest(trx, target);
      if (req.state !== 'pending')
        throw new ModelgateError(
          'REQUEST_CLOSED',
          `promotion request ${req.id} is ${req.state}; request the promotion again`,
          { request: Number(req.id), state: req.state },
        );
      const v = await this.versionRow(trx, m, Number(req.version));
      const who = by.actor.identity;
      if (verdict === 'approve') {
        // Everyone who asked to promote this version counts, not only this request's asker.
        const parties = await this.partiesOf(trx, m, [Number(v.number)], { requests: 'all' });
        await this.refuseConflicts(
          trx,
          who,
          parties,
          `${who} cannot approve promotion request ${req.id}`,
          { request: Number(req.id), identity: who },
        );
      }
      const already = await trx
        .selectFrom('promotion_reviews')
        .select('id')
        .where('request_id', '=', req.id)
        .where('reviewer', '=', who)
        .executeTakeFirst();
      if (already)
        throw new ModelgateError(
          'ALREADY_REVIEWED',
          `${who} has already reviewed promotion request ${req.id}`,
          { request: Number(req.id) },
        );
      const at = this.now();
      const iso = at.toISOString();
      await trx
        .insertInto('promotion_reviews')
        .values({
          request_id: req.id,
          reviewer: who,
          roles: JSON.stringify([...by.roles].sort()),
          teams: JSON.stringify([...by.teams].sort()),
          decision: verdict,
          comment,
          credential: by.actor.credentialId,
          at: iso,
        })
        .execute();
      await appendAudit(
        trx,
        {
          actor: by.actor,
          action: `promotion.${verdict}`,
          subject: subjects.request(m.name, req.alias, Number(req.id)),
          content: {
            id: Number(req.id),
            model: m.name,
            version: Number(req.version),
            alias: req.alias,
            decision: verdict,
            comment,
            roles: [...by.roles].sort(),
            teams: [...by.teams].sort(),
          },
        },
        iso,
      );
      await appendAttestation(
        trx,
        this.attestor,
        {
          modelId: m.id,
          model: m.name,
          version: Number(v.number),
          digest: v.digest,
          kind: 'approval',
          ref: `${req.id}/${who}`,
          predicateType: PREDICATE_TYPES.approval,
          predicate: {
            request: Number(req.id),
            alias: req.alias,
            requestedBy: req.requested_by,
            reviewer: who,
            roles: [...by.roles].sort(),
            teams: [...by.teams].sort(),
            decision: verdict,
            comment,
            at: iso,
          },
        },
        by.actor,
        iso,
      );
      let status: PromotionResult['status'] = 'rejected';
      let decision: Decision | null = null;
      if (verdict === 'reject') {
        await this.closeRequest(trx, m, Number(req.id), 'rejected', null, by.actor, iso);
      } else {
        const g = await this.gate(
          trx,
          m,
          v,
          {
            alias: req.alias,
            requestedBy: req.requested_by,
            requestedAt: req.requested_at,
            requestId: Number(req.id),
          },
          'promotion',
          by.actor,
          at,
        );
        decision = g.decision;
        const state = KyselyGateStore.stateOf(g.outcome.outcome);
        await this.closeRequest(trx, m, Number(req.id), state, decision.id, by.actor, iso);
        status = state === 'promoted' ? 'promoted' : state === 'pending' ? 'pending' : 'denied';
      }
      const fresh = await trx
        .selectFrom('promotion_requests')
        .selectAll()
        .where('id', '=', req.id)
        .executeTakeFirstOrThrow();
      return { status, request: await this.requestOf(trx, fresh, m.name), decision };
    });
  }

  async withdrawRejection(
    target: { model: string; alias: string; request: number },
    comment: string,
    by: Reviewer,
    override: boolean,
  ): Promise<PromotionRequest> {
    return this.db.transaction().execute(async (trx) => {
      const { m, req } = await this.lockedRequest(trx, target);
      const rejection = await trx
        .selectFrom('promotion_reviews as r')
        .leftJoin('review_withdrawals as w', 'w.review_id', 'r.id')
        .select(['r.id', 'r.reviewer', 'w.id as withdrawal'])
        .where('r.request_id', '=', req.id)
        .where('r.decision', '=', 'reject')
        .executeTakeFirst();
      if (!rejection || rejection.withdrawal !== null)
        throw new ModelgateError(
          'REJECTION_NOT_FOUND',
          `promotion request ${req.id} has no standing rejection${rejection ? ` (${rejection.reviewer}'s was withdrawn)` : ''}`,
          { request: Number(req.id) },
        );
      const who = by.actor.identity;
      if (rejection.reviewer !== who && !override)
        throw new ModelgateError(
          'FORBIDDEN',
          `only ${rejection.reviewer}, who rejected request ${req.id}, withdraws the rejection; an admin may override it with a justification (override: true)`,
          { request: Number(req.id), reviewer: rejection.reviewer },
        );
      const iso = this.now().toISOString();
      const overridden = rejection.reviewer !== who;
      await trx
        .insertInto('review_withdrawals')
        .values({
          review_id: rejection.id,
          withdrawn_by: who,
          credential: by.actor.credentialId,
          comment,
          override: overridden ? 1 : 0,
          at: iso,
        })
        .execute();
      await appendAudit(
        trx,
        {
          actor: by.actor,
          action: 'promotion.rejection-withdrawn',
          subject: subjects.request(m.name, req.alias, Number(req.id)),
          content: {
            id: Number(req.id),
            model: m.name,
            version: Number(req.version),
            alias: req.alias,
            reviewer: rejection.reviewer,
            withdrawnBy: who,
            override: overridden,
            comment,
          },
        },
        iso,
      );
      return this.requestOf(trx, req, m.name);
    });
  }

  // ---------------------------------------------------------------- classification

  /**
   * The attributes of a patch that decide which gate rules bind the model, as `field old ->
   * new`: the risk tier, the owner team, and tags a policy binds on or may read.
   */
  private static governed(m: ModelRow, patch: ModelPatch, policies: GatePolicy[]): string[] {
    const out: string[] = [];
    if (patch.riskTier !== undefined && patch.riskTier !== m.risk_tier)
      out.push(`riskTier ${m.risk_tier} -> ${patch.riskTier}`);
    if (patch.ownerTeam !== undefined && patch.ownerTeam !== m.owner_team)
      out.push(`ownerTeam ${m.owner_team} -> ${patch.ownerTeam}`);
    if (patch.tags !== undefined) {
      const before = new Set(parse<string[]>(m.tags));
      const after = new Set(patch.tags);
      const changed = [
        ...[...before].filter((t) => !after.has(t)),
        ...[...after].filter((t) => !before.has(t)),
      ];
      if (changed.length > 0) {
        const bound = new Set(
          policies.flatMap((p) => p.compiled.document.spec.bindings.modelTags ?? []),
        );
        const readsTags = policies.some((p) => mayReadModelTags(p.compiled.document));
        const governed = readsTags ? changed : changed.filter((t) => bound.has(t));
        if (governed.length > 0) out.push(`tags ${governed.sort().join(', ')}`);
      }
    }
    return out;
  }

  async editModel(
    model: string,
    patch: ModelPatch,
    by: Reviewer,
    authorize: (change: ModelChange) => void,
  ): Promise<{ model: Model; requests: PromotionResult[]; recheck: RecheckReport | null }> {
    let classified = false;
    const done = await this.db.transaction().execute(async (trx) => {
      // What the edit governs is decided on the locked row and the policies in force now, in
      // the transaction that writes it: a concurrent classification cannot be undone by an
      // edit that looked plain when it was checked.
      const m = await this.modelRow(trx, model, true);
      const governed = KyselyGateStore.governed(m, patch, await this.latestPolicies(trx));
      const plain =
        patch.description !== undefined ||
        patch.intendedUse !== undefined ||
        (patch.tags !== undefined && !governed.some((g) => g.startsWith('tags ')));
      authorize({ model: toModel(m), governed, plain: plain || governed.length === 0 });
      const at = this.now();
      const iso = at.toISOString();
      if (governed.length === 0) {
        // Unchanged governed fields are not written: only what the edit may change.
        const { riskTier: _t, ownerTeam: _o, ...rest } = patch;
        const updated = await writeModelPatch(
          trx,
          m.name,
          rest,
          by.actor,
          iso,
          'model.update',
          appendAudit,
        );
        return { model: updated, requests: [] };
      }
      classified = true;
      // Nobody with a part in any version of the model (its authors, whoever evaluated it or
      // asked to promote it, and their owners) decides which rules bind it.
      await this.refuseConflicts(
        trx,
        by.actor.identity,
        await this.partiesOf(trx, m, null, { requests: 'all' }),
        `${by.actor.identity} cannot change the risk tier, owner team or bound tags of ${m.name} (${governed.join('; ')})`,
        { model: m.name },
      );
      const pending = await trx
        .selectFrom('promotion_requests')
        .selectAll()
        .where('model_id', '=', m.id)
        .where('state', '=', 'pending')
        .orderBy('id')
        .execute();
      const updated = await writeModelPatch(
        trx,
        m.name,
        patch,
        by.actor,
        iso,
        'model.classify',
        appendAudit,
      );
      // Open requests were evaluated under the old classification: evaluate each again.
      const fresh = await this.modelRow(trx, m.name, false);
      const requests: PromotionResult[] = [];
      for (const r of pending) {
        const still = await trx
          .selectFrom('promotion_requests')
          .select('state')
          .where('id', '=', r.id)
          .executeTakeFirstOrThrow();
        if (still.state !== 'pending') continue;
        const v = await this.versionRow(trx, fresh, Number(r.version));
        const g = await this.gate(
          trx,
          fresh,
          v,
          {
            alias: r.alias,
            requestedBy: r.requested_by,
            requestedAt: r.requested_at,
            requestId: Number(r.id),
          },
          'promotion',
          by.actor,
          at,
        );
        const state = KyselyGateStore.stateOf(g.outcome.outcome);
        await this.closeRequest(trx, fresh, Number(r.id), state, g.decision.id, by.actor, iso);
        const after = await trx
          .selectFrom('promotion_requests')
          .selectAll()
          .where('id', '=', r.id)
          .executeTakeFirstOrThrow();
        requests.push({
          status: state === 'promoted' ? 'promoted' : state === 'pending' ? 'pending' : 'denied',
          request: await this.requestOf(trx, after, m.name),
          decision: g.decision,
        });
      }
      return { model: updated, requests };
    });
    // The holders of its protected aliases may no longer pass (or pass again).
    const recheck = classified ? await this.recheck(by.actor, { model }) : null;
    return { ...done, recheck };
  }

  // ---------------------------------------------------------------- reads

  async getRequest(id: number): Promise<PromotionRequest | undefined> {
    const r = await this.db
      .selectFrom('promotion_requests')
      .innerJoin('models', 'models.id', 'promotion_requests.model_id')
      .selectAll('promotion_requests')
      .select('models.name as model')
      .where('promotion_requests.id', '=', id)
      .executeTakeFirst();
    return r && this.requestOf(this.db, r, r.model);
  }

  async listRequests(filter: {
    state?: RequestState;
    model?: string;
    limit: number;
  }): Promise<PromotionRequest[]> {
    let q = this.db
      .selectFrom('promotion_requests')
      .innerJoin('models', 'models.id', 'promotion_requests.model_id')
      .selectAll('promotion_requests')
      .select('models.name as model');
    if (filter.state) q = q.where('promotion_requests.state', '=', filter.state);
    if (filter.model) q = q.where('models.name', '=', filter.model);
    const rows = await q.orderBy('promotion_requests.id', 'desc').limit(filter.limit).execute();
    return Promise.all(rows.map((r) => this.requestOf(this.db, r, r.model)));
  }

  async getDecision(id: number): Promise<Decision | undefined> {
    const r = await this.db
      .selectFrom('gate_decisions')
      .innerJoin('models', 'models.id', 'gate_decisions.model_id')
      .selectAll('gate_decisions')
      .select('models.name as model')
      .where('gate_decisions.id', '=', id)
      .executeTakeFirst();
    return r && this.toDecision(r, r.model, true);
  }

  async listDecisions(filter: {
    model: string;
    alias?: string;
    limit: number;
  }): Promise<Decision[]> {
    const m = await this.modelRow(this.db, filter.model, false);
    let q = this.db.selectFrom('gate_decisions').selectAll().where('model_id', '=', m.id);
    if (filter.alias) q = q.where('alias', '=', filter.alias);
    const rows = await q.orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map((r) => this.toDecision(r, m.name, false));
  }

  // ---------------------------------------------------------------- waivers

  async createWaiver(w: NewWaiver, by: Actor): Promise<Waiver> {
    const now = this.now();
    const bad = (message: string) => {
      throw new ModelgateError('INVALID_WAIVER', message);
    };
    if ((w.findingRule === null) === (w.rule === null))
      bad(
        'name exactly one of a finding rule (--finding-rule) or a gate rule (--rule policy/rule)',
      );
    if (w.rule !== null && !/^[a-z0-9.-]{1,63}\/[a-z0-9-]{1,63}$/.test(w.rule))
      bad(`gate rule ${JSON.stringify(w.rule)} must be <policy>/<validation>`);
    if (w.justification.trim() === '') bad('a waiver needs a justification');
    const expires = Date.parse(w.expiresAt);
    if (!(expires > now.getTime())) bad(`expiry ${w.expiresAt} is not in the future`);
    if (expires - now.getTime() > MAX_WAIVER_DAYS * 86_400_000)
      bad(`expiry ${w.expiresAt} is more than ${MAX_WAIVER_DAYS} days away`);
    if (w.findingRule !== null) {
      const problem = findingRuleProblem(w.findingRule);
      if (problem) bad(problem);
    }
    return this.db.transaction().execute(async (trx) => {
      const m = await this.modelRow(trx, w.model, true);
      if (w.version !== null) await this.versionRow(trx, m, w.version);
      const scope = w.version === null ? `every version of ${m.name}` : `${m.name}@${w.version}`;
      if (w.rule !== null) await this.refuseUnwaivableRule(trx, w.rule);
      if (w.findingRule !== null) {
        const found = await trx
          .selectFrom('findings')
          .innerJoin('versions', 'versions.id', 'findings.version_id')
          .select('findings.id')
          .where('versions.model_id', '=', m.id)
          .$if(w.version !== null, (q) => q.where('versions.number', '=', w.version as number))
          .where('findings.rule_id', '=', w.findingRule)
          .limit(1)
          .executeTakeFirst();
        if (!found && !isBuiltinFindingRule(w.findingRule))
          bad(
            `no finding of rule ${JSON.stringify(w.findingRule)} on ${scope}, and it is not a rule id of a built-in evaluator: name a rule a finding carries (modelgate version show lists them)`,
          );
      }
      // Nobody waives risk in their own work, or in work a service account of theirs did: for
      // a model-wide waiver, that is every version it covers now.
      await this.refuseConflicts(
        trx,
        by.identity,
        await this.partiesOf(trx, m, w.version === null ? null : [w.version], {
          requests: 'all',
        }),
        `${by.identity} cannot waive findings or gate rules of ${scope}`,
        { model: m.name, version: w.version },
      );
      const iso = now.toISOString();
      const row = await trx
        .insertInto('waivers')
        .values({
          model_id: m.id,
          version: w.version,
          finding_rule: w.findingRule,
          rule: w.rule,
          justification: w.justification,
          approved_by: by.identity,
          credential: by.credentialId,
          created_at: iso,
          expires_at: new Date(expires).toISOString(),
          revoked_at: null,
          revoked_by: null,
          revoked_credential: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const waiver = toWaiver({ ...row, model: m.name }, iso);
      const { state: _state, ...content } = waiver;
      // A waiver is a statement about the versions it covers: one version, or every version
      // the model has now (a later version is covered by the waiver, which its decisions list,
      // not by this statement). The statement names them all; each version keeps a copy.
      const covered = await trx
        .selectFrom('versions')
        .select(['number', 'digest'])
        .where('model_id', '=', m.id)
        .$if(w.version !== null, (q) => q.where('number', '=', w.version as number))
        .orderBy('number')
        .limit(MAX_WAIVER_SUBJECTS)
        .execute();
      if (this.attestor && covered.length > 0) {
        const signed = this.attestor.sign({
          _type: STATEMENT_TYPE,
          subject: covered.map((x) => versionSubject(m.name, Number(x.number), x.digest)),
          predicateType: PREDICATE_TYPES.waiver,
          predicate: content,
        });
        for (const x of covered)
          await storeAttestation(
            trx,
            {
              modelId: m.id,
              model: m.name,
              version: Number(x.number),
              digest: x.digest,
              kind: 'waiver',
              ref: String(waiver.id),
              predicateType: PREDICATE_TYPES.waiver,
            },
            signed,
            by,
            iso,
            {},
          );
      }
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'waiver.create',
          subject: subjects.waiver(m.name, waiver.id),
          content,
        },
        iso,
      );
      return waiver;
    });
  }

  /** Refuses a gate-rule waiver that names no rule of a published policy, or an unwaivable one. */
  private async refuseUnwaivableRule(db: Db, rule: string): Promise<void> {
    const [policy, name] = rule.split('/') as [string, string];
    const all = await this.latestPolicies(db);
    const p = all.find((x) => x.name === policy);
    const bad = (message: string) => new ModelgateError('INVALID_WAIVER', message, { rule });
    if (!p)
      throw bad(
        `no gate policy ${policy} is published${all.length > 0 ? ` (published: ${all.map((x) => x.name).join(', ')})` : ''}`,
      );
    const spec = p.compiled.document.spec.validations.find((v) => v.name === name);
    if (!spec)
      throw bad(
        `gate policy ${policy} (version ${p.version}) has no rule ${name}; its rules: ${p.compiled.document.spec.validations.map((v) => v.name).join(', ')}`,
      );
    if (spec.waivable === false || spec.action !== 'deny')
      throw bad(
        spec.waivable === false
          ? `${rule} is not waivable: the policy says waivable: false`
          : `${rule} only warns (action: ${spec.action}); there is nothing to waive`,
      );
  }

  async revokeWaiver(model: string, id: number, by: Actor): Promise<Waiver> {
    return this.db.transaction().execute(async (trx) => {
      const m = await this.modelRow(trx, model, true);
      const row = await trx
        .selectFrom('waivers')
        .selectAll()
        .where('id', '=', id)
        .where('model_id', '=', m.id)
        .executeTakeFirst();
      if (!row)
        throw new ModelgateError('WAIVER_NOT_FOUND', `model ${model} has no waiver ${id}`, {
          waiver: id,
        });
      const iso = this.now().toISOString();
      if (row.revoked_at !== null) return toWaiver({ ...row, model }, iso);
      await trx
        .updateTable('waivers')
        .set({ revoked_at: iso, revoked_by: by.identity, revoked_credential: by.credentialId })
        .where('id', '=', id)
        .execute();
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'waiver.revoke',
          subject: subjects.waiver(model, id),
          content: { id, model },
        },
        iso,
      );
      return toWaiver(
        { ...row, model, revoked_at: iso, revoked_by: by.identity, revoked_credential: null },
        iso,
      );
    });
  }

  async listWaivers(filter: { model?: string; includeInactive: boolean }): Promise<Waiver[]> {
    const now = this.now().toISOString();
    let q = this.db
      .selectFrom('waivers')
      .innerJoin('models', 'models.id', 'waivers.model_id')
      .selectAll('waivers')
      .select('models.name as model');
    if (filter.model) q = q.where('models.name', '=', filter.model);
    if (!filter.includeInactive)
      q = q.where('waivers.revoked_at', 'is', null).where('waivers.expires_at', '>', now);
    const rows = await q.orderBy('waivers.id').limit(1000).execute();
    return rows.map((r) => toWaiver(r, now));
  }

  // ---------------------------------------------------------------- verify

  private async flag(db: Db, modelId: number, alias: string, version: number) {
    // The newest decision about the holder: a re-check that denied it flags it until a later
    // re-check (or a new promotion) allows it.
    const last = await db
      .selectFrom('gate_decisions')
      .select(['id', 'kind', 'outcome'])
      .where('model_id', '=', modelId)
      .where('alias', '=', alias)
      .where('version', '=', version)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return last && last.kind === 'recheck' && last.outcome !== 'allow' ? Number(last.id) : null;
  }

  async verify(model: string, alias: string, digest: string): Promise<VerifyAnswer> {
    const m = await this.modelRow(this.db, model, false);
    const a = await this.aliasRow(this.db, m, alias);
    const base = {
      model,
      alias,
      version: null,
      digest: null,
      layoutDigest: null,
      decisionId: null,
      flaggedBy: null,
    };
    if (!a) return { ...base, approved: false, reason: `${model} has no alias ${alias}` };
    const held = {
      ...base,
      version: Number(a.number),
      digest: a.digest,
      layoutDigest: a.layout_digest,
      decisionId: a.decision_id === null ? null : Number(a.decision_id),
    };
    // Either digest names the version; the layout digest also pins its file paths.
    if (a.digest !== digest && a.layout_digest !== digest)
      return {
        ...held,
        approved: false,
        reason: `${model}@${alias} is version ${a.number} (${a.digest}), not ${digest}`,
      };
    if (!this.protectedAliases.has(alias) || a.decision_id === null)
      return {
        ...held,
        approved: false,
        reason: `${alias} is not a protected alias: no gate decision approved ${model}@${a.number}`,
      };
    const flaggedBy = await this.flag(this.db, m.id, alias, Number(a.number));
    if (flaggedBy !== null)
      return {
        ...held,
        flaggedBy,
        approved: false,
        reason: `${model}@${a.number} no longer passes its gate (re-check decision ${flaggedBy})`,
      };
    return {
      ...held,
      approved: true,
      reason: `${model}@${a.number} was promoted to ${alias} by decision ${a.decision_id}`,
    };
  }

  // ---------------------------------------------------------------- portfolio

  /** The request facts a holder was promoted with (its original requester and reviews). */
  private async requestOfDecision(
    db: Db,
    decisionId: number | null,
    alias: string,
    fallback: { by: string; at: string },
  ): Promise<GateRequestFacts> {
    const d =
      decisionId === null
        ? undefined
        : await db
            .selectFrom('gate_decisions')
            .leftJoin('promotion_requests', 'promotion_requests.id', 'gate_decisions.request_id')
            .select([
              'gate_decisions.request_id',
              'promotion_requests.requested_by',
              'promotion_requests.requested_at',
              'gate_decisions.facts',
            ])
            .where('gate_decisions.id', '=', decisionId)
            .executeTakeFirst();
    if (d?.request_id != null && d.requested_by != null && d.requested_at != null)
      return {
        alias,
        requestedBy: d.requested_by,
        requestedAt: d.requested_at,
        requestId: Number(d.request_id),
      };
    if (d) {
      // A demotion's decision has no request of its own: it carried the earlier one's facts.
      const f = parse<Facts>(d.facts);
      return {
        alias,
        requestedBy: f.request.requestedBy,
        requestedAt: f.request.requestedAt,
        requestId: null,
      };
    }
    return { alias, requestedBy: fallback.by, requestedAt: fallback.at, requestId: null };
  }

  /** A draft policy as the gate would run it, unpublished (version 0). */
  private static draftPolicy(doc: PolicyDocument): GatePolicy {
    const compiled = compilePolicy(doc);
    return { name: compiled.name, version: 0, digest: compiled.digest, compiled };
  }

  async whatIf(doc: PolicyDocument, allVersions: boolean): Promise<WhatIfReport> {
    const policy = KyselyGateStore.draftPolicy(doc);
    const now = this.now();
    const models = await this.db
      .selectFrom('models')
      .select(['id', 'name', 'risk_tier', 'tags'])
      .orderBy('name')
      .execute();
    // Versions per model, to cut the portfolio into slices of about WHATIF_UNIT_VERSIONS.
    const counts = new Map<number, number>();
    if (allVersions)
      for (const r of await this.db
        .selectFrom('versions')
        .select((eb) => ['model_id', eb.fn.countAll().as('n')])
        .groupBy('model_id')
        .execute())
        counts.set(Number(r.model_id), Number(r.n));
    const tags = new Map(models.map((m) => [m.id, parse<string[]>(m.tags)]));
    const units: WhatIfUnit[] = [];
    for (const alias of doc.spec.bindings.aliases) {
      let unit: WhatIfUnit = { alias, modelIds: [] };
      let size = 0;
      for (const m of models) {
        const target = { alias, riskTier: m.risk_tier, modelTags: tags.get(m.id)! };
        if (!policyBinds(policy.compiled.document, target)) continue;
        const n = allVersions ? (counts.get(Number(m.id)) ?? 0) : 1;
        if (n === 0) continue;
        if (
          unit.modelIds.length > 0 &&
          (size + n > WHATIF_UNIT_VERSIONS || unit.modelIds.length >= PAGE)
        ) {
          units.push(unit);
          unit = { alias, modelIds: [] };
          size = 0;
        }
        unit.modelIds.push(Number(m.id));
        size += n;
      }
      if (unit.modelIds.length > 0) units.push(unit);
    }
    const report: WhatIfReport = {
      policy: { name: policy.name, digest: policy.digest },
      evaluated: 0,
      passing: 0,
      failing: [],
    };
    for (const unit of units) {
      const part = await this.whatIfUnit(policy, unit, allVersions, now);
      report.evaluated += part.evaluated;
      report.passing += part.passing;
      for (const f of part.failing) report.failing.push(f);
    }
    return report;
  }

  /**
   * One slice of a what-if: every version (or every holder) of some models under one alias,
   * failures in model-name and version order.
   */
  private async whatIfUnit(
    policy: GatePolicy,
    unit: WhatIfUnit,
    allVersions: boolean,
    now: Date,
  ): Promise<WhatIfPart> {
    const { alias, modelIds: ids } = unit;
    const page = await this.db
      .selectFrom('models')
      .selectAll()
      .where('id', 'in', ids)
      .orderBy('name')
      .execute();
    const byId = new Map(page.map((m) => [Number(m.id), m]));
    const rank = new Map(page.map((m, i) => [m.name, i]));
    const failing: WhatIfFailure[] = [];
    // The request a version that nobody asked to promote would carry, one for the whole slice.
    const unrequested: GateRequestFacts = {
      alias,
      requestedBy: '',
      requestedAt: now.toISOString(),
      requestId: null,
    };
    let evaluated = 0;
    let passing = 0;
    const holders = await this.db
      .selectFrom('aliases')
      .select(['model_id', 'version_id', 'decision_id', 'updated_by', 'updated_at'])
      .where('name', '=', alias)
      .where('model_id', 'in', ids)
      .execute();
    const holderOf = new Map(holders.map((h) => [Number(h.model_id), h]));
    // The latest request per version for this alias: its reviews are the approvals a
    // promotion of that version would carry.
    const requests = await this.db
      .selectFrom('promotion_requests')
      .select(['id', 'model_id', 'version', 'requested_by', 'requested_at'])
      .where('alias', '=', alias)
      .where('model_id', 'in', ids)
      .orderBy('id')
      .execute();
    const lastRequest = new Map(requests.map((r) => [`${r.model_id}/${r.version}`, r]));
    let q = this.db
      .selectFrom('versions')
      .select(FACT_VERSION_COLUMNS)
      .where('model_id', 'in', ids);
    if (!allVersions) {
      if (holders.length === 0) return { evaluated, passing, failing };
      q = q.where(
        'id',
        'in',
        holders.map((h) => h.version_id),
      );
    }
    // A slice holds about WHATIF_UNIT_VERSIONS versions, or one model with more than that:
    // those are read in pages along the (model, number) index.
    let after = 0;
    for (;;) {
      const versions = await q
        .where('number', '>', after)
        .orderBy('model_id')
        .orderBy('number')
        .$if(ids.length === 1, (qb) => qb.limit(WHATIF_UNIT_VERSIONS))
        .execute();
      if (versions.length === 0) break;
      const last = Number(versions[versions.length - 1]!.number);
      const items: {
        model: ModelRow;
        version: FactVersionRow;
        request: GateRequestFacts;
        current: boolean;
      }[] = [];
      // Synchronous but for the holders: an async step per version was a tenth of the time.
      for (const v of versions) {
        const m = byId.get(Number(v.model_id))!;
        const h = holderOf.get(Number(m.id));
        const current = h !== undefined && Number(h.version_id) === Number(v.id);
        const r = lastRequest.get(`${m.id}/${v.number}`);
        const request: GateRequestFacts =
          current && h.decision_id !== null
            ? await this.requestOfDecision(this.db, Number(h.decision_id), alias, {
                by: h.updated_by,
                at: h.updated_at,
              })
            : r
              ? {
                  alias,
                  requestedBy: r.requested_by,
                  requestedAt: r.requested_at,
                  requestId: Number(r.id),
                }
              : current
                ? {
                    alias,
                    requestedBy: h.updated_by,
                    requestedAt: h.updated_at,
                    requestId: null,
                  }
                : unrequested;
        items.push({ model: m, version: v, request, current });
      }
      const facts = await this.loadFacts(this.db, items, now);
      const shared = new SharedConversions();
      facts.forEach((f, i) => {
        const item = items[i]!;
        evaluated++;
        const g = decideGate([policy], f, { digest: false, compiled: true, shared });
        if (g.outcome === 'allow') {
          passing++;
          return;
        }
        const failed: WhatIfFailure['failed'] = [];
        for (const r of g.policies[0]!.results)
          if (!r.passed && r.waiverId === undefined)
            failed.push({ rule: r.name, action: r.action, message: r.message ?? '' });
        failing.push({
          model: item.model.name,
          version: Number(item.version.number),
          digest: item.version.digest,
          alias,
          current: item.current,
          outcome: g.outcome,
          failed,
        });
      });
      if (ids.length > 1 || versions.length < WHATIF_UNIT_VERSIONS) break;
      after = last;
    }
    failing.sort(
      (a, b) => (rank.get(a.model) ?? 0) - (rank.get(b.model) ?? 0) || a.version - b.version,
    );
    return { evaluated, passing, failing };
  }

  async recheck(by: Actor, filter: { model?: string } = {}): Promise<RecheckReport> {
    const report: RecheckReport = { checked: 0, flagged: [], demoted: [], cleared: [] };
    if (this.protectedAliases.size === 0) return report;
    const holders = await this.db
      .selectFrom('aliases')
      .innerJoin('models', 'models.id', 'aliases.model_id')
      .select(['models.name as model', 'aliases.name as alias'])
      .where('aliases.name', 'in', [...this.protectedAliases])
      .$if(filter.model !== undefined, (q) => q.where('models.name', '=', filter.model ?? ''))
      .orderBy('models.name')
      .orderBy('aliases.name')
      .execute();
    for (const h of holders) {
      // One transaction per alias, under the model's lock: a promotion cannot interleave.
      await this.db.transaction().execute(async (trx) => {
        const m = await this.modelRow(trx, h.model, true);
        const a = await this.aliasRow(trx, m, h.alias);
        if (!a) return;
        report.checked++;
        const at = this.now();
        const all = await this.latestPolicies(trx);
        const policies = KyselyGateStore.bound(all, m, h.alias);
        const v = await this.versionRow(trx, m, Number(a.number));
        const request = await this.requestOfDecision(
          trx,
          a.decision_id === null ? null : Number(a.decision_id),
          h.alias,
          { by: a.updated_by, at: a.updated_at },
        );
        const [facts] = await this.loadFacts(trx, [{ model: m, version: v, request }], at);
        const outcome = decideGate(policies, facts!);
        const flaggedBy = await this.flag(trx, m.id, h.alias, Number(a.number));
        const passes = outcome.outcome === 'allow';
        // A decision is recorded only when the holder's status changes: newly failing
        // (flagged), or passing again after a flag (a new waiver, new evidence, a changed
        // policy: cleared). Otherwise periodic passes would grow the table for nothing.
        if (passes === (flaggedBy !== null)) {
          const decisionId = await this.record(
            trx,
            m,
            v,
            request,
            'recheck',
            outcome,
            facts!,
            by,
            at,
            false,
          );
          (passes ? report.cleared : report.flagged).push({
            model: m.name,
            alias: h.alias,
            version: v.number,
            decisionId,
          });
        }
        if (passes) return;
        if (!policies.some((p) => p.compiled.document.spec.demoteOnFailure)) return;
        // Demote to the newest earlier holder that still passes, with its own approvals.
        const earlier = await trx
          .selectFrom('gate_decisions')
          .select(['id', 'version'])
          .where('model_id', '=', m.id)
          .where('alias', '=', h.alias)
          .where('moved', '=', 1)
          .where('version', '!=', v.number)
          .orderBy('id', 'desc')
          .execute();
        const tried = new Set<number>();
        for (const e of earlier) {
          const n = Number(e.version);
          if (tried.has(n)) continue;
          tried.add(n);
          const cv = await this.versionRow(trx, m, n);
          const creq = await this.requestOfDecision(trx, Number(e.id), h.alias, {
            by: a.updated_by,
            at: a.updated_at,
          });
          const [cf] = await this.loadFacts(trx, [{ model: m, version: cv, request: creq }], at);
          const co = decideGate(policies, cf!);
          if (co.outcome !== 'allow') continue;
          const d = await this.record(trx, m, cv, creq, 'demotion', co, cf!, by, at, true);
          await this.moveAlias(trx, m, cv, h.alias, d, 'demotion', by, at.toISOString());
          report.demoted.push({
            model: m.name,
            alias: h.alias,
            from: v.number,
            to: n,
            decisionId: d,
          });
          return;
        }
      });
    }
    return report;
  }

  /** Stores a decision and its audit event; `moved` says the caller moves the alias with it. */
  private async record(
    trx: Db,
    m: ModelRow,
    v: VersionRow,
    request: GateRequestFacts,
    kind: DecisionKind,
    outcome: GateOutcome,
    facts: Facts,
    by: Actor,
    at: Date,
    moved: boolean,
  ): Promise<number> {
    const iso = at.toISOString();
    const row = await trx
      .insertInto('gate_decisions')
      .values({
        model_id: m.id,
        version: Number(v.number),
        digest: v.digest,
        alias: request.alias,
        kind,
        request_id: request.requestId,
        policies: JSON.stringify(outcome.policies),
        engine: outcome.engine,
        facts: canonicalize(facts),
        facts_digest: outcome.factsDigest,
        outcome: outcome.outcome,
        waivers: JSON.stringify(outcome.waivers),
        moved: moved ? 1 : 0,
        decided_by: by.identity,
        credential: by.credentialId,
        at: iso,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const id = Number(row.id);
    const policySummary = outcome.policies.map((p) => ({
      name: p.name,
      version: p.version,
      digest: p.digest,
      outcome: p.outcome,
    }));
    await appendAudit(
      trx,
      {
        actor: by,
        action:
          kind === 'recheck'
            ? outcome.outcome === 'allow'
              ? 'gate.cleared'
              : 'gate.flagged'
            : 'gate.decision',
        subject: subjects.decision(m.name, request.alias, id),
        content: {
          id,
          model: m.name,
          version: Number(v.number),
          digest: v.digest,
          alias: request.alias,
          kind,
          requestId: request.requestId,
          policies: policySummary,
          engine: outcome.engine,
          factsDigest: outcome.factsDigest,
          outcome: outcome.outcome,
          waivers: outcome.waivers,
          // The stored rule results by digest, and whether the alias moved: audit verify
          // compares the decision row with them.
          policiesDigest: `sha256:${createHash('sha256').update(JSON.stringify(outcome.policies)).digest('hex')}`,
          moved,
        },
      },
      iso,
    );
    // The signed summary links the evaluations' own attestations it relied on.
    const evaluationIds = facts.evaluations.map((e) => e.id);
    const inputs =
      evaluationIds.length === 0
        ? []
        : await trx
            .selectFrom('attestations')
            .select(['id', 'envelope_digest'])
            .where('kind', '=', 'evaluation')
            .where('ref', 'in', evaluationIds)
            .orderBy('id')
            .execute();
    await appendAttestation(
      trx,
      this.attestor,
      {
        modelId: m.id,
        model: m.name,
        version: Number(v.number),
        digest: v.digest,
        kind: 'decision',
        ref: String(id),
        predicateType: PREDICATE_TYPES.verificationSummary,
        predicate: decisionPredicate({
          id,
          model: m.name,
          version: Number(v.number),
          alias: request.alias,
          kind,
          engine: outcome.engine,
          factsDigest: outcome.factsDigest,
          outcome: outcome.outcome,
          moved,
          at: iso,
          policies: policySummary,
          waivers: outcome.waivers,
          reasons: outcome.reasons,
          inputs: inputs.map((i) => ({
            uri: `modelgate:attestations/${i.id}`,
            digest: i.envelope_digest,
          })),
        }),
      },
      by,
      iso,
    );
    return id;
  }
}
