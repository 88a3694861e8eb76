import { createHash } from 'node:crypto';
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import { modelContent, subjects, versionContent } from '../audit/subjects.js';
import { ModelgateError } from '../core/errors.js';
import { layoutDigest } from '../core/manifest.js';
import type {
  Actor,
  Alias,
  AliasEvent,
  Dataset,
  LineageTarget,
  Model,
  Page,
  Version,
  VersionFile,
} from '../core/types.js';
import { type Attestor, PREDICATE_TYPES } from '../evidence/attestor.js';
import type { NewToken } from '../identity/identity-store.js';
import type {
  ModelFilter,
  ModelPatch,
  NewDataset,
  NewIdentity,
  NewModel,
  NewVersion,
  PageRequest,
  RegistryStore,
  StoredEdge,
  TokenRecord,
  VersionFilter,
  VersionRef,
} from '../registry/registry-store.js';
import { appendAttestation } from './attestation-append.js';
import { type AuditEventInput, appendAudit } from './audit-append.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Database, EngineCaps } from './database.js';
import { grantsOf } from './kysely-identity-store.js';
import { toModel, writeModelPatch } from './model-rows.js';
import type { DatasetsTable, DB, VersionsTable } from './schema.js';
import { claimOnce } from './server-settings.js';

type Db = Kysely<DB> | Transaction<DB>;

// SQLite allows 32766 bound parameters per statement; 4 columns per file row.
const FILE_INSERT_CHUNK = 1000;
// last_used_at is written at most this often per token, so reads stay reads.
const TOKEN_TOUCH_MS = 60_000;
// File lists of this many versions are kept in memory.
const FILES_CACHE = 1000;

const parseTags = (s: string): string[] => JSON.parse(s) as string[];

function toVersion(model: string, r: Selectable<VersionsTable>): Version {
  return {
    model,
    number: r.number,
    digest: r.digest,
    layoutDigest: r.layout_digest,
    size: Number(r.total_size),
    fileCount: r.file_count,
    sourceUri: r.source_uri,
    author: r.author,
    card: {
      markdown: r.card_markdown,
      fields: JSON.parse(r.card_fields) as Record<string, unknown>,
    },
    tags: parseTags(r.tags),
    description: r.description,
    createdAt: r.created_at,
  };
}

function toDataset(r: Selectable<DatasetsTable>): Dataset {
  return {
    name: r.name,
    uri: r.uri,
    digest: r.digest,
    licence: r.licence,
    description: r.description,
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}

function page<T>(rows: T[], limit: number, cursorOf: (last: T) => string): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items, nextCursor: more && last !== undefined ? cursorOf(last) : null };
}

/** The registry store on Kysely, one implementation for SQLite and PostgreSQL. */
export class KyselyRegistryStore implements RegistryStore {
  private readonly db: Kysely<DB>;
  private readonly caps: EngineCaps;
  private readonly now: () => Date;
  private readonly filesCache = new Map<number, VersionFile[]>();

  private readonly audited: boolean;

  constructor(
    private readonly database: Database,
    opts: {
      now?: () => Date;
      /**
       * Off only to measure what the log costs (`npm run bench`); the server always records.
       * Nothing outside the benchmark sets it.
       */
      recordAudit?: boolean;
      /** Signs each new version's lineage as SLSA provenance (absent in benchmarks). */
      attestor?: Attestor;
    } = {},
  ) {
    this.db = database.db;
    this.caps = database.caps;
    this.now = opts.now ?? (() => new Date());
    this.audited = opts.recordAudit ?? true;
    this.attestor = opts.attestor;
  }

  private readonly attestor: Attestor | undefined;

