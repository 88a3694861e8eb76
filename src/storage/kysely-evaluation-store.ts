import { createHash, randomBytes } from 'node:crypto';
import {
  type ExpressionBuilder,
  type Kysely,
  type Selectable,
  sql,
  type Transaction,
  type Updateable,
} from 'kysely';
import { subjects } from '../audit/subjects.js';
import { ModelgateError } from '../core/errors.js';
import type { Finding, Severity } from '../core/findings.js';
import type { Actor } from '../core/types.js';
import type { Evaluation, EvaluationStore, StoredFinding } from '../evaluators/evaluation-store.js';
import type { Checkpoint } from '../evaluators/evaluator.js';
import { type Attestor, evaluationPredicate, PREDICATE_TYPES } from '../evidence/attestor.js';
import { appendAttestation } from './attestation-append.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { DB, EvaluationsTable } from './schema.js';
import { storable, storableText } from './storable-text.js';

const FINDING_CHUNK = 500;
/** Evaluations finish or fail in the server's own worker: the server is the actor. */
const SYSTEM: Actor = { identity: 'modelgate', credentialId: 'system' };

type Row = Selectable<EvaluationsTable> & { model: string; number: number };

function toEvaluation(r: Row): Evaluation {
  return {
    id: r.id,
    model: r.model,
    version: r.number,
    evaluator: { id: r.evaluator_id, version: r.evaluator_version },
    config: JSON.parse(r.config) as Record<string, unknown>,
    status: r.status,
    requestedBy: r.requested_by,
    credentialId: r.credential_id,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    progress: Number(r.progress),
    metrics: JSON.parse(r.metrics) as Record<string, number>,
    error: r.error,
    attempts: r.attempts,
  };
}

/** What the audit log keeps of each finding (the evidence stays in the findings table). */
function findingSummaries(findings: Finding[]) {
  return findings.map((f) => ({
    ruleId: f.ruleId,
    severity: f.severity,
    title: f.title,
    location: f.location,
    // The stored texts by digest, so that audit verify can compare the rows without the log
    // holding every finding's evidence twice.
    evidenceDigest: `sha256:${createHash('sha256').update(JSON.stringify(f.evidence)).digest('hex')}`,
    referencesDigest: `sha256:${createHash('sha256').update(JSON.stringify(f.references)).digest('hex')}`,
  }));
}

/** Writes an evaluation's findings, in chunks (a scan may report thousands). */
async function insertFindings(
  trx: Kysely<DB>,
  evaluationId: string,
  versionId: number,
  findings: Finding[],
  at: string,
): Promise<void> {
  for (let i = 0; i < findings.length; i += FINDING_CHUNK) {
    await trx
      .insertInto('findings')
      .values(
        findings.slice(i, i + FINDING_CHUNK).map((f) => ({
          evaluation_id: evaluationId,
          version_id: versionId,
          rule_id: f.ruleId,
          severity: f.severity,
          title: f.title,
          file: f.location.file,
          member: f.location.member ?? null,
          byte_offset: f.location.offset ?? null,
          evidence: JSON.stringify(f.evidence),
          refs: JSON.stringify(f.references),
          status: 'open',
          created_at: at,
        })),
      )
      .execute();
  }
}

/** Evaluations and findings on Kysely, for SQLite and PostgreSQL. */
export class KyselyEvaluationStore implements EvaluationStore {
  private readonly db: Kysely<DB>;
  private readonly now: () => Date;

  private readonly attestor: Attestor | undefined;

  constructor(database: Database, opts: { now?: () => Date; attestor?: Attestor } = {}) {
    this.db = database.db;
    this.now = opts.now ?? (() => new Date());
    this.attestor = opts.attestor;
  }

  /** Signs the test-result statement of a finished evaluation, in its transaction. */
  private async attest(
    trx: Kysely<DB>,
    id: string,
    outcome: {
      status: 'succeeded' | 'failed';
      findings: Finding[];
      metrics: Record<string, number>;
      error?: string;
    },
    at: string,
  ) {
    if (!this.attestor) return;
    const r = await trx
      .selectFrom('evaluations as e')
      .innerJoin('versions as v', 'v.id', 'e.version_id')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .select([
        'm.id as modelId',
        'm.name',
        'v.number',
        'v.digest',
        'e.evaluator_id',
        'e.evaluator_version',
        'e.config',
      ])
      .where('e.id', '=', id)
      .executeTakeFirstOrThrow();
    await appendAttestation(
      trx,
      this.attestor,
      {
        modelId: r.modelId,
        model: r.name,
        version: Number(r.number),
        digest: r.digest,
        kind: 'evaluation',
        ref: id,
        predicateType: PREDICATE_TYPES.testResult,
        predicate: evaluationPredicate({
          id,
          evaluator: { id: r.evaluator_id, version: r.evaluator_version },
          config: JSON.parse(r.config) as Record<string, unknown>,
          status: outcome.status,
          metrics: outcome.metrics,
          findings: outcome.findings,
          ...(outcome.error !== undefined && { error: outcome.error }),
        }),
      },
      SYSTEM,
      at,
    );
  }