  /** The lineage of a new version as resolved dependencies of its SLSA provenance. */
  private async provenance(
    trx: Db,
    model: string,
    number: number,
    input: NewVersion,
    layout: string,
    edges: {
      relation: string;
      target_dataset_id: number | null;
      target_version_id: number | null;
      target_uri: string | null;
    }[],
    at: string,
  ) {
    const deps = [];
    for (const e of edges) {
      const annotations = { relation: e.relation };
      if (e.target_dataset_id !== null) {
        const d = await trx
          .selectFrom('datasets')
          .select(['name', 'uri', 'digest'])
          .where('id', '=', e.target_dataset_id)
          .executeTakeFirstOrThrow();
        deps.push({
          name: `dataset:${d.name}`,
          uri: d.uri,
          ...(d.digest && { digest: { sha256: d.digest.replace(/^sha256:/, '') } }),
          annotations,
        });
      } else if (e.target_version_id !== null) {
        const v = await trx
          .selectFrom('versions')
          .innerJoin('models', 'models.id', 'versions.model_id')
          .select(['models.name', 'versions.number', 'versions.digest'])
          .where('versions.id', '=', e.target_version_id)
          .executeTakeFirstOrThrow();
        deps.push({
          name: `model:${v.name}@${v.number}`,
          digest: { sha256: v.digest.slice(7) },
          annotations,
        });
      } else if (e.target_uri !== null) deps.push({ uri: e.target_uri, annotations });
    }
    return {
      buildDefinition: {
        buildType: 'https://modelgate.dev/registration/v1',
        externalParameters: {
          model,
          version: number,
          ...(input.sourceUri && { source: input.sourceUri }),
          files: input.files.length,
          // The subject is the OpenSSF digest (bytes in path order); this also binds the paths.
          layoutDigest: layout,
        },
        internalParameters: { author: input.author },
        resolvedDependencies: deps,
      },
      runDetails: {
        builder: { id: 'https://modelgate.dev/registry' },
        metadata: { invocationId: `${model}@${number}`, startedOn: at, finishedOn: at },
      },
    };
  }

  private audit(trx: Kysely<DB>, e: AuditEventInput, at: string): Promise<void> {
    return this.audited ? appendAudit(trx, e, at) : Promise.resolve();
  }

  private ts(): string {
    return this.now().toISOString();
  }

  // A substring test that is exact and case-sensitive on both engines (LIKE is neither on SQLite).
  private contains(column: string, needle: string) {
    const fn = this.caps.engine === 'sqlite' ? 'instr' : 'strpos';
    return sql<boolean>`${sql.raw(fn)}(${sql.ref(column)}, ${needle}) > 0`;
  }