  private query() {
    return this.db
      .selectFrom('evaluations as e')
      .innerJoin('versions as v', 'v.id', 'e.version_id')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .selectAll('e')
      .select(['m.name as model', 'v.number as number']);
  }

  // Every change a worker makes to its job is guarded the same way: only while it still holds
  // the lease and the job is running. Returns whether the row changed.
  private async asHolder(
    db: Kysely<DB> | Transaction<DB>,
    id: string,
    owner: string,
    set: Updateable<EvaluationsTable>,
  ): Promise<boolean> {
    const res = await db
      .updateTable('evaluations')
      .set(set)
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('status', '=', 'running')
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  private async versionRow(target: { model: string; version: number }) {
    const v = await this.db
      .selectFrom('versions as v')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .select(['v.id', 'm.name as model', 'v.number'])
      .where('m.name', '=', target.model)
      .where('v.number', '=', target.version)
      .executeTakeFirst();
    if (!v)
      throw new ModelgateError(
        'VERSION_NOT_FOUND',
        `model ${target.model} has no version ${target.version}`,
        target,
      );
    return v;
  }

  async enqueue(
    target: { model: string; version: number },
    evaluator: { id: string; version: string },
    config: Record<string, unknown>,
    actor: Actor,
  ): Promise<Evaluation> {
    const v = await this.versionRow(target);
    const id = `ev_${randomBytes(8).toString('hex')}`;
    await this.insert(id, v, evaluator, config, actor);
    const e = await this.get(id);
    if (!e) throw new Error('evaluation vanished after insert');
    return e;
  }

  private async insert(
    id: string,
    version: { id: number; model: string; number: number },
    evaluator: { id: string; version: string },
    requested: Record<string, unknown>,
    actor: Actor,
  ): Promise<void> {
    const at = this.now().toISOString();
    const config = storable(requested);
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('evaluations')
        .values({
          id,
          version_id: version.id,
          evaluator_id: evaluator.id,
          evaluator_version: evaluator.version,
          config: JSON.stringify(config),
          status: 'queued',
          requested_by: actor.identity,
          credential_id: actor.credentialId,
          created_at: at,
          started_at: null,
          finished_at: null,
          progress: 0,
          metrics: '{}',
          error: null,
          attempts: 0,
          lease_owner: null,
          lease_expires_at: null,
        })
        .execute();
      await appendAudit(
        trx,
        {
          actor,
          action: 'evaluation.request',
          subject: subjects.evaluation(version.model, version.number, id),
          content: {
            id,
            version: subjects.version(version.model, version.number),
            evaluator,
            config,
          },
        },
        at,
      );
    });
  }

  async enqueueMissing(
    evaluator: { id: string; version: string },
    actor: Actor,
    limit: number,
  ): Promise<number> {
    const missing = await this.db
      .selectFrom('versions as v')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .select(['v.id', 'm.name as model', 'v.number'])
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('evaluations as e')
              .select('e.id')
              .whereRef('e.version_id', '=', 'v.id')
              .where('e.evaluator_id', '=', evaluator.id),
          ),
        ),
      )
      .orderBy('v.id')
      .limit(limit)
      .execute();
    for (const v of missing) {
      await this.insert(`ev_${randomBytes(8).toString('hex')}`, v, evaluator, {}, actor);
    }
    return missing.length;
  }

  async claim(
    owner: string,
    leaseMs: number,
    maxAttempts: number,
  ): Promise<Evaluation | undefined> {
    for (let tries = 0; tries < 5; tries++) {
      const now = this.now();
      const nowIso = now.toISOString();
      const candidate = await this.db
        .selectFrom('evaluations')
        .select(['id', 'attempts', 'status'])
        .where((eb) =>
          eb.or([
            eb('status', '=', 'queued'),
            eb.and([eb('status', '=', 'running'), eb('lease_expires_at', '<', nowIso)]),
          ]),
        )
        .orderBy('created_at')
        .orderBy('id')
        .limit(1)
        .executeTakeFirst();
      if (!candidate) return undefined;
      // The conditional update is the lock: of several claimants, exactly one changes the row.
      const stillClaimable = (eb: ExpressionBuilder<DB, 'evaluations'>) =>
        eb.and([
          eb('id', '=', candidate.id),
          eb.or([
            eb('status', '=', 'queued'),
            eb.and([eb('status', '=', 'running'), eb('lease_expires_at', '<', nowIso)]),
          ]),
        ]);
      if (candidate.attempts >= maxAttempts) {
        const error = `gave up after ${candidate.attempts} attempts (the worker stopped each time)`;
        await this.db.transaction().execute(async (trx) => {
          const res = await trx
            .updateTable('evaluations')
            .set({
              status: 'failed',
              finished_at: nowIso,
              error,
              lease_owner: null,
              lease_expires_at: null,
            })
            .where(stillClaimable)
            .executeTakeFirst();
          if (Number(res.numUpdatedRows) === 1)
            await this.auditFailure(trx, candidate.id, error, nowIso);
        });
        continue;
      }
      const res = await this.db
        .updateTable('evaluations')
        .set({
          status: 'running',
          lease_owner: owner,
          lease_expires_at: new Date(now.getTime() + leaseMs).toISOString(),
          attempts: sql<number>`attempts + 1`,
          started_at: sql<string>`coalesce(started_at, ${nowIso})`,
          progress: 0,
        })
        .where(stillClaimable)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) return this.get(candidate.id);
    }
    return undefined;
  }

  async heartbeat(id: string, owner: string, leaseMs: number, progress: number): Promise<boolean> {
    const changed = await this.asHolder(this.db, id, owner, {
      lease_expires_at: new Date(this.now().getTime() + leaseMs).toISOString(),
      progress,
    });
    return changed;
  }

  async complete(
    id: string,
    owner: string,
    found: Finding[],
    measured: Record<string, number>,
  ): Promise<boolean> {
    // What the scan found may quote bytes no engine stores (a NUL in a pickle global): the
    // evaluation must not fail because of it.
    const findings = storable(found);
    const metrics = storable(measured);
    return this.db.transaction().execute(async (trx) => {
      const at = this.now().toISOString();
      const changed = await this.asHolder(trx, id, owner, {
        status: 'succeeded',
        finished_at: at,
        progress: 1,
        metrics: JSON.stringify(metrics),
        lease_owner: null,
        lease_expires_at: null,
      });
      if (!changed) return false;
      const ev = await trx
        .selectFrom('evaluations')
        .select('version_id')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await appendAudit(
        trx,
        {
          actor: SYSTEM,
          action: 'evaluation.complete',
          subject: await this.subjectOf(trx, id),
          content: {
            id,
            status: 'succeeded',
            metrics,
            findings: findingSummaries(findings),
          },
        },
        at,
      );
      await insertFindings(trx, id, ev.version_id, findings, at);
      await this.attest(trx, id, { status: 'succeeded', findings, metrics }, at);
      return true;
    });
  }

  async fail(id: string, owner: string, reason: string): Promise<boolean> {
    // Cut first, then escape: the cut may split a surrogate pair.
    const error = storableText(reason.slice(0, 2000));
    return this.db.transaction().execute(async (trx) => {
      const at = this.now().toISOString();
      const changed = await this.asHolder(trx, id, owner, {
        status: 'failed',
        finished_at: at,
        error,
        lease_owner: null,
        lease_expires_at: null,
      });
      if (changed) await this.auditFailure(trx, id, error, at);
      return changed;
    });
  }

  private async subjectOf(trx: Kysely<DB>, id: string): Promise<string> {
    const r = await trx
      .selectFrom('evaluations as e')
      .innerJoin('versions as v', 'v.id', 'e.version_id')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .select(['m.name', 'v.number'])
      .where('e.id', '=', id)
      .executeTakeFirstOrThrow();
    return subjects.evaluation(r.name, r.number, id);
  }

  private async auditFailure(trx: Kysely<DB>, id: string, error: string, at: string) {
    await appendAudit(
      trx,
      {
        actor: SYSTEM,
        action: 'evaluation.fail',
        subject: await this.subjectOf(trx, id),
        content: { id, status: 'failed', error },
      },
      at,
    );
    await this.attest(trx, id, { status: 'failed', findings: [], metrics: {}, error }, at);
  }

  async release(id: string, owner: string): Promise<boolean> {
    const changed = await this.asHolder(this.db, id, owner, {
      status: 'queued',
      lease_owner: null,
      lease_expires_at: null,
      progress: 0,
    });
    return changed;
  }

  async get(id: string): Promise<Evaluation | undefined> {
    const r = await this.query().where('e.id', '=', id).executeTakeFirst();
    return r ? toEvaluation(r as Row) : undefined;
  }

  async listForVersion(model: string, version: number): Promise<Evaluation[]> {
    const rows = await this.query()
      .where('m.name', '=', model)
      .where('v.number', '=', version)
      .orderBy('e.created_at', 'desc')
      .orderBy('e.id')
      .execute();
    return rows.map((r) => toEvaluation(r as Row));
  }

  checkpoint(id: string, owner: string): Checkpoint {
    return {
      load: async () => {
        const rows = await this.db
          .selectFrom('evaluation_checkpoints')
          .select(['key', 'data'])
          .where('evaluation_id', '=', id)
          .execute();
        return new Map(rows.map((r) => [r.key, JSON.parse(r.data) as Record<string, unknown>]));
      },
      save: async (records) => {
        if (records.length === 0) return;
        const at = this.now().toISOString();
        await this.db.transaction().execute(async (trx) => {
          // Only the worker holding the evaluation writes its checkpoint.
          const held = await trx
            .selectFrom('evaluations')
            .select('id')
            .where('id', '=', id)
            .where('lease_owner', '=', owner)
            .where('status', '=', 'running')
            .executeTakeFirst();
          if (!held) throw new Error(`evaluation ${id} is no longer held by ${owner}`);
          for (let i = 0; i < records.length; i += FINDING_CHUNK)
            await trx
              .insertInto('evaluation_checkpoints')
              .values(
                records.slice(i, i + FINDING_CHUNK).map((r) => ({
                  evaluation_id: id,
                  key: r.key,
                  data: JSON.stringify(r.data),
                  created_at: at,
                })),
              )
              .onConflict((oc) => oc.columns(['evaluation_id', 'key']).doNothing())
              .execute();
        });
      },
    };
  }

  async checkpoints(
    id: string,
    opts: { after?: string; limit: number },
  ): Promise<{ key: string; data: Record<string, unknown>; createdAt: string }[]> {
    let q = this.db
      .selectFrom('evaluation_checkpoints')
      .select(['key', 'data', 'created_at'])
      .where('evaluation_id', '=', id);
    if (opts.after !== undefined) q = q.where('key', '>', opts.after);
    const rows = await q.orderBy('key').limit(opts.limit).execute();
    return rows.map((r) => ({
      key: r.key,
      data: JSON.parse(r.data) as Record<string, unknown>,
      createdAt: r.created_at,
    }));
  }

  async importResult(
    target: { model: string; version: number },
    tool: { id: string; version: string },
    givenConfig: Record<string, unknown>,
    found: Finding[],
    measured: Record<string, number>,
    actor: Actor,
  ): Promise<Evaluation> {
    const config = storable(givenConfig);
    const findings = storable(found);
    const metrics = storable(measured);
    const v = await this.versionRow(target);
    const id = `ev_${randomBytes(8).toString('hex')}`;
    const at = this.now().toISOString();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('evaluations')
        .values({
          id,
          version_id: v.id,
          evaluator_id: tool.id,
          evaluator_version: tool.version,
          config: JSON.stringify(config),
          status: 'succeeded',
          // The importer ran it, as far as the registry can tell: separation of duties
          // treats them like whoever ran an evaluation here.
          requested_by: actor.identity,
          credential_id: actor.credentialId,
          created_at: at,
          started_at: at,
          finished_at: at,
          progress: 1,
          metrics: JSON.stringify(metrics),
          error: null,
          attempts: 0,
          lease_owner: null,
          lease_expires_at: null,
        })
        .execute();
      await appendAudit(
        trx,
        {
          actor,
          action: 'evaluation.import',
          subject: subjects.evaluation(v.model, v.number, id),
          content: {
            id,
            version: subjects.version(v.model, v.number),
            evaluator: tool,
            config,
            metrics,
            findings: findingSummaries(findings),
          },
        },
        at,
      );
      await insertFindings(trx, id, v.id, findings, at);
      await this.attest(trx, id, { status: 'succeeded', findings, metrics }, at);
    });
    const e = await this.get(id);
    if (!e) throw new Error('evaluation vanished after import');
    return e;
  }

  async findings(filter: {
    evaluationId?: string;
    model?: string;
    version?: number;
  }): Promise<StoredFinding[]> {
    let q = this.db
      .selectFrom('findings as f')
      .innerJoin('versions as v', 'v.id', 'f.version_id')
      .innerJoin('models as m', 'm.id', 'v.model_id')
      .selectAll('f');
    if (filter.evaluationId) q = q.where('f.evaluation_id', '=', filter.evaluationId);
    if (filter.model) q = q.where('m.name', '=', filter.model);
    if (filter.version !== undefined) q = q.where('v.number', '=', filter.version);
    const rows = await q.orderBy('f.id').limit(10_000).execute();
    return rows.map((r) => ({
      id: r.id,
      evaluationId: r.evaluation_id,
      ruleId: r.rule_id,
      severity: r.severity as Severity,
      title: r.title,
      location: {
        file: r.file,
        ...(r.member !== null && { member: r.member }),
        ...(r.byte_offset !== null && { offset: Number(r.byte_offset) }),
      },
      evidence: JSON.parse(r.evidence) as Finding['evidence'],
      references: JSON.parse(r.refs) as string[],
      status: r.status as StoredFinding['status'],
      createdAt: r.created_at,
    }));
  }
}