  private async modelRow(db: Db, name: string, lock = false) {
    let q = db.selectFrom('models').selectAll().where('name', '=', name);
    if (lock && this.caps.rowLocks) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row)
      throw new ModelgateError('MODEL_NOT_FOUND', `model ${name} not found`, { model: name });
    return row;
  }

  async createModel(input: NewModel, actor: Actor): Promise<Model> {
    const at = this.ts();
    try {
      return await this.db.transaction().execute(async (trx) => {
        const row = await trx
          .insertInto('models')
          .values({
            name: input.name,
            owner_team: input.ownerTeam,
            risk_tier: input.riskTier,
            description: input.description,
            intended_use: input.intendedUse,
            tags: JSON.stringify(input.tags),
            created_at: at,
            created_by: actor.identity,
            created_credential: actor.credentialId,
            updated_at: at,
            updated_by: actor.identity,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const model = toModel(row);
        await this.audit(
          trx,
          {
            actor,
            action: 'model.create',
            subject: subjects.model(model.name),
            content: { model: modelContent(model) },
          },
          at,
        );
        return model;
      });
    } catch (e) {
      if (this.caps.isUniqueViolation(e)) {
        throw new ModelgateError('MODEL_EXISTS', `model ${input.name} already exists`, {
          model: input.name,
        });
      }
      throw e;
    }
  }

  async getModel(name: string): Promise<Model | undefined> {
    const row = await this.db
      .selectFrom('models')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? toModel(row) : undefined;
  }

  async updateModel(name: string, patch: ModelPatch, actor: Actor): Promise<Model> {
    return this.db.transaction().execute(async (trx) => {
      await this.modelRow(trx, name, true);
      return writeModelPatch(trx, name, patch, actor, this.ts(), 'model.update', (t, e, at) =>
        this.audit(t, e, at),
      );
    });
  }

  async listModels(filter: ModelFilter, req: PageRequest): Promise<Page<Model>> {
    let q = this.db.selectFrom('models').selectAll();
    if (filter.ownerTeam) q = q.where('owner_team', '=', filter.ownerTeam);
    if (filter.riskTier) q = q.where('risk_tier', '=', filter.riskTier);
    if (filter.tag) q = q.where(this.contains('tags', JSON.stringify(filter.tag)));
    if (filter.namePrefix) {
      q = q.where(
        sql<boolean>`substr(name, 1, ${filter.namePrefix.length}) = ${filter.namePrefix}`,
      );
    }
    if (req.cursor) q = q.where('name', '>', decodeCursor('models', req.cursor, 'string'));
    const rows = await q
      .orderBy('name')
      .limit(req.limit + 1)
      .execute();
    return page(rows.map(toModel), req.limit, (m) => encodeCursor('models', m.name));
  }

  async createVersion(model: string, input: NewVersion, actor: Actor): Promise<Version> {
    // PostgreSQL: the model row lock serialises concurrent pushes to one model, so numbers
    // are dense. SQLite has one writer at a time. A unique violation is still retried once
    // in case two servers race on a model created in between.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db
          .transaction()
          .execute((trx) => this.insertVersion(trx, model, input, actor));
      } catch (e) {
        if (attempt < 3 && this.caps.isUniqueViolation(e)) continue;
        throw e;
      }
    }
  }

  private async insertVersion(
    trx: Transaction<DB>,
    model: string,
    input: NewVersion,
    actor: Actor,
  ): Promise<Version> {
    const m = await this.modelRow(trx, model, true);
    const edges = [];
    for (const l of input.lineage) {
      edges.push({ relation: l.relation, ...(await this.resolveTarget(trx, l.target)) });
    }
    const max = await trx
      .selectFrom('versions')
      .select((eb) => eb.fn.max('number').as('max'))
      .where('model_id', '=', m.id)
      .executeTakeFirst();
    const number = Number(max?.max ?? 0) + 1;
    const at = this.ts();
    const size = input.files.reduce((s, f) => s + f.size, 0);
    const row = await trx
      .insertInto('versions')
      .values({
        model_id: m.id,
        number,
        digest: input.digest,
        layout_digest:
          input.layoutDigest ??
          layoutDigest(
            input.files.map((f) => ({ path: f.path, size: f.size, sha256: f.digest.slice(7) })),
          ),
        total_size: size,
        file_count: input.files.length,
        source_uri: input.sourceUri,
        author: input.author,
        created_credential: actor.credentialId,
        card_markdown: input.card.markdown,
        card_fields: JSON.stringify(input.card.fields),
        tags: JSON.stringify(input.tags),
        description: input.description,
        created_at: at,
        updated_at: at,
        updated_by: actor.identity,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    for (let i = 0; i < input.files.length; i += FILE_INSERT_CHUNK) {
      await trx
        .insertInto('version_files')
        .values(
          input.files.slice(i, i + FILE_INSERT_CHUNK).map((f) => ({
            version_id: row.id,
            path: f.path,
            size: f.size,
            sha256: f.digest.slice(7),
          })),
        )
        .execute();
    }
    if (edges.length > 0) {
      await trx
        .insertInto('lineage_edges')
        .values(edges.map((e) => ({ ...e, version_id: row.id, created_at: at })))
        .execute();
    }
    const version = { ...toVersion(model, row), files: [...input.files] };
    await this.audit(
      trx,
      {
        actor,
        action: 'version.create',
        subject: subjects.version(model, number),
        content: { version: versionContent(version), lineage: input.lineage },
      },
      at,
    );
    if (this.attestor && this.audited)
      await appendAttestation(
        trx,
        this.attestor,
        {
          modelId: m.id,
          model,
          version: number,
          digest: input.digest,
          kind: 'provenance',
          ref: `${model}@${number}`,
          predicateType: PREDICATE_TYPES.provenance,
          predicate: await this.provenance(trx, model, number, input, row.layout_digest, edges, at),
        },
        actor,
        at,
      );
    return version;
  }

  private async resolveTarget(db: Db, t: LineageTarget) {
    const none = { target_dataset_id: null, target_version_id: null, target_uri: null };
    switch (t.kind) {
      case 'dataset': {
        const d = await db
          .selectFrom('datasets')
          .select('id')
          .where('name', '=', t.dataset)
          .executeTakeFirst();
        if (!d) {
          throw new ModelgateError('DATASET_NOT_FOUND', `dataset ${t.dataset} not found`, {
            dataset: t.dataset,
          });
        }
        return { ...none, target_kind: 'dataset', target_dataset_id: d.id };
      }
      case 'version': {
        const v = await this.versionRow(db, t.model, t.version);
        return { ...none, target_kind: 'version', target_version_id: v.id };
      }
      default:
        return { ...none, target_kind: t.kind, target_uri: t.uri };
    }
  }

  private async versionRow(db: Db, model: string, number: number) {
    const m = await this.modelRow(db, model);
    const row = await db
      .selectFrom('versions')
      .selectAll()
      .where('model_id', '=', m.id)
      .where('number', '=', number)
      .executeTakeFirst();
    if (!row) {
      throw new ModelgateError('VERSION_NOT_FOUND', `model ${model} has no version ${number}`, {
        model,
        version: number,
      });
    }
    return row;
  }

  async getVersion(model: string, number: number): Promise<Version | undefined> {
    // One query for model and version: a missing model and a missing version are told apart
    // by the outer join.
    const row = await this.db
      .selectFrom('models')
      .leftJoin('versions', (j) =>
        j.onRef('versions.model_id', '=', 'models.id').on('versions.number', '=', number),
      )
      .selectAll('versions')
      .select('models.id as modelId')
      .where('models.name', '=', model)
      .executeTakeFirst();
    if (!row) throw new ModelgateError('MODEL_NOT_FOUND', `model ${model} not found`, { model });
    if (row.id === null) return undefined;
    const v = row as unknown as Selectable<VersionsTable>;
    return { ...toVersion(model, v), files: await this.versionFiles(v.id) };
  }

  // A registered version's files never change and version ids are never reused once
  // committed (the database refuses deletes), so a file list, once read, can be kept.
  private async versionFiles(versionId: number): Promise<VersionFile[]> {
    const hit = this.filesCache.get(versionId);
    if (hit) return hit.map((f) => ({ ...f }));
    const rows = await this.db
      .selectFrom('version_files')
      .select(['path', 'size', 'sha256'])
      .where('version_id', '=', versionId)
      .orderBy('path')
      .execute();
    const files = rows.map((f) => ({
      path: f.path,
      size: Number(f.size),
      digest: `sha256:${f.sha256}`,
    }));
    if (this.filesCache.size >= FILES_CACHE) {
      const oldest = this.filesCache.keys().next().value;
      if (oldest !== undefined) this.filesCache.delete(oldest);
    }
    this.filesCache.set(versionId, files);
    return files.map((f) => ({ ...f }));
  }

  async listVersions(
    model: string,
    filter: VersionFilter,
    req: PageRequest,
  ): Promise<Page<Version>> {
    const m = await this.modelRow(this.db, model);
    let q = this.db.selectFrom('versions').selectAll().where('model_id', '=', m.id);
    if (filter.tag) q = q.where(this.contains('tags', JSON.stringify(filter.tag)));
    if (filter.author) q = q.where('author', '=', filter.author);
    if (filter.digest) q = q.where('digest', '=', filter.digest);
    if (req.cursor) q = q.where('number', '<', decodeCursor('versions', req.cursor, 'number'));
    const rows = await q
      .orderBy('number', 'desc')
      .limit(req.limit + 1)
      .execute();
    return page(
      rows.map((r) => toVersion(model, r)),
      req.limit,
      (v) => encodeCursor('versions', v.number),
    );
  }

  async updateVersionMeta(
    model: string,
    number: number,
    patch: { tags?: string[]; description?: string },
    actor: Actor,
  ): Promise<Version> {
    const out = await this.db.transaction().execute(async (trx) => {
      const v = await this.versionRow(trx, model, number);
      const at = this.ts();
      const row = await trx
        .updateTable('versions')
        .set({
          ...(patch.tags !== undefined && { tags: JSON.stringify(patch.tags) }),
          ...(patch.description !== undefined && { description: patch.description }),
          updated_at: at,
          updated_by: actor.identity,
        })
        .where('id', '=', v.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const files = await trx
        .selectFrom('version_files')
        .select(['path', 'size', 'sha256'])
        .where('version_id', '=', v.id)
        .execute();
      const version = {
        ...toVersion(model, row),
        files: files.map((f) => ({
          path: f.path,
          size: Number(f.size),
          digest: `sha256:${f.sha256}`,
        })),
      };
      await this.audit(
        trx,
        {
          actor,
          action: 'version.update',
          subject: subjects.version(model, number),
          content: { version: versionContent(version), patch },
        },
        at,
      );
      return version;
    });
    return { ...out, files: versionContent(out).files ?? [] };
  }

  async setAlias(model: string, alias: string, version: number, actor: Actor): Promise<Alias> {
    return this.db.transaction().execute(async (trx) => {
      const m = await this.modelRow(trx, model, true);
      const v = await this.versionRow(trx, model, version);
      const prev = await trx
        .selectFrom('aliases')
        .innerJoin('versions', 'versions.id', 'aliases.version_id')
        .select('versions.number')
        .where('aliases.model_id', '=', m.id)
        .where('aliases.name', '=', alias)
        .executeTakeFirst();
      const at = this.ts();
      await trx
        .insertInto('aliases')
        .values({
          model_id: m.id,
          name: alias,
          version_id: v.id,
          updated_at: at,
          updated_by: actor.identity,
        })
        .onConflict((oc) =>
          oc.columns(['model_id', 'name']).doUpdateSet({
            version_id: v.id,
            updated_at: at,
            updated_by: actor.identity,
            decision_id: null,
          }),
        )
        .execute();
      await trx
        .insertInto('alias_events')
        .values({
          model_id: m.id,
          alias,
          from_version: prev?.number ?? null,
          to_version: version,
          actor: actor.identity,
          credential_id: actor.credentialId,
          at,
        })
        .execute();
      await this.audit(
        trx,
        {
          actor,
          action: 'alias.set',
          subject: subjects.alias(model, alias),
          content: { model, alias, version, previous: prev?.number ?? null },
        },
        at,
      );
      return { model, name: alias, version, updatedAt: at, updatedBy: actor.identity };
    });
  }

  async deleteAlias(model: string, alias: string, actor: Actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const m = await this.modelRow(trx, model, true);
      const prev = await trx
        .selectFrom('aliases')
        .innerJoin('versions', 'versions.id', 'aliases.version_id')
        .select('versions.number')
        .where('aliases.model_id', '=', m.id)
        .where('aliases.name', '=', alias)
        .executeTakeFirst();
      if (!prev) {
        throw new ModelgateError('ALIAS_NOT_FOUND', `model ${model} has no alias ${alias}`, {
          model,
          alias,
        });
      }
      await trx
        .deleteFrom('aliases')
        .where('model_id', '=', m.id)
        .where('name', '=', alias)
        .execute();
      // One time for the change and its event: audit verify compares them.
      const at = this.ts();
      await trx
        .insertInto('alias_events')
        .values({
          model_id: m.id,
          alias,
          from_version: prev.number,
          to_version: null,
          actor: actor.identity,
          credential_id: actor.credentialId,
          at,
        })
        .execute();
      await this.audit(
        trx,
        {
          actor,
          action: 'alias.delete',
          subject: subjects.alias(model, alias),
          content: { model, alias, version: null, previous: prev.number },
        },
        at,
      );
    });
  }

  private aliasQuery() {
    return this.db
      .selectFrom('aliases')
      .innerJoin('versions', 'versions.id', 'aliases.version_id')
      .innerJoin('models', 'models.id', 'aliases.model_id')
      .select([
        'models.name as model',
        'aliases.name as name',
        'versions.number as version',
        'aliases.updated_at as updatedAt',
        'aliases.updated_by as updatedBy',
      ]);
  }

  async getAlias(model: string, alias: string): Promise<Alias | undefined> {
    await this.modelRow(this.db, model);
    return this.aliasQuery()
      .where('models.name', '=', model)
      .where('aliases.name', '=', alias)
      .executeTakeFirst();
  }

  async listAliases(model: string): Promise<Alias[]> {
    await this.modelRow(this.db, model);
    return this.aliasQuery().where('models.name', '=', model).orderBy('aliases.name').execute();
  }

  private eventQuery(modelId: number) {
    return this.db
      .selectFrom('alias_events')
      .select([
        'id',
        'alias',
        'from_version as fromVersion',
        'to_version as toVersion',
        'actor',
        'credential_id as credentialId',
        'at',
      ])
      .where('model_id', '=', modelId);
  }

  async aliasHistory(
    model: string,
    filter: { alias?: string },
    req: PageRequest,
  ): Promise<Page<AliasEvent>> {
    const m = await this.modelRow(this.db, model);
    let q = this.eventQuery(m.id);
    if (filter.alias) q = q.where('alias', '=', filter.alias);
    if (req.cursor) q = q.where('id', '<', decodeCursor('alias-history', req.cursor, 'number'));
    const rows = await q
      .orderBy('id', 'desc')
      .limit(req.limit + 1)
      .execute();
    return page(
      rows.map((r) => ({ ...r, model })),
      req.limit,
      (e) => encodeCursor('alias-history', e.id),
    );
  }

  async aliasEventsAt(model: string, at: string, alias?: string): Promise<AliasEvent[]> {
    const m = await this.modelRow(this.db, model);
    // The newest event per alias at or before `at`: one indexed lookup per alias name.
    let names = this.db
      .selectFrom('alias_events')
      .select('alias')
      .distinct()
      .where('model_id', '=', m.id);
    if (alias) names = names.where('alias', '=', alias);
    const out: AliasEvent[] = [];
    for (const { alias: name } of await names.orderBy('alias').execute()) {
      const e = await this.eventQuery(m.id)
        .where('alias', '=', name)
        .where('at', '<=', at)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (e) out.push({ ...e, model });
    }
    return out;
  }

  async createDataset(input: NewDataset, actor: Actor): Promise<Dataset> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const at = this.ts();
        const row = await trx
          .insertInto('datasets')
          .values({ ...input, created_at: at, created_by: actor.identity })
          .returningAll()
          .executeTakeFirstOrThrow();
        const dataset = toDataset(row);
        await this.audit(
          trx,
          {
            actor,
            action: 'dataset.create',
            subject: subjects.dataset(dataset.name),
            content: { dataset },
          },
          at,
        );
        return dataset;
      });
    } catch (e) {
      if (this.caps.isUniqueViolation(e)) {
        throw new ModelgateError('DATASET_EXISTS', `dataset ${input.name} already exists`, {
          dataset: input.name,
        });
      }
      throw e;
    }
  }

  async getDataset(name: string): Promise<Dataset | undefined> {
    const row = await this.db
      .selectFrom('datasets')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? toDataset(row) : undefined;
  }

  async listDatasets(filter: { namePrefix?: string }, req: PageRequest): Promise<Page<Dataset>> {
    let q = this.db.selectFrom('datasets').selectAll();
    if (filter.namePrefix) {
      q = q.where(
        sql<boolean>`substr(name, 1, ${filter.namePrefix.length}) = ${filter.namePrefix}`,
      );
    }
    if (req.cursor) q = q.where('name', '>', decodeCursor('datasets', req.cursor, 'string'));
    const rows = await q
      .orderBy('name')
      .limit(req.limit + 1)
      .execute();
    return page(rows.map(toDataset), req.limit, (d) => encodeCursor('datasets', d.name));
  }

  private edgeQuery() {
    return this.db
      .selectFrom('lineage_edges as e')
      .innerJoin('versions as fv', 'fv.id', 'e.version_id')
      .innerJoin('models as fm', 'fm.id', 'fv.model_id')
      .leftJoin('datasets as d', 'd.id', 'e.target_dataset_id')
      .leftJoin('versions as tv', 'tv.id', 'e.target_version_id')
      .leftJoin('models as tm', 'tm.id', 'tv.model_id')
      .select([
        'fm.name as fromModel',
        'fv.number as fromVersion',
        'e.relation',
        'e.target_kind',
        'e.target_uri',
        'd.name as datasetName',
        'tm.name as targetModel',
        'tv.number as targetVersion',
      ]);
  }

  private static toEdge(r: {
    fromModel: string;
    fromVersion: number;
    relation: string;
    target_kind: string;
    target_uri: string | null;
    datasetName: string | null;
    targetModel: string | null;
    targetVersion: number | null;
  }): StoredEdge {
    let target: LineageTarget;
    if (r.target_kind === 'dataset') target = { kind: 'dataset', dataset: r.datasetName ?? '' };
    else if (r.target_kind === 'version') {
      target = { kind: 'version', model: r.targetModel ?? '', version: r.targetVersion ?? 0 };
    } else target = { kind: r.target_kind as 'run' | 'code', uri: r.target_uri ?? '' };
    return { from: { model: r.fromModel, version: r.fromVersion }, relation: r.relation, target };
  }

  async edgesFrom(versions: VersionRef[]): Promise<StoredEdge[]> {
    if (versions.length === 0) return [];
    const rows = await this.edgeQuery()
      .where((eb) =>
        eb.or(
          versions.map((v) =>
            eb.and([eb('fm.name', '=', v.model), eb('fv.number', '=', v.version)]),
          ),
        ),
      )
      .orderBy('e.id')
      .execute();
    return rows.map(KyselyRegistryStore.toEdge);
  }

  async edgesTo(targets: LineageTarget[]): Promise<StoredEdge[]> {
    const datasets = targets.flatMap((t) => (t.kind === 'dataset' ? [t.dataset] : []));
    const versions = targets.flatMap((t) => (t.kind === 'version' ? [t] : []));
    const uris = targets.flatMap((t) => (t.kind === 'run' || t.kind === 'code' ? [t] : []));
    if (datasets.length + versions.length + uris.length === 0) return [];
    const rows = await this.edgeQuery()
      .where((eb) =>
        eb.or([
          ...(datasets.length > 0 ? [eb('d.name', 'in', datasets)] : []),
          ...versions.map((v) =>
            eb.and([eb('tm.name', '=', v.model), eb('tv.number', '=', v.version)]),
          ),
          ...uris.map((u) =>
            eb.and([eb('e.target_kind', '=', u.kind), eb('e.target_uri', '=', u.uri)]),
          ),
        ]),
      )
      .orderBy('e.id')
      .execute();
    return rows.map(KyselyRegistryStore.toEdge);
  }

  async findToken(hash: string, usedFrom: string | null): Promise<TokenRecord | undefined> {
    const now = this.now();
    const row = await this.db
      .selectFrom('tokens')
      .innerJoin('identities', 'identities.id', 'tokens.identity_id')
      .select([
        'tokens.id',
        'tokens.last_used_at',
        'identities.id as identityId',
        'tokens.scopes',
        'tokens.expires_at',
        'identities.expires_at as identityExpiresAt',
        'identities.name',
        'identities.kind',
      ])
      .where('tokens.token_hash', '=', hash)
      .where('tokens.revoked_at', 'is', null)
      .where((eb) =>
        eb.or([
          eb('tokens.expires_at', 'is', null),
          eb('tokens.expires_at', '>', now.toISOString()),
        ]),
      )
      // A service account past its expiry is done, whatever its tokens say.
      .where((eb) =>
        eb.or([
          eb('identities.expires_at', 'is', null),
          eb('identities.expires_at', '>', now.toISOString()),
        ]),
      )
      .executeTakeFirst();
    if (!row) return undefined;
    // The credential ends with the token or with its service account, whichever is sooner.
    const ends =
      row.expires_at === null
        ? row.identityExpiresAt
        : row.identityExpiresAt === null ||
            Date.parse(row.expires_at) < Date.parse(row.identityExpiresAt)
          ? row.expires_at
          : row.identityExpiresAt;
    if (!row.last_used_at || now.getTime() - Date.parse(row.last_used_at) > TOKEN_TOUCH_MS) {
      await this.db
        .updateTable('tokens')
        .set({ last_used_at: now.toISOString(), last_used_from: usedFrom })
        .where('id', '=', row.id)
        .execute();
    }
    return {
      tokenId: row.id,
      identity: row.name,
      kind: row.kind,
      ...(await grantsOf(this.db, row.identityId)),
      ...(row.scopes !== null && { scopes: JSON.parse(row.scopes) as string[] }),
      ...(ends !== null && { expiresAt: ends }),
    };
  }

  async createToken(
    identity: NewIdentity,
    token: Omit<NewToken, 'rotatedFrom'>,
    opts: { initial?: boolean } = {},
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const at = this.ts();
      // The initial admin token is minted once however many servers start together: the one
      // that claims the marker (the first statement, a write, so the engines serialise on it)
      // mints it, and only into a registry that has no token yet.
      if (opts.initial) {
        if (!(await claimOnce(trx, 'initial-admin-token', at))) return false;
        const n = await trx
          .selectFrom('tokens')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow();
        if (Number(n.n) > 0) return false;
      }
      await trx
        .insertInto('identities')
        .values({ kind: identity.kind, name: identity.name, created_at: at })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const ident = await trx
        .selectFrom('identities')
        .select('id')
        .where('name', '=', identity.name)
        .executeTakeFirstOrThrow();
      for (const role of identity.roles ?? [])
        await trx
          .insertInto('identity_roles')
          .values({ identity_id: ident.id, role })
          .onConflict((oc) => oc.columns(['identity_id', 'role']).doNothing())
          .execute();
      for (const team of identity.teams ?? [])
        await trx
          .insertInto('team_members')
          .values({ identity_id: ident.id, team })
          .onConflict((oc) => oc.columns(['identity_id', 'team']).doNothing())
          .execute();
      await trx
        .insertInto('tokens')
        .values({
          id: token.id,
          identity_id: ident.id,
          token_hash: token.hash,
          name: token.name,
          created_at: at,
          expires_at: token.expiresAt ?? null,
          scopes: token.scopes ? JSON.stringify(token.scopes) : null,
        })
        .execute();
      // The server creates this (the first admin's token, test fixtures): it is the actor.
      await this.audit(
        trx,
        {
          actor: { identity: 'modelgate', credentialId: 'system' },
          action: 'token.create',
          subject: subjects.token(token.id),
          content: {
            identity: identity.name,
            kind: identity.kind,
            roles: identity.roles ?? [],
            teams: identity.teams ?? [],
            token: {
              id: token.id,
              name: token.name,
              expiresAt: token.expiresAt ?? null,
              scopes: token.scopes ?? null,
              // A digest of the stored hash, for audit verify (see KyselyIdentityStore.addToken).
              hashDigest: `sha256:${createHash('sha256').update(token.hash).digest('hex')}`,
            },
          },
        },
        at,
      );
      return true;
    });
  }

  async countTokens(): Promise<number> {
    const r = await this.db
      .selectFrom('tokens')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async ping(): Promise<void> {
    await sql`SELECT 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.database.close();
  }
}
